//! Starting a program under a policy, without `unsafe`: through a helper.
//!
//! The parent never restricts itself and never runs code between `fork` and
//! `exec` (that needs `pre_exec`, which is `unsafe`, and in a multi-threaded
//! tokio process may only call async-signal-safe functions: building a
//! Landlock ruleset allocates). Instead it starts a *helper*, a binary that
//! calls [`helper_main`] (`remit sandbox-exec` in the CLI,
//! `remit-sandbox-exec` for this crate's tests): single-threaded and fresh,
//! the helper joins the process cgroup, sets rlimits, installs the seccomp
//! filters and the Landlock domain on itself, then `exec`s the program,
//! which inherits all of it. One extra `execve` is the price (measured in
//! `bench/sandbox`).
//!
//! [`Sandbox::command`] returns a plain [`std::process::Command`]: a caller
//! adds its environment, standard streams and process group as for any
//! child, or turns it into a `tokio::process::Command` with `From`.

use std::ffi::OsString;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::enforce::enforce;
use crate::error::SandboxError;
use crate::kernel::KernelAbi;
use crate::policy::{Enforcement, Mode, SandboxPolicy};

const POLICY_FLAG: &str = "--remit-sandbox-policy=";
const MODE_FLAG: &str = "--remit-sandbox-mode=";
const CGROUP_FLAG: &str = "--remit-sandbox-cgroup=";
const ABI_FLAG: &str = "--remit-sandbox-abi=";

/// A policy checked against the running kernel, ready to start programs.
#[derive(Debug)]
pub struct Sandbox {
    policy: SandboxPolicy,
    mode: Mode,
    enforcement: Enforcement,
    cap: ProcessCap,
}

impl Sandbox {
    /// Checks `policy` against the running kernel: in strict mode a missing
    /// feature or an unenforceable process limit is an error naming it.
    pub fn prepare(policy: SandboxPolicy, mode: Mode) -> Result<Sandbox, SandboxError> {
        let mut enforcement = policy.check(KernelAbi::current(), mode)?;
        let cap = match ProcessCap::new(policy.limits.processes) {
            Ok(cap) => cap,
            Err(e) if mode == Mode::BestEffort => {
                enforcement.process_limit_unenforced = Some(e.to_string());
                ProcessCap::default()
            }
            Err(e) => return Err(e),
        };
        Ok(Sandbox {
            policy,
            mode,
            enforcement,
            cap,
        })
    }

    /// What the kernel will enforce: for receipts and the start-up line.
    pub fn enforcement(&self) -> &Enforcement {
        &self.enforcement
    }

    /// The policy.
    pub fn policy(&self) -> &SandboxPolicy {
        &self.policy
    }

    /// A command that runs `program args…` under the policy: `helper`
    /// with `helper_args` (e.g. the `remit` binary and `["sandbox-exec"]`)
    /// enforces it on itself and execs the program.
    pub fn command(
        &self,
        helper: &Path,
        helper_args: &[&str],
        program: &Path,
        args: &[OsString],
    ) -> Command {
        let mut cmd = Command::new(helper);
        cmd.args(helper_args);
        let policy = serde_json::to_string(&self.policy).unwrap_or_default();
        cmd.arg(format!("{POLICY_FLAG}{policy}"));
        let mode = match self.mode {
            Mode::Strict => "strict",
            Mode::BestEffort => "best-effort",
        };
        cmd.arg(format!("{MODE_FLAG}{mode}"));
        // The helper enforces what the parent checked and recorded, never more
        // (a lowered ABI in best effort) and never less (it re-checks the kernel).
        cmd.arg(format!("{ABI_FLAG}{}", self.enforcement.kernel_abi));
        if let Some(dir) = &self.cap.dir {
            let mut flag = OsString::from(CGROUP_FLAG);
            flag.push(dir);
            cmd.arg(flag);
        }
        cmd.arg("--").arg(program).args(args);
        cmd
    }

    /// Kills every process left in the sandbox's process cgroup (if it has one).
    pub fn kill_all(&self) {
        self.cap.kill_all();
    }
}

