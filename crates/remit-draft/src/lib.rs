//! # remit-draft: policy as an output
//!
//! An agent runs in shadow mode; the gateway records what it really did.
//! This crate turns those observations into the least-privilege Cedar
//! policy that would have allowed every observed call and little else: one
//! readable `permit` per (tool, argument-shape cluster), commented with the
//! count and time span of the calls behind it and a confidence, rules
//! resting on a handful of calls flagged. A human reviews the draft,
//! tightens it and promotes it.
//!
//! The crate is pure: observations in, policy text out. No I/O, no clock.
//!
//! ## The model
//!
//! - [`facts`]: the one projection of a call's JSON arguments into facts
//!   (a path's directory, a URL's host, an email's domain, a token's shape
//!   and keyed hash, a number, a text's length). Observations store it; the
//!   gateway passes the same facts to Cedar at decision time as the tags of
//!   `context.args_text` and `context.args_number` ([`eval::schema_text`]).
//! - [`generalize`]: per kind, the narrowest readable constraint admitting
//!   the pattern seen: longest common directories, host sets, enumerations,
//!   1-2-5 rounded ranges, identifier shape classes.
//! - [`draft()`]: clustering per tool and argument names, one rule per
//!   cluster, with data class, personal data, secrets, delegation depth and
//!   the hours of the day constrained to what was seen.
//! - [`check`]: the draft's relation to the preset it refines (draft ⊆
//!   preset over the observed request space, evaluated with Cedar), the
//!   diff against the live policy, and the calls the live policy refused
//!   that the draft would allow.
//!
//! ## How a draft is enforced
//!
//! A draft is a *boundary* inside its preset, as an AWS permission
//! boundary is inside an identity policy: a call is allowed when the preset
//! (with its forbids, budgets and escalations) allows it **and** a drafted
//! rule permits it; it escalates when the preset escalates and a rule
//! permits it; otherwise it is denied. So a draft can only remove what the
//! preset grants, never add ([`check::Boundary`]).
//!
//! ## Threat model
//!
//! | attack | what the draft does |
//! | --- | --- |
//! | path traversal out of a drafted directory (`/repo/acme/../../etc/passwd`) | paths are normalized before their directory is taken; climbing above the root leaves no directory, so no rule matches |
//! | forging a derived fact with an argument named `path#dir` | separators in argument names are escaped before facts are keyed |
//! | hiding a value below the projection's depth | a too-deep value is of kind `deep`, which no rule admits |
//! | an unobserved argument added to an allowed call | the rule pins the top-level names and the nested keys with their kinds |
//! | a value of another kind under a known name (a URL where a path was) | every constraint tests the key's kind first |
//! | reading sensitive values back from the observation store | sensitive tokens are stored as keyed hashes, paths as directories, URLs as hosts, emails as domains, text as a length |
//! | a draft widening the preset | the draft is enforced as a boundary inside the preset; [`check::check_boundary`] verifies it with Cedar over the observed request space |

pub mod cedar_text;
pub mod check;
mod draft;
pub mod eval;
pub mod facts;
pub mod generalize;
pub mod observation;
pub mod time;

pub use draft::{draft, Confidence, Draft, DraftOptions, Rule, CONFIDENT, HANDFUL};
pub use eval::DraftPolicy;
pub use facts::{ArgFacts, HashKey};
pub use observation::{Call, LiveVerdict, Observation, RecordedFacts};

/// What can go wrong drafting or evaluating a draft.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DraftError {
    /// The hash key is too short to be a secret.
    #[error("the observation hash key has {len} bytes; use at least 16 random bytes")]
    WeakKey {
        /// Its length.
        len: usize,
    },
    /// The schema could not be extended or parsed.
    #[error("draft schema: {message}")]
    Schema {
        /// Why.
        message: String,
    },
    /// A draft's Cedar text does not parse or validate.
    #[error("draft policy: {message}")]
    Policy {
        /// Why.
        message: String,
    },
    /// Stored facts do not parse.
    #[error("observation facts: {message}")]
    Facts {
        /// Why.
        message: String,
    },
    /// The preset or live policy could not be loaded.
    #[error("policy: {message}")]
    Load {
        /// Why.
        message: String,
    },
}
