//! Proof of possession (RFC 9449 shape): a small JWS the leaf holder signs
//! for each call, binding the HTTP method and URI, a time and the leaf remit
//! (`ath`), so a stolen chain without the holder's key authorizes nothing.
//! A [`ReplayCache`] the server owns refuses a proof `jti` seen before.

use std::collections::{HashMap, VecDeque};

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::chain::VerifiedChain;
use crate::crypto::{CryptoError, Signer, VerifyingKey};
use crate::jwk::{EcPublicJwk, JwkError};
use crate::jws::{self, JwsError, Profile};
use crate::remit::fresh_jti;

pub use crate::jws::PROOF_TYP;
/// Longest proof `jti` accepted, in bytes.
pub const MAX_PROOF_JTI_LEN: usize = 64;

/// Why a proof was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The JWS envelope was refused.
    #[error(transparent)]
    Jws(#[from] JwsError),
    /// The header `jwk` is not a P-256 public key.
    #[error("proof jwk: {0}")]
    Key(JwkError),
    /// The claims are not `{jti, htm, htu, iat, ath}`.
    #[error("invalid proof claims: {0}")]
    Claims(String),
    /// The proof key is not the leaf remit's holder key.
    #[error("proof is signed by a key other than the remit's holder key")]
    NotHolder,
    /// The signature does not verify.
    #[error("proof signature does not verify")]
    BadSignature,
    /// `htm` is not the request's method.
    #[error("proof htm {found:?} is not the request method {expected:?}")]
    Method {
        /// The request's method.
        expected: String,
        /// The claim.
        found: String,
    },
    /// `htu` is not the request's URI.
    #[error("proof htu {found:?} is not the request URI {expected:?}")]
    Uri {
        /// The request's URI.
        expected: String,
        /// The claim.
        found: String,
    },
    /// `iat` is further from `now` than the allowed skew.
    #[error("proof iat {iat} is outside {max_skew} s of now ({now})")]
    Stale {
        /// The claim.
        iat: u64,
        /// The time given.
        now: u64,
        /// The allowed skew.
        max_skew: u64,
    },
    /// `ath` is not the hash of the presented leaf remit.
    #[error("proof ath does not match the presented remit")]
    RemitMismatch,
    /// The header `jwk` carries a private key member (`d`): the holder's key
    /// has leaked and the proof is refused.
    #[error("proof header jwk carries a private key")]
    PrivateKeyInHeader,
    /// `jti` is empty or longer than [`MAX_PROOF_JTI_LEN`].
    #[error("proof jti must be 1 to {MAX_PROOF_JTI_LEN} bytes")]
    Jti,
}

impl From<JwkError> for ProofError {
    fn from(error: JwkError) -> Self {
        ProofError::Key(error)
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProofClaims {
    jti: String,
    htm: String,
    htu: String,
    iat: u64,
    ath: String,
}

/// Detects a private-key member in a header JWK.
#[derive(Deserialize)]
struct PrivateMember {
    #[serde(default)]
    d: Option<serde::de::IgnoredAny>,
}

impl PrivateMember {
    fn present(json: &str) -> bool {
        // The JWK already parsed as an object, so this parse succeeds too.
        serde_json::from_str::<PrivateMember>(json).map_or(true, |m| m.d.is_some())
    }
}

/// The request a proof is made for.
#[derive(Debug, Clone, Copy)]
pub struct ProofRequest<'a> {
    /// HTTP method, e.g. `POST`.
    pub htm: &'a str,
    /// HTTP URI without query or fragment, e.g. `https://gw.example/mcp`.
    pub htu: &'a str,
}

/// A proof that verified; the caller must still pass its `jti` through a
/// [`ReplayCache`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedProof {
    /// The proof's unique id.
    pub jti: String,
    /// When the proof was made.
    pub iat: u64,
}

/// Signs a proof for `request` with the leaf holder key at time `now`.
pub fn create_proof(
    holder: &dyn Signer,
    chain_leaf_compact: &str,
    request: ProofRequest<'_>,
    now: u64,
) -> Result<String, CryptoError> {
    let header = json!({"alg": "ES256", "typ": PROOF_TYP, "jwk": holder.public_jwk().bare()});
    let claims = ProofClaims {
        jti: fresh_jti()?,
        htm: request.htm.to_owned(),
        htu: request.htu.to_owned(),
        iat: now,
        ath: crate::sha256_b64(chain_leaf_compact.as_bytes()),
    };
    let payload = serde_json::to_vec(&claims)
        .map_err(|e| CryptoError::SigningFailed(format!("proof encoding: {e}")))?;
    jws::sign(&header, &payload, holder)
}

