//! The Cedar engine: policies validated against the Remit schema, static
//! entities cached, the per-call context built from typed values.
//!
//! Speed comes from not parsing JSON per call: the [`Directory`] becomes a
//! Cedar [`Entities`] once (and again only when the registry changes), and
//! each request's context is assembled with `Context::from_pairs` from the
//! already-checked [`RequestContext`].

use std::collections::{HashMap, HashSet};
use std::str::FromStr as _;

use cedar_policy::{
    AuthorizationError, Authorizer, Context, Entities, Entity, EntityId, EntityTypeName, EntityUid,
    PolicyId, PolicySet, Request, RestrictedExpression, Schema, ValidationMode, Validator,
};

use crate::decision::{Effect, EscalationMode, Evaluation, EvaluationError, MatchedPolicy};
use crate::engine::{EngineKind, LoadError, PolicyEngine, PolicySource};
use crate::model::{Action, Directory, EntityKind, EntityRef};
use crate::request::DecisionRequest;
use crate::version::{sha256, PolicyVersion};

/// The Remit Cedar schema (human form).
pub const SCHEMA: &str = include_str!("../policies/remit.cedarschema");

/// Parses the built-in schema.
pub fn schema() -> Result<Schema, LoadError> {
    Schema::from_cedarschema_str(SCHEMA)
        .map(|(s, _warnings)| s)
        .map_err(|e| LoadError::Schema {
            message: e.to_string(),
        })
}

#[derive(Debug, Clone)]
struct TypeNames {
    user: EntityTypeName,
    agent: EntityTypeName,
    server: EntityTypeName,
    tool: EntityTypeName,
    model: EntityTypeName,
    action: EntityTypeName,
}

impl TypeNames {
    fn new() -> Result<Self, LoadError> {
        let p = |s: &str| {
            EntityTypeName::from_str(s).map_err(|e| LoadError::Schema {
                message: e.to_string(),
            })
        };
        Ok(Self {
            user: p("User")?,
            agent: p("Agent")?,
            server: p("Server")?,
            tool: p("Tool")?,
            model: p("Model")?,
            action: p("Action")?,
        })
    }

    fn of(&self, kind: EntityKind) -> &EntityTypeName {
        match kind {
            EntityKind::User => &self.user,
            EntityKind::Agent => &self.agent,
            EntityKind::Server => &self.server,
            EntityKind::Tool => &self.tool,
            EntityKind::Model => &self.model,
        }
    }

    fn uid(&self, kind: EntityKind, id: &str) -> EntityUid {
        EntityUid::from_type_name_and_id(self.of(kind).clone(), EntityId::new(id))
    }

    fn uid_of(&self, r: &EntityRef) -> EntityUid {
        self.uid(r.kind(), r.id())
    }
}

/// A Cedar policy set ready to decide.
#[derive(Debug)]
pub struct CedarEngine {
    policies: PolicySet,
    schema: Schema,
    annotations: HashMap<PolicyId, MatchedPolicy>,
    entities: Entities,
    directory: Directory,
    mode: EscalationMode,
    version: PolicyVersion,
    types: TypeNames,
    actions: Vec<(Action, EntityUid)>,
    authorizer: Authorizer,
}

