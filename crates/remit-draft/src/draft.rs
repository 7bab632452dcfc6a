//! Drafting: observations clustered per (tool, argument shape), each cluster
//! generalized into one readable Cedar `permit`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use remit_policy::Classification;

use crate::cedar_text::{lit, set_of};
use crate::facts::{ValueKind, NESTED};
use crate::generalize::{generalize, Limits, Seen};
use crate::observation::Observation;

/// A rule resting on fewer calls than this is flagged for review.
pub const HANDFUL: usize = 5;
/// A rule resting on at least this many calls has high confidence.
pub const CONFIDENT: usize = 30;
/// Calls needed before the hours of the day are constrained.
pub const HOURS_AFTER: usize = 20;

/// What a draft is drafted for, and how.
#[derive(Debug, Clone, Default)]
pub struct DraftOptions {
    /// The agent whose observations are drafted (others are ignored).
    pub agent: String,
    /// Generalizer tuning.
    pub limits: Limits,
    /// Directory floors from the remit's own constraints, per (tool, argument):
    /// a drafted directory is never above them.
    pub floors: BTreeMap<(String, String), String>,
}

/// How much a rule can be trusted, from the calls behind it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Confidence {
    /// Fewer than [`HANDFUL`] calls: flagged.
    Low,
    /// Fewer than [`CONFIDENT`] calls.
    Medium,
    /// At least [`CONFIDENT`] calls.
    High,
}

impl Confidence {
    fn of(calls: usize) -> Self {
        if calls < HANDFUL {
            Confidence::Low
        } else if calls < CONFIDENT {
            Confidence::Medium
        } else {
            Confidence::High
        }
    }

    /// The confidence's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Confidence::Low => "low",
            Confidence::Medium => "medium",
            Confidence::High => "high",
        }
    }
}

/// One drafted rule: a `permit` for one tool and one argument-shape cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The policy id (`draft-<tool>-<n>`).
    pub id: String,
    /// The tool id.
    pub tool: String,
    /// Calls behind it.
    pub calls: usize,
    /// First and last call, Unix seconds.
    pub span: (i64, i64),
    /// Its confidence.
    pub confidence: Confidence,
    /// One line per constraint, in words.
    pub summary: Vec<String>,
    /// The Cedar conditions, conjoined in the `when` body.
    pub conditions: Vec<String>,
}

impl Rule {
    /// True when the rule rests on a handful of calls.
    pub fn flagged(&self) -> bool {
        self.confidence == Confidence::Low
    }

    /// The rule as Cedar, its comment first.
    pub fn to_cedar(&self, agent: &str) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "// {} calls, {} .. {}, confidence {}{}",
            self.calls,
            crate::time::utc(self.span.0),
            crate::time::utc(self.span.1),
            self.confidence.as_str(),
            if self.flagged() {
                " -- FLAGGED: rests on a handful of calls, review before promoting"
            } else {
                ""
            }
        );
        for line in &self.summary {
            let _ = writeln!(out, "//   {line}");
        }
        let _ = writeln!(out, "@id({})", lit(&self.id));
        let _ = writeln!(
            out,
            "@reason({})",
            lit(&format!(
                "drafted from {} observed calls of {}",
                self.calls, self.tool
            ))
        );
        let _ = writeln!(
            out,
            "permit (\n  principal == Agent::{},\n  action == Action::\"call_tool\",\n  resource == Tool::{}\n)\nwhen {{\n  {}\n}};",
            lit(agent),
            lit(&self.tool),
            self.conditions.join(" &&\n  ")
        );
        out
    }
}

/// A drafted policy: the rules, and the observations they rest on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    /// The agent.
    pub agent: String,
    /// The rules, by tool then cluster.
    pub rules: Vec<Rule>,
    /// Observations drafted from.
    pub observations: usize,
    /// First and last observation, Unix seconds.
    pub window: (i64, i64),
}

