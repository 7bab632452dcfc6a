//! Plain records the store keeps, owned by this crate.
//!
//! Keys are JSON text, hashes are lowercase hex, times are unix seconds
//! given by the caller. Identifiers are parsed once ([`Id`]) so that a
//! malformed one never reaches a query.

use std::fmt;

use crate::error::StoreError;

/// Longest identifier accepted anywhere in the store.
pub const MAX_ID_LEN: usize = 200;

/// An identifier: 1 to [`MAX_ID_LEN`] bytes of `A-Z a-z 0-9 . _ : - @ /`.
///
/// Used for agent, server, remit (`jti`), approval ids, subjects, tools and
/// key ids, so nothing with control characters or whitespace is ever stored
/// as a key.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Id(String);

impl Id {
    /// Parses an identifier, naming `what` it is in the error.
    pub fn parse(what: &'static str, value: impl Into<String>) -> Result<Self, StoreError> {
        let value = value.into();
        let reason = if value.is_empty() {
            Some("it is empty")
        } else if value.len() > MAX_ID_LEN {
            Some("it is longer than 200 bytes")
        } else if !value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".:_-@/".contains(&b))
        {
            Some("only letters, digits and . _ : - @ / are allowed")
        } else {
            None
        };
        match reason {
            Some(reason) => Err(StoreError::Invalid {
                what,
                value,
                reason,
            }),
            None => Ok(Self(value)),
        }
    }

    /// The identifier as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Re-parses a value read back from the database.
    pub(crate) fn stored(what: &'static str, value: String) -> Result<Self, StoreError> {
        Self::parse(what, value).map_err(|e| StoreError::Corrupt {
            what,
            detail: e.to_string(),
        })
    }
}

impl fmt::Display for Id {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Longest server identifier: one DNS label.
pub const MAX_SERVER_ID_LEN: usize = 63;

/// A blessed MCP server's identifier: `[a-z0-9][a-z0-9_.-]{0,62}`.
///
/// A server id is the first field of every `<server>/<tool>` a grant
/// names and the `{server}` segment of `/mcp/{server}`, so it never holds
/// `/` (a server `evil/admin` would be reachable by a grant `evil/*`
/// meant for server `evil`), nor upper case (`Files` and `files` would be
/// two servers a reader takes for one), nor anything that needs escaping
/// in a URL path. Servers registered before ids were restricted still
/// load and list (their rows are [`Id`]s), but [`crate::RegistryRepo::server`]
/// refuses them with [`StoreError::Invalid`] saying to register them again.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerId(Id);

impl ServerId {
    /// The rule, as shown in errors and the API document.
    pub const RULE: &'static str = "a server id is 1 to 63 bytes of a-z 0-9 _ . -, starting with a letter or digit (no '/', no upper case)";