impl CedarEngine {
    /// Parses, names and validates the sources against the schema, all
    /// together, and caches the directory's entities.
    ///
    /// Every policy needs `@id("...")` (unique across all files) and
    /// `@reason("...")`; `@escalate` is allowed on permits only; templates
    /// are refused.
    pub fn load(
        sources: &[PolicySource],
        mode: EscalationMode,
        directory: Directory,
    ) -> Result<Self, LoadError> {
        let schema = schema()?;
        let mut policies = PolicySet::new();
        let mut annotations = HashMap::new();
        let mut canonical: Vec<(String, String)> = Vec::new();
        let mut seen: HashMap<String, String> = HashMap::new();
        for source in sources {
            let parsed = PolicySet::from_str(&source.text).map_err(|e| LoadError::Syntax {
                file: source.name.clone(),
                message: format!("{e:?}").replace("\\n", "\n"),
            })?;
            if parsed.templates().next().is_some() {
                return Err(LoadError::Policy {
                    file: source.name.clone(),
                    message: "templates are not supported: write concrete policies".into(),
                });
            }
            for policy in parsed.policies() {
                let bad = |message: String| LoadError::Policy {
                    file: source.name.clone(),
                    message,
                };
                let id = policy
                    .annotation("id")
                    .ok_or_else(|| bad(format!("a policy has no @id: {}", first_line(policy))))?
                    .to_owned();
                if id.is_empty() {
                    return Err(bad("@id must not be empty".into()));
                }
                let reason = policy
                    .annotation("reason")
                    .ok_or_else(|| bad(format!("policy {id} has no @reason")))?
                    .to_owned();
                let effect = match policy.effect() {
                    cedar_policy::Effect::Permit => Effect::Permit,
                    cedar_policy::Effect::Forbid => Effect::Forbid,
                };
                let escalate = policy.annotation("escalate").map(str::to_owned);
                if escalate.is_some() && effect == Effect::Forbid {
                    return Err(bad(format!(
                        "policy {id}: @escalate only makes sense on a permit (a forbid always wins)"
                    )));
                }
                if let Some(other) = seen.insert(id.clone(), source.name.clone()) {
                    return Err(LoadError::DuplicateId {
                        id,
                        first: other,
                        second: source.name.clone(),
                    });
                }
                let pid = PolicyId::new(&id);
                let renamed = policy.new_id(pid.clone());
                let json = renamed.to_json().map_err(|e| bad(e.to_string()))?;
                let json =
                    serde_json_canonicalizer::to_string(&json).map_err(|e| bad(e.to_string()))?;
                canonical.push((id.clone(), json));
                policies.add(renamed).map_err(|e| bad(e.to_string()))?;
                annotations.insert(
                    pid,
                    MatchedPolicy {
                        id,
                        effect,
                        reason,
                        escalate,
                    },
                );
            }
        }
        let result = Validator::new(schema.clone()).validate(&policies, ValidationMode::Strict);
        if !result.validation_passed() {
            let messages = result
                .validation_errors()
                .map(|e| format!("policy {}: {e}", e.policy_id()))
                .collect();
            return Err(LoadError::Validation { messages });
        }
        canonical.sort();
        let mut text = format!(
            "remit-policy/v1\nengine cedar\nescalation {}\nschema {}\n",
            mode.as_str(),
            hex::encode(sha256(SCHEMA.as_bytes()))
        );
        for (id, json) in &canonical {
            text.push_str("policy ");
            text.push_str(id);
            text.push('\n');
            text.push_str(json);
            text.push('\n');
        }
        let version = PolicyVersion::of_canonical(&text);
        let types = TypeNames::new()?;
        let actions = Action::ALL
            .into_iter()
            .map(|a| {
                let uid = EntityUid::from_type_name_and_id(
                    types.action.clone(),
                    EntityId::new(a.as_str()),
                );
                (a, uid)
            })
            .collect();
        let entities = build_entities(&directory, &schema, &types)?;
        Ok(Self {
            policies,
            schema,
            annotations,
            entities,
            directory,
            mode,
            version,
            types,
            actions,
            authorizer: Authorizer::new(),
        })
    }

    fn action_uid(&self, action: Action) -> Option<&EntityUid> {
        self.actions
            .iter()
            .find(|(a, _)| *a == action)
            .map(|(_, uid)| uid)
    }

    fn context(&self, req: &DecisionRequest) -> Result<Context, String> {
        let c = req.context();
        let i = c.input();
        let t = &self.types;
        let strings = |set: &mut dyn Iterator<Item = &String>| {
            RestrictedExpression::new_set(set.map(|s| RestrictedExpression::new_string(s.clone())))
        };
        let long = |v: u32| RestrictedExpression::new_long(i64::from(v));
        let mut pairs: Vec<(String, RestrictedExpression)> =
            vec![
                ("arg_names".into(), strings(&mut c.arg_names().iter())),
                (
                    "args_bytes".into(),
                    RestrictedExpression::new_long(c.args_bytes() as i64),
                ),
                (
                    "data_class".into(),
                    RestrictedExpression::new_long(i.data_class.level()),
                ),
                ("pii".into(), strings(&mut i.pii.iter())),
                ("secrets".into(), strings(&mut i.secrets.iter())),
                ("chain_depth".into(), long(i.chain_depth)),
                (
                    "original_user".into(),
                    RestrictedExpression::new_entity_uid(t.uid(EntityKind::User, &i.original_user)),
                ),
                ("steps_used".into(), long(i.steps_used)),
                ("steps_max".into(), long(i.steps_max)),
                ("risk_budget_used".into(), long(i.risk_budget_used)),
                ("risk_budget_max".into(), long(i.risk_budget_max)),
                ("hour_utc".into(), long(u32::from(i.hour_utc))),
                ("amr".into(), strings(&mut i.amr.iter())),
                (
                    "approved".into(),
                    RestrictedExpression::new_bool(i.approved),
                ),
                ("shadow".into(), RestrictedExpression::new_bool(i.shadow)),
                (
                    "redacted".into(),
                    RestrictedExpression::new_bool(i.redacted),
                ),
                (
                    "remit_tools".into(),
                    RestrictedExpression::new_set(i.remit_tools.iter().map(|id| {
                        RestrictedExpression::new_entity_uid(t.uid(EntityKind::Tool, id))
                    })),
                ),
                (
                    "remit_models".into(),
                    RestrictedExpression::new_set(i.remit_models.iter().map(|id| {
                        RestrictedExpression::new_entity_uid(t.uid(EntityKind::Model, id))
                    })),
                ),
            ];
        if let Some(h) = &i.description_hash {
            pairs.push((
                "description_hash".into(),
                RestrictedExpression::new_string(h.clone()),
            ));
        }
        Context::from_pairs(pairs).map_err(|e| e.to_string())
    }

    /// The policy set, for callers that want Cedar's own tooling.
    pub fn policies(&self) -> &PolicySet {
        &self.policies
    }