/// The helper's whole work: parse what [`Sandbox::command`] passed, apply
/// the policy to this process, exec the program. Returns only on failure.
pub fn helper_main(args: impl IntoIterator<Item = OsString>) -> SandboxError {
    let mut policy = None;
    let mut mode = Mode::Strict;
    let mut cgroup = None;
    let mut abi = u32::MAX;
    let mut args = args.into_iter();
    for arg in args.by_ref() {
        if arg == "--" {
            break;
        }
        let text = arg.to_string_lossy();
        if let Some(json) = text.strip_prefix(POLICY_FLAG) {
            match serde_json::from_str::<SandboxPolicy>(json) {
                Ok(p) => policy = Some(p),
                Err(e) => return SandboxError::Policy(e.to_string()),
            }
        } else if let Some(m) = text.strip_prefix(MODE_FLAG) {
            mode = match m {
                "strict" => Mode::Strict,
                "best-effort" => Mode::BestEffort,
                other => return SandboxError::Policy(format!("unknown mode {other:?}")),
            };
        } else if let Some(n) = text.strip_prefix(ABI_FLAG) {
            match n.parse() {
                Ok(n) => abi = n,
                Err(_) => return SandboxError::Policy(format!("bad ABI {n:?}")),
            }
        } else if let Some(dir) = text.strip_prefix(CGROUP_FLAG) {
            cgroup = Some(PathBuf::from(dir));
        } else {
            return SandboxError::Policy(format!("unexpected helper argument {text:?}"));
        }
    }
    let Some(policy) = policy else {
        return SandboxError::Policy("the helper was started without a policy".into());
    };
    let Some(program) = args.next() else {
        return SandboxError::Policy("the helper was started without a program".into());
    };
    if let Some(dir) = cgroup {
        if let Err(e) = join_cgroup(&dir) {
            return e;
        }
    }
    let kernel = KernelAbi::current().min(KernelAbi::from_version(abi));
    if let Err(e) = enforce(&policy, kernel, mode) {
        return e;
    }
    let error = Command::new(&program).args(args).exec();
    SandboxError::Io {
        what: format!("starting {}", Path::new(&program).display()),
        source: error,
    }
}

fn join_cgroup(dir: &Path) -> Result<(), SandboxError> {
    std::fs::write(dir.join("cgroup.procs"), std::process::id().to_string()).map_err(|source| {
        SandboxError::Io {
            what: format!("joining the process cgroup {}", dir.display()),
            source,
        }
    })
}

/// A pids cgroup capping the sandbox's process count where `RLIMIT_NPROC`
/// cannot: the kernel exempts uid 0 from it. Removed when dropped, after
/// killing what is left in it.
#[derive(Debug, Default)]
pub struct ProcessCap {
    dir: Option<PathBuf>,
}

/// Where a pids controller may be mounted (cgroup v2, then v1).
const PIDS_ROOTS: &[&str] = &[
    "/sys/fs/cgroup",
    "/sys/fs/cgroup/unified",
    "/sys/fs/cgroup/pids",
];

impl ProcessCap {
    /// A cgroup for `limit` processes when the caller is uid 0; nothing
    /// otherwise (`RLIMIT_NPROC` binds every other user).
    pub fn new(limit: Option<u64>) -> Result<ProcessCap, SandboxError> {
        let Some(limit) = limit else {
            return Ok(ProcessCap::default());
        };
        if !rustix::process::geteuid().is_root() {
            return Ok(ProcessCap::default());
        }
        let mut tried = Vec::new();
        for root in PIDS_ROOTS {
            let root = Path::new(root);
            if !root.join("cgroup.procs").is_file() {
                continue;
            }
            let v2 = root.join("cgroup.controllers").is_file();
            if v2
                && !std::fs::read_to_string(root.join("cgroup.controllers"))
                    .is_ok_and(|c| c.split_whitespace().any(|x| x == "pids"))
            {
                tried.push(format!("{}: no pids controller", root.display()));
                continue;
            }
            static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let dir = root.join(format!("remit-sandbox-{}-{n}", std::process::id()));
            let made = std::fs::create_dir(&dir)
                .and_then(|()| std::fs::write(dir.join("pids.max"), limit.to_string()));
            match made {
                Ok(()) => return Ok(ProcessCap { dir: Some(dir) }),
                Err(e) => {
                    let _ = std::fs::remove_dir(&dir);
                    tried.push(format!("{}: {e}", root.display()));
                }
            }
        }
        if tried.is_empty() {
            tried.push("no cgroup hierarchy with cgroup.procs found".into());
        }
        Err(SandboxError::ProcessLimitUnenforceable(tried.join("; ")))
    }

    /// Kills every process in the cgroup.
    pub fn kill_all(&self) {
        let Some(dir) = &self.dir else { return };
        for _ in 0..50 {
            let procs = std::fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
            let pids: Vec<i32> = procs
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect();
            if pids.is_empty() {
                return;
            }
            for pid in pids {
                if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                    let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }
}

impl Drop for ProcessCap {
    fn drop(&mut self) {
        self.kill_all();
        if let Some(dir) = &self.dir {
            for _ in 0..50 {
                if std::fs::remove_dir(dir).is_ok() {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
        }
    }
}
