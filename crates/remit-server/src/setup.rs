//! First start and every start: the data directory, signing keys and the
//! admin token.
//!
//! Layout of the data directory:
//!
//! | file | what |
//! |---|---|
//! | `keys/issuer.jwk` | P-256 private key that signs remits (0600) |
//! | `keys/receipt.jwk` | P-256 private key that signs receipts and checkpoints (0600) |
//! | `admin-token.sha256` | SHA-256 of the admin token; the token itself is shown once |
//! | `remit.db` | the SQLite database, unless `--database` names another |
//!
//! Replicas on PostgreSQL must share one key directory (a mounted secret);
//! the keys are not stored in the database.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use aws_lc_rs::digest;
use aws_lc_rs::rand::{SecureRandom as _, SystemRandom};
use remit_token::{EcdsaP256Signer, PrivateJwk};

/// Prefix of admin tokens, so a leaked one is recognisable in logs and scans.
pub const ADMIN_TOKEN_PREFIX: &str = "remit_admin_";

/// Why the data directory could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A file or directory could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A key file exists but does not hold a usable P-256 private key.
    #[error(
        "{path} is not a usable P-256 private JWK ({detail}); move it away to generate a new key"
    )]
    BadKey {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The admin token hash file is damaged.
    #[error("{path} does not hold a SHA-256 hex digest; delete it to generate a new admin token")]
    BadTokenHash {
        /// The hash file.
        path: PathBuf,
    },
    /// No data directory was given and none could be derived.
    #[error("cannot find a data directory: set XDG_DATA_HOME or HOME, or pass --data DIR")]
    NoDataDir,
    /// The system random source failed.
    #[error("the system random source failed")]
    Random,
}

/// The default data directory: `$XDG_DATA_HOME/remit`, else
/// `$HOME/.local/share/remit`.
pub fn default_data_dir() -> Result<PathBuf, SetupError> {
    let non_empty = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(xdg) = non_empty("XDG_DATA_HOME") {
        return Ok(PathBuf::from(xdg).join("remit"));
    }
    non_empty("HOME")
        .map(|home| PathBuf::from(home).join(".local/share/remit"))
        .ok_or(SetupError::NoDataDir)
}

/// The SHA-256 of the admin token; what the server keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminTokenHash([u8; 32]);

impl AdminTokenHash {
    /// Hashes a token.
    pub fn of(token: &str) -> Self {
        let d = digest::digest(&digest::SHA256, token.as_bytes());
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        Self(out)
    }

    /// True when `presented` hashes to this value (constant-time compare).
    pub fn matches(&self, presented: &str) -> bool {
        let candidate = Self::of(presented);
        aws_lc_rs::constant_time::verify_slices_are_equal(&candidate.0, &self.0).is_ok()
    }

    fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    fn from_hex(text: &str) -> Option<Self> {
        let text = text.trim();
        if text.len() != 64 {
            return None;
        }
        let mut out = [0u8; 32];
        for (i, byte) in out.iter_mut().enumerate() {
            *byte = u8::from_str_radix(text.get(2 * i..2 * i + 2)?, 16).ok()?;
        }
        Some(Self(out))
    }
}

/// What `remit serve` starts from.
#[derive(Debug)]
pub struct DataDir {
    /// The directory.
    pub path: PathBuf,
    /// Signs remits; published in the JWKS.
    pub issuer: EcdsaP256Signer,
    /// Signs receipts and checkpoints.
    pub receipt: EcdsaP256Signer,
    /// The admin token's hash.
    pub admin_token: AdminTokenHash,
    /// The admin token, only on the start that generated it (show it once).
    pub new_admin_token: Option<String>,
    /// Files created on this start.
    pub created: Vec<PathBuf>,
}