    /// Parses a server id; the error names the rule.
    pub fn parse(value: impl Into<String>) -> Result<Self, StoreError> {
        let value = value.into();
        let bytes = value.as_bytes();
        let ok = !bytes.is_empty()
            && bytes.len() <= MAX_SERVER_ID_LEN
            && (bytes[0].is_ascii_lowercase() || bytes[0].is_ascii_digit())
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_.-".contains(b));
        if !ok {
            return Err(StoreError::Invalid {
                what: "server id",
                value,
                reason: Self::RULE,
            });
        }
        Ok(Self(Id(value)))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The id as a general [`Id`], for lookups keyed by any id.
    pub fn as_id(&self) -> &Id {
        &self.0
    }
}

impl fmt::Display for ServerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Defines a closed set of lowercase words stored as TEXT.
macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum $name {
            $($(#[$vmeta])* #[doc = concat!("Stored as `", $text, "`.")] $variant),+
        }

        impl $name {
            /// The word stored in the database and shown to users.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }

            /// Parses the stored or user-given word.
            pub fn parse(text: &str) -> Result<Self, StoreError> {
                match text {
                    $($text => Ok(Self::$variant),)+
                    _ => Err(StoreError::Invalid {
                        what: $what,
                        value: text.to_owned(),
                        reason: concat!("expected one of:", $(" ", $text),+),
                    }),
                }
            }

            pub(crate) fn stored(text: &str) -> Result<Self, StoreError> {
                Self::parse(text).map_err(|e| StoreError::Corrupt { what: $what, detail: e.to_string() })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

text_enum!(
    /// How much harm an agent or a tool can do; drives approvals and budgets.
    RiskTier, "risk tier" { Low = "low", Medium = "medium", High = "high", Critical = "critical" }
);

text_enum!(
    /// Whether a registered agent or server may be used.
    Status, "status" { Active = "active", Disabled = "disabled" }
);

/// Data classification: of a payload, or a destination's clearance. The one
/// type every Remit crate shares, re-exported here; the store keeps it as a
/// lowercase word ([`ClassificationText`]).
pub use remit_class::Classification;

/// The word the store keeps for a [`Classification`]: `public`, `internal`,
/// `confidential` or `restricted`, in the database and in the registry API.
///
/// Lowercase, unlike the uppercase name tokens and receipts carry; existing
/// databases hold these words, so they never change.
pub trait ClassificationText: Sized {
    /// The word stored in the database and shown to users.
    fn as_str(&self) -> &'static str;

    /// Parses the stored or user-given word, exactly (lowercase only).
    fn parse(text: &str) -> Result<Self, StoreError>;
}

impl ClassificationText for Classification {
    fn as_str(&self) -> &'static str {
        match self {
            Classification::Public => "public",
            Classification::Internal => "internal",
            Classification::Confidential => "confidential",
            Classification::Restricted => "restricted",
        }
    }

    fn parse(text: &str) -> Result<Self, StoreError> {
        Classification::ALL
            .into_iter()
            .find(|class| class.as_str() == text)
            .ok_or_else(|| StoreError::Invalid {
                what: "classification",
                value: text.to_owned(),
                reason: "expected one of: public internal confidential restricted",
            })
    }
}

/// Reads a classification column: an unknown word means a corrupt row.
pub(crate) fn stored_classification(text: &str) -> Result<Classification, StoreError> {
    Classification::parse(text).map_err(|e| StoreError::Corrupt {
        what: "classification",
        detail: e.to_string(),
    })
}

/// Serde helper for the registry API's form of a [`Classification`]: the
/// store's lowercase word (`"restricted"`), and only that, as
/// `#[serde(with = "remit_store::lowercase_class")]` (or `::option` for an
/// `Option`).
pub mod lowercase_class {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::Classification;

    /// The lowercase form; serde's remote derive checks at compile time that
    /// it names every level. Named `Classification` so that error messages
    /// read as they always have.
    #[derive(Serialize, Deserialize)]
    #[serde(
        remote = "Classification",
        rename = "Classification",
        rename_all = "lowercase"
    )]
    enum Lowercase {
        Public,
        Internal,
        Confidential,
        Restricted,
    }

    /// Writes the lowercase word.
    pub fn serialize<S: Serializer>(class: &Classification, s: S) -> Result<S::Ok, S::Error> {
        Lowercase::serialize(class, s)
    }

    /// Reads the lowercase word; any other text is refused.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Classification, D::Error> {
        Lowercase::deserialize(d)
    }

    /// The same for an optional field (pair it with `#[serde(default)]`).
    pub mod option {
        use serde::{Deserialize, Deserializer, Serialize, Serializer};

        use super::Classification;

        #[derive(Serialize, Deserialize)]
        struct Word(#[serde(with = "super::Lowercase")] Classification);

        /// Writes the lowercase word, or `null`.
        pub fn serialize<S: Serializer>(
            class: &Option<Classification>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            class.map(Word).serialize(s)
        }

        /// Reads the lowercase word, or `null`.
        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<Classification>, D::Error> {
            Ok(Option::<Word>::deserialize(d)?.map(|word| word.0))
        }
    }
}

text_enum!(
    /// Where a held call stands. One-shot use is recorded separately
    /// ([`Approval::consumed_at`]).
    ApprovalState, "approval state" { Pending = "pending", Approved = "approved", Rejected = "rejected" }
);

text_enum!(
    /// What a revocation is keyed by.
    RevocationKind, "revocation kind" {
        /// Exactly one remit.
        Jti = "jti",
        /// A remit and every remit delegated from it.
        Subtree = "subtree",
        /// Every remit held by an agent.
        Agent = "agent",
        /// Every remit acting for a user.
        Sub = "sub",
        /// Every call to a tool.
        Tool = "tool",
        /// Everything signed by a key.
        Kid = "kid",
    }
);

/// An agent to register.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewAgent {
    /// Its identifier.
    pub id: Id,
    /// A human-readable name.
    pub name: String,
    /// Its public key as JWK JSON text (parsed by `remit-token`, not here).
    pub public_jwk: String,
    /// RFC 7638 thumbprint of that key; unique across agents.
    pub key_thumbprint: String,
    /// Who is accountable for it.
    pub owner: String,
    /// Its risk tier.
    pub risk_tier: RiskTier,
}

/// A registered agent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Agent {
    /// Its identifier.
    pub id: Id,
    /// A human-readable name.
    pub name: String,
    /// Its public key as JWK JSON text.
    pub public_jwk: String,
    /// RFC 7638 thumbprint of that key.
    pub key_thumbprint: String,
    /// Who is accountable for it.
    pub owner: String,
    /// Its risk tier.
    pub risk_tier: RiskTier,
    /// Whether it may act.
    pub status: Status,
    /// When it was registered.
    pub created_at: i64,
    /// When it last changed.
    pub updated_at: i64,
}

/// An MCP server to bless.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMcpServer {
    /// Its identifier (only a strict [`ServerId`] can be registered).
    pub id: ServerId,
    /// A human-readable name.
    pub name: String,
    /// Where the gateway forwards calls.
    pub url: String,
    /// The most sensitive data it may receive.
    pub clearance: Classification,
}

