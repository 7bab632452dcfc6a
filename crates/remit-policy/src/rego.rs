//! The Rego engine (through `regorus`): the same request, the same decision.
//!
//! Rego has no annotations, so a Rego policy *is* its output: presets add
//! `{"id", "reason", "escalate"?}` objects to the `permit` and `forbid`
//! sets of package `remit.policy`, and strings to `errors`. The prelude
//! (`policies/rego/prelude.rego`) resolves the request's entities from
//! `data.remit.directory` and exposes `decision`, which this module reads
//! with one rule evaluation per request.

use std::sync::Mutex;

use serde::Deserialize;

use crate::decision::{Effect, EscalationMode, Evaluation, EvaluationError, MatchedPolicy};
use crate::engine::{EngineKind, LoadError, PolicyEngine, PolicySource};
use crate::model::Directory;
use crate::request::DecisionRequest;
use crate::version::{normalize_rego, PolicyVersion};

/// The prelude every Rego policy set is loaded with.
pub const PRELUDE: &str = include_str!("../policies/rego/prelude.rego");

const DECISION_RULE: &str = "data.remit.policy.decision";

/// A Rego policy set ready to decide.
#[derive(Debug)]
pub struct RegoEngine {
    engine: Mutex<regorus::Engine>,
    directory: Directory,
    mode: EscalationMode,
    version: PolicyVersion,
}

impl RegoEngine {
    /// Loads the prelude and the sources (all in package `remit.policy`)
    /// and the directory as `data.remit.directory`.
    pub fn load(
        sources: &[PolicySource],
        mode: EscalationMode,
        directory: Directory,
    ) -> Result<Self, LoadError> {
        let mut engine = regorus::Engine::new();
        engine
            .add_policy("prelude.rego".into(), PRELUDE.into())
            .map_err(|e| LoadError::Rego {
                file: "prelude.rego".into(),
                message: e.to_string(),
            })?;
        let mut normalized = Vec::new();
        for s in sources {
            let package = engine
                .add_policy(s.name.clone(), s.text.clone())
                .map_err(|e| LoadError::Rego {
                    file: s.name.clone(),
                    message: e.to_string(),
                })?;
            if package != "data.remit.policy" {
                return Err(LoadError::Rego {
                    file: s.name.clone(),
                    message: format!("declares {package}; Remit reads only `package remit.policy`"),
                });
            }
            normalized.push(normalize_rego(&s.text));
        }
        normalized.sort();
        let mut text = format!(
            "remit-policy/v1\nengine rego\nescalation {}\nprelude {}\n",
            mode.as_str(),
            normalize_rego(PRELUDE).len()
        );
        text.push_str(&normalize_rego(PRELUDE));
        for n in &normalized {
            text.push_str("module\n");
            text.push_str(n);
        }
        let version = PolicyVersion::of_canonical(&text);
        set_data(&mut engine, &directory)?;
        Ok(Self {
            engine: Mutex::new(engine),
            directory,
            mode,
            version,
        })
    }
}

fn set_data(engine: &mut regorus::Engine, dir: &Directory) -> Result<(), LoadError> {
    let tools: serde_json::Map<String, serde_json::Value> = dir
        .tools
        .iter()
        .map(|(id, t)| {
            (
                id.clone(),
                serde_json::json!({
                    "server": t.server, "name": t.name, "risk": t.risk.as_str(),
                    "destination_clearance": t.destination_clearance.level(),
                    "external": t.external,
                }),
            )
        })
        .collect();
    let models: serde_json::Map<String, serde_json::Value> = dir
        .models
        .iter()
        .map(|(id, m)| {
            (
                id.clone(),
                serde_json::json!({ "external": m.external, "clearance": m.clearance.level() }),
            )
        })
        .collect();
    let data = serde_json::json!({ "remit": { "directory": {
        "users": dir.users,
        "agents": dir.agents,
        "servers": dir.servers,
        "tools": tools,
        "models": models,
    }}});
    engine.clear_data();
    engine
        .add_data(regorus::Value::from(data))
        .map_err(|e| LoadError::Rego {
            file: "data".into(),
            message: e.to_string(),
        })
}

