//! Argument constraints: what a granted tool may be called *with*.
//!
//! Each constraint restricts one named JSON argument. A delegation may only
//! replace a constraint by one that admits a subset of its values; when that
//! cannot be decided (two different regular expressions, say) the answer is
//! "not narrower", so attenuation fails closed.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::canonical::{canonicalize, kind_of, CanonError, Canonical, Kind};
use crate::pattern::Pattern;

/// Longest regular expression accepted, in bytes.
pub const MAX_REGEX_LEN: usize = 1024;
/// Compiled-size limit for a regular expression, in bytes.
const REGEX_SIZE_LIMIT: usize = 1 << 16;

/// A JSON scalar (string, number or boolean) an argument may be compared to.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "Value", into = "Value")]
pub struct Scalar(Value);

impl TryFrom<Value> for Scalar {
    type Error = String;

    fn try_from(value: Value) -> Result<Self, String> {
        match value {
            Value::String(_) | Value::Number(_) | Value::Bool(_) => Ok(Scalar(value)),
            _ => Err("constraint values must be strings, numbers or booleans".into()),
        }
    }
}

impl From<Scalar> for Value {
    fn from(scalar: Scalar) -> Value {
        scalar.0
    }
}

impl PartialEq for Scalar {
    fn eq(&self, other: &Scalar) -> bool {
        scalar_eq(&self.0, &other.0)
    }
}

impl Scalar {
    /// The scalar as JSON.
    pub fn as_value(&self) -> &Value {
        &self.0
    }
}

/// Equality of JSON scalars, with numbers compared by value (`1 == 1.0`).
fn scalar_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        _ => false,
    }
}

/// An inclusive numeric range; at least one bound is present and `min <= max`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RangeRepr")]
pub struct Range {
    /// Smallest value admitted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min: Option<f64>,
    /// Largest value admitted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RangeRepr {
    #[serde(default)]
    min: Option<f64>,
    #[serde(default)]
    max: Option<f64>,
}

impl TryFrom<RangeRepr> for Range {
    type Error = String;

    fn try_from(repr: RangeRepr) -> Result<Self, String> {
        match (repr.min, repr.max) {
            (None, None) => Err("a range needs min, max or both".into()),
            (Some(a), Some(b)) if a > b => Err("a range needs min <= max".into()),
            (min, max) => Ok(Range { min, max }),
        }
    }
}

impl Range {
    fn admits(&self, x: f64) -> bool {
        self.min.is_none_or(|m| x >= m) && self.max.is_none_or(|m| x <= m)
    }

    fn within(&self, parent: &Range) -> bool {
        let lower = match (self.min, parent.min) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(c), Some(p)) => c >= p,
        };
        let upper = match (self.max, parent.max) {
            (_, None) => true,
            (None, Some(_)) => false,
            (Some(c), Some(p)) => c <= p,
        };
        lower && upper
    }
}

/// A regular expression that must match the whole argument string.
///
/// Parsing only bounds its length; it is compiled on first use, which for a
/// remit is after the link's signature verified, so an unauthenticated token
/// cannot make the verifier compile expressions. An expression that does
/// not compile admits nothing, and [`Constraint::check`] reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RegexPattern {
    source: String,
    compiled: Arc<OnceLock<Option<regex::Regex>>>,
}

impl TryFrom<String> for RegexPattern {
    type Error = String;

    fn try_from(source: String) -> Result<Self, String> {
        if source.len() > MAX_REGEX_LEN {
            return Err(format!("a regex must be at most {MAX_REGEX_LEN} bytes"));
        }
        Ok(RegexPattern {
            source,
            compiled: Arc::new(OnceLock::new()),
        })
    }
}

impl From<RegexPattern> for String {
    fn from(regex: RegexPattern) -> String {
        regex.source
    }
}

impl PartialEq for RegexPattern {
    fn eq(&self, other: &RegexPattern) -> bool {
        self.source == other.source
    }
}

impl RegexPattern {
    /// The expression as written (it is matched anchored at both ends).
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// The compiled, anchored expression; `None` if it does not compile.
    fn compiled(&self) -> Option<&regex::Regex> {
        self.compiled
            .get_or_init(|| {
                regex::RegexBuilder::new(&format!("^(?:{})$", self.source))
                    .size_limit(REGEX_SIZE_LIMIT)
                    .build()
                    .ok()
            })
            .as_ref()
    }
}

