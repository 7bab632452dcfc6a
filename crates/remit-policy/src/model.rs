//! The vocabulary of a decision: actions, entity references, risk and
//! classification levels, and the directory of known entities.
//!
//! Everything here is parsed into closed types at the edge, so the engines
//! never see a risk called `"hgih"` or a classification called `"secret"`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// What the principal asks to do. Each action applies to fixed entity types
/// (see [`Action::principal_kind`] and [`Action::resource_kind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// A user issues a root remit to one of their agents.
    Issue,
    /// An agent delegates a narrower remit to another agent.
    Delegate,
    /// An agent calls a tool on an MCP server.
    CallTool,
    /// An agent receives the result of a tool call.
    ReadResult,
    /// An agent sends a prompt to an LLM endpoint.
    SendPrompt,
    /// An agent reads an MCP resource (by URI) from a server; the returned
    /// content is scanned and its class and findings are in the context.
    ReadResource,
    /// An agent fetches an MCP prompt template (by name, with arguments)
    /// from a server; the returned messages are scanned like a resource.
    GetPrompt,
}

impl Action {
    /// Every action, in schema order.
    pub const ALL: [Action; 7] = [
        Action::Issue,
        Action::Delegate,
        Action::CallTool,
        Action::ReadResult,
        Action::SendPrompt,
        Action::ReadResource,
        Action::GetPrompt,
    ];

    /// The action's name in Cedar (`Action::"call_tool"`) and Rego (`input.action`).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Issue => "issue",
            Action::Delegate => "delegate",
            Action::CallTool => "call_tool",
            Action::ReadResult => "read_result",
            Action::SendPrompt => "send_prompt",
            Action::ReadResource => "read_resource",
            Action::GetPrompt => "get_prompt",
        }
    }

    /// The only principal type this action accepts.
    pub fn principal_kind(self) -> EntityKind {
        match self {
            Action::Issue => EntityKind::User,
            _ => EntityKind::Agent,
        }
    }

    /// The only resource type this action accepts.
    pub fn resource_kind(self) -> EntityKind {
        match self {
            Action::Issue | Action::Delegate => EntityKind::Agent,
            Action::CallTool | Action::ReadResult => EntityKind::Tool,
            Action::SendPrompt => EntityKind::Model,
            Action::ReadResource | Action::GetPrompt => EntityKind::Server,
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Action {
    type Err = ModelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bare = s
            .strip_prefix("Action::\"")
            .and_then(|r| r.strip_suffix('"'))
            .unwrap_or(s);
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == bare)
            .ok_or_else(|| ModelError::UnknownAction { name: s.to_owned() })
    }
}

/// The entity types of the Remit schema.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum EntityKind {
    /// A human from the identity provider.
    User,
    /// A registered agent with its own key pair.
    Agent,
    /// An MCP server.
    Server,
    /// A tool exposed by a server.
    Tool,
    /// An LLM endpoint.
    Model,
}

impl EntityKind {
    /// The Cedar type name.
    pub fn as_str(self) -> &'static str {
        match self {
            EntityKind::User => "User",
            EntityKind::Agent => "Agent",
            EntityKind::Server => "Server",
            EntityKind::Tool => "Tool",
            EntityKind::Model => "Model",
        }
    }
}

/// A typed reference to an entity, written `Type::"id"` as in Cedar.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityRef {
    kind: EntityKind,
    id: String,
}

/// The longest entity id accepted, in bytes.
pub const MAX_ID_BYTES: usize = 256;

/// Checks an entity id without building a reference: non-empty, at most
/// [`MAX_ID_BYTES`], free of control characters.
pub fn check_id(id: &str) -> Result<(), ModelError> {
    if id.is_empty() || id.len() > MAX_ID_BYTES || id.chars().any(char::is_control) {
        return Err(ModelError::BadId { id: id.to_owned() });
    }
    Ok(())
}

impl EntityRef {
    /// Builds a reference; the id must be non-empty, at most
    /// [`MAX_ID_BYTES`] and free of control characters.
    pub fn new(kind: EntityKind, id: impl Into<String>) -> Result<Self, ModelError> {
        let id = id.into();
        check_id(&id)?;
        Ok(Self { kind, id })
    }

    /// The entity type.
    pub fn kind(&self) -> EntityKind {
        self.kind
    }

