//! The Cedar engine: policies validated against the Remit schema, static
//! entities cached, the per-call context built from typed values.
//!
//! Where the time of a decision goes, and what this module does about it
//! (instruction counts from `bench/policy`, see its README):
//!
//! - **Entities** are built once: the [`Directory`] becomes a Cedar
//!   [`Entities`] at load and again only when the registry changes.
//! - **Policies are sliced by action** at load. Cedar evaluates every policy
//!   of the set it is given; a policy whose action scope excludes the
//!   request's action can neither match nor fail (the scope is checked
//!   before the body), so each action gets the set of policies that can
//!   apply to it, and the other presets' rules cost nothing.
//! - **Slices are narrowed per (principal, resource)** (`cedar/narrow.rs`):
//!   a policy whose scope or leading conditions without `context` are false
//!   for a given agent and tool (or user and agent, agent and model, ...)
//!   can never match that pair, so it is dropped from the pair's slice; one
//!   whose scope and leading context-free conditions are true is replaced
//!   by its residual, the conditions left to evaluate (same id, effect and
//!   annotations). Computed on first use, cached, forgotten when the
//!   directory changes. The presets write their resource conditions first
//!   (`resource.external && ...`) so that more of them narrow.
//! - **The context holds only what the policies read.** Each slice records
//!   the context attributes its policies name (`context.x`,
//!   `context has x`); the per-call context is assembled with
//!   `Context::from_pairs` from the checked [`RequestContext`] with just
//!   those. A policy that uses `context` as a whole gets every attribute.
//!   A remit's tool (or model) set that the policies only ever ask
//!   `.contains(resource)` is passed reduced to the called resource (or
//!   empty), which answers that question the same (see `Fields` below).
//!   The schema validated every policy at load, so no policy can read an
//!   attribute the schema lacks, and the [`RequestContext`] type already
//!   guarantees the context's shape: the request is not validated against
//!   the schema again per call. Unknown principals and resources are still
//!   refused before evaluation ([`crate::engine::check_known`]).
//!
//! [`RequestContext`]: crate::request::RequestContext

use std::collections::{BTreeSet, HashMap, HashSet};
use std::str::FromStr as _;

use cedar_policy::{
    ActionConstraint, AuthorizationError, Authorizer, Context, Entities, Entity, EntityId,
    EntityTypeName, EntityUid, PolicyId, PolicySet, Request, RestrictedExpression, Schema,
    ValidationMode, Validator,
};

use crate::decision::{Effect, EscalationMode, Evaluation, EvaluationError, MatchedPolicy};
use crate::engine::{EngineKind, LoadError, PolicyEngine, PolicySource};
use crate::model::{Action, Directory, EntityKind, EntityRef};
use crate::request::DecisionRequest;
use crate::version::{sha256, PolicyVersion};

mod fields;
mod narrow;

use fields::{Field, Fields};

/// The Remit Cedar schema (human form).
pub const SCHEMA: &str = include_str!("../../policies/remit.cedarschema");

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
    /// One per action, in [`Action::ALL`] order.
    slices: Vec<Slice>,
    authorizer: Authorizer,
    /// Narrow each action's slice per (principal, resource) (see `narrow.rs`).
    narrowing: bool,
}