/// The text a `prefix` constraint admits values under, canonical at parse.
///
/// A path or URI prefix admits at a segment boundary only (`/data/reports`
/// and `/data/reports/` both admit `/data/reports/x`, neither admits
/// `/data/reports-secret`); a text prefix (no `/`, no scheme) is a plain
/// text prefix of the canonical value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Prefix {
    text: String,
    canon: Canonical,
}

impl TryFrom<String> for Prefix {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let canon = canonicalize(&text)
            .map_err(|e| format!("a prefix must be in canonical form: {text:?} {e}"))?;
        Ok(Prefix { text, canon })
    }
}

impl From<Prefix> for String {
    fn from(prefix: Prefix) -> String {
        prefix.text
    }
}

impl Prefix {
    /// The prefix as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The prefix in canonical form.
    pub fn canonical(&self) -> &Canonical {
        &self.canon
    }

    /// Whether every value `inner` admits is admitted by `self`.
    fn contains(&self, inner: &Prefix) -> bool {
        match self.canon.kind() {
            Kind::Text => inner.canon.as_str().starts_with(self.canon.as_str()),
            _ => inner.canon.kind() != Kind::Text && inner.canon.starts_under(&self.canon),
        }
    }

    /// The globs that together match exactly what this prefix admits.
    fn as_globs(&self) -> Vec<String> {
        let c = self.canon.as_str();
        match self.canon.kind() {
            Kind::Text => vec![format!("{c}**")],
            Kind::Path => vec![c.to_owned(), format!("{c}/**")],
            Kind::Uri => ["", "/**", "?**", "#**"]
                .iter()
                .map(|tail| format!("{c}{tail}"))
                .collect(),
        }
    }
}

/// Why a value is not admitted by a constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The value is comparable and falls outside the constraint.
    Outside,
    /// The value is a path or URI with no canonical form (or a text value
    /// with a control character or only dots), so it is not compared.
    NotCanonical(CanonError),
}

/// One restriction on one named argument.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Constraint {
    /// The argument equals this value.
    Exact(Scalar),
    /// The argument equals one of these values (non-empty).
    #[serde(deserialize_with = "non_empty")]
    OneOf(Vec<Scalar>),
    /// The argument is a string matched by this glob.
    Glob(Pattern),
    /// The argument is a string under this prefix (see [`Prefix`]).
    Prefix(Prefix),
    /// The argument is a number within this range.
    Range(Range),
    /// The argument is a string of at most this many characters.
    MaxLength(u64),
    /// The argument is a string the expression matches in full.
    Regex(RegexPattern),
}

fn non_empty<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<Scalar>, D::Error> {
    let values = Vec::<Scalar>::deserialize(d)?;
    if values.is_empty() {
        return Err(serde::de::Error::custom("one_of needs at least one value"));
    }
    Ok(values)
}

