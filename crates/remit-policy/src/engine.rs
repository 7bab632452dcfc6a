//! The engine seam: one request type, one decision type, two engines.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::decision::{Decision, EscalationMode, Evaluation};
use crate::model::Directory;
use crate::request::{DecisionRequest, RequestError};
use crate::version::PolicyVersion;

/// Which policy language backs an engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum EngineKind {
    /// Cedar (the default).
    #[default]
    Cedar,
    /// Rego through `regorus`, for teams that already run OPA.
    Rego,
}

impl EngineKind {
    /// The file extension of this engine's policies (`cedar` or `rego`).
    pub fn extension(self) -> &'static str {
        match self {
            EngineKind::Cedar => "cedar",
            EngineKind::Rego => "rego",
        }
    }
}

impl fmt::Display for EngineKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.extension())
    }
}

/// One policy file's text and a name for error messages (usually its path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicySource {
    /// Where it came from (`preset.cedar`, `overrides/tuning.cedar`).
    pub name: String,
    /// The policy text.
    pub text: String,
}

impl PolicySource {
    /// A named source.
    pub fn new(name: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            text: text.into(),
        }
    }
}

/// A policy engine: answers a [`DecisionRequest`] with a [`Decision`].
///
/// Implementors only *evaluate* (report matched policies and errors);
/// [`PolicyEngine::decide`] checks the request against the directory and
/// combines the evaluation with the rules in [`crate::decision`], so every
/// engine follows the same semantics.
pub trait PolicyEngine: fmt::Debug + Send + Sync {
    /// Which language this is.
    fn kind(&self) -> EngineKind;
    /// The content hash of the loaded policies.
    fn version(&self) -> &PolicyVersion;
    /// Replaces the version decisions carry: the runtime sets the hash of
    /// the policy folder's files ([`PolicyVersion::of_files`]).
    fn set_version(&mut self, version: PolicyVersion);
    /// How escalating and plain permits combine.
    fn mode(&self) -> EscalationMode;
    /// The entities decisions refer to.
    fn directory(&self) -> &Directory;
    /// Replaces the cached entities (when the registry changes).
    fn set_directory(&mut self, directory: Directory) -> Result<(), LoadError>;
    /// Raw evaluation: which policies matched, which failed.
    fn evaluate(&self, request: &DecisionRequest) -> Evaluation;

    /// The decision, failing closed: an unknown principal or resource, an
    /// evaluation error or no permit is a deny.
    fn decide(&self, request: &DecisionRequest) -> Decision {
        if let Err(e) = check_known(self.directory(), request) {
            return Decision::invalid_request(&e, self.version());
        }
        Decision::combine(self.evaluate(request), self.mode(), self.version())
    }
}

/// Refuses requests about entities the directory does not hold: an unknown
/// tool is never evaluated, so no engine can treat it as "no attributes".
pub fn check_known(dir: &Directory, request: &DecisionRequest) -> Result<(), RequestError> {
    for entity in [request.principal(), request.resource()] {
        if !dir.contains(entity) {
            return Err(RequestError::UnknownEntity {
                entity: entity.clone(),
            });
        }
    }
    Ok(())
}

/// Why a policy set could not be loaded. Nothing is decided with a set that
/// failed to load.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// The built-in schema did not parse (a bug in this crate).
    #[error("schema: {message}")]
    Schema {
        /// Cedar's message.
        message: String,
    },
    /// A file did not parse.
    #[error("{file}: syntax error: {message}")]
    Syntax {
        /// The file.
        file: String,
        /// The parser's message.
        message: String,
    },
    /// A policy breaks a Remit rule (missing `@id`/`@reason`, `@escalate` on forbid, template).
    #[error("{file}: {message}")]
    Policy {
        /// The file.
        file: String,
        /// What to fix.
        message: String,
    },
    /// Two policies share an `@id` (for example an override reusing a preset id).
    #[error("policy id {id:?} is defined twice: in {first} and in {second}; ids must be unique")]
    DuplicateId {
        /// The id.
        id: String,
        /// The first file.
        first: String,
        /// The second file.
        second: String,
    },
    /// The policies do not type-check against the schema.
    #[error("schema validation failed:\n  {}", messages.join("\n  "))]
    Validation {
        /// One line per problem, naming the policy.
        messages: Vec<String>,
    },
    /// The entity directory does not fit the schema.
    #[error("entities: {message}")]
    Entities {
        /// What is wrong.
        message: String,
    },
    /// Rego could not load a module or the data.
    #[error("{file}: rego: {message}")]
    Rego {
        /// The module (or `data`).
        file: String,
        /// regorus' message.
        message: String,
    },
    /// The manifest is malformed.
    #[error("manifest: {message}")]
    Manifest {
        /// What is wrong.
        message: String,
    },
}
