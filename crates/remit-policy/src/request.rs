//! The request every engine answers: principal, action, resource and the
//! per-call context, parsed and capped before any engine sees it.
//!
//! [`ContextInput`] holds the facts every action has; a few facts only some
//! actions have are added to the checked [`RequestContext`] with builder
//! methods, so code that builds a `ContextInput` field by field keeps
//! compiling as they grow:
//!
//! - [`RequestContext::with_pop`]: how the caller proved possession of the
//!   remit ([`ProofOfPossession`]: `dpop` or `bearer`); absent for actions
//!   without a caller proof, such as `issue`;
//! - [`RequestContext::with_granted`]: for `read_resource` and `get_prompt`,
//!   whether the remit's grants cover the resource URI or prompt name (the
//!   gateway matches the patterns; tools use `remit_tools` instead);
//! - [`RequestContext::with_holder_clearance`]: the highest class the remit
//!   holder may receive (the remit's `class` claim), the destination's
//!   clearance when data flows *to* the agent;
//! - [`RequestContext::with_resource_uri`] and
//!   [`RequestContext::with_prompt_name`]: what is read or fetched, for
//!   operators' overrides.
//!
//! In JSON (files, decision tables, AuthZEN) all of them are keys of the
//! same flat object as the [`ContextInput`] fields.
//!
//! Caps exist because the context comes from an agent's tool call: an agent
//! that could send a megabyte of arguments or ten thousand finding types
//! would turn the policy engine into its amplifier. Anything over a cap is a
//! [`RequestError::TooLarge`], which every engine answers with a deny.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::model::{Action, Classification, EntityKind, EntityRef, ModelError};

/// The most bytes tool arguments may take, serialized as JSON.
pub const MAX_ARGS_BYTES: usize = 16 * 1024;
/// The deepest nesting of arrays and objects in tool arguments.
pub const MAX_ARGS_DEPTH: usize = 8;
/// The most top-level argument names.
pub const MAX_ARG_NAMES: usize = 128;
/// The most members of any set in the context (finding types, amr, remit tools).
pub const MAX_SET_LEN: usize = 256;
/// The longest string in a context set or field, in bytes.
pub const MAX_STRING_BYTES: usize = 256;
/// The longest resource URI, in bytes.
pub const MAX_URI_BYTES: usize = 2048;

/// How the caller proved it holds the remit. Policies see it as the
/// context attribute `pop`, `"dpop"` or `"bearer"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProofOfPossession {
    /// A DPoP proof (RFC 9449) signed with the key the remit is bound to.
    Dpop,
    /// The remit was presented as a bearer token: whoever copied it can use it.
    Bearer,
}

impl ProofOfPossession {
    /// The value policies compare against.
    pub fn as_str(self) -> &'static str {
        match self {
            ProofOfPossession::Dpop => "dpop",
            ProofOfPossession::Bearer => "bearer",
        }
    }
}

/// The facts only some actions carry (see the module doc), as JSON keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ActionFacts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pop: Option<ProofOfPossession>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    granted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    holder_clearance: Option<Classification>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    resource_uri: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    prompt_name: Option<String>,
}

impl ActionFacts {
    /// The JSON keys these facts use, beside [`ContextInput`]'s.
    const KEYS: [&'static str; 5] = [
        "pop",
        "granted",
        "holder_clearance",
        "resource_uri",
        "prompt_name",
    ];
}

