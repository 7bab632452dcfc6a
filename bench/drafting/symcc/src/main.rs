//! Probe: does (preset + drafted boundary) imply the preset, for every
//! request, by cedar-policy-symcc with the local cvc5? Args: SCHEMA PRESET BOUNDARY.
use std::str::FromStr;
use cedar_policy::{PolicySet, Schema, RequestEnv, EntityTypeName, EntityUid};
use cedar_policy_symcc::{solver::LocalSolver, CedarSymCompiler, SymEnv, WellTypedPolicies};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let a: Vec<String> = std::env::args().collect();
    let schema_text = std::fs::read_to_string(&a[1]).unwrap();
    let (schema, _) = Schema::from_cedarschema_str(&schema_text).unwrap();
    let preset = std::fs::read_to_string(&a[2]).unwrap();
    let boundary = std::fs::read_to_string(&a[3]).unwrap();
    let p1 = PolicySet::from_str(&format!("{preset}\n{boundary}")).unwrap();
    let p2 = PolicySet::from_str(&preset).unwrap();
    let env = RequestEnv::new(
        EntityTypeName::from_str("Agent").unwrap(),
        EntityUid::from_str(r#"Action::"call_tool""#).unwrap(),
        EntityTypeName::from_str("Tool").unwrap(),
    );
    let w1 = WellTypedPolicies::from_policies(&p1, &env, &schema).unwrap();
    let w2 = WellTypedPolicies::from_policies(&p2, &env, &schema).unwrap();
    let symenv = SymEnv::new(&schema, &env).unwrap();
    let mut c = CedarSymCompiler::new(LocalSolver::cvc5().unwrap()).unwrap();
    let t = std::time::Instant::now();
    let implies = c.check_implies(&w1, &w2, &symenv).await;
    println!("preset+boundary implies preset: {implies:?} in {:?}", t.elapsed());
    let t = std::time::Instant::now();
    let back = c.check_implies(&w2, &w1, &symenv).await;
    println!("preset implies preset+boundary (expected false: the draft narrows): {back:?} in {:?}", t.elapsed());
}
