//! `sandbox-bench`: what running under the remit's sandbox costs, side by
//! side with the same work unsandboxed, in one run.
//!
//! - **Start-up**: wall time from spawn to exit of a program that does
//!   nothing (`sandbox-bench noop`, `python3 -c pass`, `node -e 0`), plain
//!   and through the sandbox helper (one extra `execve`, rlimits, two
//!   seccomp filters, the Landlock ruleset built and enforced).
//! - **File-heavy call**: reading 1,000 small files (open, read, close),
//!   timed inside the child so start-up is excluded: the per-syscall cost
//!   of Landlock's path walk and the seccomp filters. Runs alternate plain
//!   and sandboxed so drift on a shared machine hits both alike.
//!
//! Usage: `sandbox-bench [RUNS]` (default 15). The child modes
//! (`noop`, `read DIR ROUNDS`, `helper …`) are this binary too.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use remit_sandbox::{add_system, FsAccess, Limits, Mode, Program, Sandbox, SandboxPolicy};

const FILES: usize = 1000;
const ROUNDS: usize = 20;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("noop") => Ok(()),
        Some("read") => read_mode(&args[2..]),
        Some("helper") => {
            let error = remit_sandbox::helper_main(std::env::args_os().skip(2));
            bail!("helper: {error}")
        }
        Some(runs) => bench(runs.parse().context("RUNS must be a number")?),
        None => bench(15),
    }
}

/// Reads every file in DIR, ROUNDS times; prints the median round in nanoseconds.
fn read_mode(args: &[String]) -> anyhow::Result<()> {
    let dir = Path::new(args.first().context("read DIR ROUNDS")?);
    let rounds: usize = args.get(1).context("read DIR ROUNDS")?.parse()?;
    let files: Vec<PathBuf> = (0..FILES)
        .map(|i| dir.join(format!("f{i:04}.txt")))
        .collect();
    let mut times = Vec::with_capacity(rounds);
    let mut total = 0usize;
    for _ in 0..rounds {
        let start = Instant::now();
        for f in &files {
            total += std::fs::read(f)?.len();
        }
        times.push(start.elapsed().as_nanos() as u64);
    }
    assert!(total > 0);
    println!("{}", median(&mut times));
    Ok(())
}

fn median(v: &mut [u64]) -> u64 {
    v.sort_unstable();
    v[v.len() / 2]
}

const PY_READ: &str = "import sys,time,os\nd=sys.argv[1];n=int(sys.argv[2])\nfs=[os.path.join(d,'f%04d.txt'%i) for i in range(1000)]\nts=[]\nfor _ in range(n):\n  t=time.perf_counter_ns()\n  for f in fs:\n    with open(f,'rb') as h: h.read()\n  ts.append(time.perf_counter_ns()-t)\nts.sort();print(ts[len(ts)//2])";

struct Setup {
    _dir: tempfile::TempDir,
    files: PathBuf,
    me: PathBuf,
}

fn sandbox_for(command: &[String], files: &Path) -> anyhow::Result<(Sandbox, Program)> {
    let path_var = std::env::var("PATH").unwrap_or_default();
    let program = Program::resolve(command, &path_var)?;
    let mut policy = SandboxPolicy {
        limits: Limits {
            memory_bytes: Some(8 << 30),
            processes: Some(64),
            open_files: Some(256),
        },
        ..SandboxPolicy::default()
    };
    add_system(&mut policy);
    program.add_to(&mut policy);
    policy.grant(files, FsAccess::Read)?;
    Ok((Sandbox::prepare(policy, Mode::Strict)?, program))
}

fn command(
    setup: &Setup,
    sandboxed: bool,
    argv: &[String],
) -> anyhow::Result<(Command, Option<Sandbox>)> {
    if !sandboxed {
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]);
        return Ok((cmd, None));
    }
    let (sandbox, program) = sandbox_for(argv, &setup.files)?;
    let rest: Vec<OsString> = argv[1..].iter().map(OsString::from).collect();
    let cmd = sandbox.command(&setup.me, &["helper"], &program.exec, &rest);
    Ok((cmd, Some(sandbox)))
}

