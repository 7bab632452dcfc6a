//! Stages 8 and 9 for anything an upstream returns: the answer scanned
//! against the holder's class, redacted or withheld, decided (stage 5 on
//! the answer), then receipted and released.

use remit_ledger::Kind;
use remit_runtime::metrics::Stage;
use remit_runtime::state::PendingReceipt;
use remit_store::Store;
use rmcp::model::ErrorCode;
use serde_json::{json, Value};

use super::context::{count_findings, ledger_decision, CallContext};
use super::decide;
use super::driver::{Cx, Pinned, RequestKind, StageClock, Would};
use super::stop::Stop;
use super::{record as write_receipt, Answer, Facts};
use crate::auth::Caller;
use crate::jsonrpc;
use crate::Gateway;

/// An answer released by stage 8, waiting for its receipt.
pub(super) struct Released {
    /// The result as it goes out (redacted when `redacted`).
    result: Value,
    /// Whether it was redacted above the holder's class.
    redacted: bool,
    /// Whether the scan found nothing in it.
    clean: bool,
    /// The decision on it, as its receipt records it.
    ledger: remit_ledger::Decision,
}

/// Stage 8: scans what the upstream returned, redacts it above the
/// holder's class (or withholds it when it cannot be redacted safely),
/// and asks the policy the kind's answer action about it (stage 5 on the
/// answer: a read is decided, and held, here).
pub(super) async fn release<S: Store, K: RequestKind>(
    cx: &Cx<'_, S>,
    kind: &K,
    facts: &mut Facts,
    result: Value,
    context: &CallContext<'_>,
    pinned: &Pinned,
    would: &mut Would,
) -> Result<Released, Stop> {
    let bytes = serde_json::to_vec(&result).unwrap_or_default();
    let report = cx.state.scanner().scan(&bytes).map_err(|e| {
        Stop::deny(
            "gw-scan-failed",
            format!("the result could not be scanned, so it is withheld: {e}"),
        )
    })?;
    count_findings(&report, "result:", &mut facts.findings);
    if let Some(class) = facts.class {
        facts.class = Some(class.max(report.classification));
    }
    let holder = cx.caller.chain.leaf_claims().class;
    let redacted = report.classification > holder;
    let mut result = result;
    if redacted {
        match serde_json::from_slice::<Value>(&report.redact_input(&bytes)) {
            Ok(v) if v.is_object() => result = v,
            _ => return Err(Stop::deny(
                "gw-result-blocked",
                format!("the result carries {} data above the remit's class {holder} and could not be redacted safely, so it is withheld", report.classification.name())
            )),
        }
    }
    let mut context = context.clone();
    context.report = Some(&report);
    context.redacted = redacted;
    let ask = kind.answer_ask();
    let decision =
        decide::decide(cx, kind, facts, &mut context, ask, &report, pinned, would).await?;
    Ok(Released {
        result,
        redacted,
        clean: report.findings.is_empty(),
        ledger: ledger_decision(&decision, cx.shadow),
    })
}

/// Stage 9: the receipt, durable, then the answer with its index in
/// `_meta.receipt_id`.
///
/// `call_receipt` is the receipt of a request decided before it went out
/// (a tool call), already submitted (its sync overlapped the upstream's
/// work). A clean result is answered under it; a result with findings
/// gets a second receipt after it (`result_redacted`, or
/// `result_released` when it was within the holder's class) recording
/// what it held. A read has no call receipt: its one receipt carries the
/// decision on the content.
pub(super) async fn record<S: Store>(
    cx: &Cx<'_, S>,
    facts: &Facts,
    released: Released,
    call_receipt: Option<PendingReceipt>,
) -> Result<Answer, Stop> {
    let Released {
        mut result,
        redacted,
        clean,
        ledger,
    } = released;
    let kind = if redacted {
        Kind::ResultRedacted
    } else if call_receipt.is_some() {
        Kind::ResultReleased
    } else {
        Kind::Allow
    };
    let mut clock = StageClock::start();
    let (state, caller) = (cx.state, Some(cx.caller));
    let recorded = match call_receipt {
        Some(call) if !redacted && clean => call.durable().await.map_err(|p| p.to_string()),
        Some(call) => {
            let result_receipt = write_receipt(state, caller, kind, facts, Some(ledger)).await;
            let call_receipt = call.durable().await.map_err(|p| p.to_string());
            call_receipt.and(result_receipt)
        }
        None => write_receipt(state, caller, kind, facts, Some(ledger)).await,
    };
    clock.lap(Stage::Record);
    let receipt = match recorded {
        Ok(r) => r,
        Err(detail) => {
            return Ok(unrecorded(
                cx,
                format!("the call ran but its receipt could not be recorded, so the result is withheld: {detail}"),
            ))
        }
    };
    if let Some(object) = result.as_object_mut() {
        let meta = object.entry("_meta").or_insert_with(|| json!({}));
        if let Some(meta) = meta.as_object_mut() {
            meta.insert("receipt_id".into(), json!(receipt));
            if redacted {
                meta.insert("remit/redacted".into(), json!(true));
            }
            if cx.shadow {
                meta.insert("remit/shadow".into(), json!(true));
            }
        }
    }
    Ok(Answer::Message(jsonrpc::result(cx.id.clone(), result)))
}

/// The answer when a receipt could not be made durable: nothing goes out
/// or up without one (`message` says which; there is no receipt to name).
pub(super) fn unrecorded<S: Store>(cx: &Cx<'_, S>, message: String) -> Answer {
    Answer::Message(jsonrpc::error(
        Some(cx.id.clone()),
        ErrorCode::INTERNAL_ERROR,
        message,
        None,
    ))
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
