//! Narrowing the Cedar policy slices per resource changes no decision:
//! every case of every decision table (overrides, entity patches that
//! remove or re-pin servers, evaluation errors included) gets the same
//! evaluation and the same decision with narrowing on and off.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use remit_policy::table::DecisionTable;
use remit_policy::{CedarEngine, EngineKind, Evaluation, PolicyEngine, Preset};

const TABLES: [(Preset, &str); 3] = [
    (Preset::Standard, include_str!("cases/standard.yaml")),
    (Preset::Lockdown, include_str!("cases/lockdown.yaml")),
    (Preset::Permissive, include_str!("cases/permissive.yaml")),
];

fn engine(preset: Preset, table: &DecisionTable, narrowing: bool) -> CedarEngine {
    let mut sources = vec![preset.source(EngineKind::Cedar)];
    sources.extend(table.overrides(EngineKind::Cedar));
    let dir = table.entities().unwrap().unwrap();
    CedarEngine::load(&sources, preset.default_mode(), dir)
        .unwrap()
        .with_narrowing(narrowing)
}

fn sorted(mut e: Evaluation) -> Evaluation {
    e.matched.sort();
    e.errors.sort();
    e
}

#[test]
fn narrowing_changes_no_decision_of_any_table() {
    for (preset, text) in TABLES {
        let table = DecisionTable::from_yaml(text).unwrap();
        let mut narrowed = engine(preset, &table, true);
        let mut full = engine(preset, &table, false);
        // Twice: the second pass is served from the narrowed-slice cache,
        // after the entity patches of the first pass changed the directory
        // and changed it back.
        for pass in 0..2 {
            let a = table.run(&mut narrowed);
            let b = table.run(&mut full);
            assert_eq!(a.len(), b.len());
            for (x, y) in a.iter().zip(&b) {
                assert_eq!(x.decision, y.decision, "{preset} pass {pass}: {}", x.name);
            }
        }
        for case in table.cases() {
            let Ok(req) = table.request(case) else {
                continue;
            };
            assert_eq!(
                sorted(narrowed.evaluate(&req)),
                sorted(full.evaluate(&req)),
                "{preset}: {}",
                case.name
            );
        }
    }
}

#[test]
fn a_stale_narrowing_is_not_used_after_the_directory_changes() {
    // github/search is low risk: std-high-risk is narrowed away. Make it
    // irreversible in the directory: the call must now escalate.
    let (preset, text) = TABLES[0];
    let table = DecisionTable::from_yaml(text).unwrap();
    let mut e = engine(preset, &table, true);
    let case = table
        .cases()
        .iter()
        .find(|c| c.name == "low-risk listed tool")
        .unwrap();
    let req = table.request(case).unwrap();
    assert_eq!(e.decide(&req).reason_code(), "std-low-risk");
    let mut dir = e.directory().clone();
    dir.tools.get_mut("github/search").unwrap().risk = remit_policy::Risk::Irreversible;
    e.set_directory(dir).unwrap();
    let d = e.decide(&req);
    assert_eq!(d.verdict(), remit_policy::Verdict::Escalate);
    assert_eq!(d.reason_code(), "std-high-risk");
}
