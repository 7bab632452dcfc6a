//! Stage 5: the policy's decision on a request or on its answer, an
//! escalation held for a human and released once after an approval, and
//! in shadow mode the observation of what would have been decided.

use remit_ledger::Kind;
use remit_policy::{Decision, Verdict};
use remit_scan::ScanReport;
use remit_store::{Id, NewObservation, Store};

use super::context::{decision_request, policy_ids, recorded_reason, CallContext};
use super::driver::{Ask, Cx, Pinned, Point, RequestKind, Would};
use super::hold::{self, Held};
use super::stop::Stop;
use super::{jsonrpc, Facts, Refusal};
use remit_runtime::state::now;

/// Asks the policy `ask.action` about the request as `context` tells it.
/// An escalation is held for a human (when `ask.hold`), or, once the
/// exact request was approved, decided again with `approved` set and the
/// approval spent; without `hold` it withholds like a deny. Shadow mode
/// notes what would have been refused in `would` and, with `ask.observe`,
/// records the observation. A spent approval is named in `facts`. Returns the decision the request goes on
/// under (an allow, or in shadow mode whatever it was).
#[allow(clippy::too_many_arguments)]
pub(super) async fn decide<S: Store, K: RequestKind>(
    cx: &Cx<'_, S>,
    kind: &K,
    facts: &mut Facts,
    context: &mut CallContext<'_>,
    ask: Ask,
    report: &ScanReport,
    pinned: &Pinned,
    would: &mut Would,
) -> Result<Decision, Stop> {
    let mut decision = policy(cx, ask, context)?;
    let mut approved = None;
    if decision.verdict() == Verdict::Escalate && ask.hold && !cx.shadow {
        let held = Held::bind(cx, kind)?;
        let Some(approver) = hold::decided(cx, &held, &decision).await? else {
            let claims = cx.caller.chain.leaf_claims();
            let summary = format!(
                "{} (for {}) {}: {}",
                cx.caller.agent(),
                claims.sub,
                kind.summary(report, pinned),
                decision.explanation()
            );
            return Err(hold::hold(cx, &held, &decision, summary).await);
        };
        context.approved = true;
        decision = policy(cx, ask, context)?;
        if decision.verdict() == Verdict::Escalate {
            return Err(Stop::refuse(Refusal {
                kind: Kind::Deny,
                code: jsonrpc::DENIED,
                reason: format!(
                    "approval {} was given, but the policy still asks for one: {}",
                    held.approval,
                    decision.explanation()
                ),
                policy_ids: policy_ids(&decision),
                policy_version: Some(decision.policy_version().to_owned()),
            }));
        }
        approved = Some((held, approver));
    }
    match decision.verdict() {
        Verdict::Allow => {}
        verdict if cx.shadow => {
            would.push(
                &format!("{verdict:?}").to_lowercase(),
                decision.explanation(),
            );
        }
        _ => {
            let reason = match ask.point {
                Point::Request => recorded_reason(&decision),
                Point::Answer => format!("the result is withheld: {}", recorded_reason(&decision)),
            };
            return Err(Stop::refuse(Refusal {
                kind: Kind::Deny,
                code: jsonrpc::DENIED,
                reason,
                policy_ids: policy_ids(&decision),
                policy_version: Some(decision.policy_version().to_owned()),
            }));
        }
    }
    if let Some((held, approver)) = approved {
        hold::spend(cx, &held).await?;
        // The receipt of what it released names the approval it spent (an
        // auditor checks each is used once, after its approve receipt).
        facts.approval = Some(remit_ledger::Approval {
            approver,
            id: held.approval.to_string(),
        });
    }
    if ask.observe && cx.shadow {
        observe(cx, kind, would).await?;
    }
    Ok(decision)
}

/// The policy's decision on `context` (a request it cannot be put is
/// refused).
fn policy<S: Store>(cx: &Cx<'_, S>, ask: Ask, context: &CallContext<'_>) -> Result<Decision, Stop> {
    match decision_request(ask.action, context) {
        Ok(request) => Ok(cx.state.policy().decide(&request)),
        Err(e) => {
            let what = match ask.point {
                Point::Request => "call",
                Point::Answer => "result",
            };
            Err(Stop::deny(
                "gw-invalid-request",
                format!("the {what} cannot be put to the policy: {e}"),
            ))
        }
    }
}

/// Shadow mode: what the request was and what would have been decided,
/// for policy drafting (nothing of the arguments' values).
async fn observe<S: Store, K: RequestKind>(
    cx: &Cx<'_, S>,
    kind: &K,
    would: &Would,
) -> Result<(), Stop> {
    let invalid = |e: remit_store::StoreError| Stop::deny("gw-invalid-call", e.to_string());
    let observed = NewObservation {
        agent: Id::parse("agent id", cx.caller.agent()).map_err(invalid)?,
        tool: Id::parse("tool", kind.tool_id()).map_err(invalid)?,
        argument_shape: kind.shape().to_string(),
        decision: would.decision(),
        observed_at: i64::try_from(now()).unwrap_or(i64::MAX),
    };
    cx.state.store().record_observation(&observed).await?;
    Ok(())
}
