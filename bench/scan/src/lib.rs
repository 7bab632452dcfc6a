//! Benchmarks for `remit-scan`: see `benches/` and `README.md` in this folder.
//!
//! This library builds the inputs the benches share, deterministically, so
//! every run measures the same bytes.

/// A 4 KiB MCP `tools/call` request with no personal data.
pub fn clean_4k() -> Vec<u8> {
    let mut body = String::new();
    let words = [
        "the",
        "quarterly",
        "report",
        "shows",
        "revenue",
        "growth",
        "across",
        "regions",
        "and",
        "teams",
        "with",
        "notes",
        "about",
        "pipeline",
        "hiring",
        "plans",
        "for",
        "next",
        "year",
    ];
    let mut i = 0usize;
    while body.len() < 3800 {
        body.push_str(words[i % words.len()]);
        body.push(if i % 13 == 12 { '.' } else { ' ' });
        i = i.wrapping_mul(7).wrapping_add(3) % 1009;
    }
    let doc = format!(
        r#"{{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{{"name":"docs.write","arguments":{{"title":"Q3 summary","count":17,"body":"{body}"}}}}}}"#
    );
    pad(doc, 4096)
}

/// The same request with five personal data items in its body.
pub fn pii_4k() -> Vec<u8> {
    let clean = String::from_utf8(clean_4k()).unwrap_or_default();
    let items = [
        "card 4111 1111 1111 1111",
        "mail alice.smith@example.com",
        "SSN 536-90-4399",
        "IBAN DE89 3704 0044 0532 0130 00",
        "call +44 20 7946 0958",
    ];
    let mut out = clean;
    for (k, item) in items.iter().enumerate() {
        let at = 400 + k * 600;
        out.replace_range(at..at + item.len(), item);
    }
    out.into_bytes()
}

fn pad(mut s: String, n: usize) -> Vec<u8> {
    if s.len() > n {
        s.truncate(n);
    }
    while s.len() < n {
        s.insert(s.len() - 4, ' ');
    }
    s.into_bytes()
}

/// About 1 MiB of mixed content: prose, JSON lines, logs, CSV, a little
/// non-ASCII text, and personal data every few kilobytes.
pub fn mixed_1m() -> Vec<u8> {
    let mut out = String::with_capacity(1 << 20);
    let mut n = 0u32;
    while out.len() < (1 << 20) {
        n += 1;
        match n % 5 {
            0 => out.push_str("2026-11-25T10:00:00Z INFO request handled in 12ms path=/v1/items status=200 bytes=5120\n"),
            1 => out.push_str("id,name,city,amount\n1001,Widget,Berlin,19.99\n1002,Gadget,Paris,5.00\n"),
            2 => out.push_str("{\"event\":\"click\",\"ts\":1700000000123,\"page\":\"/home\",\"ref\":\"newsletter\"}\n"),
            3 => out.push_str("Les résultats du trimestre sont bons; die Ergebnisse sind gut. "),
            _ => out.push_str("The team shipped the release on time and the customers were happy with it. "),
        }
        if n % 40 == 0 {
            out.push_str("contact bob@example.org or 4111-1111-1111-1111\n");
        }
    }
    out.into_bytes()
}

/// Adversarial: long digit runs with separators, deep escapes, near-miss
/// cards, runs of `@` and colons (64 KiB).
pub fn adversarial_64k() -> Vec<u8> {
    let mut out = String::new();
    while out.len() < 64 * 1024 {
        out.push_str(&"1234 5678 ".repeat(40));
        out.push_str(&"\\u0034\\u0031".repeat(40));
        out.push_str(&"4111 1111 1111 1112 ".repeat(10));
        out.push_str(&"a@".repeat(100));
        out.push_str(&"::".repeat(100));
        out.push_str(&"9".repeat(500));
        out.push(' ');
    }
    out.into_bytes()
}

/// Pathological 10 MB inputs, one per shape that hurts backtracking engines.
pub fn pathological_10m() -> Vec<(&'static str, Vec<u8>)> {
    let n = 10 * 1024 * 1024;
    let rep = |unit: &str| unit.repeat(n / unit.len()).into_bytes();
    vec![
        ("digits", rep("1")),
        ("digit_groups", rep("1 ")),
        ("at_signs", rep("a@")),
        ("escapes", rep("\\u0034")),
        ("base64", rep("NDEx")),
    ]
}
