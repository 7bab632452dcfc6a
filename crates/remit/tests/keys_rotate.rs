//! `remit keys rotate issuer` under a running `remit serve`: the new key is
//! published beside the old one, signs from then on, and the old one keeps
//! verifying what it signed until it retires. No restart anywhere.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use serde_json::Value;
use support::{remit_command, stderr, stdout};

fn remit(server: &str, token: &str, args: &[&str]) -> Output {
    remit_command()
        .args(args)
        .env("REMIT_SERVER", server)
        .env("REMIT_ADMIN_TOKEN", token)
        .env_remove("REMIT_DATA")
        .output()
        .unwrap()
}

fn ok(out: Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

/// The `kid` in a compact remit's protected header.
fn kid(compact: &str) -> String {
    let header = compact.split('.').next().unwrap();
    let header: Value = serde_json::from_slice(&remit_token::b64::decode(header).unwrap()).unwrap();
    header["kid"].as_str().unwrap().to_owned()
}

/// The key ids the server publishes now.
fn published(url: &str) -> Vec<String> {
    let reply = support::http(url, "GET", "/.well-known/jwks.json", &[], "");
    assert_eq!(reply.status, 200);
    let jwks: Value = serde_json::from_str(&reply.body).unwrap();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

fn file_kids(path: &Path) -> Vec<String> {
    let jwks: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

fn active(url: &str, token: &str, remit: &str) -> bool {
    let reply = support::http(
        url,
        "POST",
        "/oauth/introspect",
        &[
            ("authorization", &format!("Bearer {token}")),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        &format!("token={remit}"),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let answer: Value = serde_json::from_str(&reply.body).unwrap();
    answer["active"] == true
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn rotating_before_the_first_start_is_refused_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = remit(
        "http://127.0.0.1:1",
        "",
        &["keys", "rotate", "issuer", "--data", data.to_str().unwrap()],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("start `remit serve` once"),
        "{}",
        stderr(&out)
    );
    assert!(
        !data.join("issuer.jwk").exists(),
        "a rotation generated a first key"
    );
}

#[test]
fn a_rotated_issuer_key_signs_new_remits_while_old_ones_verify_until_it_retires() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = support::serve(|c| {
        c.arg("--data").arg(&data).args(["--listen", "127.0.0.1:0"]);
    });
    let (url, token) = (server.url.clone(), server.token.clone().unwrap());
    let key = dir.path().join("agent.jwk");
    ok(remit(
        &url,
        "",
        &["keys", "generate", "--out", key.to_str().unwrap()],
    ));
    ok(remit(
        &url,
        &token,
        &[
            "agent",
            "register",
            "--id",
            "planner",
            "--jwk",
            key.to_str().unwrap(),
            "--owner",
            "alice",
            "--risk-tier",
            "low",
        ],
    ));
    let issue = [
        "issue",
        "--agent",
        "planner",
        "--sub",
        "alice",
        "--tool",
        "files/read",
        "--ttl",
        "10m",
    ];
    let before = ok(remit(&url, &token, &issue)).trim().to_owned();
    let old_kid = kid(&before);
    assert_eq!(published(&url), vec![old_kid.clone()]);

    let rotated = ok(remit(
        &url,
        &token,
        &[
            "keys",
            "rotate",
            "issuer",
            "--data",
            data.to_str().unwrap(),
            "--retire-after",
            "10s",
            "--activate-after",
            "1s",
            "--json",
        ],
    ));
    let rotated: Value = serde_json::from_str(&rotated).unwrap();
    assert_eq!(rotated["old_kid"], old_kid.as_str());
    let new_kid = rotated["new_kid"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, old_kid);
    // Both published: in the file wraps read, and by the running server.
    assert_eq!(
        file_kids(&data.join("issuer.jwks.json")),
        vec![new_kid.clone(), old_kid.clone()]
    );
    wait_until("the server publishes both keys", || {
        published(&url) == vec![new_kid.clone(), old_kid.clone()]
    });

    // New remits are signed with the new key; the old remit still verifies.
    let mut after = String::new();
    wait_until("the server signs with the new key", || {
        after = ok(remit(&url, &token, &issue)).trim().to_owned();
        kid(&after) == new_kid
    });
    assert!(active(&url, &token, &after));
    assert!(
        active(&url, &token, &before),
        "a remit of the old key stopped verifying before it retired"
    );

    // Once retired, the old key is gone and what it signed no longer verifies.
    wait_until("the old key retires", || {
        published(&url) == vec![new_kid.clone()]
    });
    assert!(
        !active(&url, &token, &before),
        "a retired key still verifies"
    );
    assert!(active(&url, &token, &after));
    assert_eq!(
        file_kids(&data.join("issuer.jwks.json")),
        vec![new_kid.clone()]
    );

    // A restart keeps the new key.
    drop(server);
    let again = support::serve(|c| {
        c.arg("--data").arg(&data).args(["--listen", "127.0.0.1:0"]);
    });
    assert_eq!(published(&again.url), vec![new_kid]);
}
