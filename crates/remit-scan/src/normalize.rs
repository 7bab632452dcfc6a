//! Normalization: turn input bytes into what a downstream reader would see,
//! keeping a map from every normalized byte back to the original bytes.
//!
//! Steps, in one pass over the characters of a segment:
//! JSON string unescaping (for JSON strings, and `\uXXXX` in text), UTF-8
//! decoding (invalid bytes become a space, a boundary, and set a flag),
//! removal of format (`Cf`) characters and combining marks, NFKC of each
//! character, folding of homoglyphs, non-ASCII digits, dashes and spaces to
//! ASCII. Plain ASCII text without escapes takes the fast path: it is
//! scanned in place with an identity map and never copied.

use std::borrow::Cow;

use unicode_normalization::UnicodeNormalization as _;

use crate::finding::Transforms;

/// Maps byte ranges of a normalized segment back to the original input.
#[derive(Debug, Clone)]
pub(crate) enum OffsetMap {
    /// Normalized byte `i` is original byte `base + i`.
    Identity { base: usize },
    /// Normalized byte `i` came from original bytes `starts[i]..ends[i]`.
    Table { starts: Vec<u32>, ends: Vec<u32> },
}

impl OffsetMap {
    /// The original span of the normalized span `start..end` (`start < end`).
    pub(crate) fn span(&self, start: usize, end: usize) -> (usize, usize) {
        match self {
            Self::Identity { base } => (base + start, base + end),
            Self::Table { starts, ends } => {
                let last = end.saturating_sub(1).max(start);
                (starts[start] as usize, ends[last] as usize)
            }
        }
    }
}

/// A stretch of normalized text to scan, with its way back to the input.
#[derive(Debug, Clone)]
pub(crate) struct Segment<'a> {
    /// The normalized bytes (UTF-8 except where the input was not).
    pub(crate) text: Cow<'a, [u8]>,
    /// Map from normalized bytes to original bytes.
    pub(crate) map: OffsetMap,
    /// Steps that ran to produce `text` (the union over the segment).
    pub(crate) transforms: Transforms,
    /// How many decoding layers (percent, base64, hex) produced it.
    pub(crate) depth: u8,
    /// JSON path when the whole segment is one JSON value.
    pub(crate) path: Option<std::sync::Arc<str>>,
}

/// Output of normalizing one stretch of input.
#[derive(Debug)]
pub(crate) struct Normalized {
    pub(crate) text: Vec<u8>,
    pub(crate) starts: Vec<u32>,
    pub(crate) ends: Vec<u32>,
    pub(crate) transforms: Transforms,
    pub(crate) invalid_utf8: bool,
}

impl Normalized {
    fn with_capacity(n: usize) -> Self {
        Self {
            text: Vec::with_capacity(n),
            starts: Vec::with_capacity(n),
            ends: Vec::with_capacity(n),
            transforms: Transforms::empty(),
            invalid_utf8: false,
        }
    }

    fn push_char(&mut self, c: char, start: usize, end: usize) {
        let mut buf = [0u8; 4];
        for &b in c.encode_utf8(&mut buf).as_bytes() {
            self.text.push(b);
            // INVARIANT: inputs are capped well below 4 GiB by the scanner.
            self.starts.push(start as u32);
            self.ends.push(end as u32);
        }
    }

    /// Appends one source character after folding it.
    fn push_folded(&mut self, c: char, start: usize, end: usize) {
        if c.is_ascii() {
            self.push_char(c, start, end);
            return;
        }
        if is_format_char(c) || unicode_normalization::char::is_combining_mark(c) {
            self.transforms |= Transforms::FORMAT_CHARS;
            return;
        }
        if let Some(folded) = fold_confusable(c) {
            self.transforms |= Transforms::CONFUSABLES;
            self.push_char(folded, start, end);
            return;
        }
        let mut changed = false;
        for n in std::iter::once(c).nfkc() {
            if n != c {
                changed = true;
            }
            if is_format_char(n) || unicode_normalization::char::is_combining_mark(n) {
                continue;
            }
            let n = fold_confusable(n).unwrap_or(n);
            self.push_char(n, start, end);
        }
        if changed {
            self.transforms |= Transforms::NFKC;
        }
    }
}

