//! Scoping from the command line (issue 22): `--arg NAME=CONSTRAINT` on
//! `remit token mint|delegate`, path traversal refused by `remit token
//! verify`, and the CLI's output surviving a closed pipe.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::process::Stdio;

use support::{json, remit, remit_command, stderr, stdout};

/// Keys and a JWKS in a scratch folder.
struct Keys {
    dir: tempfile::TempDir,
}

impl Keys {
    fn new() -> Keys {
        let keys = Keys {
            dir: tempfile::tempdir().unwrap(),
        };
        for name in ["issuer.jwk", "a.jwk", "b.jwk"] {
            let out = remit(&["keys", "generate", "--out", &keys.path(name)]);
            assert!(out.status.success(), "{}", stderr(&out));
        }
        let jwks = remit(&["keys", "jwks", &keys.path("issuer.jwk")]);
        std::fs::write(keys.path("jwks.json"), &jwks.stdout).unwrap();
        keys
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).to_str().unwrap().to_owned()
    }

    /// Mints a root for holder `a` with `extra` flags; returns the output.
    fn mint(&self, extra: &[&str]) -> std::process::Output {
        let (issuer, a) = (self.path("issuer.jwk"), self.path("a.jwk"));
        let mut args = vec![
            "token",
            "mint",
            "--issuer-key",
            &issuer,
            "--sub",
            "alice",
            "--agent",
            "planner",
            "--holder-jwk",
            &a,
            "--ttl",
            "10m",
        ];
        args.extend_from_slice(extra);
        remit(&args)
    }

    fn verify(&self, chain: &str, extra: &[&str]) -> std::process::Output {
        let jwks = self.path("jwks.json");
        let mut args = vec!["token", "verify", "--jwks", &jwks, chain];
        args.extend_from_slice(extra);
        remit(&args)
    }
}

/// Spellings of "leave /data/reports/" that must never be admitted.
const TRAVERSALS: &[&str] = &[
    "/data/reports/../hr/x",
    "/data/reports/./../hr/x",
    "/data/reports//../hr/x",
    "/data/reports/2026/..",
    "/data/reports/%2e%2e/hr/x",
    "/data/reports/%2E%2e/hr/x",
    "/data/reports/.%2e/hr/x",
    "/data/reports/%2fhr",
    "/data/reports/..\\hr\\x",
    "/data/reports/\\..\\hr",
    "/data/reports/\u{ff0e}\u{ff0e}/hr/x",
    "/data/reports\u{ff0f}..\u{ff0f}hr",
];

#[test]
fn verify_refuses_traversal_through_a_resource_with_exit_1_and_the_reason() {
    let keys = Keys::new();
    let out = keys.mint(&["--tool", "read_file", "--resource", "/data/reports/*"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let root = stdout(&out).trim().to_owned();
    let ok = keys.verify(
        &root,
        &["--tool", "read_file", "--resource", "/data/reports/q3.txt"],
    );
    assert_eq!(ok.status.code(), Some(0), "{}", stdout(&ok));
    for value in TRAVERSALS {
        let out = keys.verify(&root, &["--tool", "read_file", "--resource", value]);
        assert_eq!(out.status.code(), Some(1), "{value:?}: {}", stdout(&out));
        let said = stdout(&out);
        assert!(said.contains("is refused: it"), "{value:?}: {said}");
    }
    // `*` stays within one segment.
    let deeper = keys.verify(
        &root,
        &[
            "--tool",
            "read_file",
            "--resource",
            "/data/reports/2026/q3.txt",
        ],
    );
    assert_eq!(deeper.status.code(), Some(1));
    let out = keys.verify(
        &root,
        &[
            "--tool",
            "read_file",
            "--resource",
            "/data/reports/x",
            "--json",
        ],
    );
    assert_eq!(json(&out)["call"]["allowed"], true);
}

#[test]
fn mint_and_delegate_take_argument_constraints() {
    let keys = Keys::new();
    let out = keys.mint(&[
        "--tool",
        "files/read_text_file",
        "--arg",
        "path=prefix:/data/reports/",
        "--arg",
        "n=range:..10",
        "--arg",
        r#"mode={"one_of":["r","rw"]}"#,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let root = stdout(&out).trim().to_owned();
    let v = json(&remit(&["token", "inspect", &root, "--json"]));
    assert_eq!(
        v["links"][0]["claims"]["authorization_details"][0]["args"],
        serde_json::json!({"path": {"prefix": "/data/reports/"}, "n": {"range": {"max": 10.0}},
            "mode": {"one_of": ["r", "rw"]}})
    );
    let call = |path: &str| {
        let arg = format!("path={path}");
        keys.verify(
            &root,
            &[
                "--tool",
                "files/read_text_file",
                "--arg",
                &arg,
                "--arg",
                "n=3",
                "--arg",
                "mode=r",
            ],
        )
    };
    assert_eq!(call("/data/reports/q3.txt").status.code(), Some(0));
    assert_eq!(call("/data/reports-secret/x").status.code(), Some(1));
    for value in TRAVERSALS {
        let out = call(value);
        assert_eq!(out.status.code(), Some(1), "{value:?}");
        assert!(
            stdout(&out).contains(r#"argument "path" is refused"#),
            "{}",
            stdout(&out)
        );
    }
    // Delegation narrows an argument; widening it is refused (exit 2).
    let (a, b) = (keys.path("a.jwk"), keys.path("b.jwk"));
    let delegate = |arg: &str| {
        remit(&[
            "token",
            "delegate",
            "--parent",
            &root,
            "--holder-key",
            &a,
            "--to-jwk",
            &b,
            "--agent",
            "reader",
            "--tool",
            "files/read_text_file",
            "--arg",
            arg,
        ])
    };
    let narrower = delegate("path=prefix:/data/reports/2026/");
    assert!(narrower.status.success(), "{}", stderr(&narrower));
    let wider = delegate("path=prefix:/data/");
    assert_eq!(wider.status.code(), Some(2), "{}", stderr(&wider));
}

#[test]
fn a_malformed_arg_flag_is_a_usage_error() {
    let keys = Keys::new();
    for (flag, says) in [
        ("path", "NAME=CONSTRAINT"),
        ("path=/data/", "KIND:VALUE"),
        ("path=prefix:/data/../hr/", "canonical"),
        ("n=range:9..1", "min <= max"),
        ("path=suffix:.txt", "unknown constraint kind"),
        ("id=regex:(", "does not compile"),
    ] {
        let out = keys.mint(&["--tool", "t", "--arg", flag]);
        assert_eq!(out.status.code(), Some(2), "{flag}");
        let err = stderr(&out);
        assert!(err.contains("--arg") && err.contains(says), "{flag}: {err}");
    }
    let twice = keys.mint(&["--tool", "t", "--arg", "p=exact:1", "--arg", "p=exact:2"]);
    assert_eq!(twice.status.code(), Some(2));
    assert!(stderr(&twice).contains("twice"));
}

#[test]
fn a_closed_pipe_ends_the_cli_quietly() {
    // `remit scan big | head`: the reader is gone before the writer ends.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("many.txt");
    let text: String = (0..20_000)
        .map(|i| format!("mail user{i}@example.com\n"))
        .collect();
    std::fs::write(&file, text).unwrap();
    let mut child = remit_command()
        .args(["scan", file.to_str().unwrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = stderr(&out);
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(out.status.code(), Some(0), "{err}");
}
