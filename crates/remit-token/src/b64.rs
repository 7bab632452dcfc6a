//! Strict base64url (RFC 4648 §5, no padding) as JOSE requires.
//!
//! Decoding refuses padding, characters outside the URL-safe alphabet and
//! non-canonical trailing bits, so one byte string has exactly one encoding.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// Why a base64url string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid base64url: {reason}")]
pub struct Base64Error {
    reason: String,
}

/// Encodes bytes as unpadded base64url.
pub fn encode(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes unpadded, canonical base64url; anything else is an error.
pub fn decode(text: impl AsRef<[u8]>) -> Result<Vec<u8>, Base64Error> {
    // The default engine config rejects padding and non-zero trailing bits
    // (`decode_allow_trailing_bits` is false), which makes decoding canonical.
    URL_SAFE_NO_PAD.decode(text).map_err(|e| Base64Error {
        reason: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_padding() {
        assert!(decode("YQ==").is_err());
        assert_eq!(decode("YQ").unwrap(), b"a");
    }

    #[test]
    fn refuses_non_canonical_trailing_bits() {
        // "YR" decodes to 'a' only if trailing bits are ignored.
        assert!(decode("YR").is_err());
    }

    #[test]
    fn refuses_standard_alphabet() {
        assert!(decode("+/+/").is_err());
        assert!(decode("-_-_").is_ok());
    }
}
