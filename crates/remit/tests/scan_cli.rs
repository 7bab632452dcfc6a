//! `remit scan` from the outside: exit codes, output, redaction, limits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Output, Stdio};

use support::{remit_command, stdout};

/// Runs `remit scan ARGS` with `stdin` and `env`, without a scan key from
/// the test's own environment.
fn remit(args: &[&str], stdin: &[u8], env: &[(&str, &str)]) -> Output {
    let mut cmd = remit_command();
    cmd.arg("scan")
        .args(args)
        .env_remove("REMIT_SCAN_HMAC_KEY")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    child.stdin.take().unwrap().write_all(stdin).ok();
    child.wait_with_output().unwrap()
}

fn temp_file(name: &str, contents: &[u8]) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("scan-cli-{}-{name}", std::process::id()));
    std::fs::write(&path, contents).unwrap();
    path
}

const DOC: &[u8] =
    br#"{"params":{"arguments":{"body":"card 4111 1111 1111 1111, mail alice@example.com"}}}"#;

#[test]
fn unreadable_input_exits_2_with_the_reason() {
    let o = remit(&["/nonexistent/input.json"], b"", &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("/nonexistent/input.json"));
}

#[test]
fn oversized_input_is_a_clear_error_not_a_truncation() {
    let o = remit(
        &["--max-bytes", "16", "-"],
        b"4111 1111 1111 1111 and more",
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("over the scan limit of 16 bytes"), "{err}");
    assert!(o.stdout.is_empty());
}

#[test]
fn hash_redaction_without_a_key_is_refused() {
    let o = remit(&["--redact", "hash"], DOC, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("REMIT_SCAN_HMAC_KEY"));
    let short = remit(
        &["--redact", "hash"],
        DOC,
        &[("REMIT_SCAN_HMAC_KEY", "short")],
    );
    assert_eq!(short.status.code(), Some(2));
}

#[test]
fn findings_print_type_span_path_and_class_and_exit_0() {
    let o = remit(&[], DOC, &[]);
    assert_eq!(o.status.code(), Some(0));
    let out = stdout(&o);
    assert!(out.contains("CREDIT_CARD"), "{out}");
    assert!(out.contains("$.params.arguments.body"), "{out}");
    assert!(out.contains("************1111"), "{out}");
    assert!(
        out.contains("classification: RESTRICTED (2 findings)"),
        "{out}"
    );
    assert!(!out.contains("alice@example.com"), "{out}");
}

#[test]
fn json_output_has_spans_into_the_original_file() {
    let path = temp_file("doc.json", DOC);
    let o = remit(&["--json", path.to_str().unwrap()], b"", &[]);
    assert_eq!(o.status.code(), Some(0));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["classification"], "RESTRICTED");
    let f = &v["findings"][1];
    assert_eq!(f["type"], "EMAIL");
    let (s, e) = (
        f["start"].as_u64().unwrap() as usize,
        f["end"].as_u64().unwrap() as usize,
    );
    assert_eq!(&DOC[s..e], b"alice@example.com");
    assert_eq!(f["path"], "$.params.arguments.body");
}

#[test]
fn hash_redaction_correlates_with_the_same_key() {
    let key = [("REMIT_SCAN_HMAC_KEY", "0123456789abcdef0123")];
    let a = remit(
        &["--json", "--redact", "hash"],
        b"4111 1111 1111 1111",
        &key,
    );
    let b = remit(
        &["--json", "--redact", "hash"],
        b"4111-1111-1111-1111",
        &key,
    );
    assert_eq!(a.status.code(), Some(0));
    let red = |o: &Output| {
        let v: serde_json::Value = serde_json::from_str(&stdout(o)).unwrap();
        v["findings"][0]["redacted"].as_str().unwrap().to_string()
    };
    assert!(red(&a).starts_with("hmac-sha256:"));
    assert_eq!(red(&a), red(&b));
    let key_file = temp_file("key", b"another-key-of-20-bytes\n");
    let c = remit(
        &[
            "--json",
            "--redact",
            "hash",
            "--hmac-key-file",
            key_file.to_str().unwrap(),
        ],
        b"4111 1111 1111 1111",
        &[],
    );
    assert_ne!(red(&a), red(&c));
}

#[test]
fn drop_redaction_prints_no_value_at_all() {
    let o = remit(&["--json", "--redact", "drop"], DOC, &[]);
    let out = stdout(&o);
    assert!(!out.contains("redacted"), "{out}");
    assert!(!out.contains("1111"), "{out}");
}

#[test]
fn invalid_utf8_is_a_warning_not_a_crash() {
    let o = remit(&["--format", "text"], b"\xff\xfe ssn 536-90-4399 \xc3", &[]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stderr).contains("not valid UTF-8"));
    assert!(stdout(&o).contains("US_SSN"));
}

#[test]
fn clean_input_is_public() {
    let o = remit(&[], b"{\"q\":\"weather in Paris\"}", &[]);
    assert_eq!(o.status.code(), Some(0));
    assert!(stdout(&o).contains("classification: PUBLIC (0 findings)"));
}
