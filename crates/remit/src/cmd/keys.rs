//! `remit keys`: generate P-256 keys and publish JWKS.

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
    }
}
