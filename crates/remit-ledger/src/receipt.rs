//! Receipts: one canonical record per event that Remit decided or did.
//!
//! A [`Receipt`] is built from an [`Event`] (what happened, supplied by the
//! gateway or control plane) plus its place in the log (`index` and a link
//! to the previous receipt). Its bytes are RFC 8785 canonical JSON, so any
//! auditor re-serializes a parsed receipt to exactly the bytes that were
//! signed and hashed.

use std::collections::BTreeMap;

use aws_lc_rs::hmac;
use serde::{Deserialize, Serialize};

use crate::merkle::Hash;

/// The largest integer RFC 8785 (I-JSON) represents exactly: `2^53 - 1`.
pub const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// The receipt format version this crate writes and reads.
pub const RECEIPT_VERSION: u32 = 1;

/// Why a receipt, or one of its fields, was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    /// The JSON did not parse as a receipt or event.
    #[error("malformed receipt: {0}")]
    Malformed(String),
    /// A `traceparent` is not a W3C Trace Context version-00 header.
    #[error("traceparent {0:?} is not `00-<32 hex>-<16 hex>-<2 hex>`")]
    BadTraceparent(String),
    /// A call id is not 1–64 characters of `A-Za-z0-9_-`.
    #[error("call_id {0:?} is not 1-64 characters of A-Za-z0-9_-")]
    BadCallId(String),
    /// A chain reference is not `sha256:<64 hex>`.
    #[error("chain {0:?} is not `sha256:<64 hex>`")]
    BadChainRef(String),
    /// A chain record is not what its kind needs.
    #[error("chain record: {0}")]
    BadChainRecord(String),
    /// An argument hash is not `hmac-sha256:<64 hex>`.
    #[error("args_hash {0:?} is not `hmac-sha256:<64 hex>`")]
    BadArgsHash(String),
    /// The receipt version is not one this crate understands.
    #[error("receipt version {0} is not supported (expected {RECEIPT_VERSION})")]
    UnsupportedVersion(u32),
    /// Canonicalization failed (a number outside the I-JSON range).
    #[error("receipt cannot be canonicalized: {0}")]
    Canonical(String),
}

impl From<crate::canonical::CanonicalError> for ReceiptError {
    fn from(e: crate::canonical::CanonicalError) -> Self {
        ReceiptError::Canonical(e.0)
    }
}

/// What kind of event a receipt records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A remit was issued to an agent.
    Issue,
    /// A remit was delegated (narrowed) to a sub-agent.
    Delegate,
    /// A call was allowed.
    Allow,
    /// A call was denied.
    Deny,
    /// A call was held for human approval.
    Escalate,
    /// A human approved a held call.
    Approve,
    /// A human rejected a held call.
    Reject,
    /// A remit, agent, user, tool, key or subtree was revoked.
    Revoke,
    /// A policy draft was promoted to live.
    Promote,
    /// An upstream result was redacted before it reached the agent.
    ResultRedacted,
    /// An upstream result carrying findings reached the agent unchanged
    /// (it was within the holder's class); the receipt records what it held.
    ResultReleased,
    /// A stage failed; the call was denied (fail closed).
    Error,
    /// The registry changed: an agent, MCP server or tool was registered,
    /// blessed or re-pinned (the action is in `tool`, e.g. `agent.register:ID`).
    Register,
    /// A delegation chain, recorded once: its links (compact JWS, root
    /// first) and its hash in `chain`, which decisions refer to.
    Chain,
}

impl Kind {
    /// The snake_case name used in the JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Issue => "issue",
            Kind::Delegate => "delegate",
            Kind::Allow => "allow",
            Kind::Deny => "deny",
            Kind::Escalate => "escalate",
            Kind::Approve => "approve",
            Kind::Reject => "reject",
            Kind::Revoke => "revoke",
            Kind::Promote => "promote",
            Kind::ResultRedacted => "result_redacted",
            Kind::ResultReleased => "result_released",
            Kind::Error => "error",
            Kind::Register => "register",
            Kind::Chain => "chain",
        }
    }
}

/// Whether a principal in the actor chain is a person or an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// A user from an identity provider.
    User,
    /// A registered agent or sub-agent.
    Agent,
}

