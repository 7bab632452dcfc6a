//! Delegation chains: parsing `root~child~...~leaf` and verifying every rule.
//!
//! [`VerifiedChain`] can only be obtained from [`VerifiedChain::verify`] or
//! [`VerifiedChain::extend`]; holding one means every link's signature and
//! every attenuation rule was checked at the `now` given.

use serde::Serialize;

use crate::claims::{Classification, RemitClaims};
use crate::crypto::VerifyingKey;
use crate::grant::Grant;
use crate::jwk::Thumbprint;
use crate::jwks::Jwks;
use crate::remit::{RemitError, UnverifiedRemit, DEFAULT_AUDIENCE};

/// Most links a chain may hold (root included).
pub const MAX_LINKS: usize = 16;
/// The separator between compact remits in a chain.
pub const CHAIN_SEPARATOR: char = '~';

/// Why one link of a chain was refused: the rule it broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    /// The token did not parse.
    #[error("malformed remit: {0}")]
    Malformed(RemitError),
    /// The root's `kid` names no key of the issuer key set.
    #[error("kid {0:?} is not in the issuer key set")]
    UnknownIssuerKey(String),
    /// A child's `kid` is not its parent's holder thumbprint.
    #[error("signed by key {found:?}, not by the parent's holder key {expected:?}")]
    WrongSigningKey {
        /// The parent's `cnf.jkt`.
        expected: String,
        /// The child's `kid`.
        found: String,
    },
    /// The parent's `cnf.jwk` is not a usable P-256 key.
    #[error("the parent's holder key is invalid")]
    InvalidHolderKey,
    /// The ES256 signature does not verify.
    #[error("signature does not verify")]
    BadSignature,
    /// `iss` is not the expected issuer (root) or the delegating agent (child).
    #[error("iss {found:?} is not the expected {expected:?}")]
    Issuer {
        /// The expected issuer.
        expected: String,
        /// The claim.
        found: String,
    },
    /// `aud` is not the audience this verifier serves.
    #[error("aud {found:?} is not {expected:?}")]
    Audience {
        /// The audience expected.
        expected: String,
        /// The claim.
        found: String,
    },
    /// The link has expired.
    #[error("expired at {exp} (now {now})")]
    Expired {
        /// `exp`.
        exp: u64,
        /// The time given.
        now: u64,
    },
    /// The link is not valid yet.
    #[error("not valid before {nbf} (now {now})")]
    NotYetValid {
        /// `nbf`.
        nbf: u64,
        /// The time given.
        now: u64,
    },
    /// `iat`, `nbf` and `exp` are inconsistent (`nbf >= exp` or `iat > exp`).
    #[error("inconsistent times: iat {iat}, nbf {nbf}, exp {exp}")]
    Times {
        /// `iat`.
        iat: u64,
        /// `nbf`.
        nbf: u64,
        /// `exp`.
        exp: u64,
    },
    /// A root with `prf`, a non-zero `depth`, or `root` not its own `jti`.
    #[error("not a valid root: {0}")]
    RootShape(&'static str),
    /// A child without `prf`.
    #[error("a delegated remit must name its parent (prf)")]
    MissingParentHash,
    /// `prf` is not the hash of the preceding link (re-parented or spliced).
    #[error("prf does not match the parent remit (re-parented or spliced link)")]
    ParentHashMismatch,
    /// `root` differs from the chain's root `jti`.
    #[error("root {found:?} is not the chain's root {expected:?}")]
    RootMismatch {
        /// The chain's root `jti`.
        expected: String,
        /// The claim.
        found: String,
    },
    /// `sub` differs from the parent's.
    #[error("sub changed from {parent:?} to {child:?}")]
    SubjectChanged {
        /// The parent's `sub`.
        parent: String,
        /// The child's `sub`.
        child: String,
    },
    /// `aud` differs from the parent's.
    #[error("aud changed along the chain")]
    AudienceChanged,
    /// `acr`/`amr` differ from the parent's: approval evidence was rewritten.
    #[error("acr/amr changed along the chain")]
    ApprovalChanged,
    /// `exp` later than the parent's.
    #[error("exp {child} extends past the parent's {parent}")]
    ExpiryExtended {
        /// The parent's `exp`.
        parent: u64,
        /// The child's `exp`.
        child: u64,
    },
    /// `nbf` earlier than the parent's.
    #[error("nbf {child} is earlier than the parent's {parent}")]
    NotBeforeEarlier {
        /// The parent's `nbf`.
        parent: u64,
        /// The child's `nbf`.
        child: u64,
    },
    /// A grant is not within any of the parent's grants.
    #[error("grant {index} is wider than every grant of the parent")]
    GrantWidened {
        /// Position in `authorization_details`.
        index: usize,
    },
    /// A grant holds a constraint that cannot be used (a regex that does
    /// not compile within its limits).
    #[error("grant {index}: {reason}")]
    InvalidGrant {
        /// Position in `authorization_details`.
        index: usize,
        /// What is wrong.
        reason: String,
    },
    /// The child carries no grant at all.
    #[error("a remit must carry at least one grant")]
    NoGrants,
    /// `max_steps` raised or dropped.
    #[error("max_steps {child:?} is wider than the parent's {parent:?}")]
    StepsRaised {
        /// The parent's `max_steps`.
        parent: Option<u64>,
        /// The child's `max_steps`.
        child: Option<u64>,
    },
    /// `class` raised.
    #[error("class {child} is above the parent's {parent}")]
    ClassRaised {
        /// The parent's `class`.
        parent: Classification,
        /// The child's `class`.
        child: Classification,
    },
    /// `depth` is not the parent's plus one.
    #[error("depth {found} should be {expected}")]
    DepthMismatch {
        /// Parent depth + 1.
        expected: u32,
        /// The claim.
        found: u32,
    },
    /// `depth` beyond the allowed `max_depth`.
    #[error("depth {depth} exceeds max_depth {max_depth}")]
    DepthExceeded {
        /// The link's depth.
        depth: u32,
        /// The parent's `max_depth`.
        max_depth: u32,
    },
    /// `max_depth` raised above the parent's, or beyond what a chain holds.
    #[error("max_depth {child} is above the allowed {allowed}")]
    MaxDepthRaised {
        /// The largest allowed.
        allowed: u32,
        /// The claim.
        child: u32,
    },
    /// The child's `act` does not nest the parent's `act`.
    #[error("act does not nest the parent's actor")]
    ActorNotNested,
    /// An agent appears twice along the chain.
    #[error("agent {0:?} appears twice in the chain (delegation cycle)")]
    ActorCycle(String),
    /// A holder key appears twice along the chain.
    #[error("holder key {0} appears twice in the chain (delegation cycle)")]
    HolderKeyReused(String),
    /// A `jti` appears twice along the chain.
    #[error("jti {0:?} appears twice in the chain")]
    JtiReused(String),
}

