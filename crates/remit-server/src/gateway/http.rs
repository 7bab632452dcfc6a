//! The streamable HTTP transport: `POST /mcp/{server}` carries one
//! JSON-RPC message and gets a JSON answer (or 202 for a notification);
//! `GET` is 405 (no server-initiated stream); `DELETE` ends the session.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use remit_ledger::Kind;
use remit_store::{Id, McpServer, Status, Store, StoreError};
use serde_json::{json, Value};

use super::auth::{self, AuthError, Caller};
use super::jsonrpc::{self, FrameError};
use super::pipeline::{self, Answer, Facts, Refusal};
use crate::state::{now, AppState};

/// The session header of MCP streamable HTTP.
pub const SESSION_HEADER: &str = "mcp-session-id";

fn json_response(status: StatusCode, body: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

/// A 401 for a caller who is not authenticated. No receipt: it is counted
/// by reason and summarized ([`crate::anonymous`]), so anonymous traffic
/// cannot grow the signed log; the server id is bounded wherever it is
/// echoed.
async fn unauthorized<S: Store>(state: &AppState<S>, server: &str, error: AuthError) -> Response {
    let reason = format!("not authenticated: {error}");
    let reason = crate::bounded::bounded(&reason, crate::bounded::MAX_MESSAGE_TEXT);
    let body = jsonrpc::error(
        None,
        jsonrpc::DENIED,
        reason.clone().into_owned(),
        Some(json!({"reason": reason, "policy_ids": ["gw-unauthenticated"]})),
    );
    let challenge = auth::challenge(
        &state.settings().public_url,
        server,
        Some((error.code(), &error.to_string())),
    );
    let mut response = json_response(StatusCode::UNAUTHORIZED, &body);
    if let Ok(value) = HeaderValue::from_str(&challenge) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
        .extensions_mut()
        .insert(crate::anonymous::RefusalReason(error.reason()));
    response
}

async fn server_for<S: Store>(
    state: &AppState<S>,
    caller: &Caller,
    server: &str,
) -> Result<McpServer, Response> {
    let facts = Facts {
        tool: format!("mcp:{}", crate::bounded::caller_text(server)),
        ..Facts::default()
    };
    let found = match Id::parse("server id", server) {
        Ok(id) => {
            let ttl = state.gateway().config().cache_ttl;
            state
                .gateway()
                .cache()
                .server(state.store(), &id, ttl)
                .await
        }
        Err(e) => Err(e),
    };
    let shown = crate::bounded::caller_text(server);
    let refusal = match found {
        Ok(s) if s.status == Status::Active => return Ok(s),
        Ok(_) => Refusal::gateway(
            jsonrpc::DENIED,
            "gw-server-disabled",
            format!("server {shown:?} is disabled"),
        ),
        Err(StoreError::NotFound { .. }) => Refusal::gateway(
            jsonrpc::DENIED,
            "gw-server-unknown",
            format!("no MCP server {shown:?} is registered with this gateway"),
        ),
        // Not a server id, or one registered before ids were restricted:
        // the store's error says which and what to do.
        Err(e @ StoreError::Invalid { .. }) => {
            Refusal::gateway(jsonrpc::DENIED, "gw-server-id-invalid", e.to_string())
        }
        Err(e) => Refusal {
            kind: Kind::Error,
            code: jsonrpc::DENIED,
            reason: format!("the store failed, so the call is refused: {e}"),
            policy_ids: vec!["gw-store-failed".into()],
            policy_version: None,
        },
    };
    let body = pipeline::refuse(state, Some(caller), None, &facts, refusal, None).await;
    Err(json_response(StatusCode::NOT_FOUND, &body))
}

/// `POST /mcp/{server}`: one JSON-RPC message through the pipeline.
pub async fn post<S: Store>(
    State(state): State<AppState<S>>,
    Path(server): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let caller = match auth::authenticate(&state, &headers, "POST", &server, now()).await {
        Ok(c) => c,
        Err(e) => return unauthorized(&state, &server, e).await,
    };
    let registered = match server_for(&state, &caller, &server).await {
        Ok(s) => s,
        Err(response) => return response,
    };
    if let Some(session) = headers.get(SESSION_HEADER) {
        let known = session
            .to_str()
            .is_ok_and(|s| state.gateway().has_session(s));
        if !known {
            let body = jsonrpc::error(
                None,
                rmcp::model::ErrorCode::INVALID_REQUEST,
                "unknown or ended session; send initialize again".into(),
                None,
            );
            return json_response(StatusCode::NOT_FOUND, &body);
        }
    }
    let config = state.gateway().config();
    let facts = Facts {
        tool: format!("mcp:{server}"),
        ..Facts::default()
    };
    let bytes = match axum::body::to_bytes(body, config.max_body_bytes).await {
        Ok(b) => b,
        Err(_) => {
            let error = FrameError::TooLarge {
                limit: config.max_body_bytes,
            };
            return frame_refusal(&state, &caller, &facts, &error).await;
        }
    };
    let message = match jsonrpc::read(&bytes, config.max_body_bytes, config.max_json_depth) {
        Ok(m) => m,
        Err(error) => return frame_refusal(&state, &caller, &facts, &error).await,
    };
    let initialize = message.method == "initialize" && message.id.is_some();
    match pipeline::handle(&state, &caller, &registered, message).await {
        Answer::Accepted => StatusCode::ACCEPTED.into_response(),
        Answer::Message(body) => {
            let mut response = json_response(StatusCode::OK, &body);
            if initialize && body.get("result").is_some() {
                match state.gateway().open_session() {
                    Ok(session) => {
                        if let Ok(value) = HeaderValue::from_str(&session) {
                            response.headers_mut().insert(SESSION_HEADER, value);
                        }
                    }
                    Err(e) => tracing::error!(%e, "no session id"),
                }
            }
            response
        }
        Answer::InsufficientScope { message, scope } => {
            let mut response = json_response(StatusCode::FORBIDDEN, &message);
            let challenge = format!(
                "DPoP algs=\"ES256\", error=\"insufficient_scope\", scope=\"{}\", resource_metadata=\"{}\"",
                crate::bounded::caller_text(&scope),
                auth::metadata_url(
                    &state.settings().public_url,
                    &crate::bounded::caller_text(&server)
                )
            );
            if let Ok(value) = HeaderValue::from_str(&challenge) {
                response
                    .headers_mut()
                    .insert(header::WWW_AUTHENTICATE, value);
            }
            response
        }
    }
}

async fn frame_refusal<S: Store>(
    state: &AppState<S>,
    caller: &Caller,
    facts: &Facts,
    error: &FrameError,
) -> Response {
    let status = match error {
        FrameError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::BAD_REQUEST,
    };
    let rule = match error {
        FrameError::TooLarge { .. } => "gw-body-too-large",
        FrameError::TooDeep { .. } => "gw-body-too-deep",
        FrameError::InvalidUtf8 { .. } => "gw-body-not-utf8",
        FrameError::Batch => "gw-batch",
        FrameError::Malformed(_) => "gw-body-malformed",
    };
    let refusal = Refusal::gateway(error.code(), rule, error.to_string());
    let body = pipeline::refuse(state, Some(caller), None, facts, refusal, None).await;
    json_response(status, &body)
}

/// `GET /mcp/{server}`: no server-initiated stream is offered.
pub async fn get_stream() -> Response {
    (
        StatusCode::METHOD_NOT_ALLOWED,
        [(header::ALLOW, "POST, DELETE")],
        "this gateway offers no server-initiated stream; POST JSON-RPC messages",
    )
        .into_response()
}

/// `DELETE /mcp/{server}`: ends the caller's session.
pub async fn delete<S: Store>(
    State(state): State<AppState<S>>,
    Path(server): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(e) = auth::authenticate(&state, &headers, "DELETE", &server, now()).await {
        return unauthorized(&state, &server, e).await;
    }
    let closed = headers
        .get(SESSION_HEADER)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|s| state.gateway().close_session(s));
    if closed {
        StatusCode::NO_CONTENT.into_response()
    } else {
        StatusCode::NOT_FOUND.into_response()
    }
}

