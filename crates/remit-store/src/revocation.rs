//! The in-memory revocation set every gateway consults, and the follower
//! that keeps it in step with the store.
//!
//! The set is indexed by kind (jti, subtree, agent, sub, tool, kid) and
//! carries the epoch of the last revocation applied. The follower wakes on
//! a signal (in-process broadcast for SQLite, `LISTEN/NOTIFY` for
//! PostgreSQL), on every reconnect, and on a timer, and each time reads
//! every revocation above its epoch. Because epochs are assigned in commit
//! order, "everything above my epoch" never skips one, so a lost signal
//! delays a revocation by at most one poll interval and never loses it.
//! [`SharedRevocations::synced_at`] lets a caller refuse to decide on a set
//! that has not been refreshed for too long (fail closed).

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use sqlx::postgres::PgListener;
use tokio::sync::{broadcast, Notify};
use tokio::task::JoinHandle;

use crate::error::StoreError;
use crate::model::{Revocation, RevocationKind, RevocationTarget};
use crate::Store;

/// What a gateway knows about the remit chain and call in front of it.
#[derive(Clone, Copy, Debug)]
pub struct RemitFacts<'a> {
    /// The `jti` of every remit in the chain, root first, presented remit last.
    pub chain: &'a [&'a str],
    /// The agent holding the presented remit.
    pub agent: &'a str,
    /// The user the chain acts for.
    pub sub: &'a str,
    /// Key ids that signed any link of the chain.
    pub kids: &'a [&'a str],
    /// The tool being called, if this is a call.
    pub tool: Option<&'a str>,
}

/// Revocations indexed by what they name.
#[derive(Clone, Debug, Default)]
pub struct RevocationSet {
    epoch: i64,
    jti: HashSet<String>,
    subtree: HashSet<String>,
    agent: HashSet<String>,
    sub: HashSet<String>,
    tool: HashSet<String>,
    kid: HashSet<String>,
}

impl RevocationSet {
    /// An empty set at epoch 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// The epoch of the last revocation applied.
    pub fn epoch(&self) -> i64 {
        self.epoch
    }

    /// Number of revocations held.
    pub fn len(&self) -> usize {
        self.jti.len()
            + self.subtree.len()
            + self.agent.len()
            + self.sub.len()
            + self.tool.len()
            + self.kid.len()
    }

    /// True when nothing is revoked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn index_mut(&mut self, kind: RevocationKind) -> &mut HashSet<String> {
        match kind {
            RevocationKind::Jti => &mut self.jti,
            RevocationKind::Subtree => &mut self.subtree,
            RevocationKind::Agent => &mut self.agent,
            RevocationKind::Sub => &mut self.sub,
            RevocationKind::Tool => &mut self.tool,
            RevocationKind::Kid => &mut self.kid,
        }
    }

    /// Adds a revocation; ones at or below the current epoch are already in.
    pub fn apply(&mut self, revocation: &Revocation) {
        if revocation.epoch <= self.epoch {
            return;
        }
        let target = &revocation.target;
        self.index_mut(target.kind)
            .insert(target.value.as_str().to_owned());
        self.epoch = revocation.epoch;
    }

    /// The first revocation that applies to these facts, if any.
    ///
    /// A `jti` revocation kills exactly the presented remit; a `subtree`
    /// revocation kills the named remit and everything delegated from it,
    /// so it is matched against every link of the chain.
    pub fn find(&self, facts: &RemitFacts<'_>) -> Option<RevocationTarget> {
        let hit = |kind, value: &str| {
            crate::model::Id::parse("revoked value", value)
                .ok()
                .map(|value| RevocationTarget { kind, value })
        };
        if let Some(leaf) = facts.chain.last() {
            if self.jti.contains(*leaf) {
                return hit(RevocationKind::Jti, leaf);
            }
        }
        if let Some(link) = facts.chain.iter().find(|j| self.subtree.contains(**j)) {
            return hit(RevocationKind::Subtree, link);
        }
        if self.agent.contains(facts.agent) {
            return hit(RevocationKind::Agent, facts.agent);
        }
        if self.sub.contains(facts.sub) {
            return hit(RevocationKind::Sub, facts.sub);
        }
        if let Some(kid) = facts.kids.iter().find(|k| self.kid.contains(**k)) {
            return hit(RevocationKind::Kid, kid);
        }
        match facts.tool {
            Some(tool) if self.tool.contains(tool) => hit(RevocationKind::Tool, tool),
            _ => None,
        }
    }
}

