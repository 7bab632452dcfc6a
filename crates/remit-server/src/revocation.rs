//! Revocation and introspection: `/v1/revocations` (by jti, subtree,
//! agent, user, tool or key id), RFC 7009 `/oauth/revoke` and RFC 7662
//! `/oauth/introspect`.
//!
//! A revocation is written to the store first, then this process's set is
//! refreshed before the answer leaves, so a client that revoked and then
//! introspects on the same server never sees the remit active. Other
//! replicas learn of it through the store's follower (NOTIFY or broadcast,
//! plus periodic catch-up).

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use remit_store::{Id, Revocation, RevocationKind, RevocationTarget, Store};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::problem::{FormBody, JsonBody, Problem};
use crate::receipts::events;
use crate::state::{now, now_ms, AppState};

/// Body of `POST /v1/revocations`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Revoke {
    /// `jti`, `subtree`, `agent`, `sub`, `tool` or `kid`.
    #[schema(value_type = crate::gateway::schema::RevocationKind)]
    pub kind: RevocationKind,
    /// The jti, agent id, user, tool or key id.
    #[schema(pattern = "^[A-Za-z0-9.:_@/-]{1,200}$")]
    pub value: String,
    /// Why, in words.
    #[serde(default)]
    pub reason: Option<String>,
}

fn revocation_json(revocation: &Revocation) -> Value {
    json!({
        "kind": revocation.target.kind,
        "value": revocation.target.value.as_str(),
        "epoch": revocation.epoch,
        "reason": revocation.reason,
        "revoked_by": revocation.revoked_by,
        "revoked_at": revocation.revoked_at,
    })
}

fn stamp() -> i64 {
    i64::try_from(now()).unwrap_or(i64::MAX)
}

#[utoipa::path(post, path = "/v1/revocations", tag = "revocation", security(("admin_token" = [])),
    request_body = Revoke,
    responses(
        (status = 201, description = "Newly revoked", body = crate::gateway::schema::Revocation),
        (status = 200, description = "Already revoked; nothing changed", body = crate::gateway::schema::Revocation),
    ))]
/// `POST /v1/revocations`: 201 when newly revoked, 200 when it already was.
pub async fn revoke<S: Store>(
    State(state): State<AppState<S>>,
    JsonBody(body): JsonBody<Revoke>,
) -> Result<(StatusCode, Json<Value>), Problem> {
    let target = RevocationTarget {
        kind: body.kind,
        value: Id::parse("revocation value", body.value)?,
    };
    let reason = body.reason.unwrap_or_else(|| "revoked by an admin".into());
    let revoked = state
        .store()
        .revoke(&target, &reason, &crate::oidc::admin_name(), stamp())
        .await?;
    state.refresh_revocations().await?;
    let mut out = revocation_json(&revoked.revocation);
    out["newly_revoked"] = json!(revoked.newly_revoked);
    // A repeated revocation changes nothing and so records nothing.
    let status = if revoked.newly_revoked {
        let kind = revoked.revocation.target.kind.to_string();
        crate::metrics::revocation(&kind);
        let value = revoked.revocation.target.value.as_str();
        let receipt = state
            .record(events::revoked_at_epoch(
                &kind,
                value,
                revoked.revocation.epoch,
                now_ms(),
            ))
            .await?;
        out["receipt_id"] = json!(receipt);
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    state.record_propagated(&revoked.propagated).await;
    out["propagated"] = json!(revoked.propagated.len());
    Ok((status, Json(out)))
}

#[utoipa::path(get, path = "/v1/revocations", tag = "revocation", security(("admin_token" = [])),
    responses((status = 200, description = "Every revocation, in epoch order", body = crate::gateway::schema::RevocationList)))]
/// `GET /v1/revocations`: every revocation, in epoch order.
pub async fn list<S: Store>(State(state): State<AppState<S>>) -> Result<Json<Value>, Problem> {
    let all = state.store().revocations_since(0).await?;
    Ok(Json(json!({
        "epoch": state.revocations().epoch(),
        "revocations": all.iter().map(revocation_json).collect::<Vec<_>>(),
    })))
}

