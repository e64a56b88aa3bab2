//! A reference model of `LIFECYCLE.md`, and the random operations it is checked with.
//!
//! `Model` is written from the rules, not from `step.rs`: it keeps the handful of facts the
//! rules talk about (status, epoch, reopen count, highest version, last applied snapshot, whether
//! we await BigPanda's echo, the close state and the outbox) and applies each rule as plainly as
//! it can. Two tests drive it: `lifecycle_model.rs` against the pure `step`, and
//! `engine_model.rs` against the real engine (actors, sled, restarts). Both draw their operations
//! from the generators here, so the two see the same kinds of sequences.
//!
//! Where `LIFECYCLE.md` is silent the model follows the decisions taken in `step.rs` (a snapshot
//! with no open/closed meaning never moves the state; a held event is not applied; a reply for
//! a close no longer pending is only recorded; ...); each is marked "decision" below.

use std::collections::BTreeSet;

use pandabridge::lifecycle::{
    Alert, AlertStatus, CloseReply, CloseState, Details, DetailsJson, EventType, Input, Millis,
    Outbound, OutboundKey, Outcome, ResolvedBy, Snapshot,
};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::TestCaseError;

// ---------------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
pub enum Op {
    /// A webhook carrying one snapshot of the case's pool, as drawn: its version may be stale.
    Webhook(Index),
    /// The same, but with a version newer than any so far: what BigPanda sends most of the time.
    FreshWebhook(Index),
    /// A resolve by a user or an API client of pandabridge.
    Resolve(ResolvedBy),
    /// BigPanda's answer to a close sent `back` epochs ago (0: the current epoch).
    Reply { back: u32, reply: CloseReply },
    /// An operator re-queues a failed close.
    RetryClose,
    /// The daemon restarts: the alert is read back from its stored form.
    Restart,
}

/// What a snapshot shows (title, severity, status, environment, flapping). Mostly one of two
/// fixed looks, so that applied events which change nothing shown (rule 10) come up often.
type Look = (
    &'static str,
    Option<&'static str>,
    &'static str,
    Option<&'static str>,
    Option<bool>,
);

fn look() -> impl Strategy<Value = Look> {
    let any_look = (
        prop::sample::select(vec!["db-1 / cpu_load", "db-2 / disk_full"]),
        prop::sample::select(vec![Some("critical"), Some("warning"), None]),
        prop::sample::select(vec!["critical", "ok"]),
        prop::sample::select(vec![None, Some("env-1"), Some("env-2")]),
        prop::sample::select(vec![None, Some(true)]),
    );
    prop_oneof![
        3 => Just(("db-1 / cpu_load", Some("critical"), "critical", Some("env-1"), None)),
        2 => Just(("db-1 / cpu_load", Some("warning"), "ok", None, Some(true))),
        2 => any_look,
    ]
}

/// The incident id every generated snapshot carries; a test with several incidents rewrites it.
pub const INCIDENT_ID: &str = "inc-model";

/// One webhook's snapshot: every event type the rules distinguish, open, closed or silent, with
/// or without a version.
pub fn snapshot() -> impl Strategy<Value = Snapshot> {
    let event = prop::sample::select(vec![
        "incident#new",
        "incident#updated",
        "incident#closed",
        "incident#reopen",
        "incident#commented",
    ]);
    let open = prop::sample::select(vec![Some(true), Some(false), None]);
    let version = prop_oneof![1 => Just(None), 3 => (1i64..=6).prop_map(|v| Some(v * 1_000))];
    (event, open, version, look()).prop_map(
        |(event, open, version, (title, severity, status, env, flapping))| Snapshot {
            incident_id: INCIDENT_ID.into(),
            event_type: EventType::new(event),
            open,
            version,
            environment_id: env.map(Into::into),
            title: title.into(),
            description: None,
            severity: severity.map(Into::into),
            status: Some(status.into()),
            details: std::sync::Arc::new(DetailsJson::new(&Details::<String> {
                flapping,
                ..Details::default()
            })),
        },
    )
}

/// The snapshots one incident's webhooks are drawn from. Small, so that the same snapshot comes
/// back (a duplicate) and versions go backwards (stale) without being asked for.
pub fn snapshot_pool() -> impl Strategy<Value = Vec<Snapshot>> {
    prop::collection::vec(snapshot(), 1..=8)
}