impl From<RemitError> for LinkError {
    fn from(error: RemitError) -> Self {
        LinkError::Malformed(error)
    }
}

impl LinkError {
    /// A stable, machine-readable name of the rule broken.
    pub fn rule(&self) -> &'static str {
        match self {
            LinkError::Malformed(_) => "malformed",
            LinkError::UnknownIssuerKey(_) => "unknown_issuer_key",
            LinkError::WrongSigningKey { .. } => "wrong_signing_key",
            LinkError::InvalidHolderKey => "invalid_holder_key",
            LinkError::BadSignature => "signature",
            LinkError::Issuer { .. } => "issuer",
            LinkError::Audience { .. } => "audience",
            LinkError::Expired { .. } => "expired",
            LinkError::NotYetValid { .. } => "not_yet_valid",
            LinkError::Times { .. } => "times",
            LinkError::RootShape(_) => "root_shape",
            LinkError::MissingParentHash => "missing_prf",
            LinkError::ParentHashMismatch => "prf_mismatch",
            LinkError::RootMismatch { .. } => "root_mismatch",
            LinkError::SubjectChanged { .. } => "sub_changed",
            LinkError::AudienceChanged => "aud_changed",
            LinkError::ApprovalChanged => "approval_changed",
            LinkError::ExpiryExtended { .. } => "exp_extended",
            LinkError::NotBeforeEarlier { .. } => "nbf_earlier",
            LinkError::GrantWidened { .. } => "grant_widened",
            LinkError::NoGrants => "no_grants",
            LinkError::InvalidGrant { .. } => "invalid_grant",
            LinkError::StepsRaised { .. } => "steps_raised",
            LinkError::ClassRaised { .. } => "class_raised",
            LinkError::DepthMismatch { .. } => "depth_mismatch",
            LinkError::DepthExceeded { .. } => "depth_exceeded",
            LinkError::MaxDepthRaised { .. } => "max_depth_raised",
            LinkError::ActorNotNested => "act_not_nested",
            LinkError::ActorCycle(_) => "actor_cycle",
            LinkError::HolderKeyReused(_) => "holder_key_reused",
            LinkError::JtiReused(_) => "jti_reused",
        }
    }
}

