//! `/v1/agents` and `/v1/servers`: who may hold remits, and which MCP
//! servers and tools are blessed (pinned to a reviewed description hash).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
pub use remit_api::{AddServer, AddTool, RegisterAgent};
use remit_api::{AgentList, McpServerList, ToolList};
use remit_store::{
    Agent, Id, NewAgent, NewMcpServer, RevocationKind, RevocationTarget, ServerId, Store, Tool,
};
use remit_token::EcPublicJwk;
use serde_json::Value;

use crate::problem::{JsonBody, Problem};
use crate::receipts::events;
use crate::state::{now, now_ms, AppState};

/// Parses a public JWK sent by a client with every check of
/// [`EcPublicJwk`] (curve point, lengths, canonical base64url, `kty`/`crv`,
/// `alg`, no private members); each refusal is a 400 that names the check.
pub fn parse_public_jwk(value: &Value) -> Result<EcPublicJwk, Problem> {
    EcPublicJwk::from_value(value)
        .map(|jwk| jwk.bare())
        .map_err(|e| Problem::invalid(format!("public_jwk: {e}")))
}

/// The registered key of `agent`. A key stored before keys were fully
/// checked on the way in may not parse: that is the agent's registration
/// to fix, said as a 409, never a 500.
pub fn stored_agent_key(agent: &Agent) -> Result<EcPublicJwk, StoredKeyError> {
    EcPublicJwk::from_json(&agent.public_jwk).map_err(|error| StoredKeyError {
        agent: agent.id.as_str().to_owned(),
        error,
    })
}

/// A registered agent whose stored key is not a valid P-256 key.
#[derive(Debug, thiserror::Error)]
#[error("agent {agent:?} is registered with an invalid key ({error}); register it again with a valid P-256 public key")]
pub struct StoredKeyError {
    agent: String,
    error: remit_token::JwkError,
}

impl From<StoredKeyError> for Problem {
    fn from(e: StoredKeyError) -> Self {
        Problem::new(
            StatusCode::CONFLICT,
            "agent-key-invalid",
            "Agent key invalid",
            e.to_string(),
        )
    }
}

fn id(what: &'static str, value: &str) -> Result<Id, Problem> {
    Ok(Id::parse(what, value)?)
}

/// Longest display name or owner accepted, in bytes.
pub const MAX_LABEL_LEN: usize = 200;

/// Checks a free-text label a person reads (a display name, an owner):
/// non-blank, at most [`MAX_LABEL_LEN`] bytes, and no control characters
/// (C0, DEL, C1) or bidirectional formatting characters, which would be
/// stored and later printed verbatim to a terminal or a page, where they
/// can rewrite what an operator sees. The 400 names the first offender.
pub fn label(what: &str, value: String) -> Result<String, Problem> {
    if value.trim().is_empty() {
        return Err(Problem::invalid(format!("{what} must not be blank")));
    }
    if value.len() > MAX_LABEL_LEN {
        return Err(Problem::invalid(format!(
            "{what} is {} bytes; at most {MAX_LABEL_LEN} are accepted",
            value.len()
        )));
    }
    let bidi = |c: char| matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
    if let Some((at, c)) = value
        .char_indices()
        .find(|(_, c)| c.is_control() || bidi(*c))
    {
        return Err(Problem::invalid(format!(
            "{what} contains the control character U+{:04X} at byte {at}; names and owners are printed verbatim, so control and bidirectional formatting characters are refused",
            u32::from(c)
        )));
    }
    Ok(value)
}

fn stamp() -> i64 {
    i64::try_from(now()).unwrap_or(i64::MAX)
}

#[utoipa::path(post, path = "/v1/agents", tag = "registry", security(("admin_token" = [])),
    request_body = RegisterAgent,
    responses((status = 201, description = "Registered", body = remit_api::Agent)))]
/// `POST /v1/agents`: registers an agent with its public key.
pub async fn register_agent<S: Store>(
    State(state): State<AppState<S>>,
    JsonBody(body): JsonBody<RegisterAgent>,
) -> Result<(StatusCode, Json<remit_api::Agent>), Problem> {
    let jwk = parse_public_jwk(&body.public_jwk)?;
    if body.owner.trim().is_empty() {
        return Err(Problem::invalid(
            "owner must name who is accountable for the agent",
        ));
    }
    let owner = label("owner", body.owner)?;
    let name = label("name", body.name.unwrap_or_else(|| body.id.clone()))?;
    let public_jwk =
        serde_json::to_string(&jwk).map_err(|e| Problem::internal("encoding the agent key", &e))?;
    let agent = NewAgent {
        id: id("agent id", &body.id)?,
        name,
        public_jwk,
        key_thumbprint: jwk.thumbprint().as_str().to_owned(),
        owner,
        risk_tier: body.risk_tier.into(),
    };
    let agent = state.store().register_agent(&agent, stamp()).await?;
    state.registry_changed().await;
    let receipt = state
        .record(events::agent_registered(agent.id.as_str(), now_ms()))
        .await?;
    let mut out = remit_api::Agent::from(&agent);
    out.receipt_id = Some(receipt);
    Ok((StatusCode::CREATED, Json(out)))
}

