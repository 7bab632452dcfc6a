//! The embedded backend: one SQLite file in WAL mode.
//!
//! Every write runs as a single statement or as a transaction whose first
//! statement writes, so SQLite takes its write lock up front and concurrent
//! writers queue on `busy_timeout` instead of failing. Revocations reach
//! followers in the same process through a broadcast channel; other
//! processes on the same file see them at their next periodic catch-up
//! (run one `remit serve` per SQLite file; use PostgreSQL for replicas).
//!
//! # Durability of the step and budget counters
//!
//! Everything is committed with `synchronous=FULL` (the WAL is synced at
//! every commit) except the per-call counters of
//! [`BudgetRepo::consume_call`](crate::BudgetRepo::consume_call), which run
//! on their own single connection with `synchronous=NORMAL`: a commit there
//! is atomic and survives a crash of the process, but not necessarily a
//! power loss or an OS crash. The consequence, and the only one: after a
//! power loss, the steps and risk spent by the calls of the last moments
//! before it (those not yet covered by a later synced commit or a WAL
//! checkpoint) are counted again as unused, so a remit may be used that
//! many more times than its `max_steps`, and an agent may spend that much
//! more risk in the window. The database is never corrupted by it, every
//! such call has its own durable receipt (the receipt log is synced before
//! any answer), and an auditor counting a remit's receipts sees the
//! overrun. The single connection also queues this process's counter
//! writes in memory instead of on SQLite's sleeping busy handler.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Sqlite, SqlitePool, Transaction};
use tokio::sync::broadcast;

use crate::error::StoreError;
use crate::revocation::RevocationSignals;
use crate::Store;

/// How long a writer waits for another writer before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// The SQLite store. Cheap to clone; clones share the pool and the
/// revocation broadcast.
#[derive(Clone, Debug)]
pub struct SqliteStore {
    pub(crate) pool: SqlitePool,
    /// One connection, `synchronous=NORMAL`, for the per-call counters.
    counters: SqlitePool,
    revocations: Arc<broadcast::Sender<i64>>,
    path: PathBuf,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies migrations.
    pub async fn open(path: &Path) -> Result<Self, StoreError> {
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
            .map_err(|source| StoreError::Unreachable { url: shown, source })?;
        let (sender, _) = broadcast::channel(64);
        Ok(Self {
            pool,
            counters,
            revocations: Arc::new(sender),
            path: path.to_owned(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes the pools, waiting for connections to be returned.
    pub async fn close(&self) {
        self.counters.close().await;
        self.pool.close().await;
    }

    /// The pool the per-call counters are written through.
    pub(crate) fn counters(&self) -> &SqlitePool {
        &self.counters
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
crate::log_sql::impl_sequenced_log_repo!(SqliteStore, sqlx::Sqlite);

impl Store for SqliteStore {
    fn backend(&self) -> &'static str {
        "sqlite"
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
