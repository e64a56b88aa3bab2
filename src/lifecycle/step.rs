//! The transition function. Rule numbers refer to `LIFECYCLE.md`.

use serde_json::json;

use super::snapshot::{EventType, Millis, Snapshot};
use super::state::{
    Alert, AlertStatus, CloseState, CloseSync, HistoryEvent, Outbound, OutboundKey, Outcome,
    ResolvedBy,
};

/// Something that happens to an alert.
// An input is built once per event and moved straight into `step`; boxing the snapshot would
// cost an allocation per webhook and change the engine's API for no gain.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A webhook from BigPanda, already parsed.
    Webhook(Snapshot),
    /// A resolve by a user or an API client of pandabridge (rule 6).
    Resolve {
        by: ResolvedBy,
        comment: Option<String>,
    },
    /// What BigPanda answered to a close request sent for `epoch` (rule 9).
    CloseResult {
        epoch: u32,
        reply: CloseReply,
        duration_ms: u64,
    },
    /// An operator asks to try a failed close again.
    RetryClose,
    /// A webhook whose processing crashed its actor twice: kept in history, applied no further
    /// (a poison event). Creates a firing alert if the incident has none, so an incident we
    /// cannot process is never silently missing.
    Quarantine {
        incident_id: String,
        event_type: EventType,
        version: Option<Millis>,
        reason: String,
    },
}

/// A close request's result, classified by the BigPanda client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseReply {
    /// 2xx, or 409 (already resolved): BigPanda has the close.
    Delivered { status: u16 },
    /// 404: the incident is unknown to BigPanda; retrying cannot help.
    NotFound { status: u16 },
    /// 401/403: the key is bad; the close is kept and paused.
    Unauthorized { status: u16 },
    /// 429, 5xx, timeout, connection error: try again at `next_attempt_at`.
    Retry {
        /// BigPanda's status when it answered (429, 5xx); `None` for timeouts and connection errors.
        status: Option<u16>,
        error: String,
        next_attempt_at: Millis,
    },
    /// No environment id anywhere: cannot address the incident (retryable by an operator).
    NoEnvironment,
    /// Any other refusal that resending the same request cannot change (another 4xx, or ids
    /// that cannot form a URL): failed, visible, retryable by an operator.
    Rejected { status: Option<u16>, error: String },
}

/// The world around one step: the clock and, for a new alert, its identity.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ctx {
    pub now: Millis,
    /// Id given to the alert if this step creates it.
    pub new_alert_id: String,
    pub source_id: String,
}

/// What the engine must do outside the pure state: in the same atomic write as the alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Put a message in the durable outbox.
    Enqueue(Outbound),
    /// Remove a message from the outbox: delivered, failed for good, or no longer owed.
    Dequeue(OutboundKey),
}

/// The result of one step.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub alert: Alert,
    pub outcome: Outcome,
    /// Entries to append to the alert's history, in order.
    pub history: Vec<HistoryEvent>,
    pub effects: Vec<Effect>,
}

/// Applies one input. Returns `None` when the input needs an existing alert and there is none
/// (only a webhook can create an alert).
pub fn step(current: Option<&Alert>, input: &Input, ctx: &Ctx) -> Option<Step> {
    match (current, input) {
        (None, Input::Webhook(snap)) => Some(create(snap, ctx)),
        (current, Input::Quarantine { .. }) => Some(quarantine(current, input, ctx)),
        (None, _) => None,
        (Some(alert), Input::Webhook(snap)) => Some(webhook(alert, snap, ctx)),
        (Some(alert), Input::Resolve { by, comment }) => {
            Some(resolve(alert, by, comment.as_deref(), ctx))
        }
        (
            Some(alert),
            Input::CloseResult {
                epoch,
                reply,
                duration_ms,
            },
        ) => Some(close_result(alert, *epoch, reply, *duration_ms, ctx)),
        (Some(alert), Input::RetryClose) => Some(retry_close(alert, ctx)),
    }
}

