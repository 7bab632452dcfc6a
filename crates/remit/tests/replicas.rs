//! Two real `remit serve` processes on one PostgreSQL database (own
//! schema), sharing one data directory (keys, admin token hash, policy):
//! a revocation on A is refused by B, registry changes on A are known to
//! B's policy, both append to one receipt log, and `remit audit verify
//! --server` checks it through either of them. A `remit wrap` on the same
//! store, from a data directory of its own with only the issuer's public
//! JWKS, appends to that log too and obeys the servers' revocations.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Output, Stdio};
use std::time::{Duration, Instant};

use remit_token::Signer as _;
use serde_json::{json, Value};
use support::{remit_command, Running};

/// Starts a replica on `port`; every replica announces the same public
/// URL (the issuer identity in `iss`), as behind one load balancer.
fn serve(data: &Path, database: &str, port: u16, public_url: &str) -> Running {
    let listen = format!("127.0.0.1:{port}");
    let mut replica = support::serve(|c| {
        c.arg("--data")
            .arg(data)
            .args(["--listen", &listen, "--database", database])
            .args(["--public-url", public_url]);
    });
    assert_eq!(replica.url, public_url, "{:?}", replica.lines);
    // Reached at its own port, not at the public URL all replicas share.
    replica.url = format!("http://{listen}");
    replica
}

fn http(url: &str, method: &str, path: &str, token: &str, ct: &str, body: &str) -> (u16, Value) {
    let reply = support::http(
        url,
        method,
        path,
        &[
            ("authorization", &format!("Bearer {token}")),
            ("content-type", ct),
        ],
        body,
    );
    let body = serde_json::from_str(&reply.body).unwrap_or(Value::Null);
    (reply.status, body)
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

/// Revokes the remit `jti` at the server `url`.
fn revoke_jti(url: &str, token: &str, jti: &Value) {
    let (status, body) = post(
        url,
        token,
        "/v1/revocations",
        &json!({"kind": "jti", "value": jti}),
    );
    assert_eq!(status, 201, "{body}");
}

/// `remit audit verify --server url`: the report, after checking that it
/// passed.
fn audit_verify(url: &str, token: &str) -> Value {
    let out = remit_command()
        .args(["audit", "verify", "--server", url, "--json"])
        .env("REMIT_ADMIN_TOKEN", token)
        .output()
        .unwrap();
    let report = support::json(&out);
    assert_eq!(out.status.code(), Some(0), "{report}");
    assert_eq!(report["ok"], true, "{report}");
    report
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
    revoke_jti(&a.url, &token, &body["jti"]);
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
        let report = audit_verify(url, &token);
        // register + issue attempts + issue + revoke + 20 registrations
        assert!(report["size"].as_u64().unwrap() >= 24, "{report}");
        assert_eq!(report["unsealed"], 0, "{report}");
    }
}

