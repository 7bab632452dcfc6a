//! The sandbox policy: what a sandboxed process may touch, as data.
//!
//! A [`SandboxPolicy`] is built in the parent (from a remit and the facts of
//! the program, see [`crate::derive`]), hashed for receipts, checked against
//! the running kernel ([`SandboxPolicy::check`]) and handed to the helper
//! that enforces it on itself before it execs the program
//! ([`crate::exec`]). It is plain data so the hash is stable: the same remit
//! and program give the same hash on every run.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::SandboxError;
use crate::kernel::{Feature, KernelAbi};

/// Version of the fixed parts of the sandbox (the seccomp deny list, the
/// rights each [`FsAccess`] maps to): part of the hash, bumped when they change.
pub const SANDBOX_VERSION: &str = "remit-sandbox/1";

/// What a process may do beneath one path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FsAccess {
    /// Read files, list directories.
    Read,
    /// Read, and execute files (`execve`).
    ReadExec,
    /// Read, write, create, remove, rename and truncate (never execute, never
    /// create devices, never `ioctl` on devices).
    Write,
    /// Read and write existing files only: `/dev/null`-like devices.
    ReadWriteFile,
}

impl FsAccess {
    /// The wider of two accesses on the same path (`Write` and `ReadExec`
    /// never meet on one path in practice; when they do, `Write` wins and
    /// execution is dropped: a writable place is not an executable one).
    pub fn union(self, other: FsAccess) -> FsAccess {
        use FsAccess as A;
        match (self, other) {
            (A::Write, _) | (_, A::Write) => A::Write,
            (A::ReadWriteFile, _) | (_, A::ReadWriteFile) => A::ReadWriteFile,
            (A::ReadExec, _) | (_, A::ReadExec) => A::ReadExec,
            (A::Read, A::Read) => A::Read,
        }
    }
}

/// Resource limits on the sandboxed process tree.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Address space in bytes (`RLIMIT_AS`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<u64>,
    /// Processes (`RLIMIT_NPROC`; for uid 0, whom the kernel exempts, a pids
    /// cgroup is used: see [`crate::exec::ProcessCap`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub processes: Option<u64>,
    /// Open files (`RLIMIT_NOFILE`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_files: Option<u64>,
}

/// Whether a missing kernel feature stops the start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// Refuse to start when the kernel lacks a feature the policy needs.
    #[default]
    Strict,
    /// Start anyway, warn, and record what was not enforced.
    BestEffort,
}

/// Everything a sandboxed process may do.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxPolicy {
    /// Paths and what may be done beneath each (absolute, normalized).
    pub paths: BTreeMap<PathBuf, FsAccess>,
    /// TCP ports the process may connect to (Landlock filters by port only:
    /// the ports are the egress proxy's and the gateway's, both local).
    pub connect_ports: BTreeSet<u16>,
    /// Resource limits.
    pub limits: Limits,
}

/// What the kernel will enforce of a policy, for receipts and the start-up line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enforcement {
    /// The policy's hash ([`SandboxPolicy::hash`]).
    pub ruleset_hash: String,
    /// The Landlock ABI the running kernel offers (0: none).
    pub kernel_abi: u32,
    /// The Landlock ABI the policy needs in full.
    pub required_abi: u32,
    /// The mode it was started in.
    pub mode: Mode,
    /// Features the policy needs that the kernel lacks (empty in strict mode).
    pub not_enforced: Vec<Feature>,
    /// Why the process limit is not enforced, when it is not (best effort only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process_limit_unenforced: Option<String>,
}

impl SandboxPolicy {
    /// Grants `access` beneath `path`, widening what is already granted there.
    ///
    /// Refuses relative paths and paths with `..` components: the kernel
    /// rule and the gateway's string check must name the same place. The
    /// path is stored as its components (`/a/./b/` is `/a/b`), so one place
    /// has one entry and one hash.
    pub fn grant(
        &mut self,
        path: impl Into<PathBuf>,
        access: FsAccess,
    ) -> Result<(), SandboxError> {
        let path = path.into();
        normalized(&path)?;
        let path: PathBuf = path.components().collect();
        let entry = self.paths.entry(path).or_insert(access);
        *entry = entry.union(access);
        Ok(())
    }

    /// Allows TCP connect to `port` (on any address: Landlock knows ports only).
    pub fn allow_connect(&mut self, port: u16) {
        self.connect_ports.insert(port);
    }