/// Every kind of answer the BigPanda client reports.
pub fn close_reply() -> impl Strategy<Value = CloseReply> {
    prop_oneof![
        prop::sample::select(vec![200u16, 202, 409])
            .prop_map(|status| CloseReply::Delivered { status }),
        Just(CloseReply::NotFound { status: 404 }),
        prop::sample::select(vec![401u16, 403])
            .prop_map(|status| CloseReply::Unauthorized { status }),
        prop::sample::select(vec!["HTTP 429", "HTTP 503", "timeout"]).prop_map(|e| {
            CloseReply::Retry {
                status: None,
                error: e.into(),
                next_attempt_at: 1_000_000,
            }
        }),
        Just(CloseReply::NoEnvironment),
        Just(CloseReply::Rejected {
            status: Some(400),
            error: "bad request".into()
        }),
    ]
}

pub fn resolved_by() -> impl Strategy<Value = ResolvedBy> {
    prop_oneof![
        Just(ResolvedBy::User("ana".into())),
        // A user whose name is a reserved word must survive a restart as a user.
        Just(ResolvedBy::User("bigpanda".into())),
        Just(ResolvedBy::Api),
    ]
}

pub fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<Index>().prop_map(Op::Webhook),
        4 => any::<Index>().prop_map(Op::FreshWebhook),
        3 => resolved_by().prop_map(Op::Resolve),
        4 => (prop_oneof![3 => Just(0u32), 1 => 1u32..=2], close_reply())
            .prop_map(|(back, reply)| Op::Reply { back, reply }),
        1 => Just(Op::RetryClose),
        1 => Just(Op::Restart),
    ]
}

// ---------------------------------------------------------------------------------------------
// The reference model
// ---------------------------------------------------------------------------------------------

/// What the alert shows to users; rule 3 refreshes it, rule 10 asks whether it changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Shown {
    pub title: String,
    pub description: Option<String>,
    pub severity: Option<String>,
    pub bigpanda_status: Option<String>,
    pub environment_id: Option<String>,
    pub details: DetailsJson,
}

