//! The actor that owns one incident's alert: applies inputs one at a time, persists each step
//! before anyone hears of it, and answers close claims from the BigPanda client.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use ractor::{Actor, ActorProcessingErr, ActorRef};
use tokio::sync::oneshot;

use crate::lifecycle::{self, Alert, Ctx, Effect, Input};
use crate::store::Store;

use super::{AlertKey, EngineError, Shared};

/// What a caller gets back from an applied input, once it is on disk.
pub struct Pending {
    pub alert: Alert,
    pub outcome: lifecycle::Outcome,
}

pub enum IncidentMsg {
    Apply {
        /// Shared with the caller, which may have to deliver it again to a fresh actor.
        input: Arc<Input>,
        reply: oneshot::Sender<Result<Pending, EngineError>>,
        /// Set when the actor starts on this input, so a caller whose reply is lost can tell a
        /// crash on its own input from one on an input queued ahead of it.
        started: Arc<AtomicBool>,
    },
    /// Is a close for `epoch` still owed? Answers the alert if so (rule 9).
    ClaimClose {
        epoch: u32,
        reply: oneshot::Sender<Result<Option<Alert>, EngineError>>,
    },
    /// Sent by the router once it has stopped routing to this actor; everything routed before
    /// it has been handled when it arrives.
    Retire,
}

pub struct IncidentActor;

pub struct IncidentArgs {
    pub key: AlertKey,
    pub shared: Arc<Shared>,
}

pub struct IncidentState {
    key: AlertKey,
    alert: Option<Alert>,
    shared: Arc<Shared>,
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
        let alert = load(&args.shared.store, &args.key)?;
        Ok(IncidentState {
            key: args.key,
            alert,
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
                started,
            } => {
                started.store(true, Ordering::Release);
                #[cfg(feature = "fault-injection")]
                crate::faults::before_apply(&input);
                let result = apply(state, input).await;
                let _ = reply.send(result);
            }
            IncidentMsg::ClaimClose { epoch, reply } => {
                let claim = state
                    .alert
                    .as_ref()
                    .filter(|a| a.close_claimable(epoch))
                    .cloned();
                let _ = reply.send(Ok(claim));
            }
            IncidentMsg::Retire => myself.stop(None),
        }
        Ok(())
    }
}

fn load(store: &Store, key: &AlertKey) -> Result<Option<Alert>, EngineError> {
    match store.alert_id_for(&key.source_id, &key.incident_id)? {
        Some(id) => Ok(store.alert(&id)?),
        None => Ok(None),
    }
}

/// One step: compute, persist, wait for the flush, and only then adopt the new state and
/// answer. A failed write or flush leaves the actor's state as it was and reverts the tree, so
/// neither memory nor the store runs ahead of what callers were told. Waiting here serialises
/// only this incident's inputs on the flush; other incidents share the same group commit.
async fn apply(state: &mut IncidentState, input: Arc<Input>) -> Result<Pending, EngineError> {
    let shared = &state.shared;
    let ctx = Ctx {
        now: super::now_millis(),
        new_alert_id: if state.alert.is_none() {
            shared.new_alert_id()
        } else {
            String::new()
        },
        source_id: state.key.source_id.clone(),
    };
    let Some(step) = lifecycle::step(state.alert.as_ref(), &input, &ctx) else {
        return Err(EngineError::NotFound);
    };
    let undo = shared.store.write_step(state.alert.as_ref(), &step)?;
    let flushed = match shared.store.durable().await {
        Ok(result) => result,
        Err(_) => Err(crate::store::StoreError::Closed),
    };
    if let Err(e) = flushed {
        if let Err(undo_err) = shared.store.undo(undo) {
            tracing::warn!(error = %undo_err, "Could not revert a step whose flush failed; it is unacknowledged.");
        }
        return Err(e.into());
    }
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
    let alert = step.alert;
    state.alert = Some(alert.clone());
    Ok(Pending {
        alert,
        outcome: step.outcome,
    })
}
