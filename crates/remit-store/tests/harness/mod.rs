//! Runs one test body against both backends, on real databases.
//!
//! SQLite: a fresh file in a temporary directory. PostgreSQL: a freshly
//! created schema with a random name in `REMIT_TEST_DATABASE_URL`, set as
//! `search_path` on every pooled connection and dropped afterwards, so
//! parallel runs never collide. Without the URL the PostgreSQL half is
//! skipped with a notice, unless `REMIT_TEST_REQUIRE_POSTGRES=1`.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};

use remit_store::{PgStore, SqliteStore};

/// Two independent handles on one database: separate pools, as two
/// replicas would have.
#[derive(Debug)]
pub struct Ctx<S> {
    /// The handle the test mostly uses.
    pub store: S,
    /// A second, independent pool on the same database.
    pub second: S,
    /// Gives back what a handle reserved ahead and did not use (SQLite's
    /// step ranges), so the database counts exactly the steps used.
    // Each test binary compiles the harness; not every one settles.
    #[allow(dead_code)]
    pub settle: fn(&S),
}

impl<S> Ctx<S> {
    /// Settles both handles.
    #[allow(dead_code)]
    pub fn settle_both(&self) {
        (self.settle)(&self.store);
        (self.settle)(&self.second);
    }
}

/// Defines `mod $name { sqlite(), postgres() }` running `$body` on each.
#[macro_export]
macro_rules! both_backends {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn sqlite() {
                $crate::harness::sqlite_case(super::$name).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn postgres() {
                $crate::harness::postgres_case(super::$name).await;
            }
        }
    )+};
}

/// Runs `body` on a fresh SQLite file.
pub async fn sqlite_case<F, Fut>(body: F)
where
    F: FnOnce(Ctx<SqliteStore>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("remit.db");
    let store = SqliteStore::open(&path).await.unwrap();
    let second = SqliteStore::open(&path).await.unwrap();
    let settle = |s: &SqliteStore| {
        let released = s.release_held().unwrap();
        assert!(released.is_some(), "the database was busy");
    };
    let outcome = tokio::spawn(body(Ctx {
        store,
        second,
        settle,
    }))
    .await;
    drop(dir);
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// The PostgreSQL URL, or `None` (with a notice) when tests may skip it.
pub fn postgres_url() -> Option<String> {
    match std::env::var("REMIT_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("REMIT_TEST_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "REMIT_TEST_REQUIRE_POSTGRES=1 but REMIT_TEST_DATABASE_URL is not set"
            );
            eprintln!("notice: REMIT_TEST_DATABASE_URL is not set; skipping the PostgreSQL half");
            None
        }
    }
}

/// A schema name no other run will pick.
pub fn unique_schema() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!(
        "remit_test_{}_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000_000,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Drops a test schema and everything in it.
pub async fn drop_schema(url: &str, schema: &str) {
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(url)
        .await
        .unwrap();
    sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .execute(&mut conn)
        .await
        .unwrap();
}

/// Runs `body` in a fresh PostgreSQL schema, dropped afterwards.
pub async fn postgres_case<F, Fut>(body: F)
where
    F: FnOnce(Ctx<PgStore>) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let Some(url) = postgres_url() else { return };
    let schema = unique_schema();
    let store = PgStore::connect_in_schema(&url, &schema)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let second = PgStore::connect_in_schema(&url, &schema).await.unwrap();
    let outcome = tokio::spawn(body(Ctx {
        store: store.clone(),
        second: second.clone(),
        settle: |_| {},
    }))
    .await;
    store.close().await;
    second.close().await;
    drop_schema(&url, &schema).await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// Asserts that a store call failed with the given variant.
#[macro_export]
macro_rules! assert_err {
    ($result:expr, $pattern:pat) => {
        match $result {
            Err($pattern) => {}
            other => panic!(
                "expected {}, got {:?}",
                stringify!($pattern),
                other.map(|_| "Ok(..)")
            ),
        }
    };
}