/// Whether plain text holds an escape the normalizer decodes outside JSON
/// strings: `\uXXXX`, `\n`, `\t` or `\r`.
pub(crate) fn has_text_escape(bytes: &[u8]) -> bool {
    memchr::memchr_iter(b'\\', bytes)
        .any(|i| matches!(bytes.get(i + 1), Some(b'u' | b'n' | b't' | b'r')))
}

/// Whether a byte string needs the slow path (non-ASCII or, when
/// `escapes` is set, a backslash).
pub(crate) fn needs_normalization(bytes: &[u8], escapes: bool) -> bool {
    !bytes.is_ascii() || (escapes && memchr::memchr(b'\\', bytes).is_some())
}

/// Normalizes `src`, which starts at `base` in the original input.
///
/// With `json_string`, `src` is the inside of a JSON string literal and all
/// JSON escapes are decoded; otherwise only `\uXXXX`, `\n`, `\t` and `\r`.
pub(crate) fn normalize(src: &[u8], base: usize, json_string: bool) -> Normalized {
    let mut out = Normalized::with_capacity(src.len());
    let mut i = 0;
    while i < src.len() {
        let b = src[i];
        if b == b'\\' {
            if let Some((c, len)) = unescape(&src[i..], json_string) {
                out.transforms |= Transforms::JSON_UNESCAPE;
                out.push_folded(c, base + i, base + i + len);
                i += len;
                continue;
            }
        }
        if b.is_ascii() {
            out.push_char(b as char, base + i, base + i + 1);
            i += 1;
            continue;
        }
        let len = utf8_len(b);
        let decoded = src
            .get(i..i + len)
            .and_then(|s| std::str::from_utf8(s).ok())
            .and_then(|s| s.chars().next());
        match decoded {
            Some(c) => {
                out.push_folded(c, base + i, base + i + len);
                i += len;
            }
            None => {
                out.invalid_utf8 = true;
                out.push_char(' ', base + i, base + i + 1);
                i += 1;
            }
        }
    }
    out
}

fn utf8_len(b: u8) -> usize {
    match b {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => 1,
    }
}

fn hex4(s: &[u8]) -> Option<u32> {
    if s.len() < 4 {
        return None;
    }
    let mut v = 0u32;
    for &b in &s[..4] {
        v = v * 16 + (b as char).to_digit(16)?;
    }
    Some(v)
}

/// Decodes one escape at the start of `s`: the character and the source length.
fn unescape(s: &[u8], json_string: bool) -> Option<(char, usize)> {
    match *s.get(1)? {
        b'u' => {
            let hi = hex4(&s[2..])?;
            if (0xD800..0xDC00).contains(&hi) {
                if s.get(6) == Some(&b'\\') && s.get(7) == Some(&b'u') {
                    let lo = hex4(&s[8..])?;
                    if (0xDC00..0xE000).contains(&lo) {
                        let cp = 0x10000 + ((hi - 0xD800) << 10) + (lo - 0xDC00);
                        return char::from_u32(cp).map(|c| (c, 12));
                    }
                }
                return Some((' ', 6));
            }
            Some((char::from_u32(hi).unwrap_or(' '), 6))
        }
        // Escaped line breaks and tabs read as the whitespace they stand
        // for in text too (logs, string reprs): `\n0612…` starts a number.
        b'n' => Some(('\n', 2)),
        b't' => Some(('\t', 2)),
        b'r' => Some(('\r', 2)),
        _ if !json_string => None,
        b'b' | b'f' => Some((' ', 2)),
        c @ (b'"' | b'\\' | b'/') => Some((c as char, 2)),
        _ => None,
    }
}

/// Unicode general category `Cf` (format characters: zero-width, bidi
/// controls, soft hyphen, tags), plus invisible fillers.
pub(crate) fn is_format_char(c: char) -> bool {
    matches!(c as u32,
        0x00AD | 0x0600..=0x0605 | 0x061C | 0x06DD | 0x070F | 0x0890..=0x0891 | 0x08E2
        | 0x115F | 0x1160 | 0x180B..=0x180F | 0x200B..=0x200F | 0x202A..=0x202E
        | 0x2060..=0x2064 | 0x2066..=0x206F | 0x3164 | 0xFE00..=0xFE0F | 0xFEFF
        | 0xFFA0 | 0xFFF9..=0xFFFB | 0x110BD | 0x110CD | 0x13430..=0x1343F
        | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F
        | 0xE0100..=0xE01EF)
}

