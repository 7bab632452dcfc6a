//! `/oauth/token`: RFC 8693 token exchange. An agent (the *actor*) that
//! was handed a remit chain (the *subject*) gets a narrower remit of its
//! own, bound to its registered key, without the subject holder's key.
//!
//! # Request
//!
//! A form POST (RFC 6749 §3.2) with
//! `grant_type=urn:ietf:params:oauth:grant-type:token-exchange`,
//! `subject_token` (the chain `root~...~leaf`, type [`REMIT_TOKEN_TYPE`]),
//! `actor_token` (type `urn:ietf:params:oauth:token-type:jwt`) and
//! `authorization_details` (RFC 9396, JSON array of `remit_tool` grants).
//! Optional `audience`/`resource` must name this server's audience;
//! optional `requested_token_type` must be [`REMIT_TOKEN_TYPE`].
//!
//! `subject_token` may instead be an OpenID Connect ID token (type
//! [`ID_TOKEN_TYPE`]) from an issuer configured in [`crate::oidc`]: then
//! there is no chain to narrow, and the actor gets a **root** remit for the
//! token's user, decided by the policy `issue` action (user → actor) like
//! `/v1/remits`, with the token's `acr`/`amr`, expiring no later than the
//! ID token, and an `issue` receipt.
//!
//! A remit-chain subject also needs proof that the caller holds the
//! subject chain's leaf key: one `DPoP` header (RFC 9449) signed by it for
//! `POST <public_url>/oauth/token`, bound to the leaf (`ath`) and used
//! once (refused as `invalid_dpop_proof` otherwise), so a copied chain
//! cannot be rebound to another agent.
//!
//! The actor token is an RFC 7523-style assertion: a compact ES256 JWS
//! signed by the agent's registered key, with `iss` = `sub` = the agent id,
//! `aud` = this server's public URL (or its `/oauth/token` URL), `exp` at
//! most [`MAX_ASSERTION_SECS`] ahead, and a `jti` that is accepted once:
//! used jtis are kept in the store until they expire, so a replay is
//! refused on every replica. Unknown claims are refused.
//!
//! # What is minted, and why this shape
//!
//! The server cannot append a link to the subject chain (only the subject
//! leaf's holder key can sign one) and a root may not carry a nested `act`.
//! So an exchange mints a fresh two-link chain:
//!
//! 1. a **custody root**, signed by the issuer key: same `sub`, `act.sub` =
//!    the subject leaf's holder (on whose behalf the actor acts), the
//!    requested grants, `exp` no later than the subject leaf's, the
//!    subject's class, steps, `acr`/`amr`, the remaining delegation depth,
//!    and the exchange decision's policy version. Its holder key (`cnf`) is
//!    a P-256 key generated for this one exchange and dropped as soon as
//!    it has signed link 2, so nobody can sign another child of this root;
//! 2. a **child for the actor**, signed by that custody key through
//!    `remit_token::delegate` (so every attenuation rule is checked at
//!    signing time): `act = {sub: actor, act: {sub: subject holder}}`,
//!    `cnf` = the actor's registered key.
//!
//! Steps are one counter for the whole custody tree: every call under the
//! exchanged chain also takes a step of every subject link it was derived
//! from (the store follows `exchange_links`, see
//! [`remit_store::BudgetRepo::consume_call`]), so exchanging a used-up remit
//! yields no new steps, however often it is done.
//!
//! The result verifies offline with nothing but the JWKS, like any chain,
//! and the authority it shows is exactly what it carries: the requested
//! grants were checked to lie within the subject leaf's grants (each one
//! `Grant::is_within` a subject grant), class, steps and expiry are never
//! raised. What offline verification cannot see is the derivation from the
//! subject; that lives in the store (`exchange_links`: every subject link's
//! jti, agent and signing key id), and revocation closes the gap: a
//! **subtree** revocation of any subject link, an **agent** revocation of
//! any subject agent, or a **kid** revocation of a key that signed any
//! subject link (the issuer key of its root, or a holder key that signed a
//! delegation) is followed by a subtree revocation of every custody root
//! derived from it, transitively. The store writes those in the
//! revocation's own transaction ([`remit_store::RevocationRepo::revoke`]),
//! so no crash can leave a revoked subject with a live exchanged remit;
//! a revocation left unpropagated by an older Remit (which propagated
//! after the write) is repaired at start and on every periodic refresh
//! ([`crate::AppState::repair_propagation`]). They are ordinary
//! revocations, so every replica and every gateway consulting the
//! revocation set refuses the exchanged remit too. `sub` revocations reach
//! it directly (same `sub`). A `jti` revocation of the subject leaf kills
//! only that remit, as it does for an offline child. Exchanges recorded
//! before migration 0003 have no key ids, so a `kid` revocation does not
//! reach them (they still expire, and follow every other kind).
//!
//! An exchange racing a revocation: recording the exchange's links takes
//! the same lock as a revocation write, and propagates any revocation
//! already written that reaches them; one written after sees the links.
//! The exchange then refreshes the revocation set and checks the subject
//! again (for the kinds that do not propagate, such as the leaf's `jti`).
//!
//! The exchange is a `delegate` policy decision (principal
//! `Agent::"<subject holder>"`, resource `Agent::"<actor>"`): both must be
//! registered. Anything but an allow is refused.
//!
//! # Answers
//!
//! Success: 200 with `access_token` (the chain text), `issued_token_type`,
//! `token_type: N_A` (a remit is used with a proof of possession, never
//! as a bearer token), `expires_in`, `authorization_details`, `jti`, and
//! the `receipt_id` of its `delegate` receipt. Errors are RFC 6749 §5.2
//! JSON: `invalid_request`, `invalid_grant` (subject or actor token
//! invalid, revoked or expired; replayed assertion; policy refusal),
//! `invalid_target` (wrong audience), `invalid_authorization_details`
//! (RFC 9396: wider than the subject), `unsupported_grant_type`.
//! Refusals after the actor is authenticated are recorded as `deny`
//! receipts; unauthenticated garbage is only logged, so anonymous
//! callers cannot flood the receipt log.

