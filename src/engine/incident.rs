//! The actor that owns one incident's alert: applies inputs one at a time, persists each step
//! before anyone hears of it, and answers close claims from the BigPanda client.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::oneshot;

use crate::lifecycle::{self, Alert, Ctx, Effect, Input};
use crate::store::StoredAlert;

use super::{AlertKey, EngineError, Shared};

/// What a caller gets back from an applied input, once it is on disk.
pub struct Pending {
    pub alert: Arc<Alert>,
    pub outcome: lifecycle::Outcome,
}

/// One delivery of an input to an incident actor. The actor and the caller race to claim it:
/// the actor by starting on it, the caller by abandoning it after its timeout. Whoever wins
/// decides, so an input is either applied and answered, or never applied at all.
#[derive(Default)]
pub struct Delivery(AtomicU8);

const PENDING: u8 = 0;
const STARTED: u8 = 1;
const ABANDONED: u8 = 2;

impl Delivery {
    /// The actor claims the delivery; false if the caller abandoned it first.
    fn start(&self) -> bool {
        self.0
            .compare_exchange(PENDING, STARTED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
    /// The caller gives up; false if the actor already started (then its answer will come).
    pub fn abandon(&self) -> bool {
        self.0
            .compare_exchange(PENDING, ABANDONED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }
    /// Whether the actor had started on it (a lost reply then means it crashed on it).
    pub fn started(&self) -> bool {
        self.0.load(Ordering::Acquire) == STARTED
    }
}

pub enum IncidentMsg {
    Apply {
        /// Shared with the caller, which may have to deliver it again to a fresh actor.
        input: Arc<Input>,
        reply: oneshot::Sender<Result<Pending, EngineError>>,
        /// Who gets to decide this delivery's fate: the actor when it starts on it, or the
        /// caller when it gives up waiting. See [`Delivery`].
        delivery: Arc<Delivery>,
    },
    /// Is a close for `epoch` still owed? Answers the alert if so (rule 9).
    ClaimClose {
        epoch: u32,
        reply: oneshot::Sender<Result<Option<Alert>, EngineError>>,
    },
    /// Sent by the router once it has taken this actor out of the directory, so no input can
    /// be cast to it after this; every input cast before is ahead of it in the mailbox.
    Retire,
}

pub struct IncidentActor;

pub struct IncidentArgs {
    pub key: AlertKey,
    pub shared: Arc<Shared>,
}

pub struct IncidentState {
    key: AlertKey,
    /// `None` until the first input that needs it reads the alert from the store.
    alert: Option<Option<StoredAlert>>,
    shared: Arc<Shared>,
}

impl IncidentState {
    /// The stored alert, read on first use. Not in `pre_start`: the router awaits that, and
    /// a store read there would hold up the routing of every other incident meanwhile. A read
    /// that fails is answered to the input that needed it and tried again by the next one.
    fn load(&mut self) -> Result<(), EngineError> {
        if self.alert.is_none() {
            let stored = self
                .shared
                .store
                .load_alert(&self.key.source_id, &self.key.incident_id)?;
            self.alert = Some(stored);
        }
        Ok(())
    }

    /// The alert as stored (once `load` succeeded); `None` for an incident not seen yet.
    fn stored(&self) -> Option<&StoredAlert> {
        self.alert.as_ref().and_then(Option::as_ref)
    }
}

impl Actor for IncidentActor {
    type Msg = IncidentMsg;
    type State = IncidentState;
    type Arguments = IncidentArgs;

    async fn pre_start(
        &self,
        _myself: ActorRef<Self::Msg>,
        args: IncidentArgs,
    ) -> Result<IncidentState, ActorProcessingErr> {
        Ok(IncidentState {
            key: args.key,
            alert: None,
            shared: args.shared,
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: IncidentMsg,
        state: &mut IncidentState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            IncidentMsg::Apply {
                input,
                reply,
                delivery,
            } => {
                if !delivery.start() {
                    // The caller gave up (and answered 503) before we got here: applying it
                    // now would change state that nobody acknowledged.
                    return Ok(());
                }
                #[cfg(feature = "fault-injection")]
                crate::faults::before_apply(&input);
                // Boxed: the step's future lives only while it runs, instead of widening
                // every idle actor's task by its size (about 0.5 KB each).
                let result = Box::pin(apply(state, input)).await;
                let _ = reply.send(result);
            }
            IncidentMsg::ClaimClose { epoch, reply } => {
                #[cfg(feature = "fault-injection")]
                crate::faults::before_claim(&state.key.incident_id);
                let claim = state.load().map(|()| {
                    state
                        .stored()
                        .map(|s| &*s.alert)
                        .filter(|a| a.close_claimable(epoch))
                        .cloned()
                });
                let _ = reply.send(claim);
            }
            IncidentMsg::Retire => myself.stop(None),
        }
        Ok(())
    }
}

/// One step: compute, persist, wait for the flush, and only then adopt the new state and
/// answer. A failed write or flush leaves the actor's state and the store as they were, so
/// neither memory nor the store runs ahead of what callers were told. Waiting here serialises
/// only this incident's inputs on the flush; other incidents share the same group commit.
async fn apply(state: &mut IncidentState, input: Arc<Input>) -> Result<Pending, EngineError> {
    state.load()?;
    let stored = state.stored();
    let shared = &state.shared;
    let ctx = Ctx {
        now: super::now_millis(),
        new_alert_id: if stored.is_none() {
            shared.new_alert_id()
        } else {
            String::new()
        },
        source_id: state.key.source_id.clone(),
    };
    let Some(step) = lifecycle::step(stored.map(|s| &*s.alert), &input, &ctx) else {
        return Err(EngineError::NotFound);
    };
    // Nothing of the step is readable, nor survives a restart, unless this resolves with Ok.
    let (durable, tail) = shared.store.write_step(stored, &step)?;
    durable
        .await
        .unwrap_or(Err(crate::store::StoreError::Closed))?;
    let enqueued: Vec<_> = step
        .effects
        .iter()
        .filter_map(|e| match e {
            Effect::Enqueue(msg) => Some(msg.clone()),
            Effect::Dequeue(_) => None,
        })
        .collect();
    if !enqueued.is_empty() {
        shared.notify_outbox(enqueued);
    }
    if matches!(*input, Input::Webhook(_)) {
        shared.metrics.count_outcome(step.outcome);
    }
    // The actor and the caller share the new alert: no copy of it per step.
    let alert = Arc::new(step.alert);
    state.alert = Some(Some(StoredAlert::after(Arc::clone(&alert), tail)));
    Ok(Pending {
        alert,
        outcome: step.outcome,
    })
}
