//! Group commit: one flusher thread makes many writers' records durable with one write and one
//! `fdatasync` of the write-ahead log (see `wal`) and answers them; an apply thread then
//! applies the records to sled.
//!
//! Writers append a record to the pending group and await it; the flusher repeatedly takes the
//! whole group, lingers briefly under load so that more writers join, writes and syncs it,
//! answers the waiters, and hands the group to the apply thread, which applies groups to sled
//! in order. So sled never holds a write that is not durable, readers never see one that was
//! not acknowledged, and a group that fails leaves no trace anyone can read.
//!
//! Answering before applying, and applying on a thread of its own, takes sled's work off
//! every writer's wait, and a sled insert that stalls (a node split waiting for sled's log,
//! several milliseconds now and then) off the next group's. What a read must still see, every
//! write acknowledged before it began, is kept by [`GroupCommit::wait_applied`]: a read first
//! waits until the groups answered so far are applied (nothing at all when the apply thread
//! has caught up).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::RecvTimeoutError;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tokio::sync::oneshot;

use super::StoreError;

type Waiter = oneshot::Sender<Result<(), StoreError>>;

struct Queue {
    /// Records waiting for the next flush, in append order, as they go into the WAL.
    group: Vec<u8>,
    waiters: Vec<Waiter>,
    stopping: bool,
    /// While the flusher lingers: the group size at which the append that reaches it wakes
    /// the flusher (every writer expected is then waiting). `usize::MAX` otherwise.
    wake_at: usize,
}

impl Default for Queue {
    fn default() -> Self {
        Queue {
            group: Vec::new(),
            waiters: Vec::new(),
            stopping: false,
            wake_at: usize::MAX,
        }
    }
}

/// How long the flusher waits, once a group has begun under load, for more writers to join.
pub(super) struct Linger {
    /// The longest wait.
    pub(super) time: Duration,
    /// How many writers may join the group at most (the daemon counts the webhooks it has
    /// admitted and not yet done with). Once that many are waiting, waiting longer only leaves
    /// the CPU idle, so the flusher commits at once. Writers it does not count (the BigPanda
    /// client's results, admin writes) can only end a wait sooner; a count that falls during
    /// a wait is seen at the next append or at the end of `time`. `None`: always wait out
    /// `time`.
    pub(super) expected: Option<ExpectedWriters>,
}

impl From<Duration> for Linger {
    fn from(time: Duration) -> Self {
        Linger {
            time,
            expected: None,
        }
    }
}

/// A count of the writers that may still join a group: see [`Linger::expected`]. Called under
/// the group queue's lock, so it must be quick and must not panic (that would stop the store's
/// writes until a restart).
#[derive(Clone)]
pub struct ExpectedWriters(Arc<dyn Fn() -> usize + Send + Sync>);

impl ExpectedWriters {
    pub fn new(count: impl Fn() -> usize + Send + Sync + 'static) -> Self {
        ExpectedWriters(Arc::new(count))
    }
    fn get(&self) -> usize {
        (self.0)()
    }
}

impl std::fmt::Debug for ExpectedWriters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ExpectedWriters").finish_non_exhaustive()
    }
}

pub(super) struct GroupCommit {
    queue: Mutex<Queue>,
    wake: Condvar,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Joined once the flusher is done (stopped or panicked), before readers are told anything
    /// about groups still queued for it.
    apply_thread: Mutex<Option<JoinHandle<()>>>,
    /// Flushes done, and writers they covered: their ratio is the mean group size.
    pub(super) flushes: AtomicU64,
    pub(super) flushed_waiters: AtomicU64,
    visibility: Visibility,
    backlog: Backlog,
}

/// The durable groups handed to the apply thread and not yet applied. The flusher waits for
/// room before it hands one over (`Backlog::reserve`), so the backlog stays bounded when sled
/// is slow: writers then queue in the next group, bounded by the daemon's in-flight limit.
#[derive(Default)]
struct Backlog {
    state: Mutex<BacklogState>,
    room: Condvar,
}

#[derive(Default)]
struct BacklogState {
    groups: usize,
    bytes: usize,
    /// The apply thread is gone: no room will come.
    closed: bool,
}

/// How far sled is behind the acknowledgements: groups answered as durable, and groups applied.
/// A group's count moves to `durable` before its waiters are answered, so a read that begins
/// after an answer waits for that group.
#[derive(Default)]
struct Visibility {
    durable: AtomicU64,
    applied: AtomicU64,
    /// Set when a durable group could not be applied (or the flusher died): reads fail from
    /// then on instead of waiting for what will not come, until a restart replays the log.
    failed: Mutex<Option<StoreError>>,
    applied_now: Condvar,
}

