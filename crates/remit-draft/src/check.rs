//! A draft against the policies around it: the preset it refines and the
//! live policy it would replace.
//!
//! Both are evaluated with Cedar through `remit-policy`'s engine (the one
//! the gateway uses), the draft through [`DraftPolicy`]. The request space
//! is the observed calls, each asked as observed and once more with the
//! agent's risk budget spent (where the standard preset turns medium-risk
//! allows into escalations).

use std::collections::{BTreeMap, BTreeSet};

use remit_policy::{
    Action, ContextInput, DecisionRequest, Directory, EntityKind, EntityRef, PolicyEngine,
    RequestContext, Verdict,
};
use serde::Serialize;

use crate::observation::{Call, LiveVerdict, Observation};
use crate::{Draft, DraftError, DraftPolicy};

/// Risk points given to the preset's context when a probe does not spend them.
const BUDGET: u32 = 100;

/// How permissive a verdict is: deny < escalate < allow.
fn rank(v: LiveVerdict) -> u8 {
    match v {
        LiveVerdict::Deny => 0,
        LiveVerdict::Escalate => 1,
        LiveVerdict::Allow => 2,
    }
}

fn of(v: Verdict) -> LiveVerdict {
    match v {
        Verdict::Allow => LiveVerdict::Allow,
        Verdict::Escalate => LiveVerdict::Escalate,
        Verdict::Deny => LiveVerdict::Deny,
    }
}

/// The draft enforced as a boundary inside its preset: the preset's verdict
/// when a drafted rule permits the call, a deny otherwise.
pub fn boundary(preset: LiveVerdict, draft_permits: bool) -> LiveVerdict {
    if draft_permits {
        preset
    } else {
        LiveVerdict::Deny
    }
}

/// The preset's request for an observed call: the remit lists the tool, the
/// server's descriptions match their pin, no approval is attached, and
/// `budget_spent` says whether the risk budget is used up.
pub fn preset_request(
    call: &Call,
    directory: &Directory,
    budget_spent: bool,
) -> Result<DecisionRequest, DraftError> {
    let load = |e: String| DraftError::Load { message: e };
    let owner = directory
        .agents
        .get(&call.agent)
        .map(|a| a.owner.clone())
        .unwrap_or_else(|| call.agent.clone());
    let pin = directory
        .tools
        .get(&call.tool)
        .and_then(|t| directory.servers.get(&t.server))
        .map(|s| s.pinned_description_hash.clone());
    let args: serde_json::Map<String, serde_json::Value> = call
        .args
        .names
        .iter()
        .map(|n| (n.clone(), serde_json::Value::Null))
        .collect();
    let input = ContextInput {
        args: serde_json::Value::Object(args),
        data_class: call.data_class,
        pii: call.pii.clone(),
        secrets: call.secrets.clone(),
        chain_depth: call.chain_depth,
        original_user: owner,
        steps_used: 0,
        steps_max: u32::MAX,
        risk_budget_used: if budget_spent { BUDGET } else { 0 },
        risk_budget_max: BUDGET,
        hour_utc: call.hour_utc.min(23),
        amr: BTreeSet::new(),
        approved: false,
        shadow: false,
        redacted: false,
        remit_tools: [call.tool.clone()].into(),
        remit_models: BTreeSet::new(),
        description_hash: pin,
    };
    let context = RequestContext::new(input).map_err(|e| load(e.to_string()))?;
    let agent =
        EntityRef::new(EntityKind::Agent, call.agent.as_str()).map_err(|e| load(e.to_string()))?;
    let tool =
        EntityRef::new(EntityKind::Tool, call.tool.as_str()).map_err(|e| load(e.to_string()))?;
    DecisionRequest::new(agent, Action::CallTool, tool, context).map_err(|e| load(e.to_string()))
}

/// One request where two policies disagree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Disagreement {
    /// The tool.
    pub tool: String,
    /// The drafted rules that permit it.
    pub rules: Vec<String>,
    /// The preset's verdict.
    pub preset: LiveVerdict,
    /// The other verdict (the boundary's, or the draft's alone).
    pub other: LiveVerdict,
    /// Whether the probe had the risk budget spent.
    pub budget_spent: bool,
}

/// The draft against the preset it refines, over the observed request space.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Boundary {
    /// Requests evaluated.
    pub requests: usize,
    /// Requests the enforced draft (the boundary) treats more permissively
    /// than the preset: must be empty; anything here is a bug.
    pub exceeds: Vec<Disagreement>,
    /// Requests a drafted rule permits that the preset denies or escalates:
    /// the rule alone is broader than the preset there, and it is the
    /// preset that keeps the enforced draft inside it.
    pub broader_alone: Vec<Disagreement>,
}

impl Boundary {
    /// True when the enforced draft never exceeds the preset.
    pub fn holds(&self) -> bool {
        self.exceeds.is_empty()
    }
}