fn webhook_entry(snap: &Snapshot, outcome: Outcome, now: Millis) -> HistoryEvent {
    HistoryEvent {
        at: now,
        kind: "webhook".into(),
        outcome: outcome.as_str().into(),
        detail: json!({
            "event_type": snap.event_type.as_str(),
            "version": snap.version,
            "open": snap.open,
            "status": snap.status,
        }),
    }
}

/// Rule 1. An open (or unspecified) snapshot fires; a closed one is recorded resolved by BigPanda.
fn create(snap: &Snapshot, ctx: &Ctx) -> Step {
    let open = snap.open.unwrap_or(true);
    let alert = Alert {
        id: ctx.new_alert_id.clone(),
        source_id: ctx.source_id.clone(),
        incident_id: snap.incident_id.clone(),
        status: if open {
            AlertStatus::Firing
        } else {
            AlertStatus::Resolved
        },
        title: snap.title.clone(),
        description: snap.description.clone(),
        severity: snap.severity.clone(),
        bigpanda_status: snap.status.clone(),
        environment_id: snap.environment_id.clone(),
        details: snap.details.clone(),
        created_at: ctx.now,
        updated_at: ctx.now,
        resolved_at: (!open).then_some(ctx.now),
        resolved_by: (!open).then_some(ResolvedBy::BigPanda),
        reopen_count: 0,
        close_sync: CloseSync::default(),
        epoch: 0,
        max_version: snap.version,
        last_digest: Some(snap.digest()),
        awaiting_echo: false,
        history_len: 1,
    };
    Step {
        alert,
        outcome: Outcome::Created,
        history: vec![webhook_entry(snap, Outcome::Created, ctx.now)],
        effects: vec![],
    }
}

/// Copies the descriptive fields of a snapshot; true when any of them changed (rule 3).
fn refresh(alert: &mut Alert, snap: &Snapshot) -> bool {
    let mut changed = false;
    macro_rules! set {
        ($field:ident, $value:expr) => {
            if alert.$field != $value {
                alert.$field = $value;
                changed = true;
            }
        };
    }
    set!(title, snap.title.clone());
    set!(description, snap.description.clone());
    set!(severity, snap.severity.clone());
    set!(bigpanda_status, snap.status.clone());
    if snap.environment_id.is_some() {
        set!(environment_id, snap.environment_id.clone());
    }
    set!(details, snap.details.clone());
    changed
}