/// Resolves once every write appended before it was issued is durable; reads made after it
/// resolves see them (`GroupCommit::wait_applied`).
pub type Durable = oneshot::Receiver<Result<(), StoreError>>;

/// Where the flusher makes groups durable: the write-ahead log (`wal::WalWriter`).
pub(super) trait Sink: Send + 'static {
    /// Makes one group durable. On error nothing of the group is applied, now or at the next
    /// start (unless the disk refuses even to cut the failed group off the log, which is
    /// logged). An empty group, sent once a second when idle, writes nothing unless the last
    /// write failed: then it is the probe that finds out whether the disk is back.
    fn write(&mut self, group: &[u8]) -> Result<(), StoreError>;
    /// A log file closed since the last call; it may be checkpointed once its groups are
    /// applied.
    fn closed_file(&mut self) -> Option<u64>;
    /// Called once at stop, after the last group: closes the log file and returns its number.
    fn finish(&mut self) -> u64;
}

/// Where the apply thread applies durable groups, in the order they were written: sled
/// (`wal::WalApplier`).
pub(super) trait Apply: Send + 'static {
    /// Applies a group that `Sink::write` made durable. An error is final for this process:
    /// the group stays in the log for the next start to apply.
    fn apply(&mut self, group: &[u8]) -> Result<(), StoreError>;
    /// Every group of log file `seq` (and of the files before it) is applied.
    fn applied_file(&mut self, seq: u64);
    /// The last call, with every group applied: checkpoints up to log file `seq`.
    fn finish(&mut self, seq: u64);
    /// No group came for [`QUIET`] (called again after each further [`QUIET`]): the moment
    /// for upkeep that would hold up waiting groups. An error is final, as for `apply`.
    fn quiet(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// What the flusher hands the apply thread, in log order.
enum Job {
    /// A durable group, and its number in `Visibility::durable`.
    Apply(Vec<u8>, u64),
    FileClosed(u64),
    Finish(u64),
}

/// Durable groups that may wait for the apply thread. Every read waits for the groups before
/// it to be applied, so when sled is the bottleneck a longer backlog only makes reads wait
/// longer.
const APPLY_BACKLOG: usize = 64;

/// What may wait for the apply thread, beyond those groups, while it folds sled's log (see
/// `GroupCommit::start`): a fold holds applies for 0.3–0.6 s at a million incidents, and
/// webhooks for incidents whose actor is live need no read, so they go on being answered
/// through it until this much is waiting (about half a second of groups under a closed-loop
/// load at a million incidents: ~1.8 KB a webhook at ~15k a second).
/// Counted in record bytes; the groups' buffers can hold up to about twice that in memory.
const FOLD_BACKLOG_BYTES: usize = 16 * 1024 * 1024;

/// The group size from which the flusher lingers before the next flush.
const LINGER_FROM_GROUP: usize = 4;

/// How often a read waiting in place for an apply, or the flusher waiting for room in the
/// apply backlog, looks whether a fold began.
const FOLD_CHECK: Duration = Duration::from_millis(5);

/// How long the apply thread goes without a group before it calls the store quiet.
pub(super) const QUIET: Duration = Duration::from_secs(1);

/// How often a store whose last write failed is probed when no writer comes.
const PROBE_EVERY: Duration = Duration::from_secs(1);

impl GroupCommit {
    /// Starts the flusher and the apply thread. `folding` tells whether the applier is folding
    /// sled's log: the backlog is then bounded by [`FOLD_BACKLOG_BYTES`] rather than
    /// [`APPLY_BACKLOG`] groups.
    pub(super) fn start(
        sink: impl Sink,
        applier: impl Apply,
        linger: impl Into<Linger>,
        folding: impl Fn() -> bool + Send + 'static,
    ) -> Result<Arc<GroupCommit>, StoreError> {
        let gc = Arc::new(GroupCommit {
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            thread: Mutex::new(None),
            apply_thread: Mutex::new(None),
            flushes: AtomicU64::new(0),
            flushed_waiters: AtomicU64::new(0),
            visibility: Visibility::default(),
            backlog: Backlog::default(),
        });
        let (jobs, queued) = std::sync::mpsc::channel();
        let apply_gc = Arc::clone(&gc);
        let apply_thread = std::thread::Builder::new()
            .name("pb-apply".into())
            .spawn(move || {
                // However the thread ends, a flusher waiting for room must not wait for ever.
                let _closes = CloseOnDrop(&apply_gc.backlog);
                let run = std::panic::AssertUnwindSafe(|| apply_gc.apply_loop(applier, queued));
                if std::panic::catch_unwind(run).is_err() {
                    tracing::error!("The apply thread panicked; the store refuses reads and writes until pandabridge is restarted.");
                    apply_gc.visibility.fail(StoreError::Closed);
                }
            })
            .map_err(|e| StoreError::Io(format!("cannot start the apply thread: {e}")))?;
        if let Ok(mut slot) = gc.apply_thread.lock() {
            *slot = Some(apply_thread);
        }
        let worker = Arc::clone(&gc);
        let linger = linger.into();
        let handle = std::thread::Builder::new()
            .name("pb-group-commit".into())
            .spawn(move || {
                let run =
                    std::panic::AssertUnwindSafe(|| worker.run(sink, jobs, linger, folding));
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

    /// Adds one record to the next group and returns what resolves once it is durable. Fails
    /// once the store is closing.
    pub(super) fn append(&self, record: &[u8]) -> Result<Durable, StoreError> {
        let (tx, rx) = oneshot::channel();
        match self.queue.lock() {
            Ok(mut q) if !q.stopping => {
                q.group.extend_from_slice(record);
                let first = q.waiters.is_empty();
                q.waiters.push(tx);
                if first || q.waiters.len() == q.wake_at {
                    self.wake.notify_one();
                }
                Ok(rx)
            }
            _ => Err(StoreError::Closed),
        }
    }

    fn run(
        &self,
        mut sink: impl Sink,
        jobs: std::sync::mpsc::Sender<Job>,
        linger: Linger,
        folding: impl Fn() -> bool,
    ) {
        // Linger only under load: when the last group had company, waiting lets the next one
        // grow; when writers come one at a time, waiting would only add latency.
        let mut last_group = 0usize;
        // The group being committed, swapped with the queue's; a durable group goes to the
        // apply thread, and a fresh buffer of its size takes its place.
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
                if !linger.time.is_zero()
                    && !q.stopping
                    && !q.waiters.is_empty()
                    && last_group >= LINGER_FROM_GROUP
                {
                    q = match self.linger(q, &linger) {
                        Some(q) => q,
                        None => return,
                    };
                }
                group.clear();
                std::mem::swap(&mut group, &mut q.group);
                (std::mem::take(&mut q.waiters), q.stopping)
            };
            last_group = waiters.len();
            // Once a durable group could not be applied, no later one can be either.
            let result = match self.visibility.failure() {
                Some(e) => Err(e),
                None => sink.write(&group),
            };
            let answered = if group.is_empty() || result.is_err() {
                None
            } else {
                Some(self.visibility.durable.fetch_add(1, Ordering::AcqRel) + 1)
            };
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
            if let Some(n) = answered {
                // Sized like the group it replaces, so that writers appending to it under the
                // queue's lock do not grow it step by step.
                let fresh = Vec::with_capacity(group.len());
                let durable = std::mem::replace(&mut group, fresh);
                if !self.backlog.reserve(durable.len(), &folding)
                    || jobs.send(Job::Apply(durable, n)).is_err()
                {
                    self.visibility.fail(StoreError::Closed);
                }
            }
            if let Some(seq) = sink.closed_file() {
                let _ = jobs.send(Job::FileClosed(seq));
            }
            if stopping {
                // Nothing can be appended or awaited once stopping is set: that was the last.
                let _ = jobs.send(Job::Finish(sink.finish()));
                drop(jobs);
                return;
            }
        }
    }

    /// Waits up to `linger.time` for more writers to join the group, and no longer once every
    /// writer expected is waiting in it (or the store is stopping). `None` if the lock is
    /// poisoned.
    fn linger<'q>(
        &self,
        mut q: std::sync::MutexGuard<'q, Queue>,
        linger: &Linger,
    ) -> Option<std::sync::MutexGuard<'q, Queue>> {
        let deadline = std::time::Instant::now() + linger.time;
        loop {
            let expected = linger.expected.as_ref().map_or(usize::MAX, |e| e.get());
            let now = std::time::Instant::now();
            if q.stopping || q.waiters.len() >= expected || now >= deadline {
                q.wake_at = usize::MAX;
                return Some(q);
            }
            // Appends pass this size one at a time: the one that reaches it wakes us.
            q.wake_at = expected;
            q = match self.wake.wait_timeout(q, deadline - now) {
                Ok((q, _)) => q,
                Err(_) => return None,
            };
        }
    }

    /// After the thread ends (stopped, or a panic): nothing can be appended any more, the
    /// apply thread has finished, and no waiter is left hanging, nor any reader once a group
    /// answered is left unapplied.
    fn refuse_writes(&self) {
        let mut q = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        q.stopping = true;
        for w in q.waiters.drain(..) {
            let _ = w.send(Err(StoreError::Closed));
        }
        drop(q);
        // The flusher's end of the queue is gone (it returned or unwound), so the apply thread
        // finishes what was queued and ends; only then is a group left unapplied a failure.
        let apply_thread = self.apply_thread.lock().ok().and_then(|mut t| t.take());
        if let Some(t) = apply_thread {
            let _ = t.join();
        }
        let v = &self.visibility;
        if v.applied.load(Ordering::Acquire) < v.durable.load(Ordering::Acquire) {
            v.fail(StoreError::Closed);
        }
    }

    /// The apply thread: applies durable groups in log order and lets the checkpoint have each
    /// log file once all its groups are applied. After a failure it applies nothing more and
    /// checkpoints nothing more: the log keeps the failed group and all after it for the next
    /// start.
    fn apply_loop(&self, mut applier: impl Apply, jobs: std::sync::mpsc::Receiver<Job>) {
        let mut failed = false;
        loop {
            let job = match jobs.recv_timeout(QUIET) {
                Ok(job) => job,
                Err(RecvTimeoutError::Timeout) => {
                    if !failed {
                        if let Err(e) = applier.quiet() {
                            failed = true;
                            self.visibility.fail(e);
                        }
                    }
                    continue;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            };
            match job {
                Job::Apply(group, _) if failed => self.backlog.release(group.len()),
                Job::FileClosed(_) if failed => {}
                Job::Apply(group, n) => {
                    match applier.apply(&group) {
                        Ok(()) => self.visibility.applied_upto(n),
                        Err(e) => {
                            failed = true;
                            self.visibility.fail(e);
                        }
                    }
                    self.backlog.release(group.len());
                }
                Job::FileClosed(seq) => applier.applied_file(seq),
                Job::Finish(seq) => {
                    if !failed {
                        applier.finish(seq);
                    }
                    return;
                }
            }
        }
    }

    /// The failure that stopped the store, if one did.
    pub(super) fn failure(&self) -> Option<StoreError> {
        self.visibility.failure()
    }

    /// False once a durable group could not be applied (or the apply thread died): the store
    /// then refuses reads and writes until a restart replays the log.
    pub(super) fn applies(&self) -> bool {
        self.visibility.failure().is_none()
    }

    /// Returns once every group answered before the call is applied to sled, so that a read
    /// made next sees every acknowledged write. Immediate unless a group is being applied.
    ///
    /// An apply takes microseconds to milliseconds, so the wait is done in place; but a fold
    /// (`folding` set) holds applies for up to a second, and a wait that meets one is finished
    /// off the tokio worker (`super::off_worker`), so that the worker's other tasks go on.
    pub(super) fn wait_applied(&self, folding: &AtomicBool) -> Result<(), StoreError> {
        let v = &self.visibility;
        let target = v.durable.load(Ordering::Acquire);
        if v.applied.load(Ordering::Acquire) >= target {
            return Ok(());
        }
        if !folding.load(Ordering::Acquire) && self.wait_applied_upto(target, Some(folding))? {
            return Ok(());
        }
        super::off_worker(|| self.wait_applied_upto(target, None)).map(|_| ())
    }

    /// Waits until group `target` is applied: true. With `unless` given, gives up (false) as
    /// soon as it is found set.
    fn wait_applied_upto(
        &self,
        target: u64,
        unless: Option<&AtomicBool>,
    ) -> Result<bool, StoreError> {
        let v = &self.visibility;
        let mut failed = v.failed.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if v.applied.load(Ordering::Acquire) >= target {
                return Ok(true);
            }
            if let Some(e) = failed.as_ref() {
                return Err(e.clone());
            }
            failed = match unless {
                None => v
                    .applied_now
                    .wait(failed)
                    .unwrap_or_else(|p| p.into_inner()),
                Some(flag) if flag.load(Ordering::Acquire) => return Ok(false),
                // The flag is not a condition of this Condvar: look at it now and then.
                Some(_) => {
                    v.applied_now
                        .wait_timeout(failed, FOLD_CHECK)
                        .unwrap_or_else(|p| p.into_inner())
                        .0
                }
            };
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

/// Closes the backlog when the apply thread ends, by returning or unwinding.
struct CloseOnDrop<'a>(&'a Backlog);

impl Drop for CloseOnDrop<'_> {
    fn drop(&mut self) {
        self.0.close();
    }
}

impl Backlog {
    /// Waits until a group of `len` bytes may join the backlog and counts it in: while fewer
    /// than [`APPLY_BACKLOG`] groups wait, or, while `folding()`, as long as the backlog stays
    /// within [`FOLD_BACKLOG_BYTES`]. A wait looks at `folding` every [`FOLD_CHECK`], as a fold
    /// begins without telling. False once the apply thread is gone.
    fn reserve(&self, len: usize, folding: &impl Fn() -> bool) -> bool {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        loop {
            if state.closed {
                return false;
            }
            let fits = state.groups < APPLY_BACKLOG
                || (folding() && state.bytes.saturating_add(len) <= FOLD_BACKLOG_BYTES);
            if fits {
                state.groups += 1;
                state.bytes += len;
                return true;
            }
            state = match self.room.wait_timeout(state, FOLD_CHECK) {
                Ok((state, _)) => state,
                Err(poisoned) => poisoned.into_inner().0,
            };
        }
    }

    /// A group of `len` bytes left the backlog (applied, or skipped after a failure).
    fn release(&self, len: usize) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        debug_assert!(
            state.groups > 0 && state.bytes >= len,
            "released more than reserved"
        );
        state.groups = state.groups.saturating_sub(1);
        state.bytes = state.bytes.saturating_sub(len);
        drop(state);
        self.room.notify_one();
    }

    /// The apply thread ended: whoever waits for room gives up.
    fn close(&self) {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .closed = true;
        self.room.notify_all();
    }
}

