//! The BigPanda client actor: the one place that sends outbox entries to BigPanda.
//!
//! It keeps a schedule of the outbox (loaded from the store at start, fed by the engine after
//! each durable enqueue, and re-read periodically as a safety net) and sends due entries through
//! the shared [`BigPandaApi`], whose limiter keeps every call within BigPanda's 5 requests per
//! second. For each entry it waits until a rate-limit slot is about to free, asks the incident's
//! actor whether the close is still owed at that epoch (rule 9), and only then takes the slot
//! and sends. The reply goes back to the incident's actor as a `CloseResult` input, so the
//! alert, its history and the outbox change in one atomic step. A 401/403 pauses every send
//! until a key is stored and validated.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::time::Instant;

use super::{now_millis, AlertKey, Engine};
use crate::bigpanda::client::{backoff, ApiKey, BigPandaApi, ResolveOutcome};
use crate::lifecycle::{CloseReply, Input, Millis, Outbound, OutboundKey};
use crate::sources::Sources;
use crate::store::{IntegrationRecord, Store};

/// Closes being worked on at once. The limiter paces them; this only bounds tasks and sockets
/// when BigPanda answers slowly.
const MAX_IN_FLIGHT: usize = 8;
const TICK: Duration = Duration::from_millis(50);
const RESCAN: Duration = Duration::from_secs(30);
/// A close is claimed this long before its rate-limit slot frees: claims that take less cost
/// the pace nothing.
const CLAIM_AHEAD: Duration = Duration::from_millis(20);
/// A claim older than this when its slot comes (a key validation took the slot) is made again.
const STALE_CLAIM: Duration = Duration::from_millis(40);
/// A claim holds up every close behind it, so one that takes longer than this (its incident
/// is busy: a burst of webhooks, a slow disk; a claim normally takes a few ms) is retried
/// `ENGINE_RETRY` later. About one slot of the pace.
const CLAIM_TIMEOUT: Duration = Duration::from_millis(250);
/// A close stopped because its key was rejected is due again this long after: by then the
/// closer has paused (nothing is sent until a key is stored and validated), or a key has been
/// stored and validated and it goes out with that.
const REJECTED_KEY_RECHECK: Duration = Duration::from_secs(1);
/// When the engine itself could not take a claim or a result (store trouble), try again later.
const ENGINE_RETRY: Duration = Duration::from_secs(5);

pub enum CloserMsg {
    /// New outbox entries, durable already.
    Enqueued(Vec<Outbound>),
    Tick,
    /// Re-read the outbox from the store.
    Rescan,
    /// A send finished; what to do with its entry next.
    Finished {
        key: OutboundKey,
        next: Next,
        /// The key the send used: a rejection of a key that has since been replaced must not
        /// pause (or mark unhealthy) the new one.
        sent_with: ApiKey,
    },
    /// The stored integration changed (new key, removed key).
    IntegrationChanged,
}

#[derive(Debug)]
pub enum Next {
    /// Delivered, failed for good, or no longer owed: the entry has left the outbox.
    Done,
    RetryAt(Instant),
    /// BigPanda rejected the key: hold everything until a new key is stored. `sent_at` is when
    /// the rejected request left, to tell it from a key validated again since.
    Paused {
        error: String,
        sent_at: Millis,
    },
}

struct Item {
    msg: Outbound,
    due: Instant,
}

pub struct Closer;

pub struct CloserArgs {
    pub engine: Engine,
    pub sources: Sources,
    pub api: BigPandaApi,
}

struct Deps {
    engine: Engine,
    sources: Sources,
    api: BigPandaApi,
    /// Held from waiting for a rate-limit slot to taking it (see `deliver`).
    slot_turn: tokio::sync::Mutex<()>,
    /// The key BigPanda last answered 401/403 to, until a key is stored healthy again: the
    /// sends already in flight with it stop before taking a slot instead of each collecting
    /// its own 401 (and a history entry on its alert).
    rejected: std::sync::Mutex<Option<ApiKey>>,
}

