//! Why a sandbox could not be built or started.

use std::path::PathBuf;

use crate::kernel::Feature;

/// Why a sandbox could not be built, checked or applied.
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The kernel lacks features the remit needs, and best effort was not asked for.
    #[error(
        "the kernel's Landlock ABI is {kernel}, which lacks {}; \
         refusing to start (give --sandbox=best-effort to run with a warning and a record)",
        missing.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    )]
    KernelLacks {
        /// The kernel's ABI.
        kernel: u32,
        /// What it lacks.
        missing: Vec<Feature>,
    },
    /// A path in the policy is relative or holds `.` or `..`.
    #[error("sandbox path {0:?} must be absolute without . or .. components")]
    PathNotNormal(PathBuf),
    /// The program to run was not found.
    #[error("program {0:?} not found on PATH")]
    ProgramNotFound(String),
    /// Landlock refused the ruleset.
    #[error("Landlock: {0}")]
    Landlock(#[from] landlock::RulesetError),
    /// Seccomp refused the filter.
    #[error("seccomp: {0}")]
    Seccomp(String),
    /// A resource limit could not be set.
    #[error("setting {what}: {source}")]
    Limit {
        /// Which limit.
        what: &'static str,
        /// The system's answer.
        #[source]
        source: std::io::Error,
    },
    /// The process limit cannot bind this user.
    #[error(
        "the process limit cannot be enforced: the kernel exempts uid 0 from RLIMIT_NPROC \
         and no pids cgroup could be made ({0})"
    )]
    ProcessLimitUnenforceable(String),
    /// The policy given to the helper does not parse.
    #[error("sandbox policy: {0}")]
    Policy(String),
    /// An I/O error while preparing the sandbox.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The system's answer.
        #[source]
        source: std::io::Error,
    },
}
