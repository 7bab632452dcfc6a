//! One decision for a realistic MCP tool call: build the context from typed
//! values (what the gateway holds after parsing the call and scanning it),
//! build the request, decide. Cedar and Rego on the standard preset, side by
//! side in one run; entities are cached in each engine as in production.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeSet;
use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use remit_policy::preset::SAMPLE_ENTITIES;
use remit_policy::{
    preset, Action, Classification, ContextInput, DecisionRequest, Directory, EngineKind,
    EntityKind, EntityRef, PolicyEngine, Preset, RequestContext, Verdict,
};

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

/// The gateway's view of `tools/call github/create_issue`.
fn request(args: &serde_json::Value) -> DecisionRequest {
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
        EntityRef::new(EntityKind::Agent, "a").unwrap(),
        Action::CallTool,
        EntityRef::new(EntityKind::Tool, "github/create_issue").unwrap(),
        RequestContext::new(input).unwrap(),
    )
    .unwrap()
}

fn bench(c: &mut Criterion) {
    let args = serde_json::json!({
        "owner": "acme", "repo": "web",
        "title": "Checkout fails for EU customers",
        "body": "Steps: open /checkout, pick SEPA, submit. Reported by jane@example.com.",
        "labels": ["bug", "payments"]
    });
    let mut group = c.benchmark_group("decision/standard/call_tool");
    for kind in [EngineKind::Cedar, EngineKind::Rego] {
        let dir = Directory::from_json(SAMPLE_ENTITIES).unwrap();
        let engine = preset::load(
            kind,
            &[Preset::Standard.source(kind)],
            Preset::Standard.default_mode(),
            dir,
        )
        .unwrap();
        assert_eq!(engine.decide(&request(&args)).verdict(), Verdict::Allow);
        percentiles(kind, engine.as_ref(), &args);
        group.bench_function(kind.extension(), |b| {
            b.iter(|| {
                let req = request(black_box(&args));
                black_box(engine.decide(&req))
            })
        });
    }
    group.finish();
}

/// Criterion reports means; the target is a tail latency, so also time
/// 20 000 single decisions and print p50 / p99 / p99.9.
fn percentiles(kind: EngineKind, engine: &dyn PolicyEngine, args: &serde_json::Value) {
    const N: usize = 20_000;
    let mut ns: Vec<u128> = Vec::with_capacity(N);
    for _ in 0..N / 10 {
        black_box(engine.decide(&request(args)));
    }
    for _ in 0..N {
        let t = std::time::Instant::now();
        let req = request(black_box(args));
        black_box(engine.decide(&req));
        ns.push(t.elapsed().as_nanos());
    }
    ns.sort_unstable();
    let at = |q: f64| ns[((N as f64 * q) as usize).min(N - 1)] as f64 / 1000.0;
    eprintln!(
        "{kind}: single-call latency over {N} decisions: p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us",
        at(0.50),
        at(0.99),
        at(0.999)
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
