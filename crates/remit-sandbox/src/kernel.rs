//! What the running kernel offers: the Landlock ABI, found by asking the
//! kernel through the `landlock` crate's strict compatibility mode, and the
//! features of the policy each ABI brings.

use std::fmt;

use landlock::{
    Access, AccessFs, AccessNet, CompatLevel, Compatible, Ruleset, RulesetAttr, RulesetCreatedAttr,
    Scope, ABI,
};
use serde::{Deserialize, Serialize};

/// Environment variable that lowers the ABI the sandbox assumes (never
/// raises it): to see on a new kernel what an older one would refuse.
pub const MAX_ABI_ENV: &str = "REMIT_SANDBOX_MAX_ABI";

/// A kernel feature a policy may need, ordered by the ABI that brought it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Feature {
    /// Filesystem access rights (ABI 1).
    Filesystem,
    /// Linking and renaming across directories (ABI 2).
    Refer,
    /// Truncation (ABI 3; before it any file the process can name can be truncated).
    Truncate,
    /// TCP bind and connect by port (ABI 4; before it the network is open).
    TcpPorts,
    /// `ioctl` on devices (ABI 5; before it e.g. terminal injection is open).
    IoctlDev,
    /// Abstract UNIX sockets and signals scoped to the sandbox (ABI 6).
    Scopes,
}

impl Feature {
    /// The Landlock ABI that brought this feature.
    pub fn abi(self) -> u32 {
        match self {
            Feature::Filesystem => 1,
            Feature::Refer => 2,
            Feature::Truncate => 3,
            Feature::TcpPorts => 4,
            Feature::IoctlDev => 5,
            Feature::Scopes => 6,
        }
    }
}

impl fmt::Display for Feature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = match self {
            Feature::Filesystem => "filesystem access rights",
            Feature::Refer => "cross-directory link and rename control",
            Feature::Truncate => "truncate control",
            Feature::TcpPorts => "TCP connect/bind by port",
            Feature::IoctlDev => "device ioctl control",
            Feature::Scopes => "signal and abstract UNIX socket scoping",
        };
        write!(f, "{what} (Landlock ABI {})", self.abi())
    }
}

/// The Landlock ABI version the sandbox works with (0: no Landlock).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct KernelAbi(u32);

impl KernelAbi {
    /// The running kernel's ABI, lowered to `REMIT_SANDBOX_MAX_ABI` if set.
    pub fn current() -> KernelAbi {
        let probed = probe();
        let cap = std::env::var(MAX_ABI_ENV)
            .ok()
            .and_then(|v| v.trim().parse::<u32>().ok())
            .unwrap_or(u32::MAX);
        KernelAbi(probed.min(cap))
    }

    /// An ABI given by number (tests, and [`Self::current`]'s cap).
    pub fn from_version(version: u32) -> KernelAbi {
        KernelAbi(version)
    }

    /// The version number.
    pub fn version(self) -> u32 {
        self.0
    }

    /// Whether this ABI has `feature`.
    pub fn offers(self, feature: Feature) -> bool {
        self.0 >= feature.abi()
    }

    /// The `landlock` crate's name for this ABI.
    pub(crate) fn as_landlock(self) -> ABI {
        ABI::from(i32::try_from(self.0).unwrap_or(i32::MAX))
    }
}

/// Asks the kernel, highest ABI first, whether a ruleset needing it can be
/// created (created only, never enforced).
fn probe() -> u32 {
    let strict = || Ruleset::default().set_compatibility(CompatLevel::HardRequirement);
    let fs = |access: landlock::BitFlags<AccessFs>| {
        strict()
            .handle_access(access)
            .and_then(|r| r.create())
            .is_ok()
    };
    let v7 = strict()
        .handle_access(AccessFs::Execute)
        .and_then(|r| r.create())
        .and_then(|r| {
            r.set_compatibility(CompatLevel::HardRequirement)
                .log_same_exec(false)
        })
        .is_ok();
    let v6 = strict()
        .handle_access(AccessFs::Execute)
        .and_then(|r| r.scope(Scope::from_all(ABI::V6)))
        .and_then(|r| r.create())
        .is_ok();
    let v4 = strict()
        .handle_access(AccessNet::ConnectTcp)
        .and_then(|r| r.create())
        .is_ok();
    let checks = [
        (7, v7),
        (6, v6),
        (5, fs(AccessFs::IoctlDev.into())),
        (4, v4),
        (3, fs(AccessFs::Truncate.into())),
        (2, fs(AccessFs::Refer.into())),
        (1, fs(AccessFs::Execute.into())),
    ];
    checks
        .into_iter()
        .find(|(_, ok)| *ok)
        .map_or(0, |(abi, _)| abi)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_are_ordered_by_abi() {
        assert!(Feature::Filesystem < Feature::Scopes);
        assert_eq!(Feature::Scopes.abi(), 6);
        assert!(!KernelAbi::from_version(5).offers(Feature::Scopes));
        assert!(KernelAbi::from_version(7).offers(Feature::Scopes));
    }
}
