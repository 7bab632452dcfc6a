//! Health and discovery: liveness, readiness, the issuer's JWKS and the
//! RFC 8414 authorization server metadata.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use remit_store::Store;

use crate::problem::Problem;
use crate::state::AppState;

#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "The process is up", body = crate::gateway::schema::Health)))]
/// `GET /healthz`: the process is up.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "The store answers", body = crate::gateway::schema::Readiness),
        (status = 503, description = "The store does not answer", body = crate::gateway::schema::Problem, content_type = "application/problem+json"),
    ))]
/// `GET /readyz`: the store answers.
pub async fn readyz<S: Store>(State(state): State<AppState<S>>) -> Result<Response, Problem> {
    match state.store().ping().await {
        Ok(()) => Ok(Json(serde_json::json!({
            "status": "ready",
            "backend": state.store().backend(),
            "revocation_epoch": state.revocations().epoch(),
        }))
        .into_response()),
        Err(error) => {
            tracing::warn!(%error, "readiness check failed");
            Err(Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not-ready",
                "Not ready",
                format!("the {} store does not answer", state.store().backend()),
            ))
        }
    }
}

#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "discovery",
    responses((status = 200, description = "The issuer keys remits are verified with", body = crate::gateway::schema::Jwks, content_type = "application/jwk-set+json")))]
/// `GET /.well-known/jwks.json`: the issuer keys remits are verified with.
pub async fn jwks<S: Store>(State(state): State<AppState<S>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/jwk-set+json")],
        state.jwks_document().to_string(),
    )
        .into_response()
}

/// RFC 8414 authorization server metadata.
#[utoipa::path(get, path = "/.well-known/oauth-authorization-server", tag = "discovery",
    responses((status = 200, description = "RFC 8414 authorization server metadata", body = crate::gateway::schema::ServerMetadata)))]
pub async fn metadata<S: Store>(State(state): State<AppState<S>>) -> Json<serde_json::Value> {
    let base = &state.settings().public_url;
    Json(serde_json::json!({
        "issuer": base,
        "jwks_uri": format!("{base}/.well-known/jwks.json"),
        "introspection_endpoint": format!("{base}/oauth/introspect"),
        "revocation_endpoint": format!("{base}/oauth/revoke"),
        "introspection_endpoint_auth_methods_supported": ["bearer"],
        "revocation_endpoint_auth_methods_supported": ["bearer"],
        "authorization_details_types_supported": ["remit_tool"],
        "dpop_signing_alg_values_supported": ["ES256"],
        "response_types_supported": [],
        "token_endpoint": format!("{base}/oauth/token"),
        "grant_types_supported": [crate::exchange::GRANT_TYPE],
        "token_endpoint_auth_methods_supported": ["none"],
    }))
}
