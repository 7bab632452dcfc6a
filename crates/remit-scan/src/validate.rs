//! Checksum and structure validators, one pure function per format.
//!
//! Each takes the candidate already stripped of separators (ASCII digits
//! or upper-case alphanumerics) and answers yes or no.

/// Keeps ASCII alphanumerics, upper-cased, dropping separators.
pub(crate) fn compact(s: &[u8]) -> Vec<u8> {
    s.iter()
        .filter(|b| b.is_ascii_alphanumeric())
        .map(u8::to_ascii_uppercase)
        .collect()
}

/// Keeps ASCII digits only.
pub(crate) fn digits(s: &[u8]) -> Vec<u8> {
    s.iter()
        .filter(|b| b.is_ascii_digit())
        .map(|b| b - b'0')
        .collect()
}

/// The Luhn (mod 10) check over digit values.
pub(crate) fn luhn(d: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, &x) in d.iter().rev().enumerate() {
        let mut v = u32::from(x);
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    !d.is_empty() && sum % 10 == 0
}

/// Test-pattern junk: all one digit, or a straight ascending/descending run.
pub(crate) fn is_junk(d: &[u8]) -> bool {
    if d.len() < 2 {
        return false;
    }
    let same = d.iter().all(|&x| x == d[0]);
    let up = d.windows(2).all(|w| w[1] == (w[0] + 1) % 10);
    let down = d.windows(2).all(|w| w[0] == (w[1] + 1) % 10);
    same || up || down
}

fn prefix_num(d: &[u8], n: usize) -> u32 {
    d.iter().take(n).fold(0, |a, &x| a * 10 + u32::from(x))
}

/// Payment card: IIN range and length table, Luhn, no junk.
pub(crate) fn card(d: &[u8]) -> bool {
    let len = d.len();
    if !(12..=19).contains(&len) || is_junk(d) || !luhn(d) {
        return false;
    }
    let p1 = prefix_num(d, 1);
    let p2 = prefix_num(d, 2);
    let p3 = prefix_num(d, 3);
    let p4 = prefix_num(d, 4);
    let p6 = prefix_num(d, 6);
    let visa = p1 == 4 && matches!(len, 13 | 16 | 19);
    let mastercard = ((51..=55).contains(&p2) || (2221..=2720).contains(&p4)) && len == 16;
    let amex = matches!(p2, 34 | 37) && len == 15;
    let discover =
        (p4 == 6011 || p2 == 65 || (644..=649).contains(&p3) || (622126..=622925).contains(&p6))
            && (16..=19).contains(&len);
    let jcb = ((3528..=3589).contains(&p4) && (16..=19).contains(&len))
        || (matches!(p4, 1800 | 2131) && len == 15);
    let diners = ((300..=305).contains(&p3) || p2 == 36 || p2 == 38 || p2 == 39 || p4 == 3095)
        && (14..=19).contains(&len);
    let maestro = (matches!(
        p4,
        604 | 5018 | 5020 | 5038 | 5893 | 6304 | 6390 | 6759 | 6761 | 6762 | 6763
    ) || (56..=58).contains(&p2))
        && (12..=19).contains(&len);
    let unionpay = p2 == 62 && (16..=19).contains(&len);
    visa || mastercard || amex || discover || jcb || diners || maestro || unionpay
}

