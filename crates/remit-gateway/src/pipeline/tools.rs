//! `tools/list` and `tools/call`: the granted, pinned tools of an upstream,
//! and one call through authority, pins, scanning, policy, budgets and the
//! upstream.

use crate::Gateway;
use std::sync::Arc;

use remit_ledger::Kind;
use remit_policy::Action;
use remit_store::{
    Id, IssuedRemit, McpServer, NewObservation, RiskSpend, Store, StoreError, Usage,
};
use rmcp::model::{ErrorCode, RequestId};
use serde_json::{json, Map, Value};

use super::context::{
    approval_id, call_hash, count_findings, decision_request, finding_names, findings_clause,
    ledger_decision, policy_ids, recorded_reason, risk_cost, shape, CallContext,
};
use super::release::release;
use super::{
    forward_refusal, not_covered, receipt_event, refuse, store_refusal, upstream_refusal, Answer,
    Facts, Refusal,
};
use crate::auth::Caller;
use crate::cache::BlessedTools;
use crate::hold::{self, HeldRequest};
use crate::jsonrpc;
use crate::upstream::{ToolList, Upstream};
use crate::GatewayConfig;
use remit_runtime::state::now;

/// The server's blessed tools and their pins (cached), or the store
/// refusal to answer with.
async fn blessed_tools<S: Store>(
    state: &Gateway<S>,
    caller: &Caller,
    id: &RequestId,
    facts: &Facts,
    server: &McpServer,
) -> Result<Arc<BlessedTools>, Answer> {
    let ttl = state.gateway().config().cache_ttl;
    match state
        .gateway()
        .cache()
        .tools(state.store(), &server.id, ttl)
        .await
    {
        Ok(found) => Ok(found),
        Err(e) => Err(store_refusal(state, caller, id.clone(), facts, &e).await),
    }
}

/// The server's upstream and its current tool list (cached for
/// `tools_cache_ttl`); a failure to reach it is a refusal with a receipt.
pub(super) async fn upstream_tools<S: Store>(
    state: &Gateway<S>,
    caller: &Caller,
    id: RequestId,
    server: &McpServer,
    facts: &Facts,
) -> Result<(Arc<Upstream>, Arc<ToolList>), Answer> {
    let config = state.gateway().config();
    let upstream = upstream_for(state, caller, id.clone(), server, facts).await?;
    match upstream
        .tools(config.tools_cache_ttl, config.upstream_timeout)
        .await
    {
        Ok(tools) => Ok((upstream, tools)),
        Err(e) => Err(upstream_refusal(state, caller, id, facts, &e).await),
    }
}

/// The server's upstream connection; a url the gateway cannot use is a
/// refusal with a receipt.
pub(super) async fn upstream_for<S: Store>(
    state: &Gateway<S>,
    caller: &Caller,
    id: RequestId,
    server: &McpServer,
    facts: &Facts,
) -> Result<Arc<Upstream>, Answer> {
    match state
        .gateway()
        .upstreams()
        .get(server.id.as_str(), &server.url)
    {
        Ok(u) => Ok(u),
        Err(e) => Err(upstream_refusal(state, caller, id, facts, &e).await),
    }
}

