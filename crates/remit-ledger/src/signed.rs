//! Signed receipts and the leaf format of the log.
//!
//! A receipt is signed as a **detached JWS** (RFC 7515 Appendix F): the
//! protected header is `{"alg":"ES256","kid":<key id>,"typ":"remit-receipt+jws"}`
//! (canonical JSON), the payload is the receipt's RFC 8785 bytes, and the
//! signing input is `b64url(header) "." b64url(payload)`. The stored
//! signature is the compact form with the payload left out:
//! `b64url(header) ".." b64url(r || s)`. Any JOSE library verifies it after
//! putting the base64url payload back between the dots.
//!
//! A log leaf is the canonical JSON `{"receipt":{..},"sig":"<detached JWS>"}`,
//! one line per leaf (canonical JSON never holds a raw newline).

use remit_token::b64;
use remit_token::crypto::{Signer, VerifyingKey};
use serde::Deserialize;

use crate::canonical;
use crate::receipt::{Receipt, ReceiptError, RECEIPT_VERSION};

/// The JWS `typ` of a receipt signature.
pub const RECEIPT_JWS_TYP: &str = "remit-receipt+jws";

/// Why a leaf or its signature was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeafError {
    /// The leaf is not JSON of the leaf shape.
    #[error("leaf is not a signed receipt: {0}")]
    Malformed(String),
    /// The leaf bytes are not RFC 8785 canonical.
    #[error("leaf is not RFC 8785 canonical JSON")]
    NotCanonical,
    /// The receipt has a version this crate does not read.
    #[error(transparent)]
    Receipt(#[from] ReceiptError),
    /// The JWS is not `header..signature` with an ES256 header.
    #[error("receipt signature is malformed: {0}")]
    BadJws(&'static str),
    /// The signing key id is not in the verifier's key set.
    #[error("receipt is signed by key {0:?}, which is not in the JWKS")]
    UnknownKey(String),
    /// The ES256 signature does not verify.
    #[error("receipt signature does not verify under key {0:?}")]
    BadSignature(String),
    /// The signer failed.
    #[error("signing failed: {0}")]
    Signing(String),
}

/// Signs receipts with a gateway key, caching the encoded JWS header.
#[derive(Debug)]
pub struct ReceiptSigner<'a> {
    signer: &'a dyn Signer,
    header_b64: String,
}

impl<'a> ReceiptSigner<'a> {
    /// Wraps an ES256 signer.
    pub fn new(signer: &'a dyn Signer) -> Result<Self, LeafError> {
        let header = serde_json::json!({
            "alg": "ES256",
            "kid": signer.key_id(),
            "typ": RECEIPT_JWS_TYP,
        });
        let header = canonical::to_vec(&header).map_err(ReceiptError::from)?;
        Ok(ReceiptSigner {
            signer,
            header_b64: b64::encode(header),
        })
    }

    /// Signs a receipt and returns the leaf bytes to append.
    pub fn sign(&self, receipt: &Receipt) -> Result<Vec<u8>, LeafError> {
        self.sign_payload(&receipt.canonical()?)
    }

