//! The canonical form of a path and of a URI: the one thing every constraint
//! and resource comparison over paths or URIs compares.
//!
//! A gateway sees a string; the server behind it resolves it. If the two
//! read the string differently (`/files/../hr` is "under `/files/`" to a
//! text comparison and `/hr` to a filesystem), a grant is a suggestion. So a
//! value is first brought to its canonical form, and a value that does not
//! canonicalize *cleanly* is **refused**, never guessed at.
//!
//! # What a value is
//!
//! - a **URI** if it starts with a scheme, `[a-zA-Z][a-zA-Z0-9+.-]*:`;
//! - else a **path** if it contains `/`;
//! - else **text** (a plain id such as `fs.read` or `report-7`), one segment.
//!
//! # Refused, whatever the kind
//!
//! - NUL and every other control character;
//! - a backslash, and any character whose NFKC form holds `/` or `\`
//!   (fullwidth solidus `／`, fraction slash… would become separators in a
//!   server that normalizes);
//! - a `..` segment, and any segment that is only dots once percent-decoded
//!   and NFKC-normalized (`．．`, `‥`, `...`), cut at a `;` (`..;`) or with
//!   trailing spaces dropped (`.. `); a text value of `.` alone;
//! - a well-formed percent escape of `/`, `\`, `.`, a control character, or
//!   of `%` followed by two hex digits (double encoding), in paths too: Remit
//!   cannot know whether the server behind decodes them;
//! - in a URI, a `%` not followed by two hex digits;
//! - values longer than [`MAX_VALUE_LEN`] bytes.
//!
//! # Normalized (clean redundancies)
//!
//! - repeated separators and `.` segments are dropped, and a trailing
//!   separator (not the root's);
//! - in a URI: the scheme and the host are lowercased, an empty path after
//!   an authority becomes `/`, escapes of unreserved characters are decoded
//!   and the others' hex digits uppercased. Query and fragment are kept as
//!   they are (control characters are still refused).
//!
//! A path prefix admits only at a segment boundary ([`Canonical::starts_under`]).

use unicode_normalization::UnicodeNormalization as _;

/// Longest value canonicalized, in bytes (a path is at most 4096 on Linux).
pub const MAX_VALUE_LEN: usize = 8192;

/// What a value is, which decides how it is canonicalized and compared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// A plain id: one segment, compared as text.
    Text,
    /// A path: contains `/`.
    Path,
    /// A URI: starts with a scheme.
    Uri,
}

/// Why a value does not canonicalize cleanly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CanonError {
    /// Longer than [`MAX_VALUE_LEN`].
    #[error("is longer than {MAX_VALUE_LEN} bytes")]
    TooLong,
    /// Holds a control character (NUL included).
    #[error("holds the control character U+{0:04X}")]
    ControlCharacter(u32),
    /// Holds a backslash.
    #[error("holds a backslash, which some servers read as a separator")]
    Backslash,
    /// Holds a character whose NFKC form holds `/` or `\`.
    #[error("holds {0:?}, which Unicode normalization (NFKC) turns into a separator")]
    LookAlikeSeparator(char),
    /// Has a `..` segment.
    #[error("has a `..` segment (path traversal)")]
    DotDot,
    /// Has a segment that reads as dots once decoded and normalized.
    #[error("has the segment {0:?}, which reads as dots once percent-decoded and NFKC-normalized")]
    DotLike(String),
    /// Percent-encodes a byte Remit refuses to see encoded.
    #[error("percent-encodes {0:?}, which is refused (encoded separator, dot, control or double encoding)")]
    EncodedForbidden(String),
    /// A URI `%` not followed by two hex digits.
    #[error("has a `%` that is not followed by two hex digits")]
    BadPercent,
    /// A relative path that names nothing (`./`).
    #[error("names nothing once `.` segments are dropped")]
    Empty,
    /// A relative path whose first segment would read as a URI scheme once
    /// a leading `.` is dropped (`./a:b`).
    #[error("is a relative path that would read as a URI once `./` is dropped")]
    SchemeLike,
}

/// A value in canonical form, with its kind.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Canonical {
    kind: Kind,
    text: String,
}

impl Canonical {
    /// The kind of value.
    pub fn kind(&self) -> Kind {
        self.kind
    }