/// The context as it arrives (JSON from the gateway or a file): every field
/// named, unknown fields refused. Turn it into a [`RequestContext`] to use it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContextInput {
    /// The tool call's arguments (a JSON object), capped by size and depth.
    #[serde(default = "empty_object")]
    pub args: serde_json::Value,
    /// The payload's classification, from the scanner.
    pub data_class: Classification,
    /// Types of personal-data findings in the payload (`email`, `iban`, ...).
    #[serde(default)]
    pub pii: BTreeSet<String>,
    /// Types of secret findings in the payload (`aws_access_key`, ...).
    #[serde(default)]
    pub secrets: BTreeSet<String>,
    /// Delegation hops from the root remit (0 = root).
    pub chain_depth: u32,
    /// The user id at the root of the chain.
    pub original_user: String,
    /// Steps the remit has used before this call (this one excluded). Every
    /// preset denies when `steps_used >= steps_max`, so a remit of N steps
    /// allows the calls asked with 0..N-1. The result of a call
    /// (`read_result`) is asked with the same value as the call itself.
    pub steps_used: u32,
    /// Steps the remit allows (`u32::MAX` when the remit sets no limit).
    pub steps_max: u32,
    /// Risk points the agent has spent.
    pub risk_budget_used: u32,
    /// Risk points the agent may spend.
    pub risk_budget_max: u32,
    /// Hour of day, UTC, 0..=23 (the caller reads the clock, not this crate).
    pub hour_utc: u8,
    /// Authentication methods of the approving human (RFC 8176 `amr`).
    #[serde(default)]
    pub amr: BTreeSet<String>,
    /// A human approval bound to this call is attached (checked by the gateway).
    #[serde(default)]
    pub approved: bool,
    /// The gateway runs in shadow mode (decisions are recorded, not enforced).
    #[serde(default)]
    pub shadow: bool,
    /// The payload was redacted by the scanner before this decision.
    #[serde(default)]
    pub redacted: bool,
    /// Tool ids the remit lists.
    pub remit_tools: BTreeSet<String>,
    /// Model ids the remit lists.
    #[serde(default)]
    pub remit_models: BTreeSet<String>,
    /// Hash of the server's tool descriptions as seen at this call, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description_hash: Option<String>,
}

fn empty_object() -> serde_json::Value {
    serde_json::Value::Object(serde_json::Map::new())
}

/// A checked per-call context. It can only be built through
/// [`RequestContext::new`], so every value is within its caps.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestContext {
    // INVARIANT: `input.args` is a JSON object within every cap below.
    input: ContextInput,
    args_bytes: usize,
    // INVARIANT: strings within MAX_URI_BYTES / MAX_STRING_BYTES, no controls.
    facts: ActionFacts,
}

impl RequestContext {
    /// Checks caps and shapes.
    ///
    /// The arguments are walked once, without copying: the walk checks the
    /// depth, counts the bytes they take as compact JSON (what
    /// `serde_json::to_vec` would produce) and stops at the first cap
    /// exceeded, so an oversized payload costs no more than its cap.
    pub fn new(input: ContextInput) -> Result<Self, RequestError> {
        let serde_json::Value::Object(args) = &input.args else {
            return Err(RequestError::BadContext {
                message: "args must be a JSON object".into(),
            });
        };
        if args.len() > MAX_ARG_NAMES {
            return Err(RequestError::TooLarge {
                field: "args",
                limit: format!("{MAX_ARG_NAMES} names"),
            });
        }
        for name in args.keys() {
            check_string("args", name)?;
        }
        let args_bytes = ArgsWalk::default().object(args, 1)?;
        for (field, set) in [
            ("pii", &input.pii),
            ("secrets", &input.secrets),
            ("amr", &input.amr),
            ("remit_tools", &input.remit_tools),
            ("remit_models", &input.remit_models),
        ] {
            if set.len() > MAX_SET_LEN {
                return Err(RequestError::TooLarge {
                    field,
                    limit: format!("{MAX_SET_LEN} members"),
                });
            }
            for s in set {
                check_string(field, s)?;
            }
        }
        for id in input.remit_tools.iter().chain(&input.remit_models) {
            check_id(id)?;
        }
        check_id(&input.original_user)?;
        if let Some(h) = &input.description_hash {
            check_string("description_hash", h)?;
        }
        if input.hour_utc > 23 {
            return Err(RequestError::BadContext {
                message: format!("hour_utc {} is not in 0..=23", input.hour_utc),
            });
        }
        Ok(Self {
            input,
            args_bytes,
            facts: ActionFacts::default(),
        })
    }

    /// Parses and checks a JSON context: the [`ContextInput`] fields and
    /// the action facts (`pop`, `granted`, `holder_clearance`,
    /// `resource_uri`, `prompt_name`) in one object; unknown keys are refused.
    pub fn from_json(text: &str) -> Result<Self, RequestError> {
        if text.len() > MAX_ARGS_BYTES * 4 {
            return Err(RequestError::TooLarge {
                field: "context",
                limit: format!("{} bytes", MAX_ARGS_BYTES * 4),
            });
        }
        let value: serde_json::Map<String, serde_json::Value> = serde_json::from_str(text)
            .map_err(|e| RequestError::BadContext {
                message: e.to_string(),
            })?;
        Self::from_map(value)
    }