impl Draft {
    /// The whole draft as one Cedar policy file.
    pub fn to_cedar(&self) -> String {
        let mut out = format!(
            "// Remit draft for agent {:?}: {} rules from {} observed calls, {} .. {}.\n\
             // Each rule permits one tool with one shape of arguments, generalized\n\
             // from what the agent really did. The draft is a boundary inside the\n\
             // preset it refines: a call must be allowed by the preset AND match a\n\
             // rule here. Tighten a rule by editing its conditions; delete it to deny.\n\n",
            self.agent,
            self.rules.len(),
            self.observations,
            crate::time::utc(self.window.0),
            crate::time::utc(self.window.1),
        );
        for rule in &self.rules {
            out.push_str(&rule.to_cedar(&self.agent));
            out.push('\n');
        }
        out
    }
}

impl Draft {
    /// The draft in the form that enforces it inside an unchanged preset:
    /// one `forbid` on the agent's tool calls unless some rule's tool and
    /// conditions hold. Added to the preset (as an override), it can only
    /// remove what the preset grants, whatever the escalation mode: a
    /// forbid wins over every permit. Generated from the same conditions as
    /// the readable rules ([`Draft::to_cedar`]), which are what a reviewer
    /// edits.
    pub fn to_boundary_cedar(&self) -> String {
        let disjuncts: Vec<String> = self
            .rules
            .iter()
            .map(|r| {
                format!(
                    "  // {}\n  (resource == Tool::{} &&\n    {})",
                    r.id,
                    lit(&r.tool),
                    r.conditions.join(" &&\n    ")
                )
            })
            .collect();
        let head = format!(
            "@id({})\n@reason({})\nforbid (\n  principal == Agent::{},\n  action == Action::\"call_tool\",\n  resource\n)",
            lit(&format!("draft-boundary-{}", self.agent)),
            lit(&format!(
                "the call is outside the policy drafted for agent {}",
                self.agent
            )),
            lit(&self.agent)
        );
        if disjuncts.is_empty() {
            format!("{head};\n")
        } else {
            format!("{head}\nunless {{\n{}\n}};\n", disjuncts.join(" ||\n"))
        }
    }
}

/// Drafts the rules for one agent. Pure: the observations are all it reads.
pub fn draft(observations: &[Observation], options: &DraftOptions) -> Draft {
    let mine: Vec<&Observation> = observations
        .iter()
        .filter(|o| o.call.agent == options.agent)
        .collect();
    let mut by_tool: BTreeMap<&str, Vec<&Observation>> = BTreeMap::new();
    for o in &mine {
        by_tool.entry(o.call.tool.as_str()).or_default().push(o);
    }
    let mut rules = Vec::new();
    for (tool, calls) in by_tool {
        for (n, cluster) in clusters(&calls).into_iter().enumerate() {
            rules.push(rule(tool, n + 1, &cluster, options));
        }
    }
    let window = (
        mine.iter().map(|o| o.at).min().unwrap_or(0),
        mine.iter().map(|o| o.at).max().unwrap_or(0),
    );
    Draft {
        agent: options.agent.clone(),
        rules,
        observations: mine.len(),
        window,
    }
}

/// Groups a tool's calls by their top-level argument names, then merges
/// groups whose name sets nest (one is a subset of the other): optional
/// arguments join their cluster, while different modes of one tool (the
/// same tool called with disjoint arguments) stay apart.
fn clusters<'a>(calls: &[&'a Observation]) -> Vec<Vec<&'a Observation>> {
    let mut groups: BTreeMap<&BTreeSet<String>, Vec<&'a Observation>> = BTreeMap::new();
    for o in calls {
        groups.entry(&o.call.args.names).or_default().push(o);
    }
    // Largest name sets first, so each smaller set joins a superset.
    let mut sets: Vec<(BTreeSet<String>, Vec<&'a Observation>)> =
        groups.into_iter().map(|(k, v)| (k.clone(), v)).collect();
    sets.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then(a.0.cmp(&b.0)));
    let mut merged: Vec<(BTreeSet<String>, Vec<&'a Observation>)> = Vec::new();
    for (names, obs) in sets {
        match merged
            .iter_mut()
            .find(|(m, _)| names.is_subset(m) || m.is_subset(&names))
        {
            Some((m, v)) => {
                m.extend(names);
                v.extend(obs);
            }
            None => merged.push((names, obs)),
        }
    }
    merged.into_iter().map(|(_, v)| v).collect()
}

