//! Name and resource patterns: literal text where `*` matches any run of
//! characters except `/` (including none) and `**` any run at all. There is
//! no escape and no other wildcard.
//!
//! One [`Pattern`] type serves tool names (`server/tool`), resources and
//! glob constraints. Both the pattern and every value matched against it are
//! brought to their [canonical](crate::canonical) form first; a value with
//! none (`/files/../hr`) matches nothing, and [`Pattern::admits`] says why.
//! So `evil/*` matches `evil/x` but not `evil/admin/x`, and `*` alone does
//! not match `server/tool`: grant `*/*` or `**` for every tool.

use serde::{Deserialize, Serialize};

use crate::canonical::{canonicalize, CanonError, Canonical};

/// Longest pattern accepted, in bytes.
pub const MAX_PATTERN_LEN: usize = 256;

/// Why a pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PatternError {
    /// The pattern is empty.
    #[error("a pattern must not be empty")]
    Empty,
    /// The pattern is longer than [`MAX_PATTERN_LEN`] bytes.
    #[error("a pattern must be at most {MAX_PATTERN_LEN} bytes")]
    TooLong,
    /// The pattern holds a control character.
    #[error("a pattern must not contain control characters")]
    ControlCharacter,
    /// Three or more `*` in a row: neither `*` nor `**`.
    #[error("a pattern may use `*` or `**`, not three or more `*` in a row")]
    TripleStar,
    /// The pattern's text has no canonical form.
    #[error("a pattern must be in canonical form: it {0}")]
    NotCanonical(CanonError),
}

/// A glob over names: `fs.read`, `github/*`, `file:///data/**`, `*/*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Pattern {
    /// As written (what is signed and shown).
    text: String,
    /// Canonical, with `*` read as an ordinary character.
    canon: Canonical,
}

impl TryFrom<String> for Pattern {
    type Error = PatternError;

    fn try_from(text: String) -> Result<Self, PatternError> {
        if text.is_empty() {
            return Err(PatternError::Empty);
        }
        if text.len() > MAX_PATTERN_LEN {
            return Err(PatternError::TooLong);
        }
        if text.chars().any(char::is_control) {
            return Err(PatternError::ControlCharacter);
        }
        if text.contains("***") {
            return Err(PatternError::TripleStar);
        }
        let canon = canonicalize(&text).map_err(PatternError::NotCanonical)?;
        Ok(Pattern { text, canon })
    }
}

impl TryFrom<&str> for Pattern {
    type Error = PatternError;

    fn try_from(text: &str) -> Result<Self, PatternError> {
        Pattern::try_from(text.to_owned())
    }
}

impl From<Pattern> for String {
    fn from(pattern: Pattern) -> String {
        pattern.text
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

impl Pattern {
    /// The pattern text as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The pattern's canonical form (its wildcards read as characters).
    pub fn canonical(&self) -> &Canonical {
        &self.canon
    }

    /// Whether `name` is one of the names this pattern matches; a name with
    /// no canonical form matches nothing.
    pub fn matches(&self, name: &str) -> bool {
        self.admits(name).unwrap_or(false)
    }

    /// Whether `value` matches, or why it cannot be compared at all.
    pub fn admits(&self, value: &str) -> Result<bool, CanonError> {
        Ok(self.matches_canonical(&canonicalize(value)?))
    }

    /// Whether an already canonical value matches.
    pub fn matches_canonical(&self, value: &Canonical) -> bool {
        let text: Vec<Token> = value.as_str().bytes().map(Token::Lit).collect();
        glob_match(&tokens(self.canon.as_str()), &text)
    }

    /// Whether every name `other` matches is also matched by `self`.
    ///
    /// Sound, and exact in the common cases: a `*` of `other` may only be
    /// absorbed by a `*` or `**` of `self`, a `**` of `other` only by a
    /// `**`, and a `*` of `self` never absorbs a `/`. When that symbolic
    /// match fails the answer is "does not cover", even in the rare case
    /// where every expansion would in fact match (fail closed).
    pub fn covers(&self, other: &Pattern) -> bool {
        glob_match(&tokens(self.canon.as_str()), &tokens(other.canon.as_str()))
    }

    /// The canonical literal text before the first `*` (every canonical
    /// match starts with it), and whether that is the whole pattern.
    pub fn literal_prefix(&self) -> (&str, bool) {
        let text = self.canon.as_str();
        match text.find('*') {
            Some(at) => (&text[..at], false),
            None => (text, true),
        }
    }
}

/// One symbol of a pattern or of a text being matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Token {
    /// A literal byte.
    Lit(u8),
    /// `*`: any run without `/`.
    Star,
    /// `**`: any run.
    DoubleStar,
}

/// A pattern's text as symbols (`*` and `**` are wildcards).
fn tokens(text: &str) -> Vec<Token> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'*' {
            if bytes.get(i + 1) == Some(&b'*') {
                out.push(Token::DoubleStar);
                i += 2;
            } else {
                out.push(Token::Star);
                i += 1;
            }
        } else {
            out.push(Token::Lit(bytes[i]));
            i += 1;
        }
    }
    out
}

