//! Scans arbitrary bytes as JSON, text and auto-detected input: the scanner
//! must never panic, and every finding's span must lie inside the input.
#![no_main]

use libfuzzer_sys::fuzz_target;
use remit_scan::{InputFormat, ScanConfig, Scanner};

fuzz_target!(|data: &[u8]| {
    use std::sync::OnceLock;
    static SCANNERS: OnceLock<Vec<Scanner>> = OnceLock::new();
    let scanners = SCANNERS.get_or_init(|| {
        [InputFormat::Auto, InputFormat::Json, InputFormat::Text]
            .into_iter()
            .map(|format| {
                Scanner::new(ScanConfig {
                    format,
                    max_bytes: 1 << 20,
                    ..ScanConfig::default()
                })
            })
            .collect()
    });
    for scanner in scanners {
        if let Ok(report) = scanner.scan(data) {
            for f in &report.findings {
                assert!(f.start < f.end && f.end <= data.len());
            }
            let _ = report.redact_input(data);
        }
    }
});
