//! Tampering with a log is detected at the right index, for the right reason.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use remit_ledger::{
    audit, AuditError, CheckpointError, Event, Jwks, Kind, LeafError, LeafStore, Log, MemoryStore,
    NoteError, NoteSigner, Receipt, ReceiptSigner, SignedReceipt,
};
use remit_token::crypto::{EcdsaP256Signer, Signer as _, VerifyingKey};

const ORIGIN: &str = "remit.example/audit";
const N: u64 = 10;

struct Fixture {
    gateway: EcdsaP256Signer,
    note: NoteSigner,
    jwks: Jwks,
}

impl Fixture {
    fn new() -> Self {
        let gateway = EcdsaP256Signer::generate().unwrap();
        let jwks = Jwks::from_keys([(
            gateway.key_id().to_owned(),
            VerifyingKey::from_jwk(gateway.public_jwk()).unwrap(),
        )]);
        Fixture {
            gateway,
            note: NoteSigner::generate(ORIGIN).unwrap(),
            jwks,
        }
    }

    /// A log whose receipt `i` has tool `tool-<tag>-<i>`.
    fn log(&self, events: &[Event]) -> (Vec<Vec<u8>>, String) {
        let signer = ReceiptSigner::new(&self.gateway).unwrap();
        let mut log = Log::new(MemoryStore::new(), ORIGIN).unwrap();
        log.append_batch(events.to_vec(), &signer).unwrap();
        let leaves = (0..log.size())
            .map(|i| log.store().read(i).unwrap())
            .collect();
        (leaves, log.signed_checkpoint(&self.note).unwrap())
    }

    fn audit(
        &self,
        leaves: &[Vec<u8>],
        cp: &str,
        earlier: Option<&str>,
    ) -> Result<u64, AuditError> {
        audit(leaves, &self.jwks, cp, &self.note.verifier(), earlier).map(|r| r.size)
    }
}

fn events(tag: &str, range: std::ops::Range<u64>) -> Vec<Event> {
    range
        .map(|i| {
            let mut e = Event::new(Kind::Allow, 1_764_000_000_000 + i);
            e.tool = Some(format!("tool-{tag}-{i}"));
            e
        })
        .collect()
}

#[test]
fn untouched_log_verifies() {
    let f = Fixture::new();
    let (leaves, cp) = f.log(&events("a", 0..N));
    assert_eq!(f.audit(&leaves, &cp, None).unwrap(), N);
}

#[test]
fn flipping_any_byte_of_a_leaf_is_caught_at_that_leaf() {
    let f = Fixture::new();
    let (leaves, cp) = f.log(&events("a", 0..N));
    for pos in 0..leaves[4].len() {
        let mut bad = leaves.clone();
        bad[4][pos] ^= 0x01;
        let err = f.audit(&bad, &cp, None).unwrap_err();
        assert_eq!(err.index(), Some(4), "byte {pos}: {err}");
    }
}

#[test]
fn editing_a_field_breaks_the_signature_at_that_leaf() {
    let f = Fixture::new();
    let (mut leaves, cp) = f.log(&events("a", 0..N));
    let text = String::from_utf8(leaves[4].clone()).unwrap();
    leaves[4] = text.replace("tool-a-4", "tool-b-4").into_bytes();
    assert!(matches!(
        f.audit(&leaves, &cp, None),
        Err(AuditError::BadLeaf {
            index: 4,
            reason: LeafError::BadSignature(_)
        })
    ));
}

#[test]
fn dropping_a_leaf_is_caught_where_it_was() {
    let f = Fixture::new();
    let (mut leaves, cp) = f.log(&events("a", 0..N));
    leaves.remove(4);
    assert_eq!(
        f.audit(&leaves, &cp, None),
        Err(AuditError::OutOfOrder {
            index: 4,
            claimed: 5
        })
    );
}

#[test]
fn reordering_two_leaves_is_caught_at_the_first() {
    let f = Fixture::new();
    let (mut leaves, cp) = f.log(&events("a", 0..N));
    leaves.swap(4, 5);
    assert_eq!(
        f.audit(&leaves, &cp, None),
        Err(AuditError::OutOfOrder {
            index: 4,
            claimed: 5
        })
    );
}

#[test]
fn truncating_below_the_checkpoint_names_the_first_missing_receipt() {
    let f = Fixture::new();
    let (mut leaves, cp) = f.log(&events("a", 0..N));
    leaves.truncate(7);
    let err = f.audit(&leaves, &cp, None).unwrap_err();
    assert_eq!(
        err,
        AuditError::Truncated {
            log_size: 7,
            checkpoint_size: N
        }
    );
    assert_eq!(err.index(), Some(7));
}

#[test]
fn replacing_a_receipt_with_a_validly_signed_one_breaks_the_next_link() {
    let f = Fixture::new();
    let (mut leaves, cp) = f.log(&events("a", 0..N));
    // An insider with the gateway key re-signs receipt 4 with other content,
    // correctly linked to receipt 3.
    let signer = ReceiptSigner::new(&f.gateway).unwrap();
    let event = events("x", 4..5).pop().unwrap();
    let prev = SignedReceipt::parse(&leaves[3]).unwrap().receipt_hash();
    let forged = Receipt::new(event, 4, Some(prev));
    leaves[4] = signer.sign(&forged).unwrap();
    assert_eq!(
        f.audit(&leaves, &cp, None),
        Err(AuditError::BrokenLink { index: 5 })
    );
}

