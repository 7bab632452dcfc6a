//! Group commit: many concurrent appends, one durable write.
//!
//! Every receipt log in this crate appends through a [`GroupCommit`]: one
//! writer thread owns the log's write side; callers queue their event and
//! wait (asynchronously, no thread parked per caller) for its index. The
//! writer takes everything queued since its last write, sequences, signs
//! and writes it as one batch with one sync, and only then answers each
//! waiter. While one batch syncs, the next one gathers, so under load a
//! sync is shared by every call that arrived during the previous one.
//!
//! A caller usually needs its index later than it queues the event (the
//! gateway queues a call's receipt, then forwards the call). The writer
//! learns that gap ([`Pending::wait`] reports it) and the time a write
//! takes, and holds a batch back while the receipts in it will not be
//! needed before a write started later would end: more calls share one
//! sync and the log costs less CPU under load. A batch is written at once
//! when a caller waits on a receipt in it, when it is full ([`GATHER_MAX`]),
//! or after [`HOLD_MAX`]; with one call at a time (the gap no longer than
//! twice a write) nothing is held back.
//!
//! Guarantees:
//! - an index is handed out only after [`BatchWriter::write`] returned,
//!   which returns only after the batch is durable (its store synced);
//! - a failed batch fails every waiter in it; nothing of it is
//!   acknowledged, and the log stays usable for the next batch;
//! - checkpoints (signed tree heads) are not on the append path: the
//!   writer seals when asked ([`GroupCommit::seal`]), when it has been idle
//!   or [`SEAL_INTERVAL`] has passed since the last seal, and on shutdown.
//!   A receipt may therefore be durable but not yet covered by a
//!   checkpoint ("unsealed" to `remit audit verify`); reopening a log seals
//!   whatever a crash left unsealed.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use remit_ledger::Event;
use tokio::sync::oneshot;

use super::ReceiptLogError;

/// Longest a durable receipt waits for a checkpoint while the log is busy.
pub const SEAL_INTERVAL: Duration = Duration::from_millis(1000);
/// Most receipts one batch holds (bounds one write's size and latency).
pub const MAX_BATCH: usize = 1024;
/// A batch held back for company is written once it holds this many.
pub const GATHER_MAX: usize = 64;
/// Longest a batch is held back for company when nobody waits on it.
pub const HOLD_MAX: Duration = Duration::from_millis(2);

/// The write side of a receipt log, owned by the writer thread.
pub trait BatchWriter: Send + 'static {
    /// Sequences, signs and durably writes `events` in order as one batch;
    /// returns the index of the first. Returns only once the batch is
    /// durable; on error none of it is acknowledged.
    fn write(&mut self, events: Vec<Event>) -> Result<u64, ReceiptLogError>;

    /// Signs and stores a checkpoint covering every written receipt when
    /// `force` or when one is due; returns the latest checkpoint text.
    fn seal(&mut self, force: bool) -> Result<String, ReceiptLogError>;
}

type Answer<T> = oneshot::Sender<Result<T, ReceiptLogError>>;

enum Request {
    Append(Box<Event>, Instant, Answer<u64>),
    /// A caller waits on a receipt not yet durable: write what is queued.
    Wanted,
    Seal(Answer<String>),
    /// The log is closing: write what was queued before, seal, and stop
    /// (a [`Pending`] still holds a sender, so the queue never disconnects
    /// while one is alive).
    Stop,
}

/// How long after queueing a receipt callers come to need it: a moving
/// average in microseconds, written by waiters and read by the writer.
#[derive(Debug, Default)]
struct Demand {
    gap_us: AtomicU64,
}

/// `d` in whole microseconds, saturating.
fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

impl Demand {
    fn observe(&self, gap: Duration) {
        let gap = micros(gap);
        let old = self.gap_us.load(Ordering::Relaxed);
        // An average over about the last eight waits; a lost update between
        // two racing waiters only makes it a little older.
        let new = old - old / 8 + gap / 8;
        self.gap_us.store(new, Ordering::Relaxed);
    }

    fn gap(&self) -> Duration {
        Duration::from_micros(self.gap_us.load(Ordering::Relaxed))
    }
}

/// A queued append: [`Pending::wait`] resolves to the receipt's index once
/// it is durable.
#[derive(Debug)]
pub struct Pending {
    answer: oneshot::Receiver<Result<u64, ReceiptLogError>>,
    queued: Instant,
    demand: Arc<Demand>,
    queue: mpsc::Sender<Request>,
}

fn dropped() -> ReceiptLogError {
    ReceiptLogError::Task("the receipt writer dropped this receipt".into())
}

