//! From a remit and a program to a [`SandboxPolicy`].
//!
//! **Paths from grants.** A grant names paths in two places: its resource
//! patterns and its argument constraints. Every string there that is an
//! absolute path (or a `file://` URI) becomes a rule: `exact`/`one_of`
//! values as themselves, `prefix` and `glob` by their literal text up to the
//! last `/` (the kernel grants directories; the gateway's string check stays
//! the finer one). A `regex` constraint names no path the kernel could use,
//! so it grants none (fail closed). A path with `.`/`..` is dropped, never
//! normalized: the remit must name the place itself.
//!
//! **Read or write.** A grant's paths are writable when one of its tools
//! writes, and readable only otherwise. Whether a tool writes is the
//! caller's fact ([`ToolWrites`]): the wrap knows it from the server's
//! registration (MCP annotations: a tool writes unless it declares
//! `readOnlyHint: true`, the MCP default); `remit run` from `--write-tool`.
//! An unknown tool is a reader: a wrong guess costs a refused write, never
//! an allowed one.
//!
//! **The program.** [`Program::resolve`] finds the command on `PATH`, follows
//! a `#!` line to its interpreter, and recognizes runtimes (node, python,
//! deno, bun) to grant their install tree, a Python virtual environment, and
//! a Node script's `node_modules` tree read access; only the program, its
//! interpreter and the ELF loader may be executed.

use std::path::{Path, PathBuf};

use remit_token::{Constraint, Grant, Pattern};

use crate::error::SandboxError;
use crate::policy::{normalized, FsAccess, SandboxPolicy};

/// Which granted tools write: the caller's knowledge of its tools.
#[derive(Debug, Clone, Default)]
pub struct ToolWrites {
    writers: Vec<Pattern>,
}

impl ToolWrites {
    /// No tool writes.
    pub fn none() -> Self {
        ToolWrites::default()
    }

    /// The tools matching these patterns write (`fs/write_file`, `fs/*`).
    pub fn patterns(writers: Vec<Pattern>) -> Self {
        ToolWrites { writers }
    }

    /// From a registration's tools and their MCP annotations: a tool writes
    /// unless `read_only` (its `readOnlyHint`) is true.
    pub fn from_annotations<'a>(tools: impl IntoIterator<Item = (&'a str, bool)>) -> Self {
        let writers = tools
            .into_iter()
            .filter(|(_, read_only)| !read_only)
            .filter_map(|(name, _)| Pattern::try_from(name).ok())
            .collect();
        ToolWrites { writers }
    }

    /// Whether a grant's tool pattern reaches a writing tool.
    fn grant_writes(&self, grant: &Grant) -> bool {
        grant
            .tools
            .iter()
            .any(|t| self.writers.iter().any(|w| t.covers(w) || w.covers(t)))
    }
}

/// The paths a set of grants names, with the access each gets.
///
/// Returns the rules it could not use (relative, `..`), for the caller to show.
pub fn grant_paths(
    grants: &[Grant],
    writes: &ToolWrites,
) -> (Vec<(PathBuf, FsAccess)>, Vec<String>) {
    let mut rules = Vec::new();
    let mut dropped = Vec::new();
    for grant in grants {
        let access = if writes.grant_writes(grant) {
            FsAccess::Write
        } else {
            FsAccess::Read
        };
        let mut texts: Vec<String> = Vec::new();
        for pattern in grant.resources.iter().flatten() {
            let (literal, exact) = pattern.literal_prefix();
            texts.push(dir_of_prefix(literal, exact));
        }
        for (_, constraint) in grant.args.iter() {
            texts.extend(constraint_paths(constraint));
        }
        for text in texts {
            let Some(path) = as_path(&text) else { continue };
            match normalized(&path) {
                Ok(()) => rules.push((path, access)),
                Err(_) => dropped.push(text),
            }
        }
    }
    (rules, dropped)
}

/// Adds the paths of `grants` to `policy`; returns the texts it dropped.
pub fn add_grants(
    policy: &mut SandboxPolicy,
    grants: &[Grant],
    writes: &ToolWrites,
) -> Vec<String> {
    let (rules, dropped) = grant_paths(grants, writes);
    for (path, access) in rules {
        // INVARIANT: grant_paths only returns normalized paths.
        let _ = policy.grant(path, access);
    }
    dropped
}