pub(super) async fn list_tools<S: Store>(
    state: &Gateway<S>,
    caller: &Caller,
    server: &McpServer,
    id: RequestId,
) -> Answer {
    let config = state.gateway().config();
    let facts = Facts {
        tool: format!("mcp:{}:tools/list", server.id),
        ..Facts::default()
    };
    let tools = match upstream_tools(state, caller, id.clone(), server, &facts).await {
        Ok((_, tools)) => tools,
        Err(refused) => return refused,
    };
    let registered = match blessed_tools(state, caller, &id, &facts, server).await {
        Ok(r) => r,
        Err(refused) => return refused,
    };
    let shadow = config.shadow(caller.agent(), server.id.as_str());
    let engine = state.policy();
    let grants = &caller.chain.leaf_claims().authorization_details;
    let empty = json!({});
    let (mut shown, mut changed) = (Vec::new(), Vec::new());
    for tool in &registered.tools {
        let Some((listed, hash)) = tools.get(tool.name.as_str()) else {
            continue;
        };
        if hash != tool.description_sha256 {
            changed.push(tool.name.to_string());
            continue;
        }
        let tool_id = format!("{}/{}", server.id, tool.name);
        let granted = grants.iter().any(|g| g.covers_tool(&tool_id));
        if !shadow {
            if !granted {
                continue;
            }
            let context = CallContext {
                caller,
                args: &empty,
                report: None,
                tool_id: &tool_id,
                granted,
                steps_used: 0,
                risk_used: 0,
                risk_max: config.risk_budget,
                approved: false,
                shadow,
                redacted: false,
                // Shown only while its pin matches, so the server-wide
                // hash seen is the pinned one.
                description_hash: Some(registered.description_hash.clone()),
                content: None,
            };
            let allowed = decision_request(Action::CallTool, &context)
                .map(|r| engine.decide(&r).verdict() != remit_policy::Verdict::Deny)
                .unwrap_or(false);
            if !allowed {
                continue;
            }
        }
        shown.push(listed.clone());
    }
    if !changed.is_empty() {
        let refusal = Refusal::gateway(
            jsonrpc::DENIED,
            "gw-description-changed",
            format!(
                "hidden: the description or input schema of {} changed since the server was blessed (possible rug pull); an operator must re-bless it",
                changed.join(", ")
            ),
        );
        // The refusal is recorded; the list is still answered without them.
        let _ = refuse(state, Some(caller), None, &facts, refusal, None).await;
    }
    Answer::Message(jsonrpc::result(id, json!({ "tools": shown })))
}