/// The policies that can apply to one action, and the context attributes
/// they read.
#[derive(Debug)]
struct Slice {
    action: Action,
    uid: EntityUid,
    policies: PolicySet,
    fields: Fields,
    guards: narrow::Guards,
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
        let mut reads: Vec<(cedar_policy::Policy, Fields)> = Vec::new();
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
                let matched = matched_policy(policy, &source.name)?;
                if let Some(other) = seen.insert(matched.id.clone(), source.name.clone()) {
                    return Err(LoadError::DuplicateId {
                        id: matched.id,
                        first: other,
                        second: source.name.clone(),
                    });
                }
                let pid = PolicyId::new(&matched.id);
                let renamed = policy.new_id(pid.clone());
                let json = renamed.to_json().map_err(|e| bad(e.to_string()))?;
                reads.push((renamed.clone(), Fields::read_by(&json)));
                let json =
                    serde_json_canonicalizer::to_string(&json).map_err(|e| bad(e.to_string()))?;
                canonical.push((matched.id.clone(), json));
                policies.add(renamed).map_err(|e| bad(e.to_string()))?;
                annotations.insert(pid, matched);
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
        let text = version_text(mode, canonical);
        let version = PolicyVersion::of_canonical(&text);
        let types = TypeNames::new()?;
        let slices = slice_by_action(&reads, &schema, &types)?;
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
            slices,
            authorizer: Authorizer::new(),
            narrowing: true,
        })
    }

    /// Turns narrowing per (principal, resource) of the policy slices on (the default)
    /// or off. Decisions are the same either way; this exists so that
    /// benchmarks and differential tests can compare the two.
    #[must_use]
    pub fn with_narrowing(mut self, on: bool) -> Self {
        self.narrowing = on;
        self
    }

    fn slice(&self, action: Action) -> Option<&Slice> {
        self.slices.iter().find(|s| s.action == action)
    }

    /// The slice narrowed to (principal, resource), if narrowing is on and
    /// possible. A principal or resource the directory does not hold is
    /// never narrowed (nor cached): `decide` refuses it before this,
    /// `evaluate` gets the whole slice.
    fn narrowed(
        &self,
        slice: &Slice,
        principal: &EntityRef,
        principal_uid: &EntityUid,
        resource: &EntityRef,
        resource_uid: &EntityUid,
    ) -> Option<std::sync::Arc<narrow::Narrowed>> {
        let known = self.directory.contains(principal) && self.directory.contains(resource);
        if !(self.narrowing && known) {
            return None;
        }
        slice.guards.narrowed(&narrow::Probe {
            authorizer: &self.authorizer,
            principal: principal_uid,
            principal_id: principal.id(),
            action: &slice.uid,
            resource: resource_uid,
            resource_id: resource.id(),
            entities: &self.entities,
        })
    }

    /// The Cedar context of a request: only the attributes in `fields`,
    /// converted from the checked, typed values (no JSON, no copies of the
    /// arguments).
    fn context(&self, req: &DecisionRequest, fields: Fields) -> Result<Context, String> {
        let c = req.context();
        let i = c.input();
        let t = &self.types;
        let strings = |set: &mut dyn Iterator<Item = &str>| {
            RestrictedExpression::new_set(set.map(|s| RestrictedExpression::new_string(s.into())))
        };
        let long = |v: u32| RestrictedExpression::new_long(i64::from(v));
        // A set of entity ids, whole or (when the policies only ask whether
        // it holds the resource, see [`Fields`]) intersected with the
        // request's resource.
        let entities = |kind: EntityKind, ids: &BTreeSet<String>, whole: bool| {
            if whole {
                RestrictedExpression::new_set(
                    ids.iter()
                        .map(|id| RestrictedExpression::new_entity_uid(t.uid(kind, id))),
                )
            } else {
                let r = req.resource();
                let held = r.kind() == kind && ids.contains(r.id());
                RestrictedExpression::new_set(
                    held.then(|| RestrictedExpression::new_entity_uid(t.uid_of(r))),
                )
            }
        };
        let mut pairs: Vec<(String, RestrictedExpression)> = Vec::with_capacity(fields.len());
        for field in fields.iter() {
            let value = match field {
                Field::ArgNames => strings(&mut c.arg_names()),
                Field::ArgsBytes => RestrictedExpression::new_long(
                    i64::try_from(c.args_bytes()).map_err(|e| e.to_string())?,
                ),
                Field::DataClass => RestrictedExpression::new_long(i.data_class.level()),
                Field::Pii => strings(&mut i.pii.iter().map(String::as_str)),
                Field::Secrets => strings(&mut i.secrets.iter().map(String::as_str)),
                Field::ChainDepth => long(i.chain_depth),
                Field::OriginalUser => {
                    RestrictedExpression::new_entity_uid(t.uid(EntityKind::User, &i.original_user))
                }
                Field::StepsUsed => long(i.steps_used),
                Field::StepsMax => long(i.steps_max),
                Field::RiskBudgetUsed => long(i.risk_budget_used),
                Field::RiskBudgetMax => long(i.risk_budget_max),
                Field::HourUtc => long(u32::from(i.hour_utc)),
                Field::Amr => strings(&mut i.amr.iter().map(String::as_str)),
                Field::Approved => RestrictedExpression::new_bool(i.approved),
                Field::Shadow => RestrictedExpression::new_bool(i.shadow),
                Field::Redacted => RestrictedExpression::new_bool(i.redacted),
                Field::RemitTools => entities(EntityKind::Tool, &i.remit_tools, fields.full(field)),
                Field::RemitModels => {
                    entities(EntityKind::Model, &i.remit_models, fields.full(field))
                }
                Field::DescriptionHash => match &i.description_hash {
                    Some(h) => RestrictedExpression::new_string(h.clone()),
                    None => continue,
                },
                Field::Pop => match c.pop() {
                    Some(p) => RestrictedExpression::new_string(p.as_str().to_owned()),
                    None => continue,
                },
                Field::Granted => RestrictedExpression::new_bool(c.granted()),
                Field::HolderClearance => match c.holder_clearance() {
                    Some(h) => RestrictedExpression::new_long(h.level()),
                    None => continue,
                },
                Field::ResourceUri => match c.resource_uri() {
                    Some(u) => RestrictedExpression::new_string(u.to_owned()),
                    None => continue,
                },
                Field::PromptName => match c.prompt_name() {
                    Some(n) => RestrictedExpression::new_string(n.to_owned()),
                    None => continue,
                },
            };
            pairs.push((field.name().to_owned(), value));
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

/// A policy's `@id`, `@reason` and `@escalate`, checked: the id and reason
/// are required, the id is not empty, and only a permit may escalate.
fn matched_policy(policy: &cedar_policy::Policy, file: &str) -> Result<MatchedPolicy, LoadError> {
    let bad = |message: String| LoadError::Policy {
        file: file.to_owned(),
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
    Ok(MatchedPolicy {
        id,
        effect,
        reason,
        escalate,
    })
}

/// The text whose hash is the set's [`PolicyVersion`]: the engine, the
/// escalation mode, the schema's hash and each policy's canonical JSON,
/// sorted by id (so file order and layout do not change the version).
fn version_text(mode: EscalationMode, mut canonical: Vec<(String, String)>) -> String {
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
    text
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

/// Splits the validated policies by the actions their scope admits.
fn slice_by_action(
    reads: &[(cedar_policy::Policy, Fields)],
    schema: &Schema,
    t: &TypeNames,
) -> Result<Vec<Slice>, LoadError> {
    let schema_err = |message: String| LoadError::Schema { message };
    // Action groups, if the schema ever has any, make `action in G` admit
    // G's members: ask the schema's action hierarchy, not string equality.
    let hierarchy = schema
        .action_entities()
        .map_err(|e| schema_err(e.to_string()))?;
    let mut slices = Vec::with_capacity(Action::ALL.len());
    for action in Action::ALL {
        let uid =
            EntityUid::from_type_name_and_id(t.action.clone(), EntityId::new(action.as_str()));
        let in_group = |group: &EntityUid| {
            *group == uid
                || hierarchy
                    .ancestors(&uid)
                    .is_some_and(|mut a| a.any(|x| x == group))
        };
        let mut policies = PolicySet::new();
        let mut fields = Fields::NONE;
        let mut members = Vec::new();
        for (policy, read) in reads {
            let admits = match policy.action_constraint() {
                ActionConstraint::Any => true,
                ActionConstraint::Eq(a) => a == uid,
                ActionConstraint::In(groups) => groups.iter().any(in_group),
            };
            if admits {
                policies
                    .add(policy.clone())
                    .map_err(|e| schema_err(e.to_string()))?;
                fields = fields.union(*read);
                members.push((policy.clone(), *read));
            }
        }
        slices.push(Slice {
            action,
            uid,
            policies,
            fields,
            guards: narrow::Guards::new(members),
        });
    }
    Ok(slices)
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
        self.entities = build_entities(&directory, &self.schema, &self.types)?;
        self.directory = directory;
        for slice in &self.slices {
            slice.guards.clear();
        }
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
        let Some(slice) = self.slice(req.action()) else {
            return fail(format!("action {} is not in the schema", req.action()));
        };
        let principal = self.types.uid_of(req.principal());
        let resource = self.types.uid_of(req.resource());
        let narrowed = self.narrowed(
            slice,
            req.principal(),
            &principal,
            req.resource(),
            &resource,
        );
        let (policies, fields) = match &narrowed {
            Some(n) => (&n.policies, n.fields),
            None => (&slice.policies, slice.fields),
        };
        let context = match self.context(req, fields) {
            Ok(c) => c,
            Err(m) => return fail(m),
        };
        // No schema here: the context's shape is guaranteed by its type and
        // the policies were validated at load (see the module doc).
        let request = match Request::new(principal, slice.uid.clone(), resource, context, None) {
            Ok(r) => r,
            Err(e) => return fail(e.to_string()),
        };
        let response = self
            .authorizer
            .is_authorized(&request, policies, &self.entities);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::shipped::{CEDAR_STANDARD, SAMPLE_ENTITIES};

    fn standard() -> PolicySource {
        PolicySource::new("preset.cedar", CEDAR_STANDARD)
    }

    #[test]
    fn fields_are_exactly_the_schema_context_attributes() {
        let body = SCHEMA
            .split("type RequestContext = {")
            .nth(1)
            .and_then(|r| r.split("};").next())
            .unwrap();
        let schema_names: Vec<&str> = body
            .lines()
            .filter_map(|l| l.trim().split_once(':'))
            .map(|(name, _)| name.trim_end_matches('?'))
            .collect();
        assert_eq!(schema_names, Fields::ALL.names());
    }

    #[test]
    fn narrowing_drops_what_cannot_apply_to_the_pair_and_folds_the_rest() {
        let dir = Directory::from_json(SAMPLE_ENTITIES).unwrap();
        let e = CedarEngine::load(&[standard()], EscalationMode::PlainPermitWins, dir).unwrap();
        let slice = e.slice(Action::CallTool).unwrap();
        let agent = EntityRef::new(EntityKind::Agent, "a").unwrap();
        let tool = EntityRef::new(EntityKind::Tool, "github/create_issue").unwrap();
        let (a, t) = (e.types.uid_of(&agent), e.types.uid_of(&tool));
        let n = e.narrowed(slice, &agent, &a, &tool, &t).unwrap();
        let mut ids: Vec<String> = n.policies.policies().map(|p| p.id().to_string()).collect();
        ids.sort();
        assert_eq!(
            ids,
            [
                "std-approved",
                "std-description-changed",
                "std-medium-over-budget",
                "std-medium-within-budget",
                "std-restricted-to-tool",
                "std-steps-exhausted",
                "std-tool-not-in-remit",
            ]
        );
        // The resource test of the medium-risk rule is answered: what is
        // left reads only the context.
        let within = n
            .policies
            .policy(&PolicyId::new("std-medium-within-budget"))
            .unwrap()
            .to_string();
        assert!(!within.contains("resource.risk"), "{within}");
        assert!(within.contains("context.risk_budget_used"), "{within}");
        // Another registered agent on the same tool comes to the same
        // outcome and shares the slice; a low-risk tool does not.
        let helper = EntityRef::new(EntityKind::Agent, "helper").unwrap();
        let h = e.types.uid_of(&helper);
        let same = e.narrowed(slice, &helper, &h, &tool, &t).unwrap();
        assert!(std::sync::Arc::ptr_eq(&n, &same));
        let search = EntityRef::new(EntityKind::Tool, "github/search").unwrap();
        let s = e.types.uid_of(&search);
        let other = e.narrowed(slice, &agent, &a, &search, &s).unwrap();
        assert!(!std::sync::Arc::ptr_eq(&n, &other));
        assert!(other
            .policies
            .policy(&PolicyId::new("std-low-risk"))
            .is_some());
        // Without narrowing the slice keeps every call_tool policy.
        let full = e.with_narrowing(false);
        let slice = full.slice(Action::CallTool).unwrap();
        assert!(full.narrowed(slice, &agent, &a, &tool, &t).is_none());
        assert!(slice
            .policies
            .policy(&PolicyId::new("std-agent-unregistered"))
            .is_some());
    }

    #[test]
    fn policies_are_sliced_by_the_actions_their_scope_admits() {
        let dir = Directory::from_json(SAMPLE_ENTITIES).unwrap();
        let e = CedarEngine::load(&[standard()], EscalationMode::PlainPermitWins, dir).unwrap();
        let ids = |a: Action| -> Vec<String> {
            let mut v: Vec<String> = e
                .slice(a)
                .unwrap()
                .policies
                .policies()
                .map(|p| p.id().to_string())
                .collect();
            v.sort();
            v
        };
        let call = ids(Action::CallTool);
        assert!(call.contains(&"std-agent-unregistered".to_owned()));
        assert!(call.contains(&"std-tool-not-in-remit".to_owned()));
        assert!(call.contains(&"std-approved".to_owned()));
        assert!(!call.contains(&"std-send-prompt".to_owned()));
        assert!(!call.contains(&"std-issue-own-agent".to_owned()));
        assert!(ids(Action::SendPrompt).contains(&"std-send-prompt".to_owned()));
        // Every policy lands in at least one slice.
        let total: std::collections::BTreeSet<String> =
            Action::ALL.into_iter().flat_map(ids).collect();
        assert_eq!(total.len(), e.policies().policies().count());
        // The call_tool context omits what no call_tool policy reads.
        let f = e.slice(Action::CallTool).unwrap().fields;
        assert!(f.names().contains(&"remit_tools"));
        assert!(!f.names().contains(&"arg_names"));
        assert!(!f.names().contains(&"shadow"));
    }
}
