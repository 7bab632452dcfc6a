//! What every Remit service shares, with no routes of its own.
//!
//! `remit serve` (the control plane, `remit-server`) and the MCP gateway
//! (`remit-gateway`, also run alone by `remit wrap`) compose these pieces:
//!
//! | module | owns |
//! |---|---|
//! | [`state`] | the application state: store, issuer key, revocation set, verified-chain caches, policy engine, scanner, settings |
//! | [`receipts`] | the receipt-log writer: the embedded file log and the shared PostgreSQL log, group-committed, durable before an answer leaves |
//! | [`policy`] | the policy folder (preset + overrides) loaded over the registry's entities |
//! | [`setup`] | the data directory: keys (0600), the admin token's hash |
//! | [`start`] | what a starting process opens: the database, the installed policy and its refresh |
//! | [`anonymous`] | unauthenticated refusals: counters by reason, per-peer buckets, a periodic summary receipt |
//! | [`bounded`] | caller text made safe to record or echo: short, escaped, hashed beyond a length |
//! | [`metrics`] | Prometheus metrics every service records into |
//! | [`telemetry`] | the tracing subscriber, W3C trace context, OTLP export |
//! | [`oidc`] | ID tokens from trusted OpenID Connect issuers, and the admin identity of a request |
//!
//! Dependencies point down: the server and the gateway use this crate,
//! this crate uses the pure cores (`remit-token`, `remit-scan`,
//! `remit-policy`, `remit-ledger`) and `remit-store`, never the other way.
//!
//! # Threat model
//!
//! | threat | answer |
//! |---|---|
//! | a change confirmed but not recorded (disk full, crash) | [`AppState::record`] returns only once the receipt is durable; a failure is a [`state::RecordError`] the HTTP layer answers 500 |
//! | private keys readable by other users | keys are written 0600 in a 0700 directory ([`setup`]); the admin token is kept only as its SHA-256 |
//! | a revoked remit honoured from a cache | every cached verification is revalidated against the revocation set, which the store's follower keeps current |
//! | a policy that does not load | the process refuses to start; a failed rebuild keeps the engine in place, which denies unknown entities |

pub mod anonymous;
pub mod bounded;
pub mod metrics;
pub mod oidc;
pub mod policy;
pub mod receipts;
pub mod setup;
pub mod start;
pub mod state;
pub mod telemetry;

pub use policy::{directory_from_registry, PolicyFolder, PolicyFolderError};
pub use receipts::{FileReceiptLog, ReceiptLog, ReceiptLogError, StoreReceiptLog};
pub use state::{AppState, RecordError, Settings};
