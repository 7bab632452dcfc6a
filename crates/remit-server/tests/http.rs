//! The control plane over real HTTP, on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use remit_server::{router, AppState, DataDir};
use remit_store::{PgStore, Store};
use remit_token::{EcdsaP256Signer, Signer as _};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

/// A running server and what a client needs to talk to it.
#[derive(Debug)]
struct Running {
    addr: SocketAddr,
    token: String,
    issuer_kid: String,
    _dir: tempfile::TempDir,
    _task: tokio::task::JoinHandle<()>,
}

async fn start<S: Store>(store: S, dir: tempfile::TempDir) -> Running {
    let data = DataDir::open(dir.path()).unwrap();
    let token = data.new_admin_token.clone().unwrap();
    let state = AppState::new(store, &data.issuer, data.admin_token.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        remit_server::serve(listener, router(state), std::future::pending())
            .await
            .unwrap();
    });
    Running {
        addr,
        token,
        issuer_kid: data.issuer.key_id().to_owned(),
        _dir: dir,
        _task: task,
    }
}

/// A response: status, content type, body.
#[derive(Debug)]
struct Reply {
    status: u16,
    content_type: String,
    body: Value,
}

/// One HTTP/1.1 request over a fresh connection, raw bytes on the wire so
/// malformed input reaches the server exactly as written.
async fn send(
    addr: SocketAddr,
    method: &str,
    path: &str,
    auth: Option<&str>,
    body: &[u8],
) -> Reply {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !body.is_empty() {
        head.push_str("Content-Type: application/json\r\n");
    }
    if let Some(token) = auth {
        head.push_str(&format!("Authorization: Bearer {token}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).await.unwrap();
    // The server may answer and close before reading a body it refuses.
    let _ = stream.write_all(body).await;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let status = head[9..12].parse().unwrap();
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type: ")
                .map(str::to_owned)
        })
        .unwrap_or_default();
    let body = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(body).unwrap_or_else(|_| Value::String(body.to_owned()))
    };
    Reply {
        status,
        content_type,
        body,
    }
}

fn agent_key() -> Value {
    let signer = EcdsaP256Signer::generate().unwrap();
    serde_json::to_value(signer.public_jwk()).unwrap()
}

fn assert_problem(reply: &Reply, status: u16, detail_has: &str) {
    assert_eq!(reply.status, status, "{reply:?}");
    assert_eq!(reply.content_type, "application/problem+json", "{reply:?}");
    assert_eq!(reply.body["status"], status);
    let detail = reply.body["detail"].as_str().unwrap();
    assert!(
        detail.contains(detail_has),
        "{detail:?} lacks {detail_has:?}"
    );
}

macro_rules! both_backends {
    ($($name:ident),+ $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                let dir = tempfile::tempdir().unwrap();
                let store = remit_store::SqliteStore::open(&dir.path().join("remit.db")).await.unwrap();
                super::$name(super::start(store, dir).await).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                let Some((store, schema)) = super::postgres_store().await else { return };
                let dir = tempfile::tempdir().unwrap();
                let outcome = tokio::spawn(async move {
                    super::$name(super::start(store, dir).await).await;
                }).await;
                super::drop_schema(&schema).await;
                if let Err(e) = outcome { std::panic::resume_unwind(e.into_panic()); }
            }
        }
    )+};
}

fn postgres_url() -> Option<String> {
    match std::env::var("REMIT_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var("REMIT_TEST_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "REMIT_TEST_REQUIRE_POSTGRES=1 but REMIT_TEST_DATABASE_URL is not set"
            );
            eprintln!("notice: REMIT_TEST_DATABASE_URL is not set; skipping the PostgreSQL half");
            None
        }
    }
}

async fn postgres_store() -> Option<(PgStore, String)> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let url = postgres_url()?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let schema = format!(
        "remit_http_{}_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000_000,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let store = PgStore::connect_in_schema(&url, &schema)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    Some((store, schema))
}

async fn drop_schema(schema: &str) {
    let url = postgres_url().unwrap();
    let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .execute(&mut conn)
        .await
        .unwrap();
}

both_backends!(
    admin_routes_refuse_missing_and_wrong_tokens,
    malformed_and_oversized_bodies_get_precise_problems,
    keys_not_on_the_curve_are_refused,
    agents_register_list_and_disable,
    health_readiness_and_jwks_answer,
);

async fn admin_routes_refuse_missing_and_wrong_tokens(server: Running) {
    let body = json!({"name": "n", "owner": "o", "public_jwk": agent_key()}).to_string();
    let missing = send(server.addr, "POST", "/v1/agents", None, body.as_bytes()).await;
    assert_problem(&missing, 401, "Authorization: Bearer");
    let wrong = send(
        server.addr,
        "POST",
        "/v1/agents",
        Some("remit_admin_not-the-token"),
        body.as_bytes(),
    )
    .await;
    assert_problem(&wrong, 401, "not valid");
    // A prefix of the real token is not the token.
    let prefix = &server.token[..server.token.len() - 1];
    let list = send(server.addr, "GET", "/v1/agents", Some(prefix), b"").await;
    assert_problem(&list, 401, "not valid");
    let ok = send(server.addr, "GET", "/v1/agents", Some(&server.token), b"").await;
    assert_eq!(ok.status, 200, "{ok:?}");
    assert_eq!(ok.body["agents"], json!([]), "nothing was registered");
}

