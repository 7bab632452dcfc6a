//! `/v1/agents` and `/v1/servers`: who may hold remits, and which MCP
//! servers and tools are blessed (pinned to a reviewed description hash).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use remit_store::{
    Agent, Classification, ClassificationText, Id, McpServer, NewAgent, NewMcpServer,
    RevocationKind, RevocationTarget, RiskTier, ServerId, Store, Tool,
};
use remit_token::EcPublicJwk;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::problem::{JsonBody, Problem};
use crate::receipts::events;
use crate::state::{now, now_ms, AppState};

/// Body of `POST /v1/agents`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterAgent {
    /// The agent's identifier (appears as `act.sub` in its remits).
    #[schema(pattern = "^[A-Za-z0-9.:_@/-]{1,200}$")]
    pub id: String,
    /// A human-readable name; defaults to the id.
    #[serde(default)]
    pub name: Option<String>,
    /// Its public P-256 key as a JWK object.
    #[schema(value_type = Object)]
    pub public_jwk: Value,
    /// Who is accountable for it.
    pub owner: String,
    /// `low`, `medium`, `high` or `critical`.
    #[schema(value_type = crate::gateway::schema::RiskTier)]
    pub risk_tier: RiskTier,
}

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

/// An agent as the API shows it.
pub fn agent_json(agent: &Agent) -> Value {
    let jwk: Value = serde_json::from_str(&agent.public_jwk).unwrap_or(Value::Null);
    json!({
        "id": agent.id.as_str(),
        "name": agent.name,
        "public_jwk": jwk,
        "key_thumbprint": agent.key_thumbprint,
        "owner": agent.owner,
        "risk_tier": agent.risk_tier,
        "status": agent.status,
        "created_at": agent.created_at,
        "updated_at": agent.updated_at,
    })
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
    responses((status = 201, description = "Registered", body = crate::gateway::schema::Agent)))]
/// `POST /v1/agents`: registers an agent with its public key.
pub async fn register_agent<S: Store>(
    State(state): State<AppState<S>>,
    JsonBody(body): JsonBody<RegisterAgent>,
) -> Result<(StatusCode, Json<Value>), Problem> {
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
        risk_tier: body.risk_tier,
    };
    let agent = state.store().register_agent(&agent, stamp()).await?;
    state.registry_changed().await;
    let receipt = state
        .record(events::agent_registered(agent.id.as_str(), now_ms()))
        .await?;
    let mut out = agent_json(&agent);
    out["receipt_id"] = json!(receipt);
    Ok((StatusCode::CREATED, Json(out)))
}

#[utoipa::path(get, path = "/v1/agents", tag = "registry", security(("admin_token" = [])),
    responses((status = 200, description = "Every registered agent", body = crate::gateway::schema::AgentList)))]
/// `GET /v1/agents`.
pub async fn list_agents<S: Store>(
    State(state): State<AppState<S>>,
) -> Result<Json<Value>, Problem> {
    let agents = state.store().agents().await?;
    Ok(Json(json!({
        "agents": agents.iter().map(agent_json).collect::<Vec<_>>()
    })))
}

#[utoipa::path(get, path = "/v1/agents/{id}", tag = "registry", security(("admin_token" = [])),
    params(("id" = String, Path, description = "The agent id", pattern = "^[A-Za-z0-9.:_@/-]{1,200}$")),
    responses((status = 200, description = "The agent", body = crate::gateway::schema::Agent)))]
/// `GET /v1/agents/{id}`.
pub async fn get_agent<S: Store>(
    State(state): State<AppState<S>>,
    Path(agent): Path<String>,
) -> Result<Json<Value>, Problem> {
    let agent = state.store().agent(&id("agent id", &agent)?).await?;
    Ok(Json(agent_json(&agent)))
}

#[utoipa::path(post, path = "/v1/agents/{id}/disable", tag = "registry", security(("admin_token" = [])),
    params(("id" = String, Path, description = "The agent id", pattern = "^[A-Za-z0-9.:_@/-]{1,200}$")),
    responses((status = 200, description = "Disabled, and everything it holds revoked", body = crate::gateway::schema::Agent)))]
/// `POST /v1/agents/{id}/disable`: disables the agent and revokes every
/// remit it holds or delegated, so nothing it was given keeps working.
pub async fn disable_agent<S: Store>(
    State(state): State<AppState<S>>,
    Path(agent): Path<String>,
) -> Result<Json<Value>, Problem> {
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
    let mut out = agent_json(&agent);
    out["revocation_epoch"] = json!(revoked.revocation.epoch);
    out["receipt_id"] = json!(receipt);
    Ok(Json(out))
}

/// Body of `POST /v1/servers`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddServer {
    /// The server's identifier: the first field of `<server>/<tool>` in
    /// grants and the `{server}` of `/mcp/{server}`, so never a `/`.
    #[schema(pattern = "^[a-z0-9][a-z0-9_.-]{0,62}$")]
    pub id: String,
    /// A human-readable name; defaults to the id.
    #[serde(default)]
    pub name: Option<String>,
    /// Where the gateway forwards calls (`http://` or `https://`).
    pub url: String,
    /// The most sensitive data it may receive.
    #[serde(with = "remit_store::lowercase_class")]
    #[schema(value_type = crate::gateway::schema::Clearance)]
    pub clearance: Classification,
}

