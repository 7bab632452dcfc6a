//! A log directory on disk: leaves, the latest checkpoint, the note key.
//!
//! ```text
//! DIR/receipts.jsonl   leaves, one per line (see `store::FileStore`): JSON
//!                      Lines at every moment, also while a writer has it
//!                      open (its reserved space lies past the file's size)
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
use crate::store::{is_whole_leaf, measure_tail, StoreError, LEAF_FILE};

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
            unused_bytes: 0,
            done: false,
        })
    }
}

fn write_durably(path: &Path, bytes: &[u8]) -> Result<(), DirError> {
    File::create(path)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .map_err(|e| io("writing", path, e))
}

/// Streams leaves from `receipts.jsonl`, read-only, also while a writer
/// has it open. The leaves end at the first line that is not whole: one
/// that begins with a NUL byte starts space the size covers but no data
/// reached ([`LeafReader::unused_bytes`]: after a power loss, or a file an
/// earlier Remit preallocated by extending it); one without a newline at
/// the end of the file, or holding a NUL byte, is a torn write of a batch
/// never acknowledged (a crash, or a writer caught mid-write), and it and
/// any non-NUL bytes after it are reported in [`LeafReader::torn_bytes`].
#[derive(Debug)]
pub struct LeafReader {
    reader: BufReader<File>,
    path: PathBuf,
    bytes_read: u64,
    total: u64,
    torn_bytes: u64,
    unused_bytes: u64,
    done: bool,
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

    /// Bytes of a torn or stale tail after the last leaf (through its last
    /// non-NUL byte), once the reader reached the end.
    pub fn torn_bytes(&self) -> u64 {
        self.torn_bytes
    }

    /// NUL bytes at the end (a power loss, or an earlier Remit's
    /// preallocation), once the reader reached the end.
    pub fn unused_bytes(&self) -> u64 {
        self.unused_bytes
    }

    fn io_error(&self, source: std::io::Error) -> StoreError {
        StoreError::Io {
            action: "reading",
            path: self.path.clone(),
            source,
        }
    }
}

impl Iterator for LeafReader {
    type Item = Result<Vec<u8>, StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let mut line = Vec::new();
        match self.reader.read_until(b'\n', &mut line) {
            Err(source) => {
                self.done = true;
                Some(Err(self.io_error(source)))
            }
            Ok(0) => {
                self.done = true;
                None
            }
            Ok(n) if is_whole_leaf(&line) => {
                self.bytes_read += n as u64;
                line.pop();
                Some(Ok(line))
            }
            Ok(_) => {
                self.done = true;
                match measure_tail(&line, &mut self.reader) {
                    Ok((torn, unused)) => {
                        self.bytes_read += torn + unused;
                        self.torn_bytes = torn;
                        self.unused_bytes = unused;
                        None
                    }
                    Err(source) => Some(Err(self.io_error(source))),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{FileStore, LeafStore as _};
    use std::os::unix::fs::FileExt as _;

    fn leaves() -> Vec<Vec<u8>> {
        (0..50)
            .map(|i| format!("{{\"receipt\":{{\"index\":{i}}}}}").into_bytes())
            .collect()
    }

    #[test]
    fn a_stale_line_after_zeros_in_a_killed_log_is_torn_not_a_leaf() {
        let dir = tempfile::tempdir().unwrap();
        let (mut f, _) = FileStore::open_with_chunk(dir.path(), 4096).unwrap();
        f.append_batch(&leaves()).unwrap();
        let end = f
            .read_all()
            .unwrap()
            .iter()
            .map(|l| l.len() as u64 + 1)
            .sum::<u64>();
        f.kill();
        let raw = std::fs::OpenOptions::new()
            .write(true)
            .open(dir.path().join(LEAF_FILE))
            .unwrap();
        raw.write_all_at(b"stale\n", end + 10).unwrap();
        let mut reader = LogDir::new(dir.path()).leaf_reader().unwrap();
        let read: Vec<Vec<u8>> = reader.by_ref().map(Result::unwrap).collect();
        assert_eq!(read, leaves());
        assert_eq!(reader.torn_bytes(), 16);
        assert_eq!(reader.bytes_read(), reader.total_bytes());
        assert_eq!(reader.unused_bytes(), reader.total_bytes() - end - 16);
    }

    #[test]
    fn a_live_log_reads_as_exactly_its_leaves_with_no_unused_tail() {
        let dir = tempfile::tempdir().unwrap();
        let (mut f, _) = FileStore::open_with_chunk(dir.path(), 4096).unwrap();
        for pair in leaves().chunks(2) {
            f.append_batch(pair).unwrap();
        }
        // The writer is still open, with blocks reserved past the end.
        let mut reader = LogDir::new(dir.path()).leaf_reader().unwrap();
        let read: Vec<Vec<u8>> = reader.by_ref().map(Result::unwrap).collect();
        assert_eq!(read, leaves());
        assert_eq!(reader.torn_bytes(), 0);
        assert_eq!(reader.unused_bytes(), 0);
        assert_eq!(reader.next().map(|r| r.is_ok()), None);
        drop(f);
    }
}
