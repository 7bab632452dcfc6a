//! `remit protect`: put one MCP server behind Remit in one command.
//!
//! ```text
//! remit protect --allow 'read_*' --path ~/notes/public -- npx -y @modelcontextprotocol/server-filesystem ~/notes
//! remit protect --url https://mcp.example.com/mcp --name example
//! ```
//!
//! registers the server, lists its tools by starting it (the gateway's own
//! upstream code), pins them with a risk read from their MCP annotations,
//! creates a local agent key, issues that agent a remit for the tools of
//! `--allow` held to the directories of `--path`, and prints the client
//! configuration: the `mcpServers` entry desktop and IDE hosts launch
//! (`remit wrap --server <name>`) and the URL and `Authorization` header of
//! the HTTP gateway. Re-running it changes only what differs and says what
//! changed (`--json` for scripts).
//!
//! # Where it works: the data directory, in this process
//!
//! `protect` does not call a running `remit serve`. It opens the data
//! directory as `remit serve` does (creating keys, the policy folder and
//! the SQLite store when the directory is empty) and drives the very same
//! control-plane router in process, with a one-time admin token nobody
//! else ever holds. So it works from nothing, works whether a server is
//! running or not, needs no admin token (whoever can read the data
//! directory already holds the issuer key), and every registration passes
//! the same handlers, checks, policy decision and receipts as over HTTP.
//! Its receipts go to a log of its own, `<data>/protect/log` (on SQLite two
//! processes never append to one file log, and a running server holds
//! `<data>/log`); on PostgreSQL to the log the servers share. A running
//! server sees the registrations at its next policy refresh (5 s).
//!
//! # Risk from annotations
//!
//! | annotations | risk |
//! |---|---|
//! | `readOnlyHint: true` | low (medium when `openWorldHint` is true) |
//! | `readOnlyHint` false/absent, `destructiveHint: false` | medium |
//! | `readOnlyHint` false/absent, `destructiveHint` true or absent | high |
//!
//! Absent hints take the MCP defaults (not read-only, destructive, open
//! world), so an unannotated tool is high. A tool pinned before keeps the
//! risk it has (an operator may have changed it with `remit server
//! tool-set`). Annotations are the server's own claims: they choose a
//! default, and the remit's grants, not the risk, decide what is callable.
//!
//! # Scope
//!
//! Without `--allow` the remit covers the read-only tools. Each `--path`
//! (an existing directory, resolved to its real path) adds the resource
//! patterns `DIR` and `DIR/**`, matched at the gateway against each tool's
//! resource argument (`path`, `uri`, `url` or `file`, or the one set with
//! `remit server tool-set --resource-arg`). A tool without a resource
//! argument could not be held to a directory, so with `--path` it is left
//! out of the remit and listed as such.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use axum::http::{Method, Request, StatusCode};
use clap::Args;
use remit_server::gateway::pins::tool_hash;
use remit_server::gateway::Gateway;
use remit_server::setup::{DataDir, ServeRecord, ISSUER_KEY_FILE, RECEIPT_KEY_FILE};
use remit_server::start::{install_policy, receipt_origin, Database, POLICY_DIR};
use remit_server::{AppState, FileReceiptLog, PolicyFolder, ReceiptLog, Settings, StoreReceiptLog};
use remit_store::{Id, ServerId, Status, Store, StoreError};
use remit_token::{EcdsaP256Signer, Pattern, PrivateJwk, Signer as _};
use serde_json::{json, Value};

use crate::io;

/// The public URL remits name as issuer when no server ever started here.
const DEFAULT_PUBLIC_URL: &str = "http://127.0.0.1:8080";

/// Protect an MCP server: register, pin, key, remit, client configuration.
#[derive(Debug, Args)]
#[command(after_help = "Examples:\n  \
    remit protect --allow 'read_*' --path ~/notes/public -- npx -y @modelcontextprotocol/server-filesystem ~/notes\n  \
    remit protect --name example --url https://mcp.example.com/mcp")]
pub struct ProtectArgs {
    /// Policy posture written to a new data directory's policy folder:
    /// lockdown, standard or permissive (an existing folder is kept).
    #[arg(long, default_value = "standard")]
    preset: String,
    /// Tools the remit covers, by name or glob (`*` any run of
    /// characters); repeatable [default: every read-only tool].
    #[arg(long = "allow", value_name = "GLOB")]
    allow: Vec<String>,
    /// Hold every call to this directory (its real path), through each
    /// tool's resource argument; repeatable.
    #[arg(long = "path", value_name = "DIR")]
    paths: Vec<PathBuf>,
    /// The remit's lifetime: `30m`, `8h`, `1d`.
    #[arg(long, default_value = "8h")]
    ttl: String,
    /// The server's id (also names the agent `<name>-agent`) [default:
    /// derived from the command or the URL's host].
    #[arg(long)]
    name: Option<String>,
    /// An MCP server over streamable HTTP, instead of a command.
    #[arg(long, conflicts_with = "command")]
    url: Option<String>,
    /// The most sensitive data the server may receive: public, internal,
    /// confidential, restricted.
    #[arg(long, default_value = "internal")]
    clearance: String,
    #[command(flatten)]
    local: LocalArgs,
    /// Print a machine-readable summary instead of text.
    #[arg(long)]
    json: bool,
    /// The server command and its arguments (after `--`).
    #[arg(last = true)]
    command: Vec<String>,
}

