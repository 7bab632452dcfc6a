//! The claims a remit carries, with standard names wherever a standard
//! exists (RFC 7519, 8693, 9396, 7800, 8176).
//!
//! Every object refuses unknown and duplicate members: a claim the verifier
//! does not understand might be a restriction, so it is never ignored.

use serde::{Deserialize, Serialize};

use crate::grant::Grant;
use crate::jwk::{EcPublicJwk, Thumbprint};

/// Highest data classification a holder may receive: the `class` claim,
/// serialized as the uppercase name (`"CONFIDENTIAL"`). The one type every
/// Remit crate shares, re-exported here.
pub use remit_class::Classification;

/// RFC 8693 actor claim: the agent acting now, with earlier actors nested.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    /// The acting agent's identifier.
    pub sub: String,
    /// The actor that delegated to this one, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Box<Actor>>,
}

impl Actor {
    /// The actors from this one (the most recent) back to the first.
    pub fn lineage(&self) -> impl Iterator<Item = &Actor> {
        std::iter::successors(Some(self), |a| a.act.as_deref())
    }
}

/// RFC 7800 confirmation: the holder key a remit is bound to. The public
/// key travels beside its thumbprint so that a delegated child's signature
/// can be checked offline from the parent itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "ConfirmationRepr")]
pub struct Confirmation {
    /// RFC 7638 thumbprint of `jwk`.
    pub jkt: Thumbprint,
    /// The holder's public P-256 key.
    pub jwk: EcPublicJwk,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfirmationRepr {
    jkt: Thumbprint,
    jwk: EcPublicJwk,
}

impl TryFrom<ConfirmationRepr> for Confirmation {
    type Error = String;

    fn try_from(r: ConfirmationRepr) -> Result<Self, String> {
        r.jwk.sec1().map_err(|e| format!("cnf.jwk: {e}"))?;
        if r.jwk.thumbprint() != r.jkt {
            return Err("cnf.jkt is not the thumbprint of cnf.jwk".into());
        }
        Ok(Confirmation {
            jkt: r.jkt,
            jwk: r.jwk,
        })
    }
}

impl Confirmation {
    /// Binds to `jwk` (its `kid`, `use` and `alg` are dropped).
    pub fn for_key(jwk: &EcPublicJwk) -> Self {
        Confirmation {
            jkt: jwk.thumbprint(),
            jwk: jwk.bare(),
        }
    }
}

/// Evidence of the content scan done before issuance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScanEvidence {
    /// What was scanned (e.g. `prompt`, `arguments`).
    pub target: String,
    /// The outcome (e.g. `clean`, `redacted`).
    pub result: String,
    /// The classification the scan assigned.
    pub class: Classification,
}

/// The claims of one remit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemitClaims {
    /// Issuer: the control plane for a root, the delegating agent for a child.
    pub iss: String,
    /// The human or service the work is for; unchanged along a chain.
    pub sub: String,
    /// The audience: the gateway(s) that accept this remit.
    pub aud: String,
    /// Issued at (seconds since the Unix epoch).
    pub iat: u64,
    /// Not before (seconds since the Unix epoch).
    pub nbf: u64,
    /// Expiry (seconds since the Unix epoch); invalid from this second on.
    pub exp: u64,
    /// Unique id; revocation is keyed on it.
    pub jti: String,
    /// The acting agent, with the delegating agents nested inside.
    pub act: Actor,
    /// What the holder may do (RFC 9396).
    pub authorization_details: Vec<Grant>,
    /// The holder key.
    pub cnf: Confirmation,
    /// Tool calls allowed; absent means not limited by the remit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_steps: Option<u64>,
    /// Highest classification the holder may receive.
    pub class: Classification,
    /// Authentication context class of the human's approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acr: Option<String>,
    /// How the human approved (e.g. `click`, `step_up_totp`, `policy`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amr: Vec<String>,
    /// Scan evidence at issuance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scan: Option<ScanEvidence>,
    /// Hash of the policy version that allowed issuance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// base64url SHA-256 of the parent's compact JWS; absent on a root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prf: Option<String>,
    /// The root remit's `jti`.
    pub root: String,
    /// Position in the chain: 0 for a root.
    pub depth: u32,
    /// Deepest `depth` any descendant may have.
    pub max_depth: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_is_ordered() {
        assert!(Classification::Public < Classification::Internal);
        assert!(Classification::Internal < Classification::Confidential);
        assert!(Classification::Confidential < Classification::Restricted);
        assert_eq!(
            serde_json::to_string(&Classification::Confidential).unwrap(),
            r#""CONFIDENTIAL""#
        );
        assert_eq!("restricted".parse(), Ok(Classification::Restricted));
        assert!("SECRET".parse::<Classification>().is_err());
    }

    #[test]
    fn refuses_confirmation_whose_thumbprint_names_another_key() {
        let a = crate::EcdsaP256Signer::generate().unwrap();
        let b = crate::EcdsaP256Signer::generate().unwrap();
        let forged = serde_json::json!({"jkt": b.thumbprint(), "jwk": a.public_jwk().bare()});
        assert!(serde_json::from_value::<Confirmation>(forged).is_err());
        let honest = serde_json::json!({"jkt": a.thumbprint(), "jwk": a.public_jwk().bare()});
        assert!(serde_json::from_value::<Confirmation>(honest).is_ok());
    }

    #[test]
    fn refuses_duplicate_nested_actor() {
        let text = r#"{"sub":"a","act":{"sub":"b","sub":"c"}}"#;
        assert!(serde_json::from_str::<Actor>(text).is_err());
    }

    use crate::Signer as _;
}
