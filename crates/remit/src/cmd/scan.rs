//! `remit scan`: find personal data and secrets in a file or standard input.

use std::io::Read as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use remit_scan::{HmacKey, InputFormat, Redaction, ScanConfig, Scanner, Warning};

use crate::io;

/// How to read the input.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum FormatArg {
    /// JSON when it parses as an object or array, text otherwise.
    Auto,
    /// JSON (falls back to text with a warning).
    Json,
    /// Plain text.
    Text,
}

/// What findings show in place of the value.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RedactArg {
    /// Asterisks; cards keep their last four digits.
    Mask,
    /// Keyed HMAC-SHA256 (key from REMIT_SCAN_HMAC_KEY or --hmac-key-file).
    Hash,
    /// Nothing.
    Drop,
}

/// Arguments of `remit scan`.
#[derive(Debug, Args)]
pub struct ScanArgs {
    /// File to scan, or `-` for standard input.
    #[arg(default_value = "-")]
    input: PathBuf,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// How to read the input.
    #[arg(long, value_enum, default_value = "auto")]
    format: FormatArg,
    /// What findings show in place of the matched value.
    #[arg(long, value_enum, default_value = "mask")]
    redact: RedactArg,
    /// Largest input accepted, in bytes; larger input is an error.
    #[arg(long, default_value_t = 16 * 1024 * 1024)]
    max_bytes: usize,
    /// File holding the HMAC key for `--redact hash` (at least 16 bytes).
    #[arg(long)]
    hmac_key_file: Option<PathBuf>,
}

/// Reads at most `limit + 1` bytes so oversized input is refused without
/// reading all of it.
fn read_input(path: &PathBuf, limit: usize) -> anyhow::Result<Vec<u8>> {
    let mut buf = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    if path.as_os_str() == "-" {
        std::io::stdin()
            .lock()
            .take(cap)
            .read_to_end(&mut buf)
            .context("reading standard input")?;
    } else {
        std::fs::File::open(path)
            .and_then(|f| f.take(cap).read_to_end(&mut buf))
            .with_context(|| format!("reading {}", path.display()))?;
    }
    Ok(buf)
}

fn hmac_key(args: &ScanArgs) -> anyhow::Result<HmacKey> {
    let bytes = match &args.hmac_key_file {
        Some(path) => {
            let mut b =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            while b.last().is_some_and(u8::is_ascii_whitespace) {
                b.pop();
            }
            b
        }
        None => std::env::var("REMIT_SCAN_HMAC_KEY")
            .map(String::into_bytes)
            .map_err(|_| {
                anyhow::anyhow!(
                    "--redact hash needs a key: set REMIT_SCAN_HMAC_KEY or pass --hmac-key-file"
                )
            })?,
    };
    HmacKey::new(&bytes).context("--redact hash")
}

/// Runs `remit scan`.
pub fn run(args: ScanArgs) -> anyhow::Result<ExitCode> {
    let redaction = match args.redact {
        RedactArg::Mask => Redaction::Mask,
        RedactArg::Drop => Redaction::Drop,
        RedactArg::Hash => Redaction::Hash(hmac_key(&args)?),
    };
    let format = match args.format {
        FormatArg::Auto => InputFormat::Auto,
        FormatArg::Json => InputFormat::Json,
        FormatArg::Text => InputFormat::Text,
    };
    let input = read_input(&args.input, args.max_bytes)?;
    let scanner = Scanner::new(ScanConfig {
        max_bytes: args.max_bytes,
        format,
        redaction,
        ..ScanConfig::default()
    });
    let report = scanner.scan(&input)?;
    if args.json {
        io::print_json(&report)?;
        return Ok(ExitCode::SUCCESS);
    }
    for w in &report.warnings {
        let text = match w {
            Warning::InvalidUtf8 => {
                "input is not valid UTF-8; invalid bytes were scanned as spaces"
            }
            Warning::NotJson => "input is not JSON; scanned as text",
            Warning::DecodeBudgetExhausted => {
                "decoding budget exhausted; some blobs were not decoded"
            }
        };
        eprintln!("warning: {text}");
    }
    for f in &report.findings {
        let mut line = format!(
            "{:<18} {:>8} {:>8}  {:<13} {}",
            f.kind.name(),
            f.start,
            f.end,
            f.class.name(),
            f.path.as_deref().unwrap_or("-"),
        );
        if let Some(r) = &f.redacted {
            line.push_str("  ");
            line.push_str(r);
        }
        if !f.transforms.is_empty() {
            line.push_str(&format!("  via {}", f.transforms.names().join("+")));
        }
        say!("{line}");
    }
    say!(
        "classification: {} ({} finding{})",
        report.classification,
        report.findings.len(),
        if report.findings.len() == 1 { "" } else { "s" }
    );
    Ok(ExitCode::SUCCESS)
}
