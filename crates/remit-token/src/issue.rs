//! Minting a root remit and delegating a child (the issuing side; the
//! chain rules it checks a child against live in [`crate::chain`]).

use serde_json::json;

use crate::chain::{check_child, LinkError, UnverifiedChain};
use crate::claims::{Actor, Classification, Confirmation, RemitClaims, ScanEvidence};
use crate::crypto::{CryptoError, Signer};
use crate::grant::Grant;
use crate::jwk::EcPublicJwk;
use crate::jws;
use crate::pattern::Pattern;
use crate::remit::{
    fresh_jti, UnverifiedRemit, DEFAULT_AUDIENCE, DEFAULT_ISSUER, DEFAULT_MAX_DEPTH,
    DEFAULT_TTL_SECS, MAX_ROOT_TTL_SECS,
};

/// Why a remit could not be minted or delegated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IssueError {
    /// No grant was requested.
    #[error("a remit needs at least one grant (--tool)")]
    NoGrants,
    /// The lifetime is zero or above the cap.
    #[error("ttl must be between 1 s and {max} s, got {requested} s")]
    Ttl {
        /// Requested lifetime in seconds.
        requested: u64,
        /// Longest accepted lifetime in seconds.
        max: u64,
    },
    /// `max_depth` would allow more links than a chain may hold.
    #[error("max_depth {0} is too large; at most {max} is accepted", max = crate::chain::MAX_LINKS - 1)]
    MaxDepth(u32),
    /// A requested tool is not covered by any grant of the parent.
    #[error("tool {0:?} is not granted by the parent remit")]
    ToolNotInParent(String),
    /// The signing key is not the parent's holder key.
    #[error("the signing key (thumbprint {found}) is not the parent's holder key ({expected})")]
    NotHolder {
        /// The parent's `cnf.jkt`.
        expected: String,
        /// The thumbprint of the key offered.
        found: String,
    },
    /// The parent remit has expired.
    #[error("the parent remit expired at {exp} (now {now})")]
    ParentExpired {
        /// Parent `exp`.
        exp: u64,
        /// The time given.
        now: u64,
    },
    /// The child would break a chain rule.
    #[error("the delegation would break a chain rule: {0}")]
    Rule(LinkError),
    /// Signing or randomness failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

impl From<LinkError> for IssueError {
    fn from(error: LinkError) -> Self {
        IssueError::Rule(error)
    }
}

/// What the control plane asks for when it mints a root remit.
#[derive(Debug, Clone)]
pub struct MintRequest {
    /// `iss`; defaults to [`DEFAULT_ISSUER`].
    pub issuer: String,
    /// `sub`: the human or service the work is for.
    pub subject: String,
    /// The agent that will hold the remit (`act.sub`).
    pub agent: String,
    /// The holder's public key (`cnf`).
    pub holder: EcPublicJwk,
    /// What the holder may do.
    pub grants: Vec<Grant>,
    /// `aud`; defaults to [`DEFAULT_AUDIENCE`].
    pub audience: String,
    /// Lifetime in seconds; defaults to [`DEFAULT_TTL_SECS`].
    pub ttl_secs: u64,
    /// Highest classification; defaults to INTERNAL.
    pub class: Classification,
    /// Tool calls allowed.
    pub max_steps: Option<u64>,
    /// Deepest delegation depth; defaults to [`DEFAULT_MAX_DEPTH`].
    pub max_depth: u32,
    /// `acr` of the human's approval.
    pub acr: Option<String>,
    /// `amr` of the human's approval.
    pub amr: Vec<String>,
    /// Scan evidence.
    pub scan: Option<ScanEvidence>,
    /// Policy version hash.
    pub policy: Option<String>,
    /// A chosen `jti`; a fresh random one otherwise.
    pub jti: Option<String>,
}

