//! The recognizer catalog: one pattern and one validator per recognizer,
//! behind cheap prefilters.
//!
//! Prefilter: every pattern is compiled into one `RegexSet`, whose single
//! lazy-DFA pass over the text says which recognizers can match at all;
//! clean text stops there. Only the recognizers that can match run their own
//! pattern: those that start with a literal or a narrow byte class (`AKIA`,
//! `@`, digits) over the whole text (the `regex` crate's literal prefilters
//! skip to candidates), those that start with letters (IBAN, NINO, codice
//! fiscale) only in windows around digits, and keyword-anchored ones only in
//! windows around their keywords, found for all of them in one Aho-Corasick
//! pass. Every candidate then goes through its validator. The `regex` crate
//! runs in linear time (finite automata, no backtracking), so no input can
//! make a pattern blow up.

use aho_corasick::{AhoCorasick, MatchKind};
use regex::bytes::{Regex, RegexSet};

use crate::finding::{Confidence, FindingType, Validation};
use crate::validate as v;

/// What a validator accepted.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hit {
    pub(crate) kind: FindingType,
    pub(crate) validation: Validation,
    pub(crate) confidence: Confidence,
}

impl Hit {
    fn new(kind: FindingType, validation: Validation) -> Option<Self> {
        let confidence = match validation {
            Validation::Checksum | Validation::Structure => Confidence::High,
            Validation::Context | Validation::Entropy => Confidence::Medium,
        };
        Some(Self {
            kind,
            validation,
            confidence,
        })
    }
}

/// A candidate found in a segment: the span of the value and the hit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Candidate {
    pub(crate) start: usize,
    pub(crate) end: usize,
    pub(crate) hit: Hit,
}

type Check = fn(text: &[u8], start: usize, end: usize) -> Option<Hit>;

/// What may stand between the digit groups of an identifier, written
/// `{sep}` in the patterns: one of space, dash, dot, slash or underscore,
/// a dash, dot or slash with a space on both sides, or two spaces. The
/// validators see only the joined digits, so any grouping whose digits pass
/// the checksum is found, however it is split.
pub(crate) const SEP: &str = r"(?:[ \-./_]| [\-./] |  )";

/// Separator bytes of [`SEP`].
pub(crate) fn is_sep(b: u8) -> bool {
    matches!(b, b' ' | b'-' | b'.' | b'/' | b'_')
}

struct Spec {
    pattern: &'static str,
    /// Capture group holding the value (0: the whole match).
    group: usize,
    /// On rejection, retry with the span cut back to each earlier
    /// separator (a greedy match may have swallowed a neighbouring word).
    shrink: bool,
    /// When the pattern is worth running at all.
    trigger: Trigger,
    check: Check,
}

/// What must be near a match for a recognizer to run there.
///
/// Patterns that start with a literal or a small byte class get a fast
/// prefilter from the `regex` crate and run over the whole text. Patterns
/// that start with a broad class (letters) run only in windows around
/// digits, or around their keywords (found by one Aho-Corasick pass).
#[derive(Debug, Clone, Copy)]
enum Trigger {
    Always,
    Digits,
    Keywords(&'static [&'static str]),
}

use FindingType as T;
use Validation as V;

fn value(text: &[u8], start: usize, end: usize) -> &[u8] {
    &text[start..end]
}

/// Dot-digit or digit-dot beside a match means it is part of a longer
/// dotted number (a version string or a longer address).
fn dotted_neighbour(text: &[u8], start: usize, end: usize) -> bool {
    let before = start >= 2 && text[start - 1] == b'.' && text[start - 2].is_ascii_digit();
    let after = text.get(end) == Some(&b'.') && text.get(end + 1).is_some_and(u8::is_ascii_digit);
    before || after
}

/// A span joined by a dash to a longer alphanumeric token, as the groups
/// of a UUID or a hex identifier are (`0b704250-5694-4879-8748-9066…`).
fn dash_glued(text: &[u8], start: usize, end: usize) -> bool {
    let before = start >= 2 && text[start - 1] == b'-' && text[start - 2].is_ascii_alphanumeric();
    let after =
        text.get(end) == Some(&b'-') && text.get(end + 1).is_some_and(u8::is_ascii_alphanumeric);
    before || after
}

/// A number standing on its own: not glued by a separator to more digits
/// (one group of a longer sequence, a version string) nor after a `+`
/// (a phone number in E.164).
fn standalone(text: &[u8], start: usize, end: usize) -> bool {
    let before = text[..start].iter().rev().take(3);
    let glued_before = before
        .clone()
        .take_while(|&&b| is_sep(b) || b == b'+')
        .count();
    let plus = text[..start].iter().rev().take(3).any(|&b| b == b'+');
    let digit_before =
        start > glued_before && glued_before > 0 && text[start - glued_before - 1].is_ascii_digit();
    let glued_after = text[end..]
        .iter()
        .take(3)
        .take_while(|&&b| is_sep(b))
        .count();
    let digit_after =
        glued_after > 0 && text.get(end + glued_after).is_some_and(u8::is_ascii_digit);
    !plus && !digit_before && !digit_after
}

