//! Revocation and introspection: `/v1/revocations`, RFC 7009
//! `/oauth/revoke` and RFC 7662 `/oauth/introspect`.

use remit_class::Classification;
use remit_token::{Actor, Grant};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::words::RevocationKind;

/// Body of `POST /v1/revocations`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Revoke {
    /// `jti`, `subtree`, `agent`, `sub`, `tool` or `kid`.
    pub kind: RevocationKind,
    /// The jti, agent id, user, tool or key id.
    #[schema(pattern = "^[A-Za-z0-9.:_@/-]{1,200}$")]
    pub value: String,
    /// Why, in words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A revocation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Revocation {
    /// What it is keyed by.
    pub kind: RevocationKind,
    /// The jti, agent, user, tool or key id.
    pub value: String,
    /// Its position in the revocation sequence.
    pub epoch: i64,
    /// Why, in words.
    pub reason: String,
    /// Who revoked.
    pub revoked_by: String,
    /// When (Unix seconds).
    pub revoked_at: i64,
    /// Whether this request revoked it (`POST` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub newly_revoked: Option<bool>,
    /// Index of the revoke receipt (when newly revoked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub receipt_id: Option<u64>,
    /// How many exchanged remits were revoked with it, in the same
    /// transaction, because it reaches their subject chains (`POST` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub propagated: Option<u64>,
}

/// `GET /v1/revocations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct RevocationList {
    /// This process's revocation epoch.
    pub epoch: i64,
    /// Every revocation, in epoch order.
    pub revocations: Vec<Revocation>,
}

/// Form body of the OAuth endpoints.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct TokenForm {
    /// The remit chain (`root~child~...`) or a single remit.
    pub token: String,
    /// Ignored hint (RFC 7662 / 7009).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type_hint: Option<String>,
}

/// RFC 7662 introspection answer: `active: false` alone for anything
/// that does not verify, is expired or revoked; every member for an
/// active chain.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Introspection {
    /// Whether the chain verifies now and nothing in it is revoked.
    pub active: bool,
    /// `remit+jwt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub token_type: Option<String>,
    /// The root's issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub iss: Option<String>,
    /// The user the chain acts for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub sub: Option<String>,
    /// The audience.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub aud: Option<String>,
    /// Issued at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub iat: Option<u64>,
    /// Not before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub nbf: Option<u64>,
    /// Expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub exp: Option<u64>,
    /// The leaf's token id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub jti: Option<String>,
    /// The root's token id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub root: Option<String>,
    /// The acting agent (nested `act` for delegations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>, nullable = false)]
    pub act: Option<Actor>,
    /// The holder key confirmation (`jkt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub cnf: Option<HolderKey>,
    /// The effective grants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<crate::doc::Grant>>, nullable = false)]
    pub authorization_details: Option<Vec<Grant>>,
    /// Highest classification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<crate::doc::Classification>, nullable = false)]
    pub class: Option<Classification>,
    /// Tool calls allowed, when limited (`null` when the chain is active
    /// and unlimited; absent when it is not active).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<u64>)]
    pub max_steps: Option<Option<u64>>,
    /// Delegation depth of the leaf.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub depth: Option<u32>,
    /// Number of links in the chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub links: Option<u32>,
}

/// The holder key confirmation of an introspected remit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HolderKey {
    /// RFC 7638 thumbprint of the holder key.
    pub jkt: String,
}

/// RFC 7009 revocation answer (empty unless something was revoked now).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OAuthRevoked {
    /// Index of the revoke receipt, when this request revoked the remit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub receipt_id: Option<u64>,
}