fn webhook(current: &Alert, snap: &Snapshot, ctx: &Ctx) -> Step {
    let now = ctx.now;
    let unchanged = |outcome: Outcome| {
        let mut alert = current.clone();
        alert.history_len += 1;
        Step {
            alert,
            outcome,
            history: vec![webhook_entry(snap, outcome, now)],
            effects: vec![],
        }
    };

    // Rule 2: order and duplicates.
    if let (Some(v), Some(max)) = (snap.version, current.max_version) {
        if v < max {
            return unchanged(Outcome::Stale);
        }
    }
    let digest = snap.digest();
    if current
        .last_digest
        .as_deref()
        .is_some_and(|stored| snap.has_digest(stored, &digest))
    {
        return unchanged(Outcome::Duplicate);
    }

    let open = snap.open;
    let resolved_here = current.status == AlertStatus::Resolved && current.awaiting_echo;

    // Rule 7: after a local resolve, an open snapshot that is not an explicit reopen predates
    // our close. It is not applied, so it moves neither the version nor the digest.
    if resolved_here && open == Some(true) && !snap.event_type.is_explicit_reopen() {
        return unchanged(Outcome::Held);
    }

    let mut alert = current.clone();
    let mut effects = Vec::new();
    let mut extra = Vec::new();
    alert.max_version = match (alert.max_version, snap.version) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    alert.last_digest = Some(digest);
    let fields_changed = refresh(&mut alert, snap);

    let outcome = match (current.status, open) {
        // Rule 4: closed in BigPanda.
        (AlertStatus::Firing, Some(false)) => {
            alert.status = AlertStatus::Resolved;
            alert.resolved_at = Some(now);
            alert.resolved_by = Some(ResolvedBy::BigPanda);
            Outcome::Resolved
        }
        // Rule 5: re-opened (explicitly, or after a close BigPanda made itself).
        (AlertStatus::Resolved, Some(true)) => {
            if current.close_sync.state == CloseState::Pending {
                effects.push(Effect::Dequeue(close_key(current)));
            }
            alert.status = AlertStatus::Firing;
            alert.resolved_at = None;
            alert.resolved_by = None;
            alert.reopen_count += 1;
            alert.epoch += 1;
            alert.awaiting_echo = false;
            alert.close_sync = CloseSync::default();
            Outcome::Refired
        }
        // Rule 8: the echo of our own close.
        (AlertStatus::Resolved, Some(false)) if resolved_here => {
            if current.close_sync.state == CloseState::Pending {
                effects.push(Effect::Dequeue(close_key(current)));
            }
            alert.awaiting_echo = false;
            alert.close_sync.state = CloseState::Closed;
            alert.close_sync.next_attempt_at = None;
            alert.close_sync.last_error = None;
            extra.push(HistoryEvent {
                at: now,
                kind: "close_confirmed".into(),
                outcome: "closed".into(),
                detail: json!({"via": "webhook_echo", "epoch": current.epoch}),
            });
            Outcome::Updated
        }
        _ if fields_changed => Outcome::Updated,
        // Rule 10: nothing the alert shows has changed.
        _ => Outcome::Ignored,
    };
    if outcome != Outcome::Ignored {
        alert.updated_at = now;
    }
    let mut history = vec![webhook_entry(snap, outcome, now)];
    history.extend(extra);
    alert.history_len += history.len() as u64;
    Step {
        alert,
        outcome,
        history,
        effects,
    }
}

fn close_key(alert: &Alert) -> OutboundKey {
    OutboundKey {
        alert_id: alert.id.clone(),
        epoch: alert.epoch,
        kind: Outbound::CLOSE.to_string(),
    }
}

/// The `comments` text sent to BigPanda with a close.
pub fn close_comment(by: &ResolvedBy, comment: Option<&str>) -> String {
    let who = match by {
        ResolvedBy::User(name) => name.clone(),
        ResolvedBy::Api => "an API client".to_string(),
        ResolvedBy::BigPanda => "BigPanda".to_string(),
    };
    match comment.map(str::trim).filter(|c| !c.is_empty()) {
        Some(c) => format!("Resolved in pandabridge by {who}: {c}"),
        None => format!("Resolved in pandabridge by {who}"),
    }
}

/// Rule 6.
fn resolve(current: &Alert, by: &ResolvedBy, comment: Option<&str>, ctx: &Ctx) -> Step {
    let mut alert = current.clone();
    let detail = json!({"resolved_by": by.as_string(), "comment": comment});
    if current.status == AlertStatus::Resolved {
        alert.history_len += 1;
        return Step {
            alert,
            outcome: Outcome::Unchanged,
            history: vec![HistoryEvent {
                at: ctx.now,
                kind: "resolve".into(),
                outcome: Outcome::Unchanged.as_str().into(),
                detail,
            }],
            effects: vec![],
        };
    }
    alert.status = AlertStatus::Resolved;
    alert.resolved_at = Some(ctx.now);
    alert.resolved_by = Some(by.clone());
    alert.updated_at = ctx.now;
    alert.awaiting_echo = true;
    alert.close_sync = CloseSync {
        state: CloseState::Pending,
        attempts: 0,
        last_error: None,
        next_attempt_at: Some(ctx.now),
    };
    alert.history_len += 1;
    let close = Outbound::Close {
        alert_id: alert.id.clone(),
        source_id: alert.source_id.clone(),
        incident_id: alert.incident_id.clone(),
        epoch: alert.epoch,
        comment: close_comment(by, comment),
        requested_at: ctx.now,
    };
    Step {
        alert,
        outcome: Outcome::Resolved,
        history: vec![HistoryEvent {
            at: ctx.now,
            kind: "resolve".into(),
            outcome: Outcome::Resolved.as_str().into(),
            detail,
        }],
        effects: vec![Effect::Enqueue(close)],
    }
}

