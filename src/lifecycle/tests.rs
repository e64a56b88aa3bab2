//! Example-based tests of `step`, one or more per rule of `LIFECYCLE.md`.
//!
//! Each test tells a short story on one alert; the random sequences live in
//! `tests/lifecycle_model.rs`, which checks `step` against an independent model.

use super::*;

const ALERT_ID: &str = "al-1";

fn ctx(now: Millis) -> Ctx {
    Ctx {
        now,
        new_alert_id: ALERT_ID.into(),
        source_id: "src-1".into(),
    }
}

fn snap(event: &str, open: Option<bool>, version: Option<Millis>) -> Snapshot {
    Snapshot {
        incident_id: "inc-1".into(),
        event_type: EventType::new(event),
        open,
        version,
        environment_id: Some("env-1".into()),
        title: "db-1 / cpu_load".into(),
        description: None,
        severity: Some("critical".into()),
        status: Some(
            if open == Some(false) {
                "ok"
            } else {
                "critical"
            }
            .into(),
        ),
        details: Default::default(),
    }
}

fn new_event(v: Millis) -> Snapshot {
    snap("incident#new", Some(true), Some(v))
}
fn updated_event(v: Millis) -> Snapshot {
    let mut s = snap("incident#updated", Some(true), Some(v));
    s.severity = Some("warning".into());
    s.status = Some("warning".into());
    s
}
fn closed_event(v: Millis) -> Snapshot {
    snap("incident#closed", Some(false), Some(v))
}
fn reopen_event(v: Millis) -> Snapshot {
    snap("incident#reopen", Some(true), Some(v))
}

fn close_key(epoch: u32) -> OutboundKey {
    OutboundKey {
        alert_id: ALERT_ID.into(),
        epoch,
        kind: Outbound::CLOSE.into(),
    }
}

/// Drives one alert through inputs, keeping the history entries and the outbox as the engine
/// would persist them.
#[derive(Default)]
struct Story {
    alert: Option<Alert>,
    history: Vec<HistoryEvent>,
    outbox: Vec<OutboundKey>,
    clock: Millis,
}

impl Story {
    fn apply(&mut self, input: Input) -> Step {
        self.clock += 1_000;
        let step = step(self.alert.as_ref(), &input, &ctx(self.clock)).expect("alert exists");
        assert!(!step.history.is_empty(), "rule 11: every input is recorded");
        for effect in &step.effects {
            match effect {
                Effect::Enqueue(out) => {
                    assert!(!self.outbox.contains(&out.key()), "enqueued twice");
                    self.outbox.push(out.key());
                }
                Effect::Dequeue(key) => self.outbox.retain(|k| k != key),
            }
        }
        self.history.extend(step.history.iter().cloned());
        assert_eq!(step.alert.history_len, self.history.len() as u64);
        self.alert = Some(step.alert.clone());
        step
    }
    fn webhook(&mut self, s: Snapshot) -> Step {
        self.apply(Input::Webhook(s))
    }
    fn resolve(&mut self, name: &str) -> Step {
        self.apply(Input::Resolve {
            by: ResolvedBy::User(name.into()),
            comment: Some("fixed the disk".into()),
        })
    }
    fn reply(&mut self, epoch: u32, reply: CloseReply) -> Step {
        self.apply(Input::CloseResult {
            epoch,
            reply,
            duration_ms: 12,
        })
    }
    fn alert(&self) -> &Alert {
        self.alert.as_ref().expect("alert exists")
    }
    /// A firing alert resolved here, close pending in the outbox.
    fn resolved_here() -> Story {
        let mut story = Story::default();
        story.webhook(new_event(1_000));
        story.resolve("ana");
        story
    }
}

// Rule 1: create.

#[test]
fn rule1_open_snapshot_creates_firing_alert() {
    let mut story = Story::default();
    let step = story.webhook(new_event(1_000));
    assert_eq!(step.outcome, Outcome::Created);
    let alert = story.alert();
    assert_eq!(alert.status, AlertStatus::Firing);
    assert_eq!(alert.id, ALERT_ID);
    assert_eq!(alert.title, "db-1 / cpu_load");
    assert_eq!(alert.resolved_by, None);
    assert_eq!(alert.reopen_count, 0);
    assert_eq!(alert.close_sync.state, CloseState::None);
    assert!(step.effects.is_empty());
}