use axum::extract::rejection::FormRejection;
use axum::extract::{Form, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use remit_api::exchange::OAuthErrorCode;
use remit_api::TokenExchanged;
use remit_policy::{Action, ContextInput, DecisionRequest, EntityKind, EntityRef, RequestContext};
use remit_store::{
    ExchangeLink, Id, IssuedRemit, RemitFacts, RevocationKind, RevocationTarget, Status, Store,
};
use remit_token::{
    delegate, mint, pop, DelegateRequest, EcPublicJwk, EcdsaP256Signer, Grant, MintRequest,
    ProofRequest, Signer as _, UnverifiedChain, VerifiedChain, VerifyingKey,
};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::gateway::Gateway;
use crate::oidc::ID_TOKEN_TYPE;
use crate::receipts::events;
use crate::state::{now, now_ms, revoked, AppState};

/// RFC 8693 grant type.
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// Token type of a JWT (the actor assertion).
pub const JWT_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:jwt";
/// Token type of a remit chain (subject and issued token).
pub const REMIT_TOKEN_TYPE: &str = "urn:remit:params:oauth:token-type:remit";
/// Longest lifetime an actor assertion may have, seconds.
pub const MAX_ASSERTION_SECS: u64 = 300;
/// Clock skew tolerated on an assertion's `iat`/`nbf`, seconds.
pub const ASSERTION_LEEWAY_SECS: u64 = 30;

/// The form of `POST /oauth/token`. Unknown parameters are ignored (RFC
/// 6749 §3.2); a repeated one is refused.
#[derive(Debug, Deserialize)]
pub struct TokenRequest {
    /// Must be [`GRANT_TYPE`].
    pub grant_type: Option<String>,
    /// The remit chain the actor acts under.
    pub subject_token: Option<String>,
    /// [`REMIT_TOKEN_TYPE`] (or the JWT type).
    pub subject_token_type: Option<String>,
    /// The actor's signed assertion.
    pub actor_token: Option<String>,
    /// [`JWT_TOKEN_TYPE`].
    pub actor_token_type: Option<String>,
    /// RFC 9396 grants asked for (a JSON array).
    pub authorization_details: Option<String>,
    /// Must be [`REMIT_TOKEN_TYPE`] when present.
    pub requested_token_type: Option<String>,
    /// Must be this server's audience when present.
    pub audience: Option<String>,
    /// Must be this server's audience when present.
    pub resource: Option<String>,
}

/// An RFC 6749 §5.2 error answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    status: StatusCode,
    /// The authenticated actor, when the refusal came after authentication.
    actor: Option<String>,
    /// The answer's body.
    body: Box<remit_api::OAuthError>,
}

impl OAuthError {
    fn new(error: OAuthErrorCode, description: impl Into<String>) -> Self {
        // A description may quote what the caller sent (and is recorded in
        // a deny receipt once the actor is known): bounded, always.
        let description = description.into();
        let description =
            match crate::bounded::bounded(&description, crate::bounded::MAX_MESSAGE_TEXT) {
                std::borrow::Cow::Borrowed(_) => description,
                std::borrow::Cow::Owned(bounded) => bounded,
            };
        Self {
            status: StatusCode::BAD_REQUEST,
            actor: None,
            body: Box::new(remit_api::OAuthError {
                error,
                error_description: description,
                remit_reason: None,
                policy_ids: None,
                policy_version: None,
            }),
        }
    }

    fn request(description: impl Into<String>) -> Self {
        Self::new(OAuthErrorCode::InvalidRequest, description)
    }

    fn grant(description: impl Into<String>) -> Self {
        Self::new(OAuthErrorCode::InvalidGrant, description)
    }

    fn server(what: &str, error: &dyn std::fmt::Display) -> Self {
        tracing::error!(%error, "token exchange: {what} failed");
        let mut e = Self::new(
            OAuthErrorCode::ServerError,
            format!("{what} failed; see the server log"),
        );
        e.status = StatusCode::INTERNAL_SERVER_ERROR;
        e
    }

