//! P-256 JSON Web Keys (RFC 7517) and their thumbprints (RFC 7638).
//!
//! Only `kty: EC`, `crv: P-256` keys exist here: Remit speaks ES256 and
//! nothing else, so a key of any other type is refused at parse time.
//!
//! Every way a JWK enters (JSON text, a `serde` field such as `cnf.jwk` or
//! a JWKS entry, an SEC1 point) goes through [`EcPublicJwk`]'s one parser,
//! which checks the whole key once: `kty` EC, `crv` P-256, `x` and `y`
//! exactly 32 bytes of canonical base64url, the point on the curve, `alg`
//! ES256 when present, and no private members (`d`, RSA or symmetric
//! parts) in a key that is meant to be public. A key that parsed is a key
//! a verifier can use: nothing downstream meets a malformed one.

use aws_lc_rs::signature::{ParsedPublicKey, ECDSA_P256_SHA256_FIXED};
use serde::de::IgnoredAny;
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
    /// A public key carried a private member.
    #[error(
        "JWK member {member:?} is private key material; send only the public key (kty, crv, x, y)"
    )]
    PrivateMember {
        /// The private member found.
        member: &'static str,
    },
    /// `alg` named an algorithm other than ES256.
    #[error("JWK alg {alg:?} is not ES256, the only algorithm Remit accepts")]
    WrongAlg {
        /// The `alg` the key declared.
        alg: String,
    },
}

/// A JWK as it arrives, before any check: every member Remit reads, and
/// every private member it must refuse in a public key.
#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    #[serde(default)]
    crv: String,
    #[serde(default)]
    x: String,
    #[serde(default)]
    y: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default, rename = "use")]
    use_: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default)]
    key_ops: Option<Vec<String>>,
    #[serde(default)]
    d: Option<String>,
    // RFC 7518 §6.3.2 (RSA) and §6.4 (oct) private members.
    #[serde(default)]
    p: Option<IgnoredAny>,
    #[serde(default)]
    q: Option<IgnoredAny>,
    #[serde(default)]
    dp: Option<IgnoredAny>,
    #[serde(default)]
    dq: Option<IgnoredAny>,
    #[serde(default)]
    qi: Option<IgnoredAny>,
    #[serde(default)]
    oth: Option<IgnoredAny>,
    #[serde(default)]
    k: Option<IgnoredAny>,
}

impl RawJwk {
    /// The first non-`d` private member present, if any (`d` is checked
    /// apart because a private JWK legitimately carries it).
    fn other_private_member(&self) -> Option<&'static str> {
        [
            ("p", self.p.is_some()),
            ("q", self.q.is_some()),
            ("dp", self.dp.is_some()),
            ("dq", self.dq.is_some()),
            ("qi", self.qi.is_some()),
            ("oth", self.oth.is_some()),
            ("k", self.k.is_some()),
        ]
        .into_iter()
        .find_map(|(name, present)| present.then_some(name))
    }

    /// The public members, checked as [`EcPublicJwk`]'s module doc says.
    fn into_public(self) -> Result<(EcPublicJwk, Option<String>), JwkError> {
        if let Some(member) = self.other_private_member() {
            return Err(JwkError::PrivateMember { member });
        }
        check_type(&self.kty, &self.crv)?;
        if let Some(alg) = self.alg.as_deref().filter(|a| *a != "ES256") {
            return Err(JwkError::WrongAlg {
                alg: alg.to_owned(),
            });
        }
        let jwk = EcPublicJwk {
            kty: self.kty,
            crv: self.crv,
            x: self.x,
            y: self.y,
            kid: self.kid,
            use_: self.use_,
            alg: self.alg,
            key_ops: self.key_ops,
        };
        on_curve(&jwk.sec1()?)?;
        Ok((jwk, self.d))
    }
}

impl TryFrom<RawJwk> for EcPublicJwk {
    type Error = JwkError;

    fn try_from(raw: RawJwk) -> Result<Self, JwkError> {
        match raw.into_public()? {
            (_, Some(_)) => Err(JwkError::PrivateMember { member: "d" }),
            (jwk, None) => Ok(jwk),
        }
    }
}

impl TryFrom<RawJwk> for PrivateJwk {
    type Error = JwkError;

    fn try_from(raw: RawJwk) -> Result<Self, JwkError> {
        let (public, d) = raw.into_public()?;
        let d = d.ok_or(JwkError::Malformed("missing private member \"d\"".into()))?;
        coord("d", &d)?;
        Ok(PrivateJwk { public, d })
    }
}

/// Checks that an uncompressed SEC1 point is on P-256 (aws-lc-rs parses
/// the point and refuses one that does not satisfy the curve equation).
fn on_curve(sec1: &[u8]) -> Result<(), JwkError> {
    ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, sec1)
        .map(|_| ())
        .map_err(|_| JwkError::InvalidKey("point is not on the P-256 curve"))
}

