//! The lifecycle against a reference model of `LIFECYCLE.md`.
//!
//! `Model` below is written from the rules, not from `step.rs`: it keeps the handful of facts the
//! rules talk about (status, epoch, reopen count, highest version, last applied snapshot, whether
//! we await BigPanda's echo, the close state and the outbox) and applies each rule as plainly as
//! it can. Random sequences of webhooks (from a small pool, so duplicates and stale versions come
//! up on their own), local resolves, close replies for the current or an older epoch, operator
//! retries and restarts run through both, and they must agree after every step.
//!
//! Where `LIFECYCLE.md` is silent the model follows the decisions taken in `step.rs` (a snapshot
//! with no open/closed meaning never moves the state; a held event is not applied; a reply for
//! a close no longer pending is only recorded; ...); each is marked "decision" below.

use std::collections::BTreeSet;

use pandabridge::lifecycle::{
    step, Alert, AlertStatus, CloseReply, CloseState, Ctx, Details, Effect, EventType, Input,
    Millis, Outbound, OutboundKey, Outcome, ResolvedBy, Snapshot,
};
use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::FileFailurePersistence;

const ALERT_ID: &str = "al-model";

// ---------------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
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
    /// The daemon restarts: the alert is read back from its stored (JSON) form.
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

fn snapshot() -> impl Strategy<Value = Snapshot> {
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
            incident_id: "inc-model".into(),
            event_type: EventType::new(event),
            open,
            version,
            environment_id: env.map(Into::into),
            title: title.into(),
            description: None,
            severity: severity.map(Into::into),
            status: Some(status.into()),
            details: Details {
                flapping,
                ..Details::default()
            },
        },
    )
}

