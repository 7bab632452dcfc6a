//! Throughput of `remit-scan` on the shapes the gateway sees, with plain
//! `memchr` and single-`regex` passes over the same bytes as baselines.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use remit_bench_scan as inputs;
use remit_scan::{ScanConfig, Scanner};

fn scan_inputs(c: &mut Criterion) {
    let scanner = Scanner::new(ScanConfig::default());
    let card = regex::bytes::Regex::new(r"(?-u)\b\d(?:[ \-]?\d){12,18}\b").unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("clean_4k", inputs::clean_4k()),
        ("pii_4k", inputs::pii_4k()),
        ("mixed_1m", inputs::mixed_1m()),
        ("adversarial_64k", inputs::adversarial_64k()),
    ];
    let mut g = c.benchmark_group("scan");
    for (name, input) in &cases {
        g.throughput(Throughput::Bytes(input.len() as u64));
        g.bench_with_input(BenchmarkId::new("remit", name), input, |b, i| {
            b.iter(|| scanner.scan(std::hint::black_box(i)).unwrap())
        });
        g.bench_with_input(
            BenchmarkId::new("baseline_memchr_at", name),
            input,
            |b, i| b.iter(|| memchr::memchr_iter(b'@', std::hint::black_box(i)).count()),
        );
        g.bench_with_input(
            BenchmarkId::new("baseline_one_regex", name),
            input,
            |b, i| b.iter(|| card.find_iter(std::hint::black_box(i)).count()),
        );
    }
    g.finish();

    let mut g = c.benchmark_group("pathological_10m");
    g.sample_size(10);
    for (name, input) in inputs::pathological_10m() {
        g.throughput(Throughput::Bytes(input.len() as u64));
        g.bench_with_input(BenchmarkId::new("remit", name), &input, |b, i| {
            b.iter(|| scanner.scan(std::hint::black_box(i)).unwrap())
        });
    }
    g.finish();
}

fn phone(c: &mut Criterion) {
    // The `phonenumber` crate parses and validates one candidate; our
    // recognizer scans a whole short string (prefilter + pattern + checks).
    let scanner = Scanner::new(ScanConfig::default());
    let text = "+44 20 7946 0958";
    let mut g = c.benchmark_group("phone");
    g.bench_function("phonenumber_parse_and_validate", |b| {
        b.iter(|| {
            let n = phonenumber::parse(None, std::hint::black_box(text)).unwrap();
            phonenumber::is_valid(&n)
        })
    });
    g.bench_function("remit_scan", |b| {
        b.iter(|| scanner.scan(std::hint::black_box(text.as_bytes())).unwrap())
    });
    g.finish();
}

criterion_group!(benches, scan_inputs, phone);
criterion_main!(benches);