#[test]
fn rule1_closed_snapshot_creates_alert_resolved_by_bigpanda() {
    let mut story = Story::default();
    let step = story.webhook(closed_event(1_000));
    assert_eq!(step.outcome, Outcome::Created);
    let alert = story.alert();
    assert_eq!(alert.status, AlertStatus::Resolved);
    assert_eq!(alert.resolved_by, Some(ResolvedBy::BigPanda));
    assert!(alert.resolved_at.is_some());
    assert!(!alert.awaiting_echo);
    assert!(
        step.effects.is_empty(),
        "nothing is sent back for a close BigPanda made"
    );
}

#[test]
fn rule1_snapshot_without_open_creates_firing_alert() {
    let mut story = Story::default();
    let step = story.webhook(snap("incident#commented", None, Some(1_000)));
    assert_eq!(step.outcome, Outcome::Created);
    assert_eq!(story.alert().status, AlertStatus::Firing);
}

#[test]
fn rule1_only_a_webhook_creates_an_alert() {
    let resolve = Input::Resolve {
        by: ResolvedBy::Api,
        comment: None,
    };
    assert!(step(None, &resolve, &ctx(1)).is_none());
    assert!(step(None, &Input::RetryClose, &ctx(1)).is_none());
    let reply = Input::CloseResult {
        epoch: 0,
        reply: CloseReply::Delivered { status: 202 },
        duration_ms: 1,
    };
    assert!(step(None, &reply, &ctx(1)).is_none());
}

#[test]
fn four_fixture_story_is_one_alert_created_updated_resolved_refired() {
    let mut story = Story::default();
    let outcomes: Vec<Outcome> = [
        new_event(1_000),
        updated_event(2_000),
        closed_event(3_000),
        reopen_event(4_000),
    ]
    .into_iter()
    .map(|s| story.webhook(s).outcome)
    .collect();
    assert_eq!(
        outcomes,
        [
            Outcome::Created,
            Outcome::Updated,
            Outcome::Resolved,
            Outcome::Refired
        ]
    );
    let alert = story.alert();
    assert_eq!(alert.id, ALERT_ID);
    assert_eq!(alert.status, AlertStatus::Firing);
    assert_eq!(alert.reopen_count, 1);
    assert_eq!(alert.epoch, 1);
    assert_eq!(alert.resolved_by, None);
    assert_eq!(story.history.len(), 4);
    assert!(story.outbox.is_empty());
}

// Rule 2: order and duplicates.

#[test]
fn rule2_older_version_is_stale_and_changes_nothing() {
    let mut story = Story::default();
    story.webhook(new_event(1_000));
    story.webhook(closed_event(3_000));
    let before = story.alert().clone();
    let step = story.webhook(updated_event(2_000));
    assert_eq!(step.outcome, Outcome::Stale);
    assert_eq!(
        step.history.len(),
        1,
        "a stale event is still kept in history"
    );
    assert_eq!(step.history[0].outcome, "stale");
    let after = story.alert();
    assert_eq!(after.status, AlertStatus::Resolved);
    assert_eq!(after.severity, before.severity);
    assert_eq!(after.max_version, Some(3_000));
    assert_eq!(after.updated_at, before.updated_at);
}

#[test]
fn rule2_identical_event_is_duplicate() {
    let mut story = Story::default();
    story.webhook(new_event(1_000));
    story.webhook(updated_event(2_000));
    let before = story.alert().clone();
    let step = story.webhook(updated_event(2_000));
    assert_eq!(step.outcome, Outcome::Duplicate);
    assert_eq!(story.alert().updated_at, before.updated_at);
    assert_eq!(story.history.len(), 3);
}

/// An alert written before the digest became XXH3 holds a SHA-256 digest: the resend of its
/// last event must still be a duplicate, not an update.
#[test]
fn rule2_digest_stored_before_xxh3_still_catches_the_resend() {
    let mut story = Story::default();
    story.webhook(new_event(1_000));
    story.webhook(updated_event(2_000));
    let legacy = updated_event(2_000).legacy_digest();
    story.alert.as_mut().expect("alert exists").last_digest = Some(legacy.clone());
    let step = story.webhook(updated_event(2_000));
    assert_eq!(step.outcome, Outcome::Duplicate);
    assert_eq!(story.alert().last_digest.as_deref(), Some(legacy.as_str()));
    // Other content applies, and the alert then holds the new kind of digest.
    assert_eq!(
        story.webhook(closed_event(2_000)).outcome,
        Outcome::Resolved
    );
    let stored = story.alert().last_digest.clone().expect("digest stored");
    assert_eq!(stored, closed_event(2_000).digest());
    assert!(stored.starts_with("x3:"), "{stored}");
}

