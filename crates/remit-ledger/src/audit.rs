//! Offline audit: recompute every leaf, signature, link and tree head.
//!
//! An auditor needs only public material: the gateway's JWKS (ES256 receipt
//! keys), the log's note verifier key, the leaves, the current signed
//! checkpoint, and optionally an earlier checkpoint it saved. [`Auditor`]
//! checks leaves one by one and stops at the first broken one, so the
//! answer is always "the first bad index and why".

use std::collections::BTreeMap;

use remit_token::crypto::VerifyingKey;
use remit_token::jwk::EcPublicJwk;
use serde::Deserialize;

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::merkle::{leaf_hash, verify_consistency, Hash, Tree};
use crate::note::NoteVerifier;
use crate::signed::{LeafError, SignedReceipt};

/// Why a JWKS was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    /// Not `{"keys":[...]}` of P-256 JWKs.
    #[error("malformed JWKS: {0}")]
    Malformed(String),
    /// A key is invalid.
    #[error("JWKS key {kid:?}: {reason}")]
    BadKey {
        /// The key's id.
        kid: String,
        /// Why.
        reason: String,
    },
}

/// The receipt verification keys, by `kid`.
#[derive(Debug, Default)]
pub struct Jwks {
    keys: BTreeMap<String, VerifyingKey>,
}

impl Jwks {
    /// Parses `{"keys":[...]}`; a key without `kid` is known by its RFC 7638
    /// thumbprint.
    pub fn from_json(text: &str) -> Result<Self, JwksError> {
        #[derive(Deserialize)]
        struct Set {
            keys: Vec<EcPublicJwk>,
        }
        let set: Set =
            serde_json::from_str(text).map_err(|e| JwksError::Malformed(e.to_string()))?;
        let mut keys = BTreeMap::new();
        for jwk in set.keys {
            let kid = jwk
                .kid
                .clone()
                .unwrap_or_else(|| jwk.thumbprint().as_str().to_owned());
            let key = VerifyingKey::from_jwk(&jwk).map_err(|e| JwksError::BadKey {
                kid: kid.clone(),
                reason: e.to_string(),
            })?;
            keys.insert(kid, key);
        }
        Ok(Jwks { keys })
    }

    /// A key set from verifying keys and their ids.
    pub fn from_keys(keys: impl IntoIterator<Item = (String, VerifyingKey)>) -> Self {
        Jwks {
            keys: keys.into_iter().collect(),
        }
    }

    /// The key for `kid`.
    pub fn get(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.get(kid)
    }
}

/// The first thing wrong with a log, with the index where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuditError {
    /// The leaf is malformed, not canonical, or its signature fails or is
    /// by an unknown key: it was altered or re-signed.
    #[error("receipt {index}: {reason}")]
    BadLeaf {
        /// The leaf's index.
        index: u64,
        /// Why.
        reason: LeafError,
    },
    /// The receipt at this position claims another index: receipts were
    /// dropped, inserted or reordered here.
    #[error(
        "position {index} holds receipt {claimed}: receipts were dropped, inserted or reordered"
    )]
    OutOfOrder {
        /// The position in the log.
        index: u64,
        /// The index the receipt claims.
        claimed: u64,
    },
    /// The receipt's link to its predecessor does not match the receipt
    /// actually there: the previous receipt was replaced.
    #[error("receipt {index} does not link to the receipt before it: receipt {} was replaced", index - 1)]
    BrokenLink {
        /// The receipt whose link fails.
        index: u64,
    },
    /// The current checkpoint is malformed, for another log, or not signed
    /// by the log's note key.
    #[error("checkpoint: {0}")]
    Checkpoint(CheckpointError),
    /// The earlier checkpoint is malformed or not signed by the note key.
    #[error("earlier checkpoint: {0}")]
    EarlierCheckpoint(CheckpointError),
    /// A checkpoint covers more receipts than the log holds: the log was
    /// truncated and receipts from `log_size` on are missing.
    #[error("checkpoint covers {checkpoint_size} receipts but the log holds {log_size}: receipts from {log_size} on are missing")]
    Truncated {
        /// Receipts in the log.
        log_size: u64,
        /// Receipts the checkpoint covers.
        checkpoint_size: u64,
    },
    /// The recomputed tree head differs from the signed checkpoint's.
    #[error("the tree head of the first {size} receipts does not match the checkpoint: the log was rewritten")]
    RootMismatch {
        /// The checkpoint's size.
        size: u64,
    },
    /// The current checkpoint is smaller than the earlier one: the log was
    /// rolled back.
    #[error("current checkpoint ({current}) is smaller than the earlier one ({earlier}): the log was rolled back")]
    Rollback {
        /// The earlier checkpoint's size.
        earlier: u64,
        /// The current checkpoint's size.
        current: u64,
    },
    /// The log's first `earlier` receipts are not the ones the earlier
    /// checkpoint committed to: history was forked or rewritten.
    #[error("the log is not consistent with the earlier checkpoint of size {earlier}: history before receipt {earlier} was forked or rewritten")]
    Inconsistent {
        /// The earlier checkpoint's size.
        earlier: u64,
    },
}

impl AuditError {
    /// The first receipt index the error implicates, when there is one.
    pub fn index(&self) -> Option<u64> {
        match self {
            AuditError::BadLeaf { index, .. }
            | AuditError::OutOfOrder { index, .. }
            | AuditError::BrokenLink { index } => Some(*index),
            AuditError::Truncated { log_size, .. } => Some(*log_size),
            _ => None,
        }
    }

