//! Revocation propagation and issuance throughput of the control plane.
//!
//! Two replicas, A and B, share one store and one issuer key, as two
//! `remit serve` processes on one database do. For each trial a remit is
//! issued through A's HTTP API (`POST /v1/remits`), B is shown to accept
//! it, then the clock starts, A answers `POST /v1/revocations` for its
//! `jti`, and the clock stops when B's own revocation set rejects the
//! remit (`AppState::check_chain`, what every B request consults).
//!
//! - SQLite: both replicas in this process over one store (in-process
//!   broadcast).
//! - PostgreSQL (when `REMIT_BENCH_DATABASE_URL` or
//!   `REMIT_TEST_DATABASE_URL` is set): each replica has its own
//!   connection pool and its own `LISTEN` connection on a fresh schema, so
//!   B learns only through `NOTIFY` (or its 2 s catch-up poll).
//!
//! Then issuance throughput: remits/s through A's `POST /v1/remits`, each
//! with its durable receipt, sequential and with 8 concurrent clients.
//!
//! `REMIT_BENCH_TRIALS` (default 200) and `REMIT_BENCH_ISSUE` (default 500)
//! set the sizes. See README.md.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use axum::body::Body;
use axum::http::Request;
use remit_server::setup::{DataDir, ISSUER_KEY_FILE, RECEIPT_KEY_FILE};
use remit_server::{AppState, FileReceiptLog, Settings};
use remit_store::{PgStore, SqliteStore, Store};
use remit_token::{EcdsaP256Signer, Signer as _};
use serde_json::{json, Value};
use tower::ServiceExt as _;

/// Longest wait for B before a trial counts as failed.
const DEADLINE: Duration = Duration::from_secs(10);
/// B is asked this often while the revocation travels.
const POLL: Duration = Duration::from_micros(100);

struct Replica<S: Store> {
    state: remit_server::Gateway<S>,
    router: axum::Router,
}

struct Pair<S: Store> {
    a: Replica<S>,
    b: Replica<S>,
    token: String,
    _dir: tempfile::TempDir,
}

async fn replica<S: Store>(
    store: S,
    root: &Path,
    name: &str,
    token: &str,
) -> anyhow::Result<Replica<S>> {
    let shared = DataDir::prepare(&root.join("shared"))?;
    let issuer = shared.key(ISSUER_KEY_FILE)?.signer;
    let own = DataDir::prepare(&root.join(name))?;
    let receipt = own.key(RECEIPT_KEY_FILE)?.signer;
    let log = FileReceiptLog::open(own.path(), receipt, &format!("bench/{name}"))?;
    let hash = remit_server::setup::sha256(token.as_bytes());
    let settings = Settings::new("http://remit.bench");
    let state = AppState::new(store, issuer, hash, settings, Arc::new(log)).await?;
    let state = remit_server::Gateway::new(state, remit_server::GatewayConfig::default())?;
    let router = remit_server::router(state.clone());
    Ok(Replica { state, router })
}

async fn pair<S: Store>(a: S, b: S) -> anyhow::Result<Pair<S>> {
    let dir = tempfile::tempdir()?;
    let token = remit_server::setup::new_admin_token()?;
    let a = replica(a, dir.path(), "a", &token).await?;
    let b = replica(b, dir.path(), "b", &token).await?;
    Ok(Pair {
        a,
        b,
        token,
        _dir: dir,
    })
}

async fn call(
    router: &axum::Router,
    token: &str,
    path: &str,
    body: &Value,
) -> anyhow::Result<(u16, Value)> {
    let request = Request::post(path)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))?;
    let response = router.clone().oneshot(request).await?;
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await?;
    Ok((
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    ))
}

async fn register_agent<S: Store>(pair: &Pair<S>, id: &str) -> anyhow::Result<()> {
    let key = EcdsaP256Signer::generate()?;
    let jwk = serde_json::to_value(key.public_jwk())?;
    let (status, body) = call(
        &pair.a.router,
        &pair.token,
        "/v1/agents",
        &json!({"id": id, "public_jwk": jwk, "owner": "alice", "risk_tier": "low"}),
    )
    .await?;
    if status != 201 {
        bail!("registering the agent: {status} {body}");
    }
    Ok(())
}

