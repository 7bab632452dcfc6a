//! The cryptography seam: ES256 signing and verification.
//!
//! Everything above this module (claims, chains, proofs, receipts) signs
//! through [`Signer`] and verifies through [`VerifyingKey`]. The in-process
//! implementation uses `aws-lc-rs`; a KMS or HSM signer implements
//! [`Signer`] and plugs in without touching claim or chain logic.

use aws_lc_rs::encoding::AsBigEndian as _;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, KeyPair as _, ParsedPublicKey, ECDSA_P256_SHA256_FIXED,
    ECDSA_P256_SHA256_FIXED_SIGNING,
};

use crate::b64;
use crate::jwk::{EcPublicJwk, JwkError, PrivateJwk, Thumbprint};

/// Length of an ES256 signature in JWS form (`r || s`, RFC 7518 §3.4).
pub const ES256_SIGNATURE_LEN: usize = 64;

/// Why a cryptographic operation failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// The key material is not a valid P-256 key.
    #[error(transparent)]
    Key(#[from] JwkError),
    /// The signature does not verify under the key.
    #[error("ES256 signature does not verify")]
    BadSignature,
    /// The signer failed (an HSM or KMS error, or a random source failure).
    #[error("signing failed: {0}")]
    SigningFailed(String),
}

/// Something that produces ES256 signatures: an in-process key, a KMS, an HSM.
pub trait Signer: Send + Sync + std::fmt::Debug {
    /// The key id published in JWKS and placed in the JWS `kid` header.
    fn key_id(&self) -> &str;

    /// The public half, for JWKS publication and thumbprints.
    fn public_jwk(&self) -> &EcPublicJwk;

    /// Signs `message`, returning the 64-byte `r || s` signature.
    fn sign(&self, message: &[u8]) -> Result<[u8; ES256_SIGNATURE_LEN], CryptoError>;
}

/// An in-process P-256 private key backed by `aws-lc-rs`.
pub struct EcdsaP256Signer {
    key_pair: EcdsaKeyPair,
    public: EcPublicJwk,
    kid: String,
    rng: SystemRandom,
}

impl std::fmt::Debug for EcdsaP256Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EcdsaP256Signer")
            .field("kid", &self.kid)
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl EcdsaP256Signer {
    /// Generates a fresh key; its `kid` is the key's RFC 7638 thumbprint.
    pub fn generate() -> Result<Self, CryptoError> {
        let key_pair = EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING)
            .map_err(|_| CryptoError::SigningFailed("key generation failed".into()))?;
        Self::from_key_pair(key_pair, None)
    }

    /// Loads a key from a private JWK; the JWK's `kid` is kept when present,
    /// otherwise the thumbprint serves as `kid`.
    pub fn from_jwk(jwk: &PrivateJwk) -> Result<Self, CryptoError> {
        let public = jwk.public.sec1()?;
        let scalar = jwk.scalar()?;
        let key_pair = EcdsaKeyPair::from_private_key_and_public_key(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &scalar,
            &public,
        )
        .map_err(|_| JwkError::InvalidKey("private scalar does not match the public point"))?;
        Self::from_key_pair(key_pair, jwk.public.kid.clone())
    }

    fn from_key_pair(key_pair: EcdsaKeyPair, kid: Option<String>) -> Result<Self, CryptoError> {
        let public = EcPublicJwk::from_sec1(key_pair.public_key().as_ref())?;
        let kid = kid.unwrap_or_else(|| public.thumbprint().as_str().to_owned());
        Ok(EcdsaP256Signer {
            key_pair,
            public,
            kid,
            rng: SystemRandom::new(),
        })
    }

    /// The private key as a JWK, for writing to a 0600 key file.
    pub fn to_private_jwk(&self) -> Result<PrivateJwk, CryptoError> {
        let scalar = self
            .key_pair
            .private_key()
            .as_be_bytes()
            .map_err(|_| CryptoError::SigningFailed("private key export failed".into()))?;
        Ok(PrivateJwk {
            public: self.public.clone().published(self.kid.clone()),
            d: b64::encode(scalar.as_ref()),
        })
    }

    /// The thumbprint of the public key (what `cnf.jkt` names).
    pub fn thumbprint(&self) -> Thumbprint {
        self.public.thumbprint()
    }
}

