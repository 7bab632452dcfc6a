//! One step counter for a whole custody tree.
//!
//! A remit minted by token exchange is a fresh chain (a custody root and
//! the actor's child), but its authority comes from the subject chain it
//! was exchanged from: `exchange_links` records each subject link. A call
//! under the exchanged chain takes a step of every link of every chain it
//! was derived from, transitively, so exchanging a used-up remit (again
//! and again) yields nothing new to spend: the subject's `max_steps`
//! bounds everything exchanged from it, as a root's bounds everything
//! delegated from it.
//!
//! What a root was derived from never changes once the exchange answered
//! (the links are written before the exchanged chain leaves the server),
//! so it is cached per root, including "derived from nothing".

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::model::Id;

/// Every subject link a root was exchanged from, transitively (no rows: a
/// root that was not exchanged).
pub(crate) const CUSTODY_SQL: &str = "\
    WITH RECURSIVE ancestry (jti) AS ( \
        SELECT subject_jti FROM exchange_links WHERE exchanged_root = $1 \
        UNION \
        SELECT l.subject_jti FROM exchange_links l JOIN ancestry a ON l.exchanged_root = a.jti \
    ) SELECT jti FROM ancestry ORDER BY jti";

/// Roots remembered at most; past this the cache starts over (a miss costs
/// one indexed read).
const MAX_ROOTS: usize = 65_536;

/// What each root seen was exchanged from.
#[derive(Debug, Default)]
pub(crate) struct CustodyCache {
    roots: Mutex<HashMap<Id, Arc<[Id]>>>,
}

impl CustodyCache {
    /// The subject links of `root`, when known.
    pub(crate) fn get(&self, root: &Id) -> Option<Arc<[Id]>> {
        self.roots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(root)
            .cloned()
    }

    /// Remembers the subject links of `root`.
    pub(crate) fn put(&self, root: Id, subjects: Arc<[Id]>) {
        let mut roots = self.roots.lock().unwrap_or_else(PoisonError::into_inner);
        if roots.len() >= MAX_ROOTS {
            roots.clear();
        }
        roots.insert(root, subjects);
    }
}

/// `chain` (leaf first) followed by the links it was exchanged from.
pub(crate) fn extend(chain: &[Id], subjects: &[Id]) -> Vec<Id> {
    chain
        .iter()
        .chain(subjects.iter().filter(|s| !chain.contains(s)))
        .cloned()
        .collect()
}
