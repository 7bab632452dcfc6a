//! `remit policy`: create, validate, hash, evaluate and test policy folders.
//!
//! A policy folder (see `remit_policy::preset`) holds `manifest.json`, the
//! preset copied as `preset.cedar` (or `preset.rego`), the operator's
//! `overrides/*.cedar` (or `*.rego`) and `entities.json`, the entity
//! directory that `eval` and `test` use unless the cases file has its own.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use remit_policy::table::DecisionTable;
use remit_policy::{
    DecisionRequest, EngineKind, EntityRef, PolicyEngine, Preset, RequestContext, Verdict,
};

use crate::io;
use remit_server::{PolicyFolder, PolicyFolderError};

/// Policy commands.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Write a policy folder: a preset, empty overrides and sample entities.
    New {
        /// lockdown, standard or permissive.
        #[arg(long, default_value = "standard")]
        preset: String,
        /// The folder to create (must not exist, or be empty).
        #[arg(long)]
        out: PathBuf,
        /// cedar (default) or rego.
        #[arg(long, default_value = "cedar")]
        engine: String,
    },
    /// Validate a folder's policies against the schema (exit 1 if invalid).
    Validate {
        /// The policy folder.
        dir: PathBuf,
        /// Print a JSON report.
        #[arg(long)]
        json: bool,
    },
    /// Print the folder's policy version (SHA-256 over its files' `sha256sum` lines).
    Hash {
        /// The policy folder.
        dir: PathBuf,
    },
    /// Decide one request. Exit 0 allow, 1 deny, 3 escalate.
    Eval {
        /// The policy folder.
        dir: PathBuf,
        /// For example Agent::"a".
        #[arg(long)]
        principal: String,
        /// issue, delegate, call_tool, read_result, send_prompt,
        /// read_resource or get_prompt.
        #[arg(long)]
        action: String,
        /// For example Tool::"github/create_issue" (call_tool, read_result),
        /// Server::"github" (read_resource, get_prompt), Model::"local/llama"
        /// (send_prompt) or Agent::"a" (issue, delegate).
        #[arg(long)]
        resource: String,
        /// The context as JSON (`-` for standard input): the ContextInput
        /// fields plus, where the action has them, `pop` ("dpop"/"bearer"),
        /// `granted`, `holder_clearance`, `resource_uri`, `prompt_name`.
        #[arg(long)]
        context: PathBuf,
        /// Show which policies matched and why.
        #[arg(long)]
        explain: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run a decision table against the folder (exit 1 if a case fails).
    Test {
        /// The policy folder.
        dir: PathBuf,
        /// The cases file (YAML).
        cases: PathBuf,
    },
}

/// Runs a policy command.
pub fn run(command: PolicyCommand) -> anyhow::Result<ExitCode> {
    match command {
        PolicyCommand::New {
            preset,
            out,
            engine,
        } => new(&preset, &out, &engine),
        PolicyCommand::Validate { dir, json } => validate(&dir, json),
        PolicyCommand::Hash { dir } => {
            let engine = load(&PolicyFolder::read(&dir)?)?;
            say!("{}", engine.version());
            Ok(ExitCode::SUCCESS)
        }
        PolicyCommand::Eval {
            dir,
            principal,
            action,
            resource,
            context,
            explain,
            json,
        } => eval(
            &dir, &principal, &action, &resource, &context, explain, json,
        ),
        PolicyCommand::Test { dir, cases } => test(&dir, &cases),
    }
}

fn parse_engine(s: &str) -> anyhow::Result<EngineKind> {
    match s {
        "cedar" => Ok(EngineKind::Cedar),
        "rego" => Ok(EngineKind::Rego),
        _ => anyhow::bail!("unknown engine {s:?}: choose cedar or rego"),
    }
}

fn new(preset: &str, out: &Path, engine: &str) -> anyhow::Result<ExitCode> {
    let preset: Preset = preset.parse()?;
    let engine = parse_engine(engine)?;
    let folder = PolicyFolder::create(out, preset, engine)?;
    let loaded = load(&folder)?;
    say!(
        "wrote {} ({} preset, {} engine, escalation {})\nversion {}",
        out.display(),
        preset,
        folder.manifest().engine,
        folder.manifest().mode().as_str(),
        loaded.version()
    );
    Ok(ExitCode::SUCCESS)
}

/// Loads a folder against its own `entities.json`.
fn load(folder: &PolicyFolder) -> anyhow::Result<Box<dyn PolicyEngine>> {
    Ok(folder.load(None, folder.entities()?)?)
}

