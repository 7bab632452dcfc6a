//! Which attributes of the request context a Cedar policy reads.
//!
//! The engine builds each call's context with only the attributes its
//! policies name ([`Fields::read_by`], from a policy's JSON form), and
//! passes a remit's tool or model set reduced to the called resource when
//! the policies only ever ask whether the set holds it. This module knows
//! the schema's context attributes and nothing of the engine, so both the
//! engine (`cedar/mod.rs`) and the narrowing (`cedar/narrow.rs`) depend on
//! it and it on neither.

/// The attributes of the schema's `RequestContext`, as Remit fills them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Field {
    ArgNames,
    ArgsBytes,
    DataClass,
    Pii,
    Secrets,
    ChainDepth,
    OriginalUser,
    StepsUsed,
    StepsMax,
    RiskBudgetUsed,
    RiskBudgetMax,
    HourUtc,
    Amr,
    Approved,
    Shadow,
    Redacted,
    RemitTools,
    RemitModels,
    DescriptionHash,
    Pop,
    Granted,
    HolderClearance,
    ResourceUri,
    PromptName,
}

impl Field {
    const ALL: [Field; 24] = [
        Field::ArgNames,
        Field::ArgsBytes,
        Field::DataClass,
        Field::Pii,
        Field::Secrets,
        Field::ChainDepth,
        Field::OriginalUser,
        Field::StepsUsed,
        Field::StepsMax,
        Field::RiskBudgetUsed,
        Field::RiskBudgetMax,
        Field::HourUtc,
        Field::Amr,
        Field::Approved,
        Field::Shadow,
        Field::Redacted,
        Field::RemitTools,
        Field::RemitModels,
        Field::DescriptionHash,
        Field::Pop,
        Field::Granted,
        Field::HolderClearance,
        Field::ResourceUri,
        Field::PromptName,
    ];

    pub(super) fn name(self) -> &'static str {
        match self {
            Field::ArgNames => "arg_names",
            Field::ArgsBytes => "args_bytes",
            Field::DataClass => "data_class",
            Field::Pii => "pii",
            Field::Secrets => "secrets",
            Field::ChainDepth => "chain_depth",
            Field::OriginalUser => "original_user",
            Field::StepsUsed => "steps_used",
            Field::StepsMax => "steps_max",
            Field::RiskBudgetUsed => "risk_budget_used",
            Field::RiskBudgetMax => "risk_budget_max",
            Field::HourUtc => "hour_utc",
            Field::Amr => "amr",
            Field::Approved => "approved",
            Field::Shadow => "shadow",
            Field::Redacted => "redacted",
            Field::RemitTools => "remit_tools",
            Field::RemitModels => "remit_models",
            Field::DescriptionHash => "description_hash",
            Field::Pop => "pop",
            Field::Granted => "granted",
            Field::HolderClearance => "holder_clearance",
            Field::ResourceUri => "resource_uri",
            Field::PromptName => "prompt_name",
        }
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

/// A set of context attributes, and which of them are needed whole.
///
/// `read` is every attribute a policy names; `full` (a subset) is every
/// attribute used other than as `context.remit_tools.contains(resource)` or
/// `context.remit_models.contains(resource)`. An attribute that is read but
/// not needed in full is only ever asked whether it holds the request's
/// resource, so the context carries it reduced to `{resource}` or `{}`
/// (the set intersected with the resource): every such test answers the
/// same, and a remit of fifty tools costs the context one member, not fifty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Fields {
    read: u32,
    full: u32,
}

impl Fields {
    pub(super) const NONE: Fields = Fields { read: 0, full: 0 };
    pub(super) const ALL: Fields = Fields {
        read: (1 << Field::ALL.len()) - 1,
        full: (1 << Field::ALL.len()) - 1,
    };

    pub(super) fn union(self, other: Fields) -> Fields {
        Fields {
            read: self.read | other.read,
            full: self.full | other.full,
        }
    }

    pub(super) fn iter(self) -> impl Iterator<Item = Field> {
        Field::ALL
            .into_iter()
            .filter(move |f| self.read & f.bit() != 0)
    }

    pub(super) fn len(self) -> usize {
        self.read.count_ones() as usize
    }

    /// The attributes' names, in schema order (for tests).
    #[cfg(test)]
    pub(super) fn names(self) -> Vec<&'static str> {
        self.iter().map(Field::name).collect()
    }

    /// Whether `field` is needed whole (not only tested for the resource).
    pub(super) fn full(self, field: Field) -> bool {
        self.full & field.bit() != 0
    }

    /// The context attributes a policy reads, from its JSON form (EST):
    /// every `context.x` and `context has x` names `x`; `context` used any
    /// other way (compared, put in a set, ...) or an attribute this crate
    /// does not know means every attribute, so nothing a policy could see
    /// is ever left out. `context.remit_tools.contains(resource)` (and the
    /// same for `remit_models`) reads the set without needing it whole.
    pub(super) fn read_by(est: &serde_json::Value) -> Fields {
        let mut named = Fields::NONE;
        let mut whole = false;
        walk_est(est, &mut named, &mut whole);
        if whole {
            Fields::ALL
        } else {
            named
        }
    }
}

