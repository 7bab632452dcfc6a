//! Stage 1: who is calling. `Authorization: DPoP <chain>` with a `DPoP`
//! proof header (bound to the leaf holder key, the method and this
//! server's URL, and refused when replayed here or, when replicas share
//! the store, at any of them), or `Authorization: Bearer
//! <chain>` for clients that cannot sign proofs (the policy is told
//! `pop = false`; the gateway refuses bearer use when configured to).
//!
//! The audience is this server's resource URL (`<public_url>/mcp/<id>`) or
//! the deployment-wide audience the control plane mints for (`remit` by
//! default): a remit scoped to one server is refused at every other.
//! Every refusal is a 401 whose `WWW-Authenticate` names the RFC 9728
//! protected-resource metadata.

use crate::Gateway;
use std::sync::{Arc, PoisonError};

use axum::http::HeaderMap;
use remit_store::Store;
use remit_token::{pop, ProofRequest, VerifiedChain};

use remit_runtime::metrics::Stage;
use remit_runtime::state::Inactive;

/// How the caller proved possession of the remit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// A DPoP proof signed by the leaf holder key.
    Dpop,
    /// A bare bearer chain (no proof of possession).
    Bearer,
}

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The verified, unrevoked chain.
    pub chain: Arc<VerifiedChain>,
    /// How it was presented.
    pub scheme: Scheme,
    /// The revocation set's epoch read before the chain was checked: what
    /// the decision saw (receipts record it as `revocation_epoch`).
    pub revocation_epoch: Option<u64>,
    /// The chain's reference in the log (receipts record it as `chain`).
    pub chain_ref: Option<remit_ledger::ChainRef>,
}

/// A DPoP proof accepted by this process: its `jti`, and when it would be
/// refused by age anyway (no replica needs to remember it after that).
struct SeenProof {
    jti: String,
    expires_at: u64,
}

impl Caller {
    /// The acting agent (the leaf holder).
    pub fn agent(&self) -> &str {
        &self.chain.leaf_claims().act.sub
    }

    /// Whether a proof of possession was checked.
    pub fn pop(&self) -> bool {
        self.scheme == Scheme::Dpop
    }
}

/// Why a caller was not authenticated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No `Authorization` header.
    #[error("no credentials: send `Authorization: DPoP <remit chain>` with a `DPoP` proof header")]
    Missing,
    /// The header is not `DPoP <chain>` or `Bearer <chain>`.
    #[error("the Authorization header must use the DPoP or Bearer scheme")]
    Scheme,
    /// Bearer use is switched off.
    #[error("bearer remits are refused here; present the remit with a DPoP proof")]
    BearerRefused,
    /// The chain does not verify or is revoked.
    #[error("{0}")]
    Inactive(String),
    /// The audience is neither this server's resource URL nor the gateway's.
    #[error("the remit's audience {found:?} is not this server ({expected:?})")]
    Audience {
        /// This server's resource URL.
        expected: String,
        /// The remit's `aud`.
        found: String,
    },
    /// The `DPoP` header is missing or not a single proof.
    #[error("a DPoP remit needs exactly one `DPoP` proof header")]
    ProofMissing,
    /// The proof does not verify.
    #[error("DPoP proof refused: {0}")]
    Proof(String),
    /// The proof was seen before.
    #[error("DPoP proof refused: {0}")]
    Replay(String),
    /// The store shared by the replicas could not say whether the proof
    /// was seen before, so it is not accepted (fail closed).
    #[error("DPoP proof not accepted: the replay check across replicas failed ({0}); retry with a new proof")]
    ReplayUnchecked(String),
    /// The chain could not be recorded in the receipt log, so no decision
    /// could name it (fail closed).
    #[error("the remit chain could not be recorded in the receipt log ({0}); retry later")]
    Unrecorded(String),
}

impl AuthError {
    /// A stable reason code for the unauthenticated-refusal counters.
    pub fn reason(&self) -> &'static str {
        match self {
            AuthError::Missing => "missing",
            AuthError::Scheme => "scheme",
            AuthError::BearerRefused => "bearer_refused",
            AuthError::Inactive(_) => "inactive",
            AuthError::Audience { .. } => "audience",
            AuthError::ProofMissing => "proof_missing",
            AuthError::Proof(_) => "proof",
            AuthError::Replay(_) => "replay",
            AuthError::ReplayUnchecked(_) => "replay_unchecked",
            AuthError::Unrecorded(_) => "unrecorded",
        }
    }

    /// The RFC 6750 `error` code for the challenge.
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing => "invalid_request",
            AuthError::Scheme | AuthError::ProofMissing => "invalid_request",
            AuthError::Proof(_) | AuthError::Replay(_) | AuthError::ReplayUnchecked(_) => {
                "invalid_dpop_proof"
            }
            _ => "invalid_token",
        }
    }
}

