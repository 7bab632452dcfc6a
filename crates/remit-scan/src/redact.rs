//! Redaction: what a finding may carry in place of the value.
//!
//! `Mask` keeps the shape (and the last four digits of a card), `Hash` is a
//! keyed HMAC-SHA256 of the canonical value so the same value correlates
//! across receipts without being stored, `Drop` keeps nothing.

use aws_lc_rs::hmac;

use crate::error::ScanError;
use crate::finding::FindingType;

/// How matched values are represented in findings.
#[derive(Clone, Default)]
pub enum Redaction {
    /// Asterisks; cards keep their last four digits.
    #[default]
    Mask,
    /// `hmac-sha256:<hex>` of the canonical value under a caller-held key.
    Hash(HmacKey),
    /// No representation at all.
    Drop,
}

impl std::fmt::Debug for Redaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Mask => f.write_str("Mask"),
            Self::Hash(_) => f.write_str("Hash(<key>)"),
            Self::Drop => f.write_str("Drop"),
        }
    }
}

/// A secret key for hash redaction (at least 16 bytes).
#[derive(Clone)]
pub struct HmacKey(Box<hmac::Key>);

impl std::fmt::Debug for HmacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("HmacKey(<redacted>)")
    }
}

impl HmacKey {
    /// Wraps key bytes; refuses keys shorter than 16 bytes.
    pub fn new(key: &[u8]) -> Result<Self, ScanError> {
        if key.len() < 16 {
            return Err(ScanError::MissingHmacKey);
        }
        Ok(Self(Box::new(hmac::Key::new(hmac::HMAC_SHA256, key))))
    }
}

/// The canonical form hashed for a type: separators dropped for
/// identifiers, lower case for emails, as found for secrets.
fn canonical(kind: FindingType, value: &[u8]) -> Vec<u8> {
    if kind.is_secret() || matches!(kind, FindingType::BitcoinAddress) {
        return value.to_vec();
    }
    if matches!(
        kind,
        FindingType::Email
            | FindingType::EthereumAddress
            | FindingType::Ipv6
            | FindingType::MacAddress
    ) {
        return value.to_ascii_lowercase();
    }
    value
        .iter()
        .filter(|b| b.is_ascii_alphanumeric() || **b == b'@' || **b == b'.')
        .map(u8::to_ascii_uppercase)
        .collect()
}

impl Redaction {
    /// What a finding carries for `value` (the normalized match).
    pub fn apply(&self, kind: FindingType, value: &[u8]) -> Option<String> {
        match self {
            Self::Drop => None,
            Self::Hash(key) => {
                let tag = hmac::sign(&key.0, &canonical(kind, value));
                let mut hex = String::with_capacity(12 + 64);
                hex.push_str("hmac-sha256:");
                for b in tag.as_ref() {
                    hex.push_str(&format!("{b:02x}"));
                }
                Some(hex)
            }
            Self::Mask => {
                let n = String::from_utf8_lossy(value).chars().count();
                if kind == FindingType::CreditCard {
                    let digits: Vec<u8> =
                        value.iter().copied().filter(u8::is_ascii_digit).collect();
                    let keep = digits.len().saturating_sub(4);
                    let mut s = "*".repeat(keep);
                    s.push_str(&String::from_utf8_lossy(&digits[keep..]));
                    return Some(s);
                }
                Some("*".repeat(n))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mask_keeps_only_the_last_four_card_digits() {
        let r = Redaction::Mask.apply(FindingType::CreditCard, b"4111 1111 1111 1234");
        assert_eq!(r.as_deref(), Some("************1234"));
        let r = Redaction::Mask.apply(FindingType::Email, b"a@b.co");
        assert_eq!(r.as_deref(), Some("******"));
    }

    #[test]
    fn hash_correlates_formats_of_the_same_value_and_hides_it() {
        let key = HmacKey::new(b"0123456789abcdef").unwrap();
        let r = Redaction::Hash(key);
        let a = r
            .apply(FindingType::CreditCard, b"4111 1111 1111 1111")
            .unwrap();
        let b = r
            .apply(FindingType::CreditCard, b"4111-1111-1111-1111")
            .unwrap();
        let c = r
            .apply(FindingType::CreditCard, b"4111-1111-1111-1112")
            .unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(!a.contains("4111"));
        let other = Redaction::Hash(HmacKey::new(b"fedcba9876543210").unwrap());
        assert_ne!(
            a,
            other
                .apply(FindingType::CreditCard, b"4111111111111111")
                .unwrap()
        );
    }

    #[test]
    fn short_keys_and_drop() {
        assert_eq!(
            HmacKey::new(b"short").err(),
            Some(ScanError::MissingHmacKey)
        );
        assert_eq!(
            Redaction::Drop.apply(FindingType::UsSsn, b"536-90-4399"),
            None
        );
    }
}
