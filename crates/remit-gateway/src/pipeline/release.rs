//! Stages 6 and 7 for anything an upstream returns: the result scanned
//! against the holder's class, decided, receipted and released.

use crate::Gateway;
use remit_ledger::Kind;
use remit_policy::Action;
use remit_store::{NewObservation, Store};
use rmcp::model::{ErrorCode, RequestId};
use serde_json::{json, Value};

use super::context::{
    count_findings, decision_request, findings_clause, ledger_decision, policy_ids,
    recorded_reason, CallContext,
};
use super::{record, refuse, store_refusal, Answer, Facts, Refusal};
use crate::auth::Caller;
use crate::hold::{self, HeldRequest};
use crate::jsonrpc;
use remit_runtime::metrics::Stage;
use remit_runtime::state::{now, PendingReceipt};

/// Stages 6 and 7: scans what the upstream returned, redacts it above the
/// holder's class (or withholds it when it cannot be redacted safely), asks
/// the policy `action` about it, and answers with the receipt id in
/// `_meta` once the receipt is durable.
///
/// `call_receipt` is the receipt of a forwarded tool call, already
/// submitted (its sync overlapped the upstream's work). A clean result is
/// answered under it; a result with findings gets a second receipt after
/// it (`result_redacted`, or `result_released` when it was within the
/// holder's class) recording what it held, and a withheld one a deny. A
/// content read has no call receipt: its one receipt carries the decision
/// on the content.
#[allow(clippy::too_many_arguments)]
pub(super) async fn release<S: Store>(
    state: &Gateway<S>,
    caller: &Caller,
    id: RequestId,
    facts: Facts,
    result: Value,
    context: &CallContext<'_>,
    action: Action,
    call_receipt: Option<PendingReceipt>,
) -> Answer {
    release_with(
        state,
        caller,
        id,
        facts,
        result,
        context,
        action,
        call_receipt,
        None,
    )
    .await
}

/// A `resources/read` or `prompts/get` on its way out: what an escalation
/// holds, and what shadow mode observes.
pub(super) struct ContentRequest<'a> {
    /// The exact request an approval binds.
    pub(super) held: HeldRequest<'a>,
    /// What the human is shown: `reads notes://hr on files`.
    pub(super) what: String,
    /// The argument shape recorded in shadow mode.
    pub(super) shape: Value,
    /// What stage 2 would have refused in shadow mode (the grant).
    pub(super) would: Option<String>,
}

