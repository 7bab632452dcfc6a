//! The file-backed receipt log (`<data>/log`) and the writer that
//! group-commits a ledger [`Log`] over any [`LeafStore`].

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use remit_ledger::{Event, FileStore, LeafStore, Log, LogDir, LogError, NoteSigner, ReceiptSigner};
use remit_token::{EcdsaP256Signer, Signer as _};

use super::group::{BatchWriter, GroupCommit, SEAL_INTERVAL};
use super::{load_note_key, ReceiptLog, ReceiptLogError, Submitted, LOG_DIR, NOTE_KEY_FILE};

/// A ledger [`Log`] shared between its writer thread and readers, with its
/// size readable without the lock.
#[derive(Debug)]
pub struct SharedLog<S> {
    log: Mutex<Log<S>>,
    size: AtomicU64,
}

impl<S: LeafStore> SharedLog<S> {
    /// Wraps an opened log.
    pub fn new(log: Log<S>) -> Arc<Self> {
        let size = log.size();
        Arc::new(Self {
            log: Mutex::new(log),
            size: AtomicU64::new(size),
        })
    }

    /// Number of acknowledged (durable) receipts.
    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    /// Runs `f` over the log under its lock.
    pub fn with<T>(&self, f: impl FnOnce(&Log<S>) -> T) -> Result<T, ReceiptLogError> {
        let log = self.log.lock().map_err(|_| ReceiptLogError::Poisoned)?;
        Ok(f(&log))
    }
}

/// Where a [`LedgerWriter`] stores the checkpoints it signs.
pub type CheckpointSink = Box<dyn FnMut(&str) -> Result<(), ReceiptLogError> + Send>;

/// The write side of a ledger [`Log`]: signs a batch outside the log's
/// lock, commits it with one store sync, and seals checkpoints when due.
pub struct LedgerWriter<S> {
    shared: Arc<SharedLog<S>>,
    signer: Arc<EcdsaP256Signer>,
    note: Arc<NoteSigner>,
    sink: CheckpointSink,
    /// Size and text of the last stored checkpoint.
    sealed: (u64, String),
    sealed_at: Instant,
}

impl<S> std::fmt::Debug for LedgerWriter<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerWriter")
            .field("sealed", &self.sealed.0)
            .finish_non_exhaustive()
    }
}

impl<S: LeafStore> LedgerWriter<S> {
    /// A writer for `shared`, whose last stored checkpoint is `sealed`
    /// (size and text); new checkpoints go to `sink`.
    pub fn new(
        shared: Arc<SharedLog<S>>,
        signer: Arc<EcdsaP256Signer>,
        note: Arc<NoteSigner>,
        sealed: (u64, String),
        sink: CheckpointSink,
    ) -> Self {
        Self {
            shared,
            signer,
            note,
            sink,
            sealed,
            sealed_at: Instant::now(),
        }
    }
}

impl<S: LeafStore + Send + 'static> BatchWriter for LedgerWriter<S> {
    fn write(&mut self, events: Vec<Event>) -> Result<u64, ReceiptLogError> {
        // INVARIANT: only this writer changes the log, so a batch sequenced
        // under one lock is still current when committed under the next.
        let sequenced = self.shared.with(|log| log.sequence(events))??;
        let signer = ReceiptSigner::new(self.signer.as_ref()).map_err(LogError::from)?;
        let leaves = sequenced
            .payloads()
            .iter()
            .map(|p| signer.sign_payload(p))
            .collect::<Result<Vec<_>, _>>()
            .map_err(LogError::from)?;
        let start = sequenced.start();
        let mut log = self
            .shared
            .log
            .lock()
            .map_err(|_| ReceiptLogError::Poisoned)?;
        log.commit(sequenced, leaves)?;
        self.shared.size.store(log.size(), Ordering::Release);
        Ok(start)
    }

    fn seal(&mut self, force: bool) -> Result<String, ReceiptLogError> {
        let size = self.shared.size();
        let due = force || self.sealed_at.elapsed() >= SEAL_INTERVAL;
        if size > self.sealed.0 && due {
            let text = self
                .shared
                .with(|log| log.signed_checkpoint(&self.note))??;
            (self.sink)(&text)?;
            self.sealed = (size, text);
            self.sealed_at = Instant::now();
        }
        Ok(self.sealed.1.clone())
    }
}

/// The file-backed log in `<data>/log`: `receipts.jsonl` group-committed
/// (one `fdatasync` per batch of concurrent appends, see
/// [`super::group`]) and the signed `checkpoint` rewritten when the
/// writer seals (on demand, when idle, at least every
/// [`SEAL_INTERVAL`](super::group::SEAL_INTERVAL) while busy, and at
/// shutdown). Opening it seals whatever a crash left unsealed.
#[derive(Debug)]
pub struct FileReceiptLog {
    // INVARIANT: declared first, so dropping the log stops (and joins) the
    // writer, which seals, before anything else goes.
    group: GroupCommit,
    shared: Arc<SharedLog<FileStore>>,
    dir: LogDir,
    signer: Arc<EcdsaP256Signer>,
    note: Arc<NoteSigner>,
}

