//! `remit revoke --jti|--subtree|--agent|--user|--tool|--kid VALUE`.

use std::process::ExitCode;

use clap::Args;
use remit_api::words::Word as _;
use remit_api::{Revocation, RevocationKind, Revoke};

use super::agent::number;
use super::client::{finish, Api, ApiError, Reply, ServerArgs};

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
        (Some(v), ..) => (RevocationKind::Jti, v),
        (_, Some(v), ..) => (RevocationKind::Subtree, v),
        (_, _, Some(v), ..) => (RevocationKind::Agent, v),
        (_, _, _, Some(v), ..) => (RevocationKind::Sub, v),
        (_, _, _, _, Some(v), _) => (RevocationKind::Tool, v),
        (.., Some(v)) => (RevocationKind::Kid, v),
        // INVARIANT: clap requires exactly one member of the group.
        _ => {
            anyhow::bail!("name what to revoke: --jti, --subtree, --agent, --user, --tool or --kid")
        }
    };
    let body = Revoke {
        kind,
        value: value.clone(),
        reason: args.reason,
    };
    let kind = kind.word();
    let json = args.server.json;
    finish((|| -> Result<(), ApiError> {
        let answer: Reply<Revocation> = api.post("/v1/revocations", &body)?;
        answer.print(json, |r| {
            if r.newly_revoked == Some(true) {
                say!(
                    "revoked {kind} {value} (epoch {}, receipt {})",
                    r.epoch,
                    number(r.receipt_id)
                );
            } else {
                say!("{kind} {value} was already revoked (epoch {})", r.epoch);
            }
        })
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
