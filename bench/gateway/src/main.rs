//! `gateway-bench`: one run, three paths, the same load.
//!
//! 1. direct to a trivial MCP upstream,
//! 2. through a plain pass-through HTTP proxy (hyper),
//! 3. through Remit's full pipeline (`remit serve`, DPoP chain, scanning,
//!    policy, step counting, durable receipts).
//!
//! Environment: `CALLS` (default 20000) and `CONCURRENCY` (default 16) for
//! the throughput phase, `LATENCY_CALLS` (default 5000) for the phase at
//! concurrency 1, `REMIT_BIN` (default `target/release/remit`), `SKIP_REMIT=1`
//! to measure only the baselines, `SAMPLES_CSV=FILE` to write every timed
//! call (phase, path, start and latency in µs) for lining slow calls up
//! against time. For each Remit gateway it also prints, per phase, how many
//! receipts shared one durable write and the mean time of the stages its
//! `/metrics` reports (the pipeline's nine stages, authenticate to record).
//!
//! Comparing two builds: `REMIT_BIN_B=<other remit>` starts a second
//! gateway ("remit B") under the same load, and `ROUNDS=N` (default 1)
//! splits each phase into N rounds that visit every path in turn (in
//! reverse order every other round), so a machine whose speed drifts
//! during the run drifts under all paths alike and no path always follows
//! the same one.
//!
//! Before the load it times, on this machine, the costs every allowed call
//! pays in series (one ES256 verify, one ES256 signature, one leaf-sized
//! durable write; see [`anchors`]) and prints them after the results.

mod anchors;
mod remit;

use std::time::Duration;

use anyhow::Context as _;
use remit_bench_gateway::{load, start_proxy, start_upstream, Auth, Measurement};