/// One principal in the delegation chain, outermost (the user) first.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Actor {
    // Fields in JCS key order: the fast canonical path relies on it.
    /// The principal's stable id.
    pub id: String,
    /// User or agent.
    pub kind: ActorKind,
}

/// Data classification, lowest first; a receipt's `classification`,
/// serialized as the uppercase name (`"CONFIDENTIAL"`). The one type every
/// Remit crate shares, re-exported here.
pub use remit_class::Classification;

/// The outcome of a policy decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// The call may proceed.
    Allow,
    /// The call is refused.
    Deny,
    /// The call waits for a human.
    Escalate,
}

/// A decision with what determined it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Decision {
    /// Allow, deny or escalate.
    pub effect: Effect,
    /// The ids of the policies that determined the effect.
    pub policy_ids: Vec<String>,
    /// The content hash of the policy set version that decided.
    pub policy_version: String,
    /// A human-readable reason, for denials and errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A human approval (or rejection) of a held call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Approval {
    // Fields in JCS key order: the fast canonical path relies on it.
    /// Who approved or rejected it.
    pub approver: String,
    /// The approval's id.
    pub id: String,
}

/// A W3C Trace Context `traceparent` (version 00), checked at parse time.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Traceparent(String);

impl TryFrom<String> for Traceparent {
    type Error = ReceiptError;
    fn try_from(text: String) -> Result<Self, ReceiptError> {
        let parts: Vec<&str> = text.split('-').collect();
        let hex_of = |s: &str, n: usize| {
            s.len() == n
                && s.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        };
        let ok = parts.len() == 4
            && parts[0] == "00"
            && hex_of(parts[1], 32)
            && parts[1].bytes().any(|b| b != b'0')
            && hex_of(parts[2], 16)
            && parts[2].bytes().any(|b| b != b'0')
            && hex_of(parts[3], 2);
        if ok {
            Ok(Traceparent(text))
        } else {
            Err(ReceiptError::BadTraceparent(text))
        }
    }
}

impl From<Traceparent> for String {
    fn from(t: Traceparent) -> String {
        t.0
    }
}

impl Traceparent {
    /// The header value.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// One call's id, carried by every receipt the call produces (its
/// decision, its result, its error), beside the W3C trace it belongs to:
/// 1–64 characters of `A-Za-z0-9_-`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct CallId(String);

impl TryFrom<String> for CallId {
    type Error = ReceiptError;
    fn try_from(text: String) -> Result<Self, ReceiptError> {
        let ok = (1..=64).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(CallId(text))
        } else {
            Err(ReceiptError::BadCallId(text))
        }
    }
}

impl From<CallId> for String {
    fn from(c: CallId) -> String {
        c.0
    }
}

impl CallId {
    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A reference to a delegation chain: `sha256:<hex>` of the chain as
/// presented, `root~child~…~leaf` (the links joined by `~`, UTF-8).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ChainRef(String);

const CHAIN_REF_PREFIX: &str = "sha256:";

impl TryFrom<String> for ChainRef {
    type Error = ReceiptError;
    fn try_from(text: String) -> Result<Self, ReceiptError> {
        match text.strip_prefix(CHAIN_REF_PREFIX) {
            Some(h)
                if h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) =>
            {
                Ok(ChainRef(text))
            }
            _ => Err(ReceiptError::BadChainRef(text)),
        }
    }
}

impl From<ChainRef> for String {
    fn from(c: ChainRef) -> String {
        c.0
    }
}

impl ChainRef {
    /// The reference of the chain made of `links` (root first).
    pub fn of_links<S: AsRef<str>>(links: &[S]) -> Self {
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        for (i, link) in links.iter().enumerate() {
            if i > 0 {
                ctx.update(b"~");
            }
            ctx.update(link.as_ref().as_bytes());
        }
        ChainRef(format!(
            "{CHAIN_REF_PREFIX}{}",
            hex::encode(ctx.finish().as_ref())
        ))
    }