#[derive(Debug)]
struct Snapshot {
    set: RevocationSet,
    synced_at: Instant,
}

/// A revocation set shared between request handlers and its follower.
#[derive(Clone, Debug)]
pub struct SharedRevocations {
    inner: Arc<RwLock<Snapshot>>,
}

impl Default for SharedRevocations {
    fn default() -> Self {
        Self::new()
    }
}

impl SharedRevocations {
    /// An empty set, never synced.
    pub fn new() -> Self {
        Self {
            inner: Arc::new(RwLock::new(Snapshot {
                set: RevocationSet::new(),
                synced_at: Instant::now(),
            })),
        }
    }

    // INVARIANT: the lock is only held to insert into hash sets or read
    // them; a panic there leaves a set that is still a valid subset of the
    // truth, and the next catch-up re-reads everything above its epoch.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Snapshot> {
        self.inner.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Snapshot> {
        self.inner.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The first revocation that applies to these facts, if any.
    pub fn find(&self, facts: &RemitFacts<'_>) -> Option<RevocationTarget> {
        self.read().set.find(facts)
    }

    /// The epoch of the last revocation applied.
    pub fn epoch(&self) -> i64 {
        self.read().set.epoch()
    }

    /// When the set was last confirmed complete against the store.
    pub fn synced_at(&self) -> Instant {
        self.read().synced_at
    }

    /// A copy of the current set.
    pub fn snapshot(&self) -> RevocationSet {
        self.read().set.clone()
    }

    /// Reads every revocation above the current epoch from the store and
    /// applies it. Returns how many were new.
    pub async fn catch_up<S: Store>(&self, store: &S) -> Result<usize, StoreError> {
        let started = Instant::now();
        let since = self.epoch();
        let fresh = store.revocations_since(since).await?;
        let mut guard = self.write();
        let before = guard.set.epoch();
        for revocation in &fresh {
            guard.set.apply(revocation);
        }
        guard.synced_at = guard.synced_at.max(started);
        Ok(fresh.iter().filter(|r| r.epoch > before).count())
    }
}

/// Wake-ups for a revocation follower, from whichever backend.
pub struct RevocationSignals {
    source: Source,
}

enum Source {
    Broadcast(broadcast::Receiver<i64>),
    Postgres(Box<PgListener>),
}

impl fmt::Debug for RevocationSignals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.source {
            Source::Broadcast(_) => "broadcast",
            Source::Postgres(_) => "postgres-listen",
        };
        f.debug_struct("RevocationSignals")
            .field("source", &kind)
            .finish()
    }
}

impl RevocationSignals {
    pub(crate) fn broadcast(receiver: broadcast::Receiver<i64>) -> Self {
        Self {
            source: Source::Broadcast(receiver),
        }
    }

    pub(crate) fn postgres(listener: PgListener) -> Self {
        Self {
            source: Source::Postgres(Box::new(listener)),
        }
    }

    /// Waits for the next reason to catch up: a notification, a lag, or a
    /// reconnect (after which notifications may have been missed).
    async fn next(&mut self) -> Result<(), StoreError> {
        match &mut self.source {
            Source::Broadcast(receiver) => match receiver.recv().await {
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => Ok(()),
                // The store is gone: nothing more will be announced, so
                // fall back to the timer alone.
                Err(broadcast::error::RecvError::Closed) => {
                    std::future::pending::<()>().await;
                    Ok(())
                }
            },
            Source::Postgres(listener) => match listener.try_recv().await {
                // Some: a notification. None: the connection was lost and
                // re-established (eager reconnect), so catch up.
                Ok(_) => Ok(()),
                Err(source) => Err(StoreError::Query {
                    action: "listen for revocations",
                    source,
                }),
            },
        }
    }
}

/// Keeps a [`SharedRevocations`] in step with the store until dropped.
#[derive(Debug)]
pub struct RevocationFollower {
    revocations: SharedRevocations,
    tasks: [JoinHandle<()>; 2],
}