/// A public P-256 key as a JWK.
///
/// Deserializing one runs the full check of the module doc, so a value
/// read from JSON is always a usable key; the members stay public for
/// building published JWKS documents.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawJwk")]
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
    /// Builds a JWK from an uncompressed SEC1 point (`0x04 || x || y`)
    /// that lies on the curve.
    pub fn from_sec1(point: &[u8]) -> Result<Self, JwkError> {
        if point.len() != 1 + 2 * COORD_LEN || point[0] != 0x04 {
            return Err(JwkError::InvalidKey("expected an uncompressed P-256 point"));
        }
        on_curve(point)?;
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

    /// Parses a public JWK from JSON text, with every check of the module
    /// doc; the error says which one failed.
    pub fn from_json(json: &str) -> Result<Self, JwkError> {
        let raw: RawJwk =
            serde_json::from_str(json).map_err(|e| JwkError::Malformed(e.to_string()))?;
        Self::try_from(raw)
    }

    /// Parses a public JWK from a JSON value (an API body's member).
    pub fn from_value(value: &serde_json::Value) -> Result<Self, JwkError> {
        if !value.is_object() {
            return Err(JwkError::Malformed("a JWK must be a JSON object".into()));
        }
        let raw = RawJwk::deserialize(value).map_err(|e| JwkError::Malformed(e.to_string()))?;
        Self::try_from(raw)
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
#[serde(try_from = "RawJwk")]
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
        let raw: RawJwk =
            serde_json::from_str(json).map_err(|e| JwkError::Malformed(e.to_string()))?;
        Self::try_from(raw)
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

    const A3_X: &str = "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU";
    const A3_Y: &str = "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0";

    fn public(x: &str, y: &str) -> serde_json::Value {
        serde_json::json!({"kty": "EC", "crv": "P-256", "x": x, "y": y})
    }

    /// Every entry path (text, JSON value, a serde field) refuses the same keys.
    fn refused(value: &serde_json::Value) -> JwkError {
        let text = EcPublicJwk::from_json(&value.to_string()).unwrap_err();
        assert_eq!(EcPublicJwk::from_value(value).unwrap_err(), text);
        assert!(serde_json::from_value::<EcPublicJwk>(value.clone()).is_err());
        text
    }

    #[test]
    fn refuses_a_point_off_the_curve() {
        // x of a valid key with y replaced: 32 bytes each, not on P-256.
        assert_eq!(
            refused(&public(A3_X, A3_X)),
            JwkError::InvalidKey("point is not on the P-256 curve")
        );
        let sec1 = EcPublicJwk::from_json(A3_PUBLIC).unwrap().sec1().unwrap();
        let mut off = sec1;
        off[64] ^= 1;
        assert!(EcPublicJwk::from_sec1(&off).is_err());
        assert!(EcPublicJwk::from_sec1(&sec1).is_ok());
    }

    #[test]
    fn refuses_private_members_in_a_public_key() {
        for member in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
            let mut key = public(A3_X, A3_Y);
            key[member] = serde_json::json!("AAAA");
            assert!(
                matches!(refused(&key), JwkError::PrivateMember { member: m } if m == member),
                "{member}"
            );
        }
    }

    #[test]
    fn refuses_wrong_alg_and_non_canonical_base64() {
        let mut key = public(A3_X, A3_Y);
        key["alg"] = serde_json::json!("HS256");
        assert!(matches!(refused(&key), JwkError::WrongAlg { .. }));
        key["alg"] = serde_json::json!("ES256");
        assert!(EcPublicJwk::from_value(&key).is_ok());
        // Padding, the standard alphabet and 33 bytes are all refused.
        for y in [
            format!("{A3_Y}="),
            A3_Y.replace('_', "/"),
            b64::encode([7u8; 33]),
        ] {
            assert_eq!(
                refused(&public(A3_X, &y)),
                JwkError::BadMember { member: "y" }
            );
        }
        // 32 bytes leave 2 spare bits in the last character: setting one
        // is a second spelling of the same bytes, and is refused.
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let last = A3_Y.as_bytes()[A3_Y.len() - 1];
        let index = ALPHABET.iter().position(|c| *c == last).unwrap();
        let sloppy = format!("{}{}", &A3_Y[..A3_Y.len() - 1], ALPHABET[index ^ 1] as char);
        assert_eq!(
            refused(&public(A3_X, &sloppy)),
            JwkError::BadMember { member: "y" }
        );
    }

    #[test]
    fn private_jwk_round_trips_and_requires_d() {
        let signer = crate::EcdsaP256Signer::generate().unwrap();
        let private = signer.to_private_jwk().unwrap();
        let text = serde_json::to_string(&private).unwrap();
        assert_eq!(PrivateJwk::from_json(&text).unwrap(), private);
        assert!(EcPublicJwk::from_json(&text).is_err());
        let public = serde_json::to_string(&private.public).unwrap();
        assert!(PrivateJwk::from_json(&public).is_err());
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