impl Signer for EcdsaP256Signer {
    fn key_id(&self) -> &str {
        &self.kid
    }

    fn public_jwk(&self) -> &EcPublicJwk {
        &self.public
    }

    fn sign(&self, message: &[u8]) -> Result<[u8; ES256_SIGNATURE_LEN], CryptoError> {
        let sig = self
            .key_pair
            .sign(&self.rng, message)
            .map_err(|_| CryptoError::SigningFailed("ECDSA signing failed".into()))?;
        sig.as_ref()
            .try_into()
            .map_err(|_| CryptoError::SigningFailed("unexpected signature length".into()))
    }
}

/// A parsed P-256 public key, ready to verify ES256 signatures.
///
/// Parsing checks that the point is on the curve once, so each verify pays
/// only for the signature check.
pub struct VerifyingKey {
    key: ParsedPublicKey,
    jwk: EcPublicJwk,
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("jwk", &self.jwk)
            .finish()
    }
}

impl VerifyingKey {
    /// Parses and validates a public JWK.
    pub fn from_jwk(jwk: &EcPublicJwk) -> Result<Self, CryptoError> {
        let sec1 = jwk.sec1()?;
        let key = ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, sec1)
            .map_err(|_| JwkError::InvalidKey("point is not on the P-256 curve"))?;
        Ok(VerifyingKey {
            key,
            jwk: jwk.clone(),
        })
    }

    /// The JWK this key was parsed from.
    pub fn jwk(&self) -> &EcPublicJwk {
        &self.jwk
    }

    /// Verifies a 64-byte `r || s` ES256 signature over `message`.
    ///
    /// Any other signature length, and r or s of zero or not below the group
    /// order (CVE-2022-21449), is refused.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> Result<(), CryptoError> {
        if signature.len() != ES256_SIGNATURE_LEN {
            return Err(CryptoError::BadSignature);
        }
        self.key
            .verify_sig(message, signature)
            .map_err(|_| CryptoError::BadSignature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_then_verify_round_trips_through_jwk() {
        let signer = EcdsaP256Signer::generate().unwrap();
        let reloaded = EcdsaP256Signer::from_jwk(&signer.to_private_jwk().unwrap()).unwrap();
        assert_eq!(reloaded.key_id(), signer.key_id());
        let sig = reloaded.sign(b"hello").unwrap();
        let key = VerifyingKey::from_jwk(signer.public_jwk()).unwrap();
        key.verify(b"hello", &sig).unwrap();
        assert_eq!(key.verify(b"hellp", &sig), Err(CryptoError::BadSignature));
    }

    #[test]
    fn refuses_zero_signature() {
        let signer = EcdsaP256Signer::generate().unwrap();
        let key = VerifyingKey::from_jwk(signer.public_jwk()).unwrap();
        assert_eq!(key.verify(b"m", &[0u8; 64]), Err(CryptoError::BadSignature));
        assert_eq!(key.verify(b"m", &[1u8; 63]), Err(CryptoError::BadSignature));
    }

    #[test]
    fn refuses_mismatched_private_scalar() {
        let a = EcdsaP256Signer::generate()
            .unwrap()
            .to_private_jwk()
            .unwrap();
        let b = EcdsaP256Signer::generate()
            .unwrap()
            .to_private_jwk()
            .unwrap();
        let mixed = PrivateJwk {
            public: a.public,
            d: b.d,
        };
        assert!(EcdsaP256Signer::from_jwk(&mixed).is_err());
    }

    #[test]
    fn refuses_point_off_curve() {
        let signer = EcdsaP256Signer::generate().unwrap();
        let mut jwk = signer.public_jwk().clone();
        jwk.y = jwk.x.clone();
        assert!(VerifyingKey::from_jwk(&jwk).is_err());
    }
}
