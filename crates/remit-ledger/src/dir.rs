//! A log directory on disk: leaves, the latest checkpoint, the note key.
//!
//! ```text
//! DIR/receipts.jsonl   leaves, one per line (see `store::FileStore`)
//! DIR/checkpoint       the latest signed checkpoint (C2SP signed note)
//! DIR/note.pub         the log's note verifier key (`name+id+key`)
//! ```
//!
//! `note.pub` is a convenience for operators; an auditor should pin the
//! verifier key it got from a trusted channel instead of the one next to
//! the data it audits.

use std::fs::File;
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};

use crate::note::{NoteError, NoteSigner, NoteVerifier};
use crate::store::{StoreError, LEAF_FILE};

/// The checkpoint file's name inside a log directory.
pub const CHECKPOINT_FILE: &str = "checkpoint";
/// The note verifier key file's name inside a log directory.
pub const NOTE_PUB_FILE: &str = "note.pub";

/// Why a log directory could not be used.
#[derive(Debug, thiserror::Error)]
pub enum DirError {
    /// A file could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The note key file is invalid.
    #[error("{path}: {source}")]
    NoteKey {
        /// The file.
        path: PathBuf,
        /// Why.
        source: NoteError,
    },
    /// The directory already holds a log.
    #[error("{0} already holds a log")]
    Exists(PathBuf),
}

fn io(action: &'static str, path: &Path, source: std::io::Error) -> DirError {
    DirError::Store(StoreError::Io {
        action,
        path: path.to_owned(),
        source,
    })
}

/// A log directory.
#[derive(Debug, Clone)]
pub struct LogDir {
    path: PathBuf,
}

impl LogDir {
    /// The log directory at `path` (nothing is read yet).
    pub fn new(path: impl Into<PathBuf>) -> Self {
        LogDir { path: path.into() }
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Creates a new log: the directory, `note.pub`, an empty leaf file and
    /// a signed checkpoint of the empty tree.
    pub fn init(&self, note_key: &NoteSigner) -> Result<(), DirError> {
        std::fs::create_dir_all(&self.path).map_err(|e| io("creating", &self.path, e))?;
        let pub_path = self.path.join(NOTE_PUB_FILE);
        if pub_path.exists() || self.path.join(LEAF_FILE).exists() {
            return Err(DirError::Exists(self.path.clone()));
        }
        write_durably(
            &pub_path,
            format!("{}\n", note_key.verifier().to_vkey()).as_bytes(),
        )?;
        let empty = crate::checkpoint::Checkpoint {
            origin: note_key.name().to_owned(),
            size: 0,
            root: crate::merkle::empty_root(),
        };
        let note = empty.sign(note_key).map_err(|e| match e {
            crate::checkpoint::CheckpointError::Note(source) => DirError::NoteKey {
                path: pub_path.clone(),
                source,
            },
            _ => DirError::NoteKey {
                path: pub_path.clone(),
                source: NoteError::Signing,
            },
        })?;
        File::create(self.path.join(LEAF_FILE))
            .and_then(|f| f.sync_all())
            .map_err(|e| io("creating", &self.path.join(LEAF_FILE), e))?;
        self.write_checkpoint(&note)
    }

    /// The note verifier key stored in `note.pub`.
    pub fn note_verifier(&self) -> Result<NoteVerifier, DirError> {
        let path = self.path.join(NOTE_PUB_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| io("reading", &path, e))?;
        NoteVerifier::from_vkey(text.trim()).map_err(|source| DirError::NoteKey { path, source })
    }

    /// The latest signed checkpoint.
    pub fn checkpoint(&self) -> Result<String, DirError> {
        let path = self.path.join(CHECKPOINT_FILE);
        std::fs::read_to_string(&path).map_err(|e| io("reading", &path, e))
    }

    /// Replaces the checkpoint atomically: write a temporary file, sync it,
    /// rename it over the old one, sync the directory.
    pub fn write_checkpoint(&self, note: &str) -> Result<(), DirError> {
        let tmp = self.path.join(format!("{CHECKPOINT_FILE}.tmp"));
        write_durably(&tmp, note.as_bytes())?;
        let path = self.path.join(CHECKPOINT_FILE);
        std::fs::rename(&tmp, &path).map_err(|e| io("renaming", &path, e))?;
        File::open(&self.path)
            .and_then(|d| d.sync_all())
            .map_err(|e| io("syncing", &self.path, e))
    }

    /// Reads the leaves without changing anything (an auditor's view).
    pub fn leaf_reader(&self) -> Result<LeafReader, DirError> {
        let path = self.path.join(LEAF_FILE);
        let file = File::open(&path).map_err(|e| io("opening", &path, e))?;
        let total = file.metadata().map_err(|e| io("reading", &path, e))?.len();
        Ok(LeafReader {
            reader: BufReader::with_capacity(1 << 20, file),
            path,
            bytes_read: 0,
            total,
            torn_bytes: 0,
        })
    }
}

fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), DirError> {
    File::create(path)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .map_err(|e| io("writing", path, e))
}

/// Streams leaves from `receipts.jsonl`, read-only. A last line without a
/// newline is a torn write from a crash: it is not a leaf (it was never
/// acknowledged) and is reported in [`LeafReader::torn_bytes`].
#[derive(Debug)]
pub struct LeafReader {
    reader: BufReader<File>,
    path: PathBuf,
    bytes_read: u64,
    total: u64,
    torn_bytes: u64,
}

impl LeafReader {
    /// Bytes consumed so far (for progress).
    pub fn bytes_read(&self) -> u64 {
        self.bytes_read
    }

    /// The file's size when opened.
    pub fn total_bytes(&self) -> u64 {
        self.total
    }

    /// Bytes of a torn last line, once the reader reached the end.
    pub fn torn_bytes(&self) -> u64 {
        self.torn_bytes
    }
}

impl Iterator for LeafReader {
    type Item = Result<Vec<u8>, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        let mut line = Vec::new();
        match self.reader.read_until(b'\n', &mut line) {
            Err(source) => Some(Err(StoreError::Io {
                action: "reading",
                path: self.path.clone(),
                source,
            })),
            Ok(0) => None,
            Ok(n) => {
                self.bytes_read += n as u64;
                if line.pop() == Some(b'\n') {
                    Some(Ok(line))
                } else {
                    self.torn_bytes = n as u64;
                    None
                }
            }
        }
    }
}