// Not split yet: this and `release_with` are the two hand-written copies of
// the stages that issue 23 replaces with one driver and per-kind stages;
// splitting either alone would only move the early returns around.
#[allow(clippy::too_many_lines)]
pub(super) async fn call_tool<S: Store>(
    state: &Gateway<S>,
    caller: &Caller,
    server: &McpServer,
    id: RequestId,
    params: Map<String, Value>,
    progress: Option<&super::progress::ProgressSink>,
) -> Answer {
    let config = state.gateway().config();
    let name = params
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    let args = params
        .get("arguments")
        .cloned()
        .unwrap_or_else(|| json!({}));
    // A name outside the MCP charset is never recorded or echoed: it may
    // hold a `/` (a third field in `<server>/<tool>`), controls or megabytes.
    let name_ok = jsonrpc::valid_tool_name(&name);
    let tool_id = format!(
        "{}/{}",
        server.id,
        if name_ok { name.as_str() } else { "?" }
    );
    let mut facts = Facts {
        tool: format!("mcp:{tool_id}"),
        ..Facts::default()
    };
    facts.args_hash = state.gateway().args_key().hash_json(&args).ok();
    let deny = |rule: &str, reason: String| Refusal::gateway(jsonrpc::DENIED, rule, reason);
    macro_rules! refuse_with {
        ($refusal:expr) => {
            return Answer::Message(
                refuse(state, Some(caller), Some(id), &facts, $refusal, None).await,
            )
        };
    }
    if name.is_empty() {
        refuse_with!(deny(
            "gw-invalid-call",
            "tools/call needs params.name (the tool)".into()
        ));
    }
    if !name_ok {
        refuse_with!(deny(
            "gw-invalid-tool-name",
            "tools/call params.name is not a valid MCP tool name (1-128 of A-Za-z0-9_.-)".into()
        ));
    }
    if !args.is_object() {
        refuse_with!(deny(
            "gw-invalid-call",
            "tools/call params.arguments must be a JSON object".into()
        ));
    }
    let shadow = config.shadow(caller.agent(), server.id.as_str());

    // One read of the server's pins serves the resource argument, the
    // blessing check and the policy's server-wide description hash.
    let registered = match blessed_tools(state, caller, &id, &facts, server).await {
        Ok(r) => r,
        Err(refused) => return refused,
    };
    let blessed = Id::parse("tool name", name.as_str())
        .ok()
        .and_then(|n| registered.tools.iter().find(|t| t.name == n).cloned());
    let resource = match call_resource(blessed.as_ref(), &args, &tool_id) {
        Ok(r) => r,
        Err(reason) => refuse_with!(deny("gw-resource-arg", reason)),
    };

    // Stage 2: authority. The remit must cover the call whole, its
    // resource included.
    let call = remit_token::Call {
        tool: &tool_id,
        resource,
        action: None,
        args: &args,
    };
    let authorized = remit_token::authorize_call(&caller.chain, &call);
    if let (Err(e), false) = (&authorized, shadow) {
        return not_covered(state, caller, id, &facts, &tool_id, e).await;
    }
    let mut would: Vec<(String, String)> = Vec::new();
    if let Err(e) = &authorized {
        would.push((
            "deny".into(),
            format!("the remit does not cover this call: {e}"),
        ));
    }
    let Some(tool) = blessed else {
        refuse_with!(deny(
            "gw-tool-not-blessed",
            format!(
                "tool {name:?} is not blessed on server {}; an operator must bless it",
                server.id
            )
        ))
    };

    // The pin: the upstream's current description must be the reviewed one.
    let (upstream, listed) = match upstream_tools(state, caller, id.clone(), server, &facts).await {
        Ok(found) => found,
        Err(refused) => return refused,
    };
    let tool_changed = listed
        .get(&name)
        .is_none_or(|(_, hash)| hash != tool.description_sha256);
    if tool_changed {
        refuse_with!(deny(
            "gw-description-changed",
            format!("the description or input schema of {tool_id} changed since it was blessed (possible rug pull); calls are refused until an operator re-blesses it")
        ));
    }

    // Stage 3: scan the arguments, then decide.
    let arg_bytes = serde_json::to_vec(&args).unwrap_or_default();
    let report = match state.scanner().scan(&arg_bytes) {
        Ok(r) => r,
        Err(e) => refuse_with!(deny(
            "gw-scan-failed",
            format!("the arguments could not be scanned: {e}")
        )),
    };
    count_findings(&report, "", &mut facts.findings);
    facts.class = Some(report.classification);
    if report.classification > tool.clearance {
        let reason = format!(
            "the arguments carry {} data ({}) and {tool_id} is cleared only for {}",
            report.classification,
            finding_names(&report),
            tool.clearance
        );
        if !shadow {
            refuse_with!(deny("gw-above-clearance", reason));
        }
        would.push(("deny".into(), reason));
    }
    let agent_id = match Id::parse("agent id", caller.agent()) {
        Ok(a) => a,
        Err(e) => refuse_with!(deny("gw-invalid-call", e.to_string())),
    };
    let window = risk_window(&config);
    let usage = match usage_before(state, caller, &id, &facts, window).await {
        Ok(u) => u,
        Err(refused) => return refused,
    };
    let tool_ref = match Id::parse("tool", tool_id.as_str()) {
        Ok(t) => t,
        Err(e) => refuse_with!(deny("gw-invalid-call", e.to_string())),
    };
    let mut context = CallContext {
        report: Some(&report),
        // The called tool's current hash is its pin (checked above) and
        // every other tool is judged by its own pin, so the server-wide
        // hash seen is the pinned one.
        description_hash: Some(registered.description_hash.clone()),
        ..CallContext::new(
            caller,
            &args,
            &tool_id,
            authorized.is_ok(),
            &usage,
            config.risk_budget,
            shadow,
        )
    };
    let engine = state.policy();
    let mut decision = match decision_request(Action::CallTool, &context) {
        Ok(r) => engine.decide(&r),
        Err(e) => refuse_with!(deny(
            "gw-invalid-request",
            format!("the call cannot be put to the policy: {e}")
        )),
    };
    // Only an escalated call is bound to an approval (the hash of the
    // exact call) and looks for a human decision on it.
    let escalated = decision.verdict() == remit_policy::Verdict::Escalate && !shadow;
    let bound = if escalated {
        let hash = call_hash(
            &caller.chain.leaf_claims().jti,
            server.id.as_str(),
            &name,
            &args,
        );
        match Id::parse("approval id", approval_id(&hash)) {
            Ok(approval) => Some((hash, approval)),
            Err(e) => refuse_with!(deny("gw-invalid-call", e.to_string())),
        }
    } else {
        None
    };
    let held = bound.as_ref().map(|(hash, approval)| HeldRequest {
        approval,
        hash,
        agent: &agent_id,
        tool: &tool_ref,
    });
    let mut use_approval = false;
    if let Some(held) = held {
        match hold::decided(state, caller, &id, &facts, held, &decision).await {
            Ok(true) => {
                context.approved = true;
                decision = match decision_request(Action::CallTool, &context) {
                    Ok(r) => engine.decide(&r),
                    Err(e) => refuse_with!(deny("gw-invalid-request", e)),
                };
                use_approval = true;
            }
            Ok(false) => {}
            Err(answer) => return answer,
        }
    }
    let ledger = ledger_decision(&decision, shadow);
    match decision.verdict() {
        remit_policy::Verdict::Allow => {}
        verdict if shadow => {
            would.push((
                format!("{verdict:?}").to_lowercase(),
                decision.explanation(),
            ));
        }
        remit_policy::Verdict::Deny => {
            let refusal = Refusal {
                kind: Kind::Deny,
                code: jsonrpc::DENIED,
                reason: recorded_reason(&decision),
                policy_ids: policy_ids(&decision),
                policy_version: Some(decision.policy_version().to_owned()),
            };
            refuse_with!(refusal);
        }
        remit_policy::Verdict::Escalate => {
            let summary = format!(
                "{} (for {}) calls {tool_id} (risk {}, arguments {}{}): {}",
                caller.agent(),
                caller.chain.leaf_claims().sub,
                tool.risk,
                report.classification.name(),
                findings_clause(&report),
                decision.explanation()
            );
            // INVARIANT: the verdict is Escalate only when the first decision
            // was (an approval never turns an allow into an escalation), and
            // then `held` was bound above.
            let Some(held) = held else {
                refuse_with!(deny(
                    "gw-invalid-call",
                    "the call escalated without an approval binding".into()
                ))
            };
            return hold::hold(state, caller, id, &facts, held, &decision, summary).await;
        }
    }

    // Stage 4: budgets (skipped in shadow mode, where nothing is enforced).
    if shadow {
        let observed = NewObservation {
            agent: agent_id.clone(),
            tool: tool_ref.clone(),
            argument_shape: shape(&args).to_string(),
            decision: match would.first() {
                Some((verdict, reason)) => format!("{verdict}: {reason}"),
                None => "allow".into(),
            },
            observed_at: i64::try_from(now()).unwrap_or(i64::MAX),
        };
        if let Err(e) = state.store().record_observation(&observed).await {
            return store_refusal(state, caller, id, &facts, &e).await;
        }
    } else {
        if let (true, Some(held)) = (use_approval, held) {
            if let Err(refusal) = hold::spend(state, held).await {
                refuse_with!(refusal);
            }
        }
        let cost = risk_cost(tool.risk);
        let risk = (cost > 0).then(|| RiskSpend {
            agent: agent_id.clone(),
            window_start: window,
            amount: cost,
            limit: i64::from(config.risk_budget),
        });
        if let Err(e) = consume_call(state, caller, window, risk.as_ref()).await {
            return match e {
                StoreError::StepsExhausted { .. } => {
                    refuse_with!(deny("gw-steps-exhausted", e.to_string()))
                }
                StoreError::RiskBudgetExhausted { .. } => {
                    refuse_with!(deny("gw-risk-budget", e.to_string()))
                }
                other => store_refusal(state, caller, id, &facts, &other).await,
            };
        }
    }

    // Stage 7 starts before stage 5: the call's receipt is queued now and
    // syncs while the upstream works; the answer waits for both.
    let event = receipt_event(Some(caller), Kind::Allow, &facts, Some(ledger));
    let call_receipt = match state.submit(event) {
        Ok(pending) => pending,
        Err(problem) => {
            return Answer::Message(jsonrpc::error(
                Some(id),
                ErrorCode::INTERNAL_ERROR,
                format!(
                    "the call was not forwarded because its receipt could not be recorded: {}",
                    problem
                ),
                None,
            ))
        }
    };

    // Stage 5: forward. Only the tool and its arguments go upstream.
    let forwarded = json!({ "name": name, "arguments": args });
    let holder = caller.chain.leaf_claims().class;
    let timeout = config.upstream_timeout;
    let forwarding =
        super::progress::forward(state, holder, &upstream, forwarded, timeout, progress);
    let result = match forwarding.await {
        Ok(r) => r,
        Err(e) => {
            // The call's receipt says it was allowed and sent; the refusal's
            // receipt, after it, says what became of it.
            let _ = call_receipt.durable().await;
            return forward_refusal(state, caller, id, &facts, &e).await;
        }
    };

    release(
        state,
        caller,
        id,
        facts,
        result,
        &context,
        Action::ReadResult,
        Some(call_receipt),
    )
    .await
}