fn close_reply() -> impl Strategy<Value = CloseReply> {
    prop_oneof![
        prop::sample::select(vec![200u16, 202, 409])
            .prop_map(|status| CloseReply::Delivered { status }),
        Just(CloseReply::NotFound { status: 404 }),
        prop::sample::select(vec![401u16, 403])
            .prop_map(|status| CloseReply::Unauthorized { status }),
        prop::sample::select(vec!["HTTP 429", "HTTP 503", "timeout"]).prop_map(|e| {
            CloseReply::Retry {
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

fn op() -> impl Strategy<Value = Op> {
    let by = prop_oneof![
        Just(ResolvedBy::User("ana".into())),
        // A user whose name is a reserved word must survive a restart as a user.
        Just(ResolvedBy::User("bigpanda".into())),
        Just(ResolvedBy::Api),
    ];
    prop_oneof![
        4 => any::<Index>().prop_map(Op::Webhook),
        4 => any::<Index>().prop_map(Op::FreshWebhook),
        3 => by.prop_map(Op::Resolve),
        4 => (prop_oneof![3 => Just(0u32), 1 => 1u32..=2], close_reply())
            .prop_map(|(back, reply)| Op::Reply { back, reply }),
        1 => Just(Op::RetryClose),
        1 => Just(Op::Restart),
    ]
}

#[derive(Debug, Clone)]
struct Case {
    pool: Vec<Snapshot>,
    ops: Vec<Op>,
    /// For the finishing phase: true answers 2xx, false answers 404.
    finish_delivered: bool,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec(snapshot(), 1..=8),
        prop::collection::vec(op(), 1..=40),
        any::<bool>(),
    )
        .prop_map(|(pool, ops, finish_delivered)| Case {
            pool,
            ops,
            finish_delivered,
        })
}

// ---------------------------------------------------------------------------------------------
// The reference model
// ---------------------------------------------------------------------------------------------

/// What the alert shows to users; rule 3 refreshes it, rule 10 asks whether it changed.
#[derive(Debug, Clone, PartialEq)]
struct Shown {
    title: String,
    description: Option<String>,
    severity: Option<String>,
    bigpanda_status: Option<String>,
    environment_id: Option<String>,
    details: Details,
}

#[derive(Debug, Clone)]
struct Model {
    status: AlertStatus,
    resolved_by: Option<ResolvedBy>,
    reopen_count: u32,
    epoch: u32,
    max_version: Option<Millis>,
    last_applied: Snapshot,
    shown: Shown,
    /// Resolved here, and BigPanda has not yet sent a closed snapshot (rules 7, 8).
    awaiting_echo: bool,
    close: CloseState,
    close_error: bool,
    /// Epochs with a close in the outbox (one alert, one kind of message).
    outbox: BTreeSet<u32>,
}

/// What the model expects of one input.
#[derive(Debug, PartialEq)]
enum Expect {
    /// `step` must refuse: the input needs an alert and there is none.
    NoAlert,
    Outcome(Outcome),
}

impl Model {
    /// Rule 1.
    fn create(snap: &Snapshot) -> Model {
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
                details: snap.details.clone(),
            },
            awaiting_echo: false,
            close: CloseState::None,
            close_error: false,
            outbox: BTreeSet::new(),
        }
    }

    fn resolved_here(&self) -> bool {
        self.status == AlertStatus::Resolved && self.awaiting_echo
    }

    /// Whether BigPanda is owed a close for `epoch` (rule 9: what the sender checks).
    fn owes_close(&self, epoch: u32) -> bool {
        self.outbox.contains(&epoch)
    }

    fn webhook(&mut self, snap: &Snapshot) -> Outcome {
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
        self.shown.details = snap.details.clone();
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
    fn resolve(&mut self, by: &ResolvedBy) -> Outcome {
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
    fn close_reply(&mut self, epoch: u32, reply: &CloseReply) -> Outcome {
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
    fn retry_close(&mut self) -> Outcome {
        if !(self.resolved_here() && self.close == CloseState::Failed) {
            return Outcome::Unchanged;
        }
        self.close = CloseState::Pending;
        self.close_error = false;
        self.outbox.insert(self.epoch);
        Outcome::Requeued
    }
}

// ---------------------------------------------------------------------------------------------
// The harness: the real step function, its persisted alert and its outbox
// ---------------------------------------------------------------------------------------------

struct Real {
    alert: Option<Alert>,
    outbox: BTreeSet<OutboundKey>,
    clock: Millis,
}

fn key(epoch: u32) -> OutboundKey {
    OutboundKey {
        alert_id: ALERT_ID.into(),
        epoch,
        kind: Outbound::CLOSE.into(),
    }
}

impl Real {
    /// Runs one input through `step` and applies its effects as the engine would.
    fn run(&mut self, input: &Input) -> Result<Option<Outcome>, TestCaseError> {
        self.clock += 1_000;
        let ctx = Ctx {
            now: self.clock,
            new_alert_id: ALERT_ID.into(),
            source_id: "src-model".into(),
        };
        let Some(out) = step(self.alert.as_ref(), input, &ctx) else {
            return Ok(None);
        };

        // Rule 11: every input leaves at least one history entry, and the count is kept.
        prop_assert!(!out.history.is_empty(), "no history entry for {:?}", input);
        let before_len = self.alert.as_ref().map_or(0, |a| a.history_len);
        prop_assert_eq!(
            out.alert.history_len,
            before_len + out.history.len() as u64,
            "history_len must grow by the entries returned"
        );
        let first = &out.history[0];
        match input {
            Input::Webhook(_) => {
                prop_assert_eq!(first.kind.as_str(), "webhook");
                prop_assert_eq!(first.outcome.as_str(), out.outcome.as_str());
            }
            Input::Resolve { .. } => prop_assert_eq!(first.kind.as_str(), "resolve"),
            Input::CloseResult { .. } => prop_assert!(
                first.kind == "close_attempt" || first.kind == "close_failed",
                "close reply recorded as {}",
                first.kind
            ),
            Input::RetryClose => prop_assert_eq!(first.kind.as_str(), "retry_close"),
            Input::Quarantine { .. } => {
                prop_assert_eq!(first.kind.as_str(), "webhook");
                prop_assert_eq!(first.outcome.as_str(), "quarantined");
            }
        }

        if let Some(before) = &self.alert {
            match out.outcome {
                // Rules 2, 6, 7 and 9: nothing but the history may change.
                Outcome::Stale
                | Outcome::Duplicate
                | Outcome::Held
                | Outcome::Unchanged
                | Outcome::Quarantined => {
                    let mut same = out.alert.clone();
                    same.history_len = before.history_len;
                    prop_assert_eq!(&same, before, "{:?} changed the alert", out.outcome);
                    prop_assert!(out.effects.is_empty(), "{:?} had effects", out.outcome);
                }
                // Rule 10 (decision): applied, but what the alert shows has not moved.
                Outcome::Ignored => {
                    prop_assert_eq!(out.alert.updated_at, before.updated_at);
                    prop_assert!(out.effects.is_empty(), "ignored had effects");
                }
                Outcome::Updated | Outcome::Resolved | Outcome::Refired | Outcome::Requeued => {
                    prop_assert_eq!(out.alert.updated_at, ctx.now, "{:?}", out.outcome);
                }
                Outcome::Created | Outcome::Recorded => {}
            }
        }

        for effect in &out.effects {
            match effect {
                Effect::Enqueue(message) => {
                    // Invariant (a): only a close for an alert resolved here, at its epoch.
                    let Outbound::Close {
                        alert_id, epoch, ..
                    } = message;
                    prop_assert_eq!(alert_id.as_str(), ALERT_ID);
                    prop_assert_eq!(out.alert.status, AlertStatus::Resolved);
                    prop_assert!(
                        out.alert
                            .resolved_by
                            .as_ref()
                            .is_some_and(ResolvedBy::is_local),
                        "enqueued a close for an alert resolved by {:?}",
                        out.alert.resolved_by
                    );
                    prop_assert_eq!(*epoch, out.alert.epoch);
                    prop_assert!(
                        self.outbox.insert(message.key()),
                        "enqueued {:?} twice",
                        message.key()
                    );
                }
                Effect::Dequeue(k) => {
                    prop_assert!(self.outbox.remove(k), "dequeued {:?}, not in the outbox", k);
                }
            }
        }
        self.alert = Some(out.alert);
        Ok(Some(out.outcome))
    }
}

/// Everything the model and the real alert must agree on after a step, and the invariants.
fn check(model: &Model, real: &Real, what: &str) -> Result<(), TestCaseError> {
    let alert = real
        .alert
        .as_ref()
        .expect("checked only once the alert exists");
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
    let shown = Shown {
        title: alert.title.clone(),
        description: alert.description.clone(),
        severity: alert.severity.clone(),
        bigpanda_status: alert.bigpanda_status.clone(),
        environment_id: alert.environment_id.clone(),
        details: alert.details.clone(),
    };
    prop_assert_eq!(&shown, &model.shown, "shown fields after {}", what);
    let expected: BTreeSet<OutboundKey> = model.outbox.iter().map(|e| key(*e)).collect();
    prop_assert_eq!(&real.outbox, &expected, "outbox after {}", what);

    // Invariant (b): at most one entry, for the current epoch.
    prop_assert!(real.outbox.len() <= 1, "outbox {:?}", real.outbox);
    prop_assert!(
        real.outbox.iter().all(|k| k.epoch == alert.epoch),
        "outbox {:?} holds an old epoch (alert at {})",
        real.outbox,
        alert.epoch
    );
    // Invariant (e): the sender's check agrees with what the model says is owed.
    for epoch in 0..=alert.epoch + 1 {
        prop_assert_eq!(
            alert.close_claimable(epoch),
            model.owes_close(epoch),
            "close_claimable({}) after {}",
            epoch,
            what
        );
    }
    Ok(())
}

fn run_case(case: &Case) -> Result<(), TestCaseError> {
    let mut model: Option<Model> = None;
    let mut real = Real {
        alert: None,
        outbox: BTreeSet::new(),
        clock: 0,
    };

    for (i, op) in case.ops.iter().enumerate() {
        let what = format!("op {i} {op:?}");
        let (input, expect) = match op {
            Op::Restart => {
                if let Some(alert) = &real.alert {
                    let stored = serde_json::to_string(alert).expect("alert serialises");
                    let back: Alert = serde_json::from_str(&stored).expect("alert deserialises");
                    prop_assert_eq!(&back, alert, "the alert must survive a restart");
                    real.alert = Some(back);
                }
                continue;
            }
            Op::Webhook(ix) | Op::FreshWebhook(ix) => {
                let mut snap = ix.get(&case.pool).clone();
                if matches!(op, Op::FreshWebhook(_)) {
                    snap.version = Some(100_000 + i as Millis);
                }
                let outcome = match &mut model {
                    None => {
                        model = Some(Model::create(&snap));
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

        let got = match real.run(&input)? {
            None => Expect::NoAlert,
            Some(outcome) => Expect::Outcome(outcome),
        };
        prop_assert_eq!(&got, &expect, "outcome of {}", what);
        if let Some(m) = &model {
            check(m, &real, &what)?;
            // Invariant (c): after any re-fire, explicit or not, no older close remains.
            if got == Expect::Outcome(Outcome::Refired) {
                prop_assert!(
                    real.outbox.iter().all(|k| k.epoch == m.epoch),
                    "an old close survived the re-fire: {:?}",
                    real.outbox
                );
            }
        }
    }

    // Invariant (d): every resolve here ends closed or visibly failed. Drive the outbox to
    // completion as the BigPanda client would, then look at the close.
    let Some(mut m) = model else {
        return Ok(());
    };
    while let Some(k) = real.outbox.iter().next().cloned() {
        let reply = if case.finish_delivered {
            CloseReply::Delivered { status: 202 }
        } else {
            CloseReply::NotFound { status: 404 }
        };
        prop_assert!(
            real.alert
                .as_ref()
                .is_some_and(|a| a.close_claimable(k.epoch)),
            "outbox entry {:?} would not be sent",
            k
        );
        let expect = m.close_reply(k.epoch, &reply);
        let got = real.run(&Input::CloseResult {
            epoch: k.epoch,
            reply,
            duration_ms: 5,
        })?;
        prop_assert_eq!(got, Some(expect));
        check(&m, &real, "the finishing phase")?;
    }
    let alert = real.alert.as_ref().expect("the alert exists");
    let resolved_here = alert.status == AlertStatus::Resolved
        && alert.resolved_by.as_ref().is_some_and(ResolvedBy::is_local);
    if resolved_here {
        let sync = &alert.close_sync;
        prop_assert!(
            sync.state == CloseState::Closed
                || (sync.state == CloseState::Failed && sync.last_error.is_some()),
            "a resolve here ended neither closed nor visibly failed: {:?}",
            sync
        );
    } else {
        prop_assert!(
            real.outbox.is_empty(),
            "close owed for an alert not resolved here"
        );
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(512)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/lifecycle_model.txt",
        ))),
        ..ProptestConfig::default()
    })]

    #[test]
    fn step_agrees_with_the_model(case in case()) {
        run_case(&case)?;
    }
}
