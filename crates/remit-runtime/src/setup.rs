//! First start: the data directory, signing keys and the admin token.
//!
//! Everything secret is a file readable only by its owner (0600) in a
//! directory only its owner can enter (0700). Keys are reused on restart;
//! the admin token is shown once and only its SHA-256 is kept.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use remit_token::{EcdsaP256Signer, PrivateJwk};

/// File holding the issuer's private JWK (signs remits).
pub const ISSUER_KEY_FILE: &str = "issuer.jwk";
/// File holding the issuer's public JWKS, rewritten by every `remit serve`
/// start: what `remit wrap` verifies remits with, so it never needs
/// [`ISSUER_KEY_FILE`].
pub const ISSUER_JWKS_FILE: &str = "issuer.jwks.json";
/// File holding the issuer key a rotation has published but not yet
/// switched to ([`DataDir::rotate_issuer`]).
pub const ISSUER_NEXT_KEY_FILE: &str = "issuer.next.jwk";
/// File listing the issuer's previous public keys and when each retires.
pub const ISSUER_PREVIOUS_FILE: &str = "issuer.previous.json";
/// File holding the receipt signer's private JWK (signs receipts and checkpoints).
pub const RECEIPT_KEY_FILE: &str = "receipt.jwk";
/// File holding the hex SHA-256 of the admin token.
pub const ADMIN_HASH_FILE: &str = "admin-token.sha256";
/// The SQLite file used when no database URL is given.
pub const SQLITE_FILE: &str = "remit.db";
/// File recording where the last `remit serve` on this data directory
/// listens and what it mints for ([`ServeRecord`]): how `remit wrap`,
/// `remit protect` and `remit doctor` agree with it without flags.
pub const SERVE_RECORD_FILE: &str = "serve.json";

/// What a `remit serve` start writes to [`SERVE_RECORD_FILE`]: the `iss`
/// and audience of the remits it mints and accepts, and where it listens.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ServeRecord {
    /// The public base URL (the `iss` of minted remits).
    pub public_url: String,
    /// The deployment-wide audience.
    pub audience: String,
    /// The address bound.
    pub listening: String,
    /// The process id of the server that wrote it.
    pub pid: u32,
    /// When it started, Unix seconds.
    pub started_at: u64,
}

impl ServeRecord {
    /// The record in `data_dir`, `None` when no server ever started there
    /// (or the file is unreadable: callers fall back to the defaults).
    pub fn read(data_dir: &Path) -> Option<Self> {
        let text = std::fs::read_to_string(data_dir.join(SERVE_RECORD_FILE)).ok()?;
        serde_json::from_str(&text).ok()
    }
}

/// Why the data directory could not be prepared.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// A file or directory could not be read or written.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A key file exists but does not hold a usable P-256 private JWK.
    #[error("{path} is not a P-256 private JWK ({detail}); move it away to generate a new key")]
    BadKey {
        /// The key file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The admin hash file exists but is not 64 hex digits.
    #[error("{path} does not hold a SHA-256 hex digest; delete it to generate a new admin token")]
    BadAdminHash {
        /// The file.
        path: PathBuf,
    },
    /// Randomness or key generation failed.
    #[error("key generation failed: {0}")]
    Crypto(String),
    /// A rotation was asked of a data directory without a key.
    #[error("{0} does not exist: start `remit serve` once (it generates the key) before rotating")]
    NoKeyToRotate(PathBuf),
    /// The list of previous issuer keys does not parse.
    #[error("{path} is not a list of previous issuer keys ({detail}); restore it from a backup")]
    BadPrevious {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
}

/// An issuer key taken out of service by a rotation: still published (so
/// remits it signed keep verifying) until `retire_at`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PreviousKey {
    /// The public key, as published (with its `kid`).
    pub jwk: remit_token::EcPublicJwk,
    /// Unix seconds after which it is no longer published.
    pub retire_at: u64,
}

#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
struct PreviousKeys {
    keys: Vec<PreviousKey>,
}

/// What a rotation did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rotation {
    /// The key id signing until now.
    pub old_kid: String,
    /// The key id signing from now on.
    pub new_kid: String,
    /// When the old key stops being published (Unix seconds).
    pub old_retires_at: u64,
    /// The JWKS file now publishing both.
    pub jwks: PathBuf,
}

