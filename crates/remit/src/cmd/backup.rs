//! `remit backup` and `remit restore`: a data directory copied while
//! `remit serve` runs, consistent with itself, and put back.
//!
//! The order makes the copy consistent: the SQLite database first, as one
//! snapshot (`VACUUM INTO`, a read transaction: writers go on), then the
//! receipt logs (each checkpoint before its leaves, so the leaves copied
//! cover at least what the checkpoint signs; a leaf being appended at that
//! moment is a torn tail the log cuts when it is opened), then keys and
//! the policy folder. Every receipt of a change in the database snapshot
//! was durable before the change answered, so it is in the copied log.
//!
//! A `backup.json` manifest lists every file with its SHA-256; `remit
//! restore` checks them all, refuses to overwrite a data directory, and
//! verifies the restored receipt log against the restored receipt key.
//!
//! On PostgreSQL the database is not copied here: use `pg_dump` (see the
//! README) and back up the data directory with this command for its keys
//! and policy.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::Args;
use serde::{Deserialize, Serialize};

use crate::io;

/// The manifest's file name inside a backup.
pub const MANIFEST: &str = "backup.json";
/// The SQLite file's name inside a backup.
const DATABASE: &str = "remit.db";
/// The public receipt JWKS written into a backup, for auditors.
const RECEIPT_JWKS: &str = "receipt.jwks.json";

/// `remit backup`.
#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The data directory of `remit serve` [default: as `remit serve`].
    #[arg(long, env = "REMIT_DATA")]
    data: Option<PathBuf>,
    /// The SQLite database, if not the data directory's remit.db
    /// (sqlite://PATH); a postgres:// URL is refused: use pg_dump.
    #[arg(long, env = "REMIT_DATABASE")]
    database: Option<String>,
    /// A new directory to write the backup to.
    #[arg(long)]
    out: PathBuf,
    /// Print the manifest as JSON.
    #[arg(long)]
    json: bool,
}

/// `remit restore`.
#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup directory (`remit backup --out`).
    #[arg(long)]
    from: PathBuf,
    /// The data directory to create; must not exist or be empty.
    #[arg(long)]
    data: PathBuf,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

/// What a backup holds.
#[derive(Debug, Serialize, Deserialize)]
struct Manifest {
    /// Always 1.
    version: u32,
    /// Unix seconds when the backup began.
    created_at: u64,
    /// The Remit version that wrote it.
    remit_version: String,
    /// Whether the SQLite database is included.
    database: bool,
    /// Every file, relative to the backup directory, with its digest.
    files: Vec<FileEntry>,
}

#[derive(Debug, Serialize, Deserialize)]
struct FileEntry {
    path: String,
    bytes: u64,
    sha256: String,
}

/// Runs `remit backup`.
pub fn backup(args: BackupArgs) -> anyhow::Result<ExitCode> {
    let data = match args.data {
        Some(dir) => dir,
        None => super::serve::default_data_dir()?,
    };
    if !data.join(remit_server::setup::ISSUER_KEY_FILE).exists() {
        bail!(
            "{} is not a Remit data directory (no {}): give --data",
            data.display(),
            remit_server::setup::ISSUER_KEY_FILE
        );
    }
    let database = match args.database.as_deref().map(remit_server::Database::parse) {
        None => Some(data.join(remit_server::setup::SQLITE_FILE)),
        Some(Ok(remit_server::Database::Sqlite(path))) => Some(path),
        Some(Ok(remit_server::Database::Postgres(_))) => bail!(
            "the database is PostgreSQL: back it up with pg_dump (README, \"Backup and restore\"), and run remit backup without --database for the keys and policy"
        ),
        Some(Err(e)) => return Err(e.into()),
    };
    create_private_dir(&args.out)?;
    let created_at = remit_server::setup::unix_now();
    // 1. The database, one snapshot.
    let with_database = match &database {
        Some(path) if path.exists() => {
            snapshot_sqlite(path, &args.out.join(DATABASE))?;
            true
        }
        _ => false,
    };
    // 2. Receipt logs (checkpoint before leaves), 3. keys and policy.
    copy_tree(&data, &args.out, &data)?;
    write_receipt_jwks(&args.out)?;
    let mut files = Vec::new();
    list_files(&args.out, &args.out, &mut files)?;
    let manifest = Manifest {
        version: 1,
        created_at,
        remit_version: env!("CARGO_PKG_VERSION").to_owned(),
        database: with_database,
        files,
    };
    std::fs::write(
        args.out.join(MANIFEST),
        serde_json::to_vec_pretty(&manifest)?,
    )
    .with_context(|| format!("writing {}", args.out.join(MANIFEST).display()))?;
    if args.json {
        io::print_json(&manifest)?;
    } else {
        io::say_line(format_args!(
            "backed up {} to {} ({} files{})",
            data.display(),
            args.out.display(),
            manifest.files.len(),
            if with_database {
                ", SQLite snapshot included"
            } else {
                ", no SQLite database"
            }
        ));
    }
    Ok(ExitCode::SUCCESS)
}

