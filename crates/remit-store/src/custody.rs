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
//! The risk budget is one counter for the tree too: an exchanged root
//! records its *payer* (`custody_payers`), the agent whose budget paid for
//! the subject chain (its leaf's agent, or that chain's own payer when it
//! was itself exchanged), and calls under the exchanged chain spend that
//! agent's risk, not a fresh budget of the actor's.
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

/// The agent paying the risk of calls under an exchanged root (no row: a
/// root that was not exchanged; its own leaf's agent pays).
pub(crate) const PAYER_SQL: &str =
    "SELECT payer_agent FROM custody_payers WHERE exchanged_root = $1";

/// Records the payer of a new exchanged root (`$1`): the payer of the
/// subject chain's root (`$2`) when that root was itself exchanged, else
/// the subject leaf's agent (`$3`).
pub(crate) const RECORD_PAYER_SQL: &str = "\
    INSERT INTO custody_payers (exchanged_root, payer_agent) \
    SELECT $1, COALESCE((SELECT payer_agent FROM custody_payers WHERE exchanged_root = $2), $3) \
    ON CONFLICT DO NOTHING";

/// What a root's custody is: the subject links it was exchanged from,
/// transitively (empty: not exchanged), and the agent paying its risk.
#[derive(Debug, Clone, Default)]
pub(crate) struct Custody {
    /// Every subject link, transitively.
    pub(crate) subjects: Arc<[Id]>,
    /// Whose risk budget calls under the root spend (`None`: the caller's).
    pub(crate) payer: Option<Id>,
}

/// Roots remembered at most; past this the cache starts over (a miss costs
/// one indexed read).
const MAX_ROOTS: usize = 65_536;

/// What each root seen was exchanged from.
#[derive(Debug, Default)]
pub(crate) struct CustodyCache {
    roots: Mutex<HashMap<Id, Custody>>,
}

impl CustodyCache {
    /// The custody of `root`, when known.
    pub(crate) fn get(&self, root: &Id) -> Option<Custody> {
        self.roots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(root)
            .cloned()
    }

    /// Remembers the custody of `root`.
    pub(crate) fn put(&self, root: Id, custody: Custody) {
        let mut roots = self.roots.lock().unwrap_or_else(PoisonError::into_inner);
        if roots.len() >= MAX_ROOTS {
            roots.clear();
        }
        roots.insert(root, custody);
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