/// The issuer keys as the data directory holds them now: the key that
/// signs, and the JWKS document that verifies (the signing key, a key a
/// rotation is about to switch to, and previous keys not yet retired).
#[derive(Debug)]
pub struct IssuerKeys {
    /// The signing key.
    pub signer: EcdsaP256Signer,
    /// The JWKS document to publish.
    pub jwks: serde_json::Value,
}

fn io<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> SetupError + 'a {
    move |source| SetupError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// A signing key loaded from, or newly written to, the data directory.
#[derive(Debug)]
pub struct LoadedKey {
    /// The key.
    pub signer: EcdsaP256Signer,
    /// Its file.
    pub path: PathBuf,
    /// True when it was generated by this start.
    pub created: bool,
}

/// The admin token's state after start.
#[derive(Debug)]
pub struct AdminToken {
    /// SHA-256 of the token, compared in constant time on every admin call.
    pub hash: [u8; 32],
    /// The token itself, only when generated by this start (show it once).
    pub new_token: Option<String>,
}

/// The directory holding keys, the admin token hash and the SQLite file.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// Creates the directory (0700) if needed.
    pub fn prepare(root: &Path) -> Result<Self, SetupError> {
        std::fs::create_dir_all(root).map_err(io("creating", root))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700))
                .map_err(io("restricting", root))?;
        }
        Ok(Self {
            root: root.to_owned(),
        })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.root
    }

    /// The default SQLite file inside it.
    pub fn sqlite_path(&self) -> PathBuf {
        self.root.join(SQLITE_FILE)
    }

    /// Loads the key in `file`; `None` when there is no such file (never
    /// generates one).
    pub fn existing_key(&self, file: &str) -> Result<Option<EcdsaP256Signer>, SetupError> {
        let path = self.root.join(file);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let bad = |detail: String| SetupError::BadKey {
                    path: path.clone(),
                    detail,
                };
                let jwk = PrivateJwk::from_json(&text).map_err(|e| bad(e.to_string()))?;
                let signer = EcdsaP256Signer::from_jwk(&jwk).map_err(|e| bad(e.to_string()))?;
                Ok(Some(signer))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io("reading", &path)(e)),
        }
    }

    /// Loads the key in `file`, generating and writing it (0600) if absent.
    pub fn key(&self, file: &str) -> Result<LoadedKey, SetupError> {
        let path = self.root.join(file);
        match self.existing_key(file) {
            Ok(Some(signer)) => Ok(LoadedKey {
                signer,
                path,
                created: false,
            }),
            Ok(None) => {
                let crypto = |e: remit_token::CryptoError| SetupError::Crypto(e.to_string());
                let signer = EcdsaP256Signer::generate().map_err(crypto)?;
                let jwk = signer.to_private_jwk().map_err(crypto)?;
                let text = serde_json::to_vec_pretty(&jwk)
                    .map_err(|e| SetupError::Crypto(e.to_string()))?;
                write_secret(&path, &text)?;
                Ok(LoadedKey {
                    signer,
                    path,
                    created: true,
                })
            }
            Err(e) => Err(e),
        }
    }

    /// Writes the issuer's public JWKS to [`ISSUER_JWKS_FILE`]: `issuer`,
    /// a key a rotation is switching to, and previous keys not yet retired.
    pub fn publish_issuer_jwks(&self, issuer: &EcdsaP256Signer) -> Result<PathBuf, SetupError> {
        let next = self.existing_key(ISSUER_NEXT_KEY_FILE)?;
        let document = self.issuer_jwks_document(issuer, next.as_ref(), unix_now())?;
        self.publish_jwks_document(&document)
    }

    /// Replaces [`ISSUER_JWKS_FILE`] in one rename (a wrap reading it
    /// meanwhile reads the old document or the new one, never half of one);
    /// an unchanged document is not rewritten.
    pub fn publish_jwks_document(
        &self,
        document: &serde_json::Value,
    ) -> Result<PathBuf, SetupError> {
        let mut text =
            serde_json::to_vec_pretty(document).map_err(|e| SetupError::Crypto(e.to_string()))?;
        text.push(b'\n');
        let path = self.root.join(ISSUER_JWKS_FILE);
        if std::fs::read(&path).is_ok_and(|old| old == text) {
            return Ok(path);
        }
        replace_file(&self.root, ISSUER_JWKS_FILE, &text)?;
        Ok(path)
    }

    /// The issuer keys as the files hold them at `now` (reads, never
    /// generates): what a running server reloads on a rotation.
    pub fn issuer_keys(&self, now: u64) -> Result<IssuerKeys, SetupError> {
        // The next key before the current one: a rotation renaming one to
        // the other meanwhile leaves the new key in the document either way.
        let next = self.existing_key(ISSUER_NEXT_KEY_FILE)?;
        let Some(signer) = self.existing_key(ISSUER_KEY_FILE)? else {
            return Err(SetupError::NoKeyToRotate(self.root.join(ISSUER_KEY_FILE)));
        };
        let jwks = self.issuer_jwks_document(&signer, next.as_ref(), now)?;
        Ok(IssuerKeys { signer, jwks })
    }

    /// The JWKS document for `current`: it first, then the next key of a
    /// rotation under way, then previous keys retiring after `now`.
    fn issuer_jwks_document(
        &self,
        current: &EcdsaP256Signer,
        next: Option<&EcdsaP256Signer>,
        now: u64,
    ) -> Result<serde_json::Value, SetupError> {
        use remit_token::Signer as _;
        let mut keys = vec![current.public_jwk().clone().published(current.key_id())];
        if let Some(next) = next.filter(|n| n.key_id() != current.key_id()) {
            keys.push(next.public_jwk().clone().published(next.key_id()));
        }
        for previous in self.previous_issuer_keys()? {
            let known = keys.iter().any(|k| k.kid == previous.jwk.kid);
            if previous.retire_at > now && !known {
                keys.push(previous.jwk);
            }
        }
        Ok(serde_json::json!({ "keys": keys }))
    }

    /// The issuer's previous keys, retired or not.
    pub fn previous_issuer_keys(&self) -> Result<Vec<PreviousKey>, SetupError> {
        let path = self.root.join(ISSUER_PREVIOUS_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => serde_json::from_str::<PreviousKeys>(&text)
                .map(|p| p.keys)
                .map_err(|e| SetupError::BadPrevious {
                    path,
                    detail: e.to_string(),
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(io("reading", &path)(e)),
        }
    }

    /// Rotates the issuer key without stopping anything: generates the new
    /// key and publishes it beside the old one; after `activate_after` (so
    /// every server and wrap watching the files verifies with it before
    /// anyone signs with it) makes it the signing key. The old key stays
    /// published until `retire_after` seconds from `now` (the longest
    /// remit lifetime, so every remit it signed expires first).
    pub fn rotate_issuer(
        &self,
        now: u64,
        retire_after: u64,
        activate_after: std::time::Duration,
    ) -> Result<Rotation, SetupError> {
        use remit_token::Signer as _;
        let current_path = self.root.join(ISSUER_KEY_FILE);
        let Some(old) = self.existing_key(ISSUER_KEY_FILE)? else {
            return Err(SetupError::NoKeyToRotate(current_path));
        };
        // A rotation that stopped half-way left a next key nobody signs with.
        let next_path = self.root.join(ISSUER_NEXT_KEY_FILE);
        match std::fs::remove_file(&next_path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io("removing", &next_path)(e))
            }
            _ => {}
        }
        let new = self.key(ISSUER_NEXT_KEY_FILE)?.signer;
        let retire_at = now.saturating_add(retire_after);
        let mut previous: Vec<PreviousKey> = self
            .previous_issuer_keys()?
            .into_iter()
            .filter(|p| p.retire_at > now && p.jwk.kid.as_deref() != Some(old.key_id()))
            .collect();
        previous.push(PreviousKey {
            jwk: old.public_jwk().clone().published(old.key_id()),
            retire_at,
        });
        let text = serde_json::to_vec_pretty(&PreviousKeys { keys: previous })
            .map_err(|e| SetupError::Crypto(e.to_string()))?;
        replace_file(&self.root, ISSUER_PREVIOUS_FILE, &text)?;
        let jwks =
            self.publish_jwks_document(&self.issuer_jwks_document(&old, Some(&new), now)?)?;
        std::thread::sleep(activate_after);
        std::fs::rename(&next_path, &current_path).map_err(io("replacing", &current_path))?;
        self.publish_jwks_document(&self.issuer_jwks_document(&new, None, now)?)?;
        Ok(Rotation {
            old_kid: old.key_id().to_owned(),
            new_kid: new.key_id().to_owned(),
            old_retires_at: retire_at,
            jwks,
        })
    }

    /// Writes `record` to [`SERVE_RECORD_FILE`] in one rename (a reader
    /// sees the old record or the new one).
    pub fn publish_serve_record(&self, record: &ServeRecord) -> Result<PathBuf, SetupError> {
        let mut text =
            serde_json::to_vec_pretty(record).map_err(|e| SetupError::Crypto(e.to_string()))?;
        text.push(b'\n');
        let path = self.root.join(SERVE_RECORD_FILE);
        let temporary = self.root.join(format!("{SERVE_RECORD_FILE}.new"));
        std::fs::write(&temporary, &text).map_err(io("writing", &temporary))?;
        std::fs::rename(&temporary, &path).map_err(io("replacing", &path))?;
        Ok(path)
    }

    /// Loads the admin token hash, generating a token (returned once) if none.
    pub fn admin_token(&self) -> Result<AdminToken, SetupError> {
        let path = self.root.join(ADMIN_HASH_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => {
                let mut hash = [0u8; 32];
                hex::decode_to_slice(text.trim(), &mut hash)
                    .map_err(|_| SetupError::BadAdminHash { path: path.clone() })?;
                Ok(AdminToken {
                    hash,
                    new_token: None,
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let token = new_admin_token()?;
                let hash = sha256(token.as_bytes());
                write_secret(&path, hex::encode(hash).as_bytes())?;
                Ok(AdminToken {
                    hash,
                    new_token: Some(token),
                })
            }
            Err(e) => Err(io("reading", &path)(e)),
        }
    }
}

/// Seconds since the Unix epoch by the system clock.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Replaces `dir/name` with `contents` in one rename, synced.
fn replace_file(dir: &Path, name: &str, contents: &[u8]) -> Result<(), SetupError> {
    let path = dir.join(name);
    let temporary = dir.join(format!("{name}.new"));
    std::fs::write(&temporary, contents).map_err(io("writing", &temporary))?;
    std::fs::File::open(&temporary)
        .and_then(|f| f.sync_all())
        .map_err(io("syncing", &temporary))?;
    std::fs::rename(&temporary, &path).map_err(io("replacing", &path))
}

/// A fresh admin token: `remit_admin_` and 256 random bits, base64url.
pub fn new_admin_token() -> Result<String, SetupError> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| SetupError::Crypto("random source failed".into()))?;
    Ok(format!("remit_admin_{}", remit_token::b64::encode(bytes)))
}

