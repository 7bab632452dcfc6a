//! The MCP gateway's admin API: blessing servers, tuning tools, held
//! calls, shadow mode, and the RFC 9728 metadata of a protected server.

use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;

use crate::registry::Tool;
use crate::words::{ApprovalState, Clearance, RiskTier};

/// Body of `POST /v1/servers/{id}/bless` (every field optional).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Bless {
    /// Risk of tools pinned for the first time; `medium` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub risk: Option<RiskTier>,
    /// Clearance of tools pinned for the first time; the server's when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub clearance: Option<Clearance>,
    /// Only these tools (all the upstream lists when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub tools: Option<Vec<String>>,
}

/// Body of `PATCH /v1/servers/{id}/tools/{tool}`: at least one field.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(min_properties = 1)]
pub struct SetTool {
    /// New risk.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub risk: Option<RiskTier>,
    /// New clearance.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub clearance: Option<Clearance>,
    /// The argument whose value is the call's resource (matched against
    /// the remit's resource patterns); `null` clears it. Absent
    /// (`None`) and `null` (`Some(None)`) differ.
    #[serde(
        default,
        deserialize_with = "present",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, nullable = true, pattern = "^[A-Za-z0-9_.-]{1,64}$")]
    pub resource_arg: Option<Option<String>>,
}

/// `Some(None)` for an explicit `null`, so absent and `null` differ.
fn present<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// A tool pinned by a bless, and whether its pin changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct BlessedTool {
    /// The tool as now pinned, with the index of the receipt of this pin
    /// (its `resource_arg` for a new tool is its first `path`, `uri`,
    /// `url` or `file` string argument).
    #[serde(flatten)]
    pub tool: Tool,
    /// Whether an earlier, different pin was replaced.
    pub repinned: bool,
}

/// A prompt pinned by a bless.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PinnedPrompt {
    /// Its name.
    pub name: String,
    /// SHA-256 (hex) of its description and arguments now pinned.
    pub description_sha256: String,
    /// Index of the receipt of this pin.
    pub receipt_id: u64,
}

/// `POST /v1/servers/{id}/bless`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Blessed {
    /// The server.
    pub server: String,
    /// The tools pinned now.
    pub tools: Vec<BlessedTool>,
    /// The prompts pinned now (an upstream without prompts has none).
    pub prompts: Vec<PinnedPrompt>,
    /// How many listed tools were not pinned because their name is not
    /// an MCP tool name (1-128 of `A-Za-z0-9_.-`).
    pub refused_names: u32,
}

/// Body of an approve or reject (optional).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Decide {
    /// Who decides, for the admin token (a label; `admin` when absent). An
    /// admin authenticated by an ID token is recorded as its OIDC user, and
    /// a `by` naming anyone else is refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[A-Za-z0-9.:_@/-]{1,200}$", nullable = false)]
    pub by: Option<String>,
}

/// A call held for a human decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Approval {
    /// Its identifier.
    pub id: String,
    /// The agent that made the call.
    pub agent: String,
    /// The remit it presented.
    pub remit_jti: String,
    /// `<server>/<tool>`.
    pub tool: String,
    /// SHA-256 (hex) of the canonical call it releases.
    pub call_hash: String,
    /// What the human is shown.
    pub summary: String,
    /// Where it stands.
    pub state: ApprovalState,
    /// When it was held (Unix seconds).
    pub requested_at: i64,
    /// When it stops being usable (Unix seconds).
    pub expires_at: i64,
    /// Who decided: the OIDC user for an ID-token admin, else the
    /// body's `by` or `admin`.
    pub decided_by: Option<String>,
    /// When it was decided (Unix seconds).
    pub decided_at: Option<i64>,
    /// When the approved call was released (once).
    pub consumed_at: Option<i64>,
    /// Index of the approve or reject receipt (decisions only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub receipt_id: Option<u64>,
}

/// `GET /v1/approvals`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ApprovalList {
    /// Pending approvals, oldest first.
    pub approvals: Vec<Approval>,
}

/// Body of `POST /v1/gateway/shadow`: exactly one of `agent` or `server`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Shadow {
    /// An agent to put in (or take out of) shadow mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[A-Za-z0-9.:_@/-]{1,200}$", nullable = false)]
    pub agent: Option<String>,
    /// A server to put in (or take out of) shadow mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(pattern = "^[A-Za-z0-9.:_@/-]{1,200}$", nullable = false)]
    pub server: Option<String>,
    /// On or off.
    pub enabled: bool,
}

/// Who runs in shadow mode in this process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ShadowState {
    /// Agents in shadow mode.
    pub agents: Vec<String>,
    /// Servers in shadow mode.
    pub servers: Vec<String>,
}

/// RFC 9728 protected resource metadata of one MCP server behind the gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ProtectedResourceMetadata {
    /// The resource: `<public URL>/mcp/<server>` (the audience its remits name).
    pub resource: String,
    /// This server.
    pub authorization_servers: Vec<String>,
    /// `header`.
    pub bearer_methods_supported: Vec<String>,
    /// `ES256`.
    pub dpop_signing_alg_values_supported: Vec<String>,
    /// Whether a DPoP proof is required (bearer use switched off).
    pub dpop_bound_access_tokens_required: bool,
    /// A name for people.
    pub resource_name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resource_arg_that_is_null_differs_from_one_that_is_absent() {
        let cleared: SetTool = serde_json::from_str(r#"{"resource_arg":null}"#).unwrap_or_default();
        assert_eq!(cleared.resource_arg, Some(None));
        let absent: SetTool = serde_json::from_str(r#"{"risk":"low"}"#).unwrap_or_default();
        assert_eq!(absent.resource_arg, None);
        assert!(serde_json::from_str::<SetTool>(r#"{"other":1}"#).is_err());
    }

    #[test]
    fn a_blessed_tool_is_the_tool_then_repinned() {
        let tool = BlessedTool {
            tool: Tool {
                server: "fs".into(),
                name: "read".into(),
                risk: RiskTier::Medium,
                clearance: Clearance::Internal,
                description_sha256: "ab".into(),
                created_at: 1,
                resource_arg: None,
                receipt_id: Some(7),
            },
            repinned: false,
        };
        assert_eq!(
            serde_json::to_string(&tool).unwrap_or_default(),
            r#"{"server":"fs","name":"read","risk":"medium","clearance":"internal","description_sha256":"ab","created_at":1,"resource_arg":null,"receipt_id":7,"repinned":false}"#
        );
    }
}
