//! Pacing of outbound BigPanda calls: the sliding-window [`RateLimiter`] that keeps us under
//! BigPanda's 5 requests/second, and the retry [`backoff`] schedule.
//!
//! Both are pure (the caller passes the clock and, for jitter, the random source) so that their
//! guarantees can be proven with synthetic instants instead of timed tests.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use rand::Rng;

/// BigPanda documents 5 requests per second for its REST API.
pub const BIGPANDA_REQUESTS_PER_WINDOW: usize = 5;
pub const BIGPANDA_WINDOW: Duration = Duration::from_secs(1);
/// Extra spacing added to the window, so that a sixth start is always *more* than one second
/// after the first of five, in any alignment of the window (closed or half-open). Kept tiny:
/// a backlog must drain at BigPanda's 5 requests/second, no slower (issue 5), and the rate
/// saturates at 5/1.001 s ≈ 4.995/s. Our limiter counts request *starts*; should network delay
/// bunch arrivals into a sixth in BigPanda's second, its 429 is retried with backoff and
/// `Retry-After` like any other (the cost of a margin would be paid on every close instead).
pub const BIGPANDA_SAFETY_MARGIN: Duration = Duration::from_millis(1);

/// At most `limit` request starts in any window of `window` (plus the safety margin), spread
/// evenly: consecutive starts are at least 39/40 of `window / limit` apart (195 ms for
/// BigPanda). The spacing is a little under the even share so that it never sets the rate:
/// a timer that wakes a millisecond late in every gap would otherwise cost 0.5 % of it
/// (4.97/s measured with the full 200 ms), where the window rule pays it once per `limit`.
///
/// It remembers the last `limit` starts (including reserved future ones); a new start is allowed
/// once the oldest of them is more than `window + margin` in the past. Because consecutive
/// starts `limit` apart are then always more than `window` apart, no interval of length
/// `window` — however it is aligned — can contain more than `limit` starts. The even spread
/// means no burst of `limit` requests leaves at once: a burst followed by the next window's
/// burst is where a little delay on the way would put one too many in a receiver's second.
#[derive(Debug, Clone)]
pub struct RateLimiter {
    limit: usize,
    spacing: Duration,
    min_gap: Duration,
    starts: VecDeque<Instant>,
}

impl Default for RateLimiter {
    fn default() -> Self {
        Self::bigpanda()
    }
}

impl RateLimiter {
    /// `limit` starts per `window`, each window stretched by `margin`. A `limit` of 0 is
    /// treated as 1 so that the limiter can never wedge its caller forever.
    pub fn new(limit: usize, window: Duration, margin: Duration) -> Self {
        let limit = limit.max(1);
        Self {
            limit,
            spacing: window + margin,
            min_gap: window / limit as u32 * 39 / 40,
            starts: VecDeque::with_capacity(limit + 1),
        }
    }

    /// BigPanda's documented limit: 5 per second, with [`BIGPANDA_SAFETY_MARGIN`].
    pub fn bigpanda() -> Self {
        Self::new(
            BIGPANDA_REQUESTS_PER_WINDOW,
            BIGPANDA_WINDOW,
            BIGPANDA_SAFETY_MARGIN,
        )
    }

    /// The earliest instant, not before `now`, at which one more start is allowed; nothing is
    /// taken.
    pub fn free_at(&self, now: Instant) -> Instant {
        // Reservations may lie in the future; never hand out an instant before the latest one,
        // so `starts` stays sorted.
        let mut at = now;
        if let Some(&last) = self.starts.back() {
            at = at.max(last + self.min_gap);
        }
        if self.starts.len() >= self.limit {
            if let Some(&oldest) = self.starts.front() {
                at = at.max(oldest + self.spacing);
            }
        }
        at
    }

    fn record(&mut self, at: Instant) {
        self.starts.push_back(at);
        while self.starts.len() > self.limit {
            self.starts.pop_front();
        }
    }

    /// Reserves the next free slot and returns when it begins (`now` if one is free now). The
    /// caller must start its request at (or after) the returned instant. Reservations queue
    /// up, so a caller that will not wait should use [`RateLimiter::try_acquire`] instead.
    pub fn next_slot(&mut self, now: Instant) -> Instant {
        let at = self.free_at(now);
        self.record(at);
        at
    }

    /// Takes a slot starting `now` if one is free; otherwise says when to try again (nothing
    /// is reserved, so waiters do not queue behind each other).
    pub fn try_acquire(&mut self, now: Instant) -> Result<(), Instant> {
        let at = self.free_at(now);
        if at <= now {
            self.record(now);
            Ok(())
        } else {
            Err(at)
        }
    }
}

/// Base and cap of the retry schedule: 1 s, 2 s, 4 s, … up to 5 minutes.
pub const BACKOFF_BASE: Duration = Duration::from_secs(1);
pub const BACKOFF_CAP: Duration = Duration::from_secs(5 * 60);

/// Delay before retry number `attempt` (1 = after the first failure): exponential with full
/// jitter (uniform in `[0, min(cap, base·2^(attempt-1))]`), so that many closes failing together
/// do not retry together; never shorter than BigPanda's `Retry-After`.
pub fn backoff(attempt: u32, retry_after: Option<Duration>) -> Duration {
    backoff_with(attempt, retry_after, &mut rand::thread_rng())
}

/// [`backoff`] with an injected random source, for tests.
pub fn backoff_with<R: Rng + ?Sized>(
    attempt: u32,
    retry_after: Option<Duration>,
    rng: &mut R,
) -> Duration {
    let ceiling = backoff_ceiling(attempt);
    let jittered = Duration::from_millis(rng.gen_range(0..=duration_millis(ceiling)));
    match retry_after {
        Some(floor) => jittered.max(floor),
        None => jittered,
    }
}

/// The upper bound of the jitter range for `attempt`.
pub fn backoff_ceiling(attempt: u32) -> Duration {
    let doublings = attempt.saturating_sub(1).min(32);
    let ceiling = BACKOFF_BASE.saturating_mul(1u32 << doublings.min(31));
    ceiling.min(BACKOFF_CAP)
}

fn duration_millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}
