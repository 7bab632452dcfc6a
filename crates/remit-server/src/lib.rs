//! The Remit control plane: the axum app behind `remit serve`.
//!
//! This crate composes the core crates into a service; it owns no domain
//! logic of its own. Today it serves:
//!
//! - `GET /healthz` (the process is up) and `GET /readyz` (the database
//!   answers);
//! - `GET /.well-known/jwks.json`: the issuer's public key, so anyone can
//!   verify remits offline;
//! - `POST /v1/agents`, `GET /v1/agents`, `GET /v1/agents/{id}`,
//!   `POST /v1/agents/{id}/disable`: the agent registry, for admins only.
//!
//! # Security model
//!
//! Admin requests carry `Authorization: Bearer <admin token>`. The token is
//! 256 random bits, shown once at first start; only its SHA-256 is kept
//! (in the data directory), and presented tokens are compared in constant
//! time. Signing keys live in the data directory with mode 0600 and never
//! enter the database. Request bodies are capped at [`app::MAX_BODY_BYTES`];
//! every error is an RFC 9457 `application/problem+json` saying precisely
//! what to fix, and store failures answer 503 without internals. Disabling
//! an agent also revokes it, so its remits stop at every replica.
//!
//! Not yet here (issue 7): issuance, token exchange, introspection,
//! revocation and receipt endpoints, servers/tools routes, metrics, OpenAPI.

pub mod app;
pub mod problem;
pub mod setup;

pub use app::{router, AppState, MAX_BODY_BYTES};
pub use problem::Problem;
pub use setup::{default_data_dir, AdminTokenHash, DataDir, SetupError};

/// Serves `router` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}
