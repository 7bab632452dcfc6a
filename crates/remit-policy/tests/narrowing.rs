//! Narrowing the Cedar policy slices per (principal, resource) changes no
//! decision: every case of every decision table (overrides, entity patches
//! that remove or re-pin servers, unregistered agents, evaluation errors
//! included) gets the same evaluation (determining policies and errors) and
//! the same decision with narrowing on and off. And a remit's tool set
//! reduced to the called tool is only used when no policy could tell.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use remit_policy::preset::SAMPLE_ENTITIES;
use remit_policy::table::DecisionTable;
use remit_policy::{
    Action, CedarEngine, DecisionRequest, Directory, EngineKind, EntityRef, Evaluation,
    PolicyEngine, PolicySource, Preset, RequestContext, Verdict,
};

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

#[test]
fn a_stale_principal_narrowing_is_not_used_after_the_directory_changes() {
    // Agent a is registered: std-agent-unregistered is narrowed away for
    // it. Deregister it: the same call must now be refused by that rule,
    // and allowed again once a is registered again.
    let (preset, text) = TABLES[0];
    let table = DecisionTable::from_yaml(text).unwrap();
    let mut e = engine(preset, &table, true);
    let case = table
        .cases()
        .iter()
        .find(|c| c.name == "low-risk listed tool")
        .unwrap();
    let req = table.request(case).unwrap();
    assert_eq!(req.principal().id(), "a");
    assert_eq!(e.decide(&req).reason_code(), "std-low-risk");
    let registered = e.directory().clone();
    let mut dir = registered.clone();
    dir.agents.get_mut("a").unwrap().registered = false;
    e.set_directory(dir).unwrap();
    let d = e.decide(&req);
    assert_eq!(d.verdict(), Verdict::Deny);
    assert_eq!(d.reason_code(), "std-agent-unregistered");
    e.set_directory(registered).unwrap();
    assert_eq!(e.decide(&req).reason_code(), "std-low-risk");
}

#[test]
fn narrowing_is_per_principal_not_only_per_resource() {
    // The same tool, first asked for a registered agent (cached), then for
    // an unregistered one: the second must not reuse the first's slice.
    let (preset, text) = TABLES[0];
    let table = DecisionTable::from_yaml(text).unwrap();
    let e = engine(preset, &table, true);
    let find = |name: &str| table.cases().iter().find(|c| c.name == name).unwrap();
    let ok = table.request(find("low-risk listed tool")).unwrap();
    assert_eq!(e.decide(&ok).verdict(), Verdict::Allow);
    let ghost = DecisionRequest::new(
        "Agent::\"ghost\"".parse::<EntityRef>().unwrap(),
        ok.action(),
        ok.resource().clone(),
        ok.context().clone(),
    )
    .unwrap();
    let d = e.decide(&ghost);
    assert_eq!(d.verdict(), Verdict::Deny);
    assert_eq!(d.reason_code(), "std-agent-unregistered");
}

fn call(tool: &str, remit_tools: &[&str]) -> DecisionRequest {
    let context = serde_json::json!({
        "data_class": "PUBLIC", "chain_depth": 0, "original_user": "alice",
        "steps_used": 1, "steps_max": 20, "risk_budget_used": 0,
        "risk_budget_max": 10, "hour_utc": 12, "description_hash": "sha256:9f2c",
        "remit_tools": remit_tools,
    });
    DecisionRequest::new(
        "Agent::\"a\"".parse().unwrap(),
        Action::CallTool,
        format!("Tool::{tool:?}").parse().unwrap(),
        RequestContext::from_json(&context.to_string()).unwrap(),
    )
    .unwrap()
}

#[test]
fn a_remit_set_read_whole_is_not_reduced_to_the_called_tool() {
    // The standard preset only asks `context.remit_tools.contains(resource)`,
    // so the context carries the set reduced to the called tool. An
    // override that asks about another member must see the whole set.
    let dir = Directory::from_json(SAMPLE_ENTITIES).unwrap();
    let overrides = PolicySource {
        name: "overrides/refund.cedar".into(),
        text: r#"@id("ovr-no-search-with-refund")
                 @reason("a remit that can refund may not search")
                 forbid (principal, action == Action::"call_tool", resource)
                 when { context.remit_tools.contains(Tool::"payments/refund") };"#
            .into(),
    };
    let sources = [Preset::Standard.source(EngineKind::Cedar), overrides];
    for narrowing in [true, false] {
        let e = CedarEngine::load(&sources, Preset::Standard.default_mode(), dir.clone())
            .unwrap()
            .with_narrowing(narrowing);
        let d = e.decide(&call(
            "github/search",
            &["github/search", "payments/refund"],
        ));
        assert_eq!(d.verdict(), Verdict::Deny, "narrowing {narrowing}");
        assert_eq!(d.reason_code(), "ovr-no-search-with-refund");
        let d = e.decide(&call("github/search", &["github/search"]));
        assert_eq!(d.verdict(), Verdict::Allow, "narrowing {narrowing}");
        // And the membership test itself still sees the whole set.
        let d = e.decide(&call("github/search", &["payments/refund"]));
        let mut ids: Vec<&str> = d.determining().iter().map(|p| p.id.as_str()).collect();
        ids.sort_unstable();
        assert_eq!(ids, ["ovr-no-search-with-refund", "std-tool-not-in-remit"]);
    }
}