#[utoipa::path(get, path = "/v1/agents", tag = "registry", security(("admin_token" = [])),
    responses((status = 200, description = "Every registered agent", body = remit_api::AgentList)))]
/// `GET /v1/agents`.
pub async fn list_agents<S: Store>(
    State(state): State<AppState<S>>,
) -> Result<Json<AgentList>, Problem> {
    let agents = state.store().agents().await?;
    Ok(Json(AgentList {
        agents: agents.iter().map(remit_api::Agent::from).collect(),
    }))
}

#[utoipa::path(get, path = "/v1/agents/{id}", tag = "registry", security(("admin_token" = [])),
    params(("id" = String, Path, description = "The agent id", pattern = "^[A-Za-z0-9.:_@/-]{1,200}$")),
    responses((status = 200, description = "The agent", body = remit_api::Agent)))]
/// `GET /v1/agents/{id}`.
pub async fn get_agent<S: Store>(
    State(state): State<AppState<S>>,
    Path(agent): Path<String>,
) -> Result<Json<remit_api::Agent>, Problem> {
    let agent = state.store().agent(&id("agent id", &agent)?).await?;
    Ok(Json(remit_api::Agent::from(&agent)))
}

#[utoipa::path(post, path = "/v1/agents/{id}/disable", tag = "registry", security(("admin_token" = [])),
    params(("id" = String, Path, description = "The agent id", pattern = "^[A-Za-z0-9.:_@/-]{1,200}$")),
    responses((status = 200, description = "Disabled, and everything it holds revoked", body = remit_api::Agent)))]
/// `POST /v1/agents/{id}/disable`: disables the agent and revokes every
/// remit it holds or delegated, so nothing it was given keeps working.
pub async fn disable_agent<S: Store>(
    State(state): State<AppState<S>>,
    Path(agent): Path<String>,
) -> Result<Json<remit_api::Agent>, Problem> {
    let agent_id = id("agent id", &agent)?;
    let agent = state.store().disable_agent(&agent_id, stamp()).await?;
    let target = RevocationTarget {
        kind: RevocationKind::Agent,
        value: agent_id,
    };
    let revoked = state
        .store()
        .revoke(
            &target,
            "agent disabled",
            &crate::oidc::admin_name(),
            stamp(),
        )
        .await?;
    state.refresh_revocations().await?;
    state.registry_changed().await;
    if revoked.newly_revoked {
        crate::metrics::revocation("agent");
    }
    let receipt = state
        .record(events::agent_disabled(agent.id.as_str(), now_ms()))
        .await?;
    state.record_propagated(&revoked.propagated).await;
    let mut out = remit_api::Agent::from(&agent);
    out.revocation_epoch = Some(revoked.revocation.epoch);
    out.receipt_id = Some(receipt);
    Ok(Json(out))
}

#[utoipa::path(post, path = "/v1/servers", tag = "registry", security(("admin_token" = [])),
    request_body = AddServer,
    responses((status = 201, description = "Blessed", body = remit_api::McpServer)))]
/// `POST /v1/servers`: blesses an MCP server.
pub async fn add_server<S: Store>(
    State(state): State<AppState<S>>,
    JsonBody(body): JsonBody<AddServer>,
) -> Result<(StatusCode, Json<remit_api::McpServer>), Problem> {
    if !(body.url.starts_with("https://")
        || body.url.starts_with("http://")
        || body.url.starts_with("stdio:"))
    {
        return Err(Problem::invalid(format!(
            "url {:?} must start with https://, http:// or stdio: (a command the gateway runs)",
            body.url
        )));
    }
    let server = NewMcpServer {
        id: ServerId::parse(body.id.as_str())?,
        name: label("name", body.name.unwrap_or_else(|| body.id.clone()))?,
        url: body.url,
        clearance: body.clearance.into(),
    };
    let server = state.store().add_server(&server, stamp()).await?;
    state.registry_changed().await;
    let receipt = state
        .record(events::server_added(server.id.as_str(), now_ms()))
        .await?;
    let mut out = remit_api::McpServer::from(&server);
    out.receipt_id = Some(receipt);
    Ok((StatusCode::CREATED, Json(out)))
}

