//! Append-only leaf storage: the trait, an in-memory store and a file store.
//!
//! A store holds leaf bytes in order and nothing else; the Merkle tree is
//! rebuilt from them. [`LeafStore::append_batch`] is the durability point:
//! when it returns `Ok(first)`, the leaves `first..first + n` survive a crash
//! (the file store has called `fsync`). Batching is how a server
//! group-commits: many receipts, one `fsync`.
//!
//! [`FileStore`] is the only module in this crate that does I/O. It keeps
//! one file, `receipts.jsonl`, a leaf per line. A crash in the middle of a
//! write leaves at most a partial last line (no newline after it); opening
//! the store cuts that torn tail off and syncs, so the file again holds only
//! whole leaves. A partial line was never acknowledged, since `fsync` had
//! not returned.

use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader, Read as _, Seek as _, SeekFrom, Write as _};
use std::path::{Path, PathBuf};

/// The leaf file's name inside a log directory.
pub const LEAF_FILE: &str = "receipts.jsonl";

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A leaf held a newline, which the line framing cannot store.
    #[error("leaf {0} contains a newline")]
    NewlineInLeaf(u64),
    /// The index is past the end of the log.
    #[error("leaf {index} does not exist (log size {size})")]
    NoSuchLeaf {
        /// The index asked for.
        index: u64,
        /// The log's size.
        size: u64,
    },
    /// The operating system refused a read, write or sync.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Append-only, durable storage of leaves.
pub trait LeafStore {
    /// Number of leaves stored.
    fn len(&self) -> u64;

    /// Whether the store is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends leaves in order and makes them durable before returning the
    /// index of the first.
    fn append_batch(&mut self, leaves: &[Vec<u8>]) -> Result<u64, StoreError>;

    /// Reads leaf `index`.
    fn read(&self, index: u64) -> Result<Vec<u8>, StoreError>;
}

/// Leaves in memory: for tests and for a server that persists elsewhere.
#[derive(Debug, Default, Clone)]
pub struct MemoryStore {
    leaves: Vec<Vec<u8>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        MemoryStore::default()
    }
}

impl LeafStore for MemoryStore {
    fn len(&self) -> u64 {
        self.leaves.len() as u64
    }

    fn append_batch(&mut self, leaves: &[Vec<u8>]) -> Result<u64, StoreError> {
        let first = self.len();
        check_no_newlines(first, leaves)?;
        self.leaves.extend(leaves.iter().cloned());
        Ok(first)
    }

    fn read(&self, index: u64) -> Result<Vec<u8>, StoreError> {
        usize::try_from(index)
            .ok()
            .and_then(|i| self.leaves.get(i))
            .cloned()
            .ok_or(StoreError::NoSuchLeaf {
                index,
                size: self.len(),
            })
    }
}

fn check_no_newlines(first: u64, leaves: &[Vec<u8>]) -> Result<(), StoreError> {
    for (i, leaf) in leaves.iter().enumerate() {
        if memchr_newline(leaf) {
            return Err(StoreError::NewlineInLeaf(first + i as u64));
        }
    }
    Ok(())
}

fn memchr_newline(bytes: &[u8]) -> bool {
    bytes.contains(&b'\n')
}

/// What opening a file store found and repaired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Recovery {
    /// Bytes of a torn last line that were cut off (0 when the file was whole).
    pub torn_bytes: u64,
}

/// Leaves in `DIR/receipts.jsonl`, one per line, synced before acknowledged.
#[derive(Debug)]
pub struct FileStore {
    path: PathBuf,
    file: File,
    /// Byte offset where each leaf starts; one more entry marks the end.
    offsets: Vec<u64>,
}

fn io_err<'p>(
    action: &'static str,
    path: &'p Path,
) -> impl FnOnce(std::io::Error) -> StoreError + 'p {
    move |source| StoreError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

