//! Decisions and how matched policies combine into one.
//!
//! Both engines report the same raw [`Evaluation`] (which policies matched,
//! with their annotations, and which evaluation errors occurred); this
//! module alone turns it into a [`Decision`], so Cedar and Rego cannot
//! disagree on the combining rules:
//!
//! 1. any evaluation error → **deny** (fail closed, even if a permit matched);
//! 2. any matching `forbid` → **deny** (forbid wins over everything,
//!    approvals included);
//! 3. no matching `permit` → **deny** (default deny);
//! 4. otherwise the permits split into *plain* permits and *escalating*
//!    permits (annotated `@escalate("why")`), and the preset's
//!    [`EscalationMode`] picks: with `plain-permit-wins` (the default) any
//!    plain permit gives **allow** and only escalate-only matches give
//!    **escalate**; with `escalate-wins` any escalating permit gives
//!    **escalate**, so no operator permit can skip a required approval.

use serde::{Deserialize, Serialize};

use crate::request::RequestError;
use crate::version::PolicyVersion;

/// A policy's effect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Allows (possibly with escalation).
    Permit,
    /// Denies, winning over every permit.
    Forbid,
}

/// A policy that matched the request, with the annotations that explain it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MatchedPolicy {
    /// The policy's `@id`.
    pub id: String,
    /// Permit or forbid.
    pub effect: Effect,
    /// The policy's `@reason`: why it exists, in words for an operator.
    pub reason: String,
    /// The `@escalate` reason, for permits that require approval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalate: Option<String>,
}

/// An error raised while evaluating a policy.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EvaluationError {
    /// The policy that failed, when the engine knows it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<String>,
    /// The engine's message.
    pub message: String,
}

/// What an engine saw, before combining: all matched policies and errors.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evaluation {
    /// Matched policies (order irrelevant).
    pub matched: Vec<MatchedPolicy>,
    /// Evaluation errors (order irrelevant).
    pub errors: Vec<EvaluationError>,
}

/// Which wins when both plain and escalating permits match.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum EscalationMode {
    /// A plain permit beats escalate-only permits (operators can whitelist).
    #[default]
    PlainPermitWins,
    /// Any matching escalating permit requires approval.
    EscalateWins,
}

impl EscalationMode {
    /// The manifest spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EscalationMode::PlainPermitWins => "plain-permit-wins",
            EscalationMode::EscalateWins => "escalate-wins",
        }
    }
}

/// A non-empty, sorted list of the policies that determined a decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Determining(Vec<MatchedPolicy>);

impl Determining {
    fn new(mut v: Vec<MatchedPolicy>) -> Option<Self> {
        if v.is_empty() {
            return None;
        }
        v.sort();
        v.dedup();
        Some(Self(v))
    }

    /// The policies, sorted by id.
    pub fn policies(&self) -> &[MatchedPolicy] {
        &self.0
    }

    /// Their ids.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|p| p.id.as_str())
    }
}

/// Why a request was denied.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "cause", rename_all = "snake_case")]
pub enum DenyCause {
    /// One or more `forbid` policies matched.
    Forbidden {
        /// The forbids that matched.
        by: Determining,
    },
    /// No permit matched (default deny).
    NoPermit,
    /// A policy failed to evaluate; errors never allow.
    EvaluationError {
        /// What failed (never empty).
        errors: Vec<EvaluationError>,
    },
    /// The request could not be put to the engine (oversized, malformed,
    /// unknown entity).
    InvalidRequest {
        /// The error, as text.
        message: String,
    },
}

/// The answer, with its reasons: it cannot be built without them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum Outcome {
    /// Go ahead.
    Allow {
        /// The plain permits that allowed it.
        by: Determining,
    },
    /// Hold for a human approval.
    Escalate {
        /// The escalating permits; each carries its `@escalate` reason.
        by: Determining,
    },
    /// Refuse.
    Deny(DenyCause),
}

/// A decision made under a specific policy version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    #[serde(flatten)]
    outcome: Outcome,
    policy_version: String,
}

/// The three answers without their reasons, for tables and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Allow.
    Allow,
    /// Escalate to a human.
    Escalate,
    /// Deny.
    Deny,
}

impl Decision {
    /// Combines an engine's evaluation under the rules in the module doc.
    pub fn combine(eval: Evaluation, mode: EscalationMode, version: &PolicyVersion) -> Self {
        let outcome = combine(eval, mode);
        Self {
            outcome,
            policy_version: version.to_string(),
        }
    }

    /// A deny for a request that could not be evaluated.
    pub fn invalid_request(err: &RequestError, version: &PolicyVersion) -> Self {
        Self {
            outcome: Outcome::Deny(DenyCause::InvalidRequest {
                message: err.to_string(),
            }),
            policy_version: version.to_string(),
        }
    }

    /// The outcome with its reasons.
    pub fn outcome(&self) -> &Outcome {
        &self.outcome
    }

    /// Allow, escalate or deny.
    pub fn verdict(&self) -> Verdict {
        match self.outcome {
            Outcome::Allow { .. } => Verdict::Allow,
            Outcome::Escalate { .. } => Verdict::Escalate,
            Outcome::Deny(_) => Verdict::Deny,
        }
    }

    /// The policy version (`sha256:...`) the decision was made under.
    pub fn policy_version(&self) -> &str {
        &self.policy_version
    }

