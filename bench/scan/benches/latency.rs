//! Per-request latency percentiles for 4 KiB JSON arguments: scans each
//! input many times and prints p50, p99 and p99.9 of single-call times.
//!
//! `cargo bench -p remit-bench-scan --bench latency`
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Instant;

use remit_bench_scan as inputs;
use remit_scan::{ScanConfig, Scanner};

fn main() {
    let scanner = Scanner::new(ScanConfig::default());
    let runs: usize = std::env::var("LATENCY_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20_000);
    for (name, input) in [
        ("clean_4k", inputs::clean_4k()),
        ("pii_4k", inputs::pii_4k()),
    ] {
        for _ in 0..1000 {
            std::hint::black_box(scanner.scan(&input).unwrap());
        }
        let mut times: Vec<u128> = (0..runs)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(scanner.scan(std::hint::black_box(&input)).unwrap());
                t.elapsed().as_nanos()
            })
            .collect();
        times.sort_unstable();
        let pct = |p: f64| {
            times[((times.len() as f64 * p) as usize).min(times.len() - 1)] as f64 / 1000.0
        };
        let mean = times.iter().sum::<u128>() as f64 / times.len() as f64;
        println!(
            "{name:>9}: {} bytes, {runs} runs: p50 {:.1} µs, p99 {:.1} µs, p99.9 {:.1} µs, {:.0} MB/s mean",
            input.len(),
            pct(0.50),
            pct(0.99),
            pct(0.999),
            input.len() as f64 / mean * 1000.0
        );
    }
}