/// Digests are stored in alerts: if either function's output changed, every incident's next
/// resend would count as an update instead of a duplicate.
#[test]
fn digests_are_stable_across_releases() {
    let s = updated_event(2_000);
    assert_eq!(s.digest(), "x3:ddd352bd83c50897dc746f401916553e");
    assert_eq!(s.legacy_digest(), "5383bfa8b5051f123be371c28bde24ae");
    assert_ne!(s.digest(), closed_event(2_000).digest());
    assert_ne!(s.legacy_digest(), closed_event(2_000).legacy_digest());
}

#[test]
fn rule2_same_version_with_different_content_applies() {
    let mut story = Story::default();
    story.webhook(new_event(1_000));
    let step = story.webhook(closed_event(1_000));
    assert_eq!(step.outcome, Outcome::Resolved);
}

#[test]
fn rule2_events_without_version_apply_in_arrival_order() {
    let mut story = Story::default();
    story.webhook(new_event(5_000));
    let step = story.webhook(snap("incident#closed", Some(false), None));
    assert_eq!(step.outcome, Outcome::Resolved, "no version is never stale");
    let step = story.webhook(snap("incident#new", Some(true), None));
    assert_eq!(step.outcome, Outcome::Refired);
    assert_eq!(story.alert().max_version, Some(5_000));
    // The version-less events did not lower the bar: an older versioned event is still stale.
    assert_eq!(story.webhook(closed_event(4_000)).outcome, Outcome::Stale);
}

// Rule 3: update.

#[test]
fn rule3_applied_event_refreshes_fields_without_state_change() {
    let mut story = Story::default();
    story.webhook(new_event(1_000));
    let mut s = updated_event(2_000);
    s.title = "db-2 / disk_full".into();
    s.details = std::sync::Arc::new(DetailsJson::new(&Details::<String> {
        flapping: Some(true),
        ..Details::default()
    }));
    let step = story.webhook(s);
    assert_eq!(step.outcome, Outcome::Updated);
    let alert = story.alert();
    assert_eq!(alert.status, AlertStatus::Firing);
    assert_eq!(alert.title, "db-2 / disk_full");
    assert_eq!(alert.severity.as_deref(), Some("warning"));
    assert_eq!(alert.bigpanda_status.as_deref(), Some("warning"));
    assert_eq!(
        alert.details.view().expect("details JSON").flapping,
        Some(true)
    );
    assert_eq!(alert.updated_at, story.clock);
}

#[test]
fn rule3_closing_event_also_refreshes_fields() {
    let mut story = Story::default();
    story.webhook(new_event(1_000));
    let mut s = closed_event(2_000);
    s.title = "db-1 / recovered".into();
    story.webhook(s);
    assert_eq!(story.alert().title, "db-1 / recovered");
    assert_eq!(story.alert().bigpanda_status.as_deref(), Some("ok"));
}

#[test]
fn rule3_open_none_updates_fields_but_never_state() {
    let mut story = Story::default();
    story.webhook(closed_event(1_000));
    let mut s = snap("incident#updated", None, Some(2_000));
    s.severity = Some("warning".into());
    let step = story.webhook(s);
    assert_eq!(step.outcome, Outcome::Updated);
    assert_eq!(story.alert().status, AlertStatus::Resolved);
    assert_eq!(story.alert().severity.as_deref(), Some("warning"));
}

// Rule 4: close from BigPanda.

#[test]
fn rule4_closed_snapshot_resolves_firing_alert_without_sending() {
    let mut story = Story::default();
    story.webhook(new_event(1_000));
    let step = story.webhook(closed_event(2_000));
    assert_eq!(step.outcome, Outcome::Resolved);
    let alert = story.alert();
    assert_eq!(alert.status, AlertStatus::Resolved);
    assert_eq!(alert.resolved_by, Some(ResolvedBy::BigPanda));
    assert_eq!(alert.close_sync.state, CloseState::None);
    assert!(!alert.awaiting_echo);
    assert!(step.effects.is_empty());
    assert!(!alert.close_claimable(alert.epoch));
}

