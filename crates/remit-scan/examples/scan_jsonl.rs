//! Scans one document per input line for the accuracy evaluation
//! (`bench/scan-eval`): reads JSON lines `{"text": "..."}` on stdin and
//! writes one JSON line per document, `[[type, start, end], ...]`, with
//! byte spans in the document's UTF-8 bytes. In-process, so the evaluation
//! measures the scanner and not process start-up.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead as _, Write as _};

use remit_scan::{ScanConfig, Scanner};

fn main() {
    let scanner = Scanner::new(ScanConfig::default());
    let stdin = std::io::stdin();
    let mut out = std::io::BufWriter::new(std::io::stdout());
    let mut total = std::time::Duration::ZERO;
    let mut n = 0u32;
    for line in stdin.lock().lines() {
        let line = line.expect("read stdin");
        let doc: serde_json::Value = serde_json::from_str(&line).expect("one JSON object per line");
        let text = doc["text"].as_str().expect("a text field");
        let t = std::time::Instant::now();
        let report = scanner.scan(text.as_bytes()).expect("scan");
        total += t.elapsed();
        n += 1;
        let spans: Vec<(&str, usize, usize)> = report
            .findings
            .iter()
            .map(|f| (f.kind.name(), f.start, f.end))
            .collect();
        serde_json::to_writer(&mut out, &spans).expect("write");
        out.write_all(b"\n").expect("write");
    }
    eprintln!(
        "scanned {n} documents, {:.1} µs each in-process",
        total.as_secs_f64() * 1e6 / f64::from(n.max(1))
    );
}
