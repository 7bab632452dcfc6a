//! Progress of a forwarded call: a client that sends
//! `params._meta.progressToken` with a `tools/call` (and accepts an SSE
//! answer) gets the upstream's `notifications/progress` for that call on
//! its answer's stream, each scanned like a result and redacted above the
//! holder's class (dropped when it cannot be redacted safely), under the
//! client's own token. The upstream sees a token of the gateway's own.

use remit_class::Classification;
use remit_store::Store;
use serde_json::{json, Value};
use tokio::sync::mpsc;

use super::Incoming;
use crate::upstream::{Upstream, UpstreamError};
use crate::Gateway;

/// Where a caller's progress notifications go.
#[derive(Debug, Clone)]
pub struct ProgressSink {
    /// The caller's own progress token.
    pub token: Value,
    /// The caller's answer stream.
    pub events: mpsc::Sender<Value>,
}

/// The progress token `message` asks with (`params._meta.progressToken`,
/// a string or an integer, as MCP says), if any.
pub fn asked(message: &Incoming) -> Option<Value> {
    let token = message.params.get("_meta")?.get("progressToken")?;
    (token.is_string() || token.is_i64() || token.is_u64()).then(|| token.clone())
}

/// Calls the upstream; with a `sink`, relays the call's progress to it
/// while the call runs, every notification through [`released`]. Returns
/// once every notification was relayed, so they precede the answer.
pub(super) async fn forward<S: Store>(
    state: &Gateway<S>,
    holder: Classification,
    upstream: &Upstream,
    params: Value,
    timeout: std::time::Duration,
    sink: Option<&ProgressSink>,
) -> Result<Value, UpstreamError> {
    let Some(sink) = sink else {
        return upstream.call("tools/call", params, timeout).await;
    };
    let (tx, mut rx) = mpsc::unbounded_channel();
    let call = upstream.call_with_progress("tools/call", params, timeout, Some(tx));
    let relay = async {
        while let Some(params) = rx.recv().await {
            if let Some(note) = released(state, holder, &sink.token, params) {
                let _ = sink.events.send(note).await;
            }
        }
    };
    let (result, ()) = tokio::join!(call, relay);
    result
}

/// One upstream progress notification as the caller may see it: under the
/// caller's token, scanned, redacted above `holder`; `None` when it cannot
/// be scanned or redacted safely.
pub(super) fn released<S: Store>(
    state: &Gateway<S>,
    holder: Classification,
    token: &Value,
    mut params: Value,
) -> Option<Value> {
    params
        .as_object_mut()?
        .insert("progressToken".into(), token.clone());
    let note = json!({ "jsonrpc": "2.0", "method": "notifications/progress", "params": params });
    let bytes = serde_json::to_vec(&note).ok()?;
    let report = state.scanner().scan(&bytes).ok()?;
    if report.classification <= holder {
        return Some(note);
    }
    serde_json::from_slice::<Value>(&report.redact_input(&bytes))
        .ok()
        .filter(|v| v["params"]["progressToken"] == *token && v["method"] == note["method"])
}
