//! `remit draft`: draft a least-privilege policy from an agent's observed
//! calls (issue 26).
//!
//! Reads the observations straight from the store (SQLite in the data
//! directory, or `--database`), drafts with `remit-draft`, writes the Cedar
//! policy set and prints the diff against the live policy (the data
//! directory's policy folder), the calls the live policy refused that the
//! draft would allow, and the check that the draft stays inside its preset.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use remit_draft::{check, draft, DraftOptions, DraftPolicy, Observation, RecordedFacts};
use remit_store::{Id, ObservedFacts, PgStore, SqliteStore, Store};

/// Most observations read for one draft (the newest are kept).
const MAX_OBSERVATIONS: u32 = 200_000;

/// Draft a least-privilege Cedar policy from an agent's observed calls.
#[derive(Debug, Args)]
pub struct DraftArgs {
    /// The agent whose calls are drafted.
    #[arg(long)]
    agent: String,
    /// How far back to read: 7d, 24h, 90m or seconds.
    #[arg(long, default_value = "7d")]
    since: String,
    /// Data directory (its remit.db and policy folder)
    /// [default: $XDG_DATA_HOME/remit or ~/.local/share/remit].
    #[arg(long, env = "REMIT_DATA")]
    data: Option<PathBuf>,
    /// Database URL: sqlite://PATH or postgres://USER@HOST:PORT/DB.
    #[arg(long, env = "REMIT_DATABASE")]
    database: Option<String>,
    /// The live policy folder [default: <data>/policy].
    #[arg(long)]
    policy: Option<PathBuf>,
    /// Where to write the drafted policy set [default: draft-<agent>.cedar].
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// Parses `7d`, `24h`, `90m`, `30s` or plain seconds.
fn parse_since(text: &str) -> anyhow::Result<i64> {
    let (num, unit) = match text.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&text[..i], c),
        _ => (text, 's'),
    };
    let n: i64 = num
        .parse()
        .with_context(|| format!("--since {text:?}: expected 7d, 24h, 90m or seconds"))?;
    let unit = match unit {
        'd' => 86_400,
        'h' => 3_600,
        'm' => 60,
        's' => 1,
        other => anyhow::bail!("--since {text:?}: unknown unit {other:?} (use d, h, m or s)"),
    };
    n.checked_mul(unit)
        .filter(|s| *s >= 0)
        .with_context(|| format!("--since {text:?} is out of range"))
}

/// Runs `remit draft`.
pub fn run(args: DraftArgs) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(run_async(args))
}

async fn run_async(args: DraftArgs) -> anyhow::Result<ExitCode> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let since = now.saturating_sub(parse_since(&args.since)?);
    let data = match &args.data {
        Some(d) => d.clone(),
        None => super::serve::default_data_dir()?,
    };
    let agent = Id::parse("agent id", &args.agent).context("--agent")?;
    let url = args.database.clone().unwrap_or_else(|| {
        format!(
            "sqlite://{}",
            data.join(remit_server::setup::SQLITE_FILE).display()
        )
    });
    match remit_server::Database::parse(&url)? {
        remit_server::Database::Sqlite(path) => {
            if !path.exists() {
                anyhow::bail!(
                    "no database at {}: pass --data DIR or --database URL",
                    path.display()
                );
            }
            let store = SqliteStore::open(&path).await?;
            finish(&args, &data, &store, &agent, since).await
        }
        remit_server::Database::Postgres(url) => {
            let store = PgStore::connect(&url).await?;
            finish(&args, &data, &store, &agent, since).await
        }
    }
}

