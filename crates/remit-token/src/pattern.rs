//! Name and resource patterns: literal text where `*` matches any run of
//! characters (including none). There is no escape and no other wildcard, so
//! whether one pattern covers another is decidable exactly.

use serde::{Deserialize, Serialize};

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
}

/// A glob over names: `fs.read`, `github.*`, `repo:acme/*`, `*`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Pattern(String);

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
        Ok(Pattern(text))
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
        pattern.0
    }
}

impl std::fmt::Display for Pattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Pattern {
    /// The pattern text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `name` is one of the names this pattern matches.
    pub fn matches(&self, name: &str) -> bool {
        glob_match(self.0.as_bytes(), name.as_bytes())
    }

    /// Whether every name `other` matches is also matched by `self`.
    ///
    /// Exact for `*`-only globs: `other`'s `*` is treated as a symbol only a
    /// `*` of `self` can absorb, which is the case exactly when every
    /// expansion of `other` matches `self`.
    pub fn covers(&self, other: &Pattern) -> bool {
        glob_match(self.0.as_bytes(), other.0.as_bytes())
    }

    /// The literal text before the first `*`: every match starts with it.
    pub fn literal_prefix(&self) -> &str {
        match self.0.find('*') {
            Some(at) => &self.0[..at],
            None => &self.0,
        }
    }
}

/// Matches `text` against `pattern`, where `*` in the pattern matches any
/// byte run. A `*` in `text` can only be absorbed by a `*` of the pattern,
/// because pattern literals never contain `*`; that makes the same routine
/// decide coverage between patterns. Byte-level matching is sound for UTF-8
/// because a literal match can only start on a character boundary.
fn glob_match(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == b'*' {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && pattern[p] == text[t] && text[t] != b'*' {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|&b| b == b'*')
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
        assert!(p("fs.*").matches("fs."));
        assert!(p("fs.*").matches("fs.write"));
        assert!(!p("fs.*").matches("fsx"));
        assert!(p("*.read").matches("a.b.read"));
        assert!(p("a*b*c").matches("aXbYbZc"));
        assert!(!p("a*b*c").matches("aXbYbZ"));
        assert!(p("*").matches(""));
        assert!(p("é*").matches("éa"));
    }

    #[test]
    fn refuses_widening_coverage() {
        assert!(!p("fs.read").covers(&p("fs.*")));
        assert!(!p("fs.*").covers(&p("*")));
        assert!(!p("a*c").covers(&p("a*")));
        assert!(!p("*.read").covers(&p("*")));
        assert!(!p("a*b").covers(&p("a*b*")));
    }

    #[test]
    fn decides_narrowing_coverage() {
        assert!(p("*").covers(&p("anything*")));
        assert!(p("fs.*").covers(&p("fs.read")));
        assert!(p("fs.*").covers(&p("fs.r*")));
        assert!(p("a*c").covers(&p("ab*bc")));
        assert!(p("a**").covers(&p("a*")));
        assert!(p("a*b*").covers(&p("a*b")));
    }
}