// Rule 5: re-open.

#[test]
fn rule5_open_snapshot_after_bigpanda_close_refires_same_alert() {
    let mut story = Story::default();
    story.webhook(new_event(1_000));
    story.webhook(closed_event(2_000));
    let step = story.webhook(updated_event(3_000));
    assert_eq!(step.outcome, Outcome::Refired, "any open snapshot re-fires");
    let alert = story.alert();
    assert_eq!(alert.id, ALERT_ID);
    assert_eq!(alert.status, AlertStatus::Firing);
    assert_eq!(alert.reopen_count, 1);
    assert_eq!(alert.epoch, 1);
    assert_eq!(alert.resolved_by, None);
    assert_eq!(alert.resolved_at, None);
}

#[test]
fn rule5_explicit_reopen_drops_unsent_close_of_older_epoch() {
    let mut story = Story::resolved_here();
    assert_eq!(story.outbox, [close_key(0)]);
    let step = story.webhook(reopen_event(2_000));
    assert_eq!(step.outcome, Outcome::Refired);
    assert_eq!(step.effects, [Effect::Dequeue(close_key(0))]);
    assert!(story.outbox.is_empty());
    let alert = story.alert();
    assert_eq!(alert.close_sync, CloseSync::default());
    assert!(!alert.awaiting_echo);
    assert!(!alert.close_claimable(0));
    assert!(!alert.close_claimable(1));
}

#[test]
fn rule5_reply_for_older_epoch_after_refire_is_only_recorded() {
    let mut story = Story::resolved_here();
    story.webhook(reopen_event(2_000));
    let before = story.alert().clone();
    let step = story.reply(0, CloseReply::Delivered { status: 202 });
    assert_eq!(step.outcome, Outcome::Recorded);
    assert!(step.effects.is_empty());
    assert_eq!(story.alert().status, AlertStatus::Firing);
    assert_eq!(story.alert().close_sync, before.close_sync);
    assert_eq!(step.history[0].kind, "close_attempt");
}

#[test]
fn rule5_every_refire_counts() {
    let mut story = Story::default();
    story.webhook(new_event(1_000));
    for i in 0..3 {
        story.webhook(closed_event(2_000 + 2_000 * i));
        assert_eq!(
            story.webhook(reopen_event(3_000 + 2_000 * i)).outcome,
            Outcome::Refired
        );
    }
    assert_eq!(story.alert().reopen_count, 3);
    assert_eq!(story.alert().epoch, 3);
}

// Rule 6: resolve here.

#[test]
fn rule6_local_resolve_of_firing_alert_enqueues_close() {
    let mut story = Story::default();
    story.webhook(new_event(1_000));
    let step = story.resolve("ana");
    assert_eq!(step.outcome, Outcome::Resolved);
    let alert = story.alert();
    assert_eq!(alert.status, AlertStatus::Resolved);
    assert_eq!(alert.resolved_by, Some(ResolvedBy::User("ana".into())));
    assert_eq!(alert.close_sync.state, CloseState::Pending);
    assert!(alert.awaiting_echo);
    assert!(alert.close_claimable(0));
    let [Effect::Enqueue(Outbound::Close {
        alert_id,
        epoch,
        comment,
        ..
    })] = step.effects.as_slice()
    else {
        panic!("expected one enqueued close, got {:?}", step.effects);
    };
    assert_eq!(alert_id, ALERT_ID);
    assert_eq!(*epoch, 0);
    assert!(comment.contains("pandabridge") && comment.contains("ana"));
    assert_eq!(step.history[0].kind, "resolve");
}

#[test]
fn rule6_api_resolve_is_recorded_as_api() {
    let mut story = Story::default();
    story.webhook(new_event(1_000));
    story.apply(Input::Resolve {
        by: ResolvedBy::Api,
        comment: None,
    });
    assert_eq!(story.alert().resolved_by, Some(ResolvedBy::Api));
    assert_eq!(story.outbox, [close_key(0)]);
}

