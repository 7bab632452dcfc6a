//! `remit run` end to end: agent-written Python and the official MCP
//! filesystem server under the kernel's enforcement of a remit.
//!
//! Each test states the Landlock ABI it needs and fails, never skips, when
//! the kernel offers less (`needs_abi`): a sandbox test that passes by not
//! running proves nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{json, Value};
use support::{remit_in, stderr};

/// Fails the test when the kernel's Landlock ABI is below `abi`.
fn needs_abi(abi: u32) {
    let kernel = remit_sandbox::KernelAbi::current().version();
    assert!(
        kernel >= abi,
        "this test needs Landlock ABI {abi}; the kernel offers {kernel}"
    );
}

/// A Python to run inside the sandbox: the system's, else the test venv's.
fn python() -> PathBuf {
    let system = PathBuf::from("/usr/bin/python3");
    if system.exists() {
        return system;
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    assert!(venv.exists(), "no Python: run scripts/test-deps");
    venv
}

/// Keys, a remit granting `tools` on `resource`, and the files the attacks aim at.
struct World {
    dir: tempfile::TempDir,
}

impl World {
    fn new(tools: &[&str]) -> World {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for sub in ["granted", "secret", "home/.ssh"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        std::fs::write(root.join("granted/notes.txt"), "granted notes").unwrap();
        std::fs::write(root.join("secret/data.txt"), "outside the remit").unwrap();
        std::fs::write(root.join("home/.ssh/id_ed25519"), "PRIVATE KEY").unwrap();
        std::os::unix::fs::symlink(root.join("secret/data.txt"), root.join("granted/link.txt"))
            .unwrap();
        support::key_with_jwks(root, "issuer.jwk", "issuer-1", "issuer.jwks.json");
        let made = remit_in(root, &["keys", "generate", "--out", "agent.jwk"]);
        assert!(made.status.success(), "{}", stderr(&made));
        let resource = format!("{}/granted/*", root.display());
        let mut args = vec![
            "token",
            "mint",
            "--issuer-key",
            "issuer.jwk",
            "--sub",
            "alice",
            "--agent",
            "planner",
            "--holder-jwk",
            "agent.jwk",
            "--resource",
            resource.as_str(),
            "--ttl",
            "10m",
        ];
        for tool in tools {
            args.extend(["--tool", tool]);
        }
        let minted = remit_in(root, &args);
        assert!(minted.status.success(), "{}", stderr(&minted));
        std::fs::write(root.join("agent.remit"), &minted.stdout).unwrap();
        World { dir }
    }

    fn path(&self, rel: &str) -> String {
        self.dir.path().join(rel).display().to_string()
    }

    /// `remit run` with the world's remit and key, then `extra`, then `-- command`.
    fn run(&self, extra: &[&str], command: &[&str]) -> Command {
        let mut cmd = support::remit_command();
        cmd.current_dir(self.dir.path()).args([
            "run",
            "--remit",
            "agent.remit",
            "--key",
            "agent.jwk",
            "--issuer-jwks",
            "issuer.jwks.json",
        ]);
        cmd.args(extra).arg("--").args(command);
        cmd
    }
}

/// A TCP server answering `pong` to anything, on an ephemeral loopback port.
fn pong_server() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || {
                let mut stream = stream;
                let mut buf = [0u8; 4];
                if stream.read_exact(&mut buf).is_ok() {
                    let _ = stream.write_all(b"pong");
                }
            });
        }
    });
    port
}

/// Runs the attack script under `remit run`; returns each attempt's result and the records.
fn attack(world: &World) -> (BTreeMap<String, Value>, Vec<Value>) {
    let port = pong_server();
    let unix = world.path("daemon.sock");
    let _daemon = std::os::unix::net::UnixListener::bind(&unix).unwrap();
    let cfg = json!({
        "granted_file": world.path("granted/notes.txt"),
        "granted_dir": world.path("granted"),
        "secret_file": world.path("secret/data.txt"),
        "ssh_key": world.path("home/.ssh/id_ed25519"),
        "symlink": world.path("granted/link.txt"),
        "dot_dot": world.path("granted/../secret/data.txt"),
        "listener_port": port,
        "unix_socket": unix,
    });
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/run_sandbox/attacks.py");
    let net = format!("127.0.0.1:{port}");
    let records = world.path("records.jsonl");
    let out = world
        .run(
            &["--net", &net, "--processes", "32", "--record", &records],
            &[
                python().to_str().unwrap(),
                script.to_str().unwrap(),
                &cfg.to_string(),
            ],
        )
        .env("REMIT_TEST_SECRET", "parent-only-secret")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", stderr(&out));
    let results: BTreeMap<String, Value> = stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .map(|v| (v["attempt"].as_str().unwrap().to_owned(), v))
        .collect();
    let records = std::fs::read_to_string(&records)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    (results, records)
}

