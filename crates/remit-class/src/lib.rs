//! The data classification every Remit crate speaks:
//! `PUBLIC < INTERNAL < CONFIDENTIAL < RESTRICTED`.
//!
//! One vocabulary, defined once. A remit's `class` claim (`remit-token`), the
//! scanner's verdict on a payload (`remit-scan`), the classes and clearances a
//! policy compares (`remit-policy`), a receipt's `classification`
//! (`remit-ledger`) and a destination's stored clearance (`remit-store`) are
//! all this one [`Classification`], so the gateway compares them directly
//! and no hand-written mapping can get the order wrong.
//!
//! What each level *means* depends on who assigns it (the scanner calls
//! network identifiers internal, an operator may call a wiki internal); that
//! prose lives with the crate that gives the meaning. This crate owns only
//! the names, the order and the formats:
//!
//! - **order**: the derived `Ord` follows the declaration order, lowest
//!   first; data may flow only to a holder or destination whose clearance is
//!   at least its class;
//! - **wire form** (JSON in tokens, receipts, policy requests): the
//!   uppercase name, `"CONFIDENTIAL"`, exactly and case-sensitively;
//! - **level**: `0..=3`, the number Cedar and Rego compare;
//! - **text** ([`FromStr`], for command lines and configuration): any case.
//!
//! `remit-store` keeps its own lowercase words in the database and the
//! registry API; they are a storage format of this same type.
//!
//! ```
//! use remit_class::Classification;
//!
//! let class: Classification = "confidential".parse()?;
//! assert!(class > Classification::Internal);
//! assert_eq!(class.level(), 2);
//! assert_eq!(class.to_string(), "CONFIDENTIAL");
//! # Ok::<(), remit_class::ParseClassificationError>(())
//! ```

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// How sensitive data is, or the most sensitive data a holder or destination
/// may receive (its clearance). Ordered lowest first:
/// `Public < Internal < Confidential < Restricted`.
///
/// Serialized as the uppercase name (`"RESTRICTED"`), which is the form in
/// tokens, receipts and policy requests.
// INVARIANT: declaration order is the sensitivity order; `Ord`, `level` and
// `ALL` rely on it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Classification {
    /// Level 0: may be published. The default: nothing sensitive is known.
    #[default]
    Public,
    /// Level 1: inside the organisation.
    Internal,
    /// Level 2: a need-to-know group.
    Confidential,
    /// Level 3: the most sensitive data; named people only.
    Restricted,
}

impl Classification {
    /// Every level, lowest first.
    pub const ALL: [Classification; 4] = [
        Classification::Public,
        Classification::Internal,
        Classification::Confidential,
        Classification::Restricted,
    ];

    /// The number policies compare: `PUBLIC` 0 .. `RESTRICTED` 3 (a Cedar
    /// `Long`, hence `i64`).
    pub const fn level(self) -> i64 {
        self as i64
    }

    /// The uppercase name (`PUBLIC`, ..., `RESTRICTED`), as serialized.
    pub const fn name(self) -> &'static str {
        match self {
            Classification::Public => "PUBLIC",
            Classification::Internal => "INTERNAL",
            Classification::Confidential => "CONFIDENTIAL",
            Classification::Restricted => "RESTRICTED",
        }
    }
}

/// The uppercase name, as [`Classification::name`].
impl fmt::Display for Classification {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Parses a level's name in any case (`restricted`, `RESTRICTED`); anything
/// else is refused, never rounded to a nearby level.
impl FromStr for Classification {
    type Err = ParseClassificationError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Classification::ALL
            .into_iter()
            .find(|class| class.name().eq_ignore_ascii_case(text))
            .ok_or_else(|| ParseClassificationError {
                text: text.to_owned(),
            })
    }
}

/// A text that names no classification level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseClassificationError {
    text: String,
}

impl ParseClassificationError {
    /// The text that was refused.
    pub fn text(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for ParseClassificationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown class {:?}: use PUBLIC, INTERNAL, CONFIDENTIAL or RESTRICTED",
            self.text
        )
    }
}

impl std::error::Error for ParseClassificationError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_ordered_lowest_first() {
        use Classification::*;
        assert!(Public < Internal);
        assert!(Internal < Confidential);
        assert!(Confidential < Restricted);
        assert_eq!(Classification::default(), Public);
        assert_eq!(Restricted.max(Internal), Restricted);
        for pair in Classification::ALL.windows(2) {
            assert!(pair[0] < pair[1]);
            assert_eq!(pair[0].level() + 1, pair[1].level());
        }
        let levels: Vec<i64> = Classification::ALL.iter().map(|c| c.level()).collect();
        assert_eq!(levels, [0, 1, 2, 3]);
    }

    #[test]
    fn serializes_as_the_uppercase_name_and_round_trips() {
        let expected = [
            (Classification::Public, r#""PUBLIC""#),
            (Classification::Internal, r#""INTERNAL""#),
            (Classification::Confidential, r#""CONFIDENTIAL""#),
            (Classification::Restricted, r#""RESTRICTED""#),
        ];
        for (class, json) in expected {
            assert_eq!(serde_json::to_string(&class).unwrap(), json);
            assert_eq!(serde_json::from_str::<Classification>(json).unwrap(), class);
            assert_eq!(format!("\"{class}\""), json);
            assert_eq!(format!("\"{}\"", class.name()), json);
        }
    }

    #[test]
    fn wire_form_refuses_other_cases_and_unknown_names() {
        for json in [
            r#""restricted""#,
            r#""Restricted""#,
            r#""SECRET""#,
            r#""""#,
            "3",
            "null",
        ] {
            assert!(
                serde_json::from_str::<Classification>(json).is_err(),
                "{json} was accepted"
            );
        }
    }

    #[test]
    fn text_parses_in_any_case() {
        assert_eq!("restricted".parse(), Ok(Classification::Restricted));
        assert_eq!("Internal".parse(), Ok(Classification::Internal));
        for class in Classification::ALL {
            assert_eq!(class.name().parse(), Ok(class));
            assert_eq!(class.name().to_lowercase().parse(), Ok(class));
        }
    }

    #[test]
    fn text_refuses_unknown_names() {
        for text in [
            "SECRET",
            "",
            " PUBLIC",
            "PUBLIC ",
            "top secret",
            "3",
            "PUBLİC",
        ] {
            let err = text.parse::<Classification>().unwrap_err();
            assert_eq!(err.text(), text);
        }
        assert_eq!(
            "SECRET".parse::<Classification>().unwrap_err().to_string(),
            r#"unknown class "SECRET": use PUBLIC, INTERNAL, CONFIDENTIAL or RESTRICTED"#
        );
    }
}
