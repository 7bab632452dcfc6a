//! `remit audit`: keep and verify the signed receipt log.

use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::mpsc;

use anyhow::{bail, Context as _};
use clap::{Subcommand, ValueEnum};
use remit_api::{LatestCheckpoint, ReceiptPage};
use remit_ledger::ocsf::rfc3339;
use remit_ledger::{
    ActorKind, ApiActivity, Auditor, Event, FileStore, Jwks, Log, LogDir, NoteSigner, NoteVerifier,
    ReceiptSigner, Semantics, SignedReceipt, Violation,
};
use remit_token::{EcdsaP256Signer, PrivateJwk};
use serde_json::json;

use crate::io;

/// Audit log commands.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Create a log directory and its Ed25519 checkpoint (note) key.
    Init {
        /// The log directory to create.
        #[arg(long)]
        log: PathBuf,
        /// The log's origin, also its note key name (e.g. `remit.example/audit`).
        #[arg(long)]
        origin: String,
        /// Where to write the note signer key (mode 0600, never overwritten).
        #[arg(long)]
        note_key_out: PathBuf,
    },
    /// Sign and durably append receipts, then write a new checkpoint.
    ///
    /// `--receipt` holds one event as JSON, or JSON Lines. With `-`, events
    /// are read from standard input as JSON Lines and group-committed as they
    /// arrive; each index is printed once it is durable.
    Append {
        /// The log directory.
        #[arg(long)]
        log: PathBuf,
        /// The gateway's ES256 private JWK that signs receipts.
        #[arg(long)]
        key: PathBuf,
        /// The log's note signer key (from `audit init`).
        #[arg(long)]
        note_key: PathBuf,
        /// The event(s) to append, or `-` for a stream on standard input.
        #[arg(long)]
        receipt: PathBuf,
    },
    /// Verify every receipt, signature, link and the tree head offline,
    /// from a log directory (`--log`) or from a running server (`--server`),
    /// then what the log means: no allow after a revocation covering it,
    /// no remit past its steps, approvals used once, decisions under the
    /// promoted policy version (each violation named by receipt index).
    Verify {
        /// The log directory.
        #[arg(long, required_unless_present = "server", conflicts_with = "server")]
        log: Option<PathBuf>,
        /// Read the log from a running control plane instead: its
        /// `/v1/receipts` (admin token) and `/v1/checkpoints/latest`.
        #[arg(long)]
        server: Option<String>,
        /// Admin API token, for `--server`.
        #[arg(long, env = "REMIT_ADMIN_TOKEN", hide_env_values = true)]
        admin_token: Option<String>,
        /// For an https:// `--server`: trust only the CA certificates in
        /// this PEM file [default: the system's roots].
        #[arg(long, env = "REMIT_CA_FILE")]
        ca_file: Option<PathBuf>,
        /// JWKS with the gateway's receipt keys; with `--server`, the
        /// server's published receipt JWKS when absent (unpinned).
        #[arg(long, required_unless_present = "server")]
        jwks: Option<PathBuf>,
        /// An earlier checkpoint you kept: the log must extend it.
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// The log's note verifier key; defaults to `DIR/note.pub` (unpinned).
        #[arg(long)]
        note_pub: Option<PathBuf>,
        /// Print the result as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print the inclusion proof of a receipt against the signed checkpoint.
    Prove {
        /// The log directory.
        #[arg(long)]
        log: PathBuf,
        /// The receipt's index.
        #[arg(long)]
        index: u64,
    },
    /// Print the consistency proof from an earlier size to the signed checkpoint.
    Consistency {
        /// The log directory.
        #[arg(long)]
        log: PathBuf,
        /// The earlier tree size.
        #[arg(long)]
        from: u64,
    },
    /// Show the trail of receipts with each event's delegation chain.
    Show {
        /// The log directory.
        #[arg(long)]
        log: PathBuf,
        /// Only receipts whose root or leaf remit has this `jti`.
        #[arg(long)]
        jti: Option<String>,
        /// Only receipts with this agent in the actor chain.
        #[arg(long)]
        agent: Option<String>,
        /// Only receipts acting for this user.
        #[arg(long)]
        user: Option<String>,
        /// Print the receipts as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Export receipts as JSON Lines or OCSF API Activity events.
    Export {
        /// The log directory.
        #[arg(long)]
        log: PathBuf,
        /// Output format.
        #[arg(long)]
        format: ExportFormat,
    },
}

/// Export formats.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    /// OCSF 1.3 API Activity (class_uid 6003), one event per line.
    Ocsf,
    /// The receipts themselves, one per line.
    Jsonl,
}

