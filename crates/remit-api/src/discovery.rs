//! Health and discovery: liveness, readiness, keys and metadata.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

/// `GET /healthz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok`.
    pub status: String,
}

/// `GET /readyz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Readiness {
    /// `ready`.
    pub status: String,
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// This process's revocation epoch.
    pub revocation_epoch: i64,
}

/// A JSON Web Key Set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Jwks {
    /// The public keys.
    #[schema(value_type = Vec<Object>)]
    pub keys: Vec<Value>,
}

/// RFC 8414 authorization server metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct ServerMetadata {
    /// The issuer (this server's public URL).
    pub issuer: String,
    /// Where the issuer keys are published.
    pub jwks_uri: String,
    /// RFC 7662 endpoint.
    pub introspection_endpoint: String,
    /// RFC 7009 endpoint.
    pub revocation_endpoint: String,
    /// `bearer`.
    pub introspection_endpoint_auth_methods_supported: Vec<String>,
    /// `bearer`.
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    /// `remit_tool`.
    pub authorization_details_types_supported: Vec<String>,
    /// `ES256`.
    pub dpop_signing_alg_values_supported: Vec<String>,
    /// Empty: this server has no authorization endpoint.
    pub response_types_supported: Vec<String>,
    /// The RFC 8693 token exchange endpoint.
    pub token_endpoint: String,
    /// The token exchange grant type.
    pub grant_types_supported: Vec<String>,
    /// `none`: the actor authenticates with its assertion, not as a client.
    pub token_endpoint_auth_methods_supported: Vec<String>,
}