/// Form body of the OAuth endpoints.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
pub struct TokenForm {
    /// The remit chain (`root~child~...`) or a single remit.
    pub token: String,
    /// Ignored hint (RFC 7662 / 7009).
    #[serde(default)]
    pub token_type_hint: Option<String>,
}

#[utoipa::path(post, path = "/oauth/introspect", tag = "revocation", security(("admin_token" = [])),
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "Whether the chain is active, and its effective authority when it is", body = crate::gateway::schema::Introspection)))]
/// `POST /oauth/introspect` (RFC 7662): `active: true` with the effective
/// authority only for a chain that verifies now and is not revoked, for
/// any audience Remit accepts (the deployment's, or a server's resource
/// URL); `active: false` (and nothing else) otherwise.
pub async fn introspect<S: Store>(
    State(state): State<AppState<S>>,
    FormBody(form): FormBody<TokenForm>,
) -> Json<Value> {
    match state.check_chain_any_audience(&form.token, now()) {
        Ok(chain) => {
            let leaf = chain.leaf_claims();
            Json(json!({
                "active": true,
                "token_type": "remit+jwt",
                "iss": chain.links()[0].claims().iss,
                "sub": leaf.sub,
                "aud": leaf.aud,
                "iat": leaf.iat,
                "nbf": leaf.nbf,
                "exp": leaf.exp,
                "jti": leaf.jti,
                "root": leaf.root,
                "act": leaf.act,
                "cnf": { "jkt": leaf.cnf.jkt },
                "authorization_details": leaf.authorization_details,
                "class": leaf.class,
                "max_steps": leaf.max_steps,
                "depth": leaf.depth,
                "links": chain.links().len(),
            }))
        }
        Err(reason) => {
            tracing::debug!(%reason, "introspection: inactive");
            Json(json!({ "active": false }))
        }
    }
}

#[utoipa::path(post, path = "/oauth/revoke", tag = "revocation", security(("admin_token" = [])),
    request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "Revoked, or nothing to revoke (the answer does not say which tokens exist)", body = crate::gateway::schema::OAuthRevoked)))]
/// `POST /oauth/revoke` (RFC 7009): revokes the presented remit (the leaf
/// of a chain) and its whole subtree: everything delegated from it offline
/// and every remit exchanged from it (RFC 7009 §2.1: revoking a grant also
/// invalidates the tokens based on it). Revoking only the leaf would leave
/// its children working, which no one revoking a delegation means. Answers
/// 200 whether or not the token was valid, as the RFC requires, so the
/// endpoint does not reveal which tokens exist.
pub async fn oauth_revoke<S: Store>(
    State(state): State<AppState<S>>,
    FormBody(form): FormBody<TokenForm>,
) -> Result<(StatusCode, Json<Value>), Problem> {
    let chain = match state.check_chain_any_audience(&form.token, now()) {
        Ok(chain) => chain,
        Err(reason) => {
            tracing::debug!(%reason, "oauth revoke: token not active, nothing to do");
            return Ok((StatusCode::OK, Json(json!({}))));
        }
    };
    let target = RevocationTarget {
        kind: RevocationKind::Subtree,
        value: Id::parse("remit jti", chain.leaf_claims().jti.as_str())?,
    };
    let revoked = state
        .store()
        .revoke(
            &target,
            "revoked through /oauth/revoke",
            &crate::oidc::admin_name(),
            stamp(),
        )
        .await?;
    state.refresh_revocations().await?;
    if !revoked.newly_revoked {
        state.record_propagated(&revoked.propagated).await;
        return Ok((StatusCode::OK, Json(json!({}))));
    }
    crate::metrics::revocation("subtree");
    let receipt = state
        .record(events::revoked_at_epoch(
            "subtree",
            target.value.as_str(),
            revoked.revocation.epoch,
            now_ms(),
        ))
        .await?;
    state.record_propagated(&revoked.propagated).await;
    Ok((StatusCode::OK, Json(json!({ "receipt_id": receipt }))))
}
