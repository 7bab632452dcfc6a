//! Steps and risk reserved ahead, so most calls count in memory.
//!
//! A gateway call takes one step of every remit in its chain and, for a
//! tool above low risk, risk points from its agent's budget in the current
//! window. Committing that to SQLite on every call (a write transaction:
//! file locks, a WAL frame) was the largest store cost on the call path.
//! Instead this process reserves a *range* of a remit's steps (and a part
//! of an agent's window budget) in one commit and hands them out from
//! memory, call by call, until the range is used up; then it reserves the
//! next one. The database stays the arbiter between processes on the
//! same file (`remit serve` and `remit wrap` share it): a reservation is an
//! ordinary all-or-nothing write that never takes a step beyond
//! `max_steps` nor a risk point beyond the window's limit, so no process
//! can ever use more than the remit and the budget allow. A call whose
//! links or budget need a new reservation reserves all of them in one
//! transaction, or nothing.
//!
//! How much is reserved ([`block`]): 1/16 of what is left, at least what
//! the call needs and at most [`MAX_BLOCK`] (steps or risk points); a remit
//! without a step limit reserves [`MAX_BLOCK`] steps. Close to a limit
//! (fewer than 32 left) every reservation is just what the call takes,
//! exactly as without reservations.
//!
//! What it changes, and only this:
//!
//! - What this process reserved and has not used yet counts as used for
//!   every other process until it is given back: at the latest [`IDLE`]
//!   after the last call here that used it ([`Held::release`], run by the
//!   store's periodic task), or when the store is closed. Another process
//!   may thus be refused for that long while this one holds at most 1/16
//!   of what was left.
//! - If the process dies holding a reservation, what it did not use stays
//!   counted as used (fewer steps and less risk, never more).
//! - The counts a call is told (`steps_used`, `risk_spent`, which the
//!   policy sees) are this process's: exact with one process, and never
//!   below what this process used.
//!
//! Reservations are committed on the inline connection ([`super::inline`],
//! `synchronous=NORMAL`; see the store's durability notes), which never
//! waits on SQLite: when it would have to, [`Held::take`] answers
//! [`Took::Busy`] and the store counts the call without reservation.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension};

use super::inline::{
    cached, is_foreign_key_violation, repair, stop, InlineConn, Stop, Transaction,
};
use crate::error::StoreError;
use crate::model::{Id, RiskSpend};
use crate::sql::{risk_exhausted, step_refused};

/// The most steps, or risk points, one reservation takes.
pub(crate) const MAX_BLOCK: i64 = 64;

/// How long a reservation may go unused before it is given back.
pub(crate) const IDLE: Duration = Duration::from_secs(1);

/// How long giving everything back waits for another writer.
const RELEASE_WAIT: Duration = Duration::from_secs(5);

/// How much to reserve when `left` remains and the call needs `needed`
/// (`None`: no limit).
pub(crate) fn block(left: Option<i64>, needed: i64) -> i64 {
    match left {
        None => MAX_BLOCK.max(needed),
        Some(left) => (left / 16).min(MAX_BLOCK).max(needed),
    }
}

/// What this process holds, by remit and by agent window.
#[derive(Debug, Default)]
pub(crate) struct Held {
    state: Mutex<Holdings>,
}

#[derive(Debug, Default)]
struct Holdings {
    steps: HashMap<Id, Range>,
    risk: HashMap<(Id, i64), Budget>,
}

