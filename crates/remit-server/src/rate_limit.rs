//! The per-peer limit on unauthenticated requests: a 429 with
//! `Retry-After` once a peer's bucket is empty, and every 401 counted by
//! reason ([`remit_runtime::anonymous`]).

use std::net::SocketAddr;
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use remit_runtime::anonymous::RefusalReason;
use remit_store::Store;

use crate::problem::Problem;
use crate::state::AppState;

/// The reason code of a 401 that carries no [`RefusalReason`].
const UNLABELLED: &str = "unauthorized";

/// Middleware over the whole router: answers 429 to a peer whose bucket
/// is empty, and counts (and charges the peer for) every 401 the handlers
/// give. Neither writes a receipt; [`remit_runtime::start::write_summary`] does, periodically.
pub async fn limit<S: Store>(
    State(state): State<AppState<S>>,
    request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip());
    let refusals = state.refusals();
    // A request that presents credentials is judged on them, so a caller
    // sharing an address with a flood (a NAT, a test host) is still served;
    // if its credentials fail it is counted like any other 401.
    let presents_credentials = request.headers().contains_key(header::AUTHORIZATION);
    let blocked = peer
        .filter(|_| !presents_credentials)
        .and_then(|p| refusals.blocked(p, Instant::now()));
    if let Some(wait) = blocked {
        refusals.refused(None, "rate_limited", Instant::now());
        let mut response = Problem::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate-limited",
            "Too many unauthenticated requests",
            format!(
                "this address sent too many requests without valid credentials; retry after {} s with credentials",
                wait.as_secs()
            ),
        )
        .into_response();
        if let Ok(value) = HeaderValue::from_str(&wait.as_secs().to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    let response = next.run(request).await;
    if response.status() == StatusCode::UNAUTHORIZED {
        let reason = response
            .extensions()
            .get::<RefusalReason>()
            .map_or(UNLABELLED, |r| r.0);
        refusals.refused(peer, reason, Instant::now());
    }
    response
}