fn failed(results: &BTreeMap<String, Value>, attempt: &str) -> Value {
    let r = results
        .get(attempt)
        .unwrap_or_else(|| panic!("no result for {attempt}: {results:?}"));
    assert_eq!(r["ok"], false, "{attempt} must fail under the sandbox: {r}");
    r["errno"].clone()
}

const EACCES: i64 = 13;
const EPERM: i64 = 1;

/// Needs Landlock ABI 6 (filesystem, TCP ports, signal scoping), seccomp and rlimits.
#[test]
fn agent_code_cannot_leave_its_remit_and_a_granted_read_works() {
    needs_abi(6);
    let world = World::new(&["fs/read_file"]);
    let (results, records) = attack(&world);

    // What the remit grants works.
    assert_eq!(results["read_granted"]["ok"], true, "{results:?}");
    assert!(results["read_granted"]["detail"]
        .as_str()
        .unwrap()
        .contains("granted notes"));
    assert_eq!(results["write_scratch"]["ok"], true, "{results:?}");
    assert_eq!(results["proxy_granted"]["ok"], true, "{results:?}");
    assert!(results["proxy_granted"]["detail"]
        .as_str()
        .unwrap()
        .contains("pong"));

    // Files outside the grant, through a symlink or `..` too: the kernel says EACCES.
    for attempt in [
        "read_outside",
        "read_ssh_key",
        "read_symlink_out",
        "read_dot_dot",
    ] {
        assert_eq!(failed(&results, attempt), EACCES, "{attempt}: {results:?}");
    }
    // A read grant is not a write grant.
    assert_eq!(failed(&results, "write_granted_read_only"), EACCES);
    // The network: only the proxy's port; UDP and UNIX sockets are refused.
    assert_eq!(failed(&results, "connect_direct"), EACCES);
    assert_eq!(failed(&results, "udp_socket"), EPERM);
    assert_eq!(failed(&results, "unix_socket"), EPERM);
    failed(&results, "proxy_not_granted");
    // A thousand forks stop at the process limit.
    let fork = &results["fork_thousand"];
    assert_eq!(fork["ok"], false, "{fork}");
    let forks: u32 = fork["detail"]
        .as_str()
        .unwrap()
        .split(" after ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{fork}"));
    assert!(forks < 32, "{fork}");
    // The parent's environment: scrubbed, and its /proc file unreadable.
    failed(&results, "own_environ_secret");
    failed(&results, "parent_environ");
    // No other program, no tracing or signalling the parent.
    assert_eq!(failed(&results, "run_shell"), EACCES);
    assert_eq!(failed(&results, "ptrace_parent"), EPERM);
    assert_eq!(failed(&results, "signal_parent"), EPERM);

    // The records: the sandbox's hash and ABI, and each proxied connection.
    let sandbox = records.iter().find(|r| r["event"] == "sandbox").unwrap();
    assert_eq!(
        sandbox["enforcement"]["ruleset_hash"]
            .as_str()
            .unwrap()
            .len(),
        64
    );
    assert!(sandbox["enforcement"]["kernel_abi"].as_u64().unwrap() >= 6);
    assert_eq!(sandbox["enforcement"]["not_enforced"], json!([]));
    let net: Vec<&Value> = records.iter().filter(|r| r["event"] == "net").collect();
    assert!(
        net.iter().any(|r| r["connection"]["decision"] == "allowed"
            && r["connection"]["bytes_up"] == 4
            && r["connection"]["bytes_down"] == 4),
        "{net:?}"
    );
    assert!(
        net.iter()
            .any(|r| r["connection"]["decision"] == "refused"
                && r["connection"]["host"] == "127.0.0.2"),
        "{net:?}"
    );
}

/// Needs nothing from the kernel: strict mode refuses to start on a kernel
/// with less than the remit needs (simulated by capping the ABI), naming
/// the feature; best effort starts, warns and records it.
#[test]
fn a_kernel_lacking_a_feature_is_refused_unless_best_effort_is_asked_for() {
    let world = World::new(&["fs/read_file"]);
    let granted = world.path("granted/notes.txt");
    let strict = world
        .run(&[], &["/bin/cat", &granted])
        .env("REMIT_SANDBOX_MAX_ABI", "3")
        .output()
        .unwrap();
    assert_eq!(strict.status.code(), Some(2), "{}", stderr(&strict));
    let err = stderr(&strict);
    assert!(
        err.contains("TCP connect/bind by port (Landlock ABI 4)"),
        "{err}"
    );
    assert!(err.contains("--sandbox=best-effort"), "{err}");
    assert!(strict.stdout.is_empty());

    let records = world.path("best-effort.jsonl");
    let best = world
        .run(
            &["--sandbox", "best-effort", "--record", &records],
            &["/bin/cat", &granted],
        )
        .env("REMIT_SANDBOX_MAX_ABI", "3")
        .output()
        .unwrap();
    assert!(best.status.success(), "{}", stderr(&best));
    assert!(
        stderr(&best).contains("warning: best effort: not enforced"),
        "{}",
        stderr(&best)
    );
    let first: Value = serde_json::from_str(
        std::fs::read_to_string(&records)
            .unwrap()
            .lines()
            .next()
            .unwrap(),
    )
    .unwrap();
    let missing = &first["enforcement"]["not_enforced"];
    assert!(
        missing.as_array().unwrap().contains(&json!("tcp_ports")),
        "{first}"
    );
    assert_eq!(first["enforcement"]["kernel_abi"], 3);
}