impl Deps {
    fn rejected(&self) -> std::sync::MutexGuard<'_, Option<ApiKey>> {
        self.rejected.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub struct CloserState {
    deps: Arc<Deps>,
    items: HashMap<OutboundKey, Item>,
    in_flight: HashSet<OutboundKey>,
    /// The key and URL to send with; `None` when no integration is stored.
    credentials: Option<Credentials>,
    paused: bool,
}

struct Credentials {
    key: ApiKey,
    url: String,
    /// When this key was last validated against BigPanda (the integration record's).
    validated_at: Millis,
}

fn store(deps: &Deps) -> &Store {
    deps.engine.store()
}

/// Turns a wall-clock due time (ms) into the tokio clock.
fn due_at(at: Option<Millis>) -> Instant {
    let now = Instant::now();
    let wait_ms = at.map_or(0, |ms| ms.saturating_sub(now_millis()).max(0));
    // A far-future time (a clock jump, a bad record) must not overflow the Instant: cap it.
    let wait = Duration::from_millis(wait_ms as u64).min(Duration::from_secs(24 * 3600));
    now.checked_add(wait).unwrap_or(now)
}

impl Actor for Closer {
    type Msg = CloserMsg;
    type State = CloserState;
    type Arguments = CloserArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<CloserMsg>,
        args: CloserArgs,
    ) -> Result<CloserState, ActorProcessingErr> {
        let mut state = CloserState {
            deps: Arc::new(Deps {
                engine: args.engine,
                sources: args.sources,
                api: args.api,
                slot_turn: tokio::sync::Mutex::new(()),
                rejected: std::sync::Mutex::new(None),
            }),
            items: HashMap::new(),
            in_flight: HashSet::new(),
            credentials: None,
            paused: false,
        };
        state.load_integration();
        state.rescan();
        myself.send_interval(TICK, || CloserMsg::Tick);
        myself.send_interval(RESCAN, || CloserMsg::Rescan);
        Ok(state)
    }

    async fn handle(
        &self,
        myself: ActorRef<CloserMsg>,
        msg: CloserMsg,
        state: &mut CloserState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            CloserMsg::Enqueued(msgs) => {
                for m in msgs {
                    state.add(m, Instant::now());
                }
                state.dispatch(&myself);
            }
            CloserMsg::Tick => {
                state.dispatch(&myself);
                state.report();
            }
            CloserMsg::Rescan => state.rescan(),
            CloserMsg::Finished {
                key,
                next,
                sent_with,
            } => {
                state.in_flight.remove(&key);
                match next {
                    Next::Done => {
                        state.items.remove(&key);
                    }
                    Next::RetryAt(at) => {
                        if let Some(item) = state.items.get_mut(&key) {
                            item.due = at;
                        }
                    }
                    Next::Paused { error, sent_at } => {
                        // A 401 counts against the key in use only if the request left after
                        // that key was last validated: a key replaced, or stored and validated
                        // again, while the request was out is not paused by it.
                        let current = state.credentials.as_ref();
                        if current.is_some_and(|c| c.key == sent_with && c.validated_at <= sent_at)
                        {
                            *state.deps.rejected() = Some(sent_with.clone());
                            state.pause(error, &sent_with, sent_at);
                        } else if let Some(item) = state.items.get_mut(&key) {
                            item.due = Instant::now();
                        }
                    }
                }
                state.dispatch(&myself);
            }
            CloserMsg::IntegrationChanged => {
                state.load_integration();
                state.dispatch(&myself);
            }
        }
        Ok(())
    }
}

impl CloserState {
    fn add(&mut self, msg: Outbound, due: Instant) {
        self.items.entry(msg.key()).or_insert(Item { msg, due });
    }

    fn load_integration(&mut self) {
        let metrics = self.deps.engine.metrics();
        match store(&self.deps).integration() {
            Ok(Some(rec)) => match ApiKey::new(&rec.api_key) {
                Ok(key) => {
                    self.paused = !rec.healthy;
                    if rec.healthy {
                        // Stored and validated again (the same key or a new one).
                        *self.deps.rejected() = None;
                    }
                    self.credentials = Some(Credentials {
                        key,
                        url: rec.api_url,
                        validated_at: rec.validated_at,
                    });
                    metrics.integration_healthy.set(i64::from(rec.healthy));
                }
                Err(_) => {
                    self.credentials = None;
                    metrics.integration_healthy.set(0);
                }
            },
            Ok(None) => {
                self.credentials = None;
                metrics.integration_healthy.set(0);
            }
            Err(e) => {
                tracing::warn!(error = %e, "Could not read the BigPanda integration; closes wait.")
            }
        }
    }