    /// The entity id (without type or quotes).
    pub fn id(&self) -> &str {
        &self.id
    }
}

impl fmt::Display for EntityRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}::{:?}", self.kind.as_str(), self.id)
    }
}

impl FromStr for EntityRef {
    type Err = ModelError;

    /// Parses `Agent::"a"`; the type must be one of the schema's.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || ModelError::BadEntityRef { text: s.to_owned() };
        let (ty, rest) = s.split_once("::").ok_or_else(bad)?;
        let id = rest
            .strip_prefix('"')
            .and_then(|r| r.strip_suffix('"'))
            .ok_or_else(bad)?;
        if id.contains('"') || id.contains('\\') {
            return Err(bad());
        }
        let kind = match ty {
            "User" => EntityKind::User,
            "Agent" => EntityKind::Agent,
            "Server" => EntityKind::Server,
            "Tool" => EntityKind::Tool,
            "Model" => EntityKind::Model,
            _ => return Err(bad()),
        };
        EntityRef::new(kind, id)
    }
}

impl Serialize for EntityRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for EntityRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Data classification, ordered: a payload may go only to a destination whose
/// clearance is at least its class. Cedar and Rego see it as a number 0..=3
/// ([`Classification::level`]). The one type every Remit crate shares,
/// re-exported here.
pub use remit_class::Classification;

/// How much harm a tool can do; `irreversible` cannot be undone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Risk {
    /// Reads or harmless writes.
    Low,
    /// Writes that are easy to revert.
    Medium,
    /// Writes with a real blast radius.
    High,
    /// Cannot be undone (payments, deletions, sent mail).
    Irreversible,
}

impl Risk {
    /// The name policies compare against.
    pub fn as_str(self) -> &'static str {
        match self {
            Risk::Low => "low",
            Risk::Medium => "medium",
            Risk::High => "high",
            Risk::Irreversible => "irreversible",
        }
    }
}

/// A human principal. It carries no attributes today; it exists so that
/// `owner == principal` comparisons are typed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {}

/// A registered agent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agent {
    /// The user id of the human this agent works for.
    pub owner: String,
    /// 0 (trusted) to 3 (untrusted), set at registration.
    pub risk_tier: RiskTier,
    /// False once the agent is deregistered: every request is then refused.
    pub registered: bool,
}

/// An agent's risk tier, 0 (trusted) to 3 (untrusted).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub struct RiskTier(u8);

impl RiskTier {
    /// The tier as a number.
    pub fn get(self) -> u8 {
        self.0
    }
}

impl TryFrom<u8> for RiskTier {
    type Error = ModelError;
    fn try_from(v: u8) -> Result<Self, ModelError> {
        if v <= 3 {
            Ok(Self(v))
        } else {
            Err(ModelError::BadRiskTier { tier: v })
        }
    }
}

impl From<RiskTier> for u8 {
    fn from(t: RiskTier) -> u8 {
        t.0
    }
}

/// An MCP server. It is also the resource of `read_resource` and
/// `get_prompt`: the resource URI or prompt name travels in the context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Server {
    /// An operator reviewed and approved this server.
    pub blessed: bool,
    /// Hash of the tool descriptions reviewed at blessing; a different hash
    /// at call time means the descriptions changed (a "rug pull").
    pub pinned_description_hash: String,
}

/// A tool on a server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tool {
    /// The server id (a `Server` entity).
    pub server: String,
    /// The tool's name on its server.
    pub name: String,
    /// How much harm a call can do.
    pub risk: Risk,
    /// The highest class of data this tool's destination may receive.
    pub destination_clearance: Classification,
    /// Whether the tool sends data outside the organisation.
    pub external: bool,
}

/// An LLM endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Model {
    /// Hosted outside the organisation.
    pub external: bool,
    /// The highest class of data it may receive.
    pub clearance: Classification,
}

/// The static entities a decision can refer to: users, agents, servers,
/// tools and models, keyed by id. Engines turn it into their own cached form
/// once, not per call.
///
/// References between entities (an agent's owner, a tool's server) may
/// dangle, as they do in a live registry; a policy that follows a dangling
/// reference gets an evaluation error, which is a deny.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Directory {
    /// Users by id.
    #[serde(default)]
    pub users: BTreeMap<String, User>,
    /// Agents by id.
    #[serde(default)]
    pub agents: BTreeMap<String, Agent>,
    /// Servers by id.
    #[serde(default)]
    pub servers: BTreeMap<String, Server>,
    /// Tools by id (conventionally `server/name`).
    #[serde(default)]
    pub tools: BTreeMap<String, Tool>,
    /// Models by id.
    #[serde(default)]
    pub models: BTreeMap<String, Model>,
}