/// Zero code points of the Unicode decimal digit blocks (general category
/// `Nd`, Unicode 16) that NFKC leaves alone (Arabic-Indic, Devanagari,
/// Thai, Adlam...), sorted; each block is ten consecutive digits 0..9. The
/// other `Nd` blocks (full-width, mathematical, segmented) NFKC maps to
/// ASCII itself.
const DIGIT_ZEROS: &[u32] = &[
    0x0660, 0x06F0, 0x07C0, 0x0966, 0x09E6, 0x0A66, 0x0AE6, 0x0B66, 0x0BE6, 0x0C66, 0x0CE6, 0x0D66,
    0x0DE6, 0x0E50, 0x0ED0, 0x0F20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90,
    0x1B50, 0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0,
    0x104A0, 0x10D30, 0x10D40, 0x11066, 0x110F0, 0x11136, 0x111D0, 0x112F0, 0x11450, 0x114D0,
    0x11650, 0x116C0, 0x116D0, 0x116DA, 0x11730, 0x118E0, 0x11950, 0x11BF0, 0x11C50, 0x11D50,
    0x11DA0, 0x11F50, 0x16130, 0x16A60, 0x16AC0, 0x16B50, 0x16D70, 0x1CCF0, 0x1E140, 0x1E2F0,
    0x1E4F0, 0x1E5F1, 0x1E950,
];

/// The ASCII digit a Unicode decimal digit stands for.
fn fold_digit(cp: u32) -> Option<char> {
    let i = DIGIT_ZEROS.partition_point(|&z| z <= cp).checked_sub(1)?;
    let offset = cp - DIGIT_ZEROS[i];
    (offset < 10).then(|| char::from(b'0' + offset as u8))
}

