//! `remit server add|list|tools|bless|tool-set|disable`: the MCP servers the
//! gateway fronts, and the tools pinned on them, over the API.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{json, Value};

use super::agent::text;
use super::client::{finish, segment, Api, ApiError, ServerArgs};
use crate::io;

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
            api.post("/v1/servers", &body).and_then(|s| {
                if json {
                    io::print_json(&s)?;
                } else {
                    println!(
                        "added server {} at {} (receipt {}); next: remit server bless {}",
                        text(&s["id"]),
                        text(&s["url"]),
                        text(&s["receipt_id"]),
                        text(&s["id"])
                    );
                }
                Ok(())
            })
        }
        ServerCommand::List => list(&api, json),
        ServerCommand::Disable { id } => api
            .post(&format!("/v1/servers/{}/disable", segment(&id)), &json!({}))
            .and_then(|s| {
                if json {
                    io::print_json(&s)?;
                } else {
                    println!(
                        "disabled server {}: the gateway refuses every call to it (receipt {})",
                        text(&s["id"]),
                        text(&s["receipt_id"])
                    );
                }
                Ok(())
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
            api.post(&format!("/v1/servers/{}/bless", segment(&id)), &body)
                .and_then(|answer| {
                    if json {
                        io::print_json(&answer)?;
                        return Ok(());
                    }
                    for tool in answer["tools"].as_array().cloned().unwrap_or_default() {
                        println!(
                            "pinned {}/{}\trisk {}\tclearance {}\tresource {}\tsha256 {}{}",
                            text(&tool["server"]),
                            text(&tool["name"]),
                            text(&tool["risk"]),
                            text(&tool["clearance"]),
                            resource_arg_text(&tool["resource_arg"]),
                            text(&tool["description_sha256"]),
                            if tool["repinned"] == true {
                                "\t(changed, re-pinned)"
                            } else {
                                ""
                            }
                        );
                    }
                    Ok(())
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
            api.post(
                &format!("/v1/servers/{}/tools/{}", segment(&id), segment(&tool)),
                &body,
            )
            .and_then(|t| {
                if json {
                    io::print_json(&t)?;
                } else {
                    println!(
                        "{}/{}: risk {}, clearance {}, resource {} (receipt {})",
                        text(&t["server"]),
                        text(&t["name"]),
                        text(&t["risk"]),
                        text(&t["clearance"]),
                        resource_arg_text(&t["resource_arg"]),
                        text(&t["receipt_id"])
                    );
                }
                Ok(())
            })
        }
    };
    finish(result)
}

fn list(api: &Api, json: bool) -> Result<(), ApiError> {
    let answer = api.get("/v1/servers")?;
    if json {
        io::print_json(&answer)?;
        return Ok(());
    }
    let servers = answer["servers"].as_array().cloned().unwrap_or_default();
    if servers.is_empty() {
        println!("no servers registered");
    }
    for s in servers {
        println!(
            "{}\t{}\tclearance {}\t{}",
            text(&s["id"]),
            text(&s["status"]),
            text(&s["clearance"]),
            text(&s["url"])
        );
    }
    Ok(())
}

/// `arg:<name>` for a tool's resource argument, `none` without one.
fn resource_arg_text(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| "none".to_owned(), |arg| format!("arg:{arg}"))
}

fn tools(api: &Api, json: bool, id: &str) -> Result<(), ApiError> {
    let answer = api.get(&format!("/v1/servers/{}/tools", segment(id)))?;
    if json {
        io::print_json(&answer)?;
        return Ok(());
    }
    let tools = answer["tools"].as_array().cloned().unwrap_or_default();
    if tools.is_empty() {
        println!("no tools pinned on {id}; run remit server bless {id}");
    }
    for t in tools {
        println!(
            "{}\trisk {}\tclearance {}\tsha256 {}",
            text(&t["name"]),
            text(&t["risk"]),
            text(&t["clearance"]),
            text(&t["description_sha256"])
        );
    }
    Ok(())
}
