//! The repository traits: one set, implemented by both backends.
//!
//! Methods are async and return `Send` futures so the server can call them
//! from any task. Time is always a parameter (`now`, unix seconds) so tests
//! and replicas agree on what "expired" means.

use std::future::Future;

use crate::error::StoreError;
use crate::model::{
    Agent, Approval, CallUsage, ExchangeLink, Id, IssuedRemit, McpServer, NewAgent, NewApproval,
    NewMcpServer, NewObservation, Observation, ObservedFacts, PromptPin, Revocation,
    RevocationKind, RevocationTarget, Revoked, RiskSpend, StepCount, StoredCheckpoint, Tool, Usage,
    Verdict,
};

/// Shorthand for the futures returned by every repository method.
pub trait StoreFuture<T>: Future<Output = Result<T, StoreError>> + Send {}
impl<T, F: Future<Output = Result<T, StoreError>> + Send> StoreFuture<T> for F {}

/// Registered agents.
pub trait AgentRepo {
    /// Registers an agent. Refuses a second agent with the same id or key.
    fn register_agent(&self, agent: &NewAgent, now: i64) -> impl StoreFuture<Agent>;
    /// Looks an agent up by id.
    fn agent(&self, id: &Id) -> impl StoreFuture<Agent>;
    /// Looks an agent up by its key thumbprint.
    fn agent_by_thumbprint(&self, thumbprint: &str) -> impl StoreFuture<Agent>;
    /// Every agent, ordered by id.
    fn agents(&self) -> impl StoreFuture<Vec<Agent>>;
    /// Disables an agent (idempotent); its remits stop working only through
    /// an agent revocation, which the server issues alongside.
    fn disable_agent(&self, id: &Id, now: i64) -> impl StoreFuture<Agent>;
}

/// Blessed MCP servers and their pinned tools.
pub trait ServerRepo {
    /// Blesses a server. Refuses a duplicate id.
    fn add_server(&self, server: &NewMcpServer, now: i64) -> impl StoreFuture<McpServer>;
    /// Looks a server up.
    fn server(&self, id: &Id) -> impl StoreFuture<McpServer>;
    /// Every server, ordered by id.
    fn servers(&self) -> impl StoreFuture<Vec<McpServer>>;
    /// Disables a server (idempotent).
    fn disable_server(&self, id: &Id, now: i64) -> impl StoreFuture<McpServer>;
    /// Pins a tool of a known server. Refuses a duplicate name on that server.
    fn add_tool(&self, tool: &Tool) -> impl StoreFuture<Tool>;
    /// Looks a tool up.
    fn tool(&self, server: &Id, name: &Id) -> impl StoreFuture<Tool>;
    /// The tools of a known server, ordered by name.
    fn tools(&self, server: &Id) -> impl StoreFuture<Vec<Tool>>;
    /// Pins a tool, or re-pins an existing one: its risk, clearance and
    /// description hash are replaced (its `created_at` is kept).
    fn set_tool(&self, tool: &Tool) -> impl StoreFuture<Tool>;
    /// Pins a prompt of a known server, or re-pins it (its hash and time
    /// are replaced).
    fn set_prompt(&self, prompt: &PromptPin) -> impl StoreFuture<PromptPin>;
    /// The pinned prompts of a known server, ordered by name.
    fn prompts(&self, server: &Id) -> impl StoreFuture<Vec<PromptPin>>;
}

/// Issued remits (facts about them, never the tokens) and their step counters.
pub trait RemitRepo {
    /// Records an issued remit. Refuses a duplicate jti, an unknown agent or
    /// an unknown parent.
    fn record_remit(&self, remit: &IssuedRemit) -> impl StoreFuture<()>;
    /// Looks a remit up.
    fn remit(&self, jti: &Id) -> impl StoreFuture<IssuedRemit>;
    /// The remit and every remit delegated from it, at any depth.
    fn subtree(&self, jti: &Id) -> impl StoreFuture<Vec<IssuedRemit>>;
    /// Uses one step of the remit if any is left: atomic, so concurrent
    /// replicas can never together exceed the limit.
    fn consume_step(&self, jti: &Id) -> impl StoreFuture<StepCount>;
}

