//! Two real `remit serve` processes on one PostgreSQL database (own
//! schema), sharing one data directory (keys, admin token hash, policy):
//! a revocation on A is refused by B, registry changes on A are known to
//! B's policy, both append to one receipt log, and `remit audit verify
//! --server` checks it through either of them.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

struct Running {
    child: Child,
    url: String,
    token: Option<String>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts a replica on `port`; every replica announces the same public
/// URL (the issuer identity in `iss`), as behind one load balancer.
fn serve(data: &Path, database: &str, port: u16, public_url: &str) -> Running {
    let listen = format!("127.0.0.1:{port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_remit"))
        .arg("serve")
        .arg("--data")
        .arg(data)
        .args(["--listen", &listen, "--database", database])
        .args(["--public-url", public_url])
        .env_remove("REMIT_DATABASE")
        .env_remove("REMIT_CONFIG")
        .env_remove("REMIT_LISTEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut reader = BufReader::new(child.stdout.take().unwrap());
    let (mut url, mut token, mut lines) = (None::<String>, None, Vec::new());
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
    assert_eq!(url.as_deref(), Some(public_url), "{lines:?}");
    Running {
        child,
        url: format!("http://{listen}"),
        token,
    }
}

fn http(url: &str, method: &str, path: &str, token: &str, ct: &str, body: &str) -> (u16, Value) {
    let addr = url.strip_prefix("http://").unwrap();
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\nauthorization: Bearer {token}\r\ncontent-type: {ct}\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let status = text[9..12].parse().unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut rest = body;
        loop {
            let (size, tail) = rest.split_once("\r\n").unwrap();
            let size = usize::from_str_radix(size.trim(), 16).unwrap();
            if size == 0 {
                break out;
            }
            out.push_str(&tail[..size]);
            rest = &tail[size + 2..];
        }
    } else {
        body.to_owned()
    };
    (status, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn post(url: &str, token: &str, path: &str, body: &Value) -> (u16, Value) {
    http(
        url,
        "POST",
        path,
        token,
        "application/json",
        &body.to_string(),
    )
}

fn active(url: &str, token: &str, remit: &str) -> bool {
    let (status, body) = http(
        url,
        "POST",
        "/oauth/introspect",
        token,
        "application/x-www-form-urlencoded",
        &format!("token={remit}"),
    );
    assert_eq!(status, 200, "{body}");
    body["active"].as_bool().unwrap()
}

fn register(url: &str, token: &str, id: &str) {
    let key = remit_token::EcdsaP256Signer::generate().unwrap();
    let jwk = remit_token::Signer::public_jwk(&key);
    let (status, body) = post(
        url,
        token,
        "/v1/agents",
        &json!({"id": id, "public_jwk": jwk, "owner": "alice", "risk_tier": "low"}),
    );
    assert_eq!(status, 201, "{body}");
}

fn issue(url: &str, token: &str, agent: &str) -> (u16, Value) {
    post(
        url,
        token,
        "/v1/remits",
        &json!({"agent": agent, "sub": "alice", "grants": [{"type": "remit_tool", "tools": ["fs.read"]}]}),
    )
}

/// Waits (bounded) for `check`; replicas converge through NOTIFY and a
/// periodic catch-up, so the test polls instead of sleeping a fixed time.
fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(Instant::now() < deadline, "{what}: not seen within 20 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A fresh schema in the test database, migrated, as a URL whose
/// connections use it.
fn fresh_database() -> Option<String> {
    let required = std::env::var("REMIT_TEST_REQUIRE_POSTGRES").as_deref() == Ok("1");
    let Ok(url) = std::env::var("REMIT_TEST_DATABASE_URL") else {
        assert!(!required, "REMIT_TEST_DATABASE_URL unset");
        eprintln!("REMIT_TEST_DATABASE_URL unset: replica test not run");
        return None;
    };
    let mut bytes = [0u8; 6];
    aws_lc_rs::rand::fill(&mut bytes).unwrap();
    let schema = format!("replicas_{}", hex::encode(bytes));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    match runtime.block_on(remit_store::PgStore::connect_in_schema(&url, &schema)) {
        Ok(_) => {}
        Err(e) if required => panic!("PostgreSQL required but unreachable: {e}"),
        Err(e) => {
            eprintln!("PostgreSQL unreachable ({e}): replica test not run");
            return None;
        }
    }
    let sep = if url.contains('?') { '&' } else { '?' };
    Some(format!("{url}{sep}options=-c%20search_path%3D{schema}"))
}

#[test]
fn two_processes_on_one_postgres_database_share_revocations_registry_and_log() {
    let Some(database) = fresh_database() else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let ports: Vec<u16> = (0..2)
        .map(|_| {
            std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port()
        })
        .collect();
    let public_url = format!("http://127.0.0.1:{}", ports[0]);
    let a = serve(data.path(), &database, ports[0], &public_url);
    let token = a.token.clone().expect("first start prints the admin token");
    // B shares the data directory: same issuer, receipt and note keys,
    // same admin token hash, same policy folder.
    let b = serve(data.path(), &database, ports[1], &public_url);
    assert!(b.token.is_none(), "the second start reuses the admin token");

    // Registered on A, known to B's policy without a restart.
    register(&a.url, &token, "planner");
    eventually("B's policy learns of the agent registered on A", || {
        issue(&b.url, &token, "planner").0 == 201
    });
    let (status, body) = issue(&a.url, &token, "planner");
    assert_eq!(status, 201, "{body}");
    let remit = body["remit"].as_str().unwrap().to_owned();
    assert!(active(&b.url, &token, &remit), "B honours what A issued");

    // Revoked on A, refused by B.
    let (status, body) = post(
        &a.url,
        &token,
        "/v1/revocations",
        &json!({"kind": "jti", "value": body["jti"]}),
    );
    assert_eq!(status, 201, "{body}");
    assert!(!active(&a.url, &token, &remit));
    eventually("B refuses the remit revoked on A", || {
        !active(&b.url, &token, &remit)
    });

    // Both append to one log, concurrently: no fork, no gap.
    let writers: Vec<_> = [a.url.clone(), b.url.clone()]
        .into_iter()
        .enumerate()
        .map(|(n, url)| {
            let token = token.clone();
            std::thread::spawn(move || {
                for i in 0..10 {
                    register(&url, &token, &format!("agent-{n}-{i}"));
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    for url in [&a.url, &b.url] {
        let out = Command::new(env!("CARGO_BIN_EXE_remit"))
            .args(["audit", "verify", "--server", url, "--json"])
            .env("REMIT_ADMIN_TOKEN", &token)
            .output()
            .unwrap();
        let report: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stderr)));
        assert_eq!(out.status.code(), Some(0), "{report}");
        assert_eq!(report["ok"], true, "{report}");
        // register + issue attempts + issue + revoke + 20 registrations
        assert!(report["size"].as_u64().unwrap() >= 24, "{report}");
        assert_eq!(report["unsealed"], 0, "{report}");
    }
}
