//! Narrowing an action's policy slice to one (principal, resource) pair,
//! soundly.
//!
//! An agent's registration, owner and risk tier, a tool's risk, clearance
//! and server, a model's clearance, a server's blessing: everything a policy
//! reads from the *principal* and the *resource* is static between two
//! directory changes. So many policies can never match a given pair
//! (`resource.risk == "low"` on a medium-risk tool, `unless {
//! principal.registered }` for a registered agent), and many others start
//! with tests whose answer for the pair is already known; yet Cedar would
//! evaluate all of it on every call. This module works out, once per
//! (action, principal, resource), which policies of the slice can be
//! dropped and what is left to evaluate of the others.
//!
//! ## The guard of a policy, and why narrowing on it is sound
//!
//! Cedar evaluates a policy as the conjunction, left to right with
//! short-circuit, of its scope constraints (principal, action, resource),
//! then its `when` bodies and the negation of its `unless` bodies, in the
//! order written. Splitting the top-level `&&` of each `when` body gives a
//! list of conjuncts evaluated in exactly that order.
//!
//! The *guard* of a policy is its three scope constraints and the longest
//! prefix of those conjuncts that does not read `context`. It depends only
//! on the principal, the action and the resource (and the entities), so it
//! is evaluated once per pair with an empty context, and its outcome holds
//! for every context:
//!
//! - guard **false** (no error): some scope constraint or prefix conjunct
//!   is false and everything before it is true, without error; the policy
//!   evaluates the same things in the same order, so it is false for every
//!   context, never an error. The policy is **dropped**.
//! - guard **true** (no error): every scope constraint and prefix conjunct
//!   is true, so the policy's value (and error) is exactly that of its
//!   remaining conjuncts, in order (`true && e` is `e`; Cedar's `&&`
//!   evaluates `e` the same way in both). The policy is **replaced by its
//!   residual**: the same id, effect and annotations, unconstrained scope
//!   and only the remaining conjuncts. Per call, Cedar no longer looks up
//!   the principal's and the resource's attributes for the prefix.
//! - guard **error**: the policy is kept unchanged, and Cedar evaluates it
//!   per call as before (so the error is still reported, and still denies).
//!
//! A policy with nothing to test (no scope constraint, first conjunct reads
//! the context), or whose conditions this module does not understand, is
//! kept unchanged. Only the prefix is ever folded: a conjunct after the
//! first context read stays in the residual even if it reads no context,
//! because the context conjunct before it may be false or fail first. The
//! differential test in `tests/narrowing.rs` checks, on every case of every
//! decision table, that decisions, reasons, determining ids and errors are
//! those of the full slice.
//!
//! Narrowed slices are built on first use and cached per (resource,
//! principal); pairs with the same outcome (the same policies dropped, kept
//! or folded) share one slice, so a large directory costs a pointer per
//! pair, not a policy set. The cache is bounded (it starts over when full)
//! and emptied whenever the directory changes. Pairs the directory does not
//! hold are never narrowed nor cached (the engine checks this before
//! asking).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use cedar_policy::{
    AuthorizationError, Authorizer, Context, Entities, EntityUid, Policy, PolicyId, PolicySet,
    Request,
};

use super::fields::Fields;

/// One policy of a slice, ready to be narrowed.
#[derive(Debug)]
struct Member {
    /// The policy as written.
    policy: Policy,
    /// The context attributes it reads (its residual reads the same: the
    /// guard reads no context).
    reads: Fields,
    /// The policy without its guard, used when the guard is true; `None`
    /// when it has no guard or the residual could not be built (then the
    /// policy is kept unchanged).
    residual: Option<Policy>,
}

/// A policy slice with the guards needed to narrow it per pair.
#[derive(Debug)]
pub(super) struct Guards {
    members: Vec<Member>,
    /// One guard policy per guarded member, under the member's id.
    guards: PolicySet,
    cache: RwLock<Cache>,
}

/// Narrowed slices by resource id, then principal id.
#[derive(Debug, Default)]
struct Cache {
    by_resource: HashMap<String, HashMap<String, Arc<Narrowed>>>,
    /// Pairs cached.
    len: usize,
    /// One narrowed slice per distinct outcome (what became of each
    /// member): many pairs share one, so the cache holds a pointer per
    /// pair, not a policy set per pair.
    shared: HashMap<Vec<Kept>, Arc<Narrowed>>,
}

/// What narrowing made of one member of the slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kept {
    /// Dropped: its guard is false.
    Dropped,
    /// Replaced by its residual: its guard is true.
    Residual,
    /// Kept as written: no guard, or the guard failed.
    Whole,
}

/// The policies of a slice that can apply to one (principal, resource).
#[derive(Debug)]
pub(super) struct Narrowed {
    /// The kept policies, unchanged or as residuals (same ids).
    pub(super) policies: PolicySet,
    /// The union of what they read.
    pub(super) fields: Fields,
}

/// The most (principal, resource) pairs whose narrowed slices are cached
/// per action; past it the cache starts over (a directory that large still
/// works, only slower).
const MAX_CACHED: usize = 65_536;