/// Labels that name a number as something other than personal data.
const OTHER_LABELS: &[&[u8]] = &[
    b"order",
    b"invoice",
    b"ticket",
    b"tracking",
    b"build",
    b"ref",
    b"transaction",
    b"receipt",
    b"serial",
    b"account",
    b"acct",
    b"sku",
    b"phone",
    b"tel",
    b"fax",
    b"mobile",
    b"case",
    b"shipment",
    b"customer no",
    b"version",
    b"txn",
    b"batch",
    b"job",
    b"request",
];

/// Whether a word in the 32 bytes before `start`, in the same sentence,
/// labels the number as something else (an order, invoice, tracking or
/// phone number). Used only by recognizers that run without a keyword of
/// their own, where it can only take away a guess, never hide a value a
/// keyword or a stronger checksum finds.
fn labelled_otherwise(text: &[u8], start: usize) -> bool {
    let from = start.saturating_sub(32);
    // A clause ends at a line break or at `. ` after a word of three or
    // more letters (not after an abbreviation such as `no. `).
    let window = &text[from..start];
    let ends_clause = |i: usize| {
        let w = &window[..=i];
        let word = w[..i]
            .iter()
            .rev()
            .take_while(|b| b.is_ascii_alphabetic())
            .count();
        w[i] == b'\n'
            || (matches!(w[i], b'.' | b'!' | b'?')
                && window.get(i + 1) == Some(&b' ')
                && (w[i] != b'.' || word >= 3))
    };
    let clause = (0..window.len())
        .rev()
        .find(|&i| ends_clause(i))
        .map_or(from, |i| from + i + 1);
    let before = &text[clause..start];
    OTHER_LABELS.iter().any(|w| {
        before.windows(w.len()).enumerate().any(|(i, x)| {
            x.eq_ignore_ascii_case(w) && (i == 0 || !before[i - 1].is_ascii_alphabetic())
        })
    })
}

/// Four dot-separated groups of one to three digits: an IPv4 address (or
/// a version string), whatever checksum its joined digits happen to pass.
fn dotted_quad(v: &[u8]) -> bool {
    let mut groups = 0;
    for g in v.split(|&b| b == b'.') {
        if g.is_empty() || g.len() > 3 || !g.iter().all(u8::is_ascii_digit) {
            return false;
        }
        groups += 1;
    }
    groups == 4
}

/// Whether the first three digit groups are a written calendar date with
/// a four-digit year (`07.12.2026`, `2026-12-07`).
fn calendar_date_first(v: &[u8]) -> bool {
    let mut groups = v
        .split(|&b| is_sep(b))
        .filter(|g| !g.is_empty())
        .map(<[u8]>::len);
    match (groups.next(), groups.next(), groups.next()) {
        (Some(a), Some(b), Some(c)) => (a <= 2 && b <= 2 && c == 4) || (a == 4 && b <= 2 && c <= 2),
        _ => false,
    }
}

/// A checksummed number found with no keyword: standing alone, not an
/// address, and not labelled as something else.
fn unlabelled_ok(text: &[u8], start: usize, end: usize) -> bool {
    standalone(text, start, end)
        && !dash_glued(text, start, end)
        && !dotted_quad(&text[start..end])
        && !labelled_otherwise(text, start)
}

