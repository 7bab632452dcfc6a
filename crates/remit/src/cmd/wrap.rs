//! `remit wrap`: a local stdio proxy an agent host launches in place of an
//! MCP server. Every message passes the gateway pipeline; receipts go to a
//! local signed log. Standard output carries only MCP messages; what the
//! wrap has to say goes to standard error.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use remit_server::gateway::wrap::{Wrap, WrapOptions};
use remit_token::{EcdsaP256Signer, PrivateJwk};

/// Run an MCP server over stdio behind the gateway pipeline.
#[derive(Debug, Args)]
#[command(
    after_help = "Example (in an agent host's MCP configuration):\n  remit wrap --remit agent.remit --key agent.jwk --server fs -- npx -y @modelcontextprotocol/server-filesystem /data"
)]
pub struct WrapArgs {
    /// The remit chain the agent holds (a file).
    #[arg(long = "remit")]
    remit: PathBuf,
    /// The agent's private JWK file (the leaf remit's holder key).
    #[arg(long)]
    key: PathBuf,
    /// Policy folder [default: <data>/policy].
    #[arg(long)]
    policy: Option<PathBuf>,
    /// The data directory shared with `remit serve` (keys, store, policy)
    /// [default: $XDG_DATA_HOME/remit or ~/.local/share/remit].
    #[arg(long, env = "REMIT_DATA")]
    data: Option<PathBuf>,
    /// The issuer's public JWKS remits are verified with [default:
    /// <data>/issuer.jwks.json, written by every `remit serve` start]. On
    /// another host: a copy of the server's /.well-known/jwks.json. The
    /// wrap never needs the issuer's private key.
    #[arg(long, value_name = "FILE")]
    issuer_jwks: Option<PathBuf>,
    /// The registered MCP server this command is (its pins and clearance).
    #[arg(long)]
    server: String,
    /// TOML configuration file shared with `remit serve`; the wrap uses its
    /// [gateway] table (limits, shadow mode, budgets, the upstream's `env`).
    #[arg(long, env = "REMIT_CONFIG")]
    config: Option<PathBuf>,
    /// The store shared with `remit serve`: sqlite://PATH or
    /// postgres://USER@HOST:PORT/DB [default: the SQLite file in <data>].
    /// On PostgreSQL receipts go to the log the servers share.
    #[arg(long, env = "REMIT_DATABASE")]
    database: Option<String>,
    /// Receipt log directory, on SQLite only [default: <data>/wrap/<server>].
    #[arg(long)]
    log: Option<PathBuf>,
    /// The control plane's public URL (server-scoped remits name
    /// `<url>/mcp/<server>` as audience) [default: http://127.0.0.1:8080].
    #[arg(
        long,
        env = "REMIT_PUBLIC_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    public_url: String,
    /// The deployment-wide audience [default: remit].
    #[arg(long, env = "REMIT_AUDIENCE", default_value = "remit")]
    audience: String,
    /// The server command and its arguments (after `--`); empty means the
    /// server's registered `stdio:` command.
    #[arg(last = true)]
    command: Vec<String>,
}

/// Runs `remit wrap` until the agent host closes standard input.
pub fn run(args: WrapArgs) -> anyhow::Result<ExitCode> {
    let chain = std::fs::read_to_string(&args.remit)
        .with_context(|| format!("reading the remit {}", args.remit.display()))?;
    let key: PrivateJwk = serde_json::from_slice(
        &std::fs::read(&args.key).with_context(|| format!("reading {}", args.key.display()))?,
    )
    .with_context(|| format!("{} is not a private JWK", args.key.display()))?;
    let holder = EcdsaP256Signer::from_jwk(&key)
        .with_context(|| format!("{} is not a P-256 private key", args.key.display()))?;
    let file = match &args.config {
        Some(path) => remit_server::FileConfig::load(path)?,
        None => remit_server::FileConfig::default(),
    };
    let gateway = file.gateway_config().with_context(|| match &args.config {
        Some(path) => format!("configuration file {}", path.display()),
        None => "gateway defaults".to_owned(),
    })?;
    let database = args
        .database
        .or(file.database)
        .map(|url| remit_server::Database::parse(&url))
        .transpose()?;
    let options = WrapOptions {
        gateway,
        data_dir: match args.data {
            Some(dir) => dir,
            None => super::serve::default_data_dir()?,
        },
        issuer_jwks: args.issuer_jwks,
        policy_dir: args.policy,
        log_dir: args.log,
        database,
        server: args.server,
        command: args.command,
        chain,
        holder,
        public_url: args.public_url,
        audience: args.audience,
    };
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let wrap = Wrap::open(options).await?;
        eprintln!(
            "remit wrap: forwarding to {} ; receipts in {}",
            wrap.report().upstream,
            wrap.report().receipts
        );
        wrap.run(tokio::io::stdin(), tokio::io::stdout()).await?;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}
