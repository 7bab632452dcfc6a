//! The kernel enforces the remit too: a sandbox for wrapped MCP servers and
//! agent-written code, derived from a verified remit chain.
//!
//! A gateway sees a call's arguments, not what the process does with them:
//! a symlink inside a granted directory, a tool that shells out, a script
//! that opens a socket. This crate turns the remit's grants into a policy
//! the Linux kernel enforces on the process and all its children, without
//! privileges: Landlock (filesystem rights, TCP ports, signal and abstract
//! socket scoping), `no_new_privs`, a seccomp filter and rlimits.
//!
//! | attack | what refuses it |
//! | --- | --- |
//! | read a file the remit does not grant (`~/.ssh`, `/etc/shadow`) | Landlock: only grant paths, the program's runtime and system libraries are readable |
//! | a symlink inside a granted directory pointing outside | Landlock checks the file opened, not the path named: `EACCES` |
//! | `..` in a path | the gateway's check, and Landlock again on the resolved file; a grant with `..` grants nothing |
//! | write where only a read tool is granted | Landlock: write rights only beneath paths of writing tools ([`derive::ToolWrites`]) |
//! | connect anywhere but the egress proxy | Landlock TCP connect rules (one port); seccomp refuses UDP, raw, netlink and UNIX sockets |
//! | exfiltrate through a granted host's name resolving to a local service | the proxy refuses names resolving to non-public addresses |
//! | run another program (`curl`, `sh`) | Landlock: execute right on the program, its interpreter and the ELF loader only |
//! | signal or trace the parent, read its environment | Landlock signal scope, seccomp (`ptrace`, `process_vm_readv`), the ptrace check on `/proc/<pid>/environ` |
//! | fork bomb, memory or fd exhaustion | `RLIMIT_NPROC`/`AS`/`NOFILE`, a pids cgroup for uid 0 (exempt from `RLIMIT_NPROC`), and seccomp refuses raising limits |
//! | escape the wall-clock kill | seccomp refuses `setsid`/`setpgid`; the pids cgroup is swept |
//! | kernel attack surface (mount, bpf, kexec, namespaces, io_uring, keyrings) | seccomp `EPERM` |
//! | chmod/chown of files the process cannot open (`O_PATH`) | seccomp `EPERM` (Landlock does not filter them) |
//! | an old kernel silently enforcing less | [`SandboxPolicy::check`]: strict mode refuses, naming the missing feature and its ABI |
//!
//! Not covered: Landlock filters TCP by port, so the process may connect to
//! the proxy's port on another host (the port is ephemeral and random);
//! `utime` on granted files; what a granted tool does inside its grant.

pub mod derive;
pub mod enforce;
pub mod error;
pub mod exec;
pub mod kernel;
pub mod policy;
pub mod proxy;

pub use derive::{add_grants, add_system, Program, ToolWrites};
pub use error::SandboxError;
pub use exec::{helper_main, ProcessCap, Sandbox};
pub use kernel::{Feature, KernelAbi};
pub use policy::{Enforcement, FsAccess, Limits, Mode, SandboxPolicy};
pub use proxy::{ConnectionRecord, Decision, EgressProxy, NetGrant, OnRecord};

use remit_token::VerifiedChain;

/// The policy for running `program` under `chain`: the system paths, what
/// the program needs, the paths of the leaf's grants (writable only for
/// writing tools) and TCP connect to `ports` (the egress proxy's, the
/// gateway's). Returns the grant texts that named no usable path.
pub fn policy_for(
    chain: &VerifiedChain,
    writes: &ToolWrites,
    program: &Program,
    ports: &[u16],
    limits: Limits,
) -> (SandboxPolicy, Vec<String>) {
    let mut policy = SandboxPolicy {
        limits,
        ..SandboxPolicy::default()
    };
    add_system(&mut policy);
    program.add_to(&mut policy);
    let dropped = add_grants(
        &mut policy,
        &chain.leaf_claims().authorization_details,
        writes,
    );
    for port in ports {
        policy.allow_connect(*port);
    }
    (policy, dropped)
}
