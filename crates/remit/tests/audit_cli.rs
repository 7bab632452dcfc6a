//! `remit audit` end to end: append, verify, tamper, prove, show, export.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;

use remit_ledger::merkle::{verify_inclusion, Hash};
use support::{init_log, json, key_with_jwks, remit_in};

const EVENTS: &str = r#"{"kind":"issue","time":1764072000000,"root_jti":"r1","leaf_jti":"r1","actors":[{"kind":"user","id":"alice"},{"kind":"agent","id":"planner"}]}
{"kind":"delegate","time":1764072001000,"root_jti":"r1","leaf_jti":"l2","actors":[{"kind":"user","id":"alice"},{"kind":"agent","id":"planner"},{"kind":"agent","id":"coder"}]}
{"kind":"deny","time":1764072002000,"root_jti":"r9","leaf_jti":"r9","actors":[{"kind":"user","id":"bob"},{"kind":"agent","id":"coder"}],"tool":"fs.delete","decision":{"effect":"deny","policy_ids":["standard.no_delete"],"policy_version":"sha256:00","reason":"destructive tool"}}
"#;

fn setup(dir: &Path) {
    key_with_jwks(dir, "gw.jwk", "gw1", "jwks.json");
    key_with_jwks(dir, "other.jwk", "other", "other.json");
    let note_pub = init_log(dir, "remit.example/audit");
    std::fs::write(dir.join("note.pub"), note_pub).unwrap();
    std::fs::write(dir.join("events.jsonl"), EVENTS).unwrap();
    let append = remit_in(
        dir,
        &[
            "audit",
            "append",
            "--log",
            "log",
            "--key",
            "gw.jwk",
            "--note-key",
            "note.key",
            "--receipt",
            "events.jsonl",
        ],
    );
    assert_eq!(String::from_utf8_lossy(&append.stdout), "0\n1\n2\n");
}

#[test]
fn verify_refuses_a_tampered_leaf_and_an_untrusted_key() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    setup(dir);
    let verify = |jwks: &str| {
        remit_in(
            dir,
            &[
                "audit",
                "verify",
                "--log",
                "log",
                "--jwks",
                jwks,
                "--note-pub",
                "note.pub",
                "--json",
            ],
        )
    };
    let ok = verify("jwks.json");
    assert!(ok.status.success());
    assert_eq!(json(&ok)["note_key_pinned"], true);
    assert_eq!(json(&ok)["size"], 3);

    let untrusted = verify("other.json");
    assert_eq!(untrusted.status.code(), Some(1));
    assert_eq!(json(&untrusted)["code"], "unknown_key");
    assert_eq!(json(&untrusted)["index"], 0);

    let path = dir.join("log/receipts.jsonl");
    let text = std::fs::read_to_string(&path).unwrap();
    let edited = text.replace(
        r#"{"id":"coder","kind":"agent"}],"index":1"#,
        r#"{"id":"c0der","kind":"agent"}],"index":1"#,
    );
    assert_ne!(edited, text);
    std::fs::write(&path, edited).unwrap();
    let tampered = verify("jwks.json");
    assert_eq!(tampered.status.code(), Some(1));
    assert_eq!(json(&tampered)["code"], "bad_signature");
    assert_eq!(json(&tampered)["index"], 1);
}

