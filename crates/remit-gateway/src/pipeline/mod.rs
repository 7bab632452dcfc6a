//! One MCP message through the gateway, independent of the transport: the
//! HTTP handler ([`super::http`]) and a stdio proxy (`remit wrap`) both
//! authenticate a [`Caller`] (stage 1), read an [`Incoming`] message, and
//! hand both here with the registered server; what comes back is an
//! [`Answer`].
//!
//! Requests that reach an upstream are request kinds of the one driver
//! ([`driver`], which lists the nine stages): a tool call ([`tools`]), a
//! resource read and a prompt get ([`content`]). A kind supplies what
//! differs; a refusal is a [`stop::Stop`] the driver answers, with its
//! receipt, in one place.
//!
//! | module | what |
//! |---|---|
//! | `driver` | the stages in order, the [`driver::RequestKind`] trait |
//! | `stop` | why a request stops, and its answer and receipt |
//! | `tools` | `tools/list`; `tools/call` as a kind |
//! | `content` | `resources/*`, `prompts/*`; reads as a kind |
//! | `decide` | stage 5: the policy, holds for a human, shadow observations |
//! | `hold` | an escalated request held as a pending approval |
//! | `budget` | stage 6: steps and the payer's risk |
//! | `release` | stages 8 and 9: the answer scanned, decided, receipted |
//! | `context` | what the policy is told; classes, hashes, findings |
//! | `progress` | a tool call's progress relayed, scanned |

mod budget;
mod content;
mod context;
mod decide;
mod driver;
mod hold;
pub mod progress;
mod release;
mod stop;
mod tools;

use crate::Gateway;
use std::collections::BTreeMap;

use remit_ledger::{Actor, ActorKind, Event, Kind};
use remit_store::{McpServer, Store};
use rmcp::model::{ErrorCode, RequestId};
use serde_json::{json, Map, Value};

use super::auth::Caller;
use super::jsonrpc::{self, Incoming};
use remit_runtime::state::now_ms;

use content::{list_content, ContentKind, ContentRead};
use driver::Cx;
use tools::{list_tools, ToolCall};

pub use content::list_prompts;
pub use context::{approval_id, call_hash, request_hash, risk_cost};

/// Protocol versions the gateway answers `initialize` with.
pub const PROTOCOL_VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];

/// What to send back for one message.
#[derive(Debug, Clone)]
pub enum Answer {
    /// A JSON-RPC answer (result or error).
    Message(Value),
    /// A notification was taken; nothing to answer (HTTP 202).
    Accepted,
    /// The remit does not cover the call: the JSON-RPC error, and the
    /// scope a wider remit needs (HTTP 403 `insufficient_scope`).
    InsufficientScope {
        /// The JSON-RPC error.
        message: Value,
        /// The scope that would cover the call.
        scope: String,
    },
}

/// A refusal before any message was understood (bad credentials, limits).
#[derive(Debug, Clone)]
pub struct Refusal {
    /// The receipt kind (`deny` or `error`).
    pub kind: Kind,
    /// The JSON-RPC code.
    pub code: ErrorCode,
    /// Why, in words.
    pub reason: String,
    /// The policies that decided, if a policy did.
    pub policy_ids: Vec<String>,
    /// The policy version, if a policy decided.
    pub policy_version: Option<String>,
}

impl Refusal {
    /// A deny by the gateway itself (not a policy), with a stable rule id.
    pub fn gateway(code: ErrorCode, rule: &str, reason: impl Into<String>) -> Self {
        Self {
            kind: Kind::Deny,
            code,
            reason: reason.into(),
            policy_ids: vec![rule.to_owned()],
            policy_version: None,
        }
    }
}