/// [`release`], and for a content request: an escalated read is held for a
/// human like a tool call ([`hold`]), and in shadow mode an observation
/// records what would have been decided before the content goes out.
// Not split yet: the stage copy shared with `tools::call_tool`, which issue
// 23's single pipeline driver replaces (see the note there).
#[allow(clippy::too_many_arguments, clippy::too_many_lines)]
pub(super) async fn release_with<S: Store>(
    state: &Gateway<S>,
    caller: &Caller,
    id: RequestId,
    mut facts: Facts,
    result: Value,
    context: &CallContext<'_>,
    action: Action,
    call_receipt: Option<PendingReceipt>,
    content: Option<&ContentRequest<'_>>,
) -> Answer {
    let shadow = context.shadow;
    let deny = |rule: &str, reason: String| Refusal::gateway(jsonrpc::DENIED, rule, reason);
    macro_rules! refuse_with {
        ($refusal:expr) => {
            return Answer::Message(
                refuse(state, Some(caller), Some(id), &facts, $refusal, None).await,
            )
        };
    }
    // Stage 6: the result, against the holder's class.
    let result_bytes = serde_json::to_vec(&result).unwrap_or_default();
    let result_report = match state.scanner().scan(&result_bytes) {
        Ok(r) => r,
        Err(e) => refuse_with!(deny(
            "gw-scan-failed",
            format!("the result could not be scanned, so it is withheld: {e}")
        )),
    };
    count_findings(&result_report, "result:", &mut facts.findings);
    if let Some(class) = facts.class {
        facts.class = Some(class.max(result_report.classification));
    }
    let holder = caller.chain.leaf_claims().class;
    let redact = result_report.classification > holder;
    let mut result = result;
    if redact {
        let redacted = result_report.redact_input(&result_bytes);
        match serde_json::from_slice::<Value>(&redacted) {
            Ok(v) if v.is_object() => result = v,
            _ => refuse_with!(deny(
                "gw-result-blocked",
                format!("the result carries {} data above the remit's class {holder} and could not be redacted safely, so it is withheld", result_report.classification.name())
            )),
        }
    }
    let mut context = context.clone();
    context.report = Some(&result_report);
    context.redacted = redact;
    let mut read = match decision_request(action, &context) {
        Ok(r) => state.policy().decide(&r),
        Err(e) => refuse_with!(deny(
            "gw-invalid-request",
            format!("the result cannot be put to the policy: {e}")
        )),
    };
    let mut approved = None;
    if let (Some(request), remit_policy::Verdict::Escalate, false) =
        (content, read.verdict(), shadow)
    {
        // The same hold as a tool call: bound to this exact request, one-shot.
        match hold::decided(state, caller, &id, &facts, request.held, &read).await {
            Ok(true) => {
                context.approved = true;
                read = match decision_request(action, &context) {
                    Ok(r) => state.policy().decide(&r),
                    Err(e) => refuse_with!(deny("gw-invalid-request", e)),
                };
                if read.verdict() == remit_policy::Verdict::Escalate {
                    refuse_with!(Refusal {
                        kind: Kind::Deny,
                        code: jsonrpc::DENIED,
                        reason: format!(
                            "approval {} was given, but the policy still asks for one: {}",
                            request.held.approval,
                            read.explanation()
                        ),
                        policy_ids: policy_ids(&read),
                        policy_version: Some(read.policy_version().to_owned()),
                    });
                }
                approved = Some(request.held);
            }
            Ok(false) => {
                let summary = format!(
                    "{} (for {}) {} (content {}{}): {}",
                    caller.agent(),
                    caller.chain.leaf_claims().sub,
                    request.what,
                    result_report.classification.name(),
                    findings_clause(&result_report),
                    read.explanation()
                );
                return hold::hold(state, caller, id, &facts, request.held, &read, summary).await;
            }
            Err(answer) => return answer,
        }
    }
    if read.verdict() != remit_policy::Verdict::Allow && !shadow {
        let refusal = Refusal {
            kind: Kind::Deny,
            code: jsonrpc::DENIED,
            reason: format!("the result is withheld: {}", recorded_reason(&read)),
            policy_ids: policy_ids(&read),
            policy_version: Some(read.policy_version().to_owned()),
        };
        refuse_with!(refusal);
    }
    if let Some(held) = approved {
        if let Err(refusal) = hold::spend(state, held).await {
            refuse_with!(refusal);
        }
    }
    if let (Some(request), true) = (content, shadow) {
        let would = request.would.clone().or_else(|| {
            (read.verdict() != remit_policy::Verdict::Allow).then(|| {
                format!(
                    "{}: {}",
                    format!("{:?}", read.verdict()).to_lowercase(),
                    read.explanation()
                )
            })
        });
        let observed = NewObservation {
            agent: request.held.agent.clone(),
            tool: request.held.tool.clone(),
            argument_shape: request.shape.to_string(),
            decision: would.unwrap_or_else(|| "allow".into()),
            observed_at: i64::try_from(now()).unwrap_or(i64::MAX),
        };
        if let Err(e) = state.store().record_observation(&observed).await {
            return store_refusal(state, caller, id, &facts, &e).await;
        }
    }

    // Stage 7: the receipt, then the answer.
    let kind = if redact {
        Kind::ResultRedacted
    } else if call_receipt.is_some() {
        Kind::ResultReleased
    } else {
        Kind::Allow
    };
    let ledger = ledger_decision(&read, shadow);
    let waiting = std::time::Instant::now();
    let recorded = match call_receipt {
        Some(call) if !redact && result_report.findings.is_empty() => {
            call.durable().await.map_err(|p| p.to_string())
        }
        Some(call) => {
            let result_receipt = record(state, Some(caller), kind, &facts, Some(ledger)).await;
            let call_receipt = call.durable().await.map_err(|p| p.to_string());
            call_receipt.and(result_receipt)
        }
        None => record(state, Some(caller), kind, &facts, Some(ledger)).await,
    };
    remit_runtime::metrics::stage(Stage::ReceiptWait, waiting.elapsed().as_secs_f64());
    let receipt = match recorded {
        Ok(r) => r,
        Err(detail) => {
            return Answer::Message(jsonrpc::error(
                Some(id),
                ErrorCode::INTERNAL_ERROR,
                format!("the call ran but its receipt could not be recorded, so the result is withheld: {detail}"),
                None,
            ))
        }
    };
    if let Some(object) = result.as_object_mut() {
        let meta = object.entry("_meta").or_insert_with(|| json!({}));
        if let Some(meta) = meta.as_object_mut() {
            meta.insert("receipt_id".into(), json!(receipt));
            if redact {
                meta.insert("remit/redacted".into(), json!(true));
            }
            if shadow {
                meta.insert("remit/shadow".into(), json!(true));
            }
        }
    }
    Answer::Message(jsonrpc::result(id, result))
}

/// An upstream's JSON-RPC error on its way to the client: its message and
/// data scanned like a result, findings counted into `facts` (`error:`),
/// and redacted above the holder's class; when it cannot be redacted
/// safely, only Remit's own words go out. Returns the message and the data
/// to relay.
pub(super) fn upstream_error<S: Store>(
    state: &Gateway<S>,
    caller: &Caller,
    remote: &rmcp::model::ErrorData,
    facts: &mut Facts,
) -> (String, Option<Value>) {
    let withheld = || {
        (
            format!(
                "the upstream answered error {} (its text is withheld: it could not be scanned or redacted)",
                remote.code.0
            ),
            None,
        )
    };
    let payload = json!({ "message": remote.message, "data": remote.data });
    let Ok(bytes) = serde_json::to_vec(&payload) else {
        return withheld();
    };
    let Ok(report) = state.scanner().scan(&bytes) else {
        return withheld();
    };
    count_findings(&report, "error:", &mut facts.findings);
    facts.class = Some(
        facts
            .class
            .map_or(report.classification, |c| c.max(report.classification)),
    );
    let payload = if report.classification > caller.chain.leaf_claims().class {
        match serde_json::from_slice::<Value>(&report.redact_input(&bytes)) {
            Ok(v) if v.is_object() => v,
            _ => return withheld(),
        }
    } else {
        payload
    };
    let message = match payload.get("message").and_then(Value::as_str) {
        Some(m) => format!("the upstream answered an error: {m}"),
        None => return withheld(),
    };
    let data = payload.get("data").filter(|d| !d.is_null()).cloned();
    (message, data)
}
