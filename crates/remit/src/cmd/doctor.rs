//! `remit doctor`: check a deployment and say what to fix.
//!
//! Each check prints `OK`, `WARN` or `FAIL` with what it found and, when
//! not OK, the command or change that fixes it; the exit status is 1 when
//! any check fails. It reads the data directory and never writes to it:
//! a missing key is reported, not generated.
//!
//! | check | FAIL when |
//! |---|---|
//! | data directory | missing, or it or a secret in it is readable by others |
//! | keys | `issuer.jwk` or `receipt.jwk` missing or unusable |
//! | server | the running server (from `serve.json`) publishes other issuer keys |
//! | store | the database does not open or answer |
//! | receipt logs | a log in the directory does not verify |
//! | clock | the system clock is before 2025, or behind a log written earlier |
//! | upstreams | a registered server does not list its tools, or has none pinned |
//! | TLS | the public URL is plain `http://` to a host that is not loopback |

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use clap::Args;
use remit_server::gateway::pins::tool_hash;
use remit_server::gateway::upstream::Upstream;
use remit_server::setup::{ServeRecord, ISSUER_JWKS_FILE, ISSUER_KEY_FILE, RECEIPT_KEY_FILE};
use remit_server::start::Database;
use remit_store::{Status, Store};
use remit_token::{EcdsaP256Signer, PrivateJwk, Signer as _};
use serde_json::{json, Value};

use crate::io;

/// Check a deployment.
#[derive(Debug, Args)]
pub struct DoctorArgs {
    #[command(flatten)]
    local: super::protect::LocalArgs,
    /// Skip starting the registered upstreams.
    #[arg(long)]
    no_upstreams: bool,
    /// Print the checks as JSON.
    #[arg(long)]
    json: bool,
}

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "UPPERCASE")]
enum Level {
    Ok,
    Warn,
    Fail,
}

/// One check's result.
#[derive(Debug, serde::Serialize)]
struct Check {
    check: &'static str,
    level: Level,
    found: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    fix: Option<String>,
}

fn ok(check: &'static str, found: impl Into<String>) -> Check {
    Check {
        check,
        level: Level::Ok,
        found: found.into(),
        fix: None,
    }
}

fn bad(
    check: &'static str,
    level: Level,
    found: impl Into<String>,
    fix: impl Into<String>,
) -> Check {
    Check {
        check,
        level,
        found: found.into(),
        fix: Some(fix.into()),
    }
}

