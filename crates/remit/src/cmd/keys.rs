//! `remit keys`: generate P-256 keys, publish JWKS, rotate a server's keys.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use remit_token::{EcdsaP256Signer, PrivateJwk, Signer as _};

use crate::io;

/// Key commands.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Generate a P-256 private key as a JWK file (mode 0600) and print its public JWK.
    Generate {
        /// Where to write the private JWK; refuses to overwrite an existing file.
        #[arg(long)]
        out: PathBuf,
        /// Key id; defaults to the key's RFC 7638 thumbprint.
        #[arg(long)]
        kid: Option<String>,
    },
    /// Print a JWKS holding the public halves of the given key files.
    Jwks {
        /// Private or public JWK files.
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Rotate a server's key without a restart: the new key is published
    /// beside the old one, then signs from then on; the old one stays
    /// published until every remit it signed has expired. Running servers
    /// and wraps on this data directory pick it up within seconds (or on
    /// SIGHUP).
    Rotate {
        /// Which key: `issuer` (signs remits).
        #[arg(value_enum)]
        which: Rotated,
        /// The server's data directory [default: as `remit serve`].
        #[arg(long, env = "REMIT_DATA")]
        data: Option<PathBuf>,
        /// How long the old key stays published, e.g. 24h [default: the
        /// longest remit lifetime, 24h, and five minutes for clock skew].
        #[arg(long)]
        retire_after: Option<String>,
        /// How long the new key is published before it signs, so every
        /// process watching the files verifies with it first [default: 5s].
        #[arg(long, default_value = "5s")]
        activate_after: String,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Added to the longest remit lifetime before an old key retires.
const RETIRE_LEEWAY_SECS: u64 = 300;

/// A key `remit keys rotate` can rotate.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum Rotated {
    /// The issuer key (`issuer.jwk`), published at /.well-known/jwks.json.
    Issuer,
}

/// Runs a key command.
pub fn run(command: KeysCommand) -> anyhow::Result<ExitCode> {
    match command {
        KeysCommand::Generate { out, kid } => {
            let signer = EcdsaP256Signer::generate()?;
            let mut private = signer.to_private_jwk()?;
            if let Some(kid) = kid {
                private.public.kid = Some(kid);
            }
            io::write_secret_file(&out, &serde_json::to_vec_pretty(&private)?)?;
            io::print_json(&private.public)?;
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Jwks { files } => {
            let mut keys = Vec::with_capacity(files.len());
            for file in &files {
                let text = io::read_text(file)?;
                let public = match PrivateJwk::from_json(&text) {
                    Ok(private) => {
                        let kid = EcdsaP256Signer::from_jwk(&private)
                            .with_context(|| format!("{}: invalid private key", file.display()))?
                            .key_id()
                            .to_owned();
                        private.public.published(kid)
                    }
                    Err(_) => {
                        let public = remit_token::EcPublicJwk::from_json(&text)
                            .with_context(|| format!("{}: not a P-256 JWK", file.display()))?;
                        let kid = public
                            .kid
                            .clone()
                            .unwrap_or_else(|| public.thumbprint().as_str().to_owned());
                        public.published(kid)
                    }
                };
                keys.push(public);
            }
            io::print_json(&serde_json::json!({ "keys": keys }))?;
            Ok(ExitCode::SUCCESS)
        }
        KeysCommand::Rotate {
            which: Rotated::Issuer,
            data,
            retire_after,
            activate_after,
            json,
        } => rotate_issuer(data, retire_after.as_deref(), &activate_after, json),
    }
}

fn rotate_issuer(
    data: Option<PathBuf>,
    retire_after: Option<&str>,
    activate_after: &str,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let data = match data {
        Some(dir) => dir,
        None => super::serve::default_data_dir()?,
    };
    let retire_after = match retire_after {
        Some(text) => super::token::parse_duration(text)?,
        // Every remit the old key signed has expired by then (clock skew
        // allowed for).
        None => remit_token::remit::MAX_ROOT_TTL_SECS + RETIRE_LEEWAY_SECS,
    };
    let activate_after = parse_seconds(activate_after)?;
    let dir = remit_server::setup::DataDir::prepare(&data)?;
    let now = remit_server::setup::unix_now();
    let rotation = dir
        .rotate_issuer(now, retire_after, activate_after)
        .with_context(|| format!("rotating the issuer key in {}", data.display()))?;
    if json {
        io::print_json(&rotation)?;
    } else {
        io::say_line(format_args!(
            "issuer key rotated: {} signs from now on; {} stays published until {} (Unix time)",
            rotation.new_kid, rotation.old_kid, rotation.old_retires_at
        ));
        io::say_line(format_args!(
            "  JWKS {} (running servers and wraps reload it within seconds, or on SIGHUP)",
            rotation.jwks.display()
        ));
    }
    Ok(ExitCode::SUCCESS)
}

/// `0`, `5s`, `2m`: a pause.
fn parse_seconds(text: &str) -> anyhow::Result<std::time::Duration> {
    Ok(std::time::Duration::from_secs(
        super::token::parse_duration(text)?,
    ))
}
