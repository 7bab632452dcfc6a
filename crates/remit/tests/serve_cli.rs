//! The CLI over the API against the real binary: `remit serve` on a free
//! port with a temporary data directory, then `remit agent`, `remit issue`
//! and `remit revoke` as a user runs them, introspection, and an offline
//! audit of the receipt log the server wrote.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::path::Path;
use std::process::Output;

use serde_json::Value;
use support::{remit_command, stderr, stdout, Running};

/// A first start of `remit serve`: where it listens and its admin token.
struct Served {
    url: String,
    token: String,
    _process: Running,
}

/// `remit serve` on a free port with its data in `data`.
fn serve(data: &Path) -> Served {
    let process = support::serve(|c| {
        c.arg("--data").arg(data).args(["--listen", "127.0.0.1:0"]);
    });
    let token = process
        .token
        .clone()
        .unwrap_or_else(|| panic!("no admin token announced: {:?}", process.lines));
    Served {
        url: process.url.clone(),
        token,
        _process: process,
    }
}

/// Runs `remit ARGS` against `server` with `token`.
fn remit(server: &str, token: &str, args: &[&str]) -> Output {
    remit_command()
        .args(args)
        .env("REMIT_SERVER", server)
        .env("REMIT_ADMIN_TOKEN", token)
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

/// `POST /oauth/introspect` with the admin token.
fn introspect(s: &Served, remit: &str) -> Value {
    let reply = support::http(
        &s.url,
        "POST",
        "/oauth/introspect",
        &[
            ("authorization", &format!("Bearer {}", s.token)),
            ("content-type", "application/x-www-form-urlencoded"),
        ],
        &format!("token={remit}"),
    );
    assert!(
        reply.headers.starts_with("HTTP/1.1 200"),
        "{}\r\n\r\n{}",
        reply.headers,
        reply.body
    );
    serde_json::from_str(&reply.body).unwrap()
}

#[test]
fn register_issue_revoke_over_the_api_and_the_receipt_log_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let s = serve(&data);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(data.join("note.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the checkpoint key is a private file");
    }
    let key = dir.path().join("agent.jwk");
    let key_arg = key.to_str().unwrap();
    ok(remit(&s.url, "", &["keys", "generate", "--out", key_arg]));

    // Refusals first: no server, wrong token, a second registration.
    let dead = remit("http://127.0.0.1:1", &s.token, &["agent", "list"]);
    assert_eq!(dead.status.code(), Some(2));
    assert!(
        stderr(&dead).contains("http://127.0.0.1:1"),
        "{}",
        stderr(&dead)
    );
    let forged = remit(&s.url, "remit_admin_forged", &["agent", "list"]);
    assert_eq!(forged.status.code(), Some(1));
    assert!(
        stderr(&forged)
            .starts_with("error: Admin credentials required: the admin token is not valid"),
        "{}",
        stderr(&forged)
    );

    let register = [
        "agent",
        "register",
        "--id",
        "planner",
        "--jwk",
        key_arg,
        "--owner",
        "alice",
        "--risk-tier",
        "low",
    ];
    let said = ok(remit(&s.url, &s.token, &register));
    assert!(said.contains("registered agent planner"), "{said}");
    let again = remit(&s.url, &s.token, &register);
    assert_eq!(again.status.code(), Some(1), "{}", stderr(&again));
    assert!(stderr(&again).starts_with("error: "), "{}", stderr(&again));
    assert!(stderr(&again).contains("planner"), "{}", stderr(&again));

    let listed: Value =
        serde_json::from_str(&ok(remit(&s.url, &s.token, &["agent", "list", "--json"]))).unwrap();
    assert_eq!(listed["agents"][0]["id"], "planner");
    // The private key never left: the registered JWK is public only.
    assert!(listed["agents"][0]["public_jwk"].get("d").is_none());

    let issue = [
        "issue",
        "--agent",
        "planner",
        "--sub",
        "alice",
        "--tool",
        "github.*",
        "--resource",
        "repo:acme/*",
        "--ttl",
        "2m",
        "--class",
        "CONFIDENTIAL",
        "--max-steps",
        "5",
    ];
    let compact = ok(remit(&s.url, &s.token, &issue)).trim().to_owned();
    assert_eq!(compact.split('.').count(), 3, "{compact}");
    let active = introspect(&s, &compact);
    assert_eq!(active["active"], true, "{active}");
    assert_eq!(active["max_steps"], 5);
    assert_eq!(active["class"], "CONFIDENTIAL");
    assert!(active["exp"].as_u64().unwrap() - active["iat"].as_u64().unwrap() <= 120);

    let jti = active["jti"].as_str().unwrap().to_owned();
    let said = ok(remit(&s.url, &s.token, &["revoke", "--jti", &jti]));
    assert!(said.contains(&format!("revoked jti {jti}")), "{said}");
    assert_eq!(introspect(&s, &compact)["active"], false);

    let second: Value = serde_json::from_str(&ok(remit(
        &s.url,
        &s.token,
        &[&issue[..7], &["--json"]].concat(),
    )))
    .unwrap();
    ok(remit(&s.url, &s.token, &["agent", "disable", "planner"]));
    assert_eq!(
        introspect(&s, second["remit"].as_str().unwrap())["active"],
        false
    );
    let refused = remit(&s.url, &s.token, &issue);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stderr(&refused).starts_with("error: Agent disabled: "),
        "{}",
        stderr(&refused)
    );

    // register, issue, revoke, issue, disable: five receipts, all verified.
    let jwks = ok(remit(
        &s.url,
        "",
        &["keys", "jwks", data.join("receipt.jwk").to_str().unwrap()],
    ));
    let jwks_path = dir.path().join("jwks.json");
    std::fs::write(&jwks_path, jwks).unwrap();
    let log = data.join("log");
    let verified = ok(remit(
        &s.url,
        "",
        &[
            "audit",
            "verify",
            "--log",
            log.to_str().unwrap(),
            "--jwks",
            jwks_path.to_str().unwrap(),
            "--json",
        ],
    ));
    let report: Value = serde_json::from_str(&verified).unwrap();
    assert_eq!(report["size"], 5, "{report}");
    // The same log through the running server's API.
    let over_api: Value = serde_json::from_str(&ok(remit(
        &s.url,
        &s.token,
        &["audit", "verify", "--server", &s.url, "--json"],
    )))
    .unwrap();
    assert_eq!(over_api["ok"], true, "{over_api}");
    assert_eq!(over_api["root"], report["root"], "{over_api}");
    // The server is still running, and its file is JSON Lines: no NUL tail.
    let leaves = std::fs::read_to_string(log.join("receipts.jsonl")).unwrap();
    assert!(!leaves.contains('\0'), "a live log shows NUL bytes");
    let kinds: Vec<String> = leaves
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["receipt"]["kind"].to_string())
        .collect();
    assert_eq!(
        kinds,
        [
            "\"register\"",
            "\"issue\"",
            "\"revoke\"",
            "\"issue\"",
            "\"revoke\""
        ]
    );
}