    fn by(mut self, actor: &str) -> Self {
        self.actor = Some(actor.to_owned());
        self
    }

    /// The RFC 6749 error code.
    pub fn code(&self) -> &'static str {
        self.body.error.as_str()
    }

    /// The human description.
    pub fn description(&self) -> &str {
        &self.body.error_description
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        no_store((self.status, Json(*self.body)).into_response())
    }
}

fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `POST /oauth/token`.
#[utoipa::path(post, path = "/oauth/token", tag = "exchange",
    request_body(content = remit_api::doc::TokenExchangeForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 200, description = "The exchanged remit (RFC 8693 §2.2.1)", body = remit_api::TokenExchanged,
            headers(("cache-control" = String, description = "`no-store`"))),
        (status = 400, description = "RFC 6749 §5.2 error: the request, the subject or actor token, the target or the grants were refused",
            body = remit_api::OAuthError, content_type = "application/json",
            headers(("cache-control" = String, description = "`no-store`"))),
        (status = "default", description = "RFC 6749 §5.2 error (`server_error` with 500); never a problem document",
            body = remit_api::OAuthError, content_type = "application/json"),
    ))]
pub async fn token<S: Store>(
    State(state): State<Gateway<S>>,
    headers: HeaderMap,
    form: Result<Form<TokenRequest>, FormRejection>,
) -> Response {
    let result = match form {
        Ok(Form(request)) => exchange(&state, request, &headers, now()).await,
        Err(rejection) => Err(OAuthError::request(format!(
            "the body must be application/x-www-form-urlencoded with each parameter once: {}",
            rejection.body_text()
        ))),
    };
    match result {
        Ok(answer) => no_store((StatusCode::OK, Json(answer)).into_response()),
        Err(refusal) => {
            if let Some(actor) = &refusal.actor {
                let event = events::exchange_refused(
                    Some(actor),
                    refusal.code(),
                    refusal.description(),
                    now_ms(),
                );
                if let Err(problem) = state.record(event).await {
                    return OAuthError::server("recording the refusal", &problem.to_string())
                        .into_response();
                }
            } else {
                tracing::debug!(error = refusal.code(), description = %refusal.description(), "token exchange refused before the actor was authenticated");
            }
            refusal.into_response()
        }
    }
}

fn required<'a>(value: &'a Option<String>, name: &str) -> Result<&'a str, OAuthError> {
    match value.as_deref() {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(OAuthError::request(format!("{name} is required"))),
    }
}

