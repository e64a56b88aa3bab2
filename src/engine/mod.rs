//! The actor engine: one supervised actor per incident, a router that owns them, and the
//! handle the HTTP layer and the BigPanda client use to reach them.
//!
//! Thin shells around `lifecycle`: actors hold state and order inputs; the rules live in the
//! pure `step`. A caller is answered only after its step is durable.

pub mod closer;
mod incident;
mod router;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use ractor::{Actor, ActorRef};
use tokio::sync::{mpsc, oneshot};

use crate::lifecycle::{Alert, Input, Outbound, Outcome};
use crate::metrics::Metrics;
use crate::store::{Store, StoreError};

use incident::{Delivery, IncidentMsg};
use router::{Directory, Router, RouterArgs, RouterMsg};

/// How often one input is handed to an incident actor before the caller gets 503: enough for
/// two crashes of its own plus losses caused by other inputs' crashes.
const MAX_DELIVERIES: usize = 5;

/// How long a caller waits for an incident actor before giving up with 503.
pub const DEFAULT_REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// One alert per alert source and BigPanda incident.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AlertKey {
    pub source_id: String,
    pub incident_id: String,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum EngineError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("no such alert")]
    NotFound,
    #[error("the incident's actor stopped before answering")]
    ActorLost,
    #[error("the incident's actor did not answer in time")]
    Timeout,
    #[error("the engine is shutting down")]
    ShuttingDown,
}

pub fn now_millis() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// State shared by the router and every incident actor.
pub struct Shared {
    pub store: Store,
    pub metrics: Arc<Metrics>,
    ids: Mutex<ulid::Generator>,
    outbox_tx: OnceLock<mpsc::UnboundedSender<Vec<Outbound>>>,
}

impl Shared {
    /// A new time-ordered alert id; monotonic even within one millisecond.
    fn new_alert_id(&self) -> String {
        let mut ids = self.ids.lock().unwrap_or_else(|p| p.into_inner());
        match ids.generate() {
            Ok(id) => id.to_string(),
            Err(_) => ulid::Ulid::new().to_string(),
        }
    }

    /// Tells the outbound sender about new outbox entries, which are durable already (the actor
    /// calls this only after its step's flush). The entries are in the store either way; this
    /// only saves the sender a scan.
    fn notify_outbox(&self, msgs: Vec<Outbound>) {
        if let Some(tx) = self.outbox_tx.get() {
            let _ = tx.send(msgs);
        }
    }
}

/// The result of an input, once durable.
#[derive(Debug, Clone)]
pub struct Applied {
    /// Shared with the incident's actor.
    pub alert: Arc<Alert>,
    pub outcome: Outcome,
}

#[derive(Clone)]
pub struct Engine {
    router: ActorRef<RouterMsg>,
    /// Live incident actors, cast to directly; the router is asked only for the others.
    directory: Arc<Directory>,
    shared: Arc<Shared>,
    reply_timeout: Duration,
}

#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Incident actors with no input for this long are stopped; their state stays in the store.
    pub idle_timeout: Duration,
    /// At most this many incident actors live at once (about 11-14 KB each with their alert,
    /// most of it ractor's mailboxes; docs/performance.md);
    /// beyond it the least recently used retire early.
    pub max_live_actors: usize,
    /// How long a caller waits for its incident actor before answering 503.
    pub reply_timeout: Duration,
}

/// Default cap on live incident actors: ~110-140 MB of actors and their alerts at most.
pub const DEFAULT_MAX_LIVE_ACTORS: usize = 10_000;

impl Default for EngineOptions {
    fn default() -> Self {
        EngineOptions {
            idle_timeout: Duration::from_secs(300),
            max_live_actors: DEFAULT_MAX_LIVE_ACTORS,
            reply_timeout: DEFAULT_REPLY_TIMEOUT,
        }
    }
}

impl Engine {
    pub async fn start(
        store: Store,
        metrics: Arc<Metrics>,
        opts: EngineOptions,
    ) -> Result<Engine, String> {
        let shared = Arc::new(Shared {
            store,
            metrics,
            ids: Mutex::new(ulid::Generator::new()),
            outbox_tx: OnceLock::new(),
        });
        let directory = Arc::new(Directory::default());
        let args = RouterArgs {
            shared: Arc::clone(&shared),
            directory: Arc::clone(&directory),
            idle_timeout: opts.idle_timeout,
            max_live: opts.max_live_actors,
        };
        let (router, _join) = Actor::spawn(None, Router, args)
            .await
            .map_err(|e| format!("cannot start the engine: {e}"))?;
        Ok(Engine {
            router,
            directory,
            shared,
            reply_timeout: opts.reply_timeout,
        })
    }

    pub fn store(&self) -> &Store {
        &self.shared.store
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.shared.metrics
    }