const SPECS: &[Spec] = &[
    // --- payment cards, IBAN, BIC
    Spec {
        pattern: r"\b\d(?:{sep}?\d){11,18}\b",
        group: 0,
        shrink: true,
        trigger: Trigger::Always,
        check: |t, s, e| {
            let c = value(t, s, e);
            (!dotted_quad(c) && !dash_glued(t, s, e) && v::card(&v::digits(c)))
                .then(|| Hit::new(T::CreditCard, V::Checksum))?
        },
    },
    Spec {
        pattern: r"(?i)\b[A-Z]{2}{sep}?\d{sep}?\d(?:{sep}?[A-Z0-9]){11,30}\b",
        group: 0,
        shrink: true,
        trigger: Trigger::Digits,
        check: |t, s, e| {
            (!dash_glued(t, s, e) && v::iban(&v::compact(value(t, s, e))))
                .then(|| Hit::new(T::Iban, V::Checksum))?
        },
    },
    Spec {
        pattern: r"(?i)\b(?:bic|swift|bank)(?s:.){0,48}?\b((?-i:[A-Z]{6}[A-Z0-9]{2}(?:[A-Z0-9]{3})?))\b",
        group: 1,
        shrink: false,
        trigger: Trigger::Always,
        check: |t, s, e| {
            let c = value(t, s, e);
            let cc = &c[4..6];
            let known = v::iban_country(cc).is_some()
                || [
                    b"US", b"CA", b"JP", b"CN", b"AU", b"IN", b"SG", b"HK", b"NZ", b"ZA", b"MX",
                    b"KR",
                ]
                .iter()
                .any(|x| x.as_slice() == cc);
            (known && c[..4] != *b"BANK").then(|| Hit::new(T::Bic, V::Context))?
        },
    },
    // --- US
    Spec {
        pattern: r"\b\d{3}[ \-.]\d{2}[ \-.]\d{4}\b",
        group: 0,
        shrink: false,
        trigger: Trigger::Always,
        check: |t, s, e| {
            let c = value(t, s, e);
            if c[3] != c[6] || dotted_neighbour(t, s, e) {
                return None;
            }
            match v::ssn_or_itin(&v::digits(c))? {
                true => Hit::new(T::UsItin, V::Structure),
                false => Hit::new(T::UsSsn, V::Structure),
            }
        },
    },
    Spec {
        pattern: r"(?i)\b(?:ssn|social security|itin|taxpayer)(?s:.){0,48}?\b(\d(?:{sep}?\d){8})\b",
        group: 1,
        shrink: false,
        trigger: Trigger::Keywords(&["ssn", "social security", "itin", "taxpayer"]),
        check: |t, s, e| match v::ssn_or_itin(&v::digits(value(t, s, e)))? {
            true => Hit::new(T::UsItin, V::Context),
            false => Hit::new(T::UsSsn, V::Context),
        },
    },
    // --- UK
    Spec {
        pattern: r"(?i)\b[A-Z]{2} ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b",
        group: 0,
        shrink: false,
        trigger: Trigger::Digits,
        check: |t, s, e| {
            let c = value(t, s, e);
            let upper = c.iter().all(|b| !b.is_ascii_lowercase());
            (upper && v::nino(&v::compact(c))).then(|| Hit::new(T::UkNino, V::Structure))?
        },
    },
    Spec {
        pattern: r"(?i)\bnhs(?s:.){0,48}?\b(\d(?:{sep}?\d){9})\b",
        group: 1,
        shrink: false,
        trigger: Trigger::Always,
        check: |t, s, e| {
            v::nhs(&v::digits(value(t, s, e))).then(|| Hit::new(T::UkNhs, V::Checksum))?
        },
    },
    // --- EU national identifiers
    Spec {
        pattern: r"(?i)(?:steuer|\bidnr|identifikationsnummer|\btax ?id\b|\btin\b)(?s:.){0,48}?\b(\d(?:{sep}?\d){10})\b",
        group: 1,
        shrink: false,
        trigger: Trigger::Always,
        check: |t, s, e| {
            v::steuer_id(&v::digits(value(t, s, e)))
                .then(|| Hit::new(T::DeSteuerId, V::Checksum))?
        },
    },
    // Steuer-ID without a keyword: its digit-distribution rule and ISO
    // 7064 check pass for about 1 random 11-digit number in 300.
    Spec {
        pattern: r"\b[1-9](?:{sep}?\d){10}\b",
        group: 0,
        shrink: false,
        trigger: Trigger::Always,
        check: |t, s, e| {
            (unlabelled_ok(t, s, e) && v::steuer_id(&v::digits(value(t, s, e))))
                .then(|| Hit::new(T::DeSteuerId, V::Checksum))?
        },
    },
    Spec {
        pattern: r"(?i)\b[12](?:{sep}?[0-9AB]){14}\b",
        group: 0,
        shrink: false,
        trigger: Trigger::Always,
        check: |t, s, e| {
            v::fr_nir(&v::compact(value(t, s, e))).then(|| Hit::new(T::FrNir, V::Checksum))?
        },
    },
    Spec {
        pattern: r"(?i)\b[0-9XYZ](?:{sep}?\d){7}{sep}?[A-Z]\b",
        group: 0,
        shrink: false,
        trigger: Trigger::Digits,
        check: |t, s, e| {
            v::es_dni(&v::compact(value(t, s, e))).then(|| Hit::new(T::EsDni, V::Checksum))?
        },
    },
    Spec {
        pattern: r"(?i)\b[A-Z]{6}[0-9LMNP-V]{2}[A-EHLMPR-T][0-9LMNP-V]{2}[A-Z][0-9LMNP-V]{3}[A-Z]\b",
        group: 0,
        shrink: false,
        trigger: Trigger::Digits,
        check: |t, s, e| {
            v::it_codice_fiscale(&v::compact(value(t, s, e)))
                .then(|| Hit::new(T::ItCodiceFiscale, V::Checksum))?
        },
    },
    Spec {
        pattern: r"(?i)(?:\bbsn\b|burgerservicenummer|sofinummer)(?s:.){0,48}?\b(\d(?:{sep}?\d){8})\b",
        group: 1,
        shrink: false,
        trigger: Trigger::Keywords(&["bsn", "burgerservicenummer", "sofinummer"]),
        check: |t, s, e| {
            v::nl_bsn(&v::digits(value(t, s, e))).then(|| Hit::new(T::NlBsn, V::Checksum))?
        },
    },
    // BSN without a keyword only in its own display format `dddd.dd.ddd`:
    // the 11-test alone passes for 1 random 9-digit number in 11.
    Spec {
        pattern: r"\b\d{4}\.\d{2}\.\d{3}\b",
        group: 0,
        shrink: false,
        trigger: Trigger::Always,
        check: |t, s, e| {
            (unlabelled_ok(t, s, e) && v::nl_bsn(&v::digits(value(t, s, e))))
                .then(|| Hit::new(T::NlBsn, V::Checksum))?
        },
    },
    Spec {
        pattern: r"(?i)\bpesel(?s:.){0,48}?\b(\d(?:{sep}?\d){10})\b",
        group: 1,
        shrink: false,
        trigger: Trigger::Always,
        check: |t, s, e| {
            v::pl_pesel(&v::digits(value(t, s, e))).then(|| Hit::new(T::PlPesel, V::Checksum))?
        },
    },
    // PESEL without a keyword: the check digit and an encoded birth date
    // between 1900 and 2029 pass for about 1 random 11-digit number in 200
    // (rates measured on the decoys of bench/scan-eval), so it is trusted
    // alone only when the number stands alone and nothing labels it as
    // something else.
    Spec {
        pattern: r"\b\d(?:{sep}?\d){10}\b",
        group: 0,
        shrink: false,
        trigger: Trigger::Always,
        check: |t, s, e| {
            (unlabelled_ok(t, s, e) && v::pl_pesel_recent(&v::digits(value(t, s, e))))
                .then(|| Hit::new(T::PlPesel, V::Checksum))?
        },
    },
    Spec {
        pattern: r"\b\d(?:{sep}?\d){5,7}(?:{sep}|\+)?\d(?:{sep}?\d){3}\b",
        group: 0,
        shrink: false,
        trigger: Trigger::Digits,
        check: |t, s, e| {
            // Without a keyword, any grouping but a written calendar date
            // with a four-digit year (`07.12.2026 10`, a date and an hour).
            let c = value(t, s, e);
            (!calendar_date_first(c) && unlabelled_ok(t, s, e) && v::se_personnummer(&v::digits(c)))
                .then(|| Hit::new(T::SePersonnummer, V::Checksum))?
        },
    },
    Spec {
        pattern: r"(?i)personnummer(?s:.){0,48}?\b(\d(?:{sep}?\d){9,11})\b",
        group: 1,
        shrink: false,
        trigger: Trigger::Always,
        check: |t, s, e| {
            v::se_personnummer(&v::digits(value(t, s, e)))
                .then(|| Hit::new(T::SePersonnummer, V::Checksum))?
        },
    },
    // --- contact and network
    Spec {
        pattern: r"[A-Za-z0-9._%+\-]{1,64}@[A-Za-z0-9\-]{1,63}(?:\.[A-Za-z0-9\-]{1,63}){0,8}\.[A-Za-z]{2,24}\b",
        group: 0,
        shrink: false,
        trigger: Trigger::Always,
        check: |t, s, e| {
            let c = value(t, s, e);
            let at = c.iter().position(|&b| b == b'@')?;
            let (local, domain) = (&c[..at], &c[at + 1..]);
            let ok = (1..=64).contains(&local.len())
                && domain.len() <= 253
                && !local.starts_with(b".")
                && !local.ends_with(b".")
                && !domain
                    .split(|&b| b == b'.')
                    .any(|l| l.is_empty() || l.starts_with(b"-"));
            ok.then(|| Hit::new(T::Email, V::Structure))?
        },
    },
    Spec {
        pattern: r"\+\d[\d \-.()]{6,20}\d(?:\s?(?:x|ext\.?)\s?\d{1,5})?",
        group: 0,
        shrink: true,
        trigger: Trigger::Always,
        check: |t, s, e| {
            if s > 0 && (t[s - 1].is_ascii_alphanumeric() || t[s - 1] == b'+') {
                return None;
            }
            phone_ok(value(t, s, e), 8, 15)
        },
    },
    Spec {
        pattern: r"(?:\b00?1[ \-.])?(?:\(\d{3}\)[ \-.]?|\b\d{3}[\-.])\d{3}[\-.]\d{4}(?:\s?(?:x|ext\.?)\s?\d{1,5}\b|\b)",
        group: 0,
        shrink: false,
        trigger: Trigger::Digits,
        check: |t, s, e| {
            if dotted_neighbour(t, s, e) || (s > 0 && t[s - 1].is_ascii_alphanumeric()) {
                return None;
            }
            phone_ok(value(t, s, e), 10, 14)
        },
    },
    Spec {
        pattern: r"(?:\(0\d{1,4}\)[ \-/]?\d{2,8}(?:[ \-/]\d{2,8}){0,3}|\b0\d{1,4}(?:[ \-/]\d{2,8}){1,4}|\b0\d(?:\.\d{2}){4})\b",
        group: 0,
        shrink: false,
        trigger: Trigger::Always,
        check: |t, s, e| {
            if dotted_neighbour(t, s, e) {
                return None;
            }
            phone_ok(value(t, s, e), 9, 12)
        },
    },
    Spec {
        pattern: r"(?i)(?:phone|\btel\b|mobile|\bcell\b|\bfax\b|telefon|t(?:é|e)l(?:é|e)phone|telefono|\bcall\b|\bsms\b|whatsapp|\bdesk\b|\bdial\b)(?s:.){0,48}?(?:^|[^\w+])(\+?\(?\d(?:[ \-./()]{0,2}\d){5,14})\b",
        group: 1,
        shrink: false,
        trigger: Trigger::Keywords(&[
            "phone",
            "tel",
            "mobile",
            "cell",
            "fax",
            "telefon",
            "t\u{e9}l\u{e9}phone",
            "telefono",
            "call",
            "sms",
            "whatsapp",
            "desk",
            "dial",
        ]),
        check: |t, s, e| {
            // Labelled as a phone: national formats need no `+` and no
            // trunk `0` (`790 008 063`, `3534869076`).
            let c = value(t, s, e);
            if c[0] == b'+' {
                phone_ok(c, 8, 15)
            } else {
                phone_ok(c, 6, 12)
            }
        },
    },
    // A phone labelled after the number, as contact cards write it
    // (`9388 4482 office`, `035-5544650-Fax`).
    Spec {
        pattern: r"(?i)(?:^|[^\w+])(\+?\(?\d(?:[ \-./()]{0,2}\d){5,14})[ \-]{0,2}(?:office|fax|mobile|cell|phone|tel|home|work)\b",
        group: 1,
        shrink: false,
        trigger: Trigger::Digits,
        check: |t, s, e| phone_ok(value(t, s, e), 6, 15),
    },
    // A national number with its area code in parentheses: `(88) 279-120`.
    Spec {
        pattern: r"\(\d{2,5}\)[ \-]?\d{2,5}[\-.]\d{3,4}\b",
        group: 0,
        shrink: false,
        trigger: Trigger::Digits,
        check: |t, s, e| {
            if s > 0 && t[s - 1].is_ascii_alphanumeric() {
                return None;
            }
            phone_ok(value(t, s, e), 8, 12)
        },
    },
    Spec {
        pattern: r"\b(?:\d{1,3}\.){3}\d{1,3}\b",
        group: 0,
        shrink: false,
        trigger: Trigger::Always,
        check: |t, s, e| {
            if dotted_neighbour(t, s, e) {
                return None;
            }
            let ok = value(t, s, e).split(|&b| b == b'.').all(|o| {
                let n = o.iter().fold(0u32, |a, &b| a * 10 + u32::from(b - b'0'));
                n <= 255 && (o.len() == 1 || o[0] != b'0')
            });
            ok.then(|| Hit::new(T::Ipv4, V::Structure))?
        },
    },
    Spec {
        pattern: r"[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:(?:\.\d{1,3}){3})?",
        group: 0,
        shrink: false,
        trigger: Trigger::Always,
        check: |t, s, e| {
            let c = value(t, s, e);
            let before = s.checked_sub(1).map(|i| t[i]);
            let after = t.get(e).copied();
            let bad = |b: Option<u8>| {
                b.is_some_and(|b| b.is_ascii_alphanumeric() || b == b':' || b == b'_')
            };
            if bad(before) || bad(after) {
                return None;
            }
            let groups = c.split(|&b| b == b':').filter(|g| !g.is_empty()).count();
            if groups < 2 || (groups < 8 && !c.windows(2).any(|w| w == b"::")) {
                return None;
            }
            let s = std::str::from_utf8(c).ok()?;
            s.parse::<std::net::Ipv6Addr>()
                .ok()
                .and_then(|_| Hit::new(T::Ipv6, V::Structure))
        },
    },
    Spec {
        pattern: r"(?i)\b[0-9A-F]{2}(?:[:\-][0-9A-F]{2}){5}\b|\b[0-9A-F]{4}\.[0-9A-F]{4}\.[0-9A-F]{4}\b",
        group: 0,
        shrink: false,
        trigger: Trigger::Digits,
        check: |t, s, e| {
            let c = value(t, s, e);
            let seps: Vec<u8> = c
                .iter()
                .copied()
                .filter(|b| !b.is_ascii_hexdigit())
                .collect();
            let consistent = seps.windows(2).all(|w| w[0] == w[1]);
            let hex = v::compact(c);
            let junk = hex.iter().all(|&b| b == hex[0]);
            (consistent && !junk).then(|| Hit::new(T::MacAddress, V::Structure))?
        },
    },
    // --- keyword-anchored personal data
    Spec {
        pattern: r"(?i)(?:birth|\bdob\b|d\.o\.b|\bborn\b|geboren|geburtsdatum|naissance|\bn(?:é|e)e? le\b|nacimiento|nascita|urodzenia|f(?:o|ö)delsedatum|f(?:o|ø)dselsdato)(?s:.){0,48}?\b(\d{4}[\-/.]\d{1,2}[\-/.]\d{1,2}|\d{1,2}[\-/.]\d{1,2}[\-/.](?:\d{4}|\d{2}))\b",
        group: 1,
        shrink: false,
        trigger: Trigger::Keywords(&[
            "birth",
            "dob",
            "d.o.b",
            "born",
            "geboren",
            "geburtsdatum",
            "naissance",
            "n\u{e9} le",
            "n\u{e9}e le",
            "ne le",
            "nee le",
            "nacimiento",
            "nascita",
            "urodzenia",
            "delsedatum",
            "dselsdato",
        ]),
        check: |t, s, e| v::date(value(t, s, e)).then(|| Hit::new(T::DateOfBirth, V::Context))?,
    },
    Spec {
        pattern: r"(?i)(?:birth|\bdob\b|\bborn\b|geboren|naissance|nacimiento|nascita)(?s:.){0,48}?\b(\d{1,2}(?:st|nd|rd|th)? (?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?,? \d{4}|(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.? \d{1,2}(?:st|nd|rd|th)?,? \d{4})\b",
        group: 1,
        shrink: false,
        trigger: Trigger::Keywords(&[
            "birth",
            "dob",
            "born",
            "geboren",
            "naissance",
            "nacimiento",
            "nascita",
        ]),
        check: |_, _, _| Hit::new(T::DateOfBirth, V::Context),
    },
    Spec {
        pattern: r"(?i)(?:passport|passeport|reisepass|pasaporte|passaporto|paszport)(?s:.){0,48}?\b((?-i:[A-Z]{0,2}[0-9][A-Z0-9]{5,8}))\b",
        group: 1,
        shrink: false,
        trigger: Trigger::Always,
        check: |t, s, e| {
            let c = value(t, s, e);
            (!v::is_junk(&v::digits(c)) && c.len() >= 6)
                .then(|| Hit::new(T::Passport, V::Context))?
        },
    },
    // --- secrets with vendor prefixes
    Spec {
        pattern: r"\b(?:AKIA|ASIA|ABIA|ACCA)[A-Z2-7]{16}\b",
        group: 0,
        shrink: false,
        trigger: Trigger::Always,
        check: |t, s, e| real_key(t, s, e, 4, T::AwsAccessKeyId),
    },
    Spec {
        pattern: r#"(?i)aws[^\n]{0,20}?(?:secret|key)[^\n]{0,20}?[\s'"=:]((?-i:[A-Za-z0-9/+]{40}))(?:[^A-Za-z0-9/+=]|$)"#,
        group: 1,
        shrink: false,
        trigger: Trigger::Always,
        check: |t, s, e| {
            (v::entropy(value(t, s, e)) > 4.0).then(|| Hit::new(T::AwsSecretKey, V::Entropy))?
        },
    },
    Spec {
        pattern: r"\b(?:gh[pousr]_[A-Za-z0-9]{36}|github_pat_[A-Za-z0-9_]{82})\b",
        group: 0,
        shrink: false,
        trigger: Trigger::Always,
        check: |t, s, e| real_key(t, s, e, 4, T::GithubToken),
    },
    Spec {
        pattern: r"\bglpat-[A-Za-z0-9_\-]{20,}",
        group: 0,
        shrink: false,
        trigger: Trigger::Always,
        check: |t, s, e| real_key(t, s, e, 6, T::GitlabToken),
    },
    Spec {
        pattern: r"\bxox[abposr]-[A-Za-z0-9\-]{10,}|https://hooks\.slack\.com/services/T[A-Z0-9]+/B[A-Z0-9]+/[A-Za-z0-9]+",
        group: 0,
        shrink: false,
        trigger: Trigger::Always,
        check: |t, s, e| real_key(t, s, e, 5, T::SlackToken),
    },
    Spec {
        pattern: r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{24,}\b",
        group: 0,
        shrink: false,
        trigger: Trigger::Always,
        check: |t, s, e| real_key(t, s, e, 8, T::StripeKey),
    },
    Spec {
        pattern: r"\bsk-ant-(?:api|admin)\d{2}-[A-Za-z0-9_\-]{80,}",
        group: 0,
        shrink: false,
        trigger: Trigger::Always,
        check: |_, _, _| Hit::new(T::AnthropicKey, V::Structure),
    },
    Spec {
        pattern: r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{20,}",
        group: 0,
        shrink: false,
        trigger: Trigger::Always,
        check: |t, s, e| {
            let c = value(t, s, e);
            if c.starts_with(b"sk-ant-") {
                return None;
            }
            (v::entropy(c) > 3.5 && !v::placeholder(&c[3..]))
                .then(|| Hit::new(T::OpenaiKey, V::Structure))?
        },
    },
    Spec {
        pattern: r"\bAIza[0-9A-Za-z_\-]{35}",
        group: 0,
        shrink: false,
        trigger: Trigger::Always,
        check: |t, s, e| real_key(t, s, e, 4, T::GoogleApiKey),
    },
    Spec {
        pattern: r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----",
        group: 0,
        shrink: false,
        trigger: Trigger::Always,
        check: |_, _, _| Hit::new(T::PrivateKey, V::Structure),
    },
    Spec {
        pattern: r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}",
        group: 0,
        shrink: false,
        trigger: Trigger::Always,
        check: |_, _, _| Hit::new(T::Jwt, V::Structure),
    },
    Spec {
        pattern: r#"(?i)\b(?:password|passwd|pwd|pass|secret|api[_\-]?key|apikey|auth[_\-]?token|access[_\-]?token|token|client[_\-]?secret|private[_\-]?key)["']?\s*[:=]\s*["']?([^\s"',;&<>]{8,200})"#,
        group: 1,
        shrink: false,
        trigger: Trigger::Keywords(&["pass", "pwd", "secret", "key", "token"]),
        check: |t, s, e| {
            let c = value(t, s, e);
            let placeholder = v::placeholder(c)
                || c.iter()
                    .all(|&b| b == b'*' || b == b'x' || b == b'X' || b == b'.');
            (!placeholder && v::entropy(c) >= 3.0 && c.iter().any(u8::is_ascii_digit))
                .then(|| Hit::new(T::GenericSecret, V::Entropy))?
        },
    },
    Spec {
        pattern: r#"(?i)\b(?:postgres(?:ql)?|mysql|mariadb|mongodb(?:\+srv)?|rediss?|amqps?|mssql|sqlserver|jdbc:[a-z]+)://[^\s:@/]+:([^\s@/]+)@[^\s/?#"'<>]+(?:/[^\s?#"'<>]*)?"#,
        group: 0,
        shrink: false,
        trigger: Trigger::Always,
        check: |t, s, e| {
            let c = value(t, s, e);
            let scheme_end = c.windows(3).position(|w| w == b"://")? + 3;
            let rest = &c[scheme_end..];
            let at = rest.iter().rposition(|&b| b == b'@')?;
            let colon = rest[..at].iter().position(|&b| b == b':')?;
            let password = &rest[colon + 1..at];
            let placeholder =
                v::placeholder(password) || password.iter().all(|&b| b == b'*' || b == b'x');
            (!password.is_empty() && !placeholder)
                .then(|| Hit::new(T::DatabaseUrl, V::Structure))?
        },
    },
    // --- crypto wallets
    Spec {
        pattern: r"\b[13][1-9A-HJ-NP-Za-km-z]{25,34}\b",
        group: 0,
        shrink: false,
        trigger: Trigger::Always,
        check: |t, s, e| {
            v::btc_base58(value(t, s, e)).then(|| Hit::new(T::BitcoinAddress, V::Checksum))?
        },
    },
    Spec {
        pattern: r"(?i)\bbc1[ac-hj-np-z02-9]{11,71}\b",
        group: 0,
        shrink: false,
        trigger: Trigger::Always,
        check: |t, s, e| {
            v::btc_bech32(value(t, s, e)).then(|| Hit::new(T::BitcoinAddress, V::Checksum))?
        },
    },
    Spec {
        pattern: r"\b0x[0-9a-fA-F]{40}\b",
        group: 0,
        shrink: false,
        trigger: Trigger::Always,
        check: |t, s, e| {
            let hex = &value(t, s, e)[2..];
            let junk = hex.iter().all(|&b| b == b'0') || hex.iter().all(|&b| b == hex[0]);
            (!junk).then(|| Hit::new(T::EthereumAddress, V::Structure))?
        },
    },
];

