//! `/v1/agents` and `/v1/servers`: the registry of agents, MCP servers and
//! their tools.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::words::{Clearance, RiskTier, Status};

/// Body of `POST /v1/agents`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterAgent {
    /// The agent's identifier (appears as `act.sub` in its remits).
    #[schema(pattern = "^[A-Za-z0-9.:_@/-]{1,200}$")]
    pub id: String,
    /// A human-readable name; defaults to the id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Its public P-256 key as a JWK object.
    #[schema(value_type = Object)]
    pub public_jwk: Value,
    /// Who is accountable for it.
    pub owner: String,
    /// `low`, `medium`, `high` or `critical`.
    pub risk_tier: RiskTier,
}

/// A registered agent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Agent {
    /// Its identifier.
    pub id: String,
    /// A human-readable name.
    pub name: String,
    /// Its public P-256 key as a JWK.
    #[schema(value_type = Object)]
    pub public_jwk: Value,
    /// RFC 7638 thumbprint of that key.
    pub key_thumbprint: String,
    /// Who is accountable for it.
    pub owner: String,
    /// Its risk tier.
    pub risk_tier: RiskTier,
    /// Whether it may act.
    pub status: Status,
    /// When it was registered (Unix seconds).
    pub created_at: i64,
    /// When it last changed (Unix seconds).
    pub updated_at: i64,
    /// Revocation epoch after disabling (disable only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub revocation_epoch: Option<i64>,
    /// Index of the receipt of this change (mutations only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub receipt_id: Option<u64>,
}

/// `GET /v1/agents`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct AgentList {
    /// Every registered agent.
    pub agents: Vec<Agent>,
}

/// Body of `POST /v1/servers`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddServer {
    /// The server's identifier: the first field of `<server>/<tool>` in
    /// grants and the `{server}` of `/mcp/{server}`, so never a `/`.
    #[schema(pattern = "^[a-z0-9][a-z0-9_.-]{0,62}$")]
    pub id: String,
    /// A human-readable name; defaults to the id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Where the gateway forwards calls (`http://` or `https://`).
    pub url: String,
    /// The most sensitive data it may receive.
    pub clearance: Clearance,
}

/// A blessed MCP server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct McpServer {
    /// Its identifier.
    pub id: String,
    /// A human-readable name.
    pub name: String,
    /// Where the gateway forwards calls.
    pub url: String,
    /// The most sensitive data it may receive.
    pub clearance: Clearance,
    /// Whether calls may reach it.
    pub status: Status,
    /// When it was added (Unix seconds).
    pub created_at: i64,
    /// When it last changed (Unix seconds).
    pub updated_at: i64,
    /// Index of the receipt of this change (mutations only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub receipt_id: Option<u64>,
}

/// `GET /v1/servers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct McpServerList {
    /// Every blessed server.
    pub servers: Vec<McpServer>,
}

/// Body of `POST /v1/servers/{id}/tools`. Exactly one of `description`
/// (hashed by the server) or `description_sha256` pins the reviewed
/// description.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AddTool {
    /// The tool's name as the server announces it.
    #[schema(pattern = "^[A-Za-z0-9.:_@/-]{1,200}$")]
    pub name: String,
    /// How much harm a call can do.
    pub risk: RiskTier,
    /// The most sensitive data it may receive.
    pub clearance: Clearance,
    /// The reviewed description text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// SHA-256 (hex) of the reviewed description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[0-9a-f]{64}$")]
    pub description_sha256: Option<String>,
}

/// A tool of a blessed server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Tool {
    /// The server it belongs to.
    pub server: String,
    /// Its name.
    pub name: String,
    /// How much harm a call can do.
    pub risk: RiskTier,
    /// The most sensitive data it may receive.
    pub clearance: Clearance,
    /// SHA-256 (hex) of the reviewed description.
    pub description_sha256: String,
    /// When it was added (Unix seconds).
    pub created_at: i64,
    /// The argument whose value is a call's resource, if any.
    #[serde(default)]
    pub resource_arg: Option<String>,
    /// Index of the receipt of this change (mutations only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub receipt_id: Option<u64>,
}

/// `GET /v1/servers/{id}/tools`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ToolList {
    /// The server's pinned tools.
    pub tools: Vec<Tool>,
}