/// Completes the `deny` receipt of a chain refused before any message was
/// handled (an HTTP `Authorization` the gateway refused, a remit `remit
/// wrap` refused at start): `event` already names what the chain claimed,
/// marked unverified; this adds the server, the revocation epoch seen, a
/// call id and the decision under `rule` with `reason` (bounded).
pub fn refused_chain_receipt<S: Store>(
    state: &Gateway<S>,
    mut event: remit_ledger::Event,
    server: &str,
    rule: &str,
    reason: &str,
) -> remit_ledger::Event {
    use remit_runtime::bounded::{bounded, caller_text, MAX_MESSAGE_TEXT};
    use remit_runtime::receipts::events;
    event.tool = Some(format!("mcp:{}", caller_text(server)));
    event.revocation_epoch = events::epoch(state.revocations().epoch());
    event.call_id = events::call_id();
    event.decision = Some(remit_ledger::Decision {
        effect: remit_ledger::Effect::Deny,
        policy_ids: vec![rule.to_owned()],
        policy_version: state.policy_version(),
        reason: Some(bounded(reason, MAX_MESSAGE_TEXT).into_owned()),
    });
    event
}

/// The resource URL of `server`: the audience and the proof's `htu`.
pub fn resource_url(public_url: &str, server: &str) -> String {
    format!("{public_url}/mcp/{server}")
}

/// The RFC 9728 metadata URL for `server`.
pub fn metadata_url(public_url: &str, server: &str) -> String {
    format!("{public_url}/.well-known/oauth-protected-resource/mcp/{server}")
}

/// The `WWW-Authenticate` challenges for a refusal (RFC 6750, RFC 9449,
/// RFC 9728): `DPoP`, and `Bearer` too when bearer remits are accepted,
/// each naming the metadata and, when given, the error. `server` and the
/// description may carry caller text: both are bounded
/// ([`crate::bounded`]), so the header stays small whatever was sent.
pub fn challenges(
    public_url: &str,
    server: &str,
    bearer: bool,
    error: Option<(&str, &str)>,
) -> Vec<String> {
    let server = remit_runtime::bounded::caller_text(server);
    let metadata = metadata_url(public_url, &server);
    let mut tail = String::new();
    if let Some((code, description)) = error {
        let description: String = remit_runtime::bounded::bounded(description, 256)
            .chars()
            .map(|c| {
                if c == '"' || c == '\\' || c.is_control() {
                    '\''
                } else {
                    c
                }
            })
            .collect();
        tail = format!(", error=\"{code}\", error_description=\"{description}\"");
    }
    let mut out = vec![format!(
        "DPoP algs=\"ES256\", resource_metadata=\"{metadata}\"{tail}"
    )];
    if bearer {
        out.push(format!("Bearer resource_metadata=\"{metadata}\"{tail}"));
    }
    out
}

/// Authenticates a request for `server` made with `method` at time `now`:
/// the chain, the proof, and the proof's replay check — in this process,
/// and in the store when replicas share it.
pub async fn authenticate<S: Store>(
    state: &Gateway<S>,
    headers: &HeaderMap,
    method: &str,
    server: &str,
    now: u64,
) -> Result<Caller, AuthError> {
    let started = std::time::Instant::now();
    let checked = async {
        let (mut caller, proof) = verify(state, headers, method, server, now)?;
        if let Some(proof) = proof {
            refuse_replay_across_replicas(state, &caller, &proof, now).await?;
        }
        caller.chain_ref = Some(chain_reference(state, &caller).await?);
        Ok::<_, AuthError>(caller)
    }
    .await;
    remit_runtime::metrics::stage(Stage::Authenticate, started.elapsed().as_secs_f64());
    checked
}

/// The log's reference to `caller`'s chain, recording the chain once
/// (at once when it is bound to its holder's key and bearer use is
/// refused here, else after it expired: [`remit_runtime::receipts::chains`]).
pub async fn chain_reference<S: Store>(
    state: &Gateway<S>,
    caller: &Caller,
) -> Result<remit_ledger::ChainRef, AuthError> {
    use remit_runtime::receipts::chains::Presented;
    let links = caller.chain.links();
    let compact: Vec<&str> = links.iter().map(|l| l.compact()).collect();
    let exp = links.iter().map(|l| l.claims().exp).min().unwrap_or(0);
    let presented = if caller.pop() && !state.gateway().config().allow_bearer {
        Presented::BoundOnly
    } else {
        Presented::Replayable
    };
    state
        .chain_reference(&compact, exp, presented)
        .await
        .map_err(|e| AuthError::Unrecorded(e.to_string()))
}