async fn finish<S: Store>(
    args: &DraftArgs,
    data: &std::path::Path,
    store: &S,
    agent: &Id,
    since: i64,
) -> anyhow::Result<ExitCode> {
    let rows = store
        .observed_facts(agent, since, MAX_OBSERVATIONS)
        .await
        .context("reading observations")?;
    let (observations, without_facts) = parse_rows(&rows)?;
    let directory = remit_server::directory_from_registry(store)
        .await
        .context("reading the registry")?;
    let folder_path = args.policy.clone().unwrap_or_else(|| data.join("policy"));
    let folder = remit_server::PolicyFolder::read(&folder_path)
        .with_context(|| format!("reading the live policy folder {}", folder_path.display()))?;
    let preset = folder.manifest().preset;
    let preset_engine = remit_policy::preset::load(
        remit_policy::EngineKind::Cedar,
        &[preset.source(remit_policy::EngineKind::Cedar)],
        preset.default_mode(),
        directory,
    )?;

    let drafted = draft(
        &observations,
        &DraftOptions {
            agent: args.agent.clone(),
            ..Default::default()
        },
    );
    let text = drafted.to_cedar();
    let compiled = DraftPolicy::compile(&text).context("the draft does not validate")?;
    let boundary = check::check_boundary(&compiled, preset_engine.as_ref(), &observations)?;
    let diff = check::diff(&drafted, &compiled, preset_engine.as_ref(), &observations)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("draft-{}.cedar", args.agent)));
    std::fs::write(&out, &text).with_context(|| format!("writing {}", out.display()))?;

    if args.json {
        let rules: Vec<serde_json::Value> = drafted
            .rules
            .iter()
            .map(|r| {
                serde_json::json!({"id": r.id, "tool": r.tool, "calls": r.calls,
                    "first": r.span.0, "last": r.span.1, "confidence": r.confidence.as_str(),
                    "flagged": r.flagged(), "summary": r.summary})
            })
            .collect();
        crate::io::print_json(&serde_json::json!({
            "agent": args.agent, "preset": preset.as_str(), "written": out.display().to_string(),
            "observations": observations.len(), "without_facts": without_facts,
            "rules": rules, "diff": diff, "boundary": {
                "holds": boundary.holds(), "requests": boundary.requests,
                "exceeds": boundary.exceeds, "broader_alone": boundary.broader_alone.len()},
        }))?;
    } else {
        println!(
            "drafted {} rule(s) for agent {} from {} observation(s) ({} without facts skipped); wrote {}",
            drafted.rules.len(),
            args.agent,
            observations.len(),
            without_facts,
            out.display()
        );
        for r in drafted.rules.iter().filter(|r| r.flagged()) {
            println!("  flagged: {} rests on {} call(s)", r.id, r.calls);
        }
        println!(
            "\ndiff against the live policy ({}):",
            folder_path.display()
        );
        print!("{}", diff.to_text());
        println!(
            "\ninside the {} preset: {} ({} requests checked with Cedar; {} permitted by a rule alone but refused or held by the preset, which still applies)",
            preset.as_str(),
            if boundary.holds() { "yes" } else { "NO" },
            boundary.requests,
            boundary.broader_alone.len()
        );
    }
    Ok(if boundary.holds() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The stored rows as observations; rows recorded without facts are counted.
fn parse_rows(rows: &[ObservedFacts]) -> anyhow::Result<(Vec<Observation>, usize)> {
    let mut out = Vec::with_capacity(rows.len());
    let mut without = 0;
    for row in rows {
        let o = &row.observation.observation;
        let Some(facts) = &row.facts else {
            without += 1;
            continue;
        };
        out.push(
            RecordedFacts::observation(
                o.agent.as_str(),
                o.tool.as_str(),
                o.observed_at,
                &o.decision,
                facts,
            )
            .with_context(|| format!("observation {}", row.observation.id))?,
        );
    }
    Ok((out, without))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_units_and_refuses_nonsense() {
        assert_eq!(parse_since("7d").ok(), Some(7 * 86_400));
        assert_eq!(parse_since("90m").ok(), Some(5_400));
        assert_eq!(parse_since("30").ok(), Some(30));
        assert!(parse_since("7w").is_err());
        assert!(parse_since("-1d").is_err());
        assert!(parse_since("d").is_err());
    }
}
