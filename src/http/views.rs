//! JSON shapes of CONTRACT §3: alerts, history events, alert sources.

use serde_json::{json, Value};

use crate::lifecycle::{Alert, HistoryEvent, Millis};
use crate::store::SourceRecord;

/// RFC 3339 UTC with milliseconds.
pub fn ts(ms: Millis) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms.max(0) as u64);
    humantime::format_rfc3339_millis(t).to_string()
}

fn opt_ts(ms: Option<Millis>) -> Value {
    ms.map(|m| Value::String(ts(m))).unwrap_or(Value::Null)
}

pub fn alert(a: &Alert) -> Value {
    json!({
        "id": a.id,
        "source_id": a.source_id,
        "incident_id": a.incident_id,
        "status": a.status.as_str(),
        "title": a.title,
        "description": a.description,
        "severity": a.severity,
        "bigpanda_status": a.bigpanda_status,
        "environment_id": a.environment_id,
        "created_at": ts(a.created_at),
        "updated_at": ts(a.updated_at),
        "resolved_at": opt_ts(a.resolved_at),
        "resolved_by": a.resolved_by.as_ref().map(|r| r.as_string()),
        "reopen_count": a.reopen_count,
        "close_sync": {
            "state": a.close_sync.state,
            "attempts": a.close_sync.attempts,
            "last_error": a.close_sync.last_error,
            "next_attempt_at": opt_ts(a.close_sync.next_attempt_at),
        },
        "epoch": a.epoch,
        "details": a.details,
    })
}

pub fn event(e: &HistoryEvent) -> Value {
    json!({"at": ts(e.at), "kind": e.kind, "outcome": e.outcome, "detail": e.detail})
}

pub fn source(s: &SourceRecord, callback_base: &str) -> Value {
    json!({
        "id": s.id,
        "name": s.name,
        "callback_url": format!("{callback_base}/webhooks/bigpanda/{}", s.id),
        "default_environment_id": s.default_environment_id,
        "created_at": ts(s.created_at),
        "previous_token_expires_at": opt_ts(s.previous_expires_at),
    })
}
