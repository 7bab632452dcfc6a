//! `/v1/approvals`: calls the policy held for a human, and the shadow-mode
//! switches. An approval is bound to the hash of one exact call (remit,
//! server, tool, arguments) — or of one exact `resources/read` (URI) or
//! `prompts/get` (name and arguments), whose `tool` is then
//! `<server>/resources/read` or `<server>/prompts/get` — and releases it
//! once: the agent retries the same request and the gateway consumes the
//! approval (`pipeline::hold`).

use crate::Gateway;
use axum::extract::{Path, State};
use axum::Json;
use remit_api::{Approval, ApprovalList, ShadowState};
pub use remit_api::{Decide, Shadow};
use remit_ledger::{Actor, ActorKind, Event, Kind};
use remit_store::{Id, Store, Verdict};

use crate::problem::{JsonBody, Problem};
use remit_runtime::state::{now, now_ms};

/// `GET /v1/approvals`: pending approvals, oldest first.
#[utoipa::path(get, path = "/v1/approvals", tag = "gateway", security(("admin_token" = [])),
    responses((status = 200, description = "Pending approvals, oldest first", body = remit_api::ApprovalList)))]
pub async fn list<S: Store>(
    State(state): State<Gateway<S>>,
) -> Result<Json<ApprovalList>, Problem> {
    let pending = state.store().pending_approvals().await?;
    Ok(Json(ApprovalList {
        approvals: pending.iter().map(Approval::from).collect(),
    }))
}

/// `GET /v1/approvals/{id}`.
#[utoipa::path(get, path = "/v1/approvals/{id}", tag = "gateway", security(("admin_token" = [])),
    params(("id" = String, Path, description = "The approval id", pattern = "^[A-Za-z0-9.:_@/-]{1,200}$")),
    responses((status = 200, description = "The approval", body = remit_api::Approval)))]
pub async fn show<S: Store>(
    State(state): State<Gateway<S>>,
    Path(id): Path<String>,
) -> Result<Json<Approval>, Problem> {
    let approval = state
        .store()
        .approval(&Id::parse("approval id", id)?)
        .await?;
    Ok(Json(Approval::from(&approval)))
}

/// Who a decision is recorded as: the OIDC user of an admin authenticated
/// by an ID token (a `by` naming someone else is refused, not ignored);
/// for the admin token, the body's `by` label or `admin`.
fn decided_by(by: Option<String>, identity: Option<String>) -> Result<String, Problem> {
    match (identity, by) {
        (Some(user), Some(by)) if by != user => Err(Problem::new(
            axum::http::StatusCode::FORBIDDEN,
            "decider-mismatch",
            "Cannot decide for someone else",
            format!("you are authenticated as {user:?}; a decision cannot be recorded as {by:?} (omit `by`)"),
        )),
        (Some(user), _) => Ok(user),
        (None, Some(by)) => {
            Id::parse("by", by.as_str())?;
            Ok(by)
        }
        (None, None) => Ok("admin".into()),
    }
}

async fn decide<S: Store>(
    state: &Gateway<S>,
    id: String,
    verdict: Verdict,
    body: axum::body::Bytes,
) -> Result<Json<Approval>, Problem> {
    let body: Decide = super::bless::optional_json(&body)?;
    let by = decided_by(body.by, remit_runtime::oidc::admin_identity())?;
    let id = Id::parse("approval id", id)?;
    let approval = state
        .store()
        .decide_approval(&id, verdict, &by, i64::try_from(now()).unwrap_or(i64::MAX))
        .await?;
    let mut event = Event::new(
        if verdict == Verdict::Approve {
            Kind::Approve
        } else {
            Kind::Reject
        },
        now_ms(),
    );
    event.leaf_jti = Some(approval.remit_jti.to_string());
    event.tool = Some(format!("mcp:{}", approval.tool));
    event.actors = vec![
        Actor {
            id: by.clone(),
            kind: ActorKind::User,
        },
        Actor {
            id: approval.agent.to_string(),
            kind: ActorKind::Agent,
        },
    ];
    event.approval = Some(remit_ledger::Approval {
        approver: by,
        id: approval.id.to_string(),
    });
    let receipt = state.record(event).await?;
    let mut out = Approval::from(&approval);
    out.receipt_id = Some(receipt);
    Ok(Json(out))
}

