//! The supervisor of incident actors, and the only one that starts or stops them.
//!
//! It owns the map from incident to actor, so spawning, idle retirement and crash replacement
//! are serialised in one place and can never race: an incident has at most one actor at any
//! time. Callers reach a live actor directly through the [`Directory`], and come to the router
//! only for an incident with no live actor. An input is applied after every input that reached
//! the actor before it (after a crash, the inputs it lost are delivered again by their callers,
//! behind those delivered meanwhile).

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
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

/// The live incident actors that callers may cast to directly, skipping the router's hop.
///
/// Only the router adds or removes entries. A caller casts while it holds the lock, and the
/// router removes an actor's entry before it casts `Retire` to it, so every direct cast is in
/// the actor's mailbox ahead of its `Retire`: none reaches an actor that was told to retire.
#[derive(Default)]
pub struct Directory(Mutex<HashMap<AlertKey, Entry>>);

struct Entry {
    actor: ActorRef<IncidentMsg>,
    /// When an input was last cast to it, by a caller or by the router.
    last_used: Instant,
}

impl Directory {
    fn lock(&self) -> MutexGuard<'_, HashMap<AlertKey, Entry>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Casts to the incident's live actor. Gives the message back if there is none, or if the
    /// actor has stopped and the router has not heard of it yet: the caller then routes it.
    pub fn cast(&self, key: &AlertKey, msg: IncidentMsg) -> Result<(), IncidentMsg> {
        let mut live = self.lock();
        let Some(entry) = live.get_mut(key) else {
            return Err(msg);
        };
        match entry.actor.cast(msg) {
            Ok(()) => {
                entry.last_used = Instant::now();
                Ok(())
            }
            Err(ractor::MessagingErr::SendErr(msg)) => Err(msg),
            // Not reachable for a typed `ActorRef`; the dropped reply port tells the caller.
            Err(_) => Ok(()),
        }
    }

    fn insert(&self, key: AlertKey, actor: ActorRef<IncidentMsg>) {
        let entry = Entry {
            actor,
            last_used: Instant::now(),
        };
        self.lock().insert(key, entry);
    }

    /// Removes the incident's entry if it is still `actor_id`'s, and gives its actor back.
    fn remove(&self, key: &AlertKey, actor_id: ActorId) -> Option<ActorRef<IncidentMsg>> {
        let mut live = self.lock();
        match live.get(key) {
            Some(e) if e.actor.get_id() == actor_id => live.remove(key).map(|e| e.actor),
            _ => None,
        }
    }

    /// When each live actor was last used, by id (ids are `Copy`: no key is cloned under the
    /// lock, which callers wait on).
    fn last_used(&self) -> Vec<(Instant, ActorId)> {
        self.lock()
            .values()
            .map(|e| (e.last_used, e.actor.get_id()))
            .collect()
    }

    fn clear(&self) {
        self.lock().clear();
    }
}

enum Slot {
    Live(ActorId),
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
    directory: Arc<Directory>,
    idle_timeout: Duration,
    max_live: usize,
    slots: HashMap<AlertKey, Slot>,
    keys: HashMap<ActorId, AlertKey>,
}

pub struct RouterArgs {
    pub shared: Arc<Shared>,
    pub directory: Arc<Directory>,
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
            directory: args.directory,
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
        state: &mut RouterState,
    ) -> Result<(), ActorProcessingErr> {
        state.directory.clear();
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

impl RouterState {
    async fn route(&mut self, myself: &ActorRef<RouterMsg>, key: AlertKey, msg: IncidentMsg) {
        match self.slots.get_mut(&key) {
            // The caller looked before this actor was in the directory, or its cast there failed.
            Some(Slot::Live(actor_id)) => {
                let actor_id = *actor_id;
                if let Err(msg) = self.directory.cast(&key, msg) {
                    // The actor is stopping after a crash, and its exit event has not been sent
                    // yet (ractor handles one ahead of any queued input): replace it now. Its
                    // `keys` entry stays, so that `exited` still counts and logs the crash.
                    self.directory.remove(&key, actor_id);
                    self.slots.remove(&key);
                    self.spawn(myself, key, VecDeque::from([msg])).await;
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
                self.shared.metrics.actor_starts.inc();
                // Before it is in the directory, so no direct cast can overtake them.
                for m in msgs {
                    let _ = actor.cast(m);
                }
                let actor_id = actor.get_id();
                self.keys.insert(actor_id, key.clone());
                self.slots.insert(key.clone(), Slot::Live(actor_id));
                self.directory.insert(key, actor);
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

    /// Tells a live actor to retire. Its directory entry goes first, so that `Retire` is behind
    /// every input cast to it; inputs routed later wait in the slot for its successor.
    fn retire(&mut self, actor_id: ActorId) {
        let Some(key) = self.keys.get(&actor_id) else {
            return;
        };
        let Some(actor) = self.directory.remove(key, actor_id) else {
            return;
        };
        let _ = actor.cast(IncidentMsg::Retire);
        if let Some(slot) = self.slots.get_mut(key) {
            *slot = Slot::Retiring {
                actor_id,
                waiting: VecDeque::new(),
            };
        }
    }

    fn sweep(&mut self) {
        let now = Instant::now();
        for (last_used, actor_id) in self.directory.last_used() {
            if now.duration_since(last_used) >= self.idle_timeout {
                self.retire(actor_id);
            }
        }
    }

    /// Over the cap, retires the least recently used tenth of the live actors at once, so the
    /// O(n) scan is paid once per many spawns rather than on each.
    fn evict_if_over_cap(&mut self) {
        if self.slots.len() <= self.max_live {
            return;
        }
        let mut live = self.directory.last_used();
        let target = self.max_live - self.max_live / 10;
        let excess = live.len().saturating_sub(target);
        if excess == 0 {
            return;
        }
        live.select_nth_unstable_by_key(excess - 1, |(t, _)| *t);
        for (_, actor_id) in live.into_iter().take(excess) {
            self.retire(actor_id);
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
            // It died while live: callers that cast to it meanwhile deliver their inputs again.
            Some(Slot::Live(actor_id)) if actor_id == id => {
                self.directory.remove(&key, id);
                VecDeque::new()
            }
            Some(other) => {
                self.slots.insert(key.clone(), other);
                VecDeque::new()
            }
            None => VecDeque::new(),
        };
        if !waiting.is_empty() {
            self.spawn(myself, key, waiting).await;
        }
        self.shared.metrics.live_actors.set(self.keys.len() as i64);
    }
}
