//! What the policy is told about a call, and how findings, classes and
//! bindings (call and request hashes) are derived from it: pure helpers
//! shared by every method family.

use std::collections::{BTreeMap, BTreeSet};

use remit_class::Classification;
use remit_policy::{
    Action, ContextInput, DecisionRequest, EntityKind, EntityRef, ProofOfPossession, RequestContext,
};
use remit_scan::{FindingType, ScanReport};
use remit_store::{RiskTier, Usage};
use serde_json::{json, Value};

use crate::auth::Caller;
use remit_runtime::state::now;

/// Risk points a call to a tool of this tier costs.
pub fn risk_cost(risk: RiskTier) -> i64 {
    match risk {
        RiskTier::Low => 0,
        RiskTier::Medium => 1,
        RiskTier::High => 3,
        RiskTier::Critical => 5,
    }
}

/// What an MCP resource read or prompt fetch names, for the policy.
#[derive(Clone, Copy)]
pub(super) enum Content<'a> {
    /// `resources/read` of `uri` on `server`.
    Resource { server: &'a str, uri: &'a str },
    /// `prompts/get` of the prompt `name` on `server`.
    Prompt { server: &'a str, name: &'a str },
}

/// What the policy is told about one call.
#[derive(Clone)]
pub(super) struct CallContext<'a> {
    pub(super) caller: &'a Caller,
    pub(super) args: &'a Value,
    pub(super) report: Option<&'a ScanReport>,
    pub(super) tool_id: &'a str,
    pub(super) granted: bool,
    pub(super) steps_used: u32,
    pub(super) risk_used: u32,
    pub(super) risk_max: u32,
    pub(super) approved: bool,
    pub(super) shadow: bool,
    pub(super) redacted: bool,
    pub(super) description_hash: Option<String>,
    pub(super) content: Option<Content<'a>>,
}

impl<'a> CallContext<'a> {
    /// A request's context before anything was scanned, approved or
    /// redacted: who calls, with what, whether the remit grants it, and
    /// the budgets used so far.
    pub(super) fn new(
        caller: &'a Caller,
        args: &'a Value,
        tool_id: &'a str,
        granted: bool,
        usage: &Usage,
        risk_max: u32,
        shadow: bool,
    ) -> Self {
        Self {
            caller,
            args,
            report: None,
            tool_id,
            granted,
            steps_used: u32::try_from(usage.steps_used).unwrap_or(u32::MAX),
            risk_used: u32::try_from(usage.risk_spent).unwrap_or(u32::MAX),
            risk_max,
            approved: false,
            shadow,
            redacted: false,
            description_hash: None,
            content: None,
        }
    }
}

pub(super) fn decision_request(
    action: Action,
    c: &CallContext<'_>,
) -> Result<DecisionRequest, String> {
    let claims = c.caller.chain.leaf_claims();
    let (mut pii, mut secrets) = (BTreeSet::new(), BTreeSet::new());
    if let Some(report) = c.report {
        for kind in report.types() {
            if kind.is_secret() {
                secrets.insert(kind.name().to_owned());
            } else {
                pii.insert(kind.name().to_owned());
            }
        }
    }
    let now = now();
    let input = ContextInput {
        args: if c.args.is_object() {
            c.args.clone()
        } else {
            json!({})
        },
        data_class: c
            .report
            .map_or(Classification::Public, |r| r.classification),
        pii,
        secrets,
        chain_depth: claims.depth,
        original_user: claims.sub.clone(),
        steps_used: c.steps_used,
        steps_max: claims
            .max_steps
            .map_or(u32::MAX, |m| u32::try_from(m).unwrap_or(u32::MAX)),
        risk_budget_used: c.risk_used,
        risk_budget_max: c.risk_max,
        hour_utc: u8::try_from((now / 3600) % 24).unwrap_or(0),
        amr: claims.amr.iter().cloned().collect(),
        approved: c.approved,
        shadow: c.shadow,
        redacted: c.redacted,
        remit_tools: if c.granted {
            BTreeSet::from([c.tool_id.to_owned()])
        } else {
            BTreeSet::new()
        },
        remit_models: BTreeSet::new(),
        description_hash: c.description_hash.clone(),
    };
    let mut context = RequestContext::new(input)
        .map_err(|e| e.to_string())?
        .with_pop(if c.caller.pop() {
            ProofOfPossession::Dpop
        } else {
            ProofOfPossession::Bearer
        })
        .with_granted(c.granted)
        .with_holder_clearance(claims.class);
    let resource = match c.content {
        Some(Content::Resource { server, uri }) => {
            context = context.with_resource_uri(uri).map_err(|e| e.to_string())?;
            EntityRef::new(EntityKind::Server, server)
        }
        Some(Content::Prompt { server, name }) => {
            context = context.with_prompt_name(name).map_err(|e| e.to_string())?;
            EntityRef::new(EntityKind::Server, server)
        }
        None => EntityRef::new(EntityKind::Tool, c.tool_id),
    }
    .map_err(|e| e.to_string())?;
    let principal =
        EntityRef::new(EntityKind::Agent, c.caller.agent()).map_err(|e| e.to_string())?;
    DecisionRequest::new(principal, action, resource, context).map_err(|e| e.to_string())
}