/// `GET /.well-known/oauth-protected-resource/mcp/{server}` (RFC 9728).
/// The server need not be registered (the metadata says where to get a
/// remit, not whether a call will be allowed), but its id must be one.
#[utoipa::path(get, path = "/.well-known/oauth-protected-resource/mcp/{server}", tag = "discovery",
    params(("server" = String, Path, description = "The MCP server id", pattern = "^[A-Za-z0-9.:_@/-]{1,200}$")),
    responses((status = 200, description = "RFC 9728 protected resource metadata", body = crate::openapi::schema::ProtectedResourceMetadata)))]
pub async fn resource_metadata<S: Store>(
    State(state): State<AppState<S>>,
    Path(server): Path<String>,
) -> Response {
    if let Err(error) = Id::parse("server id", server.as_str()) {
        return crate::problem::Problem::from(error).into_response();
    }
    let base = &state.settings().public_url;
    json_response(
        StatusCode::OK,
        &json!({
            "resource": auth::resource_url(base, &server),
            "authorization_servers": [base],
            "bearer_methods_supported": ["header"],
            "dpop_signing_alg_values_supported": ["ES256"],
            "dpop_bound_access_tokens_required": !state.gateway().config().allow_bearer,
            "resource_name": format!("MCP server {server} through the Remit gateway"),
        }),
    )
}
