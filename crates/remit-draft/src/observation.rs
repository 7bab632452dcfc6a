//! What the gateway records of one tool call, and what a draft learns from.

use std::collections::BTreeSet;

use remit_policy::Classification;
use serde::{Deserialize, Serialize};

use crate::facts::ArgFacts;

/// What the policy in force decided (or would have decided, in shadow mode).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LiveVerdict {
    /// Allowed.
    Allow,
    /// Held for a human.
    Escalate,
    /// Refused.
    Deny,
}

impl LiveVerdict {
    /// Reads the decision column the gateway writes (`allow`, or
    /// `deny: reason`, `escalate: reason`); anything else is a deny.
    pub fn from_recorded(text: &str) -> Self {
        let head = text.split(':').next().unwrap_or_default().trim();
        match head {
            "allow" => LiveVerdict::Allow,
            "escalate" => LiveVerdict::Escalate,
            _ => LiveVerdict::Deny,
        }
    }

    /// The verdict's name.
    pub fn as_str(self) -> &'static str {
        match self {
            LiveVerdict::Allow => "allow",
            LiveVerdict::Escalate => "escalate",
            LiveVerdict::Deny => "deny",
        }
    }
}

/// One tool call as a draft sees it: who called what, the projected
/// argument facts, and the per-call context the drafted rule will test.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Call {
    /// The agent id.
    pub agent: String,
    /// The tool id (`server/name`).
    pub tool: String,
    /// The arguments, projected.
    pub args: ArgFacts,
    /// The payload's classification, from the scanner.
    pub data_class: Classification,
    /// Personal-data finding types.
    #[serde(default)]
    pub pii: BTreeSet<String>,
    /// Secret finding types.
    #[serde(default)]
    pub secrets: BTreeSet<String>,
    /// Delegation hops from the root remit.
    pub chain_depth: u32,
    /// Hour of day, UTC.
    pub hour_utc: u8,
}

impl Call {
    /// The tool's server: the part of the tool id before `/`.
    pub fn server(&self) -> &str {
        self.tool.split_once('/').map(|(s, _)| s).unwrap_or("")
    }
}

/// A recorded call: the call, when it happened and what the policy in force
/// said. This is the JSON the store keeps per observation (migration 0007).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Observation {
    /// The call.
    #[serde(flatten)]
    pub call: Call,
    /// Unix seconds.
    pub at: i64,
    /// The live policy's verdict.
    pub verdict: LiveVerdict,
}

/// The facts the gateway records beside an observation's agent, tool,
/// decision and time (the store's `facts` column, migration 0007): the
/// projected arguments and the per-call context, never raw values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordedFacts {
    /// The arguments, projected ([`ArgFacts::project`]).
    pub args: ArgFacts,
    /// The payload's classification.
    pub data_class: Classification,
    /// Personal-data finding types.
    #[serde(default)]
    pub pii: BTreeSet<String>,
    /// Secret finding types.
    #[serde(default)]
    pub secrets: BTreeSet<String>,
    /// Delegation hops from the root remit.
    pub chain_depth: u32,
    /// Hour of day, UTC.
    pub hour_utc: u8,
}

impl RecordedFacts {
    /// The facts of a call, as the gateway records them.
    pub fn of(call: &Call) -> Self {
        Self {
            args: call.args.clone(),
            data_class: call.data_class,
            pii: call.pii.clone(),
            secrets: call.secrets.clone(),
            chain_depth: call.chain_depth,
            hour_utc: call.hour_utc,
        }
    }

    /// Rebuilds the observation from a stored row: agent, tool, time, the
    /// decision column as the gateway writes it, and the facts' JSON.
    pub fn observation(
        agent: &str,
        tool: &str,
        at: i64,
        decision: &str,
        facts_json: &str,
    ) -> Result<Observation, crate::DraftError> {
        let f: RecordedFacts =
            serde_json::from_str(facts_json).map_err(|e| crate::DraftError::Facts {
                message: e.to_string(),
            })?;
        if f.hour_utc > 23 {
            return Err(crate::DraftError::Facts {
                message: format!("hour_utc {} is not in 0..=23", f.hour_utc),
            });
        }
        Ok(Observation {
            call: Call {
                agent: agent.to_owned(),
                tool: tool.to_owned(),
                args: f.args,
                data_class: f.data_class,
                pii: f.pii,
                secrets: f.secrets,
                chain_depth: f.chain_depth,
                hour_utc: f.hour_utc,
            },
            at,
            verdict: LiveVerdict::from_recorded(decision),
        })
    }
}
