//! Group commit: one flusher thread makes many writers' records durable with one write and one
//! `fdatasync` of the write-ahead log (see `wal`), then applies them to sled.
//!
//! Writers append a record to the pending group and await it; the flusher repeatedly takes the
//! whole group, lingers briefly under load so that more writers join, writes and syncs it,
//! applies it to sled in order, and only then answers the waiters. So sled never holds a write that is not durable, readers never see one that was
//! not acknowledged, and a group that fails leaves no trace anyone can read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::oneshot;

use super::StoreError;

type Waiter = oneshot::Sender<Result<(), StoreError>>;

#[derive(Default)]
struct Queue {
    /// Records waiting for the next flush, in append order, as they go into the WAL.
    group: Vec<u8>,
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

/// Resolves once every write appended before it was issued is durable and readable.
pub type Durable = oneshot::Receiver<Result<(), StoreError>>;

/// Where the flusher commits groups: the write-ahead log, then sled (`wal::WalWriter`).
pub(super) trait Sink: Send + 'static {
    /// Makes one group durable, then applies it. On error nothing of the group is applied, now
    /// or at the next start (unless the disk refuses even to cut the failed group off the log,
    /// which is logged). An empty group, sent once a second when idle, writes nothing unless
    /// the last write failed: then it is the probe that finds out whether the disk is back.
    fn commit(&mut self, group: &[u8]) -> Result<(), StoreError>;
    /// Called once at stop, after the last group.
    fn finish(&mut self);
}

/// The group size from which the flusher lingers before the next flush.
const LINGER_FROM_GROUP: usize = 4;

/// How often a store whose last write failed is probed when no writer comes.
const PROBE_EVERY: Duration = Duration::from_secs(1);

impl GroupCommit {
    pub(super) fn start(sink: impl Sink, linger: Duration) -> Result<Arc<GroupCommit>, StoreError> {
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
            .spawn(move || {
                let run = std::panic::AssertUnwindSafe(|| worker.run(sink, linger));
                if std::panic::catch_unwind(run).is_err() {
                    tracing::error!("The group-commit thread panicked; the store refuses writes until pandabridge is restarted.");
                }
                worker.refuse_writes();
            })
            .map_err(|e| StoreError::Io(format!("cannot start the group-commit thread: {e}")))?;
        if let Ok(mut slot) = gc.thread.lock() {
            *slot = Some(handle);
        }
        Ok(gc)
    }

    /// Adds one record to the next group and returns what resolves once it is durable and
    /// applied. Fails once the store is closing.
    pub(super) fn append(&self, record: &[u8]) -> Result<Durable, StoreError> {
        let (tx, rx) = oneshot::channel();
        match self.queue.lock() {
            Ok(mut q) if !q.stopping => {
                q.group.extend_from_slice(record);
                let first = q.waiters.is_empty();
                q.waiters.push(tx);
                if first {
                    self.wake.notify_one();
                }
                Ok(rx)
            }
            _ => Err(StoreError::Closed),
        }
    }

    fn run(&self, mut sink: impl Sink, linger: Duration) {
        // Linger only under load: when the last group had company, waiting lets the next one
        // grow; when writers come one at a time, waiting would only add latency.
        let mut last_group = 0usize;
        // The group being committed; swapped with the queue's so both buffers are reused.
        let mut group = Vec::new();
        loop {
            let (waiters, stopping) = {
                let Ok(mut q) = self.queue.lock() else { return };
                while q.waiters.is_empty() && !q.stopping {
                    let timed_out;
                    (q, timed_out) = match self.wake.wait_timeout(q, PROBE_EVERY) {
                        Ok((q, t)) => (q, t.timed_out()),
                        Err(_) => return,
                    };
                    // With no traffic, an empty group goes to the sink once a second: a store
                    // whose last write failed probes the disk with it, so that health recovers
                    // without waiting for a writer; otherwise it is nothing.
                    if timed_out && q.waiters.is_empty() {
                        break;
                    }
                }
                if !linger.is_zero()
                    && !q.stopping
                    && !q.waiters.is_empty()
                    && last_group >= LINGER_FROM_GROUP
                {
                    drop(q);
                    std::thread::sleep(linger);
                    q = match self.queue.lock() {
                        Ok(q) => q,
                        Err(_) => return,
                    };
                }
                group.clear();
                std::mem::swap(&mut group, &mut q.group);
                (std::mem::take(&mut q.waiters), q.stopping)
            };
            last_group = waiters.len();
            let result = sink.commit(&group);
            if !waiters.is_empty() {
                if let Err(e) = &result {
                    tracing::error!(error = %e, waiters = waiters.len(), "Store write failed; the writes in this group are not acknowledged.");
                }
                self.flushes.fetch_add(1, Ordering::Relaxed);
                self.flushed_waiters
                    .fetch_add(waiters.len() as u64, Ordering::Relaxed);
            }
            for w in waiters {
                let _ = w.send(result.clone());
            }
            if stopping {
                // Nothing can be appended or awaited once stopping is set: that was the last.
                sink.finish();
                return;
            }
        }
    }

    /// After the thread ends (stopped, or a panic): nothing can be appended any more and no
    /// waiter is left hanging.
    fn refuse_writes(&self) {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        q.stopping = true;
        for w in q.waiters.drain(..) {
            let _ = w.send(Err(StoreError::Closed));
        }
    }

    /// Commits what is pending, answers every waiter and stops the thread.
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
