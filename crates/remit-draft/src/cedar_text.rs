//! Writing Cedar: literals, sets and the condition of each constraint.

use crate::facts::{Decimal4, ValueKind};
use crate::generalize::KindConstraint;

/// A Cedar string literal.
pub fn lit(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\0' => out.push_str("\\0"),
            c if c.is_control() => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A Cedar `like` pattern admitting `prefix` followed by anything: the
/// prefix's own `*` are escaped.
pub fn like_prefix(prefix: &str) -> String {
    let escaped = lit(prefix);
    let inner = &escaped[1..escaped.len() - 1];
    format!("\"{}*\"", inner.replace('*', "\\*"))
}

/// A Cedar set literal.
pub fn set_of(items: impl IntoIterator<Item = String>) -> String {
    format!("[{}]", items.into_iter().collect::<Vec<_>>().join(", "))
}

/// The argument name as the agent wrote it (the projection escapes
/// separators in keys).
pub fn unescape_key(k: &str) -> String {
    k.replace("%23", "#")
        .replace("%2E", "\\.")
        .replace("%5B", "\\[")
        .replace("%5D", "\\]")
        .replace("%25", "%")
}

fn text(key: &str, suffix: &str) -> String {
    format!(
        "context.args_text.getTag({})",
        lit(&format!("{key}{suffix}"))
    )
}

fn has_text(key: &str, suffix: &str) -> String {
    format!(
        "context.args_text.hasTag({})",
        lit(&format!("{key}{suffix}"))
    )
}

fn number(key: &str, suffix: &str) -> String {
    format!(
        "context.args_number.getTag({})",
        lit(&format!("{key}{suffix}"))
    )
}

fn has_number(key: &str, suffix: &str) -> String {
    format!(
        "context.args_number.hasTag({})",
        lit(&format!("{key}{suffix}"))
    )
}

fn in_set(key: &str, suffix: &str, values: &std::collections::BTreeSet<String>) -> String {
    format!(
        "{} && {}.contains({})",
        has_text(key, suffix),
        set_of(values.iter().map(|v| lit(v))),
        text(key, suffix)
    )
}

fn at_most(key: &str, suffix: &str, hi: Decimal4) -> String {
    format!(
        "{} && {}.lessThanOrEqual({})",
        has_number(key, suffix),
        number(key, suffix),
        hi.cedar()
    )
}

fn list(values: &std::collections::BTreeSet<String>) -> String {
    values.iter().cloned().collect::<Vec<_>>().join(", ")
}

/// The words and the Cedar condition of one key's constraint of one kind.
pub fn kind_condition(key: &str, kind: ValueKind, c: &KindConstraint) -> (String, String) {
    let is_kind = if kind == ValueKind::Text {
        // free text admits one-word values too (a token is text without spaces)
        format!("[\"text\", \"token\"].contains({})", text(key, "#kind"))
    } else {
        format!("{} == {}", text(key, "#kind"), lit(kind.as_str()))
    };
    let (words, cond) = match c {
        KindConstraint::Under(dirs) => (
            format!("path under {}", list(dirs)),
            format!(
                "{} && ({})",
                has_text(key, "#dir"),
                dirs.iter()
                    .map(|d| format!("{} like {}", text(key, "#dir"), like_prefix(d)))
                    .collect::<Vec<_>>()
                    .join(" || ")
            ),
        ),
        KindConstraint::Hosts {
            exact,
            suffixes,
            schemes,
        } => {
            let suffix = if kind == ValueKind::Url {
                "#host"
            } else {
                "#domain"
            };
            let mut alts = Vec::new();
            if !exact.is_empty() {
                alts.push(format!(
                    "{}.contains({})",
                    set_of(exact.iter().map(|v| lit(v))),
                    text(key, suffix)
                ));
            }
            for s in suffixes {
                alts.push(format!(
                    "{} like {}",
                    text(key, suffix),
                    lit(&format!("*.{s}"))
                ));
            }
            let mut cond = format!("{} && ({})", has_text(key, suffix), alts.join(" || "));
            if kind == ValueKind::Url {
                cond.push_str(&format!(" && {}", in_set(key, "#scheme", schemes)));
            }
            let mut names: Vec<String> = exact.iter().cloned().collect();
            names.extend(suffixes.iter().map(|s| format!("*.{s}")));
            let noun = if kind == ValueKind::Url {
                "URL on"
            } else {
                "email at"
            };
            (format!("{noun} {}", names.join(", ")), cond)
        }
        KindConstraint::OneOf(values) => {
            (format!("one of {}", list(values)), in_set(key, "", values))
        }
        KindConstraint::OneOfHashed(hashes) => (
            format!(
                "one of {} sensitive values seen (keyed hashes)",
                hashes.len()
            ),
            in_set(key, "#h", hashes),
        ),
        KindConstraint::Pattern { shapes, prefixes } => {
            let mut cond = in_set(key, "#shape", shapes);
            let mut words = format!("identifier shaped {}", list(shapes));
            if let Some(p) = prefixes {
                cond.push_str(&format!(" && {}", in_set(key, "#prefix", p)));
                if p.iter().any(|x| !x.is_empty()) {
                    words.push_str(&format!(" with prefix {}", list(p)));
                }
            }
            (words, cond)
        }
        KindConstraint::MaxLen(hi) => (
            format!("text of at most {hi} characters"),
            at_most(key, "#len", *hi),
        ),
        KindConstraint::Range { lo, hi } => {
            let mut cond = format!(
                "{} && {}.greaterThanOrEqual({}) && {}.lessThanOrEqual({})",
                has_number(key, ""),
                number(key, ""),
                lo.cedar(),
                number(key, ""),
                hi.cedar()
            );
            if key.ends_with("[]") {
                // a folded list of numbers: its maximum is the key, its minimum `#min`
                cond.push_str(&format!(
                    " && {} && {}.greaterThanOrEqual({})",
                    has_number(key, "#min"),
                    number(key, "#min"),
                    lo.cedar()
                ));
            }
            (format!("number from {lo} to {hi}"), cond)
        }
        KindConstraint::MaxCount(hi) => (
            format!("list of at most {hi} items"),
            at_most(key, "#count", *hi),
        ),
        KindConstraint::Object => ("an object".into(), String::new()),
    };
    let cond = if cond.is_empty() {
        is_kind
    } else {
        format!("{is_kind} && {cond}")
    };
    (words, format!("({cond})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_and_patterns_escape_what_cedar_reads() {
        assert_eq!(lit("a\"b\\c"), "\"a\\\"b\\\\c\"");
        assert_eq!(like_prefix("/a*b/"), "\"/a\\*b/*\"");
    }
}