async fn malformed_and_oversized_bodies_get_precise_problems(server: Running) {
    let token = Some(server.token.as_str());
    let syntax = send(server.addr, "POST", "/v1/agents", token, b"{\"name\": ").await;
    assert_eq!(syntax.status, 400, "{syntax:?}");
    assert_eq!(syntax.content_type, "application/problem+json");
    let wrong_type = send(
        server.addr,
        "POST",
        "/v1/agents",
        token,
        br#"{"name": 5, "owner": "o", "public_jwk": {}}"#,
    )
    .await;
    assert_problem(&wrong_type, 422, "name");
    let unknown_field =
        json!({"name": "n", "owner": "o", "public_jwk": agent_key(), "admin": true});
    let extra = send(
        server.addr,
        "POST",
        "/v1/agents",
        token,
        unknown_field.to_string().as_bytes(),
    )
    .await;
    assert_problem(&extra, 422, "admin");
    let huge =
        json!({"name": "x".repeat(remit_server::MAX_BODY_BYTES), "owner": "o", "public_jwk": {}});
    let oversized = send(
        server.addr,
        "POST",
        "/v1/agents",
        token,
        huge.to_string().as_bytes(),
    )
    .await;
    assert_problem(&oversized, 413, "limited to");
    let nowhere = send(server.addr, "GET", "/v1/nothing", token, b"").await;
    assert_problem(&nowhere, 404, "no such route");
}

async fn keys_not_on_the_curve_are_refused(server: Running) {
    let token = Some(server.token.as_str());
    let mut key = agent_key();
    // Keep the lengths, move the point off the curve.
    let x = key["x"].as_str().unwrap().to_owned();
    key["y"] = Value::String(x);
    let body = json!({"name": "n", "owner": "o", "public_jwk": key}).to_string();
    let reply = send(server.addr, "POST", "/v1/agents", token, body.as_bytes()).await;
    assert_problem(&reply, 422, "public_jwk");
    let rsa =
        json!({"name": "n", "owner": "o", "public_jwk": {"kty": "RSA", "n": "AQAB", "e": "AQAB"}});
    let reply = send(
        server.addr,
        "POST",
        "/v1/agents",
        token,
        rsa.to_string().as_bytes(),
    )
    .await;
    assert_problem(&reply, 422, "public_jwk");
    let bad_id = json!({"id": "has space", "name": "n", "owner": "o", "public_jwk": agent_key()});
    let reply = send(
        server.addr,
        "POST",
        "/v1/agents",
        token,
        bad_id.to_string().as_bytes(),
    )
    .await;
    assert_problem(&reply, 422, "agent id");
    let list = send(server.addr, "GET", "/v1/agents", token, b"").await;
    assert_eq!(list.body["agents"], json!([]));
}

async fn agents_register_list_and_disable(server: Running) {
    let token = Some(server.token.as_str());
    let key = agent_key();
    let body = json!({"id": "agt_billing", "name": "Billing bot", "owner": "fin@example.com",
                      "risk_tier": "high", "public_jwk": key});
    let created = send(
        server.addr,
        "POST",
        "/v1/agents",
        token,
        body.to_string().as_bytes(),
    )
    .await;
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(created.body["id"], "agt_billing");
    assert_eq!(created.body["status"], "active");
    assert_eq!(created.body["risk_tier"], "high");
    assert_eq!(created.body["public_jwk"]["x"], key["x"]);

    let again = send(
        server.addr,
        "POST",
        "/v1/agents",
        token,
        body.to_string().as_bytes(),
    )
    .await;
    assert_problem(&again, 409, "agt_billing");
    let same_key = json!({"name": "Copy", "owner": "o", "public_jwk": key});
    let copy = send(
        server.addr,
        "POST",
        "/v1/agents",
        token,
        same_key.to_string().as_bytes(),
    )
    .await;
    assert_problem(&copy, 409, "already exists");

    let derived = json!({"name": "Derived", "owner": "o", "public_jwk": agent_key()});
    let derived = send(
        server.addr,
        "POST",
        "/v1/agents",
        token,
        derived.to_string().as_bytes(),
    )
    .await;
    assert_eq!(derived.status, 201, "{derived:?}");
    assert!(derived.body["id"].as_str().unwrap().starts_with("agt_"));

    let list = send(server.addr, "GET", "/v1/agents", token, b"").await;
    assert_eq!(list.body["agents"].as_array().unwrap().len(), 2);

    let disabled = send(
        server.addr,
        "POST",
        "/v1/agents/agt_billing/disable",
        token,
        b"",
    )
    .await;
    assert_eq!(disabled.status, 200, "{disabled:?}");
    assert_eq!(disabled.body["status"], "disabled");
    let shown = send(server.addr, "GET", "/v1/agents/agt_billing", token, b"").await;
    assert_eq!(shown.body["status"], "disabled");
    let ghost = send(
        server.addr,
        "POST",
        "/v1/agents/agt_ghost/disable",
        token,
        b"",
    )
    .await;
    assert_problem(&ghost, 404, "agt_ghost");
}

async fn health_readiness_and_jwks_answer(server: Running) {
    let health = send(server.addr, "GET", "/healthz", None, b"").await;
    assert_eq!((health.status, &health.body["status"]), (200, &json!("ok")));
    let ready = send(server.addr, "GET", "/readyz", None, b"").await;
    assert_eq!(ready.status, 200, "{ready:?}");
    let jwks = send(server.addr, "GET", "/.well-known/jwks.json", None, b"").await;
    assert_eq!(jwks.status, 200);
    let keys = jwks.body["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0]["kid"], server.issuer_kid.as_str());
    assert_eq!(keys[0]["alg"], "ES256");
    assert!(keys[0].get("d").is_none(), "private scalar published");
}
