//! The embedded backend: one SQLite file in WAL mode.
//!
//! Every write runs as a single statement or as a transaction whose first
//! statement writes, so SQLite takes its write lock up front and concurrent
//! writers queue on `busy_timeout` instead of failing. Revocations reach
//! followers in the same process through a broadcast channel; other
//! processes on the same file see them at their next periodic catch-up
//! (run one `remit serve` per SQLite file; use PostgreSQL for replicas).
//!
//! # Steps and risk are reserved ahead
//!
//! [`BudgetRepo::consume_call`](crate::BudgetRepo::consume_call) runs once
//! per allowed gateway call. Its steps and risk come from what this store
//! reserved ahead in one commit and hands out from memory ([`held`]): the
//! database never lets a reservation exceed a remit's `max_steps` or a
//! window's risk limit, reservations shrink to what a call needs near a
//! limit, and what is unused goes back after a second idle or at close.
//!
//! # Reservations run inline
//!
//! Through sqlx every statement hops to a connection's worker thread and
//! back. So reservations run on the calling task's thread, on one
//! `rusqlite` connection to the same file behind a mutex ([`inline`]),
//! nothing awaited while the lock is held. That connection never waits on
//! SQLite (`busy_timeout` 0): when another connection holds the write lock,
//! the call is counted without reservation, through the sqlx counters pool
//! (one connection, 30 s busy timeout, sleeping on its own thread), as it
//! is when the mutex is poisoned or the connection closed
//! ([`SqliteStore::counter_fallbacks`] counts these calls). PostgreSQL
//! always counts through its pool, call by call.
//!
//! # Checkpoints
//!
//! The inline connection never checkpoints (`wal_autocheckpoint` 0), so
//! no checkpoint copy or fsync runs inside a call. A task started with the
//! store runs `PRAGMA wal_checkpoint(PASSIVE)` through the main pool every
//! second ([`checkpoint`]), which keeps the WAL bounded; [`SqliteStore::close`]
//! stops it, and dropping the last clone of the store aborts it.
//!
//! # Durability of the step and budget counters
//!
//! Everything is committed with `synchronous=FULL` (the WAL is synced at
//! every commit) except the reservations and per-call counters of
//! [`BudgetRepo::consume_call`](crate::BudgetRepo::consume_call), which are
//! committed with `synchronous=NORMAL` (on the inline connection and on the
//! counters pool alike): a commit there is atomic and survives a crash of the
//! process, but not necessarily a power loss or an OS crash. The
//! consequence, and the only one: after a power loss, the steps and risk
//! spent by the calls of the last moments before it (those not yet covered
//! by a later synced commit or a WAL checkpoint, which runs at least every
//! second) are counted again as unused, so a remit may be used that many
//! more times than its `max_steps`, and an agent may spend that much more
//! risk in the window. The database is never corrupted by it, every such
//! call has its own durable receipt (the receipt log is synced before any
//! answer), and an auditor counting a remit's receipts sees the overrun.
//! A reserved range is one such commit (a power loss can forget it, and
//! the steps it handed out since), and a process that dies holding a range
//! leaves its unused steps counted as used.

mod checkpoint;
mod held;
mod inline;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};
use tokio::sync::broadcast;

use crate::error::StoreError;
use crate::exchange_sql::AssertionSweep;
use crate::model::{CallUsage, Id, RiskSpend, StepCount};
use crate::revocation::RevocationSignals;
use crate::Store;
use checkpoint::{Checkpointer, CHECKPOINT_EVERY};
use held::{Held, Took};
use inline::InlineConn;

