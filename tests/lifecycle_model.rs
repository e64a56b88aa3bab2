//! The lifecycle against a reference model of `LIFECYCLE.md`.
//!
//! The model and the operation generators live in `support/model.rs`, shared with
//! `engine_model.rs`, which runs the same kind of sequences through the real engine. Here random
//! sequences of webhooks (from a small pool, so duplicates and stale versions come up on their
//! own), local resolves, close replies for the current or an older epoch, operator retries and
//! restarts run through the model and the pure `step`, and they must agree after every step.

mod support;

use std::collections::BTreeSet;

use pandabridge::lifecycle::{
    step, Alert, AlertStatus, CloseReply, Ctx, Effect, Input, Millis, Outbound, OutboundKey,
    Outcome, ResolvedBy, Snapshot,
};
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use support::model::{
    check_alert, check_outbox, check_resolve_settled, model_input, op, snapshot_pool, Expect,
    Model, Op,
};

const ALERT_ID: &str = "al-model";

#[derive(Debug, Clone)]
struct Case {
    pool: Vec<Snapshot>,
    ops: Vec<Op>,
    /// For the finishing phase: true answers 2xx, false answers 404.
    finish_delivered: bool,
}

fn case() -> impl Strategy<Value = Case> {
    (
        snapshot_pool(),
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
// The harness: the real step function, its persisted alert and its outbox
// ---------------------------------------------------------------------------------------------

struct Real {
    alert: Option<Alert>,
    outbox: BTreeSet<OutboundKey>,
    clock: Millis,
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
    check_alert(model, alert, what)?;
    check_outbox(model, alert, &real.outbox, what)?;
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
        let Some((input, expect)) = model_input(&mut model, op, &case.pool, i) else {
            // A restart: the alert is read back from its stored (JSON) form.
            if let Some(alert) = &real.alert {
                let stored = serde_json::to_string(alert).expect("alert serialises");
                let back: Alert = serde_json::from_str(&stored).expect("alert deserialises");
                prop_assert_eq!(&back, alert, "the alert must survive a restart");
                real.alert = Some(back);
            }
            continue;
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
    check_resolve_settled(alert, "the alert")?;
    let resolved_here = alert.status == AlertStatus::Resolved
        && alert.resolved_by.as_ref().is_some_and(ResolvedBy::is_local);
    if !resolved_here {
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