/// Whether `pattern` absorbs the one symbol `t` of the text while staying
/// put (a wildcard consuming it).
fn absorbs(wildcard: Token, t: Token) -> bool {
    match (wildcard, t) {
        (Token::DoubleStar, _) => true,
        (Token::Star, Token::Lit(b)) => b != b'/',
        (Token::Star, Token::Star) => true,
        _ => false,
    }
}

/// Matches the symbols of `text` against `pattern` by simulating the
/// pattern as an automaton (one set of positions per text symbol, so the
/// time is bounded by their product, with no backtracking blow-up). A text
/// of literals is a plain match; a text with wildcards asks whether the
/// pattern covers every expansion of it, symbolically. Byte-level matching
/// is sound for UTF-8 because a literal match starts on a character
/// boundary, and `/` is never part of a multi-byte character.
fn glob_match(pattern: &[Token], text: &[Token]) -> bool {
    let n = pattern.len();
    let mut now = vec![false; n + 1];
    let mut next = vec![false; n + 1];
    now[0] = true;
    close(pattern, &mut now);
    for &t in text {
        next.iter_mut().for_each(|x| *x = false);
        for p in 0..n {
            if !now[p] {
                continue;
            }
            match pattern[p] {
                Token::Lit(b) => {
                    if t == Token::Lit(b) {
                        next[p + 1] = true;
                    }
                }
                wildcard => {
                    if absorbs(wildcard, t) {
                        next[p] = true;
                    }
                }
            }
        }
        close(pattern, &mut next);
        if !next.iter().any(|&x| x) {
            return false;
        }
        std::mem::swap(&mut now, &mut next);
    }
    now[n]
}