/// Where the deployment is: the flags `remit protect` and `remit doctor`
/// share with `remit serve` and `remit wrap`.
#[derive(Debug, Args)]
pub struct LocalArgs {
    /// Data directory shared with `remit serve` [default:
    /// $XDG_DATA_HOME/remit or ~/.local/share/remit].
    #[arg(long, env = "REMIT_DATA")]
    pub data: Option<PathBuf>,
    /// The store: sqlite://PATH or postgres://… [default: the SQLite file in <data>].
    #[arg(long, env = "REMIT_DATABASE")]
    pub database: Option<String>,
    /// TOML configuration shared with `remit serve` (its [gateway] table:
    /// an upstream's env and credentials).
    #[arg(long, env = "REMIT_CONFIG")]
    pub config: Option<PathBuf>,
}

impl LocalArgs {
    /// The data directory, given or the default.
    pub fn data_dir(&self) -> anyhow::Result<PathBuf> {
        match &self.data {
            Some(dir) => Ok(dir.clone()),
            None => super::serve::default_data_dir(),
        }
    }

    /// The configuration file's contents (empty without `--config`).
    pub fn file_config(&self) -> anyhow::Result<remit_server::FileConfig> {
        Ok(match &self.config {
            Some(path) => remit_server::FileConfig::load(path)?,
            None => remit_server::FileConfig::default(),
        })
    }
}

/// Why `remit protect` stopped; each says what to do.
#[derive(Debug, thiserror::Error)]
pub enum ProtectError {
    /// Neither a command nor `--url`.
    #[error("name the server to protect: a command after `--` (e.g. -- npx -y @modelcontextprotocol/server-filesystem ~/notes) or --url https://…")]
    NoServer,
    /// No usable id could be derived.
    #[error("cannot derive a server id from {0:?}: pass --name (lowercase letters, digits, `_`, `.`, `-`)")]
    NoName(String),
    /// The id is registered for another server.
    #[error("server {id:?} is already registered for {registered:?}, not {wanted:?}: pass another --name, or disable it with `remit server disable {id}`")]
    ServerElsewhere {
        /// The id.
        id: String,
        /// Its registered url.
        registered: String,
        /// The url asked for now.
        wanted: String,
    },
    /// The server is disabled.
    #[error("server {0:?} is disabled: pass another --name")]
    ServerDisabled(String),
    /// The agent is registered with another key.
    #[error("agent {agent:?} is registered with another key than {key}: pass another --name, or disable it with `remit agent disable {agent}`")]
    AgentKeyMismatch {
        /// The agent id.
        agent: String,
        /// The local key file.
        key: PathBuf,
    },
    /// An `--allow` glob matches no tool.
    #[error("--allow {glob:?} matches none of the server's tools: {tools}")]
    AllowMatchesNothing {
        /// The glob.
        glob: String,
        /// What the server offers.
        tools: String,
    },
    /// Nothing would be granted.
    #[error("the remit would cover no tool ({0}); name tools with --allow")]
    NothingAllowed(String),
    /// A `--path` is not a usable directory.
    #[error("--path {path}: {detail}")]
    BadPath {
        /// The path as given.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The in-process control plane refused a step.
    #[error("{step}: {detail}")]
    Api {
        /// What was being done.
        step: &'static str,
        /// The problem's title and detail.
        detail: String,
    },
    /// Listing the server's tools failed.
    #[error("starting {url} to list its tools: {detail}")]
    Upstream {
        /// The server's url.
        url: String,
        /// What failed.
        detail: String,
    },
}

/// What was asked, checked before anything is opened.
#[derive(Debug)]
struct Plan {
    name: String,
    url: String,
    clearance: String,
    allow: Vec<Pattern>,
    resources: Vec<String>,
    ttl_secs: u64,
    preset: remit_policy::Preset,
    data_dir: PathBuf,
    database: Option<Database>,
    config: Option<PathBuf>,
    public_url: String,
    audience: String,
}

impl Plan {
    fn new(args: &ProtectArgs) -> anyhow::Result<Self> {
        let url = match (&args.url, args.command.is_empty()) {
            (Some(url), _) => url.clone(),
            (None, false) => {
                let line = shlex::try_join(args.command.iter().map(String::as_str))
                    .context("the command cannot be quoted")?;
                format!("stdio:{line}")
            }
            (None, true) => return Err(ProtectError::NoServer.into()),
        };
        let name = match &args.name {
            Some(name) => name.clone(),
            None => derive_name(&args.command, args.url.as_deref())
                .ok_or_else(|| ProtectError::NoName(url.clone()))?,
        };
        ServerId::parse(name.as_str()).map_err(|e| anyhow::anyhow!("--name: {e}"))?;
        let allow = args
            .allow
            .iter()
            .map(|g| {
                Pattern::try_from(g.as_str()).map_err(|e| anyhow::anyhow!("--allow {g:?}: {e}"))
            })
            .collect::<anyhow::Result<_>>()?;
        let mut resources = Vec::new();
        for path in &args.paths {
            let dir = directory(path)?;
            resources.push(dir.clone());
            resources.push(format!("{}/**", dir.trim_end_matches('/')));
        }
        let data_dir = args.local.data_dir()?;
        let record = ServeRecord::read(&data_dir);
        Ok(Self {
            name,
            url,
            clearance: args.clearance.clone(),
            allow,
            resources,
            ttl_secs: super::token::parse_duration(&args.ttl)?,
            preset: args.preset.parse()?,
            database: args
                .local
                .database
                .as_deref()
                .map(Database::parse)
                .transpose()?,
            config: args.local.config.clone(),
            public_url: public_url(record.as_ref()),
            audience: record.map_or_else(|| "remit".to_owned(), |r| r.audience),
            data_dir,
        })
    }

