//! Remit storage: the state a Remit control plane and its gateways share.
//!
//! # What is stored
//!
//! - **Agents**: public key (JWK JSON text) and its thumbprint, owner, risk
//!   tier, status.
//! - **Blessed MCP servers and their tools**: risk, clearance, and the
//!   SHA-256 of the reviewed tool description, so a silently changed
//!   description can be noticed.
//! - **Issued remits**: jti, root, parent, holder key thumbprint, user,
//!   agent, expiry and step counter.
//! - **Revocations** by jti, subtree, agent, user, tool or key id, each with
//!   a strictly increasing epoch.
//! - **Risk budgets** per agent and time window.
//! - **Approvals** of held calls: pending, approved or rejected, bound to the
//!   call's hash, released at most once.
//! - **Observations** from shadow mode: argument *shapes*, never values.
//!   With migration 0007 an observation may also carry the facts policy
//!   drafting learns from (`remit-draft`'s projection: directories, hosts,
//!   domains, keyed hashes, lengths, numbers), bounded per agent
//!   ([`ObservationFactsRepo`]).
//! - **The receipt log**: leaves at dense indices, and checkpoints.
//!
//! # What is never stored
//!
//! Remit tokens themselves (a database leak must not hand out live
//! credentials), private keys, and tool-call arguments. The store holds no
//! policy logic either: it answers questions of fact and performs atomic
//! counts; deciding is the policy crate's job.
//!
//! # Backends
//!
//! One set of async repository traits ([`AgentRepo`], [`ServerRepo`],
//! [`RemitRepo`], [`BudgetRepo`], [`RevocationRepo`], [`ApprovalRepo`],
//! [`ObservationRepo`], [`LogRepo`], gathered in [`Store`]) with two
//! implementations sharing the same SQL: [`SqliteStore`] (embedded, the
//! default, one process) and [`PgStore`] (replicas). Migrations are embedded
//! in the binary, one set per backend.
//!
//! # How replicas share state
//!
//! Replicas keep nothing authoritative in memory. Step counters and risk
//! budgets are single conditional statements (`UPDATE ... WHERE used < max
//! RETURNING`), which the database serializes on the row, so two replicas
//! can never both take the last step. The receipt log and the revocation
//! epoch are sequenced through one locked row each, held until commit, so
//! indices are dense and epochs become visible in order. Each replica holds
//! the revocations in memory ([`SharedRevocations`]), kept current by a
//! [`RevocationFollower`]: `LISTEN/NOTIFY` on PostgreSQL, a broadcast
//! channel on SQLite, plus a catch-up read above the last epoch after every
//! reconnect and on a timer.
//!
//! # Threat model
//!
//! The database is trusted for availability and integrity of state, not for
//! secrecy of credentials (it has none). An attacker who can write to it can
//! un-revoke or refill budgets, but cannot mint remits; the receipt log's
//! Merkle checkpoints (signed outside the store) expose rewritten history.
//! Every error is returned as a [`StoreError`], which callers on a decision
//! path turn into a deny.

mod custody;
mod error;
mod exchange_sql;
mod log_sql;
mod model;
mod observation_facts_sql;
mod postgres;
mod repo;
mod revocation;
mod rows;
mod sql;
mod sqlite;

pub use error::{redact_url, StoreError};
pub use model::{
    lowercase_class, Agent, Approval, ApprovalState, CallUsage, Classification, ClassificationText,
    ExchangeLink, Id, IssuedRemit, McpServer, NewAgent, NewApproval, NewMcpServer, NewObservation,
    Observation, ObservedFacts, PromptPin, Revocation, RevocationKind, RevocationTarget, Revoked,
    RiskSpend, RiskTier, ServerId, Status, StepCount, StoredCheckpoint, Tool, Usage, Verdict,
    MAX_ID_LEN, MAX_SERVER_ID_LEN,
};
pub use postgres::{PgStore, REVOCATION_CHANNEL};
pub use repo::{
    AgentRepo, ApprovalRepo, BudgetRepo, ExchangeRepo, LogRepo, ObservationFactsRepo,
    ObservationRepo, RemitRepo, RevocationRepo, SequencedLogRepo, ServerRepo, StoreFuture,
};
pub use revocation::{
    RemitFacts, RevocationFollower, RevocationSet, RevocationSignals, SharedRevocations,
};
pub use sqlite::SqliteStore;

/// Every repository, plus what a server needs to run on a backend.
pub trait Store:
    AgentRepo
    + ServerRepo
    + RemitRepo
    + BudgetRepo
    + RevocationRepo
    + ApprovalRepo
    + ObservationRepo
    + ObservationFactsRepo
    + LogRepo
    + ExchangeRepo
    + SequencedLogRepo
    + Clone
    + Send
    + Sync
    + std::fmt::Debug
    + 'static
{
    /// The backend's name: `sqlite` or `postgres`.
    fn backend(&self) -> &'static str;
    /// Whether several server processes (replicas) may serve from this
    /// store, so that what one process remembers in memory (a DPoP proof
    /// seen) must also be remembered here for the others.
    fn replicated(&self) -> bool;
    /// Checks that the database answers (for readiness probes).
    fn ping(&self) -> impl StoreFuture<()>;
    /// Subscribes to revocation announcements.
    fn revocation_signals(&self) -> impl StoreFuture<RevocationSignals>;
}