/// Verifies a proof against the chain's leaf holder key and the request,
/// at time `now`, accepting `iat` within `max_skew_secs` either way.
pub fn verify_proof(
    proof: &str,
    chain: &VerifiedChain,
    request: ProofRequest<'_>,
    now: u64,
    max_skew_secs: u64,
) -> Result<VerifiedProof, ProofError> {
    let parsed = jws::parse(proof, Profile::Proof)?;
    // INVARIANT: Profile::Proof refuses a header without jwk.
    let raw_jwk = parsed
        .jwk
        .as_ref()
        .ok_or(JwsError::MissingParameter("jwk"))?;
    let jwk = EcPublicJwk::from_json(raw_jwk.get())?;
    if PrivateMember::present(raw_jwk.get()) {
        return Err(ProofError::PrivateKeyInHeader);
    }
    if &jwk.thumbprint() != chain.holder() {
        return Err(ProofError::NotHolder);
    }
    let key = VerifyingKey::from_jwk(&jwk).map_err(|_| ProofError::NotHolder)?;
    key.verify(
        &proof.as_bytes()[..parsed.signing_input_len],
        &parsed.signature,
    )
    .map_err(|_| ProofError::BadSignature)?;
    let claims: ProofClaims =
        serde_json::from_slice(&parsed.payload).map_err(|e| ProofError::Claims(e.to_string()))?;
    if claims.jti.is_empty() || claims.jti.len() > MAX_PROOF_JTI_LEN {
        return Err(ProofError::Jti);
    }
    if claims.htm != request.htm {
        return Err(ProofError::Method {
            expected: request.htm.to_owned(),
            found: claims.htm,
        });
    }
    if claims.htu != request.htu {
        return Err(ProofError::Uri {
            expected: request.htu.to_owned(),
            found: claims.htu,
        });
    }
    if claims.iat.abs_diff(now) > max_skew_secs {
        return Err(ProofError::Stale {
            iat: claims.iat,
            now,
            max_skew: max_skew_secs,
        });
    }
    if claims.ath != chain.leaf_hash() {
        return Err(ProofError::RemitMismatch);
    }
    Ok(VerifiedProof {
        jti: claims.jti,
        iat: claims.iat,
    })
}

/// Why a proof was refused by the replay cache.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplayError {
    /// This `jti` was already used inside the window.
    #[error("proof jti {0:?} was already used")]
    Replayed(String),
    /// The proof is older than the window the cache remembers.
    #[error("proof is older than the replay window")]
    OutsideWindow,
    /// The cache is full of live entries; refusing is the safe answer.
    #[error("replay cache is full")]
    Full,
}

/// Remembers proof `jti`s for a time window, with a bounded number of
/// entries. Use the same window as the proof's max skew: a proof outside it
/// is refused by [`verify_proof`] anyway.
#[derive(Debug)]
pub struct ReplayCache {
    window_secs: u64,
    capacity: usize,
    seen: HashMap<String, u64>,
    order: VecDeque<(u64, String)>,
}

impl ReplayCache {
    /// A cache of at most `capacity` live `jti`s, each remembered until its
    /// proof's `iat + window_secs`.
    pub fn new(capacity: usize, window_secs: u64) -> Self {
        ReplayCache {
            window_secs,
            capacity,
            seen: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// How many entries are held (live or not yet purged).
    pub fn len(&self) -> usize {
        self.seen.len()
    }

    /// Whether no entry is held.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty()
    }

    fn purge(&mut self, now: u64) {
        while let Some((expiry, _)) = self.order.front() {
            if *expiry > now {
                break;
            }
            if let Some((expiry, jti)) = self.order.pop_front() {
                if self.seen.get(&jti) == Some(&expiry) {
                    self.seen.remove(&jti);
                }
            }
        }
    }

    /// Records `jti` (of a proof made at `iat`) at time `now`; refuses it if
    /// seen before within the window.
    pub fn check_and_insert(&mut self, jti: &str, iat: u64, now: u64) -> Result<(), ReplayError> {
        let expiry = iat.saturating_add(self.window_secs).saturating_add(1);
        if expiry <= now {
            return Err(ReplayError::OutsideWindow);
        }
        self.purge(now);
        if let Some(&until) = self.seen.get(jti) {
            if until > now {
                return Err(ReplayError::Replayed(jti.to_owned()));
            }
        }
        if self.seen.len() >= self.capacity {
            self.seen.retain(|_, until| *until > now);
            self.order.retain(|(until, _)| *until > now);
            if self.seen.len() >= self.capacity {
                return Err(ReplayError::Full);
            }
        }
        self.seen.insert(jti.to_owned(), expiry);
        self.order.push_back((expiry, jti.to_owned()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_replayed_jti_inside_window() {
        let mut cache = ReplayCache::new(8, 60);
        cache.check_and_insert("a", 100, 100).unwrap();
        assert_eq!(
            cache.check_and_insert("a", 100, 130),
            Err(ReplayError::Replayed("a".into()))
        );
        // After the window the proof itself is refused as too old.
        assert_eq!(
            cache.check_and_insert("a", 100, 200),
            Err(ReplayError::OutsideWindow)
        );
    }

    #[test]
    fn refuses_when_full_of_live_entries_and_recovers_after_window() {
        let mut cache = ReplayCache::new(2, 10);
        cache.check_and_insert("a", 100, 100).unwrap();
        cache.check_and_insert("b", 100, 100).unwrap();
        assert_eq!(
            cache.check_and_insert("c", 100, 100),
            Err(ReplayError::Full)
        );
        cache.check_and_insert("c", 150, 150).unwrap();
        assert_eq!(cache.len(), 1);
    }
}
