//! The texts this crate ships: each preset for each engine, and a sample
//! entity directory. A leaf module: [`crate::preset`] maps a preset to its
//! text, and the engines' own tests load these without depending on it.

/// The lockdown preset, Cedar.
pub(crate) const CEDAR_LOCKDOWN: &str = include_str!("../policies/cedar/lockdown.cedar");
/// The standard preset, Cedar.
pub(crate) const CEDAR_STANDARD: &str = include_str!("../policies/cedar/standard.cedar");
/// The permissive preset, Cedar.
pub(crate) const CEDAR_PERMISSIVE: &str = include_str!("../policies/cedar/permissive.cedar");
/// The lockdown preset, Rego.
pub(crate) const REGO_LOCKDOWN: &str = include_str!("../policies/rego/lockdown.rego");
/// The standard preset, Rego.
pub(crate) const REGO_STANDARD: &str = include_str!("../policies/rego/standard.rego");
/// The permissive preset, Rego.
pub(crate) const REGO_PERMISSIVE: &str = include_str!("../policies/rego/permissive.rego");

/// A sample entity directory written by `remit policy new`: edit it to
/// mirror your registry for `remit policy eval`.
pub const SAMPLE_ENTITIES: &str = include_str!("../policies/sample-entities.json");