    fn agent(&self) -> String {
        format!("{}-agent", self.name)
    }

    /// `<data>/protect/<name>`: the agent key and the remit.
    fn own_dir(&self) -> PathBuf {
        self.data_dir.join("protect").join(&self.name)
    }
}

/// The public URL every command on this data directory agrees on:
/// `REMIT_PUBLIC_URL`, else the last `remit serve`'s, else the default.
pub(crate) fn public_url(record: Option<&ServeRecord>) -> String {
    std::env::var("REMIT_PUBLIC_URL")
        .ok()
        .filter(|v| !v.is_empty())
        .or_else(|| record.map(|r| r.public_url.clone()))
        .unwrap_or_else(|| DEFAULT_PUBLIC_URL.to_owned())
        .trim_end_matches('/')
        .to_owned()
}

/// Where `remit wrap --server <name>` finds what protect made for it.
pub(crate) fn remit_file(data_dir: &Path, server: &str) -> PathBuf {
    data_dir.join("protect").join(server).join("remit")
}

/// The agent key `remit protect` keeps for `server`.
pub(crate) fn key_file(data_dir: &Path, server: &str) -> PathBuf {
    data_dir.join("protect").join(server).join("agent.jwk")
}

/// A `--path` as a canonical absolute directory (symlinks resolved: the
/// server resolves them too), refused when it is not one.
fn directory(path: &Path) -> anyhow::Result<String> {
    let bad = |detail: String| ProtectError::BadPath {
        path: path.to_owned(),
        detail,
    };
    let real = std::fs::canonicalize(path)
        .map_err(|e| bad(format!("{e} (it must be an existing directory)")))?;
    if !real.is_dir() {
        return Err(bad("not a directory".into()).into());
    }
    let text = real
        .to_str()
        .ok_or_else(|| bad("not valid UTF-8".into()))?
        .to_owned();
    let canon = remit_token::canonicalize(&text).map_err(|e| bad(e.to_string()))?;
    if canon.as_str() != text || text.contains(['*', '?', '[', ']', '{', '}']) {
        return Err(bad(format!("{text:?} has no plain canonical form to grant")).into());
    }
    Ok(text)
}

/// A server id from the command (`@scope/server-filesystem` →
/// `filesystem`) or the URL's host (`mcp.example.com` → `mcp`).
fn derive_name(command: &[String], url: Option<&str>) -> Option<String> {
    const LAUNCHERS: [&str; 14] = [
        "npx", "npm", "pnpm", "bunx", "bun", "uvx", "uv", "pipx", "node", "python", "python3",
        "deno", "exec", "run",
    ];
    let raw = match url {
        Some(url) => url
            .split("://")
            .nth(1)?
            .split(['/', ':', '.'])
            .next()?
            .to_owned(),
        None => {
            let word = command.iter().find(|w| {
                let base = w.rsplit('/').next().unwrap_or(w);
                !w.starts_with('-') && !LAUNCHERS.contains(&base)
            })?;
            let base = word.rsplit('/').next()?;
            let base = base.split('@').next().unwrap_or(base);
            ["mcp-server-", "server-", "mcp-"]
                .iter()
                .find_map(|p| base.strip_prefix(p))
                .unwrap_or(base)
                .trim_end_matches("-mcp")
                .trim_end_matches(".py")
                .trim_end_matches(".js")
                .to_owned()
        }
    };
    let name: String = raw
        .to_ascii_lowercase()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect();
    let name = name.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    ServerId::parse(name).ok().map(|_| name.to_owned())
}

/// The risk a tool's MCP annotations suggest (see the module docs).
fn risk_of(tool: &Value) -> &'static str {
    let hint = |name: &str, default: bool| {
        tool.get("annotations")
            .and_then(|a| a.get(name))
            .and_then(Value::as_bool)
            .unwrap_or(default)
    };
    match (hint("readOnlyHint", false), hint("destructiveHint", true)) {
        (true, _) if hint("openWorldHint", true) => "medium",
        (true, _) => "low",
        (false, false) => "medium",
        (false, true) => "high",
    }
}