#[test]
fn rule6_resolving_a_resolved_alert_changes_nothing() {
    let mut story = Story::resolved_here();
    let before = story.alert().clone();
    let step = story.resolve("bob");
    assert_eq!(step.outcome, Outcome::Unchanged);
    assert!(step.effects.is_empty());
    let after = story.alert();
    assert_eq!(after.resolved_by, before.resolved_by);
    assert_eq!(after.updated_at, before.updated_at);
    assert_eq!(after.close_sync, before.close_sync);
    assert_eq!(story.outbox, [close_key(0)]);

    let mut story = Story::default();
    story.webhook(closed_event(1_000));
    let step = story.resolve("bob");
    assert_eq!(step.outcome, Outcome::Unchanged);
    assert_eq!(story.alert().resolved_by, Some(ResolvedBy::BigPanda));
    assert!(story.outbox.is_empty());
}

// Rule 7: hold.

#[test]
fn rule7_open_snapshot_after_local_resolve_is_held() {
    let mut story = Story::resolved_here();
    let before = story.alert().clone();
    let step = story.webhook(updated_event(2_000));
    assert_eq!(step.outcome, Outcome::Held);
    assert!(step.effects.is_empty());
    let alert = story.alert();
    assert_eq!(alert.status, AlertStatus::Resolved);
    assert_eq!(
        alert.severity, before.severity,
        "a held event is not applied"
    );
    assert_eq!(alert.max_version, before.max_version);
    assert_eq!(alert.last_digest, before.last_digest);
    assert_eq!(story.outbox, [close_key(0)]);
}

#[test]
fn rule7_hold_survives_a_202_until_the_echo() {
    let mut story = Story::resolved_here();
    story.reply(0, CloseReply::Delivered { status: 202 });
    assert_eq!(story.alert().close_sync.state, CloseState::Closed);
    assert!(story.alert().awaiting_echo, "a 202 is not the echo");
    assert_eq!(story.webhook(new_event(2_000)).outcome, Outcome::Held);
}

#[test]
fn rule7_hold_then_explicit_reopen_refires() {
    let mut story = Story::resolved_here();
    assert_eq!(story.webhook(updated_event(2_000)).outcome, Outcome::Held);
    let step = story.webhook(reopen_event(3_000));
    assert_eq!(step.outcome, Outcome::Refired);
    assert_eq!(story.alert().status, AlertStatus::Firing);
    assert_eq!(story.alert().reopen_count, 1);
    assert!(story.outbox.is_empty());
}

#[test]
fn rule7_held_event_can_apply_once_hold_ends() {
    // Held events move neither version nor digest, so the same snapshot applies after the echo.
    let mut story = Story::resolved_here();
    assert_eq!(story.webhook(updated_event(3_000)).outcome, Outcome::Held);
    story.webhook(closed_event(2_000));
    assert_eq!(
        story.webhook(updated_event(3_000)).outcome,
        Outcome::Refired
    );
}

// Rule 8: echo.

#[test]
fn rule8_echo_confirms_close_and_dequeues_unsent_entry() {
    let mut story = Story::resolved_here();
    let step = story.webhook(closed_event(2_000));
    assert_eq!(step.outcome, Outcome::Updated);
    assert_eq!(step.effects, [Effect::Dequeue(close_key(0))]);
    assert!(
        story.outbox.is_empty(),
        "BigPanda is never asked to close a closed incident"
    );
    assert!(step.history.iter().any(|h| h.kind == "close_confirmed"));
    let alert = story.alert();
    assert_eq!(alert.close_sync.state, CloseState::Closed);
    assert!(!alert.awaiting_echo);
    assert_eq!(alert.resolved_by, Some(ResolvedBy::User("ana".into())));
    assert!(!alert.close_claimable(0));
}

#[test]
fn rule8_echo_after_delivery_dequeues_nothing() {
    let mut story = Story::resolved_here();
    story.reply(0, CloseReply::Delivered { status: 202 });
    assert!(story.outbox.is_empty());
    let step = story.webhook(closed_event(2_000));
    assert_eq!(step.outcome, Outcome::Updated);
    assert!(step.effects.is_empty());
    assert_eq!(story.alert().close_sync.state, CloseState::Closed);
    assert!(!story.alert().awaiting_echo);
}

#[test]
fn rule8_after_echo_open_snapshot_refires() {
    let mut story = Story::resolved_here();
    story.webhook(closed_event(2_000));
    let step = story.webhook(updated_event(3_000));
    assert_eq!(step.outcome, Outcome::Refired);
    assert_eq!(story.alert().reopen_count, 1);
}