impl Pending {
    /// Tells the writer this receipt is needed now, unless it is durable
    /// already; `Some` is the answer when it is.
    fn want(&mut self) -> Option<Result<u64, ReceiptLogError>> {
        self.demand.observe(self.queued.elapsed());
        match self.answer.try_recv() {
            Ok(answer) => Some(answer),
            Err(oneshot::error::TryRecvError::Closed) => Some(Err(dropped())),
            Err(oneshot::error::TryRecvError::Empty) => {
                // A stopped writer drops the answer, which the wait reports.
                let _ = self.queue.send(Request::Wanted);
                None
            }
        }
    }

    /// Waits, without holding a thread, until the receipt is durable and
    /// returns its index.
    pub async fn wait(mut self) -> Result<u64, ReceiptLogError> {
        if let Some(answer) = self.want() {
            return answer;
        }
        self.answer.await.map_err(|_| dropped())?
    }

    /// Blocks this thread until the receipt is durable. Not for async code.
    pub fn wait_blocking(mut self) -> Result<u64, ReceiptLogError> {
        if let Some(answer) = self.want() {
            return answer;
        }
        self.answer.blocking_recv().map_err(|_| dropped())?
    }

    /// Whether the answer has come, without waiting or asking for it.
    #[cfg(test)]
    pub(crate) fn is_answered(&mut self) -> bool {
        !matches!(
            self.answer.try_recv(),
            Err(oneshot::error::TryRecvError::Empty)
        )
    }
}

/// The queue in front of a [`BatchWriter`] and its writer thread. Dropping
/// it stops the thread after the queue drains and a final seal.
#[derive(Debug)]
pub struct GroupCommit {
    queue: Option<mpsc::Sender<Request>>,
    demand: Arc<Demand>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Request::Append(..) => "Append",
            Request::Wanted => "Wanted",
            Request::Seal(_) => "Seal",
            Request::Stop => "Stop",
        })
    }
}

fn stopped() -> ReceiptLogError {
    ReceiptLogError::Task("the receipt writer stopped; restart the server".into())
}

impl GroupCommit {
    /// Starts the writer thread over `writer`.
    pub fn start(name: &str, writer: impl BatchWriter) -> Result<Self, ReceiptLogError> {
        Self::start_holding(name, writer, HOLD_MAX)
    }

    /// [`Self::start`], holding a batch back for company at most `hold`.
    pub(crate) fn start_holding(
        name: &str,
        writer: impl BatchWriter,
        hold: Duration,
    ) -> Result<Self, ReceiptLogError> {
        let (queue, requests) = mpsc::channel();
        let demand = Arc::new(Demand::default());
        let seen = Arc::clone(&demand);
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || run(writer, &requests, &seen, hold))
            .map_err(|e| ReceiptLogError::Task(format!("starting the receipt writer: {e}")))?;
        Ok(Self {
            queue: Some(queue),
            demand,
            thread: Some(thread),
        })
    }

    fn send(&self, request: Request) -> Result<(), ReceiptLogError> {
        self.queue
            .as_ref()
            .ok_or_else(stopped)?
            .send(request)
            .map_err(|_| stopped())
    }

    /// Queues `event`; the answer comes once its batch is durable.
    pub fn submit(&self, event: Event) -> Result<Pending, ReceiptLogError> {
        let queue = self.queue.as_ref().ok_or_else(stopped)?;
        let (answer, pending) = oneshot::channel();
        let queued = Instant::now();
        queue
            .send(Request::Append(Box::new(event), queued, answer))
            .map_err(|_| stopped())?;
        Ok(Pending {
            answer: pending,
            queued,
            demand: Arc::clone(&self.demand),
            queue: queue.clone(),
        })
    }

    /// Sets what callers are taken to need: their receipts `gap` after
    /// queueing them.
    #[cfg(test)]
    pub(crate) fn assume_gap(&self, gap: Duration) {
        self.demand.gap_us.store(micros(gap), Ordering::Relaxed);
    }

    /// Queues `event` and blocks this thread until it is durable. Not for
    /// async code (use [`Self::submit`] and await it).
    pub fn append_blocking(&self, event: Event) -> Result<u64, ReceiptLogError> {
        self.submit(event)?.wait_blocking()
    }

    /// Seals every receipt acknowledged so far and returns the checkpoint.
    /// Blocks this thread until the writer has done so.
    pub fn seal(&self) -> Result<String, ReceiptLogError> {
        let (answer, sealed) = oneshot::channel();
        self.send(Request::Seal(answer))?;
        sealed.blocking_recv().map_err(|_| stopped())?
    }
}

