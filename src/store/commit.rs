//! Group commit: one flusher thread makes many writers' batches durable with one flush.
//!
//! sled 0.34 deadlocks with several concurrent `flush_async` calls (sled issues 1308, 1241,
//! 1357), and a flush per write burns a third of the CPU on thread hand-offs. So writers
//! register a waiter after applying their batch, and a single OS thread repeatedly takes every
//! waiter, lingers briefly so that more writers join the batch, calls the blocking `flush()`,
//! then `fdatasync`s the log file, since sled's flush ends in `sync_file_range`, which does not
//! reach the disk's write cache (sled issue 1452). Only then are the waiters answered.

use std::fs::File;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::oneshot;

use super::StoreError;

type Waiter = oneshot::Sender<Result<(), StoreError>>;

#[derive(Default)]
struct Queue {
    waiters: Vec<Waiter>,
    stopping: bool,
}

pub(super) struct GroupCommit {
    queue: Mutex<Queue>,
    wake: Condvar,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Flushes done, and writers they covered: their ratio is the mean group size.
    pub(super) flushes: AtomicU64,
    pub(super) flushed_waiters: AtomicU64,
}

/// Resolves once every write applied before it was issued is on disk.
pub type Durable = oneshot::Receiver<Result<(), StoreError>>;

/// What the flusher makes durable: the sled database and the log file to fsync.
pub(super) trait Flush: Send + Sync + 'static {
    fn flush(&self) -> Result<(), StoreError>;
    /// While writes fail, tries a small write and flush so health recovers without traffic.
    fn probe(&self);
}

/// The group size from which the flusher lingers before the next flush.
const LINGER_FROM_GROUP: usize = 4;

/// How often a degraded store is probed.
const PROBE_EVERY: Duration = Duration::from_secs(1);

pub(super) struct SledFlush {
    pub db: sled::Db,
    /// sled's log file (`<dir>/db`), opened separately so we can fsync it.
    pub log: File,
    pub faults: Arc<super::Faults>,
}

impl SledFlush {
    fn flush_once(&self) -> Result<(), StoreError> {
        self.faults.check_flush()?;
        self.db.flush()?;
        self.log
            .sync_data()
            .map_err(|e| StoreError::Io(e.to_string()))?;
        Ok(())
    }
}

impl Flush for SledFlush {
    fn flush(&self) -> Result<(), StoreError> {
        self.faults.record(self.flush_once())
    }

    fn probe(&self) {
        if !self.faults.is_degraded() {
            return;
        }
        let result = self
            .faults
            .check()
            .and_then(|()| {
                self.db
                    .insert(b"m:probe", &[1u8])
                    .map(|_| ())
                    .map_err(StoreError::from)
            })
            .and_then(|()| self.flush_once());
        if self.faults.record(result).is_ok() {
            tracing::info!("The store accepts writes again.");
        }
    }
}

impl GroupCommit {
    pub(super) fn start(
        flush: impl Flush,
        linger: Duration,
    ) -> Result<Arc<GroupCommit>, StoreError> {
        let gc = Arc::new(GroupCommit {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            thread: Mutex::new(None),
            flushes: AtomicU64::new(0),
            flushed_waiters: AtomicU64::new(0),
        });
        let worker = Arc::clone(&gc);
        let handle = std::thread::Builder::new()
            .name("pb-group-commit".into())
            .spawn(move || worker.run(flush, linger))
            .map_err(|e| StoreError::Io(format!("cannot start the group-commit thread: {e}")))?;
        if let Ok(mut slot) = gc.thread.lock() {
            *slot = Some(handle);
        }
        Ok(gc)
    }

    /// Registers a waiter for the next flush. Call only after the write is applied.
    pub(super) fn durable(&self) -> Durable {
        let (tx, rx) = oneshot::channel();
        match self.queue.lock() {
            Ok(mut q) if !q.stopping => {
                let first = q.waiters.is_empty();
                q.waiters.push(tx);
                if first {
                    self.wake.notify_one();
                }
            }
            _ => {
                let _ = tx.send(Err(StoreError::Closed));
            }
        }
        rx
    }

    fn run(&self, flush: impl Flush, linger: Duration) {
        // Linger only under load: when the last group had company, waiting lets the next one
        // grow; when writers come one at a time, waiting would only add latency.
        let mut last_group = 0usize;
        loop {
            let batch = {
                let Ok(mut q) = self.queue.lock() else { return };
                while q.waiters.is_empty() && !q.stopping {
                    q = match self.wake.wait_timeout(q, PROBE_EVERY) {
                        Ok((q, timeout)) => {
                            if timeout.timed_out() && q.waiters.is_empty() {
                                drop(q);
                                flush.probe();
                                match self.queue.lock() {
                                    Ok(q) => q,
                                    Err(_) => return,
                                }
                            } else {
                                q
                            }
                        }
                        Err(_) => return,
                    };
                }
                if q.waiters.is_empty() && q.stopping {
                    drop(q);
                    // A last flush for writes nobody waited for.
                    if let Err(e) = flush.flush() {
                        tracing::error!(error = %e, "The final store flush failed.");
                    }
                    return;
                }
                if !linger.is_zero() && !q.stopping && last_group >= LINGER_FROM_GROUP {
                    drop(q);
                    std::thread::sleep(linger);
                    q = match self.queue.lock() {
                        Ok(q) => q,
                        Err(_) => return,
                    };
                }
                std::mem::take(&mut q.waiters)
            };
            last_group = batch.len();
            let result = flush.flush();
            self.flushes.fetch_add(1, Ordering::Relaxed);
            self.flushed_waiters
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            if let Err(e) = &result {
                tracing::error!(error = %e, waiters = batch.len(), "Store flush failed; the writes in this batch are not acknowledged.");
            }
            for w in batch {
                let _ = w.send(result.clone());
            }
        }
    }

    /// Flushes what is pending, answers every waiter and stops the thread.
    pub(super) fn stop(&self) {
        if let Ok(mut q) = self.queue.lock() {
            q.stopping = true;
        }
        self.wake.notify_all();
        let handle = self.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}
