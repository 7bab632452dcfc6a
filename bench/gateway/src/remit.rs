//! A real `remit serve` in front of the upstream: a fresh data directory,
//! the upstream registered and blessed, an agent with its own key, a remit
//! for `echo`, and one pre-signed DPoP proof per request.

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use remit_bench_gateway::{Auth, TOOL};
use remit_token::pop::create_proof;
use remit_token::{EcdsaP256Signer, ProofRequest};

/// The registered upstream's name in the gateway.
const SERVER: &str = "bench";

/// A running `remit serve`, killed on drop.
#[derive(Debug)]
pub struct Gateway {
    /// Its name in the results ("remit", "remit B").
    pub name: &'static str,
    /// `POST` here to reach the upstream through the pipeline.
    pub url: String,
    /// The server's base URL (`/metrics` is under it).
    pub base: String,
    /// The agent's chain and proofs.
    pub auth: Auth,
    child: Child,
    _data: tempfile::TempDir,
}

impl Drop for Gateway {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `remit` binary to start: `REMIT_BIN`, else the release build.
pub fn remit_bin() -> PathBuf {
    std::env::var_os("REMIT_BIN").map_or_else(
        || {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map_or_else(|| PathBuf::from("target"), PathBuf::from);
            target.join("release/remit")
        },
        PathBuf::from,
    )
}

fn run(bin: &Path, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<String> {
    let out = Command::new(bin)
        .args(args)
        .current_dir(dir)
        .envs(env.iter().copied())
        .output()
        .with_context(|| format!("running {} {}", bin.display(), args.join(" ")))?;
    if !out.status.success() {
        bail!(
            "remit {} failed: {}{}",
            args.join(" "),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?)
}

impl Gateway {
    /// Starts the gateway, registers `upstream` and an agent, and signs
    /// `proofs` proofs for the agent's chain.
    pub async fn start(
        name: &'static str,
        bin: &Path,
        upstream: SocketAddr,
        proofs: usize,
    ) -> anyhow::Result<Self> {
        let data = tempfile::tempdir()?;
        let dir = data.path();
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let listen = format!("127.0.0.1:{port}");
        let base = format!("http://{listen}");
        let mut child = Command::new(bin)
            .args(["serve", "--data", "data", "--listen", &listen])
            .current_dir(dir)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {} serve (set REMIT_BIN)", bin.display()))?;
        let stdout = child.stdout.take().context("serve stdout")?;
        let admin = read_admin_token(stdout)?;
        wait_ready(&base).await?;
        let env = [
            ("REMIT_SERVER", base.as_str()),
            ("REMIT_ADMIN_TOKEN", admin.as_str()),
        ];
        let upstream_url = format!("http://{upstream}/mcp");
        run(
            bin,
            dir,
            &[
                "server",
                "add",
                "--id",
                SERVER,
                "--url",
                &upstream_url,
                "--clearance",
                "internal",
            ],
            &env,
        )?;
        run(
            bin,
            dir,
            &["server", "bless", SERVER, "--risk", "low"],
            &env,
        )?;
        run(bin, dir, &["keys", "generate", "--out", "agent.jwk"], &[])?;
        run(
            bin,
            dir,
            &[
                "agent",
                "register",
                "--id",
                "bench-agent",
                "--jwk",
                "agent.jwk",
                "--owner",
                "bench-user",
                "--risk-tier",
                "low",
            ],
            &env,
        )?;
        let tool = format!("{SERVER}/{TOOL}");
        let issued = run(
            bin,
            dir,
            &[
                "issue",
                "--agent",
                "bench-agent",
                "--sub",
                "bench-user",
                "--tool",
                &tool,
                "--ttl",
                "1h",
                "--max-steps",
                "10000000",
                "--json",
            ],
            &env,
        )?;
        let issued: serde_json::Value = serde_json::from_str(&issued)?;
        let chain = issued
            .get("remit")
            .and_then(|t| t.as_str())
            .context("issue answer without token")?
            .to_owned();
        let key: remit_token::PrivateJwk =
            serde_json::from_slice(&std::fs::read(dir.join("agent.jwk"))?)?;
        let holder = EcdsaP256Signer::from_jwk(&key)?;
        let url = format!("{base}/mcp/{SERVER}");
        let leaf = chain.rsplit('~').next().unwrap_or(&chain).to_owned();
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
        let mut signed = Vec::with_capacity(proofs);
        for _ in 0..proofs {
            signed.push(create_proof(
                &holder,
                &leaf,
                ProofRequest {
                    htm: "POST",
                    htu: &url,
                },
                now,
            )?);
        }
        Ok(Self {
            name,
            url,
            base,
            auth: Auth::Dpop {
                chain,
                proofs: Arc::new(signed),
            },
            child,
            _data: data,
        })
    }
}

impl Gateway {
    /// The counters [`Scrape`] reads, from `/metrics` now.
    pub async fn scrape(&self) -> anyhow::Result<Scrape> {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let addr = self.base.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        stream
            .write_all(format!("GET /metrics HTTP/1.0\r\nhost: {addr}\r\n\r\n").as_bytes())
            .await?;
        let mut text = String::new();
        stream.read_to_string(&mut text).await?;
        let value = |name: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(name)?.trim().parse::<f64>().ok())
        };
        let pair = |sum: &str, count: &str| value(sum).zip(value(count));
        let stage = |stage: &str| {
            pair(
                &format!("remit_gateway_stage_seconds_sum{{stage=\"{stage}\"}}"),
                &format!("remit_gateway_stage_seconds_count{{stage=\"{stage}\"}}"),
            )
        };
        Ok(Scrape {
            batches: pair(
                "remit_receipt_batch_size_sum",
                "remit_receipt_batch_size_count",
            ),
            stages: STAGES.map(stage),
        })
    }
}

/// The `remit_gateway_stage_seconds` stages [`Scrape`] reads: the nine
/// of the pipeline, and the three a build from before the one driver
/// exported (each shows where its build has it).
const STAGES: [&str; 11] = [
    "authenticate",
    "authority",
    "pin",
    "scan",
    "decide",
    "budget",
    "route",
    "release",
    "record",
    "upstream",
    "receipt_wait",
];

/// Sums and counts from a gateway's `/metrics`; `None` where its build
/// does not export the metric.
#[derive(Debug, Clone, Copy)]
pub struct Scrape {
    /// Receipts written and durable writes (`remit_receipt_batch_size`).
    pub batches: Option<(f64, f64)>,
    /// Seconds and observations of each of [`STAGES`].
    pub stages: [Option<(f64, f64)>; STAGES.len()],
}

impl Scrape {
    /// What happened between `before` and this scrape, for a person.
    pub fn since(&self, before: &Self) -> String {
        let delta = |now: Option<(f64, f64)>, then: Option<(f64, f64)>| {
            now.zip(then)
                .map(|((s1, c1), (s0, c0))| (s1 - s0, (c1 - c0).max(1.0)))
        };
        let mut out = Vec::new();
        if let Some((receipts, writes)) = delta(self.batches, before.batches) {
            out.push(format!(
                "{:.1} receipts per durable write",
                receipts / writes
            ));
        }
        for (name, (now, then)) in STAGES.iter().zip(self.stages.iter().zip(before.stages)) {
            if let Some((seconds, count)) = delta(*now, then) {
                out.push(format!("{name} mean {:.1} us", seconds / count * 1e6));
            }
        }
        out.join(", ")
    }
}

/// The first `remit serve` prints the admin token once; find it.
fn read_admin_token(stdout: std::process::ChildStdout) -> anyhow::Result<String> {
    let mut lines = BufReader::new(stdout).lines();
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let Some(line) = lines.next() else { break };
        let line = line?;
        if let Some(token) = line.trim().strip_prefix("export REMIT_ADMIN_TOKEN=") {
            let token = token.to_owned();
            // Keep draining stdout so the server never blocks on a full pipe.
            std::thread::spawn(move || for _ in lines.by_ref() {});
            return Ok(token);
        }
    }
    bail!("remit serve printed no admin token")
}

async fn wait_ready(base: &str) -> anyhow::Result<()> {
    let addr = base.trim_start_matches("http://").to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if tokio::net::TcpStream::connect(&addr).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    bail!("remit serve did not listen on {base} within 30 s")
}