/// A vendor key whose body (after a `prefix`-byte prefix) is not a
/// documentation placeholder or filler (`AKIA` + `XXXX…`, `…EXAMPLE`).
fn real_key(t: &[u8], s: usize, e: usize, prefix: usize, kind: FindingType) -> Option<Hit> {
    let body = &value(t, s, e)[prefix.min(e - s)..];
    (!v::placeholder(body)).then(|| Hit::new(kind, V::Structure))?
}

fn phone_ok(c: &[u8], min: usize, max: usize) -> Option<Hit> {
    let main = match c.iter().position(|&b| b == b'x' || b == b'e') {
        Some(i) => &c[..i],
        None => c,
    };
    let n = main.iter().filter(|b| b.is_ascii_digit()).count();
    let opens = main.iter().filter(|&&b| b == b'(').count();
    let closes = main.iter().filter(|&&b| b == b')').count();
    let doubled = main
        .windows(2)
        .any(|w| !w[0].is_ascii_digit() && !w[1].is_ascii_digit() && w[0] != b')' && w[1] != b'(');
    let digits = v::digits(main);
    ((min..=max).contains(&n)
        && opens == closes
        && opens <= 1
        && !doubled
        && !v::is_junk(&digits[digits.len().min(1)..]))
    .then(|| Hit::new(T::Phone, V::Structure))?
}

