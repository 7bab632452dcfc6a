//! Proof of possession and the verified-chain cache, across modules.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use common::*;
use remit_token::pop::{create_proof, verify_proof};
use remit_token::{
    b64, ChainCache, ChainError, LinkError, ProofError, ProofRequest, ReplayCache, ReplayError,
    Signer, VerifiedChain, VerifyOptions,
};
use serde_json::json;

const REQ: ProofRequest<'static> = ProofRequest {
    htm: "POST",
    htu: "https://gw.example/mcp",
};

struct Setup {
    issuer: remit_token::EcdsaP256Signer,
    a: remit_token::EcdsaP256Signer,
    b: remit_token::EcdsaP256Signer,
    root: remit_token::UnverifiedRemit,
    child: remit_token::UnverifiedRemit,
}

fn setup() -> Setup {
    let (issuer, a, b) = (key(), key(), key());
    let root = root(&issuer, &a);
    let child = child(&root, &a, &b, "reader");
    Setup {
        issuer,
        a,
        b,
        root,
        child,
    }
}

impl Setup {
    fn chain(&self) -> VerifiedChain {
        let text = join(&[&self.root, &self.child]);
        VerifiedChain::verify_text(&text, &jwks_for(&self.issuer), &opts()).unwrap()
    }
}

#[test]
fn refuses_stolen_remit_without_the_holder_key() {
    let s = setup();
    let chain = s.chain();
    // The thief holds the chain and its own key, even the parent's key.
    for thief in [key(), s.a] {
        let proof = create_proof(&thief, s.child.compact(), REQ, NOW).unwrap();
        assert_eq!(
            verify_proof(&proof, &chain, REQ, NOW, 30),
            Err(ProofError::NotHolder)
        );
    }
}

#[test]
fn refuses_proof_with_a_swapped_header_key() {
    let s = setup();
    let chain = s.chain();
    let thief = key();
    // Header names the holder's public key, signature by the thief.
    let header = json!({"alg": "ES256", "typ": "dpop+jwt", "jwk": s.b.public_jwk().bare()});
    let claims = json!({"jti": "j1", "htm": "POST", "htu": REQ.htu, "iat": NOW,
        "ath": chain.leaf_hash()});
    let proof = forge_raw(&header.to_string(), &claims.to_string(), &thief);
    assert_eq!(
        verify_proof(&proof, &chain, REQ, NOW, 30),
        Err(ProofError::BadSignature)
    );
}

#[test]
fn refuses_proof_for_another_request_time_or_remit() {
    let s = setup();
    let chain = s.chain();
    let proof = create_proof(&s.b, s.child.compact(), REQ, NOW).unwrap();
    let get = ProofRequest {
        htm: "GET",
        htu: REQ.htu,
    };
    assert!(matches!(
        verify_proof(&proof, &chain, get, NOW, 30),
        Err(ProofError::Method { .. })
    ));
    let other = ProofRequest {
        htm: "POST",
        htu: "https://evil.example/mcp",
    };
    assert!(matches!(
        verify_proof(&proof, &chain, other, NOW, 30),
        Err(ProofError::Uri { .. })
    ));
    assert!(matches!(
        verify_proof(&proof, &chain, REQ, NOW + 31, 30),
        Err(ProofError::Stale { .. })
    ));
    assert!(matches!(
        verify_proof(&proof, &chain, REQ, NOW - 31, 30),
        Err(ProofError::Stale { .. })
    ));
    // A proof bound to the root remit does not authorize the child chain.
    let root_bound = create_proof(&s.b, s.root.compact(), REQ, NOW).unwrap();
    assert_eq!(
        verify_proof(&root_bound, &chain, REQ, NOW, 30),
        Err(ProofError::RemitMismatch)
    );
    let ok = verify_proof(&proof, &chain, REQ, NOW + 5, 30).unwrap();
    assert_eq!(ok.iat, NOW);
}

#[test]
fn refuses_proof_with_kid_or_remit_typ() {
    let s = setup();
    let chain = s.chain();
    let claims = json!({"jti": "j1", "htm": "POST", "htu": REQ.htu, "iat": NOW,
        "ath": chain.leaf_hash()});
    let with_kid = json!({"alg": "ES256", "typ": "dpop+jwt", "kid": "x",
        "jwk": s.b.public_jwk().bare()});
    let proof = forge_raw(&with_kid.to_string(), &claims.to_string(), &s.b);
    assert!(matches!(
        verify_proof(&proof, &chain, REQ, NOW, 30),
        Err(ProofError::Jws(_))
    ));
    // The remit itself presented as a proof.
    assert!(matches!(
        verify_proof(s.child.compact(), &chain, REQ, NOW, 30),
        Err(ProofError::Jws(_))
    ));
}