    /// Like [`RequestContext::from_json`], from a parsed JSON object.
    pub fn from_map(
        mut map: serde_json::Map<String, serde_json::Value>,
    ) -> Result<Self, RequestError> {
        let bad = |e: serde_json::Error| RequestError::BadContext {
            message: e.to_string(),
        };
        let mut facts = serde_json::Map::new();
        for key in ActionFacts::KEYS {
            if let Some(v) = map.remove(key) {
                facts.insert(key.to_owned(), v);
            }
        }
        let facts: ActionFacts =
            serde_json::from_value(serde_json::Value::Object(facts)).map_err(bad)?;
        let input: ContextInput =
            serde_json::from_value(serde_json::Value::Object(map)).map_err(bad)?;
        let mut ctx = Self::new(input)?
            .with_granted(facts.granted)
            .maybe(facts.pop, Self::with_pop)
            .maybe(facts.holder_clearance, Self::with_holder_clearance);
        if let Some(uri) = facts.resource_uri {
            ctx = ctx.with_resource_uri(uri)?;
        }
        if let Some(name) = facts.prompt_name {
            ctx = ctx.with_prompt_name(name)?;
        }
        Ok(ctx)
    }

    fn maybe<T>(self, value: Option<T>, set: fn(Self, T) -> Self) -> Self {
        match value {
            Some(v) => set(self, v),
            None => self,
        }
    }

    /// The context as one flat JSON object, the form [`RequestContext::from_map`] reads.
    pub fn to_map(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut map = match serde_json::to_value(&self.input) {
            Ok(serde_json::Value::Object(m)) => m,
            // INVARIANT: a struct of strings, numbers, sets and a JSON value
            // always serializes to an object.
            _ => serde_json::Map::new(),
        };
        if let Ok(serde_json::Value::Object(facts)) = serde_json::to_value(&self.facts) {
            map.extend(facts);
        }
        map
    }

    /// Records how the caller proved possession of the remit (context
    /// attribute `pop`). Leave it unset for actions without a caller proof.
    #[must_use]
    pub fn with_pop(mut self, pop: ProofOfPossession) -> Self {
        self.facts.pop = Some(pop);
        self
    }

    /// Records whether the remit grants the resource URI or prompt name of a
    /// `read_resource` / `get_prompt` call (context attribute `granted`,
    /// false unless set: an unmatched grant is a deny in every preset).
    #[must_use]
    pub fn with_granted(mut self, granted: bool) -> Self {
        self.facts.granted = granted;
        self
    }

    /// Records the highest class the remit holder may receive (the remit's
    /// `class` claim; context attribute `holder_clearance`, a level 0..=3).
    #[must_use]
    pub fn with_holder_clearance(mut self, clearance: Classification) -> Self {
        self.facts.holder_clearance = Some(clearance);
        self
    }

    /// Records the URI a `read_resource` call reads (context attribute
    /// `resource_uri`); at most [`MAX_URI_BYTES`], no control characters.
    pub fn with_resource_uri(mut self, uri: impl Into<String>) -> Result<Self, RequestError> {
        let uri = uri.into();
        check_text("resource_uri", &uri, MAX_URI_BYTES)?;
        self.facts.resource_uri = Some(uri);
        Ok(self)
    }

    /// Records the prompt name a `get_prompt` call fetches (context
    /// attribute `prompt_name`); at most [`MAX_STRING_BYTES`], no control
    /// characters. Its arguments go in `args`, like a tool's.
    pub fn with_prompt_name(mut self, name: impl Into<String>) -> Result<Self, RequestError> {
        let name = name.into();
        check_text("prompt_name", &name, MAX_STRING_BYTES)?;
        self.facts.prompt_name = Some(name);
        Ok(self)
    }

    /// How the caller proved possession, if the action has a caller proof.
    pub fn pop(&self) -> Option<ProofOfPossession> {
        self.facts.pop
    }

    /// Whether the remit grants the resource or prompt asked for.
    pub fn granted(&self) -> bool {
        self.facts.granted
    }

