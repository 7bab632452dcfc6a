//! Classification levels and the per-type mapping.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::finding::FindingType;

/// Data classification, ordered: `Public < Internal < Confidential < Restricted`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Classification {
    /// Nothing sensitive found.
    Public,
    /// Infrastructure details (IP and MAC addresses, bank codes).
    Internal,
    /// Personal contact data (email, phone, date of birth).
    Confidential,
    /// Identifiers, financial data and credentials.
    Restricted,
}

impl Classification {
    /// The level's name (`PUBLIC`, ..., `RESTRICTED`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Public => "PUBLIC",
            Self::Internal => "INTERNAL",
            Self::Confidential => "CONFIDENTIAL",
            Self::Restricted => "RESTRICTED",
        }
    }

    /// Parses a level name, case-insensitively.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::Public,
            Self::Internal,
            Self::Confidential,
            Self::Restricted,
        ]
        .into_iter()
        .find(|c| c.name().eq_ignore_ascii_case(name))
    }
}

impl std::fmt::Display for Classification {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Which classification each finding type maps to.
///
/// Starts from [`ClassMap::default`] (cards, national identifiers and secrets
/// are restricted; contact data confidential; network identifiers internal)
/// and is tuned per type with [`ClassMap::set`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClassMap {
    overrides: BTreeMap<FindingType, Classification>,
}

impl ClassMap {
    /// The default level of a type.
    pub fn default_for(kind: FindingType) -> Classification {
        use FindingType as T;
        match kind {
            T::Email | T::Phone | T::DateOfBirth | T::BitcoinAddress | T::EthereumAddress => {
                Classification::Confidential
            }
            T::Ipv4 | T::Ipv6 | T::MacAddress | T::Bic => Classification::Internal,
            _ => Classification::Restricted,
        }
    }

    /// Overrides the level of one type.
    pub fn set(&mut self, kind: FindingType, class: Classification) -> &mut Self {
        self.overrides.insert(kind, class);
        self
    }

    /// The level a type maps to.
    pub fn get(&self, kind: FindingType) -> Classification {
        self.overrides
            .get(&kind)
            .copied()
            .unwrap_or_else(|| Self::default_for(kind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_are_ordered_and_defaults_are_sane() {
        assert!(Classification::Public < Classification::Internal);
        assert!(Classification::Internal < Classification::Confidential);
        assert!(Classification::Confidential < Classification::Restricted);
        let map = ClassMap::default();
        assert_eq!(map.get(FindingType::CreditCard), Classification::Restricted);
        assert_eq!(map.get(FindingType::UsSsn), Classification::Restricted);
        assert_eq!(map.get(FindingType::Email), Classification::Confidential);
        assert_eq!(
            map.get(FindingType::GithubToken),
            Classification::Restricted
        );
        assert_eq!(map.get(FindingType::Ipv4), Classification::Internal);
    }

    #[test]
    fn overrides_replace_the_default_for_one_type_only() {
        let mut map = ClassMap::default();
        map.set(FindingType::Email, Classification::Restricted);
        assert_eq!(map.get(FindingType::Email), Classification::Restricted);
        assert_eq!(map.get(FindingType::Phone), Classification::Confidential);
        assert_eq!(
            Classification::from_name("internal"),
            Some(Classification::Internal)
        );
        assert_eq!(Classification::from_name("secret"), None);
    }
}
