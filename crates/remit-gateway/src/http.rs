//! The streamable HTTP transport: `POST /mcp/{server}` carries one
//! JSON-RPC message and gets a JSON answer (or 202 for a notification);
//! `GET` is 405 (no server-initiated stream); `DELETE` ends the session.

use crate::Gateway;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use hyper::body::Bytes;
use remit_ledger::Kind;
use remit_store::{Id, McpServer, Status, Store, StoreError};
use serde_json::{json, Value};

use super::auth::{self, AuthError, Caller};
use super::jsonrpc::{self, FrameError};
use super::origin;
use super::pipeline::{self, Answer, Facts, Refusal};
use remit_runtime::state::now;

/// The session header of MCP streamable HTTP.
pub const SESSION_HEADER: &str = "mcp-session-id";
/// The header a client names its negotiated protocol version in.
pub const PROTOCOL_VERSION_HEADER: &str = "mcp-protocol-version";

/// What a receipt names as the tool of a message to `server`, a path
/// segment the caller chose: the id when it is one (bounded charset and
/// length), else `mcp:?`, never the caller's text.
fn server_label(server: &str) -> String {
    match Id::parse("server id", server) {
        Ok(id) => format!("mcp:{id}"),
        Err(_) => "mcp:?".into(),
    }
}

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
async fn unauthorized<S: Store>(state: &Gateway<S>, server: &str, error: AuthError) -> Response {
    let reason = format!("not authenticated: {error}");
    let reason = remit_runtime::bounded::bounded(&reason, remit_runtime::bounded::MAX_MESSAGE_TEXT);
    let body = jsonrpc::error(
        None,
        jsonrpc::DENIED,
        reason.clone().into_owned(),
        Some(json!({"reason": reason, "policy_ids": ["gw-unauthenticated"]})),
    );
    let mut response = json_response(StatusCode::UNAUTHORIZED, &body);
    let bearer = state.gateway().config().allow_bearer;
    let description = error.to_string();
    let challenges = auth::challenges(
        &state.settings().public_url,
        server,
        bearer,
        Some((error.code(), &description)),
    );
    add_challenges(&mut response, &challenges);
    response
        .extensions_mut()
        .insert(remit_runtime::anonymous::RefusalReason(error.reason()));
    response
}

/// A refused credential that parses (expired, forged, signed by the wrong
/// key, revoked, presented without its proof) gets a `deny` receipt of its
/// own naming what it claimed, marked `unverified`, within a per-minute
/// budget (forged chains cost nothing to make); past it, and for headers
/// that hold no chain, the refusal is only counted.
async fn record_refused_credential<S: Store>(
    state: &Gateway<S>,
    headers: &HeaderMap,
    server: &str,
    error: &AuthError,
) {
    use remit_runtime::receipts::events;
    let Some(text) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .map(|(_, chain)| chain.trim())
    else {
        return;
    };
    let mut event = remit_ledger::Event::new(Kind::Deny, remit_runtime::state::now_ms());
    if !events::claimed_by(&mut event, text) || !state.take_refused_credential_receipt() {
        return;
    }
    let reason = format!("{}: {error}", error.reason());
    let event =
        crate::auth::refused_chain_receipt(state, event, server, "gw-unauthenticated", &reason);
    if let Err(problem) = state.record(event).await {
        tracing::error!(error = %problem, "receipt of a refused credential");
    }
}

fn add_challenges(response: &mut Response, challenges: &[String]) {
    for challenge in challenges {
        if let Ok(value) = HeaderValue::from_str(challenge) {
            response
                .headers_mut()
                .append(header::WWW_AUTHENTICATE, value);
        }
    }
}

/// Refuses a request whose `Host` is not this gateway's or whose `Origin`
/// is present and not allowed (DNS rebinding, MCP transport spec): 403
/// with a JSON-RPC error (`id: null`), before any credential is read.
fn refuse_foreign_origin<S: Store>(state: &Gateway<S>, headers: &HeaderMap) -> Option<Response> {
    let config = state.gateway().config();
    let allowed = origin::Allowed::new(&state.settings().public_url, &config.allowed_origins);
    let refused = origin::check(&allowed, headers).err()?;
    tracing::warn!(%refused, "request refused before authentication");
    let body = jsonrpc::error(
        None,
        rmcp::model::ErrorCode::INVALID_REQUEST,
        refused.to_string(),
        Some(json!({ "reason": refused.to_string(), "policy_ids": [refused.rule()] })),
    );
    Some(json_response(StatusCode::FORBIDDEN, &body))
}

