//! Remit capability tokens.
//!
//! A *remit* is a short-lived, ES256-signed JWS (`typ: remit+jwt`) that names
//! the user the work is for (`sub`), the agent holding it (`act`), the key it
//! is bound to (`cnf`), and exactly what it may do (`authorization_details`:
//! tools, resources, actions, argument constraints), for how long, how many
//! steps, and at which data classification.
//!
//! # Model
//!
//! - The control plane [`mint`]s a *root* remit with an issuer key published
//!   in a JWKS.
//! - A holder [`delegate`]s offline: it signs a narrower *child* with its own
//!   holder key for a sub-agent's key. The child names its parent by hash
//!   (`prf`); the parent carries its holder's public key (`cnf.jwk` beside
//!   `cnf.jkt`, RFC 7800), so the chain verifies with nothing but the issuer
//!   keys. A chain travels as `root~child~...~leaf`.
//! - [`VerifiedChain::verify`] checks every link and is the only way to get a
//!   [`VerifiedChain`]; since every child must lie within its parent, the
//!   leaf's grants are the effective (intersected) authority.
//!   [`authorize`] checks one call against it.
//! - A call also carries a proof of possession ([`pop`]) signed by the leaf
//!   holder key, bound to the leaf by hash; a stolen chain without the key
//!   is useless. The server owns a [`ReplayCache`] of proof `jti`s and a
//!   [`ChainCache`] so a repeated chain is not verified twice.
//!
//! # Threat model
//!
//! | attack | refused by |
//! |---|---|
//! | forged or altered token | ES256 signature over the exact bytes; issuer keys only from the [`Jwks`] |
//! | `alg: none`, HMAC with the public key as secret, key confusion | only `ES256` is parsed; keys are P-256 only |
//! | attacker-supplied keys (`jku`, `x5u`, `x5c`, header `jwk`) | refused header parameters; `kid` is an exact map lookup |
//! | `crit`, `b64: false`, unknown header or claim | refused: anything not understood might be a restriction |
//! | duplicate JSON members (parser differentials) | refused at every depth |
//! | non-canonical base64url, padding, oversize (> 16 KiB a link, > 16 links) | refused before JSON parsing |
//! | ECDSA r or s = 0 or ≥ n (CVE-2022-21449) | `aws-lc-rs` verification |
//! | privilege escalation by delegation (wider tools, resources, actions or arguments; later expiry; higher class, steps or depth; changed `sub`) | per-link attenuation rules, each failure naming the link and rule |
//! | re-parenting, skipped or spliced links | `prf` = SHA-256 of the parent's bytes, child signed by the parent's holder key |
//! | delegation cycles | an agent, holder key or `jti` may appear once per chain |
//! | stolen remit replayed by another party | proof of possession by the leaf key, `ath`-bound; replay cache on proof `jti` |
//! | signature malleability | revocation and replay keyed on `jti`, never signature bytes |
//! | path traversal past a path or URI constraint (`/files/../hr`, `//../`, `%2e%2e`, `.%2e`, `%2f`, `..\`, NUL, fullwidth `．．` or `／`, double encoding) | every `prefix`, `glob` and resource comparison is over one [canonical] form; a value without a clean one is refused with the reason ([`AuthorizeError::ArgumentNotCanonical`], [`AuthorizeError::ResourceNotCanonical`]), never guessed at; a constraint's own text must be canonical to parse |
//! | a grant reaching past its level (`/data/*` used for `/data/x/y`; `evil/*` for a server `evil/admin`'s tools; `*` for `server/tool`) | `*` never matches `/`, only `**` does; path prefixes end at a segment boundary (`/data/reports` does not admit `/data/reports-secret`); `covers` is sound for both wildcards, so delegation cannot widen through them |
//!
//! What a gateway cannot see: a path that is clean as text can still leave
//! the granted directory on the server's side, through a symlink (or a hard
//! link, a bind mount) inside it: `/files/link -> /hr`. Remit compares names,
//! not inodes. The sandbox work (running the upstream confined to the
//! granted directories) closes that; until then, grant directories whose
//! contents the agent cannot make links in.
//!
//! # Example
//!
//! ```
//! use remit_token::*;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let now = 1_800_000_000; // the caller's clock, Unix seconds
//! let issuer = EcdsaP256Signer::generate()?;
//! let (planner, reader) = (EcdsaP256Signer::generate()?, EcdsaP256Signer::generate()?);
//! let mut jwks = Jwks::new();
//! jwks.insert(issuer.key_id(), issuer.public_jwk())?;
//!
//! let fs = Grant::tools(vec![Pattern::try_from("fs.*")?]);
//! let root = mint(&issuer, &MintRequest::new("alice", "planner", planner.public_jwk().clone(), vec![fs]), now)?;
//! let parent = UnverifiedChain::from_links(vec![root.clone()])?;
//! let read = Grant::tools(vec![Pattern::try_from("fs.read")?]);
//! let child = delegate(&parent, &planner, &DelegateRequest::new("reader", reader.public_jwk().clone(), vec![read]), now)?;
//!
//! let text = format!("{}~{}", root, child);
//! let chain = VerifiedChain::verify_text(&text, &jwks, &VerifyOptions::new(now))?;
//! assert!(authorize(&chain, "fs.read", &serde_json::json!({})).is_ok());
//! assert!(authorize(&chain, "fs.write", &serde_json::json!({})).is_err());
//!
//! let request = ProofRequest { htm: "POST", htu: "https://gw.example/mcp" };
//! let proof = pop::create_proof(&reader, child.compact(), request, now)?;
//! assert!(pop::verify_proof(&proof, &chain, request, now, 30).is_ok());
//! # Ok(()) }
//! ```
//!
//! Out of scope here: revocation lists, step budgets and clocks, which the
//! server owns and passes in. This crate is pure: it does no I/O and reads no
//! clock; time is a parameter (Unix seconds). Cryptography sits behind the
//! [`crypto::Signer`] seam so that a KMS or HSM signer can replace the
//! in-process [`crypto::EcdsaP256Signer`].

