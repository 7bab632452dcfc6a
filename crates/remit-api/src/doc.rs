//! Schemas for the OpenAPI document only. Each describes a value whose
//! Rust type cannot carry a `utoipa` derive, or a contract the server
//! deliberately parses more loosely than it documents:
//!
//! - [`Grant`], [`GrantType`]: the wire form of `remit_token::Grant`. The
//!   grant type lives in the token core, which does not depend on
//!   `utoipa`; fields holding grants are `remit_token::Grant` and point
//!   here with `value_type` (a test below checks a real grant has these
//!   members).
//! - [`Classification`]: `remit_class::Classification`, uppercase, for the
//!   same reason.
//! - [`TokenExchangeForm`] and its enums: the documented form of
//!   `/oauth/token`. The server reads every parameter as optional text so
//!   it can answer a missing or wrong one with the RFC 6749 error the RFC
//!   asks for (`invalid_request`, `unsupported_grant_type`), which a
//!   typed form would turn into a generic rejection.

use std::collections::BTreeMap;

use serde_json::Value;
use utoipa::ToSchema;

/// A remit's highest data classification (uppercase, as in the token).
#[derive(Debug, ToSchema)]
#[schema(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Classification {
    /// May be published.
    Public,
    /// Inside the organisation.
    Internal,
    /// A need-to-know group.
    Confidential,
    /// Named people only.
    Restricted,
}

/// The only grant type.
#[derive(Debug, ToSchema)]
pub enum GrantType {
    /// Permission to call tools.
    #[schema(rename = "remit_tool")]
    RemitTool,
}

/// One RFC 9396 `authorization_details` entry of type `remit_tool`.
#[derive(Debug, ToSchema)]
pub struct Grant {
    /// Always `remit_tool`.
    #[schema(rename = "type")]
    pub kind: GrantType,
    /// Tool names or globs (`fs.read`, `github.*`), 1 to 64.
    #[schema(min_items = 1, max_items = 64)]
    pub tools: Vec<String>,
    /// Resource globs; unrestricted when absent.
    #[schema(max_items = 64)]
    pub resources: Option<Vec<String>>,
    /// Allowed actions; unrestricted when absent.
    #[schema(max_items = 64)]
    pub actions: Option<Vec<String>>,
    /// Constraints on named arguments (`{"path": {"prefix": "/tmp/"}}`).
    pub args: Option<BTreeMap<String, Value>>,
}

/// The RFC 8693 grant type, the only one `/oauth/token` accepts.
#[derive(Debug, ToSchema)]
pub enum TokenExchangeGrant {
    /// Token exchange.
    #[schema(rename = "urn:ietf:params:oauth:grant-type:token-exchange")]
    TokenExchange,
}

/// What a `subject_token` is.
#[derive(Debug, ToSchema)]
pub enum SubjectTokenType {
    /// A remit chain (`root~...~leaf`).
    #[schema(rename = "urn:remit:params:oauth:token-type:remit")]
    Remit,
    /// A remit chain, named as a JWT.
    #[schema(rename = "urn:ietf:params:oauth:token-type:jwt")]
    Jwt,
    /// An OpenID Connect ID token from a configured issuer.
    #[schema(rename = "urn:ietf:params:oauth:token-type:id_token")]
    IdToken,
}

/// What an `actor_token` is: always a JWT (the agent's assertion).
#[derive(Debug, ToSchema)]
pub enum ActorTokenType {
    /// A JWT.
    #[schema(rename = "urn:ietf:params:oauth:token-type:jwt")]
    Jwt,
}

/// The token type `/oauth/token` issues.
#[derive(Debug, ToSchema)]
pub enum RemitTokenType {
    /// A remit chain.
    #[schema(rename = "urn:remit:params:oauth:token-type:remit")]
    Remit,
}

/// The form of `POST /oauth/token` (RFC 8693 §2.1), sent as
/// `application/x-www-form-urlencoded`, each parameter at most once.
#[derive(Debug, ToSchema)]
pub struct TokenExchangeForm {
    /// The RFC 8693 grant type.
    pub grant_type: TokenExchangeGrant,
    /// The remit chain the actor acts under, or an ID token.
    #[schema(min_length = 1)]
    pub subject_token: String,
    /// What `subject_token` is.
    pub subject_token_type: SubjectTokenType,
    /// The actor's assertion: a compact ES256 JWS signed by its
    /// registered key (`iss` = `sub` = agent id, `aud` = this server,
    /// `exp` at most 300 s ahead, a `jti` used once).
    #[schema(min_length = 1)]
    pub actor_token: String,
    /// Always the JWT token type.
    pub actor_token_type: ActorTokenType,
    /// RFC 9396 grants asked for: a JSON array of `remit_tool` grants, as text.
    #[schema(min_length = 1)]
    pub authorization_details: String,
    /// The token type wanted; only a remit can be issued.
    #[schema(nullable = false)]
    pub requested_token_type: Option<RemitTokenType>,
    /// Must be this server's audience when given.
    #[schema(nullable = false)]
    pub audience: Option<String>,
    /// Must be this server's audience when given.
    #[schema(nullable = false)]
    pub resource: Option<String>,
}

#[cfg(test)]
mod tests {
    use utoipa::PartialSchema as _;

    #[test]
    fn the_grant_schema_names_every_member_a_real_grant_writes() {
        let grant: remit_token::Grant = serde_json::from_value(serde_json::json!({
            "type": "remit_tool",
            "tools": ["fs/read"],
            "resources": ["/tmp/*"],
            "actions": ["read"],
            "args": {"path": {"prefix": "/tmp/"}},
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        let written = serde_json::to_value(&grant).unwrap_or_default();
        let schema = serde_json::to_value(super::Grant::schema()).unwrap_or_default();
        let members = written
            .as_object()
            .map(|m| m.keys().cloned().collect::<Vec<_>>());
        for member in members.unwrap_or_default() {
            assert!(
                schema["properties"][&member].is_object(),
                "grant member {member} is not in the document's Grant"
            );
        }
        let class =
            serde_json::to_value(remit_class::Classification::Restricted).unwrap_or_default();
        let schema = serde_json::to_value(super::Classification::schema()).unwrap_or_default();
        assert!(schema.to_string().contains(class.as_str().unwrap_or("?")));
    }
}
