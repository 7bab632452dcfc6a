//! Narrowing an action's policy slice to one resource, soundly.
//!
//! A tool's risk, clearance and server, a model's clearance, a server's
//! blessing: everything a policy reads from the *resource* is static between
//! two directory changes. So most resource-dependent policies can never
//! match a given resource (`resource.risk == "low"` on a medium-risk tool),
//! yet Cedar would evaluate them on every call. This module works out, once
//! per (action, resource), which policies of the slice can be dropped.
//!
//! ## The guard of a policy, and why dropping on it is sound
//!
//! Cedar evaluates a policy as the conjunction, left to right with
//! short-circuit, of its scope constraints (principal, action, resource),
//! then its `when` bodies and the negation of its `unless` bodies, in the
//! order written. Splitting the top-level `&&` of each `when` body gives a
//! list of conjuncts evaluated in exactly that order.
//!
//! The *guard* of a policy is its resource scope constraint and the longest
//! prefix of those conjuncts that reads neither `principal` nor `context`.
//! It depends only on the action and the resource (and the entities), so it
//! is evaluated once with a placeholder principal and an empty context:
//!
//! - guard **false** (no error): the policy is false for every principal and
//!   context. Its principal and action scope constraints cannot error (they
//!   are `==`, `in` and `is` tests), so evaluation reaches the guard's
//!   conjuncts, or stops earlier at a false scope; either way it is false,
//!   never an error. The policy is dropped.
//! - guard **true** or **error**: the policy is kept, unchanged, and Cedar
//!   evaluates it per call as before (so an error is still reported, and
//!   still denies).
//!
//! Policies without a guard (no resource constraint, first conjunct reads
//! the principal or the context) are always kept. Nothing is rewritten:
//! the kept policies are the original ones, so decisions, reasons and
//! determining ids are those of the full slice (the differential test in
//! `tests/narrowing.rs` checks this on every decision-table case).
//!
//! Narrowed slices are built on first use and cached per resource id; the
//! cache is emptied whenever the directory changes.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use cedar_policy::{
    AuthorizationError, Authorizer, Context, Entities, EntityId, EntityTypeName, EntityUid, Policy,
    PolicyId, PolicySet, Request,
};

use super::Fields;

/// A policy slice with the guards needed to narrow it per resource.
#[derive(Debug)]
pub(super) struct Guards {
    /// Every policy of the slice with the context attributes it reads.
    members: Vec<(Policy, Fields)>,
    /// One guard policy per guarded member, under the member's id.
    guards: PolicySet,
    /// Narrowed slices by resource id.
    cache: RwLock<HashMap<String, Arc<Narrowed>>>,
}

/// The policies of a slice that can apply to one resource.
#[derive(Debug)]
pub(super) struct Narrowed {
    /// The kept policies (unchanged).
    pub(super) policies: PolicySet,
    /// The union of what they read.
    pub(super) fields: Fields,
}

/// The most resources whose narrowed slices are cached per action; past it
/// the cache starts over (a directory that large still works, only slower).
const MAX_CACHED: usize = 65_536;

/// What a narrowing needs to know about the request: everything but the
/// principal and the context, which no guard reads.
#[derive(Debug)]
pub(super) struct Probe<'a> {
    /// Evaluates the guards.
    pub(super) authorizer: &'a Authorizer,
    /// The principal type of the action (a placeholder of it is used).
    pub(super) principal_type: &'a EntityTypeName,
    /// The action.
    pub(super) action: &'a EntityUid,
    /// The resource.
    pub(super) resource: &'a EntityUid,
    /// The resource's id (the cache key).
    pub(super) resource_id: &'a str,
    /// The entities the decision will use.
    pub(super) entities: &'a Entities,
}

impl Guards {
    /// Computes the guards of the slice's policies. A policy whose guard
    /// cannot be built is simply never dropped.
    pub(super) fn new(members: Vec<(Policy, Fields)>) -> Self {
        let mut guards = PolicySet::new();
        for (policy, _) in &members {
            let guard = policy
                .to_json()
                .ok()
                .and_then(|est| guard_of(&est))
                .and_then(|g| Policy::from_json(Some(policy.id().clone()), g).ok());
            if let Some(guard) = guard {
                // Ids are unique in the slice, so this cannot collide; if it
                // did, the policy would stay unguarded (always kept).
                let _ = guards.add(guard);
            }
        }
        Self {
            members,
            guards,
            cache: RwLock::new(HashMap::new()),
        }
    }

    /// Forgets every narrowed slice (the directory changed).
    pub(super) fn clear(&self) {
        if let Ok(mut cache) = self.cache.write() {
            cache.clear();
        }
    }