#[test]
fn refuses_replayed_proof() {
    let s = setup();
    let chain = s.chain();
    let mut replay = ReplayCache::new(1024, 30);
    let proof = create_proof(&s.b, s.child.compact(), REQ, NOW).unwrap();
    let first = verify_proof(&proof, &chain, REQ, NOW, 30).unwrap();
    replay.check_and_insert(&first.jti, first.iat, NOW).unwrap();
    let again = verify_proof(&proof, &chain, REQ, NOW + 1, 30).unwrap();
    assert_eq!(
        replay.check_and_insert(&again.jti, again.iat, NOW + 1),
        Err(ReplayError::Replayed(again.jti.clone()))
    );
    // A fresh proof from the same holder passes.
    let fresh = create_proof(&s.b, s.child.compact(), REQ, NOW + 1).unwrap();
    let fresh = verify_proof(&fresh, &chain, REQ, NOW + 1, 30).unwrap();
    replay
        .check_and_insert(&fresh.jti, fresh.iat, NOW + 1)
        .unwrap();
}

#[test]
fn malleated_signature_is_the_same_remit_for_revocation() {
    // ECDSA (r, s) and (r, n - s) both verify: nothing may be keyed on
    // signature bytes. The chain's jti list is identical for both.
    let s = setup();
    let compact = s.root.compact();
    let (input, sig) = compact.rsplit_once('.').unwrap();
    let sig = b64::decode(sig).unwrap();
    let n: [u8; 32] = [
        0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
        0xff, 0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63,
        0x25, 0x51,
    ];
    let mut neg = [0u8; 32];
    let mut borrow = 0i16;
    for i in (0..32).rev() {
        let d = n[i] as i16 - sig[32 + i] as i16 - borrow;
        borrow = i16::from(d < 0);
        neg[i] = d.rem_euclid(256) as u8;
    }
    let twin = format!("{input}.{}", b64::encode([&sig[..32], &neg[..]].concat()));
    let jwks = jwks_for(&s.issuer);
    let a = VerifiedChain::verify_text(compact, &jwks, &opts()).unwrap();
    let b = VerifiedChain::verify_text(&twin, &jwks, &opts()).unwrap();
    assert_ne!(a.leaf().compact(), b.leaf().compact());
    assert_eq!(a.jtis().collect::<Vec<_>>(), b.jtis().collect::<Vec<_>>());
}

#[test]
fn cache_refuses_expired_or_revoked_entries() {
    let s = setup();
    let jwks = jwks_for(&s.issuer);
    let text = join(&[&s.root, &s.child]);
    let mut cache = ChainCache::new(16);
    let first = cache.verify(&text, &jwks, &opts(), 7).unwrap();
    let hit = cache.get(&text, NOW + 1, 7).unwrap();
    assert!(Arc::ptr_eq(&first, &hit));
    // A new revocation epoch invalidates the entry.
    assert!(cache.get(&text, NOW + 1, 8).is_none());
    // At the leaf's exp the entry is no longer served, and re-verification fails.
    let exp = s.child.claims().exp;
    assert!(cache.get(&text, exp, 7).is_none());
    let late = VerifyOptions::new(exp);
    assert!(matches!(
        cache.verify(&text, &jwks, &late, 7),
        Err(ChainError::Link {
            error: LinkError::Expired { .. },
            ..
        })
    ));
}

#[test]
fn cache_does_not_serve_a_tampered_chain() {
    let s = setup();
    let jwks = jwks_for(&s.issuer);
    let text = join(&[&s.root, &s.child]);
    let mut cache = ChainCache::new(16);
    cache.verify(&text, &jwks, &opts(), 0).unwrap();
    let mut claims = claims_json(&s.child);
    claims["class"] = json!("RESTRICTED");
    let forged = forge(&claims, s.a.thumbprint().as_str(), &s.b);
    let tampered = format!("{}~{forged}", s.root.compact());
    assert!(cache.verify(&tampered, &jwks, &opts(), 0).is_err());
    // The cached leaf under another prefix is not served from the cache.
    let other_root = root(&s.issuer, &s.a);
    let spliced = format!("{}~{}", other_root.compact(), s.child.compact());
    assert!(cache.get(&spliced, NOW, 0).is_none());
    assert!(matches!(
        cache.verify(&spliced, &jwks, &opts(), 0),
        Err(ChainError::Link {
            index: 1,
            error: LinkError::ParentHashMismatch
        })
    ));
}