    /// The `sha256:<hex>` text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A keyed hash of a call's arguments: `hmac-sha256:<hex>`.
///
/// Equal arguments hash equal under one key, so an auditor correlates calls
/// without the log ever holding the arguments; without the key, a guessed
/// argument cannot be confirmed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ArgsHash(String);

const ARGS_HASH_PREFIX: &str = "hmac-sha256:";

impl TryFrom<String> for ArgsHash {
    type Error = ReceiptError;
    fn try_from(text: String) -> Result<Self, ReceiptError> {
        match text.strip_prefix(ARGS_HASH_PREFIX) {
            Some(h)
                if h.len() == 64 && h.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) =>
            {
                Ok(ArgsHash(text))
            }
            _ => Err(ReceiptError::BadArgsHash(text)),
        }
    }
}

impl From<ArgsHash> for String {
    fn from(h: ArgsHash) -> String {
        h.0
    }
}

impl ArgsHash {
    /// The `hmac-sha256:<hex>` text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The secret key for argument hashes (HMAC-SHA256).
pub struct ArgsKey(hmac::Key);

impl std::fmt::Debug for ArgsKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ArgsKey(..)")
    }
}

impl ArgsKey {
    /// A key from 32 secret bytes.
    pub fn new(secret: &[u8; 32]) -> Self {
        ArgsKey(hmac::Key::new(hmac::HMAC_SHA256, secret))
    }

    /// Hashes arguments after RFC 8785 canonicalization, so the same value
    /// hashes the same whatever its key order or whitespace.
    pub fn hash_json(&self, args: &serde_json::Value) -> Result<ArgsHash, ReceiptError> {
        let canonical = crate::canonical::to_vec(args)?;
        Ok(self.hash_bytes(&canonical))
    }

    /// Hashes raw argument bytes (for non-JSON payloads).
    pub fn hash_bytes(&self, bytes: &[u8]) -> ArgsHash {
        let tag = hmac::sign(&self.0, bytes);
        ArgsHash(format!("{ARGS_HASH_PREFIX}{}", hex::encode(tag.as_ref())))
    }
}

/// What happened: the fields the gateway supplies for one receipt.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// The kind of event.
    pub kind: Kind,
    /// When it happened, Unix time in milliseconds (passed in, never read here).
    pub time: u64,
    /// The `jti` of the root remit of the chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_jti: Option<String>,
    /// The `jti` of the leaf remit presented.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leaf_jti: Option<String>,
    /// The actor chain: user first, then each agent down to the one acting.
    #[serde(default)]
    pub actors: Vec<Actor>,
    /// The tool or endpoint called.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// Keyed hash of the arguments (never the arguments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub args_hash: Option<ArgsHash>,
    /// Findings counted by type (for example `EMAIL: 2`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub findings: BTreeMap<String, u32>,
    /// The payload classification.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classification: Option<Classification>,
    /// The policy decision, when one was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<Decision>,
    /// The approval, when a human approved or rejected.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
    /// The W3C trace the call belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traceparent: Option<Traceparent>,
    /// The call this receipt belongs to: every receipt of one call (its
    /// decision, its result) carries the same id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<CallId>,
    /// The revocation epoch (the store's, strictly increasing in commit
    /// order). On a decision: every revocation at or below it was in force
    /// when the decision was made. On a `revoke` receipt: the epoch that
    /// revocation created. So a decision saw a revocation exactly when its
    /// epoch is at least the revocation's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_epoch: Option<u64>,
    /// The delegation chain the call presented, by reference: the `chain`
    /// of a `chain` record in the log (see [`Kind::Chain`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chain: Option<ChainRef>,
    /// A `chain` record's links, compact JWS, root first; each verifies
    /// with a JOSE library against the issuer JWKS (the root) or its
    /// parent's `cnf.jwk` (the others). Empty on every other kind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub links: Vec<String>,
    /// True when `actors`, `root_jti` and `leaf_jti` were parsed from a
    /// credential that did not verify (a refusal: expired, forged, signed
    /// by the wrong key, revoked): what the caller claimed, not who it is.
    #[serde(default, skip_serializing_if = "is_false")]
    pub unverified: bool,
}

fn is_false(b: &bool) -> bool {
    !*b
}

impl Event {
    /// An event of `kind` at `time` (Unix ms) with every optional field empty.
    pub fn new(kind: Kind, time: u64) -> Self {
        Event {
            kind,
            time,
            root_jti: None,
            leaf_jti: None,
            actors: Vec::new(),
            tool: None,
            args_hash: None,
            findings: BTreeMap::new(),
            classification: None,
            decision: None,
            approval: None,
            traceparent: None,
            call_id: None,
            revocation_epoch: None,
            chain: None,
            links: Vec::new(),
            unverified: false,
        }
    }

