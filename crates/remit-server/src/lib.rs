//! The Remit control plane: an axum application that registers agents and
//! MCP servers, issues remits, revokes them and answers introspection.
//!
//! # Model
//!
//! - `remit serve` prepares a data directory ([`setup`]): the issuer key
//!   (signs remits, published at `/.well-known/jwks.json`), the receipt key,
//!   and an admin token shown once and kept only as its SHA-256.
//! - State lives in `remit-store` (SQLite by default, PostgreSQL for
//!   replicas). The server holds no authoritative state in memory: only a
//!   revocation set, kept current by the store's follower, and a cache of
//!   verified chains keyed by the revocation epoch ([`state`]).
//! - The admin API (`/v1/*`, `/oauth/introspect`, `/oauth/revoke`) takes
//!   `Authorization: Bearer <admin token>` ([`app`]).
//! - `/v1/remits` mints a root remit for a registered, enabled agent, bound
//!   to the agent's registered key, and records the facts (never the token).
//! - Revocations (by jti, subtree, agent, user, tool, key id) are written to
//!   the store and applied to this process's set before the answer leaves;
//!   other replicas follow through NOTIFY (PostgreSQL) or periodic catch-up.
//!
//! # Threat model
//!
//! | threat | answer |
//! |---|---|
//! | admin token stolen from disk or database | only its SHA-256 is stored; the token is printed once |
//! | timing attack on the admin token | the presented token is hashed and hashes compared in constant time |
//! | private keys in the database | never: keys are 0600 files in a 0700 directory; tokens are not stored either |
//! | an agent registered with a private JWK by mistake | refused (`d` present), with a message saying to keep it private |
//! | oversized or malformed bodies | body limit (64 KiB by default), RFC 9457 problem+json naming what is wrong |
//! | a revoked remit still honoured | every check consults the revocation set (every link's jti for subtrees, every agent along the chain, user, signing key ids); a cached verification is revalidated against it each time |
//! | a disabled agent's remits | disabling also revokes the agent |
//! | probing which tokens exist via `/oauth/revoke` | 200 whether or not the token was valid (RFC 7009) |
//!
//! Every error on a decision path is a refusal: introspection answers
//! `active: false` for anything that does not verify, is expired or revoked.

pub mod app;
pub mod launch;
pub mod problem;
pub mod receipts;
pub mod receipts_api;
pub mod registry;
pub mod remits;
pub mod revocation;
pub mod setup;
pub mod state;

pub use app::router;
pub use launch::{serve, Database, FileConfig, ServeError, ServeOptions, StartReport};
pub use problem::Problem;
pub use receipts::{FileReceiptLog, ReceiptLog, ReceiptLogError};
pub use state::{AppState, Settings};
