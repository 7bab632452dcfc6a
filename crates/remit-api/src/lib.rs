//! The shapes of Remit's control-plane HTTP API, in one place.
//!
//! Every request body the server parses and every answer it sends is a
//! type here: the handlers of `remit-server` and `remit-gateway` return
//! them (`Json<T>`), the OpenAPI document (`GET /openapi.json`) is derived
//! from them with `utoipa`, and the `remit` command line deserializes the
//! answers into them. A field added, renamed or retyped here changes all
//! three at once, so the document cannot drift from the wire.
//!
//! This crate is pure data: `serde` and `utoipa` derives, no I/O, no
//! runtime. Field order is the order on the wire (the workspace keeps JSON
//! objects in insertion order), and an `Option` marked
//! `skip_serializing_if` is a member only some answers carry (a mutation's
//! `receipt_id`, for instance).
//!
//! [`doc`] holds the few schemas that describe a value whose Rust type
//! lives in a core crate without `utoipa` (a grant of `remit-token`, the
//! uppercase classification of `remit-class`), or a form the server
//! deliberately parses leniently; see there why each is document-only.
//!
//! With the `store` feature, `From` conversions link the wire enums to
//! `remit-store`'s records.

pub mod discovery;
pub mod doc;
pub mod exchange;
pub mod gateway;
pub mod problem;
pub mod receipts;
pub mod registry;
pub mod remits;
pub mod revocation;
#[cfg(feature = "store")]
mod store;
pub mod words;

pub use discovery::{Health, Jwks, Readiness, ServerMetadata};
pub use exchange::{OAuthError, TokenExchanged};
pub use gateway::{
    Approval, ApprovalList, Bless, Blessed, BlessedTool, Decide, PinnedPrompt,
    ProtectedResourceMetadata, SetTool, Shadow, ShadowState,
};
pub use problem::{PolicyProblem, Problem};
pub use receipts::{LatestCheckpoint, ReceiptPage};
pub use registry::{
    AddServer, AddTool, Agent, AgentList, McpServer, McpServerList, RegisterAgent, Tool, ToolList,
};
pub use remits::{IssueRemit, IssuedRemit};
pub use revocation::{Introspection, OAuthRevoked, Revocation, RevocationList, Revoke, TokenForm};
pub use words::{ApprovalState, Clearance, RevocationKind, RiskTier, Status};

/// The pattern every identifier (agent, server, tool, jti, user, key id) matches.
pub const ID_PATTERN: &str = "^[A-Za-z0-9.:_@/-]{1,200}$";

/// The token type of a remit (`typ` of its JWS, `token_type` of answers).
pub const REMIT_JWT: &str = "remit+jwt";
