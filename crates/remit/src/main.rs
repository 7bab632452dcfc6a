//! `remit`: the command line for Remit.
//!
//! This binary only parses arguments, calls the library crates and prints
//! their answers; each command group lives in its own module under `cmd/`.

#[macro_use]
mod io;
mod cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The gateway allocates per call from many threads; mimalloc's
/// thread-local free lists cost less than glibc malloc's arenas there
/// (malloc/free were ~12 % of a profile of `remit serve` under load).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Remit: short-lived, attenuable capability tokens for AI agents.
#[derive(Debug, Parser)]
#[command(name = "remit", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate P-256 keys and publish JWKS.
    #[command(subcommand)]
    Keys(cmd::keys::KeysCommand),
    // token commands (issue 3)
    /// Mint, delegate, verify and inspect remits.
    #[command(subcommand)]
    Token(Box<cmd::token::TokenCommand>),
    // scan command (issue 4)
    /// Find personal data and secrets in a file or standard input.
    Scan(cmd::scan::ScanArgs),
    // policy commands (issue 5)
    /// Write, validate, hash, evaluate and test policy folders.
    #[command(subcommand)]
    Policy(cmd::policy::PolicyCommand),
    // audit commands (issue 6)
    /// Keep and verify the signed receipt log offline.
    #[command(subcommand)]
    Audit(cmd::audit::AuditCommand),
    // server commands (issue 7)
    /// Register, list and disable agents on a running server.
    Agent(cmd::agent::AgentArgs),
    /// Revoke remits on a running server (by jti, subtree, agent, user, tool or key id).
    Revoke(cmd::revoke::RevokeArgs),
    /// Ask a running server to issue a remit to a registered agent.
    Issue(cmd::issue::IssueArgs),
    /// Run the control plane: registry, issuance, revocation, introspection.
    Serve(cmd::serve::ServeArgs),
    // gateway commands (issue 8)
    /// Register MCP servers, pin (bless) their tools, set tool risk and clearance.
    Server(cmd::server::ServerCmdArgs),
    /// List, show, approve and reject calls held for a human.
    Approvals(cmd::approvals::ApprovalsArgs),
    // remit wrap (issue 8)
    /// Run an MCP server over stdio behind the gateway pipeline, with local receipts.
    Wrap(cmd::wrap::WrapArgs),
    // remit draft (issue 26)
    /// Draft a least-privilege policy from an agent's observed calls.
    Draft(cmd::draft::DraftArgs),
    // remit run (issue 28)
    /// Run agent-written code under the remit, enforced by the kernel (Landlock, seccomp, rlimits).
    Run(Box<cmd::run::RunArgs>),
    // remit protect and remit doctor (issue 31)
    /// Protect an MCP server in one step: register, pin, agent key, remit, client configuration.
    Protect(Box<cmd::protect::ProtectArgs>),
    /// Check a deployment (data directory, keys, server, store, receipts, clock, upstreams, TLS).
    Doctor(cmd::doctor::DoctorArgs),
    // operations (issue 30)
    /// Copy a data directory (SQLite snapshot, receipt logs, keys, policy) while serve runs.
    Backup(cmd::backup::BackupArgs),
    /// Put a backup back into a new data directory and verify its receipt log.
    Restore(cmd::backup::RestoreArgs),
    /// The sandbox helper `remit run` starts: applies a policy to itself and execs the program.
    #[command(hide = true)]
    SandboxExec(cmd::run::SandboxExecArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Keys(c) => cmd::keys::run(c),
        // token (issue 3)
        Command::Token(c) => cmd::token::run(*c),
        // scan (issue 4)
        Command::Scan(a) => cmd::scan::run(a),
        // policy (issue 5)
        Command::Policy(c) => cmd::policy::run(c),
        // audit (issue 6)
        Command::Audit(c) => cmd::audit::run(c),
        // server (issue 7)
        Command::Agent(c) => cmd::agent::run(c),
        Command::Revoke(c) => cmd::revoke::run(c),
        Command::Issue(c) => cmd::issue::run(c),
        Command::Serve(c) => cmd::serve::run(c),
        // gateway (issue 8)
        Command::Server(c) => cmd::server::run(c),
        Command::Approvals(c) => cmd::approvals::run(c),
        // remit wrap (issue 8)
        Command::Wrap(c) => cmd::wrap::run(c),
        // remit draft (issue 26)
        Command::Draft(c) => cmd::draft::run(c),
        // remit run (issue 28)
        Command::Run(c) => cmd::run::run(*c),
        Command::SandboxExec(c) => cmd::run::sandbox_exec(c),
        // remit protect and remit doctor (issue 31)
        Command::Protect(c) => cmd::protect::run(*c),
        Command::Doctor(c) => cmd::doctor::run(c),
        // operations (issue 30)
        Command::Backup(a) => cmd::backup::backup(a),
        Command::Restore(a) => cmd::backup::restore(a),
    };
    match result {
        Ok(code) => code,
        // `remit ... | head`: the reader has all it wanted.
        Err(err) if io::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", error_text(&err));
            ExitCode::from(2)
        }
    }
}

/// The error and its causes, each cause shown once: many errors already
/// quote their source in their own message, and `{:#}` would repeat it.
fn error_text(err: &anyhow::Error) -> String {
    let mut text = err.to_string();
    for cause in err.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::error_text;

    #[derive(Debug, thiserror::Error)]
    #[error("receipt log: {0}")]
    struct Quoting(#[source] std::io::Error);

    #[test]
    fn a_cause_already_quoted_is_not_repeated_and_a_new_one_is_added() {
        let quoted = anyhow::Error::new(Quoting(std::io::Error::other("disk full")));
        assert_eq!(error_text(&quoted), "receipt log: disk full");
        let added = anyhow::Error::new(std::io::Error::other("disk full")).context("writing x");
        assert_eq!(error_text(&added), "writing x: disk full");
    }
}
