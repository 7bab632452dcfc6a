//! `remit`: the command line for Remit.
//!
//! This binary only parses arguments, calls the library crates and prints
//! their answers; each command group lives in its own module under `cmd/`.

mod cmd;
mod io;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    // Each command group adds one variant here and one module under cmd/.
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Keys(c) => cmd::keys::run(c),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
    }
}
