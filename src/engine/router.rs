//! The supervisor of incident actors, and the only way to reach one.
//!
//! It owns the map from incident to actor, so routing, spawning, idle retirement and crash
//! replacement are serialised in one place and can never race: an incident has at most one
//! actor at any time, and its inputs are applied in the order they were routed (after a crash,
//! the inputs it lost are delivered again by their callers, behind those routed meanwhile).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ractor::{Actor, ActorCell, ActorId, ActorProcessingErr, ActorRef, SupervisionEvent};

use super::incident::{IncidentActor, IncidentArgs, IncidentMsg};
use super::{AlertKey, Shared};

pub enum RouterMsg {
    Route {
        key: AlertKey,
        msg: IncidentMsg,
    },
    /// Retire actors idle for longer than the idle timeout.
    Sweep,
    /// How many incident actors are alive (for tests and `/metrics`).
    LiveActors(ractor::RpcReplyPort<usize>),
}

enum Slot {
    Live {
        actor: ActorRef<IncidentMsg>,
        last_used: Instant,
    },
    /// Told to retire; inputs that arrive meanwhile wait here for its successor.
    Retiring {
        actor_id: ActorId,
        waiting: VecDeque<IncidentMsg>,
    },
}

pub struct Router;

/// How long the router waits for its incident actors to stop when it stops.
const CHILD_STOP_TIMEOUT: Duration = Duration::from_secs(5);

pub struct RouterState {
    shared: Arc<Shared>,
    idle_timeout: Duration,
    max_live: usize,
    slots: HashMap<AlertKey, Slot>,
    keys: HashMap<ActorId, AlertKey>,
}

pub struct RouterArgs {
    pub shared: Arc<Shared>,
    pub idle_timeout: Duration,
    /// Live actors beyond this retire the least recently used, so memory stays bounded even
    /// when many incidents are touched within one idle timeout.
    pub max_live: usize,
}

impl Actor for Router {
    type Msg = RouterMsg;
    type State = RouterState;
    type Arguments = RouterArgs;

    async fn pre_start(
        &self,
        myself: ActorRef<Self::Msg>,
        args: RouterArgs,
    ) -> Result<RouterState, ActorProcessingErr> {
        let period = (args.idle_timeout / 2).max(Duration::from_millis(50));
        myself.send_interval(period, || RouterMsg::Sweep);
        Ok(RouterState {
            shared: args.shared,
            idle_timeout: args.idle_timeout,
            max_live: args.max_live.max(1),
            slots: HashMap::new(),
            keys: HashMap::new(),
        })
    }

    async fn handle(
        &self,
        myself: ActorRef<Self::Msg>,
        msg: RouterMsg,
        state: &mut RouterState,
    ) -> Result<(), ActorProcessingErr> {
        match msg {
            RouterMsg::Route { key, msg } => state.route(&myself, key, msg).await,
            RouterMsg::Sweep => state.sweep(),
            RouterMsg::LiveActors(reply) => {
                let _ = reply.send(state.keys.len());
            }
        }
        Ok(())
    }

    /// Stops the incident actors and waits for them, so that once `Engine::shutdown` returns no
    /// actor still holds the store. Left to ractor, a stopping supervisor only kills its children
    /// without waiting: they kept sled open (an in-process reopen failed on sled's file lock) and
    /// could still be writing when `shutdown` closed the store.
    async fn post_stop(
        &self,
        myself: ActorRef<Self::Msg>,
        _state: &mut RouterState,
    ) -> Result<(), ActorProcessingErr> {
        // Not `stop_children_and_wait`: it does not wait for a child already stopping (retiring).
        let children = myself.get_children();
        for child in &children {
            child.stop(Some("shutdown".into()));
        }
        for child in children {
            let _ = child.wait(Some(CHILD_STOP_TIMEOUT)).await;
        }
        Ok(())
    }

    /// Overridden so that a child's exit never stops the router (ractor's default does).
    async fn handle_supervisor_evt(
        &self,
        myself: ActorRef<Self::Msg>,
        event: SupervisionEvent,
        state: &mut RouterState,
    ) -> Result<(), ActorProcessingErr> {
        match event {
            SupervisionEvent::ActorTerminated(cell, _, _) => {
                state.exited(&myself, &cell, None).await
            }
            SupervisionEvent::ActorFailed(cell, err) => {
                state.exited(&myself, &cell, Some(err.to_string())).await
            }
            _ => {}
        }
        Ok(())
    }
}