/// IBAN lengths per country (SWIFT IBAN registry).
const IBAN_LENGTHS: &[(&[u8; 2], usize)] = &[
    (b"AD", 24),
    (b"AE", 23),
    (b"AL", 28),
    (b"AT", 20),
    (b"AZ", 28),
    (b"BA", 20),
    (b"BE", 16),
    (b"BG", 22),
    (b"BH", 22),
    (b"BR", 29),
    (b"BY", 28),
    (b"CH", 21),
    (b"CR", 22),
    (b"CY", 28),
    (b"CZ", 24),
    (b"DE", 22),
    (b"DK", 18),
    (b"DO", 28),
    (b"EE", 20),
    (b"EG", 29),
    (b"ES", 24),
    (b"FI", 18),
    (b"FO", 18),
    (b"FR", 27),
    (b"GB", 22),
    (b"GE", 22),
    (b"GI", 23),
    (b"GL", 18),
    (b"GR", 27),
    (b"GT", 28),
    (b"HR", 21),
    (b"HU", 28),
    (b"IE", 22),
    (b"IL", 23),
    (b"IQ", 23),
    (b"IS", 26),
    (b"IT", 27),
    (b"JO", 30),
    (b"KW", 30),
    (b"KZ", 20),
    (b"LB", 28),
    (b"LC", 32),
    (b"LI", 21),
    (b"LT", 20),
    (b"LU", 20),
    (b"LV", 21),
    (b"MC", 27),
    (b"MD", 24),
    (b"ME", 22),
    (b"MK", 19),
    (b"MR", 27),
    (b"MT", 31),
    (b"MU", 30),
    (b"NL", 18),
    (b"NO", 15),
    (b"PK", 24),
    (b"PL", 28),
    (b"PS", 29),
    (b"PT", 25),
    (b"QA", 29),
    (b"RO", 24),
    (b"RS", 22),
    (b"SA", 24),
    (b"SC", 31),
    (b"SE", 24),
    (b"SI", 19),
    (b"SK", 24),
    (b"SM", 27),
    (b"ST", 25),
    (b"SV", 28),
    (b"TL", 23),
    (b"TN", 24),
    (b"TR", 26),
    (b"UA", 29),
    (b"VA", 22),
    (b"VG", 24),
    (b"XK", 20),
];

/// Whether two letters are a country with IBANs (used for BIC too).
pub(crate) fn iban_country(cc: &[u8]) -> Option<usize> {
    IBAN_LENGTHS
        .iter()
        .find(|(c, _)| c.as_slice() == cc)
        .map(|(_, n)| *n)
}