/// SHA-256 of `bytes`.
pub fn sha256(bytes: &[u8]) -> [u8; 32] {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// Writes a new secret file (0600); refuses to overwrite one.
pub(crate) fn write_secret(path: &Path, contents: &[u8]) -> Result<(), SetupError> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io("creating", path))?;
    file.write_all(contents)
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .map_err(io("writing", path))
}

/// The JWKS document that publishes `signer`'s public key under its `kid`:
/// what `/.well-known/jwks.json` serves and `issuer.jwks.json` holds.
pub fn published_jwks(signer: &remit_token::EcdsaP256Signer) -> serde_json::Value {
    use remit_token::Signer as _;
    let key = signer.public_jwk().clone().published(signer.key_id());
    serde_json::json!({ "keys": [key] })
}

#[cfg(test)]
mod tests {
    use super::*;
    use remit_token::Signer as _;

    #[test]
    fn keys_are_private_files_reused_on_restart() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::prepare(&dir.path().join("d")).unwrap();
        let first = data.key(ISSUER_KEY_FILE).unwrap();
        assert!(first.created);
        let again = data.key(ISSUER_KEY_FILE).unwrap();
        assert!(!again.created);
        assert_eq!(first.signer.key_id(), again.signer.key_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&first.path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            let mode = std::fs::metadata(data.path()).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
    }

