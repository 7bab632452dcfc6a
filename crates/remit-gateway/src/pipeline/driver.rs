//! The one driver: every request kind passes the same stages, in this
//! order, here.
//!
//! | # | stage | what | where |
//! |---|---|---|---|
//! | 1 | authenticate | chain, proof, replay, audience, revocation | [`crate::auth`] (before the message is read) |
//! | 2 | authority | the remit's grant covers the request, its resource and arguments | [`authority`] |
//! | 3 | pin | the target is the one a human blessed; its upstream | [`RequestKind::pin`] |
//! | 4 | scan | the request's payload against the target's clearance | [`scan`] |
//! | 5 | decide | the policy, with escalations held for a human | [`super::decide`] |
//! | 6 | budget | steps of every link and the payer's risk, in the store | [`super::budget`] |
//! | 7 | route | forward upstream (a tool call's receipt queued first) | [`route`] |
//! | 8 | release | the answer scanned, redacted or withheld, decided | [`super::release`] |
//! | 9 | record | the receipt durable before the answer leaves | [`super::release`] |
//!
//! A request kind ([`RequestKind`]) supplies what differs: how its target
//! is named and pinned, what is scanned, which policy action is asked
//! before it goes out (a tool call: `call_tool`) and which on its answer (a
//! resource read is decided on the content read), how it is forwarded.
//! Stages return `Result<_, Stop>`; [`run`] turns a [`Stop`] into the
//! answer and its receipt in one place. In shadow mode stages 2, 4 and 5
//! record what they would have refused in [`Would`] and let the request
//! through.

use std::sync::Arc;
use std::time::Instant;

use remit_class::Classification;
use remit_ledger::Kind;
use remit_policy::Action;
use remit_runtime::metrics::{self, Stage};
use remit_scan::ScanReport;
use remit_store::{McpServer, RiskTier, Store};
use rmcp::model::RequestId;
use serde_json::Value;

use super::context::{count_findings, finding_names, ledger_decision, CallContext, Content};
use super::progress::{self, ProgressSink};
use super::stop::Stop;
use super::{budget, decide, receipt_event, release, Answer, Facts};
use crate::auth::Caller;
use crate::upstream::Upstream;
use crate::{Gateway, GatewayConfig};

/// One request's surroundings, shared by every stage.
pub(crate) struct Cx<'a, S: Store> {
    /// The gateway.
    pub(crate) state: &'a Gateway<S>,
    /// Who asks (stage 1 done).
    pub(crate) caller: &'a Caller,
    /// The registered server the request is for.
    pub(crate) server: &'a McpServer,
    /// The JSON-RPC id answers carry.
    pub(crate) id: RequestId,
    /// The configuration this request runs under (one snapshot).
    pub(crate) config: Arc<GatewayConfig>,
    /// Shadow mode for this agent or server: record, do not enforce.
    pub(crate) shadow: bool,
}

impl<'a, S: Store> Cx<'a, S> {
    /// The surroundings of request `id` by `caller` for `server`.
    pub(crate) fn new(
        state: &'a Gateway<S>,
        caller: &'a Caller,
        server: &'a McpServer,
        id: RequestId,
    ) -> Self {
        let config = state.gateway().config();
        let shadow = config.shadow(caller.agent(), server.id.as_str());
        Self {
            state,
            caller,
            server,
            id,
            config,
            shadow,
        }
    }
}

/// What stage 3 found: where the request goes and what the registry says
/// of its target.
pub(super) struct Pinned {
    /// The upstream the request is forwarded to.
    pub(super) upstream: Arc<Upstream>,
    /// The target's risk tier (what a call costs of the risk budget).
    pub(super) risk: RiskTier,
    /// The clearance the request's payload is scanned against at stage 4;
    /// `None` for a request with no payload of its own (a read is decided
    /// on what it reads).
    pub(super) clearance: Option<Classification>,
    /// The server-wide hash of the pinned descriptions the policy sees.
    pub(super) description_hash: Option<String>,
}

/// Where stage 5 runs: on the request before it goes out, or on the answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Point {
    /// Before forwarding: a refusal stops the request.
    Request,
    /// On the upstream's answer: a refusal withholds it.
    Answer,
}

/// One policy question: which action, where, and what an escalation or
/// shadow mode does there.
#[derive(Debug, Clone, Copy)]
pub(super) struct Ask {
    /// The policy action.
    pub(super) action: Action,
    /// Where it is asked.
    pub(super) point: Point,
    /// Whether an escalation is held for a human (otherwise it withholds).
    pub(super) hold: bool,
    /// Whether shadow mode records its observation after this decision.
    pub(super) observe: bool,
}