fn constraint_paths(constraint: &Constraint) -> Vec<String> {
    match constraint {
        Constraint::Exact(v) => v
            .as_value()
            .as_str()
            .map(str::to_owned)
            .into_iter()
            .collect(),
        Constraint::OneOf(vs) => vs
            .iter()
            .filter_map(|v| v.as_value().as_str().map(str::to_owned))
            .collect(),
        Constraint::Prefix(p) => vec![dir_of_prefix(p.as_str(), true)],
        Constraint::Glob(g) => {
            let (literal, exact) = g.literal_prefix();
            vec![dir_of_prefix(literal, exact)]
        }
        Constraint::Range(_) | Constraint::MaxLength(_) | Constraint::Regex(_) => Vec::new(),
    }
}

/// The directory every match of a prefix lies in: the prefix itself when it
/// is the whole pattern (`exact`: an exact path, or a path prefix, which
/// matches at segment boundaries only), else its text up to the last `/`.
fn dir_of_prefix(prefix: &str, exact: bool) -> String {
    if exact && !prefix.ends_with('/') {
        return prefix.to_owned();
    }
    match prefix.rfind('/') {
        Some(0) => "/".to_owned(),
        Some(at) => prefix[..at].to_owned(),
        None => String::new(),
    }
}

/// A path from `/abs/path` or `file:///abs/path`; `None` for anything else.
fn as_path(text: &str) -> Option<PathBuf> {
    let text = text.strip_prefix("file://").unwrap_or(text);
    let text = text.trim_end_matches('/');
    if text.is_empty() {
        return None; // "/" alone would grant the whole tree: never derived from a grant.
    }
    text.starts_with('/').then(|| PathBuf::from(text))
}

/// Read-only system paths every program needs (libraries, certificates,
/// name service files), and devices it may read and write.
pub fn add_system(policy: &mut SandboxPolicy) {
    const READ: &[&str] = &[
        "/usr",
        "/lib",
        "/lib64",
        "/lib32",
        "/bin",
        "/sbin",
        "/etc/ld.so.cache",
        "/etc/ld.so.conf",
        "/etc/ld.so.conf.d",
        "/etc/localtime",
        "/etc/ssl",
        "/etc/ca-certificates",
        "/etc/pki",
        "/etc/nsswitch.conf",
        "/etc/hosts",
        "/etc/host.conf",
        "/etc/resolv.conf",
        "/etc/gai.conf",
        "/etc/passwd",
        "/etc/group",
        "/etc/mime.types",
        "/dev/urandom",
        "/dev/random",
    ];
    const DEVICES: &[&str] = &["/dev/null", "/dev/zero"];
    for path in READ {
        let _ = policy.grant(*path, FsAccess::Read);
    }
    for path in DEVICES {
        let _ = policy.grant(*path, FsAccess::ReadWriteFile);
    }
    // The ELF loader is opened for execution by the kernel for every
    // dynamically linked program.
    for loader in ["/lib64/ld-linux-x86-64.so.2", "/lib/ld-linux-aarch64.so.1"] {
        if let Ok(real) = std::fs::canonicalize(loader) {
            let _ = policy.grant(real, FsAccess::ReadExec);
        }
    }
}

/// A program resolved from a command line, with the runtime it needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// The file executed (as found on `PATH`, not resolved: a venv's
    /// `python` must keep its name for Python to find the venv).
    pub exec: PathBuf,
    /// What the program needs beyond the system paths, with access.
    pub needs: Vec<(PathBuf, FsAccess)>,
    /// The runtime recognized, if any (`node`, `python3.12`, …).
    pub runtime: Option<String>,
}

