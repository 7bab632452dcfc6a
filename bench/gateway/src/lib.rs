//! The parts of the gateway benchmark: a trivial MCP upstream that answers
//! at once, a plain pass-through HTTP proxy (the baseline any gateway pays),
//! and a load client that sends a fixed number of `tools/call` requests at a
//! fixed concurrency and reports latency percentiles and throughput.
//!
//! Everything runs on loopback; `main.rs` wires them together with a real
//! `remit serve` and prints one table.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use axum::body::Bytes;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{json, Value};
use tokio::net::TcpListener;

/// The tool the upstream offers.
pub const TOOL: &str = "echo";

/// Starts the upstream on an ephemeral loopback port: a stateless
/// streamable-HTTP MCP server (`POST /mcp`, JSON answers, no sessions) with
/// one tool, `echo`, answered at once.
pub async fn start_upstream() -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = Router::new().route("/mcp", post(upstream_rpc).get(no_stream));
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(addr)
}

async fn no_stream() -> StatusCode {
    StatusCode::METHOD_NOT_ALLOWED
}

async fn upstream_rpc(body: Bytes) -> Response {
    let Ok(message) = serde_json::from_slice::<Value>(&body) else {
        return json_response(json!({"jsonrpc": "2.0", "id": null,
            "error": {"code": -32700, "message": "parse error"}}));
    };
    let Some(id) = message.get("id").cloned() else {
        // A notification (e.g. notifications/initialized): accepted, no body.
        return StatusCode::ACCEPTED.into_response();
    };
    let method = message.get("method").and_then(Value::as_str).unwrap_or("");
    let result = match method {
        "initialize" => json!({
            "protocolVersion": message.pointer("/params/protocolVersion")
                .and_then(Value::as_str).unwrap_or("2025-06-18"),
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "bench-upstream", "version": "1.0.0"},
        }),
        "ping" => json!({}),
        "tools/list" => json!({"tools": [{
            "name": TOOL,
            "description": "Echoes the text it is given.",
            "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}},
                            "required": ["text"]},
        }]}),
        "tools/call" => {
            let text = message
                .pointer("/params/arguments/text")
                .and_then(Value::as_str)
                .unwrap_or("");
            json!({"content": [{"type": "text", "text": text}], "isError": false})
        }
        other => {
            return json_response(json!({"jsonrpc": "2.0", "id": id,
                "error": {"code": -32601, "message": format!("no method {other}")}}))
        }
    };
    json_response(json!({"jsonrpc": "2.0", "id": id, "result": result}))
}

fn json_response(value: Value) -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

/// Starts a plain pass-through proxy on an ephemeral loopback port: every
/// request is forwarded unchanged (method, path, headers, body) to
/// `upstream` over pooled keep-alive connections and the answer streamed
/// back. No parsing, no checks: the cost of one extra HTTP hop.
pub async fn start_proxy(upstream: SocketAddr) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<HttpConnector, Incoming> =
        Client::builder(TokioExecutor::new()).build(connector);
    let authority: hyper::http::uri::Authority = upstream.to_string().parse()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let client = client.clone();
            let authority = authority.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    forward(client.clone(), authority.clone(), request)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(addr)
}

async fn forward(
    client: Client<HttpConnector, Incoming>,
    authority: hyper::http::uri::Authority,
    request: hyper::Request<Incoming>,
) -> Result<hyper::Response<Incoming>, hyper_util::client::legacy::Error> {
    let (mut parts, body) = request.into_parts();
    let mut uri = parts.uri.into_parts();
    uri.scheme = Some(hyper::http::uri::Scheme::HTTP);
    uri.authority = Some(authority);
    // INVARIANT: scheme, authority and the original path form a valid URI.
    parts.uri = hyper::Uri::from_parts(uri).unwrap_or_default();
    client
        .request(hyper::Request::from_parts(parts, body))
        .await
}

/// How each request of a load run is authenticated.
#[derive(Debug, Clone)]
pub enum Auth {
    /// No credentials (the upstream and the plain proxy).
    None,
    /// `Authorization: DPoP <chain>` with one fresh proof per request,
    /// signed before the run starts so the client's signing is not timed.
    Dpop {
        /// The remit chain.
        chain: String,
        /// One proof per request, in order.
        proofs: Arc<Vec<String>>,
    },
}

/// What a load run measured.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// Requests sent.
    pub calls: usize,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
    /// Completed calls per second over the whole run.
    pub throughput: f64,
    /// Each call's start (since the run began) and latency, in start order.
    pub samples: Vec<(Duration, Duration)>,
    /// How long the run took.
    pub wall: Duration,
}

