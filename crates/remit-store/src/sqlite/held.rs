//! Steps reserved ahead, so most calls count in memory.
//!
//! A gateway call takes one step of every remit in its chain. Committing
//! that to SQLite on every call (a write transaction: file locks, a WAL
//! frame) was the largest store cost on the call path. Instead this process
//! reserves a *range* of a remit's steps in one commit and hands them out
//! from memory, one per call, until the range is used up; then it reserves
//! the next range. The database stays the arbiter between processes on the
//! same file (`remit serve` and `remit wrap` share it): a reservation is an
//! ordinary all-or-nothing write that never takes a step beyond
//! `max_steps`, so no process can ever use more steps than the remit has.
//!
//! How much is reserved ([`block`]): 1/16 of what the remit has left, at
//! least one and at most [`MAX_BLOCK`]; a remit without a step limit
//! reserves [`MAX_BLOCK`]. Close to the limit (fewer than 32 steps left)
//! every reservation is a single step, taken by the call that reserved it,
//! exactly as without reservations.
//!
//! What it changes, and only this:
//!
//! - Steps reserved by this process and not used yet count as used for
//!   every other process until they are given back: at the latest
//!   [`IDLE`] after the remit's last call here ([`Held::release`], run by
//!   the store's periodic task), or when the store is closed. Another
//!   process may thus be refused a step for that long while this one holds
//!   at most 1/16 of what was left.
//! - If the process dies holding a range, the unused steps stay counted as
//!   used (the remit ends up with fewer steps, never more).
//! - The step number a call is told (`steps_used`, which the policy sees)
//!   is its place in this process's range: exact with one process, and
//!   never below the true count.
//!
//! Reservations are committed like the counters before them
//! (`synchronous=NORMAL` on the inline connection; see the store's
//! durability notes).

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension};

use super::counters::{cached, repair, stop, Stop, Transaction};
use crate::error::StoreError;
use crate::model::Id;
use crate::sql::step_refused;

/// The most steps one reservation takes.
pub(crate) const MAX_BLOCK: i64 = 64;

/// How long a range may go unused before its steps are given back.
pub(crate) const IDLE: Duration = Duration::from_secs(1);

/// How long giving every range back waits for another writer.
const RELEASE_WAIT: Duration = Duration::from_secs(5);

/// How many steps to reserve for a remit that has used `used` of `max`.
pub(crate) fn block(max: Option<i64>, used: i64) -> i64 {
    match max {
        None => MAX_BLOCK,
        Some(max) => (max.saturating_sub(used) / 16).clamp(1, MAX_BLOCK),
    }
}

/// The ranges of steps this process holds, by remit.
#[derive(Debug, Default)]
pub(crate) struct Held {
    ranges: Mutex<HashMap<Id, Range>>,
}

/// Steps `last + 1 ..= end` of one remit are reserved here.
#[derive(Clone, Copy, Debug)]
struct Range {
    /// The steps used as this process counts them: the number of the last
    /// step handed out, less the steps given back since.
    last: i64,
    /// The number of the last step reserved.
    end: i64,
    /// The remit's step limit.
    max: Option<i64>,
    /// When a step was last handed out (or the range reserved).
    touched: Instant,
}

impl Range {
    fn spare(&self) -> i64 {
        self.end - self.last
    }
}

/// What [`Held::take`] did.
#[derive(Debug)]
pub(crate) enum Took {
    /// One step of every link was taken.
    Steps(Taken),
    /// A link has no step left (or was never recorded); nothing was taken.
    Refused(StoreError),
    /// A reservation would have had to wait for SQLite (or the inline
    /// connection is closed or poisoned); nothing was taken: count the
    /// call without reservations.
    Busy,
}

/// The steps one call took: each link's step number (and limit), leaf
/// first.
#[derive(Debug)]
pub(crate) struct Taken(Vec<(Id, i64, Option<i64>)>);

impl Taken {
    /// The leaf's step number: the steps it has used, this call included
    /// (0 for an empty chain).
    pub(crate) fn leaf(&self) -> i64 {
        self.0.first().map_or(0, |(_, number, _)| *number)
    }

    /// The leaf's step limit.
    pub(crate) fn leaf_max(&self) -> Option<i64> {
        self.0.first().and_then(|(_, _, max)| *max)
    }
}

impl Held {
    fn ranges(&self) -> MutexGuard<'_, HashMap<Id, Range>> {
        self.ranges.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes one step of every remit in `chain` (leaf first), all or
    /// nothing, reserving a new range on `conn` for each link whose range is
    /// used up, in one transaction.
    pub(crate) fn take(&self, conn: &Mutex<Option<Connection>>, chain: &[Id]) -> Took {
        let mut ranges = self.ranges();
        let now = Instant::now();
        let needed: Vec<&Id> = chain
            .iter()
            .filter(|jti| ranges.get(*jti).is_none_or(|r| r.spare() < 1))
            .collect();
        if !needed.is_empty() {
            let reserved = match conn.lock() {
                Ok(guard) => match guard.as_ref() {
                    Some(conn) => reserve(conn, &needed),
                    None => Err(Stop::Busy),
                },
                Err(_poisoned) => Err(Stop::Busy),
            };
            match reserved {
                Ok(reserved) => {
                    for (jti, used, max, steps) in reserved {
                        let range = Range {
                            last: used,
                            end: used + steps,
                            max,
                            touched: now,
                        };
                        ranges.insert(jti.clone(), range);
                    }
                }
                Err(Stop::Busy) => return Took::Busy,
                Err(Stop::Answer(refusal)) => return Took::Refused(refusal),
            }
        }
        let mut taken = Vec::with_capacity(chain.len());
        for jti in chain {
            // INVARIANT: every link has a range with a spare step: it had
            // one, or one was just reserved (at least one step).
            let Some(range) = ranges.get_mut(jti).filter(|r| r.spare() >= 1) else {
                return Took::Busy;
            };
            range.last += 1;
            range.touched = now;
            taken.push((jti.clone(), range.last, range.max));
        }
        Took::Steps(Taken(taken))
    }

