//! Applying a policy to the calling process: rlimits, then the seccomp
//! filter, then the Landlock domain (which also sets `no_new_privs`).
//!
//! Runs in the helper ([`crate::exec`]), single-threaded, right before
//! `execve`: everything here is inherited by the program and every process
//! it starts, and none of it can be undone from inside.

use std::collections::BTreeMap;

use landlock::{
    Access, AccessFs, AccessNet, BitFlags, CompatLevel, Compatible, NetPort, PathBeneath, PathFd,
    Ruleset, RulesetAttr, RulesetCreatedAttr, Scope, ABI,
};
use rustix::process::{Resource, Rlimit};
use seccompiler::{
    SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op, SeccompCondition as Cond,
    SeccompFilter, SeccompRule,
};

use crate::error::SandboxError;
use crate::kernel::{Feature, KernelAbi};
use crate::policy::{FsAccess, Limits, Mode, SandboxPolicy};

/// Applies `policy` to this process for good.
pub fn enforce(policy: &SandboxPolicy, kernel: KernelAbi, mode: Mode) -> Result<(), SandboxError> {
    // In strict mode this refuses before anything is applied.
    policy.check(kernel, mode)?;
    set_limits(&policy.limits)?;
    seccomp()?;
    landlock(policy, kernel)
}

fn set_limits(limits: &Limits) -> Result<(), SandboxError> {
    let pairs = [
        (
            Resource::As,
            limits.memory_bytes,
            "the memory limit (RLIMIT_AS)",
        ),
        (
            Resource::Nproc,
            limits.processes,
            "the process limit (RLIMIT_NPROC)",
        ),
        (
            Resource::Nofile,
            limits.open_files,
            "the open-file limit (RLIMIT_NOFILE)",
        ),
    ];
    for (resource, value, what) in pairs {
        let Some(value) = value else { continue };
        let limit = Rlimit {
            current: Some(value),
            maximum: Some(value),
        };
        rustix::process::setrlimit(resource, limit).map_err(|e| SandboxError::Limit {
            what,
            source: e.into(),
        })?;
    }
    Ok(())
}

/// Rights for one [`FsAccess`], limited to what `abi` knows and, on a file,
/// to the rights that apply to files.
fn fs_rights(access: FsAccess, abi: ABI, is_dir: bool) -> BitFlags<AccessFs> {
    let read = AccessFs::ReadFile | AccessFs::ReadDir;
    let rights = match access {
        FsAccess::Read => read,
        FsAccess::ReadExec => read | AccessFs::Execute,
        FsAccess::ReadWriteFile => AccessFs::ReadFile | AccessFs::WriteFile | AccessFs::Truncate,
        FsAccess::Write => {
            read | AccessFs::WriteFile
                | AccessFs::RemoveDir
                | AccessFs::RemoveFile
                | AccessFs::MakeDir
                | AccessFs::MakeReg
                | AccessFs::MakeSym
                | AccessFs::Refer
                | AccessFs::Truncate
        }
    };
    let known = AccessFs::from_all(abi);
    let applicable = if is_dir {
        known
    } else {
        AccessFs::from_file(abi)
    };
    rights & known & applicable
}

fn landlock(policy: &SandboxPolicy, kernel: KernelAbi) -> Result<(), SandboxError> {
    let abi = kernel.as_landlock();
    if !kernel.offers(Feature::Filesystem) {
        // Best effort on a kernel without Landlock: only seccomp and rlimits
        // hold, as the enforcement record says.
        return Ok(());
    }
    // Strict: the crate must refuse anything the kernel cannot do; the
    // policy check above already decided what is skipped in best effort.
    let mut ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::from_all(abi))?;
    if kernel.offers(Feature::TcpPorts) {
        ruleset = ruleset.handle_access(AccessNet::BindTcp | AccessNet::ConnectTcp)?;
    }
    if kernel.offers(Feature::Scopes) {
        ruleset = ruleset.scope(Scope::AbstractUnixSocket | Scope::Signal)?;
    }
    let mut created = ruleset.create()?;
    for (path, access) in &policy.paths {
        let Ok(fd) = PathFd::new(path) else {
            continue; // A path that does not exist grants nothing.
        };
        let is_dir = std::fs::metadata(path).is_ok_and(|m| m.is_dir());
        let rights = fs_rights(*access, abi, is_dir);
        if rights.is_empty() {
            continue;
        }
        created = created.add_rule(PathBeneath::new(fd, rights))?;
    }
    if kernel.offers(Feature::TcpPorts) {
        for port in &policy.connect_ports {
            created = created.add_rule(NetPort::new(*port, AccessNet::ConnectTcp))?;
        }
    }
    // The crate sets no_new_privs before restricting (its default).
    created.restrict_self()?;
    Ok(())
}

