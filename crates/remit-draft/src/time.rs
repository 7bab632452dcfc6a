//! Dates without a clock: Unix seconds as UTC text, and hour windows.

use std::collections::BTreeSet;

/// Unix seconds as `YYYY-MM-DDTHH:MMZ`.
pub fn utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60
    )
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// The hours to admit, as an inclusive window `(from, to)` that may wrap
/// midnight: the complement of the longest run of unseen hours, widened by
/// one hour each side. `None` when that run is shorter than six hours (the
/// agent works round the clock: no window).
pub fn hour_window(seen: &BTreeSet<u8>) -> Option<(u8, u8)> {
    let mut best = (0u8, 0u8); // (start of gap, length)
    for start in 0..24u8 {
        if seen.contains(&start) {
            continue;
        }
        let mut len = 0u8;
        while len < 24 && !seen.contains(&((start + len) % 24)) {
            len += 1;
        }
        if len > best.1 {
            best = (start, len);
        }
    }
    if best.1 < 6 || best.1 >= 24 {
        return None;
    }
    // Admit from the hour before the gap ends to the hour after it starts.
    let from = (best.0 + best.1 - 1) % 24;
    // ...to the first unseen hour.
    Some((from, best.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_prints_dates() {
        assert_eq!(utc(0), "1970-01-01T00:00Z");
        assert_eq!(utc(1_796_601_600), "2026-12-07T00:00Z");
    }

    #[test]
    fn office_hours_get_a_window_widened_by_an_hour() {
        let seen: BTreeSet<u8> = (8..=17).collect();
        assert_eq!(hour_window(&seen), Some((7, 18)));
        let night: BTreeSet<u8> = [22, 23, 0, 1].into();
        assert_eq!(hour_window(&night), Some((21, 2)));
        let all: BTreeSet<u8> = (0..24).step_by(3).collect();
        assert_eq!(hour_window(&all), None);
    }
}
