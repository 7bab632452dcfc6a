//! # remit-policy: every Remit decision, with its reasons
//!
//! Every decision Remit makes (issuing a remit, delegating it, letting an
//! agent call a tool, read a result, send a prompt, read an MCP resource or
//! fetch an MCP prompt) is asked here, and
//! every answer carries the policies that determined it into the receipt.
//! This crate is pure: no I/O, no clock, no threads. Callers read files and
//! clocks and pass texts and values in.
//!
//! ## The model
//!
//! A [`DecisionRequest`] names a principal (`User` or `Agent`), an
//! [`Action`] (`issue`, `delegate`, `call_tool`, `read_result`,
//! `send_prompt`, `read_resource`, `get_prompt`), a resource (`Agent`,
//! `Tool`, `Model`, or the `Server` for MCP resources and prompts) and a
//! [`RequestContext`]: the tool (or prompt) arguments (summarized as names
//! and size, capped), the payload's classification and findings from the
//! scanner (for `read_resource` and `get_prompt`: of the returned content),
//! the chain depth, the original user, steps used before this call and the
//! remit's maximum, the risk budget used, the hour, the approver's `amr`,
//! whether a human approval is attached, shadow mode, redaction, the tools
//! and models the remit lists, and the server's tool description hash. Some
//! facts only some actions carry are set with builder methods
//! ([`RequestContext::with_pop`] and friends): how the caller proved
//! possession of its remit ([`ProofOfPossession`], `dpop` or `bearer`;
//! lockdown refuses bearer), whether the remit grants the resource URI or
//! prompt name, the holder's clearance (the remit's class), and the URI or
//! prompt name itself. Entities (agents, servers, tools, models) come from a
//! [`Directory`] that each engine caches in its own form, so only the
//! context is built per call. The Cedar schema is [`cedar::SCHEMA`].
//!
//! A [`PolicyEngine`] answers with a [`Decision`]: **allow**, **deny** or
//! **escalate** (hold for a human), always with reasons: the determining
//! policies' `@id`, `@reason` and `@escalate` annotations, or the
//! evaluation errors, or why the request was invalid. Two engines implement
//! the trait over the same request type: [`CedarEngine`] (the default) and
//! [`RegoEngine`] (through `regorus`, for teams on OPA). Engines only report
//! what matched; [`decision`] combines it, so both follow one semantics.
//!
//! ## Escalation semantics
//!
//! Escalation is policy, not code: a `permit` annotated
//! `@escalate("why")` means "allowed once a human approves". Exactly:
//!
//! 1. an evaluation error anywhere → deny (never allow);
//! 2. a matching `forbid` → deny; it wins over everything, approvals included;
//! 3. no matching `permit` → deny;
//! 4. plain and escalating permits both match → [`EscalationMode`] decides:
//!    `plain-permit-wins` (standard, permissive) allows, so an operator can
//!    whitelist a call; `escalate-wins` (lockdown) escalates, so no override
//!    can skip an approval the preset requires;
//! 5. only escalating permits match → escalate.
//!
//! Presets write their escalating permits as `... && !context.approved`,
//! with a plain permit for the approved case, so an attached approval turns
//! an escalation into an allow (lockdown also demands a second factor).
//!
//! ## Presets
//!
//! [`Preset::Lockdown`], [`Preset::Standard`] (the default) and
//! [`Preset::Permissive`], shipped in Cedar and in Rego with the same ids
//! and reasons; each file opens with a header an operator reads in two
//! minutes. For MCP resources and prompts: lockdown reads only granted
//! content from blessed servers, never above the holder's clearance (unknown
//! clearance is refused) and never with a secret in it; standard allows
//! granted content from blessed servers, keeps RESTRICTED content from a
//! holder cleared below RESTRICTED and refuses content carrying a secret;
//! permissive allows granted content and refuses only secrets. Every preset
//! denies a call once `steps_used >= steps_max`. Operators tune a preset with override files validated together
//! with it against the schema (duplicate ids, `@escalate` on a forbid,
//! missing `@id`/`@reason` and type errors are refused at load). A policy
//! set's [`PolicyVersion`], as recorded in remits and receipts, is a hash
//! of the policy folder's files anyone recomputes with `sha256sum` (see
//! [`version`]).
//!
//! ## Threat model
//!
//! The agent is the adversary: it controls tool arguments and tries to
//! reach tools, data flows or approvals its remit does not give it. Every
//! refusal is a deny with its [`DenyCause`], never an error that a caller
//! could mistake for "no answer".
//!
//! | attack | refused by |
//! |---|---|
//! | oversized, deeply nested or flooded arguments and finding lists (to slow or crash the engine) | [`RequestContext`] is typed and capped before any engine sees it: `InvalidRequest`, never truncated |
//! | a missing, unknown or mistyped context field | the context is parsed into its type ([`RequestError`]): `InvalidRequest` naming the field |
//! | an unregistered agent, tool or model (so a policy sees "no attributes") | [`engine::check_known`] denies before evaluation |
//! | claiming attributes in the request (AuthZEN `properties`) | entity attributes come only from the operator's [`Directory`]; `properties` are ignored |
//! | entity ids that smuggle policy syntax (`Tool::"a" \|\| true`, quotes, control characters) | [`EntityRef`] is parsed, quotes and control characters refused |
//! | provoking an evaluation error (dangling reference, overflow) hoping it falls open | any error is a deny: `EvaluationError` |
//! | outvoting a `forbid` with many permits, or with an approval | a matching forbid denies whatever else matches: `Forbidden` |
//! | an override permit that skips an approval the preset requires | [`EscalationMode::EscalateWins`] (lockdown): an escalating permit escalates even beside a plain one |
//! | an override that reuses a preset id, puts `@escalate` on a forbid, or lacks `@id`/`@reason` | refused at load with the schema ([`LoadError`]); nothing decides with a set that failed to load |
//! | a context attribute a policy reads being left out of the slimmed per-call context | the attributes read are found conservatively (`context` used whole means all of them); `tests/narrowing.rs` checks every decision table with and without narrowing |
//! | a cached per-pair narrowing outliving a registry change | the cache is dropped with the directory it was computed from |
//!
//! Out of scope here: whether the approval flag and the finding lists are
//! true (the gateway and scanner vouch for them), and shadow mode, which
//! the gateway enforces by not enforcing.
//!
//! The decision is also exposed in the shape of the AuthZEN Authorization
//! API 1.0 ([`authzen`]), and decision tables written as data run against
//! any engine ([`table`]).

pub mod authzen;
pub mod cedar;
pub mod decision;
pub mod engine;
pub mod model;
pub mod preset;
pub mod rego;
pub mod request;
mod shipped;
pub mod table;
pub mod version;

pub use cedar::CedarEngine;
pub use decision::{
    Decision, DenyCause, Determining, Effect, EscalationMode, Evaluation, EvaluationError,
    MatchedPolicy, Outcome, Verdict,
};
pub use engine::{EngineKind, LoadError, PolicyEngine, PolicySource};
pub use model::{Action, Classification, Directory, EntityKind, EntityRef, ModelError, Risk};
pub use preset::{Manifest, Preset};
pub use rego::RegoEngine;
pub use request::{ContextInput, DecisionRequest, ProofOfPossession, RequestContext, RequestError};
pub use version::{PolicyVersion, VersionError};
