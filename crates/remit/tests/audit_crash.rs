//! Crash safety: a child appending under load is killed with SIGKILL again
//! and again; after each kill the log verifies and no acknowledged receipt
//! is missing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::io::{BufRead as _, BufReader, Write as _};
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use remit_ledger::{LogDir, SignedReceipt};
use support::{init_log, key_with_jwks, remit_command, remit_in};

const ROUNDS: u32 = 6;

/// Runs `remit ARGS` in `dir`, which must exit rather than die by a signal.
fn remit(dir: &Path, args: &[&str]) -> std::process::Output {
    let out = remit_in(dir, args);
    assert!(
        out.status.code().is_some(),
        "remit {args:?} died: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

#[test]
fn sigkill_under_load_loses_no_acknowledged_receipt() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    key_with_jwks(dir, "gw.jwk", "gw1", "jwks.json");
    init_log(dir, "remit.example/crash");

    // (index, round) of every acknowledged receipt.
    let mut acknowledged: Vec<(u64, u32)> = Vec::new();
    for round in 0..ROUNDS {
        let mut child = remit_command()
            .current_dir(dir)
            .args([
                "audit",
                "append",
                "--log",
                "log",
                "--key",
                "gw.jwk",
                "--note-key",
                "note.key",
                "--receipt",
                "-",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || {
            for k in 0u64.. {
                let event = format!(
                    r#"{{"kind":"allow","time":{k},"leaf_jti":"r{round}-{k}","tool":"load.test"}}"#
                );
                if writeln!(stdin, "{event}").is_err() {
                    break;
                }
                // Steady load (~2,000 receipts/s) keeps the log small
                // enough to re-verify after every kill.
                if k % 2 == 1 {
                    std::thread::sleep(Duration::from_millis(1));
                }
            }
        });
        let acks = Arc::new(Mutex::new(Vec::new()));
        let reader = {
            let acks = Arc::clone(&acks);
            let stdout = child.stdout.take().unwrap();
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    acks.lock()
                        .unwrap()
                        .push(line.trim().parse::<u64>().unwrap());
                }
            })
        };
        // Let it commit some batches, then kill it mid-flight.
        std::thread::sleep(Duration::from_millis(400 + 137 * u64::from(round)));
        child.kill().unwrap(); // SIGKILL on Unix
        child.wait().unwrap();
        reader.join().unwrap();
        writer.join().unwrap();
        let acks = acks.lock().unwrap().clone();
        acknowledged.extend(acks.iter().map(|&i| (i, round)));

        // The log verifies after every crash.
        let verify = remit(
            dir,
            &[
                "audit",
                "verify",
                "--log",
                "log",
                "--jwks",
                "jwks.json",
                "--json",
            ],
        );
        let report = support::json(&verify);
        assert!(verify.status.success(), "round {round}: {report}");
        assert_eq!(report["ok"], true);

        // Every acknowledged receipt is there, at its index, from its round.
        let leaves: Vec<Vec<u8>> = LogDir::new(dir.join("log"))
            .leaf_reader()
            .unwrap()
            .map(Result::unwrap)
            .collect();
        for &(index, r) in &acknowledged {
            let leaf = leaves.get(index as usize).unwrap_or_else(|| {
                panic!(
                    "round {round}: acknowledged receipt {index} is missing (log has {})",
                    leaves.len()
                )
            });
            let receipt = SignedReceipt::parse(leaf).unwrap().receipt;
            assert_eq!(receipt.index, index);
            let jti = receipt.event.leaf_jti.unwrap();
            assert!(
                jti.starts_with(&format!("r{r}-")),
                "receipt {index} is {jti}, acknowledged in round {r}"
            );
        }
    }
    // The test means something only if receipts were acknowledged in most rounds.
    let rounds_with_acks = (0..ROUNDS)
        .filter(|r| acknowledged.iter().any(|&(_, x)| x == *r))
        .count();
    assert!(
        rounds_with_acks >= 4,
        "only {rounds_with_acks} rounds acknowledged anything"
    );
    assert!(
        acknowledged.len() > 100,
        "only {} receipts acknowledged",
        acknowledged.len()
    );
}
