//! RFC 9457 problem documents: every error of the API but `/oauth/token`'s.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// The media type of a problem document.
pub const PROBLEM_JSON: &str = "application/problem+json";

/// The prefix of every problem `type`.
pub const PROBLEM_TYPE_PREFIX: &str = "urn:remit:problem:";

/// An RFC 9457 problem document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct Problem {
    /// `urn:remit:problem:<slug>`, stable per kind of problem.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind of problem.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What exactly went wrong, and how to fix it when the client can.
    pub detail: String,
}

impl Problem {
    /// A problem of kind `urn:remit:problem:<slug>`.
    pub fn new(
        slug: &str,
        title: impl Into<String>,
        status: u16,
        detail: impl Into<String>,
    ) -> Self {
        Self {
            kind: format!("{PROBLEM_TYPE_PREFIX}{slug}"),
            title: title.into(),
            status,
            detail: detail.into(),
        }
    }

    /// The slug of `type` (`agent-disabled`), when it is one of Remit's.
    pub fn slug(&self) -> Option<&str> {
        self.kind.strip_prefix(PROBLEM_TYPE_PREFIX)
    }
}

/// A problem refusing an issuance on the policy's word (`POST /v1/remits`,
/// 403): the problem members and why the policy refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct PolicyProblem {
    /// The problem.
    #[serde(flatten)]
    pub problem: Problem,
    /// The policy's reason code.
    pub reason: String,
    /// The policies that decided.
    pub policy_ids: Vec<String>,
    /// The policy version.
    pub policy_version: String,
    /// Index of the `deny` receipt of the refusal.
    pub receipt_id: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_problem_is_written_with_type_title_status_detail_in_that_order() {
        let p = Problem::new("not-found", "Not found", 404, "agent \"x\"");
        assert_eq!(
            serde_json::to_string(&p).unwrap_or_default(),
            r#"{"type":"urn:remit:problem:not-found","title":"Not found","status":404,"detail":"agent \"x\""}"#
        );
        assert_eq!(p.slug(), Some("not-found"));
    }
}