/// A blessed MCP server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct McpServer {
    /// Its identifier.
    pub id: Id,
    /// A human-readable name.
    pub name: String,
    /// Where the gateway forwards calls.
    pub url: String,
    /// The most sensitive data it may receive.
    pub clearance: Classification,
    /// Whether calls may reach it.
    pub status: Status,
    /// When it was added.
    pub created_at: i64,
    /// When it last changed.
    pub updated_at: i64,
}

/// A tool of a blessed server, pinned to the description that was reviewed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tool {
    /// The server it belongs to.
    pub server: Id,
    /// Its name as the server announces it.
    pub name: Id,
    /// How much harm a call can do.
    pub risk: RiskTier,
    /// The most sensitive data it may receive.
    pub clearance: Classification,
    /// SHA-256 (hex) of the reviewed description; a changed description is a
    /// different tool (rug-pull defence).
    pub description_sha256: String,
    /// When it was added.
    pub created_at: i64,
    /// The argument whose value is a call's resource (a path, URI or URL),
    /// matched against the remit's resource patterns; `None`: no resource.
    pub resource_arg: Option<String>,
}

/// A prompt of a blessed server, pinned by the hash of its description and
/// arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PromptPin {
    /// The server it belongs to.
    pub server: Id,
    /// Its name as the server announces it.
    pub name: Id,
    /// SHA-256 (hex) of the reviewed description and arguments; a changed
    /// prompt is refused until it is pinned again.
    pub description_sha256: String,
    /// When it was last pinned.
    pub pinned_at: i64,
}

/// What is recorded about an issued remit. Never the token itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssuedRemit {
    /// Its token id.
    pub jti: Id,
    /// The root of its delegation chain (itself for a root remit).
    pub root_jti: Id,
    /// The remit it was delegated from, if any.
    pub parent_jti: Option<Id>,
    /// Thumbprint of the key it is bound to (`cnf.jkt`).
    pub holder_thumbprint: String,
    /// The user it acts for.
    pub sub: Id,
    /// The agent holding it.
    pub agent: Id,
    /// Issue time.
    pub issued_at: i64,
    /// Expiry time.
    pub expires_at: i64,
    /// How many calls it may make; `None` for no step limit.
    pub max_steps: Option<i64>,
}

