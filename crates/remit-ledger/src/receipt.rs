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
        }
    }

    /// Parses an event from JSON, refusing unknown fields.
    pub fn from_json(text: &str) -> Result<Self, ReceiptError> {
        serde_json::from_str(text).map_err(|e| ReceiptError::Malformed(e.to_string()))
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
    classification: &'a Option<Classification>,
    #[serde(skip_serializing_if = "none")]
    decision: &'a Option<Decision>,
    #[serde(skip_serializing_if = "empty")]
    findings: &'a BTreeMap<String, u32>,
    index: u64,
    kind: Kind,
    #[serde(skip_serializing_if = "none")]
    leaf_jti: &'a Option<String>,
    #[serde(skip_serializing_if = "none")]
    prev: &'a Option<PrevLink>,
    #[serde(skip_serializing_if = "none")]
    root_jti: &'a Option<String>,
    time: u64,
    #[serde(skip_serializing_if = "none")]
    tool: &'a Option<String>,
    #[serde(skip_serializing_if = "none")]
    traceparent: &'a Option<Traceparent>,
    v: u32,
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
        if self.index > MAX_SAFE_INTEGER || self.event.time > MAX_SAFE_INTEGER {
            return Err(ReceiptError::Canonical(
                "index or time is above 2^53 - 1, outside the I-JSON number range".into(),
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
            classification: &e.classification,
            decision: &e.decision,
            findings: &e.findings,
            index: self.index,
            kind: e.kind,
            leaf_jti: &e.leaf_jti,
            prev: &self.prev,
            root_jti: &e.root_jti,
            time: e.time,
            tool: &e.tool,
            traceparent: &e.traceparent,
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
            e.approval = Some(Approval { id: text.clone(), approver: raw });
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