    /// Adds every stored outbox entry not yet scheduled, due when its alert says.
    fn rescan(&mut self) {
        let entries = match store(&self.deps).outbox() {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "Could not read the outbox; will try again.");
                return;
            }
        };
        for msg in entries {
            if self.items.contains_key(&msg.key()) {
                continue;
            }
            let Outbound::Close { alert_id, .. } = &msg;
            let next = store(&self.deps)
                .alert(alert_id)
                .ok()
                .flatten()
                .and_then(|a| a.close_sync.next_attempt_at);
            self.add(msg, due_at(next));
        }
    }

    fn pause(&mut self, error: String, rejected: &ApiKey, rejected_at: Millis) {
        if self.paused {
            return;
        }
        self.paused = true;
        self.deps.engine.metrics().integration_healthy.set(0);
        tracing::error!(error = %error,
            "BigPanda rejected the API key: closes are paused (kept, not dropped) until a valid key is stored.");
        // Recorded in the background: the store serialises integration writes, and a PUT
        // that stored a new key meanwhile (its change notice may still be in our mailbox)
        // must not be overwritten, so the key is compared inside that serialised update.
        let store = store(&self.deps).clone();
        let rejected = rejected.expose_secret().to_string();
        tokio::spawn(async move {
            let update = store.update_integration(move |mut rec| {
                // The same key validated again after this rejection is trusted again.
                (rec.api_key == rejected && rec.validated_at <= rejected_at).then(|| {
                    rec.healthy = false;
                    rec.last_error = Some(error);
                    rec
                })
            });
            if let Err(e) = update.await {
                tracing::warn!(error = %e, "Could not record the integration as unhealthy.");
            }
        });
    }

    fn dispatch(&mut self, myself: &ActorRef<CloserMsg>) {
        if self.paused || self.in_flight.len() >= MAX_IN_FLIGHT {
            return;
        }
        let Some((key, url)) = self
            .credentials
            .as_ref()
            .map(|c| (c.key.clone(), c.url.clone()))
        else {
            return;
        };
        let now = Instant::now();
        let mut due: Vec<(&OutboundKey, &Item)> = self
            .items
            .iter()
            .filter(|(k, item)| item.due <= now && !self.in_flight.contains(*k))
            .collect();
        due.sort_by_key(|(_, item)| item.due);
        let room = MAX_IN_FLIGHT - self.in_flight.len();
        let picked: Vec<(OutboundKey, Outbound)> = due
            .into_iter()
            .take(room)
            .map(|(k, item)| (k.clone(), item.msg.clone()))
            .collect();
        for (okey, msg) in picked {
            self.in_flight.insert(okey.clone());
            let deps = Arc::clone(&self.deps);
            let me = myself.clone();
            let (api_key, api_url) = (key.clone(), url.clone());
            tokio::spawn(async move {
                let next = deliver(&deps, msg, &api_key, &api_url).await;
                let _ = me.cast(CloserMsg::Finished {
                    key: okey,
                    next,
                    sent_with: api_key,
                });
            });
        }
    }

    fn report(&self) {
        let metrics = self.deps.engine.metrics();
        metrics.outbox_depth.set(self.items.len() as i64);
        let oldest = self
            .items
            .values()
            .map(|i| match &i.msg {
                Outbound::Close { requested_at, .. } => *requested_at,
            })
            .min();
        let age = oldest
            .map(|t| (now_millis() - t).max(0) as f64 / 1000.0)
            .unwrap_or(0.0);
        metrics.outbox_oldest_age_seconds.set(age);
    }
}

