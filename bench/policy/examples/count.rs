//! Instruction counts for one decision, repeatable on a busy machine:
//!
//! ```text
//! cargo build --profile bench -p remit-bench-policy --example count
//! valgrind --tool=callgrind --collect-atstart=no --toggle-collect='*measured*' \
//!     $CARGO_TARGET_DIR/release/examples/count cedar 1000
//! ```
//!
//! Only `measured` (N decisions, each building its request) is counted, so
//! the total divided by N is the instructions per decision; engine loading
//! is left out. Pass `rego` for the Rego engine, `cedar-unnarrowed` for
//! Cedar without narrowing (the baseline).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::hint::black_box;

use remit_bench_policy::{request, standard_cedar, standard_engine, tool_call_args};
use remit_policy::{EngineKind, PolicyEngine, Verdict};

#[inline(never)]
fn measured(engine: &dyn PolicyEngine, args: &serde_json::Value, n: usize) -> usize {
    let mut allowed = 0;
    for _ in 0..n {
        let req = request(black_box(args)).unwrap();
        if engine.decide(&req).verdict() == Verdict::Allow {
            allowed += 1;
        }
    }
    allowed
}

fn main() {
    let mut argv = std::env::args().skip(1);
    let name = argv.next().unwrap_or_else(|| "cedar".into());
    let engine: Box<dyn PolicyEngine> = match name.as_str() {
        "cedar" => standard_engine(EngineKind::Cedar).unwrap(),
        "cedar-unnarrowed" => Box::new(standard_cedar(false).unwrap()),
        "rego" => standard_engine(EngineKind::Rego).unwrap(),
        other => panic!("engine {other:?}: expected cedar, cedar-unnarrowed or rego"),
    };
    let n: usize = argv.next().map_or(1000, |s| s.parse().unwrap());
    let args = tool_call_args();
    // Warm up once outside the counted region (lazy statics, first allocations).
    let warm = request(&args).unwrap();
    assert_eq!(engine.decide(&warm).verdict(), Verdict::Allow);
    let allowed = measured(engine.as_ref(), &args, n);
    assert_eq!(allowed, n, "every decision must be an allow");
    println!("{name}: {n} decisions, all allowed");
}
