//! `remit token` end to end through the binary: exit codes and output shape.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;

use support::{json, remit, stdout};

/// A scratch folder for one test's keys, tokens and files.
struct Dir(tempfile::TempDir);

impl Dir {
    fn new() -> Dir {
        Dir(tempfile::tempdir().unwrap())
    }

    fn path(&self, file: &str) -> String {
        self.0.path().join(file).to_str().unwrap().to_owned()
    }

    fn key(&self, name: &str) -> String {
        let path = self.path(name);
        assert!(remit(&["keys", "generate", "--out", &path])
            .status
            .success());
        path
    }
}

/// issuer key, jwks file, holder keys a and b, a root and a child chain.
fn setup(dir: &Dir) -> (String, String, String, String, String) {
    let issuer = dir.key("issuer.jwk");
    let (a, b) = (dir.key("a.jwk"), dir.key("b.jwk"));
    let jwks = remit(&["keys", "jwks", &issuer]);
    let jwks_path = dir.path("jwks.json");
    std::fs::write(&jwks_path, &jwks.stdout).unwrap();
    let out = remit(&[
        "token",
        "mint",
        "--issuer-key",
        &issuer,
        "--sub",
        "alice",
        "--agent",
        "planner",
        "--holder-jwk",
        &a,
        "--tool",
        "fs.*",
        "--tool",
        "net.get",
        "--resource",
        "/tmp/**",
        "--max-steps",
        "10",
        "--class",
        "CONFIDENTIAL",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let root = stdout(&out).trim().to_owned();
    let out = remit(&[
        "token",
        "delegate",
        "--parent",
        &root,
        "--holder-key",
        &a,
        "--to-jwk",
        &b,
        "--agent",
        "reader",
        "--tool",
        "fs.read",
        "--resource",
        "/tmp/a/*",
        "--class",
        "INTERNAL",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let chain = stdout(&out).trim().to_owned();
    (jwks_path, a, b, root, chain)
}

#[test]
fn verify_refuses_escalated_delegation_with_exit_1_naming_link_and_rule() {
    let dir = Dir::new();
    let (jwks, a, b, root, chain) = setup(&dir);
    // The CLI itself refuses to delegate a tool the parent lacks.
    let out = remit(&[
        "token",
        "delegate",
        "--parent",
        &chain,
        "--holder-key",
        &b,
        "--to-jwk",
        &a,
        "--agent",
        "x",
        "--tool",
        "shell.exec",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("shell.exec"));
    // A chain whose child is glued under a different root fails at link 1.
    let other_root = stdout(&remit(&[
        "token",
        "mint",
        "--issuer-key",
        &dir.path("issuer.jwk"),
        "--sub",
        "alice",
        "--agent",
        "planner",
        "--holder-jwk",
        &a,
        "--tool",
        "fs.*",
    ]))
    .trim()
    .to_owned();
    let child = chain.rsplit_once('~').unwrap().1;
    let spliced = format!("{other_root}~{child}");
    let out = remit(&["token", "verify", "--jwks", &jwks, &spliced, "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["valid"], false);
    assert_eq!(v["link"], 1);
    assert_eq!(v["rule"], "prf_mismatch");
    // The honest root still verifies.
    assert!(remit(&["token", "verify", "--jwks", &jwks, &root])
        .status
        .success());
}

#[test]
fn verify_denies_a_call_outside_the_leaf_with_exit_1() {
    let dir = Dir::new();
    let (jwks, _, _, _, chain) = setup(&dir);
    let out = remit(&[
        "token",
        "verify",
        "--jwks",
        &jwks,
        &chain,
        "--tool",
        "fs.write",
        "--resource",
        "/tmp/a/x",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("denied"));
    let chain_file = dir.path("chain.txt");
    std::fs::write(&chain_file, &chain).unwrap();
    let out = remit(&[
        "token",
        "verify",
        "--jwks",
        &jwks,
        &chain_file,
        "--tool",
        "fs.read",
        "--resource",
        "/tmp/a/x",
        "--arg",
        "path=/tmp/a/x",
        "--json",
    ]);
    assert!(out.status.success(), "{}", stdout(&out));
    let v = json(&out);
    assert_eq!(v["valid"], true);
    assert_eq!(v["call"]["allowed"], true);
    assert_eq!(v["authority"]["class"], "INTERNAL");
    assert_eq!(
        v["authority"]["actors"],
        serde_json::json!(["reader", "planner"])
    );
    assert_eq!(v["authority"]["links"], 2);
}

#[test]
fn mint_refuses_overlong_ttl_and_inspect_marks_output_unverified() {
    let dir = Dir::new();
    let (_, a, _, root, _) = setup(&dir);
    let out = remit(&[
        "token",
        "mint",
        "--issuer-key",
        &dir.path("issuer.jwk"),
        "--sub",
        "s",
        "--agent",
        "x",
        "--holder-jwk",
        &a,
        "--tool",
        "t",
        "--ttl",
        "25h",
    ]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("ttl"));
    let out = remit(&["token", "inspect", &root, "--json"]);
    assert!(out.status.success());
    let v = json(&out);
    assert_eq!(v["verified"], false);
    assert_eq!(v["links"][0]["claims"]["sub"], "alice");
    assert_eq!(v["links"][0]["claims"]["max_steps"], 10);
    assert!(Path::new(&a).exists());
}