/// IBAN: per-country length and ISO 7064 mod 97-10.
pub(crate) fn iban(c: &[u8]) -> bool {
    if c.len() < 15 || !c.iter().all(u8::is_ascii_alphanumeric) {
        return false;
    }
    if iban_country(&c[..2]) != Some(c.len()) || !c[2].is_ascii_digit() || !c[3].is_ascii_digit() {
        return false;
    }
    let mut rem = 0u32;
    for &b in c[4..].iter().chain(&c[..4]) {
        let v = if b.is_ascii_digit() {
            u32::from(b - b'0')
        } else {
            u32::from(b.to_ascii_uppercase() - b'A') + 10
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// US SSN area/group/serial rules; `Some(true)` when it is an ITIN.
pub(crate) fn ssn_or_itin(d: &[u8]) -> Option<bool> {
    if d.len() != 9 || is_junk(d) {
        return None;
    }
    let area = prefix_num(d, 3);
    let group = prefix_num(&d[3..], 2);
    let serial = prefix_num(&d[5..], 4);
    if d[0] == 9 {
        let itin = matches!(group, 50..=65 | 70..=88 | 90..=92 | 94..=99);
        return itin.then_some(true);
    }
    if area == 0 || area == 666 || group == 0 || serial == 0 || prefix_num(d, 9) == 123_456_789 {
        return None;
    }
    Some(false)
}

/// UK National Insurance number: prefix and suffix rules.
pub(crate) fn nino(c: &[u8]) -> bool {
    if c.len() != 9 {
        return false;
    }
    let (p, digits, suffix) = (&c[..2], &c[2..8], c[8]);
    let bad_first = b"DFIQUV";
    let bad_second = b"DFIQUVO";
    let bad_pairs: [&[u8]; 7] = [b"BG", b"GB", b"NK", b"KN", b"TN", b"NT", b"ZZ"];
    p.iter().all(u8::is_ascii_uppercase)
        && !bad_first.contains(&p[0])
        && !bad_second.contains(&p[1])
        && !bad_pairs.contains(&p)
        && digits.iter().all(u8::is_ascii_digit)
        && matches!(suffix, b'A'..=b'D')
}

/// NHS number: mod 11 with weights 10..2.
pub(crate) fn nhs(d: &[u8]) -> bool {
    if d.len() != 10 || is_junk(d) {
        return false;
    }
    let sum: u32 = d[..9]
        .iter()
        .enumerate()
        .map(|(i, &x)| u32::from(x) * (10 - i as u32))
        .sum();
    let check = 11 - (sum % 11);
    let check = if check == 11 { 0 } else { check };
    check != 10 && check == u32::from(d[9])
}

/// German Steuer-ID: digit distribution and ISO 7064 mod 11,10.
pub(crate) fn steuer_id(d: &[u8]) -> bool {
    if d.len() != 11 || d[0] == 0 {
        return false;
    }
    let mut counts = [0u8; 10];
    for &x in &d[..10] {
        counts[usize::from(x)] += 1;
    }
    let repeated = counts.iter().filter(|&&c| c >= 2).count();
    let max = counts.iter().copied().max().unwrap_or(0);
    if repeated != 1 || max > 3 {
        return false;
    }
    let mut product = 10u32;
    for &x in &d[..10] {
        let mut sum = (u32::from(x) + product) % 10;
        if sum == 0 {
            sum = 10;
        }
        product = (sum * 2) % 11;
    }
    let check = (11 - product) % 10;
    check == u32::from(d[10])
}

/// French NIR: structure and key (97 − n mod 97), Corsica 2A/2B handled.
pub(crate) fn fr_nir(c: &[u8]) -> bool {
    if c.len() != 15 || !matches!(c[0], b'1' | b'2') {
        return false;
    }
    let month = (c[3].wrapping_sub(b'0')) * 10 + c[4].wrapping_sub(b'0');
    if !c[3].is_ascii_digit()
        || !c[4].is_ascii_digit()
        || !matches!(month, 1..=12 | 20..=42 | 50..=99)
    {
        return false;
    }
    let mut body = [0u8; 13];
    body.copy_from_slice(&c[..13]);
    // Corsica: departments 2A and 2B count as 19 and 18.
    match &body[5..7] {
        b"2A" => body[5..7].copy_from_slice(b"19"),
        b"2B" => body[5..7].copy_from_slice(b"18"),
        _ => {}
    }
    if !body.iter().all(u8::is_ascii_digit) || !c[13..].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let n = body.iter().fold(0u64, |a, &b| a * 10 + u64::from(b - b'0'));
    let key = u64::from(c[13] - b'0') * 10 + u64::from(c[14] - b'0');
    key == 97 - (n % 97)
}

const DNI_LETTERS: &[u8; 23] = b"TRWAGMYFPDXBNJZSQVHLCKE";

/// Spanish DNI (8 digits + letter) or NIE (X/Y/Z + 7 digits + letter).
pub(crate) fn es_dni(c: &[u8]) -> bool {
    if c.len() != 9 {
        return false;
    }
    let lead = match c[0] {
        b'X' => 0,
        b'Y' => 1,
        b'Z' => 2,
        b'0'..=b'9' => u32::from(c[0] - b'0'),
        _ => return false,
    };
    if !c[1..8].iter().all(u8::is_ascii_digit) {
        return false;
    }
    let n = c[1..8]
        .iter()
        .fold(lead, |a, &b| a * 10 + u32::from(b - b'0'));
    DNI_LETTERS[(n % 23) as usize] == c[8]
}

/// Italian codice fiscale: the check character over the 15 first characters.
pub(crate) fn it_codice_fiscale(c: &[u8]) -> bool {
    const ODD: [u32; 26] = [
        1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24,
        23,
    ];
    if c.len() != 16 || !c.iter().all(u8::is_ascii_alphanumeric) || !c[15].is_ascii_uppercase() {
        return false;
    }
    let mut sum = 0u32;
    for (i, &b) in c[..15].iter().enumerate() {
        let idx = if b.is_ascii_digit() {
            u32::from(b - b'0')
        } else {
            u32::from(b - b'A')
        };
        sum += if i % 2 == 0 { ODD[idx as usize] } else { idx };
    }
    u32::from(c[15] - b'A') == sum % 26
}

/// Dutch BSN: the 11-test.
pub(crate) fn nl_bsn(d: &[u8]) -> bool {
    if d.len() != 9 || is_junk(d) || d.iter().all(|&x| x == 0) {
        return false;
    }
    let mut sum: i32 = 0;
    for (i, &x) in d[..8].iter().enumerate() {
        sum += i32::from(x) * (9 - i as i32);
    }
    sum -= i32::from(d[8]);
    sum % 11 == 0
}

fn valid_date(year: u32, month: u32, day: u32) -> bool {
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

/// Polish PESEL: encoded birth date and weighted check digit.
pub(crate) fn pl_pesel(d: &[u8]) -> bool {
    if d.len() != 11 || is_junk(d) {
        return false;
    }
    const W: [u32; 10] = [1, 3, 7, 9, 1, 3, 7, 9, 1, 3];
    let sum: u32 = d[..10].iter().zip(W).map(|(&x, w)| u32::from(x) * w).sum();
    if (10 - sum % 10) % 10 != u32::from(d[10]) {
        return false;
    }
    let yy = prefix_num(d, 2);
    let mm = prefix_num(&d[2..], 2);
    let dd = prefix_num(&d[4..], 2);
    let (century, month) = match mm {
        1..=12 => (1900, mm),
        21..=32 => (2000, mm - 20),
        41..=52 => (2100, mm - 40),
        61..=72 => (2200, mm - 60),
        81..=92 => (1800, mm - 80),
        _ => return false,
    };
    valid_date(century + yy, month, dd)
}

/// PESEL of someone alive: born 1900 to this decade (months 1-12 and
/// 21-32), for use without a keyword, where every digit of evidence counts.
pub(crate) fn pl_pesel_recent(d: &[u8]) -> bool {
    let mm = d.get(2..4).map_or(0, |m| prefix_num(m, 2));
    let yy = prefix_num(d, 2);
    pl_pesel(d) && (matches!(mm, 1..=12) || (matches!(mm, 21..=32) && yy <= 29))
}

/// Swedish personnummer (10 or 12 digits): date (or co-ordination
/// number day + 60) and Luhn over the last ten digits.
pub(crate) fn se_personnummer(d: &[u8]) -> bool {
    let d = match d.len() {
        10 => d,
        12 if matches!(prefix_num(d, 2), 18..=20) => &d[2..],
        _ => return false,
    };
    let mm = prefix_num(&d[2..], 2);
    let mut dd = prefix_num(&d[4..], 2);
    if dd > 60 {
        dd -= 60;
    }
    valid_date(2000, mm, dd) && !is_junk(d) && luhn(d)
}

/// A calendar date written as digits with separators, in the usual orders.
pub(crate) fn date(s: &[u8]) -> bool {
    let parts: Vec<u32> = s
        .split(|b| matches!(b, b'-' | b'/' | b'.'))
        .map(|p| {
            p.iter()
                .fold(0u32, |a, &b| a * 10 + u32::from(b.wrapping_sub(b'0')))
        })
        .collect();
    let lens: Vec<usize> = s
        .split(|b| matches!(b, b'-' | b'/' | b'.'))
        .map(<[u8]>::len)
        .collect();
    if parts.len() != 3 {
        return false;
    }
    let plausible = |y: u32| (1900..=2100).contains(&y);
    if lens[0] == 4 {
        return plausible(parts[0]) && valid_date(parts[0], parts[1], parts[2]);
    }
    let year = if lens[2] == 2 {
        1900 + parts[2]
    } else {
        parts[2]
    };
    if lens[2] != 2 && !plausible(year) {
        return false;
    }
    valid_date(year, parts[1], parts[0]) || valid_date(year, parts[0], parts[1])
}

/// Words documentation puts where a secret goes (`AKIAIOSFODNN7EXAMPLE`,
/// `<your-api-key>`, `REPLACE_ME`), matched case-insensitively.
const PLACEHOLDER_WORDS: &[&[u8]] = &[
    b"example",
    b"sample",
    b"placeholder",
    b"your",
    b"replace",
    b"changeme",
    b"dummy",
    b"redacted",
    b"xxxx",
];

/// A placeholder standing where a secret goes, not a secret: template
/// syntax (`<...>`, `${...}`, `{{...}}`), a placeholder word, or filler (a
/// run of five or more of one character: `XXXXX`, `*****`, `00000`). A real
/// key is random, so the odds that one contains such a run or word are
/// around 1e-5 or less; an attacker cannot change the characters of the
/// key they leak.
pub(crate) fn placeholder(s: &[u8]) -> bool {
    if s.starts_with(b"<") || s.starts_with(b"${") || s.starts_with(b"{{") {
        return true;
    }
    let mut run = 1;
    for w in s.windows(2) {
        run = if w[0] == w[1] { run + 1 } else { 1 };
        if run >= 5 {
            return true;
        }
    }
    PLACEHOLDER_WORDS
        .iter()
        .any(|word| s.windows(word.len()).any(|w| w.eq_ignore_ascii_case(word)))
}

/// Shannon entropy in bits per byte.
pub(crate) fn entropy(s: &[u8]) -> f64 {
    if s.is_empty() {
        return 0.0;
    }
    let mut counts = [0u32; 256];
    for &b in s {
        counts[usize::from(b)] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

const BASE58: &[u8; 58] = b"123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz";

/// Bitcoin base58check address (P2PKH `1…`, P2SH `3…`): double SHA-256 checksum.
pub(crate) fn btc_base58(s: &[u8]) -> bool {
    if !(26..=35).contains(&s.len()) {
        return false;
    }
    // Big-number base conversion, 25 bytes for a standard address.
    let mut bytes = [0u8; 25];
    for &c in s {
        let Some(mut carry) = BASE58.iter().position(|&b| b == c).map(|v| v as u32) else {
            return false;
        };
        for b in bytes.iter_mut().rev() {
            carry += u32::from(*b) * 58;
            *b = (carry & 0xFF) as u8;
            carry >>= 8;
        }
        if carry != 0 {
            return false;
        }
    }
    if bytes[0] != 0x00 && bytes[0] != 0x05 {
        return false;
    }
    let first = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &bytes[..21]);
    let second = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, first.as_ref());
    second.as_ref()[..4] == bytes[21..]
}

/// Bitcoin bech32/bech32m segwit address (`bc1…`): the BCH checksum.
pub(crate) fn btc_bech32(s: &[u8]) -> bool {
    const CHARSET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";
    const GEN: [u32; 5] = [
        0x3b6a_57b2,
        0x2650_8e6d,
        0x1ea1_19fa,
        0x3d42_33dd,
        0x2a14_62b3,
    ];
    let lower: Vec<u8> = s.iter().map(u8::to_ascii_lowercase).collect();
    let Some(sep) = lower.iter().rposition(|&b| b == b'1') else {
        return false;
    };
    let (hrp, data) = (&lower[..sep], &lower[sep + 1..]);
    if hrp != b"bc" || data.len() < 6 || lower.len() > 90 {
        return false;
    }
    let mut chk: u32 = 1;
    let mut step = |v: u32| {
        let top = chk >> 25;
        chk = ((chk & 0x01ff_ffff) << 5) ^ v;
        for (i, g) in GEN.iter().enumerate() {
            if (top >> i) & 1 == 1 {
                chk ^= g;
            }
        }
    };
    for &h in hrp {
        step(u32::from(h >> 5));
    }
    step(0);
    for &h in hrp {
        step(u32::from(h & 31));
    }
    for &c in data {
        let Some(v) = CHARSET.iter().position(|&x| x == c) else {
            return false;
        };
        step(v as u32);
    }
    chk == 1 || chk == 0x2bc8_30a3
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> Vec<u8> {
        digits(s.as_bytes())
    }

    #[test]
    fn card_checks_luhn_iin_and_junk() {
        assert!(card(&d("4111111111111111")));
        assert!(card(&d("5555555555554444")));
        assert!(card(&d("378282246310005")));
        assert!(card(&d("6011111111111117")));
        assert!(card(&d("3530111333300000")));
        assert!(card(&d("2223003122003222")));
        // Luhn off by one, unknown IIN, wrong length for the brand, junk.
        assert!(!card(&d("4111111111111112")));
        assert!(!card(&d("9111111111111119")));
        assert!(!card(&d("37828224631000")));
        assert!(!card(&d("0000000000000000")));
    }

    #[test]
    fn iban_checks_country_length_and_mod97() {
        assert!(iban(b"GB82WEST12345698765432"));
        assert!(iban(b"DE89370400440532013000"));
        assert!(iban(b"FR1420041010050500013M02606"));
        assert!(!iban(b"GB82WEST12345698765433"));
        assert!(!iban(b"GB82WEST1234569876543"));
        assert!(!iban(b"QQ82WEST12345698765432"));
    }

    #[test]
    fn ssn_rules_reject_reserved_areas_groups_and_serials() {
        assert_eq!(ssn_or_itin(&d("536-90-4399")), Some(false));
        assert_eq!(ssn_or_itin(&d("000-12-3456")), None);
        assert_eq!(ssn_or_itin(&d("666-12-3456")), None);
        assert_eq!(ssn_or_itin(&d("536-00-4399")), None);
        assert_eq!(ssn_or_itin(&d("536-90-0000")), None);
        assert_eq!(ssn_or_itin(&d("912-70-1234")), Some(true));
        assert_eq!(ssn_or_itin(&d("912-40-1234")), None);
    }

    #[test]
    fn national_ids_check_their_checksums() {
        assert!(nino(b"AB123456C"));
        assert!(!nino(b"BG123456C"));
        assert!(!nino(b"AB123456E"));
        assert!(nhs(&d("943 476 5919")));
        assert!(!nhs(&d("943 476 5918")));
        assert!(steuer_id(&d("86095742719")));
        assert!(!steuer_id(&d("86095742718")));
        assert!(fr_nir(b"255081416802538"));
        assert!(!fr_nir(b"255081416802539"));
        assert!(es_dni(b"12345678Z"));
        assert!(!es_dni(b"12345678A"));
        assert!(es_dni(b"X1234567L"));
        assert!(it_codice_fiscale(b"RSSMRA85T10A562S"));
        assert!(!it_codice_fiscale(b"RSSMRA85T10A562T"));
        assert!(nl_bsn(&d("111222333")));
        assert!(!nl_bsn(&d("111222334")));
        assert!(pl_pesel(&d("44051401359")));
        assert!(!pl_pesel(&d("44051401358")));
        assert!(se_personnummer(&d("811218-9876")));
        assert!(!se_personnummer(&d("811218-9877")));
    }

    #[test]
    fn dates_and_entropy() {
        assert!(date(b"1985-07-14"));
        assert!(date(b"14/07/1985"));
        assert!(!date(b"1985-13-14"));
        assert!(!date(b"31/02/1985"));
        assert!(entropy(b"aaaaaaaa") < 0.01);
        assert!(entropy(b"Xk9#mQ2$vL7pR4wZ") > 3.5);
    }

    #[test]
    fn placeholders_are_told_from_random_keys() {
        for p in [
            &b"AKIAXXXXXXXXXXXXXXXX"[..],
            b"AKIAIOSFODNN7EXAMPLE",
            b"<your-api-key>",
            b"sk_live_xxxxxxxxxxxxxxxxxxxxxxxx",
            b"REPLACE_ME_1234567",
            b"${TOKEN}",
            b"ghp_000000000000000000000000000000000000",
        ] {
            assert!(placeholder(p), "{}", String::from_utf8_lossy(p));
        }
        for k in [
            &b"AKIAZ7VRSQ5TJS2MHCQ4"[..],
            b"ghp_aBcD1234eFgH5678iJkL9012mNoP3456qRsT",
            b"sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        ] {
            assert!(!placeholder(k), "{}", String::from_utf8_lossy(k));
        }
    }

    #[test]
    fn bitcoin_checksums() {
        assert!(btc_base58(b"1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN2"));
        assert!(btc_base58(b"3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy"));
        assert!(!btc_base58(b"1BvBMSEYstWetqTFn5Au4m4GFg7xJaNVN3"));
        assert!(btc_bech32(b"bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"));
        assert!(!btc_bech32(b"bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5"));
    }
}