fn validate(dir: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let folder = PolicyFolder::read(dir)?;
    let files: Vec<&str> = folder.sources().iter().map(|s| s.name.as_str()).collect();
    let result = load(&folder);
    if json {
        let report = match &result {
            Ok(e) => serde_json::json!({
                "valid": true, "version": e.version().to_string(), "files": files,
                "preset": folder.manifest().preset, "engine": folder.manifest().engine,
                "escalation": folder.manifest().mode(),
            }),
            Err(err) => serde_json::json!({
                "valid": false, "files": files, "errors": error_lines(err),
            }),
        };
        io::print_json(&report)?;
    } else {
        match &result {
            Ok(e) => say!(
                "valid: {} file(s), {} preset, {} engine\nversion {}",
                files.len(),
                folder.manifest().preset,
                folder.manifest().engine,
                e.version()
            ),
            Err(err) => {
                say!("invalid:");
                for line in error_lines(err) {
                    say!("  {line}");
                }
            }
        }
    }
    Ok(if result.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn error_lines(err: &anyhow::Error) -> Vec<String> {
    match err.downcast_ref::<PolicyFolderError>() {
        Some(PolicyFolderError::Load {
            source: remit_policy::LoadError::Validation { messages },
            ..
        }) => messages.clone(),
        _ => vec![format!("{err:#}")],
    }
}

fn eval(
    dir: &Path,
    principal: &str,
    action: &str,
    resource: &str,
    context: &Path,
    explain: bool,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let engine = load(&PolicyFolder::read(dir)?)?;
    let request = DecisionRequest::new(
        principal.parse::<EntityRef>()?,
        action.parse()?,
        resource.parse::<EntityRef>()?,
        RequestContext::from_json(&io::read_text(context)?)?,
    )?;
    let decision = engine.decide(&request);
    if json {
        let mut value = serde_json::to_value(&decision)?;
        if explain {
            let eval = engine.evaluate(&request);
            value["explain"] = serde_json::json!({
                "matched": eval.matched,
                "errors": eval.errors,
                "escalation_mode": engine.mode(),
            });
        }
        io::print_json(&value)?;
    } else {
        say!("decision: {}", verdict_word(decision.verdict()));
        say!("reason:   {}", decision.explanation());
        say!("policies: {}", decision.reason_code());
        say!("version:  {}", decision.policy_version());
        if explain {
            let eval = engine.evaluate(&request);
            say!(
                "\nmatched policies ({} engine, escalation {}):",
                engine.kind(),
                engine.mode().as_str()
            );
            if eval.matched.is_empty() {
                say!("  none");
            }
            let mut matched = eval.matched;
            matched.sort();
            for p in &matched {
                let effect = match (p.effect, &p.escalate) {
                    (remit_policy::Effect::Forbid, _) => "forbid  ".to_owned(),
                    (remit_policy::Effect::Permit, None) => "permit  ".to_owned(),
                    (remit_policy::Effect::Permit, Some(_)) => "escalate".to_owned(),
                };
                say!("  {effect} {}: {}", p.id, p.reason);
                if let Some(e) = &p.escalate {
                    say!("           needs approval: {e}");
                }
            }
            for e in &eval.errors {
                say!(
                    "  error    {}: {}",
                    e.policy.as_deref().unwrap_or("-"),
                    e.message
                );
            }
            say!(
                "\nrule: errors deny; a forbid wins; no permit denies; then {}.",
                match engine.mode() {
                    remit_policy::EscalationMode::PlainPermitWins =>
                        "a plain permit allows, escalate-only permits escalate",
                    remit_policy::EscalationMode::EscalateWins => "any escalating permit escalates",
                }
            );
        }
    }
    Ok(match decision.verdict() {
        Verdict::Allow => ExitCode::SUCCESS,
        Verdict::Deny => ExitCode::from(1),
        Verdict::Escalate => ExitCode::from(3),
    })
}

fn verdict_word(v: Verdict) -> &'static str {
    match v {
        Verdict::Allow => "allow",
        Verdict::Deny => "deny",
        Verdict::Escalate => "escalate",
    }
}

fn test(dir: &Path, cases: &Path) -> anyhow::Result<ExitCode> {
    let folder = PolicyFolder::read(dir)?;
    let table = DecisionTable::from_yaml(&io::read_text(cases)?)
        .with_context(|| format!("{}", cases.display()))?;
    let directory = match table.entities()? {
        Some(d) => d,
        None => folder.entities()?,
    };
    let mut engine = folder.load(table.overrides(folder.manifest().engine), directory)?;
    let results = table.run(engine.as_mut());
    let mut failed = 0usize;
    for r in &results {
        if !r.passed() {
            failed += 1;
            say!(
                "FAIL {}: expected {} {}, got {} {} ({})",
                r.name,
                verdict_word(r.expect),
                r.reason,
                verdict_word(r.decision.verdict()),
                r.decision.reason_code(),
                r.decision.explanation()
            );
        }
    }
    let passed = results.len() - failed;
    say!("{passed} passed, {failed} failed");
    Ok(if failed == 0 && results.len() == table.cases().len() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}
