//! `POST /v1/remits`: issuing a root remit to a registered agent.

use remit_class::Classification;
use remit_token::Grant;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Body of `POST /v1/remits`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueRemit {
    /// The registered agent that will hold it.
    #[schema(pattern = "^[A-Za-z0-9.:_@/-]{1,200}$")]
    pub agent: String,
    /// The user it acts for.
    #[schema(pattern = "^[A-Za-z0-9.:_@/-]{1,200}$")]
    pub sub: String,
    /// What it allows (RFC 9396 `authorization_details`, type `remit_tool`).
    #[schema(value_type = Vec<crate::doc::Grant>)]
    pub grants: Vec<Grant>,
    /// Lifetime in seconds; the server default when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<u64>,
    /// Highest classification; INTERNAL when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::doc::Classification>)]
    pub class: Option<Classification>,
    /// Tool calls allowed; unlimited when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_steps: Option<u64>,
    /// Deepest delegation allowed below it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_depth: Option<u32>,
}

/// `POST /v1/remits`: the token, shown once, and facts about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct IssuedRemit {
    /// The remit, JWS compact (`typ` `remit+jwt`).
    pub remit: String,
    /// Its token id.
    pub jti: String,
    /// The user it acts for.
    pub sub: String,
    /// The agent that holds it.
    pub agent: String,
    /// Issued at (Unix seconds).
    pub iat: u64,
    /// Expires at (Unix seconds).
    pub exp: u64,
    /// Thumbprint of the holder key (`cnf.jkt`).
    pub holder: String,
    /// Always `remit+jwt`.
    pub token_type: String,
    /// The policy version (`sha256:...`) that allowed it, as in its signed
    /// `policy` claim.
    pub policy: Option<String>,
    /// Index of the issue receipt.
    pub receipt_id: u64,
}