impl Constraint {
    /// A short name for the kind of constraint, used in error messages.
    pub fn kind(&self) -> &'static str {
        match self {
            Constraint::Exact(_) => "exact",
            Constraint::OneOf(_) => "one_of",
            Constraint::Glob(_) => "glob",
            Constraint::Prefix(_) => "prefix",
            Constraint::Range(_) => "range",
            Constraint::MaxLength(_) => "max_length",
            Constraint::Regex(_) => "regex",
        }
    }

    /// Checks what parsing defers: that a regex compiles within its limits.
    pub fn check(&self) -> Result<(), String> {
        match self {
            Constraint::Regex(r) if r.compiled().is_none() => Err(format!(
                "regex {:?} does not compile within {REGEX_SIZE_LIMIT} bytes",
                r.source
            )),
            _ => Ok(()),
        }
    }

    /// Whether an argument value satisfies this constraint.
    pub fn admits(&self, value: &Value) -> bool {
        self.judge(value).is_ok()
    }

    /// Whether an argument value satisfies this constraint, and if not why.
    ///
    /// `glob` and `prefix` compare the value's canonical form and refuse a
    /// value without one. `regex` matches the raw text, but a value that is
    /// a path or URI must still canonicalize cleanly, so `/data/.*` cannot
    /// admit `/data/../hr`. `exact` and `one_of` compare raw values (a
    /// spelling other than the one granted is refused anyway).
    pub fn judge(&self, value: &Value) -> Result<(), Refusal> {
        let admitted = match self {
            Constraint::Exact(v) => scalar_eq(&v.0, value),
            Constraint::OneOf(vs) => vs.iter().any(|v| scalar_eq(&v.0, value)),
            Constraint::Glob(g) => match value.as_str() {
                Some(s) => g.admits(s).map_err(Refusal::NotCanonical)?,
                None => false,
            },
            Constraint::Prefix(p) => match value.as_str() {
                Some(s) => canonicalize(s)
                    .map_err(Refusal::NotCanonical)?
                    .starts_under(&p.canon),
                None => false,
            },
            Constraint::Range(r) => value.as_f64().is_some_and(|x| r.admits(x)),
            Constraint::MaxLength(n) => value
                .as_str()
                .is_some_and(|s| (s.chars().count() as u64) <= *n),
            Constraint::Regex(r) => match value.as_str() {
                Some(s) => {
                    if kind_of(s) != Kind::Text {
                        canonicalize(s).map_err(Refusal::NotCanonical)?;
                    }
                    r.compiled().is_some_and(|re| re.is_match(s))
                }
                None => false,
            },
        };
        if admitted {
            Ok(())
        } else {
            Err(Refusal::Outside)
        }
    }

    /// Whether every value `self` admits is also admitted by `parent`.
    ///
    /// Decided exactly where it can be; otherwise `false` (fail closed).
    pub fn is_within(&self, parent: &Constraint) -> bool {
        use Constraint as C;
        match (self, parent) {
            (C::Exact(v), _) => parent.admits(&v.0),
            (C::OneOf(vs), _) => vs.iter().all(|v| parent.admits(&v.0)),
            (C::Prefix(q), C::Prefix(p)) => p.contains(q),
            (C::Prefix(q), C::Glob(g)) => q
                .as_globs()
                .into_iter()
                .all(|text| Pattern::try_from(text).is_ok_and(|as_glob| g.covers(&as_glob))),
            (C::Glob(h), C::Glob(g)) => g.covers(h),
            (C::Glob(h), C::Prefix(p)) => {
                let (literal, whole) = h.literal_prefix();
                p.canon.bounds(literal, whole)
            }
            (C::Range(a), C::Range(b)) => a.within(b),
            (C::MaxLength(m), C::MaxLength(n)) => m <= n,
            (C::Regex(r), C::Regex(s)) => r == s,
            _ => false,
        }
    }
}

/// Constraints keyed by argument name. Duplicate names are refused when
/// parsing (a JSON map would otherwise silently keep the last one).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(transparent)]
pub struct ArgConstraints(BTreeMap<String, Constraint>);

impl ArgConstraints {
    /// No constraints.
    pub fn new() -> Self {
        ArgConstraints::default()
    }

    /// Adds a constraint on `arg`, replacing any earlier one.
    pub fn insert(&mut self, arg: impl Into<String>, constraint: Constraint) {
        self.0.insert(arg.into(), constraint);
    }

    /// The constraint on `arg`, if any.
    pub fn get(&self, arg: &str) -> Option<&Constraint> {
        self.0.get(arg)
    }

    /// Whether no argument is constrained.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The constraints in argument-name order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Constraint)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v))
    }
}

