//! The sandbox helper on its own: applies the policy it is given to itself
//! and execs the program (see `remit_sandbox::exec`). `remit sandbox-exec`
//! is the same helper inside the `remit` binary.

use std::process::ExitCode;

fn main() -> ExitCode {
    let error = remit_sandbox::helper_main(std::env::args_os().skip(1));
    eprintln!("remit-sandbox-exec: {error}");
    ExitCode::from(126)
}
