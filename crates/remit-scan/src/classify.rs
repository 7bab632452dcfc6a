//! Classification levels and the per-type mapping.

use std::collections::BTreeMap;

use crate::finding::FindingType;

/// The scanner's verdict on a payload: the highest class among its findings,
/// `PUBLIC` when there are none. The one type every Remit crate shares,
/// re-exported here; what each level means to the scanner is
/// [`ClassMap::default`]'s mapping:
///
/// - `PUBLIC`: nothing sensitive found;
/// - `INTERNAL`: infrastructure details (IP and MAC addresses, bank codes);
/// - `CONFIDENTIAL`: personal contact data (email, phone, date of birth);
/// - `RESTRICTED`: identifiers, financial data and credentials.
pub use remit_class::Classification;

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
    }
}