/// Steps `last + 1 ..= end` of one remit are reserved here.
#[derive(Clone, Copy, Debug)]
struct Range {
    /// The steps used as this process counts them: the number of the last
    /// step handed out.
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

/// Risk points of one agent's window reserved here.
#[derive(Clone, Copy, Debug)]
struct Budget {
    /// The window's spend in the database after this process's last
    /// reservation.
    reserved_to: i64,
    /// Of what this process reserved, the points not spent yet.
    spare: i64,
    /// When points were last spent (or reserved).
    touched: Instant,
}

impl Budget {
    /// The window's spend as this process counts it.
    fn spent(&self) -> i64 {
        self.reserved_to - self.spare
    }
}

/// What [`Held::take`] did.
#[derive(Debug)]
pub(crate) enum Took {
    /// One step of every link, and the risk, were taken.
    Counted(Taken),
    /// A link has no step left (or was never recorded), or the budget
    /// has too little left; nothing was taken.
    Refused(StoreError),
    /// A reservation would have had to wait for SQLite (or the inline
    /// connection is closed or poisoned); nothing was taken: count the
    /// call without reservations.
    Busy,
}

/// What one call took.
#[derive(Debug)]
pub(crate) struct Taken {
    /// The leaf's steps used, this call included (0 for an empty chain).
    pub(crate) leaf_steps: i64,
    /// The leaf's step limit.
    pub(crate) leaf_max: Option<i64>,
    /// The window's spend after this call, when it spent risk.
    pub(crate) risk_spent: Option<i64>,
}

/// A reservation the call needs.
struct Need<'a> {
    /// Links without a spare step, leaf first.
    links: Vec<&'a Id>,
    /// Risk points beyond the window's spare ones.
    risk: Option<(&'a RiskSpend, i64)>,
}

/// What one reservation took.
struct Reserved<'a> {
    /// Per link: the remit, the steps it had used, its limit, the steps
    /// reserved.
    links: Vec<(&'a Id, i64, Option<i64>, i64)>,
    /// The window's spend before, and the points reserved.
    risk: Option<(i64, i64)>,
}

impl Held {
    fn state(&self) -> MutexGuard<'_, Holdings> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes one step of every remit in `chain` (leaf first) and `risk`
    /// (a positive spend, if any), all or nothing, reserving on `inline` in
    /// one transaction whatever has too little spare.
    pub(crate) fn take(&self, inline: &InlineConn, chain: &[Id], risk: Option<&RiskSpend>) -> Took {
        let mut held = self.state();
        let now = Instant::now();
        // The window the risk is spent in, keyed once.
        let window = risk.map(|r| (r.agent.clone(), r.window_start));
        let need = Need {
            links: chain
                .iter()
                .filter(|jti| held.steps.get(*jti).is_none_or(|r| r.spare() < 1))
                .collect(),
            risk: risk.zip(window.as_ref()).and_then(|(r, key)| {
                let spare = held.risk.get(key).map_or(0, |b| b.spare);
                (spare < r.amount).then_some((r, r.amount - spare))
            }),
        };
        if !need.links.is_empty() || need.risk.is_some() {
            let reserved = match inline.with(|conn| reserve(conn, &need)) {
                Ok(reserved) => reserved,
                Err(Stop::Busy) => return Took::Busy,
                Err(Stop::Answer(refusal)) => return Took::Refused(refusal),
            };
            for (jti, used, max, steps) in reserved.links {
                let range = Range {
                    last: used,
                    end: used + steps,
                    max,
                    touched: now,
                };
                held.steps.insert(jti.clone(), range);
            }
            if let (Some((before, points)), Some(key)) = (reserved.risk, window.clone()) {
                let budget = held.risk.entry(key).or_insert(Budget {
                    reserved_to: 0,
                    spare: 0,
                    touched: now,
                });
                budget.reserved_to = before + points;
                budget.spare += points;
            }
        }
        let mut taken = Taken {
            leaf_steps: 0,
            leaf_max: None,
            risk_spent: None,
        };
        // INVARIANT: every link has a spare step and the window enough
        // spare points: they had them, or they were just reserved.
        if chain
            .iter()
            .any(|jti| held.steps.get(jti).is_none_or(|r| r.spare() < 1))
        {
            return Took::Busy;
        }
        if let Some((r, key)) = risk.zip(window.as_ref()) {
            let Some(budget) = held.risk.get_mut(key).filter(|b| b.spare >= r.amount) else {
                return Took::Busy;
            };
            budget.spare -= r.amount;
            budget.touched = now;
            taken.risk_spent = Some(budget.spent());
        }
        for (i, jti) in chain.iter().enumerate() {
            if let Some(range) = held.steps.get_mut(jti) {
                range.last += 1;
                range.touched = now;
                if i == 0 {
                    taken.leaf_steps = range.last;
                    taken.leaf_max = range.max;
                }
            }
        }
        Took::Counted(taken)
    }

    /// Moves the ranges of `chain` and the window of `risk` up by a call
    /// the database counted without them (the busy fallback), so later
    /// calls counted from them are told counts that include it.
    pub(crate) fn counted_in_db(&self, chain: &[Id], risk: Option<&RiskSpend>) {
        let mut held = self.state();
        for jti in chain {
            if let Some(range) = held.steps.get_mut(jti) {
                range.last += 1;
                range.end += 1;
            }
        }
        if let Some(r) = risk {
            if let Some(budget) = held.risk.get_mut(&(r.agent.clone(), r.window_start)) {
                budget.reserved_to += r.amount;
            }
        }
    }

    /// Steps of `jti` reserved here and not used.
    pub(crate) fn spare_steps(&self, jti: &Id) -> i64 {
        self.state().steps.get(jti).map_or(0, Range::spare)
    }

    /// Risk points of `agent`'s window reserved here and not spent.
    pub(crate) fn spare_risk(&self, agent: &Id, window_start: i64) -> i64 {
        self.state()
            .risk
            .get(&(agent.clone(), window_start))
            .map_or(0, |b| b.spare)
    }