/// The call's resource: the value of the blessed tool's resource argument
/// (`None` for a tool without one, or not blessed: refused later). A tool
/// that has one and a call that does not give it as a string is refused
/// with the reason: a resource check is never skipped by leaving it out.
fn call_resource<'a>(
    tool: Option<&remit_store::Tool>,
    args: &'a Value,
    tool_id: &str,
) -> Result<Option<&'a str>, String> {
    let Some(arg) = tool.and_then(|t| t.resource_arg.as_deref()) else {
        return Ok(None);
    };
    match args.get(arg) {
        Some(Value::String(value)) => Ok(Some(value.as_str())),
        Some(_) => Err(format!(
            "argument {arg:?} of {tool_id} is its resource and must be a string"
        )),
        None => Err(format!(
            "{tool_id} takes its resource from argument {arg:?}, which the call does not give"
        )),
    }
}

/// What the caller's leaf remit and agent used before this call (steps,
/// risk in `window`), as the policy is told; a refusal with a receipt when
/// the ids are unusable or the store fails.
pub(super) async fn usage_before<S: Store>(
    state: &Gateway<S>,
    caller: &Caller,
    id: &RequestId,
    facts: &Facts,
    window: i64,
) -> Result<Usage, Answer> {
    let ids = Id::parse("remit jti", caller.chain.leaf_claims().jti.as_str())
        .and_then(|leaf| Ok((leaf, Id::parse("agent id", caller.agent())?)));
    let (leaf, agent) = match ids {
        Ok(found) => found,
        Err(e) => {
            let refusal = Refusal::gateway(jsonrpc::DENIED, "gw-invalid-call", e.to_string());
            let message = refuse(state, Some(caller), Some(id.clone()), facts, refusal, None).await;
            return Err(Answer::Message(message));
        }
    };
    let ttl = state.gateway().config().cache_ttl;
    let cache = state.gateway().cache();
    match cache.usage(state.store(), &leaf, &agent, window, ttl).await {
        Ok(u) => Ok(u),
        Err(e) => Err(store_refusal(state, caller, id.clone(), facts, &e).await),
    }
}