/// Runs an audit command.
pub fn run(command: AuditCommand) -> anyhow::Result<ExitCode> {
    match command {
        AuditCommand::Init {
            log,
            origin,
            note_key_out,
        } => init(&log, &origin, &note_key_out),
        AuditCommand::Append {
            log,
            key,
            note_key,
            receipt,
        } => append(&log, &key, &note_key, &receipt),
        AuditCommand::Verify {
            log,
            server,
            admin_token,
            ca_file,
            jwks,
            checkpoint,
            note_pub,
            json,
        } => match (log, server, jwks) {
            (_, Some(server), jwks) => {
                let args = super::client::ServerArgs {
                    server,
                    admin_token,
                    json,
                    ca_file,
                };
                verify_server(
                    &args,
                    jwks.as_deref(),
                    checkpoint.as_deref(),
                    note_pub.as_deref(),
                )
            }
            (Some(log), None, Some(jwks)) => verify(
                &log,
                &jwks,
                checkpoint.as_deref(),
                note_pub.as_deref(),
                json,
            ),
            _ => bail!("give --log DIR with --jwks FILE, or --server URL"),
        },
        AuditCommand::Prove { log, index } => prove(&log, index),
        AuditCommand::Consistency { log, from } => consistency(&log, from),
        AuditCommand::Show {
            log,
            jti,
            agent,
            user,
            json,
        } => show(
            &log,
            jti.as_deref(),
            agent.as_deref(),
            user.as_deref(),
            json,
        ),
        AuditCommand::Export { log, format } => export(&log, format),
    }
}

fn init(log: &Path, origin: &str, note_key_out: &Path) -> anyhow::Result<ExitCode> {
    let note_key = NoteSigner::generate(origin)?;
    let dir = LogDir::new(log);
    if dir.path().join("note.pub").exists() {
        bail!("{} already holds a log", log.display());
    }
    io::write_secret_file(note_key_out, note_key.to_skey().as_bytes())?;
    dir.init(&note_key)?;
    say!("{}", note_key.verifier().to_vkey());
    Ok(ExitCode::SUCCESS)
}

/// Opens the directory's log for appending, after torn-tail recovery.
fn open_log(dir: &LogDir) -> anyhow::Result<Log<FileStore>> {
    let verifier = dir.note_verifier()?;
    let (store, recovery) = FileStore::open(dir.path())?;
    if recovery.torn_bytes > 0 {
        eprintln!(
            "note: cut a torn last line of {} bytes left by a crash (it was never acknowledged)",
            recovery.torn_bytes
        );
    }
    let leaves = store.read_all()?;
    Ok(Log::open(store, leaves, verifier.name())?)
}

