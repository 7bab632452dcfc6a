//! `remit serve`: run the control plane.
//!
//! Precedence, highest first: flags, `REMIT_*` environment variables, the
//! TOML file given with `--config` (or `REMIT_CONFIG`), then defaults.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use std::fmt::Write as _;
use std::io::Write as _;

use anyhow::Context as _;
use clap::Args;
use remit_server::{Database, FileConfig, ServeOptions, StartReport};

/// Run the control plane (SQLite in the data directory unless told otherwise).
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML configuration file (keys: data, database, listen, public_url,
    /// audience, preset, otlp_endpoint, [[oidc]] tables and a [gateway]
    /// table; see the README).
    #[arg(long, env = "REMIT_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory for keys, the admin token hash and the SQLite file
    /// [default: $XDG_DATA_HOME/remit or ~/.local/share/remit].
    #[arg(long, env = "REMIT_DATA")]
    data: Option<PathBuf>,
    /// Database URL: sqlite://PATH or postgres://USER@HOST:PORT/DB.
    #[arg(long, env = "REMIT_DATABASE")]
    database: Option<String>,
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "REMIT_LISTEN")]
    listen: Option<SocketAddr>,
    /// Public base URL, the `iss` of minted remits [default: http://<listen>,
    /// https://<listen> with --tls-cert].
    #[arg(long, env = "REMIT_PUBLIC_URL")]
    public_url: Option<String>,
    /// Audience remits are minted for [default: remit].
    #[arg(long, env = "REMIT_AUDIENCE")]
    audience: Option<String>,
    /// Security posture for a new data directory's policy folder:
    /// lockdown, standard or permissive [default: standard]. An existing
    /// folder (<data>/policy) is kept; tune it with overrides.
    #[arg(long, env = "REMIT_PRESET")]
    preset: Option<String>,
    /// Trust ID tokens from this OpenID Connect issuer (added to the
    /// config file's [[oidc]] issuers); keys by OpenID discovery unless
    /// --oidc-jwks-file is given.
    #[arg(long, env = "REMIT_OIDC_ISSUER", requires = "oidc_audience")]
    oidc_issuer: Option<String>,
    /// The audience (client id) ID tokens of --oidc-issuer must carry.
    #[arg(long, env = "REMIT_OIDC_AUDIENCE", requires = "oidc_issuer")]
    oidc_audience: Option<String>,
    /// A static JWKS file with --oidc-issuer's keys.
    #[arg(long, env = "REMIT_OIDC_JWKS_FILE", requires = "oidc_issuer")]
    oidc_jwks_file: Option<PathBuf>,
    /// The claim of --oidc-issuer's ID tokens that grants admin, e.g. groups.
    #[arg(long, env = "REMIT_OIDC_ADMIN_CLAIM", requires_all = ["oidc_issuer", "oidc_admin_value"])]
    oidc_admin_claim: Option<String>,
    /// The value the admin claim must be or contain, e.g. remit-admins.
    #[arg(long, env = "REMIT_OIDC_ADMIN_VALUE", requires = "oidc_admin_claim")]
    oidc_admin_value: Option<String>,
    /// Export traces over OTLP/HTTP (protobuf) to this collector base URL,
    /// e.g. http://127.0.0.1:4318 [default: off, or the standard
    /// OTEL_EXPORTER_OTLP_ENDPOINT].
    #[arg(long, env = "REMIT_OTLP_ENDPOINT")]
    otlp_endpoint: Option<String>,
    /// Threads that serve requests [default: one per CPU]. Fewer leave a
    /// core to the receipt writer, which signs and syncs every receipt
    /// while calls wait for it: on a 2-CPU machine one thread lowered
    /// latency at low concurrency in some runs and cost throughput in
    /// others (bench/gateway, session 8).
    #[arg(long, env = "REMIT_WORKERS", value_parser = clap::value_parser!(u16).range(1..))]
    workers: Option<u16>,
    /// Serve HTTPS with this certificate chain (PEM, leaf first); reread
    /// when it changes or on SIGHUP, without dropping connections.
    #[arg(long, env = "REMIT_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM).
    #[arg(long, env = "REMIT_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Allow plain HTTP on an address other than loopback (only behind a
    /// proxy that terminates TLS).
    #[arg(long, env = "REMIT_INSECURE_HTTP")]
    insecure_http: bool,
    /// Log lines on stderr as `text` or `json` (one object per line, for a
    /// log shipper); the level comes from RUST_LOG [default: text].
    #[arg(long, env = "REMIT_LOG_FORMAT", default_value = "text")]
    log_format: remit_server::telemetry::LogFormat,
}

