//! `/v1/remits`: issuing a root remit to a registered, enabled agent acting
//! for a user. The token is returned once; only facts about it are stored.
//!
//! Issuance asks the live policy the `issue` action (principal
//! `User::"<sub>"`, resource `Agent::"<agent>"`, context from the request:
//! class, steps, tools). Anything but an allow is refused with 403
//! problem+json naming the reason and the determining policy ids, and a
//! `deny` receipt: `policy-denied` for a deny, `policy-escalated` for an
//! escalation (approvals of issuance are not built; the caller must ask
//! an operator to change the policy or the request). An allowed remit
//! carries the policy version (`sha256:...`) in its signed `policy` claim,
//! and the `issue` receipt carries the decision.

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
pub use remit_api::IssueRemit;
use remit_api::{IssuedRemit as Issued, PolicyProblem};
use remit_policy::{Action, ContextInput, DecisionRequest, EntityKind, EntityRef, RequestContext};
use remit_store::{Id, IssuedRemit, RemitFacts, Status, Store};
use remit_token::{mint, Classification, MintRequest, Signer as _};
use serde_json::json;

use crate::problem::{JsonBody, Problem};
use crate::receipts::events;
use crate::state::{now, now_ms, AppState};

#[utoipa::path(post, path = "/v1/remits", tag = "remits", security(("admin_token" = [])),
    request_body = IssueRemit,
    responses((status = 201, description = "Issued; the token is shown once", body = remit_api::IssuedRemit)))]
/// `POST /v1/remits`: mints a remit bound to the agent's registered key.
pub async fn issue<S: Store>(
    State(state): State<AppState<S>>,
    JsonBody(body): JsonBody<IssueRemit>,
) -> Result<Response, Problem> {
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
    let issuer = state.issuer().map_err(|e| {
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "no-issuer-key",
            "Cannot mint here",
            e.to_string(),
        )
    })?;
    let kid = issuer.key_id().to_owned();
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
    let decision = decide_issue(&state, &body, issued_context(&body));
    if decision.verdict() != remit_policy::Verdict::Allow {
        return refuse(&state, &body, &decision).await;
    }
    let holder = crate::registry::stored_agent_key(&agent)?;
    let mut request = MintRequest::new(sub.as_str(), agent_id.as_str(), holder, body.grants);
    request.policy = Some(decision.policy_version().to_owned());
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
    let remit = mint(&*issuer, &request, issued_at)
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
            Some(events::policy_decision(&decision)),
            now_ms(),
        ))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(Issued {
            remit: remit.compact().to_owned(),
            jti: claims.jti.clone(),
            sub: claims.sub.clone(),
            agent: claims.act.sub.clone(),
            iat: claims.iat,
            exp: claims.exp,
            holder: claims.cnf.jkt.as_str().to_owned(),
            token_type: remit_api::REMIT_JWT.to_owned(),
            policy: claims.policy.clone(),
            receipt_id: receipt,
        }),
    )
        .into_response())
}

/// The `issue` context a request describes. Unlimited steps are
/// `u32::MAX`, so a steps rule never reads "0 of 0 used".
pub(crate) fn issued_context(body: &IssueRemit) -> ContextInput {
    let hour = u8::try_from((now() / 3600) % 24).unwrap_or(0);
    ContextInput {
        args: json!({}),
        data_class: body.class.unwrap_or(Classification::Internal),
        pii: Default::default(),
        secrets: Default::default(),
        chain_depth: 0,
        original_user: body.sub.clone(),
        steps_used: 0,
        steps_max: body
            .max_steps
            .map_or(u32::MAX, |s| u32::try_from(s).unwrap_or(u32::MAX)),
        risk_budget_used: 0,
        risk_budget_max: 0,
        hour_utc: hour,
        amr: Default::default(),
        approved: false,
        shadow: false,
        redacted: false,
        remit_tools: body
            .grants
            .iter()
            .flat_map(|g| g.tools.iter().map(|t| t.as_str().to_owned()))
            .collect(),
        remit_models: Default::default(),
        description_hash: None,
    }
}

/// Asks the live policy; any error building the request is a deny whose
/// reason says what was wrong (fail closed).
pub(crate) fn decide_issue<S: Store>(
    state: &AppState<S>,
    body: &IssueRemit,
    context: ContextInput,
) -> remit_policy::Decision {
    let engine = state.policy();
    let request = RequestContext::new(context).and_then(|context| {
        let principal = EntityRef::new(EntityKind::User, body.sub.as_str()).map_err(|e| {
            remit_policy::RequestError::BadContext {
                message: format!("sub: {e}"),
            }
        })?;
        let resource = EntityRef::new(EntityKind::Agent, body.agent.as_str()).map_err(|e| {
            remit_policy::RequestError::BadContext {
                message: format!("agent: {e}"),
            }
        })?;
        DecisionRequest::new(principal, Action::Issue, resource, context)
    });
    match request {
        Ok(request) => engine.decide(&request),
        Err(error) => remit_policy::Decision::invalid_request(&error, engine.version()),
    }
}

/// 403 problem+json for a refused issuance, with the policy's reasons,
/// after recording the refusal.
async fn refuse<S: Store>(
    state: &AppState<S>,
    body: &IssueRemit,
    decision: &remit_policy::Decision,
) -> Result<Response, Problem> {
    let ledger = events::policy_decision(decision);
    let receipt = state
        .record(events::issue_refused(
            &body.sub,
            &body.agent,
            ledger.clone(),
            now_ms(),
        ))
        .await?;
    let problem = if decision.verdict() == remit_policy::Verdict::Escalate {
        Problem::new(
            StatusCode::FORBIDDEN,
            "policy-escalated",
            "Issuance needs an approval",
            format!(
                "the policy holds this issuance for a human approval ({}); approvals of issuance are not supported, so it is refused",
                decision.explanation()
            ),
        )
    } else {
        Problem::new(
            StatusCode::FORBIDDEN,
            "policy-denied",
            "Refused by policy",
            format!(
                "the policy refuses this issuance: {}",
                decision.explanation()
            ),
        )
    };
    let document = PolicyProblem {
        problem: problem.document(),
        reason: decision.reason_code().to_owned(),
        policy_ids: ledger.policy_ids,
        policy_version: decision.policy_version().to_owned(),
        receipt_id: receipt,
    };
    let mut response = (StatusCode::FORBIDDEN, Json(document)).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(crate::problem::PROBLEM_JSON),
    );
    Ok(response)
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
