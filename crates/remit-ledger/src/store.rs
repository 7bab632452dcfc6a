//! Append-only leaf storage: the trait, an in-memory store and a file store.
//!
//! A store holds leaf bytes in order and nothing else; the Merkle tree is
//! rebuilt from them. [`LeafStore::append_batch`] is the durability point:
//! when it returns `Ok(first)`, the leaves `first..first + n` survive a crash
//! (the file store has called `fdatasync`). Batching is how a server
//! group-commits: many receipts, one sync.
//!
//! [`FileStore`] keeps one file, `receipts.jsonl`, a leaf per line; it is
//! the crate's only writer of leaves ([`crate::dir`] writes the checkpoint
//! and reads leaves).
//!
//! # Preallocation, and why the file never shows NUL bytes
//!
//! The sync is the floor of every durable append; an append that must
//! also allocate data blocks makes it dearer. So the store reserves blocks
//! ahead of the writes, [`PREALLOC_CHUNK`] bytes at a time, with
//! `fallocate(2)` and `FALLOC_FL_KEEP_SIZE`: the blocks are allocated past
//! the end of the file as *unwritten* extents, and the file's size does not
//! move. Each batch is then written with one positioned write at the
//! logical end, which extends the size to just after its last newline, and
//! one `fdatasync` makes the data, the new size and the extents' flip from
//! unwritten to written durable together (one journal commit on ext4 and
//! XFS, no block allocation in it).
//!
//! The file's size is therefore always the end of the last batch written:
//! a reader (`jq`, `wc -l`, `tail -f`) sees whole JSON lines only, never a
//! preallocated NUL tail, while a writer runs and after it is killed. (An
//! earlier Remit extended the size with the preallocation, so a live file
//! ended in up to 8 MiB of NUL bytes; its files are still read and
//! repaired the same way.) A reader can catch the last line half written
//! during the few microseconds of a write, as with any appended file; it
//! is whole once the write returns. Where `fallocate` is missing (not
//! Linux, or a filesystem answering `EOPNOTSUPP`) nothing is reserved:
//! each batch's `fdatasync` allocates its blocks.
//!
//! # What a crash leaves, and what opening keeps
//!
//! After a kill, the file is the acknowledged leaves, then possibly the
//! bytes of a batch whose sync had not returned. After a power loss, pages
//! of that last batch may have reached the disk in any order and the size
//! may be ahead of the data, so its bytes can be a partial line, zeros with
//! stale lines after them, or a line with zeros inside. Opening scans lines
//! from the start and keeps them up to the first one that is incomplete or
//! holds a NUL byte (a leaf is canonical JSON and never does); everything
//! from there on was never acknowledged and is cut off (`set_len` +
//! `fsync`). [`Recovery`] tells apart a torn or stale tail (worth a
//! warning) from zeros only.
//!
//! A failed write or sync acknowledges nothing of the batch; the file is
//! cut back to the last acknowledged leaf before anything else is written,
//! so bytes of the failed batch can never sit behind a later, shorter batch
//! and be read as leaves. Dropping the store releases the blocks reserved
//! past the end. Readers of a live file ([`crate::dir::LeafReader`]) stop
//! at the first line that is not whole.
//!
//! One writer per file: opening takes an exclusive advisory lock
//! (`flock(2)`, Linux) on the leaf file and holds it while the store lives,
//! so a second writer (another `remit serve`, `remit audit append`) is
//! refused with [`StoreError::Locked`] before it reads, cuts or
//! preallocates anything — it would otherwise trim the live writer's
//! preallocated tail and fork the log. Readers ([`crate::dir`]) take no
//! lock.

use std::fs::{File, OpenOptions};
use std::io::{BufRead as _, BufReader, Read};
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};

/// How far the file store reserves blocks ahead of the writes (8 MiB, about
/// 14,000 receipts of 600 bytes): one `fallocate` and one `fsync` per chunk.
/// The reservation lies past the file's end; its size does not include it.
pub const PREALLOC_CHUNK: u64 = 8 << 20;

/// The most non-NUL bytes opening cuts after the last whole leaf: what one
/// crashed batch can leave (a server's batch is at most 1,024 receipts of a
/// few KiB). More means damage in the middle of the log, which is refused
/// ([`StoreError::DamagedTail`]) rather than cut.
pub const MAX_TORN_BYTES: u64 = 8 << 20;

