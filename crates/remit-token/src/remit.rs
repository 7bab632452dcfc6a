//! One remit: parsing and checking a compact token (minting and delegating
//! are in the `issue` module, which builds on this one and on the chain rules).

use crate::claims::RemitClaims;
use crate::crypto::{CryptoError, VerifyingKey, ES256_SIGNATURE_LEN};
use crate::jws::{self, JwsError, Profile};
use crate::{b64, sha256_b64};

/// Longest `kid` accepted in a remit header, in bytes.
pub const MAX_KID_LEN: usize = 128;
/// Longest root lifetime `mint` accepts: 24 hours.
pub const MAX_ROOT_TTL_SECS: u64 = 24 * 60 * 60;
/// Default lifetime of a root remit: 60 seconds.
pub const DEFAULT_TTL_SECS: u64 = 60;
/// Default deepest delegation depth.
pub const DEFAULT_MAX_DEPTH: u32 = 3;
/// Default `iss` and `aud` of a remit minted by the control plane.
pub const DEFAULT_ISSUER: &str = "remit";
/// Default audience: the Remit gateway.
pub const DEFAULT_AUDIENCE: &str = "remit";

/// Why a compact remit could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RemitError {
    /// The JWS envelope was refused.
    #[error(transparent)]
    Jws(#[from] JwsError),
    /// The `kid` is longer than [`MAX_KID_LEN`] or holds control characters.
    #[error("kid must be at most {MAX_KID_LEN} printable bytes")]
    Kid,
    /// The claims are not a valid remit claim set.
    #[error("invalid remit claims: {0}")]
    Claims(String),
}

/// A remit whose envelope and claims parsed, but whose signature and chain
/// rules have **not** been checked. Read its claims only to display them or
/// to route it to verification.
#[derive(Debug, Clone)]
pub struct UnverifiedRemit {
    compact: String,
    kid: String,
    claims: RemitClaims,
    signing_input_len: usize,
    signature: [u8; ES256_SIGNATURE_LEN],
}

impl UnverifiedRemit {
    /// Parses a compact remit strictly (see [`crate::jws`]).
    pub fn parse(compact: &str) -> Result<Self, RemitError> {
        let parsed = jws::parse(compact, Profile::Remit)?;
        let kid = parsed.kid.unwrap_or_default();
        if kid.len() > MAX_KID_LEN || kid.chars().any(char::is_control) {
            return Err(RemitError::Kid);
        }
        let claims: RemitClaims = serde_json::from_slice(&parsed.payload)
            .map_err(|e| RemitError::Claims(e.to_string()))?;
        Ok(UnverifiedRemit {
            compact: compact.to_owned(),
            kid,
            claims,
            signing_input_len: parsed.signing_input_len,
            signature: parsed.signature,
        })
    }

    /// The claims, unverified.
    pub fn claims(&self) -> &RemitClaims {
        &self.claims
    }

    /// The compact JWS text.
    pub fn compact(&self) -> &str {
        &self.compact
    }

    /// The header `kid`: an issuer key id for a root, the parent's holder
    /// thumbprint for a child.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// base64url SHA-256 of the compact text: what a child's `prf` names and
    /// what a proof's `ath` carries.
    pub fn hash(&self) -> String {
        sha256_b64(self.compact.as_bytes())
    }

    /// Checks the signature under `key`.
    pub(crate) fn verify_signature(&self, key: &VerifyingKey) -> Result<(), CryptoError> {
        let input = &self.compact.as_bytes()[..self.signing_input_len];
        key.verify(input, &self.signature)
    }
}

impl std::fmt::Display for UnverifiedRemit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.compact)
    }
}

/// A fresh random 128-bit token id, base64url.
pub fn fresh_jti() -> Result<String, CryptoError> {
    let mut bytes = [0u8; 16];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| CryptoError::SigningFailed("random source failed".into()))?;
    Ok(b64::encode(bytes))
}
