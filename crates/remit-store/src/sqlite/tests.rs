//! Reservations on the inline connection and the checkpoint task, seen from
//! inside the store: which path answered, what a busy reservation left
//! behind, whether the WAL stays bounded.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use tempfile::TempDir;

use super::checkpoint::checkpoint_once;
use super::SqliteStore;
use crate::model::*;
use crate::repo::*;
use crate::StoreError;

/// A checkpoint period no test waits for.
const NEVER: Duration = Duration::from_secs(3_600);
/// How long a poll waits before the test fails (generous: shared machine).
const DEADLINE: Duration = Duration::from_secs(60);

fn id(text: &str) -> Id {
    Id::parse("test id", text).unwrap()
}

fn remit(jti: &str, parent: Option<&str>, max_steps: Option<i64>) -> IssuedRemit {
    IssuedRemit {
        jti: id(jti),
        root_jti: id(parent.map_or(jti, |_| "r1")),
        parent_jti: parent.map(id),
        holder_thumbprint: "thumb-agt_a".into(),
        sub: id("alice"),
        agent: id("agt_a"),
        issued_at: 1_000,
        expires_at: 1_300,
        max_steps,
    }
}

fn risk(agent: &str, amount: i64, limit: i64) -> RiskSpend {
    RiskSpend {
        agent: id(agent),
        window_start: 3_600,
        amount,
        limit,
    }
}

/// A store with agent `agt_a`, root `r1` (`max_steps`) and its child `c1`.
async fn store(dir: &TempDir, max_steps: Option<i64>, every: Duration) -> SqliteStore {
    let s = SqliteStore::open_with(&dir.path().join("remit.db"), every)
        .await
        .unwrap();
    s.register_agent(
        &NewAgent {
            id: id("agt_a"),
            name: "agent a".into(),
            public_jwk: r#"{"kty":"EC"}"#.into(),
            key_thumbprint: "thumb-agt_a".into(),
            owner: "ops@example.com".into(),
            risk_tier: RiskTier::Medium,
        },
        1,
    )
    .await
    .unwrap();
    s.record_remit(&remit("r1", None, max_steps)).await.unwrap();
    s.record_remit(&remit("c1", Some("r1"), None))
        .await
        .unwrap();
    s
}

/// Steps used by `jti` and risk spent by `agt_a`, read on the main pool.
async fn usage(s: &SqliteStore, jti: &str) -> (i64, i64) {
    let u = s.usage(&id(jti), &id("agt_a"), 3_600).await.unwrap();
    (u.steps_used, u.risk_spent)
}