/// The request threads for `requested` (the flag) on a machine with
/// `cpus` CPUs: as asked, or one per CPU (at least one).
fn worker_threads(requested: Option<u16>, cpus: usize) -> usize {
    requested.map_or(cpus, usize::from).max(1)
}

/// `writeln!` into a String (which cannot fail).
macro_rules! outln {
    ($out:expr, $($arg:tt)*) => {{
        let _ = writeln!($out, $($arg)*);
    }};
}

/// `$XDG_DATA_HOME/remit`, else `~/.local/share/remit`: where `serve` and
/// `wrap` keep keys, the store and the policy unless told otherwise.
pub(crate) fn default_data_dir() -> anyhow::Result<PathBuf> {
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(xdg).join("remit"));
    }
    let home = std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .context("neither XDG_DATA_HOME nor HOME is set: pass --data DIR")?;
    Ok(PathBuf::from(home).join(".local/share/remit"))
}

/// The server's options and the OTLP endpoint traces go to (if any).
fn options(args: ServeArgs) -> anyhow::Result<(ServeOptions, Option<String>)> {
    let file = match &args.config {
        Some(path) => FileConfig::load(path)?,
        None => FileConfig::default(),
    };
    let gateway = file.gateway_config().with_context(|| match &args.config {
        Some(path) => format!("configuration file {}", path.display()),
        None => "gateway defaults".to_owned(),
    })?;
    let data_dir = match args.data.or(file.data) {
        Some(dir) => dir,
        None => default_data_dir()?,
    };
    let database = args
        .database
        .or(file.database)
        .map(|url| Database::parse(&url))
        .transpose()?;
    let mut oidc = file.oidc;
    if let (Some(issuer), Some(audience)) = (args.oidc_issuer, args.oidc_audience) {
        let mut extra = remit_server::oidc::OidcIssuerConfig::new(issuer, audience);
        extra.jwks_file = args.oidc_jwks_file;
        extra.admin_claim = args.oidc_admin_claim;
        extra.admin_value = args.oidc_admin_value;
        oidc.push(extra);
    }
    let listen = match args.listen.or(file.listen) {
        Some(addr) => addr,
        None => remit_server::launch::DEFAULT_LISTEN.parse()?,
    };
    let otlp_endpoint = args.otlp_endpoint.or(file.otlp_endpoint);
    let tls = match (args.tls_cert.or(file.tls_cert), args.tls_key.or(file.tls_key)) {
        (Some(cert), Some(key)) => Some(remit_server::tls::TlsFiles { cert, key }),
        (None, None) => None,
        _ => anyhow::bail!("TLS needs both a certificate and a key (--tls-cert and --tls-key, or tls_cert and tls_key in the config file)"),
    };
    let options = ServeOptions {
        tls,
        insecure_http: args.insecure_http || file.insecure_http,
        gateway,
        data_dir,
        database,
        listen,
        public_url: args.public_url.or(file.public_url),
        audience: args.audience.or(file.audience),
        preset: args
            .preset
            .or(file.preset)
            .map(|p| p.parse())
            .transpose()?
            .unwrap_or(remit_policy::Preset::Standard),
        oidc,
    };
    Ok((options, otlp_endpoint))
}

fn announce(report: &StartReport) {
    // A closed stdout (a supervisor that stopped reading) must not stop the server.
    let _ = std::io::stdout().write_all(announcement(report).as_bytes());
}