/// The compiled catalog.
#[derive(Debug)]
pub(crate) struct Catalog {
    /// Every pattern in one automaton: which recognizers can match at all.
    set: RegexSet,
    regexes: Vec<Regex>,
    specs: Vec<(usize, bool, Trigger, Check)>,
    /// All keywords of keyword-triggered recognizers, case-insensitive.
    keywords: AhoCorasick,
    /// For each keyword, the recognizers it triggers.
    keyword_spec: Vec<Vec<usize>>,
}

/// Bytes before and after a trigger that a match may extend over.
const DIGIT_REACH: usize = 48;
const KEYWORD_BEFORE: usize = 8;
const KEYWORD_AFTER: usize = 256;

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Adds window `a..b`, merged with the previous one when they touch, both
/// ends moved out to word boundaries so no window cuts a word.
fn add_window(windows: &mut Vec<(usize, usize)>, text: &[u8], a: usize, b: usize) {
    let floor = windows.last().map_or(0, |w| w.1);
    let mut a = a.max(floor);
    while a > floor && is_word(text[a - 1]) {
        a -= 1;
    }
    let mut b = b.min(text.len());
    while b < text.len() && is_word(text[b]) {
        b += 1;
    }
    match windows.last_mut() {
        Some(last) if a <= last.1 => last.1 = last.1.max(b),
        _ => windows.push((a, b)),
    }
}

