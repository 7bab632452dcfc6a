//! `remit wrap`: a local stdio proxy an agent host launches in place of an
//! MCP server. Every message passes the gateway pipeline; receipts go to a
//! local signed log. Standard output carries only MCP messages; what the
//! wrap has to say goes to standard error.
//!
//! Its defaults agree with the rest of the data directory: the remit and
//! the agent key are the ones `remit protect` keeps for `--server`
//! (`<data>/protect/<server>/remit` and `agent.jwk`), and the public URL
//! and audience are the last `remit serve`'s (`<data>/serve.json`), so
//! `remit wrap --server notes` is the whole command an agent host runs.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use remit_server::gateway::wrap::{Wrap, WrapOptions};
use remit_token::{EcdsaP256Signer, PrivateJwk};

/// Run an MCP server over stdio behind the gateway pipeline.
#[derive(Debug, Args)]
#[command(
    after_help = "Examples (in an agent host's MCP configuration):\n  remit wrap --server notes    (after `remit protect --name notes …`)\n  remit wrap --remit agent.remit --key agent.jwk --server fs -- npx -y @modelcontextprotocol/server-filesystem /data"
)]
pub struct WrapArgs {
    /// The remit chain the agent holds (a file) [default: the one `remit
    /// protect` keeps for --server, <data>/protect/<server>/remit].
    #[arg(long = "remit")]
    remit: Option<PathBuf>,
    /// The agent's private JWK file (the leaf remit's holder key)
    /// [default: <data>/protect/<server>/agent.jwk].
    #[arg(long)]
    key: Option<PathBuf>,
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
    /// The control plane's public URL, the `iss` remits must carry
    /// (server-scoped remits name `<url>/mcp/<server>` as audience)
    /// [default: the last `remit serve`'s, from <data>/serve.json, else
    /// http://127.0.0.1:8080].
    #[arg(long, env = "REMIT_PUBLIC_URL")]
    public_url: Option<String>,
    /// The deployment-wide audience [default: the last `remit serve`'s, else remit].
    #[arg(long, env = "REMIT_AUDIENCE")]
    audience: Option<String>,
    /// The server command and its arguments (after `--`); empty means the
    /// server's registered `stdio:` command.
    #[arg(last = true)]
    command: Vec<String>,
}

/// Runs `remit wrap` until the agent host closes standard input.
pub fn run(args: WrapArgs) -> anyhow::Result<ExitCode> {
    let data_dir = match args.data {
        Some(dir) => dir,
        None => super::serve::default_data_dir()?,
    };
    let protected = |file: &str| {
        format!(
            "{file} (none given, and `remit protect` made none for server {:?} in {}: run it, or pass --remit and --key)",
            args.server,
            data_dir.display()
        )
    };
    let remit = args
        .remit
        .unwrap_or_else(|| super::protect::remit_file(&data_dir, &args.server));
    let key_path = args
        .key
        .unwrap_or_else(|| super::protect::key_file(&data_dir, &args.server));
    let chain = std::fs::read_to_string(&remit)
        .with_context(|| format!("reading the remit {}", remit.display()))
        .with_context(|| protected("no remit"))?;
    let key: PrivateJwk = serde_json::from_slice(
        &std::fs::read(&key_path)
            .with_context(|| format!("reading {}", key_path.display()))
            .with_context(|| protected("no agent key"))?,
    )
    .with_context(|| format!("{} is not a private JWK", key_path.display()))?;
    let holder = EcdsaP256Signer::from_jwk(&key)
        .with_context(|| format!("{} is not a P-256 private key", key_path.display()))?;
    let record = remit_server::setup::ServeRecord::read(&data_dir);
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
        data_dir,
        issuer_jwks: args.issuer_jwks,
        policy_dir: args.policy,
        log_dir: args.log,
        database,
        server: args.server,
        command: args.command,
        chain,
        holder,
        public_url: match args.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => super::protect::public_url(record.as_ref()),
        },
        audience: args
            .audience
            .or_else(|| record.map(|r| r.audience))
            .unwrap_or_else(|| "remit".to_owned()),
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