impl Program {
    /// Resolves `command[0]` on `path_var` (a `PATH` value) and works out
    /// what it needs to run: its own file, a `#!` interpreter, a runtime's
    /// install tree and the script's package tree.
    pub fn resolve(command: &[String], path_var: &str) -> Result<Program, SandboxError> {
        let name = command
            .first()
            .ok_or_else(|| SandboxError::ProgramNotFound(String::new()))?;
        let exec =
            which(name, path_var).ok_or_else(|| SandboxError::ProgramNotFound(name.clone()))?;
        let mut needs = Vec::new();
        let real = canonical(&exec)?;
        needs.push((real.clone(), FsAccess::ReadExec));
        let mut runtime = runtime_name(&exec).or_else(|| runtime_name(&real));
        let mut interpreter_seen = runtime.is_some();
        if runtime.is_some() {
            needs.extend(runtime_tree(&exec, &real));
        }
        // `#!/usr/bin/env node` or `#!/usr/bin/python3`: the interpreter runs.
        if let Some((interp, arg)) = shebang(&real) {
            needs.push((canonical(&interp)?, FsAccess::ReadExec));
            let target = if interp.ends_with("env") {
                arg.and_then(|a| which(&a, path_var))
            } else {
                Some(interp)
            };
            if let Some(target) = target {
                let target_real = canonical(&target)?;
                needs.push((target_real.clone(), FsAccess::ReadExec));
                needs.extend(runtime_tree(&target, &target_real));
                runtime = runtime_name(&target).or_else(|| runtime_name(&target_real));
                interpreter_seen = true;
            }
            needs.extend(script_tree(&real));
        }
        // `node path/to/index.js`, `python script.py`: the script's tree is read.
        if interpreter_seen {
            if let Some(script) = command.iter().skip(1).find(|a| !a.starts_with('-')) {
                if let Ok(script) = std::fs::canonicalize(script) {
                    needs.extend(script_tree(&script));
                }
            }
        }
        Ok(Program {
            exec,
            needs,
            runtime,
        })
    }

    /// Adds what the program needs to `policy`.
    pub fn add_to(&self, policy: &mut SandboxPolicy) {
        for (path, access) in &self.needs {
            let _ = policy.grant(path.clone(), *access);
        }
    }
}

