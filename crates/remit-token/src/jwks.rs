//! The issuer key set: the only keys a root remit may be signed with.
//!
//! Keys are looked up by exact `kid`. A token can never add a key: `jku`,
//! `x5u` and embedded `jwk` headers are refused by the JWS parser.

use std::collections::HashMap;

use serde::Deserialize;

use crate::crypto::{CryptoError, VerifyingKey};
use crate::jwk::EcPublicJwk;

/// Why a key set was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    /// Not a JSON object `{"keys": [...]}`.
    #[error("malformed JWKS: {0}")]
    Malformed(String),
    /// A key has no `kid`.
    #[error("JWKS key {index} has no kid")]
    MissingKid {
        /// Position in `keys`.
        index: usize,
    },
    /// Two keys share a `kid`.
    #[error("JWKS has two keys with kid {0:?}")]
    DuplicateKid(String),
    /// A key declares an algorithm or use other than ES256 signing.
    #[error("JWKS key {kid:?} is not an ES256 signing key")]
    NotEs256 {
        /// The key's id.
        kid: String,
    },
    /// A key is not a valid P-256 public key.
    #[error("JWKS key {kid:?}: {error}")]
    InvalidKey {
        /// The key's id.
        kid: String,
        /// Why it was refused.
        error: CryptoError,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JwksRepr {
    keys: Vec<EcPublicJwk>,
}

/// Issuer public keys by `kid`, each parsed and checked once.
#[derive(Debug, Default)]
pub struct Jwks {
    keys: HashMap<String, VerifyingKey>,
}

impl Jwks {
    /// An empty key set (verifies nothing).
    pub fn new() -> Self {
        Jwks::default()
    }

    /// Parses a JWKS document; every key must be an EC P-256 key with a
    /// unique `kid`.
    pub fn from_json(text: &str) -> Result<Self, JwksError> {
        let repr: JwksRepr =
            serde_json::from_str(text).map_err(|e| JwksError::Malformed(e.to_string()))?;
        let mut jwks = Jwks::new();
        for (index, key) in repr.keys.iter().enumerate() {
            let kid = key.kid.clone().ok_or(JwksError::MissingKid { index })?;
            jwks.insert(kid, key)?;
        }
        Ok(jwks)
    }

    /// Adds `key` under `kid`.
    pub fn insert(&mut self, kid: impl Into<String>, key: &EcPublicJwk) -> Result<(), JwksError> {
        let kid = kid.into();
        let wrong_alg = key.alg.as_deref().is_some_and(|a| a != "ES256");
        let wrong_use = key.use_.as_deref().is_some_and(|u| u != "sig");
        // RFC 7517 §4.3: a key restricted to other operations (say
        // `encrypt`) must not verify signatures.
        let wrong_ops = key
            .key_ops
            .as_ref()
            .is_some_and(|ops| !ops.iter().any(|op| op == "verify"));
        if wrong_alg || wrong_use || wrong_ops {
            return Err(JwksError::NotEs256 { kid });
        }
        let verifying = VerifyingKey::from_jwk(key).map_err(|error| JwksError::InvalidKey {
            kid: kid.clone(),
            error,
        })?;
        if self.keys.contains_key(&kid) {
            return Err(JwksError::DuplicateKid(kid));
        }
        self.keys.insert(kid, verifying);
        Ok(())
    }

    /// The key with exactly this `kid`.
    pub fn get(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.get(kid)
    }

    /// How many keys the set holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{EcdsaP256Signer, Signer as _};

    #[test]
    fn refuses_duplicate_kid_and_missing_kid() {
        let a = EcdsaP256Signer::generate().unwrap();
        let b = EcdsaP256Signer::generate().unwrap();
        let dup = serde_json::json!({"keys": [
            a.public_jwk().clone().published("k"), b.public_jwk().clone().published("k")]});
        assert_eq!(
            Jwks::from_json(&dup.to_string()).unwrap_err(),
            JwksError::DuplicateKid("k".into())
        );
        let missing = serde_json::json!({"keys": [a.public_jwk().bare()]});
        assert_eq!(
            Jwks::from_json(&missing.to_string()).unwrap_err(),
            JwksError::MissingKid { index: 0 }
        );
    }

    #[test]
    fn refuses_non_es256_keys() {
        let a = EcdsaP256Signer::generate().unwrap();
        let mut jwk = a.public_jwk().clone().published("k");
        jwk.alg = Some("HS256".into());
        let doc = serde_json::json!({"keys": [jwk]});
        // The JWK parser itself refuses a non-ES256 alg.
        assert!(matches!(
            Jwks::from_json(&doc.to_string()),
            Err(JwksError::Malformed(m)) if m.contains("ES256")
        ));
        let mut enc_only = a.public_jwk().clone().published("k");
        enc_only.key_ops = Some(vec!["encrypt".into()]);
        let doc = serde_json::json!({"keys": [enc_only]});
        assert!(matches!(
            Jwks::from_json(&doc.to_string()),
            Err(JwksError::NotEs256 { .. })
        ));
        let mut verify_ok = a.public_jwk().clone().published("k");
        verify_ok.key_ops = Some(vec!["verify".into()]);
        let doc = serde_json::json!({"keys": [verify_ok]});
        assert!(Jwks::from_json(&doc.to_string()).is_ok());
        let rsa = r#"{"keys":[{"kty":"RSA","kid":"r","n":"AQAB","e":"AQAB"}]}"#;
        assert!(Jwks::from_json(rsa).is_err());
    }

    #[test]
    fn looks_up_by_exact_kid() {
        let a = EcdsaP256Signer::generate().unwrap();
        let doc = serde_json::json!({"keys": [a.public_jwk().clone().published("k1")]});
        let jwks = Jwks::from_json(&doc.to_string()).unwrap();
        assert!(jwks.get("k1").is_some());
        assert!(jwks.get("../k1").is_none());
        assert!(jwks.get("k1' OR '1'='1").is_none());
        assert_eq!(jwks.len(), 1);
    }
}
