//! The stdio transport behind `remit wrap`: a local proxy an agent host
//! launches in place of an MCP server. It reads newline-delimited JSON-RPC
//! from its standard input, runs every message through the same
//! [`pipeline`](super::pipeline) as `POST /mcp/{server}`, forwards what is
//! allowed to the wrapped command (spawned as a `stdio:` upstream) and
//! writes the answers to its standard output.
//!
//! # What it shares with `remit serve`
//!
//! The data directory: the issuer's public JWKS (to verify remits; the
//! wrap never reads the issuer's private key, so a host running it cannot
//! mint), the receipt key (to sign receipts), the store (registry, pins,
//! revocations, step and risk budgets; SQLite by default, so a revocation
//! made on the control plane reaches the wrap within the follower's poll)
//! and the policy folder. On SQLite, receipts go to a log of the wrap's own
//! (`<data>/wrap/<server>/log` by default), because two processes must not
//! append to one file log. On PostgreSQL (`--database postgres://…`) the
//! wrap is one more writer of the store and of the receipt log the
//! `remit serve` replicas share: its calls are in the log an auditor
//! verifies with `remit audit verify --server`, and revocations reach it by
//! notification.
//!
//! # Authentication
//!
//! There is no HTTP request to carry a DPoP proof: the wrap is given the
//! holder's private key, and refuses to start unless it is the key the
//! leaf remit is bound to (`cnf.jkt`). Every message then re-checks the
//! chain (expiry, revocation) before the pipeline runs; a chain that stops
//! verifying turns every later message into a refusal with a receipt.

use std::path::PathBuf;
use std::sync::Arc;

use remit_store::{Id, McpServer, PgStore, SqliteStore, Status, Store};
use remit_token::{EcdsaP256Signer, Signer as _};
use serde_json::Value;
use tokio::io::{
    AsyncBufReadExt as _, AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, BufReader,
};
use tokio::sync::mpsc;

use super::auth::{resource_url, Caller, Scheme};
use super::jsonrpc;
use super::pipeline::{self, Answer, Facts, Refusal};
use crate::{Gateway, RuntimeError};
use remit_runtime::policy::PolicyFolder;
use remit_runtime::policy::PolicyFolderError;
use remit_runtime::receipts::ReceiptLogError;
use remit_runtime::receipts::{FileReceiptLog, StoreReceiptLog, NOTE_KEY_FILE};
use remit_runtime::setup::SetupError;
use remit_runtime::setup::{DataDir, ISSUER_JWKS_FILE, RECEIPT_KEY_FILE};
use remit_runtime::start::{install_policy, receipt_origin, Database, POLICY_DIR};
use remit_runtime::state::PolicyRebuildError;
use remit_runtime::state::{now, AppState, IssuerJwks, IssuerKey, Settings};

/// Longest line read from the agent host.
pub const MAX_LINE: usize = 8 * 1024 * 1024;

/// What `remit wrap` was told.
#[derive(Debug)]
pub struct WrapOptions {
    /// The data directory shared with `remit serve`.
    pub data_dir: PathBuf,
    /// The issuer's public JWKS remits are verified with (default
    /// `<data>/issuer.jwks.json`, which `remit serve` writes at every
    /// start). The wrap never reads the issuer's private key.
    pub issuer_jwks: Option<PathBuf>,
    /// The policy folder (default `<data>/policy`).
    pub policy_dir: Option<PathBuf>,
    /// Where the wrap's receipt log lives on SQLite (default
    /// `<data>/wrap/<server>`); refused on PostgreSQL, whose log is shared.
    pub log_dir: Option<PathBuf>,
    /// The store: the data directory's SQLite file when `None`. On
    /// PostgreSQL the wrap shares the store and the receipt log of the
    /// `remit serve` replicas (revocations reach it by notification).
    pub database: Option<Database>,
    /// The registered server this command is (its pins, clearance, risk).
    pub server: String,
    /// The command to spawn; empty means the server's registered `stdio:` url.
    pub command: Vec<String>,
    /// The remit chain the agent holds.
    pub chain: String,
    /// The leaf holder's private key.
    pub holder: EcdsaP256Signer,
    /// The control plane's public URL: remits scoped to one server name
    /// `<public_url>/mcp/<server>` as their audience.
    pub public_url: String,
    /// The deployment-wide audience remits are minted for.
    pub audience: String,
    /// The gateway's limits, shadow mode, budgets and upstream settings.
    pub gateway: super::GatewayConfig,
}