/// What a request kind supplies to the stages. A fourth kind (a model
/// prompt) is a fourth implementation, not another driver.
pub(super) trait RequestKind {
    /// The grant name the remit must cover: `<server>/<tool>`,
    /// `<server>/resources/read`, `<server>/prompts/get`.
    fn tool_id(&self) -> &str;
    /// The request in a refusal's words: `call`, `resources/read`.
    fn noun(&self) -> &str;
    /// The arguments the policy sees (an object).
    fn args(&self) -> &Value;
    /// Stage 2: what the remit must grant.
    fn call(&self) -> remit_token::Call<'_>;
    /// Stage 3: the pin check, and the upstream.
    async fn pin<S: Store>(&self, cx: &Cx<'_, S>) -> Result<Pinned, Stop>;
    /// Stage 4: the payload scanned before deciding (`None`: nothing is).
    fn payload(&self) -> Option<&Value>;
    /// Stage 5 on the request, when the kind is decided before it goes out.
    fn request_ask(&self) -> Option<Ask>;
    /// Stage 5 on the upstream's answer.
    fn answer_ask(&self) -> Ask;
    /// What the policy is told the request names besides a tool.
    fn content(&self) -> Option<Content<'_>>;
    /// SHA-256 (hex) of the exact request an approval releases.
    fn binding(&self, leaf_jti: &str, server: &str) -> String;
    /// What a human is shown about the request (before the policy's
    /// explanation), given the scan the decision saw.
    fn summary(&self, report: &ScanReport, pinned: &Pinned) -> String;
    /// The argument shape recorded in shadow mode (keys and types).
    fn shape(&self) -> Value;
    /// Stage 7: the upstream method and its params (only what the
    /// upstream needs: never the remit).
    fn forwarded(&self) -> (&'static str, Value);
}

/// What shadow mode would have refused, first reason first.
#[derive(Debug, Default)]
pub(super) struct Would(Vec<String>);

impl Would {
    /// Notes a would-be refusal: `deny: <why>`.
    pub(super) fn push(&mut self, verdict: &str, reason: impl std::fmt::Display) {
        self.0.push(format!("{verdict}: {reason}"));
    }

    /// What an observation records: the first would-be refusal, or allow.
    pub(super) fn decision(&self) -> String {
        self.0.first().cloned().unwrap_or_else(|| "allow".into())
    }
}

/// Times the stages one after another into `remit_gateway_stage_seconds`.
pub(super) struct StageClock(Instant);

impl StageClock {
    /// Starts timing the next stage.
    pub(super) fn start() -> Self {
        Self(Instant::now())
    }

    /// Records the time since the last lap as `stage`'s.
    pub(super) fn lap(&mut self, stage: Stage) {
        let now = Instant::now();
        metrics::stage(stage, now.duration_since(self.0).as_secs_f64());
        self.0 = now;
    }
}

/// Runs one request through stages 2 to 9; `parsed` is the kind read from
/// the message (or why it could not be), `facts` what its receipts record.
pub(super) async fn run<S: Store, K: RequestKind>(
    cx: &Cx<'_, S>,
    mut facts: Facts,
    parsed: Result<K, Stop>,
    progress: Option<&ProgressSink>,
) -> Answer {
    let outcome = match parsed {
        Ok(kind) => drive(cx, &kind, &mut facts, progress).await,
        Err(stop) => Err(stop),
    };
    match outcome {
        Ok(answer) => answer,
        Err(stop) => stop.answer(cx, &facts).await,
    }
}

/// The stages in order. Every `?` is a stop [`run`] answers.
async fn drive<S: Store, K: RequestKind>(
    cx: &Cx<'_, S>,
    kind: &K,
    facts: &mut Facts,
    progress: Option<&ProgressSink>,
) -> Result<Answer, Stop> {
    let mut clock = StageClock::start();
    let mut would = Would::default();
    let granted = authority(cx, kind, &mut would)?;
    clock.lap(Stage::Authority);
    let pinned = kind.pin(cx).await?;
    clock.lap(Stage::Pin);
    let report = scan(cx, kind, &pinned, facts, &mut would)?;
    clock.lap(Stage::Scan);
    let (usage, payer) = budget::usage(cx).await?;
    let mut context = CallContext {
        report: report.as_ref(),
        description_hash: pinned.description_hash.clone(),
        content: kind.content(),
        ..CallContext::new(
            cx.caller,
            kind.args(),
            kind.tool_id(),
            granted,
            &usage,
            cx.config.risk_budget,
            cx.shadow,
        )
    };
    let decided = match kind.request_ask() {
        Some(ask) => {
            // A kind decided on its request has its payload scanned first;
            // one without is refused, never waved on.
            let report = report
                .as_ref()
                .ok_or_else(|| Stop::deny("gw-scan-failed", "the request had nothing scanned"))?;
            let d = decide::decide(
                cx,
                kind,
                facts,
                &mut context,
                ask,
                report,
                &pinned,
                &mut would,
            );
            Some(d.await?)
        }
        None => None,
    };
    clock.lap(Stage::Decide);
    if !cx.shadow {
        budget::consume(cx, &payer, pinned.risk).await?;
    }
    clock.lap(Stage::Budget);
    // A request decided before it goes out has its receipt queued now, so
    // the log's sync overlaps the upstream's work; the answer waits for it.
    let call_receipt = match &decided {
        Some(decision) => {
            let ledger = ledger_decision(decision, cx.shadow);
            let event = receipt_event(Some(cx.caller), Kind::Allow, facts, Some(ledger));
            match cx.state.submit(event) {
                Ok(pending) => Some(pending),
                Err(problem) => {
                    return Ok(release::unrecorded(
                        cx,
                        format!("the call was not forwarded because its receipt could not be recorded: {problem}"),
                    ))
                }
            }
        }
        None => None,
    };
    let forwarded = route(cx, kind, &pinned, progress).await;
    clock.lap(Stage::Route);
    let result = match forwarded {
        Ok(result) => result,
        Err(e) => {
            // The call's receipt says it was allowed and sent; the
            // refusal's receipt, after it, says what became of it.
            if let Some(pending) = call_receipt {
                let _ = pending.durable().await;
            }
            return Err(e.into());
        }
    };
    let released = release::release(cx, kind, facts, result, &context, &pinned, &mut would);
    let answer = released.await?;
    clock.lap(Stage::Release);
    release::record(cx, facts, answer, call_receipt).await
}

/// Stage 2: the remit must cover the request whole, its resource
/// included. In shadow mode a request it does not cover goes on, noted.
/// Returns whether it is granted.
fn authority<S: Store, K: RequestKind>(
    cx: &Cx<'_, S>,
    kind: &K,
    would: &mut Would,
) -> Result<bool, Stop> {
    match remit_token::authorize_call(&cx.caller.chain, &kind.call()) {
        Ok(_) => Ok(true),
        Err(e) if cx.shadow => {
            would.push(
                "deny",
                format_args!("the remit does not cover this {}: {e}", kind.noun()),
            );
            Ok(false)
        }
        Err(e) => Err(Stop::not_covered(kind.tool_id(), &e)),
    }
}

/// Stage 4: the request's payload scanned, its findings counted into
/// `facts`; data above the target's clearance is refused.
fn scan<S: Store, K: RequestKind>(
    cx: &Cx<'_, S>,
    kind: &K,
    pinned: &Pinned,
    facts: &mut Facts,
    would: &mut Would,
) -> Result<Option<ScanReport>, Stop> {
    let Some(payload) = kind.payload() else {
        return Ok(None);
    };
    let bytes = serde_json::to_vec(payload).unwrap_or_default();
    let report = cx.state.scanner().scan(&bytes).map_err(|e| {
        Stop::deny(
            "gw-scan-failed",
            format!("the arguments could not be scanned: {e}"),
        )
    })?;
    count_findings(&report, "", &mut facts.findings);
    facts.class = Some(report.classification);
    if let Some(clearance) = pinned.clearance {
        if report.classification > clearance {
            let reason = format!(
                "the arguments carry {} data ({}) and {} is cleared only for {clearance}",
                report.classification,
                finding_names(&report),
                kind.tool_id(),
            );
            if !cx.shadow {
                return Err(Stop::deny("gw-above-clearance", reason));
            }
            would.push("deny", reason);
        }
    }
    Ok(Some(report))
}

/// Stage 7: the request forwarded upstream; a tool call that asked for
/// progress has the upstream's notifications relayed, scanned, to its
/// sink while it runs.
async fn route<S: Store, K: RequestKind>(
    cx: &Cx<'_, S>,
    kind: &K,
    pinned: &Pinned,
    progress: Option<&ProgressSink>,
) -> Result<Value, crate::upstream::UpstreamError> {
    let (method, params) = kind.forwarded();
    let timeout = cx.config.upstream_timeout;
    if method == "tools/call" {
        let holder = cx.caller.chain.leaf_claims().class;
        return progress::forward(
            cx.state,
            holder,
            &pinned.upstream,
            params,
            timeout,
            progress,
        )
        .await;
    }
    pinned.upstream.call(method, params, timeout).await
}
