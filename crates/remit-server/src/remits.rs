//! `/v1/remits`: issuing a root remit to a registered, enabled agent acting
//! for a user. The token is returned once; only facts about it are stored.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use remit_store::{Id, IssuedRemit, RemitFacts, Status, Store};
use remit_token::{mint, Classification, EcPublicJwk, Grant, MintRequest};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::problem::{JsonBody, Problem};
use crate::receipts::events;
use crate::state::{now, now_ms, AppState};

/// Body of `POST /v1/remits`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssueRemit {
    /// The registered agent that will hold it.
    #[schema(pattern = "^[A-Za-z0-9.:_@/-]{1,200}$")]
    pub agent: String,
    /// The user it acts for.
    #[schema(pattern = "^[A-Za-z0-9.:_@/-]{1,200}$")]
    pub sub: String,
    /// What it allows (RFC 9396 `authorization_details`, type `remit_tool`).
    #[schema(value_type = Vec<crate::openapi::schema::Grant>)]
    pub grants: Vec<Grant>,
    /// Lifetime in seconds; the server default when absent.
    #[serde(default)]
    pub ttl_secs: Option<u64>,
    /// Highest classification; INTERNAL when absent.
    #[serde(default)]
    #[schema(value_type = Option<crate::openapi::schema::Classification>)]
    pub class: Option<Classification>,
    /// Tool calls allowed; unlimited when absent.
    #[serde(default)]
    pub max_steps: Option<u64>,
    /// Deepest delegation allowed below it.
    #[serde(default)]
    pub max_depth: Option<u32>,
}

#[utoipa::path(post, path = "/v1/remits", tag = "remits", security(("admin_token" = [])),
    request_body = IssueRemit,
    responses((status = 201, description = "Issued; the token is shown once", body = crate::openapi::schema::IssuedRemit)))]
/// `POST /v1/remits`: mints a remit bound to the agent's registered key.
pub async fn issue<S: Store>(
    State(state): State<AppState<S>>,
    JsonBody(body): JsonBody<IssueRemit>,
) -> Result<(StatusCode, Json<Value>), Problem> {
    let agent_id = Id::parse("agent id", body.agent.as_str())?;
    let sub = Id::parse("user (sub)", body.sub.as_str())?;
    let agent = state.store().agent(&agent_id).await?;
    if agent.status != Status::Active {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "agent-disabled",
            "Agent disabled",
            format!(
                "agent {:?} is disabled; no remit can be issued to it",
                agent.id.as_str()
            ),
        ));
    }
    let kid = state.issuer_kid().to_owned();
    if let Some(target) = state.revocations().find(&RemitFacts {
        chain: &[],
        agent: agent_id.as_str(),
        sub: sub.as_str(),
        kids: &[kid.as_str()],
        tool: None,
    }) {
        return Err(Problem::new(
            StatusCode::FORBIDDEN,
            "revoked",
            "Revoked",
            format!(
                "{} {:?} is revoked; no remit can be issued for it",
                target.kind,
                target.value.as_str()
            ),
        ));
    }
    let holder = EcPublicJwk::from_json(&agent.public_jwk)
        .map_err(|e| Problem::internal("reading the agent key", &e))?;
    let mut request = MintRequest::new(sub.as_str(), agent_id.as_str(), holder, body.grants);
    request.issuer.clone_from(&state.settings().public_url);
    request.audience.clone_from(&state.settings().audience);
    request.ttl_secs = body.ttl_secs.unwrap_or(state.settings().default_ttl_secs);
    if let Some(class) = body.class {
        request.class = class;
    }
    request.max_steps = body.max_steps;
    if let Some(depth) = body.max_depth {
        request.max_depth = depth;
    }
    let issued_at = now();
    let remit = mint(state.issuer(), &request, issued_at)
        .map_err(|e| Problem::invalid(format!("cannot issue this remit: {e}")))?;
    let claims = remit.claims();
    let jti = Id::parse("remit jti", claims.jti.as_str())?;
    let record = IssuedRemit {
        jti: jti.clone(),
        root_jti: jti,
        parent_jti: None,
        holder_thumbprint: claims.cnf.jkt.as_str().to_owned(),
        sub,
        agent: agent_id,
        issued_at: to_i64(claims.iat),
        expires_at: to_i64(claims.exp),
        max_steps: claims.max_steps.map(to_i64),
    };
    state.store().record_remit(&record).await?;
    let receipt = state
        .record(events::remit_issued(
            record.jti.as_str(),
            record.sub.as_str(),
            record.agent.as_str(),
            now_ms(),
        ))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "remit": remit.compact(),
            "jti": claims.jti,
            "sub": claims.sub,
            "agent": claims.act.sub,
            "iat": claims.iat,
            "exp": claims.exp,
            "holder": claims.cnf.jkt,
            "token_type": "remit+jwt",
            "receipt_id": receipt,
        })),
    ))
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