impl DataDir {
    /// Opens the data directory, creating it, the keys and the admin token
    /// on first use. Existing keys and token hash are reused.
    pub fn open(path: &Path) -> Result<Self, SetupError> {
        let keys = path.join("keys");
        std::fs::create_dir_all(&keys).map_err(|source| SetupError::Io {
            action: "creating",
            path: keys.clone(),
            source,
        })?;
        restrict_dir(path)?;
        restrict_dir(&keys)?;
        let mut created = Vec::new();
        let issuer = load_or_generate_key(&keys.join("issuer.jwk"), &mut created)?;
        let receipt = load_or_generate_key(&keys.join("receipt.jwk"), &mut created)?;

        let hash_path = path.join("admin-token.sha256");
        let (admin_token, new_admin_token) = match std::fs::read_to_string(&hash_path) {
            Ok(text) => {
                let hash =
                    AdminTokenHash::from_hex(&text).ok_or_else(|| SetupError::BadTokenHash {
                        path: hash_path.clone(),
                    })?;
                (hash, None)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let token = generate_admin_token()?;
                let hash = AdminTokenHash::of(&token);
                write_secret_file(&hash_path, hash.to_hex().as_bytes())?;
                created.push(hash_path);
                (hash, Some(token))
            }
            Err(source) => {
                return Err(SetupError::Io {
                    action: "reading",
                    path: hash_path,
                    source,
                })
            }
        };
        Ok(Self {
            path: path.to_owned(),
            issuer,
            receipt,
            admin_token,
            new_admin_token,
            created,
        })
    }

    /// The default SQLite database file in this directory.
    pub fn sqlite_path(&self) -> PathBuf {
        self.path.join("remit.db")
    }
}

fn generate_admin_token() -> Result<String, SetupError> {
    let mut bytes = [0u8; 32];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| SetupError::Random)?;
    Ok(format!(
        "{ADMIN_TOKEN_PREFIX}{}",
        remit_token::b64::encode(bytes)
    ))
}

fn load_or_generate_key(
    path: &Path,
    created: &mut Vec<PathBuf>,
) -> Result<EcdsaP256Signer, SetupError> {
    let bad = |detail: String| SetupError::BadKey {
        path: path.to_owned(),
        detail,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let jwk = PrivateJwk::from_json(&text).map_err(|e| bad(e.to_string()))?;
            EcdsaP256Signer::from_jwk(&jwk).map_err(|e| bad(e.to_string()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let signer = EcdsaP256Signer::generate().map_err(|e| bad(e.to_string()))?;
            let jwk = signer.to_private_jwk().map_err(|e| bad(e.to_string()))?;
            let text = serde_json::to_vec_pretty(&jwk).map_err(|e| bad(e.to_string()))?;
            write_secret_file(path, &text)?;
            created.push(path.to_owned());
            Ok(signer)
        }
        Err(source) => Err(SetupError::Io {
            action: "reading",
            path: path.to_owned(),
            source,
        }),
    }
}

/// Creates a file readable only by its owner (0600); never overwrites.
fn write_secret_file(path: &Path, contents: &[u8]) -> Result<(), SetupError> {
    let io = |source| SetupError::Io {
        action: "writing",
        path: path.to_owned(),
        source,
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io)?;
    file.write_all(contents)
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .map_err(io)
}

/// Makes a directory private to its owner (0700) on Unix.
fn restrict_dir(path: &Path) -> Result<(), SetupError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700)).map_err(
            |source| SetupError::Io {
                action: "restricting permissions of",
                path: path.to_owned(),
                source,
            },
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use remit_token::Signer as _;

    #[test]
    fn first_start_creates_private_keys_and_shows_the_token_once() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDir::open(dir.path()).unwrap();
        let token = first.new_admin_token.clone().unwrap();
        assert!(token.starts_with(ADMIN_TOKEN_PREFIX));
        assert!(first.admin_token.matches(&token));
        assert!(!first.admin_token.matches("remit_admin_guess"));
        assert_eq!(first.created.len(), 3);
        #[cfg(unix)]
        for file in ["keys/issuer.jwk", "keys/receipt.jwk", "admin-token.sha256"] {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join(file))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
        let stored = std::fs::read_to_string(dir.path().join("admin-token.sha256")).unwrap();
        assert!(!stored.contains(&token), "the token itself is never stored");

        let second = DataDir::open(dir.path()).unwrap();
        assert_eq!(second.new_admin_token, None, "shown only once");
        assert!(second.created.is_empty());
        assert_eq!(second.issuer.key_id(), first.issuer.key_id());
        assert!(second.admin_token.matches(&token));
        assert_ne!(first.issuer.key_id(), first.receipt.key_id());
    }

    #[test]
    fn a_damaged_key_file_is_refused_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("keys")).unwrap();
        std::fs::write(dir.path().join("keys/issuer.jwk"), "{}").unwrap();
        let err = DataDir::open(dir.path()).unwrap_err();
        assert!(matches!(err, SetupError::BadKey { .. }), "{err}");
        assert_eq!(
            std::fs::read_to_string(dir.path().join("keys/issuer.jwk")).unwrap(),
            "{}"
        );
    }
}