impl MintRequest {
    /// A request with the defaults for everything not named.
    pub fn new(
        subject: impl Into<String>,
        agent: impl Into<String>,
        holder: EcPublicJwk,
        grants: Vec<Grant>,
    ) -> Self {
        MintRequest {
            issuer: DEFAULT_ISSUER.into(),
            subject: subject.into(),
            agent: agent.into(),
            holder,
            grants,
            audience: DEFAULT_AUDIENCE.into(),
            ttl_secs: DEFAULT_TTL_SECS,
            class: Classification::Internal,
            max_steps: None,
            max_depth: DEFAULT_MAX_DEPTH,
            acr: None,
            amr: Vec::new(),
            scan: None,
            policy: None,
            jti: None,
        }
    }
}

fn check_ttl(ttl: u64) -> Result<(), IssueError> {
    if ttl == 0 || ttl > MAX_ROOT_TTL_SECS {
        return Err(IssueError::Ttl {
            requested: ttl,
            max: MAX_ROOT_TTL_SECS,
        });
    }
    Ok(())
}

fn sign_claims(
    claims: &RemitClaims,
    signer: &dyn Signer,
    kid: &str,
) -> Result<UnverifiedRemit, IssueError> {
    let header = json!({"alg": "ES256", "typ": crate::REMIT_TYP, "kid": kid});
    let payload = serde_json::to_vec(claims)
        .map_err(|e| CryptoError::SigningFailed(format!("claims encoding: {e}")))?;
    let compact = jws::sign(&header, &payload, signer)?;
    UnverifiedRemit::parse(&compact)
        .map_err(|e| IssueError::Crypto(CryptoError::SigningFailed(e.to_string())))
}

/// Mints a root remit signed by an issuer key, at time `now` (Unix seconds).
pub fn mint(
    issuer: &dyn Signer,
    request: &MintRequest,
    now: u64,
) -> Result<UnverifiedRemit, IssueError> {
    if request.grants.is_empty() {
        return Err(IssueError::NoGrants);
    }
    check_ttl(request.ttl_secs)?;
    for (index, grant) in request.grants.iter().enumerate() {
        grant
            .check()
            .map_err(|reason| LinkError::InvalidGrant { index, reason })?;
    }
    if request.max_depth as usize >= crate::chain::MAX_LINKS {
        return Err(IssueError::MaxDepth(request.max_depth));
    }
    let jti = match &request.jti {
        Some(jti) => jti.clone(),
        None => fresh_jti()?,
    };
    let claims = RemitClaims {
        iss: request.issuer.clone(),
        sub: request.subject.clone(),
        aud: request.audience.clone(),
        iat: now,
        nbf: now,
        exp: now.saturating_add(request.ttl_secs),
        jti: jti.clone(),
        act: Actor {
            sub: request.agent.clone(),
            act: None,
        },
        authorization_details: request.grants.clone(),
        cnf: Confirmation::for_key(&request.holder),
        max_steps: request.max_steps,
        class: request.class,
        acr: request.acr.clone(),
        amr: request.amr.clone(),
        scan: request.scan.clone(),
        policy: request.policy.clone(),
        prf: None,
        root: jti,
        depth: 0,
        max_depth: request.max_depth,
    };
    sign_claims(&claims, issuer, issuer.key_id())
}

/// What a holder asks for when it delegates to a sub-agent.
#[derive(Debug, Clone)]
pub struct DelegateRequest {
    /// The sub-agent that will hold the child (`act.sub`).
    pub agent: String,
    /// The sub-agent's public key (`cnf`).
    pub holder: EcPublicJwk,
    /// What the sub-agent may do: each grant within one of the parent's.
    pub grants: Vec<Grant>,
    /// Lifetime in seconds, cut to the parent's expiry.
    pub ttl_secs: u64,
    /// Highest classification; the parent's when `None`.
    pub class: Option<Classification>,
    /// Tool calls allowed; the parent's when `None`.
    pub max_steps: Option<u64>,
    /// Deepest depth for descendants; the parent's when `None`.
    pub max_depth: Option<u32>,
    /// A chosen `jti`; a fresh random one otherwise.
    pub jti: Option<String>,
}