    /// The highest class the remit holder may receive, when known.
    pub fn holder_clearance(&self) -> Option<Classification> {
        self.facts.holder_clearance
    }

    /// The URI of a `read_resource` call, when set.
    pub fn resource_uri(&self) -> Option<&str> {
        self.facts.resource_uri.as_deref()
    }

    /// The prompt name of a `get_prompt` call, when set.
    pub fn prompt_name(&self) -> Option<&str> {
        self.facts.prompt_name.as_deref()
    }

    /// The checked values.
    pub fn input(&self) -> &ContextInput {
        &self.input
    }

    /// Gives the checked values back (for a caller that forwards the
    /// arguments after the decision without copying them).
    pub fn into_input(self) -> ContextInput {
        self.input
    }

    /// Top-level argument names, sorted, borrowed from the arguments.
    pub fn arg_names(&self) -> impl Iterator<Item = &str> + '_ {
        // INVARIANT: `new` refused anything but an object.
        self.input
            .args
            .as_object()
            .into_iter()
            .flat_map(|args| args.keys().map(String::as_str))
    }

    /// Size of the arguments serialized as compact JSON.
    pub fn args_bytes(&self) -> usize {
        self.args_bytes
    }
}

fn check_string(field: &'static str, s: &str) -> Result<(), RequestError> {
    if s.len() > MAX_STRING_BYTES {
        return Err(RequestError::TooLarge {
            field,
            limit: format!("{MAX_STRING_BYTES} bytes per string"),
        });
    }
    Ok(())
}

/// A non-empty string within `max` bytes, free of control characters.
fn check_text(field: &'static str, s: &str, max: usize) -> Result<(), RequestError> {
    if s.len() > max {
        return Err(RequestError::TooLarge {
            field,
            limit: format!("{max} bytes"),
        });
    }
    if s.is_empty() || s.chars().any(char::is_control) {
        return Err(RequestError::BadContext {
            message: format!("{field} must be non-empty and free of control characters"),
        });
    }
    Ok(())
}

fn check_id(id: &str) -> Result<(), RequestError> {
    crate::model::check_id(id).map_err(RequestError::from)
}

/// One pass over the tool arguments: depth and compact-JSON size together,
/// stopping at the first cap exceeded.
#[derive(Default)]
struct ArgsWalk {
    bytes: usize,
}

impl ArgsWalk {
    fn add(&mut self, n: usize) -> Result<(), RequestError> {
        self.bytes += n;
        if self.bytes > MAX_ARGS_BYTES {
            return Err(RequestError::TooLarge {
                field: "args",
                limit: format!("{MAX_ARGS_BYTES} bytes"),
            });
        }
        Ok(())
    }

    /// `level` is the nesting of the container being entered (args is 1).
    fn enter(level: usize) -> Result<(), RequestError> {
        if level > MAX_ARGS_DEPTH {
            return Err(RequestError::TooLarge {
                field: "args",
                limit: format!("depth {MAX_ARGS_DEPTH}"),
            });
        }
        Ok(())
    }

    fn object(
        mut self,
        map: &serde_json::Map<String, serde_json::Value>,
        level: usize,
    ) -> Result<usize, RequestError> {
        self.map(map, level)?;
        Ok(self.bytes)
    }

    fn map(
        &mut self,
        map: &serde_json::Map<String, serde_json::Value>,
        level: usize,
    ) -> Result<(), RequestError> {
        Self::enter(level)?;
        // `{` `}`, a `:` per member and a `,` between members.
        self.add(2 + map.len() + map.len().saturating_sub(1))?;
        for (k, v) in map {
            self.add(json_string_len(k))?;
            self.value(v, level)?;
        }
        Ok(())
    }

    fn value(&mut self, v: &serde_json::Value, level: usize) -> Result<(), RequestError> {
        match v {
            serde_json::Value::Null | serde_json::Value::Bool(true) => self.add(4),
            serde_json::Value::Bool(false) => self.add(5),
            serde_json::Value::Number(n) => self.add(number_len(n)),
            serde_json::Value::String(s) => self.add(json_string_len(s)),
            serde_json::Value::Array(a) => {
                Self::enter(level + 1)?;
                self.add(2 + a.len().saturating_sub(1))?;
                a.iter().try_for_each(|x| self.value(x, level + 1))
            }
            serde_json::Value::Object(o) => self.map(o, level + 1),
        }
    }
}

