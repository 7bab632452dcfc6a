//! The per-call counters on an inline SQLite connection.
//!
//! [`BudgetRepo::consume_call`](crate::BudgetRepo::consume_call) runs on
//! every allowed gateway call. Through sqlx each statement is a hop to the
//! connection's worker thread and back (pool acquire, two channel sends,
//! two thread wake-ups); here the calling task runs the same statements
//! itself on one `rusqlite` connection behind a [`Mutex`]: one short
//! transaction, no `.await` while the lock is held, cached statements.
//!
//! It never waits on SQLite: `busy_timeout` is 0, so when another
//! connection holds the write lock (a control-plane write committing on the
//! main pool, another process on the file) the attempt stops at once with
//! `SQLITE_BUSY`, rolls back whatever it did, and the caller runs the same
//! call through the sqlx counters pool, whose 30 s busy timeout sleeps on
//! sqlx's worker thread instead of a tokio worker. A poisoned lock (a panic
//! while it was held) falls back the same way. `wal_autocheckpoint` is 0 so
//! no checkpoint, and no fsync, ever runs on this connection: see
//! [`super::checkpoint`].

use std::borrow::Cow;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use rusqlite::{ffi, Connection, OpenFlags, OptionalExtension, Params, Statement};

use crate::error::StoreError;
use crate::model::{CallUsage, Id, RiskSpend};
use crate::sql::{
    checked_risk, risk_exhausted, step_refused, MAX_STEPS_SQL, RISK_SPENT_SQL, RISK_UPSERT_SQL,
    STEP_SQL,
};

/// What the inline connection did with a call.
#[derive(Debug)]
pub(crate) enum Counted {
    /// It answered: the call's usage or its refusal.
    Done(Result<CallUsage, StoreError>),
    /// It could not take the write lock without waiting (or its lock is
    /// poisoned) and left the database as it was: count through the pool.
    FallBack,
}

/// One `synchronous=NORMAL` connection that counts calls on the caller's
/// thread.
#[derive(Debug)]
pub(crate) struct InlineCounters {
    /// `None` once the store is closed. (Visible to the store's tests, which
    /// poison it.)
    pub(super) conn: Mutex<Option<Connection>>,
    /// Calls handed to the pool instead.
    fallbacks: AtomicU64,
}

/// Why an inline attempt stopped.
enum Stop {
    /// The write lock was taken (or the database locked): fall back.
    Busy,
    /// A refusal or a driver error, returned to the caller as is.
    Answer(StoreError),
}

impl From<StoreError> for Stop {
    fn from(error: StoreError) -> Self {
        Self::Answer(error)
    }
}

impl InlineCounters {
    /// Opens the counters connection on the (migrated) database at `path`.
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
                "journal_mode is {mode}, the counters need wal"
            )));
        }
        conn.pragma_update(None, "foreign_keys", "ON")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        Ok(Self {
            conn: Mutex::new(Some(conn)),
            fallbacks: AtomicU64::new(0),
        })
    }

    /// Counts one call inline if that needs no waiting on SQLite.
    pub(crate) fn consume_call(&self, chain: &[Id], risk: Option<&RiskSpend>) -> Counted {
        let counted = match self.conn.lock() {
            Ok(mut guard) => match guard.as_mut() {
                Some(conn) => consume(conn, chain, risk),
                // Closed: the pool answers (it is closed too).
                None => Err(Stop::Busy),
            },
            Err(_poisoned) => Err(Stop::Busy),
        };
        match counted {
            Ok(usage) => Counted::Done(Ok(usage)),
            Err(Stop::Answer(error)) => Counted::Done(Err(error)),
            Err(Stop::Busy) => {
                self.fallbacks.fetch_add(1, Ordering::Relaxed);
                Counted::FallBack
            }
        }
    }

    /// How many calls were handed to the pool since open.
    pub(crate) fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    /// Closes the connection; later calls fall back to the (closed) pool.
    pub(crate) fn close(&self) {
        let conn = match self.conn.lock() {
            Ok(mut guard) => guard.take(),
            Err(poisoned) => poisoned.into_inner().take(),
        };
        if let Some(conn) = conn {
            if let Err((_, error)) = conn.close() {
                tracing::warn!(%error, "closing the SQLite counters connection failed");
            }
        }
    }
}

