//! What `remit serve` and `remit wrap` share when they start: the
//! database they open, the policy they install over the registry and keep
//! current, the issuer keys they keep current across a rotation, and the
//! origin their receipt log's checkpoints name.

use std::path::PathBuf;
use std::time::Duration;

use remit_store::{Store, StoreError};

use crate::policy::{directory_from_registry, PolicyFolder};
use crate::state::{AppState, PolicyRebuildError};

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
    pub fn parse(url: &str) -> Result<Self, StoreError> {
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            if path.is_empty() {
                return Err(StoreError::UnsupportedUrl {
                    url: url.to_owned(),
                });
            }
            return Ok(Self::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Ok(Self::Postgres(url.to_owned()));
        }
        Err(StoreError::UnsupportedUrl {
            url: remit_store::redact_url(url),
        })
    }

    /// The URL with any password removed, for display.
    pub fn shown(&self) -> String {
        match self {
            Self::Sqlite(path) => format!("sqlite://{}", path.display()),
            Self::Postgres(url) => remit_store::redact_url(url),
        }
    }
}

/// The origin line of the control plane's receipt log checkpoints, named
/// by the receipt key: the same for every replica (and every wrap) that
/// appends to one shared log.
pub fn receipt_origin(receipt_kid: &str) -> String {
    format!("remit/receipts/{receipt_kid}")
}

/// The policy folder inside the data directory.
pub const POLICY_DIR: &str = "policy";

/// Loads `folder` over the registry's entities into `state`.
pub async fn install_policy<S: Store>(
    state: &AppState<S>,
    folder: &PolicyFolder,
) -> Result<(), PolicyRebuildError> {
    state.set_policy_folder(folder.clone());
    let directory = directory_from_registry(state.store()).await?;
    state.set_policy(folder.load(None, directory)?);
    Ok(())
}

/// Rebuilds the policy's entity directory from the store every
/// [`crate::state::POLICY_REFRESH`]: how a replica learns of agents, servers
/// and tools registered through another replica (mutations on this process
/// rebuild at once). Each tick also repairs missing revocation propagation
/// ([`AppState::repair_propagation`]) and records the delegation chains
/// held back until they expired ([`AppState::record_expired_chains`]).
/// The task ends with the runtime.
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
            state.record_expired_chains().await;
        }
    });
}

/// How often a server or a wrap looks for a rotated issuer key.
pub const KEY_POLL: Duration = Duration::from_secs(2);

/// Where a running process learns of issuer key rotations.
#[derive(Debug, Clone)]
pub enum IssuerKeySource {
    /// `remit serve`: the data directory's private key, the key a rotation
    /// is switching to and the previous keys (it signs and publishes; the
    /// published JWKS file is rewritten when it changes, so retired keys
    /// leave it).
    DataDir(crate::setup::DataDir),
    /// `remit wrap`: a published JWKS file (verifies only).
    JwksFile(PathBuf),
}

/// Why the issuer keys could not be read.
#[derive(Debug, thiserror::Error)]
pub enum IssuerKeysError {
    /// The data directory's key files.
    #[error(transparent)]
    Setup(#[from] crate::setup::SetupError),
    /// The JWKS file is unreadable.
    #[error("reading {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// The keys do not form a usable JWKS.
    #[error(transparent)]
    Jwks(#[from] crate::state::IssuerJwksError),
}

/// Reads the keys from `source` now and installs them in `state` if they
/// differ from what it holds; true when they changed.
pub fn reload_issuer_keys<S: Store>(
    state: &AppState<S>,
    source: &IssuerKeySource,
) -> Result<bool, IssuerKeysError> {
    use remit_token::Signer as _;
    match source {
        IssuerKeySource::DataDir(data) => {
            let keys = data.issuer_keys(crate::setup::unix_now())?;
            let signing = state.issuer().ok().map(|s| s.key_id().to_owned());
            if state.jwks_document() == keys.jwks
                && signing.as_deref() == Some(keys.signer.key_id())
            {
                return Ok(false);
            }
            let published = crate::state::IssuerJwks::from_json(&keys.jwks.to_string())?;
            state.set_issuer_keys(Some(keys.signer), published)?;
            data.publish_jwks_document(&keys.jwks)?;
            Ok(true)
        }
        IssuerKeySource::JwksFile(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| IssuerKeysError::Read {
                path: path.clone(),
                source,
            })?;
            let published = crate::state::IssuerJwks::from_json(&text)?;
            if *published.document() == state.jwks_document() {
                return Ok(false);
            }
            state.set_issuer_keys(None, published)?;
            Ok(true)
        }
    }
}

/// Keeps `state`'s issuer keys current: reads `source` every [`KEY_POLL`]
/// and on SIGHUP. A read that fails keeps the keys held (logged): a
/// half-written file never turns verification off. The task ends with
/// the runtime.
pub fn spawn_issuer_watch<S: Store>(state: &AppState<S>, source: IssuerKeySource) {
    let state = state.clone();
    tokio::spawn(async move {
        #[cfg(unix)]
        let mut hangup =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut tick = tokio::time::interval(KEY_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            #[cfg(unix)]
            {
                let signal = async {
                    match hangup.as_mut() {
                        Some(signal) => {
                            if signal.recv().await.is_none() {
                                std::future::pending::<()>().await;
                            }
                        }
                        None => std::future::pending::<()>().await,
                    }
                };
                tokio::select! {
                    _ = tick.tick() => {},
                    () = signal => {},
                }
            }
            #[cfg(not(unix))]
            tick.tick().await;
            match reload_issuer_keys(&state, &source) {
                Ok(true) => tracing::info!("issuer keys reloaded (rotation)"),
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(%error, "reading the issuer keys failed; keeping the ones held");
                }
            }
        }
    });
}

/// Sets `remit_approvals_waiting` from the store every
/// [`crate::metrics::APPROVALS_POLL`]; a failed read counts as a store
/// error and keeps the last value. The task ends with the runtime.
pub fn spawn_approvals_gauge<S: Store>(state: &AppState<S>) {
    let state = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(crate::metrics::APPROVALS_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match state.store().pending_approvals().await {
                Ok(waiting) => crate::metrics::approvals_waiting(waiting.len()),
                Err(error) => {
                    crate::metrics::store_error("unavailable");
                    tracing::warn!(%error, "counting waiting approvals failed");
                }
            }
        }
    });
}

/// Writes one summary receipt of the unauthenticated refusals counted
/// since the last one, if any. Run every [`crate::anonymous::SUMMARY_EVERY`] and at shutdown.
pub async fn write_summary<S: Store>(state: &AppState<S>) {
    let Some(counts) = state.refusals().summary() else {
        return;
    };
    let event = crate::receipts::events::unauthenticated_summary(
        &counts,
        crate::anonymous::SUMMARY_EVERY.as_secs(),
        crate::state::now_ms(),
    );
    if let Err(problem) = state.record(event).await {
        tracing::error!(
            error = %problem,
            "writing the unauthenticated-refusals summary failed"
        );
    }
}

/// Writes a summary every [`crate::anonymous::SUMMARY_EVERY`] for as long as the runtime runs.
pub fn spawn_summary<S: Store>(state: &AppState<S>) {
    let state = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(crate::anonymous::SUMMARY_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tick.tick().await;
            write_summary(&state).await;
        }
    });
}
