//! Decision tables: expected decisions written as data (YAML), run against
//! any engine. `remit policy test` and the conformance tests use them.
//!
//! ```yaml
//! entities: { ... }        # optional directory (else the policy folder's)
//! defaults:
//!   context: { ... }       # merged under every case's context
//! overrides:               # optional policies layered for this table only
//!   cedar: |
//!     @id("ovr-...") @reason("...") forbid (...);
//!   rego: |
//!     package remit.policy
//!     forbid contains {"id": "ovr-...", "reason": "..."} if { ... }
//! cases:
//!   - name: unlisted tool is refused
//!     principal: Agent::"a"
//!     action: call_tool
//!     resource: Tool::"github/search"
//!     context: { remit_tools: [] }     # keys replace defaults; null deletes
//!     entities: { tools: { ... } }     # optional JSON merge patch (RFC 7386)
//!     pad_args: 20000                  # optional: adds args.padding of N bytes
//!     expect: deny                     # allow | escalate | deny
//!     reason: std-tool-not-in-remit    # Decision::reason_code, exactly
//! ```
//!
//! A case whose principal, context or entities do not parse is not an error
//! of the table: it is asked like any other and must come out as a deny
//! with reason `invalid-request`, exactly as the gateway would answer.

use serde::Deserialize;

use crate::decision::{Decision, Verdict};
use crate::engine::{EngineKind, PolicyEngine, PolicySource};
use crate::model::Directory;
use crate::request::{DecisionRequest, RequestContext, RequestError};
use crate::version::PolicyVersion;

/// A parsed decision table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionTable {
    #[serde(default)]
    entities: Option<serde_json::Value>,
    #[serde(default)]
    defaults: Defaults,
    #[serde(default)]
    overrides: Overrides,
    cases: Vec<Case>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Defaults {
    #[serde(default)]
    context: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Overrides {
    #[serde(default)]
    cedar: Option<String>,
    #[serde(default)]
    rego: Option<String>,
}

/// One row of a table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Case {
    /// What the case shows (an attack it refuses, a posture it allows).
    pub name: String,
    principal: String,
    action: String,
    resource: String,
    #[serde(default)]
    context: serde_json::Map<String, serde_json::Value>,
    #[serde(default)]
    entities: Option<serde_json::Value>,
    #[serde(default)]
    pad_args: Option<usize>,
    /// The expected verdict.
    pub expect: Verdict,
    /// The expected [`Decision::reason_code`].
    pub reason: String,
}

/// The result of one case.
#[derive(Debug, Clone)]
pub struct CaseResult {
    /// The case's name.
    pub name: String,
    /// Expected verdict.
    pub expect: Verdict,
    /// Expected reason code.
    pub reason: String,
    /// What the engine answered.
    pub decision: Decision,
}

impl CaseResult {
    /// Verdict and reason both as expected.
    pub fn passed(&self) -> bool {
        self.decision.verdict() == self.expect && self.decision.reason_code() == self.reason
    }
}

/// A table that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TableError {
    /// YAML syntax or shape.
    #[error("decision table: {message}")]
    Parse {
        /// The parser's message (with line and column).
        message: String,
    },
    /// The table's `entities` do not parse.
    #[error("decision table entities: {message}")]
    Entities {
        /// What is wrong.
        message: String,
    },
}

impl DecisionTable {
    /// Parses a table.
    pub fn from_yaml(text: &str) -> Result<Self, TableError> {
        serde_yaml::from_str(text).map_err(|e| TableError::Parse {
            message: e.to_string(),
        })
    }

    /// The cases.
    pub fn cases(&self) -> &[Case] {
        &self.cases
    }

    /// The table's own directory, if it has one.
    pub fn entities(&self) -> Result<Option<Directory>, TableError> {
        self.entities
            .as_ref()
            .map(|v| {
                Directory::from_json(&v.to_string()).map_err(|e| TableError::Entities {
                    message: e.to_string(),
                })
            })
            .transpose()
    }

