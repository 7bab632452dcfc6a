//! Starting a server: configuration (file, environment, flags), the data
//! directory, the store, and the listener.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use remit_policy::{EngineKind, Preset};
use remit_store::{PgStore, SqliteStore, Store, StoreError};
use serde::Deserialize;
use tokio::net::TcpListener;

use crate::gateway::settings::{GatewaySettings, SettingsError};
use crate::gateway::{Gateway, GatewayConfig, RuntimeError};
use crate::oidc::{OidcIssuerConfig, OidcVerifier};
use crate::policy::{PolicyFolder, PolicyFolderError};
use crate::receipts::{FileReceiptLog, ReceiptLog, ReceiptLogError, StoreReceiptLog};
use crate::setup::{DataDir, SetupError, ISSUER_KEY_FILE, RECEIPT_KEY_FILE};
use crate::state::{AppState, Settings};
use crate::tls::{ReloadingCert, TlsError, TlsFiles, TlsListener};
use remit_runtime::start::{
    install_policy, receipt_origin, reload_issuer_keys, spawn_issuer_watch, spawn_policy_refresh,
    Database, IssuerKeySource, IssuerKeysError, POLICY_DIR,
};
use remit_runtime::state::PolicyRebuildError;

/// The listen address when none is configured.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";

/// A TOML configuration file; every key is optional and overridden by
/// environment variables and flags.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Data directory (keys, admin token hash, SQLite file).
    pub data: Option<PathBuf>,
    /// `sqlite://PATH` or `postgres://USER@HOST:PORT/DB`.
    pub database: Option<String>,
    /// Listen address, e.g. `127.0.0.1:8080`.
    pub listen: Option<SocketAddr>,
    /// Public base URL (the `iss` of minted remits); `http://<listen>` by default.
    pub public_url: Option<String>,
    /// Audience remits are minted for; `remit` by default.
    pub audience: Option<String>,
    /// Security posture written into `<data>/policy` on first start:
    /// `lockdown`, `standard` (default) or `permissive`.
    pub preset: Option<String>,
    /// The MCP gateway's limits, shadow mode, budgets and upstream
    /// credentials (`[gateway]`, see [`crate::gateway::settings`]).
    pub gateway: Option<GatewaySettings>,
    /// Trusted OpenID Connect issuers, one `[[oidc]]` table each
    /// ([`crate::oidc::OidcIssuerConfig`]).
    #[serde(default)]
    pub oidc: Vec<OidcIssuerConfig>,
    /// OTLP/HTTP endpoint traces are exported to (e.g.
    /// `http://127.0.0.1:4318`); no export when absent ([`crate::telemetry`]).
    pub otlp_endpoint: Option<String>,
    /// TLS certificate chain, PEM (with `tls_key`): serve HTTPS.
    pub tls_cert: Option<PathBuf>,
    /// TLS private key, PEM (with `tls_cert`).
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP on an address other than loopback (behind a TLS
    /// proxy on a private network, say); refused without it.
    #[serde(default)]
    pub insecure_http: bool,
}

impl FileConfig {
    /// The gateway configuration this file asks for (defaults where it is
    /// silent), secrets resolved from the process environment and files.
    pub fn gateway_config(&self) -> Result<GatewayConfig, SettingsError> {
        self.gateway
            .clone()
            .unwrap_or_default()
            .resolve(&|name| std::env::var(name).ok())
    }

    /// Reads and parses a configuration file.
    pub fn load(path: &Path) -> Result<Self, ServeError> {
        let text = std::fs::read_to_string(path).map_err(|source| ServeError::Config {
            path: path.to_owned(),
            detail: source.to_string(),
        })?;
        toml::from_str(&text).map_err(|e| ServeError::Config {
            path: path.to_owned(),
            detail: e.to_string(),
        })
    }
}

/// Everything `remit serve` needs, after merging flags, environment,
/// configuration file and defaults.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Data directory.
    pub data_dir: PathBuf,
    /// Database; SQLite in the data directory when `None`.
    pub database: Option<Database>,
    /// Listen address.
    pub listen: SocketAddr,
    /// Public base URL; `http://<bound address>` when `None`.
    pub public_url: Option<String>,
    /// Audience; `remit` when `None`.
    pub audience: Option<String>,
    /// Preset for a new policy folder; an existing folder is kept as it is.
    pub preset: Preset,
    /// The MCP gateway's configuration.
    pub gateway: GatewayConfig,
    /// Trusted OpenID Connect issuers (none: ID tokens are refused).
    pub oidc: Vec<OidcIssuerConfig>,
    /// Serve HTTPS with these files; plain HTTP when `None`.
    pub tls: Option<TlsFiles>,
    /// Allow plain HTTP on a non-loopback address.
    pub insecure_http: bool,
}