/// `VACUUM INTO`: a consistent copy of a live database, WAL included.
fn snapshot_sqlite(from: &Path, to: &Path) -> anyhow::Result<()> {
    let conn = rusqlite::Connection::open_with_flags(
        from,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .with_context(|| format!("opening {}", from.display()))?;
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    let target = to
        .to_str()
        .with_context(|| format!("{} is not UTF-8", to.display()))?;
    conn.execute("VACUUM INTO ?1", [target])
        .with_context(|| format!("snapshotting {} into {}", from.display(), to.display()))?;
    Ok(())
}

/// Copies `dir` (inside the data directory `root`) into `out`, skipping
/// the live database files; in a receipt log the checkpoint is copied
/// before the leaves.
fn copy_tree(dir: &Path, out: &Path, root: &Path) -> anyhow::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .collect::<Result<_, _>>()?;
    // Leaves last: everything else (the checkpoint) is older than them.
    entries.sort_by_key(|e| {
        (
            e.file_name() == remit_ledger::store::LEAF_FILE,
            e.file_name(),
        )
    });
    for entry in entries {
        let name = entry.file_name();
        let text = name.to_string_lossy();
        let path = entry.path();
        if dir == root && is_live_database(&text) {
            continue;
        }
        let kind = entry.file_type()?;
        if kind.is_dir() {
            let sub = out.join(&name);
            create_private_dir(&sub)?;
            copy_tree(&path, &sub, root)?;
        } else if kind.is_file() {
            std::fs::copy(&path, out.join(&name))
                .with_context(|| format!("copying {}", path.display()))?;
        }
    }
    Ok(())
}

fn is_live_database(name: &str) -> bool {
    name.starts_with(remit_server::setup::SQLITE_FILE) || name.ends_with(".new")
}

/// The receipt key's public JWKS beside the log: what `remit audit
/// verify --jwks` needs.
fn write_receipt_jwks(out: &Path) -> anyhow::Result<()> {
    use remit_token::Signer as _;
    let key = out.join(remit_server::setup::RECEIPT_KEY_FILE);
    if !key.exists() {
        return Ok(());
    }
    let private = remit_token::PrivateJwk::from_json(&io::read_text(&key)?)
        .with_context(|| format!("{}: not a private JWK", key.display()))?;
    let signer = remit_token::EcdsaP256Signer::from_jwk(&private)
        .with_context(|| format!("{}: not a P-256 key", key.display()))?;
    let public = signer.public_jwk().clone().published(signer.key_id());
    std::fs::write(
        out.join(RECEIPT_JWKS),
        serde_json::to_vec_pretty(&serde_json::json!({ "keys": [public] }))?,
    )?;
    Ok(())
}