/// One delivery attempt: wait for a slot, claim, take the slot, send, record.
async fn deliver(deps: &Deps, msg: Outbound, api_key: &ApiKey, api_url: &str) -> Next {
    let Outbound::Close {
        source_id,
        incident_id,
        epoch,
        comment,
        ..
    } = msg;
    let key = AlertKey {
        source_id,
        incident_id,
    };
    let (alert, environment) = {
        // One delivery at a time claims and takes a slot (in the order they asked: tokio's
        // mutex is fair), so the ones in flight do not all wake for one slot.
        let _turn = deps.slot_turn.lock().await;
        loop {
            // Claim just before the slot frees, so that a claim shorter than the lead costs
            // the pace nothing, and the claim is about that old when the close leaves (never
            // over `STALE_CLAIM`).
            deps.api.wait_until_slot_free(CLAIM_AHEAD).await;
            let claim = tokio::time::timeout(CLAIM_TIMEOUT, deps.engine.claim_close(&key, epoch));
            let alert = match claim.await {
                Ok(Ok(Some(alert))) => alert,
                // Re-fired, echoed or already settled: the step that did it also emptied the
                // outbox.
                Ok(Ok(None)) => return Next::Done,
                Ok(Err(e)) => {
                    tracing::warn!(incident_id = %key.incident_id, error = %e, "Could not claim a close; will retry.");
                    return Next::RetryAt(Instant::now() + ENGINE_RETRY);
                }
                // The incident is busy (a burst of webhooks, a slow disk): let the other closes
                // go first instead of holding the turn.
                Err(_) => {
                    tracing::warn!(incident_id = %key.incident_id, timeout_ms = CLAIM_TIMEOUT.as_millis() as u64,
                        "The incident did not answer a close's claim in time; will retry.");
                    return Next::RetryAt(Instant::now() + ENGINE_RETRY);
                }
            };
            let claimed = Instant::now();
            let environment = alert.environment_id.clone().or_else(|| {
                deps.sources
                    .get(&alert.source_id)
                    .and_then(|s| s.default_environment_id)
            });
            // Nothing will be sent: no slot is used.
            if environment.is_none() {
                break (alert, None);
            }
            deps.api.wait_until_slot_free(Duration::ZERO).await;
            // BigPanda rejected this key while we waited: the closer pauses, and this close
            // goes out with the next key stored.
            if deps.rejected().as_ref() == Some(api_key) {
                return Next::RetryAt(Instant::now() + REJECTED_KEY_RECHECK);
            }
            // The slot is taken after the check and the request is handed to the HTTP client
            // right after, so the start the limiter counts is when the request leaves. If a
            // key validation took the slot meanwhile, the claim has aged: check again.
            if claimed.elapsed() <= STALE_CLAIM && deps.api.try_take_slot() {
                break (alert, environment);
            }
        }
    };
    let metrics = deps.engine.metrics();
    let (reply, elapsed, next) = match environment {
        None => (CloseReply::NoEnvironment, Duration::ZERO, Next::Done),
        Some(env) => {
            let sent_at = now_millis();
            let result = deps
                .api
                .resolve_incident_in_slot(api_url, api_key, &env, &key.incident_id, &comment)
                .await;
            let attempt = alert.close_sync.attempts + 1;
            let (reply, next) = classify(result.outcome, attempt, sent_at);
            (reply, result.elapsed, next)
        }
    };
    metrics.count_close_attempt(result_label(&reply));
    tracing::info!(incident_id = %key.incident_id, alert_id = %alert.id, epoch, result = result_label(&reply),
        elapsed_ms = elapsed.as_millis() as u64, "Close attempt finished.");
    let input = Input::CloseResult {
        epoch,
        reply,
        duration_ms: elapsed.as_millis() as u64,
    };
    match deps.engine.apply(&key, input).await {
        Ok(_) => next,
        Err(e) => {
            tracing::warn!(incident_id = %key.incident_id, error = %e,
                "Could not record a close result; the close will be sent again.");
            Next::RetryAt(Instant::now() + ENGINE_RETRY)
        }
    }
}

fn classify(outcome: ResolveOutcome, attempt: u32, sent_at: Millis) -> (CloseReply, Next) {
    match outcome {
        ResolveOutcome::Delivered { status } => (CloseReply::Delivered { status }, Next::Done),
        ResolveOutcome::NotFound { status } => (CloseReply::NotFound { status }, Next::Done),
        ResolveOutcome::Unauthorized { status } => (
            CloseReply::Unauthorized { status },
            Next::Paused {
                error: format!(
                    "BigPanda answered HTTP {status} to a close: the API key was rejected"
                ),
                sent_at,
            },
        ),
        ResolveOutcome::Rejected { status, error } => (
            CloseReply::Rejected {
                status: Some(status),
                error,
            },
            Next::Done,
        ),
        ResolveOutcome::NotSent { error } => (
            CloseReply::Rejected {
                status: None,
                error,
            },
            Next::Done,
        ),
        ResolveOutcome::Retry {
            status,
            retry_after,
            error,
        } => {
            let wait = backoff(attempt, retry_after);
            let error = match status {
                Some(code) if !error.contains(&code.to_string()) => format!("HTTP {code}: {error}"),
                _ => error,
            };
            (
                CloseReply::Retry {
                    status,
                    error,
                    next_attempt_at: now_millis() + wait.as_millis() as i64,
                },
                Next::RetryAt(Instant::now() + wait),
            )
        }
    }
}

fn result_label(reply: &CloseReply) -> &'static str {
    match reply {
        CloseReply::Delivered { .. } => "delivered",
        CloseReply::NotFound { .. } => "not_found",
        CloseReply::Unauthorized { .. } => "unauthorized",
        CloseReply::Retry { .. } => "retry",
        CloseReply::NoEnvironment => "no_environment",
        CloseReply::Rejected { .. } => "rejected",
    }
}

/// Stores a validated integration record (used by the admin API).
pub fn integration_record(key: &ApiKey, api_url: &str) -> IntegrationRecord {
    IntegrationRecord {
        api_key: key.expose_secret().to_string(),
        api_url: api_url.to_string(),
        validated_at: now_millis(),
        healthy: true,
        last_error: None,
    }
}