/// Adds the positions reachable by letting wildcards match nothing.
fn close(pattern: &[Token], set: &mut [bool]) {
    for p in 0..pattern.len() {
        if set[p] && !matches!(pattern[p], Token::Lit(_)) {
            set[p + 1] = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(text: &str) -> Pattern {
        Pattern::try_from(text).unwrap()
    }

    #[test]
    fn refuses_empty_long_and_control_patterns() {
        assert_eq!(Pattern::try_from(""), Err(PatternError::Empty));
        assert_eq!(
            Pattern::try_from("a".repeat(MAX_PATTERN_LEN + 1)),
            Err(PatternError::TooLong)
        );
        assert_eq!(
            Pattern::try_from("fs.read\n"),
            Err(PatternError::ControlCharacter)
        );
    }

    #[test]
    fn literal_star_in_name_is_not_a_wildcard_escape() {
        // A name containing '*' is only matched by a wildcard, never by text.
        assert!(!p("a").matches("*"));
        assert!(p("*").matches("*"));
        assert!(!p("fs.read").covers(&p("fs.*")));
    }

    #[test]
    fn matches_names() {
        assert!(p("fs.read").matches("fs.read"));
        assert!(!p("fs.read").matches("fs.readx"));
        assert!(!p("fs.read").matches("fs.rea"));
        assert!(p("fs.*").matches("fs.write"));
        assert!(!p("fs.*").matches("fsx"));
        assert!(p("*.read").matches("a.b.read"));
        assert!(p("a*b*c").matches("aXbYbZc"));
        assert!(!p("a*b*c").matches("aXbYbZ"));
        assert!(p("*").matches(""));
        assert!(p("é*").matches("éa"));
        assert!(p("/data/reports/").matches("/data/reports"));
        assert!(p("/data//reports/*").matches("/data/reports/./x/"));
    }

    #[test]
    fn star_does_not_cross_a_slash_and_double_star_does() {
        assert!(p("files/*").matches("files/read"));
        assert!(!p("evil/*").matches("evil/admin/x"));
        assert!(!p("*").matches("server/tool"));
        assert!(p("*/*").matches("server/tool"));
        assert!(p("**").matches("server/tool"));
        assert!(!p("/data/reports/*").matches("/data/reports/2026/x"));
        assert!(p("/data/reports/**").matches("/data/reports/2026/x"));
        assert!(p("file:///data/**").matches("FILE:///data/a/b"));
    }

    #[test]
    fn traversal_values_match_nothing_and_say_why() {
        let wide = p("/files/**");
        for value in [
            "/files/../hr/x",
            "/files/./../hr/x",
            "/files//../hr/x",
            "/files/x/..",
            "/files/%2e%2e/hr/x",
            "/files/%2E%2e/hr/x",
            "/files/.%2e/hr/x",
            "/files/a%2fb",
            "/files/..\\hr",
            "/files/\\..\\hr",
            "/files/x\0",
            "/files/\u{ff0e}\u{ff0e}/hr",
            "/files\u{ff0f}x",
        ] {
            assert!(!wide.matches(value), "{value:?}");
            assert!(wide.admits(value).is_err(), "{value:?}");
        }
        let uri = p("file:///files/**");
        assert!(uri.admits("file:///files/%2e%2e/hr/x").is_err());
        assert!(uri.matches("file:///files/%61"));
    }

    #[test]
    fn refuses_non_canonical_and_triple_star_patterns() {
        assert!(matches!(
            Pattern::try_from("/data/../hr/*"),
            Err(PatternError::NotCanonical(_))
        ));
        assert!(matches!(
            Pattern::try_from("file:///d/%2e%2e/*"),
            Err(PatternError::NotCanonical(_))
        ));
        assert_eq!(Pattern::try_from("a/***"), Err(PatternError::TripleStar));
    }

    #[test]
    fn refuses_widening_coverage() {
        assert!(!p("fs.read").covers(&p("fs.*")));
        assert!(!p("fs.*").covers(&p("*")));
        assert!(!p("a*c").covers(&p("a*")));
        assert!(!p("*.read").covers(&p("*")));
        assert!(!p("a*b").covers(&p("a*b*")));
        assert!(!p("*").covers(&p("**")));
        assert!(!p("a/*").covers(&p("a/**")));
        assert!(!p("a/*").covers(&p("a/*/*")));
        assert!(!p("a*").covers(&p("a/b")));
        assert!(!p("/data/reports/*").covers(&p("/data/reports/2026/*")));
    }

    #[test]
    fn decides_narrowing_coverage() {
        assert!(p("*").covers(&p("anything*")));
        assert!(p("fs.*").covers(&p("fs.read")));
        assert!(p("fs.*").covers(&p("fs.r*")));
        assert!(p("a*c").covers(&p("ab*bc")));
        assert!(p("a*b*").covers(&p("a*b")));
        assert!(p("**").covers(&p("*/*")));
        assert!(p("a/**").covers(&p("a/*/b/**")));
        assert!(p("*/*").covers(&p("files/*")));
        assert!(p("/data/reports/**").covers(&p("/data/reports/2026/*")));
    }
}