#[utoipa::path(post, path = "/v1/servers/{id}/disable", tag = "registry", security(("admin_token" = [])),
    params(("id" = String, Path, description = "The server id", pattern = "^[A-Za-z0-9.:_@/-]{1,200}$")),
    responses((status = 200, description = "Disabled: the gateway refuses every call to it", body = remit_api::McpServer)))]
/// `POST /v1/servers/{id}/disable`: the gateway refuses every call to the
/// server from the next call on (on other replicas within the gateway's
/// cache TTL); its pins stay for an audit. Disabling twice changes nothing.
pub async fn disable_server<S: Store>(
    State(state): State<AppState<S>>,
    Path(server): Path<String>,
) -> Result<Json<remit_api::McpServer>, Problem> {
    let server = state
        .store()
        .disable_server(&id("server id", &server)?, stamp())
        .await?;
    state.registry_changed().await;
    let receipt = state
        .record(events::server_disabled(server.id.as_str(), now_ms()))
        .await?;
    let mut out = remit_api::McpServer::from(&server);
    out.receipt_id = Some(receipt);
    Ok(Json(out))
}

#[utoipa::path(get, path = "/v1/servers", tag = "registry", security(("admin_token" = [])),
    responses((status = 200, description = "Every blessed server", body = remit_api::McpServerList)))]
/// `GET /v1/servers`.
pub async fn list_servers<S: Store>(
    State(state): State<AppState<S>>,
) -> Result<Json<McpServerList>, Problem> {
    let servers = state.store().servers().await?;
    Ok(Json(McpServerList {
        servers: servers.iter().map(remit_api::McpServer::from).collect(),
    }))
}

#[utoipa::path(post, path = "/v1/servers/{id}/tools", tag = "registry", security(("admin_token" = [])),
    params(("id" = String, Path, description = "The server id", pattern = "^[A-Za-z0-9.:_@/-]{1,200}$")),
    request_body = AddTool,
    responses((status = 201, description = "Pinned", body = remit_api::Tool)))]
/// `POST /v1/servers/{id}/tools`: pins a tool of a blessed server.
pub async fn add_tool<S: Store>(
    State(state): State<AppState<S>>,
    Path(server): Path<String>,
    JsonBody(body): JsonBody<AddTool>,
) -> Result<(StatusCode, Json<remit_api::Tool>), Problem> {
    let hash = match (&body.description, &body.description_sha256) {
        (Some(text), None) => hex::encode(crate::setup::sha256(text.as_bytes())),
        (None, Some(hash))
            if hash.len() == 64
                && hash
                    .bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
        {
            hash.clone()
        }
        (None, Some(_)) => {
            return Err(Problem::invalid(
                "description_sha256 must be 64 lowercase hex digits",
            ))
        }
        _ => return Err(Problem::invalid(
            "give exactly one of description or description_sha256 to pin the reviewed description",
        )),
    };
    let tool = Tool {
        server: id("server id", &server)?,
        name: id("tool name", &body.name)?,
        risk: body.risk.into(),
        clearance: body.clearance.into(),
        description_sha256: hash,
        created_at: stamp(),
        resource_arg: None,
    };
    let tool = state.store().add_tool(&tool).await?;
    state.registry_changed().await;
    let receipt = state
        .record(events::tool_added(
            tool.server.as_str(),
            tool.name.as_str(),
            now_ms(),
        ))
        .await?;
    let mut out = remit_api::Tool::from(&tool);
    out.receipt_id = Some(receipt);
    Ok((StatusCode::CREATED, Json(out)))
}

#[utoipa::path(get, path = "/v1/servers/{id}/tools", tag = "registry", security(("admin_token" = [])),
    params(("id" = String, Path, description = "The server id", pattern = "^[A-Za-z0-9.:_@/-]{1,200}$")),
    responses((status = 200, description = "The server's pinned tools", body = remit_api::ToolList)))]
/// `GET /v1/servers/{id}/tools`.
pub async fn list_tools<S: Store>(
    State(state): State<AppState<S>>,
    Path(server): Path<String>,
) -> Result<Json<ToolList>, Problem> {
    let tools = state.store().tools(&id("server id", &server)?).await?;
    Ok(Json(ToolList {
        tools: tools.iter().map(remit_api::Tool::from).collect(),
    }))
}
