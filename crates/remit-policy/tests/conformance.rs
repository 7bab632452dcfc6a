//! Decision tables run through Cedar and Rego: each case must give its
//! expected verdict and reason, and both engines must agree on every case
//! (verdict, reason code and the determining policies with their reasons).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use remit_policy::table::{CaseResult, DecisionTable};
use remit_policy::{preset, Directory, EngineKind, Preset};

const MIN_CASES: usize = 60;

fn run(preset: Preset, table_text: &str, engine: EngineKind) -> Vec<CaseResult> {
    let table = DecisionTable::from_yaml(table_text).unwrap();
    assert!(
        table.cases().len() >= MIN_CASES,
        "{preset}: only {} cases",
        table.cases().len()
    );
    let dir: Directory = table
        .entities()
        .unwrap()
        .expect("tables carry their entities");
    let mut sources = vec![preset.source(engine)];
    sources.extend(table.overrides(engine));
    let mut e = preset::load(engine, &sources, preset.default_mode(), dir).unwrap();
    table.run(e.as_mut())
}

fn check(preset: Preset, text: &str) {
    let cedar = run(preset, text, EngineKind::Cedar);
    let rego = run(preset, text, EngineKind::Rego);
    let mut failures = Vec::new();
    for (c, r) in cedar.iter().zip(&rego) {
        for (engine, res) in [("cedar", c), ("rego", r)] {
            if !res.passed() {
                failures.push(format!(
                    "[{engine}] {}: expected {:?} {}, got {:?} {} ({})",
                    res.name,
                    res.expect,
                    res.reason,
                    res.decision.verdict(),
                    res.decision.reason_code(),
                    res.decision.explanation()
                ));
            }
        }
        if c.decision.verdict() != r.decision.verdict()
            || c.decision.reason_code() != r.decision.reason_code()
            || c.decision.determining() != r.decision.determining()
        {
            failures.push(format!(
                "[conformance] {}: cedar {:?} {:?} vs rego {:?} {:?}",
                c.name,
                c.decision.verdict(),
                c.decision.determining(),
                r.decision.verdict(),
                r.decision.determining()
            ));
        }
    }
    assert_eq!(cedar.len(), rego.len());
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn standard_table_holds_on_cedar_and_rego() {
    check(Preset::Standard, include_str!("cases/standard.yaml"));
}

#[test]
fn lockdown_table_holds_on_cedar_and_rego() {
    check(Preset::Lockdown, include_str!("cases/lockdown.yaml"));
}

#[test]
fn permissive_table_holds_on_cedar_and_rego() {
    check(Preset::Permissive, include_str!("cases/permissive.yaml"));
}

#[test]
fn every_table_covers_allow_deny_and_escalate() {
    for text in [
        include_str!("cases/standard.yaml"),
        include_str!("cases/lockdown.yaml"),
        include_str!("cases/permissive.yaml"),
    ] {
        let t = DecisionTable::from_yaml(text).unwrap();
        for v in [
            remit_policy::Verdict::Allow,
            remit_policy::Verdict::Deny,
            remit_policy::Verdict::Escalate,
        ] {
            assert!(t.cases().iter().any(|c| c.expect == v), "{v:?} missing");
        }
        // Negative cases come first: the first case is a deny.
        assert_eq!(t.cases()[0].expect, remit_policy::Verdict::Deny);
    }
}