    /// The record of a delegation chain (links, root first): kind
    /// [`Kind::Chain`], its [`ChainRef`] in `chain`, what decisions that
    /// used it refer to.
    pub fn chain_record(links: Vec<String>, time: u64) -> Self {
        let mut e = Event::new(Kind::Chain, time);
        e.chain = Some(ChainRef::of_links(&links));
        e.links = links;
        e
    }

    /// Checks what a field's type cannot: a `chain` record names the hash
    /// of its own links, and only a `chain` record holds links.
    pub fn check(&self) -> Result<(), ReceiptError> {
        match (self.kind, self.links.is_empty()) {
            (Kind::Chain, true) => Err(ReceiptError::BadChainRecord("it has no links".into())),
            (Kind::Chain, false) => {
                let want = ChainRef::of_links(&self.links);
                if self.chain.as_ref() == Some(&want) {
                    Ok(())
                } else {
                    Err(ReceiptError::BadChainRecord(format!(
                        "its chain field is not the hash of its links ({})",
                        want.as_str()
                    )))
                }
            }
            (_, false) => Err(ReceiptError::BadChainRecord(format!(
                "a {} receipt cannot hold links",
                self.kind.as_str()
            ))),
            (_, true) => Ok(()),
        }
    }

    /// Parses an event from JSON, refusing unknown fields.
    pub fn from_json(text: &str) -> Result<Self, ReceiptError> {
        let event: Self =
            serde_json::from_str(text).map_err(|e| ReceiptError::Malformed(e.to_string()))?;
        event.check()?;
        Ok(event)
    }
}

/// The link from a receipt to the one before it in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrevLink {
    // Fields in JCS key order: the fast canonical path relies on it.
    /// SHA-256 of the previous receipt's canonical bytes, hex. It covers
    /// the content, not the signature, so a batch is sequenced first and
    /// its signatures computed in parallel.
    #[serde(with = "hash_hex")]
    pub hash: Hash,
    /// The previous receipt's index (always `index - 1`).
    pub index: u64,
}

mod hash_hex {
    use serde::{Deserialize as _, Deserializer, Serializer};

    use crate::merkle::Hash;

    pub fn serialize<S: Serializer>(h: &Hash, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&h.to_hex())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Hash, D::Error> {
        let text = String::deserialize(d)?;
        Hash::from_hex(&text).ok_or_else(|| serde::de::Error::custom("expected 64 hex digits"))
    }
}

/// A receipt's fields in JCS key order (see [`Receipt::canonical`]).
#[derive(Serialize)]
struct CanonicalView<'a> {
    actors: &'a Vec<Actor>,
    #[serde(skip_serializing_if = "none")]
    approval: &'a Option<Approval>,
    #[serde(skip_serializing_if = "none")]
    args_hash: &'a Option<ArgsHash>,
    #[serde(skip_serializing_if = "none")]
    call_id: &'a Option<CallId>,
    #[serde(skip_serializing_if = "none")]
    chain: &'a Option<ChainRef>,
    #[serde(skip_serializing_if = "none")]
    classification: &'a Option<Classification>,
    #[serde(skip_serializing_if = "none")]
    decision: &'a Option<Decision>,
    #[serde(skip_serializing_if = "empty")]
    findings: &'a BTreeMap<String, u32>,
    index: u64,
    kind: Kind,
    #[serde(skip_serializing_if = "none")]
    leaf_jti: &'a Option<String>,
    #[serde(skip_serializing_if = "no_links")]
    links: &'a Vec<String>,
    #[serde(skip_serializing_if = "none")]
    prev: &'a Option<PrevLink>,
    #[serde(skip_serializing_if = "none")]
    revocation_epoch: &'a Option<u64>,
    #[serde(skip_serializing_if = "none")]
    root_jti: &'a Option<String>,
    time: u64,
    #[serde(skip_serializing_if = "none")]
    tool: &'a Option<String>,
    #[serde(skip_serializing_if = "none")]
    traceparent: &'a Option<Traceparent>,
    #[serde(skip_serializing_if = "not_set")]
    unverified: bool,
    v: u32,
}