    /// Extra policies the table layers over the folder's, for an engine.
    pub fn overrides(&self, engine: EngineKind) -> Option<PolicySource> {
        let text = match engine {
            EngineKind::Cedar => self.overrides.cedar.as_ref(),
            EngineKind::Rego => self.overrides.rego.as_ref(),
        }?;
        Some(PolicySource::new(
            format!("<table overrides>.{}", engine.extension()),
            text.clone(),
        ))
    }

    /// Runs every case; the engine's directory is restored afterwards.
    pub fn run(&self, engine: &mut dyn PolicyEngine) -> Vec<CaseResult> {
        let base = engine.directory().clone();
        let base_json = serde_json::to_value(&base).unwrap_or(serde_json::Value::Null);
        let version = *engine.version();
        let mut out = Vec::with_capacity(self.cases.len());
        for case in &self.cases {
            let decision = match &case.entities {
                None => self.decide(engine, case, &version),
                Some(patch) => {
                    let mut dir = base_json.clone();
                    merge_patch(&mut dir, patch);
                    match Directory::from_json(&dir.to_string()) {
                        Ok(d) => match engine.set_directory(d) {
                            Ok(()) => {
                                let dec = self.decide(engine, case, &version);
                                // A failure to restore would poison later cases: fail closed.
                                if engine.set_directory(base.clone()).is_err() {
                                    return out;
                                }
                                dec
                            }
                            Err(e) => Decision::invalid_request(
                                &RequestError::BadContext {
                                    message: e.to_string(),
                                },
                                &version,
                            ),
                        },
                        Err(e) => Decision::invalid_request(&e.into(), &version),
                    }
                }
            };
            out.push(CaseResult {
                name: case.name.clone(),
                expect: case.expect,
                reason: case.reason.clone(),
                decision,
            });
        }
        out
    }

    fn decide(&self, engine: &dyn PolicyEngine, case: &Case, version: &PolicyVersion) -> Decision {
        match self.request(case) {
            Ok(r) => engine.decide(&r),
            Err(e) => Decision::invalid_request(&e, version),
        }
    }

    /// Builds a case's request (defaults merged, caps checked).
    pub fn request(&self, case: &Case) -> Result<DecisionRequest, RequestError> {
        let mut ctx = self.defaults.context.clone();
        for (k, v) in &case.context {
            if v.is_null() {
                ctx.remove(k);
            } else {
                ctx.insert(k.clone(), v.clone());
            }
        }
        if let Some(n) = case.pad_args {
            let args = ctx
                .entry("args")
                .or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
            if let Some(obj) = args.as_object_mut() {
                obj.insert("padding".into(), "x".repeat(n).into());
            }
        }
        DecisionRequest::new(
            case.principal.parse()?,
            case.action.parse()?,
            case.resource.parse()?,
            RequestContext::from_map(ctx)?,
        )
    }
}

/// RFC 7386 JSON merge patch.
fn merge_patch(target: &mut serde_json::Value, patch: &serde_json::Value) {
    let serde_json::Value::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = serde_json::Value::Object(serde_json::Map::new());
    }
    if let serde_json::Value::Object(t) = target {
        for (k, v) in p {
            if v.is_null() {
                t.remove(k);
            } else {
                merge_patch(t.entry(k.clone()).or_insert(serde_json::Value::Null), v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_patch_replaces_and_deletes() {
        let mut t = serde_json::json!({"a": {"b": 1, "c": 2}, "d": 3});
        merge_patch(
            &mut t,
            &serde_json::json!({"a": {"b": null, "e": 4}, "d": 5}),
        );
        assert_eq!(t, serde_json::json!({"a": {"c": 2, "e": 4}, "d": 5}));
    }

    #[test]
    fn table_refuses_unknown_keys() {
        let err = DecisionTable::from_yaml("cases: []\nexpectations: []\n").unwrap_err();
        assert!(err.to_string().contains("expectations"), "{err}");
    }
}