fn is_context_var(v: &serde_json::Value) -> bool {
    v.get("Var").and_then(serde_json::Value::as_str) == Some("context")
}

/// `context.remit_tools` or `context.remit_models` (exactly), as EST.
fn entity_set_attr(v: &serde_json::Value) -> Option<Field> {
    let map = v.as_object().filter(|m| m.len() == 1)?;
    let access = map.get(".")?.as_object().filter(|o| o.len() == 2)?;
    if !access.get("left").is_some_and(is_context_var) {
        return None;
    }
    match access.get("attr")?.as_str()? {
        "remit_tools" => Some(Field::RemitTools),
        "remit_models" => Some(Field::RemitModels),
        _ => None,
    }
}

/// `context.remit_tools.contains(resource)` (or `remit_models`), as EST:
/// the set's only use is asking whether it holds the request's resource.
fn resource_membership(key: &str, inner: &serde_json::Value) -> Option<Field> {
    if key != "contains" {
        return None;
    }
    let args = inner.as_object().filter(|o| o.len() == 2)?;
    let resource = args.get("right")?.get("Var")?.as_str()? == "resource";
    let right_alone = args.get("right")?.as_object()?.len() == 1;
    if !(resource && right_alone) {
        return None;
    }
    entity_set_attr(args.get("left")?)
}

fn walk_est(v: &serde_json::Value, named: &mut Fields, whole: &mut bool) {
    match v {
        serde_json::Value::Object(map) => {
            if is_context_var(v) && map.len() == 1 {
                // `context` not consumed by an attribute access below.
                *whole = true;
                return;
            }
            for (key, inner) in map {
                if map.len() == 1 {
                    if let Some(f) = resource_membership(key, inner) {
                        named.read |= f.bit();
                        continue;
                    }
                }
                let access = (key == "." || key == "has")
                    && inner.get("left").is_some_and(is_context_var)
                    && inner.as_object().is_some_and(|o| o.len() == 2);
                if access {
                    let attr = inner.get("attr").and_then(serde_json::Value::as_str);
                    match attr.and_then(|a| Field::ALL.into_iter().find(|f| f.name() == a)) {
                        Some(f) => {
                            named.read |= f.bit();
                            named.full |= f.bit();
                        }
                        None => *whole = true,
                    }
                } else {
                    walk_est(inner, named, whole);
                }
            }
        }
        serde_json::Value::Array(items) => {
            for item in items {
                walk_est(item, named, whole);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr as _;

    use super::*;

    fn reads(policy: &str) -> Fields {
        let p = cedar_policy::Policy::from_str(policy).unwrap();
        Fields::read_by(&p.to_json().unwrap())
    }

    #[test]
    fn attribute_reads_are_found_in_conditions() {
        let f = reads(
            r#"permit (principal, action, resource)
               when { context.steps_used < context.steps_max && context has description_hash }
               unless { context["approved"] };"#,
        );
        assert_eq!(
            f.names(),
            ["steps_used", "steps_max", "approved", "description_hash"]
        );
        assert_eq!(reads("permit (principal, action, resource);"), Fields::NONE);
    }

    #[test]
    fn context_used_whole_means_every_attribute() {
        for p in [
            r#"permit (principal, action, resource) when { context == {} };"#,
            r#"permit (principal, action, resource) when { [context].isEmpty() };"#,
            r#"permit (principal, action, resource) when { context.no_such_field };"#,
        ] {
            assert_eq!(reads(p), Fields::ALL, "{p}");
        }
    }

    #[test]
    fn a_remit_set_asked_only_for_the_resource_is_not_needed_whole() {
        let f = reads(
            r#"forbid (principal, action, resource)
               unless { context.remit_tools.contains(resource) };"#,
        );
        assert_eq!(f.names(), ["remit_tools"]);
        assert!(!f.full(Field::RemitTools));
        let f = reads(
            r#"forbid (principal, action, resource)
               unless { context.remit_models.contains(resource) };"#,
        );
        assert!(!f.full(Field::RemitModels));
        for p in [
            r#"permit (principal, action, resource) when { context.remit_tools.contains(Tool::"x") };"#,
            r#"permit (principal, action, resource) when { context.remit_tools.containsAll([resource]) };"#,
            r#"permit (principal, action, resource) when { context.remit_tools == [resource] };"#,
            r#"permit (principal, action, resource) when { context.remit_tools.isEmpty() };"#,
            r#"permit (principal, action, resource) when { context.remit_tools.contains(principal) };"#,
            r#"permit (principal, action, resource)
               when { context.remit_tools.contains(resource) && context.remit_tools.isEmpty() };"#,
        ] {
            let f = reads(p);
            assert!(f.names().contains(&"remit_tools"), "{p}");
            assert!(f.full(Field::RemitTools), "{p}");
        }
        // Asked about in any other way, the set is needed whole even if
        // another policy only asks about the resource.
        let only = reads(
            r#"forbid (principal, action, resource)
               unless { context.remit_tools.contains(resource) };"#,
        );
        let whole = reads(
            r#"permit (principal, action, resource) when { context.remit_tools.isEmpty() };"#,
        );
        assert!(only.union(whole).full(Field::RemitTools));
    }
}
