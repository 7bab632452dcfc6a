//! `remit agent register|list|disable`: the agent registry over the API.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Subcommand};
use remit_token::{EcdsaP256Signer, PrivateJwk, Signer as _};
use serde_json::{json, Value};

use super::client::{finish, segment, Api, ApiError, ServerArgs};
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
    let agent = api.post("/v1/agents", &body)?;
    if json {
        io::print_json(&agent)?;
    } else {
        say!(
            "registered agent {} (key {}, receipt {})",
            text(&agent["id"]),
            text(&agent["key_thumbprint"]),
            text(&agent["receipt_id"])
        );
    }
    Ok(())
}

fn list(api: &Api, json: bool) -> Result<(), ApiError> {
    let answer = api.get("/v1/agents")?;
    if json {
        io::print_json(&answer)?;
        return Ok(());
    }
    let agents = answer["agents"].as_array().cloned().unwrap_or_default();
    if agents.is_empty() {
        say!("no agents registered");
    }
    for agent in agents {
        say!(
            "{}\t{}\t{}\towner {}\tkey {}",
            text(&agent["id"]),
            text(&agent["status"]),
            text(&agent["risk_tier"]),
            text(&agent["owner"]),
            text(&agent["key_thumbprint"])
        );
    }
    Ok(())
}

fn disable(api: &Api, json: bool, id: &str) -> Result<(), ApiError> {
    let agent = api.post(&format!("/v1/agents/{}/disable", segment(id)), &json!({}))?;
    if json {
        io::print_json(&agent)?;
    } else {
        say!(
            "disabled agent {} and revoked its remits (receipt {})",
            text(&agent["id"]),
            text(&agent["receipt_id"])
        );
    }
    Ok(())
}

/// A JSON value as plain text for a terminal (strings without quotes,
/// control characters escaped: names and owners come from other people).
pub(crate) fn text(value: &Value) -> String {
    match value {
        Value::String(s) => crate::io::printable(s).into_owned(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}