fn announcement(report: &StartReport) -> String {
    let mut out = String::new();
    let made = |created: bool| if created { "generated" } else { "reused" };
    outln!(out, "remit control plane");
    outln!(out, "  data directory  {}", report.data_dir.display());
    outln!(
        out,
        "  issuer key      {} ({}, kid {})",
        report.issuer_key.0.display(),
        made(report.issuer_key.1),
        report.issuer_kid
    );
    outln!(
        out,
        "  issuer JWKS     {} (public; what remit wrap verifies with)",
        report.issuer_jwks.display()
    );
    outln!(
        out,
        "  receipt key     {} ({})",
        report.receipt_key.0.display(),
        made(report.receipt_key.1)
    );
    outln!(
        out,
        "  receipt log     {} (checkpoints signed by {})",
        report.receipt_log.display(),
        report.note_verifier
    );
    outln!(out, "  database        {}", report.database);
    outln!(
        out,
        "  policy          {} ({}, {} preset, version {})",
        report.policy.0.display(),
        made(report.policy.1),
        report.policy.2,
        report.policy.3
    );
    for issuer in &report.oidc_issuers {
        outln!(out, "  OIDC issuer     {issuer}");
    }
    outln!(out, "  listening on    {}", report.public_url);
    outln!(out, "  OpenAPI         {}/openapi.json", report.public_url);
    outln!(out, "  metrics         {}/metrics", report.public_url);
    if report.new_admin_token.is_none() {
        outln!(out, "  admin token     unchanged (delete admin-token.sha256 in the data directory to issue a new one)");
    }
    if let Some(token) = &report.new_admin_token {
        out.push('\n');
        outln!(out, "Admin token (shown once; only its SHA-256 is stored):");
        outln!(out, "  {token}");
    }
    out.push('\n');
    for line in next_steps(report) {
        outln!(out, "{line}");
    }
    out
}

/// The "Next:" hint: commands that work as printed, in a shell in any
/// directory. Protecting the official filesystem server on the shell's
/// directory (read-only tools, held to it by path), then the admin API.
fn next_steps(report: &StartReport) -> Vec<String> {
    let data = if default_data_dir().ok().as_deref() == Some(report.data_dir.as_path()) {
        String::new()
    } else {
        let dir = std::path::absolute(&report.data_dir).unwrap_or_else(|_| report.data_dir.clone());
        let dir = dir.display().to_string();
        format!(
            " --data {}",
            shlex::try_quote(&dir).map_or(dir.clone(), |q| q.into_owned())
        )
    };
    let mut lines = vec![
        "Next: protect an MCP server, e.g. the official filesystem server, read-only, on the current directory:".to_owned(),
        format!("  remit protect{data} {PROTECT_HINT}"),
        "Then check the deployment, and use the admin API:".to_owned(),
        format!("  remit doctor{data}"),
        format!("  export REMIT_SERVER={}", report.public_url),
    ];
    if let Some(token) = &report.new_admin_token {
        lines.push(format!("  export REMIT_ADMIN_TOKEN={token}"));
    }
    lines.push("  remit server list".to_owned());
    lines
}

/// The protect command of the hint (after `remit protect` and `--data`).
const PROTECT_HINT: &str = "--name files --allow 'read_*' --allow list_directory --path \"$PWD\" -- npx -y @modelcontextprotocol/server-filesystem \"$PWD\"";

/// Runs `remit serve` until Ctrl-C or SIGTERM.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let workers = worker_threads(args.workers, cpus);
    let log_format = args.log_format;
    let (options, otlp_endpoint) = options(args)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        // Logs on stderr, and trace export when an OTLP endpoint is set;
        // the guard flushes queued spans when the server stops.
        let telemetry = remit_server::telemetry::init_with(otlp_endpoint.as_deref(), log_format)?;
        if telemetry.exporting() {
            eprintln!("traces are exported over OTLP/HTTP");
        }
        remit_server::serve(options, announce, shutdown_signal()).await?;
        drop(telemetry);
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = terminate => {},
    }
}

#[cfg(test)]
mod tests {
    use super::worker_threads;

    #[test]
    fn the_next_hint_protects_a_server_through_the_flags_protect_parses() {
        use clap::Parser as _;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            protect: super::super::protect::ProtectArgs,
        }
        let words = shlex::split(&format!(
            "remit {}",
            super::PROTECT_HINT.replace("$PWD", "/tmp")
        ))
        .unwrap();
        assert!(Cli::try_parse_from(&words).is_ok(), "{words:?}");
        assert!(
            words.windows(2).any(|w| w[0] == "--path"),
            "held to a directory"
        );
    }

    #[test]
    fn a_thread_per_cpu_unless_told_otherwise() {
        assert_eq!(worker_threads(None, 2), 2);
        assert_eq!(worker_threads(None, 0), 1, "never zero threads");
        assert_eq!(worker_threads(Some(1), 2), 1);
        assert_eq!(worker_threads(Some(4), 2), 4);
    }
}
