//! `remit run`: agent-written code under the kernel's enforcement of a
//! remit (Landlock, seccomp, rlimits; see `remit_sandbox`), with a scrubbed
//! environment, a wall-clock limit, and the network reachable only through
//! the egress proxy (granted `--net host:port` pairs) and the gateway.
//! `remit sandbox-exec` is the helper that applies the policy to itself and
//! execs the program (no `unsafe` in the parent).

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{bail, Context as _};
use clap::{Args, ValueEnum};
use remit_sandbox::{
    policy_for, ConnectionRecord, EgressProxy, FsAccess, Limits, Mode, NetGrant, Program, Sandbox,
    ToolWrites,
};
use remit_token::{EcdsaP256Signer, Jwks, Pattern, PrivateJwk, VerifiedChain, VerifyOptions};

/// Environment variables passed unless scrubbing is all a caller wants.
const PASSED: &[&str] = &["PATH", "LANG", "LC_ALL", "TERM", "TZ"];

/// How a missing kernel feature is handled.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum SandboxMode {
    /// Refuse to start when the kernel lacks a feature the remit needs.
    Strict,
    /// Start anyway, with a warning and a record of what was not enforced.
    BestEffort,
}

/// Run a program (agent-written code) under the remit, enforced by the kernel.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  remit run --remit agent.remit --key agent.jwk --net api.github.com:443 -- python3 task.py"
)]
pub struct RunArgs {
    /// The remit chain the agent holds (a file).
    #[arg(long = "remit")]
    remit: PathBuf,
    /// The agent's private JWK file (the leaf remit's holder key).
    #[arg(long)]
    key: PathBuf,
    /// The issuer's public JWKS [default: <data>/issuer.jwks.json].
    #[arg(long, value_name = "FILE")]
    issuer_jwks: Option<PathBuf>,
    /// The data directory shared with `remit serve`.
    #[arg(long, env = "REMIT_DATA")]
    data: Option<PathBuf>,
    /// The audience the remit must name.
    #[arg(long, env = "REMIT_AUDIENCE", default_value = "remit")]
    audience: String,
    /// A host:port the program may reach through the egress proxy (repeatable).
    #[arg(long = "net", value_name = "HOST:PORT")]
    net: Vec<NetGrant>,
    /// The Remit gateway URL the program calls tools through (its port is reachable).
    #[arg(long, value_name = "URL")]
    gateway: Option<String>,
    /// An environment variable passed to the program (repeatable); all
    /// others but PATH, LANG, LC_ALL, TERM and TZ are scrubbed.
    #[arg(long = "env", value_name = "NAME")]
    env: Vec<String>,
    /// A granted tool (pattern) that writes: its paths become writable (repeatable).
    #[arg(long = "write-tool", value_name = "TOOL")]
    write_tools: Vec<String>,
    /// Address-space limit in MiB.
    #[arg(long, default_value_t = 4096)]
    memory_mib: u64,
    /// Process limit (the program and everything it starts).
    #[arg(long, default_value_t = 64)]
    processes: u64,
    /// Open-file limit.
    #[arg(long, default_value_t = 256)]
    open_files: u64,
    /// Wall-clock limit in seconds; the process tree is killed after it.
    #[arg(long, default_value_t = 300)]
    timeout_secs: u64,
    /// What to do when the kernel lacks a feature the remit needs.
    #[arg(long, value_enum, default_value = "strict")]
    sandbox: SandboxMode,
    /// Append the run's records (enforcement, connections, exit) here as JSON lines.
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
    /// The program and its arguments.
    #[arg(last = true, required = true)]
    command: Vec<String>,
}

/// Arguments of the hidden helper: passed through untouched.
#[derive(Debug, Args)]
pub struct SandboxExecArgs {
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<OsString>,
}

/// `remit sandbox-exec`: applies the policy to itself and execs the program.
pub fn sandbox_exec(args: SandboxExecArgs) -> anyhow::Result<ExitCode> {
    let error = remit_sandbox::helper_main(args.args);
    eprintln!("remit sandbox-exec: {error}");
    Ok(ExitCode::from(126))
}