/// Checks draft ⊆ preset over the observed calls, with Cedar on both sides.
pub fn check_boundary(
    draft: &DraftPolicy,
    preset: &dyn PolicyEngine,
    observations: &[Observation],
) -> Result<Boundary, DraftError> {
    let mut out = Boundary::default();
    for o in observations {
        let rules = draft.matching(&o.call);
        for budget_spent in [false, true] {
            let req = preset_request(&o.call, preset.directory(), budget_spent)?;
            let p = of(preset.decide(&req).verdict());
            let enforced = boundary(p, !rules.is_empty());
            out.requests += 1;
            let d = Disagreement {
                tool: o.call.tool.clone(),
                rules: rules.clone(),
                preset: p,
                other: enforced,
                budget_spent,
            };
            if rank(enforced) > rank(p) {
                out.exceeds.push(d.clone());
            }
            if !rules.is_empty() && p != LiveVerdict::Allow {
                out.broader_alone.push(Disagreement {
                    other: LiveVerdict::Allow,
                    ..d
                });
            }
        }
    }
    Ok(out)
}

/// What changes for one tool when the draft replaces the live policy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ToolDiff {
    /// The tool.
    pub tool: String,
    /// Observed calls per live verdict.
    pub live: BTreeMap<String, usize>,
    /// The drafted rules for it (ids); empty: the draft denies the tool.
    pub rules: Vec<String>,
    /// What the rules admit, in words.
    pub summary: Vec<String>,
}

/// The diff of a draft against the live policy.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Diff {
    /// Per tool the directory knows or the agent called.
    pub tools: Vec<ToolDiff>,
    /// Observed calls the live policy denied or escalated that the enforced
    /// draft (inside its preset) would allow.
    pub newly_allowed: Vec<NewlyAllowed>,
}

/// A call the live policy refused that the draft would allow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NewlyAllowed {
    /// The tool.
    pub tool: String,
    /// When, Unix seconds.
    pub at: i64,
    /// What the live policy said.
    pub live: LiveVerdict,
    /// The rules that would permit it.
    pub rules: Vec<String>,
}

/// The draft against the live policy: per tool, and the refused calls it
/// would let through (enforced inside `preset`).
pub fn diff(
    draft: &Draft,
    compiled: &DraftPolicy,
    preset: &dyn PolicyEngine,
    observations: &[Observation],
) -> Result<Diff, DraftError> {
    let mine: Vec<&Observation> = observations
        .iter()
        .filter(|o| o.call.agent == draft.agent)
        .collect();
    let mut tools: BTreeSet<String> = preset.directory().tools.keys().cloned().collect();
    tools.extend(mine.iter().map(|o| o.call.tool.clone()));
    let mut out = Diff::default();
    for tool in tools {
        let mut live = BTreeMap::new();
        for o in mine.iter().filter(|o| o.call.tool == tool) {
            *live.entry(o.verdict.as_str().to_owned()).or_insert(0) += 1;
        }
        let rules: Vec<&crate::Rule> = draft.rules.iter().filter(|r| r.tool == tool).collect();
        out.tools.push(ToolDiff {
            tool,
            live,
            rules: rules.iter().map(|r| r.id.clone()).collect(),
            summary: rules.iter().flat_map(|r| r.summary.clone()).collect(),
        });
    }
    for o in mine {
        if o.verdict == LiveVerdict::Allow {
            continue;
        }
        let rules = compiled.matching(&o.call);
        let req = preset_request(&o.call, preset.directory(), false)?;
        let p = of(preset.decide(&req).verdict());
        if boundary(p, !rules.is_empty()) == LiveVerdict::Allow {
            out.newly_allowed.push(NewlyAllowed {
                tool: o.call.tool.clone(),
                at: o.at,
                live: o.verdict,
                rules,
            });
        }
    }
    Ok(out)
}

impl Diff {
    /// The diff as text, one line per tool, then the newly allowed calls.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for t in &self.tools {
            let live = if t.live.is_empty() {
                "not called".to_owned()
            } else {
                t.live
                    .iter()
                    .map(|(v, n)| format!("{n} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            if t.rules.is_empty() {
                out.push_str(&format!(
                    "- {}  (live: {live}) -> draft: denied, no rule\n",
                    t.tool
                ));
            } else {
                out.push_str(&format!(
                    "~ {}  (live: {live}) -> draft: {}\n",
                    t.tool,
                    t.rules.join(", ")
                ));
                for s in &t.summary {
                    out.push_str(&format!("    {s}\n"));
                }
            }
        }
        if self.newly_allowed.is_empty() {
            out.push_str("no call the live policy refused would be allowed by the draft\n");
        } else {
            out.push_str(&format!(
                "{} call(s) the live policy refused would be allowed by the draft:\n",
                self.newly_allowed.len()
            ));
            for n in &self.newly_allowed {
                out.push_str(&format!(
                    "  ! {} at {} (live: {}) via {}\n",
                    n.tool,
                    crate::time::utc(n.at),
                    n.live.as_str(),
                    n.rules.join(", ")
                ));
            }
        }
        out
    }
}