/// How long a writer waits for another writer before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The SQLite store. Cheap to clone; clones share the pool and the
/// revocation broadcast.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pub(crate) pool: SqlitePool,
    /// One connection, `synchronous=NORMAL`, that counts a call when a
    /// reservation would have to wait on the inline connection.
    counters: SqlitePool,
    /// The connection reservations run on, on the caller's thread.
    inline: Arc<InlineConn>,
    /// Steps reserved ahead and handed out from memory.
    held: Arc<Held>,
    /// Calls counted through `counters` because a reservation found the
    /// database busy.
    fallbacks: Arc<AtomicU64>,
    /// The passive WAL checkpoint the inline connection never runs.
    checkpointer: Arc<Checkpointer>,
    revocations: Arc<broadcast::Sender<i64>>,
    /// When expired single-use assertions are next deleted.
    assertion_sweep: Arc<AssertionSweep>,
    /// What each exchanged root was derived from.
    pub(crate) custody: Arc<crate::custody::CustodyCache>,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_with(path, CHECKPOINT_EVERY).await
    }

    /// [`SqliteStore::open`] with another checkpoint period (tests).
    pub(crate) async fn open_with(
        path: &Path,
        checkpoint_every: Duration,
    ) -> Result<Self, StoreError> {
        let shown = format!("sqlite://{}", path.display());
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options.clone().synchronous(SqliteSynchronous::Full))
            .await
            .map_err(|source| StoreError::Unreachable {
                url: shown.clone(),
                source,
            })?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migration { source })?;
        let counters = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.synchronous(SqliteSynchronous::Normal))
            .await
            .map_err(|source| StoreError::Unreachable {
                url: shown.clone(),
                source,
            })?;
        let file = path.to_owned();
        let inline = tokio::task::spawn_blocking(move || InlineConn::open(&file))
            .await
            .map_err(|joined| StoreError::Unreachable {
                url: shown.clone(),
                source: sqlx::Error::Io(std::io::Error::other(joined)),
            })?
            .map_err(|error| StoreError::Unreachable {
                url: shown,
                source: inline::driver_error(error),
            })?;
        let inline = Arc::new(inline);
        let held = Arc::new(Held::default());
        let checkpointer = {
            let (inline, held) = (Arc::clone(&inline), Arc::clone(&held));
            // Each tick also gives back the steps of ranges gone idle.
            let release = move || {
                if let Err(error) = held.release(&inline, false) {
                    tracing::warn!(%error, "giving back reserved steps failed; retrying");
                }
            };
            Checkpointer::spawn(pool.clone(), checkpoint_every, release)
        };
        let (sender, _) = broadcast::channel(64);
        Ok(Self {
            pool,
            counters,
            inline,
            held,
            fallbacks: Arc::default(),
            checkpointer: Arc::new(checkpointer),
            revocations: Arc::new(sender),
            assertion_sweep: Arc::default(),
            custody: Arc::default(),
            path: path.to_owned(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops the checkpoint task, gives back the steps reserved and not
    /// used, and closes the connections, waiting for pooled ones to be
    /// returned.
    pub async fn close(&self) {
        self.checkpointer.stop().await;
        match self.release_held() {
            Ok(Some(_)) => {}
            Ok(None) => tracing::warn!("reserved steps not given back: the database was busy"),
            Err(error) => tracing::warn!(%error, "giving back reserved steps failed"),
        }
        self.inline.close();
        self.counters.close().await;
        self.pool.close().await;
    }

    /// How many calls since open were handed to the counters pool (and
    /// answered there, allowed or refused) because the reservation they
    /// needed found the database busy or the inline connection unusable.
    /// For metrics: a steadily rising number means something else keeps the
    /// write lock busy.
    pub fn counter_fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    /// How many WAL checkpoints the checkpoint task has completed.
    pub fn wal_checkpoints(&self) -> u64 {
        self.checkpointer.log().ticks()
    }

    /// The pool the per-call counters fall back to.
    pub(crate) fn counters(&self) -> &SqlitePool {
        &self.counters
    }

    /// Gives back every step and risk point this store reserved ahead and
    /// has not used (see the module documentation), so the database counts
    /// exactly what was used; `None` when the database stayed busy (nothing
    /// given back). The store does this by itself for reservations idle for
    /// a second and when closed.
    pub fn release_held(&self) -> Result<Option<usize>, StoreError> {
        self.held.release(&self.inline, true)
    }

    /// Counts a call from what is reserved ahead ([`held`]), or, when a
    /// reservation would mean waiting on SQLite, through the counters pool.
    async fn count_call(
        &self,
        chain: &[Id],
        risk: Option<&RiskSpend>,
    ) -> Result<CallUsage, StoreError> {
        let risk = crate::sql::checked_risk(risk)?;
        match self.held.take(&self.inline, chain, risk) {
            Took::Counted(taken) => Ok(CallUsage {
                steps_used: taken.leaf_steps,
                risk_spent: taken.risk_spent,
            }),
            Took::Refused(refusal) => Err(refusal),
            Took::Busy => {
                self.fallbacks.fetch_add(1, Ordering::Relaxed);
                // Its counts already leave out what this store holds unused.
                let counted = self.consume_call_via_pool(chain, risk).await?;
                // It landed on top of what is held for its other links.
                self.held.counted_in_db(chain, risk);
                Ok(counted)
            }
        }
    }

    /// Takes one step of `jti` from the range reserved ahead, or in the
    /// database when reserving would mean waiting.
    async fn count_step(&self, jti: &Id) -> Result<StepCount, StoreError> {
        match self
            .held
            .take(&self.inline, std::slice::from_ref(jti), None)
        {
            Took::Counted(taken) => Ok(StepCount {
                used: taken.leaf_steps,
                max: taken.leaf_max,
            }),
            Took::Refused(refusal) => Err(refusal),
            Took::Busy => self.consume_step_in_db(jti).await,
        }
    }

    /// Steps of `jti` reserved by this store and not used yet (they count
    /// as used in the database). Read only by `steps_less_spare`.
    fn spare_steps(&self, jti: &Id) -> i64 {
        self.held.spare_steps(jti)
    }

    /// Risk points of `agent`'s window reserved by this store and not
    /// spent yet (they count as spent in the database). Read only by
    /// `risk_less_spare`.
    fn spare_risk(&self, agent: &Id, window_start: i64) -> i64 {
        self.held.spare_risk(agent, window_start)
    }

    #[allow(clippy::unused_async)]
    async fn notify_in_tx(
        &self,
        _tx: &mut Transaction<'_, Sqlite>,
        _epoch: i64,
    ) -> Result<(), StoreError> {
        Ok(())
    }

    fn notify_committed(&self, epoch: i64) {
        // No receiver is fine: followers also catch up periodically.
        let _ = self.revocations.send(epoch);
    }
}

crate::sql::impl_repositories!(SqliteStore, sqlx::Sqlite);
crate::exchange_sql::impl_exchange_repo!(SqliteStore, sqlx::Sqlite);
crate::observation_facts_sql::impl_observation_facts_repo!(SqliteStore, sqlx::Sqlite);
crate::log_sql::impl_sequenced_log_repo!(SqliteStore, sqlx::Sqlite);

impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
    }

    /// One process per database file (its data directory's receipt log is
    /// locked by the writer).
    fn replicated(&self) -> bool {
        false
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(StoreError::query("check the database"))?;
        Ok(())
    }

    async fn revocation_signals(&self) -> Result<RevocationSignals, StoreError> {
        Ok(RevocationSignals::broadcast(self.revocations.subscribe()))
    }
}