    /// Subscribes the outbound sender to new outbox entries. Only the first call takes effect.
    pub fn subscribe_outbox(&self) -> Option<mpsc::UnboundedReceiver<Vec<Outbound>>> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.shared.outbox_tx.set(tx).ok().map(|_| rx)
    }

    /// Hands a message to the incident's live actor directly, or else to the router, which
    /// starts the actor (or queues the message for the successor of one that is retiring).
    fn send(&self, key: &AlertKey, msg: IncidentMsg) -> Result<(), EngineError> {
        let Err(msg) = self.directory.cast(key, msg) else {
            return Ok(());
        };
        let msg = RouterMsg::Route {
            key: key.clone(),
            msg,
        };
        self.router.cast(msg).map_err(|_| EngineError::ShuttingDown)
    }

    async fn ask<T>(
        &self,
        key: &AlertKey,
        make: impl FnOnce(oneshot::Sender<Result<T, EngineError>>) -> IncidentMsg,
    ) -> Result<T, EngineError> {
        let (tx, rx) = oneshot::channel();
        self.send(key, make(tx))?;
        match tokio::time::timeout(self.reply_timeout, rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(EngineError::ActorLost),
            Err(_) => Err(EngineError::Timeout),
        }
    }

    /// Applies one input to the incident's alert and returns once the result is durable.
    ///
    /// If the actor dies before answering, the input is sent again to a fresh actor restored
    /// from the store. Only deaths that happened while *this* input was being handled count as
    /// its crashes: inputs queued behind a crashing one lose their replies too, through no fault
    /// of their own. A webhook that crashes its actor twice is quarantined.
    pub async fn apply(&self, key: &AlertKey, input: Input) -> Result<Applied, EngineError> {
        let input = Arc::new(input);
        let mut crashes = 0;
        for n in 0..MAX_DELIVERIES {
            if n > 0 {
                self.shared.metrics.redeliveries.inc();
            }
            let delivery = Arc::new(Delivery::default());
            let attempt = self.deliver(key, Arc::clone(&input), &delivery).await;
            match attempt {
                Err(EngineError::ActorLost) => {
                    if delivery.started() {
                        crashes += 1;
                    }
                    if crashes >= 2 {
                        return self.quarantine(key, &input).await;
                    }
                }
                other => {
                    let pending = other?;
                    return Ok(Applied {
                        alert: pending.alert,
                        outcome: pending.outcome,
                    });
                }
            }
        }
        Err(EngineError::ActorLost)
    }

    /// Hands one delivery of an input to the incident's actor and waits for its answer. On
    /// timeout the delivery is abandoned if the actor has not started on it (so it is never
    /// applied after the caller answered 503); if it has started, its answer is awaited once
    /// more, since it is about to change state.
    async fn deliver(
        &self,
        key: &AlertKey,
        input: Arc<Input>,
        delivery: &Arc<Delivery>,
    ) -> Result<incident::Pending, EngineError> {
        let (tx, mut rx) = oneshot::channel();
        self.send(
            key,
            IncidentMsg::Apply {
                input,
                reply: tx,
                delivery: Arc::clone(delivery),
            },
        )?;
        let answer = match tokio::time::timeout(self.reply_timeout, &mut rx).await {
            Ok(answer) => answer,
            Err(_) if delivery.abandon() => return Err(EngineError::Timeout),
            Err(_) => tokio::time::timeout(self.reply_timeout, rx)
                .await
                .map_err(|_| EngineError::Timeout)?,
        };
        answer.unwrap_or(Err(EngineError::ActorLost))
    }

    /// Twice is a pattern, not bad luck: a webhook that crashed its actor twice is recorded as a
    /// poison event, so that BigPanda, which resends until it gets a 2xx, stops feeding it to us.
    async fn quarantine(&self, key: &AlertKey, input: &Input) -> Result<Applied, EngineError> {
        let Input::Webhook(snap) = input else {
            return Err(EngineError::ActorLost);
        };
        let event_type = snap.event_type.as_str().to_string();
        let quarantine = Input::Quarantine {
            incident_id: snap.incident_id.clone(),
            event_type: snap.event_type.clone(),
            version: snap.version,
            reason: "processing this event crashed the incident actor twice".into(),
        };
        let delivery = Arc::new(Delivery::default());
        let pending = self.deliver(key, Arc::new(quarantine), &delivery).await?;
        self.shared.metrics.poison_events.inc();
        tracing::error!(source_id = %key.source_id, incident_id = %key.incident_id,
            event_type = %event_type,
            "A webhook crashed its incident actor twice; it is quarantined in the alert's history.");
        Ok(Applied {
            alert: pending.alert,
            outcome: pending.outcome,
        })
    }

    /// Applies an input to an alert known by id (local resolve, retry-close, close results).
    pub async fn apply_to_alert(
        &self,
        alert_id: &str,
        input: Input,
    ) -> Result<Applied, EngineError> {
        let alert = self
            .shared
            .store
            .alert(alert_id)?
            .ok_or(EngineError::NotFound)?;
        let key = AlertKey {
            source_id: alert.source_id,
            incident_id: alert.incident_id,
        };
        self.apply(&key, input).await
    }

    /// Asks the incident's actor whether a close for `epoch` is still owed, and returns the alert
    /// if it is. The answer reflects every input answered before the question was sent.
    pub async fn claim_close(
        &self,
        key: &AlertKey,
        epoch: u32,
    ) -> Result<Option<Alert>, EngineError> {
        self.ask(key, |reply| IncidentMsg::ClaimClose { epoch, reply })
            .await
    }

    pub async fn live_actors(&self) -> usize {
        ractor::call_t!(self.router, RouterMsg::LiveActors, 5_000).unwrap_or(0)
    }

    /// Stops every actor (their state is already persisted) and makes the store durable.
    pub async fn shutdown(&self) {
        let _ = self
            .router
            .stop_and_wait(Some("shutdown".into()), Some(Duration::from_secs(10)))
            .await;
        let store = self.shared.store.clone();
        let _ = tokio::task::spawn_blocking(move || store.close()).await;
    }
}

#[cfg(test)]
mod tests;