/// The whole call on `conn`, all or nothing: the same statements, order and
/// refusals as the pool path (`consume_call_via_pool` in `sql.rs`).
fn consume(conn: &Connection, chain: &[Id], risk: Option<&RiskSpend>) -> Result<CallUsage, Stop> {
    const ACTION: &str = "count a call's steps and risk";
    if !conn.is_autocommit() {
        // INVARIANT: every use ends its transaction; this only repairs a
        // rollback that failed last time.
        conn.execute_batch("ROLLBACK").map_err(stop(ACTION))?;
    }
    let risk = checked_risk(risk)?;
    if let Some(r) = risk.filter(|r| r.amount > r.limit) {
        return Err(risk_exhausted(r, risk_spent(conn, r)?).into());
    }
    // The common case, one link and no risk: one statement.
    if let ([jti], None) = (chain, risk) {
        return match take_step(conn, jti)? {
            Some(steps_used) => Ok(CallUsage {
                steps_used,
                risk_spent: None,
            }),
            None => Err(refused(conn, jti)),
        };
    }
    // BEGIN IMMEDIATE takes the write lock up front, or stops on it at
    // once; rows are then updated leaf first, then the budget, as on the
    // pool path.
    let tx = Transaction::begin(conn).map_err(stop(ACTION))?;
    let mut leaf_steps = None;
    for jti in chain {
        let Some(used) = take_step(conn, jti)? else {
            // Dropping `tx` rolls the earlier links back.
            return Err(refused(conn, jti));
        };
        leaf_steps.get_or_insert(used);
    }
    let mut usage = CallUsage {
        steps_used: leaf_steps.unwrap_or_default(),
        risk_spent: None,
    };
    if let Some(r) = risk {
        let spent = cached(conn, RISK_UPSERT_SQL).and_then(|mut upsert| {
            returning_one(
                &mut upsert,
                (r.agent.as_str(), r.window_start, r.amount, r.limit),
            )
        });
        match spent {
            Ok(Some(spent)) => usage.risk_spent = Some(spent),
            Ok(None) => return Err(risk_exhausted(r, risk_spent(conn, r)?).into()),
            Err(e) if is_foreign_key_violation(&e) => {
                return Err(StoreError::NotFound {
                    what: "agent",
                    id: r.agent.to_string(),
                }
                .into())
            }
            Err(e) => return Err(stop("spend risk budget")(e)),
        }
    }
    tx.commit().map_err(stop(ACTION))?;
    Ok(usage)
}

/// An open `BEGIN IMMEDIATE` transaction, rolled back on drop unless
/// committed.
struct Transaction<'c> {
    conn: &'c Connection,
}

impl<'c> Transaction<'c> {
    fn begin(conn: &'c Connection) -> rusqlite::Result<Self> {
        cached(conn, "BEGIN IMMEDIATE")?.execute([])?;
        Ok(Self { conn })
    }

    fn commit(self) -> rusqlite::Result<()> {
        // On failure the transaction is still open and `drop` rolls it back.
        cached(self.conn, "COMMIT")?.execute([])?;
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
            tracing::warn!(%error, "rolling back an inline counter transaction failed");
        }
    }
}

fn cached<'c>(conn: &'c Connection, sql: &str) -> rusqlite::Result<rusqlite::CachedStatement<'c>> {
    conn.prepare_cached(sql)
}

/// Runs a statement returning at most one integer, stepping it to the end:
/// an autocommit statement commits there, and its errors surface here
/// instead of being lost in a reset.
fn returning_one(stmt: &mut Statement<'_>, params: impl Params) -> rusqlite::Result<Option<i64>> {
    let mut rows = stmt.query(params)?;
    let value = match rows.next()? {
        Some(row) => Some(row.get(0)?),
        None => None,
    };
    if value.is_some() {
        rows.next()?;
    }
    Ok(value)
}

/// One step of `jti` (the steps it has now used), or `None` if it has none
/// left or is unknown.
fn take_step(conn: &Connection, jti: &Id) -> Result<Option<i64>, Stop> {
    cached(conn, STEP_SQL)
        .and_then(|mut step| returning_one(&mut step, [jti.as_str()]))
        .map_err(stop("count a call's steps and risk"))
}

/// Why `jti` took no step.
fn refused(conn: &Connection, jti: &Id) -> Stop {
    let row = cached(conn, MAX_STEPS_SQL).and_then(|mut select| {
        select
            .query_row([jti.as_str()], |row| row.get::<_, Option<i64>>(0))
            .optional()
    });
    match row {
        Ok(max_steps) => step_refused(jti, max_steps).into(),
        Err(e) => stop("look up a remit")(e),
    }
}

/// The risk `r.agent` has spent in `r.window_start`.
fn risk_spent(conn: &Connection, r: &RiskSpend) -> Result<i64, Stop> {
    cached(conn, RISK_SPENT_SQL)
        .and_then(|mut select| {
            select
                .query_row((r.agent.as_str(), r.window_start), |row| row.get(0))
                .optional()
        })
        .map(|spent| spent.unwrap_or(0))
        .map_err(stop("read risk budget"))
}

/// Classifies a driver error met while doing `action`.
fn stop(action: &'static str) -> impl FnOnce(rusqlite::Error) -> Stop {
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

fn is_foreign_key_violation(error: &rusqlite::Error) -> bool {
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
