//! Signed receipts in a tamper-evident log that an auditor verifies offline.
//!
//! # The model
//!
//! Every event Remit decides or performs — issue, delegate, allow, deny,
//! escalate, approve, reject, revoke, promote, result_redacted,
//! result_released, error —
//! becomes a [`Receipt`]: the event's fields (actor chain user → agent →
//! sub-agent, root and leaf `jti`, tool, a keyed hash of the arguments but
//! never the arguments, findings by type, classification, the decision
//! with its policy ids and policy version hash, approval, W3C
//! `traceparent`), its own index in the log, and a link to the previous
//! receipt (its index and the SHA-256 of its canonical bytes). Time is a field the caller passes in:
//! this crate reads no clock.
//!
//! # Formats
//!
//! - **Receipt bytes**: RFC 8785 canonical JSON ([`canonical`]).
//! - **Signature**: a detached JWS, ES256, through
//!   [`remit_token::crypto::Signer`] (the gateway's key). Header
//!   `{"alg":"ES256","kid":..,"typ":"remit-receipt+jws"}`; stored as
//!   `header..signature`; see [`signed`].
//! - **Leaf**: canonical JSON `{"receipt":{..},"sig":".."}`, one per line.
//! - **Tree**: RFC 6962 / RFC 9162 hashing (leaf `0x00`, node `0x01`), with
//!   inclusion and consistency proofs ([`merkle`]), checked against the
//!   RFC 6962 test vectors.
//! - **Checkpoint**: C2SP `tlog-checkpoint` text (origin, size, base64
//!   root) signed as a C2SP signed note with an Ed25519 key named after the
//!   origin ([`checkpoint`], [`note`]); key ids and key encodings follow
//!   `golang.org/x/mod/sumdb/note` byte for byte, so transparency-log
//!   tooling (witnesses, `sumdb` verifiers) reads them.
//! - **Directory**: `receipts.jsonl`, `checkpoint`, `note.pub` ([`dir`]).
//! - **Storage**: [`store::LeafStore`], append-only and durable on return;
//!   [`store::MemoryStore`] and [`store::FileStore`] (`receipts.jsonl`,
//!   written into blocks reserved past its end, so readers always see
//!   JSON Lines, `fdatasync` per batch, a torn tail cut on open). The file store is the only
//!   I/O in this crate; a database store lives in `remit-store`.
//!
//! # What an auditor checks ([`audit`](mod@audit))
//!
//! With only the JWKS and the note verifier key: every leaf is canonical,
//! parses, carries its own index (no drop, insert or reorder), links to the
//! actual previous leaf hash, and has a valid ES256 signature by a key in
//! the JWKS; the recomputed tree head equals the signed checkpoint's at its
//! size; and an earlier checkpoint the auditor kept is a prefix of the
//! current tree (no rollback, no fork). The answer is the first broken
//! index and why ([`AuditError`]).
//!
//! # Threat model
//!
//! The log may be stored by an operator who is not trusted; the auditor
//! holds only the JWKS and the note verifier key. Each attack below is
//! refused by [`Auditor`] with the [`AuditError::code`] shown (the tests in
//! `tests/tamper.rs` are named after these attacks).
//!
//! | attack | refused by |
//! |---|---|
//! | editing any byte or field of a receipt | ES256 signature over its canonical bytes: `bad_signature` or `malformed_leaf` at that index |
//! | an equivalent but re-serialized leaf (key order, spaces, number form) | RFC 8785 bytes required: `not_canonical` |
//! | re-signing with a key not in the JWKS | `kid` looked up in the auditor's JWKS only: `unknown_key` |
//! | dropping, inserting or reordering receipts | each receipt carries its index: `out_of_order` at the first gap |
//! | replacing a receipt with another validly signed one | the next receipt links the SHA-256 of its predecessor: `broken_link` |
//! | truncating the log below the checkpoint | `truncated`, naming the first missing receipt |
//! | rewriting a suffix with the gateway key | the recomputed tree head differs from the signed checkpoint: `root_mismatch` |
//! | a checkpoint signed by another key, or for another log | C2SP signed note under the pinned key and origin: `bad_checkpoint` |
//! | rolling back to an older checkpoint | an earlier checkpoint the auditor kept: `rollback` |
//! | a fork written with both keys | RFC 6962 consistency from the earlier checkpoint: `inconsistent` |
//! | a crash mid-write presented as a receipt | a torn last line was never acknowledged; it is cut on open ([`store::FileStore`]) and reported, never audited as a receipt |
//! | reading the arguments out of the log, or confirming a guessed value | only an HMAC of the canonical arguments is stored ([`ArgsKey`]) |
//!
//! A fork made by whoever holds both the receipt key and the note key is
//! caught only against a checkpoint kept outside the operator's reach (an
//! auditor's copy, a witness cosignature), which is why checkpoints are in
//! the ecosystem's format. Not in scope: confidentiality of receipt
//! metadata (tool names, actor ids) from whoever reads the log, and
//! availability (an operator can delete the whole log; a witness or a copy
//! is the remedy).
//!
//! Beyond integrity, [`semantics`] checks what a whole log means: no
//! `allow` after a revocation covering it, no remit past its `max_steps`,
//! one-shot approvals, decisions under the promoted policy version, and
//! `chain` records (a delegation chain's links, recorded once and named by
//! hash from each receipt that used it) that hash to their links.
//!
//! [`ocsf`] maps receipts to OCSF 1.3 API Activity events for a SIEM; the
//! export is a view, not evidence: audit the log, not the export.
//!
//! # Crates evaluated
//!
//! `ct-merkle` keeps its own tree in memory with its own leaf serialization
//! and RustCrypto digests; `signed_note` / `tlog_tiles` (azul) bring the
//! `ed25519-dalek` / `sha2` stack. Both would put a second cryptography
//! provider beside `aws-lc-rs`, and neither offers durable storage, so the
//! hashing, proofs and notes are implemented here (about 600 lines) and
//! pinned to the RFC 6962 vectors and to the Go `note` reference vectors.

pub mod audit;
pub mod canonical;
pub mod checkpoint;
pub mod dir;
pub mod log;
pub mod merkle;
pub mod note;
pub mod ocsf;
pub mod receipt;
pub mod semantics;
pub mod signed;
pub mod store;

pub use audit::{audit, AuditError, AuditReport, Auditor, Jwks, JwksError};
pub use checkpoint::{Checkpoint, CheckpointError};
pub use dir::{DirError, LeafReader, LogDir};
pub use log::{Appended, Log, LogError, Sequenced};
pub use merkle::{Hash, ProofError, Tree};
pub use note::{NoteError, NoteSigner, NoteVerifier};
pub use ocsf::ApiActivity;
pub use receipt::{
    receipt_hash, Actor, ActorKind, Approval, ArgsHash, ArgsKey, CallId, ChainRef, Classification,
    Decision, Effect, Event, Kind, PrevLink, Receipt, ReceiptError, Traceparent,
};
pub use semantics::{Semantics, Violation};
pub use signed::{LeafError, ReceiptSigner, SignedReceipt};
pub use store::{FileStore, LeafStore, MemoryStore, Recovery, StoreError};