fn digit_windows(text: &[u8]) -> Vec<(usize, usize)> {
    let mut windows = Vec::new();
    let mut i = 0;
    while let Some(off) = text[i..].iter().position(u8::is_ascii_digit) {
        let start = i + off;
        let mut end = start;
        while end < text.len() && text[end].is_ascii_digit() {
            end += 1;
        }
        add_window(
            &mut windows,
            text,
            start.saturating_sub(DIGIT_REACH),
            end + DIGIT_REACH,
        );
        i = windows.last().map_or(end, |w| w.1.max(end));
        if i >= text.len() {
            break;
        }
    }
    windows
}

fn validated(
    text: &[u8],
    start: usize,
    mut end: usize,
    shrink: bool,
    check: Check,
) -> Option<Candidate> {
    for _ in 0..8 {
        if let Some(hit) = check(text, start, end) {
            return Some(Candidate { start, end, hit });
        }
        if !shrink {
            return None;
        }
        let cut = text[start..end].iter().rposition(|&b| is_sep(b))?;
        end = start + cut;
        while end > start && is_sep(text[end - 1]) {
            end -= 1;
        }
    }
    None
}

/// Runs one recognizer over `text[a..b]` (look-around still sees the
/// bytes before `a`).
fn search(
    re: &Regex,
    text: &[u8],
    (a, b): (usize, usize),
    (group, shrink, check): (usize, bool, Check),
    out: &mut Vec<Candidate>,
) {
    let hay = &text[..b];
    let mut pos = a;
    while pos <= b {
        let m = if group == 0 {
            re.find_at(hay, pos)
        } else {
            re.captures_at(hay, pos).and_then(|c| {
                let whole = c.get(0)?;
                let value = c.get(group)?;
                // Continue after the whole match, report the value.
                pos = whole.end().max(pos + 1);
                Some(value)
            })
        };
        let Some(m) = m else { break };
        if group == 0 {
            pos = if m.end() > m.start() {
                m.end()
            } else {
                m.end() + 1
            };
        }
        if let Some(c) = validated(text, m.start(), m.end(), shrink, check) {
            out.push(c);
        }
    }
}

