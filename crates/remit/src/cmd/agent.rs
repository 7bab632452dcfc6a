//! `remit agent register|list|disable`: the agent registry over the API.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use remit_token::{EcdsaP256Signer, PrivateJwk, Signer as _};
use serde_json::{json, Value};

use remit_api::words::Word as _;
use remit_api::{Agent, AgentList};

use super::client::{finish, segment, Api, ApiError, Reply, ServerArgs};
use crate::io;

/// `remit agent ...`.
#[derive(Debug, Args)]
pub struct AgentArgs {
    #[command(flatten)]
    server: ServerArgs,
    #[command(subcommand)]
    command: AgentCommand,
}

#[derive(Debug, Subcommand)]
enum AgentCommand {
    /// Register an agent with its public key.
    Register {
        /// The agent's id (it appears as `act.sub` in its remits).
        #[arg(long)]
        id: String,
        /// The agent's JWK file; a private JWK is accepted and only its
        /// public half is sent.
        #[arg(long)]
        jwk: PathBuf,
        /// Who is accountable for the agent (default: $USER).
        #[arg(long)]
        owner: Option<String>,
        /// `low`, `medium`, `high` or `critical`.
        #[arg(long, default_value = "medium")]
        risk_tier: String,
        /// A human-readable name (default: the id).
        #[arg(long)]
        name: Option<String>,
    },
    /// List registered agents.
    List,
    /// Disable an agent; every remit it holds or delegated is revoked.
    Disable {
        /// The agent's id.
        id: String,
    },
}

/// Runs `remit agent`.
pub fn run(args: AgentArgs) -> anyhow::Result<ExitCode> {
    let api = Api::new(&args.server)?;
    let json = args.server.json;
    let result = match args.command {
        AgentCommand::Register {
            id,
            jwk,
            owner,
            risk_tier,
            name,
        } => register(&api, json, id, &jwk, owner, risk_tier, name),
        AgentCommand::List => list(&api, json),
        AgentCommand::Disable { id } => disable(&api, json, &id),
    };
    finish(result)
}

/// The public JWK in `path`: a private JWK is reduced to its public half
/// here, so private key material never leaves this machine.
fn public_jwk(path: &std::path::Path) -> anyhow::Result<Value> {
    let text = io::read_text(path)?;
    let value: Value = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a JSON JWK", path.display()))?;
    if value.get("d").is_none() {
        return Ok(value);
    }
    let jwk = PrivateJwk::from_json(&text)
        .with_context(|| format!("{}: not a P-256 private JWK", path.display()))?;
    let signer = EcdsaP256Signer::from_jwk(&jwk)
        .with_context(|| format!("{}: not a usable P-256 key", path.display()))?;
    Ok(serde_json::to_value(signer.public_jwk().clone().bare())?)
}

fn register(
    api: &Api,
    json: bool,
    id: String,
    jwk: &std::path::Path,
    owner: Option<String>,
    risk_tier: String,
    name: Option<String>,
) -> Result<(), ApiError> {
    let public_jwk = public_jwk(jwk)?;
    let owner = match owner.or_else(|| std::env::var("USER").ok()) {
        Some(owner) => owner,
        None => {
            return Err(anyhow::anyhow!("give --owner: who is accountable for the agent").into())
        }
    };
    let mut body = json!({
        "id": id,
        "public_jwk": public_jwk,
        "owner": owner,
        "risk_tier": risk_tier,
    });
    if let Some(name) = name {
        body["name"] = json!(name);
    }
    let agent: Reply<Agent> = api.post("/v1/agents", &body)?;
    agent.print(json, |agent| {
        say!(
            "registered agent {} (key {}, receipt {})",
            printable(&agent.id),
            printable(&agent.key_thumbprint),
            number(agent.receipt_id)
        );
    })
}

fn list(api: &Api, json: bool) -> Result<(), ApiError> {
    let answer: Reply<AgentList> = api.get("/v1/agents")?;
    answer.print(json, |list| {
        if list.agents.is_empty() {
            say!("no agents registered");
        }
        for agent in &list.agents {
            say!(
                "{}\t{}\t{}\towner {}\tkey {}",
                printable(&agent.id),
                agent.status.word(),
                agent.risk_tier.word(),
                printable(&agent.owner),
                printable(&agent.key_thumbprint)
            );
        }
    })
}

fn disable(api: &Api, json: bool, id: &str) -> Result<(), ApiError> {
    let agent: Reply<Agent> =
        api.post(&format!("/v1/agents/{}/disable", segment(id)), &json!({}))?;
    agent.print(json, |agent| {
        say!(
            "disabled agent {} and revoked its remits (receipt {})",
            printable(&agent.id),
            number(agent.receipt_id)
        );
    })
}

/// Text from the server for a terminal, control characters escaped:
/// names and owners come from other people.
pub(crate) fn printable(text: &str) -> String {
    crate::io::printable(text).into_owned()
}

/// An optional number or time for a terminal: `-` when absent.
pub(crate) fn number<T: std::fmt::Display>(value: Option<T>) -> String {
    value.map_or_else(|| "-".into(), |v| v.to_string())
}
