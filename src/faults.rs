//! Test-only fault injection (cargo feature `fault-injection`, enabled for `cargo test` only).
//!
//! Incident ids with these prefixes make the incident actor panic while applying a webhook, to
//! exercise supervision and quarantine end to end through the real binary:
//! - `pb-fault-panic-once-…`: panics the first time each such incident is applied in this
//!   process, then works (a transient crash: the retry on a fresh actor succeeds);
//! - `pb-fault-panic-always-…`: panics every time (a poison event);
//! - `pb-fault-slow-…`: takes 1.5 s to apply (a stuck disk), to test callers that give up;
//! - `pb-fault-claim-slow-…`: takes 40 ms to check that a close is still owed (an incident
//!   busy with other inputs), to test that the close sender's pacing counts when a request
//!   leaves, not when it began waiting.

use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::lifecycle::Input;

pub const PANIC_ONCE: &str = "pb-fault-panic-once-";
/// Webhooks for incidents with this prefix take [`SLOW_FOR`] to apply (a stuck disk, say).
pub const SLOW: &str = "pb-fault-slow-";
/// Long, so that a test's timeouts around it can leave a busy machine room on both sides.
pub const SLOW_FOR: std::time::Duration = std::time::Duration::from_millis(1500);
/// How many slow steps have begun, so that a test can act while one is under way.
pub static SLOW_STARTED: AtomicUsize = AtomicUsize::new(0);
pub const PANIC_ALWAYS: &str = "pb-fault-panic-always-";
/// Closes for incidents with this prefix take 40 ms to claim.
pub const CLAIM_SLOW: &str = "pb-fault-claim-slow-";

static PANICKED_ONCE: Mutex<Option<HashSet<String>>> = Mutex::new(None);

pub fn before_apply(input: &Input) {
    let Input::Webhook(snap) = input else { return };
    let id = snap.incident_id.as_str();
    if id.starts_with(SLOW) {
        SLOW_STARTED.fetch_add(1, Ordering::SeqCst);
        // Blocking on purpose: it stands for a step stuck in IO.
        std::thread::sleep(SLOW_FOR);
    }
    if id.starts_with(PANIC_ALWAYS) {
        panic!("injected fault: incident {id} always panics");
    }
    if id.starts_with(PANIC_ONCE) {
        let first = {
            let mut seen = PANICKED_ONCE.lock().unwrap_or_else(|p| p.into_inner());
            seen.get_or_insert_with(HashSet::new).insert(id.to_string())
        };
        if first {
            panic!("injected fault: incident {id} panics once");
        }
    }
}

pub fn before_claim(incident_id: &str) {
    if incident_id.starts_with(CLAIM_SLOW) {
        // Blocking on purpose, like `SLOW`: the actor is busy for that long.
        std::thread::sleep(std::time::Duration::from_millis(40));
    }
}
