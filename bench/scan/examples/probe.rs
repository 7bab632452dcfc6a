#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
use std::time::Instant;
fn main() {
    let src = include_str!("../../../crates/remit-scan/src/recognize.rs");
    let re = regex::Regex::new(r##"pattern: r#?"(.*?)"#?,\n"##).unwrap();
    let pats: Vec<String> = re
        .captures_iter(src)
        // The catalog writes its digit-group separator as `{sep}`.
        .map(|c| {
            format!(
                "(?-u){}",
                c[1].replace("{sep}", r"(?:[ \-./_]| [\-./] |  )")
            )
        })
        .collect();
    println!("{} patterns", pats.len());
    let input = remit_bench_scan::clean_4k();
    if let Ok(unit) = std::env::var("PATHO") {
        let scanner = remit_scan::Scanner::new(remit_scan::ScanConfig::default());
        for n in [1usize << 18, 1 << 20, 1 << 22] {
            let input = unit.repeat(n / unit.len()).into_bytes();
            let s = Instant::now();
            let r = scanner.scan(&input).unwrap();
            println!("{n}: {:?} ({} findings)", s.elapsed(), r.findings.len());
        }
        return;
    }
    if std::env::var("SETONLY").is_ok() {
        let set = regex::bytes::RegexSet::new(&pats).unwrap();
        let mut n = 0;
        for _ in 0..1000 {
            n += set.matches(&input).iter().count();
        }
        println!("{n}");
        return;
    }
    if std::env::var("ONLY").is_ok() {
        let scanner = remit_scan::Scanner::new(remit_scan::ScanConfig::default());
        let which = std::env::var("ONLY").unwrap();
        let input = if which == "pii" {
            remit_bench_scan::pii_4k()
        } else {
            input
        };
        let mut n = 0;
        for _ in 0..1000 {
            n += scanner.scan(&input).unwrap().findings.len();
        }
        println!("{n}");
        return;
    }
    let t = |name: &str, f: &dyn Fn() -> usize| {
        let n = 2000;
        let s = Instant::now();
        let mut x = 0;
        for _ in 0..n {
            x += f();
        }
        println!(
            "{name:>30}: {:.2} µs ({x})",
            s.elapsed().as_secs_f64() * 1e6 / n as f64
        );
    };
    let set = regex::bytes::RegexSet::new(&pats).unwrap();
    t("set all", &|| set.matches(&input).iter().count());
    for (i, p) in pats
        .iter()
        .enumerate()
        .filter(|_| std::env::var("ALL").is_ok())
    {
        let r = regex::bytes::Regex::new(p).unwrap();
        t(&format!("{i} {}", &p[..p.len().min(24)]), &|| {
            r.find_iter(&input).count()
        });
    }
    let scanner = remit_scan::Scanner::new(remit_scan::ScanConfig::default());
    t("scanner", &|| scanner.scan(&input).unwrap().findings.len());
    let text = remit_scan::Scanner::new(remit_scan::ScanConfig {
        format: remit_scan::InputFormat::Text,
        ..Default::default()
    });
    t("scanner text", &|| {
        text.scan(&input).unwrap().findings.len()
    });
    let nodec = remit_scan::Scanner::new(remit_scan::ScanConfig {
        format: remit_scan::InputFormat::Text,
        decode_depth: 0,
        ..Default::default()
    });
    t("scanner text nodecode", &|| {
        nodec.scan(&input).unwrap().findings.len()
    });
    println!(
        "bytes_scanned {}",
        scanner.scan(&input).unwrap().bytes_scanned
    );
    t("memchr", &|| memchr::memchr_iter(b'"', &input).count());
}
