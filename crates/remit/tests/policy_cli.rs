//! `remit policy` end to end through the binary.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::Output;

use support::{json, remit};

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn new_folder(root: &Path, preset: &str, engine: &str) -> String {
    let dir = root.join(format!("{preset}-{engine}"));
    let d = dir.to_str().unwrap().to_owned();
    let o = remit(&[
        "policy", "new", "--preset", preset, "--out", &d, "--engine", engine,
    ]);
    assert!(o.status.success(), "{}", text(&o));
    d
}

const CONTEXT: &str = r#"{
  "args": {"repo": "acme/web", "title": "Flaky test"},
  "data_class": "INTERNAL", "chain_depth": 0, "original_user": "alice",
  "steps_used": 1, "steps_max": 20, "risk_budget_used": 2, "risk_budget_max": 10,
  "hour_utc": 14, "description_hash": "sha256:9f2c",
  "remit_tools": ["github/create_issue", "payments/refund"]
}"#;

#[test]
fn validate_refuses_a_conflicting_override_and_names_it() {
    let tmp = tempfile::tempdir().unwrap();
    let d = new_folder(tmp.path(), "standard", "cedar");
    std::fs::write(
        Path::new(&d).join("overrides/dup.cedar"),
        r#"@id("std-low-risk") @reason("again") permit (principal, action, resource);"#,
    )
    .unwrap();
    let o = remit(&["policy", "validate", &d, "--json"]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v = json(&o);
    assert_eq!(v["valid"], false);
    let errors = v["errors"].to_string();
    assert!(
        errors.contains("std-low-risk") && errors.contains("dup.cedar"),
        "{errors}"
    );
}

#[test]
fn validate_refuses_a_schema_type_error() {
    let tmp = tempfile::tempdir().unwrap();
    let d = new_folder(tmp.path(), "lockdown", "cedar");
    std::fs::write(
        Path::new(&d).join("overrides/typo.cedar"),
        r#"@id("x") @reason("r") forbid (principal, action == Action::"call_tool", resource) when { resource.risky };"#,
    )
    .unwrap();
    let o = remit(&["policy", "validate", &d]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("invalid"), "{}", text(&o));
}

#[test]
fn eval_refuses_an_oversized_context_and_an_unknown_tool() {
    let tmp = tempfile::tempdir().unwrap();
    let d = new_folder(tmp.path(), "standard", "cedar");
    let ctx = tmp.path().join("ctx.json");
    let mut big: serde_json::Value = serde_json::from_str(CONTEXT).unwrap();
    big["args"]["body"] = "x".repeat(20_000).into();
    std::fs::write(&ctx, big.to_string()).unwrap();
    let o = remit(&[
        "policy",
        "eval",
        &d,
        "--principal",
        r#"Agent::"a""#,
        "--action",
        "call_tool",
        "--resource",
        r#"Tool::"github/create_issue""#,
        "--context",
        ctx.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("too large"), "{}", text(&o));

    std::fs::write(&ctx, CONTEXT).unwrap();
    let o = remit(&[
        "policy",
        "eval",
        &d,
        "--principal",
        r#"Agent::"a""#,
        "--action",
        "call_tool",
        "--resource",
        r#"Tool::"github/delete_repo""#,
        "--context",
        ctx.to_str().unwrap(),
        "--json",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let v = json(&o);
    assert_eq!(v["decision"], "deny");
    assert_eq!(v["cause"], "invalid_request");
}

#[test]
fn eval_allows_escalates_and_explains_on_both_engines() {
    let tmp = tempfile::tempdir().unwrap();
    let ctx = tmp.path().join("ctx.json");
    std::fs::write(&ctx, CONTEXT).unwrap();
    let c = ctx.to_str().unwrap();
    // Each server has its own pinned description hash: payments is 77aa.
    let pay = tmp.path().join("pay.json");
    std::fs::write(&pay, CONTEXT.replace("sha256:9f2c", "sha256:77aa")).unwrap();
    let p = pay.to_str().unwrap();
    let mut versions = Vec::new();
    for engine in ["cedar", "rego"] {
        let d = new_folder(tmp.path(), "standard", engine);
        let o = remit(&[
            "policy",
            "eval",
            &d,
            "--principal",
            r#"Agent::"a""#,
            "--action",
            "call_tool",
            "--resource",
            r#"Tool::"github/create_issue""#,
            "--context",
            c,
            "--json",
        ]);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let v = json(&o);
        assert_eq!(v["decision"], "allow");
        assert_eq!(v["by"][0]["id"], "std-medium-within-budget");
        versions.push(v["policy_version"].as_str().unwrap().to_owned());

        let o = remit(&[
            "policy",
            "eval",
            &d,
            "--principal",
            r#"Agent::"a""#,
            "--action",
            "call_tool",
            "--resource",
            r#"Tool::"payments/refund""#,
            "--context",
            p,
            "--explain",
        ]);
        assert_eq!(o.status.code(), Some(3), "{}", text(&o));
        let out = text(&o);
        assert!(out.contains("decision: escalate"), "{out}");
        assert!(out.contains("std-high-risk"), "{out}");
        assert!(out.contains("needs approval"), "{out}");
    }
    assert_ne!(versions[0], versions[1], "engines hash differently");
}

#[test]
fn eval_reads_a_resource_only_when_the_remit_grants_it_on_both_engines() {
    let tmp = tempfile::tempdir().unwrap();
    let ungranted = tmp.path().join("ungranted.json");
    let base = CONTEXT.replacen(
        '{',
        r#"{"resource_uri": "repo://acme/web/README.md", "pop": "dpop","#,
        1,
    );
    std::fs::write(&ungranted, &base).unwrap();
    let granted = tmp.path().join("granted.json");
    std::fs::write(&granted, base.replacen('{', r#"{"granted": true,"#, 1)).unwrap();
    for engine in ["cedar", "rego"] {
        let d = new_folder(tmp.path(), "standard", engine);
        let eval = |ctx: &Path| {
            remit(&[
                "policy",
                "eval",
                &d,
                "--principal",
                r#"Agent::"a""#,
                "--action",
                "read_resource",
                "--resource",
                r#"Server::"github""#,
                "--context",
                ctx.to_str().unwrap(),
                "--json",
            ])
        };
        let o = eval(&ungranted);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o));
        let v = json(&o);
        assert_eq!(v["decision"], "deny");
        assert_eq!(v["by"][0]["id"], "std-content-not-granted");
        let o = eval(&granted);
        assert_eq!(o.status.code(), Some(0), "{}", text(&o));
        let v = json(&o);
        assert_eq!(v["decision"], "allow");
        assert_eq!(v["by"][0]["id"], "std-read-resource");
    }
}

#[test]
fn hash_is_stable_and_changes_with_an_override() {
    let tmp = tempfile::tempdir().unwrap();
    let d = new_folder(tmp.path(), "permissive", "cedar");
    let h1 = remit(&["policy", "hash", &d]);
    assert!(h1.status.success());
    let h1 = String::from_utf8(h1.stdout).unwrap();
    assert!(h1.starts_with("sha256:") && h1.trim().len() == 71, "{h1}");
    let h2 = String::from_utf8(remit(&["policy", "hash", &d]).stdout).unwrap();
    assert_eq!(h1, h2);
    std::fs::write(
        Path::new(&d).join("overrides/night.cedar"),
        "// no calls at night\n@id(\"ovr-night\") @reason(\"night\")\nforbid (principal, action, resource) when { context.hour_utc < 6 };\n",
    )
    .unwrap();
    let h3 = String::from_utf8(remit(&["policy", "hash", &d]).stdout).unwrap();
    assert_ne!(h1, h3);
}

#[test]
fn new_refuses_an_unknown_preset_and_a_non_empty_folder() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path().join("x");
    let o = remit(&[
        "policy",
        "new",
        "--preset",
        "yolo",
        "--out",
        d.to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("unknown preset"), "{}", text(&o));
    let d = new_folder(tmp.path(), "standard", "cedar");
    let o = remit(&["policy", "new", "--preset", "standard", "--out", &d]);
    assert_eq!(o.status.code(), Some(2));
    assert!(text(&o).contains("not empty"), "{}", text(&o));
}

#[test]
fn test_runs_a_decision_table_and_reports_failures() {
    let tmp = tempfile::tempdir().unwrap();
    let d = new_folder(tmp.path(), "lockdown", "rego");
    let cases = tmp.path().join("cases.yaml");
    std::fs::write(
        &cases,
        r#"
defaults:
  context: { data_class: PUBLIC, chain_depth: 0, original_user: alice, steps_used: 0,
             steps_max: 5, risk_budget_used: 0, risk_budget_max: 5, hour_utc: 12,
             description_hash: "sha256:9f2c", remit_tools: [github/search, github/create_issue] }
cases:
  - { name: medium risk is denied in lockdown, principal: 'Agent::"a"', action: call_tool, resource: 'Tool::"github/create_issue"', expect: deny, reason: lock-medium-risk }
  - { name: low risk is allowed, principal: 'Agent::"a"', action: call_tool, resource: 'Tool::"github/search"', expect: allow, reason: lock-low-risk }
"#,
    )
    .unwrap();
    let o = remit(&["policy", "test", &d, cases.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(text(&o).contains("2 passed, 0 failed"), "{}", text(&o));

    let wrong = std::fs::read_to_string(&cases)
        .unwrap()
        .replace("expect: allow", "expect: escalate");
    std::fs::write(&cases, wrong).unwrap();
    let o = remit(&["policy", "test", &d, cases.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(
        text(&o).contains("FAIL low risk is allowed"),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("1 passed, 1 failed"), "{}", text(&o));
}

#[test]
fn shipped_tables_pass_through_the_cli() {
    let tmp = tempfile::tempdir().unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../remit-policy/tests/cases");
    for preset in ["lockdown", "standard", "permissive"] {
        let d = new_folder(tmp.path(), preset, "cedar");
        let table = root.join(format!("{preset}.yaml"));
        let o = remit(&["policy", "test", &d, table.to_str().unwrap()]);
        assert!(o.status.success(), "{preset}: {}", text(&o));
        assert!(text(&o).contains(" passed, 0 failed"), "{}", text(&o));
    }
}
