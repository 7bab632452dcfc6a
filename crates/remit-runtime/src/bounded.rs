//! Caller text, bounded: the one way a string that came from a request
//! (a path, a tool or server name, a URL, a header) is put into a receipt,
//! a log line, a response body or a header.
//!
//! A caller controls these bytes, so quoting them verbatim lets one
//! request write megabytes into the durable log or into a header, and
//! lets control characters rewrite what an operator's terminal shows.
//! [`caller_text`] keeps short, printable text as it is; it escapes
//! control characters (`\u{..}`), and past [`MAX_CALLER_TEXT`] bytes keeps
//! a prefix and the SHA-256 of the whole, so two long values can still be
//! told apart and matched against what the caller sent.

use std::borrow::Cow;
use std::fmt::Write as _;

/// Longest caller text kept as it is, in bytes.
pub const MAX_CALLER_TEXT: usize = 128;

/// Longest message kept as it is when it is Remit's own text that may
/// quote caller text (a refusal's reason), in bytes.
pub const MAX_MESSAGE_TEXT: usize = 512;

/// How much of a long text is kept before its hash, in bytes (at most).
const PREFIX: usize = 48;

/// `text` bounded as the module doc says: at most about
/// [`MAX_CALLER_TEXT`] + 100 bytes, whatever `text` is.
pub fn caller_text(text: &str) -> Cow<'_, str> {
    bounded(text, MAX_CALLER_TEXT)
}

/// `text` bounded at `max` bytes (plus a prefix and hash of about 150):
/// [`caller_text`] with another limit, for messages such as a refusal's
/// reason ([`MAX_MESSAGE_TEXT`]).
pub fn bounded(text: &str, max: usize) -> Cow<'_, str> {
    let printable = !text.chars().any(needs_escape);
    if printable && text.len() <= max {
        return Cow::Borrowed(text);
    }
    let escaped = escape(text, max);
    if escaped.len() <= max {
        return Cow::Owned(escaped);
    }
    let mut cut = PREFIX.min(escaped.len());
    while !escaped.is_char_boundary(cut) {
        cut -= 1;
    }
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, text.as_bytes());
    Cow::Owned(format!(
        "{}…[{} bytes, sha256:{}]",
        &escaped[..cut],
        text.len(),
        hex::encode(digest.as_ref())
    ))
}

fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn escape(text: &str, max: usize) -> String {
    let mut out = String::with_capacity(text.len().min(max + 16));
    for c in text.chars() {
        if out.len() > max {
            break;
        }
        if needs_escape(c) {
            let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_printable_text_is_kept_as_it_is() {
        assert!(matches!(
            caller_text("files/read_text_file"),
            Cow::Borrowed(_)
        ));
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(caller_text("a\u{1b}[2Jb\n"), "a\\u{1b}[2Jb\\u{a}");
        assert_eq!(caller_text("x\u{202e}y"), "x\\u{202e}y");
    }

    #[test]
    fn a_long_text_is_a_prefix_and_a_hash_of_bounded_size() {
        let long = "A".repeat(900 * 1024);
        let bounded = caller_text(&long);
        assert!(bounded.len() < MAX_CALLER_TEXT + 100, "{}", bounded.len());
        assert!(bounded.starts_with("AAAA"));
        assert!(bounded.contains("921600 bytes, sha256:"));
        assert_ne!(caller_text(&format!("{long}B")), bounded);
        // Multi-byte characters are never cut in half.
        let wide = "é".repeat(200);
        assert!(caller_text(&wide).len() < MAX_CALLER_TEXT + 100);
        let controls = "\u{7}".repeat(10_000);
        assert!(caller_text(&controls).len() < MAX_CALLER_TEXT + 100);
    }
}
