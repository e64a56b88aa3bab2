//! Group commit: one flusher thread makes many writers' batches durable with one flush.
//!
//! sled 0.34 deadlocks with several concurrent `flush_async` calls (sled issues 1308, 1241,
//! 1357), and a flush per write burns a third of the CPU on thread hand-offs. So writers
//! register a waiter after applying their batch, and a single OS thread repeatedly takes every
//! waiter, lingers briefly so that more writers join the batch, calls the blocking `flush()`,
//! then `fdatasync`s the log file, since sled's flush ends in `sync_file_range`, which does not
//! reach the disk's write cache (sled issue 1452). Only then are the waiters answered.
//!
//! A failed flush is retried, its waiters held, until one succeeds (they are then durable) or
//! the store stops (only then are they told it failed): their writes are already in sled's
//! memory, so failing them earlier would refuse events that a later flush stores anyway.

use std::fs::File;
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
}

/// Resolves once every write applied before it was issued is on disk.
pub type Durable = oneshot::Receiver<Result<(), StoreError>>;

/// What the flusher makes durable: the sled database and the log file to fsync.
pub(super) trait Flush: Send + Sync + 'static {
    fn flush(&self) -> Result<(), StoreError>;
    /// While writes fail, tries a small write and flush so health recovers without traffic.
    fn probe(&self);
}

/// How often a degraded store is probed.
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// How often a failed flush that writers are waiting for is retried.
const RETRY_FAILED_FLUSH_EVERY: Duration = Duration::from_millis(100);

pub(super) struct SledFlush {
    pub db: sled::Db,
    /// sled's log file (`<dir>/db`), opened separately so we can fsync it.
    pub log: File,
    pub faults: Arc<super::Faults>,
}

impl SledFlush {
    fn flush_once(&self) -> Result<(), StoreError> {
        self.faults.check()?;
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
    pub(super) fn start(flush: impl Flush, linger: Duration) -> Arc<GroupCommit> {
        let gc = Arc::new(GroupCommit {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            thread: Mutex::new(None),
        });
        let worker = Arc::clone(&gc);
        let handle = std::thread::Builder::new()
            .name("pb-group-commit".into())
            .spawn(move || worker.run(flush, linger))
            .expect("spawning the group-commit thread");
        if let Ok(mut slot) = gc.thread.lock() {
            *slot = Some(handle);
        }
        gc
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
                    return;
                }
                if !linger.is_zero() && !q.stopping {
                    drop(q);
                    std::thread::sleep(linger);
                    q = match self.queue.lock() {
                        Ok(q) => q,
                        Err(_) => return,
                    };
                }
                std::mem::take(&mut q.waiters)
            };
            let mut result = flush.flush();
            if let Err(e) = &result {
                tracing::error!(error = %e, waiters = batch.len(),
                    "Store flush failed; the writes in this batch wait until the disk recovers.");
            }
            // The batch's writes are already in sled's memory, and the next flush that succeeds
            // makes them durable: answering "failed" now would let a refused event take effect
            // later (CONTRACT §2: nothing that is not 202 changes any state). So its writers wait
            // for a flush that succeeds; only at shutdown, with no flush to come, are they failed.
            while result.is_err() && self.wait_unless_stopping(RETRY_FAILED_FLUSH_EVERY) {
                result = flush.flush();
                if result.is_ok() {
                    tracing::info!(waiters = batch.len(), "The store flushed the held writes.");
                }
            }
            for w in batch {
                let _ = w.send(result.clone());
            }
        }
    }

    /// Sleeps up to `period`; false once the store is stopping.
    fn wait_unless_stopping(&self, period: Duration) -> bool {
        let Ok(q) = self.queue.lock() else {
            return false;
        };
        if q.stopping {
            return false;
        }
        match self.wake.wait_timeout(q, period) {
            Ok((q, _)) => !q.stopping,
            Err(_) => false,
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