fn list_files(dir: &Path, root: &Path, out: &mut Vec<FileEntry>) -> anyhow::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let path = entry.path();
        if entry.file_type()?.is_dir() {
            list_files(&path, root, out)?;
            continue;
        }
        let relative = path
            .strip_prefix(root)
            .context("a file outside the backup")?
            .to_string_lossy()
            .into_owned();
        if relative == MANIFEST {
            continue;
        }
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        out.push(FileEntry {
            path: relative,
            bytes: bytes.len() as u64,
            sha256: hex::encode(remit_server::setup::sha256(&bytes)),
        });
    }
    Ok(())
}

fn create_private_dir(path: &Path) -> anyhow::Result<()> {
    if path.exists() && std::fs::read_dir(path)?.next().is_some() {
        bail!(
            "{} exists and is not empty: give a new directory",
            path.display()
        );
    }
    std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Runs `remit restore`.
pub fn restore(args: RestoreArgs) -> anyhow::Result<ExitCode> {
    let text = io::read_text(&args.from.join(MANIFEST))
        .with_context(|| format!("{} is not a Remit backup", args.from.display()))?;
    let manifest: Manifest = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a backup manifest", MANIFEST))?;
    if manifest.version != 1 {
        bail!(
            "backup manifest version {} is not supported",
            manifest.version
        );
    }
    // Every file checked before anything is written.
    for file in &manifest.files {
        let relative = Path::new(&file.path);
        if relative.is_absolute()
            || relative
                .components()
                .any(|c| !matches!(c, std::path::Component::Normal(_)))
        {
            bail!("the manifest names {:?}, outside the backup", file.path);
        }
        let path = args.from.join(relative);
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        if hex::encode(remit_server::setup::sha256(&bytes)) != file.sha256 {
            bail!(
                "{} does not match the manifest (changed or corrupt): the backup cannot be trusted",
                file.path
            );
        }
    }
    create_private_dir(&args.data)?;
    for file in &manifest.files {
        let target = args.data.join(&file.path);
        if let Some(parent) = target.parent() {
            if !parent.exists() {
                create_private_dir(parent)?;
            }
        }
        std::fs::copy(args.from.join(&file.path), &target)
            .with_context(|| format!("restoring {}", target.display()))?;
    }
    let log = args.data.join("log");
    let verified = if log.exists() && args.data.join(RECEIPT_JWKS).exists() {
        Some(verify_log(&log, &args.data.join(RECEIPT_JWKS))?)
    } else {
        None
    };
    if args.json {
        io::print_json(&serde_json::json!({
            "data": args.data,
            "files": manifest.files.len(),
            "database": manifest.database,
            "receipts_verified": verified,
        }))?;
    } else {
        io::say_line(format_args!(
            "restored {} files into {}{}",
            manifest.files.len(),
            args.data.display(),
            match verified {
                Some(n) => format!("; receipt log verified ({n} receipts)"),
                None => String::new(),
            }
        ));
    }
    Ok(ExitCode::SUCCESS)
}

/// Checks every leaf of the restored log and its signed checkpoint; the
/// number of receipts.
fn verify_log(log: &Path, jwks: &Path) -> anyhow::Result<u64> {
    use remit_ledger::{Auditor, Jwks, LogDir};
    let dir = LogDir::new(log);
    let jwks = Jwks::from_json(&io::read_text(jwks)?).context("the receipt JWKS")?;
    let verifier = dir.note_verifier().context("the restored log's note.pub")?;
    let checkpoint = dir.checkpoint()?;
    let reader = dir.leaf_reader()?;
    let mut auditor = Auditor::new(&jwks);
    for leaf in reader {
        auditor
            .push(&leaf?)
            .context("the restored receipt log does not verify")?;
    }
    let size = auditor.size();
    auditor
        .finish(&checkpoint, &verifier, None)
        .context("the restored receipt log does not match its signed checkpoint")?;
    Ok(size)
}
