//! `POST /oauth/token`: RFC 8693 token exchange. Its errors are RFC 6749
//! §5.2 JSON ([`OAuthError`]), not problem documents.

use remit_token::{Actor, Grant};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// `POST /oauth/token` success (RFC 8693 §2.2.1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct TokenExchanged {
    /// The issued chain text (`custody root~actor remit`, or one root
    /// remit for an ID-token subject).
    pub access_token: String,
    /// The remit token type.
    #[schema(value_type = crate::doc::RemitTokenType)]
    pub issued_token_type: String,
    /// `N_A`: a remit is used with a proof of possession, never as a bearer token.
    pub token_type: String,
    /// Seconds until the issued remit expires.
    pub expires_in: u64,
    /// The grants the issued remit carries.
    #[schema(value_type = Vec<crate::doc::Grant>)]
    pub authorization_details: Vec<Grant>,
    /// The leaf's token id.
    pub jti: String,
    /// The root's token id.
    pub root: String,
    /// The user (ID-token subjects only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub sub: Option<String>,
    /// The acting agent, with nested `act` for a delegation.
    #[schema(value_type = Object)]
    pub act: Actor,
    /// The policy version the decision was made with.
    pub policy: Option<String>,
    /// Index of the `delegate` (or `issue`) receipt.
    pub receipt_id: u64,
}

/// An RFC 6749 §5.2 error code of `/oauth/token`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OAuthErrorCode {
    /// A parameter is missing, repeated or malformed, or the body is not a form.
    InvalidRequest,
    /// The subject or actor token is invalid, expired, revoked or
    /// replayed, or the policy refused.
    InvalidGrant,
    /// `audience` or `resource` names another server.
    InvalidTarget,
    /// The requested grants are malformed or wider than the subject's (RFC 9396).
    InvalidAuthorizationDetails,
    /// The DPoP proof of the subject leaf's key is missing, malformed or
    /// replayed (RFC 9449 §5).
    InvalidDpopProof,
    /// `grant_type` is not token exchange.
    UnsupportedGrantType,
    /// The server failed (HTTP 500); details are in its log.
    ServerError,
}

impl OAuthErrorCode {
    /// The code as written on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidGrant => "invalid_grant",
            Self::InvalidTarget => "invalid_target",
            Self::InvalidAuthorizationDetails => "invalid_authorization_details",
            Self::InvalidDpopProof => "invalid_dpop_proof",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::ServerError => "server_error",
        }
    }
}

/// An RFC 6749 §5.2 error answer (`application/json`, not a problem document).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct OAuthError {
    /// The error code.
    pub error: OAuthErrorCode,
    /// What went wrong, in words.
    pub error_description: String,
    /// For a policy refusal: `policy-denied` or `policy-escalated`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub remit_reason: Option<String>,
    /// For a policy refusal: the policies that decided.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub policy_ids: Option<Vec<String>>,
    /// For a policy refusal: the policy version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    pub policy_version: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_are_written_as_their_words() {
        for code in [
            OAuthErrorCode::InvalidRequest,
            OAuthErrorCode::InvalidGrant,
            OAuthErrorCode::InvalidTarget,
            OAuthErrorCode::InvalidAuthorizationDetails,
            OAuthErrorCode::InvalidDpopProof,
            OAuthErrorCode::UnsupportedGrantType,
            OAuthErrorCode::ServerError,
        ] {
            assert_eq!(
                serde_json::to_value(code).unwrap_or_default(),
                code.as_str()
            );
        }
    }
}