fn no_links(l: &&Vec<String>) -> bool {
    l.is_empty()
}

fn not_set(b: &bool) -> bool {
    !*b
}

fn none<T>(o: &&Option<T>) -> bool {
    o.is_none()
}

fn empty(m: &&BTreeMap<String, u32>) -> bool {
    m.is_empty()
}

/// SHA-256 of a receipt's canonical bytes: what the next receipt links to.
pub fn receipt_hash(canonical: &[u8]) -> Hash {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, canonical);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    Hash(out)
}

/// One receipt: an event at its place in the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// Format version ([`RECEIPT_VERSION`]).
    pub v: u32,
    /// This receipt's index in the log.
    pub index: u64,
    /// The previous receipt, absent only for index 0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prev: Option<PrevLink>,
    /// What happened.
    #[serde(flatten)]
    pub event: Event,
}

impl Receipt {
    /// The receipt for `event` at `index`, linked to the previous receipt
    /// by its [`receipt_hash`].
    pub fn new(event: Event, index: u64, prev_hash: Option<Hash>) -> Self {
        let prev = match (index, prev_hash) {
            (0, _) | (_, None) => None,
            (i, Some(hash)) => Some(PrevLink { index: i - 1, hash }),
        };
        Receipt {
            v: RECEIPT_VERSION,
            index,
            prev,
            event,
        }
    }