    /// Gives back the steps of a call refused after it took them (its risk
    /// budget was spent): each becomes a spare step of its remit's range
    /// again, even if later calls took steps meanwhile or the range was
    /// renewed (the database counts it either way), so a refused call uses
    /// no step. Only a range already given back to the database (idle for
    /// [`IDLE`] while the refused call waited) keeps the step used.
    pub(crate) fn give_back(&self, taken: &Taken) {
        let mut ranges = self.ranges();
        for (jti, _, _) in &taken.0 {
            if let Some(range) = ranges.get_mut(jti) {
                range.last -= 1;
            }
        }
    }

    /// Steps of `jti` reserved here and not used.
    pub(crate) fn spare(&self, jti: &Id) -> i64 {
        self.ranges().get(jti).map_or(0, Range::spare)
    }

    /// Gives the unused steps of every range idle for [`IDLE`] (of every
    /// range, with `all`, waiting up to [`RELEASE_WAIT`] for another
    /// writer) back to the database in one transaction, and
    /// forgets those ranges. Returns how many ranges were released, or
    /// `None` when the database was busy: then nothing changed, and the next
    /// call retries.
    pub(crate) fn release(
        &self,
        conn: &Mutex<Option<Connection>>,
        all: bool,
    ) -> Result<Option<usize>, StoreError> {
        let mut ranges = self.ranges();
        let now = Instant::now();
        let idle: Vec<(Id, i64)> = ranges
            .iter()
            .filter(|(_, r)| all || now.duration_since(r.touched) >= IDLE)
            .map(|(jti, r)| (jti.clone(), r.spare()))
            .collect();
        if idle.is_empty() {
            return Ok(Some(0));
        }
        let unused: Vec<&(Id, i64)> = idle.iter().filter(|(_, spare)| *spare > 0).collect();
        if !unused.is_empty() {
            let given = match conn.lock() {
                Ok(guard) => match guard.as_ref() {
                    // Giving everything back (at close) waits a little for
                    // another writer; the periodic release never waits.
                    Some(conn) if all => {
                        let _ = conn.busy_timeout(RELEASE_WAIT);
                        let given = give(conn, &unused);
                        let _ = conn.busy_timeout(Duration::ZERO);
                        given
                    }
                    Some(conn) => give(conn, &unused),
                    None => Err(Stop::Busy),
                },
                Err(_poisoned) => Err(Stop::Busy),
            };
            match given {
                Ok(()) => {}
                Err(Stop::Busy) => return Ok(None),
                Err(Stop::Answer(error)) => return Err(error),
            }
        }
        for (jti, _) in &idle {
            ranges.remove(jti);
        }
        Ok(Some(idle.len()))
    }
}

const RESERVE: &str = "reserve a remit's steps";

/// What one reservation took: the remit, the steps it had used before,
/// its limit, and the steps reserved.
type Reserved<'a> = (&'a Id, i64, Option<i64>, i64);

/// Reserves a range for each of `needed` (leaf first) in one transaction,
/// or refuses with the first link that has no step left, reserving nothing.
fn reserve<'a>(conn: &Connection, needed: &[&'a Id]) -> Result<Vec<Reserved<'a>>, Stop> {
    repair(conn)?;
    let tx = Transaction::begin(conn).map_err(stop(RESERVE))?;
    let mut reserved = Vec::with_capacity(needed.len());
    for &jti in needed {
        let row = cached(
            conn,
            "SELECT steps_used, max_steps FROM issued_remits WHERE jti = ?1",
        )
        .and_then(|mut select| {
            select
                .query_row([jti.as_str()], |row| {
                    Ok((row.get::<_, i64>(0)?, row.get::<_, Option<i64>>(1)?))
                })
                .optional()
        })
        .map_err(stop(RESERVE))?;
        let (used, max) = match row {
            None => return Err(step_refused(jti, None).into()),
            Some((used, Some(max))) if used >= max => {
                return Err(step_refused(jti, Some(Some(max))).into())
            }
            Some(found) => found,
        };
        let steps = block(max, used);
        cached(
            conn,
            "UPDATE issued_remits SET steps_used = steps_used + ?2 WHERE jti = ?1",
        )
        .and_then(|mut update| update.execute((jti.as_str(), steps)))
        .map_err(stop(RESERVE))?;
        reserved.push((jti, used, max, steps));
    }
    tx.commit().map_err(stop(RESERVE))?;
    Ok(reserved)
}

/// Gives `(jti, unused steps)` back in one transaction.
fn give(conn: &Connection, unused: &[&(Id, i64)]) -> Result<(), Stop> {
    const GIVE: &str = "give back reserved steps";
    repair(conn)?;
    let tx = Transaction::begin(conn).map_err(stop(GIVE))?;
    for (jti, spare) in unused {
        cached(
            conn,
            "UPDATE issued_remits SET steps_used = MAX(steps_used - ?2, 0) WHERE jti = ?1",
        )
        .and_then(|mut update| update.execute((jti.as_str(), *spare)))
        .map_err(stop(GIVE))?;
    }
    tx.commit().map_err(stop(GIVE))?;
    Ok(())
}
