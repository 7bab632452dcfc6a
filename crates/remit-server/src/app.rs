//! The router: public endpoints, the admin-authenticated API, body limits
//! and problem+json for everything that goes wrong.

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use remit_store::Store;

use crate::gateway::Gateway;
use crate::problem::Problem;
use crate::state::AppState;
use crate::{discovery, observe, openapi};
use crate::{receipts_api, registry, remits, revocation};

/// Builds the whole HTTP application over `gateway` (the control plane's
/// handlers take the application state it carries).
pub fn router<S: Store>(gateway: Gateway<S>) -> Router {
    let state = gateway.app().clone();
    let limit = state.settings().max_body_bytes;
    let admin = Router::new()
        .route(
            "/v1/agents",
            get(registry::list_agents::<S>).post(registry::register_agent::<S>),
        )
        .route("/v1/agents/{id}", get(registry::get_agent::<S>))
        .route(
            "/v1/agents/{id}/disable",
            post(registry::disable_agent::<S>),
        )
        .route(
            "/v1/servers",
            get(registry::list_servers::<S>).post(registry::add_server::<S>),
        )
        .route(
            "/v1/servers/{id}/disable",
            post(registry::disable_server::<S>),
        )
        .route(
            "/v1/servers/{id}/tools",
            get(registry::list_tools::<S>).post(registry::add_tool::<S>),
        )
        .route("/v1/remits", post(remits::issue::<S>))
        .route(
            "/v1/revocations",
            get(revocation::list::<S>).post(revocation::revoke::<S>),
        )
        .route("/v1/receipts", get(receipts_api::leaves::<S>))
        .route("/oauth/introspect", post(revocation::introspect::<S>))
        .route("/oauth/revoke", post(revocation::oauth_revoke::<S>))
        .merge(crate::gateway::admin_routes::<S>())
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_admin::<S>,
        ));
    let metrics_route = Router::new().route("/metrics", get(observe::handler));
    let metrics_route = if state.settings().metrics_require_admin {
        metrics_route.route_layer(middleware::from_fn_with_state(
            state.clone(),
            require_admin::<S>,
        ))
    } else {
        metrics_route
    };
    Router::new()
        .route("/healthz", get(discovery::healthz))
        .route("/readyz", get(discovery::readyz::<S>))
        .route("/.well-known/jwks.json", get(discovery::jwks::<S>))
        .route(
            "/v1/checkpoints/latest",
            get(receipts_api::latest_checkpoint::<S>),
        )
        .route(
            "/.well-known/oauth-authorization-server",
            get(discovery::metadata::<S>),
        )
        .route("/oauth/token", post(crate::exchange::token::<S>))
        .merge(admin)
        .merge(crate::gateway::routes::<S>())
        .route("/openapi.json", get(openapi::document_handler::<S>))
        .merge(metrics_route)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            crate::rate_limit::limit::<S>,
        ))
        .layer(middleware::from_fn(observe::observe))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(gateway)
}

async fn not_found(request: Request) -> Problem {
    Problem::new(
        StatusCode::NOT_FOUND,
        "not-found",
        "Not found",
        format!(
            "no endpoint at {}",
            crate::bounded::caller_text(request.uri().path())
        ),
    )
}

async fn method_not_allowed(request: Request) -> Problem {
    Problem::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method-not-allowed",
        "Method not allowed",
        format!(
            "{} is not allowed on {}",
            request.method(),
            crate::bounded::caller_text(request.uri().path())
        ),
    )
}

/// Refuses a request without the admin bearer token. The presented token is
/// hashed and the hashes compared in constant time, so neither the token
/// nor its length leaks through timing.
async fn require_admin<S: Store>(
    State(state): State<AppState<S>>,
    request: Request,
    next: Next,
) -> Response {
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|value| value.to_str().unwrap_or(""));
    let Some(value) = presented else {
        return unauthenticated(
            Problem::unauthorized(
                "this endpoint needs `Authorization: Bearer <admin token>` (printed by the first `remit serve`)",
                "Bearer realm=\"remit\"",
            ),
            "admin_missing",
        );
    };
    let token = match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("bearer") => token.trim(),
        _ => {
            return unauthenticated(
                Problem::unauthorized(
                    "the Authorization header must use the Bearer scheme",
                    "Bearer realm=\"remit\", error=\"invalid_request\"",
                ),
                "admin_scheme",
            )
        }
    };
    let hash = crate::setup::sha256(token.as_bytes());
    if aws_lc_rs::constant_time::verify_slices_are_equal(&hash, state.admin_hash()).is_ok() {
        return next.run(request).await;
    }
    let oidc = &state.settings().oidc;
    if !oidc.is_enabled() || token.split('.').count() != 3 {
        return unauthenticated(
            Problem::unauthorized(
                "the admin token is not valid for this server",
                "Bearer realm=\"remit\", error=\"invalid_token\"",
            ),
            "admin_invalid",
        );
    }
    // An ID token from a trusted issuer whose admin claim matches.
    let identity = match oidc.verify(token, crate::state::now()).await {
        Ok(identity) => identity,
        Err(error) => {
            return unauthenticated(
                Problem::unauthorized(
                    format!("neither the admin token nor a valid ID token: {error}"),
                    "Bearer realm=\"remit\", error=\"invalid_token\"",
                ),
                "admin_id_token",
            )
        }
    };
    if !identity.admin {
        let endpoint = format!(
            "admin:{} {}",
            request.method(),
            crate::bounded::caller_text(request.uri().path())
        );
        return refuse_identity(&state, &identity, endpoint).await;
    }
    crate::oidc::as_admin_identity(identity.user, next.run(request)).await
}

/// A 401 labelled with its reason code for the unauthenticated counters.
fn unauthenticated(problem: Problem, reason: &'static str) -> Response {
    let mut response = problem.into_response();
    response
        .extensions_mut()
        .insert(crate::anonymous::RefusalReason(reason));
    response
}

/// 403 for a valid ID token without the admin role, after a `deny`
/// receipt naming the identity and the endpoint.
async fn refuse_identity<S: Store>(
    state: &AppState<S>,
    identity: &crate::oidc::Identity,
    endpoint: String,
) -> Response {
    let mut event = remit_ledger::Event::new(remit_ledger::Kind::Deny, crate::state::now_ms());
    event.actors = vec![remit_ledger::Actor {
        id: identity.user.clone(),
        kind: remit_ledger::ActorKind::User,
    }];
    event.tool = Some(endpoint);
    if let Err(problem) = state.record(event).await {
        return Problem::from(problem).into_response();
    }
    Problem::new(
        StatusCode::FORBIDDEN,
        "not-admin",
        "Not an administrator",
        format!(
            "{} (issuer {}) is authenticated but its ID token does not carry this server's admin claim",
            identity.user, identity.issuer
        ),
    )
    .into_response()
}