async fn exchange<S: Store>(
    state: &Gateway<S>,
    request: TokenRequest,
    headers: &HeaderMap,
    now: u64,
) -> Result<TokenExchanged, OAuthError> {
    let grant_type = required(&request.grant_type, "grant_type")?;
    if grant_type != GRANT_TYPE {
        return Err(OAuthError::new(
            OAuthErrorCode::UnsupportedGrantType,
            format!("grant_type {grant_type:?} is not supported; use {GRANT_TYPE}"),
        ));
    }
    if let Some(t) = request.requested_token_type.as_deref() {
        if t != REMIT_TOKEN_TYPE {
            return Err(OAuthError::request(format!(
                "requested_token_type {t:?} cannot be issued; only {REMIT_TOKEN_TYPE}"
            )));
        }
    }
    let audience = &state.settings().audience;
    for (name, value) in [
        ("audience", &request.audience),
        ("resource", &request.resource),
    ] {
        if let Some(v) = value.as_deref() {
            if v != audience {
                return Err(OAuthError::new(
                    OAuthErrorCode::InvalidTarget,
                    format!("{name} {v:?} is not served here; remits are minted for {audience:?}"),
                ));
            }
        }
    }
    let subject_text = required(&request.subject_token, "subject_token")?;
    let subject_type = required(&request.subject_token_type, "subject_token_type")?;
    match subject_type {
        REMIT_TOKEN_TYPE | JWT_TOKEN_TYPE | ID_TOKEN_TYPE => {}
        other => {
            return Err(OAuthError::request(format!(
                "subject_token_type {other:?} is not accepted; use {REMIT_TOKEN_TYPE} or {ID_TOKEN_TYPE}"
            )))
        }
    }
    let actor_text = required(&request.actor_token, "actor_token")?;
    let actor_type = required(&request.actor_token_type, "actor_token_type")?;
    if actor_type != JWT_TOKEN_TYPE {
        return Err(OAuthError::request(format!(
            "actor_token_type {actor_type:?} is not accepted; use {JWT_TOKEN_TYPE}"
        )));
    }
    let details = required(&request.authorization_details, "authorization_details")?.to_owned();

    let actor = authenticate_actor(state, actor_text, now).await?;
    if subject_type == ID_TOKEN_TYPE {
        return issue_for_identity(state, subject_text, &actor, &details, now).await;
    }
    let actor_id = actor.id.clone();
    let refuse = |e: OAuthError| e.by(actor_id.as_str());

    let subject = state
        .check_chain(subject_text, now)
        .map_err(|reason| refuse(OAuthError::grant(format!("subject_token: {reason}"))))?;
    prove_subject_possession(state, headers, &subject, now)
        .await
        .map_err(&refuse)?;
    let grants: Vec<Grant> = serde_json::from_str(&details).map_err(|e| {
        refuse(OAuthError::new(
            OAuthErrorCode::InvalidAuthorizationDetails,
            format!("authorization_details must be a JSON array of remit_tool grants: {e}"),
        ))
    })?;
    let p = subject.leaf_claims().clone();
    check_narrower(&grants, &p.authorization_details).map_err(&refuse)?;
    let holder = p.act.sub.clone();
    if p.act.lineage().any(|a| a.sub == actor.id) {
        return Err(refuse(OAuthError::grant(format!(
            "agent {:?} already acts in the subject chain; an agent appears once per chain",
            actor.id
        ))));
    }
    let remaining = p.max_depth.saturating_sub(p.depth);
    if remaining == 0 {
        return Err(refuse(OAuthError::grant(format!(
            "the subject remit may not be delegated further (depth {} of max_depth {})",
            p.depth, p.max_depth
        ))));
    }
    let decision = decide_delegate(state, &subject, &holder, &actor.id, &grants);
    if decision.verdict() != remit_policy::Verdict::Allow {
        return Err(refuse(policy_refusal(&decision)));
    }

    let ttl = p
        .exp
        .saturating_sub(now)
        .min(state.settings().default_ttl_secs);
    if ttl == 0 {
        return Err(refuse(OAuthError::grant("the subject remit has expired")));
    }
    let custody =
        EcdsaP256Signer::generate().map_err(|e| OAuthError::server("a custody key", &e))?;
    let mut root_request = MintRequest::new(
        p.sub.as_str(),
        holder.as_str(),
        custody.public_jwk().clone(),
        grants.clone(),
    );
    root_request.issuer.clone_from(&state.settings().public_url);
    root_request.audience.clone_from(audience);
    root_request.ttl_secs = ttl;
    root_request.class = p.class;
    root_request.max_steps = p.max_steps;
    root_request.max_depth = remaining;
    root_request.acr.clone_from(&p.acr);
    root_request.amr.clone_from(&p.amr);
    root_request.policy = Some(decision.policy_version().to_owned());
    let issuer = state
        .issuer()
        .map_err(|e| refuse(OAuthError::server("minting", &e)))?;
    let root = mint(&*issuer, &root_request, now).map_err(|e| {
        refuse(OAuthError::grant(format!(
            "cannot mint the exchanged remit: {e}"
        )))
    })?;
    let parent = UnverifiedChain::from_links(vec![root.clone()])
        .map_err(|e| OAuthError::server("building the custody chain", &e))?;
    let mut child_request = DelegateRequest::new(actor.id.as_str(), actor.key.clone(), grants);
    child_request.ttl_secs = ttl;
    let child = delegate(&parent, &custody, &child_request, now).map_err(|e| {
        refuse(OAuthError::grant(format!(
            "cannot delegate to the actor: {e}"
        )))
    })?;
    // The custody key signs nothing else: it is dropped here.
    drop(custody);

    let r = root.claims();
    let c = child.claims();
    let id = |what, v: &str| Id::parse(what, v).map_err(|e| OAuthError::server("an id", &e));
    let root_jti = id("remit jti", &r.jti)?;
    let holder_id = id("agent id", &holder)?;
    let actor_jti = id("remit jti", &c.jti)?;
    let record = IssuedRemit {
        jti: root_jti.clone(),
        root_jti: root_jti.clone(),
        parent_jti: None,
        holder_thumbprint: r.cnf.jkt.as_str().to_owned(),
        sub: id("user (sub)", &r.sub)?,
        agent: holder_id.clone(),
        issued_at: to_i64(r.iat),
        expires_at: to_i64(r.exp),
        max_steps: r.max_steps.map(to_i64),
    };
    state
        .store()
        .record_remit(&record)
        .await
        .map_err(|e| match e {
            remit_store::StoreError::NotFound { .. } => refuse(OAuthError::grant(format!(
                "the subject holder {holder:?} is not a registered agent"
            ))),
            e => OAuthError::server("recording the exchanged remit", &e),
        })?;
    record_subject_links(state, &subject).await?;
    let links: Vec<ExchangeLink> = subject
        .links()
        .iter()
        .map(|l| {
            Ok(ExchangeLink {
                jti: id("remit jti", &l.claims().jti)?,
                agent: id("agent id", &l.claims().act.sub)?,
                kid: id("key id", l.kid())?,
            })
        })
        .collect::<Result<_, OAuthError>>()?;
    // A revocation that already reaches the subject is propagated to the
    // new root in this same write (the check below then refuses).
    let propagated = state
        .store()
        .record_exchange(&root_jti, &links, to_i64(now))
        .await
        .map_err(|e| OAuthError::server("recording the exchange", &e))?;
    state.record_propagated(&propagated).await;
    state
        .store()
        .record_remit(&IssuedRemit {
            jti: actor_jti.clone(),
            root_jti: root_jti.clone(),
            parent_jti: Some(root_jti.clone()),
            holder_thumbprint: c.cnf.jkt.as_str().to_owned(),
            sub: record.sub.clone(),
            agent: actor.agent.clone(),
            issued_at: to_i64(c.iat),
            expires_at: to_i64(c.exp),
            max_steps: c.max_steps.map(to_i64),
        })
        .await
        .map_err(|e| OAuthError::server("recording the actor's remit", &e))?;
    // Any other revocation of the subject (its user, the leaf's jti, ...)
    // that landed while we minted: look again now.
    state
        .refresh_revocations()
        .await
        .map_err(|e| OAuthError::server("refreshing revocations", &e))?;
    if let Some(target) = revoked(state.revocations(), &subject) {
        revoke_root(
            state,
            &root_jti,
            &format!(
                "subject revoked during exchange: {} {}",
                target.kind,
                target.value.as_str()
            ),
        )
        .await?;
        return Err(refuse(OAuthError::grant(format!(
            "subject_token: revoked: {} {}",
            target.kind,
            target.value.as_str()
        ))));
    }

    let agents: Vec<&str> = c
        .act
        .lineage()
        .map(|a| a.sub.as_str())
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    let receipt = state
        .record(events::remit_exchanged(
            events::Exchanged {
                sub: &c.sub,
                agents: &agents,
                subject_leaf: &p.jti,
                root: &r.jti,
                leaf: &c.jti,
            },
            Some(events::policy_decision(&decision)),
            now_ms(),
        ))
        .await
        .map_err(|problem| OAuthError::server("recording the receipt", &problem.to_string()))?;
    Ok(TokenExchanged {
        access_token: format!("{root}~{child}"),
        issued_token_type: REMIT_TOKEN_TYPE.to_owned(),
        token_type: "N_A".to_owned(),
        expires_in: c.exp.saturating_sub(now),
        authorization_details: c.authorization_details.clone(),
        jti: c.jti.clone(),
        root: r.jti.clone(),
        sub: None,
        act: c.act.clone(),
        policy: c.policy.clone(),
        receipt_id: receipt,
    })
}

