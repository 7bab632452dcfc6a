//! The HTTP surface: routes, admin authentication, JSON bodies.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use remit_store::{Agent, Id, NewAgent, RevocationKind, RevocationTarget, RiskTier, Store};
use remit_token::{EcPublicJwk, VerifyingKey};
use serde::{Deserialize, Serialize};

use crate::problem::Problem;
use crate::setup::AdminTokenHash;

/// Largest request body accepted, in bytes. Registrations are a few hundred.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Everything a request handler needs.
#[derive(Debug)]
pub struct AppState<S> {
    store: S,
    jwks: Arc<serde_json::Value>,
    admin_token: Arc<AdminTokenHash>,
    clock: fn() -> i64,
}

impl<S: Clone> Clone for AppState<S> {
    fn clone(&self) -> Self {
        Self {
            store: self.store.clone(),
            jwks: Arc::clone(&self.jwks),
            admin_token: Arc::clone(&self.admin_token),
            clock: self.clock,
        }
    }
}

/// Seconds since the Unix epoch, from the system clock.
pub fn system_clock() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

impl<S: Store> AppState<S> {
    /// State for a server on `store`, publishing `issuer`'s public key and
    /// admitting admin requests bearing the token hashed in `admin_token`.
    pub fn new(store: S, issuer: &dyn remit_token::Signer, admin_token: AdminTokenHash) -> Self {
        let jwk = issuer.public_jwk().clone().published(issuer.key_id());
        Self {
            store,
            jwks: Arc::new(serde_json::json!({ "keys": [jwk] })),
            admin_token: Arc::new(admin_token),
            clock: system_clock,
        }
    }
}

/// The router with every route, body limit and fallback in place.
pub fn router<S: Store>(state: AppState<S>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz::<S>))
        .route("/.well-known/jwks.json", get(jwks::<S>))
        .route(
            "/v1/agents",
            post(register_agent::<S>).get(list_agents::<S>),
        )
        .route("/v1/agents/{id}", get(show_agent::<S>))
        .route("/v1/agents/{id}/disable", post(disable_agent::<S>))
        .fallback(|| async { Problem::not_found("no such route") })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// Proof that the request carried the admin token.
#[derive(Debug)]
pub struct Admin;

impl<S: Store> FromRequestParts<AppState<S>> for Admin {
    type Rejection = Problem;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState<S>,
    ) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(Problem::unauthorized(
                "send the admin token as `Authorization: Bearer <token>`",
            ));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| {
                Problem::unauthorized("the Authorization header must be `Bearer <token>`")
            })?;
        if state.admin_token.matches(token.trim()) {
            Ok(Admin)
        } else {
            Err(Problem::unauthorized("the admin token is not valid"))
        }
    }
}

/// A JSON body whose every rejection is a problem+json with the reason.
#[derive(Debug)]
pub struct JsonBody<T>(pub T);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Problem;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_problem(&rejection)),
        }
    }
}

fn json_problem(rejection: &JsonRejection) -> Problem {
    let status = rejection.status();
    let (slug, title) = match status {
        StatusCode::PAYLOAD_TOO_LARGE => ("body-too-large", "Request body too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported-media-type", "JSON expected"),
        StatusCode::BAD_REQUEST => ("malformed-json", "Malformed JSON"),
        _ => ("invalid-request", "Invalid request"),
    };
    let detail = if status == StatusCode::PAYLOAD_TOO_LARGE {
        format!("request bodies are limited to {MAX_BODY_BYTES} bytes")
    } else {
        rejection.body_text()
    };
    Problem::new(status, slug, title, detail)
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn readyz<S: Store>(
    State(state): State<AppState<S>>,
) -> Result<Json<serde_json::Value>, Problem> {
    state.store.ping().await.map_err(|error| {
        tracing::warn!(%error, "not ready");
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not-ready",
            "Not ready",
            "the database does not answer",
        )
    })?;
    Ok(Json(
        serde_json::json!({ "status": "ready", "backend": state.store.backend() }),
    ))
}

async fn jwks<S: Store>(State(state): State<AppState<S>>) -> Json<serde_json::Value> {
    Json((*state.jwks).clone())
}