/// The start of the risk window `now` falls in.
pub(super) fn risk_window(config: &GatewayConfig) -> i64 {
    let w = config.risk_window_secs.max(1);
    let now = now();
    i64::try_from(now - now % w).unwrap_or(0)
}

/// Uses one step of every remit along the chain, leaf first (a root's
/// `max_steps` bounds everything delegated from it), and the call's risk,
/// in one store round trip, all or nothing; what the store counted is
/// what the next call's policy sees. Links delegated offline are recorded
/// the first time they are seen.
pub(super) async fn consume_call<S: Store>(
    state: &Gateway<S>,
    caller: &Caller,
    window: i64,
    risk: Option<&RiskSpend>,
) -> Result<(), StoreError> {
    let chain = caller
        .chain
        .links()
        .iter()
        .rev()
        .map(|link| Id::parse("remit jti", link.claims().jti.as_str()))
        .collect::<Result<Vec<_>, _>>()?;
    let counted = match state.store().consume_call(&chain, risk).await {
        Err(StoreError::NotFound { what: "remit", .. }) => {
            record_links(state, caller).await?;
            state.store().consume_call(&chain, risk).await
        }
        done => done,
    }?;
    if let Some(leaf) = chain.first() {
        let ttl = state.gateway().config().cache_ttl;
        state.gateway().cache().counted(leaf, window, counted, ttl);
    }
    Ok(())
}

pub(super) async fn record_links<S: Store>(
    state: &Gateway<S>,
    caller: &Caller,
) -> Result<(), StoreError> {
    let mut parent: Option<Id> = None;
    for link in caller.chain.links() {
        let c = link.claims();
        let jti = Id::parse("remit jti", c.jti.as_str())?;
        match state.store().remit(&jti).await {
            Ok(_) => {}
            Err(StoreError::NotFound { .. }) => {
                let record = IssuedRemit {
                    jti: jti.clone(),
                    root_jti: Id::parse("remit jti", c.root.as_str())?,
                    parent_jti: parent.clone(),
                    holder_thumbprint: c.cnf.jkt.as_str().to_owned(),
                    sub: Id::parse("user (sub)", c.sub.as_str())?,
                    agent: Id::parse("agent id", c.act.sub.as_str())?,
                    issued_at: i64::try_from(c.iat).unwrap_or(i64::MAX),
                    expires_at: i64::try_from(c.exp).unwrap_or(i64::MAX),
                    max_steps: c.max_steps.map(|m| i64::try_from(m).unwrap_or(i64::MAX)),
                };
                match state.store().record_remit(&record).await {
                    Ok(()) | Err(StoreError::Duplicate { .. }) => {}
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
        parent = Some(jti);
    }
    Ok(())
}
