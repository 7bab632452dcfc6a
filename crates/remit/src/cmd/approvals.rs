//! `remit approvals list|show|approve|reject`: calls the gateway held for
//! a human decision.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::agent::text;
use super::client::{finish, segment, Api, ServerArgs};
use crate::io;

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

fn line(a: &Value) -> String {
    format!(
        "{}\t{}\t{}\t{}\t{}",
        text(&a["id"]),
        text(&a["state"]),
        text(&a["agent"]),
        text(&a["tool"]),
        text(&a["summary"])
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
        let body = by.map_or_else(|| json!({}), |by| json!({ "by": by }));
        let answer = api.post(&format!("/v1/approvals/{}/{verdict}", segment(id)), &body)?;
        if json {
            io::print_json(&answer)?;
        } else {
            say!(
                "{} {} (receipt {})",
                text(&answer["id"]),
                text(&answer["state"]),
                text(&answer["receipt_id"])
            );
        }
        Ok(())
    };
    let result = match args.command {
        ApprovalsCommand::List => api.get("/v1/approvals").and_then(|answer| {
            if json {
                io::print_json(&answer)?;
                return Ok(());
            }
            let pending = answer["approvals"].as_array().cloned().unwrap_or_default();
            if pending.is_empty() {
                say!("no pending approvals");
            }
            for a in pending {
                say!("{}", line(&a));
            }
            Ok(())
        }),
        ApprovalsCommand::Show { id } => api
            .get(&format!("/v1/approvals/{}", segment(&id)))
            .and_then(|a| {
                if json {
                    io::print_json(&a)?;
                } else {
                    say!("{}", line(&a));
                    say!("call sha256 {}", text(&a["call_hash"]));
                }
                Ok(())
            }),
        ApprovalsCommand::Approve { id, by } => decide(&id, "approve", by),
        ApprovalsCommand::Reject { id, by } => decide(&id, "reject", by),
    };
    finish(result)
}