    /// The RFC 8785 canonical bytes: what is signed.
    ///
    /// Fast path: `serde_json` over a view whose fields (and nested
    /// structs' fields) are declared in JCS key order. For these types that
    /// is exactly JCS: integers only, and `serde_json` escapes strings as
    /// RFC 8785 does. Map keys (`findings`) sort by UTF-8 bytes in a
    /// `BTreeMap`, which equals JCS's UTF-16 order for ASCII keys; any
    /// non-ASCII key takes the general canonicalizer instead.
    pub fn canonical(&self) -> Result<Vec<u8>, ReceiptError> {
        // RFC 8785 numbers are IEEE-754 doubles: past 2^53 an integer would
        // be rounded, and the signed bytes would not parse back to it.
        if self.index > MAX_SAFE_INTEGER
            || self.event.time > MAX_SAFE_INTEGER
            || self.event.revocation_epoch.unwrap_or(0) > MAX_SAFE_INTEGER
        {
            return Err(ReceiptError::Canonical(
                "index, time or revocation_epoch is above 2^53 - 1, outside the I-JSON number range"
                    .into(),
            ));
        }
        if !self.event.findings.keys().all(|k| k.is_ascii()) {
            return Ok(crate::canonical::to_vec(self)?);
        }
        let e = &self.event;
        let view = CanonicalView {
            actors: &e.actors,
            approval: &e.approval,
            args_hash: &e.args_hash,
            call_id: &e.call_id,
            chain: &e.chain,
            classification: &e.classification,
            decision: &e.decision,
            findings: &e.findings,
            index: self.index,
            kind: e.kind,
            leaf_jti: &e.leaf_jti,
            links: &e.links,
            prev: &self.prev,
            revocation_epoch: &e.revocation_epoch,
            root_jti: &e.root_jti,
            time: e.time,
            tool: &e.tool,
            traceparent: &e.traceparent,
            unverified: e.unverified,
            v: self.v,
        };
        let bytes =
            serde_json::to_vec(&view).map_err(|e| ReceiptError::Canonical(e.to_string()))?;
        debug_assert_eq!(Ok(&bytes), crate::canonical::to_vec(self).as_ref());
        Ok(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_traceparent_that_is_not_w3c() {
        for bad in [
            "",
            "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
            "00-00000000000000000000000000000000-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",
            "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331",
        ] {
            assert!(Traceparent::try_from(bad.to_owned()).is_err(), "{bad}");
        }
        Traceparent::try_from("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01".to_owned())
            .unwrap();
    }

    #[test]
    fn refuses_event_with_unknown_field_or_raw_arguments() {
        let err = Event::from_json(r#"{"kind":"allow","time":1,"arguments":{"q":"x"}}"#);
        assert!(matches!(err, Err(ReceiptError::Malformed(_))));
        let err = Event::from_json(r#"{"kind":"allow","time":1,"args_hash":"sha256:00"}"#);
        assert!(matches!(err, Err(ReceiptError::Malformed(_))));
    }

    #[test]
    fn args_hash_correlates_equal_values_under_one_key_only() {
        let a = ArgsKey::new(&[7; 32]);
        let b = ArgsKey::new(&[8; 32]);
        let x: serde_json::Value = serde_json::from_str(r#"{"b":1,"a":"x"}"#).unwrap();
        let y: serde_json::Value = serde_json::from_str(r#"{ "a": "x", "b": 1 }"#).unwrap();
        let z: serde_json::Value = serde_json::from_str(r#"{"a":"y","b":1}"#).unwrap();
        assert_eq!(a.hash_json(&x).unwrap(), a.hash_json(&y).unwrap());
        assert_ne!(a.hash_json(&x).unwrap(), a.hash_json(&z).unwrap());
        assert_ne!(a.hash_json(&x).unwrap(), b.hash_json(&x).unwrap());
        let h = a.hash_json(&x).unwrap();
        assert!(h.as_str().starts_with("hmac-sha256:"));
        assert!(!h.as_str().contains('x'));
        // RFC 4231 test case 2 ("Jefe"), to pin the primitive.
        let key = hmac::Key::new(hmac::HMAC_SHA256, b"Jefe");
        let tag = hmac::sign(&key, b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(tag.as_ref()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    proptest::proptest! {
        #[test]
        fn fast_canonical_path_is_exactly_jcs(
            text in "\\PC{0,12}",
            raw in proptest::collection::vec(proptest::char::any(), 0..12),
            keys in proptest::collection::btree_map("[A-Za-z_\u{e000}-\u{e010}\u{1f600}]{1,6}", 0u32..9, 0..4),
            time in 0..=MAX_SAFE_INTEGER,
            index in 1..=MAX_SAFE_INTEGER,
        ) {
            let raw: String = raw.into_iter().collect();
            let mut e = Event::new(Kind::Error, time);
            e.root_jti = Some(text.clone());
            e.leaf_jti = Some(raw.clone());
            e.tool = Some(format!("{raw}\u{7f}\"\\/{text}"));
            e.actors = vec![Actor { kind: ActorKind::Agent, id: raw.clone() }];
            e.findings = keys;
            e.decision = Some(Decision {
                effect: Effect::Deny,
                policy_ids: vec![text.clone(), raw.clone()],
                policy_version: raw.clone(),
                reason: Some(text.clone()),
            });
            e.approval = Some(Approval { id: text.clone(), approver: raw.clone() });
            e.call_id = Some(CallId::try_from("c-1_x".to_owned()).unwrap());
            e.revocation_epoch = Some(time);
            e.links = vec![raw, text];
            e.chain = Some(ChainRef::of_links(&e.links));
            e.unverified = time % 2 == 0;
            let r = Receipt::new(e, index, Some(Hash([9; 32])));
            proptest::prop_assert_eq!(r.canonical().unwrap(), crate::canonical::to_vec(&r).unwrap());
        }
    }

    #[test]
    fn kind_names_are_their_json_names() {
        use Kind::*;
        let all = [
            Issue,
            Delegate,
            Allow,
            Deny,
            Escalate,
            Approve,
            Reject,
            Revoke,
            Promote,
            ResultRedacted,
            Error,
            Register,
            Chain,
        ];
        for kind in all {
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::json!(kind.as_str())
            );
        }
        assert_eq!(Register.as_str(), "register");
    }

    #[test]
    fn a_chain_record_names_the_hash_of_its_links_and_nothing_else_holds_links() {
        let links = vec!["eyJh.root.sig".to_owned(), "eyJh.leaf.sig".to_owned()];
        let e = Event::chain_record(links.clone(), 5);
        e.check().unwrap();
        // sha256("eyJh.root.sig~eyJh.leaf.sig"), as an auditor computes it.
        let d =
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, b"eyJh.root.sig~eyJh.leaf.sig");
        assert_eq!(
            e.chain.as_ref().unwrap().as_str(),
            format!("sha256:{}", hex::encode(d.as_ref()))
        );
        let text = serde_json::to_string(&e).unwrap();
        assert!(Event::from_json(&text).is_ok());
        // A record whose links were swapped for others: refused.
        let forged = text.replace("eyJh.leaf.sig", "eyJh.evil.sig");
        assert!(matches!(
            Event::from_json(&forged),
            Err(ReceiptError::BadChainRecord(_))
        ));
        let mut allow = Event::new(Kind::Allow, 1);
        allow.links = links;
        assert!(allow.check().is_err(), "links outside a chain record");
        assert!(Event::new(Kind::Chain, 1).check().is_err(), "no links");
    }

    #[test]
    fn refuses_call_ids_and_chain_refs_outside_their_formats() {
        for bad in ["", "a b", "ä", &"x".repeat(65), "a/b"] {
            assert!(CallId::try_from(bad.to_owned()).is_err(), "{bad}");
        }
        CallId::try_from("01JDQ7Z8R0-call_1".to_owned()).unwrap();
        for bad in ["sha256:00", "sha256:", &format!("sha1:{}", "0".repeat(64))] {
            assert!(ChainRef::try_from(bad.to_owned()).is_err(), "{bad}");
        }
        let err = Event::from_json(r#"{"kind":"allow","time":1,"call_id":"a b"}"#);
        assert!(matches!(err, Err(ReceiptError::Malformed(_))));
    }

    #[test]
    fn new_fields_are_absent_from_old_receipts_and_round_trip_when_set() {
        let plain = Receipt::new(Event::new(Kind::Allow, 1), 0, None);
        let text = String::from_utf8(plain.canonical().unwrap()).unwrap();
        assert_eq!(
            text,
            r#"{"actors":[],"index":0,"kind":"allow","time":1,"v":1}"#
        );
        let mut e = Event::new(Kind::Deny, 2);
        e.call_id = Some(CallId::try_from("c1".to_owned()).unwrap());
        e.revocation_epoch = Some(7);
        e.chain = Some(ChainRef::of_links(&["a"]));
        e.unverified = true;
        let r = Receipt::new(e, 1, Some(Hash([2; 32])));
        let bytes = r.canonical().unwrap();
        let back: Receipt = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back, r);
        let text = String::from_utf8(bytes).unwrap();
        assert!(
            text.contains(r#""call_id":"c1","chain":"sha256:"#),
            "{text}"
        );
        assert!(text.contains(r#""revocation_epoch":7"#), "{text}");
        assert!(text.contains(r#""unverified":true,"v":1"#), "{text}");
    }

    #[test]
    fn refuses_numbers_jcs_would_round() {
        let r = Receipt::new(Event::new(Kind::Allow, MAX_SAFE_INTEGER + 1), 0, None);
        assert!(matches!(r.canonical(), Err(ReceiptError::Canonical(_))));
        let r = Receipt::new(Event::new(Kind::Allow, 1), MAX_SAFE_INTEGER + 1, None);
        assert!(matches!(r.canonical(), Err(ReceiptError::Canonical(_))));
        let r = Receipt::new(
            Event::new(Kind::Allow, MAX_SAFE_INTEGER),
            MAX_SAFE_INTEGER,
            None,
        );
        assert!(r.canonical().is_ok());
    }

    #[test]
    fn receipt_round_trips_through_canonical_json() {
        let mut event = Event::new(Kind::Allow, 1_764_000_000_000);
        event.actors = vec![
            Actor {
                kind: ActorKind::User,
                id: "alice".into(),
            },
            Actor {
                kind: ActorKind::Agent,
                id: "planner".into(),
            },
        ];
        event.findings.insert("EMAIL".into(), 2);
        event.classification = Some(Classification::Confidential);
        let r = Receipt::new(event, 3, Some(Hash([1; 32])));
        let bytes = r.canonical().unwrap();
        let back: Receipt = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(back, r);
        assert_eq!(back.canonical().unwrap(), bytes);
        let text = String::from_utf8(bytes).unwrap();
        assert!(
            text.starts_with(r#"{"actors":[{"id":"alice","kind":"user"}"#),
            "{text}"
        );
        assert!(text.contains(r#""classification":"CONFIDENTIAL""#));
        assert!(text.contains(r#""prev":{"hash":"0101"#));
    }
}