/// `subject_token_type` [`ID_TOKEN_TYPE`]: the ID token's user (verified by
/// [`crate::oidc`]) is the subject, and the actor gets a root remit for that
/// user, bound to its registered key, if the policy `issue` action allows
/// it (user → actor, as for `/v1/remits`). The remit carries the token's
/// `acr`/`amr` and expires no later than the ID token.
async fn issue_for_identity<S: Store>(
    state: &AppState<S>,
    id_token: &str,
    actor: &AuthenticatedActor,
    details: &str,
    now: u64,
) -> Result<TokenExchanged, OAuthError> {
    let refuse = |e: OAuthError| e.by(actor.id.as_str());
    let identity = state
        .settings()
        .oidc
        .verify(id_token, now)
        .await
        .map_err(|e| refuse(OAuthError::grant(format!("subject_token: {e}"))))?;
    let grants: Vec<Grant> = serde_json::from_str(details).map_err(|e| {
        refuse(OAuthError::new(
            OAuthErrorCode::InvalidAuthorizationDetails,
            format!("authorization_details must be a JSON array of remit_tool grants: {e}"),
        ))
    })?;
    if grants.is_empty() {
        return Err(refuse(OAuthError::new(
            OAuthErrorCode::InvalidAuthorizationDetails,
            "authorization_details must ask for at least one grant",
        )));
    }
    for (index, grant) in grants.iter().enumerate() {
        grant.check().map_err(|reason| {
            refuse(OAuthError::new(
                OAuthErrorCode::InvalidAuthorizationDetails,
                format!("authorization_details[{index}]: {reason}"),
            ))
        })?;
    }
    let user = Id::parse("user (sub)", identity.user.as_str())
        .map_err(|e| refuse(OAuthError::grant(format!("subject_token: {e}"))))?;
    let issuer = state
        .issuer()
        .map_err(|e| refuse(OAuthError::server("minting", &e)))?;
    let kid = issuer.key_id().to_owned();
    if let Some(target) = state.revocations().find(&RemitFacts {
        chain: &[],
        agent: actor.id.as_str(),
        sub: user.as_str(),
        kids: &[kid.as_str()],
        tool: None,
    }) {
        return Err(refuse(OAuthError::grant(format!(
            "revoked: {} {}",
            target.kind,
            target.value.as_str()
        ))));
    }
    let body = crate::remits::IssueRemit {
        agent: actor.id.clone(),
        sub: identity.user.clone(),
        grants,
        ttl_secs: None,
        class: None,
        max_steps: None,
        max_depth: None,
    };
    let mut context = crate::remits::issued_context(&body);
    context.amr = identity.amr.iter().cloned().collect();
    let decision = crate::remits::decide_issue(state, &body, context);
    if decision.verdict() != remit_policy::Verdict::Allow {
        return Err(refuse(policy_refusal(&decision)));
    }
    let ttl = identity
        .exp
        .saturating_sub(now)
        .min(state.settings().default_ttl_secs);
    if ttl == 0 {
        return Err(refuse(OAuthError::grant("subject_token: expired")));
    }
    let mut mint_request = MintRequest::new(
        user.as_str(),
        actor.id.as_str(),
        actor.key.clone(),
        body.grants,
    );
    mint_request.issuer.clone_from(&state.settings().public_url);
    mint_request.audience.clone_from(&state.settings().audience);
    mint_request.ttl_secs = ttl;
    mint_request.acr.clone_from(&identity.acr);
    mint_request.amr.clone_from(&identity.amr);
    mint_request.policy = Some(decision.policy_version().to_owned());
    let remit = mint(&*issuer, &mint_request, now)
        .map_err(|e| refuse(OAuthError::grant(format!("cannot mint the remit: {e}"))))?;
    let c = remit.claims();
    let jti =
        Id::parse("remit jti", c.jti.as_str()).map_err(|e| OAuthError::server("an id", &e))?;
    state
        .store()
        .record_remit(&IssuedRemit {
            jti: jti.clone(),
            root_jti: jti.clone(),
            parent_jti: None,
            holder_thumbprint: c.cnf.jkt.as_str().to_owned(),
            sub: user.clone(),
            agent: actor.agent.clone(),
            issued_at: to_i64(c.iat),
            expires_at: to_i64(c.exp),
            max_steps: c.max_steps.map(to_i64),
        })
        .await
        .map_err(|e| OAuthError::server("recording the remit", &e))?;
    let receipt = state
        .record(events::remit_issued(
            jti.as_str(),
            user.as_str(),
            actor.id.as_str(),
            Some(events::policy_decision(&decision)),
            now_ms(),
        ))
        .await
        .map_err(|problem| OAuthError::server("recording the receipt", &problem.to_string()))?;
    Ok(TokenExchanged {
        access_token: remit.compact().to_owned(),
        issued_token_type: REMIT_TOKEN_TYPE.to_owned(),
        token_type: "N_A".to_owned(),
        expires_in: c.exp.saturating_sub(now),
        authorization_details: c.authorization_details.clone(),
        jti: c.jti.clone(),
        root: c.jti.clone(),
        sub: Some(c.sub.clone()),
        act: c.act.clone(),
        policy: c.policy.clone(),
        receipt_id: receipt,
    })
}

