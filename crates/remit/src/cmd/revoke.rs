//! `remit revoke --jti|--subtree|--agent|--user|--tool|--kid VALUE`.

use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use super::agent::text;
use super::client::{finish, Api, ApiError, ServerArgs};
use crate::io;

/// `remit revoke`: exactly one target. Values may begin with `-`: a
/// base64url `jti` or key id often does.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("target").required(true).multiple(false)))]
pub struct RevokeArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// One remit, by its `jti`.
    #[arg(long, group = "target", allow_hyphen_values = true)]
    jti: Option<String>,
    /// A remit and everything delegated below it, by the remit's `jti`.
    #[arg(long, group = "target", allow_hyphen_values = true)]
    subtree: Option<String>,
    /// Every remit held or delegated by an agent.
    #[arg(long, group = "target", allow_hyphen_values = true)]
    agent: Option<String>,
    /// Every remit acting for a user (`sub`).
    #[arg(long, group = "target", allow_hyphen_values = true)]
    user: Option<String>,
    /// A tool, in every remit.
    #[arg(long, group = "target", allow_hyphen_values = true)]
    tool: Option<String>,
    /// Every remit signed with a key id.
    #[arg(long, group = "target", allow_hyphen_values = true)]
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
            say!(
                "revoked {kind} {value} (epoch {}, receipt {})",
                text(&answer["epoch"]),
                text(&answer["receipt_id"])
            );
        } else {
            say!(
                "{kind} {value} was already revoked (epoch {})",
                text(&answer["epoch"])
            );
        }
        Ok(())
    })())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Probe {
        #[command(flatten)]
        args: RevokeArgs,
    }

    #[test]
    fn a_target_beginning_with_a_hyphen_is_a_value_not_a_flag() {
        let probe =
            Probe::try_parse_from(["revoke", "--subtree", "-D07-9oTKdkLWgGqlF6E4w"]).unwrap();
        assert_eq!(
            probe.args.subtree.as_deref(),
            Some("-D07-9oTKdkLWgGqlF6E4w")
        );
        let probe = Probe::try_parse_from(["revoke", "--kid", "-k"]).unwrap();
        assert_eq!(probe.args.kid.as_deref(), Some("-k"));
        assert!(Probe::try_parse_from(["revoke", "--jti", "a", "--kid", "b"]).is_err());
    }
}