    /// The canonical text.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `self` lies under `prefix`: for a text prefix, a plain text
    /// prefix; for a path or URI prefix, equal to it or continuing it at a
    /// segment boundary (`/data/reports` does not admit
    /// `/data/reports-secret`).
    pub fn starts_under(&self, prefix: &Canonical) -> bool {
        prefix.bounds(&self.text, true)
    }

    /// Whether every canonical value starting with `literal` (and, when
    /// `whole`, also `literal` itself) lies under `self` taken as a prefix.
    pub fn bounds(&self, literal: &str, whole: bool) -> bool {
        let Some(rest) = literal.strip_prefix(self.text.as_str()) else {
            return false;
        };
        match self.kind {
            Kind::Text => true,
            _ if self.text.ends_with('/') => true,
            _ if rest.is_empty() => whole,
            kind => rest.starts_with(|c| is_boundary(kind, c)),
        }
    }
}

/// Whether `c` starts a new segment right after a prefix of `kind`.
fn is_boundary(kind: Kind, c: char) -> bool {
    match kind {
        Kind::Text => true,
        Kind::Path => c == '/',
        Kind::Uri => matches!(c, '/' | '?' | '#'),
    }
}

/// The kind `value` would be canonicalized as.
pub fn kind_of(value: &str) -> Kind {
    if scheme_len(value).is_some() {
        Kind::Uri
    } else if value.contains('/') {
        Kind::Path
    } else {
        Kind::Text
    }
}

/// Brings `value` to its canonical form, or says why it has none.
pub fn canonicalize(value: &str) -> Result<Canonical, CanonError> {
    if value.len() > MAX_VALUE_LEN {
        return Err(CanonError::TooLong);
    }
    check_chars(value)?;
    let kind = kind_of(value);
    let text = match kind {
        Kind::Text => match segment(value, false)? {
            Some(s) => s,
            None if value.is_empty() => String::new(),
            None => return Err(CanonError::DotLike(value.to_owned())),
        },
        Kind::Path => {
            let text = path(value, false)?;
            if scheme_len(&text).is_some() {
                return Err(CanonError::SchemeLike);
            }
            text
        }
        Kind::Uri => uri(value)?,
    };
    Ok(Canonical { kind, text })
}

/// Refuses control characters, backslashes and separator look-alikes.
fn check_chars(value: &str) -> Result<(), CanonError> {
    for c in value.chars() {
        if c.is_control() {
            return Err(CanonError::ControlCharacter(c as u32));
        }
        if c == '\\' {
            return Err(CanonError::Backslash);
        }
        if !c.is_ascii() && std::iter::once(c).nfkc().any(|n| n == '/' || n == '\\') {
            return Err(CanonError::LookAlikeSeparator(c));
        }
    }
    Ok(())
}

/// The length of the scheme (without the `:`), if `value` starts with one.
fn scheme_len(value: &str) -> Option<usize> {
    let colon = value.find(':')?;
    let scheme = &value[..colon];
    let mut chars = scheme.chars();
    let first = chars.next()?;
    let ok = first.is_ascii_alphabetic()
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '.' | '-'));
    ok.then_some(colon)
}

/// A path's canonical text; `uri` selects URI escape normalization.
fn path(value: &str, uri: bool) -> Result<String, CanonError> {
    let absolute = value.starts_with('/');
    let mut out = String::with_capacity(value.len());
    for raw in value.split('/').filter(|s| !s.is_empty()) {
        if let Some(seg) = segment(raw, uri)? {
            if absolute || !out.is_empty() {
                out.push('/');
            }
            out.push_str(&seg);
        }
    }
    if out.is_empty() {
        if absolute {
            out.push('/');
        } else if !uri {
            return Err(CanonError::Empty);
        }
    }
    Ok(out)
}