/// Why a chain was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// No token at all.
    #[error("empty chain")]
    Empty,
    /// More than [`MAX_LINKS`] links.
    #[error("chain has more than {MAX_LINKS} links")]
    TooManyLinks,
    /// One link broke a rule.
    #[error("link {index}: {error}")]
    Link {
        /// Position of the link, 0 for the root.
        index: usize,
        /// The rule it broke.
        error: LinkError,
    },
}

impl ChainError {
    /// The index of the offending link, when one link is to blame.
    pub fn link(&self) -> Option<usize> {
        match self {
            ChainError::Link { index, .. } => Some(*index),
            _ => None,
        }
    }

    /// A stable, machine-readable name of the rule broken.
    pub fn rule(&self) -> &'static str {
        match self {
            ChainError::Empty => "empty",
            ChainError::TooManyLinks => "too_many_links",
            ChainError::Link { error, .. } => error.rule(),
        }
    }
}

fn at(index: usize) -> impl Fn(LinkError) -> ChainError {
    move |error| ChainError::Link { index, error }
}

/// The compact remits of a chain, parsed but not verified.
#[derive(Debug, Clone)]
pub struct UnverifiedChain {
    links: Vec<UnverifiedRemit>,
}

impl UnverifiedChain {
    /// Parses `root~child~...~leaf` (surrounding whitespace ignored).
    pub fn parse(text: &str) -> Result<Self, ChainError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(ChainError::Empty);
        }
        if text.split(CHAIN_SEPARATOR).nth(MAX_LINKS).is_some() {
            return Err(ChainError::TooManyLinks);
        }
        let links = text
            .split(CHAIN_SEPARATOR)
            .enumerate()
            .map(|(i, token)| UnverifiedRemit::parse(token).map_err(|e| at(i)(e.into())))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(UnverifiedChain { links })
    }

    /// Wraps already parsed links, root first.
    pub fn from_links(links: Vec<UnverifiedRemit>) -> Result<Self, ChainError> {
        if links.is_empty() {
            return Err(ChainError::Empty);
        }
        if links.len() > MAX_LINKS {
            return Err(ChainError::TooManyLinks);
        }
        Ok(UnverifiedChain { links })
    }

    /// The links, root first.
    pub fn links(&self) -> &[UnverifiedRemit] {
        &self.links
    }

    /// The last link.
    pub fn leaf(&self) -> &UnverifiedRemit {
        // INVARIANT: both constructors refuse an empty chain.
        &self.links[self.links.len() - 1]
    }

    /// The chain text, links joined by `~`.
    pub fn to_text(&self) -> String {
        join(&self.links)
    }
}

fn join(links: &[UnverifiedRemit]) -> String {
    let mut out = String::new();
    for (i, link) in links.iter().enumerate() {
        if i > 0 {
            out.push(CHAIN_SEPARATOR);
        }
        out.push_str(link.compact());
    }
    out
}

/// What a verifier requires beyond signatures and chain rules.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// The current time, Unix seconds.
    pub now: u64,
    /// The audience every link must name; defaults to `remit`.
    pub audience: String,
    /// The root's required `iss`, if any.
    pub issuer: Option<String>,
    /// Clock skew tolerated on `nbf` and `exp`, seconds; default 0.
    pub leeway_secs: u64,
}

impl VerifyOptions {
    /// Defaults: audience `remit`, any issuer in the key set, no leeway.
    pub fn new(now: u64) -> Self {
        VerifyOptions {
            now,
            audience: DEFAULT_AUDIENCE.into(),
            issuer: None,
            leeway_secs: 0,
        }
    }
}

/// A chain whose every link was verified; carries the effective authority.
///
/// Because each link must be within its parent, the leaf's grants, class,
/// steps and validity window *are* the intersection along the chain.
#[derive(Debug, Clone)]
pub struct VerifiedChain {
    links: Vec<UnverifiedRemit>,
    leaf_hash: String,
}