/// System calls an MCP server or an agent script never needs, refused with
/// `EPERM`: debugging other processes, mounting, loading kernel code,
/// namespaces, keyrings, raw and datagram sockets (Landlock filters TCP
/// only), pathname UNIX sockets (Landlock filters them only from ABI 9),
/// ownership and mode changes (Landlock does not filter them, and `O_PATH`
/// opens need no right), raising rlimits, and leaving the process group
/// the wall-clock limit kills.
fn deny_list() -> Vec<i64> {
    vec![
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_chroot,
        libc::SYS_fsopen,
        libc::SYS_fsmount,
        libc::SYS_fsconfig,
        libc::SYS_fspick,
        libc::SYS_move_mount,
        libc::SYS_open_tree,
        libc::SYS_mount_setattr,
        libc::SYS_kexec_load,
        libc::SYS_kexec_file_load,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_userfaultfd,
        libc::SYS_io_uring_setup,
        libc::SYS_io_uring_enter,
        libc::SYS_io_uring_register,
        libc::SYS_setns,
        libc::SYS_unshare,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_open_by_handle_at,
        libc::SYS_name_to_handle_at,
        libc::SYS_swapon,
        libc::SYS_swapoff,
        libc::SYS_reboot,
        libc::SYS_acct,
        libc::SYS_quotactl,
        libc::SYS_syslog,
        libc::SYS_settimeofday,
        libc::SYS_clock_settime,
        libc::SYS_clock_adjtime,
        libc::SYS_adjtimex,
        libc::SYS_sethostname,
        libc::SYS_setdomainname,
        libc::SYS_fanotify_init,
        libc::SYS_vhangup,
        libc::SYS_chmod,
        libc::SYS_fchmod,
        libc::SYS_fchmodat,
        libc::SYS_fchmodat2,
        libc::SYS_chown,
        libc::SYS_fchown,
        libc::SYS_lchown,
        libc::SYS_fchownat,
        libc::SYS_setxattr,
        libc::SYS_lsetxattr,
        libc::SYS_fsetxattr,
        libc::SYS_removexattr,
        libc::SYS_lremovexattr,
        libc::SYS_fremovexattr,
        libc::SYS_setrlimit,
        libc::SYS_setsid,
        libc::SYS_setpgid,
        #[cfg(target_arch = "x86_64")]
        libc::SYS_iopl,
        #[cfg(target_arch = "x86_64")]
        libc::SYS_ioperm,
    ]
}

fn cond(arg: u8, len: Len, op: Op, value: u64) -> Result<Cond, SandboxError> {
    Cond::new(arg, len, op, value).map_err(|e| SandboxError::Seccomp(e.to_string()))
}

fn rule(conditions: Vec<Cond>) -> Result<SeccompRule, SandboxError> {
    SeccompRule::new(conditions).map_err(|e| SandboxError::Seccomp(e.to_string()))
}

/// `socket()` is allowed for TCP over IPv4 and IPv6 only (what Landlock
/// filters by port); every other family and type is refused.
fn socket_rules() -> Result<Vec<SeccompRule>, SandboxError> {
    let (inet, inet6) = (libc::AF_INET as u64, libc::AF_INET6 as u64);
    let mut rules = vec![rule(vec![
        cond(0, Len::Dword, Op::Ne, inet)?,
        cond(0, Len::Dword, Op::Ne, inet6)?,
    ])?];
    for family in [inet, inet6] {
        for kind in (0..16u64).filter(|k| *k != libc::SOCK_STREAM as u64) {
            rules.push(rule(vec![
                cond(0, Len::Dword, Op::Eq, family)?,
                cond(1, Len::Dword, Op::MaskedEq(0xf), kind)?,
            ])?);
        }
    }
    Ok(rules)
}

/// Namespace flags `clone` may not carry.
const CLONE_NAMESPACES: u64 = (libc::CLONE_NEWNS
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWCGROUP) as u64;

fn seccomp() -> Result<(), SandboxError> {
    let arch = std::env::consts::ARCH
        .try_into()
        .map_err(|e: seccompiler::BackendError| SandboxError::Seccomp(e.to_string()))?;
    let mut rules: BTreeMap<i64, Vec<SeccompRule>> =
        deny_list().into_iter().map(|nr| (nr, Vec::new())).collect();
    rules.insert(libc::SYS_socket, socket_rules()?);
    // prlimit64(pid, resource, new, old): reading is fine, setting is not.
    rules.insert(
        libc::SYS_prlimit64,
        vec![rule(vec![cond(2, Len::Qword, Op::Ne, 0)?])?],
    );
    // clone with any namespace flag (each flag is its own rule: a rule is an AND).
    let mut clone_rules = Vec::new();
    for bit in 0..64u64 {
        let flag = 1u64 << bit;
        if CLONE_NAMESPACES & flag != 0 {
            clone_rules.push(rule(vec![cond(0, Len::Qword, Op::MaskedEq(flag), flag)?])?);
        }
    }
    rules.insert(libc::SYS_clone, clone_rules);
    let deny = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(|e| SandboxError::Seccomp(e.to_string()))?;
    // clone3 passes its flags in memory a filter cannot read: ENOSYS makes
    // libc fall back to clone, whose flags the filter above checks.
    let clone3 = SeccompFilter::new(
        [(libc::SYS_clone3, Vec::new())].into_iter().collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )
    .map_err(|e| SandboxError::Seccomp(e.to_string()))?;
    for filter in [clone3, deny] {
        let program: seccompiler::BpfProgram = filter
            .try_into()
            .map_err(|e: seccompiler::BackendError| SandboxError::Seccomp(e.to_string()))?;
        // seccomp needs no_new_privs (or CAP_SYS_ADMIN): set it first.
        rustix::thread::set_no_new_privs(true).map_err(|e| SandboxError::Seccomp(e.to_string()))?;
        seccompiler::apply_filter(&program).map_err(|e| SandboxError::Seccomp(e.to_string()))?;
    }
    Ok(())
}