fn rule(tool: &str, n: usize, cluster: &[&Observation], options: &DraftOptions) -> Rule {
    let calls = cluster.len();
    let span = (
        cluster.iter().map(|o| o.at).min().unwrap_or(0),
        cluster.iter().map(|o| o.at).max().unwrap_or(0),
    );
    let mut summary = Vec::new();
    let mut conditions = Vec::new();
    names(cluster, &mut summary, &mut conditions);
    conditions.push("context has args_text && context has args_number".into());
    let nested: BTreeSet<&str> = cluster
        .iter()
        .map(|o| o.call.args.nested_signature())
        .collect();
    if nested.iter().any(|s| !s.is_empty()) {
        summary.push(format!("nested arguments: {} shape(s)", nested.len()));
    }
    conditions.push(format!(
        "(context.args_text.hasTag({n}) && {set}.contains(context.args_text.getTag({n})))",
        n = lit(NESTED),
        set = set_of(nested.iter().map(|s| lit(s)))
    ));
    for (key, required) in keys(cluster) {
        let floor = options.floors.get(&(tool.to_owned(), key.clone()));
        let (words, cond) = key_condition(&key, required, cluster, floor, options);
        summary.push(words);
        conditions.push(cond);
    }
    context_conditions(cluster, &mut summary, &mut conditions);
    Rule {
        id: format!(
            "draft-{}-{n}",
            tool.replace(|c: char| !c.is_alphanumeric(), "-")
        ),
        tool: tool.to_owned(),
        calls,
        span,
        confidence: Confidence::of(calls),
        summary,
        conditions,
    }
}

fn names(cluster: &[&Observation], summary: &mut Vec<String>, conditions: &mut Vec<String>) {
    let all: BTreeSet<&String> = cluster.iter().flat_map(|o| &o.call.args.names).collect();
    let required: BTreeSet<&String> = all
        .iter()
        .copied()
        .filter(|k| cluster.iter().all(|o| o.call.args.names.contains(*k)))
        .collect();
    summary.push(format!(
        "arguments: {}{}",
        join(&required),
        if all.len() > required.len() {
            format!(
                "; optional: {}",
                join(&all.difference(&required).copied().collect())
            )
        } else {
            String::new()
        }
    ));
    conditions.push(format!(
        "{}.containsAll(context.arg_names)",
        set_of(all.iter().map(|s| lit(s)))
    ));
    if !required.is_empty() {
        conditions.push(format!(
            "context.arg_names.containsAll({})",
            set_of(required.iter().map(|s| lit(s)))
        ));
    }
}