/// Records of one run, kept in order and written as JSON lines.
#[derive(Debug, Clone, Default)]
struct Records(Arc<Mutex<Vec<serde_json::Value>>>);

impl Records {
    fn push(&self, value: serde_json::Value) {
        eprintln!("remit run: {value}");
        if let Ok(mut v) = self.0.lock() {
            v.push(value);
        }
    }

    fn write(&self, path: &std::path::Path) -> anyhow::Result<()> {
        use std::io::Write as _;
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("opening {}", path.display()))?;
        let lines = self.0.lock().map(|v| v.clone()).unwrap_or_default();
        for line in lines {
            writeln!(file, "{line}")?;
        }
        Ok(())
    }
}

fn verify(args: &RunArgs) -> anyhow::Result<VerifiedChain> {
    let text = std::fs::read_to_string(&args.remit)
        .with_context(|| format!("reading the remit {}", args.remit.display()))?;
    let jwks_path = match &args.issuer_jwks {
        Some(p) => p.clone(),
        None => match &args.data {
            Some(d) => d.join("issuer.jwks.json"),
            None => super::serve::default_data_dir()?.join("issuer.jwks.json"),
        },
    };
    let jwks = Jwks::from_json(
        &std::fs::read_to_string(&jwks_path)
            .with_context(|| format!("reading the issuer JWKS {}", jwks_path.display()))?,
    )
    .with_context(|| format!("{} is not a JWKS", jwks_path.display()))?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    let mut opts = VerifyOptions::new(now);
    opts.audience = args.audience.clone();
    let chain = VerifiedChain::verify_text(text.trim(), &jwks, &opts).context("the remit")?;
    let key: PrivateJwk = serde_json::from_slice(
        &std::fs::read(&args.key).with_context(|| format!("reading {}", args.key.display()))?,
    )
    .with_context(|| format!("{} is not a private JWK", args.key.display()))?;
    let holder = EcdsaP256Signer::from_jwk(&key)
        .with_context(|| format!("{} is not a P-256 private key", args.key.display()))?;
    if &holder.thumbprint() != chain.holder() {
        bail!(
            "{} is not the key the remit is bound to",
            args.key.display()
        );
    }
    Ok(chain)
}

/// The port of an `http://host:port/...` URL (80/443 by default).
fn url_port(url: &str) -> anyhow::Result<u16> {
    let (scheme, rest) = url
        .split_once("://")
        .context("the gateway URL needs a scheme")?;
    let authority = rest.split('/').next().unwrap_or_default();
    match authority.rsplit_once(':') {
        Some((_, port)) if !port.contains(']') => {
            Ok(port.parse().context("the gateway URL's port")?)
        }
        _ => Ok(if scheme == "https" { 443 } else { 80 }),
    }
}

/// Runs the program under the remit until it exits or its time is up.
pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    let chain = verify(&args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run_sandboxed(args, chain))
}

