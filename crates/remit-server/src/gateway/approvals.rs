//! `/v1/approvals`: calls the policy held for a human, and the shadow-mode
//! switches. An approval is bound to the hash of one exact call (remit,
//! server, tool, arguments) — or of one exact `resources/read` (URI) or
//! `prompts/get` (name and arguments), whose `tool` is then
//! `<server>/resources/read` or `<server>/prompts/get` — and releases it
//! once: the agent retries the same request and the gateway consumes the
//! approval ([`super::hold`]).

use axum::extract::{Path, State};
use axum::Json;
use remit_ledger::{Actor, ActorKind, Event, Kind};
use remit_store::{Approval, Id, Store, Verdict};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::problem::{JsonBody, Problem};
use crate::state::{now, now_ms, AppState};

/// Body of an approve or reject (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decide {
    /// Who decides; `admin` when absent.
    #[serde(default)]
    pub by: Option<String>,
}

/// An approval as the API shows it.
pub fn approval_json(a: &Approval) -> Value {
    json!({
        "id": a.id.as_str(),
        "agent": a.agent.as_str(),
        "remit_jti": a.remit_jti.as_str(),
        "tool": a.tool.as_str(),
        "call_hash": a.call_hash,
        "summary": a.summary,
        "state": a.state,
        "requested_at": a.requested_at,
        "expires_at": a.expires_at,
        "decided_by": a.decided_by,
        "decided_at": a.decided_at,
        "consumed_at": a.consumed_at,
    })
}

/// `GET /v1/approvals`: pending approvals, oldest first.
pub async fn list<S: Store>(State(state): State<AppState<S>>) -> Result<Json<Value>, Problem> {
    let pending = state.store().pending_approvals().await?;
    Ok(Json(json!({
        "approvals": pending.iter().map(approval_json).collect::<Vec<_>>()
    })))
}

/// `GET /v1/approvals/{id}`.
pub async fn show<S: Store>(
    State(state): State<AppState<S>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, Problem> {
    let approval = state
        .store()
        .approval(&Id::parse("approval id", id)?)
        .await?;
    Ok(Json(approval_json(&approval)))
}

async fn decide<S: Store>(
    state: &AppState<S>,
    id: String,
    verdict: Verdict,
    body: axum::body::Bytes,
) -> Result<Json<Value>, Problem> {
    let body: Decide = super::bless::optional_json(&body)?;
    let by = body.by.unwrap_or_else(|| "admin".into());
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
    let mut out = approval_json(&approval);
    out["receipt_id"] = json!(receipt);
    Ok(Json(out))
}

/// `POST /v1/approvals/{id}/approve`.
pub async fn approve<S: Store>(
    State(state): State<AppState<S>>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, Problem> {
    decide(&state, id, Verdict::Approve, body).await
}

/// `POST /v1/approvals/{id}/reject`.
pub async fn reject<S: Store>(
    State(state): State<AppState<S>>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, Problem> {
    decide(&state, id, Verdict::Reject, body).await
}

/// Body of `POST /v1/gateway/shadow`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shadow {
    /// An agent to put in (or take out of) shadow mode.
    #[serde(default)]
    pub agent: Option<String>,
    /// A server to put in (or take out of) shadow mode.
    #[serde(default)]
    pub server: Option<String>,
    /// On or off.
    pub enabled: bool,
}

fn shadow_json(config: &super::GatewayConfig) -> Value {
    json!({
        "agents": config.shadow_agents,
        "servers": config.shadow_servers,
    })
}

/// `GET /v1/gateway/shadow`: who runs in shadow mode.
pub async fn shadow_show<S: Store>(State(state): State<AppState<S>>) -> Json<Value> {
    Json(shadow_json(&state.gateway().config()))
}

/// `POST /v1/gateway/shadow`: switches shadow mode for an agent or a
/// server (in this process; not persisted).
pub async fn shadow_set<S: Store>(
    State(state): State<AppState<S>>,
    JsonBody(body): JsonBody<Shadow>,
) -> Result<Json<Value>, Problem> {
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
    let out = shadow_json(&config);
    state.gateway().set_config(config);
    Ok(Json(out))
}