    /// The slice narrowed to `resource`, from the cache or computed now.
    /// `None` when narrowing is not possible (the caller then uses the whole
    /// slice, which is always correct).
    pub(super) fn narrowed(&self, probe: &Probe<'_>) -> Option<Arc<Narrowed>> {
        if let Some(n) = self.cache.read().ok()?.get(probe.resource_id) {
            return Some(Arc::clone(n));
        }
        // A placeholder principal: no guard reads the principal.
        let principal =
            EntityUid::from_type_name_and_id(probe.principal_type.clone(), EntityId::new(""));
        let request = Request::new(
            principal,
            probe.action.clone(),
            probe.resource.clone(),
            Context::empty(),
            None,
        )
        .ok()?;
        let response = probe
            .authorizer
            .is_authorized(&request, &self.guards, probe.entities);
        let diagnostics = response.diagnostics();
        let mut keep: HashSet<&PolicyId> = diagnostics.reason().collect();
        let errored: Vec<PolicyId> = diagnostics
            .errors()
            .map(|e| {
                let AuthorizationError::PolicyEvaluationError(pe) = e;
                pe.policy_id().clone()
            })
            .collect();
        keep.extend(errored.iter());
        let mut policies = PolicySet::new();
        let mut fields = Fields::NONE;
        for (policy, read) in &self.members {
            let guarded = self.guards.policy(policy.id()).is_some();
            if !guarded || keep.contains(policy.id()) {
                policies.add(policy.clone()).ok()?;
                fields = fields.union(*read);
            }
        }
        let narrowed = Arc::new(Narrowed { policies, fields });
        if let Ok(mut cache) = self.cache.write() {
            if cache.len() >= MAX_CACHED {
                cache.clear();
            }
            cache.insert(probe.resource_id.to_owned(), Arc::clone(&narrowed));
        }
        Some(narrowed)
    }
}

/// The guard of a policy (its JSON form): a permit with the policy's
/// resource scope and the leading conjuncts that read neither `principal`
/// nor `context`; `None` if there is nothing to test.
pub(super) fn guard_of(est: &serde_json::Value) -> Option<serde_json::Value> {
    let all = serde_json::json!({ "op": "All" });
    let resource = est.get("resource").cloned().unwrap_or_else(|| all.clone());
    let mut conjuncts = Vec::new();
    for condition in est
        .get("conditions")
        .and_then(serde_json::Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let body = condition.get("body")?;
        match condition.get("kind").and_then(serde_json::Value::as_str)? {
            "when" => flatten_and(body, &mut conjuncts),
            "unless" => conjuncts.push(serde_json::json!({ "!": { "arg": body } })),
            // An unknown clause kind: take nothing from here on.
            _ => break,
        }
    }
    let prefix: Vec<serde_json::Value> = conjuncts
        .into_iter()
        .take_while(reads_only_resource)
        .collect();
    if prefix.is_empty() && resource == all {
        return None;
    }
    let conditions = match prefix
        .into_iter()
        .reduce(|left, right| serde_json::json!({ "&&": { "left": left, "right": right } }))
    {
        Some(body) => serde_json::json!([{ "kind": "when", "body": body }]),
        None => serde_json::json!([]),
    };
    Some(serde_json::json!({
        "effect": "permit",
        "principal": all,
        "action": { "op": "All" },
        "resource": resource,
        "conditions": conditions,
    }))
}

/// Splits the top-level `&&` of an expression, left to right.
fn flatten_and(e: &serde_json::Value, out: &mut Vec<serde_json::Value>) {
    if let Some(map) = e.as_object() {
        if map.len() == 1 {
            if let Some(and) = map.get("&&") {
                if let (Some(l), Some(r)) = (and.get("left"), and.get("right")) {
                    flatten_and(l, out);
                    flatten_and(r, out);
                    return;
                }
            }
        }
    }
    out.push(e.clone());
}

/// Whether an expression reads neither `principal` nor `context` (nor a
/// template slot): its value depends on the action and resource only.
fn reads_only_resource(e: &serde_json::Value) -> bool {
    match e {
        serde_json::Value::Object(map) => map.iter().all(|(k, v)| {
            let var = k == "Var" && matches!(v.as_str(), Some("principal" | "context"));
            !var && k != "Slot" && reads_only_resource(v)
        }),
        serde_json::Value::Array(items) => items.iter().all(reads_only_resource),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr as _;

    fn guard(policy: &str) -> Option<String> {
        let p = Policy::from_str(policy).unwrap();
        guard_of(&p.to_json().unwrap()).map(|g| {
            Policy::from_json(None, g)
                .unwrap()
                .to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
    }

    #[test]
    fn a_leading_context_condition_leaves_no_guard() {
        // The context test comes first: it could error before the resource
        // test is reached, so nothing may be decided without the context.
        assert_eq!(
            guard(
                r#"permit (principal, action, resource)
                   when { context.approved && resource.risk == "low" };"#
            ),
            None
        );
        assert_eq!(
            guard(r#"forbid (principal, action, resource) unless { principal.registered };"#),
            None
        );
        assert_eq!(guard("permit (principal, action, resource);"), None);
    }

    #[test]
    fn the_guard_is_the_resource_scope_and_the_leading_resource_conditions() {
        let g = guard(
            r#"permit (principal == Agent::"a", action, resource is Tool)
               when { resource.risk == "medium" && resource.external && context.approved }
               when { resource.name == "x" };"#,
        )
        .unwrap();
        assert!(g.contains("resource is Tool"), "{g}");
        assert!(g.contains(r#"resource.risk == "medium""#), "{g}");
        assert!(g.contains("resource.external"), "{g}");
        assert!(!g.contains("context"), "{g}");
        assert!(!g.contains("principal =="), "{g}");
        // Conditions after the first context read are not part of it.
        assert!(!g.contains(r#"resource.name"#), "{g}");
        let g =
            guard(r#"forbid (principal, action, resource) unless { resource.server.blessed };"#)
                .unwrap();
        assert!(
            g.contains("!(resource.server.blessed)") || g.contains("!resource.server.blessed"),
            "{g}"
        );
    }
}
