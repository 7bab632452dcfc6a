//! Remit capability tokens.
//!
//! A *remit* is a short-lived, ES256-signed JWS (`typ: remit+jwt`) that names
//! the user the work is for, the agent holding it, and exactly what it may
//! do. Remits delegate offline: a holder signs a narrower child for a
//! sub-agent with its own key, and anyone with the issuer's public keys can
//! verify the whole chain.
//!
//! This crate is pure: it does no I/O and reads no clock it is not given.
//! Cryptography sits behind the [`crypto::Signer`] seam so that a KMS or HSM
//! signer can replace the in-process [`crypto::EcdsaP256Signer`].

#![forbid(unsafe_code)]

pub mod b64;
pub mod crypto;
pub mod jwk;

pub use crypto::{CryptoError, EcdsaP256Signer, Signer, VerifyingKey};
pub use jwk::{EcPublicJwk, JwkError, PrivateJwk, Thumbprint};
