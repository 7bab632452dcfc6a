#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
use std::time::Instant;
fn main() {
    let src = include_str!("../../../crates/remit-scan/src/recognize.rs");
    let re = regex::Regex::new(r##"pattern: r#?"(.*?)"#?,\n"##).unwrap();
    let pats: Vec<String> = re
        .captures_iter(src)
        .map(|c| format!("(?-u){}", &c[1]))
        .collect();
    println!("{} patterns", pats.len());
    let input = remit_bench_scan::clean_4k();
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
    for (i, p) in pats.iter().enumerate() {
        let r = regex::bytes::Regex::new(p).unwrap();
        t(&format!("{i} {}", &p[..p.len().min(24)]), &|| {
            r.find_iter(&input).count()
        });
    }
    let scanner = remit_scan::Scanner::new(remit_scan::ScanConfig::default());
    t("scanner", &|| scanner.scan(&input).unwrap().findings.len());
    t("memchr", &|| memchr::memchr_iter(b'"', &input).count());
}