/// What a narrowing needs to know about the request: everything but the
/// context, which no guard reads.
#[derive(Debug)]
pub(super) struct Probe<'a> {
    /// Evaluates the guards.
    pub(super) authorizer: &'a Authorizer,
    /// The principal.
    pub(super) principal: &'a EntityUid,
    /// The principal's id (a cache key).
    pub(super) principal_id: &'a str,
    /// The action.
    pub(super) action: &'a EntityUid,
    /// The resource.
    pub(super) resource: &'a EntityUid,
    /// The resource's id (a cache key).
    pub(super) resource_id: &'a str,
    /// The entities the decision will use.
    pub(super) entities: &'a Entities,
}

impl Guards {
    /// Computes the guards and residuals of the slice's policies. A policy
    /// whose guard cannot be built is simply never dropped; one whose
    /// residual cannot be built is kept unchanged when its guard is true.
    pub(super) fn new(members: Vec<(Policy, Fields)>) -> Self {
        let mut guards = PolicySet::new();
        let mut out = Vec::with_capacity(members.len());
        for (policy, reads) in members {
            let split = policy.to_json().ok().and_then(|est| split(&est));
            let mut residual = None;
            if let Some(Split { guard, residual: r }) = split {
                let id = policy.id().clone();
                // Ids are unique in the slice, so adding cannot collide; if
                // it did, the policy would stay unguarded (always kept).
                if let Ok(g) = Policy::from_json(Some(id.clone()), guard) {
                    if guards.add(g).is_ok() {
                        residual = r.and_then(|r| Policy::from_json(Some(id), r).ok());
                    }
                }
            }
            out.push(Member {
                policy,
                reads,
                residual,
            });
        }
        Self {
            members: out,
            guards,
            cache: RwLock::new(Cache::default()),
        }
    }

    /// Forgets every narrowed slice (the directory changed).
    pub(super) fn clear(&self) {
        if let Ok(mut cache) = self.cache.write() {
            *cache = Cache::default();
        }
    }