/// Checks what claim parsing defers; run only after the signature verified.
pub(crate) fn check_grants(c: &RemitClaims) -> Result<(), LinkError> {
    for (index, grant) in c.authorization_details.iter().enumerate() {
        grant
            .check()
            .map_err(|reason| LinkError::InvalidGrant { index, reason })?;
    }
    Ok(())
}

fn check_time(c: &RemitClaims, opts: &VerifyOptions) -> Result<(), LinkError> {
    if c.nbf >= c.exp || c.iat > c.exp {
        return Err(LinkError::Times {
            iat: c.iat,
            nbf: c.nbf,
            exp: c.exp,
        });
    }
    if opts.now >= c.exp.saturating_add(opts.leeway_secs) {
        return Err(LinkError::Expired {
            exp: c.exp,
            now: opts.now,
        });
    }
    if opts.now.saturating_add(opts.leeway_secs) < c.nbf {
        return Err(LinkError::NotYetValid {
            nbf: c.nbf,
            now: opts.now,
        });
    }
    if c.aud != opts.audience {
        return Err(LinkError::Audience {
            expected: opts.audience.clone(),
            found: c.aud.clone(),
        });
    }
    Ok(())
}

fn verify_root(link: &UnverifiedRemit, jwks: &Jwks, opts: &VerifyOptions) -> Result<(), LinkError> {
    let key = jwks
        .get(link.kid())
        .ok_or_else(|| LinkError::UnknownIssuerKey(link.kid().to_owned()))?;
    link.verify_signature(key)
        .map_err(|_| LinkError::BadSignature)?;
    let c = link.claims();
    if c.prf.is_some() {
        return Err(LinkError::RootShape("a root must not carry prf"));
    }
    if c.depth != 0 {
        return Err(LinkError::RootShape("a root has depth 0"));
    }
    if c.root != c.jti {
        return Err(LinkError::RootShape("a root's root claim is its own jti"));
    }
    if c.act.act.is_some() {
        return Err(LinkError::RootShape("a root's act has no earlier actor"));
    }
    if c.authorization_details.is_empty() {
        return Err(LinkError::NoGrants);
    }
    check_grants(c)?;
    let allowed = (MAX_LINKS - 1) as u32;
    if c.max_depth > allowed {
        return Err(LinkError::MaxDepthRaised {
            allowed,
            child: c.max_depth,
        });
    }
    if let Some(issuer) = &opts.issuer {
        if &c.iss != issuer {
            return Err(LinkError::Issuer {
                expected: issuer.clone(),
                found: c.iss.clone(),
            });
        }
    }
    check_time(c, opts)
}