fn env_usize(name: &str, default: usize) -> anyhow::Result<usize> {
    match std::env::var(name) {
        Ok(value) => value
            .parse()
            .with_context(|| format!("{name}={value} is not a count")),
        Err(_) => Ok(default),
    }
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Writes each timed call as `phase,path,start_us,latency_us`.
fn write_samples(file: &std::path::Path, rows: &[(&str, &str, Measurement)]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::BufWriter::new(
        std::fs::File::create(file).with_context(|| format!("create {}", file.display()))?,
    );
    writeln!(out, "phase,path,start_us,latency_us")?;
    for (phase, name, m) in rows {
        for (start, latency) in &m.samples {
            writeln!(
                out,
                "{phase},{name},{:.0},{:.1}",
                micros(*start),
                micros(*latency)
            )?;
        }
    }
    out.flush()?;
    Ok(())
}

struct Target {
    name: &'static str,
    url: String,
    auth: Auth,
    /// Proofs used so far (each proof is single-use).
    used: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let calls = env_usize("CALLS", 20_000)?;
    let concurrency = env_usize("CONCURRENCY", 16)?;
    let latency_calls = env_usize("LATENCY_CALLS", 5_000)?;
    let rounds = env_usize("ROUNDS", 1)?.max(1);
    let warmup = 500;

    // On the disk of the gateways' data directories (temporary directories).
    let scratch = tempfile::tempdir()?;
    let anchors = anchors::measure(scratch.path())?;
    drop(scratch);

    let upstream = start_upstream().await?;
    let proxy = start_proxy(upstream).await?;
    let mut targets = vec![
        Target {
            name: "direct",
            url: format!("http://{upstream}/mcp"),
            auth: Auth::None,
            used: 0,
        },
        Target {
            name: "plain proxy",
            url: format!("http://{proxy}/mcp"),
            auth: Auth::None,
            used: 0,
        },
    ];
    let mut gateways = Vec::new();
    if std::env::var_os("SKIP_REMIT").is_none() {
        let proofs = warmup * 2 + calls + latency_calls;
        let mut bins = vec![("remit", remit::remit_bin())];
        if let Some(b) = std::env::var_os("REMIT_BIN_B") {
            bins.push(("remit B", b.into()));
        }
        for (name, bin) in bins {
            let gateway = remit::Gateway::start(name, &bin, upstream, proofs).await?;
            targets.push(Target {
                name,
                url: gateway.url.clone(),
                auth: gateway.auth.clone(),
                used: 0,
            });
            gateways.push(gateway);
        }
    }

    let mut rows: Vec<(&'static str, &'static str, Measurement)> = Vec::new();
    for (phase, n, c) in [
        ("latency", latency_calls, 1),
        ("throughput", calls, concurrency),
    ] {
        for target in &mut targets {
            load(&target.url, &target.auth, warmup, c, target.used)
                .await
                .with_context(|| format!("{} warm-up", target.name))?;
            target.used += warmup;
        }
        let mut before = Vec::new();
        for gateway in &gateways {
            before.push(gateway.scrape().await?);
        }
        // Each round sends its share of the n calls (the first rounds take
        // the remainder) to every target in turn, in reverse order every
        // other round, so no path always runs right after another.
        let mut runs: Vec<Vec<Measurement>> = targets.iter().map(|_| Vec::new()).collect();
        for round in 0..rounds {
            let share = n / rounds + usize::from(round < n % rounds);
            if share == 0 {
                continue;
            }
            let mut order: Vec<_> = targets.iter_mut().zip(&mut runs).collect();
            if round % 2 == 1 {
                order.reverse();
            }
            for (target, runs) in order {
                let m = load(&target.url, &target.auth, share, c, target.used)
                    .await
                    .with_context(|| format!("{} {phase}", target.name))?;
                target.used += share;
                runs.push(m);
            }
        }
        for (gateway, before) in gateways.iter().zip(before) {
            let now = gateway.scrape().await?;
            eprintln!("{phase:>10} {:<12} {}", gateway.name, now.since(&before));
        }
        for (target, runs) in targets.iter().zip(runs) {
            let m = Measurement::combine(runs)?;
            eprintln!(
                "{phase:>10} {:<12} c={c:<3} p50 {:>8.1} us  p99 {:>8.1} us  {:>8.0} calls/s",
                target.name,
                micros(m.p50),
                micros(m.p99),
                m.throughput
            );
            rows.push((phase, target.name, m));
        }
    }

    if let Some(file) = std::env::var_os("SAMPLES_CSV") {
        write_samples(std::path::Path::new(&file), &rows)?;
    }

    println!("| phase | path | calls | concurrency | p50 | p99 | calls/s | added p50 / p99 vs plain proxy |");
    println!("|---|---|---|---|---|---|---|---|");
    for (phase, name, m) in &rows {
        let baseline = rows
            .iter()
            .find(|(p, n, _)| p == phase && *n == "plain proxy")
            .map(|(_, _, b)| b);
        let added = match (name, baseline) {
            (&("remit" | "remit B"), Some(b)) => format!(
                "{:+.1} us / {:+.1} us",
                micros(m.p50) - micros(b.p50),
                micros(m.p99) - micros(b.p99)
            ),
            _ => "—".into(),
        };
        println!(
            "| {phase} | {name} | {} | {} | {:.1} us | {:.1} us | {:.0} | {added} |",
            m.calls,
            m.concurrency,
            micros(m.p50),
            micros(m.p99),
            m.throughput
        );
    }
    for (phase, _, b) in rows.iter().filter(|(_, n, _)| *n == "remit B") {
        if let Some((_, _, a)) = rows.iter().find(|(p, n, _)| p == phase && *n == "remit") {
            println!(
                "{phase}: remit B against remit: p50 {:+.1} us, p99 {:+.1} us, calls/s x{:.3}",
                micros(b.p50) - micros(a.p50),
                micros(b.p99) - micros(a.p99),
                b.throughput / a.throughput,
            );
        }
    }
    println!(
        "machine anchors (medians): ES256 verify {:.1} us, ES256 sign {:.1} us, {}-byte write + fdatasync into written blocks {:.1} us; an allowed call pays one verify, one sign and one such write in series",
        micros(anchors.verify),
        micros(anchors.sign),
        anchors::LEAF_BYTES,
        micros(anchors.durable_write)
    );
    Ok(())
}
