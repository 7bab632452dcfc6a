//! One decision for a realistic MCP tool call: build the context from typed
//! values (what the gateway holds after parsing the call and scanning it),
//! build the request, decide. Cedar and Rego on the standard preset, side by
//! side in one run; entities are cached in each engine as in production.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion};
use remit_bench_policy::{request, standard_cedar, standard_engine, tool_call_args};
use remit_policy::{EngineKind, PolicyEngine, Verdict};

fn bench(c: &mut Criterion) {
    let args = tool_call_args();
    let mut group = c.benchmark_group("decision/standard/call_tool");
    // The baseline first: Cedar on the action's slice (no narrowing), then
    // the default engines.
    let engines: Vec<(&str, Box<dyn PolicyEngine>)> = vec![
        ("cedar-unnarrowed", Box::new(standard_cedar(false).unwrap())),
        ("cedar", standard_engine(EngineKind::Cedar).unwrap()),
        ("rego", standard_engine(EngineKind::Rego).unwrap()),
    ];
    for (name, engine) in &engines {
        assert_eq!(
            engine.decide(&request(&args).unwrap()).verdict(),
            Verdict::Allow
        );
        percentiles(name, engine.as_ref(), &args);
        group.bench_function(*name, |b| {
            b.iter(|| {
                let req = request(black_box(&args)).unwrap();
                black_box(engine.decide(&req))
            })
        });
    }
    group.finish();
}

/// Criterion reports means; the target is a tail latency, so also time
/// 20 000 single decisions and print p50 / p99 / p99.9.
fn percentiles(name: &str, engine: &dyn PolicyEngine, args: &serde_json::Value) {
    const N: usize = 20_000;
    let mut ns: Vec<u128> = Vec::with_capacity(N);
    for _ in 0..N / 10 {
        black_box(engine.decide(&request(args).unwrap()));
    }
    for _ in 0..N {
        let t = std::time::Instant::now();
        let req = request(black_box(args)).unwrap();
        black_box(engine.decide(&req));
        ns.push(t.elapsed().as_nanos());
    }
    ns.sort_unstable();
    let at = |q: f64| ns[((N as f64 * q) as usize).min(N - 1)] as f64 / 1000.0;
    eprintln!(
        "{name}: single-call latency over {N} decisions: p50 {:.1} us, p99 {:.1} us, p99.9 {:.1} us",
        at(0.50),
        at(0.99),
        at(0.999)
    );
}

criterion_group!(benches, bench);
criterion_main!(benches);