/// Needs Landlock ABI 1.
#[test]
fn a_remit_for_another_holder_key_is_refused() {
    let world = World::new(&["fs/read_file"]);
    let made = remit_in(
        world.dir.path(),
        &["keys", "generate", "--out", "thief.jwk"],
    );
    assert!(made.status.success());
    let out = support::remit_command()
        .current_dir(world.dir.path())
        .args([
            "run",
            "--remit",
            "agent.remit",
            "--key",
            "thief.jwk",
            "--issuer-jwks",
        ])
        .args(["issuer.jwks.json", "--", "/bin/true"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("not the key the remit is bound to"),
        "{}",
        stderr(&out)
    );
}

/// Needs Landlock ABI 1.
#[test]
fn the_wall_clock_limit_kills_the_process_tree() {
    needs_abi(1);
    let world = World::new(&["fs/read_file"]);
    let started = std::time::Instant::now();
    let out = world
        .run(
            &["--timeout-secs", "1"],
            &[
                python().to_str().unwrap(),
                "-c",
                "import os,time\nos.fork()\ntime.sleep(60)",
            ],
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(124), "{}", stderr(&out));
    assert!(started.elapsed().as_secs() < 20);
}

/// One JSON-RPC exchange with a stdio MCP server.
struct Mcp {
    child: std::process::Child,
    reader: BufReader<std::process::ChildStdout>,
    next: u64,
}

impl Mcp {
    fn start(mut cmd: Command) -> Mcp {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let reader = BufReader::new(child.stdout.take().unwrap());
        let mut mcp = Mcp {
            child,
            reader,
            next: 1,
        };
        let init = mcp.call(
            "initialize",
            json!({"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "remit-test", "version": "0"}}),
        );
        assert!(init.get("result").is_some(), "{init}");
        mcp.send(&json!({"jsonrpc": "2.0", "method": "notifications/initialized"}));
        mcp
    }

    fn send(&mut self, message: &Value) {
        let stdin = self.child.stdin.as_mut().unwrap();
        writeln!(stdin, "{message}").unwrap();
        stdin.flush().unwrap();
    }

    fn call(&mut self, method: &str, params: Value) -> Value {
        let id = self.next;
        self.next += 1;
        self.send(&json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}));
        loop {
            let mut line = String::new();
            assert!(
                self.reader.read_line(&mut line).unwrap() > 0,
                "the server closed"
            );
            let v: Value = serde_json::from_str(&line).unwrap();
            if v["id"] == id {
                return v;
            }
        }
    }

    fn tool(&mut self, name: &str, args: Value) -> String {
        let reply = self.call("tools/call", json!({"name": name, "arguments": args}));
        reply.to_string()
    }
}

impl Drop for Mcp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Needs Landlock ABI 3 (filesystem with truncation).
///
/// The server is told it may serve the whole world directory, so its own
/// path check passes for `granted/link.txt` (whose target is inside that
/// directory) and for `secret/`; the remit grants `granted/` only, and the
/// kernel refuses the rest with EACCES.
#[test]
fn the_official_filesystem_server_cannot_follow_a_symlink_out_of_its_grant() {
    needs_abi(3);
    let world = World::new(&["fs/read_file", "fs/read_text_file"]);
    let server = Path::new(env!("CARGO_MANIFEST_DIR")).join(
        "../../tests/node/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js",
    );
    assert!(server.exists(), "run scripts/test-deps first");
    let server = std::fs::canonicalize(server).unwrap();
    let root = world.dir.path().canonicalize().unwrap();
    let cmd = world.run(
        &[],
        &["node", server.to_str().unwrap(), root.to_str().unwrap()],
    );
    let mut mcp = Mcp::start(cmd);
    let path = |rel: &str| root.join(rel).display().to_string();

    let granted = mcp.tool("read_text_file", json!({"path": path("granted/notes.txt")}));
    assert!(granted.contains("granted notes"), "{granted}");
    let symlink = mcp.tool("read_text_file", json!({"path": path("granted/link.txt")}));
    assert!(symlink.contains("EACCES"), "{symlink}");
    assert!(!symlink.contains("outside the remit"), "{symlink}");
    let outside = mcp.tool("read_text_file", json!({"path": path("secret/data.txt")}));
    assert!(outside.contains("EACCES"), "{outside}");
    let write = mcp.tool(
        "write_file",
        json!({"path": path("granted/new.txt"), "content": "x"}),
    );
    assert!(write.contains("EACCES"), "{write}");
    assert!(!root.join("granted/new.txt").exists());
}