/// The leaf file's name inside a log directory.
pub const LEAF_FILE: &str = "receipts.jsonl";

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A leaf held a newline, which the line framing cannot store.
    #[error("leaf {0} contains a newline")]
    NewlineInLeaf(u64),
    /// Opening found more bytes after the last whole leaf than one crashed
    /// batch can leave: the file was damaged or edited in the middle, and
    /// cutting would delete receipts, so the store refuses to open it.
    #[error(
        "{path}: {bytes} bytes after leaf {leaves} (at byte {offset}) are not whole leaves, more than a crash can leave; \
         refusing to cut them (receipts would be lost): inspect the file, restore it from a copy, or move it away"
    )]
    DamagedTail {
        /// The leaf file.
        path: PathBuf,
        /// Whole leaves before the damage.
        leaves: u64,
        /// Where the damage starts.
        offset: u64,
        /// Non-NUL bytes from there through the last one.
        bytes: u64,
    },
    /// Another open store (in this or another process) holds the file.
    #[error(
        "{0} is being written by another process (one writer per log): stop that process first, \
         or give this one its own data directory"
    )]
    Locked(PathBuf),
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
    /// Bytes of a torn or stale tail that were cut off: from the end of the
    /// last whole leaf through the last non-NUL byte after it (0 when the
    /// file ended with a whole leaf, or with zeros only). Never acknowledged.
    pub torn_bytes: u64,
    /// NUL bytes after that: space the size covered but no data reached
    /// (after a power loss, or a file an earlier Remit preallocated by
    /// extending its size). Not a sign of a torn write.
    pub unused_bytes: u64,
}

/// Whether `line` (as read, with its newline if any) is a whole leaf: it
/// ends with a newline and holds no NUL byte (canonical JSON never does; a
/// NUL is unwritten preallocated space).
pub(crate) fn is_whole_leaf(line: &[u8]) -> bool {
    line.last() == Some(&b'\n') && !line.contains(&0)
}