impl Visibility {
    fn failure(&self) -> Option<StoreError> {
        self.failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn applied_upto(&self, n: u64) {
        // Stored under the lock, so that a reader between its check and its wait cannot miss
        // the notification.
        let _guard = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        self.applied.store(n, Ordering::Release);
        self.applied_now.notify_all();
    }

    fn fail(&self, e: StoreError) {
        let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        failed.get_or_insert(e);
        self.applied_now.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::sync::mpsc;

    /// What readers pass for the fold flag here: no fold ever runs.
    static NOT_FOLDING: AtomicBool = AtomicBool::new(false);

    /// A log whose writes succeed at once.
    struct NoLog;

    impl Sink for NoLog {
        fn write(&mut self, _group: &[u8]) -> Result<(), StoreError> {
            Ok(())
        }
        fn closed_file(&mut self) -> Option<u64> {
            None
        }
        fn finish(&mut self) -> u64 {
            0
        }
    }

    /// An applier that waits for the test's go before each group, then fails or panics there
    /// if told to.
    struct GatedApply {
        go: mpsc::Receiver<()>,
        applied: Arc<AtomicBool>,
        fail: bool,
        panics: bool,
    }

    impl Apply for GatedApply {
        fn apply(&mut self, _group: &[u8]) -> Result<(), StoreError> {
            let _ = self.go.recv();
            assert!(!self.panics, "injected apply panic");
            if self.fail {
                return Err(StoreError::Io("injected apply failure".into()));
            }
            self.applied.store(true, Ordering::SeqCst);
            Ok(())
        }
        fn applied_file(&mut self, _seq: u64) {}
        fn finish(&mut self, _seq: u64) {}
    }

    fn gated(fail: bool) -> (Arc<GroupCommit>, mpsc::Sender<()>, Arc<AtomicBool>) {
        let (go, wait) = mpsc::channel();
        let applied = Arc::new(AtomicBool::new(false));
        let sink = GatedApply {
            go: wait,
            applied: Arc::clone(&applied),
            fail,
            panics: false,
        };
        let gc = GroupCommit::start(NoLog, sink, Duration::ZERO, || false).expect("flusher starts");
        (gc, go, applied)
    }

    /// An applier that waits for the test's go before each group and notes each call.
    struct NotingApply {
        go: mpsc::Receiver<()>,
        calls: Arc<Mutex<Vec<&'static str>>>,
    }

    impl Apply for NotingApply {
        fn apply(&mut self, _group: &[u8]) -> Result<(), StoreError> {
            let _ = self.go.recv();
            self.calls.lock().expect("calls").push("apply");
            Ok(())
        }
        fn applied_file(&mut self, _seq: u64) {}
        fn finish(&mut self, _seq: u64) {}
        fn quiet(&mut self) -> Result<(), StoreError> {
            self.calls.lock().expect("calls").push("quiet");
            Ok(())
        }
    }

    /// A flusher and a held apply thread, whose fold flag the test sets.
    fn held(panics: bool) -> (Arc<GroupCommit>, mpsc::Sender<()>, Arc<AtomicBool>) {
        let (go, wait) = mpsc::channel();
        let folding = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&folding);
        let applier = GatedApply {
            go: wait,
            applied: Arc::new(AtomicBool::new(false)),
            fail: false,
            panics,
        };
        let gc = GroupCommit::start(NoLog, applier, Duration::ZERO, move || {
            flag.load(Ordering::Acquire)
        })
        .expect("flusher starts");
        (gc, go, folding)
    }

    /// Whether a write appended now is answered within `within`.
    fn answered(gc: &GroupCommit, record: &[u8], within: Duration) -> Option<Durable> {
        let mut durable = gc.append(record).expect("appended");
        let deadline = std::time::Instant::now() + within;
        loop {
            match durable.try_recv() {
                Ok(result) => {
                    result.expect("durable");
                    return None;
                }
                Err(oneshot::error::TryRecvError::Closed) => panic!("waiter dropped"),
                Err(oneshot::error::TryRecvError::Empty) => {}
            }
            if std::time::Instant::now() >= deadline {
                return Some(durable);
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// Waits up to 5 s for a write held back before to be answered; fails with `what` if not.
    fn until_answered(durable: Option<&Durable>, what: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while durable.is_some_and(|d| d.is_empty()) {
            assert!(std::time::Instant::now() < deadline, "{what}");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    /// A log whose writes wait while the test holds them, and that notes that one began.
    struct HeldLog {
        hold: Arc<AtomicBool>,
        entered: Arc<AtomicBool>,
    }

    impl Sink for HeldLog {
        fn write(&mut self, group: &[u8]) -> Result<(), StoreError> {
            if !group.is_empty() {
                self.entered.store(true, Ordering::Release);
            }
            while self.hold.load(Ordering::Acquire) {
                std::thread::sleep(Duration::from_millis(1));
            }
            Ok(())
        }
        fn closed_file(&mut self) -> Option<u64> {
            None
        }
        fn finish(&mut self) -> u64 {
            0
        }
    }

    /// A flusher with a 30 s linger, brought to where it lingers: its last group had
    /// `LINGER_FROM_GROUP` writers. It expects as many writers as `expected` says.
    fn lingering(expected: Option<Arc<AtomicUsize>>) -> Arc<GroupCommit> {
        let (hold, entered) = (
            Arc::new(AtomicBool::new(true)),
            Arc::new(AtomicBool::new(false)),
        );
        // Applies are not held: with the sender gone, each goes ahead at once.
        let (_, wait) = mpsc::channel();
        let applier = GatedApply {
            go: wait,
            applied: Arc::new(AtomicBool::new(false)),
            fail: false,
            panics: false,
        };
        let linger = Linger {
            time: Duration::from_secs(30),
            expected: expected.map(|n| ExpectedWriters::new(move || n.load(Ordering::SeqCst))),
        };
        let log = HeldLog {
            hold: Arc::clone(&hold),
            entered: Arc::clone(&entered),
        };
        let gc = GroupCommit::start(log, applier, linger, || false).expect("flusher starts");
        // The first writer's group is being written (held) while four more queue behind it.
        let first = answered(&gc, b"s", Duration::ZERO);
        while !entered.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let queued: Vec<_> = (0..LINGER_FROM_GROUP)
            .map(|_| gc.append(b"s").expect("appended"))
            .collect();
        hold.store(false, Ordering::Release);
        until_answered(first.as_ref(), "the first group");
        for q in &queued {
            until_answered(Some(q), "the group of four");
        }
        assert_eq!(
            gc.flushes.load(Ordering::Relaxed),
            2,
            "two groups: one writer, then four"
        );
        gc
    }

    /// Appends `n` writers; each must still be waiting after a short while.
    fn still_waiting(gc: &GroupCommit, n: usize) -> Vec<Option<Durable>> {
        (0..n)
            .map(|_| {
                let w = answered(gc, b"s", Duration::from_millis(100));
                assert!(
                    w.is_some(),
                    "answered before the linger ended or every writer came"
                );
                w
            })
            .collect()
    }

    #[test]
    fn a_lingering_flusher_commits_once_every_expected_writer_has_joined() {
        let expected = Arc::new(AtomicUsize::new(4));
        let gc = lingering(Some(Arc::clone(&expected)));
        let mut waiting = still_waiting(&gc, 3);
        // More writers are admitted while the group waits: the flusher waits for them too.
        expected.store(6, Ordering::SeqCst);
        waiting.extend(still_waiting(&gc, 1));
        waiting.extend(still_waiting(&gc, 1));
        // The sixth completes the group, long before the 30 s linger ends.
        let last = answered(&gc, b"s", Duration::from_secs(5));
        assert!(
            last.is_none(),
            "the group did not commit once all six were in it"
        );
        for w in &waiting {
            until_answered(w.as_ref(), "a writer of the full group");
        }
        assert_eq!(
            gc.flushes.load(Ordering::Relaxed),
            3,
            "the six went as one group"
        );
        gc.stop();
    }

    #[test]
    fn without_a_writer_count_the_flusher_lingers_until_the_store_stops() {
        let gc = lingering(None);
        let waiting = still_waiting(&gc, 8);
        // Stopping does not wait out the linger: the group commits and is answered.
        let started = std::time::Instant::now();
        gc.stop();
        for w in &waiting {
            until_answered(w.as_ref(), "a writer when the store stopped");
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "stop waited for the linger"
        );
    }

    /// With applies held, the flusher stops at `APPLY_BACKLOG` groups: reads wait for every
    /// group before them, so a longer queue would only make them wait longer. While a fold
    /// holds the applies, it goes on up to `FOLD_BACKLOG_BYTES`, and no further.
    #[test]
    fn the_apply_backlog_is_64_groups_and_while_a_fold_runs_16_mib() {
        let (gc, go, folding) = held(false);
        let second = Duration::from_secs(5);
        // 64 groups wait; the 65th is answered, then the flusher waits for room to hand it on.
        for _ in 0..=APPLY_BACKLOG {
            assert!(
                answered(&gc, b"s", second).is_none(),
                "answered while there is room"
            );
        }
        let blocked = answered(&gc, b"s", Duration::from_millis(200));
        assert!(blocked.is_some(), "a group beyond the backlog was answered");
        // A fold begins: the waiting group goes on, and so do groups up to the byte bound.
        folding.store(true, Ordering::Release);
        // Four of these are just over the bound on their own.
        let big = vec![7u8; FOLD_BACKLOG_BYTES / 4 + 1];
        until_answered(blocked.as_ref(), "a fold did not make room");
        for _ in 0..3 {
            assert!(
                answered(&gc, &big, second).is_none(),
                "answered within the fold's bound"
            );
        }
        // The fourth big group is answered but does not fit; the one after it waits.
        assert!(answered(&gc, &big, second).is_none());
        let beyond = answered(&gc, b"s", Duration::from_millis(200));
        assert!(beyond.is_some(), "the fold's byte bound was not kept");
        // The applies go on: room again (below 64 groups, whatever their bytes).
        for _ in 0..=APPLY_BACKLOG + 2 {
            go.send(()).expect("apply released");
        }
        until_answered(beyond.as_ref(), "applies did not make room");
        drop(go);
        gc.stop();
    }

    /// An apply thread that dies while the flusher waits for room must not leave it waiting
    /// for ever: writes are refused from then on.
    #[test]
    fn a_flusher_waiting_for_room_gives_up_once_the_apply_thread_is_gone() {
        let (gc, go, _) = held(true);
        for _ in 0..=APPLY_BACKLOG {
            assert!(answered(&gc, b"s", Duration::from_secs(5)).is_none());
        }
        let waiting = answered(&gc, b"s", Duration::from_millis(200)).expect("held back");
        go.send(()).expect("apply released");
        let (done, result) = mpsc::channel();
        std::thread::spawn(move || done.send(waiting.blocking_recv()));
        let result = result
            .recv_timeout(Duration::from_secs(10))
            .expect("the write is answered instead of waiting for ever");
        assert!(matches!(result, Ok(Err(_))), "refused: {result:?}");
        gc.stop();
    }

    /// Upkeep that holds up groups (a fold of sled's log at its lower threshold) waits until
    /// no group came for a while: the apply thread calls `quiet` only then, not per group.
    #[tokio::test]
    async fn quiet_upkeep_runs_only_once_no_group_came_for_a_while() {
        let (go, wait) = mpsc::channel();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let applier = NotingApply {
            go: wait,
            calls: Arc::clone(&calls),
        };
        let gc =
            GroupCommit::start(NoLog, applier, Duration::ZERO, || false).expect("flusher starts");
        for record in [&b"one"[..], b"two", b"three"] {
            let durable = gc.append(record).expect("appended");
            durable.await.expect("answered").expect("durable");
        }
        for _ in 0..3 {
            go.send(()).expect("apply released");
        }
        gc.wait_applied(&NOT_FOLDING).expect("all applied");
        let deadline = std::time::Instant::now() + QUIET * 10;
        while !calls.lock().expect("calls").contains(&"quiet") {
            assert!(std::time::Instant::now() < deadline, "never called quiet");
            std::thread::sleep(Duration::from_millis(5));
        }
        // A `quiet` before the first group is right too (the thread had been idle for
        // `QUIET` if this test was slow to append): what counts is what follows the groups.
        let calls = calls.lock().expect("calls").clone();
        let first = calls.iter().position(|c| *c == "apply").expect("applied");
        assert_eq!(
            calls[first..first + 4],
            ["apply", "apply", "apply", "quiet"],
            "{calls:?}"
        );
        gc.stop();
    }

    /// A read waiting in place for an apply must leave its tokio worker once a fold holds
    /// the applies: on a runtime with one worker, another task runs again soon after the
    /// fold begins.
    #[test]
    fn a_wait_for_an_apply_leaves_the_worker_once_a_fold_begins() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        let (gc, go, _) = gated(false);
        let durable = gc.append(b"record").expect("appended");
        runtime
            .block_on(durable)
            .expect("answered")
            .expect("durable");
        let folding = Arc::new(AtomicBool::new(false));
        let reader = {
            let (gc, folding) = (Arc::clone(&gc), Arc::clone(&folding));
            runtime.spawn(async move { gc.wait_applied(&folding) })
        };
        // The reader waits in place on the only worker, as for any apply; then a fold begins.
        std::thread::sleep(Duration::from_millis(100));
        folding.store(true, Ordering::Release);
        let (tx, rx) = mpsc::channel();
        runtime.spawn(async move { tx.send(7) });
        assert_eq!(
            rx.recv_timeout(Duration::from_secs(5)).ok(),
            Some(7),
            "the worker stayed stalled"
        );
        go.send(()).expect("apply released");
        assert!(runtime.block_on(reader).expect("reader").is_ok());
        gc.stop();
    }

    #[tokio::test]
    async fn writers_are_answered_before_the_apply_and_reads_wait_for_it() {
        let (gc, go, applied) = gated(false);
        let durable = gc.append(b"record").expect("appended");
        durable.await.expect("answered").expect("durable");
        assert!(
            !applied.load(Ordering::SeqCst),
            "answered while the apply waits"
        );

        let reader = {
            let gc = Arc::clone(&gc);
            let applied = Arc::clone(&applied);
            std::thread::spawn(move || {
                gc.wait_applied(&NOT_FOLDING)
                    .map(|()| applied.load(Ordering::SeqCst))
            })
        };
        // Let the reader reach its wait while the apply is still held back.
        std::thread::sleep(Duration::from_millis(50));
        assert!(
            !reader.is_finished(),
            "a read after the answer waits for the apply"
        );
        go.send(()).expect("apply released");
        let saw_applied = reader.join().expect("reader thread").expect("read allowed");
        assert!(
            saw_applied,
            "the read went ahead only once the group was applied"
        );
        gc.wait_applied(&NOT_FOLDING)
            .expect("nothing in progress: no wait");
        gc.stop();
    }

    #[tokio::test]
    async fn a_group_that_cannot_be_applied_fails_reads_instead_of_hanging_them() {
        let (gc, go, applied) = gated(true);
        go.send(()).expect("apply released");
        let durable = gc.append(b"record").expect("appended");
        durable
            .await
            .expect("answered")
            .expect("durable in the log");
        // On another thread, so that a regression shows as a failure rather than a hung test.
        let (done, read) = mpsc::channel();
        let reader = Arc::clone(&gc);
        std::thread::spawn(move || done.send(reader.wait_applied(&NOT_FOLDING)));
        let read = read
            .recv_timeout(Duration::from_secs(10))
            .expect("the read returns instead of waiting for ever");
        assert!(
            read.is_err(),
            "reads fail once a durable group cannot be applied"
        );
        assert!(!gc.applies(), "and the store reports itself unhealthy");
        assert!(!applied.load(Ordering::SeqCst));
        gc.stop();
    }

    /// Every write closes a log file; the applier writes down what reaches it.
    #[derive(Default)]
    struct Rotating {
        written: u64,
        closed: Option<u64>,
    }

    impl Sink for Rotating {
        fn write(&mut self, group: &[u8]) -> Result<(), StoreError> {
            if !group.is_empty() {
                self.written += 1;
                self.closed = Some(self.written);
            }
            Ok(())
        }
        fn closed_file(&mut self) -> Option<u64> {
            self.closed.take()
        }
        fn finish(&mut self) -> u64 {
            self.written + 1
        }
    }

    struct Journal(Arc<Mutex<Vec<String>>>);

    impl Apply for Journal {
        fn apply(&mut self, group: &[u8]) -> Result<(), StoreError> {
            let text = String::from_utf8_lossy(group).into_owned();
            self.0
                .lock()
                .expect("journal")
                .push(format!("apply {text}"));
            Ok(())
        }
        fn applied_file(&mut self, seq: u64) {
            self.0.lock().expect("journal").push(format!("file {seq}"));
        }
        fn finish(&mut self, seq: u64) {
            self.0
                .lock()
                .expect("journal")
                .push(format!("finish {seq}"));
        }
    }

    /// A checkpoint deletes the log files it is given: a file must reach it only after every
    /// group written to it is applied, and the last one only at the end.
    #[tokio::test]
    async fn a_closed_log_file_reaches_the_checkpoint_only_after_its_groups() {
        let journal = Arc::new(Mutex::new(Vec::new()));
        let gc = GroupCommit::start(
            Rotating::default(),
            Journal(Arc::clone(&journal)),
            Duration::ZERO,
            || false,
        )
        .expect("flusher starts");
        for record in ["a", "b", "c"] {
            let durable = gc.append(record.as_bytes()).expect("appended");
            durable.await.expect("answered").expect("durable");
        }
        gc.stop();
        let journal = journal.lock().expect("journal").clone();
        assert_eq!(
            journal,
            ["apply a", "file 1", "apply b", "file 2", "apply c", "file 3", "finish 4"]
        );
    }
}
