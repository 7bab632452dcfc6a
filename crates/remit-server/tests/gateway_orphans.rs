//! A stdio upstream never outlives the gateway that started it (issue 22,
//! item 12): `npm exec` and friends spawn children of their own, and a
//! gateway killed with SIGKILL runs no destructor. The test runs a gateway's
//! upstream in a child process (this test binary again), kills that process
//! with SIGKILL, and checks that the upstream's whole process tree is gone.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use remit_server::gateway::upstream::Upstream;

const CHILD: &str = "REMIT_TEST_ORPHAN_MARKER";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The pids whose command line holds `marker`.
fn processes_with(marker: &str) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        // A zombie has an empty command line and is gone for our purposes.
        if cmdline.contains(marker) {
            found.push(pid);
        }
    }
    found
}

/// In the child process: starts a stdio upstream whose command leaves a
/// grandchild (`sleep <marker>`) behind, as `npm exec` leaves node, then
/// says so and waits to be killed.
#[tokio::test]
async fn orphan_helper_runs_an_upstream_until_killed() {
    let Ok(marker) = std::env::var(CHILD) else {
        return;
    };
    let python = repo_root().join(".venv/bin/python");
    let python = if python.exists() {
        python.display().to_string()
    } else {
        "python3".to_owned()
    };
    let leaky = repo_root().join("tests/upstream/leaky.py");
    let url = format!(
        "stdio:sh -c 'sleep {marker} & exec {python} {}'",
        leaky.display()
    );
    let upstream = Upstream::new(&url).unwrap();
    upstream
        .call("tools/list", serde_json::json!({}), Duration::from_secs(20))
        .await
        .unwrap();
    println!("ready");
    tokio::time::sleep(Duration::from_secs(600)).await;
}

fn killed_gateway_leaves(marker: &str) -> Vec<u32> {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "orphan_helper_runs_an_upstream_until_killed",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD, marker)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let ready = lines.any(|l| l.is_ok_and(|l| l.contains("ready")));
    assert!(ready, "the helper did not start its upstream");
    assert!(
        !processes_with(marker).is_empty(),
        "the upstream tree is not running"
    );
    child.kill().unwrap(); // SIGKILL: no destructor runs in the gateway
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = processes_with(marker);
        if left.is_empty() || Instant::now() > deadline {
            return left;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_gateway_killed_with_sigkill_leaves_no_upstream_process_behind() {
    if std::env::var(CHILD).is_ok() {
        return;
    }
    // A sleep duration no other process uses: the upstream tree's marker.
    let marker = format!("{}.{}", 40_000 + std::process::id() % 10_000, 7);
    let left = killed_gateway_leaves(&marker);
    for pid in &left {
        let _ = Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status();
    }
    assert!(left.is_empty(), "orphaned upstream processes: {left:?}");
}
