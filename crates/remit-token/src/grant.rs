//! Grants: one RFC 9396 `authorization_details` entry of type `remit_tool`.
//!
//! A grant names tools (patterns), optionally the resources and actions they
//! may touch, and constraints on named arguments. `None` for resources or
//! actions means "not restricted"; a delegated grant may restrict what its
//! parent left open but never open what its parent restricted.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::canonical::{canonicalize, CanonError};
use crate::constraint::{ArgConstraints, Constraint, Refusal};
use crate::pattern::Pattern;

/// Most tools, resources or actions one grant may list.
pub const MAX_GRANT_ENTRIES: usize = 64;

/// The only `authorization_details` type a remit carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum GrantType {
    /// `remit_tool`: permission to call tools.
    #[serde(rename = "remit_tool")]
    RemitTool,
}

/// One grant of authority: which tools, on which resources, doing which
/// actions, with which arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "GrantRepr")]
pub struct Grant {
    /// Always [`GrantType::RemitTool`].
    #[serde(rename = "type")]
    pub kind: GrantType,
    /// Tool names or patterns (non-empty).
    pub tools: Vec<Pattern>,
    /// Resource patterns; `None` leaves resources unrestricted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Vec<Pattern>>,
    /// Allowed actions; `None` leaves actions unrestricted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actions: Option<Vec<String>>,
    /// Constraints on named arguments.
    #[serde(default, skip_serializing_if = "ArgConstraints::is_empty")]
    pub args: ArgConstraints,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantRepr {
    #[serde(rename = "type")]
    kind: GrantType,
    tools: Vec<Pattern>,
    #[serde(default)]
    resources: Option<Vec<Pattern>>,
    #[serde(default)]
    actions: Option<Vec<String>>,
    #[serde(default)]
    args: ArgConstraints,
}

impl TryFrom<GrantRepr> for Grant {
    type Error = String;

    fn try_from(r: GrantRepr) -> Result<Self, String> {
        if r.tools.is_empty() {
            return Err("a grant must name at least one tool".into());
        }
        let too_many = r.tools.len() > MAX_GRANT_ENTRIES
            || r.resources
                .as_ref()
                .is_some_and(|v| v.len() > MAX_GRANT_ENTRIES)
            || r.actions
                .as_ref()
                .is_some_and(|v| v.len() > MAX_GRANT_ENTRIES);
        if too_many {
            return Err(format!(
                "a grant lists at most {MAX_GRANT_ENTRIES} tools, resources or actions"
            ));
        }
        Ok(Grant {
            kind: r.kind,
            tools: r.tools,
            resources: r.resources,
            actions: r.actions,
            args: r.args,
        })
    }
}

/// Why a call does not fit a grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Misfit {
    Tool,
    Resource,
    ResourceNotCanonical(CanonError),
    Action,
    ArgMissing(String),
    ArgRejected(String, &'static str),
    ArgNotCanonical(String, CanonError),
}

impl Grant {
    /// A grant for `tools` with no other restriction.
    pub fn tools(tools: Vec<Pattern>) -> Self {
        Grant {
            kind: GrantType::RemitTool,
            tools,
            resources: None,
            actions: None,
            args: ArgConstraints::new(),
        }
    }

    /// Checks what parsing defers (regex compilation), naming the argument.
    pub fn check(&self) -> Result<(), String> {
        for (name, constraint) in self.args.iter() {
            constraint
                .check()
                .map_err(|e| format!("argument {name:?}: {e}"))?;
        }
        Ok(())
    }

    /// Whether this grant's tool patterns match `tool`.
    pub fn covers_tool(&self, tool: &str) -> bool {
        self.tools.iter().any(|p| p.matches(tool))
    }

