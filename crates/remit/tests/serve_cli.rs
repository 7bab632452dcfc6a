//! The CLI over the API against the real binary: `remit serve` on a free
//! port with a temporary data directory, then `remit agent`, `remit issue`
//! and `remit revoke` as a user runs them, introspection, and an offline
//! audit of the receipt log the server wrote.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

struct Running {
    child: Child,
    url: String,
    token: String,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(data: &Path) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_remit"))
        .arg("serve")
        .arg("--data")
        .arg(data)
        .args(["--listen", "127.0.0.1:0"])
        .env_remove("REMIT_DATABASE")
        .env_remove("REMIT_CONFIG")
        .env_remove("REMIT_LISTEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let (mut url, mut token, mut lines) = (None, None, Vec::new());
    for _ in 0..40 {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap() == 0 {
            break;
        }
        let trimmed = line.trim();
        if let Some(rest) = trimmed.strip_prefix("listening on") {
            url = Some(rest.trim().to_owned());
        }
        if trimmed.starts_with("remit_admin_") {
            token = Some(trimmed.to_owned());
        }
        let done = line.contains("remit keys generate");
        lines.push(line);
        if done {
            break;
        }
    }
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    Running {
        child,
        url: url.unwrap_or_else(|| panic!("no address announced: {lines:?}")),
        token: token.unwrap_or_else(|| panic!("no admin token announced: {lines:?}")),
    }
}

/// Runs `remit ARGS` against `server` with `token`.
fn remit(server: &str, token: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_remit"))
        .args(args)
        .env("REMIT_SERVER", server)
        .env("REMIT_ADMIN_TOKEN", token)
        .output()
        .unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
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
fn introspect(s: &Running, remit: &str) -> Value {
    let addr = s.url.strip_prefix("http://").unwrap();
    let body = format!("token={remit}");
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "POST /oauth/introspect HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\nauthorization: Bearer {}\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n{body}",
        s.token,
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap()).unwrap()
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
    // The server is still running: its file ends in preallocated NUL bytes.
    let leaves = std::fs::read_to_string(log.join("receipts.jsonl")).unwrap();
    let kinds: Vec<String> = leaves
        .trim_end_matches('\0')
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