fn server_json(server: &McpServer) -> Value {
    json!({
        "id": server.id.as_str(),
        "name": server.name,
        "url": server.url,
        "clearance": server.clearance.as_str(),
        "status": server.status,
        "created_at": server.created_at,
        "updated_at": server.updated_at,
    })
}

fn tool_json(tool: &Tool) -> Value {
    json!({
        "server": tool.server.as_str(),
        "name": tool.name.as_str(),
        "risk": tool.risk,
        "clearance": tool.clearance.as_str(),
        "description_sha256": tool.description_sha256,
        "created_at": tool.created_at,
    })
}

#[utoipa::path(post, path = "/v1/servers", tag = "registry", security(("admin_token" = [])),
    request_body = AddServer,
    responses((status = 201, description = "Blessed", body = crate::gateway::schema::McpServer)))]
/// `POST /v1/servers`: blesses an MCP server.
pub async fn add_server<S: Store>(
    State(state): State<AppState<S>>,
    JsonBody(body): JsonBody<AddServer>,
) -> Result<(StatusCode, Json<Value>), Problem> {
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
        clearance: body.clearance,
    };
    let server = state.store().add_server(&server, stamp()).await?;
    state.registry_changed().await;
    let receipt = state
        .record(events::server_added(server.id.as_str(), now_ms()))
        .await?;
    let mut out = server_json(&server);
    out["receipt_id"] = json!(receipt);
    Ok((StatusCode::CREATED, Json(out)))
}

#[utoipa::path(post, path = "/v1/servers/{id}/disable", tag = "registry", security(("admin_token" = [])),
    params(("id" = String, Path, description = "The server id", pattern = "^[A-Za-z0-9.:_@/-]{1,200}$")),
    responses((status = 200, description = "Disabled: the gateway refuses every call to it", body = crate::gateway::schema::McpServer)))]
/// `POST /v1/servers/{id}/disable`: the gateway refuses every call to the
/// server from the next call on (on other replicas within the gateway's
/// cache TTL); its pins stay for an audit. Disabling twice changes nothing.
pub async fn disable_server<S: Store>(
    State(state): State<AppState<S>>,
    Path(server): Path<String>,
) -> Result<Json<Value>, Problem> {
    let server = state
        .store()
        .disable_server(&id("server id", &server)?, stamp())
        .await?;
    state.registry_changed().await;
    let receipt = state
        .record(events::server_disabled(server.id.as_str(), now_ms()))
        .await?;
    let mut out = server_json(&server);
    out["receipt_id"] = json!(receipt);
    Ok(Json(out))
}

#[utoipa::path(get, path = "/v1/servers", tag = "registry", security(("admin_token" = [])),
    responses((status = 200, description = "Every blessed server", body = crate::gateway::schema::McpServerList)))]
/// `GET /v1/servers`.
pub async fn list_servers<S: Store>(
    State(state): State<AppState<S>>,
) -> Result<Json<Value>, Problem> {
    let servers = state.store().servers().await?;
    Ok(Json(json!({
        "servers": servers.iter().map(server_json).collect::<Vec<_>>()
    })))
}

/// Body of `POST /v1/servers/{id}/tools`. Exactly one of `description`
/// (hashed here) or `description_sha256` pins the reviewed description.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddTool {
    /// The tool's name as the server announces it.
    #[schema(pattern = "^[A-Za-z0-9.:_@/-]{1,200}$")]
    pub name: String,
    /// How much harm a call can do.
    #[schema(value_type = crate::gateway::schema::RiskTier)]
    pub risk: RiskTier,
    /// The most sensitive data it may receive.
    #[serde(with = "remit_store::lowercase_class")]
    #[schema(value_type = crate::gateway::schema::Clearance)]
    pub clearance: Classification,
    /// The reviewed description text.
    #[serde(default)]
    pub description: Option<String>,
    /// SHA-256 (hex) of the reviewed description.
    #[serde(default)]
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub description_sha256: Option<String>,
}

#[utoipa::path(post, path = "/v1/servers/{id}/tools", tag = "registry", security(("admin_token" = [])),
    params(("id" = String, Path, description = "The server id", pattern = "^[A-Za-z0-9.:_@/-]{1,200}$")),
    request_body = AddTool,
    responses((status = 201, description = "Pinned", body = crate::gateway::schema::Tool)))]
/// `POST /v1/servers/{id}/tools`: pins a tool of a blessed server.
pub async fn add_tool<S: Store>(
    State(state): State<AppState<S>>,
    Path(server): Path<String>,
    JsonBody(body): JsonBody<AddTool>,
) -> Result<(StatusCode, Json<Value>), Problem> {
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
        risk: body.risk,
        clearance: body.clearance,
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
    let mut out = tool_json(&tool);
    out["receipt_id"] = json!(receipt);
    Ok((StatusCode::CREATED, Json(out)))
}

#[utoipa::path(get, path = "/v1/servers/{id}/tools", tag = "registry", security(("admin_token" = [])),
    params(("id" = String, Path, description = "The server id", pattern = "^[A-Za-z0-9.:_@/-]{1,200}$")),
    responses((status = 200, description = "The server's pinned tools", body = crate::gateway::schema::ToolList)))]
/// `GET /v1/servers/{id}/tools`.
pub async fn list_tools<S: Store>(
    State(state): State<AppState<S>>,
    Path(server): Path<String>,
) -> Result<Json<Value>, Problem> {
    let tools = state.store().tools(&id("server id", &server)?).await?;
    Ok(Json(json!({
        "tools": tools.iter().map(tool_json).collect::<Vec<_>>()
    })))
}
