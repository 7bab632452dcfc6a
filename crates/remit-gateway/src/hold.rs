//! Holding an escalated request for a human, whatever the request is: a
//! `tools/call`, a `resources/read` or a `prompts/get`. The hold is a
//! pending approval in the store whose id is derived from the hash of the
//! exact request, so the agent retries the same request and the gateway
//! finds the human's decision without the agent naming it; an approval
//! releases that one request once (the store consumes it atomically).

use crate::Gateway;
use remit_ledger::Kind;
use remit_store::{ApprovalState, Id, NewApproval, Store, StoreError};
use rmcp::model::RequestId;
use serde_json::json;

use super::auth::Caller;
use super::jsonrpc;
use super::pipeline::{policy_ids, refuse, store_refusal, Answer, Facts, Refusal};
use remit_runtime::state::now;

/// The exact request an approval is bound to.
#[derive(Debug, Clone, Copy)]
pub struct HeldRequest<'a> {
    /// The approval id derived from `hash`.
    pub approval: &'a Id,
    /// SHA-256 (hex) of the canonical request.
    pub hash: &'a str,
    /// The agent that made it.
    pub agent: &'a Id,
    /// What it reaches: `<server>/<tool>`, `<server>/resources/read` or
    /// `<server>/prompts/get`.
    pub tool: &'a Id,
}

fn stamp() -> i64 {
    i64::try_from(now()).unwrap_or(i64::MAX)
}

/// Looks for a human's decision on an escalated request. `Ok(true)`: an
/// approval for this exact request is approved and unused, so the caller
/// decides again with `approved` set and, if that allows, spends it with
/// [`spend`]. `Ok(false)`: nobody was asked yet ([`hold`] asks). `Err`:
/// the answer to send (still pending, rejected, already used, store down),
/// its receipt written.
pub async fn decided<S: Store>(
    state: &Gateway<S>,
    caller: &Caller,
    id: &RequestId,
    facts: &Facts,
    request: HeldRequest<'_>,
    decision: &remit_policy::Decision,
) -> Result<bool, Answer> {
    let deny = |rule: &str, reason: String| Refusal::gateway(jsonrpc::DENIED, rule, reason);
    let held = match state.store().approval(request.approval).await {
        Ok(a) => a,
        Err(StoreError::NotFound { .. }) => return Ok(false),
        Err(e) => return Err(store_refusal(state, caller, id.clone(), facts, &e).await),
    };
    let (refusal, extra) = match held.state {
        ApprovalState::Approved if held.consumed_at.is_none() => return Ok(true),
        ApprovalState::Rejected => (
            deny(
                "gw-approval-rejected",
                format!(
                    "approval {} for this request was rejected by {}",
                    held.id,
                    held.decided_by.clone().unwrap_or_default()
                ),
            ),
            None,
        ),
        ApprovalState::Pending => (
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
            Some(("approval_id", json!(held.id.as_str()))),
        ),
        _ => (
            deny(
                "gw-approval-used",
                format!("approval {} for this exact request was already used (approvals are one-shot); a new remit is needed to repeat it", held.id),
            ),
            None,
        ),
    };
    Err(Answer::Message(
        refuse(state, Some(caller), Some(id.clone()), facts, refusal, extra).await,
    ))
}

/// Holds an escalated request: a pending approval showing `summary` (never
/// the raw arguments), and the distinct JSON-RPC error (`-32042`,
/// `data.approval_id`) with its receipt.
pub async fn hold<S: Store>(
    state: &Gateway<S>,
    caller: &Caller,
    id: RequestId,
    facts: &Facts,
    request: HeldRequest<'_>,
    decision: &remit_policy::Decision,
    summary: String,
) -> Answer {
    let remit_jti = match Id::parse("remit jti", caller.chain.leaf_claims().jti.as_str()) {
        Ok(i) => i,
        Err(e) => {
            let refusal = Refusal::gateway(jsonrpc::DENIED, "gw-invalid-call", e.to_string());
            return Answer::Message(
                refuse(state, Some(caller), Some(id), facts, refusal, None).await,
            );
        }
    };
    let now_s = stamp();
    let ttl = state.gateway().config().approval_ttl_secs;
    let held = NewApproval {
        id: request.approval.clone(),
        agent: request.agent.clone(),
        remit_jti,
        tool: request.tool.clone(),
        call_hash: request.hash.to_owned(),
        summary,
        requested_at: now_s,
        expires_at: now_s.saturating_add(i64::try_from(ttl).unwrap_or(3600)),
    };
    if let Err(e) = state.store().request_approval(&held).await {
        return store_refusal(state, caller, id, facts, &e).await;
    }
    let refusal = Refusal {
        kind: Kind::Escalate,
        code: jsonrpc::APPROVAL_REQUIRED,
        reason: format!(
            "held for a human approval ({}): {}",
            request.approval,
            decision.explanation()
        ),
        policy_ids: policy_ids(decision),
        policy_version: Some(decision.policy_version().to_owned()),
    };
    Answer::Message(
        refuse(
            state,
            Some(caller),
            Some(id),
            facts,
            refusal,
            Some(("approval_id", json!(request.approval.as_str()))),
        )
        .await,
    )
}

/// Spends an approval on the request it was granted for, once; a second
/// use (a concurrent retry), a different request or an expired approval is
/// a refusal to send.
pub async fn spend<S: Store>(state: &Gateway<S>, request: HeldRequest<'_>) -> Result<(), Refusal> {
    match state
        .store()
        .consume_approval(request.approval, request.hash, stamp())
        .await
    {
        Ok(_) => Ok(()),
        Err(e) => Err(Refusal::gateway(
            jsonrpc::DENIED,
            "gw-approval-used",
            format!("the approval could not be used: {e}"),
        )),
    }
}