    /// The kernel features this policy needs, each with the ABI that brought it.
    pub fn required_features(&self) -> Vec<Feature> {
        let mut features = vec![
            Feature::Filesystem,
            Feature::Truncate,
            Feature::TcpPorts,
            Feature::IoctlDev,
            Feature::Scopes,
        ];
        if self.paths.values().any(|a| *a == FsAccess::Write) {
            features.push(Feature::Refer);
        }
        features.sort();
        features
    }

    /// The highest ABI among [`Self::required_features`].
    pub fn required_abi(&self) -> u32 {
        self.required_features()
            .iter()
            .map(|f| f.abi())
            .max()
            .unwrap_or(1)
    }

    /// A stable SHA-256 (hex) of the policy and the sandbox version: the
    /// same policy gives the same hash on every run and every machine.
    pub fn hash(&self) -> String {
        #[derive(Serialize)]
        struct Hashed<'a> {
            version: &'a str,
            policy: &'a SandboxPolicy,
        }
        let value = serde_json::to_value(Hashed {
            version: SANDBOX_VERSION,
            policy: self,
        })
        .unwrap_or(serde_json::Value::Null);
        let canonical = serde_json_canonicalizer::to_vec(&value).unwrap_or_default();
        hex::encode(aws_lc_rs::digest::digest(
            &aws_lc_rs::digest::SHA256,
            &canonical,
        ))
    }

    /// Checks the policy against `kernel`: in strict mode a missing feature
    /// is an error naming it; in best-effort mode it is recorded.
    pub fn check(&self, kernel: KernelAbi, mode: Mode) -> Result<Enforcement, SandboxError> {
        let missing: Vec<Feature> = self
            .required_features()
            .into_iter()
            .filter(|f| !kernel.offers(*f))
            .collect();
        if mode == Mode::Strict && !missing.is_empty() {
            return Err(SandboxError::KernelLacks {
                kernel: kernel.version(),
                missing,
            });
        }
        Ok(Enforcement {
            ruleset_hash: self.hash(),
            kernel_abi: kernel.version(),
            required_abi: self.required_abi(),
            mode,
            not_enforced: missing,
            process_limit_unenforced: None,
        })
    }
}

/// Refuses what is not an absolute path free of `..` components (`.` in
/// the middle is dropped by [`Path::components`]; a leading one is relative).
pub(crate) fn normalized(path: &Path) -> Result<(), SandboxError> {
    use std::path::Component;
    let ok = path.is_absolute()
        && path
            .components()
            .all(|c| matches!(c, Component::RootDir | Component::Normal(_)));
    if ok {
        Ok(())
    } else {
        Err(SandboxError::PathNotNormal(path.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_stable_and_changes_with_the_policy() {
        let mut a = SandboxPolicy::default();
        a.grant("/data", FsAccess::Read).unwrap();
        a.allow_connect(3128);
        let mut b = SandboxPolicy::default();
        b.allow_connect(3128);
        b.grant("/data", FsAccess::Read).unwrap();
        assert_eq!(a.hash(), b.hash());
        b.grant("/data", FsAccess::Write).unwrap();
        assert_ne!(a.hash(), b.hash());
    }

    #[test]
    fn dot_dot_and_relative_paths_are_refused() {
        let mut p = SandboxPolicy::default();
        assert!(p.grant("/data/../etc", FsAccess::Read).is_err());
        assert!(p.grant("data", FsAccess::Read).is_err());
        assert!(p.paths.is_empty());
        p.grant("/data/./x/", FsAccess::Read).unwrap();
        assert_eq!(p.paths.keys().collect::<Vec<_>>(), [Path::new("/data/x")]);
    }

    #[test]
    fn strict_mode_names_the_missing_feature_and_best_effort_records_it() {
        let p = SandboxPolicy::default();
        let old = KernelAbi::from_version(3);
        match p.check(old, Mode::Strict) {
            Err(SandboxError::KernelLacks { missing, .. }) => {
                assert!(missing.contains(&Feature::TcpPorts));
                assert!(missing.contains(&Feature::Scopes));
            }
            other => panic!("{other:?}"),
        }
        let e = p.check(old, Mode::BestEffort).unwrap();
        assert_eq!(e.kernel_abi, 3);
        assert!(e.not_enforced.contains(&Feature::IoctlDev));
        let e = p.check(KernelAbi::from_version(6), Mode::Strict).unwrap();
        assert!(e.not_enforced.is_empty());
        assert_eq!(e.required_abi, 6);
    }
}