#[test]
fn cache_extends_a_cached_prefix_by_one_link() {
    let s = setup();
    let jwks = jwks_for(&s.issuer);
    let mut cache = ChainCache::new(16);
    let prefix = join(&[&s.root, &s.child]);
    cache.verify(&prefix, &jwks, &opts(), 0).unwrap();
    let c = key();
    let grants = s.child.claims().authorization_details.clone();
    let req = remit_token::DelegateRequest::new("summarizer", c.public_jwk().clone(), grants);
    let two = remit_token::UnverifiedChain::parse(&prefix).unwrap();
    let grandchild = remit_token::delegate(&two, &s.b, &req, NOW).unwrap();
    let full = format!("{prefix}~{}", grandchild.compact());
    // An empty key set proves the root is not re-verified: only the cached
    // prefix can make this succeed.
    let empty = remit_token::Jwks::new();
    let chain = cache.verify(&full, &empty, &opts(), 0).unwrap();
    assert_eq!(chain.links().len(), 3);
    assert_eq!(chain.leaf_claims().act.sub, "summarizer");
    assert!(cache.prefix_of(&full, NOW, 0).is_some());
    assert!(cache.prefix_of(&full, NOW, 1).is_none());
    // Under a new epoch the prefix is not trusted: full verification fails
    // without the issuer key.
    assert!(cache.verify(&full, &empty, &opts(), 1).is_err());
    // A bad extension of a cached prefix is still refused.
    let mut claims = claims_json(&grandchild);
    claims["max_steps"] = json!(1000);
    let forged = forge(&claims, s.b.thumbprint().as_str(), &s.b);
    let err = cache
        .verify(&format!("{prefix}~{forged}"), &empty, &opts(), 0)
        .unwrap_err();
    assert!(matches!(
        err,
        ChainError::Link {
            index: 2,
            error: LinkError::StepsRaised { .. }
        }
    ));
}

#[test]
fn cache_stays_bounded() {
    let s = setup();
    let jwks = jwks_for(&s.issuer);
    let mut cache = ChainCache::new(2);
    let roots: Vec<_> = (0..4).map(|_| root(&s.issuer, &key())).collect();
    for r in &roots {
        cache.verify(r.compact(), &jwks, &opts(), 0).unwrap();
        assert!(cache.len() <= 2);
    }
    assert!(cache.get(roots[0].compact(), NOW, 0).is_none());
    assert!(cache.get(roots[3].compact(), NOW, 0).is_some());
}

#[test]
fn cache_serves_chains_verified_outside_it() {
    let s = setup();
    let text = join(&[&s.root, &s.child]);
    let mut cache = ChainCache::new(4);
    let chain = Arc::new(s.chain());
    cache.insert(&text, Arc::clone(&chain), 3);
    assert!(Arc::ptr_eq(&cache.get(&text, NOW, 3).unwrap(), &chain));
    assert!(cache.get(&text, NOW, 4).is_none());
}

#[test]
fn refuses_proof_whose_header_leaks_the_private_key() {
    let s = setup();
    let chain = s.chain();
    let private = s.b.to_private_jwk().unwrap();
    let mut jwk = serde_json::to_value(s.b.public_jwk().bare()).unwrap();
    jwk["d"] = json!(private.d);
    let header = json!({"alg": "ES256", "typ": "dpop+jwt", "jwk": jwk});
    let claims = json!({"jti": "j1", "htm": "POST", "htu": REQ.htu, "iat": NOW,
        "ath": chain.leaf_hash()});
    let proof = forge_raw(&header.to_string(), &claims.to_string(), &s.b);
    // Refused when the header's key is parsed (no private member is ever
    // accepted in a JWK), before any signature is checked.
    assert!(
        matches!(
            verify_proof(&proof, &chain, REQ, NOW, 30),
            Err(ProofError::PrivateKeyInHeader | ProofError::Key(_))
        ),
        "{:?}",
        verify_proof(&proof, &chain, REQ, NOW, 30)
    );
}