impl Drop for GroupCommit {
    fn drop(&mut self) {
        if let Some(queue) = self.queue.take() {
            // A writer that already stopped has nothing left to do.
            let _ = queue.send(Request::Stop);
        }
        if let Some(thread) = self.thread.take() {
            // A writer that panicked has already failed its waiters.
            let _ = thread.join();
        }
    }
}

/// What the writer collected for its next write.
#[derive(Default)]
struct Batch {
    events: Vec<Event>,
    waiters: Vec<Answer<u64>>,
    seals: Vec<Answer<String>>,
    /// When the oldest event in it was queued.
    oldest: Option<Instant>,
    /// A caller waits on a receipt not yet durable.
    wanted: bool,
    /// The log is closing after this batch.
    stop: bool,
}

impl Batch {
    fn take(&mut self, request: Request) {
        match request {
            Request::Append(event, queued, answer) => {
                self.events.push(*event);
                self.waiters.push(answer);
                self.oldest.get_or_insert(queued);
            }
            Request::Wanted => self.wanted = true,
            Request::Seal(answer) => self.seals.push(answer),
            Request::Stop => self.stop = true,
        }
    }

    /// Takes what is queued now, up to [`MAX_BATCH`] events.
    fn drain(&mut self, requests: &mpsc::Receiver<Request>) {
        while self.waiters.len() < MAX_BATCH {
            // Empty or disconnected: the batch is what was queued.
            match requests.try_recv() {
                Ok(request) => self.take(request),
                Err(_) => break,
            }
        }
    }

    /// Whether to write now rather than wait for more company.
    fn due(&self) -> bool {
        self.wanted || self.stop || !self.seals.is_empty() || self.events.len() >= GATHER_MAX
    }

    /// Holds the batch back while its receipts will not be needed before
    /// a later write would end: until half the usual gap between queueing
    /// and waiting, less one write, has passed since the oldest was queued
    /// (at most `hold`), or until it is [`Self::due`].
    fn gather(
        &mut self,
        requests: &mpsc::Receiver<Request>,
        gap: Duration,
        write: Duration,
        hold: Duration,
    ) {
        let Some(oldest) = self.oldest else { return };
        let until = oldest + (gap / 2).saturating_sub(write).min(hold);
        while !self.due() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            match requests.recv_timeout(left) {
                Ok(request) => {
                    self.take(request);
                    self.drain(requests);
                }
                // Timed out, or the log is closing: write what there is.
                Err(_) => return,
            }
        }
    }
}

fn run(
    mut writer: impl BatchWriter,
    requests: &mpsc::Receiver<Request>,
    demand: &Demand,
    hold: Duration,
) {
    let mut idle_seal_due = false;
    // How long a write takes (a moving average over about eight writes).
    let mut write_time = Duration::ZERO;
    loop {
        let timeout = if idle_seal_due {
            // Seal soon after the log goes quiet, not on every batch.
            Duration::from_millis(5)
        } else {
            SEAL_INTERVAL
        };
        let first = match requests.recv_timeout(timeout) {
            Ok(request) => request,
            Err(RecvTimeoutError::Timeout) => {
                if let Err(error) = writer.seal(idle_seal_due) {
                    tracing::error!(%error, "sealing the receipt log failed");
                }
                idle_seal_due = false;
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut batch = Batch::default();
        batch.take(first);
        batch.drain(requests);
        batch.gather(requests, demand.gap(), write_time, hold);
        let Batch {
            events,
            waiters,
            seals,
            stop,
            ..
        } = batch;
        if !events.is_empty() {
            let size = events.len();
            let started = Instant::now();
            let written = writer.write(events);
            write_time = write_time - write_time / 8 + started.elapsed() / 8;
            if written.is_ok() {
                crate::metrics::receipt_batch(size);
            }
            for (offset, waiter) in waiters.into_iter().enumerate() {
                let answer = match &written {
                    Ok(start) => Ok(start + offset as u64),
                    Err(e) => Err(ReceiptLogError::Batch(e.to_string())),
                };
                // A waiter that gave up is not an error for the others.
                let _ = waiter.send(answer);
            }
            idle_seal_due = true;
        }
        if !seals.is_empty() {
            let sealed = writer.seal(true);
            for waiter in seals {
                let _ = waiter.send(match &sealed {
                    Ok(text) => Ok(text.clone()),
                    Err(e) => Err(ReceiptLogError::Batch(e.to_string())),
                });
            }
            idle_seal_due = false;
        } else if let Err(error) = writer.seal(false) {
            tracing::error!(%error, "sealing the receipt log failed");
        }
        if stop {
            break;
        }
    }
    if let Err(error) = writer.seal(true) {
        tracing::error!(%error, "sealing the receipt log at shutdown failed");
    }
}