impl Measurement {
    /// One measurement of several runs of the same load against the same
    /// target (rounds interleaved with other targets): percentiles over all
    /// calls, throughput over the runs' summed time, and each call's start
    /// counted in this target's own time (the runs laid end to end).
    pub fn combine(runs: Vec<Measurement>) -> anyhow::Result<Measurement> {
        let Some(first) = runs.first() else {
            bail!("no runs to combine");
        };
        let concurrency = first.concurrency;
        let (mut calls, mut wall) = (0, Duration::ZERO);
        let mut samples = Vec::new();
        for run in runs {
            calls += run.calls;
            samples.extend(run.samples.into_iter().map(|(start, l)| (wall + start, l)));
            wall += run.wall;
        }
        Ok(summarize(calls, concurrency, samples, wall))
    }
}

/// The `q`th percentile (0–100) of `sorted` (ascending); zero when empty.
pub fn percentile(sorted: &[Duration], q: usize) -> Duration {
    sorted
        .get((sorted.len() * q / 100).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

/// Percentiles and throughput of `samples` taken over `wall`.
fn summarize(
    calls: usize,
    concurrency: usize,
    samples: Vec<(Duration, Duration)>,
    wall: Duration,
) -> Measurement {
    let mut latencies: Vec<Duration> = samples.iter().map(|(_, latency)| *latency).collect();
    latencies.sort_unstable();
    Measurement {
        calls,
        concurrency,
        p50: percentile(&latencies, 50),
        p99: percentile(&latencies, 99),
        throughput: calls as f64 / wall.as_secs_f64(),
        samples,
        wall,
    }
}

/// Sends `calls` `tools/call` requests to `url` with `concurrency` workers,
/// each over its own keep-alive connection. Fails if any answer is not a
/// JSON-RPC result (an error answer is fast, and would flatter the numbers).
pub async fn load(
    url: &str,
    auth: &Auth,
    calls: usize,
    concurrency: usize,
    first_proof: usize,
) -> anyhow::Result<Measurement> {
    let uri: hyper::Uri = url.parse().context("load URL")?;
    let concurrency = concurrency.clamp(1, calls.max(1));
    let started = Instant::now();
    let mut workers = Vec::with_capacity(concurrency);
    for worker in 0..concurrency {
        let uri = uri.clone();
        let auth = auth.clone();
        // Each worker owns its client, so its connection is its own.
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        let client: Client<HttpConnector, Full<Bytes>> = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(1)
            .build(connector);
        workers.push(tokio::spawn(async move {
            let mut samples = Vec::with_capacity(calls / concurrency + 1);
            let mut n = worker;
            while n < calls {
                let begin = Instant::now();
                call(&client, &uri, &auth, n, first_proof + n).await?;
                samples.push((begin - started, begin.elapsed()));
                n += concurrency;
            }
            anyhow::Ok(samples)
        }));
    }
    let mut samples = Vec::with_capacity(calls);
    for worker in workers {
        samples.extend(worker.await.context("load worker panicked")??);
    }
    let wall = started.elapsed();
    samples.sort_unstable();
    Ok(summarize(calls, concurrency, samples, wall))
}

async fn call(
    client: &Client<HttpConnector, Full<Bytes>>,
    uri: &hyper::Uri,
    auth: &Auth,
    id: usize,
    proof: usize,
) -> anyhow::Result<()> {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": TOOL, "arguments": {"text": "hello from the load client"}}});
    let mut request = hyper::Request::post(uri.clone())
        .header(header::CONTENT_TYPE, "application/json")
        .header(header::ACCEPT, "application/json, text/event-stream")
        .header("mcp-protocol-version", "2025-06-18");
    if let Auth::Dpop { chain, proofs } = auth {
        let Some(proof) = proofs.get(proof) else {
            bail!("ran out of pre-signed proofs at request {proof}");
        };
        request = request
            .header(header::AUTHORIZATION, format!("DPoP {chain}"))
            .header("dpop", proof);
    }
    let request = request.body(Full::new(Bytes::from(body.to_string())))?;
    let response = client.request(request).await?;
    let status = response.status();
    let bytes = response.into_body().collect().await?.to_bytes();
    let text = String::from_utf8_lossy(&bytes);
    if !status.is_success() || !text.contains("\"result\"") || text.contains("\"error\"") {
        bail!("request {id} answered {status}: {text}");
    }
    Ok(())
}
