//! `remit serve` as a user starts it: a real process, real HTTP.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

/// A `remit serve` child, killed when dropped.
#[derive(Debug)]
struct Served {
    child: Child,
    summary: Value,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(data: &std::path::Path, database: Option<&str>) -> Served {
    let mut command = Command::new(env!("CARGO_BIN_EXE_remit"));
    command
        .args(["serve", "--json", "--listen", "127.0.0.1:0", "--data"])
        .arg(data)
        .env_remove("REMIT_DATABASE_URL")
        .env_remove("REMIT_LISTEN")
        .env("REMIT_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(url) = database {
        command.args(["--database", url]);
    }
    let mut child = command.spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let summary = serde_json::from_str(&line).unwrap_or_else(|_| {
        let _ = child.kill();
        panic!("remit serve printed no summary: {line:?}")
    });
    Served { child, summary }
}

fn get(served: &Served, path: &str, token: Option<&str>) -> (u16, Value) {
    let url = served.summary["listening"].as_str().unwrap();
    let addr = url.strip_prefix("http://").unwrap();
    let mut stream = TcpStream::connect(addr).unwrap();
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{auth}\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    (
        head[9..12].parse().unwrap(),
        serde_json::from_str(body).unwrap_or(Value::Null),
    )
}

fn check_first_and_second_start(data: &std::path::Path, database: Option<&str>) {
    let first = serve(data, database);
    let token = first.summary["admin_token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("remit_admin_"));
    assert_eq!(first.summary["created"].as_array().unwrap().len(), 3);
    assert_eq!(get(&first, "/healthz", None).0, 200);
    assert_eq!(get(&first, "/readyz", None).0, 200);
    assert_eq!(get(&first, "/v1/agents", None).0, 401);
    let (status, agents) = get(&first, "/v1/agents", Some(&token));
    assert_eq!(
        (status, agents["agents"].clone()),
        (200, Value::Array(vec![]))
    );
    let (_, jwks) = get(&first, "/.well-known/jwks.json", None);
    assert_eq!(jwks["keys"][0]["kid"], first.summary["issuer_kid"]);
    let issuer = first.summary["issuer_kid"].clone();
    drop(first);

    let second = serve(data, database);
    assert_eq!(
        second.summary["admin_token"],
        Value::Null,
        "token shown twice"
    );
    assert_eq!(second.summary["issuer_kid"], issuer, "issuer key changed");
    assert_eq!(get(&second, "/v1/agents", Some(&token)).0, 200);
}

#[test]
fn first_start_creates_keys_and_token_and_a_restart_keeps_them_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("remit-data");
    check_first_and_second_start(&data, None);
    assert!(data.join("remit.db").exists());
    let hash = std::fs::read_to_string(data.join("admin-token.sha256")).unwrap();
    assert!(!hash.contains("remit_admin_"));
}

#[test]
fn an_unknown_database_scheme_is_refused_with_a_hint() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_remit"))
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--database",
            "mysql://x:secret@h/db",
            "--data",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("postgres://"), "{err}");
    assert!(!err.contains("secret"), "password echoed: {err}");
}

#[test]
fn serve_runs_on_postgres_in_its_own_schema() {
    let url = match std::env::var("REMIT_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => {
            assert!(
                std::env::var("REMIT_TEST_REQUIRE_POSTGRES").as_deref() != Ok("1"),
                "REMIT_TEST_REQUIRE_POSTGRES=1 but REMIT_TEST_DATABASE_URL is not set"
            );
            eprintln!("notice: REMIT_TEST_DATABASE_URL is not set; skipping");
            return;
        }
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let schema = format!(
        "remit_serve_{}_{}",
        std::process::id(),
        nanos % 1_000_000_000
    );
    let psql = |sql: &str| {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let mut conn = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
                .await
                .unwrap();
            sqlx::query(sql).execute(&mut conn).await.unwrap();
        });
    };
    psql(&format!("CREATE SCHEMA \"{schema}\""));
    let sep = if url.contains('?') { '&' } else { '?' };
    let scoped = format!("{url}{sep}options=-c%20search_path%3D{schema}");
    let dir = tempfile::tempdir().unwrap();
    let outcome =
        std::panic::catch_unwind(|| check_first_and_second_start(dir.path(), Some(&scoped)));
    psql(&format!("DROP SCHEMA \"{schema}\" CASCADE"));
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}