/// The facts a receipt records about one message.
#[derive(Debug, Clone)]
pub struct Facts {
    /// The call's id, on every receipt it produces (fresh per message).
    pub call_id: Option<remit_ledger::CallId>,
    /// `mcp:<server>/<tool>` or `mcp:<server>:<method>`.
    pub tool: String,
    /// Keyed hash of the arguments.
    pub args_hash: Option<remit_ledger::ArgsHash>,
    /// Findings counted by type.
    pub findings: BTreeMap<String, u32>,
    /// The highest classification seen.
    pub class: Option<remit_class::Classification>,
    /// The human approval this request spent, if one released it.
    pub approval: Option<remit_ledger::Approval>,
}

impl Default for Facts {
    /// No facts yet, under a fresh call id.
    fn default() -> Self {
        Self {
            call_id: remit_runtime::receipts::events::call_id(),
            tool: String::new(),
            args_hash: None,
            findings: BTreeMap::new(),
            class: None,
            approval: None,
        }
    }
}

/// Records a receipt for `facts`; `Err` carries the JSON-RPC error to send
/// when the receipt could not be made durable (the call then fails).
pub async fn record<S: Store>(
    state: &Gateway<S>,
    caller: Option<&Caller>,
    kind: Kind,
    facts: &Facts,
    decision: Option<remit_ledger::Decision>,
) -> Result<u64, String> {
    let event = receipt_event(caller, kind, facts, decision);
    state.record(event).await.map_err(|p| p.to_string())
}

/// The receipt event for `facts` about `caller`'s message.
fn receipt_event(
    caller: Option<&Caller>,
    kind: Kind,
    facts: &Facts,
    decision: Option<remit_ledger::Decision>,
) -> Event {
    let mut event = Event::new(kind, now_ms());
    if let Some(caller) = caller {
        let chain = &caller.chain;
        event.root_jti = Some(chain.leaf_claims().root.clone());
        event.leaf_jti = Some(chain.leaf_claims().jti.clone());
        event.actors.push(Actor {
            id: chain.leaf_claims().sub.clone(),
            kind: ActorKind::User,
        });
        event.actors.extend(chain.agents().map(|a| Actor {
            id: a.to_owned(),
            kind: ActorKind::Agent,
        }));
        event.revocation_epoch = caller.revocation_epoch;
        event.chain = caller.chain_ref.clone();
    }
    event.call_id = facts.call_id.clone();
    event.approval = facts.approval.clone();
    // The tool (`mcp:<server>/<name>`) is the caller's text: bounded.
    event.tool = Some(remit_runtime::bounded::caller_text(&facts.tool).into_owned());
    event.args_hash = facts.args_hash.clone();
    event.findings = facts.findings.clone();
    event.classification = facts.class;
    event.decision = decision;
    event
}

/// Writes the receipt of a refusal and builds its JSON-RPC error.
pub async fn refuse<S: Store>(
    state: &Gateway<S>,
    caller: Option<&Caller>,
    id: Option<RequestId>,
    facts: &Facts,
    refusal: Refusal,
    extra: Option<(&str, Value)>,
) -> Value {
    // A reason may quote caller text (a tool name, a path): bounded once
    // here for the receipt and the answer alike.
    let mut refusal = refusal;
    if let std::borrow::Cow::Owned(reason) =
        remit_runtime::bounded::bounded(&refusal.reason, remit_runtime::bounded::MAX_MESSAGE_TEXT)
    {
        refusal.reason = reason;
    }
    let decision = remit_ledger::Decision {
        effect: if refusal.kind == Kind::Escalate {
            remit_ledger::Effect::Escalate
        } else {
            remit_ledger::Effect::Deny
        },
        policy_ids: refusal.policy_ids.clone(),
        policy_version: refusal
            .policy_version
            .clone()
            .unwrap_or_else(|| state.policy_version()),
        // Only a policy's own reasons are recorded: a gateway refusal's
        // words may quote the caller or the upstream, and its rule id
        // (in `policy_ids`) already says why.
        reason: refusal
            .policy_version
            .is_some()
            .then(|| refusal.reason.clone()),
    };
    match record(state, caller, refusal.kind, facts, Some(decision)).await {
        Ok(receipt) => {
            let mut data = json!({
                "reason": refusal.reason,
                "policy_ids": refusal.policy_ids,
                "receipt_id": receipt,
            });
            if let Some((key, value)) = extra {
                data[key] = value;
            }
            jsonrpc::error(id, refusal.code, refusal.reason.clone(), Some(data))
        }
        Err(detail) => jsonrpc::error(
            id,
            ErrorCode::INTERNAL_ERROR,
            format!(
                "refused ({}), and the receipt could not be recorded: {detail}",
                refusal.reason
            ),
            None,
        ),
    }
}