    /// Signs a receipt's canonical bytes (from [`Receipt::canonical`]) and
    /// returns the leaf bytes. Independent per receipt: a caller may sign a
    /// sequenced batch on several threads.
    pub fn sign_payload(&self, payload: &[u8]) -> Result<Vec<u8>, LeafError> {
        let payload_b64 = b64::encode(payload);
        let mut input = String::with_capacity(self.header_b64.len() + 1 + payload_b64.len());
        input.push_str(&self.header_b64);
        input.push('.');
        input.push_str(&payload_b64);
        let sig = self
            .signer
            .sign(input.as_bytes())
            .map_err(|e| LeafError::Signing(e.to_string()))?;
        let sig_b64 = b64::encode(sig);
        // Keys "receipt" < "sig" and the receipt is already canonical; the
        // JWS is base64url and dots, which need no escaping: this is JCS.
        let mut leaf = Vec::with_capacity(payload.len() + input.len() / 3 + 120);
        leaf.extend_from_slice(br#"{"receipt":"#);
        leaf.extend_from_slice(payload);
        leaf.extend_from_slice(br#","sig":""#);
        leaf.extend_from_slice(self.header_b64.as_bytes());
        leaf.extend_from_slice(b"..");
        leaf.extend_from_slice(sig_b64.as_bytes());
        leaf.extend_from_slice(b"\"}");
        Ok(leaf)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LeafJson {
    receipt: serde_json::Value,
    sig: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JwsHeader {
    alg: String,
    kid: String,
    typ: String,
}

/// A parsed leaf: the receipt, its canonical bytes and its signature.
#[derive(Debug, Clone)]
pub struct SignedReceipt {
    /// The receipt.
    pub receipt: Receipt,
    /// The key id that signed it.
    pub kid: String,
    payload: Vec<u8>,
    header_b64: String,
    signature: Vec<u8>,
}

impl SignedReceipt {
    /// Parses a leaf, refusing non-canonical bytes, unknown fields and
    /// receipts that do not re-serialize to the bytes that were signed.
    pub fn parse(leaf: &[u8]) -> Result<Self, LeafError> {
        if !canonical::is_canonical(leaf) {
            // Distinguish "not JSON of this shape" from "not canonical".
            serde_json::from_slice::<LeafJson>(leaf)
                .map_err(|e| LeafError::Malformed(e.to_string()))?;
            return Err(LeafError::NotCanonical);
        }
        let parsed: LeafJson =
            serde_json::from_slice(leaf).map_err(|e| LeafError::Malformed(e.to_string()))?;
        let payload = canonical::to_vec(&parsed.receipt).map_err(ReceiptError::from)?;
        let receipt: Receipt = serde_json::from_value(parsed.receipt)
            .map_err(|e| LeafError::Malformed(e.to_string()))?;
        if receipt.v != RECEIPT_VERSION {
            return Err(ReceiptError::UnsupportedVersion(receipt.v).into());
        }
        if receipt.canonical()? != payload {
            return Err(LeafError::Malformed(
                "receipt has fields this version does not define".into(),
            ));
        }
        let mut parts = parsed.sig.split('.');
        let (Some(h), Some(""), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(LeafError::BadJws("expected `header..signature`"));
        };
        let header_bytes =
            b64::decode(h).map_err(|_| LeafError::BadJws("header is not base64url"))?;
        let header: JwsHeader = serde_json::from_slice(&header_bytes)
            .map_err(|_| LeafError::BadJws("header is not {alg,kid,typ}"))?;
        if header.alg != "ES256" {
            return Err(LeafError::BadJws("alg must be ES256"));
        }
        if header.typ != RECEIPT_JWS_TYP {
            return Err(LeafError::BadJws("typ must be remit-receipt+jws"));
        }
        let signature =
            b64::decode(s).map_err(|_| LeafError::BadJws("signature is not base64url"))?;
        Ok(SignedReceipt {
            receipt,
            kid: header.kid,
            payload,
            header_b64: h.to_owned(),
            signature,
        })
    }

    /// SHA-256 of the canonical receipt bytes (what the next receipt links to).
    pub fn receipt_hash(&self) -> crate::merkle::Hash {
        crate::receipt::receipt_hash(&self.payload)
    }

    /// The canonical receipt bytes that were signed.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Verifies the signature with the key `lookup` returns for its `kid`.
    pub fn verify<'k>(
        &self,
        lookup: impl FnOnce(&str) -> Option<&'k VerifyingKey>,
    ) -> Result<(), LeafError> {
        let key = lookup(&self.kid).ok_or_else(|| LeafError::UnknownKey(self.kid.clone()))?;
        let mut input = self.header_b64.clone();
        input.push('.');
        input.push_str(&b64::encode(&self.payload));
        key.verify(input.as_bytes(), &self.signature)
            .map_err(|_| LeafError::BadSignature(self.kid.clone()))
    }
}
