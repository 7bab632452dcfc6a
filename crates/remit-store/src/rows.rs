//! Raw rows as the database returns them, and their parsing into model types.
//!
//! Both backends store the same column types (TEXT, 64-bit integers, bytes),
//! so one set of row structs serves both.

use crate::error::StoreError;
use crate::model::{
    stored_classification, Agent, Approval, ApprovalState, Id, IssuedRemit, McpServer,
    NewObservation, Observation, PromptPin, Revocation, RevocationKind, RevocationTarget, RiskTier,
    Status, Tool,
};

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct AgentRow {
    id: String,
    name: String,
    public_jwk: String,
    key_thumbprint: String,
    owner: String,
    risk_tier: String,
    status: String,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<AgentRow> for Agent {
    type Error = StoreError;
    fn try_from(r: AgentRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: Id::stored("agent id", r.id)?,
            name: r.name,
            public_jwk: r.public_jwk,
            key_thumbprint: r.key_thumbprint,
            owner: r.owner,
            risk_tier: RiskTier::stored(&r.risk_tier)?,
            status: Status::stored(&r.status)?,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ServerRow {
    id: String,
    name: String,
    url: String,
    clearance: String,
    status: String,
    created_at: i64,
    updated_at: i64,
}

impl TryFrom<ServerRow> for McpServer {
    type Error = StoreError;
    fn try_from(r: ServerRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: Id::stored("server id", r.id)?,
            name: r.name,
            url: r.url,
            clearance: stored_classification(&r.clearance)?,
            status: Status::stored(&r.status)?,
            created_at: r.created_at,
            updated_at: r.updated_at,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ToolRow {
    server_id: String,
    name: String,
    risk: String,
    clearance: String,
    description_sha256: String,
    created_at: i64,
    resource_arg: Option<String>,
}

impl TryFrom<ToolRow> for Tool {
    type Error = StoreError;
    fn try_from(r: ToolRow) -> Result<Self, StoreError> {
        Ok(Self {
            server: Id::stored("server id", r.server_id)?,
            name: Id::stored("tool name", r.name)?,
            risk: RiskTier::stored(&r.risk)?,
            clearance: stored_classification(&r.clearance)?,
            description_sha256: r.description_sha256,
            created_at: r.created_at,
            resource_arg: r.resource_arg,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct PromptRow {
    server_id: String,
    name: String,
    description_sha256: String,
    pinned_at: i64,
}

impl TryFrom<PromptRow> for PromptPin {
    type Error = StoreError;
    fn try_from(r: PromptRow) -> Result<Self, StoreError> {
        Ok(Self {
            server: Id::stored("server id", r.server_id)?,
            name: Id::stored("prompt name", r.name)?,
            description_sha256: r.description_sha256,
            pinned_at: r.pinned_at,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct RemitRow {
    jti: String,
    root_jti: String,
    parent_jti: Option<String>,
    holder_thumbprint: String,
    sub: String,
    agent_id: String,
    issued_at: i64,
    expires_at: i64,
    max_steps: Option<i64>,
}

impl TryFrom<RemitRow> for IssuedRemit {
    type Error = StoreError;
    fn try_from(r: RemitRow) -> Result<Self, StoreError> {
        Ok(Self {
            jti: Id::stored("jti", r.jti)?,
            root_jti: Id::stored("root jti", r.root_jti)?,
            parent_jti: r
                .parent_jti
                .map(|p| Id::stored("parent jti", p))
                .transpose()?,
            holder_thumbprint: r.holder_thumbprint,
            sub: Id::stored("sub", r.sub)?,
            agent: Id::stored("agent id", r.agent_id)?,
            issued_at: r.issued_at,
            expires_at: r.expires_at,
            max_steps: r.max_steps,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct RevocationRow {
    kind: String,
    value: String,
    epoch: i64,
    reason: String,
    revoked_by: String,
    revoked_at: i64,
}

impl TryFrom<RevocationRow> for Revocation {
    type Error = StoreError;
    fn try_from(r: RevocationRow) -> Result<Self, StoreError> {
        Ok(Self {
            target: RevocationTarget {
                kind: RevocationKind::stored(&r.kind)?,
                value: Id::stored("revoked value", r.value)?,
            },
            epoch: r.epoch,
            reason: r.reason,
            revoked_by: r.revoked_by,
            revoked_at: r.revoked_at,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ApprovalRow {
    id: String,
    agent_id: String,
    remit_jti: String,
    tool: String,
    call_hash: String,
    summary: String,
    state: String,
    requested_at: i64,
    expires_at: i64,
    decided_by: Option<String>,
    decided_at: Option<i64>,
    consumed_at: Option<i64>,
}

impl TryFrom<ApprovalRow> for Approval {
    type Error = StoreError;
    fn try_from(r: ApprovalRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: Id::stored("approval id", r.id)?,
            agent: Id::stored("agent id", r.agent_id)?,
            remit_jti: Id::stored("jti", r.remit_jti)?,
            tool: Id::stored("tool", r.tool)?,
            call_hash: r.call_hash,
            summary: r.summary,
            state: ApprovalState::stored(&r.state)?,
            requested_at: r.requested_at,
            expires_at: r.expires_at,
            decided_by: r.decided_by,
            decided_at: r.decided_at,
            consumed_at: r.consumed_at,
        })
    }
}

#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ObservationRow {
    id: i64,
    agent_id: String,
    tool: String,
    argument_shape: String,
    decision: String,
    observed_at: i64,
}

impl TryFrom<ObservationRow> for Observation {
    type Error = StoreError;
    fn try_from(r: ObservationRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: r.id,
            observation: NewObservation {
                agent: Id::stored("agent id", r.agent_id)?,
                tool: Id::stored("tool", r.tool)?,
                argument_shape: r.argument_shape,
                decision: r.decision,
                observed_at: r.observed_at,
            },
        })
    }
}

/// Parses every row of a list.
pub(crate) fn parse_all<R, T>(rows: Vec<R>) -> Result<Vec<T>, StoreError>
where
    T: TryFrom<R, Error = StoreError>,
{
    rows.into_iter().map(T::try_from).collect()
}

/// Converts a stored count or index to `u64`, refusing negatives.
pub(crate) fn non_negative(what: &'static str, value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt {
        what,
        detail: format!("negative value {value}"),
    })
}

/// Converts a caller's `u64` to the database's `i64`, refusing overflow.
pub(crate) fn to_i64(what: &'static str, value: u64) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Invalid {
        what,
        value: value.to_string(),
        reason: "it exceeds the largest storable number",
    })
}

/// An observation row with its drafting facts (issue 26).
#[derive(Debug, sqlx::FromRow)]
pub(crate) struct ObservedFactsRow {
    #[sqlx(flatten)]
    observation: ObservationRow,
    facts: Option<String>,
}

impl TryFrom<ObservedFactsRow> for crate::model::ObservedFacts {
    type Error = StoreError;
    fn try_from(r: ObservedFactsRow) -> Result<Self, StoreError> {
        Ok(Self {
            observation: r.observation.try_into()?,
            facts: r.facts,
        })
    }
}
