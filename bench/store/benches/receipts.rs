//! Durable receipts per second through the server's store-backed receipt
//! log (`StoreReceiptLog`): many concurrent appenders, group-committed
//! (one transaction, one commit, one checkpoint per batch).
//!
//! PostgreSQL when `REMIT_BENCH_DATABASE_URL` (or `REMIT_TEST_DATABASE_URL`)
//! is set, in a fresh schema; SQLite (WAL, synchronous=FULL) always.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use remit_ledger::{Event, Kind};
use remit_server::{ReceiptLog, StoreReceiptLog};
use remit_store::{PgStore, SqliteStore, Store};
use remit_token::EcdsaP256Signer;

/// Concurrent appenders (a gateway's in-flight calls).
const APPENDERS: usize = 64;
/// Receipts each appender writes per measured round.
const PER_APPENDER: usize = 32;

fn event(n: u64) -> Event {
    let mut e = Event::new(Kind::Allow, 1_700_000_000_000 + n);
    e.tool = Some(format!("bench.tool:{n}"));
    e
}

/// Appends `APPENDERS * PER_APPENDER` receipts from `APPENDERS` threads.
fn round(log: &Arc<dyn ReceiptLog>) -> Duration {
    let started = Instant::now();
    std::thread::scope(|scope| {
        for a in 0..APPENDERS {
            let log = Arc::clone(log);
            scope.spawn(move || {
                for i in 0..PER_APPENDER {
                    log.append(event((a * PER_APPENDER + i) as u64)).unwrap();
                }
            });
        }
    });
    started.elapsed()
}

fn bench_log<S: Store>(c: &mut Criterion, name: &str, runtime: &tokio::runtime::Runtime, store: S) {
    let dir = tempfile::tempdir().unwrap();
    let log = runtime
        .block_on(StoreReceiptLog::open(
            store,
            dir.path(),
            EcdsaP256Signer::generate().unwrap(),
            "remit.bench/receipts",
        ))
        .unwrap();
    let log: Arc<dyn ReceiptLog> = Arc::new(log);
    let mut group = c.benchmark_group("receipts_group_commit");
    group.throughput(Throughput::Elements((APPENDERS * PER_APPENDER) as u64));
    group.sample_size(10);
    group.bench_function(name, |b| {
        b.iter_custom(|iters| (0..iters).map(|_| round(&log)).sum());
    });
    group.finish();
}

fn receipts(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = runtime
        .block_on(SqliteStore::open(&dir.path().join("bench.db")))
        .unwrap();
    bench_log(c, "sqlite_64_appenders", &runtime, sqlite);
    let url = std::env::var("REMIT_BENCH_DATABASE_URL")
        .or_else(|_| std::env::var("REMIT_TEST_DATABASE_URL"));
    if let Ok(url) = url {
        let schema = format!("bench_receipts_{}", std::process::id());
        let pg = runtime
            .block_on(PgStore::connect_in_schema(&url, &schema))
            .unwrap();
        bench_log(c, "postgres_64_appenders", &runtime, pg);
    } else {
        eprintln!("no REMIT_BENCH_DATABASE_URL: PostgreSQL not measured");
    }
}

criterion_group!(benches, receipts);
criterion_main!(benches);
