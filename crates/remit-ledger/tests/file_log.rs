//! A file-backed log survives reopen and a torn tail, and still audits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write as _;

use remit_ledger::{
    audit, Event, FileStore, Jwks, Kind, LeafStore as _, Log, LogDir, NoteSigner, ReceiptSigner,
};
use remit_token::crypto::{EcdsaP256Signer, Signer as _, VerifyingKey};

#[test]
fn reopened_log_continues_the_chain_after_a_torn_write() {
    let dir = tempfile::tempdir().unwrap();
    let gateway = EcdsaP256Signer::generate().unwrap();
    let signer = ReceiptSigner::new(&gateway).unwrap();
    let note = NoteSigner::generate("remit.example/audit").unwrap();
    let log_dir = LogDir::new(dir.path().join("log"));
    log_dir.init(&note).unwrap();
    let open = || {
        let (store, recovery) = FileStore::open(log_dir.path()).unwrap();
        let leaves = store.read_all().unwrap();
        (
            Log::open(store, leaves, "remit.example/audit").unwrap(),
            recovery,
        )
    };
    {
        let (mut log, _) = open();
        let batch = (0..5).map(|i| Event::new(Kind::Allow, i)).collect();
        let acked = log.append_batch(batch, &signer).unwrap();
        assert_eq!(acked.last().unwrap().index, 4);
        log.append(Event::new(Kind::Deny, 5), &signer).unwrap();
        log_dir
            .write_checkpoint(&log.signed_checkpoint(&note).unwrap())
            .unwrap();
    }
    // A crash mid-write leaves half a line.
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(log_dir.path().join("receipts.jsonl"))
        .unwrap();
    let torn = br#"{"receipt":{"actors":[],"ind"#;
    f.write_all(torn).unwrap();
    drop(f);
    let (mut log, recovery) = open();
    assert_eq!(recovery.torn_bytes, torn.len() as u64);
    assert_eq!(log.size(), 6);
    assert_eq!(
        log.append(Event::new(Kind::Revoke, 6), &signer)
            .unwrap()
            .index,
        6
    );
    log_dir
        .write_checkpoint(&log.signed_checkpoint(&note).unwrap())
        .unwrap();
    assert_eq!(log.store().len(), 7);

    let jwks = Jwks::from_keys([(
        gateway.key_id().to_owned(),
        VerifyingKey::from_jwk(gateway.public_jwk()).unwrap(),
    )]);
    let leaves: Vec<Vec<u8>> = log_dir.leaf_reader().unwrap().map(Result::unwrap).collect();
    let report = audit(
        &leaves,
        &jwks,
        &log_dir.checkpoint().unwrap(),
        &log_dir.note_verifier().unwrap(),
        None,
    )
    .unwrap();
    assert_eq!((report.size, report.unsealed), (7, 0));
    assert_eq!(log.read(5).unwrap().receipt.event.kind, Kind::Deny);
}

#[test]
fn init_refuses_to_overwrite_an_existing_log() {
    let dir = tempfile::tempdir().unwrap();
    let note = NoteSigner::generate("remit.example/audit").unwrap();
    let log_dir = LogDir::new(dir.path());
    log_dir.init(&note).unwrap();
    assert!(log_dir.init(&note).is_err());
}
