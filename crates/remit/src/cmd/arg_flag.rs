//! `--arg NAME=CONSTRAINT`: argument constraints from the command line, for
//! `remit token mint|delegate` and `remit issue`.
//!
//! `CONSTRAINT` is `KIND:VALUE` or a constraint as JSON:
//!
//! | flag | constraint |
//! |---|---|
//! | `path=prefix:/data/reports/` | `{"prefix": "/data/reports/"}` (admits under it, at a segment boundary) |
//! | `path=glob:/data/**/*.csv` | `{"glob": ...}` (`*` stays within one segment, `**` crosses) |
//! | `mode=exact:read`, `n=exact:5` | `{"exact": ...}` (JSON scalars stay JSON, anything else is a string) |
//! | `mode=one_of:read,list` | `{"one_of": ["read", "list"]}` |
//! | `n=range:1..10`, `n=range:..10`, `n=range:1..` | `{"range": {"min": 1, "max": 10}}` |
//! | `q=max_length:200` | `{"max_length": 200}` |
//! | `id=regex:[a-z0-9-]+` | `{"regex": ...}` (matched in full) |
//! | `path={"prefix":"/x/"}` | the JSON as written |
//!
//! Each is parsed by the same rules as a constraint inside a remit (a path
//! prefix or glob must be canonical, a regex must compile), so a flag that
//! would make a bad remit is a usage error, not a surprise at the gateway.

use remit_token::{ArgConstraints, Constraint};
use serde_json::{json, Value};

/// One `--arg` flag: the argument it constrains and how.
#[derive(Debug, Clone)]
pub struct ArgFlag {
    /// The argument name.
    pub name: String,
    /// Its constraint.
    pub constraint: Constraint,
}

/// Parses `NAME=CONSTRAINT` (a clap value parser: its error is a usage error).
pub fn parse(text: &str) -> Result<ArgFlag, String> {
    let (name, spec) = text
        .split_once('=')
        .ok_or("expected NAME=CONSTRAINT, e.g. path=prefix:/data/reports/")?;
    if name.is_empty() || name.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!(
            "argument name {name:?} must be non-empty, without spaces or control characters"
        ));
    }
    let value = if spec.trim_start().starts_with('{') {
        serde_json::from_str::<Value>(spec).map_err(|e| format!("constraint JSON: {e}"))?
    } else {
        short_form(spec)?
    };
    let constraint: Constraint = serde_json::from_value(value).map_err(|e| e.to_string())?;
    constraint.check()?;
    Ok(ArgFlag {
        name: name.to_owned(),
        constraint,
    })
}

/// `KIND:VALUE` as constraint JSON.
fn short_form(spec: &str) -> Result<Value, String> {
    let (kind, value) = spec.split_once(':').ok_or_else(|| {
        format!(
            "constraint {spec:?} must be KIND:VALUE (prefix, glob, exact, one_of, range, \
             max_length, regex) or JSON"
        )
    })?;
    Ok(match kind {
        "prefix" | "glob" | "regex" => {
            let mut one = serde_json::Map::new();
            one.insert(kind.to_owned(), Value::String(value.to_owned()));
            Value::Object(one)
        }
        "exact" => json!({ "exact": scalar(value) }),
        "one_of" => json!({ "one_of": value.split(',').map(scalar).collect::<Vec<_>>() }),
        "max_length" => {
            let n: u64 = value
                .parse()
                .map_err(|_| format!("max_length {value:?} must be a whole number"))?;
            json!({ "max_length": n })
        }
        "range" => range(value)?,
        other => {
            return Err(format!(
                "unknown constraint kind {other:?}: use prefix, glob, exact, one_of, range, \
                 max_length or regex"
            ))
        }
    })
}

/// `MIN..MAX` with either bound optional.
fn range(value: &str) -> Result<Value, String> {
    let (lo, hi) = value
        .split_once("..")
        .ok_or_else(|| format!("range {value:?} must be MIN..MAX (either may be left out)"))?;
    let bound = |text: &str| -> Result<Option<f64>, String> {
        if text.is_empty() {
            return Ok(None);
        }
        text.parse::<f64>()
            .ok()
            .filter(|x| x.is_finite())
            .map(Some)
            .ok_or_else(|| format!("range bound {text:?} is not a number"))
    };
    let mut out = serde_json::Map::new();
    if let Some(min) = bound(lo)? {
        out.insert("min".into(), json!(min));
    }
    if let Some(max) = bound(hi)? {
        out.insert("max".into(), json!(max));
    }
    Ok(json!({ "range": out }))
}

/// A JSON scalar when `text` is one, else `text` as a string.
fn scalar(text: &str) -> Value {
    match serde_json::from_str::<Value>(text) {
        Ok(v @ (Value::Number(_) | Value::Bool(_) | Value::String(_))) => v,
        _ => Value::String(text.to_owned()),
    }
}

/// The flags as one set of constraints; an argument named twice is refused.
pub fn collect(flags: &[ArgFlag]) -> anyhow::Result<ArgConstraints> {
    let mut out = ArgConstraints::new();
    for flag in flags {
        if out.get(&flag.name).is_some() {
            anyhow::bail!("--arg {:?} given twice", flag.name);
        }
        out.insert(flag.name.clone(), flag.constraint.clone());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(text: &str) -> Value {
        serde_json::to_value(parse(text).unwrap().constraint).unwrap()
    }

    #[test]
    fn parses_every_short_form_and_json() {
        assert_eq!(
            c("p=prefix:/data/reports/"),
            json!({"prefix": "/data/reports/"})
        );
        assert_eq!(c("p=glob:/data/**"), json!({"glob": "/data/**"}));
        assert_eq!(c("m=exact:read"), json!({"exact": "read"}));
        assert_eq!(c("n=exact:5"), json!({"exact": 5}));
        assert_eq!(c("m=one_of:a,b"), json!({"one_of": ["a", "b"]}));
        assert_eq!(
            c("n=range:1..10"),
            json!({"range": {"min": 1.0, "max": 10.0}})
        );
        assert_eq!(c("n=range:..10"), json!({"range": {"max": 10.0}}));
        assert_eq!(c("n=range:1.."), json!({"range": {"min": 1.0}}));
        assert_eq!(c("q=max_length:200"), json!({"max_length": 200}));
        assert_eq!(c("i=regex:[a-z]+"), json!({"regex": "[a-z]+"}));
        assert_eq!(c(r#"p={"prefix":"/x/"}"#), json!({"prefix": "/x/"}));
    }

    #[test]
    fn refuses_malformed_flags_precisely() {
        for (flag, says) in [
            ("path", "NAME=CONSTRAINT"),
            ("=prefix:/x", "argument name"),
            ("p=/x", "KIND:VALUE"),
            ("p=suffix:/x", "unknown constraint kind"),
            ("p=prefix:/data/../hr/", "canonical"),
            ("p=glob:/data/%2e%2e/*", "canonical"),
            ("n=range:5", "MIN..MAX"),
            ("n=range:a..1", "not a number"),
            ("n=range:..", "min, max or both"),
            ("n=range:9..1", "min <= max"),
            ("q=max_length:-1", "whole number"),
            ("i=regex:(", "does not compile"),
            ("p={\"prefix\":1}", "invalid type"),
            ("p={", "constraint JSON"),
        ] {
            let err = parse(flag).unwrap_err();
            assert!(err.contains(says), "{flag}: {err}");
        }
    }
}