#![forbid(unsafe_code)]

pub mod authorize;
pub mod b64;
pub mod cache;
pub mod canonical;
pub mod chain;
pub mod claims;
pub mod constraint;
pub mod crypto;
pub mod grant;
pub mod issue;
pub mod jwk;
pub mod jwks;
pub mod jws;
pub mod pattern;
pub mod pop;
pub mod remit;

pub use authorize::{authorize, authorize_call, Authorization, AuthorizeError, Call};
pub use cache::ChainCache;
pub use canonical::{canonicalize, CanonError, Canonical};
pub use chain::{
    Authority, ChainError, LinkError, UnverifiedChain, VerifiedChain, VerifyOptions, MAX_LINKS,
};
pub use claims::{Actor, Classification, Confirmation, RemitClaims, ScanEvidence};
pub use constraint::{ArgConstraints, Constraint, Prefix, Refusal};
pub use crypto::{CryptoError, EcdsaP256Signer, Signer, VerifyingKey};
pub use grant::{Grant, GrantType};
pub use issue::{delegate, mint, narrow_grants, DelegateRequest, IssueError, MintRequest};
pub use jwk::{EcPublicJwk, JwkError, PrivateJwk, Thumbprint};
pub use jwks::{Jwks, JwksError};
pub use jws::{JwsError, MAX_JWS_LEN};
pub use pattern::{Pattern, PatternError};
pub use pop::{ProofError, ProofRequest, ReplayCache, ReplayError, VerifiedProof};
pub use remit::{fresh_jti, RemitError, UnverifiedRemit};

/// The JWS `typ` of a remit.
pub const REMIT_TYP: &str = "remit+jwt";

/// base64url SHA-256 of `bytes`.
pub(crate) fn sha256_b64(bytes: &[u8]) -> String {
    b64::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes).as_ref())
}
