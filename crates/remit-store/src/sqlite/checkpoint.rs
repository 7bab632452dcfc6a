//! The WAL checkpoint the inline connection never runs itself.
//!
//! The inline connection has `wal_autocheckpoint=0`, so a call never pays
//! for a checkpoint (copying the WAL into the database file and syncing
//! it). Instead a task started with the store runs a passive checkpoint
//! through the main pool every second: it copies what no reader still
//! needs, never waits for readers or writers, and lets the next writer
//! restart the WAL from its beginning, so the file stays bounded by about a
//! second of writes. It runs on the `synchronous=FULL` pool, so each tick
//! also makes the reservations committed before it durable.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::SqlitePool;
use tokio::task::JoinHandle;
use tokio::time::{interval_at, Instant, MissedTickBehavior};

use crate::error::StoreError;

/// How often the WAL is checkpointed.
pub(crate) const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// What one `PRAGMA wal_checkpoint(PASSIVE)` reported.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct WalCheckpoint {
    /// Another checkpoint was running, so this one did nothing.
    pub(crate) busy: bool,
    /// Frames in the WAL.
    pub(crate) wal_frames: i64,
    /// Of those, frames now copied into the database file.
    pub(crate) checkpointed: i64,
}

/// Runs one passive checkpoint through `pool`.
pub(crate) async fn checkpoint_once(pool: &SqlitePool) -> Result<WalCheckpoint, StoreError> {
    let (busy, wal_frames, checkpointed) =
        sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(PASSIVE)")
            .fetch_one(pool)
            .await
            .map_err(StoreError::query("checkpoint the WAL"))?;
    Ok(WalCheckpoint {
        busy: busy != 0,
        wal_frames,
        checkpointed,
    })
}

/// What the task has done, for tests and diagnostics.
#[derive(Debug, Default)]
pub(crate) struct CheckpointLog {
    ticks: AtomicU64,
    last: Mutex<Option<WalCheckpoint>>,
}

impl CheckpointLog {
    /// Checkpoints that completed.
    pub(crate) fn ticks(&self) -> u64 {
        self.ticks.load(Ordering::Acquire)
    }

    /// The last completed checkpoint's report.
    #[cfg(test)]
    pub(crate) fn last(&self) -> Option<WalCheckpoint> {
        match self.last.lock() {
            Ok(last) => *last,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }

    fn record(&self, done: WalCheckpoint) {
        match self.last.lock() {
            Ok(mut last) => *last = Some(done),
            Err(poisoned) => *poisoned.into_inner() = Some(done),
        }
        self.ticks.fetch_add(1, Ordering::Release);
    }
}

/// The checkpoint task; aborted by [`Checkpointer::stop`] or when dropped.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    task: Mutex<Option<JoinHandle<()>>>,
    log: Arc<CheckpointLog>,
}

impl Checkpointer {
    /// Starts checkpointing through `pool` every `every` (first tick after
    /// one period), running `also` before each checkpoint. Must be called
    /// within a tokio runtime.
    pub(crate) fn spawn(
        pool: SqlitePool,
        every: Duration,
        also: impl Fn() + Send + 'static,
    ) -> Self {
        let log = Arc::new(CheckpointLog::default());
        let recorded = Arc::clone(&log);
        let task = tokio::spawn(async move {
            let mut ticks = interval_at(Instant::now() + every, every);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                also();
                match checkpoint_once(&pool).await {
                    Ok(done) => recorded.record(done),
                    Err(StoreError::Query {
                        source: sqlx::Error::PoolClosed,
                        ..
                    }) => break,
                    Err(error) => tracing::warn!(%error, "WAL checkpoint failed; retrying"),
                }
            }
        });
        Self {
            task: Mutex::new(Some(task)),
            log,
        }
    }

    /// What the task has done so far.
    pub(crate) fn log(&self) -> &CheckpointLog {
        &self.log
    }

    /// Stops the task and waits until it has ended.
    pub(crate) async fn stop(&self) {
        let task = match self.task.lock() {
            Ok(mut task) => task.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(task) = task {
            task.abort();
            // Cancelled (or already ended): either way it no longer runs.
            let _ = task.await;
        }
    }

    /// True once the task has ended (or was stopped).
    #[cfg(test)]
    pub(crate) fn is_stopped(&self) -> bool {
        match self.task.lock() {
            Ok(task) => task.as_ref().is_none_or(JoinHandle::is_finished),
            Err(_) => false,
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        if let Ok(mut task) = self.task.lock() {
            if let Some(task) = task.take() {
                task.abort();
            }
        }
    }
}