    /// The determining policies (empty for default deny, errors and invalid requests).
    pub fn determining(&self) -> &[MatchedPolicy] {
        match &self.outcome {
            Outcome::Allow { by }
            | Outcome::Escalate { by }
            | Outcome::Deny(DenyCause::Forbidden { by }) => by.policies(),
            Outcome::Deny(_) => &[],
        }
    }

    /// A short machine reason: the determining policy ids joined by `,`, or
    /// `no-permit`, `evaluation-error`, `invalid-request`.
    pub fn reason_code(&self) -> String {
        match &self.outcome {
            Outcome::Deny(DenyCause::NoPermit) => "no-permit".into(),
            Outcome::Deny(DenyCause::EvaluationError { .. }) => "evaluation-error".into(),
            Outcome::Deny(DenyCause::InvalidRequest { .. }) => "invalid-request".into(),
            _ => self
                .determining()
                .iter()
                .map(|p| p.id.as_str())
                .collect::<Vec<_>>()
                .join(","),
        }
    }

    /// One human sentence: the reasons (and escalation reasons) of the
    /// determining policies, or the error.
    pub fn explanation(&self) -> String {
        match &self.outcome {
            Outcome::Deny(DenyCause::NoPermit) => "no policy permits this request".into(),
            Outcome::Deny(DenyCause::EvaluationError { errors }) => errors
                .iter()
                .map(|e| match &e.policy {
                    Some(p) => format!("policy {p} failed: {}", e.message),
                    None => e.message.clone(),
                })
                .collect::<Vec<_>>()
                .join("; "),
            Outcome::Deny(DenyCause::InvalidRequest { message }) => message.clone(),
            Outcome::Escalate { by } => by
                .policies()
                .iter()
                .map(|p| p.escalate.clone().unwrap_or_else(|| p.reason.clone()))
                .collect::<Vec<_>>()
                .join("; "),
            _ => self
                .determining()
                .iter()
                .map(|p| p.reason.as_str())
                .collect::<Vec<_>>()
                .join("; "),
        }
    }
}

fn combine(eval: Evaluation, mode: EscalationMode) -> Outcome {
    if !eval.errors.is_empty() {
        let mut errors = eval.errors;
        errors.sort();
        errors.dedup();
        return Outcome::Deny(DenyCause::EvaluationError { errors });
    }
    let (forbids, permits): (Vec<_>, Vec<_>) = eval
        .matched
        .into_iter()
        .partition(|p| p.effect == Effect::Forbid);
    if let Some(by) = Determining::new(forbids) {
        return Outcome::Deny(DenyCause::Forbidden { by });
    }
    let (escalating, plain): (Vec<_>, Vec<_>) =
        permits.into_iter().partition(|p| p.escalate.is_some());
    let (plain, escalating) = (Determining::new(plain), Determining::new(escalating));
    match (mode, plain, escalating) {
        (EscalationMode::EscalateWins, _, Some(by)) => Outcome::Escalate { by },
        (_, Some(by), _) => Outcome::Allow { by },
        (_, None, Some(by)) => Outcome::Escalate { by },
        (_, None, None) => Outcome::Deny(DenyCause::NoPermit),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(id: &str, effect: Effect, esc: Option<&str>) -> MatchedPolicy {
        MatchedPolicy {
            id: id.into(),
            effect,
            reason: format!("reason of {id}"),
            escalate: esc.map(Into::into),
        }
    }

    fn decide(matched: Vec<MatchedPolicy>, mode: EscalationMode) -> Decision {
        let v = PolicyVersion::from_digest([7; 32]);
        Decision::combine(
            Evaluation {
                matched,
                errors: vec![],
            },
            mode,
            &v,
        )
    }

    #[test]
    fn evaluation_error_denies_even_when_a_permit_matched() {
        let v = PolicyVersion::from_digest([0; 32]);
        let d = Decision::combine(
            Evaluation {
                matched: vec![p("allow", Effect::Permit, None)],
                errors: vec![EvaluationError {
                    policy: Some("x".into()),
                    message: "boom".into(),
                }],
            },
            EscalationMode::PlainPermitWins,
            &v,
        );
        assert_eq!(d.verdict(), Verdict::Deny);
        assert_eq!(d.reason_code(), "evaluation-error");
    }

    #[test]
    fn forbid_beats_permit_and_escalate() {
        let d = decide(
            vec![
                p("a", Effect::Permit, None),
                p("e", Effect::Permit, Some("why")),
                p("f", Effect::Forbid, None),
            ],
            EscalationMode::EscalateWins,
        );
        assert_eq!(d.verdict(), Verdict::Deny);
        assert_eq!(d.reason_code(), "f");
    }

    #[test]
    fn plain_permit_wins_only_in_plain_mode() {
        let m = vec![
            p("a", Effect::Permit, None),
            p("e", Effect::Permit, Some("why")),
        ];
        let d = decide(m.clone(), EscalationMode::PlainPermitWins);
        assert_eq!((d.verdict(), d.reason_code()), (Verdict::Allow, "a".into()));
        let d = decide(m, EscalationMode::EscalateWins);
        assert_eq!(
            (d.verdict(), d.reason_code()),
            (Verdict::Escalate, "e".into())
        );
        assert_eq!(d.explanation(), "why");
    }

    #[test]
    fn nothing_matched_is_default_deny() {
        let d = decide(vec![], EscalationMode::PlainPermitWins);
        assert_eq!(d.outcome(), &Outcome::Deny(DenyCause::NoPermit));
    }
}