impl Directory {
    /// Parses a directory from JSON (the `entities.json` of a policy folder).
    pub fn from_json(text: &str) -> Result<Self, ModelError> {
        let dir: Directory = serde_json::from_str(text).map_err(|e| ModelError::Directory {
            message: e.to_string(),
        })?;
        dir.check_ids()?;
        Ok(dir)
    }

    /// Rejects ids that cannot be written as entity references.
    pub fn check_ids(&self) -> Result<(), ModelError> {
        let ids = self
            .users
            .keys()
            .chain(self.agents.keys())
            .chain(self.servers.keys())
            .chain(self.tools.keys())
            .chain(self.models.keys());
        for id in ids {
            EntityRef::new(EntityKind::User, id.as_str())?;
        }
        Ok(())
    }

    /// Whether the referenced entity is known.
    pub fn contains(&self, r: &EntityRef) -> bool {
        let id = r.id();
        match r.kind() {
            EntityKind::User => self.users.contains_key(id),
            EntityKind::Agent => self.agents.contains_key(id),
            EntityKind::Server => self.servers.contains_key(id),
            EntityKind::Tool => self.tools.contains_key(id),
            EntityKind::Model => self.models.contains_key(id),
        }
    }
}

/// Errors in names and entity data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// The action is not one of the schema's.
    #[error("unknown action {name:?}: expected one of issue, delegate, call_tool, read_result, send_prompt, read_resource, get_prompt")]
    UnknownAction {
        /// What was given.
        name: String,
    },
    /// Not of the form `Type::"id"` with a schema type.
    #[error("{text:?} is not an entity reference: write Type::\"id\" with Type one of User, Agent, Server, Tool, Model")]
    BadEntityRef {
        /// What was given.
        text: String,
    },
    /// An empty, overlong or control-character id.
    #[error("entity id {id:?} must be 1..=256 bytes without control characters")]
    BadId {
        /// What was given.
        id: String,
    },
    /// A risk tier above 3.
    #[error("risk tier {tier} is out of range 0..=3")]
    BadRiskTier {
        /// What was given.
        tier: u8,
    },
    /// The directory JSON does not match the expected shape.
    #[error("entity directory: {message}")]
    Directory {
        /// The parser's message (names the missing or unexpected field).
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entity_ref_refuses_injection_through_quotes() {
        assert!(r#"Tool::"a" || true"#.parse::<EntityRef>().is_err());
        assert!(r#"Tool::"a\"b""#.parse::<EntityRef>().is_err());
        assert!(r#"Admin::"a""#.parse::<EntityRef>().is_err());
        assert!(r#"Tool::"""#.parse::<EntityRef>().is_err());
        let r: EntityRef = r#"Tool::"github/create_issue""#.parse().unwrap();
        assert_eq!(r.kind(), EntityKind::Tool);
        assert_eq!(r.id(), "github/create_issue");
        assert_eq!(r.to_string(), r#"Tool::"github/create_issue""#);
    }

    #[test]
    fn directory_refuses_missing_attribute() {
        let err = Directory::from_json(
            r#"{"tools":{"t":{"server":"s","name":"t","destination_clearance":"PUBLIC","external":false}}}"#,
        )
        .unwrap_err();
        assert!(err.to_string().contains("risk"), "{err}");
    }

    #[test]
    fn risk_tier_refuses_out_of_range() {
        assert!(RiskTier::try_from(4).is_err());
        assert_eq!(RiskTier::try_from(3).unwrap().get(), 3);
    }

    #[test]
    fn action_parses_bare_and_cedar_forms() {
        assert_eq!("call_tool".parse::<Action>().unwrap(), Action::CallTool);
        assert_eq!(
            r#"Action::"send_prompt""#.parse::<Action>().unwrap(),
            Action::SendPrompt
        );
        assert!("drop_tables".parse::<Action>().is_err());
        for a in Action::ALL {
            assert_eq!(a.as_str().parse::<Action>().unwrap(), a);
        }
    }
}
