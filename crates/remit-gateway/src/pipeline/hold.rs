//! Holding an escalated request for a human, whatever the request is: a
//! `tools/call`, a `resources/read` or a `prompts/get`. The hold is a
//! pending approval in the store whose id is derived from the hash of the
//! exact request, so the agent retries the same request and the gateway
//! finds the human's decision without the agent naming it; an approval
//! releases that one request once (the store consumes it atomically).

use remit_ledger::Kind;
use remit_store::{ApprovalState, Id, NewApproval, Store, StoreError};
use serde_json::json;

use super::context::{approval_id, policy_ids};
use super::driver::{Cx, RequestKind};
use super::stop::Stop;
use super::{jsonrpc, Refusal};
use remit_runtime::state::now;

/// The exact request an approval is bound to.
#[derive(Debug, Clone)]
pub(super) struct Held {
    /// The approval id derived from `hash`.
    pub(super) approval: Id,
    /// SHA-256 (hex) of the canonical request.
    pub(super) hash: String,
    /// The agent that made it.
    pub(super) agent: Id,
    /// What it reaches: `<server>/<tool>`, `<server>/resources/read` or
    /// `<server>/prompts/get`.
    pub(super) tool: Id,
}

impl Held {
    /// The binding of `kind`'s exact request by this caller.
    pub(super) fn bind<S: Store, K: RequestKind>(cx: &Cx<'_, S>, kind: &K) -> Result<Self, Stop> {
        let hash = kind.binding(&cx.caller.chain.leaf_claims().jti, cx.server.id.as_str());
        let invalid = |e: StoreError| Stop::deny("gw-invalid-call", e.to_string());
        Ok(Self {
            approval: Id::parse("approval id", approval_id(&hash)).map_err(invalid)?,
            agent: Id::parse("agent id", cx.caller.agent()).map_err(invalid)?,
            tool: Id::parse("tool", kind.tool_id()).map_err(invalid)?,
            hash,
        })
    }
}

fn stamp() -> i64 {
    i64::try_from(now()).unwrap_or(i64::MAX)
}

/// Looks for a human's decision on an escalated request. `Ok(Some(by))`:
/// an approval for this exact request is approved (by `by`) and unused,
/// so the caller decides again with `approved` set and, if that allows,
/// spends it with [`spend`]. `Ok(None)`: nobody was asked yet ([`hold`]
/// asks). `Err`: why the request stops (still pending, rejected, already
/// used, store down).
pub(super) async fn decided<S: Store>(
    cx: &Cx<'_, S>,
    request: &Held,
    decision: &remit_policy::Decision,
) -> Result<Option<String>, Stop> {
    let held = match cx.state.store().approval(&request.approval).await {
        Ok(a) => a,
        Err(StoreError::NotFound { .. }) => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    Err(match held.state {
        ApprovalState::Approved if held.consumed_at.is_none() => {
            return Ok(Some(held.decided_by.unwrap_or_default()))
        }
        ApprovalState::Rejected => Stop::deny(
            "gw-approval-rejected",
            format!(
                "approval {} for this request was rejected by {}",
                held.id,
                held.decided_by.clone().unwrap_or_default()
            ),
        ),
        ApprovalState::Pending => Stop::refuse_with(
            Refusal {
                kind: Kind::Escalate,
                code: jsonrpc::APPROVAL_REQUIRED,
                reason: format!(
                    "this request still waits for a human decision on approval {}",
                    held.id
                ),
                policy_ids: policy_ids(decision),
                policy_version: Some(decision.policy_version().to_owned()),
            },
            "approval_id",
            json!(held.id.as_str()),
        ),
        _ => Stop::deny(
            "gw-approval-used",
            format!("approval {} for this exact request was already used (approvals are one-shot); a new remit is needed to repeat it", held.id),
        ),
    })
}

/// Holds an escalated request: a pending approval showing `summary` (never
/// the raw arguments), and the distinct JSON-RPC error (`-32042`,
/// `data.approval_id`) the driver answers with its receipt.
pub(super) async fn hold<S: Store>(
    cx: &Cx<'_, S>,
    request: &Held,
    decision: &remit_policy::Decision,
    summary: String,
) -> Stop {
    let remit_jti = match Id::parse("remit jti", cx.caller.chain.leaf_claims().jti.as_str()) {
        Ok(i) => i,
        Err(e) => return Stop::deny("gw-invalid-call", e.to_string()),
    };
    let now_s = stamp();
    let ttl = cx.config.approval_ttl_secs;
    let held = NewApproval {
        id: request.approval.clone(),
        agent: request.agent.clone(),
        remit_jti,
        tool: request.tool.clone(),
        call_hash: request.hash.clone(),
        summary,
        requested_at: now_s,
        expires_at: now_s.saturating_add(i64::try_from(ttl).unwrap_or(3600)),
    };
    if let Err(e) = cx.state.store().request_approval(&held).await {
        return e.into();
    }
    Stop::refuse_with(
        Refusal {
            kind: Kind::Escalate,
            code: jsonrpc::APPROVAL_REQUIRED,
            reason: format!(
                "held for a human approval ({}): {}",
                request.approval,
                decision.explanation()
            ),
            policy_ids: policy_ids(decision),
            policy_version: Some(decision.policy_version().to_owned()),
        },
        "approval_id",
        json!(request.approval.as_str()),
    )
}

/// Spends an approval on the request it was granted for, once; a second
/// use (a concurrent retry), a different request or an expired approval
/// stops the request.
pub(super) async fn spend<S: Store>(cx: &Cx<'_, S>, request: &Held) -> Result<(), Stop> {
    match cx
        .state
        .store()
        .consume_approval(&request.approval, &request.hash, stamp())
        .await
    {
        Ok(_) => Ok(()),
        Err(e) => Err(Stop::deny(
            "gw-approval-used",
            format!("the approval could not be used: {e}"),
        )),
    }
}
