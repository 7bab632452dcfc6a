//! The three shipped postures and the manifest of a policy folder.
//!
//! A policy folder (written by `remit policy new`) holds:
//!
//! ```text
//! manifest.json      {"preset": "standard", "engine": "cedar", "escalation": "plain-permit-wins"}
//! preset.cedar       the preset, copied verbatim (or preset.rego)
//! overrides/*.cedar  the operator's tuning, validated together with the preset
//! entities.json      the entity directory used by `remit policy eval` (a sample)
//! ```
//!
//! This module only knows texts; reading the folder is the caller's job.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::cedar::CedarEngine;
use crate::decision::EscalationMode;
use crate::engine::{EngineKind, LoadError, PolicyEngine, PolicySource};
use crate::model::Directory;
use crate::rego::RegoEngine;
use crate::shipped;

/// A named security posture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// Only low-risk listed tools; high risk escalates with step-up.
    Lockdown,
    /// The default: budgets, escalation for high risk, data stays in clearance.
    #[default]
    Standard,
    /// Anything listed; only secrets and RESTRICTED data are kept in.
    Permissive,
}

impl Preset {
    /// Every preset.
    pub const ALL: [Preset; 3] = [Preset::Lockdown, Preset::Standard, Preset::Permissive];

    /// The preset's name.
    pub fn as_str(self) -> &'static str {
        match self {
            Preset::Lockdown => "lockdown",
            Preset::Standard => "standard",
            Preset::Permissive => "permissive",
        }
    }

    /// The preset's policy text for an engine.
    pub fn text(self, engine: EngineKind) -> &'static str {
        match (self, engine) {
            (Preset::Lockdown, EngineKind::Cedar) => shipped::CEDAR_LOCKDOWN,
            (Preset::Standard, EngineKind::Cedar) => shipped::CEDAR_STANDARD,
            (Preset::Permissive, EngineKind::Cedar) => shipped::CEDAR_PERMISSIVE,
            (Preset::Lockdown, EngineKind::Rego) => shipped::REGO_LOCKDOWN,
            (Preset::Standard, EngineKind::Rego) => shipped::REGO_STANDARD,
            (Preset::Permissive, EngineKind::Rego) => shipped::REGO_PERMISSIVE,
        }
    }

    /// The escalation mode the preset is designed for: lockdown makes
    /// escalation impossible to bypass with an override permit.
    pub fn default_mode(self) -> EscalationMode {
        match self {
            Preset::Lockdown => EscalationMode::EscalateWins,
            Preset::Standard | Preset::Permissive => EscalationMode::PlainPermitWins,
        }
    }

    /// The preset as the first source of a policy set.
    pub fn source(self, engine: EngineKind) -> PolicySource {
        PolicySource::new(format!("preset.{}", engine.extension()), self.text(engine))
    }
}

impl fmt::Display for Preset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Preset {
    type Err = LoadError;
    fn from_str(s: &str) -> Result<Self, LoadError> {
        Preset::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| LoadError::Manifest {
                message: format!("unknown preset {s:?}: choose lockdown, standard or permissive"),
            })
    }
}

/// The manifest of a policy folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The posture the folder started from.
    pub preset: Preset,
    /// Which engine evaluates it.
    #[serde(default)]
    pub engine: EngineKind,
    /// How escalating and plain permits combine; defaults to the preset's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub escalation: Option<EscalationMode>,
}

impl Manifest {
    /// A manifest for a preset and engine with the preset's escalation mode.
    pub fn new(preset: Preset, engine: EngineKind) -> Self {
        Self {
            preset,
            engine,
            escalation: Some(preset.default_mode()),
        }
    }

    /// Parses `manifest.json`.
    pub fn from_json(text: &str) -> Result<Self, LoadError> {
        serde_json::from_str(text).map_err(|e| LoadError::Manifest {
            message: e.to_string(),
        })
    }

    /// The escalation mode in force.
    pub fn mode(&self) -> EscalationMode {
        self.escalation.unwrap_or(self.preset.default_mode())
    }

    /// Loads the engine the manifest names over the given sources (the
    /// preset file first, then overrides).
    pub fn load(
        &self,
        sources: &[PolicySource],
        directory: Directory,
    ) -> Result<Box<dyn PolicyEngine>, LoadError> {
        load(self.engine, sources, self.mode(), directory)
    }
}

/// Loads an engine of the given kind.
pub fn load(
    kind: EngineKind,
    sources: &[PolicySource],
    mode: EscalationMode,
    directory: Directory,
) -> Result<Box<dyn PolicyEngine>, LoadError> {
    Ok(match kind {
        EngineKind::Cedar => Box::new(CedarEngine::load(sources, mode, directory)?),
        EngineKind::Rego => Box::new(RegoEngine::load(sources, mode, directory)?),
    })
}

pub use crate::shipped::SAMPLE_ENTITIES;