/// Rule 9, the state half: the BigPanda client reports what happened to a send.
fn close_result(
    current: &Alert,
    epoch: u32,
    reply: &CloseReply,
    duration_ms: u64,
    ctx: &Ctx,
) -> Step {
    let now = ctx.now;
    let mut alert = current.clone();
    let mut history = Vec::new();
    let attempt = |result: &str, status: Option<u16>, error: Option<&str>| HistoryEvent {
        at: now,
        kind: "close_attempt".into(),
        outcome: result.into(),
        detail: json!({"epoch": epoch, "http_status": status, "error": error, "duration_ms": duration_ms}),
    };
    let key = OutboundKey {
        alert_id: current.id.clone(),
        epoch,
        kind: Outbound::CLOSE.to_string(),
    };

    // A reply for an older epoch, or for a close no longer owed (echo came first): history only.
    let live = current.epoch == epoch && current.close_sync.state == CloseState::Pending;
    if !live {
        let (result, status, error) = match reply {
            CloseReply::Delivered { status } => ("delivered", Some(*status), None),
            CloseReply::NotFound { status } | CloseReply::Unauthorized { status } => {
                ("rejected", Some(*status), None)
            }
            CloseReply::Retry { status, error, .. } => ("error", *status, Some(error.as_str())),
            CloseReply::NoEnvironment => ("error", None, Some("no_environment_id")),
            CloseReply::Rejected { status, error } => ("rejected", *status, Some(error.as_str())),
        };
        let mut entry = attempt(result, status, error);
        entry.detail["superseded"] = json!(true);
        alert.history_len += 1;
        return Step {
            alert,
            outcome: Outcome::Recorded,
            history: vec![entry],
            effects: vec![],
        };
    }

    let mut effects = Vec::new();
    let sync = &mut alert.close_sync;
    match reply {
        CloseReply::Delivered { status } => {
            sync.attempts += 1;
            sync.state = CloseState::Closed;
            sync.last_error = None;
            sync.next_attempt_at = None;
            history.push(attempt("delivered", Some(*status), None));
            effects.push(Effect::Dequeue(key));
        }
        CloseReply::NotFound { status } => {
            sync.attempts += 1;
            sync.state = CloseState::Failed;
            let msg = format!("BigPanda answered {status}: incident not found");
            sync.last_error = Some(msg.clone());
            sync.next_attempt_at = None;
            history.push(attempt("failed", Some(*status), None));
            history.push(failed_entry(now, epoch, "incident_not_found", &msg));
            effects.push(Effect::Dequeue(key));
        }
        CloseReply::Unauthorized { status } => {
            sync.attempts += 1;
            sync.last_error = Some(format!(
                "BigPanda answered {status}: API key rejected; closes paused until a valid key is stored"
            ));
            sync.next_attempt_at = None;
            history.push(attempt("paused", Some(*status), None));
        }
        CloseReply::Retry {
            status,
            error,
            next_attempt_at,
        } => {
            sync.attempts += 1;
            sync.last_error = Some(error.clone());
            sync.next_attempt_at = Some(*next_attempt_at);
            history.push(attempt("retry", *status, Some(error)));
        }
        CloseReply::Rejected { status, error } => {
            sync.attempts += 1;
            sync.state = CloseState::Failed;
            let msg = match status {
                Some(code) => format!("BigPanda refused the close with HTTP {code}: {error}"),
                None => format!("the close could not be sent: {error}"),
            };
            sync.last_error = Some(msg.clone());
            sync.next_attempt_at = None;
            history.push(attempt("failed", *status, Some(error)));
            history.push(failed_entry(now, epoch, "rejected", &msg));
            effects.push(Effect::Dequeue(key));
        }
        CloseReply::NoEnvironment => {
            sync.state = CloseState::Failed;
            let msg = "no_environment_id: neither the webhook nor the alert source names a BigPanda environment; set the source's default_environment_id and retry the close";
            sync.last_error = Some(msg.into());
            sync.next_attempt_at = None;
            history.push(failed_entry(now, epoch, "no_environment_id", msg));
            effects.push(Effect::Dequeue(key));
        }
    }
    alert.updated_at = now;
    alert.history_len += history.len() as u64;
    Step {
        alert,
        outcome: Outcome::Recorded,
        history,
        effects,
    }
}