/// Wall time of one spawn-to-exit.
fn startup(setup: &Setup, sandboxed: bool, argv: &[String]) -> anyhow::Result<Duration> {
    let (mut cmd, _sandbox) = command(setup, sandboxed, argv)?;
    let start = Instant::now();
    let status = cmd.stdout(Stdio::null()).status()?;
    let took = start.elapsed();
    if !status.success() {
        bail!("{argv:?} (sandboxed: {sandboxed}) failed: {status}");
    }
    Ok(took)
}

/// The child's own median time for one round over the 1,000 files.
fn file_round(setup: &Setup, sandboxed: bool, argv: &[String]) -> anyhow::Result<u64> {
    let (mut cmd, _sandbox) = command(setup, sandboxed, argv)?;
    let out = cmd.output()?;
    if !out.status.success() {
        bail!(
            "{argv:?} (sandboxed: {sandboxed}): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?.trim().parse()?)
}

fn pct(plain: f64, boxed: f64) -> String {
    format!("{:+.1} %", (boxed - plain) / plain * 100.0)
}

fn bench(runs: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let files = dir.path().join("files");
    std::fs::create_dir(&files)?;
    for i in 0..FILES {
        std::fs::write(
            files.join(format!("f{i:04}.txt")),
            vec![b'x'; 512 + i % 512],
        )?;
    }
    let me = std::env::current_exe()?;
    let setup = Setup {
        _dir: dir,
        files: files.clone(),
        me: me.clone(),
    };
    let kernel = remit_sandbox::KernelAbi::current().version();
    println!("Landlock ABI {kernel}; {runs} runs each, alternating plain and sandboxed; medians\n");

    let s = |x: &str| x.to_owned();
    let mut startups: Vec<(&str, Vec<String>)> = vec![(
        "noop (this Rust binary)",
        vec![me.display().to_string(), s("noop")],
    )];
    if which("python3") {
        startups.push((
            "python3 -c pass",
            vec![s("/usr/bin/python3"), s("-c"), s("pass")],
        ));
    }
    if which("node") {
        startups.push(("node -e 0", vec![s("node"), s("-e"), s("0")]));
    }
    println!("| start-up | plain | sandboxed | added |");
    println!("| --- | ---: | ---: | ---: |");
    for (name, argv) in &startups {
        let (mut plain, mut boxed) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            plain.push(startup(&setup, false, argv)?.as_micros() as u64);
            boxed.push(startup(&setup, true, argv)?.as_micros() as u64);
        }
        let (p, b) = (median(&mut plain), median(&mut boxed));
        println!(
            "| {name} | {:.2} ms | {:.2} ms | {:+.2} ms |",
            p as f64 / 1e3,
            b as f64 / 1e3,
            (b as f64 - p as f64) / 1e3
        );
    }

    let rounds = ROUNDS.to_string();
    let files_arg = files.display().to_string();
    let mut heavy: Vec<(&str, Vec<String>)> = vec![(
        "Rust std::fs::read",
        vec![
            me.display().to_string(),
            s("read"),
            files_arg.clone(),
            rounds.clone(),
        ],
    )];
    if which("python3") {
        heavy.push((
            "Python open/read",
            vec![
                s("/usr/bin/python3"),
                s("-c"),
                s(PY_READ),
                files_arg.clone(),
                rounds.clone(),
            ],
        ));
    }
    println!("\n| read 1,000 small files (one call) | plain | sandboxed | overhead | per file |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (name, argv) in &heavy {
        let (mut plain, mut boxed) = (Vec::new(), Vec::new());
        for _ in 0..runs {
            plain.push(file_round(&setup, false, argv)?);
            boxed.push(file_round(&setup, true, argv)?);
        }
        let (p, b) = (median(&mut plain) as f64, median(&mut boxed) as f64);
        println!(
            "| {name} | {:.2} ms | {:.2} ms | {} | {:+.0} ns |",
            p / 1e6,
            b / 1e6,
            pct(p, b),
            (b - p) / FILES as f64
        );
    }
    if let Some(server) = fs_server() {
        let argv = vec![s("node"), server.display().to_string(), files_arg.clone()];
        let (mut plain, mut boxed) = (Vec::new(), Vec::new());
        let mut servers = [
            mcp_start(&setup, false, &argv)?,
            mcp_start(&setup, true, &argv)?,
        ];
        let paths: Vec<String> = (0..FILES)
            .map(|i| files.join(format!("f{i:04}.txt")).display().to_string())
            .collect();
        // Warm-up: the JIT and the heap settle before anything is timed.
        for _ in 0..10 {
            for server in &mut servers {
                server.read_all(&paths)?;
            }
        }
        for _ in 0..runs {
            plain.push(servers[0].read_all(&paths)?);
            boxed.push(servers[1].read_all(&paths)?);
        }
        let (p, b) = (median(&mut plain) as f64, median(&mut boxed) as f64);
        println!(
            "| MCP tools/call read_multiple_files (official filesystem server, node) | {:.2} ms | {:.2} ms | {} | {:+.0} ns |",
            p / 1e6,
            b / 1e6,
            pct(p, b),
            (b - p) / FILES as f64
        );
    }
    Ok(())
}

/// The official filesystem server, if `scripts/test-deps` installed it.
fn fs_server() -> Option<PathBuf> {
    let rel = "tests/node/node_modules/@modelcontextprotocol/server-filesystem/dist/index.js";
    let here = std::env::var_os("REMIT_REPO")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    std::fs::canonicalize(here.join(rel)).ok()
}

/// A stdio MCP server, initialized.
struct Mcp {
    child: std::process::Child,
    reader: std::io::BufReader<std::process::ChildStdout>,
    _sandbox: Option<Sandbox>,
    next: u64,
}

fn mcp_start(setup: &Setup, sandboxed: bool, argv: &[String]) -> anyhow::Result<Mcp> {
    let (mut cmd, sandbox) = command(setup, sandboxed, argv)?;
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let reader = std::io::BufReader::new(child.stdout.take().context("stdout")?);
    let mut mcp = Mcp {
        child,
        reader,
        _sandbox: sandbox,
        next: 1,
    };
    mcp.call("initialize", r#"{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"bench","version":"0"}}"#)?;
    mcp.send(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#)?;
    Ok(mcp)
}

impl Mcp {
    fn send(&mut self, line: &str) -> anyhow::Result<()> {
        use std::io::Write as _;
        let stdin = self.child.stdin.as_mut().context("stdin")?;
        writeln!(stdin, "{line}")?;
        stdin.flush()?;
        Ok(())
    }

    fn call(&mut self, method: &str, params: &str) -> anyhow::Result<String> {
        use std::io::BufRead as _;
        let id = self.next;
        self.next += 1;
        self.send(&format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"{method}","params":{params}}}"#
        ))?;
        let want = format!(r#""id":{id}"#);
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line)? == 0 {
                bail!("the server closed");
            }
            if line.contains(&want) {
                return Ok(line);
            }
        }
    }

    /// Wall time of one tools/call reading every file, in nanoseconds.
    fn read_all(&mut self, paths: &[String]) -> anyhow::Result<u64> {
        let list = paths
            .iter()
            .map(|p| format!("{p:?}"))
            .collect::<Vec<_>>()
            .join(",");
        let params =
            format!(r#"{{"name":"read_multiple_files","arguments":{{"paths":[{list}]}}}}"#);
        let start = Instant::now();
        let reply = self.call("tools/call", &params)?;
        let took = start.elapsed().as_nanos() as u64;
        if reply.contains("EACCES") || reply.contains(r#""isError":true"#) {
            bail!(
                "read_multiple_files failed: {}",
                &reply[..reply.len().min(300)]
            );
        }
        Ok(took)
    }
}

impl Drop for Mcp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn which(name: &str) -> bool {
    std::env::var("PATH")
        .unwrap_or_default()
        .split(':')
        .any(|d| Path::new(d).join(name).is_file())
}
