//! The decision in the shape of the OpenID AuthZEN Authorization API 1.0
//! (access evaluation: subject, action, resource, context → decision), so
//! the server can answer `POST /access/v1/evaluation` without a translation
//! layer of its own.
//!
//! AuthZEN's decision is a boolean. Remit's third answer, *escalate*, maps
//! to `decision: false` (the call may not proceed yet) with
//! `context.remit.outcome = "escalate"` and the escalation reason in
//! `context.reason`, so an AuthZEN-only client fails closed while a Remit
//! client can start the approval flow.

use serde::{Deserialize, Serialize};

use crate::decision::{Decision, MatchedPolicy, Verdict};
use crate::model::{Action, EntityKind, EntityRef};
use crate::request::{DecisionRequest, RequestContext, RequestError};

/// An AuthZEN subject or resource: a typed id (`properties` are ignored:
/// Remit takes attributes from its registry, never from the caller).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthZenEntity {
    /// `Agent`, `User`, `Tool`, `Server` or `Model` (case-insensitive).
    #[serde(rename = "type")]
    pub kind: String,
    /// The entity id.
    pub id: String,
    /// Caller-supplied attributes; accepted for compatibility, not trusted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<serde_json::Value>,
}

/// An AuthZEN action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthZenAction {
    /// One of Remit's actions (`call_tool`, `read_resource`, `get_prompt`, ...).
    pub name: String,
    /// Ignored, as for entities.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<serde_json::Value>,
}

/// An AuthZEN access evaluation request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuthZenRequest {
    /// Who asks.
    pub subject: AuthZenEntity,
    /// What they ask to do.
    pub action: AuthZenAction,
    /// On what.
    pub resource: AuthZenEntity,
    /// Remit's per-call context: the [`crate::ContextInput`] fields and the action
    /// facts (`pop`, `granted`, ...) as one object, read by
    /// [`RequestContext::from_map`] (unknown keys are refused).
    pub context: serde_json::Map<String, serde_json::Value>,
}

/// Remit's detail inside the AuthZEN response context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemitDetail {
    /// `allow`, `escalate` or `deny`.
    pub outcome: Verdict,
    /// The determining policies.
    pub policies: Vec<MatchedPolicy>,
    /// `no-permit`, `evaluation-error`, `invalid-request` or the policy ids.
    pub reason_code: String,
    /// The policy version the decision was made under.
    pub policy_version: String,
}

/// The response context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthZenContext {
    /// Human-readable reason.
    pub reason: String,
    /// Remit's full answer.
    pub remit: RemitDetail,
}

/// An AuthZEN access evaluation response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthZenResponse {
    /// True only for allow.
    pub decision: bool,
    /// Why.
    pub context: AuthZenContext,
}

fn kind(s: &str) -> Result<EntityKind, RequestError> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "user" => EntityKind::User,
        "agent" => EntityKind::Agent,
        "tool" => EntityKind::Tool,
        "model" => EntityKind::Model,
        "server" => EntityKind::Server,
        _ => {
            return Err(RequestError::BadContext {
                message: format!("unknown AuthZEN entity type {s:?}"),
            })
        }
    })
}

impl TryFrom<AuthZenRequest> for DecisionRequest {
    type Error = RequestError;

    fn try_from(r: AuthZenRequest) -> Result<Self, RequestError> {
        let principal = EntityRef::new(kind(&r.subject.kind)?, r.subject.id)?;
        let resource = EntityRef::new(kind(&r.resource.kind)?, r.resource.id)?;
        let action: Action = r.action.name.parse()?;
        DecisionRequest::new(
            principal,
            action,
            resource,
            RequestContext::from_map(r.context)?,
        )
    }
}

impl From<&DecisionRequest> for AuthZenRequest {
    fn from(r: &DecisionRequest) -> Self {
        let entity = |e: &EntityRef| AuthZenEntity {
            kind: e.kind().as_str().to_owned(),
            id: e.id().to_owned(),
            properties: None,
        };
        AuthZenRequest {
            subject: entity(r.principal()),
            action: AuthZenAction {
                name: r.action().as_str().to_owned(),
                properties: None,
            },
            resource: entity(r.resource()),
            context: r.context().to_map(),
        }
    }
}

impl From<&Decision> for AuthZenResponse {
    fn from(d: &Decision) -> Self {
        AuthZenResponse {
            decision: d.verdict() == Verdict::Allow,
            context: AuthZenContext {
                reason: d.explanation(),
                remit: RemitDetail {
                    outcome: d.verdict(),
                    policies: d.determining().to_vec(),
                    reason_code: d.reason_code(),
                    policy_version: d.policy_version().to_owned(),
                },
            },
        }
    }
}