/// What a start did, for the operator.
#[derive(Debug, Clone)]
pub struct StartReport {
    /// The data directory.
    pub data_dir: PathBuf,
    /// Issuer key file and whether it was generated now.
    pub issuer_key: (PathBuf, bool),
    /// The issuer key id.
    pub issuer_kid: String,
    /// The issuer's public JWKS file (what `remit wrap` verifies with).
    pub issuer_jwks: PathBuf,
    /// Receipt key file and whether it was generated now.
    pub receipt_key: (PathBuf, bool),
    /// The receipt log directory.
    pub receipt_log: PathBuf,
    /// The note verifier key checkpoints are signed with (give it to auditors).
    pub note_verifier: String,
    /// The database, redacted.
    pub database: String,
    /// The admin token, only when generated by this start.
    pub new_admin_token: Option<String>,
    /// The address actually bound.
    pub listening: SocketAddr,
    /// The public base URL.
    pub public_url: String,
    /// The policy folder, whether it was written now, its preset and version.
    pub policy: (PathBuf, bool, Preset, String),
    /// The trusted OpenID Connect issuers.
    pub oidc_issuers: Vec<String>,
}

/// Why the server could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The `[gateway]` table is invalid or names a secret that is missing.
    #[error(transparent)]
    Gateway(#[from] SettingsError),
    /// The configuration file is unreadable or invalid.
    #[error("configuration file {path}: {detail}")]
    Config {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// Preparing the data directory failed.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// Opening the store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The policy folder does not load.
    #[error(transparent)]
    Policy(#[from] PolicyFolderError),
    /// Opening the receipt log failed.
    #[error(transparent)]
    Receipts(#[from] ReceiptLogError),
    /// An OpenID Connect issuer is misconfigured.
    #[error(transparent)]
    Oidc(#[from] crate::oidc::OidcConfigError),
    /// The policy could not be installed over the registry.
    #[error(transparent)]
    PolicyInstall(#[from] PolicyRebuildError),
    /// The gateway's runtime could not be built.
    #[error(transparent)]
    GatewayRuntime(#[from] RuntimeError),
    /// A `REMIT_*` environment variable does not parse.
    #[error("environment: {0}")]
    Environment(String),
    /// The unauthenticated-request limits in the environment do not parse.
    #[error("environment: {0}")]
    Limits(#[from] remit_runtime::anonymous::LimitsError),
    /// The issuer keys do not load.
    #[error("issuer keys: {0}")]
    IssuerKeys(#[from] IssuerKeysError),
    /// The TLS certificate or key does not load.
    #[error("TLS: {0}")]
    Tls(#[from] TlsError),
    /// Plain HTTP asked for on an address others can reach.
    #[error("refusing to serve plain HTTP on {0}, which is not a loopback address: give --tls-cert and --tls-key (tls_cert, tls_key in the config file), or pass --insecure-http if a TLS proxy in front of this address terminates TLS")]
    PlainHttpOffLoopback(SocketAddr),
    /// Binding or serving failed.
    #[error("listening on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

/// Prepares everything, calls `on_ready` with what was done, then serves
/// until `shutdown` completes.
pub async fn serve(
    options: ServeOptions,
    on_ready: impl FnOnce(&StartReport),
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let oidc = std::sync::Arc::new(OidcVerifier::new(options.oidc.clone())?);
    let data = DataDir::prepare(&options.data_dir)?;
    let issuer = data.key(ISSUER_KEY_FILE)?;
    let issuer_jwks = data.publish_issuer_jwks(&issuer.signer)?;
    let receipt = data.key(RECEIPT_KEY_FILE)?;
    let admin = data.admin_token()?;
    let policy_dir = data.path().join(POLICY_DIR);
    let (policy, policy_created) = if policy_dir.join("manifest.json").exists() {
        (PolicyFolder::read(&policy_dir)?, false)
    } else {
        (
            PolicyFolder::create(&policy_dir, options.preset, EngineKind::Cedar)?,
            true,
        )
    };
    let policy_version = policy
        .load(None, remit_policy::Directory::default())?
        .version()
        .to_string();
    let receipt_kid = remit_token::Signer::key_id(&receipt.signer).to_owned();
    let origin = receipt_origin(&receipt_kid);
    // On PostgreSQL the receipt log lives in the database, one sequence
    // shared by every replica; on SQLite it is the file log in the data
    // directory (opened below, once the store is open).
    let mut receipt_signer = Some(receipt.signer);
    let file_log = match (&options.database, receipt_signer.take()) {
        (Some(Database::Postgres(_)), signer) => {
            receipt_signer = signer;
            None
        }
        (_, Some(signer)) => Some(FileReceiptLog::open(data.path(), signer, &origin)?),
        (_, None) => None,
    };
    let receipt_log = match &file_log {
        Some(log) => log.dir().to_owned(),
        None => PathBuf::from("(the database: log_leaves, log_checkpoints)"),
    };
    let (listener, listening) = bind(&options).await?;
    let scheme = if listener.is_tls() { "https" } else { "http" };
    let public_url = options
        .public_url
        .clone()
        .unwrap_or_else(|| format!("{scheme}://{listening}"));
    let mut settings = Settings::new(public_url.clone());
    if let Some(audience) = &options.audience {
        settings.audience.clone_from(audience);
    }
    settings.metrics_require_admin =
        std::env::var("REMIT_METRICS_AUTH").is_ok_and(|v| v == "admin");
    settings.unauthenticated = crate::anonymous::Limits::from_env()?;
    // Where this server listens and what it mints for, for the wrap,
    // protect and doctor commands that share the data directory.
    data.publish_serve_record(&crate::setup::ServeRecord {
        public_url: public_url.clone(),
        audience: settings.audience.clone(),
        listening: listening.to_string(),
        pid: std::process::id(),
        started_at: crate::state::now(),
    })?;
    let oidc_issuers = oidc.issuers().map(str::to_owned).collect();
    settings.oidc = oidc;
    let database = options
        .database
        .clone()
        .unwrap_or_else(|| Database::Sqlite(data.sqlite_path()));
    let report = StartReport {
        data_dir: data.path().to_owned(),
        issuer_key: (issuer.path.clone(), issuer.created),
        issuer_kid: remit_token::Signer::key_id(&issuer.signer).to_owned(),
        issuer_jwks,
        receipt_key: (receipt.path.clone(), receipt.created),
        receipt_log,
        note_verifier: String::new(),
        database: database.shown(),
        new_admin_token: admin.new_token.clone(),
        listening,
        public_url,
        policy: (
            policy_dir.clone(),
            policy_created,
            policy.manifest().preset,
            policy_version,
        ),
        oidc_issuers,
    };
    let mut report = report;
    match database {
        Database::Sqlite(path) => {
            let log = match (file_log, receipt_signer) {
                (Some(log), _) => log,
                (None, Some(signer)) => FileReceiptLog::open(data.path(), signer, &origin)?,
                (None, None) => return Err(missing_receipt_key()),
            };
            report.note_verifier = log.note_verifier_key();
            let receipts: std::sync::Arc<dyn ReceiptLog> = std::sync::Arc::new(log);
            let store = SqliteStore::open(&path).await?;
            let watched = store.clone();
            crate::metrics::watch_store(move || crate::metrics::StoreCounts {
                counter_fallbacks: watched.counter_fallbacks(),
                wal_checkpoints: watched.wal_checkpoints(),
            });
            let closing = store.clone();
            let state = AppState::new(store, issuer.signer, admin.hash, settings, receipts).await?;
            let state = Gateway::new(state, options.gateway.clone())?;
            install_policy(&state, &policy).await?;
            watch_issuer_keys(&state, &data)?;
            spawn_policy_refresh(&state);
            remit_runtime::start::spawn_approvals_gauge(&state);
            remit_runtime::start::spawn_summary(&state);
            on_ready(&report);
            let served = listener.serve(state, shutdown).await;
            // Gives back the steps reserved ahead and not used.
            closing.close().await;
            served
        }
        Database::Postgres(url) => {
            let store = PgStore::connect(&url).await?;
            let signer = receipt_signer.ok_or_else(missing_receipt_key)?;
            let log = StoreReceiptLog::open(store.clone(), data.path(), signer, &origin).await?;
            report.note_verifier = log.note_verifier_key();
            let receipts: std::sync::Arc<dyn ReceiptLog> = std::sync::Arc::new(log);
            let state = AppState::new(store, issuer.signer, admin.hash, settings, receipts).await?;
            let state = Gateway::new(state, options.gateway.clone())?;
            install_policy(&state, &policy).await?;
            watch_issuer_keys(&state, &data)?;
            spawn_policy_refresh(&state);
            remit_runtime::start::spawn_approvals_gauge(&state);
            remit_runtime::start::spawn_summary(&state);
            on_ready(&report);
            listener.serve(state, shutdown).await
        }
    }
}

/// Installs the data directory's issuer keys (previous keys still
/// published included) and follows rotations from now on.
fn watch_issuer_keys<S: Store>(state: &AppState<S>, data: &DataDir) -> Result<(), ServeError> {
    let source = IssuerKeySource::DataDir(data.clone());
    reload_issuer_keys(state, &source)?;
    spawn_issuer_watch(state, source);
    Ok(())
}

fn missing_receipt_key() -> ServeError {
    ServeError::Receipts(ReceiptLogError::Task(
        "the receipt key was already given to another log".into(),
    ))
}

/// Refuses plain HTTP off loopback unless asked for, loads the TLS
/// certificate (before binding: a bad file fails the start) and binds.
async fn bind(options: &ServeOptions) -> Result<(Bound, SocketAddr), ServeError> {
    let addr = options.listen;
    if options.tls.is_none() && !options.insecure_http && !addr.ip().is_loopback() {
        return Err(ServeError::PlainHttpOffLoopback(addr));
    }
    let tls = options.tls.clone().map(ReloadingCert::load).transpose()?;
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Listen { addr, source })?;
    let listening = listener
        .local_addr()
        .map_err(|source| ServeError::Listen { addr, source })?;
    let Some(resolver) = tls else {
        return Ok((Bound::Plain(listener), listening));
    };
    let config = crate::tls::server_config(resolver.clone())?;
    let listener =
        TlsListener::new(listener, config).map_err(|source| ServeError::Listen { addr, source })?;
    let reload = crate::tls::spawn_reload(resolver);
    Ok((Bound::Tls(listener, AbortOnDrop(reload)), listening))
}

/// A bound listener, plain or TLS (with its certificate reload task).
#[derive(Debug)]
enum Bound {
    Plain(TcpListener),
    Tls(TlsListener, AbortOnDrop),
}

#[derive(Debug)]
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Bound {
    fn is_tls(&self) -> bool {
        matches!(self, Self::Tls(..))
    }

    async fn serve<S: Store>(
        self,
        state: Gateway<S>,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        match self {
            Self::Plain(listener) => run(state, listener, shutdown).await,
            Self::Tls(listener, _reload) => run_on(state, listener, shutdown).await,
        }
    }
}

/// Serves the application over an already bound listener (plain HTTP).
pub async fn run<S: Store>(
    state: Gateway<S>,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    run_on(state, listener, shutdown).await
}

/// Serves the application over any listener whose peers have socket
/// addresses (plain TCP, or [`TlsListener`]) until `shutdown` completes.
pub async fn run_on<S: Store, L>(
    state: Gateway<S>,
    listener: L,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError>
where
    L: axum::serve::Listener<Addr = SocketAddr>,
{
    use axum::serve::ListenerExt as _;
    let addr = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    // The peer address keys the per-peer limit on unauthenticated traffic
    // (axum reads it from any listener through `tap_io`).
    let listener = listener.tap_io(|_| {});
    let app = crate::app::router(state).into_make_service_with_connect_info::<SocketAddr>();
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(|source| ServeError::Listen { addr, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_are_parsed_or_refused_with_the_accepted_forms() {
        assert_eq!(
            Database::parse("sqlite:///tmp/x.db").unwrap(),
            Database::Sqlite("/tmp/x.db".into())
        );
        assert!(matches!(
            Database::parse("postgres://u:secret@h/db").unwrap(),
            Database::Postgres(_)
        ));
        let err = Database::parse("mysql://u:secret@h/db")
            .unwrap_err()
            .to_string();
        assert!(err.contains("sqlite://"), "{err}");
        assert!(!err.contains("secret"), "{err}");
        assert!(Database::parse("sqlite://").is_err());
    }

    #[test]
    fn config_files_with_unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("remit.toml");
        std::fs::write(&path, "listen = \"127.0.0.1:9\"\nlisten_port = 3\n").unwrap();
        let err = FileConfig::load(&path).unwrap_err().to_string();
        assert!(err.contains("listen_port"), "{err}");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9\"\ndatabase = \"sqlite://x\"\n",
        )
        .unwrap();
        let config = FileConfig::load(&path).unwrap();
        assert_eq!(config.listen, Some("127.0.0.1:9".parse().unwrap()));
    }
}