#[test]
fn rule8_reply_after_echo_is_only_recorded() {
    let mut story = Story::resolved_here();
    story.webhook(closed_event(2_000));
    let step = story.reply(0, CloseReply::NotFound { status: 404 });
    assert_eq!(step.outcome, Outcome::Recorded);
    assert!(step.effects.is_empty());
    assert_eq!(story.alert().close_sync.state, CloseState::Closed);
    assert_eq!(story.alert().close_sync.last_error, None);
}

// Rule 9: close delivery.

#[test]
fn rule9_2xx_and_409_close() {
    for status in [200, 202, 409] {
        let mut story = Story::resolved_here();
        let step = story.reply(0, CloseReply::Delivered { status });
        assert_eq!(step.outcome, Outcome::Recorded);
        assert_eq!(step.effects, [Effect::Dequeue(close_key(0))]);
        let sync = &story.alert().close_sync;
        assert_eq!(sync.state, CloseState::Closed, "status {status}");
        assert_eq!(sync.attempts, 1);
        assert_eq!(sync.last_error, None);
        assert!(!story.alert().close_claimable(0));
        assert!(story.outbox.is_empty());
    }
}

#[test]
fn rule9_404_fails_and_is_not_retried() {
    let mut story = Story::resolved_here();
    let step = story.reply(0, CloseReply::NotFound { status: 404 });
    assert_eq!(step.effects, [Effect::Dequeue(close_key(0))]);
    let sync = &story.alert().close_sync;
    assert_eq!(sync.state, CloseState::Failed);
    assert!(sync.last_error.as_deref().unwrap_or("").contains("404"));
    assert_eq!(sync.next_attempt_at, None);
    assert!(step.history.iter().any(|h| h.kind == "close_failed"));
    assert!(story.outbox.is_empty());
    assert!(!story.alert().close_claimable(0));
}

#[test]
fn rule9_401_and_403_keep_close_pending() {
    for status in [401, 403] {
        let mut story = Story::resolved_here();
        let step = story.reply(0, CloseReply::Unauthorized { status });
        assert!(step.effects.is_empty(), "the entry is kept, paused");
        let sync = &story.alert().close_sync;
        assert_eq!(sync.state, CloseState::Pending);
        assert_eq!(sync.attempts, 1);
        assert!(sync.last_error.is_some());
        assert_eq!(story.outbox, [close_key(0)]);
        assert!(story.alert().close_claimable(0));
    }
}

#[test]
fn rule9_transient_error_keeps_close_pending_with_backoff() {
    let mut story = Story::resolved_here();
    story.reply(
        0,
        CloseReply::Retry {
            status: Some(503),
            error: "HTTP 503".into(),
            next_attempt_at: 99_000,
        },
    );
    let sync = &story.alert().close_sync;
    assert_eq!(sync.state, CloseState::Pending);
    assert_eq!(sync.next_attempt_at, Some(99_000));
    assert_eq!(sync.last_error.as_deref(), Some("HTTP 503"));
    assert_eq!(story.outbox, [close_key(0)]);
    story.reply(0, CloseReply::Delivered { status: 202 });
    assert_eq!(story.alert().close_sync.state, CloseState::Closed);
    assert_eq!(story.alert().close_sync.attempts, 2);
}

#[test]
fn rule9_no_environment_fails_visibly() {
    let mut story = Story::resolved_here();
    let step = story.reply(0, CloseReply::NoEnvironment);
    assert_eq!(step.effects, [Effect::Dequeue(close_key(0))]);
    let sync = &story.alert().close_sync;
    assert_eq!(sync.state, CloseState::Failed);
    assert!(sync
        .last_error
        .as_deref()
        .unwrap_or("")
        .contains("no_environment_id"));
}

#[test]
fn rule9_retry_close_requeues_a_failed_close() {
    let mut story = Story::resolved_here();
    story.reply(0, CloseReply::NoEnvironment);
    let step = story.apply(Input::RetryClose);
    assert_eq!(step.outcome, Outcome::Requeued);
    assert_eq!(story.outbox, [close_key(0)]);
    let sync = &story.alert().close_sync;
    assert_eq!(sync.state, CloseState::Pending);
    assert_eq!(sync.last_error, None);
    assert!(story.alert().close_claimable(0));
    story.reply(0, CloseReply::Delivered { status: 202 });
    assert_eq!(story.alert().close_sync.state, CloseState::Closed);
    assert!(story.outbox.is_empty());
}

