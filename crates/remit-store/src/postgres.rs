//! The replicated backend: PostgreSQL, shared by stateless replicas.
//!
//! Atomic counters are conditional `UPDATE`s, which PostgreSQL re-checks
//! after waiting for a concurrent writer's row lock, so two replicas can
//! never both take the last step. Revocations are announced with
//! `NOTIFY remit_revocations` inside the revoking transaction (delivered on
//! commit); followers also re-read everything above their epoch after each
//! reconnect and periodically, so a missed notification only delays, never
//! loses, a revocation.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgListener, PgPoolOptions};
use sqlx::{PgPool, Postgres, Transaction};

use crate::error::{redact_url, StoreError};
use crate::exchange_sql::AssertionSweep;
use crate::revocation::RevocationSignals;
use crate::Store;

/// The channel revocations are announced on.
pub const REVOCATION_CHANNEL: &str = "remit_revocations";

/// The PostgreSQL store. Cheap to clone; clones share the pool.
#[derive(Clone, Debug)]
pub struct PgStore {
    pub(crate) pool: PgPool,
    schema: Option<String>,
    /// When expired single-use assertions are next deleted.
    assertion_sweep: std::sync::Arc<AssertionSweep>,
    /// What each exchanged root was derived from.
    pub(crate) custody: std::sync::Arc<crate::custody::CustodyCache>,
}

impl PgStore {
    /// Connects to `url` and applies migrations in the default schema.
    pub async fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, None).await
    }

    /// Connects to `url` with every connection's `search_path` set to
    /// `schema` (created if missing), then applies migrations there. Lets
    /// several Remit deployments, or parallel test runs, share one database.
    pub async fn connect_in_schema(url: &str, schema: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, Some(schema)).await
    }

    async fn connect_with(url: &str, schema: Option<&str>) -> Result<Self, StoreError> {
        let shown = redact_url(url);
        let unreachable = |source| StoreError::Unreachable {
            url: shown.clone(),
            source,
        };
        let mut options: PgConnectOptions = url.parse().map_err(unreachable)?;
        if let Some(schema) = schema {
            check_schema_name(schema)?;
            let mut bootstrap = PgPoolOptions::new()
                .max_connections(1)
                .connect_with(options.clone())
                .await
                .map_err(unreachable)?
                .acquire()
                .await
                .map_err(unreachable)?;
            sqlx::query(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
                .execute(&mut *bootstrap)
                .await
                .map_err(StoreError::query("create the schema"))?;
            // The application name shows which deployment a session serves
            // in pg_stat_activity (PostgreSQL truncates it to 63 bytes).
            options = options
                .options([("search_path", schema)])
                .application_name(&format!("remit {schema}"));
        }
        let pool = PgPoolOptions::new()
            .max_connections(10)
            .acquire_timeout(Duration::from_secs(10))
            .connect_with(options)
            .await
            .map_err(unreachable)?;
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .map_err(|source| StoreError::Migration { source })?;
        Ok(Self {
            pool,
            schema: schema.map(str::to_owned),
            assertion_sweep: std::sync::Arc::default(),
            custody: std::sync::Arc::default(),
        })
    }

    /// The schema given to [`PgStore::connect_in_schema`], if any; its
    /// sessions carry the application name `remit <schema>`.
    pub fn schema(&self) -> Option<&str> {
        self.schema.as_deref()
    }

    /// Closes the pool, waiting for connections to be returned.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// The pool the per-call counters are written through (the main pool:
    /// PostgreSQL commits them durably like everything else).
    pub(crate) fn counters(&self) -> &PgPool {
        &self.pool
    }

    /// Counts a call's steps and risk: on PostgreSQL always through the
    /// pool (the database serializes the conditional updates).
    async fn count_call(
        &self,
        chain: &[crate::Id],
        risk: Option<&crate::RiskSpend>,
    ) -> Result<crate::CallUsage, StoreError> {
        self.consume_call_via_pool(chain, risk).await
    }

    async fn notify_in_tx(
        &self,
        tx: &mut Transaction<'_, Postgres>,
        epoch: i64,
    ) -> Result<(), StoreError> {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(REVOCATION_CHANNEL)
            .bind(epoch.to_string())
            .execute(&mut **tx)
            .await
            .map_err(StoreError::query("announce a revocation"))?;
        Ok(())
    }

    #[allow(clippy::unused_self)]
    fn notify_committed(&self, _epoch: i64) {}
}

/// Refuses schema names that would need quoting rules beyond `"..."`.
fn check_schema_name(schema: &str) -> Result<(), StoreError> {
    let ok = !schema.is_empty()
        && schema.len() <= 63
        && schema
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !schema.as_bytes()[0].is_ascii_digit();
    if ok {
        Ok(())
    } else {
        Err(StoreError::Invalid {
            what: "schema name",
            value: schema.to_owned(),
            reason: "use 1 to 63 of a-z 0-9 _, not starting with a digit",
        })
    }
}

crate::sql::impl_repositories!(PgStore, sqlx::Postgres);
crate::exchange_sql::impl_exchange_repo!(PgStore, sqlx::Postgres);
crate::observation_facts_sql::impl_observation_facts_repo!(PgStore, sqlx::Postgres);
crate::log_sql::impl_sequenced_log_repo!(PgStore, sqlx::Postgres);

impl PgStore {
    async fn count_step(&self, jti: &crate::Id) -> Result<crate::StepCount, StoreError> {
        self.consume_step_in_db(jti).await
    }

    /// Nothing is reserved ahead on PostgreSQL: every call counts in the
    /// database.
    #[allow(clippy::unused_self)]
    fn spare_steps(&self, _jti: &crate::Id) -> i64 {
        0
    }

    /// Nothing is reserved ahead on PostgreSQL.
    #[allow(clippy::unused_self)]
    fn spare_risk(&self, _agent: &crate::Id, _window_start: i64) -> i64 {
        0
    }
}

impl Store for PgStore {
    fn backend(&self) -> &'static str {
        "postgres"
    }

    fn replicated(&self) -> bool {
        true
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map_err(StoreError::query("check the database"))?;
        Ok(())
    }

    async fn revocation_signals(&self) -> Result<RevocationSignals, StoreError> {
        let mut listener = PgListener::connect_with(&self.pool)
            .await
            .map_err(StoreError::query("listen for revocations"))?;
        listener
            .listen(REVOCATION_CHANNEL)
            .await
            .map_err(StoreError::query("listen for revocations"))?;
        Ok(RevocationSignals::postgres(listener))
    }
}