pub(super) fn ledger_decision(d: &remit_policy::Decision, shadow: bool) -> remit_ledger::Decision {
    let effect = match d.verdict() {
        remit_policy::Verdict::Allow => remit_ledger::Effect::Allow,
        remit_policy::Verdict::Deny => remit_ledger::Effect::Deny,
        remit_policy::Verdict::Escalate => remit_ledger::Effect::Escalate,
    };
    let mut reason = recorded_reason(d);
    if shadow {
        reason = format!("shadow mode, not enforced: {reason}");
    }
    remit_ledger::Decision {
        effect,
        policy_ids: policy_ids(d),
        policy_version: d.policy_version().to_owned(),
        reason: Some(reason),
    }
}

/// What a receipt (and the refusal built from it) says about a decision:
/// the determining policies' own reasons, or only the code of an
/// evaluation error or invalid request (their messages may quote the
/// request's values).
pub(crate) fn recorded_reason(d: &remit_policy::Decision) -> String {
    match d.reason_code().as_str() {
        code @ ("evaluation-error" | "invalid-request") => {
            format!("the policy could not decide ({code})")
        }
        _ => d.explanation(),
    }
}

pub(crate) fn policy_ids(d: &remit_policy::Decision) -> Vec<String> {
    let ids: Vec<String> = d.determining().iter().map(|p| p.id.clone()).collect();
    if ids.is_empty() {
        vec![d.reason_code()]
    } else {
        ids
    }
}

/// SHA-256 (hex) of the exact call: an approval releases only this call.
pub fn call_hash(leaf_jti: &str, server: &str, tool: &str, args: &Value) -> String {
    let call = json!({ "remit": leaf_jti, "server": server, "tool": tool, "args": args });
    let bytes =
        remit_ledger::canonical::to_vec(&call).unwrap_or_else(|_| call.to_string().into_bytes());
    hex::encode(remit_runtime::setup::sha256(&bytes))
}

/// SHA-256 (hex) of an exact `resources/read` or `prompts/get` (the URI or
/// prompt name and its arguments): an approval releases only this request.
pub fn request_hash(
    leaf_jti: &str,
    server: &str,
    method: &str,
    name: &str,
    args: &Value,
) -> String {
    let request = json!({
        "remit": leaf_jti,
        "server": server,
        "method": method,
        "name": name,
        "args": args,
    });
    let bytes = remit_ledger::canonical::to_vec(&request)
        .unwrap_or_else(|_| request.to_string().into_bytes());
    hex::encode(remit_runtime::setup::sha256(&bytes))
}

/// The approval id of a call: derived from its hash, so retrying the same
/// call finds the approval without the agent having to name it.
pub fn approval_id(call_hash: &str) -> String {
    format!("apr_{}", &call_hash[..32.min(call_hash.len())])
}

/// The argument shape recorded in shadow mode: keys and types, no values.
pub(super) fn shape(value: &Value) -> Value {
    match value {
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), shape(v))).collect())
        }
        Value::Array(items) => json!([items.first().map(shape).unwrap_or(Value::Null)]),
        Value::String(_) => json!("string"),
        Value::Number(_) => json!("number"),
        Value::Bool(_) => json!("boolean"),
        Value::Null => json!("null"),
    }
}

pub(super) fn count_findings(report: &ScanReport, prefix: &str, into: &mut BTreeMap<String, u32>) {
    for finding in &report.findings {
        *into
            .entry(format!("{prefix}{}", finding.kind.name()))
            .or_insert(0) += 1;
    }
}

/// The finding types of a scan, named and comma-separated.
pub(super) fn finding_names(report: &ScanReport) -> String {
    report
        .types()
        .iter()
        .map(|t: &FindingType| t.name())
        .collect::<Vec<_>>()
        .join(", ")
}

/// `" with <finding types>"` for an approval summary, or nothing.
pub(super) fn findings_clause(report: &ScanReport) -> String {
    if report.findings.is_empty() {
        String::new()
    } else {
        format!(" with {}", finding_names(report))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_call_hash_binds_remit_tool_and_arguments() {
        let h = call_hash("j1", "fs", "read", &json!({"p": "/a"}));
        assert_ne!(h, call_hash("j2", "fs", "read", &json!({"p": "/a"})));
        assert_ne!(h, call_hash("j1", "fs", "read", &json!({"p": "/b"})));
        assert_eq!(h, call_hash("j1", "fs", "read", &json!({"p": "/a"})));
        assert!(approval_id(&h).starts_with("apr_"));
    }

    #[test]
    fn the_request_hash_binds_remit_method_name_and_arguments() {
        let args = json!({"topic": "a"});
        let h = request_hash("j1", "fs", "prompts/get", "summarize", &args);
        assert_ne!(
            h,
            request_hash("j2", "fs", "prompts/get", "summarize", &args)
        );
        assert_ne!(
            h,
            request_hash("j1", "fs", "resources/read", "summarize", &args)
        );
        assert_ne!(h, request_hash("j1", "fs", "prompts/get", "other", &args));
        assert_ne!(
            h,
            request_hash(
                "j1",
                "fs",
                "prompts/get",
                "summarize",
                &json!({"topic": "b"})
            )
        );
        assert_eq!(
            h,
            request_hash("j1", "fs", "prompts/get", "summarize", &args)
        );
    }

    #[test]
    fn shapes_keep_keys_and_types_only() {
        assert_eq!(
            shape(&json!({"path": "/secret", "n": 3, "l": ["x"]})),
            json!({"path": "string", "n": "number", "l": ["string"]})
        );
    }
}