/// A remit's step counter after a step was consumed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StepCount {
    /// Steps used, including this one.
    pub used: i64,
    /// The limit, if any.
    pub max: Option<i64>,
}

/// Risk one call spends from its agent's budget (see
/// [`crate::BudgetRepo::consume_call`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RiskSpend {
    /// The agent whose budget pays.
    pub agent: Id,
    /// Start of the budget window (Unix seconds).
    pub window_start: i64,
    /// Risk points this call costs (never negative).
    pub amount: i64,
    /// The window's limit (never negative).
    pub limit: i64,
}

/// What a remit and its agent have used: the counters the policy sees as
/// `steps_used` and `risk_used`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Usage {
    /// Steps the remit has used (0 for a remit never recorded).
    pub steps_used: i64,
    /// Risk the agent has spent in the window (0 when nothing was spent).
    pub risk_spent: i64,
}

/// What a call consumed left behind (see
/// [`crate::BudgetRepo::consume_call`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CallUsage {
    /// The leaf's steps used, including this call.
    pub steps_used: i64,
    /// The agent's spend in the window after this call; `None` when the
    /// call spent no risk (the counter was not read).
    pub risk_spent: Option<i64>,
}

/// What to revoke.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RevocationTarget {
    /// What the value names.
    pub kind: RevocationKind,
    /// The jti, agent id, user, tool or key id.
    pub value: Id,
}

/// A revocation as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revocation {
    /// What is revoked.
    pub target: RevocationTarget,
    /// The revocation epoch it created; strictly increasing in commit order.
    pub epoch: i64,
    /// Why, in words.
    pub reason: String,
    /// Who revoked it.
    pub revoked_by: String,
    /// When.
    pub revoked_at: i64,
}

/// The result of a revoke call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Revoked {
    /// The revocation now in force (the earlier one if it already was).
    pub revocation: Revocation,
    /// False when the target was already revoked (no epoch was used for it).
    pub newly_revoked: bool,
    /// Subtree revocations of exchanged roots written in the same
    /// transaction because this revocation reaches their subject chains
    /// (see [`crate::ExchangeRepo`]), in epoch order; also filled when the
    /// target was already revoked but a propagation was missing.
    pub propagated: Vec<Revocation>,
}

/// One link of the subject chain an exchanged root was derived from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExchangeLink {
    /// The link's token id.
    pub jti: Id,
    /// The agent holding the link.
    pub agent: Id,
    /// The id of the key that signed the link (its JWS header `kid`).
    pub kid: Id,
}

/// A call held for a human.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewApproval {
    /// Its identifier.
    pub id: Id,
    /// The agent that made the call.
    pub agent: Id,
    /// The remit it presented.
    pub remit_jti: Id,
    /// The tool it called.
    pub tool: Id,
    /// SHA-256 (hex) of the canonical call; the approval releases only this call.
    pub call_hash: String,
    /// What the human is shown (blast radius), never the raw arguments.
    pub summary: String,
    /// When it was held.
    pub requested_at: i64,
    /// After this, it can no longer be used.
    pub expires_at: i64,
}

/// A human's answer to a held call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Release the call (once).
    Approve,
    /// Refuse the call.
    Reject,
}

/// A held call and what became of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Approval {
    /// Its identifier.
    pub id: Id,
    /// The agent that made the call.
    pub agent: Id,
    /// The remit it presented.
    pub remit_jti: Id,
    /// The tool it called.
    pub tool: Id,
    /// SHA-256 (hex) of the canonical call.
    pub call_hash: String,
    /// What the human is shown.
    pub summary: String,
    /// Where it stands.
    pub state: ApprovalState,
    /// When it was held.
    pub requested_at: i64,
    /// When it stops being usable.
    pub expires_at: i64,
    /// Who decided.
    pub decided_by: Option<String>,
    /// When.
    pub decided_at: Option<i64>,
    /// When the approved call was released; set at most once.
    pub consumed_at: Option<i64>,
}