/// Risk budgets: how much risk an agent may spend per time window.
pub trait BudgetRepo {
    /// Adds `amount` to the agent's spend in the window starting at
    /// `window_start` if the total stays within `limit`; returns the new
    /// total. Atomic under concurrent replicas.
    fn spend_risk(
        &self,
        agent: &Id,
        window_start: i64,
        amount: i64,
        limit: i64,
    ) -> impl StoreFuture<i64>;
    /// The agent's spend in a window (0 when nothing was spent).
    fn risk_spent(&self, agent: &Id, window_start: i64) -> impl StoreFuture<i64>;
    /// Everything one gateway call consumes, all or nothing, in one round
    /// of the store: one step of every remit in `chain` (leaf first; each
    /// must have a step left) and `risk`, if any, from the agent's budget.
    /// Atomic under concurrent replicas. Refuses with
    /// Returns the leaf's steps used and, when risk was spent, the new
    /// total. Refuses with
    /// [`StoreError::StepsExhausted`] (the first exhausted link),
    /// [`StoreError::RiskBudgetExhausted`] or [`StoreError::NotFound`] (a
    /// link never recorded), consuming nothing.
    ///
    /// [`StoreError::StepsExhausted`]: crate::StoreError::StepsExhausted
    /// [`StoreError::RiskBudgetExhausted`]: crate::StoreError::RiskBudgetExhausted
    /// [`StoreError::NotFound`]: crate::StoreError::NotFound
    fn consume_call(&self, chain: &[Id], risk: Option<&RiskSpend>) -> impl StoreFuture<CallUsage>;
    /// The agent whose risk budget calls under the chain rooted at `root`
    /// spend, when that is not the caller: a root minted by token exchange
    /// spends the budget that paid for the chain it was exchanged from (one
    /// budget for the whole custody tree). `None` for a root that was not
    /// exchanged.
    fn risk_payer(&self, root: &Id) -> impl StoreFuture<Option<Id>>;
    /// The steps `jti` has used and the risk `agent` spent in the window
    /// starting at `window_start`, in one read.
    fn usage(&self, jti: &Id, agent: &Id, window_start: i64) -> impl StoreFuture<Usage>;
}

/// Revocations, each stamped with a strictly increasing epoch.
pub trait RevocationRepo {
    /// Revokes a target and, in the same transaction, every remit
    /// exchanged from a subject chain it reaches (a `subtree` of a subject
    /// link, an `agent` holding one, the `kid` that signed one), as
    /// `subtree` revocations of their exchanged roots, transitively
    /// ([`Revoked::propagated`]). Revoking it again uses no epoch unless it
    /// repairs a missing propagation.
    fn revoke(
        &self,
        target: &RevocationTarget,
        reason: &str,
        revoked_by: &str,
        now: i64,
    ) -> impl StoreFuture<Revoked>;
    /// Revocations with an epoch above `epoch`, in epoch order.
    fn revocations_since(&self, epoch: i64) -> impl StoreFuture<Vec<Revocation>>;
    /// The latest epoch (0 before the first revocation).
    fn revocation_epoch(&self) -> impl StoreFuture<i64>;
    /// Writes every propagation [`Self::revoke`] would have written but
    /// that is missing (a revocation written by an older Remit, which
    /// propagated after its write and could crash in between), in one
    /// transaction, and returns it. Idempotent: nothing is written when
    /// nothing is missing.
    fn repair_propagation(&self, now: i64) -> impl StoreFuture<Vec<Revocation>>;
}

/// Calls held for a human decision.
pub trait ApprovalRepo {
    /// Holds a call. Refuses a duplicate id or an unknown agent.
    fn request_approval(&self, approval: &NewApproval) -> impl StoreFuture<Approval>;
    /// Looks an approval up.
    fn approval(&self, id: &Id) -> impl StoreFuture<Approval>;
    /// Pending approvals, oldest first.
    fn pending_approvals(&self) -> impl StoreFuture<Vec<Approval>>;
    /// Records a human's decision; a decision is final.
    fn decide_approval(
        &self,
        id: &Id,
        verdict: Verdict,
        decided_by: &str,
        now: i64,
    ) -> impl StoreFuture<Approval>;
    /// Releases the approved call with this hash, once. A second use, a
    /// different call, an expired or undecided approval are refused.
    fn consume_approval(&self, id: &Id, call_hash: &str, now: i64) -> impl StoreFuture<Approval>;
}