async fn run_sandboxed(args: RunArgs, chain: VerifiedChain) -> anyhow::Result<ExitCode> {
    let records = Records::default();
    let sink = records.clone();
    let on_record = Arc::new(move |r: ConnectionRecord| {
        sink.push(serde_json::json!({"event": "net", "connection": r}));
    });
    let proxy = EgressProxy::start(args.net.clone(), on_record)
        .await
        .context("starting the egress proxy")?;
    let mut ports = vec![proxy.port()];
    if let Some(url) = &args.gateway {
        ports.push(url_port(url)?);
    }
    let path_var = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".into());
    let program = Program::resolve(&args.command, &path_var)?;
    let writes = ToolWrites::patterns(
        args.write_tools
            .iter()
            .map(|t| Pattern::try_from(t.as_str()))
            .collect::<Result<_, _>>()
            .context("--write-tool")?,
    );
    let limits = Limits {
        memory_bytes: Some(args.memory_mib.saturating_mul(1 << 20)),
        processes: Some(args.processes),
        open_files: Some(args.open_files),
    };
    let (mut policy, dropped) = policy_for(&chain, &writes, &program, &ports, limits);
    for text in dropped {
        eprintln!(
            "remit run: warning: the grant path {text:?} names no usable path and grants nothing"
        );
    }
    // A private scratch directory: HOME and TMPDIR, writable, removed after.
    let scratch = tempfile::Builder::new()
        .prefix("remit-run-")
        .tempdir()
        .context("creating the scratch directory")?;
    policy.grant(scratch.path(), FsAccess::Write)?;
    // The program may read the remit and its key to call the gateway.
    for file in [&args.remit, &args.key] {
        if let Ok(real) = std::fs::canonicalize(file) {
            policy.grant(real, FsAccess::Read)?;
        }
    }
    let mode = match args.sandbox {
        SandboxMode::Strict => Mode::Strict,
        SandboxMode::BestEffort => Mode::BestEffort,
    };
    let sandbox = Sandbox::prepare(policy, mode)?;
    let enforcement = sandbox.enforcement().clone();
    if !enforcement.not_enforced.is_empty() || enforcement.process_limit_unenforced.is_some() {
        eprintln!(
            "remit run: warning: best effort: not enforced: {}{}",
            enforcement
                .not_enforced
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            enforcement
                .process_limit_unenforced
                .as_deref()
                .map(|r| format!("; process limit: {r}"))
                .unwrap_or_default(),
        );
    }
    records.push(serde_json::json!({
        "event": "sandbox", "jti": chain.leaf_claims().jti, "enforcement": enforcement,
        "runtime": program.runtime, "net": args.net.iter().map(ToString::to_string).collect::<Vec<_>>(),
    }));
    let helper = std::env::current_exe().context("locating the remit binary")?;
    let program_args: Vec<OsString> = args.command.iter().skip(1).map(OsString::from).collect();
    let mut cmd = sandbox.command(&helper, &["sandbox-exec"], &program.exec, &program_args);
    cmd.env_clear();
    for name in PASSED
        .iter()
        .copied()
        .chain(args.env.iter().map(String::as_str))
    {
        if let Some(value) = std::env::var_os(name) {
            cmd.env(name, value);
        }
    }
    let proxy_url = proxy.url();
    for name in [
        "HTTPS_PROXY",
        "https_proxy",
        "HTTP_PROXY",
        "http_proxy",
        "ALL_PROXY",
        "all_proxy",
    ] {
        cmd.env(name, &proxy_url);
    }
    if let Some(url) = &args.gateway {
        cmd.env("REMIT_GATEWAY_URL", url);
        cmd.env("NO_PROXY", "127.0.0.1,localhost")
            .env("no_proxy", "127.0.0.1,localhost");
    }
    cmd.env("HOME", scratch.path())
        .env("TMPDIR", scratch.path());
    cmd.env("REMIT_REMIT", &args.remit)
        .env("REMIT_KEY", &args.key);
    {
        use std::os::unix::process::CommandExt as _;
        cmd.process_group(0);
    }
    let mut child = tokio::process::Command::from(cmd)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("starting {}", args.command.join(" ")))?;
    let pid = child.id();
    let status = tokio::time::timeout(Duration::from_secs(args.timeout_secs), child.wait()).await;
    let kill_group = || {
        if let Some(pgid) = pid.and_then(|p| rustix::process::Pid::from_raw(p as i32)) {
            let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        }
        sandbox.kill_all();
    };
    let code = match status {
        Ok(status) => {
            kill_group(); // what the program left behind
            let status = status.context("waiting for the program")?;
            records.push(serde_json::json!({"event": "exit", "status": status.to_string()}));
            exit_code(status)
        }
        Err(_) => {
            kill_group();
            let _ = child.wait().await;
            records.push(serde_json::json!({"event": "timeout", "after_secs": args.timeout_secs}));
            ExitCode::from(124)
        }
    };
    drop(proxy);
    if let Some(path) = &args.record {
        records.write(path)?;
    }
    Ok(code)
}

fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
        (None, Some(signal)) => ExitCode::from(u8::try_from(128 + signal).unwrap_or(255)),
        _ => ExitCode::from(1),
    }
}