#[test]
fn rule9_retry_close_does_nothing_unless_a_close_failed() {
    // Firing.
    let mut story = Story::default();
    story.webhook(new_event(1_000));
    assert_eq!(story.apply(Input::RetryClose).outcome, Outcome::Unchanged);
    // Pending.
    let mut story = Story::resolved_here();
    assert_eq!(story.apply(Input::RetryClose).outcome, Outcome::Unchanged);
    assert_eq!(story.outbox, [close_key(0)]);
    // Closed.
    story.reply(0, CloseReply::Delivered { status: 202 });
    assert_eq!(story.apply(Input::RetryClose).outcome, Outcome::Unchanged);
    assert!(story.outbox.is_empty());
    // Failed but already echoed: BigPanda reports it closed, nothing is owed.
    let mut story = Story::resolved_here();
    story.reply(0, CloseReply::NotFound { status: 404 });
    story.webhook(closed_event(2_000));
    let step = story.apply(Input::RetryClose);
    assert_eq!(step.outcome, Outcome::Unchanged);
    assert!(step.effects.is_empty());
    // Resolved by BigPanda.
    let mut story = Story::default();
    story.webhook(closed_event(1_000));
    assert_eq!(story.apply(Input::RetryClose).outcome, Outcome::Unchanged);
    assert!(story.outbox.is_empty());
}

#[test]
fn rule9_reply_for_a_close_no_longer_pending_is_only_recorded() {
    let mut story = Story::resolved_here();
    story.reply(0, CloseReply::Delivered { status: 202 });
    let before = story.alert().close_sync.clone();
    let step = story.reply(0, CloseReply::NotFound { status: 404 });
    assert_eq!(step.outcome, Outcome::Recorded);
    assert!(step.effects.is_empty());
    assert_eq!(story.alert().close_sync, before);
}

// Rule 10: ignore.

#[test]
fn rule10_event_with_no_field_change_is_ignored() {
    let mut story = Story::default();
    story.webhook(new_event(1_000));
    let before = story.alert().clone();
    let step = story.webhook(snap("incident#commented", Some(true), Some(2_000)));
    assert_eq!(step.outcome, Outcome::Ignored);
    assert_eq!(step.history[0].outcome, "ignored");
    let after = story.alert();
    assert_eq!(after.updated_at, before.updated_at);
    assert_eq!(
        after.max_version,
        Some(2_000),
        "an ignored event is applied"
    );
    assert_ne!(after.last_digest, before.last_digest);
    // Being applied, an older event is now stale.
    assert_eq!(story.webhook(updated_event(1_500)).outcome, Outcome::Stale);
}

#[test]
fn rule10_closed_snapshot_on_alert_closed_by_bigpanda_is_ignored() {
    let mut story = Story::default();
    story.webhook(closed_event(1_000));
    let step = story.webhook(snap("incident#commented", Some(false), Some(2_000)));
    assert_eq!(step.outcome, Outcome::Ignored);
    assert_eq!(story.alert().status, AlertStatus::Resolved);
}

// Rule 11: history.

#[test]
fn rule11_every_input_is_recorded_in_order() {
    let mut story = Story::default();
    story.webhook(new_event(1_000));
    story.webhook(new_event(1_000)); // duplicate
    story.webhook(updated_event(500)); // stale
    story.resolve("ana");
    story.webhook(updated_event(2_000)); // held
    story.resolve("bob"); // unchanged
    story.reply(0, CloseReply::Unauthorized { status: 401 });
    story.reply(0, CloseReply::NotFound { status: 404 });
    story.apply(Input::RetryClose);
    story.webhook(closed_event(3_000)); // echo
    let kinds: Vec<(&str, &str)> = story
        .history
        .iter()
        .map(|h| (h.kind.as_str(), h.outcome.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("webhook", "created"),
            ("webhook", "duplicate"),
            ("webhook", "stale"),
            ("resolve", "resolved"),
            ("webhook", "held"),
            ("resolve", "unchanged"),
            ("close_attempt", "paused"),
            ("close_attempt", "failed"),
            ("close_failed", "failed"),
            ("retry_close", "requeued"),
            ("webhook", "updated"),
            ("close_confirmed", "closed"),
        ]
    );
    assert_eq!(story.alert().history_len, 12);
}
