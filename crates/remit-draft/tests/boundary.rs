//! A draft against its preset and the live policy: draft ⊆ preset over the
//! observed request space (both evaluated with Cedar), the diff, and the
//! refused calls the draft would let through.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use remit_draft::check::{boundary, check_boundary, diff};
use remit_draft::{
    draft, ArgFacts, Call, DraftOptions, DraftPolicy, HashKey, LiveVerdict, Observation,
};
use remit_policy::{Classification, Directory, EngineKind, PolicyEngine, Preset};
use serde_json::json;

const DIRECTORY: &str = r#"{
  "users": { "alice": {} },
  "agents": { "a": { "owner": "alice", "risk_tier": 1, "registered": true } },
  "servers": { "fs": { "blessed": true, "pinned_description_hash": "sha256:fs" },
               "payments": { "blessed": true, "pinned_description_hash": "sha256:pay" } },
  "tools": {
    "fs/read_file": { "server": "fs", "name": "read_file", "risk": "low", "destination_clearance": "INTERNAL", "external": false },
    "fs/write_file": { "server": "fs", "name": "write_file", "risk": "medium", "destination_clearance": "INTERNAL", "external": false },
    "fs/delete_file": { "server": "fs", "name": "delete_file", "risk": "high", "destination_clearance": "INTERNAL", "external": false },
    "payments/refund": { "server": "payments", "name": "refund", "risk": "irreversible", "destination_clearance": "RESTRICTED", "external": false }
  }
}"#;

fn engine_for(p: Preset) -> Box<dyn PolicyEngine> {
    remit_policy::preset::load(
        EngineKind::Cedar,
        &[p.source(EngineKind::Cedar)],
        p.default_mode(),
        Directory::from_json(DIRECTORY).unwrap(),
    )
    .unwrap()
}

fn obs(tool: &str, args: serde_json::Value, verdict: LiveVerdict, i: i64) -> Observation {
    Observation {
        call: Call {
            agent: "a".into(),
            tool: tool.into(),
            args: ArgFacts::project(&args, &HashKey::new(&[1; 32]).unwrap()),
            data_class: Classification::Internal,
            pii: Default::default(),
            secrets: Default::default(),
            chain_depth: 0,
            hour_utc: 10,
        },
        at: 1_796_601_600 + i * 60,
        verdict,
    }
}

fn workload() -> Vec<Observation> {
    let mut v = Vec::new();
    for i in 0..20 {
        v.push(obs(
            "fs/read_file",
            json!({"path": format!("/repo/acme/src/f{i}.rs")}),
            LiveVerdict::Allow,
            i,
        ));
        // recorded under a stricter live policy (lockdown denies medium risk)
        v.push(obs(
            "fs/write_file",
            json!({"path": format!("/repo/acme/src/f{i}.rs"), "content": "fn main() {}"}),
            LiveVerdict::Deny,
            i,
        ));
        v.push(obs(
            "payments/refund",
            json!({"amount": 10 + i}),
            LiveVerdict::Escalate,
            i,
        ));
    }
    v
}

fn drafted(o: &[Observation]) -> (remit_draft::Draft, DraftPolicy) {
    let d = draft(
        o,
        &DraftOptions {
            agent: "a".into(),
            ..Default::default()
        },
    );
    let p = DraftPolicy::compile(&d.to_cedar()).unwrap();
    (d, p)
}

#[test]
fn enforced_draft_never_exceeds_its_preset_over_the_observed_space() {
    let o = workload();
    let (_, p) = drafted(&o);
    for preset in Preset::ALL {
        let engine = engine_for(preset);
        let b = check_boundary(&p, engine.as_ref(), &o).unwrap();
        assert!(b.holds(), "{preset}: {:?}", b.exceeds);
        assert_eq!(b.requests, o.len() * 2);
    }
}

#[test]
fn rules_broader_than_the_preset_alone_are_reported_not_enforced() {
    let o = workload();
    let (_, p) = drafted(&o);
    let engine = engine_for(Preset::Standard);
    let b = check_boundary(&p, engine.as_ref(), &o).unwrap();
    // the refund rule permits what standard holds for a human (irreversible)
    assert!(b
        .broader_alone
        .iter()
        .any(|d| d.tool == "payments/refund" && d.preset == LiveVerdict::Escalate));
    // the boundary keeps the escalation
    assert_eq!(boundary(LiveVerdict::Escalate, true), LiveVerdict::Escalate);
    assert_eq!(boundary(LiveVerdict::Allow, false), LiveVerdict::Deny);
}

#[test]
fn diff_lists_dropped_tools_and_refused_calls_the_draft_would_allow() {
    let o = workload();
    let (d, p) = drafted(&o);
    let engine = engine_for(Preset::Standard);
    let diff = diff(&d, &p, engine.as_ref(), &o).unwrap();
    let text = diff.to_text();
    assert!(text.contains("- fs/delete_file"), "{text}");
    assert!(text.contains("~ fs/read_file"), "{text}");
    // writes were denied live (lockdown) and standard allows them within budget
    assert_eq!(diff.newly_allowed.len(), 20);
    assert!(diff.newly_allowed.iter().all(|n| n.tool == "fs/write_file"));
    // refunds escalate under standard too: not newly allowed
    assert!(!diff
        .newly_allowed
        .iter()
        .any(|n| n.tool == "payments/refund"));
}

#[test]
fn the_boundary_form_validates_with_the_preset_against_the_extended_schema() {
    let o = workload();
    let (d, _) = drafted(&o);
    for preset in Preset::ALL {
        let text = format!(
            "{}\n{}",
            preset.text(EngineKind::Cedar),
            d.to_boundary_cedar()
        );
        DraftPolicy::compile(&text).unwrap_or_else(|e| panic!("{preset}: {e}"));
    }
    let empty = draft(
        &[],
        &DraftOptions {
            agent: "a".into(),
            ..Default::default()
        },
    );
    DraftPolicy::compile(&empty.to_boundary_cedar()).unwrap();
}
