//! The receipt log: sequencing, signing, durable append, tree heads, proofs.

use crate::checkpoint::{Checkpoint, CheckpointError};
use crate::merkle::{leaf_hash, Hash, ProofError, Tree};
use crate::note::NoteSigner;
use crate::receipt::{receipt_hash, Event, Receipt};
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
    /// A sequenced batch no longer fits: the log grew since it was sequenced.
    #[error(
        "batch was sequenced at {sequenced_at} but the log now ends at {size}; sequence it again"
    )]
    Stale {
        /// Where the batch was sequenced.
        sequenced_at: u64,
        /// The log's size now.
        size: u64,
    },
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
    /// [`receipt_hash`] of the last receipt, for the next one's link.
    last_receipt: Option<Hash>,
}

/// A batch of receipts sequenced after the log's current end: indexes and
/// links assigned, canonical bytes computed, not yet signed.
///
/// Signing is independent per receipt, so a server signs
/// [`Sequenced::payloads`] on as many threads as it likes (this crate spawns
/// none), then hands the leaves to [`Log::commit`].
#[derive(Debug, Clone)]
pub struct Sequenced {
    start: u64,
    payloads: Vec<Vec<u8>>,
    last_receipt: Option<Hash>,
}

impl Sequenced {
    /// The canonical receipt bytes to sign, in order.
    pub fn payloads(&self) -> &[Vec<u8>] {
        &self.payloads
    }

    /// The index of the first receipt.
    pub fn start(&self) -> u64 {
        self.start
    }
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
        let mut last_receipt = None;
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
            last_receipt = Some(parsed.receipt_hash());
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
            last_receipt,
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
        let sequenced = self.sequence(events)?;
        let leaves = sequenced
            .payloads
            .iter()
            .map(|p| signer.sign_payload(p))
            .collect::<Result<Vec<_>, _>>()?;
        self.commit(sequenced, leaves)
    }

    /// Assigns indexes and links to `events` after the current end.
    pub fn sequence(&self, events: Vec<Event>) -> Result<Sequenced, LogError> {
        let start = self.size();
        let mut prev = self.last_receipt;
        let mut payloads = Vec::with_capacity(events.len());
        for (offset, event) in events.into_iter().enumerate() {
            let receipt = Receipt::new(event, start + offset as u64, prev);
            let payload = receipt.canonical().map_err(LeafError::from)?;
            prev = Some(receipt_hash(&payload));
            payloads.push(payload);
        }
        Ok(Sequenced {
            start,
            payloads,
            last_receipt: prev,
        })
    }

    /// Durably appends the signed leaves of a sequenced batch (one store
    /// sync). Refuses a batch sequenced against another log end, or leaves
    /// that are not the sequenced receipts.
    pub fn commit(
        &mut self,
        sequenced: Sequenced,
        leaves: Vec<Vec<u8>>,
    ) -> Result<Vec<Appended>, LogError> {
        let start = self.size();
        if sequenced.start != start || leaves.len() != sequenced.payloads.len() {
            return Err(LogError::Stale {
                sequenced_at: sequenced.start,
                size: start,
            });
        }
        const PREFIX: &[u8] = br#"{"receipt":"#;
        for (i, (leaf, payload)) in leaves.iter().zip(&sequenced.payloads).enumerate() {
            if !leaf.starts_with(PREFIX) || !leaf[PREFIX.len()..].starts_with(payload) {
                return Err(LogError::Corrupt {
                    index: start + i as u64,
                    reason: "signed leaf does not hold the sequenced receipt".into(),
                });
            }
        }
        let first = self.store.append_batch(&leaves)?;
        if first != start {
            return Err(LogError::Corrupt {
                index: start,
                reason: format!("store appended at {first}, log expected {start}"),
            });
        }
        if !leaves.is_empty() {
            self.last_receipt = sequenced.last_receipt;
        }
        Ok(leaves
            .iter()
            .enumerate()
            .map(|(i, leaf)| {
                let h = leaf_hash(leaf);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receipt::Kind;
    use crate::store::MemoryStore;
    use remit_token::crypto::EcdsaP256Signer;

    #[test]
    fn refuses_a_batch_sequenced_before_the_log_grew() {
        let key = EcdsaP256Signer::generate().unwrap();
        let signer = ReceiptSigner::new(&key).unwrap();
        let mut log = Log::new(MemoryStore::new(), "o").unwrap();
        let stale = log.sequence(vec![Event::new(Kind::Allow, 1)]).unwrap();
        log.append(Event::new(Kind::Deny, 2), &signer).unwrap();
        let leaves = vec![signer.sign_payload(&stale.payloads()[0]).unwrap()];
        assert!(matches!(
            log.commit(stale, leaves),
            Err(LogError::Stale {
                sequenced_at: 0,
                size: 1
            })
        ));
        assert_eq!(log.size(), 1);
    }

    #[test]
    fn refuses_leaves_that_are_not_the_sequenced_receipts() {
        let key = EcdsaP256Signer::generate().unwrap();
        let signer = ReceiptSigner::new(&key).unwrap();
        let mut log = Log::new(MemoryStore::new(), "o").unwrap();
        let a = log.sequence(vec![Event::new(Kind::Allow, 1)]).unwrap();
        let b = log.sequence(vec![Event::new(Kind::Deny, 1)]).unwrap();
        let wrong = vec![signer.sign_payload(&b.payloads()[0]).unwrap()];
        assert!(matches!(
            log.commit(a, wrong),
            Err(LogError::Corrupt { index: 0, .. })
        ));
        assert_eq!(log.size(), 0);
    }

    #[test]
    fn parallel_signed_batch_equals_a_sequential_one_in_structure() {
        let key = EcdsaP256Signer::generate().unwrap();
        let signer = ReceiptSigner::new(&key).unwrap();
        let mut log = Log::new(MemoryStore::new(), "o").unwrap();
        log.append(Event::new(Kind::Issue, 0), &signer).unwrap();
        let seq = log
            .sequence((1..9).map(|t| Event::new(Kind::Allow, t)).collect())
            .unwrap();
        let (left, right) = seq.payloads().split_at(4);
        let leaves = std::thread::scope(|s| {
            let l = s.spawn(|| {
                left.iter()
                    .map(|p| signer.sign_payload(p).unwrap())
                    .collect::<Vec<_>>()
            });
            let r: Vec<_> = right
                .iter()
                .map(|p| signer.sign_payload(p).unwrap())
                .collect();
            let mut all = l.join().unwrap();
            all.extend(r);
            all
        });
        log.commit(seq, leaves).unwrap();
        log.append(Event::new(Kind::Revoke, 9), &signer).unwrap();
        for i in 1..10 {
            let (prev, this) = (log.read(i - 1).unwrap(), log.read(i).unwrap());
            assert_eq!(this.receipt.prev.unwrap().hash, prev.receipt_hash());
        }
    }
}
