//! `remit revoke --jti|--subtree|--agent|--user|--tool|--kid VALUE`.

use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use super::agent::text;
use super::client::{finish, Api, ApiError, ServerArgs};
use crate::io;

/// `remit revoke`: exactly one target.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).multiple(false)))]
pub struct RevokeArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// One remit, by its `jti`.
    #[arg(long, group = "target")]
    jti: Option<String>,
    /// A remit and everything delegated below it, by the remit's `jti`.
    #[arg(long, group = "target")]
    subtree: Option<String>,
    /// Every remit held or delegated by an agent.
    #[arg(long, group = "target")]
    agent: Option<String>,
    /// Every remit acting for a user (`sub`).
    #[arg(long, group = "target")]
    user: Option<String>,
    /// A tool, in every remit.
    #[arg(long, group = "target")]
    tool: Option<String>,
    /// Every remit signed with a key id.
    #[arg(long, group = "target")]
    kid: Option<String>,
    /// Why, in words (kept with the revocation).
    #[arg(long)]
    reason: Option<String>,
}

/// Runs `remit revoke`.
pub fn run(args: RevokeArgs) -> anyhow::Result<ExitCode> {
    let api = Api::new(&args.server)?;
    let (kind, value) = match (
        args.jti,
        args.subtree,
        args.agent,
        args.user,
        args.tool,
        args.kid,
    ) {
        (Some(v), ..) => ("jti", v),
        (_, Some(v), ..) => ("subtree", v),
        (_, _, Some(v), ..) => ("agent", v),
        (_, _, _, Some(v), ..) => ("sub", v),
        (_, _, _, _, Some(v), _) => ("tool", v),
        (.., Some(v)) => ("kid", v),
        // INVARIANT: clap requires exactly one member of the group.
        _ => {
            anyhow::bail!("name what to revoke: --jti, --subtree, --agent, --user, --tool or --kid")
        }
    };
    let mut body = json!({ "kind": kind, "value": value });
    if let Some(reason) = args.reason {
        body["reason"] = json!(reason);
    }
    let json = args.server.json;
    finish((|| -> Result<(), ApiError> {
        let answer = api.post("/v1/revocations", &body)?;
        if json {
            io::print_json(&answer)?;
        } else if answer["newly_revoked"] == json!(true) {
            println!(
                "revoked {kind} {value} (epoch {}, receipt {})",
                text(&answer["epoch"]),
                text(&answer["receipt_id"])
            );
        } else {
            println!(
                "{kind} {value} was already revoked (epoch {})",
                text(&answer["epoch"])
            );
        }
        Ok(())
    })())
}