/// The control-plane API served in this process: the router `remit
/// serve` runs, called without a socket, with an admin token made for
/// this run only.
struct LocalApi {
    router: axum::Router,
    token: String,
}

impl LocalApi {
    async fn post(
        &self,
        step: &'static str,
        path: &str,
        body: &Value,
    ) -> Result<Value, ProtectError> {
        let api = |detail: String| ProtectError::Api { step, detail };
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(path)
            .header("host", "127.0.0.1")
            .header("authorization", format!("Bearer {}", self.token))
            .header("content-type", "application/json")
            .body(axum::body::Body::from(body.to_string()))
            .map_err(|e| api(e.to_string()))?;
        // The per-peer limits of unauthenticated traffic key on the peer.
        request
            .extensions_mut()
            .insert(axum::extract::ConnectInfo(std::net::SocketAddr::from((
                [127, 0, 0, 1],
                0,
            ))));
        let response = tower::ServiceExt::oneshot(self.router.clone(), request)
            .await
            .map_err(|e| api(e.to_string()))?;
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 16 << 20)
            .await
            .map_err(|e| api(e.to_string()))?;
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(value);
        }
        Err(api(problem_text(status, &value)))
    }
}

fn problem_text(status: StatusCode, value: &Value) -> String {
    let field = |k: &str| value.get(k).and_then(Value::as_str).unwrap_or_default();
    match (field("title"), field("detail")) {
        ("", "") => format!("HTTP {status}"),
        (title, detail) => format!("{title}: {detail}"),
    }
}

/// What changed and what is in place, for the summary.
#[derive(Debug, Default, serde::Serialize)]
struct Outcome {
    server: String,
    url: String,
    changed: Vec<String>,
    pinned: BTreeMap<String, String>,
    allowed: Vec<String>,
    left_out: Vec<String>,
    resources: Vec<String>,
    agent: String,
    agent_key: PathBuf,
    remit_file: PathBuf,
    remit_expires_at: u64,
    #[serde(skip)]
    remit: String,
}

/// Runs `remit protect`.
pub fn run(args: ProtectArgs) -> anyhow::Result<ExitCode> {
    let plan = Plan::new(&args)?;
    let file = args.local.file_config()?;
    let gateway = file
        .gateway_config()
        .context("the [gateway] configuration")?;
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let outcome = runtime.block_on(open_and_protect(&plan, gateway))?;
    print_outcome(&plan, &outcome, args.json)?;
    Ok(ExitCode::SUCCESS)
}

async fn open_and_protect(
    plan: &Plan,
    gateway: remit_server::GatewayConfig,
) -> anyhow::Result<Outcome> {
    let data = DataDir::prepare(&plan.data_dir)?;
    let issuer = data.key(ISSUER_KEY_FILE)?;
    data.publish_issuer_jwks(&issuer.signer)?;
    let receipt = data.key(RECEIPT_KEY_FILE)?;
    publish_receipt_jwks(&data, &receipt.signer)?;
    let policy_dir = data.path().join(POLICY_DIR);
    let folder = if policy_dir.join("manifest.json").exists() {
        PolicyFolder::read(&policy_dir)?
    } else {
        PolicyFolder::create(&policy_dir, plan.preset, remit_policy::EngineKind::Cedar)?
    };
    let mut settings = Settings::new(plan.public_url.clone());
    settings.audience.clone_from(&plan.audience);
    let token = remit_server::setup::new_admin_token()?;
    let admin_hash = remit_server::setup::sha256(token.as_bytes());
    let kid = receipt.signer.key_id().to_owned();
    let database = plan
        .database
        .clone()
        .unwrap_or_else(|| Database::Sqlite(data.sqlite_path()));
    match database {
        Database::Sqlite(path) => {
            let dir = data.path().join("protect");
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let log = FileReceiptLog::open(&dir, receipt.signer, &format!("remit/protect/{kid}"))?;
            let store = remit_store::SqliteStore::open(&path).await?;
            let receipts: Arc<dyn ReceiptLog> = Arc::new(log);
            let state =
                AppState::new(store.clone(), issuer.signer, admin_hash, settings, receipts).await?;
            let state = Gateway::new(state, gateway)?;
            install_policy(&state, &folder).await?;
            let outcome = protect(&state, plan, token).await;
            store.close().await;
            outcome
        }
        Database::Postgres(url) => {
            let store = remit_store::PgStore::connect(&url).await?;
            let log = StoreReceiptLog::open(
                store.clone(),
                data.path(),
                receipt.signer,
                &receipt_origin(&kid),
            )
            .await?;
            let receipts: Arc<dyn ReceiptLog> = Arc::new(log);
            let state = AppState::new(store, issuer.signer, admin_hash, settings, receipts).await?;
            let state = Gateway::new(state, gateway)?;
            install_policy(&state, &folder).await?;
            protect(&state, plan, token).await
        }
    }
}