impl FileReceiptLog {
    /// Opens (creating on first start) the log in `<data_dir>/log`, with
    /// the note key in `<data_dir>/note.key` (generated once, 0600, named
    /// `origin`; an existing key keeps its own name).
    pub fn open(
        data_dir: &Path,
        signer: EcdsaP256Signer,
        origin: &str,
    ) -> Result<Self, ReceiptLogError> {
        let key_path = data_dir.join(NOTE_KEY_FILE);
        let note = load_note_key(&key_path, origin)?;
        let dir = LogDir::new(data_dir.join(LOG_DIR));
        if !dir.path().join(remit_ledger::dir::NOTE_PUB_FILE).exists() {
            dir.init(&note)?;
        } else if dir.note_verifier()?.to_vkey() != note.verifier().to_vkey() {
            return Err(ReceiptLogError::NoteKeyMismatch {
                log: dir.path().to_owned(),
                key: key_path,
            });
        }
        let (store, recovery) = FileStore::open(dir.path()).map_err(LogError::from)?;
        if recovery.torn_bytes > 0 {
            tracing::warn!(
                torn_bytes = recovery.torn_bytes,
                "cut a torn last receipt left by a crash (it was never acknowledged)"
            );
        }
        let leaves = store.read_all().map_err(LogError::from)?;
        let log = Log::open(store, leaves, note.name())?;
        // A crash between a batch's sync and its seal leaves the checkpoint
        // behind; bring it up to date now.
        let sealed = (log.size(), log.signed_checkpoint(&note)?);
        dir.write_checkpoint(&sealed.1)?;
        let shared = SharedLog::new(log);
        let (signer, note) = (Arc::new(signer), Arc::new(note));
        let sink_dir = dir.clone();
        let writer = LedgerWriter::new(
            Arc::clone(&shared),
            Arc::clone(&signer),
            Arc::clone(&note),
            sealed,
            Box::new(move |text: &str| Ok(sink_dir.write_checkpoint(text)?)),
        );
        Ok(Self {
            group: GroupCommit::start("remit-receipts", writer)?,
            shared,
            dir,
            signer,
            note,
        })
    }

    /// The log directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl ReceiptLog for FileReceiptLog {
    fn append(&self, event: Event) -> Result<u64, ReceiptLogError> {
        self.group.append_blocking(event)
    }

    fn submit(&self, event: Event) -> Result<Submitted, ReceiptLogError> {
        Ok(Submitted::Queued(self.group.submit(event)?))
    }

    fn leaves(&self, from: u64, limit: u64) -> Result<Vec<Vec<u8>>, ReceiptLogError> {
        self.shared.with(|log| {
            let end = log.size().min(from.saturating_add(limit));
            (from..end)
                .map(|i| log.store().read(i).map_err(|e| LogError::from(e).into()))
                .collect()
        })?
    }

    fn latest_checkpoint(&self) -> Result<String, ReceiptLogError> {
        self.group.seal()
    }

    fn size(&self) -> u64 {
        self.shared.size()
    }

    fn receipt_jwks(&self) -> serde_json::Value {
        let key = self
            .signer
            .public_jwk()
            .clone()
            .published(self.signer.key_id());
        serde_json::json!({ "keys": [key] })
    }

