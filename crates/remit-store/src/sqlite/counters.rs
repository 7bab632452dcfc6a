//! The per-call counters on an inline SQLite connection.
//!
//! [`BudgetRepo::consume_call`](crate::BudgetRepo::consume_call) runs on
//! every allowed gateway call. Through sqlx each statement is a hop to the
//! connection's worker thread and back (pool acquire, two channel sends,
//! two thread wake-ups); here the calling task runs the same statements
//! itself on one `rusqlite` connection behind a [`Mutex`]: one short
//! transaction, no `.await` while the lock is held, cached statements.
//!
//! # Calls that arrive together commit together
//!
//! Each commit costs more than its statements: SQLite takes and drops its
//! file locks (`fcntl`) and writes the changed pages to the WAL (`pwrite`).
//! So calls queue, and the task that finds no batch being counted counts
//! everything queued, again until the queue is empty, and hands each
//! waiting task its own answer: one `BEGIN IMMEDIATE … COMMIT` for the
//! batch, each call inside its own `SAVEPOINT` so that a refused call rolls
//! back only its own statements. Every call sees the counts of the calls
//! counted before it, exactly as if they had committed one by one; a
//! failed commit hands the whole batch to the pool. A call alone in the
//! queue (no concurrency) runs the single-call path unchanged.
//!
//! A counting task counts at most [`MAX_ROUNDS`] batches. If calls are
//! still queued then, it hands the lead to the oldest waiting call, whose
//! task counts next, and returns to its own (already answered) call: under
//! sustained load no one caller keeps counting for everyone else while its
//! own answer waits.
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
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::oneshot;

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
    /// Calls waiting to be counted, and whether a task is counting.
    queue: Mutex<Queue>,
    /// Calls handed to the pool instead.
    fallbacks: AtomicU64,
    /// Batches of more than one call committed together.
    batches: AtomicU64,
}

/// Calls waiting for the task that is counting.
#[derive(Debug, Default)]
pub(super) struct Queue {
    pub(super) waiting: Vec<Waiting>,
    /// A task is counting and will take everything queued, or hand the
    /// lead on, before it stops.
    pub(super) counting: bool,
}

/// Batches one counting task counts before it hands the lead on.
pub(super) const MAX_ROUNDS: usize = 4;

/// One call in the queue.
#[derive(Debug)]
pub(super) struct Waiting {
    pub(super) chain: Vec<Id>,
    pub(super) risk: Option<RiskSpend>,
    pub(super) answer: oneshot::Sender<Answer>,
}

impl Waiting {
    fn new(chain: &[Id], risk: Option<&RiskSpend>, answer: oneshot::Sender<Answer>) -> Self {
        Self {
            chain: chain.to_vec(),
            risk: risk.cloned(),
            answer,
        }
    }
}

/// What a waiting call is told.
#[derive(Debug)]
pub(super) enum Answer {
    /// Its call was counted (or must fall back).
    Counted(Counted),
    /// It is to count next: its call was taken out of the queue unanswered.
    Lead,
}

/// What the counting task does next.
#[derive(Debug)]
pub(super) enum Next {
    /// Count this batch.
    Count(Vec<Waiting>),
    /// Stop: the queue is empty (and no task is counting now), or the lead
    /// was handed to a waiting call.
    Stop,
}

impl Queue {
    /// The counting task's next step after `rounds` batches, decided under
    /// the queue's lock so no call is left waiting without a counting task.
    pub(super) fn next(&mut self, rounds: usize) -> Next {
        if rounds >= MAX_ROUNDS {
            while !self.waiting.is_empty() {
                let oldest = self.waiting.remove(0);
                // A caller that stopped waiting will not forward its call:
                // it is dropped uncounted, and the next one asked.
                if oldest.answer.send(Answer::Lead).is_ok() {
                    return Next::Stop;
                }
            }
        }
        if self.waiting.is_empty() {
            self.counting = false;
            return Next::Stop;
        }
        Next::Count(std::mem::take(&mut self.waiting))
    }
}

/// Why an inline attempt stopped.
pub(super) enum Stop {
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
            queue: Mutex::new(Queue::default()),
            fallbacks: AtomicU64::new(0),
            batches: AtomicU64::new(0),
        })
    }

    /// Counts one call inline, with whatever calls are queued beside it, if
    /// that needs no waiting on SQLite.
    pub(crate) async fn consume_call(&self, chain: &[Id], risk: Option<&RiskSpend>) -> Counted {
        let (answer, mut answered) = oneshot::channel();
        let mut lead = {
            let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            queue.waiting.push(Waiting::new(chain, risk, answer));
            !std::mem::replace(&mut queue.counting, true)
        };
        loop {
            if lead {
                self.count_queued();
            }
            // A counting task that panicked dropped the answer: the pool counts.
            let counted = match answered.await {
                Ok(Answer::Counted(counted)) => counted,
                Ok(Answer::Lead) => {
                    // The queue is still marked as being counted: this task
                    // queues its call again and counts.
                    let (answer, next) = oneshot::channel();
                    answered = next;
                    let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
                    queue.waiting.push(Waiting::new(chain, risk, answer));
                    lead = true;
                    continue;
                }
                Err(_) => Counted::FallBack,
            };
            if matches!(counted, Counted::FallBack) {
                self.fallbacks.fetch_add(1, Ordering::Relaxed);
            }
            return counted;
        }
    }

    /// Counts batches until the queue is empty or [`MAX_ROUNDS`] were
    /// counted, then stops counting or hands the lead on.
    fn count_queued(&self) {
        let _stop = StopCounting(&self.queue);
        for rounds in 0.. {
            let next = {
                let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
                queue.next(rounds)
            };
            let Next::Count(batch) = next else {
                return;
            };
            let counted = match self.conn.lock() {
                Ok(mut guard) => match guard.as_mut() {
                    Some(conn) => count_batch(conn, &batch),
                    // Closed: the pool answers (it is closed too).
                    None => fall_back(batch.len()),
                },
                Err(_poisoned) => fall_back(batch.len()),
            };
            if batch.len() > 1 {
                self.batches.fetch_add(1, Ordering::Relaxed);
            }
            for (waiting, counted) in batch.into_iter().zip(counted) {
                // The caller may have stopped waiting; its call is counted.
                let _ = waiting.answer.send(Answer::Counted(counted));
            }
        }
    }

    /// How many batches of more than one call were committed together.
    pub(crate) fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
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

