//! Shared fixtures for the cross-module scenarios.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use remit_token::{
    b64, delegate, mint, DelegateRequest, EcdsaP256Signer, Grant, Jwks, MintRequest, Pattern,
    Signer, UnverifiedRemit, VerifyOptions,
};
use serde_json::Value;

/// A fixed "now" so tests never read the clock.
pub const NOW: u64 = 1_800_000_000;

pub fn key() -> EcdsaP256Signer {
    EcdsaP256Signer::generate().unwrap()
}

pub fn jwks_for(issuer: &EcdsaP256Signer) -> Jwks {
    let mut jwks = Jwks::new();
    jwks.insert(issuer.key_id(), issuer.public_jwk()).unwrap();
    jwks
}

pub fn opts() -> VerifyOptions {
    VerifyOptions::new(NOW)
}

pub fn pats(names: &[&str]) -> Vec<Pattern> {
    names
        .iter()
        .map(|n| Pattern::try_from(*n).unwrap())
        .collect()
}

pub fn grant(v: Value) -> Grant {
    serde_json::from_value(v).unwrap()
}

/// A root for `holder` with a grant over fs.* under /tmp/** with a path
/// prefix constraint, 10 steps, CONFIDENTIAL, one hour.
pub fn root(issuer: &EcdsaP256Signer, holder: &EcdsaP256Signer) -> UnverifiedRemit {
    let g = grant(serde_json::json!({
        "type": "remit_tool", "tools": ["fs.*", "net.get"], "resources": ["/tmp/**"],
        "actions": ["read", "write"],
        "args": {"path": {"prefix": "/tmp/"}, "n": {"range": {"min": 0, "max": 100}}}
    }));
    let mut req = MintRequest::new("alice", "planner", holder.public_jwk().clone(), vec![g]);
    req.ttl_secs = 3600;
    req.class = remit_token::Classification::Confidential;
    req.max_steps = Some(10);
    req.amr = vec!["click".into()];
    mint(issuer, &req, NOW).unwrap()
}

/// A legitimate narrowing of `parent` to fs.read for `agent`.
pub fn child(
    parent: &UnverifiedRemit,
    parent_holder: &EcdsaP256Signer,
    holder: &EcdsaP256Signer,
    agent: &str,
) -> UnverifiedRemit {
    let g = grant(serde_json::json!({
        "type": "remit_tool", "tools": ["fs.read"], "resources": ["/tmp/a/*"],
        "actions": ["read"],
        "args": {"path": {"prefix": "/tmp/a/"}, "n": {"range": {"min": 0, "max": 10}}}
    }));
    let mut req = DelegateRequest::new(agent, holder.public_jwk().clone(), vec![g]);
    req.ttl_secs = 600;
    delegate(&single(parent), parent_holder, &req, NOW).unwrap()
}

/// A chain holding only `remit` (delegation checks against its links).
pub fn single(remit: &UnverifiedRemit) -> remit_token::UnverifiedChain {
    remit_token::UnverifiedChain::from_links(vec![remit.clone()]).unwrap()
}

pub fn join(links: &[&UnverifiedRemit]) -> String {
    links
        .iter()
        .map(|l| l.compact().to_owned())
        .collect::<Vec<_>>()
        .join("~")
}

/// The claims of a remit as JSON, to mutate.
pub fn claims_json(remit: &UnverifiedRemit) -> Value {
    serde_json::to_value(remit.claims()).unwrap()
}

/// Signs arbitrary header and payload text: the attacker's tool.
pub fn forge_raw(header: &str, payload: &str, signer: &dyn Signer) -> String {
    let input = format!("{}.{}", b64::encode(header), b64::encode(payload));
    let sig = signer.sign(input.as_bytes()).unwrap();
    format!("{input}.{}", b64::encode(sig))
}

/// Re-signs `claims` as a remit with header `kid`.
pub fn forge(claims: &Value, kid: &str, signer: &dyn Signer) -> String {
    let header = serde_json::json!({"alg": "ES256", "typ": "remit+jwt", "kid": kid});
    forge_raw(&header.to_string(), &claims.to_string(), signer)
}
