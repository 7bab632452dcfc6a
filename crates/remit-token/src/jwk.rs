//! P-256 JSON Web Keys (RFC 7517) and their thumbprints (RFC 7638).
//!
//! Only `kty: EC`, `crv: P-256` keys exist here: Remit speaks ES256 and
//! nothing else, so a key of any other type is refused at parse time.

use serde::{Deserialize, Serialize};

use crate::b64;

/// Length of a P-256 coordinate or scalar in bytes.
const COORD_LEN: usize = 32;

/// Why a JWK was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwkError {
    /// The JSON did not parse as a JWK object.
    #[error("malformed JWK: {0}")]
    Malformed(String),
    /// The key is not an EC P-256 key.
    #[error("unsupported key: kty {kty:?}, crv {crv:?} (only EC P-256 is accepted)")]
    Unsupported {
        /// The `kty` the key declared.
        kty: String,
        /// The `crv` the key declared.
        crv: String,
    },
    /// A coordinate or scalar had the wrong encoding or length.
    #[error("JWK member {member:?} must be 32 bytes of canonical base64url")]
    BadMember {
        /// The offending member name.
        member: &'static str,
    },
    /// The point is not on the P-256 curve, or the private scalar does not
    /// match the public point.
    #[error("JWK is not a valid P-256 key: {0}")]
    InvalidKey(&'static str),
}

/// A public P-256 key as a JWK.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EcPublicJwk {
    /// Always `EC`.
    pub kty: String,
    /// Always `P-256`.
    pub crv: String,
    /// The x coordinate, base64url.
    pub x: String,
    /// The y coordinate, base64url.
    pub y: String,
    /// The key id, when the key is published in a JWKS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Intended use (`sig`), when published.
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub use_: Option<String>,
    /// Intended algorithm (`ES256`), when published.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Permitted operations (RFC 7517 §4.3), when the publisher restricts them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_ops: Option<Vec<String>>,
}

/// An RFC 7638 JWK thumbprint: base64url SHA-256 of the required members.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Thumbprint(String);

impl Thumbprint {
    /// The thumbprint as base64url text (what `cnf.jkt` carries).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Wraps a thumbprint received in a claim; it is compared, never trusted.
    pub fn from_claim(text: impl Into<String>) -> Self {
        Thumbprint(text.into())
    }
}

impl std::fmt::Display for Thumbprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn coord(member: &'static str, text: &str) -> Result<[u8; COORD_LEN], JwkError> {
    let bytes = b64::decode(text).map_err(|_| JwkError::BadMember { member })?;
    bytes.try_into().map_err(|_| JwkError::BadMember { member })
}

fn check_type(kty: &str, crv: &str) -> Result<(), JwkError> {
    if kty == "EC" && crv == "P-256" {
        Ok(())
    } else {
        Err(JwkError::Unsupported {
            kty: kty.to_owned(),
            crv: crv.to_owned(),
        })
    }
}

impl EcPublicJwk {
    /// Builds a JWK from an uncompressed SEC1 point (`0x04 || x || y`).
    pub fn from_sec1(point: &[u8]) -> Result<Self, JwkError> {
        if point.len() != 1 + 2 * COORD_LEN || point[0] != 0x04 {
            return Err(JwkError::InvalidKey("expected an uncompressed P-256 point"));
        }
        Ok(EcPublicJwk {
            kty: "EC".into(),
            crv: "P-256".into(),
            x: b64::encode(&point[1..=COORD_LEN]),
            y: b64::encode(&point[1 + COORD_LEN..]),
            kid: None,
            use_: None,
            alg: None,
            key_ops: None,
        })
    }

    /// Parses a JWK from JSON, refusing anything but a P-256 key.
    pub fn from_json(json: &str) -> Result<Self, JwkError> {
        let jwk: EcPublicJwk =
            serde_json::from_str(json).map_err(|e| JwkError::Malformed(e.to_string()))?;
        jwk.sec1()?;
        Ok(jwk)
    }