fn failed_entry(now: Millis, epoch: u32, code: &str, message: &str) -> HistoryEvent {
    HistoryEvent {
        at: now,
        kind: "close_failed".into(),
        outcome: "failed".into(),
        detail: json!({"epoch": epoch, "code": code, "message": message}),
    }
}

/// An operator re-queues a failed close. Only a failed close of the current, still resolved-here
/// epoch can be retried; anything else is unchanged.
fn retry_close(current: &Alert, ctx: &Ctx) -> Step {
    let mut alert = current.clone();
    alert.history_len += 1;
    let retryable = current.status == AlertStatus::Resolved
        && current.awaiting_echo
        && current.close_sync.state == CloseState::Failed;
    if !retryable {
        return Step {
            alert,
            outcome: Outcome::Unchanged,
            history: vec![HistoryEvent {
                at: ctx.now,
                kind: "retry_close".into(),
                outcome: Outcome::Unchanged.as_str().into(),
                detail: json!({"close_state": current.close_sync.state}),
            }],
            effects: vec![],
        };
    }
    alert.close_sync.state = CloseState::Pending;
    alert.close_sync.last_error = None;
    alert.close_sync.next_attempt_at = Some(ctx.now);
    alert.updated_at = ctx.now;
    let by = current.resolved_by.clone().unwrap_or(ResolvedBy::Api);
    let close = Outbound::Close {
        alert_id: alert.id.clone(),
        source_id: alert.source_id.clone(),
        incident_id: alert.incident_id.clone(),
        epoch: alert.epoch,
        comment: close_comment(&by, None),
        requested_at: ctx.now,
    };
    Step {
        alert,
        outcome: Outcome::Requeued,
        history: vec![HistoryEvent {
            at: ctx.now,
            kind: "retry_close".into(),
            outcome: Outcome::Requeued.as_str().into(),
            detail: json!({"epoch": current.epoch}),
        }],
        effects: vec![Effect::Enqueue(close)],
    }
}

/// A poison event: recorded, never applied. See [`Input::Quarantine`].
fn quarantine(current: Option<&Alert>, input: &Input, ctx: &Ctx) -> Step {
    let Input::Quarantine {
        incident_id,
        event_type,
        version,
        reason,
    } = input
    else {
        unreachable!("quarantine() is only called with Input::Quarantine")
    };
    let entry = HistoryEvent {
        at: ctx.now,
        kind: "webhook".into(),
        outcome: Outcome::Quarantined.as_str().into(),
        detail: json!({"event_type": event_type.as_str(), "version": version, "reason": reason}),
    };
    let mut alert = match current {
        Some(a) => a.clone(),
        None => Alert {
            id: ctx.new_alert_id.clone(),
            source_id: ctx.source_id.clone(),
            incident_id: incident_id.clone(),
            status: AlertStatus::Firing,
            title: format!("BigPanda incident {incident_id}"),
            description: Some(
                "An event for this incident could not be processed; see its history.".into(),
            ),
            severity: None,
            bigpanda_status: None,
            environment_id: None,
            details: Default::default(),
            created_at: ctx.now,
            updated_at: ctx.now,
            resolved_at: None,
            resolved_by: None,
            reopen_count: 0,
            close_sync: CloseSync::default(),
            epoch: 0,
            max_version: None,
            last_digest: None,
            awaiting_echo: false,
            history_len: 0,
        },
    };
    alert.history_len += 1;
    Step {
        alert,
        outcome: Outcome::Quarantined,
        history: vec![entry],
        effects: vec![],
    }
}