impl Shown {
    pub fn of(alert: &Alert) -> Shown {
        Shown {
            title: alert.title.clone(),
            description: alert.description.clone(),
            severity: alert.severity.clone(),
            bigpanda_status: alert.bigpanda_status.clone(),
            environment_id: alert.environment_id.clone(),
            details: (*alert.details).clone(),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Model {
    pub status: AlertStatus,
    pub resolved_by: Option<ResolvedBy>,
    pub reopen_count: u32,
    pub epoch: u32,
    pub max_version: Option<Millis>,
    pub last_applied: Snapshot,
    pub shown: Shown,
    /// Resolved here, and BigPanda has not yet sent a closed snapshot (rules 7, 8).
    pub awaiting_echo: bool,
    pub close: CloseState,
    pub close_error: bool,
    /// Epochs with a close in the outbox (one alert, one kind of message).
    pub outbox: BTreeSet<u32>,
}

/// What the model expects of one input.
#[derive(Debug, PartialEq)]
pub enum Expect {
    /// The input needs an alert and there is none: `step` refuses, the engine answers not found.
    NoAlert,
    Outcome(Outcome),
}

impl Model {
    /// Rule 1.
    pub fn create(snap: &Snapshot) -> Model {
        // Decision: a snapshot that does not say open or closed creates a firing alert.
        let open = snap.open != Some(false);
        Model {
            status: if open {
                AlertStatus::Firing
            } else {
                AlertStatus::Resolved
            },
            resolved_by: (!open).then_some(ResolvedBy::BigPanda),
            reopen_count: 0,
            epoch: 0,
            max_version: snap.version,
            last_applied: snap.clone(),
            shown: Shown {
                title: snap.title.clone(),
                description: snap.description.clone(),
                severity: snap.severity.clone(),
                bigpanda_status: snap.status.clone(),
                environment_id: snap.environment_id.clone(),
                details: (*snap.details).clone(),
            },
            awaiting_echo: false,
            close: CloseState::None,
            close_error: false,
            outbox: BTreeSet::new(),
        }
    }

    pub fn resolved_here(&self) -> bool {
        self.status == AlertStatus::Resolved && self.awaiting_echo
    }

    /// Whether BigPanda is owed a close for `epoch` (rule 9: what the sender checks).
    pub fn owes_close(&self, epoch: u32) -> bool {
        self.outbox.contains(&epoch)
    }

    /// The outbox keys this alert should have in the store.
    pub fn outbox_keys(&self, alert_id: &str) -> BTreeSet<OutboundKey> {
        self.outbox
            .iter()
            .map(|epoch| OutboundKey {
                alert_id: alert_id.into(),
                epoch: *epoch,
                kind: Outbound::CLOSE.into(),
            })
            .collect()
    }

    pub fn webhook(&mut self, snap: &Snapshot) -> Outcome {
        // Rule 2: an event older than the newest applied one is stale...
        if let (Some(v), Some(max)) = (snap.version, self.max_version) {
            if v < max {
                return Outcome::Stale;
            }
        }
        // ...and one identical to the last applied one is a duplicate.
        if *snap == self.last_applied {
            return Outcome::Duplicate;
        }
        // Rule 7: an open snapshot after our own resolve, unless an explicit reopen.
        // Decision: a held event is not applied at all.
        if self.resolved_here()
            && snap.open == Some(true)
            && snap.event_type.as_str() != "incident#reopen"
        {
            return Outcome::Held;
        }

        // Applied: the version and the "last event" move, the shown fields refresh (rule 3).
        if let Some(v) = snap.version {
            self.max_version = Some(self.max_version.map_or(v, |m| m.max(v)));
        }
        self.last_applied = snap.clone();
        let before = self.shown.clone();
        self.shown.title = snap.title.clone();
        self.shown.description = snap.description.clone();
        self.shown.severity = snap.severity.clone();
        self.shown.bigpanda_status = snap.status.clone();
        if snap.environment_id.is_some() {
            self.shown.environment_id = snap.environment_id.clone();
        }
        self.shown.details = (*snap.details).clone();
        let shown_changed = self.shown != before;

        match (self.status, snap.open) {
            // Rule 4.
            (AlertStatus::Firing, Some(false)) => {
                self.status = AlertStatus::Resolved;
                self.resolved_by = Some(ResolvedBy::BigPanda);
                Outcome::Resolved
            }
            // Rule 5: a new epoch; an unsent close of the old one is dropped.
            (AlertStatus::Resolved, Some(true)) => {
                self.outbox.clear();
                self.status = AlertStatus::Firing;
                self.resolved_by = None;
                self.reopen_count += 1;
                self.epoch += 1;
                self.awaiting_echo = false;
                self.close = CloseState::None;
                self.close_error = false;
                Outcome::Refired
            }
            // Rule 8: the echo confirms our close; an unsent one is dropped.
            (AlertStatus::Resolved, Some(false)) if self.awaiting_echo => {
                self.outbox.remove(&self.epoch);
                self.awaiting_echo = false;
                self.close = CloseState::Closed;
                self.close_error = false;
                // Decision: the echo is reported as an update.
                Outcome::Updated
            }
            // Rules 3 and 10. Decision: no open/closed meaning never moves the state.
            _ if shown_changed => Outcome::Updated,
            _ => Outcome::Ignored,
        }
    }

    /// Rule 6.
    pub fn resolve(&mut self, by: &ResolvedBy) -> Outcome {
        if self.status == AlertStatus::Resolved {
            return Outcome::Unchanged;
        }
        self.status = AlertStatus::Resolved;
        self.resolved_by = Some(by.clone());
        self.awaiting_echo = true;
        self.close = CloseState::Pending;
        self.close_error = false;
        self.outbox.insert(self.epoch);
        Outcome::Resolved
    }

    /// Rule 9, as CONTRACT §4 classifies BigPanda's replies.
    pub fn close_reply(&mut self, epoch: u32, reply: &CloseReply) -> Outcome {
        // Decision: a reply for another epoch, or for a close no longer pending, is only
        // recorded.
        if epoch != self.epoch || self.close != CloseState::Pending {
            return Outcome::Recorded;
        }
        match reply {
            CloseReply::Delivered { .. } => {
                self.close = CloseState::Closed;
                self.close_error = false;
                self.outbox.remove(&epoch);
            }
            CloseReply::NotFound { .. }
            | CloseReply::NoEnvironment
            | CloseReply::Rejected { .. } => {
                self.close = CloseState::Failed;
                self.close_error = true;
                self.outbox.remove(&epoch);
            }
            CloseReply::Unauthorized { .. } | CloseReply::Retry { .. } => {
                // Kept: paused until a valid key, or retried with backoff.
                self.close_error = true;
            }
        }
        Outcome::Recorded
    }

    /// Decision: only a failed close of an alert resolved here and not yet echoed is re-queued.
    pub fn retry_close(&mut self) -> Outcome {
        if !(self.resolved_here() && self.close == CloseState::Failed) {
            return Outcome::Unchanged;
        }
        self.close = CloseState::Pending;
        self.close_error = false;
        self.outbox.insert(self.epoch);
        Outcome::Requeued
    }
}

/// The input `op` (the `i`-th of its case) stands for, and what the model expects of it, with
/// the model stepped; `None` for a restart, which is no input. Webhooks are drawn from `pool`.
pub fn model_input(
    model: &mut Option<Model>,
    op: &Op,
    pool: &[Snapshot],
    i: usize,
) -> Option<(Input, Expect)> {
    let step = match op {
        Op::Restart => return None,
        Op::Webhook(ix) | Op::FreshWebhook(ix) => {
            let mut snap = ix.get(pool).clone();
            if matches!(op, Op::FreshWebhook(_)) {
                snap.version = Some(100_000 + i as Millis);
            }
            let outcome = match model {
                None => {
                    *model = Some(Model::create(&snap));
                    Outcome::Created
                }
                Some(m) => m.webhook(&snap),
            };
            (Input::Webhook(snap), Expect::Outcome(outcome))
        }
        Op::Resolve(by) => {
            let input = Input::Resolve {
                by: by.clone(),
                comment: Some("fixed".into()),
            };
            let expect = model
                .as_mut()
                .map_or(Expect::NoAlert, |m| Expect::Outcome(m.resolve(by)));
            (input, expect)
        }
        Op::Reply { back, reply } => {
            let epoch = model.as_ref().map_or(0, |m| m.epoch.saturating_sub(*back));
            let input = Input::CloseResult {
                epoch,
                reply: reply.clone(),
                duration_ms: 5,
            };
            let expect = model.as_mut().map_or(Expect::NoAlert, |m| {
                Expect::Outcome(m.close_reply(epoch, reply))
            });
            (input, expect)
        }
        Op::RetryClose => {
            let expect = model
                .as_mut()
                .map_or(Expect::NoAlert, |m| Expect::Outcome(m.retry_close()));
            (Input::RetryClose, expect)
        }
    };
    Some(step)
}

// ---------------------------------------------------------------------------------------------
// Agreement
// ---------------------------------------------------------------------------------------------

/// Everything the model and a real alert must agree on.
pub fn check_alert(model: &Model, alert: &Alert, what: &str) -> Result<(), TestCaseError> {
    prop_assert_eq!(alert.status, model.status, "status after {}", what);
    prop_assert_eq!(
        alert.reopen_count,
        model.reopen_count,
        "reopen_count after {}",
        what
    );
    prop_assert_eq!(alert.epoch, model.epoch, "epoch after {}", what);
    prop_assert_eq!(
        &alert.resolved_by,
        &model.resolved_by,
        "resolved_by after {}",
        what
    );
    prop_assert_eq!(
        alert.resolved_at.is_some(),
        model.status == AlertStatus::Resolved,
        "resolved_at after {}",
        what
    );
    prop_assert_eq!(
        alert.close_sync.state,
        model.close,
        "close_sync.state after {}",
        what
    );
    prop_assert_eq!(
        alert.close_sync.last_error.is_some(),
        model.close_error,
        "close_sync.last_error after {}: {:?}",
        what,
        alert.close_sync.last_error
    );
    prop_assert_eq!(
        alert.awaiting_echo,
        model.awaiting_echo,
        "awaiting_echo after {}",
        what
    );
    prop_assert_eq!(
        alert.max_version,
        model.max_version,
        "max_version after {}",
        what
    );
    prop_assert_eq!(
        &Shown::of(alert),
        &model.shown,
        "shown fields after {}",
        what
    );
    Ok(())
}

/// The alert's real outbox against the model's, and invariant (b): at most one entry, for the
/// current epoch.
pub fn check_outbox(
    model: &Model,
    alert: &Alert,
    outbox: &BTreeSet<OutboundKey>,
    what: &str,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(
        outbox,
        &model.outbox_keys(&alert.id),
        "outbox after {}",
        what
    );
    prop_assert!(outbox.len() <= 1, "outbox {:?}", outbox);
    prop_assert!(
        outbox.iter().all(|k| k.epoch == alert.epoch),
        "outbox {:?} holds an old epoch (alert at {})",
        outbox,
        alert.epoch
    );
    Ok(())
}

/// "Every resolve here ends closed or visibly failed": for an alert resolved by a local user or
/// an API client, the close must be `closed`, or `failed` with an error to show.
pub fn check_resolve_settled(alert: &Alert, what: &str) -> Result<(), TestCaseError> {
    let resolved_here = alert.status == AlertStatus::Resolved
        && alert.resolved_by.as_ref().is_some_and(ResolvedBy::is_local);
    if resolved_here {
        let sync = &alert.close_sync;
        prop_assert!(
            sync.state == CloseState::Closed
                || (sync.state == CloseState::Failed && sync.last_error.is_some()),
            "{}: a resolve here ended neither closed nor visibly failed: {:?}",
            what,
            sync
        );
    }
    Ok(())
}