/// `invalid_grant` for a policy that did not allow, with its reasons.
fn policy_refusal(decision: &remit_policy::Decision) -> OAuthError {
    let ledger = events::policy_decision(decision);
    let mut e = OAuthError::grant(format!(
        "refused by policy ({}): {}",
        decision.reason_code(),
        decision.explanation()
    ));
    e.body.remit_reason = Some(
        if decision.verdict() == remit_policy::Verdict::Escalate {
            "policy-escalated"
        } else {
            "policy-denied"
        }
        .to_owned(),
    );
    e.body.policy_ids = Some(ledger.policy_ids);
    e.body.policy_version = Some(decision.policy_version().to_owned());
    e
}

/// Every requested grant must lie within one of the subject leaf's grants
/// (tools, resources, actions and argument constraints), by the same rule
/// offline delegation is checked with.
fn check_narrower(requested: &[Grant], subject: &[Grant]) -> Result<(), OAuthError> {
    let wider =
        |detail: String| OAuthError::new(OAuthErrorCode::InvalidAuthorizationDetails, detail);
    if requested.is_empty() {
        return Err(wider(
            "authorization_details must ask for at least one grant".into(),
        ));
    }
    for (index, grant) in requested.iter().enumerate() {
        grant
            .check()
            .map_err(|reason| wider(format!("authorization_details[{index}]: {reason}")))?;
        if !subject.iter().any(|s| grant.is_within(s)) {
            return Err(wider(format!(
                "authorization_details[{index}] is wider than every grant of the subject remit"
            )));
        }
    }
    Ok(())
}

/// The actor, authenticated by its assertion.
#[derive(Debug)]
struct AuthenticatedActor {
    id: String,
    agent: Id,
    key: EcPublicJwk,
}

/// The claims of an actor assertion; anything else is refused.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssertionClaims {
    iss: String,
    sub: String,
    aud: Value,
    exp: u64,
    jti: String,
    #[serde(default)]
    iat: Option<u64>,
    #[serde(default)]
    nbf: Option<u64>,
}