/// Bytes of a string as serde_json writes it: quotes, two-byte escapes for
/// `"` `\\` `\b` `\f` `\n` `\r` `\t`, six-byte `\u00XX` for other controls.
fn json_string_len(s: &str) -> usize {
    2 + s
        .bytes()
        .map(|b| match b {
            b'"' | b'\\' | 0x08 | 0x0c | b'\n' | b'\r' | b'\t' => 2,
            0..=0x1f => 6,
            _ => 1,
        })
        .sum::<usize>()
}

/// Bytes of a number as serde_json writes it (its `Display` uses the same
/// integer and shortest-float formatting as the serializer).
fn number_len(n: &serde_json::Number) -> usize {
    struct Count(usize);
    impl std::fmt::Write for Count {
        fn write_str(&mut self, s: &str) -> std::fmt::Result {
            self.0 += s.len();
            Ok(())
        }
    }
    let mut c = Count(0);
    // Writing to a counter cannot fail.
    let _ = std::fmt::Write::write_fmt(&mut c, format_args!("{n}"));
    c.0
}

/// One question for a policy engine. The principal and resource types are
/// checked against the action, so `User` calling a tool cannot be asked.
#[derive(Debug, Clone, PartialEq)]
pub struct DecisionRequest {
    principal: EntityRef,
    action: Action,
    resource: EntityRef,
    context: RequestContext,
}

impl DecisionRequest {
    /// Builds a request whose entity types fit the action.
    pub fn new(
        principal: EntityRef,
        action: Action,
        resource: EntityRef,
        context: RequestContext,
    ) -> Result<Self, RequestError> {
        if principal.kind() != action.principal_kind() {
            return Err(RequestError::WrongType {
                role: "principal",
                action,
                expected: action.principal_kind(),
                got: principal,
            });
        }
        if resource.kind() != action.resource_kind() {
            return Err(RequestError::WrongType {
                role: "resource",
                action,
                expected: action.resource_kind(),
                got: resource,
            });
        }
        Ok(Self {
            principal,
            action,
            resource,
            context,
        })
    }

    /// Who asks.
    pub fn principal(&self) -> &EntityRef {
        &self.principal
    }

    /// What they ask to do.
    pub fn action(&self) -> Action {
        self.action
    }

    /// On what.
    pub fn resource(&self) -> &EntityRef {
        &self.resource
    }

    /// The per-call facts.
    pub fn context(&self) -> &RequestContext {
        &self.context
    }
}

