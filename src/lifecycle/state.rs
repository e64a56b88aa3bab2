//! The persisted alert, its history entries and the outbound messages it asks for.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::snapshot::{DetailsJson, Millis};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertStatus {
    Firing,
    Resolved,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Firing => "firing",
            AlertStatus::Resolved => "resolved",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "firing" => Some(AlertStatus::Firing),
            "resolved" => Some(AlertStatus::Resolved),
            _ => None,
        }
    }
}

/// Who resolved an alert: BigPanda itself, a named user here, or an anonymous API call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolvedBy {
    BigPanda,
    User(String),
    Api,
}

impl ResolvedBy {
    pub fn as_string(&self) -> String {
        match self {
            ResolvedBy::BigPanda => "bigpanda".to_string(),
            ResolvedBy::User(name) => format!("user:{name}"),
            ResolvedBy::Api => "api".to_string(),
        }
    }
    pub fn parse(s: &str) -> Self {
        match s {
            "bigpanda" => ResolvedBy::BigPanda,
            "api" => ResolvedBy::Api,
            other => ResolvedBy::User(other.strip_prefix("user:").unwrap_or(other).to_string()),
        }
    }
    pub fn is_local(&self) -> bool {
        !matches!(self, ResolvedBy::BigPanda)
    }
}

impl Serialize for ResolvedBy {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.as_string())
    }
}

impl<'de> Deserialize<'de> for ResolvedBy {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Ok(ResolvedBy::parse(&s))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum CloseState {
    #[default]
    None,
    Pending,
    Closed,
    Failed,
}

/// The state of the close we owe BigPanda for the current epoch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CloseSync {
    pub state: CloseState,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub next_attempt_at: Option<Millis>,
}

/// One alert: the public fields of CONTRACT §3 plus the lifecycle's own bookkeeping.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    pub id: String,
    pub source_id: String,
    pub incident_id: String,
    pub status: AlertStatus,
    pub title: String,
    pub description: Option<String>,
    pub severity: Option<String>,
    pub bigpanda_status: Option<String>,
    pub environment_id: Option<String>,
    /// Shared with the snapshot it came from: cloned per step, never deep-copied.
    pub details: Arc<DetailsJson>,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub resolved_at: Option<Millis>,
    pub resolved_by: Option<ResolvedBy>,
    pub reopen_count: u32,
    pub close_sync: CloseSync,
    /// Bumped on every re-fire; a close is only valid for the epoch it was requested in.
    pub epoch: u32,
    /// Highest webhook version applied so far (rule 2).
    pub max_version: Option<Millis>,
    /// Digest of the last applied snapshot (rule 2, duplicates).
    pub last_digest: Option<String>,
    /// Resolved here and BigPanda has not yet echoed a closed snapshot (rules 7 and 8).
    pub awaiting_echo: bool,
    /// Number of history entries written; the next entry's sequence number.
    pub history_len: u64,
}

impl Alert {
    /// Whether a close for `epoch` may be sent now (rule 9): still resolved here, at that
    /// epoch, with the close still owed.
    pub fn close_claimable(&self, epoch: u32) -> bool {
        self.status == AlertStatus::Resolved
            && self.epoch == epoch
            && self.awaiting_echo
            && self.close_sync.state == CloseState::Pending
            && self.resolved_by.as_ref().is_some_and(ResolvedBy::is_local)
    }
}

/// What happened to one input, as reported to the webhook caller and kept in history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Created,
    Updated,
    Resolved,
    Refired,
    Duplicate,
    Stale,
    Held,
    Ignored,
    /// A local action that found nothing to do (resolve of a resolved alert, ...).
    Unchanged,
    /// A failed close put back in the outbox.
    Requeued,
    /// A close reply, recorded with its result in the history entry.
    Recorded,
    /// A poison event: kept in history, not applied.
    Quarantined,
}

impl Outcome {
    pub const WEBHOOK: [Outcome; 8] = [
        Outcome::Created,
        Outcome::Updated,
        Outcome::Resolved,
        Outcome::Refired,
        Outcome::Duplicate,
        Outcome::Stale,
        Outcome::Held,
        Outcome::Ignored,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Created => "created",
            Outcome::Updated => "updated",
            Outcome::Resolved => "resolved",
            Outcome::Refired => "refired",
            Outcome::Duplicate => "duplicate",
            Outcome::Stale => "stale",
            Outcome::Held => "held",
            Outcome::Ignored => "ignored",
            Outcome::Unchanged => "unchanged",
            Outcome::Requeued => "requeued",
            Outcome::Recorded => "recorded",
            Outcome::Quarantined => "quarantined",
        }
    }
}

/// One entry of an alert's history (CONTRACT §3 "Event").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEvent {
    pub at: Millis,
    /// `webhook`, `resolve`, `retry_close`, `close_attempt`, `close_confirmed`, `close_failed`.
    pub kind: String,
    pub outcome: String,
    pub detail: serde_json::Value,
}

/// Identifies one outbox entry: one kind of message per alert and epoch.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OutboundKey {
    pub alert_id: String,
    pub epoch: u32,
    pub kind: String,
}

/// A message owed to the outside world, kept in the durable outbox until delivered or dropped.
/// Closes are the first kind; paging notifications will join them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Outbound {
    Close {
        alert_id: String,
        source_id: String,
        incident_id: String,
        epoch: u32,
        /// The `comments` text sent to BigPanda.
        comment: String,
        requested_at: Millis,
    },
}

impl Outbound {
    pub const CLOSE: &'static str = "close";

    pub fn key(&self) -> OutboundKey {
        match self {
            Outbound::Close {
                alert_id, epoch, ..
            } => OutboundKey {
                alert_id: alert_id.clone(),
                epoch: *epoch,
                kind: Self::CLOSE.to_string(),
            },
        }
    }
}