async fn authenticate_actor<S: Store>(
    state: &AppState<S>,
    token: &str,
    now: u64,
) -> Result<AuthenticatedActor, OAuthError> {
    let bad = |why: String| OAuthError::grant(format!("actor_token: {why}"));
    // The issuer names the key to check with; nothing read before the
    // signature is trusted beyond choosing that key.
    let payload = token
        .split('.')
        .nth(1)
        .and_then(|p| remit_token::b64::decode(p).ok())
        .ok_or_else(|| bad("not a compact JWS".into()))?;
    let unverified: AssertionClaims =
        serde_json::from_slice(&payload).map_err(|e| bad(format!("claims: {e}")))?;
    let agent_id =
        Id::parse("agent id", unverified.iss.as_str()).map_err(|e| bad(format!("iss: {e}")))?;
    let agent = match state.store().agent(&agent_id).await {
        Ok(agent) => agent,
        Err(remit_store::StoreError::NotFound { .. }) => {
            return Err(bad(format!(
                "iss {:?} is not a registered agent",
                agent_id.as_str()
            )))
        }
        Err(e) => return Err(OAuthError::server("looking up the actor", &e)),
    };
    let key = crate::registry::stored_agent_key(&agent).map_err(|e| bad(e.to_string()))?;
    let verifying = VerifyingKey::from_jwk(&key).map_err(|e| bad(format!("actor key: {e}")))?;
    let verified = remit_token::jws::verify_es256(token, &verifying).map_err(|e| {
        bad(format!(
            "{e} (it must be signed by the agent's registered key)"
        ))
    })?;
    let claims: AssertionClaims =
        serde_json::from_slice(&verified).map_err(|e| bad(format!("claims: {e}")))?;
    let id = agent_id.as_str();
    if claims.iss != id || claims.sub != id {
        return Err(bad("iss and sub must both be the agent id".into()));
    }
    let base = &state.settings().public_url;
    let endpoint = format!("{base}/oauth/token");
    let aud_ok = |a: &Value| a.as_str().is_some_and(|a| a == base || a == endpoint);
    let audience_ok = match &claims.aud {
        Value::Array(list) => list.iter().any(aud_ok),
        one => aud_ok(one),
    };
    if !audience_ok {
        return Err(bad(format!("aud must be {base:?} or {endpoint:?}")));
    }
    if claims.exp <= now {
        return Err(bad(format!("expired at {} (now {now})", claims.exp)));
    }
    if claims.exp > now + MAX_ASSERTION_SECS + ASSERTION_LEEWAY_SECS {
        return Err(bad(format!(
            "exp is more than {MAX_ASSERTION_SECS} s ahead; assertions must be short-lived"
        )));
    }
    let early = |t: Option<u64>| t.is_some_and(|t| t > now + ASSERTION_LEEWAY_SECS);
    if early(claims.iat) || early(claims.nbf) {
        return Err(bad("iat or nbf is in the future".into()));
    }
    if claims.jti.is_empty() || claims.jti.len() > 256 {
        return Err(bad("jti must be 1 to 256 bytes".into()));
    }
    if agent.status != Status::Active {
        return Err(bad(format!("agent {id:?} is disabled")).by(id));
    }
    match state
        .store()
        .use_assertion(&agent_id, &claims.jti, to_i64(claims.exp), to_i64(now))
        .await
    {
        Ok(()) => {}
        Err(remit_store::StoreError::Duplicate { .. }) => {
            return Err(bad(format!("jti {:?} was already used (replay)", claims.jti)).by(id))
        }
        Err(e) => return Err(OAuthError::server("recording the assertion", &e)),
    }
    Ok(AuthenticatedActor {
        id: id.to_owned(),
        agent: agent_id,
        key,
    })
}

/// The `delegate` decision: the subject holder delegating to the actor.
fn decide_delegate<S: Store>(
    state: &AppState<S>,
    subject: &VerifiedChain,
    holder: &str,
    actor: &str,
    grants: &[Grant],
) -> remit_policy::Decision {
    let engine = state.policy();
    let p = subject.leaf_claims();
    let context = ContextInput {
        args: json!({}),
        data_class: p.class,
        pii: Default::default(),
        secrets: Default::default(),
        chain_depth: p.depth.saturating_add(1),
        original_user: p.sub.clone(),
        steps_used: 0,
        steps_max: p
            .max_steps
            .map_or(u32::MAX, |s| u32::try_from(s).unwrap_or(u32::MAX)),
        risk_budget_used: 0,
        risk_budget_max: 0,
        hour_utc: u8::try_from((now() / 3600) % 24).unwrap_or(0),
        amr: p.amr.iter().cloned().collect(),
        approved: false,
        shadow: false,
        redacted: false,
        remit_tools: grants
            .iter()
            .flat_map(|g| g.tools.iter().map(|t| t.as_str().to_owned()))
            .collect(),
        remit_models: Default::default(),
        description_hash: None,
    };
    let entity = |kind, id: &str| {
        EntityRef::new(kind, id).map_err(|e| remit_policy::RequestError::BadContext {
            message: e.to_string(),
        })
    };
    let request = RequestContext::new(context).and_then(|context| {
        DecisionRequest::new(
            entity(EntityKind::Agent, holder)?,
            Action::Delegate,
            entity(EntityKind::Agent, actor)?,
            context,
        )
    });
    match request {
        Ok(request) => engine.decide(&request),
        Err(error) => remit_policy::Decision::invalid_request(&error, engine.version()),
    }
}