impl FileStore {
    /// Opens (creating if needed) the store in `dir`, cutting off a torn
    /// tail left by a crash.
    pub fn open(dir: &Path) -> Result<(Self, Recovery), StoreError> {
        std::fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
        let path = dir.join(LEAF_FILE);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io_err("opening", &path))?;
        let mut offsets = vec![0u64];
        let mut reader = BufReader::with_capacity(1 << 20, &file);
        let mut line = Vec::new();
        let mut end = 0u64;
        let mut torn = 0u64;
        loop {
            line.clear();
            let n = reader
                .read_until(b'\n', &mut line)
                .map_err(io_err("reading", &path))? as u64;
            if n == 0 {
                break;
            }
            if line.last() == Some(&b'\n') {
                end += n;
                offsets.push(end);
            } else {
                torn = n;
                break;
            }
        }
        drop(reader);
        if torn > 0 {
            file.set_len(end).map_err(io_err("truncating", &path))?;
            file.sync_all().map_err(io_err("syncing", &path))?;
        }
        file.seek(SeekFrom::End(0))
            .map_err(io_err("seeking", &path))?;
        Ok((
            FileStore {
                path,
                file,
                offsets,
            },
            Recovery { torn_bytes: torn },
        ))
    }

    /// The leaf file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl LeafStore for FileStore {
    fn len(&self) -> u64 {
        self.offsets.len() as u64 - 1
    }

    fn append_batch(&mut self, leaves: &[Vec<u8>]) -> Result<u64, StoreError> {
        let first = self.len();
        check_no_newlines(first, leaves)?;
        let total: usize = leaves.iter().map(|l| l.len() + 1).sum();
        let mut buf = Vec::with_capacity(total);
        for leaf in leaves {
            buf.extend_from_slice(leaf);
            buf.push(b'\n');
        }
        // INVARIANT: offsets always holds at least the start offset 0.
        let mut end = *self.offsets.last().unwrap_or(&0);
        if let Err(e) = self
            .file
            .write_all(&buf)
            .and_then(|()| self.file.sync_data())
        {
            // Leave no half-written batch behind: cut back to the last
            // acknowledged leaf so the next append does not follow garbage.
            let _ = self.file.set_len(end);
            let _ = self.file.sync_all();
            return Err(io_err("appending to", &self.path)(e));
        }
        for leaf in leaves {
            end += leaf.len() as u64 + 1;
            self.offsets.push(end);
        }
        Ok(first)
    }

    fn read(&self, index: u64) -> Result<Vec<u8>, StoreError> {
        let size = self.len();
        let i = usize::try_from(index)
            .ok()
            .filter(|&i| (i as u64) < size)
            .ok_or(StoreError::NoSuchLeaf { index, size })?;
        let (start, end) = (self.offsets[i], self.offsets[i + 1] - 1);
        let mut buf = vec![0u8; (end - start) as usize];
        let mut f = &self.file;
        f.seek(SeekFrom::Start(start))
            .and_then(|_| f.read_exact(&mut buf))
            .map_err(io_err("reading", &self.path))?;
        Ok(buf)
    }
}

impl FileStore {
    /// Reads every leaf in order, for rebuilding the tree or auditing.
    pub fn read_all(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut file = File::open(&self.path).map_err(io_err("opening", &self.path))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)
            .map_err(io_err("reading", &self.path))?;
        let end = *self.offsets.last().unwrap_or(&0) as usize;
        Ok(bytes[..end.min(bytes.len())]
            .split(|&b| b == b'\n')
            .take(self.len() as usize)
            .map(<[u8]>::to_vec)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_leaf_with_newline_that_would_split_into_two() {
        let mut m = MemoryStore::new();
        assert!(matches!(
            m.append_batch(&[b"a".to_vec(), b"b\nc".to_vec()]),
            Err(StoreError::NewlineInLeaf(1))
        ));
        assert_eq!(m.len(), 0);
        let dir = tempfile::tempdir().unwrap();
        let (mut f, _) = FileStore::open(dir.path()).unwrap();
        assert!(f.append_batch(&[b"x\n".to_vec()]).is_err());
        assert_eq!(f.len(), 0);
    }

    #[test]
    fn file_store_cuts_a_torn_tail_and_keeps_whole_leaves() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (mut f, rec) = FileStore::open(dir.path()).unwrap();
            assert_eq!(rec.torn_bytes, 0);
            assert_eq!(
                f.append_batch(&[b"one".to_vec(), b"two".to_vec()]).unwrap(),
                0
            );
            assert_eq!(f.append_batch(&[b"three".to_vec()]).unwrap(), 2);
        }
        // Simulate a crash mid-write: a partial line at the end.
        let path = dir.path().join(LEAF_FILE);
        let mut raw = OpenOptions::new().append(true).open(&path).unwrap();
        raw.write_all(b"{\"receipt\":{\"v\":1").unwrap();
        drop(raw);
        let (mut f, rec) = FileStore::open(dir.path()).unwrap();
        assert_eq!(rec.torn_bytes, 17);
        assert_eq!(f.len(), 3);
        assert_eq!(f.read(2).unwrap(), b"three");
        assert_eq!(f.append_batch(&[b"four".to_vec()]).unwrap(), 3);
        assert_eq!(std::fs::read(&path).unwrap(), b"one\ntwo\nthree\nfour\n");
        assert_eq!(f.read_all().unwrap().len(), 4);
        assert!(matches!(
            f.read(4),
            Err(StoreError::NoSuchLeaf { index: 4, size: 4 })
        ));
    }
}