    /// The slice narrowed to the probe's (principal, resource), from the
    /// cache or computed now. `None` when narrowing is not possible (the
    /// caller then uses the whole slice, which is always correct).
    pub(super) fn narrowed(&self, probe: &Probe<'_>) -> Option<Arc<Narrowed>> {
        if let Some(n) = self
            .cache
            .read()
            .ok()?
            .by_resource
            .get(probe.resource_id)
            .and_then(|m| m.get(probe.principal_id))
        {
            return Some(Arc::clone(n));
        }
        let request = Request::new(
            probe.principal.clone(),
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
        let held: Vec<&PolicyId> = diagnostics.reason().collect();
        let errored: Vec<PolicyId> = diagnostics
            .errors()
            .map(|e| {
                let AuthorizationError::PolicyEvaluationError(pe) = e;
                pe.policy_id().clone()
            })
            .collect();
        let outcome: Vec<Kept> = self
            .members
            .iter()
            .map(|m| {
                let id = m.policy.id();
                if self.guards.policy(id).is_none() || errored.contains(id) {
                    Kept::Whole
                } else if held.contains(&id) {
                    Kept::Residual
                } else {
                    Kept::Dropped
                }
            })
            .collect();
        let shared = self
            .cache
            .read()
            .ok()
            .and_then(|c| c.shared.get(&outcome).cloned());
        let narrowed = match shared {
            Some(n) => n,
            None => Arc::new(self.build(&outcome)?),
        };
        if let Ok(mut cache) = self.cache.write() {
            if cache.len >= MAX_CACHED {
                *cache = Cache::default();
            }
            cache
                .shared
                .entry(outcome)
                .or_insert_with(|| Arc::clone(&narrowed));
            let slot = cache
                .by_resource
                .entry(probe.resource_id.to_owned())
                .or_default()
                .insert(probe.principal_id.to_owned(), Arc::clone(&narrowed));
            if slot.is_none() {
                cache.len += 1;
            }
        }
        Some(narrowed)
    }
}

impl Guards {
    /// The narrowed slice for one outcome per member.
    fn build(&self, outcome: &[Kept]) -> Option<Narrowed> {
        let mut policies = PolicySet::new();
        let mut fields = Fields::NONE;
        for (m, kept) in self.members.iter().zip(outcome) {
            let policy = match kept {
                Kept::Dropped => continue,
                Kept::Residual => m.residual.as_ref().unwrap_or(&m.policy),
                Kept::Whole => &m.policy,
            };
            policies.add(policy.clone()).ok()?;
            fields = fields.union(m.reads);
        }
        Some(Narrowed { policies, fields })
    }
}

/// A policy (JSON form) split at its guard.
#[derive(Debug)]
pub(super) struct Split {
    /// A permit with the policy's scope and the leading conjuncts that do
    /// not read `context`.
    pub(super) guard: serde_json::Value,
    /// The policy with unconstrained scope and only the other conjuncts
    /// (same effect and annotations); `None` if this module cannot rebuild
    /// it faithfully.
    pub(super) residual: Option<serde_json::Value>,
}

/// Splits a policy (its JSON form) at its guard; `None` if there is
/// nothing to test.
pub(super) fn split(est: &serde_json::Value) -> Option<Split> {
    let all = serde_json::json!({ "op": "All" });
    let scope = |key: &str| est.get(key).cloned().unwrap_or_else(|| all.clone());
    let (principal, action, resource) = (scope("principal"), scope("action"), scope("resource"));
    let mut conjuncts = Vec::new();
    let mut understood = true;
    for condition in est
        .get("conditions")
        .and_then(serde_json::Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
    {
        let Some(body) = condition.get("body") else {
            understood = false;
            break;
        };
        match condition.get("kind").and_then(serde_json::Value::as_str) {
            Some("when") => flatten_and(body, &mut conjuncts),
            Some("unless") => conjuncts.push(serde_json::json!({ "!": { "arg": body } })),
            // An unknown clause kind: take nothing from here on.
            _ => {
                understood = false;
                break;
            }
        }
    }
    let cut = conjuncts
        .iter()
        .position(|c| !reads_no_context(c))
        .unwrap_or(conjuncts.len());
    let rest = conjuncts.split_off(cut);
    let scoped = [&principal, &action, &resource].iter().any(|s| **s != all);
    if conjuncts.is_empty() && !scoped {
        return None;
    }
    let when = |conjuncts: Vec<serde_json::Value>| match conjuncts
        .into_iter()
        .reduce(|left, right| serde_json::json!({ "&&": { "left": left, "right": right } }))
    {
        Some(body) => serde_json::json!([{ "kind": "when", "body": body }]),
        None => serde_json::json!([]),
    };
    let guard = serde_json::json!({
        "effect": "permit",
        "principal": principal,
        "action": action,
        "resource": resource,
        "conditions": when(conjuncts),
    });
    let residual = understood.then(|| {
        let mut r = est.clone();
        if let Some(map) = r.as_object_mut() {
            for key in ["principal", "action", "resource"] {
                map.insert(key.to_owned(), all.clone());
            }
            map.insert("conditions".to_owned(), when(rest));
        }
        r
    });
    Some(Split { guard, residual })
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

/// Whether an expression reads no `context` (nor a template slot): its
/// value depends on the principal, action and resource only.
fn reads_no_context(e: &serde_json::Value) -> bool {
    match e {
        serde_json::Value::Object(map) => map.iter().all(|(k, v)| {
            let var = k == "Var" && v.as_str() == Some("context");
            !var && k != "Slot" && reads_no_context(v)
        }),
        serde_json::Value::Array(items) => items.iter().all(reads_no_context),
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr as _;

    fn text(est: serde_json::Value) -> String {
        Policy::from_json(None, est)
            .unwrap()
            .to_string()
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    }

    fn parts(policy: &str) -> Option<(String, Option<String>)> {
        let p = Policy::from_str(policy).unwrap();
        split(&p.to_json().unwrap()).map(|s| (text(s.guard), s.residual.map(text)))
    }

    fn guard(policy: &str) -> Option<String> {
        parts(policy).map(|(g, _)| g)
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
        assert_eq!(guard("permit (principal, action, resource);"), None);
    }

    #[test]
    fn the_guard_is_the_scope_and_the_leading_conditions_without_context() {
        let (g, r) = parts(
            r#"@id("x") @reason("y")
               permit (principal == Agent::"a", action, resource is Tool)
               when { resource.risk == "medium" && principal.registered && context.approved }
               when { resource.name == "x" };"#,
        )
        .unwrap();
        assert!(g.contains("resource is Tool"), "{g}");
        assert!(g.contains(r#"principal == Agent::"a""#), "{g}");
        assert!(g.contains(r#"resource.risk == "medium""#), "{g}");
        assert!(g.contains("principal.registered"), "{g}");
        assert!(!g.contains("context"), "{g}");
        // Conditions after the first context read are not part of it...
        assert!(!g.contains("resource.name"), "{g}");
        // ...they stay in the residual, in order, with the annotations and
        // without the scope or the guard's conditions.
        let r = r.unwrap();
        assert!(
            r.contains(r#"@id("x")"#) && r.contains(r#"@reason("y")"#),
            "{r}"
        );
        assert!(r.contains("(principal, action, resource)"), "{r}");
        assert!(
            r.contains(r#"context.approved && (resource.name == "x")"#),
            "{r}"
        );
        assert!(!r.contains("risk") && !r.contains("registered"), "{r}");
        let g = guard(r#"forbid (principal, action, resource) unless { principal.registered };"#)
            .unwrap();
        assert!(
            g.contains("!(principal.registered)") || g.contains("!principal.registered"),
            "{g}"
        );
    }

    #[test]
    fn an_unknown_clause_leaves_no_residual() {
        let mut est = Policy::from_str(
            r#"permit (principal, action, resource is Tool) when { context.approved };"#,
        )
        .unwrap()
        .to_json()
        .unwrap();
        est["conditions"][0]["kind"] = serde_json::json!("someday");
        let s = split(&est).unwrap();
        assert!(s.residual.is_none());
    }
}