fn join(set: &BTreeSet<&String>) -> String {
    if set.is_empty() {
        return "none".into();
    }
    set.iter()
        .map(|s| s.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every key (top-level or nested) the cluster's calls carried, with
/// whether all of them carried it.
fn keys(cluster: &[&Observation]) -> Vec<(String, bool)> {
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for o in cluster {
        for k in o.call.args.text.keys() {
            if let Some(key) = k.strip_suffix("#kind") {
                *count.entry(key).or_default() += 1;
            }
        }
    }
    count
        .into_iter()
        .map(|(k, n)| (k.to_owned(), n == cluster.len()))
        .collect()
}

fn key_condition(
    key: &str,
    required: bool,
    cluster: &[&Observation],
    floor: Option<&String>,
    options: &DraftOptions,
) -> (String, String) {
    let mut by_kind: BTreeMap<ValueKind, Seen> = BTreeMap::new();
    for o in cluster {
        let a = &o.call.args;
        let Some(kind) = a.kind_of(key) else { continue };
        let seen = by_kind.entry(kind).or_default();
        let t = |s: &str| a.text.get(&format!("{key}#{s}")).cloned();
        let num = |s: &str| a.number.get(&format!("{key}{s}")).copied();
        match kind {
            ValueKind::Path => seen.dirs.extend(t("dir")),
            ValueKind::Url => {
                seen.hosts.extend(t("host"));
                seen.schemes.extend(t("scheme"));
            }
            ValueKind::Email => seen.hosts.extend(t("domain")),
            ValueKind::Token | ValueKind::Flag => {
                seen.raw.push(a.text.get(key).cloned());
                seen.hashes
                    .extend(t("h").or_else(|| a.text.get(key).cloned()));
                seen.shapes.extend(t("shape"));
                seen.prefixes.extend(t("prefix"));
            }
            ValueKind::Text => seen.numbers.extend(num("#len")),
            ValueKind::Number => {
                seen.numbers.extend(num(""));
                seen.numbers.extend(num("#min"));
            }
            ValueKind::List => seen.numbers.extend(num("#count")),
            ValueKind::Object => {}
        }
    }
    let mut words = Vec::new();
    let mut alternatives = Vec::new();
    for (kind, seen) in &by_kind {
        let c = generalize(*kind, seen, floor.map(String::as_str), &options.limits);
        let (w, cond) = crate::cedar_text::kind_condition(key, *kind, &c);
        words.push(w);
        alternatives.push(cond);
    }
    let kind_tag = lit(&format!("{key}#kind"));
    let body = if alternatives.len() == 1 {
        alternatives.remove(0)
    } else {
        format!("({})", alternatives.join(" || "))
    };
    let cond = if required {
        format!("context.args_text.hasTag({kind_tag}) && {body}")
    } else {
        // `if` (not `!has || ...`): Cedar's validator carries the tag's
        // presence into the `then` branch only.
        format!("(if context.args_text.hasTag({kind_tag}) then {body} else true)")
    };
    let shown = crate::cedar_text::unescape_key(key);
    let opt = if required { "" } else { " (optional)" };
    (format!("{shown}{opt}: {}", words.join(" or ")), cond)
}

fn context_conditions(
    cluster: &[&Observation],
    summary: &mut Vec<String>,
    conditions: &mut Vec<String>,
) {
    let class = cluster
        .iter()
        .map(|o| o.call.data_class)
        .max()
        .unwrap_or(Classification::Public);
    conditions.push(format!("context.data_class <= {}", class.level()));
    let secrets: BTreeSet<&String> = cluster.iter().flat_map(|o| &o.call.secrets).collect();
    let pii: BTreeSet<&String> = cluster.iter().flat_map(|o| &o.call.pii).collect();
    for (name, set) in [("pii", &pii), ("secrets", &secrets)] {
        conditions.push(if set.is_empty() {
            format!("context.{name}.isEmpty()")
        } else {
            format!(
                "{}.containsAll(context.{name})",
                set_of(set.iter().map(|s| lit(s)))
            )
        });
    }
    let depth = cluster
        .iter()
        .map(|o| o.call.chain_depth)
        .max()
        .unwrap_or(0);
    conditions.push(format!("context.chain_depth <= {depth}"));
    summary.push(format!(
        "payload up to {class}, pii: {}, secrets: {}, delegation depth <= {depth}",
        join(&pii),
        join(&secrets)
    ));
    if cluster.len() >= HOURS_AFTER {
        let hours: BTreeSet<u8> = cluster.iter().map(|o| o.call.hour_utc).collect();
        if let Some((from, to)) = crate::time::hour_window(&hours) {
            summary.push(format!("hours {from:02}:00-{to:02}:59 UTC"));
            conditions.push(if from <= to {
                format!("context.hour_utc >= {from} && context.hour_utc <= {to}")
            } else {
                format!("(context.hour_utc >= {from} || context.hour_utc <= {to})")
            });
        }
    }
}