    /// The uncompressed SEC1 encoding of the point, after checking type and
    /// member lengths (curve membership is checked by [`crate::VerifyingKey`]).
    pub fn sec1(&self) -> Result<[u8; 1 + 2 * COORD_LEN], JwkError> {
        check_type(&self.kty, &self.crv)?;
        let mut out = [0u8; 1 + 2 * COORD_LEN];
        out[0] = 0x04;
        out[1..=COORD_LEN].copy_from_slice(&coord("x", &self.x)?);
        out[1 + COORD_LEN..].copy_from_slice(&coord("y", &self.y)?);
        Ok(out)
    }

    /// The RFC 7638 thumbprint, the value a remit's `cnf.jkt` binds to.
    pub fn thumbprint(&self) -> Thumbprint {
        // RFC 7638 §3.2: required members only, lexicographic order, no
        // whitespace. The members are base64url, so no escaping is needed.
        let canonical = format!(
            r#"{{"crv":"{}","kty":"{}","x":"{}","y":"{}"}}"#,
            self.crv, self.kty, self.x, self.y
        );
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical.as_bytes());
        Thumbprint(b64::encode(digest.as_ref()))
    }

    /// This key with its `kid`, `use` and `alg` set for publication in a JWKS.
    pub fn published(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self.use_ = Some("sig".into());
        self.alg = Some("ES256".into());
        self
    }

    /// The same key without `kid`, `use` or `alg`: what a proof header carries.
    pub fn bare(&self) -> Self {
        EcPublicJwk {
            kid: None,
            use_: None,
            alg: None,
            key_ops: None,
            ..self.clone()
        }
    }
}

/// A private P-256 key as a JWK (`d` beside the public members).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrivateJwk {
    /// The public members.
    #[serde(flatten)]
    pub public: EcPublicJwk,
    /// The private scalar, base64url.
    pub d: String,
}

impl std::fmt::Debug for PrivateJwk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PrivateJwk")
            .field("public", &self.public)
            .field("d", &"<redacted>")
            .finish()
    }
}

impl PrivateJwk {
    /// Parses a private JWK from JSON.
    pub fn from_json(json: &str) -> Result<Self, JwkError> {
        let jwk: PrivateJwk =
            serde_json::from_str(json).map_err(|e| JwkError::Malformed(e.to_string()))?;
        jwk.public.sec1()?;
        jwk.scalar()?;
        Ok(jwk)
    }

    /// The private scalar's 32 big-endian bytes.
    pub fn scalar(&self) -> Result<[u8; COORD_LEN], JwkError> {
        coord("d", &self.d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7515 Appendix A.3's key; its RFC 7638 thumbprint computed by hand
    /// from the canonical form is checked against an independent digest.
    const A3_PUBLIC: &str = r#"{"kty":"EC","crv":"P-256",
        "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;

    #[test]
    fn refuses_non_p256_keys() {
        let rsa = r#"{"kty":"RSA","crv":"P-256","x":"AA","y":"AA"}"#;
        assert!(matches!(
            EcPublicJwk::from_json(rsa),
            Err(JwkError::Unsupported { .. })
        ));
        let p384 = A3_PUBLIC.replace("P-256", "P-384");
        assert!(matches!(
            EcPublicJwk::from_json(&p384),
            Err(JwkError::Unsupported { .. })
        ));
    }

    #[test]
    fn refuses_short_coordinates() {
        let short = A3_PUBLIC.replace("f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "f83OJ3D2");
        assert!(matches!(
            EcPublicJwk::from_json(&short),
            Err(JwkError::BadMember { member: "x" })
        ));
    }

    #[test]
    fn thumbprint_matches_rfc7638_construction() {
        let jwk = EcPublicJwk::from_json(A3_PUBLIC).unwrap();
        let expected = aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            br#"{"crv":"P-256","kty":"EC","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#,
        );
        assert_eq!(jwk.thumbprint().as_str(), b64::encode(expected.as_ref()));
        // kid/use/alg never change the thumbprint.
        assert_eq!(jwk.clone().published("k1").thumbprint(), jwk.thumbprint());
    }
}