/// `<data>/receipt.jwks.json`: the receipt key's public half, what
/// `remit audit verify --jwks` checks the logs in this directory with.
fn publish_receipt_jwks(data: &DataDir, signer: &EcdsaP256Signer) -> anyhow::Result<PathBuf> {
    let path = data.path().join(RECEIPT_JWKS_FILE);
    let text = serde_json::to_string_pretty(&remit_server::setup::published_jwks(signer))? + "\n";
    if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(path)
}

/// The receipt key's public JWKS in the data directory.
pub(crate) const RECEIPT_JWKS_FILE: &str = "receipt.jwks.json";

/// The steps, in order, over an opened state.
async fn protect<S: Store>(
    state: &Gateway<S>,
    plan: &Plan,
    token: String,
) -> anyhow::Result<Outcome> {
    let api = LocalApi {
        router: remit_server::router(state.clone()),
        token,
    };
    let mut out = Outcome {
        server: plan.name.clone(),
        url: plan.url.clone(),
        agent: plan.agent(),
        ..Outcome::default()
    };
    ensure_server(state, &api, plan, &mut out).await?;
    let listed = pin_tools(state, &api, plan, &mut out).await?;
    choose_tools(state, plan, &listed, &mut out).await?;
    ensure_agent(state, &api, plan, &mut out).await?;
    ensure_remit(&api, plan, &mut out).await?;
    Ok(out)
}