    /// A short machine-readable name of the failure.
    pub fn code(&self) -> &'static str {
        match self {
            AuditError::BadLeaf { reason, .. } => match reason {
                LeafError::UnknownKey(_) => "unknown_key",
                LeafError::BadSignature(_) => "bad_signature",
                LeafError::NotCanonical => "not_canonical",
                _ => "malformed_leaf",
            },
            AuditError::OutOfOrder { .. } => "out_of_order",
            AuditError::BrokenLink { .. } => "broken_link",
            AuditError::Checkpoint(_) => "bad_checkpoint",
            AuditError::EarlierCheckpoint(_) => "bad_earlier_checkpoint",
            AuditError::Truncated { .. } => "truncated",
            AuditError::RootMismatch { .. } => "root_mismatch",
            AuditError::Rollback { .. } => "rollback",
            AuditError::Inconsistent { .. } => "inconsistent",
        }
    }
}

/// What a successful audit established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditReport {
    /// Receipts checked.
    pub size: u64,
    /// The recomputed tree head of all of them.
    pub root: Hash,
    /// The signed checkpoint, now verified.
    pub checkpoint: Checkpoint,
    /// Receipts after the checkpoint (appended after it was signed, or
    /// before a crash let the checkpoint be rewritten): signed and linked,
    /// but not yet committed to by a tree head.
    pub unsealed: u64,
    /// The earlier checkpoint the log was shown consistent with.
    pub earlier: Option<Checkpoint>,
    /// How many receipts each key signed.
    pub signers: BTreeMap<String, u64>,
}

/// Checks leaves in order, then the checkpoints.
#[derive(Debug)]
pub struct Auditor<'k> {
    jwks: &'k Jwks,
    tree: Tree,
    prev_receipt: Option<Hash>,
    signers: BTreeMap<String, u64>,
}

impl<'k> Auditor<'k> {
    /// An auditor trusting `jwks` for receipt signatures.
    pub fn new(jwks: &'k Jwks) -> Self {
        Auditor {
            jwks,
            tree: Tree::new(),
            prev_receipt: None,
            signers: BTreeMap::new(),
        }
    }

    /// Receipts checked so far.
    pub fn size(&self) -> u64 {
        self.tree.size()
    }

    /// Checks the next leaf: canonical form, signature, index, link.
    pub fn push(&mut self, leaf: &[u8]) -> Result<(), AuditError> {
        let index = self.tree.size();
        let bad = |reason| AuditError::BadLeaf { index, reason };
        let signed = SignedReceipt::parse(leaf).map_err(bad)?;
        if signed.receipt.index != index {
            return Err(AuditError::OutOfOrder {
                index,
                claimed: signed.receipt.index,
            });
        }
        signed.verify(|kid| self.jwks.get(kid)).map_err(bad)?;
        let linked = match (&signed.receipt.prev, self.prev_receipt) {
            (None, None) => true,
            (Some(link), Some(h)) => link.index + 1 == index && link.hash == h,
            _ => false,
        };
        if !linked {
            return Err(AuditError::BrokenLink { index });
        }
        self.prev_receipt = Some(signed.receipt_hash());
        *self.signers.entry(signed.kid).or_default() += 1;
        self.tree.push(leaf_hash(leaf));
        Ok(())
    }

    /// Checks the signed checkpoint against the recomputed tree, and the
    /// earlier checkpoint (if any) for consistency.
    pub fn finish(
        self,
        checkpoint: &str,
        verifier: &NoteVerifier,
        earlier: Option<&str>,
    ) -> Result<AuditReport, AuditError> {
        let log_size = self.tree.size();
        let current = Checkpoint::open(checkpoint, verifier).map_err(AuditError::Checkpoint)?;
        let earlier = earlier
            .map(|e| Checkpoint::open(e, verifier).map_err(AuditError::EarlierCheckpoint))
            .transpose()?;
        if let Some(e) = &earlier {
            if e.size > current.size {
                return Err(AuditError::Rollback {
                    earlier: e.size,
                    current: current.size,
                });
            }
        }
        if current.size > log_size {
            return Err(AuditError::Truncated {
                log_size,
                checkpoint_size: current.size,
            });
        }
        let root = |size| {
            self.tree.root_at(size).map_err(|_| AuditError::Truncated {
                log_size,
                checkpoint_size: size,
            })
        };
        if root(current.size)? != current.root {
            return Err(AuditError::RootMismatch { size: current.size });
        }
        if let Some(e) = &earlier {
            // The auditor holds every leaf, so it recomputes the old head
            // directly; the proof check shows the same with what a client
            // without the leaves would be given.
            let proof = self
                .tree
                .consistency_proof(e.size, current.size)
                .map_err(|_| AuditError::Inconsistent { earlier: e.size })?;
            if root(e.size)? != e.root
                || verify_consistency(e.size, current.size, &proof, &e.root, &current.root).is_err()
            {
                return Err(AuditError::Inconsistent { earlier: e.size });
            }
        }
        Ok(AuditReport {
            size: log_size,
            root: self.tree.root(),
            unsealed: log_size - current.size,
            checkpoint: current,
            earlier,
            signers: self.signers,
        })
    }
}

/// Audits a whole log in one call.
pub fn audit<L: AsRef<[u8]>>(
    leaves: impl IntoIterator<Item = L>,
    jwks: &Jwks,
    checkpoint: &str,
    verifier: &NoteVerifier,
    earlier: Option<&str>,
) -> Result<AuditReport, AuditError> {
    let mut auditor = Auditor::new(jwks);
    for leaf in leaves {
        auditor.push(leaf.as_ref())?;
    }
    auditor.finish(checkpoint, verifier, earlier)
}
