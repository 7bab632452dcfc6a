//! `remit token`: mint, delegate, verify and inspect remits.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{anyhow, bail, Context as _};
use clap::Subcommand;
use remit_token::{
    authorize_call, delegate, mint, narrow_grants, Call, Classification, DelegateRequest,
    EcPublicJwk, EcdsaP256Signer, Grant, Jwks, MintRequest, Pattern, PrivateJwk, UnverifiedChain,
    VerifiedChain, VerifyOptions,
};
use serde_json::{json, Value};

use super::arg_flag::{self, ArgFlag};
use crate::io::{self, printable};

/// Token commands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Mint a root remit signed by an issuer key; prints the compact JWS.
    Mint {
        /// The issuer's private JWK file.
        #[arg(long)]
        issuer_key: PathBuf,
        /// Whom the work is for (`sub`).
        #[arg(long)]
        sub: String,
        /// The agent that will hold the remit (`act.sub`).
        #[arg(long)]
        agent: String,
        /// The holder's JWK file (public or private; the public half is used).
        #[arg(long)]
        holder_jwk: PathBuf,
        /// Tool names or globs the holder may call.
        #[arg(long = "tool", required = true, num_args = 1..)]
        tools: Vec<String>,
        /// Resource patterns the tools may touch (unrestricted if none).
        #[arg(long = "resource", num_args = 1..)]
        resources: Vec<String>,
        /// An argument constraint, `NAME=KIND:VALUE` or `NAME=JSON` (repeatable),
        /// e.g. `path=prefix:/data/reports/`, `n=range:1..10`, `mode=one_of:r,w`.
        #[arg(long = "arg", value_name = "NAME=CONSTRAINT", value_parser = arg_flag::parse)]
        args: Vec<ArgFlag>,
        /// Lifetime: `60s`, `5m`, `1h` (at most 24h).
        #[arg(long, default_value = "60s")]
        ttl: String,
        /// Highest classification the holder may receive.
        #[arg(long, default_value = "INTERNAL")]
        class: Classification,
        /// Tool calls allowed.
        #[arg(long)]
        max_steps: Option<u64>,
        /// Deepest delegation depth.
        #[arg(long, default_value_t = remit_token::remit::DEFAULT_MAX_DEPTH)]
        max_depth: u32,
        /// Audience.
        #[arg(long, default_value = remit_token::remit::DEFAULT_AUDIENCE)]
        aud: String,
        /// Issuer name (`iss`).
        #[arg(long, default_value = remit_token::remit::DEFAULT_ISSUER)]
        iss: String,
        /// How the human approved (`amr`), e.g. `click`, `step_up_totp`.
        #[arg(long = "amr")]
        amr: Vec<String>,
    },
    /// Delegate a narrower remit to a sub-agent; prints the new chain.
    Delegate {
        /// The parent chain (inline, a file path, or `-` for stdin).
        #[arg(long)]
        parent: String,
        /// The parent holder's private JWK file.
        #[arg(long)]
        holder_key: PathBuf,
        /// The sub-agent's JWK file (public or private; the public half is used).
        #[arg(long)]
        to_jwk: PathBuf,
        /// The sub-agent (`act.sub`).
        #[arg(long)]
        agent: String,
        /// Tools (names or globs) within the parent's.
        #[arg(long = "tool", required = true, num_args = 1..)]
        tools: Vec<String>,
        /// Resource patterns within the parent's.
        #[arg(long = "resource", num_args = 1..)]
        resources: Vec<String>,
        /// An argument constraint within the parent's, `NAME=KIND:VALUE` or
        /// `NAME=JSON` (repeatable); it replaces the parent's on that argument.
        #[arg(long = "arg", value_name = "NAME=CONSTRAINT", value_parser = arg_flag::parse)]
        args: Vec<ArgFlag>,
        /// Lifetime: `30s`, `5m` (cut to the parent's expiry).
        #[arg(long, default_value = "30s")]
        ttl: String,
        /// Highest classification (default: the parent's).
        #[arg(long)]
        class: Option<Classification>,
        /// Tool calls allowed (default: the parent's).
        #[arg(long)]
        max_steps: Option<u64>,
    },
    /// Verify a chain; exit 0 printing the effective authority, 1 naming the
    /// link and rule broken (or why the call is refused).
    Verify {
        /// The issuer JWKS file.
        #[arg(long)]
        jwks: PathBuf,
        /// The chain (inline, a file path, or `-` for stdin).
        chain: String,
        /// Also check a call to this tool.
        #[arg(long)]
        tool: Option<String>,
        /// An argument of the call, `name=value` (value parsed as JSON when it is JSON).
        #[arg(long = "arg", requires = "tool")]
        args: Vec<String>,
        /// The resource the call touches.
        #[arg(long, requires = "tool")]
        resource: Option<String>,
        /// The action of the call.
        #[arg(long, requires = "tool")]
        action: Option<String>,
        /// Audience to require.
        #[arg(long, default_value = remit_token::remit::DEFAULT_AUDIENCE)]
        aud: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Show a chain's headers and claims WITHOUT verifying anything.
    Inspect {
        /// The chain (inline, a file path, or `-` for stdin).
        chain: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

/// Runs a token command.
pub fn run(command: TokenCommand) -> anyhow::Result<ExitCode> {
    match command {
        TokenCommand::Mint {
            issuer_key,
            sub,
            agent,
            holder_jwk,
            tools,
            resources,
            args,
            ttl,
            class,
            max_steps,
            max_depth,
            aud,
            iss,
            amr,
        } => {
            let issuer = load_signer(&issuer_key)?;
            let holder = load_public(&holder_jwk)?;
            let mut grant = Grant::tools(patterns(&tools)?);
            if !resources.is_empty() {
                grant.resources = Some(patterns(&resources)?);
            }
            grant.args = arg_flag::collect(&args)?;
            let mut request = MintRequest::new(sub, agent, holder, vec![grant]);
            request.issuer = iss;
            request.audience = aud;
            request.ttl_secs = parse_duration(&ttl)?;
            request.class = class;
            request.max_steps = max_steps;
            request.max_depth = max_depth;
            request.amr = amr;
            let remit = mint(&issuer, &request, now()?)?;
            say!("{remit}");
            Ok(ExitCode::SUCCESS)
        }
        TokenCommand::Delegate {
            parent,
            holder_key,
            to_jwk,
            agent,
            tools,
            resources,
            args,
            ttl,
            class,
            max_steps,
        } => {
            let chain = UnverifiedChain::parse(&read_chain(&parent)?)
                .context("parsing the parent chain")?;
            let signer = load_signer(&holder_key)?;
            let holder = load_public(&to_jwk)?;
            let resources = if resources.is_empty() {
                None
            } else {
                Some(patterns(&resources)?)
            };
            let leaf = chain.leaf();
            let mut grants = narrow_grants(
                &leaf.claims().authorization_details,
                &patterns(&tools)?,
                resources.as_deref(),
            )?;
            let narrower = arg_flag::collect(&args)?;
            for grant in &mut grants {
                for (name, constraint) in narrower.iter() {
                    grant.args.insert(name, constraint.clone());
                }
            }
            let mut request = DelegateRequest::new(agent, holder, grants);
            request.ttl_secs = parse_duration(&ttl)?;
            request.class = class;
            request.max_steps = max_steps;
            let child = delegate(&chain, &signer, &request, now()?)?;
            let mut links = chain.links().to_vec();
            links.push(child);
            say!("{}", UnverifiedChain::from_links(links)?.to_text());
            Ok(ExitCode::SUCCESS)
        }
        TokenCommand::Verify {
            jwks,
            chain,
            tool,
            args,
            resource,
            action,
            aud,
            json,
        } => {
            let jwks = Jwks::from_json(&io::read_text(&jwks)?)
                .with_context(|| format!("reading JWKS {}", jwks.display()))?;
            let text = read_chain(&chain)?;
            let mut opts = VerifyOptions::new(now()?);
            opts.audience = aud;
            let verified = match VerifiedChain::verify_text(&text, &jwks, &opts) {
                Ok(v) => v,
                Err(err) => {
                    if json {
                        io::print_json(&json!({
                            "valid": false,
                            "link": err.link(),
                            "rule": err.rule(),
                            "error": err.to_string(),
                        }))?;
                    } else {
                        say!("invalid: {err}");
                    }
                    return Ok(ExitCode::from(1));
                }
            };
            let authority = verified.authority();
            let call = match &tool {
                None => None,
                Some(tool) => {
                    let args = parse_args(&args)?;
                    let call = Call {
                        tool,
                        resource: resource.as_deref(),
                        action: action.as_deref(),
                        args: &args,
                    };
                    Some(authorize_call(&verified, &call))
                }
            };
            if json {
                let call_json = call.as_ref().map(|c| match c {
                    Ok(a) => json!({"allowed": true, "grant": a.grant}),
                    Err(e) => json!({"allowed": false, "error": e.to_string()}),
                });
                io::print_json(&json!({
                    "valid": true,
                    "authority": authority,
                    "call": call_json,
                }))?;
            } else {
                print_authority(&authority);
                match &call {
                    Some(Ok(a)) => say!("call: allowed by grant {}", a.grant),
                    Some(Err(e)) => say!("call: denied: {e}"),
                    None => {}
                }
            }
            Ok(match call {
                Some(Err(_)) => ExitCode::from(1),
                _ => ExitCode::SUCCESS,
            })
        }
        TokenCommand::Inspect { chain, json } => {
            let chain = UnverifiedChain::parse(&read_chain(&chain)?)?;
            if json {
                let links: Vec<Value> = chain
                    .links()
                    .iter()
                    .map(|l| json!({"kid": l.kid(), "claims": l.claims()}))
                    .collect();
                io::print_json(&json!({"verified": false, "links": links}))?;
            } else {
                say!("UNVERIFIED: signatures and chain rules were not checked");
                for (i, link) in chain.links().iter().enumerate() {
                    say!("link {i} (kid {}):", link.kid());
                    say!("{}", serde_json::to_string_pretty(link.claims())?);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_authority(a: &remit_token::Authority) {
    say!("valid chain of {} link(s)", a.links);
    say!("sub:       {}", printable(&a.sub));
    say!("agent:     {}", printable(&a.actors.join(" <- ")));
    say!("aud:       {}", printable(&a.aud));
    say!("class:     {}", a.class);
    match a.max_steps {
        Some(n) => say!("max_steps: {n}"),
        None => say!("max_steps: unlimited"),
    }
    say!("valid:     {} .. {} (unix seconds)", a.nbf, a.exp);
    say!("depth:     {} of max {}", a.depth, a.max_depth);
    say!("holder:    {}", a.holder);
    for (i, g) in a.grants.iter().enumerate() {
        let tools: Vec<&str> = g.tools.iter().map(Pattern::as_str).collect();
        let mut line = format!("grant {i}:   tools {}", tools.join(", "));
        if let Some(r) = &g.resources {
            let r: Vec<&str> = r.iter().map(Pattern::as_str).collect();
            line.push_str(&format!("; resources {}", r.join(", ")));
        }
        if let Some(acts) = &g.actions {
            line.push_str(&format!("; actions {}", printable(&acts.join(", "))));
        }
        for (name, c) in g.args.iter() {
            line.push_str(&format!(
                "; {}: {}",
                printable(name),
                serde_json::to_string(c).unwrap_or_default()
            ));
        }
        say!("{line}");
    }
}

fn now() -> anyhow::Result<u64> {
    Ok(SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("system clock is before 1970")?
        .as_secs())
}

/// A chain given inline, as a file path, or `-` for stdin.
fn read_chain(arg: &str) -> anyhow::Result<String> {
    let path = Path::new(arg);
    if arg == "-" || path.is_file() {
        return io::read_text(path);
    }
    Ok(arg.to_owned())
}

fn load_signer(path: &Path) -> anyhow::Result<EcdsaP256Signer> {
    let text = io::read_text(path)?;
    let jwk = PrivateJwk::from_json(&text)
        .with_context(|| format!("{}: not a private P-256 JWK", path.display()))?;
    EcdsaP256Signer::from_jwk(&jwk).with_context(|| format!("{}: invalid key", path.display()))
}

fn load_public(path: &Path) -> anyhow::Result<EcPublicJwk> {
    let text = io::read_text(path)?;
    match PrivateJwk::from_json(&text) {
        Ok(private) => Ok(private.public),
        Err(_) => EcPublicJwk::from_json(&text)
            .with_context(|| format!("{}: not a P-256 JWK", path.display())),
    }
}

fn patterns(texts: &[String]) -> anyhow::Result<Vec<Pattern>> {
    texts
        .iter()
        .map(|t| Pattern::try_from(t.as_str()).map_err(|e| anyhow!("pattern {t:?}: {e}")))
        .collect()
}

/// `60`, `60s`, `5m`, `2h` or `1d` to seconds.
pub(crate) fn parse_duration(text: &str) -> anyhow::Result<u64> {
    let text = text.trim();
    let (digits, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(at) => text.split_at(at),
        None => (text, "s"),
    };
    let n: u64 = digits
        .parse()
        .with_context(|| format!("invalid duration {text:?}: use e.g. 60s, 5m, 1h"))?;
    let scale = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => bail!("invalid duration unit in {text:?}: use s, m, h or d"),
    };
    n.checked_mul(scale)
        .ok_or_else(|| anyhow!("duration {text:?} is too large"))
}

/// `name=value` pairs to a JSON object; values that parse as JSON are JSON,
/// others are strings.
fn parse_args(pairs: &[String]) -> anyhow::Result<Value> {
    let mut map = serde_json::Map::new();
    for pair in pairs {
        let (name, value) = pair
            .split_once('=')
            .ok_or_else(|| anyhow!("--arg {pair:?} must be name=value"))?;
        let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.into()));
        if map.insert(name.to_owned(), value).is_some() {
            bail!("--arg {name:?} given twice");
        }
    }
    Ok(Value::Object(map))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_durations() {
        assert_eq!(parse_duration("60s").unwrap(), 60);
        assert_eq!(parse_duration("5m").unwrap(), 300);
        assert_eq!(parse_duration("90").unwrap(), 90);
        assert!(parse_duration("5y").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn refuses_repeated_args() {
        assert!(parse_args(&["a=1".into(), "a=2".into()]).is_err());
        let v = parse_args(&["n=5".into(), "p=/tmp/x".into()]).unwrap();
        assert_eq!(v, json!({"n": 5, "p": "/tmp/x"}));
    }
}
