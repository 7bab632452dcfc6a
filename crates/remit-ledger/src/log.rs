//! The receipt log: sequencing, signing, durable append, tree heads, proofs.

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::merkle::{leaf_hash, Hash, ProofError, Tree};
use crate::note::NoteSigner;
use crate::receipt::{Event, Receipt};
use crate::signed::{LeafError, ReceiptSigner, SignedReceipt};
use crate::store::{LeafStore, StoreError};

/// Why appending to or reading the log failed.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The store failed; nothing past the last acknowledged index is promised.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Signing or canonicalization failed.
    #[error(transparent)]
    Leaf(#[from] LeafError),
    /// A proof was asked for sizes the log does not have.
    #[error(transparent)]
    Proof(#[from] ProofError),
    /// The checkpoint could not be signed.
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    /// A stored leaf is not a signed receipt at its index (the store was
    /// altered outside this log); run an audit for the details.
    #[error("stored leaf {index} is not a receipt at that index: {reason}")]
    Corrupt {
        /// The first bad index.
        index: u64,
        /// Why.
        reason: String,
    },
}

/// An acknowledged receipt: durable at `index` with `leaf_hash`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The receipt's index (its id in the log).
    pub index: u64,
    /// Its RFC 6962 leaf hash.
    pub leaf_hash: Hash,
}

/// A receipt log over a [`LeafStore`], with its Merkle tree in memory.
#[derive(Debug)]
pub struct Log<S> {
    store: S,
    tree: Tree,
    origin: String,
}

impl<S: LeafStore> Log<S> {
    /// Opens a log over `store`, rebuilding the tree from `leaves` (the
    /// store's contents, in order).
    pub fn open(
        store: S,
        leaves: impl IntoIterator<Item = Vec<u8>>,
        origin: impl Into<String>,
    ) -> Result<Self, LogError> {
        // Opening hashes every leaf but parses only the last (to continue
        // its sequence); checking every signature is the auditor's job.
        let mut tree = Tree::new();
        let mut last: Option<Vec<u8>> = None;
        for leaf in leaves {
            tree.push(leaf_hash(&leaf));
            last = Some(leaf);
        }
        if let Some(leaf) = last {
            let index = tree.size() - 1;
            let parsed = SignedReceipt::parse(&leaf).map_err(|e| LogError::Corrupt {
                index,
                reason: e.to_string(),
            })?;
            if parsed.receipt.index != index {
                return Err(LogError::Corrupt {
                    index,
                    reason: format!("receipt says index {}", parsed.receipt.index),
                });
            }
        }
        if tree.size() != store.len() {
            return Err(LogError::Corrupt {
                index: tree.size().min(store.len()),
                reason: "leaves given do not match the store".into(),
            });
        }
        Ok(Log {
            store,
            tree,
            origin: origin.into(),
        })
    }

    /// An empty log over an empty store.
    pub fn new(store: S, origin: impl Into<String>) -> Result<Self, LogError> {
        Self::open(store, Vec::new(), origin)
    }

    /// Number of receipts.
    pub fn size(&self) -> u64 {
        self.tree.size()
    }

    /// The log's origin (its checkpoint identity).
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// The Merkle tree.
    pub fn tree(&self) -> &Tree {
        &self.tree
    }

    /// The underlying store.
    pub fn store(&self) -> &S {
        &self.store
    }

    /// Signs and durably appends one receipt.
    pub fn append(
        &mut self,
        event: Event,
        signer: &ReceiptSigner<'_>,
    ) -> Result<Appended, LogError> {
        let mut out = self.append_batch(vec![event], signer)?;
        out.pop().ok_or_else(|| LogError::Corrupt {
            index: self.size(),
            reason: "empty batch result".into(),
        })
    }

    /// Signs and durably appends receipts in order with one store sync
    /// (group commit). Either all are acknowledged or none.
    pub fn append_batch(
        &mut self,
        events: Vec<Event>,
        signer: &ReceiptSigner<'_>,
    ) -> Result<Vec<Appended>, LogError> {
        let start = self.size();
        let mut prev = start.checked_sub(1).and_then(|i| self.tree.leaf(i));
        let mut leaves = Vec::with_capacity(events.len());
        let mut hashes = Vec::with_capacity(events.len());
        for (offset, event) in events.into_iter().enumerate() {
            let receipt = Receipt::new(event, start + offset as u64, prev);
            let leaf = signer.sign(&receipt)?;
            let h = leaf_hash(&leaf);
            prev = Some(h);
            hashes.push(h);
            leaves.push(leaf);
        }
        let first = self.store.append_batch(&leaves)?;
        if first != start {
            return Err(LogError::Corrupt {
                index: start,
                reason: format!("store appended at {first}, log expected {start}"),
            });
        }
        Ok(hashes
            .into_iter()
            .enumerate()
            .map(|(i, h)| {
                self.tree.push(h);
                Appended {
                    index: start + i as u64,
                    leaf_hash: h,
                }
            })
            .collect())
    }

    /// The current tree head.
    pub fn checkpoint(&self) -> Checkpoint {
        Checkpoint {
            origin: self.origin.clone(),
            size: self.size(),
            root: self.tree.root(),
        }
    }

    /// The current tree head as a signed note.
    pub fn signed_checkpoint(&self, note_key: &NoteSigner) -> Result<String, LogError> {
        Ok(self.checkpoint().sign(note_key)?)
    }

    /// The inclusion proof of receipt `index` in the current tree.
    pub fn inclusion_proof(&self, index: u64) -> Result<Vec<Hash>, LogError> {
        Ok(self.tree.inclusion_proof(index, self.size())?)
    }

    /// The consistency proof from size `old` to the current tree.
    pub fn consistency_proof(&self, old: u64) -> Result<Vec<Hash>, LogError> {
        Ok(self.tree.consistency_proof(old, self.size())?)
    }

    /// Reads receipt `index`.
    pub fn read(&self, index: u64) -> Result<SignedReceipt, LogError> {
        let leaf = self.store.read(index)?;
        SignedReceipt::parse(&leaf).map_err(|e| LogError::Corrupt {
            index,
            reason: e.to_string(),
        })
    }
}