/// Calls seen in shadow mode.
pub trait ObservationRepo {
    /// Records an observation; returns its sequence number.
    fn record_observation(&self, observation: &NewObservation) -> impl StoreFuture<i64>;
    /// Observations after sequence number `after`, optionally for one
    /// agent, oldest first, at most `limit`.
    fn observations(
        &self,
        agent: Option<&Id>,
        after: i64,
        limit: u32,
    ) -> impl StoreFuture<Vec<Observation>>;
}

/// Observations with the facts policy drafting learns from (issue 26),
/// bounded per agent.
pub trait ObservationFactsRepo {
    /// Records an observation with its projected facts (JSON text);
    /// returns its sequence number.
    fn record_observation_facts(
        &self,
        observation: &NewObservation,
        facts: &str,
    ) -> impl StoreFuture<i64>;
    /// An agent's observations at or after `since` (Unix seconds): the
    /// newest `limit`, returned oldest first.
    fn observed_facts(
        &self,
        agent: &Id,
        since: i64,
        limit: u32,
    ) -> impl StoreFuture<Vec<ObservedFacts>>;
    /// Deletes all but the agent's newest `keep` observations; returns how
    /// many were deleted.
    fn prune_observations(&self, agent: &Id, keep: u32) -> impl StoreFuture<u64>;
}

/// The receipt log: leaves sequenced without gaps, and checkpoints.
pub trait LogRepo {
    /// Appends a leaf and returns its index (0-based). Indices are dense
    /// under concurrency: a failed append leaves no hole.
    fn append_leaf(&self, leaf: &[u8]) -> impl StoreFuture<u64>;
    /// The leaf at an index.
    fn leaf(&self, index: u64) -> impl StoreFuture<Vec<u8>>;
    /// Leaves `start..end` (clamped to the log size), in order.
    fn leaves(&self, start: u64, end: u64) -> impl StoreFuture<Vec<Vec<u8>>>;
    /// Number of leaves.
    fn log_size(&self) -> impl StoreFuture<u64>;
    /// Stores a checkpoint for a size no larger than the log. Storing the
    /// same text again is accepted; different text for a size is refused.
    fn put_checkpoint(&self, checkpoint: &StoredCheckpoint) -> impl StoreFuture<()>;
    /// The checkpoint with the largest size, if any.
    fn latest_checkpoint(&self) -> impl StoreFuture<Option<StoredCheckpoint>>;
    /// The checkpoint for an exact size.
    fn checkpoint(&self, size: u64) -> impl StoreFuture<StoredCheckpoint>;
}

/// Token exchange bookkeeping (RFC 8693): what each exchanged root was
/// derived from, and which actor assertions were already used.
pub trait ExchangeRepo {
    /// Records that the exchanged root `root` (already recorded as an
    /// issued remit) was derived from a subject chain with these links,
    /// root first. Serialized with revocations: a revocation already
    /// written that reaches one of the links is propagated to `root` in the
    /// same transaction (returned, like [`Revoked::propagated`]), and a
    /// later one sees the links.
    ///
    /// [`Revoked::propagated`]: crate::Revoked::propagated
    fn record_exchange(
        &self,
        root: &Id,
        subject: &[ExchangeLink],
        now: i64,
    ) -> impl StoreFuture<Vec<Revocation>>;
    /// The exchanged roots derived from a subject chain that holds the jti
    /// (`kind` subtree), the agent (`kind` agent) or a link signed by the
    /// key id (`kind` kid); empty for other kinds.
    fn exchanged_under(&self, kind: RevocationKind, value: &Id) -> impl StoreFuture<Vec<Id>>;
    /// Marks a single-use assertion `jti` of `agent` (an actor assertion,
    /// or a DPoP proof prefixed `dpop:`) used until `expires_at`; a second
    /// use, from any replica, is refused with [`StoreError::Duplicate`].
    /// Expired entries are forgotten (their assertions are refused by
    /// expiry).
    fn use_assertion(
        &self,
        agent: &Id,
        jti: &str,
        expires_at: i64,
        now: i64,
    ) -> impl StoreFuture<()>;
}

/// The receipt log shared by replicas: a signed batch is written at the
/// position it was sequenced for, or not at all.
pub trait SequencedLogRepo {
    /// Appends `leaves` at indexes `start..` in one transaction if the log
    /// holds exactly `start` leaves; `false` (nothing written) when another
    /// writer appended first: read the new leaves, sequence again, retry.
    fn append_leaves_at(&self, start: u64, leaves: &[Vec<u8>]) -> impl StoreFuture<bool>;
}