/// Everything [`authenticate`] checks without the store: the chain, and the
/// proof against this process's replay cache.
fn verify<S: Store>(
    state: &Gateway<S>,
    headers: &HeaderMap,
    method: &str,
    server: &str,
    now: u64,
) -> Result<(Caller, Option<SeenProof>), AuthError> {
    let value = headers
        .get(axum::http::header::AUTHORIZATION)
        .ok_or(AuthError::Missing)?
        .to_str()
        .map_err(|_| AuthError::Scheme)?;
    let (scheme, text) = value.split_once(' ').ok_or(AuthError::Scheme)?;
    let scheme = if scheme.eq_ignore_ascii_case("dpop") {
        Scheme::Dpop
    } else if scheme.eq_ignore_ascii_case("bearer") {
        Scheme::Bearer
    } else {
        return Err(AuthError::Scheme);
    };
    let config = state.gateway().config();
    if scheme == Scheme::Bearer && !config.allow_bearer {
        return Err(AuthError::BearerRefused);
    }
    let resource = resource_url(&state.settings().public_url, server);
    let revocation_epoch = remit_runtime::receipts::events::epoch(state.revocations().epoch());
    let chain = check(state, text.trim(), now, &resource)?;
    let mut seen = None;
    if scheme == Scheme::Dpop {
        let mut proofs = headers.get_all("dpop").iter();
        let (Some(proof), None) = (proofs.next(), proofs.next()) else {
            return Err(AuthError::ProofMissing);
        };
        let proof = proof.to_str().map_err(|_| AuthError::ProofMissing)?;
        let request = ProofRequest {
            htm: method,
            htu: &resource,
        };
        let verified = pop::verify_proof(proof, &chain, request, now, config.proof_max_skew_secs)
            .map_err(|e| AuthError::Proof(e.to_string()))?;
        state
            .gateway()
            .replay()
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .check_and_insert(&verified.jti, verified.iat, now)
            .map_err(|e| AuthError::Replay(e.to_string()))?;
        seen = Some(SeenProof {
            expires_at: verified
                .iat
                .saturating_add(config.proof_max_skew_secs)
                .saturating_add(1),
            jti: verified.jti,
        });
    }
    let caller = Caller {
        chain,
        scheme,
        revocation_epoch,
        chain_ref: None,
    };
    Ok((caller, seen))
}

/// Refuses a proof another replica already accepted. The in-memory replay
/// cache sees only this process; when the store is shared by replicas
/// ([`Store::replicated`], PostgreSQL) the proof's `jti` is also recorded
/// there, once, until it is too old to be accepted anywhere. A store
/// failure refuses the proof (fail closed).
async fn refuse_replay_across_replicas<S: Store>(
    state: &Gateway<S>,
    caller: &Caller,
    proof: &SeenProof,
    now: u64,
) -> Result<(), AuthError> {
    if !state.store().replicated() {
        return Ok(());
    }
    let agent = remit_store::Id::parse("agent id", caller.agent())
        .map_err(|e| AuthError::ReplayUnchecked(e.to_string()))?;
    let to_i64 = |t: u64| i64::try_from(t).unwrap_or(i64::MAX);
    match state
        .store()
        .use_assertion(
            &agent,
            &format!("dpop:{}", proof.jti),
            to_i64(proof.expires_at),
            to_i64(now),
        )
        .await
    {
        Ok(()) => Ok(()),
        Err(remit_store::StoreError::Duplicate { .. }) => Err(AuthError::Replay(format!(
            "proof jti {:?} was already used at another replica",
            proof.jti
        ))),
        Err(e) => Err(AuthError::ReplayUnchecked(e.to_string())),
    }
}

/// The chain in `text`, verified and not revoked at `now`, addressed to
/// the deployment or to this server's `resource` URL; both transports
/// (HTTP and the stdio wrap) check a caller's remit with it.
pub(super) fn check<S: Store>(
    state: &Gateway<S>,
    text: &str,
    now: u64,
    resource: &str,
) -> Result<Arc<VerifiedChain>, AuthError> {
    let inactive = |e: Inactive| AuthError::Inactive(e.to_string());
    let audience_error = || AuthError::Audience {
        expected: resource.to_owned(),
        found: remit_token::UnverifiedChain::parse(text)
            .map(|c| c.leaf().claims().aud.clone())
            .unwrap_or_default(),
    };
    // The deployment-wide audience goes through the shared cache; a
    // server-scoped one is verified against this server's URL (in a cache
    // of its own).
    let chain = match state.check_chain(text, now) {
        Ok(chain) => chain,
        Err(Inactive::Invalid(_)) => {
            state
                .check_chain_for(text, now, resource)
                .map_err(|e| match e {
                    Inactive::Invalid(err) if err.rule() == "audience" => audience_error(),
                    other => inactive(other),
                })?
        }
        Err(revoked) => return Err(inactive(revoked)),
    };
    // INVARIANT: every link carries the same aud (a chain rule), so the
    // leaf's decides; checked again here because caches are keyed by text.
    let aud = chain.leaf_claims().aud.as_str();
    if aud != state.settings().audience && aud != resource {
        return Err(audience_error());
    }
    Ok(chain)
}