/// Folds a homoglyph, a non-ASCII digit, a dash or a space to ASCII.
pub(crate) fn fold_confusable(c: char) -> Option<char> {
    if let Some(d) = fold_digit(c as u32) {
        return Some(d);
    }
    let folded = match c {
        // Cyrillic
        'А' => 'A',
        'В' => 'B',
        'Е' => 'E',
        'К' => 'K',
        'М' => 'M',
        'Н' => 'H',
        'О' => 'O',
        'Р' => 'P',
        'С' => 'C',
        'Т' => 'T',
        'Х' => 'X',
        'У' => 'Y',
        'І' => 'I',
        'Ј' => 'J',
        'Ѕ' => 'S',
        'Ԁ' => 'D',
        'Ԛ' => 'Q',
        'Ԝ' => 'W',
        'Ү' => 'Y',
        'а' => 'a',
        'в' => 'b',
        'е' => 'e',
        'к' => 'k',
        'м' => 'm',
        'н' => 'h',
        'о' => 'o',
        'р' => 'p',
        'с' => 'c',
        'т' => 't',
        'х' => 'x',
        'у' => 'y',
        'і' => 'i',
        'ј' => 'j',
        'ѕ' => 's',
        'ԁ' => 'd',
        'ԛ' => 'q',
        'ԝ' => 'w',
        'һ' => 'h',
        'ү' => 'y',
        'ɡ' => 'g',
        // Greek
        'Α' => 'A',
        'Β' => 'B',
        'Ε' => 'E',
        'Ζ' => 'Z',
        'Η' => 'H',
        'Ι' => 'I',
        'Κ' => 'K',
        'Μ' => 'M',
        'Ν' => 'N',
        'Ο' => 'O',
        'Ρ' => 'P',
        'Τ' => 'T',
        'Υ' => 'Y',
        'Χ' => 'X',
        'α' => 'a',
        'ο' => 'o',
        'ν' => 'v',
        'ι' => 'i',
        'κ' => 'k',
        'ρ' => 'p',
        'τ' => 't',
        'υ' => 'u',
        'χ' => 'x',
        // punctuation a reader takes for ASCII
        '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{FE58}' | '\u{FE63}' | '\u{FF0D}' => '-',
        '\u{00A0}'
        | '\u{1680}'
        | '\u{2000}'..='\u{200A}'
        | '\u{2028}'
        | '\u{2029}'
        | '\u{202F}'
        | '\u{205F}'
        | '\u{3000}' => ' ',
        '\u{2024}' | '\u{FF0E}' | '\u{3002}' => '.',
        '\u{FF20}' | '\u{FE6B}' => '@',
        _ => return None,
    };
    Some(folded)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(s: &str) -> (String, Normalized) {
        let n = normalize(s.as_bytes(), 0, false);
        (String::from_utf8(n.text.clone()).unwrap(), n)
    }

    #[test]
    fn zero_width_and_bidi_characters_are_removed() {
        let (text, n) = norm("4\u{200B}1\u{200D}1\u{FEFF}1\u{202E}");
        assert_eq!(text, "4111");
        assert!(n.transforms.contains(Transforms::FORMAT_CHARS));
    }

    #[test]
    fn full_width_digits_and_at_sign_fold_to_ascii() {
        let (text, n) = norm("４１１１ ａｌｉｃｅ＠ｅｘａｍｐｌｅ．ｃｏｍ");
        assert_eq!(text, "4111 alice@example.com");
        assert!(n.transforms.contains(Transforms::NFKC));
    }

    #[test]
    fn cyrillic_homoglyphs_and_arabic_digits_fold() {
        let (text, n) = norm("раураl ٤١١١");
        assert_eq!(text, "paypal 4111");
        assert!(n.transforms.contains(Transforms::CONFUSABLES));
    }

    #[test]
    fn unicode_escapes_decode_with_spans_over_the_escape() {
        let src = r"\u0034\u0031x";
        let n = normalize(src.as_bytes(), 10, false);
        assert_eq!(n.text, b"41x");
        assert_eq!((n.starts[0], n.ends[0]), (10, 16));
        assert_eq!((n.starts[2], n.ends[2]), (22, 23));
    }

    #[test]
    fn json_escapes_and_surrogate_pairs_decode() {
        let n = normalize(br#"a\"b\n\ud83d\ude00"#, 0, true);
        assert_eq!(String::from_utf8(n.text).unwrap(), "a\"b\n\u{1F600}");
    }

    #[test]
    fn every_unicode_decimal_digit_folds_to_its_ascii_value() {
        // Every Nd block: the ones in the table and the ones NFKC maps.
        let nfkc_mapped = [0xFF10, 0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC, 0x1D7F6, 0x1FBF0];
        for &zero in DIGIT_ZEROS.iter().chain(&nfkc_mapped) {
            for d in 0..10u32 {
                let c = char::from_u32(zero + d).unwrap();
                let (text, _) = norm(&format!("{c}"));
                assert_eq!(text, d.to_string(), "U+{:04X}", zero + d);
            }
        }
        // Not a digit: the code point after a block and a letter.
        assert_eq!(fold_digit(0x066A), None);
        assert_eq!(fold_digit(u32::from('a')), None);
    }

    #[test]
    fn escaped_line_breaks_in_text_read_as_whitespace() {
        let (text, _) = norm(r"Phone:\n040 758\t8388");
        assert_eq!(text, "Phone:\n040 758\t8388");
    }

    #[test]
    fn invalid_utf8_becomes_a_boundary_and_is_flagged() {
        let n = normalize(b"ab\xFFcd", 0, false);
        assert_eq!(n.text, b"ab cd");
        assert!(n.invalid_utf8);
    }

    #[test]
    fn offset_map_spans_cover_the_original_characters() {
        let src = "x\u{FF14}\u{FF11}y";
        let n = normalize(src.as_bytes(), 0, false);
        let map = OffsetMap::Table {
            starts: n.starts,
            ends: n.ends,
        };
        assert_eq!(map.span(1, 3), (1, 7));
        assert_eq!(&src[1..7], "\u{FF14}\u{FF11}");
    }
}
