//! Blessing: the gateway lists an upstream's tools and pins each one's
//! description and input schema hash, so a later change (a "rug pull")
//! hides the tool and refuses calls to it until an operator blesses again.
//! Prompts are pinned the same way (description and arguments): a changed
//! or new prompt is hidden from `prompts/list` and `prompts/get` is refused
//! until the next blessing.

use crate::Gateway;
use axum::extract::{Path, State};
use axum::Json;
pub use remit_api::{Bless, SetTool};
use remit_api::{Blessed, BlessedTool, PinnedPrompt};
use remit_store::{Id, McpServer, PromptPin, RiskTier, Store, StoreError, Tool};
use serde_json::Value;

use super::pipeline::list_prompts;
use super::upstream::Upstream;
use crate::pins::{prompt_hash, tool_hash};
use crate::problem::{JsonBody, Problem};
use remit_runtime::receipts::events;
use remit_runtime::state::{now, now_ms};

/// Names a resource argument may have: 1-64 of `A-Za-z0-9_.-`.
pub fn valid_resource_arg(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

/// The arguments a tool's resource is looked for in, first match wins.
pub const RESOURCE_ARGS: [&str; 4] = ["path", "uri", "url", "file"];

/// The resource argument a tool gets when first blessed: the first of
/// [`RESOURCE_ARGS`] its input schema declares as a string property.
pub fn default_resource_arg(tool: &Value) -> Option<String> {
    let properties = tool.get("inputSchema")?.get("properties")?.as_object()?;
    RESOURCE_ARGS
        .iter()
        .find(|name| {
            properties
                .get(**name)
                .and_then(|p| p.get("type"))
                .is_some_and(|t| t == "string")
        })
        .map(|name| (*name).to_owned())
}

/// An optional JSON body: empty means the defaults.
pub fn optional_json<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, Problem> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| Problem::invalid(format!("request body: {e}")))
}

fn stamp() -> i64 {
    i64::try_from(now()).unwrap_or(i64::MAX)
}

/// `POST /v1/servers/{id}/bless`: lists the upstream's tools and pins them.
/// Tools already pinned keep their risk and clearance and get the current
/// hash (this is how a changed description is re-approved); new tools get
/// the defaults. One receipt per pinned tool.
///
/// This contacts the server's upstream (an HTTP request, or spawning its
/// `stdio:` command): `scripts/schemathesis` leaves it out of the fuzz run.
#[utoipa::path(post, path = "/v1/servers/{id}/bless", tag = "gateway", security(("admin_token" = [])),
    params(("id" = String, Path, description = "The server id", pattern = "^[A-Za-z0-9.:_@/-]{1,200}$")),
    request_body(content = Option<Bless>, description = "Optional; an empty body takes the defaults", content_type = "application/json"),
    responses(
        (status = 200, description = "The upstream's tools, pinned", body = remit_api::Blessed),
        (status = 502, description = "The upstream could not be reached or did not list its tools", body = remit_api::Problem, content_type = "application/problem+json"),
    ))]
