//! How fast the store answers the questions on a gateway's hot path.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use remit_store::*;

fn id(text: &str) -> Id {
    Id::parse("bench id", text).unwrap()
}

/// Looking a chain up in a set of 10 000 revocations of every kind.
fn revocation_lookup(c: &mut Criterion) {
    let kinds = [
        RevocationKind::Jti,
        RevocationKind::Subtree,
        RevocationKind::Agent,
        RevocationKind::Sub,
        RevocationKind::Tool,
        RevocationKind::Kid,
    ];
    let mut set = RevocationSet::new();
    for n in 0..10_000i64 {
        set.apply(&Revocation {
            target: RevocationTarget {
                kind: kinds[(n % 6) as usize],
                value: id(&format!("value-{n}")),
            },
            epoch: n + 1,
            reason: "bench".into(),
            revoked_by: "bench".into(),
            revoked_at: 0,
        });
    }
    let facts = RemitFacts {
        chain: &["root-ok", "child-ok", "grandchild-ok", "leaf-ok"],
        agent: "agent-ok",
        sub: "alice",
        kids: &["kid-ok"],
        tool: Some("files.read"),
    };
    c.bench_function("revocation_set_find_depth4_not_revoked", |b| {
        b.iter(|| black_box(&set).find(black_box(&facts)));
    });
}

/// Registers agent `agt` and records remit `r` (no step limit) for it: what
/// the counter benches count against.
async fn seed(store: &SqliteStore) {
    store
        .register_agent(
            &NewAgent {
                id: id("agt"),
                name: "bench".into(),
                public_jwk: "{}".into(),
                key_thumbprint: "t".into(),
                owner: "o".into(),
                risk_tier: RiskTier::Low,
            },
            0,
        )
        .await
        .unwrap();
    store
        .record_remit(&IssuedRemit {
            jti: id("r"),
            root_jti: id("r"),
            parent_jti: None,
            holder_thumbprint: "t".into(),
            sub: id("alice"),
            agent: id("agt"),
            issued_at: 0,
            expires_at: 1,
            max_steps: None,
        })
        .await
        .unwrap();
}

/// One atomic step and one log append on SQLite (WAL, synchronous=FULL).
fn sqlite_writes(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = runtime
        .block_on(SqliteStore::open(&dir.path().join("bench.db")))
        .unwrap();
    runtime.block_on(seed(&store));
    let jti = id("r");
    c.bench_function("sqlite_consume_step", |b| {
        b.iter(|| runtime.block_on(store.consume_step(&jti)).unwrap());
    });
    let leaf = [7u8; 256];
    c.bench_function("sqlite_append_leaf_256b", |b| {
        b.iter(|| runtime.block_on(store.append_leaf(&leaf)).unwrap());
    });
}

/// `consume_call` for a one-link chain, as the gateway makes it (from tasks
/// on a 2-worker tokio runtime): (a) `pool`, with a risk spend, every
/// statement through the sqlx counters pool (SQLite's fallback when a
/// reservation finds the database busy); (b) `inline`, with a risk spend:
/// the step and the spend from ranges reserved ahead on the inline rusqlite
/// connection; (c) `steps`, no risk (a low-risk tool): the step from a
/// range reserved ahead only. From 1 task (latency) and from 16 at once
/// (time per call = 1 / throughput, the gateway's concurrency).
fn sqlite_consume_call(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = runtime
        .block_on(SqliteStore::open(&dir.path().join("bench.db")))
        .unwrap();
    runtime.block_on(seed(&store));
    let mut group = c.benchmark_group("sqlite_consume_call_1link_risk");
    for path in [Path::Pool, Path::Inline, Path::Steps] {
        for tasks in [1u64, 16] {
            group.bench_function(format!("{}/{tasks}_tasks", path.name()), |b| {
                b.iter_custom(|iters| runtime.block_on(calls(&store, path, tasks, iters)));
            });
        }
    }
    group.finish();
    eprintln!(
        "inline calls that fell back to the pool: {}",
        store.counter_fallbacks()
    );
    runtime.block_on(store.close());
}

/// How a bench call is counted.
#[derive(Clone, Copy)]
enum Path {
    Pool,
    Inline,
    Steps,
}

impl Path {
    fn name(self) -> &'static str {
        match self {
            Path::Pool => "pool",
            Path::Inline => "inline",
            Path::Steps => "steps",
        }
    }
}

/// Runs at least `iters` calls from `tasks` tasks; the wall time scaled to
/// exactly `iters` calls.
async fn calls(store: &SqliteStore, path: Path, tasks: u64, iters: u64) -> Duration {
    let per_task = iters.div_ceil(tasks);
    let start = Instant::now();
    let mut running = tokio::task::JoinSet::new();
    for _ in 0..tasks {
        let store = store.clone();
        running.spawn(async move {
            let chain = [id("r")];
            let risk = RiskSpend {
                agent: id("agt"),
                window_start: 0,
                amount: 1,
                limit: i64::MAX,
            };
            for _ in 0..per_task {
                let counted = match path {
                    Path::Pool => store.consume_call_via_pool(&chain, Some(&risk)).await,
                    Path::Inline => store.consume_call(&chain, Some(&risk)).await,
                    Path::Steps => store.consume_call(&chain, None).await,
                };
                black_box(counted.unwrap());
            }
        });
    }
    while let Some(done) = running.join_next().await {
        done.unwrap();
    }
    start
        .elapsed()
        .mul_f64(iters as f64 / (per_task * tasks) as f64)
}

criterion_group!(
    benches,
    revocation_lookup,
    sqlite_writes,
    sqlite_consume_call
);
criterion_main!(benches);