    /// Gives what every reservation idle for [`IDLE`] (every one, with
    /// `all`, waiting up to [`RELEASE_WAIT`] for another writer) did not use
    /// back to the database in one transaction, and forgets those
    /// reservations. Returns how many were released, or `None` when the
    /// database was busy: then nothing changed, and the next call retries.
    pub(crate) fn release(
        &self,
        inline: &InlineConn,
        all: bool,
    ) -> Result<Option<usize>, StoreError> {
        let mut held = self.state();
        let now = Instant::now();
        let idle = |touched: Instant| all || now.duration_since(touched) >= IDLE;
        let steps: Vec<(Id, i64)> = held
            .steps
            .iter()
            .filter(|(_, r)| idle(r.touched))
            .map(|(jti, r)| (jti.clone(), r.spare()))
            .collect();
        let risk: Vec<((Id, i64), i64)> = held
            .risk
            .iter()
            .filter(|(_, b)| idle(b.touched))
            .map(|(key, b)| (key.clone(), b.spare))
            .collect();
        if steps.is_empty() && risk.is_empty() {
            return Ok(Some(0));
        }
        if steps.iter().any(|(_, spare)| *spare > 0) || risk.iter().any(|(_, spare)| *spare > 0) {
            let given = inline.with(|conn| {
                if !all {
                    return give(conn, &steps, &risk);
                }
                // Giving everything back (at close) waits a little for
                // another writer; the periodic release never waits.
                let _ = conn.busy_timeout(RELEASE_WAIT);
                let given = give(conn, &steps, &risk);
                let _ = conn.busy_timeout(Duration::ZERO);
                given
            });
            match given {
                Ok(()) => {}
                Err(Stop::Busy) => return Ok(None),
                Err(Stop::Answer(error)) => return Err(error),
            }
        }
        for (jti, _) in &steps {
            held.steps.remove(jti);
        }
        for (key, _) in &risk {
            held.risk.remove(key);
        }
        Ok(Some(steps.len() + risk.len()))
    }
}

const RESERVE: &str = "reserve a call's steps and risk";

/// Reserves what `need` lists in one transaction (links leaf first, then
/// the risk), or refuses with the first link that has no step left or the
/// budget that has too little, reserving nothing.
fn reserve<'a>(conn: &Connection, need: &Need<'a>) -> Result<Reserved<'a>, Stop> {
    repair(conn)?;
    let tx = Transaction::begin(conn).map_err(stop(RESERVE))?;
    let mut reserved = Reserved {
        links: Vec::with_capacity(need.links.len()),
        risk: None,
    };
    for &jti in &need.links {
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
        let steps = block(max.map(|max| max - used), 1);
        cached(
            conn,
            "UPDATE issued_remits SET steps_used = steps_used + ?2 WHERE jti = ?1",
        )
        .and_then(|mut update| update.execute((jti.as_str(), steps)))
        .map_err(stop(RESERVE))?;
        reserved.links.push((jti, used, max, steps));
    }
    if let Some((r, needed)) = need.risk {
        let spent = cached(
            conn,
            "SELECT spent FROM risk_budgets WHERE agent_id = ?1 AND window_start = ?2",
        )
        .and_then(|mut select| {
            select
                .query_row((r.agent.as_str(), r.window_start), |row| {
                    row.get::<_, i64>(0)
                })
                .optional()
        })
        .map_err(stop(RESERVE))?
        .unwrap_or(0);
        if spent + needed > r.limit {
            // The spend reported leaves out what this process holds unspent
            // (the call needed the rest of its amount).
            let spare = r.amount - needed;
            return Err(risk_exhausted(r, spent - spare).into());
        }
        let points = block(Some(r.limit - spent), needed);
        let upsert = cached(
            conn,
            "INSERT INTO risk_budgets (agent_id, window_start, spent) VALUES (?1, ?2, ?3) \
             ON CONFLICT (agent_id, window_start) \
             DO UPDATE SET spent = risk_budgets.spent + excluded.spent",
        )
        .and_then(|mut upsert| upsert.execute((r.agent.as_str(), r.window_start, points)));
        match upsert {
            Ok(_) => {}
            Err(e) if is_foreign_key_violation(&e) => {
                return Err(StoreError::NotFound {
                    what: "agent",
                    id: r.agent.to_string(),
                }
                .into())
            }
            Err(e) => return Err(stop(RESERVE)(e)),
        }
        reserved.risk = Some((spent, points));
    }
    tx.commit().map_err(stop(RESERVE))?;
    Ok(reserved)
}

/// Gives `(jti, unused steps)` and `((agent, window), unused points)` back
/// in one transaction.
fn give(conn: &Connection, steps: &[(Id, i64)], risk: &[((Id, i64), i64)]) -> Result<(), Stop> {
    const GIVE: &str = "give back reserved steps and risk";
    repair(conn)?;
    let tx = Transaction::begin(conn).map_err(stop(GIVE))?;
    for (jti, spare) in steps.iter().filter(|(_, spare)| *spare > 0) {
        cached(
            conn,
            "UPDATE issued_remits SET steps_used = MAX(steps_used - ?2, 0) WHERE jti = ?1",
        )
        .and_then(|mut update| update.execute((jti.as_str(), *spare)))
        .map_err(stop(GIVE))?;
    }
    for ((agent, window), spare) in risk.iter().filter(|(_, spare)| *spare > 0) {
        cached(
            conn,
            "UPDATE risk_budgets SET spent = MAX(spent - ?3, 0) \
             WHERE agent_id = ?1 AND window_start = ?2",
        )
        .and_then(|mut update| update.execute((agent.as_str(), *window, *spare)))
        .map_err(stop(GIVE))?;
    }
    tx.commit().map_err(stop(GIVE))?;
    Ok(())
}