impl RevocationFollower {
    /// Subscribes to revocation signals, loads every revocation, then
    /// follows: on each signal and at least every `poll`.
    ///
    /// Subscribing before the first load means a revocation committed in
    /// between is either in the load or announced after it.
    pub async fn start<S: Store>(store: S, poll: Duration) -> Result<Self, StoreError> {
        let mut signals = store.revocation_signals().await?;
        let revocations = SharedRevocations::new();
        revocations.catch_up(&store).await?;

        let wake = Arc::new(Notify::new());
        let listener = {
            let wake = Arc::clone(&wake);
            tokio::spawn(async move {
                loop {
                    if let Err(error) = signals.next().await {
                        tracing::warn!(%error, "revocation signals interrupted; retrying");
                        tokio::time::sleep(Duration::from_millis(500)).await;
                    }
                    wake.notify_one();
                }
            })
        };
        let follower = {
            let revocations = revocations.clone();
            tokio::spawn(async move {
                let mut timer = tokio::time::interval(poll);
                timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tokio::select! {
                        () = wake.notified() => {}
                        _ = timer.tick() => {}
                    }
                    if let Err(error) = revocations.catch_up(&store).await {
                        tracing::warn!(%error, "revocation catch-up failed; will retry");
                    }
                }
            })
        };
        Ok(Self {
            revocations,
            tasks: [listener, follower],
        })
    }

    /// The set this follower keeps current.
    pub fn revocations(&self) -> &SharedRevocations {
        &self.revocations
    }
}

impl Drop for RevocationFollower {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Id;

    fn revocation(kind: RevocationKind, value: &str, epoch: i64) -> Revocation {
        Revocation {
            target: RevocationTarget {
                kind,
                value: Id::parse("v", value).unwrap(),
            },
            epoch,
            reason: "test".into(),
            revoked_by: "admin".into(),
            revoked_at: 0,
        }
    }

    fn facts<'a>(chain: &'a [&'a str]) -> RemitFacts<'a> {
        RemitFacts {
            chain,
            agent: "agt_a",
            sub: "alice",
            kids: &["k1"],
            tool: Some("files.read"),
        }
    }

    #[test]
    fn subtree_revocation_kills_grandchildren_but_not_siblings() {
        let mut set = RevocationSet::new();
        set.apply(&revocation(RevocationKind::Subtree, "child", 1));
        assert!(set.find(&facts(&["root", "child", "grandchild"])).is_some());
        assert!(set.find(&facts(&["root", "child"])).is_some());
        assert!(set.find(&facts(&["root", "sibling"])).is_none());
        assert!(set.find(&facts(&["root"])).is_none());
    }

    #[test]
    fn jti_revocation_names_only_the_presented_remit() {
        let mut set = RevocationSet::new();
        set.apply(&revocation(RevocationKind::Jti, "child", 1));
        let hit = set.find(&facts(&["root", "child"])).unwrap();
        assert_eq!(hit.kind, RevocationKind::Jti);
        assert!(set.find(&facts(&["root", "child", "grandchild"])).is_none());
    }

    #[test]
    fn every_kind_is_matched_on_its_own_field() {
        for (kind, value) in [
            (RevocationKind::Agent, "agt_a"),
            (RevocationKind::Sub, "alice"),
            (RevocationKind::Kid, "k1"),
            (RevocationKind::Tool, "files.read"),
        ] {
            let mut set = RevocationSet::new();
            set.apply(&revocation(kind, value, 1));
            assert_eq!(set.find(&facts(&["root"])).map(|t| t.kind), Some(kind));
            let mut other = RevocationSet::new();
            other.apply(&revocation(kind, "someone-else", 1));
            assert!(other.find(&facts(&["root"])).is_none(), "{kind}");
        }
    }

    #[test]
    fn replayed_old_epochs_do_not_move_the_epoch_back() {
        let mut set = RevocationSet::new();
        set.apply(&revocation(RevocationKind::Jti, "a", 5));
        set.apply(&revocation(RevocationKind::Jti, "b", 3));
        assert_eq!(set.epoch(), 5);
        assert_eq!(set.len(), 1);
    }
}
