//! Issuer key rotation as a process that only verifies (`remit wrap`, a
//! replica with a copied JWKS) sees it: the JWKS file it reads changes
//! under it, and it follows without a restart, keeping what it holds when
//! the file is bad.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use remit_server::start::{reload_issuer_keys, spawn_issuer_watch, IssuerKeySource};
use remit_token::{mint, EcdsaP256Signer, Grant, MintRequest, Pattern, Signer as _};
use serde_json::json;

/// A copy of `signer` (the test keeps one, the server takes the other).
fn copy(signer: &EcdsaP256Signer) -> EcdsaP256Signer {
    EcdsaP256Signer::from_jwk(&signer.to_private_jwk().unwrap()).unwrap()
}

fn jwks(keys: &[&EcdsaP256Signer]) -> String {
    let keys: Vec<_> = keys
        .iter()
        .map(|k| k.public_jwk().clone().published(k.key_id()))
        .collect();
    json!({ "keys": keys }).to_string()
}

#[tokio::test]
async fn a_verifying_process_follows_its_jwks_file_and_keeps_its_keys_when_the_file_is_bad() {
    let dir = tempfile::tempdir().unwrap();
    let (old, new) = (
        EcdsaP256Signer::generate().unwrap(),
        EcdsaP256Signer::generate().unwrap(),
    );
    let served = support::serve(
        support::sqlite_store(dir.path()).await,
        dir.path(),
        support::Options {
            issuer: Some(copy(&old)),
            verify_only: true,
            ..Default::default()
        },
    )
    .await;
    let state = &served.state;
    let holder = EcdsaP256Signer::generate().unwrap();
    let chain_of = |issuer: &EcdsaP256Signer| {
        let mut request = MintRequest::new(
            "alice",
            "planner",
            holder.public_jwk().clone(),
            vec![Grant::tools(vec![Pattern::try_from("files/read").unwrap()])],
        );
        request.issuer = state.settings().public_url.clone();
        request.audience = state.settings().audience.clone();
        mint(issuer, &request, support::now())
            .unwrap()
            .compact()
            .to_owned()
    };
    let (by_old, by_new) = (chain_of(&old), chain_of(&new));
    let now = support::now();
    assert!(state.check_chain(&by_old, now).is_ok());
    // Negative first: a key nobody published does not verify.
    assert!(state.check_chain(&by_new, now).is_err());

    let file = dir.path().join("issuer.jwks.json");
    let source = IssuerKeySource::JwksFile(file.clone());
    std::fs::write(&file, jwks(&[&new, &old])).unwrap();
    assert!(reload_issuer_keys(state, &source).unwrap());
    assert!(
        !reload_issuer_keys(state, &source).unwrap(),
        "nothing changed"
    );
    assert!(state.check_chain(&by_new, now).is_ok());
    assert!(state.check_chain(&by_old, now).is_ok());
    assert!(state.issuer().is_err(), "a verifying process never mints");

    // A torn or empty file keeps the keys held.
    for bad in ["{\"keys\": [", "{\"keys\": []}", ""] {
        std::fs::write(&file, bad).unwrap();
        assert!(reload_issuer_keys(state, &source).is_err(), "{bad:?}");
        assert!(state.check_chain(&by_new, now).is_ok());
    }

    // The old key retired: what it signed stops verifying at once, even
    // though that chain was verified (and cached) before.
    std::fs::write(&file, jwks(&[&new])).unwrap();
    assert!(reload_issuer_keys(state, &source).unwrap());
    assert!(state.check_chain(&by_old, now).is_err());
    assert!(state.check_chain(&by_new, now).is_ok());

    // The watch task picks a change up by itself.
    spawn_issuer_watch(state, source);
    std::fs::write(&file, jwks(&[&old])).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while state.check_chain(&by_old, support::now()).is_err() {
        assert!(
            std::time::Instant::now() < deadline,
            "the watch never reloaded"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(state.check_chain(&by_new, support::now()).is_err());
}

#[tokio::test]
async fn a_signing_process_refuses_keys_that_do_not_publish_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let issuer = EcdsaP256Signer::generate().unwrap();
    let kid = issuer.key_id().to_owned();
    let served = support::serve(
        support::sqlite_store(dir.path()).await,
        dir.path(),
        support::Options {
            issuer: Some(issuer),
            ..Default::default()
        },
    )
    .await;
    let other = EcdsaP256Signer::generate().unwrap();
    let file = dir.path().join("other.jwks.json");
    std::fs::write(&file, jwks(&[&other])).unwrap();
    let err = reload_issuer_keys(&served.state, &IssuerKeySource::JwksFile(file)).unwrap_err();
    assert!(err.to_string().contains(&kid), "{err}");
    assert_eq!(served.state.issuer().unwrap().key_id(), kid);
}