async fn poll(what: &str, mut done: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !done() {
        assert!(start.elapsed() < DEADLINE, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

// Refusals first: each takes nothing, and the reservation (not the pool,
// which refuses the same calls alike) gave the answer.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exhausted_steps_are_refused_by_the_reservation_and_roll_the_leaf_back() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir, Some(1), NEVER).await;
    s.consume_call(&[id("r1")], None).await.unwrap();
    for chain in [vec![id("r1")], vec![id("c1"), id("r1")]] {
        match s.consume_call(&chain, Some(&risk("agt_a", 1, 5))).await {
            Err(StoreError::StepsExhausted { jti, max }) => {
                assert_eq!((jti.as_str(), max), ("r1", 1))
            }
            other => panic!("expected exhausted steps, got {other:?}"),
        }
    }
    assert_eq!(usage(&s, "c1").await, (0, 0));
    assert_eq!(usage(&s, "r1").await, (1, 0));
    assert_eq!(s.counter_fallbacks(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_risk_budget_is_refused_by_the_reservation_and_takes_no_step() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir, None, NEVER).await;
    let chain = [id("c1"), id("r1")];
    s.consume_call(&chain, Some(&risk("agt_a", 2, 3)))
        .await
        .unwrap();
    for amount in [2, 4] {
        match s
            .consume_call(&chain, Some(&risk("agt_a", amount, 3)))
            .await
        {
            Err(StoreError::RiskBudgetExhausted {
                spent,
                requested,
                limit,
                ..
            }) => assert_eq!((spent, requested, limit), (2, amount, 3)),
            other => panic!("expected an exhausted budget, got {other:?}"),
        }
    }
    assert_eq!(usage(&s, "c1").await, (1, 2));
    assert_eq!(usage(&s, "r1").await, (1, 2));
    assert_eq!(s.counter_fallbacks(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unrecorded_remit_is_refused_by_the_reservation_and_takes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir, None, NEVER).await;
    for (chain, risk) in [
        (vec![id("ghost")], None),
        (vec![id("c1"), id("ghost")], Some(risk("agt_a", 1, 5))),
    ] {
        match s.consume_call(&chain, risk.as_ref()).await {
            Err(StoreError::NotFound { what, id }) => {
                assert_eq!((what, id.as_str()), ("remit", "ghost"))
            }
            other => panic!("expected the unknown remit to be refused, got {other:?}"),
        }
    }
    assert_eq!(usage(&s, "c1").await, (0, 0));
    assert_eq!(s.counter_fallbacks(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_agent_is_refused_by_the_reservation_and_takes_no_step() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir, None, NEVER).await;
    match s
        .consume_call(&[id("c1"), id("r1")], Some(&risk("ghost", 1, 5)))
        .await
    {
        Err(StoreError::NotFound { what, id }) => {
            assert_eq!((what, id.as_str()), ("agent", "ghost"))
        }
        other => panic!("expected the unknown agent to be refused, got {other:?}"),
    }
    assert_eq!(usage(&s, "c1").await, (0, 0));
    assert_eq!(usage(&s, "r1").await, (0, 0));
    assert_eq!(s.counter_fallbacks(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_negative_amount_or_limit_is_refused_before_any_reservation() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir, None, NEVER).await;
    for (amount, limit) in [(-1, 5), (1, -5)] {
        assert!(matches!(
            s.consume_call(&[id("r1")], Some(&risk("agt_a", amount, limit)))
                .await,
            Err(StoreError::Invalid {
                what: "risk amount",
                ..
            })
        ));
    }
    assert_eq!(usage(&s, "r1").await, (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uncontended_calls_from_many_tasks_are_all_counted_from_reservations() {
    const MAX: usize = 25;
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir, Some(MAX as i64), NEVER).await;
    s.record_remit(&remit("c2", Some("r1"), None))
        .await
        .unwrap();
    // 24 tasks x 3 calls = 72 calls at 25 steps, through two leaves.
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..24 {
        let s = s.clone();
        let leaf = if task % 3 == 0 { "c1" } else { "c2" };
        tasks.spawn(async move {
            let mut granted = 0;
            for _ in 0..3 {
                match s
                    .consume_call(&[id(leaf), id("r1")], Some(&risk("agt_a", 1, 1_000)))
                    .await
                {
                    Ok(_) => granted += 1,
                    Err(StoreError::StepsExhausted { jti, .. }) => assert_eq!(jti, "r1"),
                    Err(other) => panic!("unexpected {other}"),
                }
            }
            granted
        });
    }
    let mut granted = 0;
    while let Some(done) = tasks.join_next().await {
        granted += done.unwrap();
    }
    assert_eq!(granted, MAX, "each of the root's steps is granted once");
    let leaves = usage(&s, "c1").await.0 + usage(&s, "c2").await.0;
    assert_eq!(leaves as usize, MAX);
    assert_eq!(usage(&s, "r1").await, (MAX as i64, MAX as i64));
    assert_eq!(s.counter_fallbacks(), 0, "nothing else held the write lock");
}

/// Holds SQLite's write lock on its own connection until dropped or
/// committed.
fn hold_write_lock(path: &Path) -> rusqlite::Connection {
    let holder = rusqlite::Connection::open(path).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE").unwrap();
    holder
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reservation_that_finds_the_write_lock_taken_leaves_nothing_and_the_pool_counts_once() {
    let dir = tempfile::tempdir().unwrap();
    // r1 (10 steps) is reserved one step at a time, so each call below must
    // reserve on the locked database; c1 (no limit) holds a range.
    let s = store(&dir, Some(10), NEVER).await;
    s.consume_call(&[id("c1"), id("r1")], Some(&risk("agt_a", 1, 10)))
        .await
        .unwrap();
    assert_eq!(s.counter_fallbacks(), 0);
    let cases: [(Vec<Id>, Option<RiskSpend>); 2] = [
        (vec![id("c1"), id("r1")], Some(risk("agt_a", 1, 10))),
        (vec![id("r1")], None),
    ];
    let mut expected = (1, 1);
    for (round, (chain, spend)) in cases.into_iter().enumerate() {
        let holder = hold_write_lock(s.path());
        let call = tokio::spawn({
            let s = s.clone();
            async move { s.consume_call(&chain, spend.as_ref()).await }
        });
        let waiting = s.clone();
        poll("the call to be handed to the pool", || {
            waiting.counter_fallbacks() > round as u64
        })
        .await;
        // The reservation left nothing behind, and the pool waits on the
        // lock.
        assert_eq!(usage(&s, "r1").await, expected);
        assert!(!call.is_finished());
        holder.execute_batch("COMMIT").unwrap();
        let counted = call.await.unwrap().unwrap();
        expected.0 += 1;
        if round == 0 {
            expected.1 += 1;
            assert_eq!(counted.risk_spent, Some(expected.1));
            // The leaf's count leaves out the steps it holds unused.
            assert_eq!(counted.steps_used, 2);
        } else {
            assert_eq!(counted.steps_used, expected.0);
        }
        assert_eq!(usage(&s, "r1").await, expected, "counted exactly once");
    }
    assert_eq!(usage(&s, "c1").await.0, 2);
    assert_eq!(s.counter_fallbacks(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn calls_that_find_the_write_lock_taken_are_counted_by_the_pool_exactly_and_never_past_the_limit(
) {
    const MAX: i64 = 4;
    let dir = tempfile::tempdir().unwrap();
    // r1 (4 steps) is reserved one step at a time; c1 and c2 have no limit.
    let s = store(&dir, Some(MAX), NEVER).await;
    s.record_remit(&remit("c2", Some("r1"), None))
        .await
        .unwrap();
    let spend = || Some(risk("agt_a", 1, 1_000));
    // c1 now holds a range of steps and the window a range of points.
    s.consume_call(&[id("c1"), id("r1")], spend().as_ref())
        .await
        .unwrap();
    // Another connection writes: every call below needs an r1 reservation
    // it cannot take without waiting, so all four go to the pool, which has
    // 3 steps of r1 left for them.
    let holder = hold_write_lock(s.path());
    let calls = [
        (vec![id("c1"), id("r1")], spend()),
        (vec![id("c1"), id("r1")], spend()),
        (vec![id("c2"), id("r1")], spend()),
        (vec![id("r1")], None),
    ];
    let running: Vec<_> = calls
        .iter()
        .map(|(chain, spend)| {
            let (s, chain, spend) = (s.clone(), chain.clone(), spend.clone());
            tokio::spawn(async move { s.consume_call(&chain, spend.as_ref()).await })
        })
        .collect();
    let waiting = s.clone();
    poll("the four calls to be handed to the pool", || {
        waiting.counter_fallbacks() == 4
    })
    .await;
    assert_eq!(steps_in_db(&s, "r1").await, 1, "nothing reserved meanwhile");
    assert!(running.iter().all(|call| !call.is_finished()), "they wait");
    holder.execute_batch("ROLLBACK").unwrap();
    // What each granted call was told, by its leaf.
    let mut told: Vec<(String, i64, Option<i64>)> = Vec::new();
    for ((chain, _), call) in calls.iter().zip(running) {
        match call.await.unwrap() {
            Ok(counted) => {
                told.push((chain[0].to_string(), counted.steps_used, counted.risk_spent))
            }
            Err(StoreError::StepsExhausted { jti, max }) => {
                assert_eq!((jti.as_str(), max), ("r1", MAX))
            }
            Err(other) => panic!("unexpected {other}"),
        }
    }
    assert_eq!(told.len(), 3, "r1 had 3 steps left: {told:?}");
    // The counts leave out what this store holds unused (c1's steps, the
    // window's points): c1 counts on from 1, c2 from 0, the window from 1,
    // in whatever order the pool counted them. At least one c1 call and
    // two spends were granted.
    let leaf = |name: &str| -> Vec<i64> {
        let mut steps: Vec<i64> = told
            .iter()
            .filter(|(leaf, ..)| leaf == name)
            .map(|(_, steps, _)| *steps)
            .collect();
        steps.sort_unstable();
        steps
    };
    let (c1, c2) = (leaf("c1"), leaf("c2"));
    assert!(!c1.is_empty());
    assert_eq!(c1, (2..2 + c1.len() as i64).collect::<Vec<_>>(), "{told:?}");
    assert_eq!(c2, (1..1 + c2.len() as i64).collect::<Vec<_>>(), "{told:?}");
    let r1 = leaf("r1");
    assert!(r1.iter().all(|steps| (2..=MAX).contains(steps)), "{told:?}");
    let mut spent: Vec<i64> = told.iter().filter_map(|(.., spent)| *spent).collect();
    spent.sort_unstable();
    assert!(spent.len() >= 2);
    assert_eq!(spent, (2..2 + spent.len() as i64).collect::<Vec<_>>());
    // The database counts each granted call once and the refused one not
    // at all: neither its leaf step nor its spend.
    assert_eq!(usage(&s, "r1").await, (MAX, 1 + spent.len() as i64));
    assert_eq!(usage(&s, "c1").await.0, 1 + c1.len() as i64);
    assert_eq!(usage(&s, "c2").await.0, c2.len() as i64);
    // With the lock free, the reservation itself refuses the next call.
    assert!(matches!(
        s.consume_call(&[id("r1")], None).await,
        Err(StoreError::StepsExhausted { .. })
    ));
    assert_eq!(steps_in_db(&s, "r1").await, MAX, "never past the limit");
    assert_eq!(s.counter_fallbacks(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_call_the_pool_refuses_on_its_risk_budget_is_told_the_spend_without_the_points_held_unspent(
) {
    const LIMIT: i64 = 100;
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir, None, NEVER).await;
    // The window reserves 100 / 16 = 6 points: 1 spent, 5 held unspent.
    let counted = s
        .consume_call(&[id("c1")], Some(&risk("agt_a", 1, LIMIT)))
        .await
        .unwrap();
    assert_eq!(counted.risk_spent, Some(1));
    assert_eq!(spent_in_db(&s).await, 6);
    // Each spend needs a reservation that finds the write lock taken, so
    // the pool answers: 1 + 100 > 100 (in the transaction), and 101 above
    // the limit (before it).
    for (round, amount) in [LIMIT, LIMIT + 1].into_iter().enumerate() {
        let holder = hold_write_lock(s.path());
        let call = tokio::spawn({
            let s = s.clone();
            async move {
                s.consume_call(&[id("c1")], Some(&risk("agt_a", amount, LIMIT)))
                    .await
            }
        });
        let waiting = s.clone();
        poll("the call to be handed to the pool", || {
            waiting.counter_fallbacks() > round as u64
        })
        .await;
        holder.execute_batch("ROLLBACK").unwrap();
        match call.await.unwrap() {
            Err(StoreError::RiskBudgetExhausted {
                spent,
                requested,
                limit,
                ..
            }) => assert_eq!((spent, requested, limit), (1, amount, LIMIT)),
            other => panic!("expected an exhausted budget, got {other:?}"),
        }
    }
    // The refusals took nothing, and the 5 points are still held.
    assert_eq!(usage(&s, "c1").await, (1, 1));
    assert_eq!(spent_in_db(&s).await, 6);
    assert_eq!(s.counter_fallbacks(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_count_the_database_paths_report_leaves_out_what_this_store_holds_unused() {
    const LIMIT: i64 = 100;
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir, None, NEVER).await;
    // c1 holds 63 steps unused, the window 5 points (see above).
    s.consume_call(&[id("c1")], Some(&risk("agt_a", 1, LIMIT)))
        .await
        .unwrap();
    // Straight to the database, as the busy fallback counts: each path
    // reports this store's counts, not the database's.
    assert_eq!(s.consume_step_in_db(&id("c1")).await.unwrap().used, 2);
    let one_link = s.consume_call_via_pool(&[id("c1")], None).await.unwrap();
    assert_eq!((one_link.steps_used, one_link.risk_spent), (3, None));
    let chain = [id("c1"), id("r1")];
    let counted = s
        .consume_call_via_pool(&chain, Some(&risk("agt_a", 2, LIMIT)))
        .await
        .unwrap();
    assert_eq!((counted.steps_used, counted.risk_spent), (4, Some(3)));
    assert_eq!(
        s.spend_risk(&id("agt_a"), 3_600, 2, LIMIT).await.unwrap(),
        5
    );
    for amount in [LIMIT, LIMIT + 1] {
        match s
            .consume_call_via_pool(&chain, Some(&risk("agt_a", amount, LIMIT)))
            .await
        {
            Err(StoreError::RiskBudgetExhausted { spent, .. }) => assert_eq!(spent, 5),
            other => panic!("expected an exhausted budget, got {other:?}"),
        }
        match s.spend_risk(&id("agt_a"), 3_600, amount, LIMIT).await {
            Err(StoreError::RiskBudgetExhausted { spent, .. }) => assert_eq!(spent, 5),
            other => panic!("expected an exhausted budget, got {other:?}"),
        }
    }
    assert_eq!(usage(&s, "c1").await, (4, 5));
    assert_eq!(s.risk_spent(&id("agt_a"), 3_600).await.unwrap(), 5);
    // The database counts the same calls with the reservations on top.
    assert_eq!(steps_in_db(&s, "c1").await, 64 + 3);
    assert_eq!(spent_in_db(&s).await, 6 + 4);
}

/// Poisons the inline connection's lock: from then on every call that needs
/// a reservation goes to the pool.
fn poison_inline(s: &SqliteStore) {
    let inline = s.inline.clone();
    let poisoner = std::thread::spawn(move || {
        let _held = inline.conn.lock().unwrap();
        panic!("poison the inline connection's lock");
    });
    assert!(poisoner.join().is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poisoned_inline_connection_lock_sends_the_call_to_the_pool() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir, None, NEVER).await;
    poison_inline(&s);
    let counted = s
        .consume_call(&[id("c1"), id("r1")], Some(&risk("agt_a", 2, 5)))
        .await
        .unwrap();
    assert_eq!((counted.steps_used, counted.risk_spent), (1, Some(2)));
    assert_eq!(usage(&s, "r1").await, (1, 2));
    assert_eq!(s.counter_fallbacks(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_the_pool_counts_are_included_in_what_later_calls_are_told_from_reservations() {
    const LIMIT: i64 = 100;
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir, None, NEVER).await;
    // c1 holds 63 steps unused, the window 5 points.
    s.consume_call(&[id("c1")], Some(&risk("agt_a", 1, LIMIT)))
        .await
        .unwrap();
    poison_inline(&s);
    let told = |c: CallUsage| (c.steps_used, c.risk_spent);
    // Alternately through the pool (r1 or 10 points need a reservation) and
    // from what is held (c1's steps and the 5 points).
    let calls = [
        (vec![id("c1")], Some(10), (2, Some(11)), 1),
        (vec![id("c1")], Some(1), (3, Some(12)), 1),
        (vec![id("c1"), id("r1")], None, (4, None), 2),
        (vec![id("c1")], Some(1), (5, Some(13)), 2),
    ];
    for (chain, amount, expected, fallbacks) in calls {
        let spend = amount.map(|amount| risk("agt_a", amount, LIMIT));
        let counted = s.consume_call(&chain, spend.as_ref()).await.unwrap();
        assert_eq!(told(counted), expected, "{chain:?} {amount:?}");
        assert_eq!(s.counter_fallbacks(), fallbacks);
    }
    assert_eq!(usage(&s, "c1").await, (5, 13));
    // A step the pool takes (nothing can be held for n1) is told exactly.
    s.record_remit(&remit("n1", None, Some(10_000)))
        .await
        .unwrap();
    assert_eq!(s.consume_step(&id("n1")).await.unwrap().used, 1);
    assert_eq!(
        s.consume_call(&[id("n1")], None).await.unwrap().steps_used,
        2
    );
    assert_eq!(usage(&s, "n1").await.0, 2);
}

/// The WAL file's size in bytes.
fn wal_size(db: &Path) -> u64 {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    std::fs::metadata(wal).unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_stays_bounded_when_each_checkpoint_catches_up() {
    const ROUNDS: usize = 6;
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir, None, NEVER).await;
    let mut sizes = Vec::new();
    for _ in 0..ROUNDS {
        for _ in 0..200 {
            s.consume_call(&[id("c1"), id("r1")], Some(&risk("agt_a", 1, i64::MAX)))
                .await
                .unwrap();
        }
        let done = checkpoint_once(&s.pool).await.unwrap();
        assert!(!done.busy);
        assert!(done.wal_frames > 0);
        assert_eq!(done.checkpointed, done.wal_frames, "{done:?}");
        sizes.push(wal_size(s.path()));
    }
    assert_eq!(s.counter_fallbacks(), 0);
    // Each round restarts the WAL from its beginning: without checkpoints
    // the file would be ROUNDS times the first round's size.
    let first = sizes[0];
    assert!(first > 0);
    assert!(
        sizes.iter().all(|&size| size <= first),
        "the WAL grew past one round: {sizes:?}"
    );
    assert_eq!(usage(&s, "r1").await.0, (ROUNDS * 200) as i64);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_checkpoint_task_checkpoints_what_the_inline_connection_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir, None, super::CHECKPOINT_EVERY).await;
    for _ in 0..200 {
        s.consume_call(&[id("c1"), id("r1")], Some(&risk("agt_a", 1, i64::MAX)))
            .await
            .unwrap();
    }
    // A tick that started after the calls finds every frame checkpointed.
    let after = s.checkpointer.log().ticks();
    let checkpointer = s.checkpointer.clone();
    poll("a checkpoint tick after the calls", || {
        checkpointer.log().ticks() > after + 1
    })
    .await;
    let last = s.checkpointer.log().last().unwrap();
    assert!(last.wal_frames > 0, "{last:?}");
    assert_eq!(last.checkpointed, last.wal_frames, "{last:?}");
    assert!(!s.checkpointer.is_stopped());
    s.close().await;
    assert!(
        s.checkpointer.is_stopped(),
        "close stops the checkpoint task"
    );
}

#[tokio::test]
async fn expired_assertions_are_swept_once_a_period_not_on_every_use() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir, None, NEVER).await;
    let agent = id("agt_a");
    let rows = |s: SqliteStore| async move {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM used_assertions")
            .fetch_one(&s.pool)
            .await
            .unwrap()
    };
    // The first use sweeps (nothing yet) and schedules the next sweep.
    s.use_assertion(&agent, "j1", 10, 0).await.unwrap();
    s.use_assertion(&agent, "j2", 10, 5).await.unwrap();
    // j1 and j2 expired at 10, but no sweep is due before 60.
    s.use_assertion(&agent, "j3", 100, 59).await.unwrap();
    assert_eq!(rows(s.clone()).await, 3);
    s.use_assertion(&agent, "j4", 100, 60).await.unwrap();
    assert_eq!(rows(s.clone()).await, 2, "j1 and j2 swept, j3 and j4 kept");
}

// Steps reserved ahead (`held`): the database stays the arbiter.

/// Steps `jti` has used as the database counts them (reservations
/// included).
async fn steps_in_db(s: &SqliteStore, jti: &str) -> i64 {
    sqlx::query_scalar::<_, i64>("SELECT steps_used FROM issued_remits WHERE jti = ?1")
        .bind(jti)
        .fetch_one(&s.pool)
        .await
        .unwrap()
}

/// The risk `agt_a` has spent in its window as the database counts it
/// (reservations included).
async fn spent_in_db(s: &SqliteStore) -> i64 {
    sqlx::query_scalar::<_, i64>(
        "SELECT spent FROM risk_budgets WHERE agent_id = 'agt_a' AND window_start = 3600",
    )
    .fetch_one(&s.pool)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_handles_reserving_ahead_never_grant_more_than_the_limit_and_lose_nothing() {
    const MAX: i64 = 400;
    let dir = tempfile::tempdir().unwrap();
    // r1's ranges start at 400 / 16 = 25 steps, so both handles hold some.
    let first = store(&dir, Some(MAX), NEVER).await;
    let second = SqliteStore::open_with(&dir.path().join("remit.db"), NEVER)
        .await
        .unwrap();
    let calls = |s: SqliteStore| async move {
        let mut granted = 0;
        for _ in 0..300 {
            match s.consume_call(&[id("c1"), id("r1")], None).await {
                Ok(_) => granted += 1,
                Err(StoreError::StepsExhausted { jti, .. }) => assert_eq!(jti, "r1"),
                Err(other) => panic!("unexpected {other}"),
            }
        }
        granted
    };
    let (a, b) = tokio::join!(
        tokio::spawn(calls(first.clone())),
        tokio::spawn(calls(second.clone()))
    );
    let granted = a.unwrap() + b.unwrap();
    assert!(granted <= MAX, "granted {granted} of {MAX}");
    assert!(steps_in_db(&first, "r1").await <= MAX);
    // What either handle held unused comes back, and is granted once.
    first.release_held().unwrap().unwrap();
    second.release_held().unwrap().unwrap();
    assert_eq!(steps_in_db(&first, "r1").await, granted);
    let mut more = 0;
    while first.consume_call(&[id("r1")], None).await.is_ok() {
        more += 1;
    }
    assert_eq!(granted + more, MAX);
    assert!(matches!(
        second.consume_call(&[id("r1")], None).await,
        Err(StoreError::StepsExhausted { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_steps_count_as_used_in_the_database_but_not_in_what_a_call_is_told() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir, None, NEVER).await;
    let counted = s.consume_call(&[id("c1")], None).await.unwrap();
    assert_eq!(counted.steps_used, 1);
    assert_eq!(steps_in_db(&s, "c1").await, super::held::MAX_BLOCK);
    assert_eq!(usage(&s, "c1").await.0, 1, "the policy sees the steps used");
    // Close to its limit a remit is reserved one step at a time.
    let near = remit("n1", None, Some(20));
    s.record_remit(&near).await.unwrap();
    s.consume_call(&[id("n1")], None).await.unwrap();
    assert_eq!(steps_in_db(&s, "n1").await, 1);
    // Closing gives the unused steps back.
    s.close().await;
    let reopened = SqliteStore::open_with(&dir.path().join("remit.db"), NEVER)
        .await
        .unwrap();
    assert_eq!(steps_in_db(&reopened, "c1").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_range_left_idle_is_given_back_by_the_periodic_task() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir, None, Duration::from_millis(100)).await;
    s.consume_call(&[id("c1")], None).await.unwrap();
    assert_eq!(steps_in_db(&s, "c1").await, super::held::MAX_BLOCK);
    let start = std::time::Instant::now();
    while steps_in_db(&s, "c1").await != 1 {
        assert!(
            start.elapsed() < DEADLINE,
            "the idle range was never given back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        start.elapsed() >= super::held::IDLE - Duration::from_millis(200),
        "given back before it was idle"
    );
    // The next call reserves again from the exact count.
    assert_eq!(
        s.consume_call(&[id("c1")], None).await.unwrap().steps_used,
        2
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handle_that_dies_holding_steps_leaves_them_used_never_free() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir, Some(10_000), NEVER).await;
    s.consume_call(&[id("r1")], None).await.unwrap();
    let held = steps_in_db(&s, "r1").await;
    assert!(held > 1, "a range was reserved");
    // No close: as if the process died.
    drop(s);
    let reopened = SqliteStore::open_with(&dir.path().join("remit.db"), NEVER)
        .await
        .unwrap();
    assert_eq!(
        reopened
            .consume_call(&[id("r1")], None)
            .await
            .unwrap()
            .steps_used,
        held + 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_handles_reserving_risk_ahead_never_spend_more_than_the_limit_and_lose_nothing() {
    const LIMIT: i64 = 800;
    let dir = tempfile::tempdir().unwrap();
    // The window's reservations start at 800 / 16 = 50 points.
    let first = store(&dir, None, NEVER).await;
    let second = SqliteStore::open_with(&dir.path().join("remit.db"), NEVER)
        .await
        .unwrap();
    let spend = |s: SqliteStore, amount: i64| async move {
        let mut spent = 0;
        for _ in 0..200 {
            match s
                .consume_call(&[id("c1")], Some(&risk("agt_a", amount, LIMIT)))
                .await
            {
                Ok(_) => spent += amount,
                Err(StoreError::RiskBudgetExhausted { spent, limit, .. }) => {
                    assert!(spent <= limit)
                }
                Err(other) => panic!("unexpected {other}"),
            }
        }
        spent
    };
    let (a, b) = tokio::join!(
        tokio::spawn(spend(first.clone(), 3)),
        tokio::spawn(spend(second.clone(), 2))
    );
    let spent = a.unwrap() + b.unwrap();
    assert!(spent <= LIMIT, "spent {spent} of {LIMIT}");
    // Refused calls took no step: c1 counts the granted calls only.
    first.release_held().unwrap().unwrap();
    second.release_held().unwrap().unwrap();
    let granted_steps = steps_in_db(&first, "c1").await;
    assert!(granted_steps >= spent / 3 && granted_steps <= spent / 2);
    // What either handle held unused comes back, and is spent once.
    assert_eq!(first.risk_spent(&id("agt_a"), 3_600).await.unwrap(), spent);
    let mut more = 0;
    while first
        .consume_call(&[id("c1")], Some(&risk("agt_a", 1, LIMIT)))
        .await
        .is_ok()
    {
        more += 1;
    }
    assert_eq!(spent + more, LIMIT);
    match second
        .consume_call(&[id("c1")], Some(&risk("agt_a", 1, LIMIT)))
        .await
    {
        Err(StoreError::RiskBudgetExhausted { spent, .. }) => assert_eq!(spent, LIMIT),
        other => panic!("expected an exhausted budget, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_risk_counts_as_spent_in_the_database_but_not_in_what_a_call_is_told() {
    let dir = tempfile::tempdir().unwrap();
    let s = store(&dir, None, NEVER).await;
    let counted = s
        .consume_call(&[id("c1")], Some(&risk("agt_a", 2, 1_600)))
        .await
        .unwrap();
    assert_eq!(counted.risk_spent, Some(2));
    let raw: i64 = sqlx::query_scalar("SELECT spent FROM risk_budgets")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    assert_eq!(raw, super::held::MAX_BLOCK, "1,600 / 16 capped at 64");
    assert_eq!(usage(&s, "c1").await, (1, 2));
    // A spend larger than the block reserves what it needs.
    let counted = s
        .consume_call(&[id("c1")], Some(&risk("agt_a", 100, 1_600)))
        .await
        .unwrap();
    assert_eq!(counted.risk_spent, Some(102));
    s.close().await;
    let reopened = SqliteStore::open_with(&dir.path().join("remit.db"), NEVER)
        .await
        .unwrap();
    assert_eq!(
        reopened.risk_spent(&id("agt_a"), 3_600).await.unwrap(),
        102,
        "closing gave the unspent points back"
    );
}