    /// Whether everything `self` permits is also permitted by `parent`.
    pub fn is_within(&self, parent: &Grant) -> bool {
        let tools = self
            .tools
            .iter()
            .all(|c| parent.tools.iter().any(|p| p.covers(c)));
        let resources = match (&self.resources, &parent.resources) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(c), Some(p)) => c.iter().all(|c| p.iter().any(|p| p.covers(c))),
        };
        let actions = match (&self.actions, &parent.actions) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(c), Some(p)) => c.iter().all(|c| p.contains(c)),
        };
        let args = parent.args.iter().all(|(name, pc)| {
            self.args
                .get(name)
                .is_some_and(|cc: &Constraint| cc.is_within(pc))
        });
        tools && resources && actions && args
    }

    /// Checks one call against this grant.
    pub(crate) fn fit(
        &self,
        tool: &str,
        resource: Option<&str>,
        action: Option<&str>,
        args: &serde_json::Map<String, Value>,
    ) -> Result<(), Misfit> {
        if !self.covers_tool(tool) {
            return Err(Misfit::Tool);
        }
        if let Some(patterns) = &self.resources {
            let resource = resource.ok_or(Misfit::Resource)?;
            let resource = canonicalize(resource).map_err(Misfit::ResourceNotCanonical)?;
            if !patterns.iter().any(|p| p.matches_canonical(&resource)) {
                return Err(Misfit::Resource);
            }
        }
        if let Some(actions) = &self.actions {
            let ok = action.is_some_and(|a| actions.iter().any(|x| x == a));
            if !ok {
                return Err(Misfit::Action);
            }
        }
        for (name, constraint) in self.args.iter() {
            let value = args
                .get(name)
                .ok_or_else(|| Misfit::ArgMissing(name.to_owned()))?;
            match constraint.judge(value) {
                Ok(()) => {}
                Err(Refusal::Outside) => {
                    return Err(Misfit::ArgRejected(name.to_owned(), constraint.kind()))
                }
                Err(Refusal::NotCanonical(e)) => {
                    return Err(Misfit::ArgNotCanonical(name.to_owned(), e))
                }
            }
        }
        Ok(())
    }
}

/// Whether every grant in `child` fits inside one grant of `parent`.
pub fn grants_within(child: &[Grant], parent: &[Grant]) -> bool {
    child.iter().all(|c| parent.iter().any(|p| c.is_within(p)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn g(v: Value) -> Grant {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn refuses_unknown_grant_type_and_fields() {
        assert!(
            serde_json::from_value::<Grant>(json!({"type":"openid_credential","tools":["a"]}))
                .is_err()
        );
        assert!(serde_json::from_value::<Grant>(
            json!({"type":"remit_tool","tools":["a"],"extra":1})
        )
        .is_err());
        assert!(serde_json::from_value::<Grant>(json!({"type":"remit_tool","tools":[]})).is_err());
    }

    #[test]
    fn refuses_duplicate_grant_fields() {
        let text = r#"{"type":"remit_tool","tools":["a"],"tools":["*"]}"#;
        assert!(serde_json::from_str::<Grant>(text).is_err());
    }

    #[test]
    fn refuses_dropping_a_parent_restriction() {
        let parent = g(
            json!({"type":"remit_tool","tools":["fs.*"],"resources":["/tmp/*"],
            "actions":["read"],"args":{"path":{"prefix":"/tmp/"}}}),
        );
        let no_resources = g(
            json!({"type":"remit_tool","tools":["fs.read"],"actions":["read"],
            "args":{"path":{"prefix":"/tmp/"}}}),
        );
        assert!(!no_resources.is_within(&parent));
        let no_actions = g(
            json!({"type":"remit_tool","tools":["fs.read"],"resources":["/tmp/a"],
            "args":{"path":{"prefix":"/tmp/"}}}),
        );
        assert!(!no_actions.is_within(&parent));
        let no_args = g(
            json!({"type":"remit_tool","tools":["fs.read"],"resources":["/tmp/a"],
            "actions":["read"]}),
        );
        assert!(!no_args.is_within(&parent));
        let wider_tool = g(
            json!({"type":"remit_tool","tools":["*"],"resources":["/tmp/a"],
            "actions":["read"],"args":{"path":{"prefix":"/tmp/"}}}),
        );
        assert!(!wider_tool.is_within(&parent));
        let narrower = g(
            json!({"type":"remit_tool","tools":["fs.read"],"resources":["/tmp/a"],
            "actions":["read"],"args":{"path":{"prefix":"/tmp/a/"},"mode":{"exact":"r"}}}),
        );
        assert!(narrower.is_within(&parent));
    }

    #[test]
    fn checks_calls() {
        let grant = g(
            json!({"type":"remit_tool","tools":["fs.*"],"resources":["/tmp/*"],
            "actions":["read"],"args":{"path":{"prefix":"/tmp/"}}}),
        );
        let args = json!({"path": "/tmp/x"});
        let args = args.as_object().unwrap();
        assert_eq!(
            grant.fit("fs.read", Some("/tmp/x"), Some("read"), args),
            Ok(())
        );
        assert_eq!(
            grant.fit("net.get", Some("/tmp/x"), Some("read"), args),
            Err(Misfit::Tool)
        );
        assert_eq!(
            grant.fit("fs.read", None, Some("read"), args),
            Err(Misfit::Resource)
        );
        assert_eq!(
            grant.fit("fs.read", Some("/tmp/x"), Some("write"), args),
            Err(Misfit::Action)
        );
        let empty = serde_json::Map::new();
        assert_eq!(
            grant.fit("fs.read", Some("/tmp/x"), Some("read"), &empty),
            Err(Misfit::ArgMissing("path".into()))
        );
    }
}
