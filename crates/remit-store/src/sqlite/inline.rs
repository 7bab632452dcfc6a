//! The inline SQLite connection that reservations run on.
//!
//! Through sqlx each statement is a hop to the connection's worker thread
//! and back (pool acquire, two channel sends, two thread wake-ups); here
//! the calling task runs its statements itself on one `rusqlite`
//! connection behind a [`Mutex`]: short transactions, no `.await` while the
//! lock is held, cached statements. [`super::held`] reserves and gives back
//! steps and risk on it.
//!
//! It never waits on SQLite: `busy_timeout` is 0, so when another
//! connection holds the write lock (a control-plane write committing on the
//! main pool, another process on the file) an attempt stops at once with
//! `SQLITE_BUSY` ([`Stop::Busy`]), rolls back whatever it did, and the
//! store counts the call through the sqlx counters pool instead, whose 30 s
//! busy timeout sleeps on sqlx's worker thread instead of a tokio worker.
//! A closed connection or a poisoned lock (a panic while it was held)
//! stops the same way. `synchronous` is `NORMAL` (see the store's
//! durability notes) and `wal_autocheckpoint` is 0, so no checkpoint, and
//! no fsync, ever runs on this connection: see [`super::checkpoint`].

use std::borrow::Cow;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{ffi, Connection, OpenFlags};

use crate::error::StoreError;

/// One `synchronous=NORMAL` connection used on the caller's thread.
#[derive(Debug)]
pub(crate) struct InlineConn {
    /// `None` once the store is closed. (Visible to the store's tests, which
    /// poison it.)
    pub(super) conn: Mutex<Option<Connection>>,
}

/// Why an attempt on the inline connection stopped.
pub(super) enum Stop {
    /// The write lock was taken (or the database locked), or the
    /// connection is closed or its lock poisoned: nothing was done, count
    /// another way.
    Busy,
    /// A refusal or a driver error, returned to the caller as is.
    Answer(StoreError),
}

impl From<StoreError> for Stop {
    fn from(error: StoreError) -> Self {
        Self::Answer(error)
    }
}

impl InlineConn {
    /// Opens the inline connection on the (migrated) database at `path`.
    pub(crate) fn open(path: &Path) -> Result<Self, rusqlite::Error> {
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        conn.busy_timeout(Duration::ZERO)?;
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(rusqlite::Error::InvalidParameterName(format!(
                "journal_mode is {mode}, the inline connection needs wal"
            )));
        }
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        Ok(Self {
            conn: Mutex::new(Some(conn)),
        })
    }

    /// Runs `work` on the connection under its lock; [`Stop::Busy`] without
    /// running it when the connection is closed or the lock poisoned.
    pub(super) fn with<T>(
        &self,
        work: impl FnOnce(&Connection) -> Result<T, Stop>,
    ) -> Result<T, Stop> {
        match self.conn.lock() {
            Ok(guard) => match guard.as_ref() {
                Some(conn) => work(conn),
                None => Err(Stop::Busy),
            },
            Err(_poisoned) => Err(Stop::Busy),
        }
    }

    /// Closes the connection; later attempts stop as [`Stop::Busy`].
    pub(crate) fn close(&self) {
        let conn = match self.conn.lock() {
            Ok(mut guard) => guard.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(conn) = conn {
            if let Err((_, error)) = conn.close() {
                tracing::warn!(%error, "closing the inline SQLite connection failed");
            }
        }
    }
}

/// Ends a transaction a failed rollback left open.
pub(super) fn repair(conn: &Connection) -> Result<(), Stop> {
    if !conn.is_autocommit() {
        // INVARIANT: every use ends its transaction; this only repairs a
        // rollback that failed last time.
        conn.execute_batch("ROLLBACK")
            .map_err(stop("count a call's steps and risk"))?;
    }
    Ok(())
}

/// An open `BEGIN IMMEDIATE` transaction, rolled back on drop unless
/// committed.
pub(super) struct Transaction<'c> {
    conn: &'c Connection,
}

impl<'c> Transaction<'c> {
    /// Takes the write lock up front, or stops on it at once.
    pub(super) fn begin(conn: &'c Connection) -> rusqlite::Result<Self> {
        execute(conn, "BEGIN IMMEDIATE")?;
        Ok(Self { conn })
    }

    pub(super) fn commit(self) -> rusqlite::Result<()> {
        // On failure the transaction is still open and `drop` rolls it back.
        execute(self.conn, "COMMIT")?;
        Ok(())
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if self.conn.is_autocommit() {
            return;
        }
        if let Err(error) = self.conn.execute_batch("ROLLBACK") {
            // The next use rolls back before it starts.
            tracing::warn!(%error, "rolling back an inline transaction failed");
        }
    }
}

/// Runs a cached statement that returns no rows.
fn execute(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    cached(conn, sql)?.execute([])?;
    Ok(())
}

pub(super) fn cached<'c>(
    conn: &'c Connection,
    sql: &str,
) -> rusqlite::Result<rusqlite::CachedStatement<'c>> {
    conn.prepare_cached(sql)
}

/// Classifies a driver error met while doing `action`.
pub(super) fn stop(action: &'static str) -> impl FnOnce(rusqlite::Error) -> Stop {
    move |error| {
        let busy = matches!(
            error.sqlite_error_code(),
            Some(ffi::ErrorCode::DatabaseBusy | ffi::ErrorCode::DatabaseLocked)
        );
        if busy {
            Stop::Busy
        } else {
            Stop::Answer(StoreError::Query {
                action,
                source: driver_error(error),
            })
        }
    }
}

pub(super) fn is_foreign_key_violation(error: &rusqlite::Error) -> bool {
    error.sqlite_error().map(|e| e.extended_code) == Some(ffi::SQLITE_CONSTRAINT_FOREIGNKEY)
}

/// A `rusqlite` error as the `sqlx` error every [`StoreError`] carries, so
/// callers see the same variants (and the same constraint kinds) whichever
/// connection met it.
pub(crate) fn driver_error(error: rusqlite::Error) -> sqlx::Error {
    sqlx::Error::Database(Box::new(InlineSqliteError {
        message: error.to_string(),
        code: error.sqlite_error().map(|e| e.extended_code),
        source: error,
    }))
}

/// What SQLite told the inline connection.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
struct InlineSqliteError {
    message: String,
    /// SQLite's extended result code, when SQLite reported the error.
    code: Option<i32>,
    #[source]
    source: rusqlite::Error,
}

impl sqlx::error::DatabaseError for InlineSqliteError {
    fn message(&self) -> &str {
        &self.message
    }

    fn code(&self) -> Option<Cow<'_, str>> {
        self.code.map(|code| Cow::Owned(code.to_string()))
    }

    fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
        self
    }

    fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
        self
    }

    fn kind(&self) -> sqlx::error::ErrorKind {
        use sqlx::error::ErrorKind;
        match self.code {
            Some(ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY) => {
                ErrorKind::UniqueViolation
            }
            Some(ffi::SQLITE_CONSTRAINT_FOREIGNKEY) => ErrorKind::ForeignKeyViolation,
            Some(ffi::SQLITE_CONSTRAINT_NOTNULL) => ErrorKind::NotNullViolation,
            Some(ffi::SQLITE_CONSTRAINT_CHECK) => ErrorKind::CheckViolation,
            _ => ErrorKind::Other,
        }
    }
}