pub async fn bless<S: Store>(
    State(state): State<Gateway<S>>,
    Path(server): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Blessed>, Problem> {
    let body: Bless = optional_json(&body)?;
    let server = state
        .store()
        .server(&Id::parse("server id", server)?)
        .await?;
    let config = state.gateway().config();
    let upstream = state
        .gateway()
        .upstreams()
        .get(server.id.as_str(), &server.url)
        .map_err(|e| Problem::invalid(e.to_string()))?;
    // Ask the upstream now, not a cached list.
    let listed = upstream
        .tools(std::time::Duration::ZERO, config.upstream_timeout)
        .await
        .map_err(|e| {
            Problem::new(
                axum::http::StatusCode::BAD_GATEWAY,
                "upstream-failed",
                "Upstream failed",
                format!("listing the tools of {}: {e}", server.id),
            )
        })?;
    if let Some(bad) = body
        .tools
        .iter()
        .flatten()
        .find(|n| !super::jsonrpc::valid_tool_name(n))
    {
        return Err(Problem::invalid(format!(
            "tools: {:?} is not an MCP tool name (1-128 of A-Za-z0-9_.-)",
            bad.chars().take(64).collect::<String>()
        )));
    }
    let mut pinned = Vec::new();
    let mut unnamed = 0u32;
    for tool in listed.iter() {
        // A name outside the MCP charset is never pinned, so never offered
        // or called: `<server>/<tool>` stays two fields.
        let Some(name) = tool
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| super::jsonrpc::valid_tool_name(n))
        else {
            unnamed += 1;
            continue;
        };
        if body
            .tools
            .as_ref()
            .is_some_and(|only| !only.iter().any(|n| n == name))
        {
            continue;
        }
        let name = Id::parse("tool name", name)?;
        let existing = match state.store().tool(&server.id, &name).await {
            Ok(t) => Some(t),
            Err(StoreError::NotFound { .. }) => None,
            Err(e) => return Err(e.into()),
        };
        let record = Tool {
            server: server.id.clone(),
            name,
            risk: existing
                .as_ref()
                .map_or(body.risk.map_or(RiskTier::Medium, Into::into), |t| t.risk),
            clearance: existing
                .as_ref()
                .map_or(body.clearance.map_or(server.clearance, Into::into), |t| {
                    t.clearance
                }),
            description_sha256: tool_hash(tool),
            created_at: existing.as_ref().map_or_else(stamp, |t| t.created_at),
            // A tool pinned before keeps what it had (an operator may have
            // changed it); a new one takes its schema's default.
            resource_arg: existing
                .as_ref()
                .map_or_else(|| default_resource_arg(tool), |t| t.resource_arg.clone()),
        };
        let stored = state.store().set_tool(&record).await?;
        let receipt = state
            .record(events::tool_added(
                stored.server.as_str(),
                stored.name.as_str(),
                now_ms(),
            ))
            .await?;
        let mut tool = remit_api::Tool::from(&stored);
        tool.receipt_id = Some(receipt);
        pinned.push(BlessedTool {
            tool,
            repinned: existing.is_some_and(|t| t.description_sha256 != stored.description_sha256),
        });
    }
    let prompts = pin_prompts(&state, &server, &upstream, config.upstream_timeout).await;
    // The tools pinned above count even when the prompts could not be.
    state.reload_policy().await?;
    let prompts = prompts?;
    Ok(Json(Blessed {
        server: server.id.as_str().to_owned(),
        tools: pinned,
        prompts,
        refused_names: unnamed,
    }))
}

/// Pins every prompt the upstream lists now (an upstream without prompts
/// has none to pin): the hash of its description and arguments, one
/// receipt each. A prompt whose name is not a valid id cannot be pinned, so
/// the gateway never offers it.
async fn pin_prompts<S: Store>(
    state: &Gateway<S>,
    server: &McpServer,
    upstream: &Upstream,
    timeout: std::time::Duration,
) -> Result<Vec<PinnedPrompt>, Problem> {
    let listed = list_prompts(upstream, timeout).await.map_err(|e| {
        Problem::new(
            axum::http::StatusCode::BAD_GATEWAY,
            "upstream-failed",
            "Upstream failed",
            format!("listing the prompts of {}: {e}", server.id),
        )
    })?;
    let mut pinned = Vec::new();
    for prompt in &listed {
        let Some(Ok(name)) = prompt
            .get("name")
            .and_then(Value::as_str)
            .map(|n| Id::parse("prompt name", n))
        else {
            continue;
        };
        let stored = state
            .store()
            .set_prompt(&PromptPin {
                server: server.id.clone(),
                name,
                description_sha256: prompt_hash(prompt),
                pinned_at: stamp(),
            })
            .await?;
        let receipt = state
            .record(events::prompt_added(
                stored.server.as_str(),
                stored.name.as_str(),
                now_ms(),
            ))
            .await?;
        pinned.push(PinnedPrompt {
            name: stored.name.as_str().to_owned(),
            description_sha256: stored.description_sha256,
            receipt_id: receipt,
        });
    }
    Ok(pinned)
}

/// `GET /v1/servers/{id}/tools/{tool}`.
#[utoipa::path(get, path = "/v1/servers/{id}/tools/{tool}", tag = "gateway", security(("admin_token" = [])),
    params(
        ("id" = String, Path, description = "The server id", pattern = "^[A-Za-z0-9.:_@/-]{1,200}$"),
        ("tool" = String, Path, description = "The tool name", pattern = "^[A-Za-z0-9.:_@/-]{1,200}$"),
    ),
    responses((status = 200, description = "The pinned tool", body = remit_api::Tool)))]
pub async fn show_tool<S: Store>(
    State(state): State<Gateway<S>>,
    Path((server, tool)): Path<(String, String)>,
) -> Result<Json<remit_api::Tool>, Problem> {
    let tool = state
        .store()
        .tool(
            &Id::parse("server id", server)?,
            &Id::parse("tool name", tool)?,
        )
        .await?;
    Ok(Json(remit_api::Tool::from(&tool)))
}