async fn issue(
    router: &axum::Router,
    token: &str,
    agent: &str,
) -> anyhow::Result<(String, String)> {
    let (status, body) = call(
        router,
        token,
        "/v1/remits",
        &json!({"agent": agent, "sub": "alice", "grants": [{"type": "remit_tool", "tools": ["read_file"]}], "ttl_secs": 600}),
    )
    .await?;
    if status != 201 {
        bail!("issuing: {status} {body}");
    }
    let remit = body["remit"]
        .as_str()
        .context("no remit in the answer")?
        .to_owned();
    let jti = body["jti"]
        .as_str()
        .context("no jti in the answer")?
        .to_owned();
    Ok((remit, jti))
}

fn now() -> u64 {
    remit_server::state::now()
}

/// Runs the trials; returns (propagation, A's revoke call) latencies.
async fn propagation<S: Store>(
    pair: &Pair<S>,
    trials: usize,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    register_agent(pair, "bench-agent").await?;
    let mut spread = Vec::with_capacity(trials);
    let mut calls = Vec::with_capacity(trials);
    for trial in 0..trials {
        let (remit, jti) = issue(&pair.a.router, &pair.token, "bench-agent").await?;
        if let Err(e) = pair.b.state.check_chain(&remit, now()) {
            bail!("trial {trial}: B does not accept a fresh remit: {e}");
        }
        let started = Instant::now();
        let (status, body) = call(
            &pair.a.router,
            &pair.token,
            "/v1/revocations",
            &json!({"kind": "jti", "value": jti}),
        )
        .await?;
        let answered = started.elapsed();
        if status != 201 {
            bail!("trial {trial}: revoking: {status} {body}");
        }
        if pair.a.state.check_chain(&remit, now()).is_ok() {
            bail!("trial {trial}: A still accepts the remit it revoked");
        }
        loop {
            if pair.b.state.check_chain(&remit, now()).is_err() {
                break;
            }
            if started.elapsed() > DEADLINE {
                bail!("trial {trial}: B still accepts the remit after {DEADLINE:?}");
            }
            tokio::time::sleep(POLL).await;
        }
        spread.push(started.elapsed());
        calls.push(answered);
    }
    Ok((spread, calls))
}

async fn throughput<S: Store>(pair: &Pair<S>, total: usize, clients: usize) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let router = pair.a.router.clone();
        let token = pair.token.clone();
        let n = total / clients;
        tasks.push(tokio::spawn(async move {
            for _ in 0..n {
                issue(&router, &token, "bench-agent").await?;
            }
            anyhow::Ok(n)
        }));
    }
    let mut done = 0;
    for task in tasks {
        done += task.await??;
    }
    Ok(done as f64 / started.elapsed().as_secs_f64())
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{what:<44} n={:<4} p50 {:>8.3} ms  p99 {:>8.3} ms  max {:>8.3} ms",
        samples.len(),
        ms(percentile(&samples, 50.0)),
        ms(percentile(&samples, 99.0)),
        ms(percentile(&samples, 100.0)),
    );
}

async fn run<S: Store>(
    backend: &str,
    pair: Pair<S>,
    trials: usize,
    issued: usize,
) -> anyhow::Result<()> {
    let (spread, calls) = propagation(&pair, trials).await?;
    report(&format!("{backend}: revoke on A -> B rejects"), spread);
    report(&format!("{backend}: A answers the revoke call"), calls);
    for clients in [1, 8] {
        let rate = throughput(&pair, issued, clients).await?;
        println!(
            "{backend}: issuance, {clients} client(s){:<17} {rate:>8.0} remits/s",
            ""
        );
    }
    Ok(())
}

fn env_usize(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .with_context(|| format!("{name}={v:?} is not a count")),
        Err(_) => Ok(default),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let trials = env_usize("REMIT_BENCH_TRIALS", 200)?;
    let issued = env_usize("REMIT_BENCH_ISSUE", 500)?;
    let dir = tempfile::tempdir()?;
    let sqlite = SqliteStore::open(&dir.path().join("bench.db")).await?;
    run(
        "sqlite",
        pair(sqlite.clone(), sqlite).await?,
        trials,
        issued,
    )
    .await?;

    let url = std::env::var("REMIT_BENCH_DATABASE_URL")
        .or_else(|_| std::env::var("REMIT_TEST_DATABASE_URL"));
    match url {
        Ok(url) => {
            let schema = format!("bench_rev_{}", std::process::id());
            let a = PgStore::connect_in_schema(&url, &schema).await?;
            let b = PgStore::connect_in_schema(&url, &schema).await?;
            run("postgres", pair(a, b).await?, trials, issued).await?;
        }
        Err(_) => println!("postgres: skipped (set REMIT_BENCH_DATABASE_URL)"),
    }
    Ok(())
}