/// Checks every rule a child must keep relative to its parent, except the
/// signature and the clock. `ancestors` are all links before the child
/// (root first), used to refuse cycles.
pub(crate) fn check_child(
    parent: &UnverifiedRemit,
    parent_hash: &str,
    c: &RemitClaims,
    ancestors: &[UnverifiedRemit],
) -> Result<(), LinkError> {
    let p = parent.claims();
    match &c.prf {
        None => return Err(LinkError::MissingParentHash),
        Some(prf) if prf != parent_hash => return Err(LinkError::ParentHashMismatch),
        Some(_) => {}
    }
    if c.root != p.root {
        return Err(LinkError::RootMismatch {
            expected: p.root.clone(),
            found: c.root.clone(),
        });
    }
    if c.sub != p.sub {
        return Err(LinkError::SubjectChanged {
            parent: p.sub.clone(),
            child: c.sub.clone(),
        });
    }
    if c.aud != p.aud {
        return Err(LinkError::AudienceChanged);
    }
    if c.iss != p.act.sub {
        return Err(LinkError::Issuer {
            expected: p.act.sub.clone(),
            found: c.iss.clone(),
        });
    }
    if c.acr != p.acr || c.amr != p.amr {
        return Err(LinkError::ApprovalChanged);
    }
    if c.exp > p.exp {
        return Err(LinkError::ExpiryExtended {
            parent: p.exp,
            child: c.exp,
        });
    }
    if c.nbf < p.nbf {
        return Err(LinkError::NotBeforeEarlier {
            parent: p.nbf,
            child: c.nbf,
        });
    }
    let expected = p.depth + 1;
    if c.depth != expected {
        return Err(LinkError::DepthMismatch {
            expected,
            found: c.depth,
        });
    }
    if c.depth > p.max_depth {
        return Err(LinkError::DepthExceeded {
            depth: c.depth,
            max_depth: p.max_depth,
        });
    }
    if c.max_depth > p.max_depth {
        return Err(LinkError::MaxDepthRaised {
            allowed: p.max_depth,
            child: c.max_depth,
        });
    }
    let steps_ok = match (c.max_steps, p.max_steps) {
        (_, None) => true,
        (None, Some(_)) => false,
        (Some(c), Some(p)) => c <= p,
    };
    if !steps_ok {
        return Err(LinkError::StepsRaised {
            parent: p.max_steps,
            child: c.max_steps,
        });
    }
    if c.class > p.class {
        return Err(LinkError::ClassRaised {
            parent: p.class,
            child: c.class,
        });
    }
    if c.authorization_details.is_empty() {
        return Err(LinkError::NoGrants);
    }
    check_grants(c)?;
    for (index, grant) in c.authorization_details.iter().enumerate() {
        if !p.authorization_details.iter().any(|pg| grant.is_within(pg)) {
            return Err(LinkError::GrantWidened { index });
        }
    }
    if c.act.act.as_deref() != Some(&p.act) {
        return Err(LinkError::ActorNotNested);
    }
    if p.act.lineage().any(|a| a.sub == c.act.sub) {
        return Err(LinkError::ActorCycle(c.act.sub.clone()));
    }
    for earlier in ancestors {
        let e = earlier.claims();
        if e.cnf.jkt == c.cnf.jkt {
            return Err(LinkError::HolderKeyReused(c.cnf.jkt.to_string()));
        }
        if e.jti == c.jti {
            return Err(LinkError::JtiReused(c.jti.clone()));
        }
    }
    Ok(())
}

fn verify_child(
    links: &[UnverifiedRemit],
    parent_hash: &str,
    link: &UnverifiedRemit,
    opts: &VerifyOptions,
) -> Result<(), LinkError> {
    // INVARIANT: callers pass a non-empty prefix.
    let parent = &links[links.len() - 1];
    let pc = &parent.claims().cnf;
    if link.kid() != pc.jkt.as_str() {
        return Err(LinkError::WrongSigningKey {
            expected: pc.jkt.to_string(),
            found: link.kid().to_owned(),
        });
    }
    let key = VerifyingKey::from_jwk(&pc.jwk).map_err(|_| LinkError::InvalidHolderKey)?;
    link.verify_signature(&key)
        .map_err(|_| LinkError::BadSignature)?;
    check_child(parent, parent_hash, link.claims(), links)?;
    check_time(link.claims(), opts)
}

impl VerifiedChain {
    /// Verifies every link of `chain`: the root against `jwks`, each child
    /// against its parent's holder key and every attenuation rule.
    pub fn verify(
        chain: UnverifiedChain,
        jwks: &Jwks,
        opts: &VerifyOptions,
    ) -> Result<Self, ChainError> {
        let mut links = chain.links.into_iter();
        let root = links.next().ok_or(ChainError::Empty)?;
        let mut verified = VerifiedChain::verify_root(root, jwks, opts)?;
        for link in links {
            verified.push(link, opts)?;
        }
        Ok(verified)
    }

    /// Parses and verifies chain text in one step.
    pub fn verify_text(text: &str, jwks: &Jwks, opts: &VerifyOptions) -> Result<Self, ChainError> {
        VerifiedChain::verify(UnverifiedChain::parse(text)?, jwks, opts)
    }

    /// Verifies a single root remit.
    pub fn verify_root(
        root: UnverifiedRemit,
        jwks: &Jwks,
        opts: &VerifyOptions,
    ) -> Result<Self, ChainError> {
        verify_root(&root, jwks, opts).map_err(at(0))?;
        let leaf_hash = root.hash();
        Ok(VerifiedChain {
            links: vec![root],
            leaf_hash,
        })
    }

