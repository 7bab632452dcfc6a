//! What `remit serve` and `remit wrap` share when they start: the
//! database they open, the policy they install over the registry and keep
//! current, and the origin their receipt log's checkpoints name.

use std::path::PathBuf;

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