#[test]
fn rewriting_a_suffix_with_the_gateway_key_misses_the_checkpoint() {
    let f = Fixture::new();
    let (_, cp) = f.log(&events("a", 0..N));
    let forged: Vec<Event> = events("a", 0..6)
        .into_iter()
        .chain(events("x", 6..N))
        .collect();
    let (leaves, _) = f.log(&forged);
    assert_eq!(
        f.audit(&leaves, &cp, None),
        Err(AuditError::RootMismatch { size: N })
    );
}

#[test]
fn a_fork_with_both_keys_is_caught_by_an_earlier_checkpoint() {
    let f = Fixture::new();
    let original = events("a", 0..N);
    let (orig_leaves, _) = f.log(&original);
    let earlier = {
        // The auditor saved the checkpoint at size 8 of the original log.
        let tree = remit_ledger::Tree::from_leaf_hashes(
            orig_leaves
                .iter()
                .map(|l| remit_ledger::merkle::leaf_hash(l)),
        );
        remit_ledger::Checkpoint {
            origin: ORIGIN.into(),
            size: 8,
            root: tree.root_at(8).unwrap(),
        }
        .sign(&f.note)
        .unwrap()
    };
    // The operator (holding both keys) forks at 6 and signs a new head.
    let forked: Vec<Event> = events("a", 0..6)
        .into_iter()
        .chain(events("x", 6..N + 2))
        .collect();
    let (leaves, cp) = f.log(&forked);
    // On its own the fork is a well-formed log: only outside state catches it.
    assert_eq!(f.audit(&leaves, &cp, None), Ok(N + 2));
    assert_eq!(
        f.audit(&leaves, &cp, Some(&earlier)),
        Err(AuditError::Inconsistent { earlier: 8 })
    );
}

#[test]
fn a_checkpoint_signed_by_another_note_key_is_refused() {
    let f = Fixture::new();
    let (leaves, _) = f.log(&events("a", 0..N));
    let impostor = NoteSigner::generate(ORIGIN).unwrap();
    let tree = remit_ledger::Tree::from_leaf_hashes(
        leaves.iter().map(|l| remit_ledger::merkle::leaf_hash(l)),
    );
    let cp = remit_ledger::Checkpoint {
        origin: ORIGIN.into(),
        size: N,
        root: tree.root(),
    }
    .sign(&impostor)
    .unwrap();
    assert!(matches!(
        f.audit(&leaves, &cp, None),
        Err(AuditError::Checkpoint(CheckpointError::Note(
            NoteError::UnknownKey(_)
        )))
    ));
    // And a checkpoint whose text was edited after signing.
    let (_, good) = f.log(&events("a", 0..N));
    let edited = good.replacen(&format!("\n{N}\n"), "\n9\n", 1);
    assert!(matches!(
        f.audit(&leaves, &edited, None),
        Err(AuditError::Checkpoint(CheckpointError::Note(
            NoteError::BadSignature(_)
        )))
    ));
}

#[test]
fn a_checkpoint_replaced_by_an_older_one_is_a_rollback() {
    let f = Fixture::new();
    let (leaves, _) = f.log(&events("a", 0..N));
    let tree = remit_ledger::Tree::from_leaf_hashes(
        leaves.iter().map(|l| remit_ledger::merkle::leaf_hash(l)),
    );
    let at = |size| {
        remit_ledger::Checkpoint {
            origin: ORIGIN.into(),
            size,
            root: tree.root_at(size).unwrap(),
        }
        .sign(&f.note)
        .unwrap()
    };
    let (old, earlier) = (at(5), at(8));
    assert_eq!(
        f.audit(&leaves, &old, Some(&earlier)),
        Err(AuditError::Rollback {
            earlier: 8,
            current: 5
        })
    );
    // Without the earlier one, the trailing receipts show as unsealed.
    let report = remit_ledger::audit(&leaves, &f.jwks, &old, &f.note.verifier(), None).unwrap();
    assert_eq!(report.unsealed, N - 5);
}

#[test]
fn re_signing_with_another_key_is_caught_at_that_leaf() {
    let f = Fixture::new();
    let (mut leaves, cp) = f.log(&events("a", 0..N));
    // A key the JWKS does not hold.
    let other = Fixture::new();
    let (theirs, _) = other.log(&events("a", 0..N));
    leaves[4] = theirs[4].clone();
    assert!(matches!(
        f.audit(&leaves, &cp, None),
        Err(AuditError::BadLeaf {
            index: 4,
            reason: LeafError::UnknownKey(_)
        })
    ));
    // Another key that claims the trusted key's id.
    let (mut leaves, cp) = f.log(&events("a", 0..N));
    let jwk = EcdsaP256Signer::generate()
        .unwrap()
        .to_private_jwk()
        .unwrap();
    let mut jwk = jwk;
    jwk.public.kid = Some(f.gateway.key_id().to_owned());
    let impostor = EcdsaP256Signer::from_jwk(&jwk).unwrap();
    let signer = ReceiptSigner::new(&impostor).unwrap();
    let mut log = Log::new(MemoryStore::new(), ORIGIN).unwrap();
    log.append_batch(events("a", 0..N), &signer).unwrap();
    leaves[4] = log.store().read(4).unwrap();
    assert!(matches!(
        f.audit(&leaves, &cp, None),
        Err(AuditError::BadLeaf {
            index: 4,
            reason: LeafError::BadSignature(_)
        })
    ));
}

#[test]
fn a_non_canonical_but_equivalent_leaf_is_refused() {
    let f = Fixture::new();
    let (mut leaves, cp) = f.log(&events("a", 0..N));
    let mut spaced = b"{ ".to_vec();
    spaced.extend_from_slice(&leaves[3][1..]);
    leaves[3] = spaced;
    assert!(matches!(
        f.audit(&leaves, &cp, None),
        Err(AuditError::BadLeaf {
            index: 3,
            reason: LeafError::NotCanonical
        })
    ));
}
