//! `remit issue`: ask the server to mint a root remit for a registered agent.

use std::process::ExitCode;

use clap::Args;
use remit_token::Classification;
use serde_json::json;

use super::arg_flag::{self, ArgFlag};
use remit_api::IssuedRemit;

use super::client::{finish, Api, ApiError, Reply, ServerArgs};

/// `remit issue`.
#[derive(Debug, Args)]
pub struct IssueArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// The registered agent that will hold the remit.
    #[arg(long)]
    agent: String,
    /// The user the agent acts for.
    #[arg(long)]
    sub: String,
    /// Tool names or globs the agent may call.
    #[arg(long = "tool", required = true, num_args = 1..)]
    tools: Vec<String>,
    /// Resource patterns the tools may touch (unrestricted if none).
    #[arg(long = "resource", num_args = 1..)]
    resources: Vec<String>,
    /// An argument constraint, `NAME=KIND:VALUE` or `NAME=JSON` (repeatable),
    /// e.g. `path=prefix:/data/reports/`, `n=range:1..10`, `mode=one_of:r,w`.
    #[arg(long = "arg", value_name = "NAME=CONSTRAINT", value_parser = arg_flag::parse)]
    args: Vec<ArgFlag>,
    /// Lifetime: `60s`, `5m`, `1h` (the server's default if absent).
    #[arg(long)]
    ttl: Option<String>,
    /// Highest classification the agent may receive (INTERNAL if absent).
    #[arg(long)]
    class: Option<Classification>,
    /// Tool calls allowed (unlimited if absent).
    #[arg(long)]
    max_steps: Option<u64>,
}

/// Runs `remit issue`; prints the compact remit (or the whole answer with `--json`).
pub fn run(args: IssueArgs) -> anyhow::Result<ExitCode> {
    let api = Api::new(&args.server)?;
    let mut grant = json!({ "type": "remit_tool", "tools": args.tools });
    if !args.resources.is_empty() {
        grant["resources"] = json!(args.resources);
    }
    let constraints = arg_flag::collect(&args.args)?;
    if !constraints.is_empty() {
        grant["args"] = serde_json::to_value(&constraints)?;
    }
    let mut body = json!({ "agent": args.agent, "sub": args.sub, "grants": [grant] });
    if let Some(ttl) = &args.ttl {
        body["ttl_secs"] = json!(super::token::parse_duration(ttl)?);
    }
    if let Some(class) = args.class {
        body["class"] = json!(class);
    }
    if let Some(steps) = args.max_steps {
        body["max_steps"] = json!(steps);
    }
    let json = args.server.json;
    finish((|| -> Result<(), ApiError> {
        let answer: Reply<IssuedRemit> = api.post("/v1/remits", &body)?;
        answer.print(json, |issued| say!("{}", issued.remit))
    })())
}
