//! Starting a server: configuration (file, environment, flags), the data
//! directory, the store, and the listener.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use remit_policy::{EngineKind, Preset};
use remit_store::{PgStore, SqliteStore, Store, StoreError};
use serde::Deserialize;
use tokio::net::TcpListener;

use crate::gateway::settings::{GatewaySettings, SettingsError};
use crate::gateway::GatewayConfig;
use crate::oidc::{OidcIssuerConfig, OidcVerifier};
use crate::policy::{directory_from_registry, PolicyFolder, PolicyFolderError};
use crate::receipts::{FileReceiptLog, ReceiptLog, ReceiptLogError, StoreReceiptLog};
use crate::setup::{DataDir, SetupError, ISSUER_KEY_FILE, RECEIPT_KEY_FILE};
use crate::state::{AppState, Settings};

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

/// Which database to run on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// An embedded SQLite file.
    Sqlite(PathBuf),
    /// A PostgreSQL server (URL kept as given; shown redacted).
    Postgres(String),
}

impl Database {
    /// Parses `sqlite://PATH`, `sqlite:PATH` or `postgres(ql)://...`.
    pub fn parse(url: &str) -> Result<Self, ServeError> {
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                return Err(ServeError::Store(StoreError::UnsupportedUrl {
                    url: url.to_owned(),
                }));
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(url.to_owned()));
        }
        Err(ServeError::Store(StoreError::UnsupportedUrl {
            url: remit_store::redact_url(url),
        }))
    }

    /// The URL with any password removed, for display.
    pub fn shown(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("sqlite://{}", path.display()),
            Self::Postgres(url) => remit_store::redact_url(url),
        }
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
    /// A `REMIT_*` environment variable does not parse.
    #[error("environment: {0}")]
    Environment(String),
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
    let listener =
        TcpListener::bind(options.listen)
            .await
            .map_err(|source| ServeError::Listen {
                addr: options.listen,
                source,
            })?;
    let listening = listener.local_addr().map_err(|source| ServeError::Listen {
        addr: options.listen,
        source,
    })?;
    let public_url = options
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{listening}"));
    let mut settings = Settings::new(public_url.clone());
    if let Some(audience) = &options.audience {
        settings.audience.clone_from(audience);
    }
    settings.metrics_require_admin =
        std::env::var("REMIT_METRICS_AUTH").is_ok_and(|v| v == "admin");
    settings.unauthenticated = crate::anonymous::Limits::from_env()?;
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
            state.gateway().set_config(options.gateway.clone());
            install_policy(&state, &policy).await?;
            spawn_policy_refresh(&state);
            crate::anonymous::spawn_summary(&state);
            on_ready(&report);
            let served = run(state, listener, shutdown).await;
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
            state.gateway().set_config(options.gateway.clone());
            install_policy(&state, &policy).await?;
            spawn_policy_refresh(&state);
            crate::anonymous::spawn_summary(&state);
            on_ready(&report);
            run(state, listener, shutdown).await
        }
    }
}

/// The origin line of the control plane's receipt log checkpoints, named
/// by the receipt key: the same for every replica (and every wrap) that
/// appends to one shared log.
pub(crate) fn receipt_origin(receipt_kid: &str) -> String {
    format!("remit/receipts/{receipt_kid}")
}

fn missing_receipt_key() -> ServeError {
    ServeError::Receipts(ReceiptLogError::Task(
        "the receipt key was already given to another log".into(),
    ))
}

/// The policy folder inside the data directory.
pub const POLICY_DIR: &str = "policy";

/// Loads `folder` over the registry's entities into `state`.
pub async fn install_policy<S: Store>(
    state: &AppState<S>,
    folder: &PolicyFolder,
) -> Result<(), ServeError> {
    state.set_policy_folder(folder.clone());
    let directory = directory_from_registry(state.store()).await?;
    state.set_policy(folder.load(None, directory)?);
    Ok(())
}

/// Rebuilds the policy's entity directory from the store every
/// [`crate::state::POLICY_REFRESH`]: how a replica learns of agents, servers
/// and tools registered through another replica (mutations on this process
/// rebuild at once). Each tick also repairs missing revocation propagation
/// ([`AppState::repair_propagation`]). The task ends with the runtime.
pub fn spawn_policy_refresh<S: Store>(state: &AppState<S>) {
    let state = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(crate::state::POLICY_REFRESH);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match state.rebuild_policy().await {
                Ok(true) => tracing::info!("policy entities rebuilt: the registry changed"),
                Ok(false) => {}
                Err(error) => tracing::warn!(%error, "periodic policy rebuild failed"),
            }
            // A replica of an older Remit may have crashed between a
            // revocation and its propagation: repair it here too.
            if let Err(error) = state.repair_propagation().await {
                tracing::warn!(%error, "checking revocation propagation failed");
            }
        }
    });
}

/// Serves the application over an already bound listener.
pub async fn run<S: Store>(
    state: AppState<S>,
    listener: TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let addr = listener.local_addr().map_err(|source| ServeError::Listen {
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        source,
    })?;
    // The peer address keys the per-peer limit on unauthenticated traffic.
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
