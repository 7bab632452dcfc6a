//! Benchmarks for `remit-policy`: see `benches/` and `README.md` in this folder.
//!
//! The realistic tool call every harness here measures lives in this crate,
//! so the criterion bench and the callgrind driver (`examples/count.rs`)
//! time exactly the same work.

use std::collections::BTreeSet;

use remit_policy::preset::SAMPLE_ENTITIES;
use remit_policy::{
    preset, Action, CedarEngine, Classification, ContextInput, DecisionRequest, Directory,
    EngineKind, EntityKind, EntityRef, LoadError, PolicyEngine, Preset, ProofOfPossession,
    RequestContext, RequestError,
};

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// The arguments of `tools/call github/create_issue`, as the gateway parsed them.
pub fn tool_call_args() -> serde_json::Value {
    serde_json::json!({
        "owner": "acme", "repo": "web",
        "title": "Checkout fails for EU customers",
        "body": "Steps: open /checkout, pick SEPA, submit. Reported by jane@example.com.",
        "labels": ["bug", "payments"]
    })
}

/// The gateway's view of `tools/call github/create_issue` after parsing and
/// scanning it: typed values in, a checked [`DecisionRequest`] out. This is
/// the per-call work measured together with the decision.
pub fn request(args: &serde_json::Value) -> Result<DecisionRequest, RequestError> {
    let input = ContextInput {
        args: args.clone(),
        data_class: Classification::Internal,
        pii: set(&["email"]),
        secrets: BTreeSet::new(),
        chain_depth: 1,
        original_user: "alice".into(),
        steps_used: 3,
        steps_max: 20,
        risk_budget_used: 4,
        risk_budget_max: 10,
        hour_utc: 14,
        amr: set(&["pwd", "otp"]),
        approved: false,
        shadow: false,
        redacted: false,
        remit_tools: set(&["github/search", "github/create_issue", "payments/refund"]),
        remit_models: set(&["local/llama"]),
        description_hash: Some("sha256:9f2c".into()),
    };
    DecisionRequest::new(
        EntityRef::new(EntityKind::Agent, "a")?,
        Action::CallTool,
        EntityRef::new(EntityKind::Tool, "github/create_issue")?,
        RequestContext::new(input)?.with_pop(ProofOfPossession::Dpop),
    )
}

fn sample_directory() -> Result<Directory, LoadError> {
    Directory::from_json(SAMPLE_ENTITIES).map_err(|e| LoadError::Entities {
        message: e.to_string(),
    })
}

/// The Cedar engine on the standard preset with narrowing per (principal,
/// resource) on (the default) or off (the baseline: the policy slice of the
/// action).
pub fn standard_cedar(narrowing: bool) -> Result<CedarEngine, LoadError> {
    let kind = EngineKind::Cedar;
    Ok(CedarEngine::load(
        &[Preset::Standard.source(kind)],
        Preset::Standard.default_mode(),
        sample_directory()?,
    )?
    .with_narrowing(narrowing))
}

/// An engine of the given kind on the standard preset over the sample
/// entities (cached inside the engine, as in production).
pub fn standard_engine(kind: EngineKind) -> Result<Box<dyn PolicyEngine>, LoadError> {
    let dir = sample_directory()?;
    preset::load(
        kind,
        &[Preset::Standard.source(kind)],
        Preset::Standard.default_mode(),
        dir,
    )
}
