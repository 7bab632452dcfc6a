//! `remit backup` of a running `remit serve`, and `remit restore` into a
//! new data directory that a new server starts from, its receipt log
//! verifying.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::process::Output;

use serde_json::Value;
use support::{remit_command, stderr, stdout};

fn remit(server: &str, token: &str, args: &[&str]) -> Output {
    remit_command()
        .args(args)
        .env("REMIT_SERVER", server)
        .env("REMIT_ADMIN_TOKEN", token)
        .env_remove("REMIT_DATA")
        .env_remove("REMIT_DATABASE")
        .output()
        .unwrap()
}

fn ok(out: Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    stdout(&out)
}

fn agents(url: &str, token: &str) -> Vec<String> {
    let listed: Value =
        serde_json::from_str(&ok(remit(url, token, &["agent", "list", "--json"]))).unwrap();
    listed["agents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_backup_of_a_running_server_restores_into_a_server_whose_log_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = support::serve(|c| {
        c.arg("--data").arg(&data).args(["--listen", "127.0.0.1:0"]);
    });
    let (url, token) = (server.url.clone(), server.token.clone().unwrap());
    let key = dir.path().join("agent.jwk");
    ok(remit(
        &url,
        "",
        &["keys", "generate", "--out", key.to_str().unwrap()],
    ));
    ok(remit(
        &url,
        &token,
        &[
            "agent",
            "register",
            "--id",
            "planner",
            "--jwk",
            key.to_str().unwrap(),
            "--owner",
            "alice",
        ],
    ));
    ok(remit(
        &url,
        &token,
        &[
            "issue",
            "--agent",
            "planner",
            "--sub",
            "alice",
            "--tool",
            "files/read",
        ],
    ));

    // Refusals first.
    let pg = remit(
        &url,
        &token,
        &[
            "backup",
            "--data",
            data.to_str().unwrap(),
            "--database",
            "postgres://u@127.0.0.1/x",
            "--out",
            dir.path().join("pg").to_str().unwrap(),
        ],
    );
    assert_eq!(pg.status.code(), Some(2));
    assert!(stderr(&pg).contains("pg_dump"), "{}", stderr(&pg));
    let not_data = remit(
        &url,
        &token,
        &[
            "backup",
            "--data",
            dir.path().to_str().unwrap(),
            "--out",
            dir.path().join("x").to_str().unwrap(),
        ],
    );
    assert!(
        stderr(&not_data).contains("not a Remit data directory"),
        "{}",
        stderr(&not_data)
    );

    let backup = dir.path().join("backup");
    let manifest: Value = serde_json::from_str(&ok(remit(
        &url,
        &token,
        &[
            "backup",
            "--data",
            data.to_str().unwrap(),
            "--out",
            backup.to_str().unwrap(),
            "--json",
        ],
    )))
    .unwrap();
    assert_eq!(manifest["database"], true);
    let files: Vec<&str> = manifest["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    for expected in [
        "remit.db",
        "issuer.jwk",
        "receipt.jwk",
        "note.key",
        "admin-token.sha256",
        "log/receipts.jsonl",
        "receipt.jwks.json",
    ] {
        assert!(
            files.contains(&expected),
            "{expected} missing from {files:?}"
        );
    }
    assert!(
        !files
            .iter()
            .any(|f| f.ends_with("-wal") || f.ends_with("-shm")),
        "{files:?}"
    );
    // A change after the backup is not in it.
    let late = dir.path().join("late.jwk");
    ok(remit(
        &url,
        "",
        &["keys", "generate", "--out", late.to_str().unwrap()],
    ));
    ok(remit(
        &url,
        &token,
        &[
            "agent",
            "register",
            "--id",
            "late",
            "--jwk",
            late.to_str().unwrap(),
            "--owner",
            "alice",
        ],
    ));
    drop(server);

    // A restore never overwrites, and never trusts a changed file.
    let taken = remit(
        &url,
        &token,
        &[
            "restore",
            "--from",
            backup.to_str().unwrap(),
            "--data",
            data.to_str().unwrap(),
        ],
    );
    assert!(stderr(&taken).contains("not empty"), "{}", stderr(&taken));
    let tampered = dir.path().join("tampered");
    ok(remit(
        &url,
        &token,
        &[
            "restore",
            "--from",
            backup.to_str().unwrap(),
            "--data",
            tampered.to_str().unwrap(),
        ],
    ));
    let copy = dir.path().join("backup-copy");
    std::fs::create_dir(&copy).unwrap();
    for entry in walk(&backup) {
        let target = copy.join(entry.strip_prefix(&backup).unwrap());
        std::fs::create_dir_all(target.parent().unwrap()).unwrap();
        std::fs::copy(&entry, &target).unwrap();
    }
    std::fs::write(copy.join("admin-token.sha256"), "0".repeat(64)).unwrap();
    let refused = remit(
        &url,
        &token,
        &[
            "restore",
            "--from",
            copy.to_str().unwrap(),
            "--data",
            dir.path().join("r2").to_str().unwrap(),
        ],
    );
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        stderr(&refused).contains("admin-token.sha256 does not match"),
        "{}",
        stderr(&refused)
    );
    assert!(
        !dir.path().join("r2").exists(),
        "a refused restore wrote files"
    );

    let restored = dir.path().join("restored");
    let said: Value = serde_json::from_str(&ok(remit(
        &url,
        &token,
        &[
            "restore",
            "--from",
            backup.to_str().unwrap(),
            "--data",
            restored.to_str().unwrap(),
            "--json",
        ],
    )))
    .unwrap();
    let receipts = said["receipts_verified"].as_u64().unwrap();
    assert!(receipts >= 2, "{said}");
    // An auditor checks it the usual way too.
    ok(remit(
        &url,
        &token,
        &[
            "audit",
            "verify",
            "--log",
            restored.join("log").to_str().unwrap(),
            "--jwks",
            restored.join("receipt.jwks.json").to_str().unwrap(),
        ],
    ));

    // A server on the restored directory has the state as of the backup,
    // the same keys, and the same admin token.
    let again = support::serve(|c| {
        c.arg("--data")
            .arg(&restored)
            .args(["--listen", "127.0.0.1:0"]);
    });
    assert!(again.token.is_none(), "the admin token was not restored");
    assert_eq!(agents(&again.url, &token), vec!["planner".to_owned()]);
    ok(remit(
        &again.url,
        &token,
        &[
            "issue",
            "--agent",
            "planner",
            "--sub",
            "alice",
            "--tool",
            "files/read",
        ],
    ));
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}