fn input(req: &DecisionRequest) -> serde_json::Value {
    let c = req.context();
    let i = c.input();
    let mut context = serde_json::json!({
        "args": i.args,
        "arg_names": c.arg_names().collect::<Vec<_>>(),
        "args_bytes": c.args_bytes(),
        "data_class": i.data_class.level(),
        "pii": i.pii,
        "secrets": i.secrets,
        "chain_depth": i.chain_depth,
        "original_user": i.original_user,
        "steps_used": i.steps_used,
        "steps_max": i.steps_max,
        "risk_budget_used": i.risk_budget_used,
        "risk_budget_max": i.risk_budget_max,
        "hour_utc": i.hour_utc,
        "amr": i.amr,
        "approved": i.approved,
        "shadow": i.shadow,
        "redacted": i.redacted,
        "remit_tools": i.remit_tools,
        "remit_models": i.remit_models,
    });
    if let Some(obj) = context.as_object_mut() {
        // Optional attributes are absent, not null, as in Cedar: a rule
        // reading them is undefined (does not fire) when they are missing.
        if let Some(h) = &i.description_hash {
            obj.insert("description_hash".into(), h.clone().into());
        }
        obj.insert("granted".into(), c.granted().into());
        if let Some(p) = c.pop() {
            obj.insert("pop".into(), p.as_str().into());
        }
        if let Some(h) = c.holder_clearance() {
            obj.insert("holder_clearance".into(), h.level().into());
        }
        if let Some(u) = c.resource_uri() {
            obj.insert("resource_uri".into(), u.into());
        }
        if let Some(n) = c.prompt_name() {
            obj.insert("prompt_name".into(), n.into());
        }
    }
    serde_json::json!({
        "principal": { "type": req.principal().kind().as_str(), "id": req.principal().id() },
        "action": req.action().as_str(),
        "resource": { "type": req.resource().kind().as_str(), "id": req.resource().id() },
        "context": context,
    })
}

#[derive(Deserialize)]
struct RegoMatch {
    id: String,
    reason: String,
    #[serde(default)]
    escalate: Option<String>,
}

#[derive(Deserialize)]
struct RegoDecision {
    #[serde(default)]
    permit: Vec<RegoMatch>,
    #[serde(default)]
    forbid: Vec<RegoMatch>,
    #[serde(default)]
    errors: Vec<String>,
}

impl PolicyEngine for RegoEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Rego
    }

    fn version(&self) -> &PolicyVersion {
        &self.version
    }

    fn set_version(&mut self, version: PolicyVersion) {
        self.version = version;
    }

    fn mode(&self) -> EscalationMode {
        self.mode
    }

    fn directory(&self) -> &Directory {
        &self.directory
    }

    fn set_directory(&mut self, directory: Directory) -> Result<(), LoadError> {
        let engine = self.engine.get_mut().map_err(|_| LoadError::Rego {
            file: "data".into(),
            message: "engine lock poisoned".into(),
        })?;
        set_data(engine, &directory)?;
        self.directory = directory;
        Ok(())
    }

    fn evaluate(&self, req: &DecisionRequest) -> Evaluation {
        let fail = |message: String| Evaluation {
            matched: vec![],
            errors: vec![EvaluationError {
                policy: None,
                message,
            }],
        };
        let value = {
            let Ok(mut engine) = self.engine.lock() else {
                return fail("rego engine lock poisoned by an earlier panic".into());
            };
            engine.set_input(regorus::Value::from(input(req)));
            match engine.eval_rule(DECISION_RULE.into()) {
                Ok(v) => v,
                Err(e) => return fail(e.to_string()),
            }
        };
        if value == regorus::Value::Undefined {
            return fail(
                "rego: decision is undefined (a preset rule conflicts or is missing)".into(),
            );
        }
        let raw: RegoDecision = match serde_json::to_value(&value).and_then(serde_json::from_value)
        {
            Ok(r) => r,
            Err(e) => return fail(format!("rego: decision has the wrong shape: {e}")),
        };
        let to = |effect: Effect| {
            move |m: RegoMatch| MatchedPolicy {
                id: m.id,
                effect,
                reason: m.reason,
                escalate: match effect {
                    Effect::Permit => m.escalate,
                    Effect::Forbid => None,
                },
            }
        };
        let mut matched: Vec<MatchedPolicy> =
            raw.permit.into_iter().map(to(Effect::Permit)).collect();
        matched.extend(raw.forbid.into_iter().map(to(Effect::Forbid)));
        let errors = raw
            .errors
            .into_iter()
            .map(|message| EvaluationError {
                policy: None,
                message,
            })
            .collect();
        Evaluation { matched, errors }
    }
}