/// Measures a tail that is not leaves: `head` (the first line that is not a
/// whole leaf) and everything `rest` still yields. Returns `(torn, unused)`:
/// the bytes through the last non-NUL one, and the NUL bytes after it.
pub(crate) fn measure_tail(head: &[u8], rest: &mut impl Read) -> std::io::Result<(u64, u64)> {
    let (mut total, mut data_end) = (0u64, 0u64);
    let mut account = |bytes: &[u8]| {
        if let Some(p) = bytes.iter().rposition(|&b| b != 0) {
            data_end = total + p as u64 + 1;
        }
        total += bytes.len() as u64;
    };
    account(head);
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match rest.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => account(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok((data_end, total - data_end))
}

/// Leaves in `DIR/receipts.jsonl`, one per line, synced before acknowledged,
/// written into space preallocated ahead of them (see the module doc).
#[derive(Debug)]
pub struct FileStore {
    path: PathBuf,
    file: File,
    /// Byte offset where each leaf starts; one more entry marks the logical
    /// end (just after the last acknowledged leaf's newline).
    offsets: Vec<u64>,
    /// How far blocks are reserved: the logical end plus the reserved,
    /// still unwritten space past the file's end (which its size excludes).
    allocated: u64,
    /// Growth step; 0 turns preallocation off (each batch extends the file).
    chunk: u64,
    /// A write or sync failed: bytes of an unacknowledged batch may follow
    /// the logical end, and must be cut before anything else is written.
    dirty: bool,
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

/// Reserves data blocks for bytes `from..size` of `file` past its end,
/// leaving its size alone (`fallocate` with `FALLOC_FL_KEEP_SIZE`).
/// Returns `false`, reserving nothing, where the platform or filesystem
/// cannot: the writes then allocate as they go.
fn preallocate(file: &File, from: u64, size: u64) -> std::io::Result<bool> {
    #[cfg(target_os = "linux")]
    {
        use rustix::fs::{fallocate, FallocateFlags};
        match fallocate(file, FallocateFlags::KEEP_SIZE, from, size - from) {
            Ok(()) => Ok(true),
            Err(rustix::io::Errno::OPNOTSUPP) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (file, from, size);
        Ok(false)
    }
}

/// Takes the one-writer lock on the leaf file, held until `file` closes.
/// A filesystem without `flock` support is opened unlocked (as before the
/// lock existed) rather than refused.
#[cfg(target_os = "linux")]
fn lock_writer(file: &File, path: &Path) -> Result<(), StoreError> {
    use rustix::fs::{flock, FlockOperation};
    use rustix::io::Errno;
    match flock(file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) | Err(Errno::NOLCK | Errno::OPNOTSUPP) => Ok(()),
        Err(Errno::WOULDBLOCK) => Err(StoreError::Locked(path.to_owned())),
        Err(e) => Err(io_err("locking", path)(std::io::Error::from(e))),
    }
}

/// No advisory lock off Linux: one writer per file is the operator's
/// responsibility there.
#[cfg(not(target_os = "linux"))]
fn lock_writer(_file: &File, _path: &Path) -> Result<(), StoreError> {
    Ok(())
}

impl FileStore {
    /// Ends the store as SIGKILL would: no release of the reserved blocks,
    /// and the file descriptor (with its writer lock) closed by the "kernel".
    #[cfg(test)]
    pub(crate) fn kill(self) {
        let mut leaked = std::mem::ManuallyDrop::new(self);
        let placeholder = tempfile::tempfile().expect("a placeholder file");
        drop(std::mem::replace(&mut leaked.file, placeholder));
    }

    /// Opens (creating if needed) the store in `dir`, cutting off whatever
    /// follows the last whole leaf (a torn or stale tail, unused zeros), and
    /// preallocating [`PREALLOC_CHUNK`] bytes at a time.
    pub fn open(dir: &Path) -> Result<(Self, Recovery), StoreError> {
        Self::open_with_chunk(dir, PREALLOC_CHUNK)
    }

    /// [`FileStore::open`] growing the file `chunk` bytes at a time; 0 turns
    /// preallocation off (every batch extends the file, as an append would).
    pub fn open_with_chunk(dir: &Path, chunk: u64) -> Result<(Self, Recovery), StoreError> {
        std::fs::create_dir_all(dir).map_err(io_err("creating", dir))?;
        let path = dir.join(LEAF_FILE);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io_err("opening", &path))?;
        lock_writer(&file, &path)?;
        let mut offsets = vec![0u64];
        let mut reader = BufReader::with_capacity(1 << 20, &file);
        let mut line = Vec::new();
        let mut end = 0u64;
        let mut recovery = Recovery::default();
        loop {
            line.clear();
            let n = reader
                .read_until(b'\n', &mut line)
                .map_err(io_err("reading", &path))? as u64;
            if n == 0 {
                break;
            }
            if !is_whole_leaf(&line) {
                let (torn, unused) =
                    measure_tail(&line, &mut reader).map_err(io_err("reading", &path))?;
                recovery = Recovery {
                    torn_bytes: torn,
                    unused_bytes: unused,
                };
                break;
            }
            end += n;
            offsets.push(end);
        }
        drop(reader);
        if recovery.torn_bytes > MAX_TORN_BYTES {
            return Err(StoreError::DamagedTail {
                path,
                leaves: offsets.len() as u64 - 1,
                offset: end,
                bytes: recovery.torn_bytes,
            });
        }
        if recovery != Recovery::default() {
            file.set_len(end).map_err(io_err("truncating", &path))?;
            file.sync_all().map_err(io_err("syncing", &path))?;
        }
        let mut store = FileStore {
            path,
            file,
            offsets,
            allocated: end,
            chunk,
            dirty: false,
        };
        store.reserve(end + chunk)?;
        Ok((store, recovery))
    }

    /// The leaf file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The logical end: just after the last acknowledged leaf's newline.
    fn end(&self) -> u64 {
        // INVARIANT: offsets always holds at least the start offset 0.
        self.offsets.last().copied().unwrap_or(0)
    }

    /// Makes sure blocks are reserved up to at least `need` bytes, to the
    /// next multiple of the chunk in one call, and syncs the reservation.
    /// The file's size does not change. With preallocation off, or where
    /// the filesystem cannot reserve, does nothing (writes allocate).
    fn reserve(&mut self, need: u64) -> Result<(), StoreError> {
        if self.chunk == 0 || need <= self.allocated {
            return Ok(());
        }
        let size = need.div_ceil(self.chunk) * self.chunk;
        match preallocate(&self.file, self.allocated, size) {
            Ok(true) => {}
            Ok(false) => {
                self.chunk = 0;
                return Ok(());
            }
            Err(e) => return Err(io_err("preallocating", &self.path)(e)),
        }
        self.file
            .sync_all()
            .map_err(io_err("preallocating", &self.path))?;
        self.allocated = size;
        Ok(())
    }

    /// Cuts the file back to the logical end (dropping any bytes of a failed
    /// batch and the reserved blocks) and syncs; the next batch reserves
    /// again.
    fn cut_to_end(&mut self) -> Result<(), StoreError> {
        let end = self.end();
        self.file
            .set_len(end)
            .and_then(|()| self.file.sync_all())
            .map_err(io_err("truncating", &self.path))?;
        self.allocated = end;
        self.dirty = false;
        Ok(())
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
        if self.dirty {
            self.cut_to_end()?;
        }
        let mut end = self.end();
        self.reserve(end + buf.len() as u64)?;
        if let Err(e) = self
            .file
            .write_all_at(&buf, end)
            .and_then(|()| self.file.sync_data())
        {
            // Nothing of the batch is acknowledged. Cut its bytes off now
            // (or, if that fails too, before the next write) so a later,
            // shorter batch can never leave some of them behind as leaves.
            self.dirty = true;
            let _ = self.cut_to_end();
            return Err(io_err("appending to", &self.path)(e));
        }
        for leaf in leaves {
            end += leaf.len() as u64 + 1;
            self.offsets.push(end);
        }
        if self.chunk == 0 {
            self.allocated = end;
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
        self.file
            .read_exact_at(&mut buf, start)
            .map_err(io_err("reading", &self.path))?;
        Ok(buf)
    }
}

impl FileStore {
    /// Reads every leaf in order, for rebuilding the tree or auditing (only
    /// up to the logical end: never the preallocated space).
    pub fn read_all(&self) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut bytes = vec![0u8; self.end() as usize];
        self.file
            .read_exact_at(&mut bytes, 0)
            .map_err(io_err("reading", &self.path))?;
        Ok(bytes
            .split(|&b| b == b'\n')
            .take(self.len() as usize)
            .map(<[u8]>::to_vec)
            .collect())
    }
}

impl Drop for FileStore {
    /// Cuts the bytes of a failed batch if that is still owed, and releases
    /// the blocks reserved past the end. Best effort: this crate has no logger, and a failure
    /// is harmless (the reservation is invisible to readers; the next open
    /// cuts a failed batch). Skipped when the file's size is neither the
    /// end this store wrote nor owed a cut (another writer, which is not
    /// supported, must not lose leaves to it).
    fn drop(&mut self) {
        let end = self.end();
        if self.dirty {
            let _ = self.file.set_len(end).and_then(|()| self.file.sync_all());
        }
        // Truncating to the size the file has frees the blocks reserved
        // past it (ext4, XFS).
        let ours = self.file.metadata().is_ok_and(|m| m.len() == end);
        if ours && self.allocated > end {
            let _ = self.file.set_len(end);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write as _;

    /// A small chunk, so a few leaves cross several chunk boundaries.
    const CHUNK: u64 = 4096;

    fn leaf(i: usize) -> Vec<u8> {
        format!(
            "{{\"receipt\":{{\"index\":{i},\"pad\":\"{}\"}}}}",
            "x".repeat(i % 97)
        )
        .into_bytes()
    }

    fn jsonl(leaves: &[Vec<u8>]) -> Vec<u8> {
        leaves
            .iter()
            .flat_map(|l| l.iter().copied().chain([b'\n']))
            .collect()
    }

    /// A store holding `n` leaves, "killed": its handle is leaked without
    /// the trim a clean drop does, as after SIGKILL or a crash. Returns the
    /// leaves and the logical end.
    fn killed_store(dir: &Path, n: usize) -> (Vec<Vec<u8>>, u64) {
        let (mut f, _) = FileStore::open_with_chunk(dir, CHUNK).unwrap();
        let leaves: Vec<Vec<u8>> = (0..n).map(leaf).collect();
        f.append_batch(&leaves).unwrap();
        let end = f.end();
        f.kill();
        (leaves, end)
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_second_writer_is_refused_and_cuts_nothing_while_the_first_holds_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LEAF_FILE);
        let (mut first, _) = FileStore::open_with_chunk(dir.path(), CHUNK).unwrap();
        first.append_batch(&[leaf(0), leaf(1)]).unwrap();
        let size = std::fs::metadata(&path).unwrap().len();
        assert_eq!(size, first.end(), "the reservation is past the size");
        let refused = FileStore::open_with_chunk(dir.path(), CHUNK).unwrap_err();
        assert!(matches!(refused, StoreError::Locked(_)), "{refused}");
        assert!(refused.to_string().contains("another process"), "{refused}");
        // The refused open read, cut and preallocated nothing: the live
        // writer's tail is intact and it goes on appending.
        assert_eq!(std::fs::metadata(&path).unwrap().len(), size);
        assert_eq!(first.append_batch(&[leaf(2)]).unwrap(), 2);
        drop(first);
        let (second, rec) = FileStore::open_with_chunk(dir.path(), CHUNK).unwrap();
        assert_eq!(second.read_all().unwrap(), [leaf(0), leaf(1), leaf(2)]);
        assert_eq!(rec, Recovery::default());
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_killed_writer_leaves_the_log_to_the_next_one() {
        let dir = tempfile::tempdir().unwrap();
        let (leaves, _) = killed_store(dir.path(), 3);
        let (store, _) = FileStore::open_with_chunk(dir.path(), CHUNK).unwrap();
        assert_eq!(store.read_all().unwrap(), leaves);
    }

    fn write_raw(dir: &Path, at: u64, bytes: &[u8]) {
        let raw = OpenOptions::new()
            .write(true)
            .open(dir.join(LEAF_FILE))
            .unwrap();
        raw.write_all_at(bytes, at).unwrap();
    }

    fn reopen_all(dir: &Path) -> (Vec<Vec<u8>>, Recovery) {
        let (f, rec) = FileStore::open_with_chunk(dir, CHUNK).unwrap();
        (f.read_all().unwrap(), rec)
    }

    #[test]
    fn a_stale_line_after_zeros_never_becomes_a_leaf() {
        let dir = tempfile::tempdir().unwrap();
        let (leaves, end) = killed_store(dir.path(), 3);
        // Pages of an unacknowledged batch reached the disk out of order:
        // zeros where its start was, then a complete line of it.
        let stale = b"{\"receipt\":{\"index\":9}}\n";
        write_raw(dir.path(), end + 100, stale);
        let (read, rec) = reopen_all(dir.path());
        assert_eq!(read, leaves);
        assert_eq!(rec.torn_bytes, 100 + stale.len() as u64);
        assert_eq!(rec.unused_bytes, 0, "the size ends with the stale line");
        // And it stays gone: later batches do not resurrect it.
        let (mut f, rec) = FileStore::open_with_chunk(dir.path(), CHUNK).unwrap();
        assert_eq!(rec, Recovery::default());
        assert_eq!(f.append_batch(&[b"four".to_vec()]).unwrap(), 3);
        drop(f);
        let mut want = jsonl(&leaves);
        want.extend_from_slice(b"four\n");
        assert_eq!(std::fs::read(dir.path().join(LEAF_FILE)).unwrap(), want);
    }

    #[test]
    fn damage_in_the_middle_of_a_log_is_refused_not_cut() {
        let dir = tempfile::tempdir().unwrap();
        let (mut f, _) = FileStore::open_with_chunk(dir.path(), 0).unwrap();
        // More leaves after the damage than one crashed batch can leave.
        let leaf = vec![b'x'; 1 << 20];
        f.append_batch(&[b"first".to_vec()]).unwrap();
        f.append_batch(&vec![leaf; 9]).unwrap();
        drop(f);
        write_raw(dir.path(), 2, b"\0");
        let err = FileStore::open_with_chunk(dir.path(), CHUNK).unwrap_err();
        assert!(
            matches!(
                err,
                StoreError::DamagedTail {
                    leaves: 0,
                    offset: 0,
                    ..
                }
            ),
            "{err}"
        );
        // Nothing was cut: the file still holds every byte.
        let len = std::fs::metadata(dir.path().join(LEAF_FILE)).unwrap().len();
        assert_eq!(len, 6 + 9 * ((1 << 20) + 1));
    }

    #[test]
    fn a_line_with_an_embedded_nul_is_not_a_leaf() {
        let dir = tempfile::tempdir().unwrap();
        let (leaves, end) = killed_store(dir.path(), 2);
        let garbage = b"{\"rec\0\0pt\":1}\nnext\n";
        write_raw(dir.path(), end, garbage);
        let (read, rec) = reopen_all(dir.path());
        assert_eq!(read, leaves);
        assert_eq!(rec.torn_bytes, garbage.len() as u64);
    }

    #[test]
    fn a_partial_line_before_zeros_is_torn_and_cut() {
        let dir = tempfile::tempdir().unwrap();
        let (leaves, end) = killed_store(dir.path(), 5);
        write_raw(dir.path(), end, b"{\"receipt\":{\"v\":1");
        let len = std::fs::metadata(dir.path().join(LEAF_FILE)).unwrap().len();
        let (read, rec) = reopen_all(dir.path());
        assert_eq!(read, leaves);
        assert_eq!(rec.torn_bytes, 17);
        assert_eq!(rec.torn_bytes + rec.unused_bytes, len - end);
    }

    /// Bytes of the file's data blocks, reserved or written.
    fn allocated_bytes(path: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt as _;
        std::fs::metadata(path).unwrap().blocks() * 512
    }

    /// Each line of the file as JSON, failing on a NUL byte or any line
    /// `jq` would refuse.
    fn parse_as_jq_would(path: &Path) -> Vec<serde_json::Value> {
        let bytes = std::fs::read(path).unwrap();
        assert!(!bytes.contains(&0), "a reader sees NUL bytes");
        assert!(bytes.is_empty() || bytes.ends_with(b"\n"), "a partial line");
        bytes
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| serde_json::from_slice(l).expect("every line is JSON"))
            .collect()
    }

    #[test]
    fn a_live_log_is_json_lines_at_every_moment_with_blocks_reserved_ahead() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LEAF_FILE);
        let (mut f, _) = FileStore::open_with_chunk(dir.path(), CHUNK).unwrap();
        assert!(parse_as_jq_would(&path).is_empty());
        let mut n = 0;
        for size in (1..6).cycle().take(25) {
            let batch: Vec<Vec<u8>> = (n..n + size).map(leaf).collect();
            f.append_batch(&batch).unwrap();
            n += size;
            assert_eq!(parse_as_jq_would(&path).len(), n, "while the writer runs");
            assert_eq!(std::fs::metadata(&path).unwrap().len(), f.end());
            #[cfg(target_os = "linux")]
            assert!(
                allocated_bytes(&path) >= f.allocated,
                "blocks reserved ahead"
            );
        }
        assert!(f.allocated > f.end());
        f.kill();
        assert_eq!(parse_as_jq_would(&path).len(), n, "after a kill");
    }

    #[test]
    fn a_zero_tail_from_a_power_loss_or_an_older_remit_is_unused_space_not_a_torn_leaf() {
        let dir = tempfile::tempdir().unwrap();
        let (leaves, end) = killed_store(dir.path(), 4);
        // A size ahead of the data (a power loss), or an earlier Remit's
        // preallocation that extended the size: zeros after the leaves.
        write_raw(dir.path(), end, &vec![0u8; 5000]);
        let len = std::fs::metadata(dir.path().join(LEAF_FILE)).unwrap().len();
        assert_eq!(len, end + 5000);
        let (read, rec) = reopen_all(dir.path());
        assert_eq!(read, leaves);
        assert_eq!(
            rec,
            Recovery {
                torn_bytes: 0,
                unused_bytes: len - end
            }
        );
    }

    #[test]
    fn a_failed_write_acknowledges_nothing_and_leaves_nothing_behind() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LEAF_FILE);
        let (mut f, _) = FileStore::open_with_chunk(dir.path(), CHUNK).unwrap();
        f.append_batch(&[b"one".to_vec()]).unwrap();
        // The failed batch got some bytes into the file before its error.
        write_raw(dir.path(), f.end(), b"stale-a\nstale-b\nstale-c\n");
        // Make the write fail for real: swap in a read-only handle.
        let writable = std::mem::replace(&mut f.file, File::open(&path).unwrap());
        assert!(matches!(
            f.append_batch(&[b"lost".to_vec()]),
            Err(StoreError::Io { .. })
        ));
        assert_eq!(f.len(), 1);
        assert!(
            f.dirty,
            "the cut failed too, so it is owed before the next write"
        );
        f.file = writable;
        // A shorter batch next must not leave the failed batch's lines behind it.
        assert_eq!(f.append_batch(&[b"two".to_vec()]).unwrap(), 1);
        f.kill();
        let (read, rec) = reopen_all(dir.path());
        assert_eq!(read, [b"one".to_vec(), b"two".to_vec()]);
        assert_eq!(rec.torn_bytes, 0);
    }

    #[test]
    fn a_preallocated_log_reopens_with_exactly_the_acknowledged_leaves() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LEAF_FILE);
        let mut all = Vec::new();
        let (mut f, _) = FileStore::open_with_chunk(dir.path(), CHUNK).unwrap();
        let mut i = 0;
        // Batches of 1..8 leaves, and one larger than a chunk, cross many
        // chunk boundaries.
        for size in (1..8).cycle().take(40).chain([70]) {
            let batch: Vec<Vec<u8>> = (i..i + size).map(leaf).collect();
            assert_eq!(f.append_batch(&batch).unwrap(), i as u64);
            all.extend(batch);
            i += size;
            assert_eq!(std::fs::metadata(&path).unwrap().len(), f.end());
            assert_eq!(f.allocated % CHUNK, 0, "reserved in whole chunks");
            assert!(f.allocated > f.end());
        }
        assert!(f.end() > 4 * CHUNK);
        assert_eq!(f.read(17).unwrap(), leaf(17));
        assert_eq!(f.read_all().unwrap(), all);
        f.kill();
        let (read, rec) = reopen_all(dir.path());
        assert_eq!(read, all);
        assert_eq!(rec.torn_bytes, 0);
    }

    #[test]
    fn dropping_the_store_leaves_plain_jsonl_and_releases_the_reservation() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LEAF_FILE);
        let leaves: Vec<Vec<u8>> = (0..60).map(leaf).collect();
        // A chunk of many blocks, so whole blocks lie past the last leaf.
        let (mut f, _) = FileStore::open_with_chunk(dir.path(), 16 * CHUNK).unwrap();
        for pair in leaves.chunks(2) {
            f.append_batch(pair).unwrap();
        }
        #[cfg(target_os = "linux")]
        assert!(allocated_bytes(&path) >= f.allocated);
        let reserved = f.allocated;
        drop(f);
        #[cfg(target_os = "linux")]
        assert!(allocated_bytes(&path) < reserved, "reservation released");
        let _ = reserved;
        let want: u64 = leaves.iter().map(|l| l.len() as u64 + 1).sum();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), want);
        assert_eq!(std::fs::read(&path).unwrap(), jsonl(&leaves));
    }

    #[test]
    fn without_preallocation_the_file_is_always_plain_jsonl() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(LEAF_FILE);
        let (mut f, _) = FileStore::open_with_chunk(dir.path(), 0).unwrap();
        f.append_batch(&[b"a".to_vec(), b"b".to_vec()]).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"a\nb\n");
        f.kill();
        let (read, rec) = reopen_all(dir.path());
        assert_eq!(read, [b"a".to_vec(), b"b".to_vec()]);
        assert_eq!(rec, Recovery::default());
    }

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
        assert_eq!(
            rec,
            Recovery {
                torn_bytes: 17,
                unused_bytes: 0
            }
        );
        assert_eq!(f.len(), 3);
        assert_eq!(f.read(2).unwrap(), b"three");
        assert_eq!(f.append_batch(&[b"four".to_vec()]).unwrap(), 3);
        assert_eq!(f.read_all().unwrap().len(), 4);
        assert!(matches!(
            f.read(4),
            Err(StoreError::NoSuchLeaf { index: 4, size: 4 })
        ));
        drop(f);
        assert_eq!(std::fs::read(&path).unwrap(), b"one\ntwo\nthree\nfour\n");
    }
}
