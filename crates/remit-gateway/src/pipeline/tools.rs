//! `tools/list`, and `tools/call` as a request kind of the one driver
//! ([`ToolCall`]): decided on its arguments before it goes out
//! (`call_tool`), its result decided again (`read_result`) on the way back.

use std::sync::Arc;

use remit_policy::Action;
use remit_scan::ScanReport;
use remit_store::{Id, Store, Tool};
use serde_json::{json, Map, Value};

use super::context::{call_hash, decision_request, findings_clause, shape, CallContext, Content};
use super::driver::{Ask, Cx, Pinned, Point, RequestKind};
use super::stop::Stop;
use super::{Answer, Facts, Refusal};
use crate::cache::BlessedTools;
use crate::jsonrpc;
use crate::upstream::{ToolList, Upstream};

/// The server's blessed tools and their pins (cached).
async fn blessed_tools<S: Store>(cx: &Cx<'_, S>) -> Result<Arc<BlessedTools>, Stop> {
    let cache = cx.state.gateway().cache();
    let tools = cache.tools(cx.state.store(), &cx.server.id, cx.config.cache_ttl);
    Ok(tools.await?)
}

/// The server's upstream and its current tool list (cached for
/// `tools_cache_ttl`).
async fn upstream_tools<S: Store>(cx: &Cx<'_, S>) -> Result<(Arc<Upstream>, Arc<ToolList>), Stop> {
    let upstream = upstream_for(cx)?;
    let tools = upstream
        .tools(cx.config.tools_cache_ttl, cx.config.upstream_timeout)
        .await?;
    Ok((upstream, tools))
}

/// The server's upstream connection (a url the gateway cannot use stops
/// the request).
pub(super) fn upstream_for<S: Store>(cx: &Cx<'_, S>) -> Result<Arc<Upstream>, Stop> {
    let upstreams = cx.state.gateway().upstreams();
    Ok(upstreams.get(cx.server.id.as_str(), &cx.server.url)?)
}

/// `tools/list`: the upstream's tools the remit grants, whose pins match
/// and which the policy would not refuse outright; changed ones are
/// hidden with a `gw-description-changed` receipt.
pub(super) async fn list_tools<S: Store>(cx: &Cx<'_, S>) -> Answer {
    let facts = Facts {
        tool: format!("mcp:{}:tools/list", cx.server.id),
        ..Facts::default()
    };
    let listed = async { Ok::<_, Stop>((upstream_tools(cx).await?.1, blessed_tools(cx).await?)) };
    let (tools, registered) = match listed.await {
        Ok(found) => found,
        Err(stop) => return stop.answer(cx, &facts).await,
    };
    let (mut shown, mut changed) = (Vec::new(), Vec::new());
    for tool in &registered.tools {
        let Some((listed, hash)) = tools.get(tool.name.as_str()) else {
            continue;
        };
        if hash != tool.description_sha256 {
            changed.push(tool.name.to_string());
            continue;
        }
        if cx.shadow || offered(cx, &registered, tool) {
            shown.push(listed.clone());
        }
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
        let _ = super::refuse(cx.state, Some(cx.caller), None, &facts, refusal, None).await;
    }
    Answer::Message(jsonrpc::result(cx.id.clone(), json!({ "tools": shown })))
}

/// Whether `tools/list` shows a pinned tool: the remit grants it and the
/// policy would not refuse a call to it outright.
fn offered<S: Store>(cx: &Cx<'_, S>, registered: &BlessedTools, tool: &Tool) -> bool {
    let tool_id = format!("{}/{}", cx.server.id, tool.name);
    let grants = &cx.caller.chain.leaf_claims().authorization_details;
    if !grants.iter().any(|g| g.covers_tool(&tool_id)) {
        return false;
    }
    let empty = json!({});
    let context = CallContext {
        // Shown only while its pin matches, so the server-wide hash seen
        // is the pinned one.
        description_hash: Some(registered.description_hash.clone()),
        ..CallContext::new(
            cx.caller,
            &empty,
            &tool_id,
            true,
            &remit_store::Usage::default(),
            cx.config.risk_budget,
            cx.shadow,
        )
    };
    decision_request(Action::CallTool, &context)
        .map(|r| cx.state.policy().decide(&r).verdict() != remit_policy::Verdict::Deny)
        .unwrap_or(false)
}

/// A `tools/call`: the tool, its arguments, its resource (the value of
/// the argument its blessing names) and the server's pins.
pub(super) struct ToolCall {
    name: String,
    tool_id: String,
    args: Value,
    resource: Option<String>,
    registered: Arc<BlessedTools>,
}

