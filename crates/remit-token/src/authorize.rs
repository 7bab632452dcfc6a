//! Checking one tool call against a verified chain's effective authority.

use serde_json::Value;

use crate::canonical::CanonError;
use crate::chain::VerifiedChain;
use crate::claims::Classification;
use crate::grant::Misfit;

/// `resource "/a/b"`, or `no resource (the call named none)`: an optional
/// value in an error's words, never Rust's `Some(..)`.
fn named(what: &str, value: Option<&str>) -> String {
    match value {
        Some(v) => format!("{what} {v:?}"),
        None => format!("no {what} (the call named none)"),
    }
}

/// Why a call is not authorized by the chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorizeError {
    /// The arguments are not a JSON object.
    #[error("tool arguments must be a JSON object")]
    ArgsNotObject,
    /// No grant names the tool.
    #[error("tool {0:?} is not granted")]
    ToolNotGranted(String),
    /// The tool is granted, but not on this resource.
    #[error("tool {tool:?} is not granted on {}", named("resource", resource.as_deref()))]
    ResourceNotGranted {
        /// The tool.
        tool: String,
        /// The resource asked for (`None`: the call named none).
        resource: Option<String>,
    },
    /// The grant restricts resources and the resource named has no
    /// canonical form (`..`, an encoded separator, …): refused, not compared.
    #[error("tool {tool:?}: resource {resource:?} is refused: it {reason}")]
    ResourceNotCanonical {
        /// The tool.
        tool: String,
        /// The resource asked for.
        resource: String,
        /// Why it has no canonical form.
        reason: CanonError,
    },
    /// The tool is granted, but not for this action.
    #[error("tool {tool:?} is not granted for {}", named("action", action.as_deref()))]
    ActionNotGranted {
        /// The tool.
        tool: String,
        /// The action asked for (`None`: the call named none).
        action: Option<String>,
    },
    /// A constrained argument is missing.
    #[error("argument {0:?} is constrained but missing")]
    ArgumentMissing(String),
    /// An argument breaks its constraint.
    #[error("argument {arg:?} does not satisfy its {constraint} constraint")]
    ArgumentRejected {
        /// The argument name.
        arg: String,
        /// The constraint kind.
        constraint: &'static str,
    },
    /// A constrained argument is a path or URI with no canonical form:
    /// refused, not compared.
    #[error("argument {arg:?} is refused: it {reason}")]
    ArgumentNotCanonical {
        /// The argument name.
        arg: String,
        /// Why it has no canonical form.
        reason: CanonError,
    },
}

/// One tool call, as the gateway sees it.
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    /// The tool name.
    pub tool: &'a str,
    /// The resource the call touches, if the gateway derives one.
    pub resource: Option<&'a str>,
    /// The action, if the gateway derives one.
    pub action: Option<&'a str>,
    /// The arguments (a JSON object).
    pub args: &'a Value,
}

/// What an allowed call may do beyond this check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Authorization {
    /// Index of the leaf grant that allowed the call.
    pub grant: usize,
    /// Highest classification the result may carry.
    pub class: Classification,
    /// The step budget of the leaf (the server counts steps used).
    pub max_steps: Option<u64>,
}

/// Checks `tool` called with `args` (no resource, no action) against the
/// leaf's grants.
pub fn authorize(
    chain: &VerifiedChain,
    tool: &str,
    args: &Value,
) -> Result<Authorization, AuthorizeError> {
    authorize_call(
        chain,
        &Call {
            tool,
            resource: None,
            action: None,
            args,
        },
    )
}

/// Checks a call against the leaf's grants: allowed if one grant fits it
/// whole. When none does, the error comes from the first grant naming the
/// tool, or says no grant names it.
pub fn authorize_call(
    chain: &VerifiedChain,
    call: &Call<'_>,
) -> Result<Authorization, AuthorizeError> {
    let args = call.args.as_object().ok_or(AuthorizeError::ArgsNotObject)?;
    let leaf = chain.leaf_claims();
    let mut first_misfit = None;
    for (index, grant) in leaf.authorization_details.iter().enumerate() {
        match grant.fit(call.tool, call.resource, call.action, args) {
            Ok(()) => {
                return Ok(Authorization {
                    grant: index,
                    class: leaf.class,
                    max_steps: leaf.max_steps,
                })
            }
            Err(Misfit::Tool) => {}
            Err(misfit) => {
                first_misfit.get_or_insert(misfit);
            }
        }
    }
    Err(match first_misfit {
        None | Some(Misfit::Tool) => AuthorizeError::ToolNotGranted(call.tool.to_owned()),
        Some(Misfit::Resource) => AuthorizeError::ResourceNotGranted {
            tool: call.tool.to_owned(),
            resource: call.resource.map(str::to_owned),
        },
        Some(Misfit::ResourceNotCanonical(reason)) => AuthorizeError::ResourceNotCanonical {
            tool: call.tool.to_owned(),
            resource: call.resource.unwrap_or_default().to_owned(),
            reason,
        },
        Some(Misfit::Action) => AuthorizeError::ActionNotGranted {
            tool: call.tool.to_owned(),
            action: call.action.map(str::to_owned),
        },
        Some(Misfit::ArgMissing(arg)) => AuthorizeError::ArgumentMissing(arg),
        Some(Misfit::ArgRejected(arg, constraint)) => {
            AuthorizeError::ArgumentRejected { arg, constraint }
        }
        Some(Misfit::ArgNotCanonical(arg, reason)) => {
            AuthorizeError::ArgumentNotCanonical { arg, reason }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_resource_or_action_reads_as_words_not_debug() {
        let named = AuthorizeError::ResourceNotGranted {
            tool: "fs/read".into(),
            resource: Some("/data/x".into()),
        };
        assert_eq!(
            named.to_string(),
            r#"tool "fs/read" is not granted on resource "/data/x""#
        );
        let none = AuthorizeError::ActionNotGranted {
            tool: "fs/read".into(),
            action: None,
        };
        assert_eq!(
            none.to_string(),
            r#"tool "fs/read" is not granted for no action (the call named none)"#
        );
        assert!(!named.to_string().contains("Some("));
    }
}