/// Why the wrap could not start.
#[derive(Debug, thiserror::Error)]
pub enum WrapError {
    /// The data directory did not open or a key in it is unusable.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// The store did not open.
    #[error(transparent)]
    Store(#[from] remit_store::StoreError),
    /// The policy folder does not load.
    #[error(transparent)]
    Policy(#[from] PolicyFolderError),
    /// The policy could not be installed over the registry.
    #[error(transparent)]
    PolicyInstall(#[from] PolicyRebuildError),
    /// The receipt log did not open.
    #[error(transparent)]
    Receipts(#[from] ReceiptLogError),
    /// The gateway's runtime could not be built.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The issuer's public JWKS is missing or unusable.
    #[error("issuer JWKS {}: {detail} (remit serve writes it at every start; on another host pass --issuer-jwks with a copy of the server's /.well-known/jwks.json)", .path.display())]
    IssuerJwks {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The server is not registered, or disabled.
    #[error("MCP server {server:?}: {detail} (register and bless it with `remit server add` / `remit server bless` first)")]
    Server {
        /// The server id.
        server: String,
        /// What is wrong.
        detail: String,
    },
    /// The key is not the one the leaf remit is bound to.
    #[error("the key given with --key is not the holder key of the leaf remit (cnf.jkt {expected}, key {found})")]
    NotHolder {
        /// The leaf's `cnf.jkt`.
        expected: String,
        /// The key's thumbprint.
        found: String,
    },
    /// `--log` names a log of the wrap's own, but on PostgreSQL receipts
    /// go to the log shared with `remit serve`.
    #[error("--log {} names a receipt log of the wrap's own, but on PostgreSQL the wrap appends to the log shared with remit serve; drop --log", .0.display())]
    LogOnSharedStore(PathBuf),
    /// On PostgreSQL the wrap appends to the servers' log with their keys;
    /// one is missing from its data directory.
    #[error("{} is missing: on PostgreSQL the wrap signs the shared receipt log with the servers' receipt.jwk and note.key; copy both from a server's data directory", .0.display())]
    SharedLogKeyMissing(PathBuf),
    /// The remit does not verify or is revoked at start.
    #[error("the remit is not active: {0}")]
    Inactive(String),
    /// A refusal at start (unknown or disabled server, a remit that is not
    /// active, a key that is not its holder's), with the index of the
    /// `deny` receipt it wrote in the wrap's log (`None`: the receipt could
    /// not be written, and the start is refused all the same).
    #[error("{source} ({})", receipt.map_or_else(|| "the refusal could not be recorded".to_owned(), |i| format!("refused with receipt {i}")))]
    Refused {
        /// Why the start was refused.
        source: Box<WrapError>,
        /// The `deny` receipt's index.
        receipt: Option<u64>,
    },
    /// Reading or writing the standard streams failed.
    #[error("stdio: {0}")]
    Io(#[from] std::io::Error),
}

/// Where receipts went and what runs, for the caller to report on stderr.
#[derive(Debug, Clone)]
pub struct WrapReport {
    /// Where receipts go: the wrap's own log directory, or the log shared
    /// with the `remit serve` replicas of a PostgreSQL store.
    pub receipts: String,
    /// The upstream transport url the wrap forwards to.
    pub upstream: String,
}

/// The state a wrap runs the pipeline on, per store.
#[derive(Debug)]
enum Backend {
    /// The data directory's SQLite file (or another), with a log of the
    /// wrap's own.
    Sqlite(Gateway<SqliteStore>),
    /// A PostgreSQL store shared with `remit serve`, and its shared log.
    Postgres(Gateway<PgStore>),
}

/// A prepared wrap: state opened, server and caller checked.
#[derive(Debug)]
pub struct Wrap {
    backend: Backend,
    server: McpServer,
    chain: String,
    resource: String,
    report: WrapReport,
}

/// Reads the issuer's public keys: all a wrap needs to verify remits.
fn read_issuer_jwks(path: &std::path::Path) -> Result<IssuerKey, WrapError> {
    let bad = |detail: String| WrapError::IssuerJwks {
        path: path.to_owned(),
        detail,
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let jwks = IssuerJwks::from_json(&text).map_err(|e| bad(e.to_string()))?;
    Ok(IssuerKey::Verifying(jwks))
}

/// What [`Wrap::open`] checks on either store: the server and the remit.
struct Checked {
    server: McpServer,
    chain: String,
    resource: String,
}

impl Wrap {
    /// Opens the data directory, the store, the policy and the receipt log,
    /// and checks the server and the remit, before any message is read.
    ///
    /// On SQLite (the default) receipts go to a log of the wrap's own
    /// (`--log`); on PostgreSQL they go to the log the `remit serve`
    /// replicas share, so `remit audit verify --server` covers the wrap's
    /// calls too.
    pub async fn open(options: WrapOptions) -> Result<Self, WrapError> {
        let data = DataDir::prepare(&options.data_dir)?;
        let jwks_path = options
            .issuer_jwks
            .clone()
            .unwrap_or_else(|| data.path().join(ISSUER_JWKS_FILE));
        let issuer = read_issuer_jwks(&jwks_path)?;
        // A key rotation reaches a running wrap through the JWKS file.
        let keys = remit_runtime::start::IssuerKeySource::JwksFile(jwks_path);
        let database = options
            .database
            .clone()
            .unwrap_or_else(|| Database::Sqlite(data.sqlite_path()));
        if matches!(database, Database::Postgres(_)) {
            // One of the shared log's writers: its keys come from the
            // servers, never generated here.
            for file in [RECEIPT_KEY_FILE, NOTE_KEY_FILE] {
                let path = data.path().join(file);
                if !path.exists() {
                    return Err(WrapError::SharedLogKeyMissing(path));
                }
            }
        }
        let receipt = data.key(RECEIPT_KEY_FILE)?;
        let policy_dir = options
            .policy_dir
            .clone()
            .unwrap_or_else(|| data.path().join(POLICY_DIR));
        let folder = PolicyFolder::read(&policy_dir)?;
        let mut settings = Settings::new(options.public_url.clone());
        settings.audience.clone_from(&options.audience);
        // No admin API is served: the admin hash is of a random token nobody holds.
        let admin = remit_runtime::setup::new_admin_token()?;
        let admin_hash = remit_runtime::setup::sha256(admin.as_bytes());
        let kid = receipt.signer.key_id().to_owned();
        let shown = database.shown();
        let (backend, checked, receipts) = match database {
            Database::Sqlite(path) => {
                let log_dir = options
                    .log_dir
                    .clone()
                    .unwrap_or_else(|| data.path().join("wrap").join(&options.server));
                std::fs::create_dir_all(&log_dir)?;
                let log =
                    FileReceiptLog::open(&log_dir, receipt.signer, &format!("remit/wrap/{kid}"))?;
                let receipts = log.dir().display().to_string();
                let store = SqliteStore::open(&path).await?;
                let state =
                    AppState::new(store, issuer, admin_hash, settings, Arc::new(log)).await?;
                let state = Gateway::new(state, options.gateway.clone())?;
                remit_runtime::start::spawn_issuer_watch(&state, keys);
                let checked = checked_or_receipted(&state, &options, &folder).await?;
                (Backend::Sqlite(state), checked, receipts)
            }
            Database::Postgres(url) => {
                if let Some(dir) = &options.log_dir {
                    return Err(WrapError::LogOnSharedStore(dir.clone()));
                }
                let store = PgStore::connect(&url).await?;
                let log = StoreReceiptLog::open(
                    store.clone(),
                    data.path(),
                    receipt.signer,
                    &receipt_origin(&kid),
                )
                .await?;
                let state =
                    AppState::new(store, issuer, admin_hash, settings, Arc::new(log)).await?;
                let state = Gateway::new(state, options.gateway.clone())?;
                remit_runtime::start::spawn_issuer_watch(&state, keys);
                let checked = checked_or_receipted(&state, &options, &folder).await?;
                (
                    Backend::Postgres(state),
                    checked,
                    format!("the log shared with remit serve in {shown}"),
                )
            }
        };
        let report = WrapReport {
            receipts,
            upstream: checked.server.url.clone(),
        };
        Ok(Self {
            backend,
            server: checked.server,
            chain: checked.chain,
            resource: checked.resource,
            report,
        })
    }

    /// Where receipts go and what is forwarded to.
    pub fn report(&self) -> &WrapReport {
        &self.report
    }

    /// Serves messages from `input` until it closes, answering on `output`.
    /// Requests are handled concurrently; answers are written whole, one a line.
    pub async fn run<R, W>(self, input: R, mut output: W) -> Result<(), WrapError>
    where
        R: AsyncRead + Unpin,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (tx, mut rx) = mpsc::channel::<Value>(64);
        let writer = tokio::spawn(async move {
            while let Some(message) = rx.recv().await {
                let mut line = message.to_string();
                line.push('\n');
                output.write_all(line.as_bytes()).await?;
                output.flush().await?;
            }
            std::io::Result::Ok(())
        });
        let this = Arc::new(self);
        let mut lines = BufReader::new(input);
        let mut buffer = Vec::new();
        let mut tasks = tokio::task::JoinSet::new();
        loop {
            buffer.clear();
            let read = (&mut lines)
                .take(MAX_LINE as u64 + 1)
                .read_until(b'\n', &mut buffer)
                .await?;
            if read == 0 {
                break;
            }
            if buffer.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let line = std::mem::take(&mut buffer);
            let this = Arc::clone(&this);
            let tx = tx.clone();
            tasks.spawn(async move {
                if let Some(answer) = this.handle_line(&line, &tx).await {
                    let _ = tx.send(answer).await;
                }
            });
            // Reap finished tasks so the set does not grow without bound.
            while tasks.try_join_next().is_some() {}
        }
        while tasks.join_next().await.is_some() {}
        // Gives back the steps reserved ahead and not used (they would
        // otherwise stay counted as used by the remit).
        match &this.backend {
            Backend::Sqlite(state) => state.store().close().await,
            Backend::Postgres(state) => state.store().close().await,
        }
        drop(tx);
        writer
            .await
            .map_err(|e| std::io::Error::other(e.to_string()))??;
        Ok(())
    }

    /// One message in, at most one answer out (a tool call that asked for
    /// progress also gets the upstream's progress notifications, scanned,
    /// on `out` before its answer). Every refusal has a receipt.
    async fn handle_line(&self, line: &[u8], out: &mpsc::Sender<Value>) -> Option<Value> {
        match &self.backend {
            Backend::Sqlite(state) => self.handle_on(state, line, out).await,
            Backend::Postgres(state) => self.handle_on(state, line, out).await,
        }
    }

    /// [`Self::handle_line`] on the state of either store.
    async fn handle_on<S: Store>(
        &self,
        state: &Gateway<S>,
        line: &[u8],
        out: &mpsc::Sender<Value>,
    ) -> Option<Value> {
        let config = state.gateway().config();
        let facts = Facts {
            tool: format!("mcp:{}", self.server.id),
            ..Facts::default()
        };
        let revocation_epoch = remit_runtime::receipts::events::epoch(state.revocations().epoch());
        let mut caller = match check(state, &self.chain, &self.resource) {
            Ok(chain) => Caller {
                chain,
                // Possession was proven when the wrap started: it holds the
                // leaf's key and checked it against cnf.jkt.
                scheme: Scheme::Dpop,
                revocation_epoch,
                chain_ref: None,
            },
            Err(reason) => {
                let id = serde_json::from_slice::<Value>(line)
                    .ok()
                    .and_then(|v| v.get("id").cloned())
                    .and_then(|id| serde_json::from_value(id).ok());
                let refusal = Refusal::gateway(
                    jsonrpc::DENIED,
                    "gw-unauthenticated",
                    format!("not authenticated: {reason}"),
                );
                return Some(pipeline::refuse(state, None, id, &facts, refusal, None).await);
            }
        };
        caller.chain_ref = match crate::auth::chain_reference(state, &caller).await {
            Ok(reference) => Some(reference),
            Err(error) => {
                let refusal = Refusal::gateway(jsonrpc::DENIED, "gw-unrecorded", error.to_string());
                return Some(
                    pipeline::refuse(state, Some(&caller), None, &facts, refusal, None).await,
                );
            }
        };
        let message = match jsonrpc::read(line, config.max_body_bytes, config.max_json_depth) {
            Ok(m) => m,
            Err(error) => {
                let rule = error.rule();
                let refusal = Refusal::gateway(error.code(), rule, error.to_string());
                return Some(
                    pipeline::refuse(state, Some(&caller), None, &facts, refusal, None).await,
                );
            }
        };
        let sink =
            pipeline::progress::asked(&message).map(|token| pipeline::progress::ProgressSink {
                token,
                events: out.clone(),
            });
        match pipeline::handle_with_progress(state, &caller, &self.server, message, sink.as_ref())
            .await
        {
            Answer::Accepted => None,
            Answer::Message(body) | Answer::InsufficientScope { message: body, .. } => Some(body),
        }
    }
}

/// [`check_start`]; a refusal of the server or the remit writes a `deny`
/// receipt (what the chain claimed, marked unverified) before the wrap
/// exits: every refusal has a receipt, at start as for every message.
async fn checked_or_receipted<S: Store>(
    state: &Gateway<S>,
    options: &WrapOptions,
    folder: &PolicyFolder,
) -> Result<Checked, WrapError> {
    let error = match check_start(state, options, folder).await {
        Ok(checked) => return Ok(checked),
        Err(e) => e,
    };
    let rule = match &error {
        WrapError::Inactive(_) => "gw-unauthenticated",
        WrapError::NotHolder { .. } => "gw-wrap-not-holder",
        WrapError::Server { .. } => "gw-wrap-server",
        // Setup failures (policy, store) are not refusals of a caller.
        _ => return Err(error),
    };
    let mut event =
        remit_ledger::Event::new(remit_ledger::Kind::Deny, remit_runtime::state::now_ms());
    remit_runtime::receipts::events::claimed_by(&mut event, options.chain.trim());
    let reason = error.to_string();
    let event = super::auth::refused_chain_receipt(state, event, &options.server, rule, &reason);
    let receipt = match state.record(event).await {
        Ok(index) => Some(index),
        Err(problem) => {
            tracing::error!(error = %problem, "receipt of a refusal at wrap start");
            None
        }
    };
    Err(WrapError::Refused {
        source: Box::new(error),
        receipt,
    })
}

/// Checks, before any message is read, that the server is registered,
/// active and runs over stdio (or is given a command), and that the remit
/// is active here and bound to the key the wrap was given.
async fn check_start<S: Store>(
    state: &Gateway<S>,
    options: &WrapOptions,
    folder: &PolicyFolder,
) -> Result<Checked, WrapError> {
    install_policy(state, folder).await?;
    let server_error = |detail: String| WrapError::Server {
        server: options.server.clone(),
        detail,
    };
    let id = Id::parse("server id", &options.server).map_err(|e| server_error(e.to_string()))?;
    let mut server = state
        .store()
        .server(&id)
        .await
        .map_err(|e| server_error(e.to_string()))?;
    if server.status != Status::Active {
        return Err(server_error("it is disabled".into()));
    }
    if !options.command.is_empty() {
        // Quoted so arguments holding spaces stay whole when the
        // upstream splits the command line again.
        let line = shlex::try_join(options.command.iter().map(String::as_str))
            .map_err(|e| server_error(format!("the command cannot be quoted: {e}")))?;
        server.url = format!("stdio:{line}");
    } else if !server.url.starts_with("stdio:") {
        return Err(server_error(format!(
            "its registered url {:?} is not a stdio: command; give the command after --",
            server.url
        )));
    }
    let resource = resource_url(&state.settings().public_url, &options.server);
    let chain = options.chain.trim().to_owned();
    let verified = check(state, &chain, &resource).map_err(WrapError::Inactive)?;
    let expected = verified.leaf_claims().cnf.jkt.as_str().to_owned();
    let found = options.holder.thumbprint().as_str().to_owned();
    if expected != found {
        return Err(WrapError::NotHolder { expected, found });
    }
    Ok(Checked {
        server,
        chain,
        resource,
    })
}

/// The chain checked for this server at this moment, as the HTTP
/// transport checks it ([`super::auth::check`]), its refusal as text.
fn check<S: Store>(
    state: &Gateway<S>,
    text: &str,
    resource: &str,
) -> Result<Arc<remit_token::VerifiedChain>, String> {
    super::auth::check(state, text, now(), resource).map_err(|e| e.to_string())
}