/// A URI's canonical text.
fn uri(value: &str) -> Result<String, CanonError> {
    let colon = scheme_len(value).unwrap_or(0);
    let mut out = value[..colon].to_ascii_lowercase();
    out.push(':');
    let mut rest = &value[colon + 1..];
    let has_authority = rest.starts_with("//");
    if has_authority {
        let after = &rest[2..];
        let end = after.find(['/', '?', '#']).unwrap_or(after.len());
        let authority = &after[..end];
        if authority.contains('%') {
            return Err(CanonError::EncodedForbidden(authority.to_owned()));
        }
        // `file://../etc` is a relative path to a server that strips the
        // scheme: an authority whose host reads as dots is traversal too.
        let host = authority.rsplit('@').next().unwrap_or(authority);
        let host = host.split(':').next().unwrap_or(host);
        if reads_as_dots(host) {
            return Err(CanonError::DotLike(authority.to_owned()));
        }
        out.push_str("//");
        match authority.rfind('@') {
            Some(at) => {
                out.push_str(&authority[..=at]);
                out.push_str(&authority[at + 1..].to_ascii_lowercase());
            }
            None => out.push_str(&authority.to_ascii_lowercase()),
        }
        rest = &after[end..];
    }
    let end = rest.find(['?', '#']).unwrap_or(rest.len());
    let (path_part, tail) = rest.split_at(end);
    let canonical_path = path(path_part, true)?;
    if has_authority && canonical_path.is_empty() {
        out.push('/');
    } else {
        out.push_str(&canonical_path);
    }
    // The query and fragment are compared as text, but a server may read a
    // query value as a path (`?file=../x`): a segment of dots there is
    // refused too, escaped or not.
    let unescaped = tail.replace("%2e", ".").replace("%2E", ".");
    if unescaped
        .split(['/', '?', '&', '=', '#', ';'])
        .any(|segment| segment.len() > 1 && reads_as_dots(segment))
    {
        return Err(CanonError::DotDot);
    }
    out.push_str(tail);
    Ok(out)
}

/// One segment's canonical text: `None` for a `.` to drop. `uri` decodes
/// escapes of unreserved characters and refuses malformed escapes.
fn segment(raw: &str, uri: bool) -> Result<Option<String>, CanonError> {
    if raw == "." {
        return Ok(None);
    }
    if raw == ".." {
        return Err(CanonError::DotDot);
    }
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut decoded: Vec<u8> = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < bytes.len() {
        let escape = (bytes[i] == b'%')
            .then(|| hex_byte(bytes.get(i + 1..i + 3)))
            .flatten();
        match escape {
            Some(b) => {
                let double = b == b'%' && hex_byte(bytes.get(i + 3..i + 5)).is_some();
                if matches!(b, b'/' | b'\\' | b'.') || b.is_ascii_control() || double {
                    return Err(CanonError::EncodedForbidden(raw[i..i + 3].to_owned()));
                }
                decoded.push(b);
                if !uri {
                    out.push_str(&raw[i..i + 3]);
                } else if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'~') {
                    out.push(char::from(b));
                } else {
                    out.push('%');
                    out.push_str(&format!("{b:02X}"));
                }
                i += 3;
            }
            None if bytes[i] == b'%' && uri => return Err(CanonError::BadPercent),
            None => {
                let c = raw[i..].chars().next().unwrap_or('\u{FFFD}');
                out.push(c);
                let mut buf = [0u8; 4];
                decoded.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                i += c.len_utf8();
            }
        }
    }
    let decoded = String::from_utf8_lossy(&decoded);
    if decoded.len() != raw.len() || !decoded.is_ascii() {
        check_chars(&decoded)?;
    }
    if reads_as_dots(&decoded) {
        return Err(CanonError::DotLike(raw.to_owned()));
    }
    Ok(Some(out))
}

/// Whether a segment that is not a plain `.` reads as dots in some server:
/// once NFKC-normalized, cut at a `;` (path parameters: Java servers read
/// `..;` as `..`) and stripped of trailing spaces (Windows drops them).
fn reads_as_dots(decoded: &str) -> bool {
    let dots = |text: &str| {
        let text = text.split(';').next().unwrap_or("").trim_end_matches(' ');
        !text.is_empty() && text.bytes().all(|b| b == b'.')
    };
    if decoded.is_ascii() {
        return dots(decoded);
    }
    dots(&decoded.nfkc().collect::<String>())
}

