//! Conversions between the wire words and `remit-store`'s records (the
//! server's side of the API).

use remit_store as store;

use crate::gateway::Approval;
use crate::registry::{Agent, McpServer, Tool};
use crate::revocation::Revocation;
use crate::words::{ApprovalState, Clearance, RevocationKind, RiskTier, Status};

/// `From` both ways between a wire enum and the store's enum of the same words.
macro_rules! same_words {
    ($wire:ident, $stored:path { $($variant:ident),+ $(,)? }) => {
        impl From<$stored> for $wire {
            fn from(value: $stored) -> Self {
                use $stored as S;
                match value { $(S::$variant => Self::$variant),+ }
            }
        }

        impl From<$wire> for $stored {
            fn from(value: $wire) -> Self {
                use $stored as S;
                match value { $($wire::$variant => S::$variant),+ }
            }
        }
    };
}

same_words!(
    RiskTier,
    store::RiskTier {
        Low,
        Medium,
        High,
        Critical
    }
);
same_words!(Status, store::Status { Active, Disabled });
same_words!(
    RevocationKind,
    store::RevocationKind {
        Jti,
        Subtree,
        Agent,
        Sub,
        Tool,
        Kid
    }
);
same_words!(
    ApprovalState,
    store::ApprovalState {
        Pending,
        Approved,
        Rejected
    }
);

impl From<&store::Agent> for Agent {
    /// The agent as the API shows it; a stored key that is not JSON shows
    /// as `null` (`registry::stored_agent_key` reports it when used).
    fn from(agent: &store::Agent) -> Self {
        Self {
            id: agent.id.as_str().to_owned(),
            name: agent.name.clone(),
            public_jwk: serde_json::from_str(&agent.public_jwk).unwrap_or_default(),
            key_thumbprint: agent.key_thumbprint.clone(),
            owner: agent.owner.clone(),
            risk_tier: agent.risk_tier.into(),
            status: agent.status.into(),
            created_at: agent.created_at,
            updated_at: agent.updated_at,
            revocation_epoch: None,
            receipt_id: None,
        }
    }
}

impl From<&store::McpServer> for McpServer {
    fn from(server: &store::McpServer) -> Self {
        Self {
            id: server.id.as_str().to_owned(),
            name: server.name.clone(),
            url: server.url.clone(),
            clearance: Clearance::from(server.clearance),
            status: server.status.into(),
            created_at: server.created_at,
            updated_at: server.updated_at,
            receipt_id: None,
        }
    }
}

impl From<&store::Tool> for Tool {
    fn from(tool: &store::Tool) -> Self {
        Self {
            server: tool.server.as_str().to_owned(),
            name: tool.name.as_str().to_owned(),
            risk: tool.risk.into(),
            clearance: Clearance::from(tool.clearance),
            description_sha256: tool.description_sha256.clone(),
            created_at: tool.created_at,
            resource_arg: tool.resource_arg.clone(),
            receipt_id: None,
        }
    }
}

impl From<&store::Approval> for Approval {
    fn from(a: &store::Approval) -> Self {
        Self {
            id: a.id.as_str().to_owned(),
            agent: a.agent.as_str().to_owned(),
            remit_jti: a.remit_jti.as_str().to_owned(),
            tool: a.tool.as_str().to_owned(),
            call_hash: a.call_hash.clone(),
            summary: a.summary.clone(),
            state: a.state.into(),
            requested_at: a.requested_at,
            expires_at: a.expires_at,
            decided_by: a.decided_by.clone(),
            decided_at: a.decided_at,
            consumed_at: a.consumed_at,
            receipt_id: None,
        }
    }
}

impl From<&store::Revocation> for Revocation {
    fn from(r: &store::Revocation) -> Self {
        Self {
            kind: r.target.kind.into(),
            value: r.target.value.as_str().to_owned(),
            epoch: r.epoch,
            reason: r.reason.clone(),
            revoked_by: r.revoked_by.clone(),
            revoked_at: r.revoked_at,
            newly_revoked: None,
            receipt_id: None,
            propagated: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_words_are_the_stored_words() {
        for tier in [
            RiskTier::Low,
            RiskTier::Medium,
            RiskTier::High,
            RiskTier::Critical,
        ] {
            let stored = store::RiskTier::from(tier);
            assert_eq!(
                serde_json::to_value(tier).unwrap_or_default(),
                stored.as_str()
            );
        }
        for kind in [
            store::RevocationKind::Jti,
            store::RevocationKind::Subtree,
            store::RevocationKind::Agent,
            store::RevocationKind::Sub,
            store::RevocationKind::Tool,
            store::RevocationKind::Kid,
        ] {
            assert_eq!(
                serde_json::to_value(RevocationKind::from(kind)).unwrap_or_default(),
                kind.as_str()
            );
        }
        for state in [
            store::ApprovalState::Pending,
            store::ApprovalState::Approved,
            store::ApprovalState::Rejected,
        ] {
            assert_eq!(
                serde_json::to_value(ApprovalState::from(state)).unwrap_or_default(),
                state.as_str()
            );
        }
        assert_eq!(
            serde_json::to_value(Status::from(store::Status::Disabled)).unwrap_or_default(),
            "disabled"
        );
    }
}