    /// The annotations of a policy id.
    pub fn policy(&self, id: &str) -> Option<&MatchedPolicy> {
        self.annotations.get(&PolicyId::new(id))
    }
}

fn first_line(policy: &cedar_policy::Policy) -> String {
    policy
        .to_string()
        .lines()
        .find(|l| !l.trim().is_empty() && !l.trim_start().starts_with('@'))
        .unwrap_or("")
        .trim()
        .to_owned()
}

fn build_entities(dir: &Directory, schema: &Schema, t: &TypeNames) -> Result<Entities, LoadError> {
    let err = |m: String| LoadError::Entities { message: m };
    let mut out = Vec::new();
    let none = HashSet::new;
    for id in dir.users.keys() {
        out.push(Entity::new_no_attrs(t.uid(EntityKind::User, id), none()));
    }
    for (id, a) in &dir.agents {
        let attrs = HashMap::from([
            (
                "owner".to_owned(),
                RestrictedExpression::new_entity_uid(t.uid(EntityKind::User, &a.owner)),
            ),
            (
                "risk_tier".to_owned(),
                RestrictedExpression::new_long(i64::from(a.risk_tier.get())),
            ),
            (
                "registered".to_owned(),
                RestrictedExpression::new_bool(a.registered),
            ),
        ]);
        out.push(
            Entity::new(t.uid(EntityKind::Agent, id), attrs, none())
                .map_err(|e| err(e.to_string()))?,
        );
    }
    for (id, s) in &dir.servers {
        let attrs = HashMap::from([
            (
                "blessed".to_owned(),
                RestrictedExpression::new_bool(s.blessed),
            ),
            (
                "pinned_description_hash".to_owned(),
                RestrictedExpression::new_string(s.pinned_description_hash.clone()),
            ),
        ]);
        out.push(
            Entity::new(t.uid(EntityKind::Server, id), attrs, none())
                .map_err(|e| err(e.to_string()))?,
        );
    }
    for (id, tool) in &dir.tools {
        let attrs = HashMap::from([
            (
                "server".to_owned(),
                RestrictedExpression::new_entity_uid(t.uid(EntityKind::Server, &tool.server)),
            ),
            (
                "name".to_owned(),
                RestrictedExpression::new_string(tool.name.clone()),
            ),
            (
                "risk".to_owned(),
                RestrictedExpression::new_string(tool.risk.as_str().to_owned()),
            ),
            (
                "destination_clearance".to_owned(),
                RestrictedExpression::new_long(tool.destination_clearance.level()),
            ),
            (
                "external".to_owned(),
                RestrictedExpression::new_bool(tool.external),
            ),
        ]);
        out.push(
            Entity::new(t.uid(EntityKind::Tool, id), attrs, none())
                .map_err(|e| err(e.to_string()))?,
        );
    }
    for (id, m) in &dir.models {
        let attrs = HashMap::from([
            (
                "external".to_owned(),
                RestrictedExpression::new_bool(m.external),
            ),
            (
                "clearance".to_owned(),
                RestrictedExpression::new_long(m.clearance.level()),
            ),
        ]);
        out.push(
            Entity::new(t.uid(EntityKind::Model, id), attrs, none())
                .map_err(|e| err(e.to_string()))?,
        );
    }
    Entities::from_entities(out, Some(schema)).map_err(|e| err(e.to_string()))
}

impl PolicyEngine for CedarEngine {
    fn kind(&self) -> EngineKind {
        EngineKind::Cedar
    }

    fn version(&self) -> &PolicyVersion {
        &self.version
    }

    fn mode(&self) -> EscalationMode {
        self.mode
    }

    fn directory(&self) -> &Directory {
        &self.directory
    }

    fn set_directory(&mut self, directory: Directory) -> Result<(), LoadError> {
        self.entities = build_entities(&directory, &self.schema, &self.types)?;
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
        let context = match self.context(req) {
            Ok(c) => c,
            Err(m) => return fail(m),
        };
        let Some(action) = self.action_uid(req.action()).cloned() else {
            return fail(format!("action {} is not in the schema", req.action()));
        };
        let request = match Request::new(
            self.types.uid_of(req.principal()),
            action,
            self.types.uid_of(req.resource()),
            context,
            None,
        ) {
            Ok(r) => r,
            Err(e) => return fail(e.to_string()),
        };
        let response = self
            .authorizer
            .is_authorized(&request, &self.policies, &self.entities);
        let diagnostics = response.diagnostics();
        let mut matched = Vec::new();
        let mut errors = Vec::new();
        for id in diagnostics.reason() {
            match self.annotations.get(id) {
                Some(p) => matched.push(p.clone()),
                None => errors.push(EvaluationError {
                    policy: Some(id.to_string()),
                    message: "matched a policy with no annotations".into(),
                }),
            }
        }
        for e in diagnostics.errors() {
            let AuthorizationError::PolicyEvaluationError(pe) = e;
            errors.push(EvaluationError {
                policy: Some(pe.policy_id().to_string()),
                message: pe.inner().to_string(),
            });
        }
        Evaluation { matched, errors }
    }
}
