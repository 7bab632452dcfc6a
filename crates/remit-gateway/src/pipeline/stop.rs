//! Why a request stops short of its answer, as a value. Every stage
//! returns `Result<_, Stop>`; the driver ([`super::driver::run`]) turns a
//! stop into the JSON-RPC answer and its receipt here, in one place.

use remit_ledger::Kind;
use remit_store::{Store, StoreError};
use serde_json::{json, Value};

use super::driver::Cx;
use super::{jsonrpc, refuse, release, Answer, Facts, Refusal};
use crate::upstream::UpstreamError;

/// Why a request stops before its answer.
#[derive(Debug)]
pub(crate) enum Stop {
    /// A refusal (deny, error or escalate) with an extra `data` member
    /// (boxed: a stop travels in every stage's `Result`).
    Refuse(Box<(Refusal, Option<(&'static str, Value)>)>),
    /// The remit does not name the tool: HTTP 403 `insufficient_scope`
    /// naming the scope a wider remit needs (the MCP step-up signal).
    Scope {
        /// `remit_tool:<server>/<tool>`.
        scope: String,
        /// Why, in words.
        reason: String,
    },
    /// The store failed: the request is refused (fail closed).
    Store(StoreError),
    /// The upstream failed or answered an error. Its own JSON-RPC error
    /// passes with its code, its message and data scanned and redacted
    /// above the holder's class like a result; a transport failure is
    /// `-32044` in Remit's words.
    Upstream(UpstreamError),
}

impl Stop {
    /// A deny by the gateway itself, with a stable rule id.
    pub(crate) fn deny(rule: &str, reason: impl Into<String>) -> Self {
        Self::refuse(Refusal::gateway(jsonrpc::DENIED, rule, reason))
    }

    /// A refusal without extra data.
    pub(crate) fn refuse(refusal: Refusal) -> Self {
        Self::Refuse(Box::new((refusal, None)))
    }

    /// A refusal with an extra `data` member (`approval_id`).
    pub(crate) fn refuse_with(refusal: Refusal, key: &'static str, value: Value) -> Self {
        Self::Refuse(Box::new((refusal, Some((key, value)))))
    }

    /// Stage 2's refusal: a tool (or method) the remit does not name is
    /// [`Stop::Scope`], a wider remit would cover it; a granted tool whose
    /// argument, resource or action breaks its constraint is a deny
    /// (`remit-constraint`) naming that constraint, never a scope the
    /// remit already has.
    pub(crate) fn not_covered(tool_id: &str, error: &remit_token::AuthorizeError) -> Self {
        if let remit_token::AuthorizeError::ToolNotGranted(_) = error {
            return Self::Scope {
                scope: format!("remit_tool:{tool_id}"),
                reason: format!("the remit does not cover this call: {error}"),
            };
        }
        Self::deny(
            "remit-constraint",
            format!("the remit grants {tool_id} but not this call: {error}"),
        )
    }

    /// The answer to send for this stop, its receipt written (with
    /// `facts`, plus what an upstream error's scan found).
    pub(crate) async fn answer<S: Store>(self, cx: &Cx<'_, S>, facts: &Facts) -> Answer {
        let (refusal, extra, scanned) = match self {
            Self::Refuse(refused) => {
                let (refusal, extra) = *refused;
                (refusal, extra, None)
            }
            Self::Scope { scope, reason } => {
                let refusal = Refusal::gateway(jsonrpc::INSUFFICIENT_SCOPE, "remit-grant", reason);
                let message = cx
                    .refuse(facts, refusal, Some(("scope", json!(scope))))
                    .await;
                return Answer::InsufficientScope { message, scope };
            }
            Self::Store(error) => {
                tracing::error!(%error, "store error on the gateway path");
                let refusal = Refusal {
                    kind: Kind::Error,
                    code: jsonrpc::DENIED,
                    reason: format!("the store failed, so the call is refused: {error}"),
                    policy_ids: vec!["gw-store-failed".into()],
                    policy_version: None,
                };
                (refusal, None, None)
            }
            Self::Upstream(UpstreamError::Remote(remote)) => {
                let mut facts = facts.clone();
                let (message, data) =
                    release::upstream_error(cx.state, cx.caller, &remote, &mut facts);
                let refusal = Refusal {
                    kind: Kind::Error,
                    code: remote.code,
                    reason: message,
                    policy_ids: vec!["gw-upstream-error".into()],
                    policy_version: None,
                };
                (refusal, data.map(|d| ("upstream_data", d)), Some(facts))
            }
            Self::Upstream(error) => {
                let refusal = Refusal {
                    kind: Kind::Error,
                    code: jsonrpc::UPSTREAM_FAILED,
                    reason: error.to_string(),
                    policy_ids: vec!["gw-upstream-failed".into()],
                    policy_version: None,
                };
                (refusal, None, None)
            }
        };
        let facts = scanned.as_ref().unwrap_or(facts);
        Answer::Message(cx.refuse(facts, refusal, extra).await)
    }
}

impl From<StoreError> for Stop {
    fn from(error: StoreError) -> Self {
        Self::Store(error)
    }
}

impl From<UpstreamError> for Stop {
    fn from(error: UpstreamError) -> Self {
        Self::Upstream(error)
    }
}

impl<S: Store> Cx<'_, S> {
    /// Writes a refusal's receipt for this request and builds its error.
    pub(super) async fn refuse(
        &self,
        facts: &Facts,
        refusal: Refusal,
        extra: Option<(&str, Value)>,
    ) -> Value {
        refuse(
            self.state,
            Some(self.caller),
            Some(self.id.clone()),
            facts,
            refusal,
            extra,
        )
        .await
    }
}
