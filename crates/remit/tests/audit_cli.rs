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