    fn note_verifier_key(&self) -> String {
        self.note.verifier().to_vkey()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use remit_ledger::{Kind, MemoryStore, StoreError};

    use super::*;

    /// A store that reports each batch it is given and holds it until the
    /// test says whether its sync succeeds: the seam between "written" and
    /// "durable" that a real disk hides.
    struct GatedStore {
        inner: MemoryStore,
        entered: mpsc::Sender<usize>,
        release: mpsc::Receiver<bool>,
    }

    impl LeafStore for GatedStore {
        fn len(&self) -> u64 {
            self.inner.len()
        }

        fn append_batch(&mut self, leaves: &[Vec<u8>]) -> Result<u64, StoreError> {
            self.entered.send(leaves.len()).unwrap();
            if self.release.recv().unwrap() {
                self.inner.append_batch(leaves)
            } else {
                Err(StoreError::Io {
                    action: "syncing",
                    path: "gated".into(),
                    source: std::io::Error::other("injected sync failure"),
                })
            }
        }

        fn read(&self, index: u64) -> Result<Vec<u8>, StoreError> {
            self.inner.read(index)
        }
    }

    fn event(n: u64) -> Event {
        let mut e = Event::new(Kind::Allow, n);
        e.tool = Some(format!("t{n}"));
        e
    }

    /// A group commit over a gated store, the log it writes and the
    /// channels that drive it (batch sizes out, sync outcomes in).
    type Gated = (
        GroupCommit,
        Arc<SharedLog<GatedStore>>,
        mpsc::Receiver<usize>,
        mpsc::Sender<bool>,
    );

    /// A group commit over a gated store, with the channels that drive it
    /// and the checkpoints it stored.
    fn gated() -> Gated {
        gated_holding(super::super::group::HOLD_MAX)
    }

    /// [`gated`], holding a batch back for company at most `hold`.
    fn gated_holding(hold: std::time::Duration) -> Gated {
        let (entered, entered_rx) = mpsc::channel();
        let (release_tx, release) = mpsc::channel();
        let store = GatedStore {
            inner: MemoryStore::new(),
            entered,
            release,
        };
        let note = Arc::new(NoteSigner::generate("o").unwrap());
        let log = Log::new(store, "o").unwrap();
        let empty = log.signed_checkpoint(&note).unwrap();
        let shared = SharedLog::new(log);
        let writer = LedgerWriter::new(
            Arc::clone(&shared),
            Arc::new(EcdsaP256Signer::generate().unwrap()),
            note,
            (0, empty),
            Box::new(|_: &str| Ok(())),
        );
        let group = GroupCommit::start_holding("test-receipts", writer, hold).unwrap();
        (group, shared, entered_rx, release_tx)
    }

    #[test]
    fn a_failed_batch_fails_every_waiter_and_acknowledges_none_of_it() {
        let (group, shared, entered, release) = gated();
        let mut first = group.submit(event(0)).unwrap();
        assert_eq!(entered.recv().unwrap(), 1);
        // Five more arrive while the first batch is being written.
        let mut queued: Vec<_> = (1..6).map(|n| group.submit(event(n)).unwrap()).collect();
        // Not durable yet, so no index yet.
        assert!(!first.is_answered());
        release.send(true).unwrap();
        assert_eq!(first.wait_blocking().unwrap(), 0);
        // The five share one batch, whose sync fails: every one is refused.
        assert_eq!(entered.recv().unwrap(), 5);
        for pending in &mut queued {
            assert!(!pending.is_answered(), "answered before the sync");
        }
        release.send(false).unwrap();
        for pending in queued {
            assert!(matches!(
                pending.wait_blocking(),
                Err(ReceiptLogError::Batch(_))
            ));
        }
        assert_eq!(shared.size(), 1);
        // The log goes on from the last acknowledged receipt, without a gap.
        let next = group.submit(event(6)).unwrap();
        assert_eq!(entered.recv().unwrap(), 1);
        release.send(true).unwrap();
        assert_eq!(next.wait_blocking().unwrap(), 1);
        let link = shared
            .with(|log| log.read(1).unwrap().receipt.prev.unwrap().hash)
            .unwrap();
        let first_hash = shared
            .with(|log| log.read(0).unwrap().receipt_hash())
            .unwrap();
        assert_eq!(link, first_hash);
        drop(release);
        drop(group);
    }

    #[test]
    fn a_receipt_index_is_returned_only_after_its_batch_is_durable() {
        let (group, shared, entered, release) = gated();
        let mut pending = group.submit(event(0)).unwrap();
        assert_eq!(entered.recv().unwrap(), 1);
        // The store holds the batch (written, not yet synced): no answer,
        // and the log does not count it.
        assert!(!pending.is_answered());
        assert_eq!(shared.size(), 0);
        release.send(true).unwrap();
        assert_eq!(pending.wait_blocking().unwrap(), 0);
        assert_eq!(shared.size(), 1);
    }

    /// [`gated_holding`] for up to 5 s, with callers that have been needing
    /// their receipts a minute after queueing them: a batch is held back
    /// until it is wanted or the log closes.
    fn gated_long_gap() -> Gated {
        let gated = gated_holding(std::time::Duration::from_secs(5));
        gated.0.assume_gap(std::time::Duration::from_secs(60));
        gated
    }

    #[test]
    fn a_batch_nobody_waits_on_is_held_for_company_and_written_at_once_when_wanted() {
        use std::time::Duration;
        let (group, shared, entered, release) = gated_long_gap();
        let first = group.submit(event(0)).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        // Held back: nothing written yet, so the next receipt shares the write.
        assert!(
            entered.try_recv().is_err(),
            "written without waiting for company"
        );
        let second = group.submit(event(1)).unwrap();
        // A caller waits on one: the batch is written now, not after the hold.
        let waiter = std::thread::spawn(move || second.wait_blocking());
        assert_eq!(
            entered.recv_timeout(Duration::from_secs(2)).unwrap(),
            2,
            "one write for both receipts, as soon as one was wanted"
        );
        release.send(true).unwrap();
        assert_eq!(waiter.join().unwrap().unwrap(), 1);
        assert_eq!(first.wait_blocking().unwrap(), 0);
        assert_eq!(shared.size(), 2);
    }

    #[test]
    fn closing_the_log_writes_what_was_queued_even_while_a_waiter_is_alive() {
        use std::time::Duration;
        let (group, shared, entered, release) = gated_long_gap();
        let pending = group.submit(event(0)).unwrap();
        release.send(true).unwrap();
        // The drop must not wait for `pending` to go (it holds a sender of
        // the writer's queue) nor for the hold: it writes and stops.
        let closing = std::thread::spawn(move || drop(group));
        assert_eq!(entered.recv_timeout(Duration::from_secs(2)).unwrap(), 1);
        closing.join().unwrap();
        assert_eq!(pending.wait_blocking().unwrap(), 0);
        assert_eq!(shared.size(), 1);
    }
}