impl<'de> Deserialize<'de> for ArgConstraints {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = ArgConstraints;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a map from argument names to constraints")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<ArgConstraints, A::Error> {
                let mut out = BTreeMap::new();
                while let Some(key) = map.next_key::<String>()? {
                    if out.contains_key(&key) {
                        return Err(serde::de::Error::custom(format!(
                            "duplicate argument constraint {key:?}"
                        )));
                    }
                    let value = map.next_value::<Constraint>()?;
                    out.insert(key, value);
                }
                Ok(ArgConstraints(out))
            }
        }
        d.deserialize_map(Visitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn c(v: Value) -> Constraint {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn refuses_constraint_with_two_kinds() {
        assert!(serde_json::from_str::<Constraint>(r#"{"exact":1,"prefix":"a"}"#).is_err());
    }

    #[test]
    fn refuses_unknown_constraint_kind() {
        assert!(serde_json::from_str::<Constraint>(r#"{"not_regex":"a"}"#).is_err());
    }

    #[test]
    fn refuses_duplicate_argument_names() {
        let text = r#"{"path":{"prefix":"/tmp/"},"path":{"prefix":"/"}}"#;
        let err = serde_json::from_str::<ArgConstraints>(text).unwrap_err();
        assert!(err.to_string().contains("duplicate"), "{err}");
    }

    #[test]
    fn refuses_empty_one_of_inverted_range_and_bad_regex() {
        assert!(serde_json::from_str::<Constraint>(r#"{"one_of":[]}"#).is_err());
        assert!(serde_json::from_str::<Constraint>(r#"{"range":{"min":3,"max":1}}"#).is_err());
        assert!(serde_json::from_str::<Constraint>(r#"{"range":{}}"#).is_err());
        let bad: Constraint = serde_json::from_str(r#"{"regex":"("}"#).unwrap();
        assert!(bad.check().is_err());
        assert!(!bad.admits(&json!("(")));
        let long = format!(r#"{{"regex":"{}"}}"#, "a".repeat(MAX_REGEX_LEN + 1));
        assert!(serde_json::from_str::<Constraint>(&long).is_err());
        assert!(serde_json::from_str::<Constraint>(r#"{"exact":{"a":1}}"#).is_err());
    }

    #[test]
    fn regex_is_anchored() {
        let r = c(json!({"regex": "[a-z]+"}));
        assert!(r.admits(&json!("abc")));
        assert!(!r.admits(&json!("abc; rm -rf /")));
        let alt = c(json!({"regex": "a|b"}));
        assert!(!alt.admits(&json!("ab")));
    }

    #[test]
    fn admits_values() {
        assert!(c(json!({"exact": 1})).admits(&json!(1.0)));
        assert!(!c(json!({"exact": "1"})).admits(&json!(1)));
        assert!(c(json!({"one_of": ["a", "b"]})).admits(&json!("b")));
        assert!(!c(json!({"prefix": "/tmp/"})).admits(&json!("/etc/passwd")));
        assert!(!c(json!({"prefix": "/tmp/"})).admits(&json!(5)));
        assert!(c(json!({"range": {"min": 0, "max": 10}})).admits(&json!(10)));
        assert!(!c(json!({"range": {"min": 0, "max": 10}})).admits(&json!(10.5)));
        assert!(c(json!({"max_length": 3})).admits(&json!("héé")));
        assert!(!c(json!({"max_length": 3})).admits(&json!("abcd")));
        assert!(c(json!({"glob": "*.txt"})).admits(&json!("a.txt")));
    }

    #[test]
    fn refuses_widened_constraints() {
        let prefix = c(json!({"prefix": "/tmp/a"}));
        assert!(!c(json!({"prefix": "/tmp/"})).is_within(&prefix));
        assert!(!c(json!({"glob": "/tmp/*"})).is_within(&prefix));
        let range = c(json!({"range": {"min": 0, "max": 10}}));
        assert!(!c(json!({"range": {"min": 0, "max": 11}})).is_within(&range));
        assert!(!c(json!({"range": {"max": 5}})).is_within(&range));
        assert!(!c(json!({"exact": 11})).is_within(&range));
        assert!(!c(json!({"max_length": 9})).is_within(&c(json!({"max_length": 8}))));
        assert!(!c(json!({"regex": "a+"})).is_within(&c(json!({"regex": "a"}))));
        assert!(!c(json!({"one_of": ["a", "c"]})).is_within(&c(json!({"one_of": ["a", "b"]}))));
        assert!(!c(json!({"max_length": 1})).is_within(&prefix));
    }

    #[test]
    fn path_prefix_admits_at_segment_boundaries_only() {
        for prefix in ["/data/reports", "/data/reports/", "/data//reports/."] {
            let p = c(json!({ "prefix": prefix }));
            assert!(p.admits(&json!("/data/reports/x")), "{prefix}");
            assert!(p.admits(&json!("/data/reports")), "{prefix}");
            assert!(!p.admits(&json!("/data/reports-secret/x")), "{prefix}");
        }
        assert!(c(json!({"prefix": "rep"})).admits(&json!("report-7")));
        assert!(c(json!({"prefix": "/"})).admits(&json!("/etc/x")));
    }

    #[test]
    fn widened_prefixes_and_globs_are_refused() {
        let reports = c(json!({"prefix": "/data/reports"}));
        assert!(!c(json!({"prefix": "/data/reports-secret"})).is_within(&reports));
        assert!(!c(json!({"glob": "/data/reports*"})).is_within(&reports));
        assert!(!c(json!({"glob": "/data/reports*/x"})).is_within(&reports));
        assert!(!c(json!({"prefix": "reports"})).is_within(&c(json!({"prefix": "reports/"}))));
        assert!(!c(json!({"glob": "/data/**"})).is_within(&c(json!({"glob": "/data/*"}))));
        assert!(!c(json!({"prefix": "rep"})).is_within(&c(json!({"glob": "rep*"}))));
    }

    #[test]
    fn path_constraint_text_must_be_canonical() {
        for bad in [
            json!({"prefix": "/data/../hr/"}),
            json!({"prefix": "/data/%2e%2e/"}),
            json!({"glob": "/data/../*"}),
            json!({"glob": "file:///data/%2f/*"}),
            json!({"prefix": "/data\\x"}),
        ] {
            assert!(
                serde_json::from_value::<Constraint>(bad.clone()).is_err(),
                "{bad}"
            );
        }
        let p = c(json!({"prefix": "/data/reports/"}));
        assert_eq!(
            serde_json::to_value(&p).unwrap(),
            json!({"prefix": "/data/reports/"})
        );
    }

    /// The traversal spellings of issue 22, through every path-aware kind.
    #[test]
    fn traversal_spellings_are_refused_not_compared() {
        let constraints = [
            c(json!({"prefix": "/files/"})),
            c(json!({"glob": "/files/**"})),
            c(json!({"regex": "/files/.*"})),
        ];
        for value in TRAVERSALS {
            for constraint in &constraints {
                let verdict = constraint.judge(&json!(value));
                assert!(
                    matches!(verdict, Err(Refusal::NotCanonical(_))),
                    "{} admitted or misjudged {value:?}: {verdict:?}",
                    constraint.kind()
                );
            }
        }
        let ok = format!("/files/{}", "a".repeat(2000));
        assert!(constraints[0].admits(&json!(ok)));
    }

    /// Values that escape `/files/` in some reading, each spelled differently.
    pub(crate) const TRAVERSALS: [&str; 16] = [
        "/files/../hr/x",
        "/files/./../hr/x",
        "/files//../hr/x",
        "/files/x/..",
        "/files/%2e%2e/hr/x",
        "/files/%2E%2e/hr/x",
        "/files/.%2e/hr/x",
        "/files/%2fhr",
        "/files/..\\hr",
        "/files/\\..\\hr",
        "/files/x\0.txt",
        "/files/\u{ff0e}\u{ff0e}/hr/x",
        "/files\u{ff0f}..\u{ff0f}hr",
        "/files/%252e%252e/hr",
        "/files/\u{2025}/hr",
        "/files/\t/x",
    ];

    #[test]
    fn accepts_narrowed_constraints() {
        let prefix = c(json!({"prefix": "/tmp/"}));
        assert!(c(json!({"prefix": "/tmp/a/"})).is_within(&prefix));
        assert!(c(json!({"glob": "/tmp/*.txt"})).is_within(&prefix));
        assert!(c(json!({"exact": "/tmp/x"})).is_within(&prefix));
        // A path prefix admits a whole subtree: only `**` holds it.
        assert!(c(json!({"prefix": "/tmp/a"})).is_within(&c(json!({"glob": "/tmp/**"}))));
        assert!(!c(json!({"prefix": "/tmp/a"})).is_within(&c(json!({"glob": "/tmp/*"}))));
        assert!(c(json!({"prefix": "/tmp/a/"})).is_within(&c(json!({"prefix": "/tmp//a"}))));
        assert!(c(json!({"glob": "/tmp/a/*"})).is_within(&c(json!({"prefix": "/tmp/a"}))));
        assert!(c(json!({"prefix": "rep-1"})).is_within(&c(json!({"prefix": "rep"}))));
        assert!(c(json!({"prefix": "rep/x"})).is_within(&c(json!({"prefix": "rep"}))));
        assert!(c(json!({"prefix": "/x"})).is_within(&c(json!({"prefix": "/"}))));
        assert!(c(json!({"prefix": "file:///d/x"})).is_within(&c(json!({"prefix": "FILE:///d"}))));
        let range = c(json!({"range": {"min": 0, "max": 10}}));
        assert!(c(json!({"range": {"min": 1, "max": 10}})).is_within(&range));
        assert!(c(json!({"one_of": [1, 2]})).is_within(&range));
        assert!(c(json!({"regex": "a"})).is_within(&c(json!({"regex": "a"}))));
        assert!(c(json!({"exact": "aaa"})).is_within(&c(json!({"regex": "a+"}))));
    }
}