#[test]
fn prove_show_and_export_agree_with_the_log() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    setup(dir);
    let proof = json(&remit_in(
        dir,
        &["audit", "prove", "--log", "log", "--index", "1"],
    ));
    let h = |v: &serde_json::Value| Hash::from_hex(v.as_str().unwrap()).unwrap();
    let path: Vec<Hash> = proof["proof"].as_array().unwrap().iter().map(h).collect();
    verify_inclusion(&h(&proof["leaf_hash"]), 1, 3, &path, &h(&proof["root"])).unwrap();
    assert!(verify_inclusion(&h(&proof["leaf_hash"]), 0, 3, &path, &h(&proof["root"])).is_err());

    let show = remit_in(dir, &["audit", "show", "--log", "log", "--user", "alice"]);
    let text = String::from_utf8(show.stdout).unwrap();
    assert!(
        text.contains("user:alice → agent:planner → agent:coder"),
        "{text}"
    );
    assert!(!text.contains("bob"), "{text}");
    let by_jti = json(&remit_in(
        dir,
        &["audit", "show", "--log", "log", "--jti", "r9", "--json"],
    ));
    assert_eq!(by_jti.as_array().unwrap().len(), 1);
    assert_eq!(by_jti[0]["receipt"]["tool"], "fs.delete");

    let ocsf = remit_in(
        dir,
        &["audit", "export", "--log", "log", "--format", "ocsf"],
    );
    let events: Vec<serde_json::Value> = String::from_utf8(ocsf.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 3);
    assert!(events.iter().all(|e| e["class_uid"] == 6003));
    assert_eq!(events[2]["status_id"], 2);
    assert_eq!(
        events[2]["unmapped"]["remit"]["decision"]["reason"],
        "destructive tool"
    );
}

/// A log whose every leaf is validly signed and sealed but that breaks the
/// gateway's own rules: an allow after the revocation of its subtree, an
/// approval spent twice, a decision under a version other than the
/// promoted one.
const BROKEN_RULES: &str = r#"{"kind":"allow","time":1,"root_jti":"r1","leaf_jti":"l2","actors":[{"kind":"user","id":"alice"},{"kind":"agent","id":"coder"}],"tool":"mcp:files/read_file","revocation_epoch":0}
{"kind":"revoke","time":2,"tool":"revoke.subtree:r1","revocation_epoch":1}
{"kind":"allow","time":3,"root_jti":"r1","leaf_jti":"l2","actors":[{"kind":"user","id":"alice"},{"kind":"agent","id":"coder"}],"tool":"mcp:files/read_file","revocation_epoch":1}
{"kind":"approve","time":4,"approval":{"id":"apr_1","approver":"bob"}}
{"kind":"allow","time":5,"leaf_jti":"l7","approval":{"id":"apr_1","approver":"bob"}}
{"kind":"allow","time":6,"leaf_jti":"l7","approval":{"id":"apr_1","approver":"bob"}}
{"kind":"promote","time":7,"decision":{"effect":"allow","policy_ids":[],"policy_version":"sha256:new"}}
{"kind":"deny","time":8,"leaf_jti":"l8","decision":{"effect":"deny","policy_ids":["p"],"policy_version":"sha256:old"}}
"#;

#[test]
fn verify_reports_each_broken_rule_by_receipt_index() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    key_with_jwks(dir, "gw.jwk", "gw1", "jwks.json");
    let note_pub = init_log(dir, "remit.example/audit");
    std::fs::write(dir.join("note.pub"), note_pub).unwrap();
    std::fs::write(dir.join("events.jsonl"), BROKEN_RULES).unwrap();
    let args = ["--log", "log", "--key", "gw.jwk", "--note-key", "note.key"];
    let append = remit_in(
        dir,
        &[
            &["audit", "append"][..],
            &args,
            &["--receipt", "events.jsonl"],
        ]
        .concat(),
    );
    assert!(append.status.success(), "{append:?}");
    let verify = |extra: &[&str]| {
        let base = ["audit", "verify", "--log", "log", "--jwks", "jwks.json"];
        remit_in(dir, &[&base[..], extra].concat())
    };
    let out = verify(&["--note-pub", "note.pub", "--json"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let report = json(&out);
    assert_eq!(report["ok"], false);
    assert_eq!(report["code"], "semantic");
    let found: Vec<(u64, String)> = report["violations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            (
                v["index"].as_u64().unwrap(),
                v["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            (2, "allow_after_revocation".to_owned()),
            (5, "approval_reused".to_owned()),
            (7, "policy_version_not_promoted".to_owned()),
        ]
    );
    let text = String::from_utf8(verify(&[]).stdout).unwrap();
    assert!(
        text.contains("FAILED: receipt 2: allow_after_revocation"),
        "{text}"
    );
}
