//! Health and discovery: liveness, readiness, the issuer's JWKS and the
//! RFC 8414 authorization server metadata.

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use remit_api::{Health, Readiness, ServerMetadata};
use remit_store::Store;

use crate::problem::Problem;
use crate::state::AppState;

#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "The process is up", body = remit_api::Health)))]
/// `GET /healthz`: the process is up.
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "The store answers", body = remit_api::Readiness),
        (status = 503, description = "The store does not answer", body = remit_api::Problem, content_type = "application/problem+json"),
    ))]
/// `GET /readyz`: the store answers.
pub async fn readyz<S: Store>(State(state): State<AppState<S>>) -> Result<Response, Problem> {
    match state.store().ping().await {
        Ok(()) => Ok(Json(Readiness {
            status: "ready".into(),
            backend: state.store().backend().to_string(),
            revocation_epoch: state.revocations().epoch(),
        })
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
    responses((status = 200, description = "The issuer keys remits are verified with", body = remit_api::Jwks, content_type = "application/jwk-set+json")))]
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
    responses((status = 200, description = "RFC 8414 authorization server metadata", body = remit_api::ServerMetadata)))]
pub async fn metadata<S: Store>(State(state): State<AppState<S>>) -> Json<ServerMetadata> {
    let base = &state.settings().public_url;
    let words = |words: &[&str]| words.iter().map(|w| (*w).to_owned()).collect::<Vec<_>>();
    Json(ServerMetadata {
        issuer: base.clone(),
        jwks_uri: format!("{base}/.well-known/jwks.json"),
        introspection_endpoint: format!("{base}/oauth/introspect"),
        revocation_endpoint: format!("{base}/oauth/revoke"),
        introspection_endpoint_auth_methods_supported: words(&["bearer"]),
        revocation_endpoint_auth_methods_supported: words(&["bearer"]),
        authorization_details_types_supported: words(&["remit_tool"]),
        dpop_signing_alg_values_supported: words(&["ES256"]),
        response_types_supported: Vec::new(),
        token_endpoint: format!("{base}/oauth/token"),
        grant_types_supported: words(&[crate::exchange::GRANT_TYPE]),
        token_endpoint_auth_methods_supported: words(&["none"]),
    })
}