/// Leaves the queue able to elect a new counting task even if this one
/// panics: the batches it held are dropped (their callers fall back).
struct StopCounting<'q>(&'q Mutex<Queue>);

impl Drop for StopCounting<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let mut queue = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            queue.waiting.clear();
            queue.counting = false;
        }
    }
}

fn fall_back(calls: usize) -> Vec<Counted> {
    (0..calls).map(|_| Counted::FallBack).collect()
}

fn counted_from(counted: Result<CallUsage, Stop>) -> Counted {
    match counted {
        Ok(usage) => Counted::Done(Ok(usage)),
        Err(Stop::Answer(error)) => Counted::Done(Err(error)),
        Err(Stop::Busy) => Counted::FallBack,
    }
}

const ACTION: &str = "count a call's steps and risk";

/// Counts `batch` in one transaction, one answer per call in order. A call
/// alone runs [`consume`]; otherwise each call runs in its own savepoint
/// (a refused call rolls back only itself), and if the batch cannot take
/// the write lock at once or cannot commit, nothing it did is kept and
/// every call falls back to the pool.
pub(super) fn count_batch(conn: &Connection, batch: &[Waiting]) -> Vec<Counted> {
    if let [call] = batch {
        return vec![counted_from(consume(conn, &call.chain, call.risk.as_ref()))];
    }
    match count_together(conn, batch) {
        Ok(counted) => counted,
        Err(_) => fall_back(batch.len()),
    }
}

fn count_together(conn: &Connection, batch: &[Waiting]) -> Result<Vec<Counted>, Stop> {
    repair(conn)?;
    let tx = Transaction::begin(conn).map_err(stop(ACTION))?;
    let mut counted = Vec::with_capacity(batch.len());
    for call in batch {
        execute(conn, "SAVEPOINT counted").map_err(stop(ACTION))?;
        let one = consume_in(conn, &call.chain, call.risk.as_ref());
        if let Err(Stop::Busy) = one {
            // Not expected while the batch holds the write lock; the pool
            // counts every call of a batch rolled back whole.
            return Err(Stop::Busy);
        }
        if one.is_err() {
            execute(conn, "ROLLBACK TO counted").map_err(stop(ACTION))?;
        }
        execute(conn, "RELEASE counted").map_err(stop(ACTION))?;
        counted.push(counted_from(one));
    }
    tx.commit().map_err(stop(ACTION))?;
    Ok(counted)
}

/// Ends a transaction a failed rollback left open.
pub(super) fn repair(conn: &Connection) -> Result<(), Stop> {
    if !conn.is_autocommit() {
        // INVARIANT: every use ends its transaction; this only repairs a
        // rollback that failed last time.
        conn.execute_batch("ROLLBACK").map_err(stop(ACTION))?;
    }
    Ok(())
}

/// The whole call on `conn`, all or nothing: the same statements, order and
/// refusals as the pool path (`consume_call_via_pool` in `sql.rs`).
fn consume(conn: &Connection, chain: &[Id], risk: Option<&RiskSpend>) -> Result<CallUsage, Stop> {
    repair(conn)?;
    // The common case, one link and no risk: one statement.
    if let ([jti], None) = (chain, checked_risk(risk)?) {
        return match take_step(conn, jti)? {
            Some(steps_used) => Ok(CallUsage {
                steps_used,
                risk_spent: None,
            }),
            None => Err(refused(conn, jti)),
        };
    }
    // BEGIN IMMEDIATE takes the write lock up front, or stops on it at
    // once.
    let tx = Transaction::begin(conn).map_err(stop(ACTION))?;
    let usage = consume_in(conn, chain, risk)?;
    tx.commit().map_err(stop(ACTION))?;
    Ok(usage)
}

/// The call's statements inside an open transaction: rows updated leaf
/// first, then the budget, as on the pool path. On an error the caller
/// rolls back.
fn consume_in(
    conn: &Connection,
    chain: &[Id],
    risk: Option<&RiskSpend>,
) -> Result<CallUsage, Stop> {
    let risk = checked_risk(risk)?;
    if let Some(r) = risk.filter(|r| r.amount > r.limit) {
        return Err(risk_exhausted(r, risk_spent(conn, r)?).into());
    }
    let mut leaf_steps = None;
    for jti in chain {
        let Some(used) = take_step(conn, jti)? else {
            // The caller rolls the earlier links back.
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
    Ok(usage)
}

/// An open `BEGIN IMMEDIATE` transaction, rolled back on drop unless
/// committed.
pub(super) struct Transaction<'c> {
    conn: &'c Connection,
}

impl<'c> Transaction<'c> {
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
            tracing::warn!(%error, "rolling back an inline counter transaction failed");
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
