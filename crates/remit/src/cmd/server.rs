//! `remit server add|list|tools|bless|tool-set|disable`: the MCP servers the
//! gateway fronts, and the tools pinned on them, over the API.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use remit_api::words::Word as _;
use remit_api::{Blessed, McpServer, McpServerList, Tool, ToolList};
use serde_json::{json, Value};

use super::agent::{number, printable};
use super::client::{finish, segment, Api, ApiError, Reply, ServerArgs};

/// `remit server ...`.
#[derive(Debug, Args)]
pub struct ServerCmdArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(subcommand)]
    command: ServerCommand,
}

#[derive(Debug, Subcommand)]
enum ServerCommand {
    /// Register an MCP server the gateway forwards to.
    Add {
        /// The server's id (the gateway serves it at /mcp/<id>).
        #[arg(long)]
        id: String,
        /// `http://host:port/mcp` (streamable HTTP) or `stdio:<command line>`.
        #[arg(long)]
        url: String,
        /// The most sensitive data it may receive: public, internal, confidential, restricted.
        #[arg(long, default_value = "internal")]
        clearance: String,
        /// A human-readable name (default: the id).
        #[arg(long)]
        name: Option<String>,
    },
    /// List registered servers.
    List,
    /// List the tools pinned on a server.
    Tools {
        /// The server's id.
        id: String,
    },
    /// Ask the upstream for its tools and pin their description hashes
    /// (again: this is how a changed description is re-approved).
    Bless {
        /// The server's id.
        id: String,
        /// Risk of newly pinned tools: low, medium, high, critical.
        #[arg(long)]
        risk: Option<String>,
        /// Clearance of newly pinned tools (default: the server's).
        #[arg(long)]
        clearance: Option<String>,
        /// Only this tool (repeatable).
        #[arg(long = "tool")]
        tools: Vec<String>,
    },
    /// Disable a server: the gateway refuses every call to it.
    Disable {
        /// The server's id.
        id: String,
    },
    /// Set a pinned tool's risk, clearance or resource argument.
    ToolSet {
        /// The server's id.
        id: String,
        /// The tool's name.
        tool: String,
        /// low, medium, high or critical.
        #[arg(long)]
        risk: Option<String>,
        /// public, internal, confidential or restricted.
        #[arg(long)]
        clearance: Option<String>,
        /// The argument whose value is the call's resource, checked against
        /// the remit's `--resource` patterns (blessing picks the first
        /// string `path`, `uri`, `url` or `file` argument).
        #[arg(long, value_name = "ARG", conflicts_with = "no_resource_arg")]
        resource_arg: Option<String>,
        /// The tool has no resource argument.
        #[arg(long)]
        no_resource_arg: bool,
    },
}

/// Runs `remit server`.
pub fn run(args: ServerCmdArgs) -> anyhow::Result<ExitCode> {
    let api = Api::new(&args.server)?;
    let json = args.server.json;
    let result = match args.command {
        ServerCommand::Add {
            id,
            url,
            clearance,
            name,
        } => {
            let mut body = json!({ "id": id, "url": url, "clearance": clearance });
            if let Some(name) = name {
                body["name"] = json!(name);
            }
            api.post::<McpServer>("/v1/servers", &body)
                .and_then(|answer| {
                    answer.print(json, |s| {
                        println!(
                            "added server {} at {} (receipt {}); next: remit server bless {}",
                            printable(&s.id),
                            printable(&s.url),
                            number(s.receipt_id),
                            printable(&s.id)
                        );
                    })
                })
        }
        ServerCommand::List => list(&api, json),
        ServerCommand::Disable { id } => api
            .post::<McpServer>(&format!("/v1/servers/{}/disable", segment(&id)), &json!({}))
            .and_then(|answer| {
                answer.print(json, |s| {
                    println!(
                        "disabled server {}: the gateway refuses every call to it (receipt {})",
                        printable(&s.id),
                        number(s.receipt_id)
                    );
                })
            }),
        ServerCommand::Tools { id } => tools(&api, json, &id),
        ServerCommand::Bless {
            id,
            risk,
            clearance,
            tools,
        } => {
            let mut body = json!({});
            if let Some(risk) = risk {
                body["risk"] = json!(risk);
            }
            if let Some(clearance) = clearance {
                body["clearance"] = json!(clearance);
            }
            if !tools.is_empty() {
                body["tools"] = json!(tools);
            }
            api.post::<Blessed>(&format!("/v1/servers/{}/bless", segment(&id)), &body)
                .and_then(|answer| {
                    answer.print(json, |blessed| {
                        for pinned in &blessed.tools {
                            let tool = &pinned.tool;
                            println!(
                                "pinned {}/{}\trisk {}\tclearance {}\tresource {}\tsha256 {}{}",
                                printable(&tool.server),
                                printable(&tool.name),
                                tool.risk.word(),
                                tool.clearance.word(),
                                resource_arg_text(tool),
                                printable(&tool.description_sha256),
                                if pinned.repinned {
                                    "\t(changed, re-pinned)"
                                } else {
                                    ""
                                }
                            );
                        }
                    })
                })
        }
        ServerCommand::ToolSet {
            id,
            tool,
            risk,
            clearance,
            resource_arg,
            no_resource_arg,
        } => {
            let mut body = json!({});
            if let Some(risk) = risk {
                body["risk"] = json!(risk);
            }
            if let Some(clearance) = clearance {
                body["clearance"] = json!(clearance);
            }
            if let Some(arg) = resource_arg {
                body["resource_arg"] = json!(arg);
            } else if no_resource_arg {
                body["resource_arg"] = Value::Null;
            }
            api.post::<Tool>(
                &format!("/v1/servers/{}/tools/{}", segment(&id), segment(&tool)),
                &body,
            )
            .and_then(|answer| {
                answer.print(json, |t| {
                    println!(
                        "{}/{}: risk {}, clearance {}, resource {} (receipt {})",
                        printable(&t.server),
                        printable(&t.name),
                        t.risk.word(),
                        t.clearance.word(),
                        resource_arg_text(t),
                        number(t.receipt_id)
                    );
                })
            })
        }
    };
    finish(result)
}

fn list(api: &Api, json: bool) -> Result<(), ApiError> {
    let answer: Reply<McpServerList> = api.get("/v1/servers")?;
    answer.print(json, |list| {
        if list.servers.is_empty() {
            println!("no servers registered");
        }
        for s in &list.servers {
            println!(
                "{}\t{}\tclearance {}\t{}",
                printable(&s.id),
                s.status.word(),
                s.clearance.word(),
                printable(&s.url)
            );
        }
    })
}

/// `arg:<name>` for a tool's resource argument, `none` without one.
fn resource_arg_text(tool: &Tool) -> String {
    tool.resource_arg.as_deref().map_or_else(
        || "none".to_owned(),
        |arg| format!("arg:{}", printable(arg)),
    )
}

fn tools(api: &Api, json: bool, id: &str) -> Result<(), ApiError> {
    let answer: Reply<ToolList> = api.get(&format!("/v1/servers/{}/tools", segment(id)))?;
    answer.print(json, |list| {
        if list.tools.is_empty() {
            println!("no tools pinned on {id}; run remit server bless {id}");
        }
        for t in &list.tools {
            println!(
                "{}\trisk {}\tclearance {}\tsha256 {}",
                printable(&t.name),
                t.risk.word(),
                t.clearance.word(),
                printable(&t.description_sha256)
            );
        }
    })
}