/// `POST /v1/agents`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegisterAgent {
    /// Defaults to `agt_` and the first 16 characters of the key thumbprint.
    id: Option<String>,
    name: String,
    owner: String,
    #[serde(default = "default_risk")]
    risk_tier: String,
    public_jwk: serde_json::Value,
}

fn default_risk() -> String {
    RiskTier::Medium.as_str().to_owned()
}

/// An agent as the API shows it.
#[derive(Debug, Serialize)]
struct AgentView {
    id: String,
    name: String,
    owner: String,
    risk_tier: RiskTier,
    status: remit_store::Status,
    key_thumbprint: String,
    public_jwk: serde_json::Value,
    created_at: i64,
    updated_at: i64,
}

impl From<Agent> for AgentView {
    fn from(a: Agent) -> Self {
        Self {
            public_jwk: serde_json::from_str(&a.public_jwk).unwrap_or(serde_json::Value::Null),
            id: a.id.to_string(),
            name: a.name,
            owner: a.owner,
            risk_tier: a.risk_tier,
            status: a.status,
            key_thumbprint: a.key_thumbprint,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

async fn register_agent<S: Store>(
    State(state): State<AppState<S>>,
    _admin: Admin,
    JsonBody(body): JsonBody<RegisterAgent>,
) -> Result<(StatusCode, Json<AgentView>), Problem> {
    let jwk_text = body.public_jwk.to_string();
    let jwk = EcPublicJwk::from_json(&jwk_text)
        .map_err(|e| Problem::invalid(format!("public_jwk: {e}")))?;
    VerifyingKey::from_jwk(&jwk).map_err(|e| Problem::invalid(format!("public_jwk: {e}")))?;
    let bare = jwk.bare();
    let thumbprint = bare.thumbprint();
    let id = body
        .id
        .unwrap_or_else(|| format!("agt_{}", thumbprint.as_str().get(..16).unwrap_or_default()));
    let non_empty = |what, text: String| {
        if text.trim().is_empty() || text.len() > 200 {
            Err(Problem::invalid(format!(
                "{what} must be 1 to 200 characters"
            )))
        } else {
            Ok(text)
        }
    };
    let agent = NewAgent {
        id: Id::parse("agent id", id)?,
        name: non_empty("name", body.name)?,
        public_jwk: serde_json::to_string(&bare)
            .map_err(|e| Problem::invalid(format!("public_jwk: {e}")))?,
        key_thumbprint: thumbprint.as_str().to_owned(),
        owner: non_empty("owner", body.owner)?,
        risk_tier: RiskTier::parse(&body.risk_tier)?,
    };
    let stored = state.store.register_agent(&agent, (state.clock)()).await?;
    tracing::info!(agent = %stored.id, "agent registered");
    Ok((StatusCode::CREATED, Json(stored.into())))
}

async fn list_agents<S: Store>(
    State(state): State<AppState<S>>,
    _admin: Admin,
) -> Result<Json<serde_json::Value>, Problem> {
    let agents: Vec<AgentView> = state
        .store
        .agents()
        .await?
        .into_iter()
        .map(AgentView::from)
        .collect();
    Ok(Json(serde_json::json!({ "agents": agents })))
}

async fn show_agent<S: Store>(
    State(state): State<AppState<S>>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<AgentView>, Problem> {
    let id = Id::parse("agent id", id)?;
    Ok(Json(state.store.agent(&id).await?.into()))
}

/// Disables the agent and revokes everything it holds, in that order, so
/// a crash between the two leaves it at least unable to get new remits.
async fn disable_agent<S: Store>(
    State(state): State<AppState<S>>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<AgentView>, Problem> {
    let id = Id::parse("agent id", id)?;
    let now = (state.clock)();
    let agent = state.store.disable_agent(&id, now).await?;
    let target = RevocationTarget {
        kind: RevocationKind::Agent,
        value: id,
    };
    state
        .store
        .revoke(&target, "agent disabled", "admin", now)
        .await?;
    tracing::info!(agent = %agent.id, "agent disabled and revoked");
    Ok(Json(agent.into()))
}