/// Tells a live actor to retire. `Retire` goes through the mailbox, behind every input already
/// routed to it; inputs routed later wait in the slot for its successor.
fn retire(slot: &mut Slot) {
    if let Slot::Live { actor, .. } = slot {
        let actor_id = actor.get_id();
        let _ = actor.cast(IncidentMsg::Retire);
        *slot = Slot::Retiring {
            actor_id,
            waiting: VecDeque::new(),
        };
    }
}

impl RouterState {
    async fn route(&mut self, myself: &ActorRef<RouterMsg>, key: AlertKey, msg: IncidentMsg) {
        match self.slots.get_mut(&key) {
            Some(Slot::Live { actor, last_used }) => {
                *last_used = Instant::now();
                match actor.cast(msg) {
                    Ok(()) => {}
                    // The actor died and its exit event is still queued behind us: replace it.
                    Err(ractor::MessagingErr::SendErr(msg)) => {
                        let id = actor.get_id();
                        self.keys.remove(&id);
                        self.slots.remove(&key);
                        self.spawn(myself, key, VecDeque::from([msg])).await;
                    }
                    Err(_) => {}
                }
            }
            Some(Slot::Retiring { waiting, .. }) => waiting.push_back(msg),
            None => self.spawn(myself, key, VecDeque::from([msg])).await,
        }
    }

    async fn spawn(
        &mut self,
        myself: &ActorRef<RouterMsg>,
        key: AlertKey,
        msgs: VecDeque<IncidentMsg>,
    ) {
        let args = IncidentArgs {
            key: key.clone(),
            shared: Arc::clone(&self.shared),
        };
        match Actor::spawn_linked(None, IncidentActor, args, myself.get_cell()).await {
            Ok((actor, _join)) => {
                for m in msgs {
                    let _ = actor.cast(m);
                }
                self.keys.insert(actor.get_id(), key.clone());
                self.slots.insert(
                    key,
                    Slot::Live {
                        actor,
                        last_used: Instant::now(),
                    },
                );
            }
            // ractor could not start the actor: the waiting callers see their reply ports
            // dropped and answer 503.
            Err(e) => {
                tracing::warn!(incident_id = %key.incident_id, error = %e, "Could not start the incident actor.")
            }
        }
        self.evict_if_over_cap();
        self.shared.metrics.live_actors.set(self.keys.len() as i64);
    }

    fn sweep(&mut self) {
        let now = Instant::now();
        for slot in self.slots.values_mut() {
            if let Slot::Live { last_used, .. } = slot {
                if now.duration_since(*last_used) >= self.idle_timeout {
                    retire(slot);
                }
            }
        }
    }

    /// Over the cap, retires the least recently used tenth of the live actors at once, so the
    /// O(n) scan is paid once per many spawns rather than on each.
    fn evict_if_over_cap(&mut self) {
        if self.slots.len() <= self.max_live {
            return;
        }
        let mut live: Vec<(Instant, AlertKey)> = self
            .slots
            .iter()
            .filter_map(|(k, s)| match s {
                Slot::Live { last_used, .. } => Some((*last_used, k.clone())),
                Slot::Retiring { .. } => None,
            })
            .collect();
        let target = self.max_live - self.max_live / 10;
        let excess = live.len().saturating_sub(target);
        if excess == 0 {
            return;
        }
        live.select_nth_unstable_by_key(excess - 1, |(t, _)| *t);
        for (_, key) in live.into_iter().take(excess) {
            if let Some(slot) = self.slots.get_mut(&key) {
                retire(slot);
            }
        }
    }

    async fn exited(
        &mut self,
        myself: &ActorRef<RouterMsg>,
        cell: &ActorCell,
        failure: Option<String>,
    ) {
        let id = cell.get_id();
        let Some(key) = self.keys.remove(&id) else {
            return;
        };
        if let Some(reason) = &failure {
            self.shared.metrics.actor_restarts.inc();
            tracing::error!(incident_id = %key.incident_id, source_id = %key.source_id, reason = %reason,
                "Incident actor failed; its next input restarts it from the stored state.");
        }
        let waiting = match self.slots.remove(&key) {
            Some(Slot::Retiring { actor_id, waiting }) if actor_id == id => waiting,
            Some(Slot::Live { actor, last_used }) if actor.get_id() != id => {
                self.slots
                    .insert(key.clone(), Slot::Live { actor, last_used });
                VecDeque::new()
            }
            _ => VecDeque::new(),
        };
        if !waiting.is_empty() {
            self.spawn(myself, key, waiting).await;
        }
        self.shared.metrics.live_actors.set(self.keys.len() as i64);
    }
}
