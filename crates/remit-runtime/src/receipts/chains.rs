//! Delegation chains in the log: each distinct chain recorded once, as a
//! `chain` record (its links and their hash), which every receipt of a call
//! that presented it names by that hash (`chain`).
//!
//! A log must not become a credential store. A chain presented with a
//! DPoP proof where the gateway refuses bearer presentation is useless
//! without its holder's private key, so it is recorded at once. Any other
//! chain could be replayed from the log as a bearer token until it
//! expires, so it is *held back*: its receipts name its hash at once, and
//! its record is written after its last link has expired
//! ([`ChainBook::due`]), when it authorizes nothing. A process that stops
//! before then never writes it: the receipts still name the hash, and the
//! agent's host (which holds the chain) can hand it to an auditor, who
//! checks it against that hash.

use std::collections::{BTreeMap, HashSet};

use remit_ledger::{ChainRef, Event};

/// Most chains remembered as recorded, and most held back: past either, a
/// chain may be recorded twice (harmless) or, when held, not at all (its
/// receipts keep the hash).
pub const MAX_CHAINS: usize = 65_536;

/// The chains this process has recorded, and those it holds back until
/// they expire.
#[derive(Debug, Default)]
pub struct ChainBook {
    recorded: HashSet<ChainRef>,
    /// Held chains by their expiry (Unix seconds), then reference.
    held: BTreeMap<(u64, ChainRef), Vec<String>>,
    held_refs: HashSet<ChainRef>,
}

/// How a chain was presented, which decides when it may be recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Presented {
    /// With a DPoP proof, at a gateway that refuses bearer presentation:
    /// recorded now.
    BoundOnly,
    /// As a bearer token, or where bearer presentation is accepted:
    /// recorded once expired.
    Replayable,
}

impl ChainBook {
    /// An empty book.
    pub fn new() -> Self {
        Self::default()
    }

    /// The reference of the chain `links` (root first) that expires at
    /// `exp` (Unix seconds, the earliest of its links), and the record to
    /// append now, if one is due (the first time a bound chain is seen).
    pub fn note(
        &mut self,
        links: &[&str],
        exp: u64,
        presented: Presented,
        time_ms: u64,
    ) -> (ChainRef, Option<Event>) {
        let reference = ChainRef::of_links(links);
        if self.recorded.contains(&reference) {
            return (reference, None);
        }
        match presented {
            Presented::BoundOnly => {
                self.remember(reference.clone());
                let owned = links.iter().map(|l| (*l).to_owned()).collect();
                (reference, Some(Event::chain_record(owned, time_ms)))
            }
            Presented::Replayable => {
                if self.held.len() < MAX_CHAINS && self.held_refs.insert(reference.clone()) {
                    let owned = links.iter().map(|l| (*l).to_owned()).collect();
                    self.held.insert((exp, reference.clone()), owned);
                }
                (reference, None)
            }
        }
    }

    fn remember(&mut self, reference: ChainRef) {
        if self.recorded.len() >= MAX_CHAINS {
            self.recorded.clear();
        }
        self.recorded.insert(reference);
    }

    /// The records of held chains that expired before `now` (Unix
    /// seconds), to append now; they are remembered as recorded.
    pub fn due(&mut self, now: u64, time_ms: u64) -> Vec<Event> {
        let mut out = Vec::new();
        while let Some(entry) = self.held.first_entry() {
            if entry.key().0 >= now {
                break;
            }
            let ((_, reference), links) = entry.remove_entry();
            self.held_refs.remove(&reference);
            self.remember(reference);
            out.push(Event::chain_record(links, time_ms));
        }
        out
    }

    /// Chains held back, not yet recorded.
    pub fn held(&self) -> usize {
        self.held.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bound_chain_is_recorded_once_and_referenced_by_its_hash() {
        let mut book = ChainBook::new();
        let (reference, record) = book.note(&["a.b.c", "d.e.f"], 100, Presented::BoundOnly, 1);
        let record = record.expect("recorded the first time");
        assert_eq!(record.chain.as_ref(), Some(&reference));
        assert_eq!(record.links, ["a.b.c", "d.e.f"]);
        record.check().unwrap();
        let (again, none) = book.note(&["a.b.c", "d.e.f"], 100, Presented::BoundOnly, 2);
        assert_eq!(again, reference);
        assert!(none.is_none(), "a chain is recorded once");
    }

    #[test]
    fn a_replayable_chain_never_reaches_the_log_before_it_expires() {
        let mut book = ChainBook::new();
        let (reference, record) = book.note(&["a.b.c"], 100, Presented::Replayable, 1);
        assert!(record.is_none(), "a bearer-usable chain written at once");
        book.note(&["x.y.z"], 50, Presented::Replayable, 1);
        assert!(book.due(50, 2).is_empty(), "not yet expired");
        let due = book.due(51, 3);
        assert_eq!(due.len(), 1);
        assert_eq!(due[0].links, ["x.y.z"]);
        assert!(book.due(100, 4).is_empty());
        let due = book.due(101, 5);
        assert_eq!(due[0].chain.as_ref(), Some(&reference));
        assert_eq!(book.held(), 0);
        // Once recorded, it is not held or recorded again.
        let (_, record) = book.note(&["a.b.c"], 100, Presented::BoundOnly, 6);
        assert!(record.is_none());
    }
}