async fn revoke_root<S: Store>(
    state: &AppState<S>,
    root: &Id,
    reason: &str,
) -> Result<(), OAuthError> {
    let target = RevocationTarget {
        kind: RevocationKind::Subtree,
        value: root.clone(),
    };
    let revoked = state
        .store()
        .revoke(&target, reason, "exchange", to_i64(now()))
        .await
        .map_err(|e| OAuthError::server("revoking the exchanged remit", &e))?;
    state
        .refresh_revocations()
        .await
        .map_err(|e| OAuthError::server("refreshing revocations", &e))?;
    if revoked.newly_revoked {
        state.record_propagated(&[revoked.revocation]).await;
    }
    state.record_propagated(&revoked.propagated).await;
    Ok(())
}

/// Refuses an exchange whose caller does not hold the subject chain's leaf
/// key: one `DPoP` header (RFC 9449) signed by that key, for `POST
/// <public_url>/oauth/token`, bound to the subject leaf (`ath`), fresh,
/// and never seen before at any replica. Without it a copy of a chain
/// (from a log, a proxy, a shared prompt) could be rebound to any
/// registered agent. Answers `invalid_dpop_proof` (RFC 9449 §5).
async fn prove_subject_possession<S: Store>(
    state: &Gateway<S>,
    headers: &HeaderMap,
    subject: &VerifiedChain,
    now: u64,
) -> Result<(), OAuthError> {
    let htu = format!("{}/oauth/token", state.settings().public_url);
    let invalid = |why: String| OAuthError::new(OAuthErrorCode::InvalidDpopProof, why);
    let mut proofs = headers.get_all("dpop").iter();
    let proof = match (proofs.next(), proofs.next()) {
        (Some(proof), None) => proof
            .to_str()
            .map_err(|_| invalid("the DPoP header is not ASCII".into()))?,
        _ => {
            return Err(invalid(format!(
                "exchanging a remit chain needs exactly one DPoP header: a proof (RFC 9449) signed by the subject chain's leaf holder key for POST {htu}"
            )))
        }
    };
    let skew = state.gateway().config().proof_max_skew_secs;
    let request = ProofRequest {
        htm: "POST",
        htu: &htu,
    };
    let verified = pop::verify_proof(proof, subject, request, now, skew).map_err(|e| {
        invalid(format!(
            "{e} (the proof must be signed by the subject chain's leaf holder key, for POST {htu})"
        ))
    })?;
    let holder = Id::parse("agent id", subject.leaf_claims().act.sub.as_str())
        .map_err(|e| OAuthError::grant(format!("subject_token: {e}")))?;
    let expires = to_i64(verified.iat.saturating_add(skew).saturating_add(1));
    match state
        .store()
        .use_assertion(
            &holder,
            &format!("dpop:{}", verified.jti),
            expires,
            to_i64(now),
        )
        .await
    {
        Ok(()) => Ok(()),
        Err(remit_store::StoreError::Duplicate { .. }) => Err(invalid(format!(
            "proof jti {:?} was already used; make a new proof for each request",
            verified.jti
        ))),
        Err(e) => Err(OAuthError::server("recording the DPoP proof", &e)),
    }
}

/// Records every link of the subject chain the store does not know yet
/// (a link delegated offline is otherwise recorded only when it first
/// calls the gateway): the exchanged remit's calls take steps from each
/// of them ([`remit_store::BudgetRepo::consume_call`] follows the
/// exchange), so each must have its step counter before the exchanged
/// remit exists.
async fn record_subject_links<S: Store>(
    state: &AppState<S>,
    subject: &VerifiedChain,
) -> Result<(), OAuthError> {
    let id = |what, v: &str| Id::parse(what, v).map_err(|e| OAuthError::server("an id", &e));
    let mut parent: Option<Id> = None;
    for link in subject.links() {
        let c = link.claims();
        let jti = id("remit jti", &c.jti)?;
        let record = IssuedRemit {
            jti: jti.clone(),
            root_jti: id("remit jti", &c.root)?,
            parent_jti: parent.clone(),
            holder_thumbprint: c.cnf.jkt.as_str().to_owned(),
            sub: id("user (sub)", &c.sub)?,
            agent: id("agent id", &c.act.sub)?,
            issued_at: to_i64(c.iat),
            expires_at: to_i64(c.exp),
            max_steps: c.max_steps.map(to_i64),
        };
        match state.store().record_remit(&record).await {
            Ok(()) | Err(remit_store::StoreError::Duplicate { .. }) => {}
            Err(remit_store::StoreError::NotFound { .. }) => {
                return Err(OAuthError::grant(format!(
                    "the subject chain's holder {:?} is not a registered agent",
                    c.act.sub
                )))
            }
            Err(e) => return Err(OAuthError::server("recording the subject chain", &e)),
        }
        parent = Some(jti);
    }
    Ok(())
}

fn to_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}
