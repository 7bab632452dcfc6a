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

use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::Duration;

use remit_ledger::Event;
use tokio::sync::oneshot;

use super::ReceiptLogError;

/// Longest a durable receipt waits for a checkpoint while the log is busy.
pub const SEAL_INTERVAL: Duration = Duration::from_millis(1000);
/// Most receipts one batch holds (bounds one write's size and latency).
pub const MAX_BATCH: usize = 1024;

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
    Append(Box<Event>, Answer<u64>),
    Seal(Answer<String>),
}

/// A queued append: resolves to the receipt's index once it is durable.
pub type Pending = oneshot::Receiver<Result<u64, ReceiptLogError>>;

/// The queue in front of a [`BatchWriter`] and its writer thread. Dropping
/// it stops the thread after the queue drains and a final seal.
#[derive(Debug)]
pub struct GroupCommit {
    queue: Option<mpsc::Sender<Request>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Request::Append(..) => "Append",
            Request::Seal(_) => "Seal",
        })
    }
}

fn stopped() -> ReceiptLogError {
    ReceiptLogError::Task("the receipt writer stopped; restart the server".into())
}

impl GroupCommit {
    /// Starts the writer thread over `writer`.
    pub fn start(name: &str, writer: impl BatchWriter) -> Result<Self, ReceiptLogError> {
        let (queue, requests) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || run(writer, &requests))
            .map_err(|e| ReceiptLogError::Task(format!("starting the receipt writer: {e}")))?;
        Ok(Self {
            queue: Some(queue),
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
        let (answer, pending) = oneshot::channel();
        self.send(Request::Append(Box::new(event), answer))?;
        Ok(pending)
    }

    /// Queues `event` and blocks this thread until it is durable. Not for
    /// async code (use [`Self::submit`] and await it).
    pub fn append_blocking(&self, event: Event) -> Result<u64, ReceiptLogError> {
        self.submit(event)?.blocking_recv().map_err(|_| stopped())?
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
        drop(self.queue.take());
        if let Some(thread) = self.thread.take() {
            // A writer that panicked has already failed its waiters.
            let _ = thread.join();
        }
    }
}

fn run(mut writer: impl BatchWriter, requests: &mpsc::Receiver<Request>) {
    let mut idle_seal_due = false;
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
        let (mut events, mut waiters, mut seals) = (Vec::new(), Vec::new(), Vec::new());
        let mut next = Some(first);
        while let Some(request) = next.take() {
            match request {
                Request::Append(event, answer) => {
                    events.push(*event);
                    waiters.push(answer);
                }
                Request::Seal(answer) => seals.push(answer),
            }
            if waiters.len() < MAX_BATCH {
                // Empty or disconnected: the batch is what was queued.
                next = requests.try_recv().ok();
            }
        }
        if !events.is_empty() {
            let written = writer.write(events);
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
    }
    if let Err(error) = writer.seal(true) {
        tracing::error!(%error, "sealing the receipt log at shutdown failed");
    }
}