impl Catalog {
    /// Compiles every recognizer pattern.
    pub(crate) fn new() -> Self {
        // INVARIANT: the patterns are compile-time constants; `catalog_compiles` tests them.
        #[allow(clippy::expect_used)]
        let patterns: Vec<String> = SPECS
            .iter()
            .map(|s| format!("(?-u){}", s.pattern.replace("{sep}", SEP)))
            .collect();
        // INVARIANT: as above.
        #[allow(clippy::expect_used)]
        let set = RegexSet::new(&patterns).expect("recognizer patterns compile");
        #[allow(clippy::expect_used)]
        let regexes = patterns
            .iter()
            .map(|p| Regex::new(p).expect("recognizer pattern compiles"))
            .collect();
        let specs = SPECS
            .iter()
            .map(|s| (s.group, s.shrink, s.trigger, s.check))
            .collect();
        let mut words: Vec<&str> = Vec::new();
        let mut keyword_spec: Vec<Vec<usize>> = Vec::new();
        for (i, s) in SPECS.iter().enumerate() {
            if let Trigger::Keywords(k) = s.trigger {
                for w in k {
                    match words.iter().position(|x| x.eq_ignore_ascii_case(w)) {
                        Some(j) => keyword_spec[j].push(i),
                        None => {
                            words.push(w);
                            keyword_spec.push(vec![i]);
                        }
                    }
                }
            }
        }
        // INVARIANT: a fixed list of short literals always builds.
        #[allow(clippy::expect_used)]
        let keywords = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostFirst)
            .build(&words)
            .expect("keyword automaton builds");
        Self {
            set,
            regexes,
            specs,
            keywords,
            keyword_spec,
        }
    }

    /// Finds and validates every candidate in `text`.
    pub(crate) fn scan(&self, text: &[u8], out: &mut Vec<Candidate>) {
        // One pass of the combined automaton; clean text stops here.
        let matched = self.set.matches(text);
        if !matched.matched_any() {
            return;
        }
        let whole = (0, text.len());
        let needs_digits = matched
            .iter()
            .any(|i| matches!(self.specs[i].2, Trigger::Digits));
        let digits = if needs_digits {
            digit_windows(text)
        } else {
            Vec::new()
        };
        let mut keyword_windows: Vec<Vec<(usize, usize)>> = vec![Vec::new(); self.specs.len()];
        let needs_keywords = matched
            .iter()
            .any(|i| matches!(self.specs[i].2, Trigger::Keywords(_)));
        if needs_keywords {
            for m in self.keywords.find_iter(text) {
                for &spec in &self.keyword_spec[m.pattern().as_usize()] {
                    add_window(
                        &mut keyword_windows[spec],
                        text,
                        m.start().saturating_sub(KEYWORD_BEFORE),
                        m.end() + KEYWORD_AFTER,
                    );
                }
            }
        }
        for i in matched.iter() {
            let (group, shrink, trigger, check) = self.specs[i];
            let re = &self.regexes[i];
            let windows: &[(usize, usize)] = match trigger {
                Trigger::Always => std::slice::from_ref(&whole),
                Trigger::Digits => &digits,
                Trigger::Keywords(_) => &keyword_windows[i],
            };
            for &w in windows {
                search(re, text, w, (group, shrink, check), out);
            }
        }
        // Private key blocks extend to their END line when there is one.
        for c in out.iter_mut().filter(|c| c.hit.kind == T::PrivateKey) {
            let window = &text[c.end..text.len().min(c.end + 16 * 1024)];
            if let Some(pos) = memchr::memmem::find(window, b"-----END ") {
                let tail = &window[pos + 9..];
                if let Some(close) = memchr::memmem::find(&tail[..tail.len().min(64)], b"-----") {
                    c.end += pos + 9 + close + 5;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn catalog_compiles() {
        let c = Catalog::new();
        assert_eq!(c.regexes.len(), SPECS.len());
        assert!(!c.keyword_spec.is_empty());
    }
}