/// Handles one authenticated message for `server`.
pub async fn handle<S: Store>(
    state: &Gateway<S>,
    caller: &Caller,
    server: &McpServer,
    message: Incoming,
) -> Answer {
    handle_with_progress(state, caller, server, message, None).await
}

/// [`handle`], relaying a tool call's progress to `progress` ([`progress`]).
pub async fn handle_with_progress<S: Store>(
    state: &Gateway<S>,
    caller: &Caller,
    server: &McpServer,
    message: Incoming,
    progress: Option<&progress::ProgressSink>,
) -> Answer {
    let Some(id) = message.id.clone() else {
        // Notifications (initialized, cancelled, progress) end here: the
        // upstream session is the gateway's own.
        return Answer::Accepted;
    };
    let reply = |v: Value| Answer::Message(jsonrpc::result(id.clone(), v));
    let cx = || Cx::new(state, caller, server, id.clone());
    match message.method.as_str() {
        "initialize" => reply(initialize_result(&message.params, server)),
        "ping" => reply(json!({})),
        "tools/list" => list_tools(&cx()).await,
        "tools/call" => {
            let cx = cx();
            let (facts, call) = ToolCall::parse(&cx, message.params).await;
            driver::run(&cx, facts, call, progress).await
        }
        "resources/list" => list_content(&cx(), ContentKind::Resource).await,
        // A template names no concrete URI a grant could be checked against.
        "resources/templates/list" => reply(json!({ "resourceTemplates": [] })),
        "prompts/list" => list_content(&cx(), ContentKind::Prompt).await,
        "logging/setLevel" => reply(json!({})),
        "resources/read" | "prompts/get" => {
            let kind = if message.method == "prompts/get" {
                ContentKind::Prompt
            } else {
                ContentKind::Resource
            };
            let cx = cx();
            let (facts, read) = ContentRead::parse(&cx, kind, &message.params);
            driver::run(&cx, facts, read, None).await
        }
        // Updates would need a server-to-client stream, and the upstream
        // session is shared by every client: refused, clearly.
        "resources/subscribe" | "resources/unsubscribe" => Answer::Message(jsonrpc::error(
            Some(id),
            ErrorCode::METHOD_NOT_FOUND,
            "resource subscriptions are not offered by this gateway (it has no server-to-client stream to deliver updates); read the resource again with resources/read".to_owned(),
            None,
        )),
        other => Answer::Message(jsonrpc::error(
            Some(id),
            ErrorCode::METHOD_NOT_FOUND,
            format!("method {other:?} is not offered by this gateway"),
            None,
        )),
    }
}

fn initialize_result(params: &Map<String, Value>, server: &McpServer) -> Value {
    let asked = params
        .get("protocolVersion")
        .and_then(Value::as_str)
        .unwrap_or("");
    let version = PROTOCOL_VERSIONS
        .iter()
        .find(|v| **v == asked)
        .unwrap_or(&PROTOCOL_VERSIONS[1]);
    json!({
        "protocolVersion": version,
        "capabilities": {
            "tools": { "listChanged": false },
            "resources": {},
            "prompts": {},
            "logging": {},
        },
        "serverInfo": {
            "name": format!("remit-gateway/{}", server.id),
            "version": env!("CARGO_PKG_VERSION"),
        },
        "instructions": format!(
            "Tools of {} through the Remit gateway: every call is checked against your remit and recorded.",
            server.name
        ),
    })
}