/// A call seen in shadow mode: its shape, never its arguments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewObservation {
    /// The agent.
    pub agent: Id,
    /// The tool.
    pub tool: Id,
    /// The argument shape as JSON text (keys and types, no values).
    pub argument_shape: String,
    /// The decision the policy would have made.
    pub decision: String,
    /// When.
    pub observed_at: i64,
}

/// A stored observation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observation {
    /// Its sequence number.
    pub id: i64,
    /// The observation.
    pub observation: NewObservation,
}

/// An observation with the facts a policy draft learns from (issue 26):
/// `remit-draft`'s JSON of the projected call, or `None` for calls recorded
/// without it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObservedFacts {
    /// The observation.
    pub observation: Observation,
    /// The projected facts, as JSON text.
    pub facts: Option<String>,
}

/// A signed tree head of the receipt log, as text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// Number of leaves it covers.
    pub size: u64,
    /// The checkpoint text (format owned by `remit-ledger`).
    pub text: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_with_whitespace_or_controls_are_refused() {
        for bad in ["", "a b", "a\nb", "a\0", "é", &"x".repeat(201)] {
            assert!(Id::parse("agent id", bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            Id::parse("agent id", "agt_01:x-y.z@a/b").unwrap().as_str(),
            "agt_01:x-y.z@a/b"
        );
    }

    #[test]
    fn unknown_words_are_refused() {
        assert!(RiskTier::parse("extreme").is_err());
        assert!(RevocationKind::parse("JTI").is_err());
        assert_eq!(
            RevocationKind::parse("subtree").ok(),
            Some(RevocationKind::Subtree)
        );
        assert_eq!(Classification::Restricted.as_str(), "restricted");
    }

    #[test]
    fn classifications_are_stored_as_the_lowercase_words() {
        let words = ["public", "internal", "confidential", "restricted"];
        for (class, word) in Classification::ALL.into_iter().zip(words) {
            assert_eq!(class.as_str(), word);
            assert_eq!(Classification::parse(word).unwrap(), class);
            assert_eq!(stored_classification(word).unwrap(), class);
        }
        for bad in ["RESTRICTED", "Restricted", "secret", "", " public"] {
            assert!(matches!(
                Classification::parse(bad),
                Err(StoreError::Invalid { .. })
            ));
            assert!(matches!(
                stored_classification(bad),
                Err(StoreError::Corrupt { .. })
            ));
        }
    }

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Clearances {
        #[serde(with = "lowercase_class")]
        clearance: Classification,
        #[serde(default, with = "lowercase_class::option")]
        default: Option<Classification>,
    }

    #[test]
    fn the_registry_api_speaks_the_lowercase_words() {
        for class in Classification::ALL {
            let value = Clearances {
                clearance: class,
                default: Some(class),
            };
            let json = serde_json::to_string(&value).unwrap();
            let word = class.as_str();
            assert_eq!(
                json,
                format!(r#"{{"clearance":"{word}","default":"{word}"}}"#)
            );
            assert_eq!(serde_json::from_str::<Clearances>(&json).unwrap(), value);
        }
        assert_eq!(
            serde_json::from_str::<Clearances>(r#"{"clearance":"public"}"#).unwrap(),
            Clearances {
                clearance: Classification::Public,
                default: None
            }
        );
        assert_eq!(
            serde_json::to_string(&Clearances {
                clearance: Classification::Public,
                default: None
            })
            .unwrap(),
            r#"{"clearance":"public","default":null}"#
        );
        let err = serde_json::from_str::<Clearances>(r#"{"clearance":"RESTRICTED"}"#)
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(
                "unknown variant `RESTRICTED`, expected one of `public`, `internal`, \
                 `confidential`, `restricted`"
            ),
            "{err}"
        );
        assert!(
            serde_json::from_str::<Clearances>(r#"{"clearance":"public","default":"Public"}"#)
                .is_err()
        );
    }
}