impl ToolCall {
    /// Reads a `tools/call` from its params: the receipt's facts, and the
    /// call or why it stops. A name outside the MCP charset is never
    /// recorded or echoed: it may hold a `/` (a third field in
    /// `<server>/<tool>`), controls or megabytes.
    pub(super) async fn parse<S: Store>(
        cx: &Cx<'_, S>,
        params: Map<String, Value>,
    ) -> (Facts, Result<Self, Stop>) {
        let name = params
            .get("name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let args = params
            .get("arguments")
            .cloned()
            .unwrap_or_else(|| json!({}));
        let name_ok = jsonrpc::valid_tool_name(&name);
        let shown = if name_ok { name.as_str() } else { "?" };
        let tool_id = format!("{}/{shown}", cx.server.id);
        let facts = Facts {
            tool: format!("mcp:{tool_id}"),
            args_hash: cx.state.gateway().args_key().hash_json(&args).ok(),
            ..Facts::default()
        };
        let parsed = Self::read(cx, name, name_ok, tool_id, args).await;
        (facts, parsed)
    }

    async fn read<S: Store>(
        cx: &Cx<'_, S>,
        name: String,
        name_ok: bool,
        tool_id: String,
        args: Value,
    ) -> Result<Self, Stop> {
        if name.is_empty() {
            return Err(Stop::deny(
                "gw-invalid-call",
                "tools/call needs params.name (the tool)",
            ));
        }
        if !name_ok {
            return Err(Stop::deny(
                "gw-invalid-tool-name",
                "tools/call params.name is not a valid MCP tool name (1-128 of A-Za-z0-9_.-)",
            ));
        }
        if !args.is_object() {
            return Err(Stop::deny(
                "gw-invalid-call",
                "tools/call params.arguments must be a JSON object",
            ));
        }
        // One read of the server's pins serves the resource argument, the
        // blessing check and the policy's server-wide description hash.
        let registered = blessed_tools(cx).await?;
        let resource = call_resource(Self::blessed_in(&registered, &name), &args, &tool_id)
            .map_err(|reason| Stop::deny("gw-resource-arg", reason))?
            .map(str::to_owned);
        Ok(Self {
            name,
            tool_id,
            args,
            resource,
            registered,
        })
    }

    /// The blessed entry of `name`, if it is blessed.
    fn blessed_in<'r>(registered: &'r BlessedTools, name: &str) -> Option<&'r Tool> {
        let name = Id::parse("tool name", name).ok()?;
        registered.tools.iter().find(|t| t.name == name)
    }
}

impl RequestKind for ToolCall {
    fn tool_id(&self) -> &str {
        &self.tool_id
    }

    fn noun(&self) -> &str {
        "call"
    }

    fn args(&self) -> &Value {
        &self.args
    }

    fn call(&self) -> remit_token::Call<'_> {
        remit_token::Call {
            tool: &self.tool_id,
            resource: self.resource.as_deref(),
            action: None,
            args: &self.args,
        }
    }

    /// The tool must be blessed, and the upstream's current description
    /// must be the reviewed one.
    async fn pin<S: Store>(&self, cx: &Cx<'_, S>) -> Result<Pinned, Stop> {
        let Some(tool) = Self::blessed_in(&self.registered, &self.name) else {
            return Err(Stop::deny(
                "gw-tool-not-blessed",
                format!(
                    "tool {:?} is not blessed on server {}; an operator must bless it",
                    self.name, cx.server.id
                ),
            ));
        };
        let (upstream, listed) = upstream_tools(cx).await?;
        let changed = listed
            .get(&self.name)
            .is_none_or(|(_, hash)| hash != tool.description_sha256);
        if changed {
            return Err(Stop::deny(
                "gw-description-changed",
                format!("the description or input schema of {} changed since it was blessed (possible rug pull); calls are refused until an operator re-blesses it", self.tool_id),
            ));
        }
        Ok(Pinned {
            upstream,
            risk: tool.risk,
            clearance: Some(tool.clearance),
            description_hash: Some(self.registered.description_hash.clone()),
        })
    }

    fn payload(&self) -> Option<&Value> {
        Some(&self.args)
    }

    fn request_ask(&self) -> Option<Ask> {
        Some(Ask {
            action: Action::CallTool,
            point: Point::Request,
            hold: true,
            observe: true,
        })
    }

    /// A result is withheld, never held, when the policy does not allow it.
    fn answer_ask(&self) -> Ask {
        Ask {
            action: Action::ReadResult,
            point: Point::Answer,
            hold: false,
            observe: false,
        }
    }

    fn content(&self) -> Option<Content<'_>> {
        None
    }

    fn binding(&self, leaf_jti: &str, server: &str) -> String {
        call_hash(leaf_jti, server, &self.name, &self.args)
    }

    fn summary(&self, report: &ScanReport, pinned: &Pinned) -> String {
        format!(
            "calls {} (risk {}, arguments {}{})",
            self.tool_id,
            pinned.risk,
            report.classification.name(),
            findings_clause(report)
        )
    }

    fn shape(&self) -> Value {
        shape(&self.args)
    }

    fn forwarded(&self) -> (&'static str, Value) {
        let params = json!({ "name": self.name, "arguments": self.args });
        ("tools/call", params)
    }
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