/// The repository root (the test upstream and the Python environment).
/// Copies a directory tree of plain files.
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs a `remit` client command against `url` as the admin.
fn remit_cli(dir: &Path, url: &str, token: &str, args: &[&str]) -> Output {
    let out = remit_command()
        .args(args)
        .current_dir(dir)
        .env("REMIT_SERVER", url)
        .env("REMIT_ADMIN_TOKEN", token)
        .env_remove("REMIT_DATABASE")
        .env_remove("REMIT_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "remit {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A running `remit wrap`: one JSON-RPC line in, one answer line out.
struct Wrapped {
    child: Child,
    input: ChildStdin,
    output: BufReader<ChildStdout>,
}

impl Wrapped {
    fn ask(&mut self, message: &Value) -> Value {
        writeln!(self.input, "{message}").unwrap();
        self.input.flush().unwrap();
        let mut line = String::new();
        self.output.read_line(&mut line).unwrap();
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
    }

    fn call(&mut self, id: u64, tool: &str, args: &Value) -> Value {
        self.ask(&json!({
            "jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": tool, "arguments": args},
        }))
    }
}

impl Drop for Wrapped {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The events in the server's receipt log, oldest first.
fn events(url: &str, token: &str) -> Vec<remit_ledger::Event> {
    let (status, body) = http(
        url,
        "GET",
        "/v1/receipts?limit=1000",
        token,
        "application/json",
        "",
    );
    assert_eq!(status, 200, "{body}");
    body["leaves"]
        .as_array()
        .unwrap()
        .iter()
        .map(|leaf| {
            remit_ledger::SignedReceipt::parse(leaf.as_str().unwrap().as_bytes())
                .unwrap()
                .receipt
                .event
        })
        .collect()
}

/// `remit wrap` on the replicas' PostgreSQL store: its calls are receipted
/// in the log the servers share (one audit covers them), a revocation made
/// at a server reaches the running wrap, and a log of its own is refused.
#[test]
fn a_wrap_on_the_shared_store_appends_to_the_shared_log_and_obeys_its_revocations() {
    let Some(database) = fresh_database() else {
        return;
    };
    let python = repo_root().join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/test-deps (the test upstream is a Python MCP server)",
        python.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let files = dir.path().join("files");
    std::fs::create_dir_all(&files).unwrap();
    std::fs::write(files.join("notes.txt"), "meeting at noon\n").unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let public_url = format!("http://127.0.0.1:{port}");
    let server = serve(&data, &database, port, &public_url);
    let token = server
        .token
        .clone()
        .expect("first start prints the admin token");
    let cli = |args: &[&str]| remit_cli(dir.path(), &server.url, &token, args);

    let upstream = format!(
        "stdio:{} {} {}",
        python.display(),
        repo_root().join("tests/upstream/server.py").display(),
        files.display()
    );
    cli(&[
        "server",
        "add",
        "--id",
        "files",
        "--url",
        &upstream,
        "--clearance",
        "internal",
    ]);
    cli(&["server", "bless", "files", "--risk", "low"]);
    cli(&["keys", "generate", "--out", "planner.jwk"]);
    cli(&[
        "agent",
        "register",
        "--id",
        "planner",
        "--jwk",
        "planner.jwk",
        "--owner",
        "alice",
        "--risk-tier",
        "low",
    ]);
    let (status, issued) = post(
        &server.url,
        &token,
        "/v1/remits",
        &json!({
            "agent": "planner", "sub": "alice", "max_steps": 20, "ttl_secs": 600,
            "grants": [{"type": "remit_tool", "tools": ["files/read_file"],
                        "args": {"path": {"prefix": format!("{}/", files.display())}}}],
        }),
    );
    assert_eq!(status, 201, "{issued}");
    std::fs::write(
        dir.path().join("planner.remit"),
        issued["remit"].as_str().unwrap(),
    )
    .unwrap();

    // The wrap runs as on another host: its data directory holds the
    // issuer's *public* JWKS (as the server publishes it), the shared log's
    // receipt and note keys and the policy, never the issuer's private key.
    let host = dir.path().join("agent-host");
    std::fs::create_dir_all(&host).unwrap();
    let (status, published) = http(&server.url, "GET", "/.well-known/jwks.json", "", "", "");
    assert_eq!(status, 200, "{published}");
    std::fs::write(host.join("issuer.jwks.json"), published.to_string()).unwrap();
    for file in ["receipt.jwk", "note.key"] {
        std::fs::copy(data.join(file), host.join(file)).unwrap();
    }
    copy_dir(&data.join("policy"), &host.join("policy"));
    let wrap = |extra: &[&str]| {
        let mut command = remit_command();
        command
            .args([
                "wrap",
                "--remit",
                "planner.remit",
                "--key",
                "planner.jwk",
                "--server",
                "files",
            ])
            .arg("--data")
            .arg(&host)
            .args(["--database", &database, "--public-url", &public_url])
            .args(extra)
            .current_dir(dir.path())
            .env_remove("REMIT_DATABASE")
            .env_remove("REMIT_CONFIG");
        command
    };

    // Refused first: a log of its own would split the audit trail.
    let refused = wrap(&["--log", "elsewhere"]).output().unwrap();
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("drop --log"), "{said}");

    // A JWKS of another issuer: the remit does not verify, nothing starts.
    let stranger = remit_token::EcdsaP256Signer::generate().unwrap();
    let key = stranger.public_jwk().clone().published("stranger");
    std::fs::write(
        dir.path().join("stranger.json"),
        json!({ "keys": [key] }).to_string(),
    )
    .unwrap();
    let refused = wrap(&["--issuer-jwks", "stranger.json"]).output().unwrap();
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("the remit is not active"), "{said}");
    // Without the shared log's note key the wrap would sign checkpoints
    // nobody can verify beside the servers': refused, nothing generated.
    std::fs::rename(host.join("note.key"), dir.path().join("note.key.aside")).unwrap();
    let refused = wrap(&[]).output().unwrap();
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("note.key is missing"), "{said}");
    assert!(!host.join("note.key").exists());
    std::fs::rename(dir.path().join("note.key.aside"), host.join("note.key")).unwrap();
    // No JWKS at all: a precise error saying where it comes from.
    let refused = wrap(&["--issuer-jwks", "missing.json"]).output().unwrap();
    assert!(!refused.status.success());
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(
        said.contains("missing.json") && said.contains("/.well-known/jwks.json"),
        "{said}"
    );

    let before = events(&server.url, &token).len();
    let mut child = wrap(&[])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut wrapped = Wrapped {
        input: child.stdin.take().unwrap(),
        output: BufReader::new(child.stdout.take().unwrap()),
        child,
    };
    let inside = json!({"path": files.join("notes.txt").display().to_string()});
    let allowed = wrapped.call(1, "read_file", &inside);
    assert!(
        allowed["result"]["content"][0]["text"]
            .as_str()
            .is_some_and(|t| t.contains("meeting at noon")),
        "{allowed}"
    );
    let allowed_receipt = allowed["result"]["_meta"]["receipt_id"].as_u64().unwrap();
    let denied = wrapped.call(2, "echo", &json!({"text": "hi"}));
    let denied_receipt = denied["error"]["data"]["receipt_id"].as_u64().unwrap();

    // Both are in the server's log, at the indices the wrap named.
    let log = events(&server.url, &token);
    assert!(log.len() >= before + 2);
    let at = |i: u64| &log[usize::try_from(i).unwrap()];
    assert_eq!(at(allowed_receipt).kind, remit_ledger::Kind::Allow);
    assert_eq!(
        at(allowed_receipt).tool.as_deref(),
        Some("mcp:files/read_file")
    );
    assert_eq!(
        at(allowed_receipt).leaf_jti.as_ref(),
        issued["jti"].as_str().map(str::to_owned).as_ref()
    );
    assert_eq!(at(denied_receipt).kind, remit_ledger::Kind::Deny);

    // Revoked at the server: the running wrap learns it by notification.
    revoke_jti(&server.url, &token, &issued["jti"]);
    let mut id = 10;
    eventually("the running wrap refuses the revoked remit", || {
        id += 1;
        let answer = wrapped.call(id, "read_file", &inside);
        answer["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("revoked"))
    });
    drop(wrapped);

    assert!(
        !host.join("issuer.jwk").exists(),
        "the wrap wrote or read an issuer private key on the agent's host"
    );

    // One audit covers the server's and the wrap's receipts.
    let report = audit_verify(&server.url, &token);
    assert!(
        report["size"].as_u64().unwrap() > denied_receipt,
        "{report}"
    );
}
