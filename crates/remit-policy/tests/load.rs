//! Loading policy sets: what is refused at load, and how versions behave.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use remit_policy::preset::SAMPLE_ENTITIES;
use remit_policy::{
    preset, CedarEngine, Directory, EngineKind, EscalationMode, LoadError, PolicySource, Preset,
    RegoEngine,
};

fn dir() -> Directory {
    Directory::from_json(SAMPLE_ENTITIES).unwrap()
}

fn cedar(overrides: &[(&str, &str)]) -> Result<CedarEngine, LoadError> {
    let mut s = vec![Preset::Standard.source(EngineKind::Cedar)];
    s.extend(overrides.iter().map(|(n, t)| PolicySource::new(*n, *t)));
    CedarEngine::load(&s, EscalationMode::PlainPermitWins, dir())
}

#[test]
fn override_reusing_a_preset_id_is_refused() {
    let err = cedar(&[(
        "overrides/x.cedar",
        r#"@id("std-low-risk") @reason("mine") permit (principal, action, resource);"#,
    )])
    .unwrap_err();
    assert!(
        matches!(err, LoadError::DuplicateId { ref id, .. } if id == "std-low-risk"),
        "{err}"
    );
    assert!(err.to_string().contains("overrides/x.cedar"));
}

#[test]
fn escalate_on_a_forbid_is_refused() {
    let err = cedar(&[(
        "o.cedar",
        r#"@id("x") @reason("r") @escalate("e") forbid (principal, action, resource);"#,
    )])
    .unwrap_err();
    assert!(err.to_string().contains("@escalate"), "{err}");
}

#[test]
fn policy_without_id_or_reason_is_refused() {
    let err = cedar(&[("o.cedar", r#"permit (principal, action, resource);"#)]).unwrap_err();
    assert!(err.to_string().contains("@id"), "{err}");
    let err = cedar(&[(
        "o.cedar",
        r#"@id("x") permit (principal, action, resource);"#,
    )])
    .unwrap_err();
    assert!(err.to_string().contains("@reason"), "{err}");
}

#[test]
fn override_with_a_type_error_is_refused_by_the_schema() {
    let err = cedar(&[(
        "o.cedar",
        r#"@id("x") @reason("r") permit (principal, action == Action::"call_tool", resource) when { resource.risk > 2 };"#,
    )])
    .unwrap_err();
    assert!(matches!(err, LoadError::Validation { .. }), "{err}");
    let err = cedar(&[(
        "o.cedar",
        r#"@id("x") @reason("r") permit (principal, action == Action::"call_tool", resource) when { context.is_admin };"#,
    )])
    .unwrap_err();
    assert!(matches!(err, LoadError::Validation { .. }), "{err}");
}

#[test]
fn syntax_error_names_the_file() {
    let err = cedar(&[("overrides/bad.cedar", "permit (principal action resource);")]).unwrap_err();
    assert!(err.to_string().contains("overrides/bad.cedar"), "{err}");
}

#[test]
fn templates_are_refused() {
    let err = cedar(&[(
        "o.cedar",
        r#"@id("t") @reason("r") permit (principal == ?principal, action, resource);"#,
    )])
    .unwrap_err();
    assert!(err.to_string().contains("template"), "{err}");
}

#[test]
fn version_ignores_layout_but_not_meaning() {
    let a = r#"@id("a") @reason("r") forbid (principal, action, resource) when { context.hour_utc < 6 };
@id("b") @reason("r") forbid (principal, action, resource) when { context.hour_utc > 22 };"#;
    let b = "// comment\n@id(\"b\")\n@reason(\"r\")\nforbid (principal, action, resource)\n  when { context.hour_utc > 22 };\n\n@id(\"a\") @reason(\"r\")\nforbid(principal,action,resource) when {context.hour_utc<6};";
    let va = ver(cedar(&[("x.cedar", a)]));
    let vb = ver(cedar(&[("y.cedar", b)]));
    assert_eq!(va, vb);
    // Split over two files in the other order: still the same.
    let (a1, a2) = a.split_once('\n').unwrap();
    let vc = ver(cedar(&[("2.cedar", a2), ("1.cedar", a1)]));
    assert_eq!(va, vc);
    let changed = a.replace("< 6", "< 7");
    let vd = ver(cedar(&[("x.cedar", &changed)]));
    assert_ne!(va, vd);
    let reason = a.replacen("@reason(\"r\")", "@reason(\"s\")", 1);
    assert_ne!(va, ver(cedar(&[("x.cedar", &reason)])));
    // The escalation mode is part of the version.
    let s = vec![Preset::Standard.source(EngineKind::Cedar)];
    let p = CedarEngine::load(&s, EscalationMode::PlainPermitWins, dir()).unwrap();
    let e = CedarEngine::load(&s, EscalationMode::EscalateWins, dir()).unwrap();
    use remit_policy::PolicyEngine as _;
    assert_ne!(p.version(), e.version());
}

fn ver(r: Result<CedarEngine, LoadError>) -> remit_policy::PolicyVersion {
    use remit_policy::PolicyEngine as _;
    *r.unwrap().version()
}

#[test]
fn every_preset_loads_in_both_engines_with_distinct_versions() {
    let mut versions = std::collections::HashSet::new();
    for p in Preset::ALL {
        for k in [EngineKind::Cedar, EngineKind::Rego] {
            let e = preset::load(k, &[p.source(k)], p.default_mode(), dir()).unwrap();
            assert!(versions.insert(e.version().to_string()), "{p} {k}");
        }
    }
}

#[test]
fn rego_module_in_another_package_is_refused() {
    let s = vec![
        Preset::Standard.source(EngineKind::Rego),
        PolicySource::new("o.rego", "package evil\n\nallow := true\n"),
    ];
    let err = RegoEngine::load(&s, EscalationMode::PlainPermitWins, dir()).unwrap_err();
    assert!(err.to_string().contains("remit.policy"), "{err}");
}

#[test]
fn rego_syntax_error_names_the_file() {
    let s = vec![PolicySource::new(
        "overrides/x.rego",
        "package remit.policy\n\nforbid contains if {",
    )];
    let err = RegoEngine::load(&s, EscalationMode::PlainPermitWins, dir()).unwrap_err();
    assert!(err.to_string().contains("overrides/x.rego"), "{err}");
}

#[test]
fn rego_version_ignores_comments_and_file_order() {
    use remit_policy::PolicyEngine as _;
    let a = PolicySource::new("a.rego", "package remit.policy\n# x\nforbid contains {\"id\": \"a\", \"reason\": \"r\"} if { ctx.hour_utc < 6 }\n");
    let b = PolicySource::new("b.rego", "package remit.policy\n\n   forbid contains {\"id\": \"b\", \"reason\": \"r\"} if { ctx.hour_utc > 22 }");
    let base = Preset::Permissive.source(EngineKind::Rego);
    let m = EscalationMode::PlainPermitWins;
    let v1 = *RegoEngine::load(&[base.clone(), a.clone(), b.clone()], m, dir())
        .unwrap()
        .version();
    let v2 = *RegoEngine::load(&[b, base.clone(), a], m, dir())
        .unwrap()
        .version();
    assert_eq!(v1, v2);
    let c = PolicySource::new("a.rego", "package remit.policy\nforbid contains {\"id\": \"a\", \"reason\": \"r\"} if { ctx.hour_utc < 7 }\n");
    let v3 = *RegoEngine::load(&[base, c], m, dir()).unwrap().version();
    assert_ne!(v1, v3);
}