impl DelegateRequest {
    /// A request inheriting class, steps and depth from the parent, for 30 s.
    pub fn new(agent: impl Into<String>, holder: EcPublicJwk, grants: Vec<Grant>) -> Self {
        DelegateRequest {
            agent: agent.into(),
            holder,
            grants,
            ttl_secs: 30,
            class: None,
            max_steps: None,
            max_depth: None,
            jti: None,
        }
    }
}

/// Builds child grants for `tools` (and optionally `resources`), each
/// inheriting the actions and argument constraints of the parent grant that
/// covers it, so that a narrowing stated by names alone stays within the
/// parent.
pub fn narrow_grants(
    parent: &[Grant],
    tools: &[Pattern],
    resources: Option<&[Pattern]>,
) -> Result<Vec<Grant>, IssueError> {
    let mut out: Vec<(usize, Grant)> = Vec::new();
    for tool in tools {
        let index = parent
            .iter()
            .position(|g| g.tools.iter().any(|p| p.covers(tool)))
            .ok_or_else(|| IssueError::ToolNotInParent(tool.to_string()))?;
        if let Some((_, grant)) = out.iter_mut().find(|(i, _)| *i == index) {
            grant.tools.push(tool.clone());
            continue;
        }
        let base = &parent[index];
        out.push((
            index,
            Grant {
                kind: base.kind,
                tools: vec![tool.clone()],
                resources: resources
                    .map(<[Pattern]>::to_vec)
                    .or(base.resources.clone()),
                actions: base.actions.clone(),
                args: base.args.clone(),
            },
        ));
    }
    Ok(out.into_iter().map(|(_, g)| g).collect())
}

/// Signs a child of `chain`'s leaf with the leaf's holder key, at time `now`,
/// and returns the child (append it to the chain to present it).
///
/// The child is checked against every chain rule before it is returned, so
/// a delegation that verification would refuse is refused here, naming the
/// rule. The parent chain itself is not verified: the holder may not have
/// the issuer keys.
pub fn delegate(
    chain: &UnverifiedChain,
    holder_key: &dyn Signer,
    request: &DelegateRequest,
    now: u64,
) -> Result<UnverifiedRemit, IssueError> {
    let parent = chain.leaf();
    if chain.links().len() >= crate::chain::MAX_LINKS {
        return Err(IssueError::Rule(LinkError::DepthExceeded {
            depth: chain.links().len() as u32,
            max_depth: parent.claims().max_depth,
        }));
    }
    let p = parent.claims();
    if request.grants.is_empty() {
        return Err(IssueError::NoGrants);
    }
    check_ttl(request.ttl_secs)?;
    let signer_jkt = holder_key.public_jwk().thumbprint();
    if signer_jkt != p.cnf.jkt {
        return Err(IssueError::NotHolder {
            expected: p.cnf.jkt.to_string(),
            found: signer_jkt.to_string(),
        });
    }
    if now >= p.exp {
        return Err(IssueError::ParentExpired { exp: p.exp, now });
    }
    let jti = match &request.jti {
        Some(jti) => jti.clone(),
        None => fresh_jti()?,
    };
    let claims = RemitClaims {
        iss: p.act.sub.clone(),
        sub: p.sub.clone(),
        aud: p.aud.clone(),
        iat: now,
        nbf: now.max(p.nbf),
        exp: now.saturating_add(request.ttl_secs).min(p.exp),
        jti,
        act: Actor {
            sub: request.agent.clone(),
            act: Some(Box::new(p.act.clone())),
        },
        authorization_details: request.grants.clone(),
        cnf: Confirmation::for_key(&request.holder),
        max_steps: request.max_steps.or(p.max_steps),
        class: request.class.unwrap_or(p.class),
        acr: p.acr.clone(),
        amr: p.amr.clone(),
        scan: p.scan.clone(),
        policy: p.policy.clone(),
        prf: Some(parent.hash()),
        root: p.root.clone(),
        depth: p.depth + 1,
        max_depth: request.max_depth.unwrap_or(p.max_depth),
    };
    check_child(parent, &parent.hash(), &claims, chain.links())?;
    sign_claims(&claims, holder_key, p.cnf.jkt.as_str())
}
