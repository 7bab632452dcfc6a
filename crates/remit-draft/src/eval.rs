//! Evaluating a draft with Cedar: the draft schema and the per-call facts.
//!
//! The draft reads two context attributes the base schema does not have
//! yet: `args_text` and `args_number`, entities whose *tags* are the
//! projected argument facts ([`crate::facts`]). [`schema_text`] is the base
//! schema of `remit-policy` with those two optional attributes and their
//! entity types added; every drafted rule is validated against it in strict
//! mode, so a draft that does not type-check is never written.

use std::str::FromStr as _;
use std::sync::Arc;

use cedar_policy::{
    Authorizer, Context, Decision, Entities, Entity, EntityId, EntityTypeName, EntityUid,
    PolicySet, Request, RestrictedExpression, Schema, ValidationMode, Validator,
};

use crate::observation::Call;
use crate::DraftError;

/// The entity types the extension adds.
pub const SCHEMA_EXTENSION: &str =
    "\n// Draft extension: projected tool-argument facts (remit-draft).\n\
entity ArgText tags String;\n\
entity ArgNumber tags __cedar::decimal;\n";

/// The attributes the extension adds to `RequestContext`.
const CONTEXT_EXTENSION: &str = "  args_text?: ArgText,\n  args_number?: ArgNumber,\n";

const ANCHOR: &str = "type RequestContext = {\n";

/// The base schema with the draft extension.
pub fn schema_text() -> Result<String, DraftError> {
    let base = remit_policy::cedar::SCHEMA;
    let at = base.find(ANCHOR).ok_or(DraftError::Schema {
        message: "the base schema has no `type RequestContext = {` to extend".into(),
    })? + ANCHOR.len();
    Ok(format!(
        "{}{}{}{}",
        &base[..at],
        CONTEXT_EXTENSION,
        &base[at..],
        SCHEMA_EXTENSION
    ))
}

/// The extended schema, parsed.
pub fn schema() -> Result<Schema, DraftError> {
    let text = schema_text()?;
    Schema::from_cedarschema_str(&text)
        .map(|(s, _)| s)
        .map_err(|e| DraftError::Schema {
            message: e.to_string(),
        })
}

/// A draft compiled for evaluation: parsed and validated.
#[derive(Debug, Clone)]
pub struct DraftPolicy {
    set: Arc<PolicySet>,
    authorizer: Arc<Authorizer>,
}

impl DraftPolicy {
    /// Parses a draft's Cedar text and validates it (strict mode) against
    /// the extended schema.
    pub fn compile(text: &str) -> Result<Self, DraftError> {
        let set = PolicySet::from_str(text).map_err(|e| DraftError::Policy {
            message: format!("{e:?}"),
        })?;
        let schema = schema()?;
        let result = Validator::new(schema).validate(&set, ValidationMode::Strict);
        if !result.validation_passed() {
            let message = result
                .validation_errors()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("; ");
            return Err(DraftError::Policy { message });
        }
        Ok(Self {
            set: Arc::new(set),
            authorizer: Arc::new(Authorizer::new()),
        })
    }

    /// The policy set.
    pub fn policies(&self) -> &PolicySet {
        &self.set
    }

    /// The ids of the rules that permit the call; empty when none does (or
    /// when evaluation fails: fail closed).
    pub fn matching(&self, call: &Call) -> Vec<String> {
        let Ok((request, entities)) = request(call) else {
            return Vec::new();
        };
        let response = self
            .authorizer
            .is_authorized(&request, &self.set, &entities);
        if response.decision() != Decision::Allow {
            return Vec::new();
        }
        response
            .diagnostics()
            .reason()
            .map(|id| id.to_string())
            .collect()
    }

    /// Whether some rule permits the call.
    pub fn allows(&self, call: &Call) -> bool {
        !self.matching(call).is_empty()
    }
}

fn uid(kind: &str, id: &str) -> Result<EntityUid, DraftError> {
    let t = EntityTypeName::from_str(kind).map_err(|e| DraftError::Schema {
        message: e.to_string(),
    })?;
    Ok(EntityUid::from_type_name_and_id(t, EntityId::new(id)))
}

/// The Cedar request and entities for one call.
pub fn request(call: &Call) -> Result<(Request, Entities), DraftError> {
    let text_uid = uid("ArgText", "call")?;
    let number_uid = uid("ArgNumber", "call")?;
    let bad = |e: String| DraftError::Policy { message: e };
    let text = Entity::new_with_tags(
        text_uid.clone(),
        [],
        [],
        call.args
            .text
            .iter()
            .map(|(k, v)| (k.clone(), RestrictedExpression::new_string(v.clone()))),
    )
    .map_err(|e| bad(e.to_string()))?;
    let number = Entity::new_with_tags(
        number_uid.clone(),
        [],
        [],
        call.args
            .number
            .iter()
            .map(|(k, v)| (k.clone(), RestrictedExpression::new_decimal(v.to_string()))),
    )
    .map_err(|e| bad(e.to_string()))?;
    let entities = Entities::from_entities([text, number], None).map_err(|e| bad(e.to_string()))?;
    let strings = |set: &std::collections::BTreeSet<String>| {
        RestrictedExpression::new_set(set.iter().cloned().map(RestrictedExpression::new_string))
    };
    let context = Context::from_pairs([
        ("arg_names".to_owned(), strings(&call.args.names)),
        (
            "data_class".to_owned(),
            RestrictedExpression::new_long(call.data_class.level()),
        ),
        ("pii".to_owned(), strings(&call.pii)),
        ("secrets".to_owned(), strings(&call.secrets)),
        (
            "chain_depth".to_owned(),
            RestrictedExpression::new_long(i64::from(call.chain_depth)),
        ),
        (
            "hour_utc".to_owned(),
            RestrictedExpression::new_long(i64::from(call.hour_utc)),
        ),
        (
            "args_text".to_owned(),
            RestrictedExpression::new_entity_uid(text_uid),
        ),
        (
            "args_number".to_owned(),
            RestrictedExpression::new_entity_uid(number_uid),
        ),
    ])
    .map_err(|e| bad(e.to_string()))?;
    let request = Request::new(
        uid("Agent", &call.agent)?,
        uid("Action", "call_tool")?,
        uid("Tool", &call.tool)?,
        context,
        None,
    )
    .map_err(|e| bad(e.to_string()))?;
    Ok((request, entities))
}