/// `POST /v1/approvals/{id}/approve`.
#[utoipa::path(post, path = "/v1/approvals/{id}/approve", tag = "gateway", security(("admin_token" = [])),
    params(("id" = String, Path, description = "The approval id", pattern = "^[A-Za-z0-9.:_@/-]{1,200}$")),
    request_body(content = Option<Decide>, description = "Optional", content_type = "application/json"),
    responses(
        (status = 200, description = "Approved: the same call may now run once", body = remit_api::Approval),
        (status = 409, description = "Already decided, or expired", body = remit_api::Problem, content_type = "application/problem+json"),
    ))]
pub async fn approve<S: Store>(
    State(state): State<Gateway<S>>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Approval>, Problem> {
    decide(&state, id, Verdict::Approve, body).await
}

/// `POST /v1/approvals/{id}/reject`.
#[utoipa::path(post, path = "/v1/approvals/{id}/reject", tag = "gateway", security(("admin_token" = [])),
    params(("id" = String, Path, description = "The approval id", pattern = "^[A-Za-z0-9.:_@/-]{1,200}$")),
    request_body(content = Option<Decide>, description = "Optional", content_type = "application/json"),
    responses(
        (status = 200, description = "Rejected", body = remit_api::Approval),
        (status = 409, description = "Already decided, or expired", body = remit_api::Problem, content_type = "application/problem+json"),
    ))]
pub async fn reject<S: Store>(
    State(state): State<Gateway<S>>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Approval>, Problem> {
    decide(&state, id, Verdict::Reject, body).await
}

fn shadow_state(config: &super::GatewayConfig) -> ShadowState {
    ShadowState {
        agents: config.shadow_agents.iter().cloned().collect(),
        servers: config.shadow_servers.iter().cloned().collect(),
    }
}

/// `GET /v1/gateway/shadow`: who runs in shadow mode.
#[utoipa::path(get, path = "/v1/gateway/shadow", tag = "gateway", security(("admin_token" = [])),
    responses((status = 200, description = "Agents and servers in shadow mode in this process", body = remit_api::ShadowState)))]
pub async fn shadow_show<S: Store>(State(state): State<Gateway<S>>) -> Json<ShadowState> {
    Json(shadow_state(&state.gateway().config()))
}

/// `POST /v1/gateway/shadow`: switches shadow mode for an agent or a
/// server (in this process; not persisted).
#[utoipa::path(post, path = "/v1/gateway/shadow", tag = "gateway", security(("admin_token" = [])),
    request_body = Shadow,
    responses((status = 200, description = "Who runs in shadow mode now", body = remit_api::ShadowState)))]
pub async fn shadow_set<S: Store>(
    State(state): State<Gateway<S>>,
    JsonBody(body): JsonBody<Shadow>,
) -> Result<Json<ShadowState>, Problem> {
    if body.agent.is_none() == body.server.is_none() {
        return Err(Problem::invalid("name exactly one of agent or server"));
    }
    let mut config = (*state.gateway().config()).clone();
    let (set, value) = match (&body.agent, &body.server) {
        (Some(agent), _) => (&mut config.shadow_agents, agent.clone()),
        (_, Some(server)) => (&mut config.shadow_servers, server.clone()),
        _ => return Err(Problem::invalid("name exactly one of agent or server")),
    };
    Id::parse("shadow target", value.as_str())?;
    if body.enabled {
        set.insert(value);
    } else {
        set.remove(&value);
    }
    let out = shadow_state(&config);
    state.gateway().set_config(config);
    Ok(Json(out))
}
