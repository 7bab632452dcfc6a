//! `remit approvals list|show|approve|reject`: calls the gateway held for
//! a human decision.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use remit_api::words::Word as _;
use remit_api::{Approval, ApprovalList, Decide};

use super::agent::{number, printable};
use super::client::{finish, segment, Api, Reply, ServerArgs};

/// `remit approvals ...`.
#[derive(Debug, Args)]
pub struct ApprovalsArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(subcommand)]
    command: ApprovalsCommand,
}

#[derive(Debug, Subcommand)]
enum ApprovalsCommand {
    /// List pending approvals, oldest first.
    List,
    /// Show one approval.
    Show {
        /// The approval id (`apr_…`).
        id: String,
    },
    /// Approve a held call: the agent's retry of the same call runs once.
    Approve {
        /// The approval id.
        id: String,
        /// Who approves (default: $USER; with an ID token, its user).
        #[arg(long)]
        by: Option<String>,
    },
    /// Reject a held call.
    Reject {
        /// The approval id.
        id: String,
        /// Who rejects (default: $USER; with an ID token, its user).
        #[arg(long)]
        by: Option<String>,
    },
}

fn line(a: &Approval) -> String {
    format!(
        "{}\t{}\t{}\t{}\t{}",
        printable(&a.id),
        a.state.word(),
        printable(&a.agent),
        printable(&a.tool),
        printable(&a.summary)
    )
}

/// Runs `remit approvals`.
pub fn run(args: ApprovalsArgs) -> anyhow::Result<ExitCode> {
    let api = Api::new(&args.server)?;
    let json = args.server.json;
    // An ID token (three dot-separated parts) names its user itself: the
    // server records that user and refuses a `by` naming anyone else, so
    // $USER is only a default for the shared admin token.
    let id_token = args
        .server
        .admin_token
        .as_deref()
        .is_some_and(|t| t.split('.').count() == 3);
    let decide = |id: &str, verdict: &str, by: Option<String>| {
        let by = by.or_else(|| {
            if id_token {
                None
            } else {
                Some(std::env::var("USER").unwrap_or_else(|_| "admin".into()))
            }
        });
        let answer: Reply<Approval> = api.post(
            &format!("/v1/approvals/{}/{verdict}", segment(id)),
            &Decide { by },
        )?;
        answer.print(json, |a| {
            say!(
                "{} {} (receipt {})",
                printable(&a.id),
                a.state.word(),
                number(a.receipt_id)
            );
        })
    };
    let result = match args.command {
        ApprovalsCommand::List => api.get::<ApprovalList>("/v1/approvals").and_then(|answer| {
            answer.print(json, |list| {
                if list.approvals.is_empty() {
                    say!("no pending approvals");
                }
                for a in &list.approvals {
                    say!("{}", line(a));
                }
            })
        }),
        ApprovalsCommand::Show { id } => api
            .get::<Approval>(&format!("/v1/approvals/{}", segment(&id)))
            .and_then(|answer| {
                answer.print(json, |a| {
                    say!("{}", line(a));
                    say!("call sha256 {}", printable(&a.call_hash));
                })
            }),
        ApprovalsCommand::Approve { id, by } => decide(&id, "approve", by),
        ApprovalsCommand::Reject { id, by } => decide(&id, "reject", by),
    };
    finish(result)
}
