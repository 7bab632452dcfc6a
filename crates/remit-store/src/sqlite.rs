//! The embedded backend: one SQLite file in WAL mode.
//!
//! Every write runs as a single statement or as a transaction whose first
//! statement writes, so SQLite takes its write lock up front and concurrent
//! writers queue on `busy_timeout` instead of failing. Revocations reach
//! followers in the same process through a broadcast channel; other
//! processes on the same file see them at their next periodic catch-up
//! (run one `remit serve` per SQLite file; use PostgreSQL for replicas).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
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
            .connect_with(options)
            .await
            .map_err(|source| StoreError::Unreachable { url: shown, source })?;
        sqlx::migrate!("./migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migration { source })?;
        let (sender, _) = broadcast::channel(64);
        Ok(Self {
            pool,
            revocations: Arc::new(sender),
            path: path.to_owned(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
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
