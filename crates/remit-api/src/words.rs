//! The closed sets of words the API uses, each one lowercase on the wire.

use remit_class::Classification;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How much harm an agent or a tool can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RiskTier {
    /// Low.
    Low,
    /// Medium.
    Medium,
    /// High.
    High,
    /// Critical.
    Critical,
}

/// Whether a registered agent or server may be used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// May be used.
    Active,
    /// May not be used.
    Disabled,
}

/// A destination's clearance: a classification written lowercase, as
/// the registry stores it (tokens and receipts write it uppercase).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename = "Classification", rename_all = "lowercase")]
#[schema(as = Clearance)]
pub enum Clearance {
    /// May be published.
    Public,
    /// Inside the organisation.
    Internal,
    /// A need-to-know group.
    Confidential,
    /// Named people only.
    Restricted,
}

impl From<Classification> for Clearance {
    fn from(class: Classification) -> Self {
        match class {
            Classification::Public => Self::Public,
            Classification::Internal => Self::Internal,
            Classification::Confidential => Self::Confidential,
            Classification::Restricted => Self::Restricted,
        }
    }
}

impl From<Clearance> for Classification {
    fn from(clearance: Clearance) -> Self {
        match clearance {
            Clearance::Public => Self::Public,
            Clearance::Internal => Self::Internal,
            Clearance::Confidential => Self::Confidential,
            Clearance::Restricted => Self::Restricted,
        }
    }
}

/// What a revocation is keyed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum RevocationKind {
    /// Exactly one remit.
    Jti,
    /// A remit and every remit delegated from it.
    Subtree,
    /// Every remit held by an agent.
    Agent,
    /// Every remit acting for a user.
    Sub,
    /// Every call to a tool.
    Tool,
    /// Everything signed by a key.
    Kid,
}

/// Where a held call stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalState {
    /// Waiting for a human.
    Pending,
    /// Approved: the same call may run once.
    Approved,
    /// Rejected.
    Rejected,
}

/// The word a value is written as on the wire (`"medium"`), for text
/// output; the same as its JSON string.
pub trait Word: Serialize {
    /// The wire word.
    fn word(&self) -> String {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::String(word)) => word,
            _ => String::new(),
        }
    }
}

impl Word for RiskTier {}
impl Word for Status {}
impl Word for Clearance {}
impl Word for RevocationKind {}
impl Word for ApprovalState {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clearance_is_the_lowercase_word_and_round_trips_through_classification() {
        for class in Classification::ALL {
            let clearance = Clearance::from(class);
            let upper = serde_json::to_value(class).unwrap_or_default();
            let lower = serde_json::to_value(clearance).unwrap_or_default();
            assert_eq!(
                lower.as_str().map(str::to_uppercase),
                upper.as_str().map(str::to_owned)
            );
            assert_eq!(Classification::from(clearance), class);
        }
        assert!(serde_json::from_str::<Clearance>("\"RESTRICTED\"").is_err());
    }

    #[test]
    fn words_are_their_json_strings() {
        assert_eq!(RiskTier::Critical.word(), "critical");
        assert_eq!(ApprovalState::Pending.word(), "pending");
        let refused = serde_json::from_str::<RiskTier>("\"severe\"")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            refused.contains("expected one of `low`, `medium`, `high`, `critical`"),
            "{refused}"
        );
    }
}