#[utoipa::path(patch, path = "/v1/servers/{id}/tools/{tool}", tag = "gateway", security(("admin_token" = [])),
    params(
        ("id" = String, Path, description = "The server id", pattern = "^[A-Za-z0-9.:_@/-]{1,200}$"),
        ("tool" = String, Path, description = "The tool name", pattern = "^[A-Za-z0-9.:_@/-]{1,200}$"),
    ),
    request_body = SetTool,
    responses((status = 200, description = "The tool with its new risk, clearance or resource argument", body = remit_api::Tool)))]
/// `PATCH /v1/servers/{id}/tools/{tool}`: sets a pinned tool's risk,
/// clearance or resource argument (its pinned hash is unchanged).
pub async fn set_tool<S: Store>(
    state: State<Gateway<S>>,
    path: Path<(String, String)>,
    body: JsonBody<SetTool>,
) -> Result<Json<remit_api::Tool>, Problem> {
    update_tool(state, path, body).await
}

#[utoipa::path(post, path = "/v1/servers/{id}/tools/{tool}", tag = "gateway", security(("admin_token" = [])),
    params(
        ("id" = String, Path, description = "The server id", pattern = "^[A-Za-z0-9.:_@/-]{1,200}$"),
        ("tool" = String, Path, description = "The tool name", pattern = "^[A-Za-z0-9.:_@/-]{1,200}$"),
    ),
    request_body = SetTool,
    responses((status = 200, description = "The tool with its new risk, clearance or resource argument", body = remit_api::Tool)))]
/// `POST /v1/servers/{id}/tools/{tool}`: the same as `PATCH`, for clients
/// that cannot send `PATCH`.
pub async fn set_tool_post<S: Store>(
    state: State<Gateway<S>>,
    path: Path<(String, String)>,
    body: JsonBody<SetTool>,
) -> Result<Json<remit_api::Tool>, Problem> {
    update_tool(state, path, body).await
}

async fn update_tool<S: Store>(
    State(state): State<Gateway<S>>,
    Path((server, tool)): Path<(String, String)>,
    JsonBody(body): JsonBody<SetTool>,
) -> Result<Json<remit_api::Tool>, Problem> {
    if body.risk.is_none() && body.clearance.is_none() && body.resource_arg.is_none() {
        return Err(Problem::invalid("give risk, clearance or resource_arg"));
    }
    if let Some(Some(arg)) = &body.resource_arg {
        if !valid_resource_arg(arg) {
            return Err(Problem::invalid(
                "resource_arg must be an argument name of 1-64 of A-Za-z0-9_.- (or null to clear it)",
            ));
        }
    }
    let mut record = state
        .store()
        .tool(
            &Id::parse("server id", server)?,
            &Id::parse("tool name", tool)?,
        )
        .await?;
    if let Some(risk) = body.risk {
        record.risk = risk.into();
    }
    if let Some(clearance) = body.clearance {
        record.clearance = clearance.into();
    }
    if let Some(arg) = body.resource_arg {
        record.resource_arg = arg;
    }
    let stored = state.store().set_tool(&record).await?;
    let receipt = state
        .record(events::tool_added(
            stored.server.as_str(),
            stored.name.as_str(),
            now_ms(),
        ))
        .await?;
    state.reload_policy().await?;
    let mut out = remit_api::Tool::from(&stored);
    out.receipt_id = Some(receipt);
    Ok(Json(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_default_resource_argument_is_the_first_string_one_the_schema_declares() {
        let tool = |props: Value| json!({"name": "t", "inputSchema": {"type": "object", "properties": props}});
        assert_eq!(
            default_resource_arg(&tool(
                json!({"url": {"type": "string"}, "path": {"type": "string"}})
            )),
            Some("path".into())
        );
        assert_eq!(
            default_resource_arg(&tool(
                json!({"path": {"type": "array"}, "uri": {"type": "string"}})
            )),
            Some("uri".into())
        );
        assert_eq!(
            default_resource_arg(&tool(json!({"text": {"type": "string"}}))),
            None
        );
        assert_eq!(default_resource_arg(&json!({"name": "t"})), None);
    }

    #[test]
    fn the_tool_hash_covers_description_and_schema_but_not_key_order() {
        let a = json!({"name":"echo","description":"Echo","inputSchema":{"type":"object","properties":{"a":{},"b":{}}}});
        let b = json!({"inputSchema":{"properties":{"b":{},"a":{}},"type":"object"},"description":"Echo","name":"echo"});
        let c = json!({"name":"echo","description":"Echo!","inputSchema":{"type":"object","properties":{"a":{},"b":{}}}});
        assert_eq!(tool_hash(&a), tool_hash(&b));
        assert_ne!(tool_hash(&a), tool_hash(&c));
    }
}