/// Two hex digits to a byte.
fn hex_byte(pair: Option<&[u8]>) -> Option<u8> {
    let pair = pair?;
    let text = std::str::from_utf8(pair).ok()?;
    if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u8::from_str_radix(text, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(value: &str) -> String {
        canonicalize(value).unwrap().text
    }

    #[test]
    fn normalizes_clean_redundancies() {
        assert_eq!(ok("/data//reports/./x/"), "/data/reports/x");
        assert_eq!(ok("/"), "/");
        assert_eq!(ok("//"), "/");
        assert_eq!(ok("reports/"), "reports");
        assert_eq!(ok("./a"), "a");
        assert_eq!(ok("FILE:///Data//x/"), "file:///Data/x");
        assert_eq!(ok("HTTPS://User@Example.COM"), "https://User@example.com/");
        assert_eq!(ok("https://x/%7euser/%c3%a9"), "https://x/~user/%C3%A9");
        // The query and fragment are kept as text; only segments of dots
        // in them are refused (see refuses_traversal_spellings).
        assert_eq!(ok("https://x/a?b=1.0&c=x#/./"), "https://x/a?b=1.0&c=x#/./");
        assert_eq!(ok("fs.read"), "fs.read");
        assert_eq!(ok(""), "");
        assert_eq!(ok("/data/100%"), "/data/100%");
        assert_eq!(ok(&format!("/{}", "a".repeat(1000))).len(), 1001);
    }

    #[test]
    fn classifies_values() {
        assert_eq!(kind_of("file:///x"), Kind::Uri);
        assert_eq!(kind_of("repo:acme/x"), Kind::Uri);
        assert_eq!(kind_of("/x"), Kind::Path);
        assert_eq!(kind_of("a/b"), Kind::Path);
        assert_eq!(kind_of("1:x"), Kind::Text);
        assert_eq!(kind_of("fs.read"), Kind::Text);
    }

    #[test]
    fn refuses_traversal_spellings() {
        let refused = [
            // Found by the `canonical` fuzz target: a host of dots is a
            // relative path to a server that strips the scheme.
            "x://../",
            "x:.x#/..",
            "https://files.example/read?path=../etc/passwd",
            "https://files.example/read?path=%2e%2e/etc",
            "file://../etc/passwd",
            "file://user@..:80/etc",
            "/data/../hr",
            "/data/./../hr",
            "/data//../hr",
            "/data/..",
            "..",
            "../x",
            "/data/%2e%2e/hr",
            "/data/%2E%2e/hr",
            "/data/.%2e/hr",
            "/data/%2f/hr",
            "/data/..%2fhr",
            "/data/..\\hr",
            "\\..\\hr",
            "/data/x\0",
            "/data/\u{ff0e}\u{ff0e}/hr",
            "/data\u{ff0f}..\u{ff0f}hr",
            "/data/\u{2025}/hr",
            "/data/.../hr",
            "/data/%252e%252e/hr",
            "file:///data/%2e%2e/hr",
            "file:///data/%zz/hr",
            "file:///data/../hr",
            "file:///data/%EF%BC%8E%EF%BC%8E/hr",
            "https://x%2f/a",
            ".",
            "./",
            "\u{ff0e}",
            "./a:b",
            "/data/..;/hr",
            "/data/.. /hr",
        ];
        for value in refused {
            assert!(canonicalize(value).is_err(), "{value:?} was admitted");
        }
        assert_eq!(canonicalize("/a/../b"), Err(CanonError::DotDot));
        assert_eq!(canonicalize("/a\0"), Err(CanonError::ControlCharacter(0)));
        assert_eq!(
            canonicalize(&"a".repeat(MAX_VALUE_LEN + 1)),
            Err(CanonError::TooLong)
        );
    }

    #[test]
    fn prefixes_bound_at_segment_boundaries() {
        let c = |v: &str| canonicalize(v).unwrap();
        assert!(c("/data/reports/x").starts_under(&c("/data/reports")));
        assert!(c("/data/reports/x").starts_under(&c("/data/reports/")));
        assert!(c("/data/reports").starts_under(&c("/data/reports/")));
        assert!(!c("/data/reports-secret").starts_under(&c("/data/reports")));
        assert!(c("/x").starts_under(&c("/")));
        assert!(c("reports-7").starts_under(&c("reports")));
        assert!(c("https://x/a?q").starts_under(&c("https://x/a")));
        assert!(!c("https://x/ab").starts_under(&c("https://x/a")));
        assert!(c("https://x/ab").starts_under(&c("https://X")));
    }
}