/// `name` itself when it holds a `/`, else the first executable on `PATH`.
fn which(name: &str, path_var: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let is_exec = |p: &Path| {
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    if name.contains('/') {
        let p = std::path::absolute(name).ok()?;
        return is_exec(&p).then_some(p);
    }
    path_var
        .split(':')
        .filter(|d| d.starts_with('/'))
        .map(|d| Path::new(d).join(name))
        .find(|p| is_exec(p))
}

fn canonical(path: &Path) -> Result<PathBuf, SandboxError> {
    std::fs::canonicalize(path).map_err(|source| SandboxError::Io {
        what: format!("resolving {}", path.display()),
        source,
    })
}

/// `node`, `python3.12`, … when the file name is a known runtime.
fn runtime_name(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let known = ["node", "nodejs", "deno", "bun"].contains(&name)
        || name == "python"
        || name
            .strip_prefix("python3")
            .is_some_and(|v| v.is_empty() || v.starts_with('.'));
    known.then(|| name.to_owned())
}

/// A runtime's install tree (`/opt/node` for `/opt/node/bin/node`) and a
/// Python virtual environment (the directory holding `pyvenv.cfg`).
fn runtime_tree(exec: &Path, real: &Path) -> Vec<(PathBuf, FsAccess)> {
    let mut needs = Vec::new();
    for bin in [exec, real] {
        let Some(prefix) = bin.parent().and_then(Path::parent) else {
            continue;
        };
        if prefix.join("pyvenv.cfg").is_file() || bin.parent().is_some_and(|b| b.ends_with("bin")) {
            if let Ok(prefix) = std::fs::canonicalize(prefix) {
                if prefix != Path::new("/") && normalized(&prefix).is_ok() {
                    needs.push((prefix, FsAccess::Read));
                }
            }
        }
    }
    needs
}

/// A script's package tree: the outermost `node_modules` above it and the
/// project holding it, or the script's own directory.
fn script_tree(script: &Path) -> Vec<(PathBuf, FsAccess)> {
    let outermost = script
        .ancestors()
        .filter(|a| a.file_name().is_some_and(|n| n == "node_modules"))
        .last();
    let root = match outermost {
        Some(modules) => modules.to_path_buf(),
        None => match script.parent() {
            Some(dir) => dir.to_path_buf(),
            None => return Vec::new(),
        },
    };
    vec![(root, FsAccess::Read)]
}

/// The interpreter (and its one argument) of a `#!` line.
fn shebang(file: &Path) -> Option<(PathBuf, Option<String>)> {
    use std::io::Read;
    let mut head = [0u8; 256];
    let n = std::fs::File::open(file).ok()?.read(&mut head).ok()?;
    let head = head.get(..n)?;
    let line = head.strip_prefix(b"#!")?;
    let end = line.iter().position(|b| *b == b'\n').unwrap_or(line.len());
    let line = std::str::from_utf8(&line[..end]).ok()?.trim();
    let mut parts = line.split_whitespace();
    let interp = PathBuf::from(parts.next()?);
    Some((interp, parts.next().map(str::to_owned)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn grant(v: serde_json::Value) -> Grant {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn prefix_glob_and_exact_constraints_become_paths_and_regex_none() {
        let g = grant(
            json!({"type": "remit_tool", "tools": ["fs/read_file"], "args": {
                "path": {"prefix": "/srv/data/"},
                "other": {"glob": "/srv/logs/*.log"},
                "one": {"exact": "/etc/motd"},
                "re": {"regex": "/home/.*"},
            }}),
        );
        let (rules, dropped) = grant_paths(&[g], &ToolWrites::none());
        let paths: Vec<_> = rules
            .iter()
            .map(|(p, a)| (p.to_str().unwrap(), *a))
            .collect();
        assert!(paths.contains(&("/srv/data", FsAccess::Read)), "{paths:?}");
        assert!(paths.contains(&("/srv/logs", FsAccess::Read)), "{paths:?}");
        assert!(paths.contains(&("/etc/motd", FsAccess::Read)), "{paths:?}");
        assert_eq!(paths.len(), 3, "{paths:?}");
        assert!(dropped.is_empty());
    }

    #[test]
    fn a_dot_dot_prefix_grants_nothing() {
        // remit-token refuses a constraint whose own text is not canonical,
        // so such a grant never reaches the sandbox at all.
        let parsed = serde_json::from_value::<Grant>(json!({"type": "remit_tool",
            "tools": ["fs/read_file"], "args": {"path": {"prefix": "/srv/data/../../etc/"}}}));
        assert!(parsed.is_err(), "{parsed:?}");
    }

    #[test]
    fn only_a_writing_tool_makes_its_paths_writable() {
        let read = grant(json!({"type": "remit_tool", "tools": ["fs/read_file"],
            "args": {"path": {"prefix": "/srv/ro/"}}}));
        let write = grant(json!({"type": "remit_tool", "tools": ["fs/write_file"],
            "args": {"path": {"prefix": "/srv/rw/"}}}));
        let writes =
            ToolWrites::from_annotations([("fs/read_file", true), ("fs/write_file", false)]);
        let (rules, _) = grant_paths(&[read, write], &writes);
        assert!(rules.contains(&(PathBuf::from("/srv/ro"), FsAccess::Read)));
        assert!(rules.contains(&(PathBuf::from("/srv/rw"), FsAccess::Write)));
    }

    #[test]
    fn a_resource_pattern_names_its_directory() {
        let g = grant(json!({"type": "remit_tool", "tools": ["fs/*"],
            "resources": ["file:///srv/docs/*", "repo:acme/*"]}));
        let (rules, _) = grant_paths(&[g], &ToolWrites::none());
        assert_eq!(rules, vec![(PathBuf::from("/srv/docs"), FsAccess::Read)]);
    }

    #[test]
    fn a_root_prefix_is_never_the_whole_tree() {
        let g = grant(json!({"type": "remit_tool", "tools": ["fs/read_file"],
            "args": {"path": {"prefix": "/"}}}));
        let (rules, _) = grant_paths(&[g], &ToolWrites::none());
        assert!(rules.is_empty(), "{rules:?}");
    }
}