async fn server_for<S: Store>(
    state: &Gateway<S>,
    caller: &Caller,
    server: &str,
) -> Result<McpServer, Response> {
    let facts = Facts {
        tool: server_label(server),
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
    let shown = remit_runtime::bounded::caller_text(server);
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
    State(state): State<Gateway<S>>,
    Path(server): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Some(refused) = refuse_foreign_origin(&state, &headers) {
        return refused;
    }
    let caller = match auth::authenticate(&state, &headers, "POST", &server, now()).await {
        Ok(c) => c,
        Err(e) => {
            record_refused_credential(&state, &headers, &server, &e).await;
            return unauthorized(&state, &server, e).await;
        }
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
    if let Some(version) = headers.get(PROTOCOL_VERSION_HEADER) {
        let known = version
            .to_str()
            .is_ok_and(|v| pipeline::PROTOCOL_VERSIONS.contains(&v));
        if !known {
            let error = FrameError::ProtocolVersion;
            return frame_refusal(&state, &caller, &facts, &error).await;
        }
    }
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
    let progress = pipeline::progress::asked(&message)
        .filter(|_| message.method == "tools/call" && accepts_event_stream(&headers));
    if let Some(token) = progress {
        return with_progress(state, caller, registered, message, token).await;
    }
    let answer = pipeline::handle(&state, &caller, &registered, message).await;
    respond(&state, &caller, &server, initialize, answer)
}

fn accepts_event_stream(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("text/event-stream"))
}

/// A tool call that asked for progress: answered as JSON when no progress
/// came (the status then says what happened, as for any call), else as an
/// SSE stream of the progress notifications, scanned, and then the answer.
async fn with_progress<S: Store>(
    state: Gateway<S>,
    caller: Caller,
    registered: McpServer,
    message: jsonrpc::Incoming,
    token: Value,
) -> Response {
    let (events, mut received) = tokio::sync::mpsc::channel(16);
    let (done, answer) = tokio::sync::oneshot::channel();
    let server = registered.id.to_string();
    let task_state = state.clone();
    let task_caller = caller.clone();
    tokio::spawn(async move {
        let sink = pipeline::progress::ProgressSink { token, events };
        let answer = pipeline::handle_with_progress(
            &task_state,
            &task_caller,
            &registered,
            message,
            Some(&sink),
        )
        .await;
        drop(sink);
        let _ = done.send(answer);
    });
    // Every notification is sent before the answer is made, so the stream
    // closing means the answer is ready.
    let Some(first) = received.recv().await else {
        return match answer.await {
            Ok(answer) => respond(&state, &caller, &server, false, answer),
            Err(_) => json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                &jsonrpc::error(
                    None,
                    rmcp::model::ErrorCode::INTERNAL_ERROR,
                    "the call was interrupted".into(),
                    None,
                ),
            ),
        };
    };
    let (frames, body) = tokio::sync::mpsc::channel::<Bytes>(16);
    tokio::spawn(async move {
        let mut next = Some(first);
        while let Some(event) = next {
            if frames.send(sse_event(&event)).await.is_err() {
                return;
            }
            next = received.recv().await;
        }
        let last = match answer.await {
            Ok(Answer::Message(body) | Answer::InsufficientScope { message: body, .. }) => body,
            Ok(Answer::Accepted) | Err(_) => return,
        };
        let _ = frames.send(sse_event(&last)).await;
    });
    (
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "text/event-stream"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::new(EventStream(body)),
    )
        .into_response()
}

fn sse_event(message: &Value) -> Bytes {
    Bytes::from(format!("event: message\ndata: {message}\n\n"))
}

/// An SSE body fed by a channel of ready-made events.
struct EventStream(tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for EventStream {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|event| event.map(|bytes| Ok(hyper::body::Frame::data(bytes))))
    }
}

/// The HTTP answer for one message's pipeline answer.
fn respond<S: Store>(
    state: &Gateway<S>,
    caller: &Caller,
    server: &str,
    initialize: bool,
    answer: Answer,
) -> Response {
    match answer {
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
            let scope = remit_runtime::bounded::caller_text(&scope);
            let metadata = auth::metadata_url(
                &state.settings().public_url,
                &remit_runtime::bounded::caller_text(server),
            );
            let mut challenges = vec![format!(
                "DPoP algs=\"ES256\", error=\"insufficient_scope\", scope=\"{scope}\", resource_metadata=\"{metadata}\""
            )];
            if !caller.pop() {
                challenges.push(format!(
                    "Bearer error=\"insufficient_scope\", scope=\"{scope}\", resource_metadata=\"{metadata}\""
                ));
            }
            add_challenges(&mut response, &challenges);
            response
        }
    }
}

async fn frame_refusal<S: Store>(
    state: &Gateway<S>,
    caller: &Caller,
    facts: &Facts,
    error: &FrameError,
) -> Response {
    let status = match error {
        FrameError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
        _ => StatusCode::BAD_REQUEST,
    };
    let rule = error.rule();
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
    State(state): State<Gateway<S>>,
    Path(server): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Some(refused) = refuse_foreign_origin(&state, &headers) {
        return refused;
    }
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
    responses((status = 200, description = "RFC 9728 protected resource metadata", body = remit_api::ProtectedResourceMetadata)))]
pub async fn resource_metadata<S: Store>(
    State(state): State<Gateway<S>>,
    Path(server): Path<String>,
) -> Response {
    if let Err(error) = Id::parse("server id", server.as_str()) {
        return crate::problem::Problem::from(error).into_response();
    }
    let base = &state.settings().public_url;
    axum::Json(remit_api::ProtectedResourceMetadata {
        resource: auth::resource_url(base, &server),
        authorization_servers: vec![base.clone()],
        bearer_methods_supported: vec!["header".into()],
        dpop_signing_alg_values_supported: vec!["ES256".into()],
        dpop_bound_access_tokens_required: !state.gateway().config().allow_bearer
            || state.policy_preset() == Some(remit_policy::Preset::Lockdown),
        resource_name: format!("MCP server {server} through the Remit gateway"),
    })
    .into_response()
}