async fn ensure_server<S: Store>(
    state: &Gateway<S>,
    api: &LocalApi,
    plan: &Plan,
    out: &mut Outcome,
) -> anyhow::Result<()> {
    let id = Id::parse("server id", plan.name.as_str())?;
    match state.store().server(&id).await {
        Ok(server) if server.url != plan.url => Err(ProtectError::ServerElsewhere {
            id: plan.name.clone(),
            registered: server.url,
            wanted: plan.url.clone(),
        }
        .into()),
        Ok(server) if server.status != Status::Active => {
            Err(ProtectError::ServerDisabled(plan.name.clone()).into())
        }
        Ok(_) => Ok(()),
        Err(StoreError::NotFound { .. }) => {
            let body = json!({ "id": plan.name, "url": plan.url, "clearance": plan.clearance });
            api.post("registering the server", "/v1/servers", &body)
                .await?;
            out.changed
                .push(format!("registered server {} ({})", plan.name, plan.url));
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// Lists the upstream's tools now and pins the new and changed ones, new
/// ones with the risk of their annotations. Returns the listed tools.
async fn pin_tools<S: Store>(
    state: &Gateway<S>,
    api: &LocalApi,
    plan: &Plan,
    out: &mut Outcome,
) -> anyhow::Result<Vec<Value>> {
    let upstream_error = |detail: String| ProtectError::Upstream {
        url: plan.url.clone(),
        detail,
    };
    let upstream = state
        .gateway()
        .upstreams()
        .get(&plan.name, &plan.url)
        .map_err(|e| upstream_error(e.to_string()))?;
    let timeout = state.gateway().config().upstream_timeout;
    let listed = upstream
        .tools(std::time::Duration::ZERO, timeout)
        .await
        .map_err(|e| upstream_error(e.to_string()))?;
    let id = Id::parse("server id", plan.name.as_str())?;
    let pins: BTreeMap<String, String> = state
        .store()
        .tools(&id)
        .await?
        .into_iter()
        .map(|t| (t.name.as_str().to_owned(), t.description_sha256))
        .collect();
    let mut fresh: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    let mut changed = Vec::new();
    let mut tools = Vec::new();
    for tool in listed.iter() {
        let Some(name) = tool.get("name").and_then(Value::as_str) else {
            continue;
        };
        match pins.get(name) {
            Some(hash) if *hash == tool_hash(tool) => {}
            Some(_) => changed.push(name.to_owned()),
            None => fresh
                .entry(risk_of(tool))
                .or_default()
                .push(name.to_owned()),
        }
        tools.push(tool.clone());
    }
    for (risk, names) in &fresh {
        let body = json!({ "risk": risk, "tools": names });
        let path = format!("/v1/servers/{}/bless", plan.name);
        api.post("pinning the tools", &path, &body).await?;
        out.changed
            .push(format!("pinned {} ({risk} risk)", names.join(", ")));
    }
    if !changed.is_empty() {
        let path = format!("/v1/servers/{}/bless", plan.name);
        api.post(
            "re-pinning changed tools",
            &path,
            &json!({ "tools": changed }),
        )
        .await?;
        out.changed.push(format!(
            "re-pinned {}: their description or schema changed since they were pinned",
            changed.join(", ")
        ));
    }
    for t in state.store().tools(&id).await? {
        out.pinned.insert(
            t.name.as_str().to_owned(),
            format!("{:?}", t.risk).to_lowercase(),
        );
    }
    Ok(tools)
}

/// The tools the remit covers: `--allow` (or the read-only ones), less
/// those `--path` cannot hold.
async fn choose_tools<S: Store>(
    state: &Gateway<S>,
    plan: &Plan,
    listed: &[Value],
    out: &mut Outcome,
) -> anyhow::Result<()> {
    let names: Vec<&str> = listed
        .iter()
        .filter_map(|t| t.get("name").and_then(Value::as_str))
        .filter(|n| out.pinned.contains_key(*n))
        .collect();
    for glob in &plan.allow {
        if !names.iter().any(|n| glob.matches(n)) {
            return Err(ProtectError::AllowMatchesNothing {
                glob: glob.as_str().to_owned(),
                tools: names.join(", "),
            }
            .into());
        }
    }
    let id = Id::parse("server id", plan.name.as_str())?;
    let resource_args: BTreeMap<String, Option<String>> = state
        .store()
        .tools(&id)
        .await?
        .into_iter()
        .map(|t| (t.name.as_str().to_owned(), t.resource_arg))
        .collect();
    for tool in listed {
        let Some(name) = tool.get("name").and_then(Value::as_str) else {
            continue;
        };
        let wanted = if plan.allow.is_empty() {
            tool_read_only(tool)
        } else {
            plan.allow.iter().any(|g| g.matches(name))
        };
        if !wanted || !out.pinned.contains_key(name) {
            continue;
        }
        if !plan.resources.is_empty() && resource_args.get(name).is_none_or(Option::is_none) {
            out.left_out.push(name.to_owned());
            continue;
        }
        out.allowed.push(format!("{}/{name}", plan.name));
    }
    out.resources.clone_from(&plan.resources);
    if out.allowed.is_empty() {
        let why = if out.left_out.is_empty() {
            "no tool matched".to_owned()
        } else {
            format!(
                "{} have no resource argument to hold to --path",
                out.left_out.join(", ")
            )
        };
        return Err(ProtectError::NothingAllowed(why).into());
    }
    Ok(())
}

fn tool_read_only(tool: &Value) -> bool {
    tool.get("annotations")
        .and_then(|a| a.get("readOnlyHint"))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

async fn ensure_agent<S: Store>(
    state: &Gateway<S>,
    api: &LocalApi,
    plan: &Plan,
    out: &mut Outcome,
) -> anyhow::Result<()> {
    let path = key_file(&plan.data_dir, &plan.name);
    let signer = match std::fs::read_to_string(&path) {
        Ok(text) => {
            let jwk = PrivateJwk::from_json(&text)
                .with_context(|| format!("{} is not a private JWK", path.display()))?;
            EcdsaP256Signer::from_jwk(&jwk)
                .with_context(|| format!("{} is not a P-256 key", path.display()))?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let signer = EcdsaP256Signer::generate()?;
            std::fs::create_dir_all(plan.own_dir())?;
            io::write_secret_file(
                &path,
                &serde_json::to_vec_pretty(&signer.to_private_jwk()?)?,
            )?;
            out.changed
                .push(format!("created the agent key {}", path.display()));
            signer
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    out.agent_key = path.clone();
    let agent = plan.agent();
    match state
        .store()
        .agent(&Id::parse("agent id", agent.as_str())?)
        .await
    {
        Ok(found)
            if found.key_thumbprint == signer.thumbprint().as_str()
                && found.status == Status::Active =>
        {
            Ok(())
        }
        Ok(_) => Err(ProtectError::AgentKeyMismatch { agent, key: path }.into()),
        Err(StoreError::NotFound { .. }) => {
            let body = json!({
                "id": agent,
                "public_jwk": signer.public_jwk().clone().bare(),
                "owner": owner(),
                "risk_tier": "medium",
            });
            api.post("registering the agent", "/v1/agents", &body)
                .await?;
            out.changed
                .push(format!("registered agent {agent} (owner {})", owner()));
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// The user remits are issued for: `$USER`, else `local`.
fn owner() -> String {
    std::env::var("USER")
        .ok()
        .filter(|u| Id::parse("user (sub)", u.as_str()).is_ok())
        .unwrap_or_else(|| "local".to_owned())
}

/// What a remit was issued for, kept beside it to tell whether a re-run
/// asks for the same one.
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Issued {
    jti: String,
    grants: Value,
    ttl_secs: u64,
    public_url: String,
    expires_at: u64,
}

async fn ensure_remit(api: &LocalApi, plan: &Plan, out: &mut Outcome) -> anyhow::Result<()> {
    let mut grant = json!({ "type": "remit_tool", "tools": out.allowed });
    if !plan.resources.is_empty() {
        grant["resources"] = json!(plan.resources);
    }
    let grants = json!([grant]);
    let remit_path = remit_file(&plan.data_dir, &plan.name);
    let facts_path = remit_path.with_extension("json");
    out.remit_file.clone_from(&remit_path);
    let now = remit_server::state::now();
    let previous: Option<Issued> = std::fs::read_to_string(&facts_path)
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok());
    let current = std::fs::read_to_string(&remit_path).ok();
    if let (Some(p), Some(remit)) = (&previous, current) {
        let fresh = p.expires_at > now + plan.ttl_secs / 2;
        if p.grants == grants
            && p.ttl_secs == plan.ttl_secs
            && p.public_url == plan.public_url
            && fresh
        {
            out.remit = remit.trim().to_owned();
            out.remit_expires_at = p.expires_at;
            return Ok(());
        }
    }
    let body = json!({
        "agent": plan.agent(),
        "sub": owner(),
        "grants": grants,
        "ttl_secs": plan.ttl_secs,
    });
    let answer = api.post("issuing the remit", "/v1/remits", &body).await?;
    let remit = answer["remit"]
        .as_str()
        .context("the control plane's answer holds no remit")?;
    let expires_at = answer["exp"].as_u64().unwrap_or(now + plan.ttl_secs);
    replace_secret(&remit_path, remit.as_bytes())?;
    let jti = answer["jti"].as_str().unwrap_or_default().to_owned();
    let facts = Issued {
        jti,
        grants,
        ttl_secs: plan.ttl_secs,
        public_url: plan.public_url.clone(),
        expires_at,
    };
    replace_secret(&facts_path, &serde_json::to_vec_pretty(&facts)?)?;
    match previous {
        Some(old) => {
            out.changed.push("issued a new remit (the scope, lifetime or issuer changed, or it was past half its life)".to_owned());
            // The remit it replaces stops working now, not at its expiry:
            // a narrower scope must not leave the wider one usable.
            if !old.jti.is_empty() && old.expires_at > now {
                let body = json!({ "kind": "jti", "value": old.jti, "reason": "replaced by remit protect" });
                api.post("revoking the replaced remit", "/v1/revocations", &body)
                    .await?;
                out.changed
                    .push(format!("revoked the remit it replaces ({})", old.jti));
            }
        }
        None => out.changed.push("issued a remit".to_owned()),
    }
    out.remit = remit.to_owned();
    out.remit_expires_at = expires_at;
    Ok(())
}

/// Writes a 0600 file in place of `path` in one rename.
fn replace_secret(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    let temporary = path.with_extension("new");
    let _ = std::fs::remove_file(&temporary);
    io::write_secret_file(&temporary, contents)?;
    std::fs::rename(&temporary, path).with_context(|| format!("replacing {}", path.display()))
}

/// The `mcpServers` entry a desktop or IDE host launches.
fn mcp_servers(plan: &Plan) -> anyhow::Result<Value> {
    let exe = std::env::current_exe().context("locating the remit binary")?;
    let mut args = vec!["wrap".to_owned(), "--server".to_owned(), plan.name.clone()];
    if super::serve::default_data_dir().ok().as_deref() != Some(plan.data_dir.as_path()) {
        args.extend([
            "--data".to_owned(),
            absolute(&plan.data_dir).display().to_string(),
        ]);
    }
    if let Some(config) = &plan.config {
        args.extend([
            "--config".to_owned(),
            absolute(config).display().to_string(),
        ]);
    }
    Ok(json!({ "mcpServers": { plan.name.clone(): { "command": exe, "args": args } } }))
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_owned())
}

/// The commands printed after the summary, each working as printed.
fn next_steps(plan: &Plan) -> Vec<String> {
    let data = absolute(&plan.data_dir);
    let data_flag =
        if super::serve::default_data_dir().ok().as_deref() == Some(plan.data_dir.as_path()) {
            String::new()
        } else {
            format!(" --data {}", quote(&data))
        };
    let jwks = quote(&data.join(RECEIPT_JWKS_FILE));
    vec![
        format!("remit doctor{data_flag}"),
        format!(
            "remit audit verify --log {} --jwks {jwks}",
            quote(&data.join("protect").join("log"))
        ),
    ]
}

fn quote(path: &Path) -> String {
    let text = path.display().to_string();
    shlex::try_quote(&text).map_or(text.clone(), |q| q.into_owned())
}

fn print_outcome(plan: &Plan, out: &Outcome, as_json: bool) -> anyhow::Result<()> {
    let config = if plan.url.starts_with("stdio:") {
        Some(mcp_servers(plan)?)
    } else {
        None
    };
    let http_url = format!("{}/mcp/{}", plan.public_url, plan.name);
    let wrap_log = absolute(&plan.data_dir)
        .join("wrap")
        .join(&plan.name)
        .join("log");
    if as_json {
        let mut summary = serde_json::to_value(out)?;
        summary["client"] = json!({
            "stdio": config,
            "http": { "url": http_url, "headers": { "Authorization": format!("Bearer {}", out.remit) } },
        });
        summary["receipts"] = json!({
            "protect": absolute(&plan.data_dir).join("protect").join("log"),
            "wrap": wrap_log,
            "jwks": absolute(&plan.data_dir).join(RECEIPT_JWKS_FILE),
        });
        summary["next"] = json!(next_steps(plan));
        return io::print_json(&summary);
    }
    say!(
        "remit protect: {} ({})",
        io::printable(&plan.name),
        io::printable(&plan.url)
    );
    if out.changed.is_empty() {
        say!("  nothing changed: the server, its pins, the agent and the remit are as asked");
    }
    for change in &out.changed {
        say!("  changed: {}", io::printable(change));
    }
    let pins: Vec<String> = out
        .pinned
        .iter()
        .map(|(n, r)| format!("{n} ({r})"))
        .collect();
    say!("  pinned:  {}", pins.join(", "));
    say!("  allowed: {}", out.allowed.join(", "));
    if !out.resources.is_empty() {
        say!("  within:  {}", out.resources.join(", "));
    }
    if !out.left_out.is_empty() {
        say!(
            "  left out (no resource argument to hold to --path): {}",
            out.left_out.join(", ")
        );
    }
    say!("  agent:   {} (key {})", out.agent, out.agent_key.display());
    say!(
        "  remit:   {} (expires at {} Unix time)",
        out.remit_file.display(),
        out.remit_expires_at
    );
    if let Some(config) = config {
        say!();
        say!("Desktop and IDE hosts (the \"mcpServers\" of their MCP configuration):");
        say!("{}", serde_json::to_string_pretty(&config)?);
        say!("Receipts of the calls: {}", wrap_log.display());
    }
    say!();
    say!("HTTP clients, while `remit serve` runs on this data directory:");
    say!("  URL:           {http_url}");
    say!("  Authorization: Bearer {}", out.remit);
    say!();
    say!("Next:");
    for line in next_steps(plan) {
        say!("  {line}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    #[test]
    fn names_come_from_the_package_or_the_host() {
        let derive = |line: &str| derive_name(&words(line), None);
        assert_eq!(
            derive("npx -y @modelcontextprotocol/server-filesystem /data").as_deref(),
            Some("filesystem")
        );
        assert_eq!(
            derive("uvx mcp-server-git --repo .").as_deref(),
            Some("git")
        );
        assert_eq!(
            derive("python3 tools/my_server.py").as_deref(),
            Some("my_server")
        );
        assert_eq!(
            derive_name(&[], Some("https://mcp.example.com/mcp")).as_deref(),
            Some("mcp")
        );
        assert_eq!(derive("npx -y"), None);
    }

    #[test]
    fn risk_follows_the_annotations_and_the_spec_defaults() {
        let tool = |a: Value| json!({ "name": "t", "annotations": a });
        assert_eq!(
            risk_of(&tool(json!({"readOnlyHint": true, "openWorldHint": false}))),
            "low"
        );
        assert_eq!(risk_of(&tool(json!({"readOnlyHint": true}))), "medium");
        assert_eq!(risk_of(&tool(json!({"destructiveHint": false}))), "medium");
        assert_eq!(risk_of(&tool(json!({"readOnlyHint": false}))), "high");
        assert_eq!(
            risk_of(&json!({ "name": "t" })),
            "high",
            "unannotated is high"
        );
    }

    #[test]
    fn a_path_must_be_an_existing_directory_and_is_granted_by_its_real_path() {
        let dir = tempfile::tempdir().unwrap();
        let real = std::fs::canonicalize(dir.path()).unwrap();
        std::fs::create_dir(real.join("public")).unwrap();
        std::fs::write(real.join("file"), "x").unwrap();
        let dotted = real.join("public").join("..").join("public");
        assert_eq!(
            directory(&dotted).unwrap(),
            real.join("public").display().to_string()
        );
        assert!(directory(&real.join("missing")).is_err());
        assert!(directory(&real.join("file")).is_err());
        std::fs::create_dir(real.join("a*b")).unwrap();
        assert!(
            directory(&real.join("a*b")).is_err(),
            "a glob character would widen the grant"
        );
    }
}