fn append(log: &Path, key: &Path, note_key: &Path, receipt: &Path) -> anyhow::Result<ExitCode> {
    let jwk = PrivateJwk::from_json(&io::read_text(key)?)
        .with_context(|| format!("{}: not a private JWK", key.display()))?;
    let signer = EcdsaP256Signer::from_jwk(&jwk)?;
    let signer = ReceiptSigner::new(&signer)?;
    let note_key = NoteSigner::from_skey(io::read_text(note_key)?.trim())
        .with_context(|| format!("{}: not a note signer key", note_key.display()))?;
    let dir = LogDir::new(log);
    let mut log = open_log(&dir)?;
    if note_key.verifier() != dir.note_verifier()? {
        bail!(
            "the note key does not match {}/note.pub",
            dir.path().display()
        );
    }
    let mut commit = |events: Vec<Event>| -> anyhow::Result<()> {
        let appended = log.append_batch(events, &signer)?;
        dir.write_checkpoint(&log.signed_checkpoint(&note_key)?)?;
        let mut out = std::io::stdout().lock();
        for a in appended {
            writeln!(out, "{}", a.index)?;
        }
        out.flush()?;
        Ok(())
    };
    if receipt.as_os_str() != "-" {
        let text = io::read_text(receipt)?;
        let events = match Event::from_json(&text) {
            Ok(event) => vec![event],
            Err(_) => text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .enumerate()
                .map(|(n, l)| {
                    Event::from_json(l)
                        .with_context(|| format!("{} line {}", receipt.display(), n + 1))
                })
                .collect::<anyhow::Result<Vec<_>>>()?,
        };
        commit(events)?;
        return Ok(ExitCode::SUCCESS);
    }
    // Streaming: a reader thread feeds lines; each commit takes everything
    // that arrived meanwhile (group commit), up to a bound.
    let (tx, rx) = mpsc::sync_channel::<std::io::Result<String>>(4096);
    std::thread::spawn(move || {
        for line in std::io::stdin().lock().lines() {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let parse = |line: std::io::Result<String>| -> anyhow::Result<Option<Event>> {
        let line = line.context("reading standard input")?;
        if line.trim().is_empty() {
            return Ok(None);
        }
        Ok(Some(Event::from_json(&line)?))
    };
    while let Ok(first) = rx.recv() {
        let mut events: Vec<Event> = parse(first)?.into_iter().collect();
        while events.len() < 1024 {
            match rx.try_recv() {
                Ok(line) => events.extend(parse(line)?),
                Err(_) => break,
            }
        }
        if !events.is_empty() {
            commit(events)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn load_verifier(dir: &LogDir, note_pub: Option<&Path>) -> anyhow::Result<(NoteVerifier, bool)> {
    match note_pub {
        Some(path) => {
            let text = io::read_text(path)?;
            let v = NoteVerifier::from_vkey(text.trim())
                .with_context(|| format!("{}: not a note verifier key", path.display()))?;
            Ok((v, true))
        }
        None => Ok((dir.note_verifier()?, false)),
    }
}

fn verify(
    log: &Path,
    jwks: &Path,
    earlier: Option<&Path>,
    note_pub: Option<&Path>,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let dir = LogDir::new(log);
    let jwks = Jwks::from_json(&io::read_text(jwks)?)
        .with_context(|| format!("{}: not a JWKS", jwks.display()))?;
    let (verifier, pinned) = load_verifier(&dir, note_pub)?;
    let checkpoint = dir.checkpoint()?;
    let earlier = earlier.map(io::read_text).transpose()?;
    let mut reader = dir.leaf_reader()?;
    let progress = (std::io::stderr().is_terminal() && reader.total_bytes() > 8 << 20).then(|| {
        let bar = indicatif::ProgressBar::new(reader.total_bytes());
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "verifying {bar:40} {bytes}/{total_bytes} ({eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let mut auditor = Auditor::new(&jwks);
    let mut semantics = Semantics::new();
    let mut result = Ok(());
    while let Some(leaf) = reader.next() {
        let leaf = leaf?;
        if let Err(e) = auditor.push(&leaf) {
            result = Err(e);
            break;
        }
        push_semantics(&mut semantics, &leaf);
        if let Some(bar) = &progress {
            if auditor.size() % 4096 == 0 {
                bar.set_position(reader.bytes_read());
            }
        }
    }
    if let Some(bar) = &progress {
        bar.set_position(reader.bytes_read());
        bar.finish_and_clear();
    }
    let torn = reader.torn_bytes();
    let result = result.and_then(|()| auditor.finish(&checkpoint, &verifier, earlier.as_deref()));
    let unpinned = " (key from DIR/note.pub: pass --note-pub to pin it)";
    let verdict = Verdict {
        torn,
        pinned,
        violations: semantics.finish(),
    };
    print_verdict(result, verdict, &verifier, unpinned, as_json)
}

/// Feeds a leaf the auditor accepted (so it parses) to the semantic checks.
fn push_semantics(semantics: &mut Semantics, leaf: &[u8]) {
    if let Ok(signed) = SignedReceipt::parse(leaf) {
        semantics.push(&signed.receipt);
    }
}

/// What `verify` found besides the integrity result.
struct Verdict {
    /// Bytes of a torn last line that were ignored.
    torn: u64,
    /// Whether the note key was pinned by the caller.
    pinned: bool,
    /// Semantic violations, by receipt index.
    violations: Vec<Violation>,
}

/// `remit audit verify --server URL`: pages through `/v1/receipts` and
/// checks every leaf and the server's latest signed checkpoint, exactly as
/// for a directory. The checkpoint is read first, so receipts appended
/// meanwhile are reported as unsealed, never as a failure. Without
/// `--note-pub` and `--jwks` the keys are the ones the server publishes
/// (which proves consistency, not authenticity: pin them).
fn verify_server(
    args: &super::client::ServerArgs,
    jwks: Option<&Path>,
    earlier: Option<&Path>,
    note_pub: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let api = super::client::Api::new(args)?;
    let fail = |e: super::client::ApiError| anyhow::anyhow!("{e}");
    let head: LatestCheckpoint = api.get("/v1/checkpoints/latest").map_err(fail)?.body;
    let checkpoint = head.checkpoint;
    let (verifier, pinned) = match note_pub {
        Some(path) => (
            NoteVerifier::from_vkey(io::read_text(path)?.trim())
                .with_context(|| format!("{}: not a note verifier key", path.display()))?,
            true,
        ),
        None => (
            NoteVerifier::from_vkey(&head.note_verifier)
                .context("the server's note verifier key does not parse")?,
            false,
        ),
    };
    let jwks = match jwks {
        Some(path) => Jwks::from_json(&io::read_text(path)?)
            .with_context(|| format!("{}: not a JWKS", path.display()))?,
        None => Jwks::from_json(&head.receipt_jwks.to_string())
            .context("the server's receipt JWKS does not parse")?,
    };
    let earlier = earlier.map(io::read_text).transpose()?;
    let mut auditor = Auditor::new(&jwks);
    let mut semantics = Semantics::new();
    let mut result = Ok(());
    'pages: loop {
        let page: ReceiptPage = api
            .get(&format!("/v1/receipts?from={}&limit=1000", auditor.size()))
            .map_err(fail)?
            .body;
        if page.leaves.is_empty() {
            break;
        }
        for leaf in &page.leaves {
            if let Err(e) = auditor.push(leaf.as_bytes()) {
                result = Err(e);
                break 'pages;
            }
            push_semantics(&mut semantics, leaf.as_bytes());
        }
    }
    let result = result.and_then(|()| auditor.finish(&checkpoint, &verifier, earlier.as_deref()));
    let unpinned = " (key published by the server: pass --note-pub to pin it)";
    let verdict = Verdict {
        torn: 0,
        pinned,
        violations: semantics.finish(),
    };
    print_verdict(result, verdict, &verifier, unpinned, args.json)
}

fn print_verdict(
    result: Result<remit_ledger::AuditReport, remit_ledger::AuditError>,
    verdict: Verdict,
    verifier: &NoteVerifier,
    unpinned: &str,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let Verdict {
        torn,
        pinned,
        violations,
    } = verdict;
    match result {
        Ok(report) if !violations.is_empty() => {
            if as_json {
                io::print_json(&json!({
                    "ok": false,
                    "index": violations[0].index,
                    "code": "semantic",
                    "reason": format!("{} receipt(s) break the log's own rules", violations.len()),
                    "size": report.size,
                    "root": report.root.to_hex(),
                    "violations": violations,
                }))?;
            } else {
                say!(
                    "integrity ok ({} receipts, tree head {}), but the log breaks its own rules:",
                    report.size,
                    report.root
                );
                for v in &violations {
                    say!("FAILED: receipt {}: {}: {}", v.index, v.code, v.detail);
                }
            }
            Ok(ExitCode::from(1))
        }
        Ok(report) => {
            if as_json {
                io::print_json(&json!({
                    "ok": true,
                    "size": report.size,
                    "root": report.root.to_hex(),
                    "checkpoint_size": report.checkpoint.size,
                    "unsealed": report.unsealed,
                    "earlier_size": report.earlier.as_ref().map(|c| c.size),
                    "signers": report.signers,
                    "torn_tail_bytes": torn,
                    "note_key_pinned": pinned,
                    "violations": [],
                }))?;
            } else {
                say!(
                    "ok: {} receipts verified; tree head {}",
                    report.size,
                    report.root
                );
                say!(
                    "checkpoint of {} receipts signed by {}{}",
                    report.checkpoint.size,
                    verifier.name(),
                    if pinned { "" } else { unpinned }
                );
                if let Some(e) = &report.earlier {
                    say!(
                        "consistent with the earlier checkpoint of {} receipts",
                        e.size
                    );
                }
                if report.unsealed > 0 {
                    say!(
                        "{} receipts after the checkpoint are signed but not yet sealed",
                        report.unsealed
                    );
                }
                if torn > 0 {
                    say!("a torn last line of {torn} bytes (a crash mid-write, never acknowledged) was ignored");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            if as_json {
                io::print_json(&json!({
                    "ok": false,
                    "index": e.index(),
                    "code": e.code(),
                    "reason": e.to_string(),
                }))?;
            } else {
                say!("FAILED: {e}");
            }
            Ok(ExitCode::from(1))
        }
    }
}

fn signed_checkpoint(dir: &LogDir) -> anyhow::Result<(String, remit_ledger::Checkpoint)> {
    let note = dir.checkpoint()?;
    let cp = remit_ledger::Checkpoint::open(&note, &dir.note_verifier()?)?;
    Ok((note, cp))
}

fn prove(log: &Path, index: u64) -> anyhow::Result<ExitCode> {
    let dir = LogDir::new(log);
    let (note, cp) = signed_checkpoint(&dir)?;
    let leaves: Vec<Vec<u8>> = dir.leaf_reader()?.collect::<Result<_, _>>()?;
    let tree = remit_ledger::Tree::from_leaf_hashes(
        leaves.iter().map(|l| remit_ledger::merkle::leaf_hash(l)),
    );
    if index >= cp.size {
        bail!(
            "receipt {index} is not covered by the checkpoint (size {})",
            cp.size
        );
    }
    let proof = tree.inclusion_proof(index, cp.size)?;
    let leaf_hash = tree.leaf(index).context("leaf missing")?;
    io::print_json(&json!({
        "index": index,
        "tree_size": cp.size,
        "leaf_hash": leaf_hash.to_hex(),
        "root": cp.root.to_hex(),
        "proof": proof.iter().map(|h| h.to_hex()).collect::<Vec<_>>(),
        "checkpoint": note,
    }))?;
    Ok(ExitCode::SUCCESS)
}

fn consistency(log: &Path, from: u64) -> anyhow::Result<ExitCode> {
    let dir = LogDir::new(log);
    let (note, cp) = signed_checkpoint(&dir)?;
    let leaves: Vec<Vec<u8>> = dir.leaf_reader()?.collect::<Result<_, _>>()?;
    let tree = remit_ledger::Tree::from_leaf_hashes(
        leaves.iter().map(|l| remit_ledger::merkle::leaf_hash(l)),
    );
    if from > cp.size {
        bail!("size {from} is larger than the checkpoint's {}", cp.size);
    }
    let proof = tree.consistency_proof(from, cp.size)?;
    io::print_json(&json!({
        "from_size": from,
        "from_root": tree.root_at(from)?.to_hex(),
        "tree_size": cp.size,
        "root": cp.root.to_hex(),
        "proof": proof.iter().map(|h| h.to_hex()).collect::<Vec<_>>(),
        "checkpoint": note,
    }))?;
    Ok(ExitCode::SUCCESS)
}

fn read_receipts(dir: &LogDir) -> anyhow::Result<Vec<SignedReceipt>> {
    let mut out = Vec::new();
    for (i, leaf) in dir.leaf_reader()?.enumerate() {
        out.push(SignedReceipt::parse(&leaf?).with_context(|| format!("receipt {i}"))?);
    }
    Ok(out)
}

fn matches(e: &Event, jti: Option<&str>, agent: Option<&str>, user: Option<&str>) -> bool {
    let has = |kind: ActorKind, id: &str| e.actors.iter().any(|a| a.kind == kind && a.id == id);
    jti.is_none_or(|j| e.root_jti.as_deref() == Some(j) || e.leaf_jti.as_deref() == Some(j))
        && agent.is_none_or(|a| has(ActorKind::Agent, a))
        && user.is_none_or(|u| has(ActorKind::User, u))
}

fn show(
    log: &Path,
    jti: Option<&str>,
    agent: Option<&str>,
    user: Option<&str>,
    as_json: bool,
) -> anyhow::Result<ExitCode> {
    let receipts = read_receipts(&LogDir::new(log))?;
    let selected: Vec<&SignedReceipt> = receipts
        .iter()
        .filter(|r| matches(&r.receipt.event, jti, agent, user))
        .collect();
    if as_json {
        let items: Vec<_> = selected
            .iter()
            .map(|r| json!({ "kid": r.kid, "receipt": r.receipt }))
            .collect();
        io::print_json(&items)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = std::io::stdout().lock();
    for r in selected {
        let e = &r.receipt.event;
        writeln!(
            out,
            "#{:<6} {}  {:<15} {}",
            r.receipt.index,
            rfc3339(e.time).unwrap_or_else(|| format!("{} ms", e.time)),
            e.kind.as_str(),
            crate::io::printable(e.tool.as_deref().unwrap_or("-"))
        )?;
        let chain: Vec<String> = e
            .actors
            .iter()
            .map(|a| {
                let kind = match a.kind {
                    ActorKind::User => "user",
                    ActorKind::Agent => "agent",
                };
                format!("{kind}:{}", crate::io::printable(&a.id))
            })
            .collect();
        if !chain.is_empty() {
            writeln!(out, "        chain     {}", chain.join(" → "))?;
        }
        if e.root_jti.is_some() || e.leaf_jti.is_some() {
            writeln!(
                out,
                "        remits    root {}  leaf {}",
                e.root_jti.as_deref().unwrap_or("-"),
                e.leaf_jti.as_deref().unwrap_or("-")
            )?;
        }
        if let Some(d) = &e.decision {
            writeln!(
                out,
                "        decision  {:?} by [{}] policy {}{}",
                d.effect,
                d.policy_ids.join(", "),
                d.policy_version,
                d.reason
                    .as_deref()
                    .map(|r| format!(": {r}"))
                    .unwrap_or_default()
            )?;
        }
        if !e.findings.is_empty() || e.classification.is_some() {
            let findings: Vec<String> =
                e.findings.iter().map(|(t, n)| format!("{t}×{n}")).collect();
            writeln!(
                out,
                "        data      {} {}",
                e.classification.map(|c| c.name()).unwrap_or_default(),
                findings.join(" ")
            )?;
        }
        if let Some(a) = &e.approval {
            writeln!(out, "        approval  {} by {}", a.id, a.approver)?;
        }
        if let Some(t) = &e.traceparent {
            writeln!(out, "        trace     {}", t.as_str())?;
        }
        writeln!(out, "        signed    {}", r.kid)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn export(log: &Path, format: ExportFormat) -> anyhow::Result<ExitCode> {
    let receipts = read_receipts(&LogDir::new(log))?;
    let mut out = std::io::stdout().lock();
    for r in &receipts {
        let line = match format {
            ExportFormat::Jsonl => serde_json::to_string(&r.receipt)?,
            ExportFormat::Ocsf => serde_json::to_string(&ApiActivity::of_signed(r))?,
        };
        writeln!(out, "{line}")?;
    }
    Ok(ExitCode::SUCCESS)
}