/// Runs `remit doctor`.
pub fn run(args: DoctorArgs) -> anyhow::Result<ExitCode> {
    let data = args.local.data_dir()?;
    let config = args.local.file_config()?;
    let gateway = config
        .gateway_config()
        .context("the [gateway] configuration")?;
    let database = args.local.database.clone().or(config.database.clone());
    let database = match database {
        Some(url) => Database::parse(&url)?,
        None => Database::Sqlite(data.join(remit_server::setup::SQLITE_FILE)),
    };
    let record = ServeRecord::read(&data);
    let mut checks = vec![permissions(&data)];
    let issuer = load_key(&data, ISSUER_KEY_FILE);
    let receipt = load_key(&data, RECEIPT_KEY_FILE);
    checks.push(keys(&data, &issuer, &receipt));
    checks.push(server(record.as_ref(), issuer.as_ref().ok()));
    checks.extend(receipt_logs(&data, receipt.as_ref().ok(), &database));
    checks.push(clock(&data));
    checks.push(tls(record.as_ref()));
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    checks.extend(runtime.block_on(store_checks(&database, &gateway, !args.no_upstreams)));
    let worst = checks.iter().map(|c| c.level).max().unwrap_or(Level::Ok);
    if args.json {
        io::print_json(&json!({ "data": data, "result": worst, "checks": checks }))?;
    } else {
        say!("remit doctor: {}", data.display());
        for c in &checks {
            let level = match c.level {
                Level::Ok => "OK  ",
                Level::Warn => "WARN",
                Level::Fail => "FAIL",
            };
            say!("{level} {:<14} {}", c.check, io::printable(&c.found));
            if let Some(fix) = &c.fix {
                say!("     {:<14} fix: {}", "", io::printable(fix));
            }
        }
    }
    Ok(if worst == Level::Fail {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

/// The data directory is the owner's alone, and so is every secret in it.
fn permissions(data: &Path) -> Check {
    const NAME: &str = "data directory";
    let Ok(meta) = std::fs::metadata(data) else {
        return bad(
            NAME,
            Level::Fail,
            format!("{} does not exist", data.display()),
            "start `remit serve` or run `remit protect` to create it (or pass --data DIR)",
        );
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return bad(
                NAME,
                Level::Fail,
                format!(
                    "{} is mode {mode:o}: others may read its keys",
                    data.display()
                ),
                format!("chmod 700 {}", data.display()),
            );
        }
        let open: Vec<String> = secrets(data)
            .into_iter()
            .filter(|p| std::fs::metadata(p).is_ok_and(|m| m.permissions().mode() & 0o077 != 0))
            .map(|p| p.display().to_string())
            .collect();
        if !open.is_empty() {
            return bad(
                NAME,
                Level::Fail,
                format!("readable by others: {}", open.join(", ")),
                format!("chmod 600 {}", open.join(" ")),
            );
        }
    }
    let _ = meta;
    ok(NAME, format!("{} (owner only)", data.display()))
}

/// The secret files a data directory may hold.
fn secrets(data: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = [
        ISSUER_KEY_FILE,
        RECEIPT_KEY_FILE,
        "note.key",
        "admin-token.sha256",
    ]
    .iter()
    .map(|f| data.join(f))
    .collect();
    out.push(data.join("protect").join("note.key"));
    for (dir, files) in [
        ("protect", ["agent.jwk", "remit"]),
        ("wrap", ["note.key", ""]),
    ] {
        let Ok(entries) = std::fs::read_dir(data.join(dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            for file in files.iter().filter(|f| !f.is_empty()) {
                out.push(entry.path().join(file));
            }
        }
    }
    out.retain(|p| p.exists());
    out
}

fn load_key(data: &Path, file: &str) -> Result<EcdsaP256Signer, String> {
    let path = data.join(file);
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let jwk = PrivateJwk::from_json(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    EcdsaP256Signer::from_jwk(&jwk).map_err(|e| format!("{}: {e}", path.display()))
}

fn keys(
    data: &Path,
    issuer: &Result<EcdsaP256Signer, String>,
    receipt: &Result<EcdsaP256Signer, String>,
) -> Check {
    const NAME: &str = "keys";
    let (issuer, receipt) = match (issuer, receipt) {
        (Ok(i), Ok(r)) => (i, r),
        (Err(e), _) | (_, Err(e)) => {
            return bad(
                NAME,
                Level::Fail,
                e.clone(),
                "start `remit serve` or run `remit protect` once to generate the keys; a corrupt key file must be restored from a backup",
            )
        }
    };
    let published = std::fs::read_to_string(data.join(ISSUER_JWKS_FILE))
        .ok()
        .and_then(|t| remit_token::Jwks::from_json(&t).ok());
    match published {
        Some(jwks) if jwks.get(issuer.key_id()).is_some() => ok(
            NAME,
            format!("issuer {} and receipt {} load; issuer.jwks.json is current", issuer.key_id(), receipt.key_id()),
        ),
        _ => bad(
            NAME,
            Level::Warn,
            format!("{ISSUER_JWKS_FILE} is missing or does not hold issuer key {}", issuer.key_id()),
            "restart `remit serve` (or run `remit protect`): every start rewrites it; `remit wrap` verifies remits with it",
        ),
    }
}

/// The running server's published issuer keys are the data directory's.
fn server(record: Option<&ServeRecord>, issuer: Option<&EcdsaP256Signer>) -> Check {
    const NAME: &str = "server";
    let Some(record) = record else {
        return bad(
            NAME,
            Level::Warn,
            "no `remit serve` has started on this data directory",
            "start `remit serve` for the HTTP gateway and the admin API (`remit wrap` works without it)",
        );
    };
    let local = local_url(&record.listening);
    let args = super::client::ServerArgs {
        server: local.clone(),
        admin_token: None,
        json: false,
        // The CA a TLS server is trusted with comes from REMIT_CA_FILE.
        ca_file: std::env::var_os("REMIT_CA_FILE").map(std::path::PathBuf::from),
    };
    let jwks = super::client::Api::new(&args).and_then(|api| {
        api.get::<serde_json::Value>("/.well-known/jwks.json")
            .map(|reply| reply.raw)
            .map_err(|e| anyhow::anyhow!("{e}"))
    });
    let jwks = match jwks {
        Ok(jwks) => jwks,
        Err(e) => {
            return bad(
                NAME,
                Level::Warn,
                format!(
                    "not answering at {local} (pid {} wrote serve.json): {e}",
                    record.pid
                ),
                "start `remit serve` for the HTTP gateway (`remit wrap` works without it)",
            )
        }
    };
    let served = remit_token::Jwks::from_json(&jwks.to_string()).ok();
    match (served, issuer) {
        (Some(served), Some(issuer)) if served.get(issuer.key_id()).is_some() => ok(
            NAME,
            format!("{} answers and publishes issuer key {}", record.public_url, issuer.key_id()),
        ),
        _ => bad(
            NAME,
            Level::Fail,
            format!("{local} does not publish this data directory's issuer key"),
            "the server on that port runs on another data directory: stop it, or pass --data with its directory",
        ),
    }
}

/// `http://127.0.0.1:<port>` for a listen address (any-address binds are reached on loopback).
fn local_url(listening: &str) -> String {
    match listening.parse::<std::net::SocketAddr>() {
        Ok(addr) if addr.ip().is_unspecified() => format!("http://127.0.0.1:{}", addr.port()),
        Ok(addr) => format!("http://{addr}"),
        Err(_) => format!("http://{listening}"),
    }
}

/// Every file log in the data directory verifies with the receipt key.
fn receipt_logs(data: &Path, receipt: Option<&EcdsaP256Signer>, database: &Database) -> Vec<Check> {
    const NAME: &str = "receipt log";
    let Some(receipt) = receipt else {
        return vec![bad(
            NAME,
            Level::Fail,
            "no receipt key to verify with",
            "see `keys` above",
        )];
    };
    let jwks_text = remit_server::setup::published_jwks(receipt).to_string();
    let Ok(jwks) = remit_ledger::Jwks::from_json(&jwks_text) else {
        return vec![bad(
            NAME,
            Level::Fail,
            "the receipt key makes no JWKS",
            "restore receipt.jwk from a backup",
        )];
    };
    let mut logs = vec![data.join("log"), data.join("protect").join("log")];
    if let Ok(entries) = std::fs::read_dir(data.join("wrap")) {
        logs.extend(entries.flatten().map(|e| e.path().join("log")));
    }
    logs.retain(|p| p.join("checkpoint").exists());
    let mut out: Vec<Check> = logs
        .iter()
        .map(|log| match verify_log(log, &jwks) {
            Ok(size) => ok(NAME, format!("{} ({size} receipts verify)", log.display())),
            Err(e) => bad(
                NAME,
                Level::Fail,
                format!("{}: {e}", log.display()),
                format!(
                    "run `remit audit verify --log {} --jwks <receipt JWKS>` for the first bad receipt; keep the log as evidence",
                    log.display()
                ),
            ),
        })
        .collect();
    if let Database::Postgres(_) = database {
        out.push(ok(NAME, "the servers' shared log is in PostgreSQL: check it with `remit audit verify --server URL`"));
    } else if out.is_empty() {
        out.push(ok(NAME, "no receipt log yet"));
    }
    out
}

fn verify_log(log: &Path, jwks: &remit_ledger::Jwks) -> anyhow::Result<u64> {
    let dir = remit_ledger::LogDir::new(log);
    // The checkpoint first: receipts appended meanwhile are unsealed, not a failure.
    let checkpoint = dir.checkpoint()?;
    let verifier = dir.note_verifier()?;
    let mut auditor = remit_ledger::Auditor::new(jwks);
    for leaf in dir.leaf_reader()? {
        auditor.push(&leaf?)?;
    }
    Ok(auditor.finish(&checkpoint, &verifier, None)?.size)
}

/// The clock is plausible and not behind what this machine wrote before.
fn clock(data: &Path) -> Check {
    const NAME: &str = "clock";
    let now = SystemTime::now();
    let floor = SystemTime::UNIX_EPOCH + Duration::from_secs(1_735_689_600); // 2025-01-01
    if now < floor {
        return bad(
            NAME,
            Level::Fail,
            "the system clock is before 2025",
            "set the clock (NTP): remits and receipts carry times",
        );
    }
    let newest = [data.join("log"), data.join("protect").join("log")]
        .iter()
        .filter_map(|d| {
            std::fs::metadata(d.join("checkpoint"))
                .and_then(|m| m.modified())
                .ok()
        })
        .max();
    match newest.and_then(|t| t.duration_since(now).ok()) {
        Some(ahead) if ahead > Duration::from_secs(300) => bad(
            NAME,
            Level::Fail,
            format!("a receipt log was written {} s in this clock's future", ahead.as_secs()),
            "the clock went back: fix it (NTP) before issuing remits, or expiry and receipts times lie",
        ),
        _ => ok(NAME, "plausible, and not behind the receipt logs"),
    }
}

/// Remits and admin tokens do not cross a network in clear.
fn tls(record: Option<&ServeRecord>) -> Check {
    const NAME: &str = "TLS";
    let Some(record) = record else {
        return ok(NAME, "no server: nothing listens");
    };
    let url = record.public_url.as_str();
    if url.starts_with("https://") {
        return ok(NAME, format!("public URL {url}"));
    }
    let host = url
        .trim_start_matches("http://")
        .split(['/', '?'])
        .next()
        .unwrap_or_default();
    let host = host.rsplit_once(':').map_or(host, |(h, _)| h);
    let loopback = host == "localhost"
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    let listen_loopback = record
        .listening
        .parse::<std::net::SocketAddr>()
        .is_ok_and(|a| a.ip().is_loopback());
    if loopback && listen_loopback {
        return ok(NAME, format!("plain HTTP on loopback only ({url})"));
    }
    bad(
        NAME,
        Level::Fail,
        format!("public URL {url}, listening on {}: remits and admin tokens would cross the network in clear", record.listening),
        "put a TLS proxy in front and start `remit serve --public-url https://…`, or listen on 127.0.0.1",
    )
}

async fn store_checks(
    database: &Database,
    gateway: &remit_server::GatewayConfig,
    upstreams: bool,
) -> Vec<Check> {
    match database {
        Database::Sqlite(path) if !path.exists() => vec![bad(
            "store",
            Level::Fail,
            format!("{} does not exist", path.display()),
            "start `remit serve` or run `remit protect` to create it",
        )],
        Database::Sqlite(path) => match remit_store::SqliteStore::open(path).await {
            Ok(store) => {
                let out = registry_checks(&store, database, gateway, upstreams).await;
                store.close().await;
                out
            }
            Err(e) => vec![bad(
                "store",
                Level::Fail,
                e.to_string(),
                "check the file's owner and free disk space",
            )],
        },
        Database::Postgres(url) => match remit_store::PgStore::connect(url).await {
            Ok(store) => registry_checks(&store, database, gateway, upstreams).await,
            Err(e) => vec![bad(
                "store",
                Level::Fail,
                e.to_string(),
                "check the URL, the server and the credentials",
            )],
        },
    }
}

async fn registry_checks<S: Store>(
    store: &S,
    database: &Database,
    gateway: &remit_server::GatewayConfig,
    upstreams: bool,
) -> Vec<Check> {
    let servers = match store.servers().await {
        Ok(s) => s,
        Err(e) => {
            return vec![bad(
                "store",
                Level::Fail,
                e.to_string(),
                "check the database",
            )]
        }
    };
    let mut out = vec![ok(
        "store",
        format!(
            "{} answers ({} servers registered)",
            database.shown(),
            servers.len()
        ),
    )];
    if !upstreams {
        return out;
    }
    for server in servers.iter().filter(|s| s.status == Status::Active) {
        out.push(upstream(store, server, gateway).await);
    }
    out
}

/// A registered server lists its tools, and they are the pinned ones.
async fn upstream<S: Store>(
    store: &S,
    server: &remit_store::McpServer,
    gateway: &remit_server::GatewayConfig,
) -> Check {
    const NAME: &str = "upstream";
    let id = server.id.as_str();
    let settings = gateway.upstreams.get(id).cloned().unwrap_or_default();
    let listed = match Upstream::with_settings(&server.url, settings) {
        Ok(u) => u.tools(Duration::ZERO, gateway.upstream_timeout).await,
        Err(e) => Err(e),
    };
    let listed = match listed {
        Ok(l) => l,
        Err(e) => {
            return bad(
                NAME,
                Level::Fail,
                format!("{id} ({}): {e}", server.url),
                "make the command or URL work on this host (its credentials go in the config's [gateway.upstreams.<id>])",
            )
        }
    };
    let pins = match store.tools(&server.id).await {
        Ok(p) => p,
        Err(e) => {
            return bad(
                NAME,
                Level::Fail,
                format!("{id}: {e}"),
                "check the database",
            )
        }
    };
    if pins.is_empty() {
        return bad(
            NAME,
            Level::Fail,
            format!("{id}: no tool is pinned, so none is offered"),
            format!("remit server bless {id}"),
        );
    }
    let mut changed = Vec::new();
    let mut unpinned = Vec::new();
    for tool in listed.iter() {
        let name = tool.get("name").and_then(Value::as_str).unwrap_or_default();
        match pins.iter().find(|p| p.name.as_str() == name) {
            Some(p) if p.description_sha256 != tool_hash(tool) => changed.push(name.to_owned()),
            Some(_) => {}
            None => unpinned.push(name.to_owned()),
        }
    }
    if !changed.is_empty() {
        return bad(
            NAME,
            Level::Warn,
            format!(
                "{id}: changed since pinned, hidden and refused: {}",
                changed.join(", ")
            ),
            format!("review the new descriptions, then `remit server bless {id}`"),
        );
    }
    let mut found = format!(
        "{id}: {} tools listed, {} pinned",
        listed.iter().count(),
        pins.len()
    );
    if !unpinned.is_empty() {
        found.push_str(&format!(
            "; not offered until blessed: {}",
            unpinned.join(", ")
        ));
    }
    ok(NAME, found)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(public_url: &str, listening: &str) -> ServeRecord {
        ServeRecord {
            public_url: public_url.into(),
            audience: "remit".into(),
            listening: listening.into(),
            pid: 1,
            started_at: 0,
        }
    }

    #[test]
    fn plain_http_beyond_loopback_fails_and_tls_or_loopback_passes() {
        assert_eq!(
            tls(Some(&record("http://10.0.0.5:8080", "0.0.0.0:8080"))).level,
            Level::Fail
        );
        assert_eq!(
            tls(Some(&record("http://127.0.0.1:8080", "0.0.0.0:8080"))).level,
            Level::Fail
        );
        assert_eq!(
            tls(Some(&record("http://127.0.0.1:8080", "127.0.0.1:8080"))).level,
            Level::Ok
        );
        assert_eq!(
            tls(Some(&record("http://localhost:8080", "127.0.0.1:8080"))).level,
            Level::Ok
        );
        assert_eq!(
            tls(Some(&record("https://remit.example", "0.0.0.0:8080"))).level,
            Level::Ok
        );
    }

    #[test]
    fn a_data_directory_others_can_read_fails_with_the_chmod_that_fixes_it() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(permissions(&dir.path().join("missing")).level, Level::Fail);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
            let key = dir.path().join(ISSUER_KEY_FILE);
            std::fs::write(&key, "{}").unwrap();
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
            let check = permissions(dir.path());
            assert_eq!(check.level, Level::Fail);
            assert!(check.fix.unwrap().starts_with("chmod 600"));
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
            assert_eq!(permissions(dir.path()).level, Level::Ok);
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
            assert_eq!(permissions(dir.path()).level, Level::Fail);
        }
    }
}