    #[test]
    fn the_published_issuer_jwks_verifies_the_issuers_remits_and_holds_no_private_part() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::prepare(dir.path()).unwrap();
        let issuer = data.key(ISSUER_KEY_FILE).unwrap().signer;
        let path = data.publish_issuer_jwks(&issuer).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(!text.contains("\"d\""), "a private scalar in {text}");
        let jwks = remit_token::Jwks::from_json(&text).unwrap();
        assert_eq!(jwks.len(), 1);
        assert!(jwks.get(issuer.key_id()).is_some());
        // A second start replaces it with the key it then holds.
        let other = EcdsaP256Signer::generate().unwrap();
        data.publish_issuer_jwks(&other).unwrap();
        let jwks = remit_token::Jwks::from_json(&std::fs::read_to_string(&path).unwrap()).unwrap();
        assert!(jwks.get(issuer.key_id()).is_none());
        assert!(jwks.get(other.key_id()).is_some());
    }

    #[test]
    fn the_serve_record_round_trips_and_a_missing_or_torn_one_reads_as_none() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::prepare(dir.path()).unwrap();
        assert_eq!(ServeRecord::read(dir.path()), None);
        let record = ServeRecord {
            public_url: "http://127.0.0.1:9123".into(),
            audience: "remit".into(),
            listening: "127.0.0.1:9123".into(),
            pid: 42,
            started_at: 1,
        };
        data.publish_serve_record(&record).unwrap();
        assert_eq!(ServeRecord::read(dir.path()), Some(record));
        std::fs::write(dir.path().join(SERVE_RECORD_FILE), "{\"public_url\":").unwrap();
        assert_eq!(ServeRecord::read(dir.path()), None);
    }

    #[test]
    fn admin_token_is_shown_once_and_only_its_hash_is_kept() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::prepare(dir.path()).unwrap();
        let first = data.admin_token().unwrap();
        let token = first.new_token.clone().unwrap();
        assert!(token.starts_with("remit_admin_"));
        let stored = std::fs::read_to_string(dir.path().join(ADMIN_HASH_FILE)).unwrap();
        assert!(!stored.contains(&token));
        assert_eq!(stored.trim(), hex::encode(sha256(token.as_bytes())));
        let again = data.admin_token().unwrap();
        assert!(again.new_token.is_none());
        assert_eq!(again.hash, first.hash);
    }

    #[test]
    fn a_rotation_publishes_both_keys_then_retires_the_old_one() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::prepare(dir.path()).unwrap();
        // Negative first: nothing to rotate, and nothing generated.
        assert!(matches!(
            data.rotate_issuer(1_000, 60, std::time::Duration::ZERO),
            Err(SetupError::NoKeyToRotate(_))
        ));
        assert!(!dir.path().join(ISSUER_KEY_FILE).exists());
        let old = data.key(ISSUER_KEY_FILE).unwrap().signer;
        // A rotation that stopped half-way left a next key: it is replaced.
        data.key(ISSUER_NEXT_KEY_FILE).unwrap();
        let stale = data.existing_key(ISSUER_NEXT_KEY_FILE).unwrap().unwrap();
        let rotation = data
            .rotate_issuer(1_000, 60, std::time::Duration::ZERO)
            .unwrap();
        assert_eq!(rotation.old_kid, old.key_id());
        assert_ne!(rotation.new_kid, stale.key_id());
        assert_eq!(rotation.old_retires_at, 1_060);
        assert!(!dir.path().join(ISSUER_NEXT_KEY_FILE).exists());
        let kids = |doc: &serde_json::Value| -> Vec<String> {
            doc["keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["kid"].as_str().unwrap().to_owned())
                .collect()
        };
        let keys = data.issuer_keys(1_059).unwrap();
        assert_eq!(keys.signer.key_id(), rotation.new_kid);
        assert_eq!(
            kids(&keys.jwks),
            [rotation.new_kid.clone(), rotation.old_kid.clone()]
        );
        let file: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.path().join(ISSUER_JWKS_FILE)).unwrap(),
        )
        .unwrap();
        assert_eq!(kids(&file), kids(&keys.jwks));
        assert!(
            !file.to_string().contains("\"d\""),
            "a private scalar published"
        );
        // Retired: gone from the document.
        assert_eq!(
            kids(&data.issuer_keys(1_060).unwrap().jwks),
            std::slice::from_ref(&rotation.new_kid)
        );
        // A rotation under way publishes the next key beside the current one.
        data.key(ISSUER_NEXT_KEY_FILE).unwrap();
        let next = data.existing_key(ISSUER_NEXT_KEY_FILE).unwrap().unwrap();
        assert_eq!(
            kids(&data.issuer_keys(1_000).unwrap().jwks),
            [rotation.new_kid, next.key_id().to_owned(), rotation.old_kid]
        );
    }

    #[test]
    fn a_corrupt_key_file_is_refused_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(ISSUER_KEY_FILE), "{}").unwrap();
        let data = DataDir::prepare(dir.path()).unwrap();
        assert!(matches!(
            data.key(ISSUER_KEY_FILE),
            Err(SetupError::BadKey { .. })
        ));
    }
}