    /// Verifies one more link under this already verified chain; only the
    /// new link's signature is checked. `opts.now` must still be inside
    /// every earlier link's window (the caller's cache guarantees it by
    /// serving a chain only before its `exp`).
    pub fn extend(&self, link: UnverifiedRemit, opts: &VerifyOptions) -> Result<Self, ChainError> {
        let mut longer = self.clone();
        longer.push(link, opts)?;
        Ok(longer)
    }

    /// Verifies `link` as a child of the current leaf and appends it; on
    /// error `self` is unchanged.
    fn push(&mut self, link: UnverifiedRemit, opts: &VerifyOptions) -> Result<(), ChainError> {
        let index = self.links.len();
        if index >= MAX_LINKS {
            return Err(ChainError::TooManyLinks);
        }
        verify_child(&self.links, &self.leaf_hash, &link, opts).map_err(at(index))?;
        self.leaf_hash = link.hash();
        self.links.push(link);
        Ok(())
    }

    /// The verified links, root first.
    pub fn links(&self) -> &[UnverifiedRemit] {
        &self.links
    }

    /// The leaf remit: the one the caller holds.
    pub fn leaf(&self) -> &UnverifiedRemit {
        // INVARIANT: a VerifiedChain always holds its root.
        &self.links[self.links.len() - 1]
    }

    /// The leaf's claims.
    pub fn leaf_claims(&self) -> &RemitClaims {
        self.leaf().claims()
    }

    /// base64url SHA-256 of the leaf's compact form (a proof's `ath`).
    pub fn leaf_hash(&self) -> &str {
        &self.leaf_hash
    }

    /// The `jti` of every link, root first: what revocation is checked on.
    pub fn jtis(&self) -> impl Iterator<Item = &str> {
        self.links.iter().map(|l| l.claims().jti.as_str())
    }

    /// Every agent along the chain, root's first: revocation by agent.
    pub fn agents(&self) -> impl Iterator<Item = &str> {
        self.links.iter().map(|l| l.claims().act.sub.as_str())
    }

    /// Every holder key thumbprint along the chain, root's first:
    /// revocation by key.
    pub fn holder_keys(&self) -> impl Iterator<Item = &Thumbprint> {
        self.links.iter().map(|l| &l.claims().cnf.jkt)
    }

    /// The issuer key id that signed the root: revocation by issuer key.
    pub fn issuer_kid(&self) -> &str {
        // INVARIANT: a VerifiedChain always holds its root.
        self.links[0].kid()
    }

    /// The holder key thumbprint proofs must be signed with.
    pub fn holder(&self) -> &Thumbprint {
        &self.leaf_claims().cnf.jkt
    }

    /// The effective authority, for display and audit.
    pub fn authority(&self) -> Authority {
        let leaf = self.leaf_claims();
        Authority {
            sub: leaf.sub.clone(),
            agent: leaf.act.sub.clone(),
            actors: leaf.act.lineage().map(|a| a.sub.clone()).collect(),
            aud: leaf.aud.clone(),
            grants: leaf.authorization_details.clone(),
            class: leaf.class,
            max_steps: leaf.max_steps,
            nbf: leaf.nbf,
            exp: leaf.exp,
            depth: leaf.depth,
            max_depth: leaf.max_depth,
            holder: leaf.cnf.jkt.clone(),
            root: leaf.root.clone(),
            jti: leaf.jti.clone(),
            links: self.links.len(),
        }
    }

    /// The chain text, links joined by `~`.
    pub fn to_text(&self) -> String {
        join(&self.links)
    }
}

/// The effective authority of a verified chain.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Authority {
    /// Whom the work is for.
    pub sub: String,
    /// The agent holding the leaf.
    pub agent: String,
    /// Actors from the leaf's agent back to the root's.
    pub actors: Vec<String>,
    /// The audience.
    pub aud: String,
    /// What may be done.
    pub grants: Vec<Grant>,
    /// Highest classification.
    pub class: Classification,
    /// Tool calls allowed.
    pub max_steps: Option<u64>,
    /// Valid from.
    pub nbf: u64,
    /// Valid until (exclusive).
    pub exp: u64,
    /// The leaf's depth.
    pub depth: u32,
    /// The leaf's `max_depth`.
    pub max_depth: u32,
    /// The key a proof must be signed with.
    pub holder: Thumbprint,
    /// The root `jti`.
    pub root: String,
    /// The leaf `jti`.
    pub jti: String,
    /// How many links the chain holds.
    pub links: usize,
}