/// Why a request could not be put to an engine. On the decision path each of
/// these becomes a deny ([`crate::DenyCause::InvalidRequest`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// A context field is over its cap.
    #[error("context field {field} is too large (limit {limit})")]
    TooLarge {
        /// Which field.
        field: &'static str,
        /// The cap it exceeded.
        limit: String,
    },
    /// The context is malformed (missing field, wrong type, unknown field).
    #[error("context: {message}")]
    BadContext {
        /// The parser's message, naming the field.
        message: String,
    },
    /// The principal or resource type does not fit the action.
    #[error("{role} of {action} must be a {expected:?}, got {got}")]
    WrongType {
        /// `principal` or `resource`.
        role: &'static str,
        /// The action.
        action: Action,
        /// The type the schema requires.
        expected: EntityKind,
        /// What was given.
        got: EntityRef,
    },
    /// The principal or resource is not in the entity directory.
    #[error("unknown entity {entity}: it is not in the registry")]
    UnknownEntity {
        /// The missing entity.
        entity: EntityRef,
    },
    /// A name could not be parsed.
    #[error(transparent)]
    Model(#[from] ModelError),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn base() -> serde_json::Value {
        serde_json::json!({
            "data_class": "INTERNAL", "chain_depth": 0, "original_user": "alice",
            "steps_used": 0, "steps_max": 10, "risk_budget_used": 0, "risk_budget_max": 10,
            "hour_utc": 12, "remit_tools": ["github/create_issue"]
        })
    }

    #[test]
    fn oversized_args_are_refused() {
        let mut c = base();
        c["args"] = serde_json::json!({ "body": "x".repeat(MAX_ARGS_BYTES) });
        let err = RequestContext::from_json(&c.to_string()).unwrap_err();
        assert!(
            matches!(err, RequestError::TooLarge { field: "args", .. }),
            "{err}"
        );
    }

    #[test]
    fn args_bytes_is_the_compact_json_length() {
        let cases = [
            serde_json::json!({}),
            serde_json::json!({ "a": null, "b": true, "c": false, "d": [] , "e": {} }),
            serde_json::json!({ "n": [0, -1, 18446744073709551615u64, -9223372036854775808i64, 1.5, -0.0, 1e300, 2.5e-8] }),
            serde_json::json!({ "q\"uote": "back\\slash \u{8}\u{c}\n\r\t \u{1} \u{1f} \u{7f} é 😀", "nested": [[{ "x": [1, [2, {}]] }]] }),
            serde_json::json!({ "owner": "acme", "labels": ["bug", "payments"], "body": "a\tb" }),
        ];
        for args in cases {
            let mut c = base();
            c["args"] = args.clone();
            let ctx = RequestContext::from_json(&c.to_string()).unwrap();
            assert_eq!(
                ctx.args_bytes(),
                serde_json::to_vec(&args).unwrap().len(),
                "{args}"
            );
        }
    }

    #[test]
    fn args_exactly_at_the_byte_cap_pass_and_one_more_is_refused() {
        // {"p":"..."} is 8 bytes around the padding.
        let at_cap = serde_json::json!({ "p": "x".repeat(MAX_ARGS_BYTES - 8) });
        let mut c = base();
        c["args"] = at_cap;
        let ctx = RequestContext::from_json(&c.to_string()).unwrap();
        assert_eq!(ctx.args_bytes(), MAX_ARGS_BYTES);
        c["args"] = serde_json::json!({ "p": "x".repeat(MAX_ARGS_BYTES - 7) });
        let err = RequestContext::from_json(&c.to_string()).unwrap_err();
        assert!(
            matches!(err, RequestError::TooLarge { field: "args", .. }),
            "{err}"
        );
    }

    #[test]
    fn escapes_count_towards_the_byte_cap() {
        // Each newline is two bytes of JSON: half the cap in newlines is over it.
        let mut c = base();
        c["args"] = serde_json::json!({ "p": "\n".repeat(MAX_ARGS_BYTES / 2) });
        let err = RequestContext::from_json(&c.to_string()).unwrap_err();
        assert!(
            matches!(err, RequestError::TooLarge { field: "args", .. }),
            "{err}"
        );
    }

    #[test]
    fn nesting_at_the_depth_cap_passes() {
        let mut v = serde_json::json!(1);
        for _ in 1..MAX_ARGS_DEPTH {
            v = serde_json::json!([v]);
        }
        let mut c = base();
        c["args"] = serde_json::json!({ "a": v });
        let ctx = RequestContext::from_json(&c.to_string()).unwrap();
        assert_eq!(ctx.arg_names().collect::<Vec<_>>(), ["a"]);
    }

    #[test]
    fn args_that_are_not_an_object_are_refused() {
        let mut c = base();
        c["args"] = serde_json::json!(["a"]);
        let err = RequestContext::from_json(&c.to_string()).unwrap_err();
        assert!(matches!(err, RequestError::BadContext { .. }), "{err}");
    }

    #[test]
    fn too_many_argument_names_are_refused() {
        let names: serde_json::Map<String, serde_json::Value> = (0..=MAX_ARG_NAMES)
            .map(|i| (format!("a{i}"), serde_json::Value::Null))
            .collect();
        let mut c = base();
        c["args"] = serde_json::Value::Object(names);
        let err = RequestContext::from_json(&c.to_string()).unwrap_err();
        assert!(
            matches!(err, RequestError::TooLarge { field: "args", .. }),
            "{err}"
        );
    }

    #[test]
    fn overlong_argument_name_is_refused() {
        let mut c = base();
        c["args"] = serde_json::json!({ "k".repeat(MAX_STRING_BYTES + 1): 1 });
        let err = RequestContext::from_json(&c.to_string()).unwrap_err();
        assert!(
            matches!(err, RequestError::TooLarge { field: "args", .. }),
            "{err}"
        );
    }

    #[test]
    fn control_characters_in_a_remit_tool_id_are_refused() {
        let mut c = base();
        c["remit_tools"] = serde_json::json!(["github/search\u{0}"]);
        let err = RequestContext::from_json(&c.to_string()).unwrap_err();
        assert!(
            matches!(err, RequestError::Model(ModelError::BadId { .. })),
            "{err}"
        );
        let mut c = base();
        c["original_user"] = serde_json::json!("");
        assert!(RequestContext::from_json(&c.to_string()).is_err());
    }

    #[test]
    fn deeply_nested_args_are_refused() {
        let mut v = serde_json::json!(1);
        for _ in 0..=MAX_ARGS_DEPTH {
            v = serde_json::json!([v]);
        }
        let mut c = base();
        c["args"] = serde_json::json!({ "a": v });
        let err = RequestContext::from_json(&c.to_string()).unwrap_err();
        assert!(matches!(err, RequestError::TooLarge { .. }), "{err}");
    }

    #[test]
    fn flooded_finding_sets_are_refused() {
        let mut c = base();
        let many: Vec<String> = (0..=MAX_SET_LEN).map(|i| format!("t{i}")).collect();
        c["pii"] = serde_json::json!(many);
        let err = RequestContext::from_json(&c.to_string()).unwrap_err();
        assert!(
            matches!(err, RequestError::TooLarge { field: "pii", .. }),
            "{err}"
        );
    }

    #[test]
    fn missing_context_field_is_refused_with_its_name() {
        let mut c = base();
        c.as_object_mut().unwrap().remove("steps_max");
        let err = RequestContext::from_json(&c.to_string()).unwrap_err();
        assert!(err.to_string().contains("steps_max"), "{err}");
    }

    #[test]
    fn unknown_context_field_is_refused() {
        let mut c = base();
        c["is_admin"] = serde_json::json!(true);
        assert!(RequestContext::from_json(&c.to_string()).is_err());
    }

    #[test]
    fn action_facts_round_trip_and_refuse_bad_values() {
        let mut c = base();
        c["pop"] = serde_json::json!("bearer");
        c["granted"] = serde_json::json!(true);
        c["holder_clearance"] = serde_json::json!("CONFIDENTIAL");
        c["resource_uri"] = serde_json::json!("repo://acme/web/README.md");
        let ctx = RequestContext::from_json(&c.to_string()).unwrap();
        assert_eq!(ctx.pop(), Some(ProofOfPossession::Bearer));
        assert!(ctx.granted());
        assert_eq!(ctx.holder_clearance(), Some(Classification::Confidential));
        assert_eq!(ctx.resource_uri(), Some("repo://acme/web/README.md"));
        assert_eq!(ctx.prompt_name(), None);
        assert_eq!(RequestContext::from_map(ctx.to_map()).unwrap(), ctx);

        let err = ctx
            .clone()
            .with_resource_uri("x".repeat(MAX_URI_BYTES + 1))
            .unwrap_err();
        assert!(
            matches!(
                err,
                RequestError::TooLarge {
                    field: "resource_uri",
                    ..
                }
            ),
            "{err}"
        );
        assert!(ctx.clone().with_prompt_name("").is_err());
        assert!(ctx.clone().with_prompt_name("a\nb").is_err());
        c["pop"] = serde_json::json!("token");
        assert!(RequestContext::from_json(&c.to_string()).is_err());
    }

    #[test]
    fn facts_default_to_absent_and_not_granted() {
        let ctx = RequestContext::from_json(&base().to_string()).unwrap();
        assert_eq!(ctx.pop(), None);
        assert!(!ctx.granted());
        assert_eq!(ctx.holder_clearance(), None);
        assert!(!ctx.to_map().contains_key("granted"));
    }

    #[test]
    fn user_cannot_call_a_tool() {
        let ctx = RequestContext::from_json(&base().to_string()).unwrap();
        let err = DecisionRequest::new(
            r#"User::"alice""#.parse().unwrap(),
            Action::CallTool,
            r#"Tool::"t""#.parse().unwrap(),
            ctx,
        )
        .unwrap_err();
        assert!(matches!(
            err,
            RequestError::WrongType {
                role: "principal",
                ..
            }
        ));
    }
}
