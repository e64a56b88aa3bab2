//! Turns the daemon's JSON replies into the human-readable text the CLI prints: a tiny table
//! formatter and one renderer per subcommand. Pure functions from `serde_json::Value` to
//! `String`, so every layout is unit-tested without a daemon.
//!
//! Every cell goes through [`clean`]: titles, descriptions and details come from BigPanda
//! webhooks, i.e. from whoever can post to a callback URL, and a raw escape sequence printed
//! to an operator's terminal could rewrite what they see.

use serde_json::Value;

/// Titles longer than this are cut in `alerts list`, so one long title does not wrap every row.
pub const TITLE_WIDTH: usize = 60;
/// Details of history events are cut in `alerts show`; `--json` has them in full.
pub const DETAIL_WIDTH: usize = 100;

/// Columns padded to their widest cell, two spaces apart, no trailing spaces.
/// Widths count `char`s, which is right for the ASCII the daemon mostly returns.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            let w = cell.chars().count();
            match widths.get_mut(i) {
                Some(max) => *max = (*max).max(w),
                None => widths.push(w),
            }
        }
    }
    let mut out = String::new();
    let header_row: Vec<String> = headers.iter().map(|h| (*h).to_owned()).collect();
    let all = (!headers.is_empty())
        .then_some(&header_row)
        .into_iter()
        .chain(rows);
    for row in all {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i > 0 {
                line.push_str("  ");
            }
            line.push_str(cell);
            let pad = widths[i].saturating_sub(cell.chars().count());
            line.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `key: value` lines with the values aligned, for single objects.
pub fn fields(pairs: &[(&str, String)]) -> String {
    let rows: Vec<Vec<String>> = pairs
        .iter()
        .map(|(k, v)| vec![format!("{k}:"), v.clone()])
        .collect();
    table(&[], &rows)
}

/// One line of printable text: control characters (newlines, ESC, ...) become spaces.
pub fn clean(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

/// Cuts `s` to at most `max` chars, marking the cut with `…`.
pub fn truncate(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A field as display text: strings as-is, null or missing as `-`, anything else as JSON.
pub fn text(v: &Value, key: &str) -> String {
    display(v.get(key))
}

fn display(v: Option<&Value>) -> String {
    match v {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::String(s)) if s.is_empty() => "-".to_owned(),
        Some(Value::String(s)) => clean(s),
        Some(Value::Bool(true)) => "yes".to_owned(),
        Some(Value::Bool(false)) => "no".to_owned(),
        Some(other) => clean(&other.to_string()),
    }
}

fn items<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// The close-sync column: the state, with the attempt count once there were any.
fn close_summary(alert: &Value) -> String {
    let sync = alert.get("close_sync").unwrap_or(&Value::Null);
    let state = text(sync, "state");
    match sync.get("attempts").and_then(Value::as_u64) {
        Some(n) if n > 0 && state != "closed" => format!("{state} ({n} tries)"),
        _ => state,
    }
}

/// `integration connect`: the key hint from the reply (never the key we sent) and the
/// environments BigPanda listed.
pub fn integration_connected(reply: &Value) -> String {
    let mut out = format!(
        "Connected to BigPanda with key {}.\n",
        text(reply, "key_hint")
    );
    let envs = items(reply, "environments");
    if envs.is_empty() {
        out.push_str("BigPanda listed no environments for this key.\n");
    } else {
        let rows: Vec<Vec<String>> = envs
            .iter()
            .map(|e| vec![text(e, "id"), text(e, "name")])
            .collect();
        out.push('\n');
        out.push_str(&table(&["ENVIRONMENT ID", "NAME"], &rows));
    }
    out
}

/// `integration status`.
pub fn integration_status(reply: &Value) -> String {
    fields(&[
        ("connected", text(reply, "connected")),
        ("healthy", text(reply, "healthy")),
        ("api url", text(reply, "api_url")),
        ("key", text(reply, "key_hint")),
        ("validated at", text(reply, "validated_at")),
        ("last error", text(reply, "last_error")),
    ])
}

/// `source create`: everything needed to configure BigPanda's webhook, once.
pub fn source_created(reply: &Value) -> String {
    let mut out = fields(&[
        ("id", text(reply, "id")),
        ("name", text(reply, "name")),
        ("callback url", text(reply, "callback_url")),
        ("token", text(reply, "token")),
    ]);
    out.push_str(
        "\nThe token is shown only once: configure it now in BigPanda's webhook \
         (header \"Authorization: Bearer <token>\"). Lost it? Run `pandabridge source rotate ID`.\n",
    );
    out
}

/// `source list`.
pub fn source_list(reply: &Value) -> String {
    let sources = items(reply, "alert_sources");
    if sources.is_empty() {
        return "No alert sources. Create one with `pandabridge source create NAME`.\n".to_owned();
    }
    let rows: Vec<Vec<String>> = sources
        .iter()
        .map(|s| {
            vec![
                text(s, "id"),
                text(s, "name"),
                text(s, "default_environment_id"),
                text(s, "created_at"),
                text(s, "callback_url"),
            ]
        })
        .collect();
    table(
        &["ID", "NAME", "DEFAULT ENV", "CREATED", "CALLBACK URL"],
        &rows,
    )
}

/// `source rotate`.
pub fn source_rotated(id: &str, reply: &Value) -> String {
    let mut out = fields(&[("source", clean(id)), ("new token", text(reply, "token"))]);
    out.push_str("\nThe token is shown only once: update BigPanda's webhook with it now.\n");
    match reply
        .get("previous_token_expires_at")
        .and_then(Value::as_str)
    {
        Some(at) => out.push_str(&format!(
            "The previous token keeps working until {}.\n",
            clean(at)
        )),
        None => out.push_str("The previous token no longer works.\n"),
    }
    out
}

/// `alerts list`. `more` is the cursor left over when the CLI stopped following pages.
pub fn alert_list(alerts: &[Value], more: Option<&str>) -> String {
    let mut out = if alerts.is_empty() {
        "No alerts.\n".to_owned()
    } else {
        let rows: Vec<Vec<String>> = alerts
            .iter()
            .map(|a| {
                vec![
                    text(a, "id"),
                    text(a, "status"),
                    text(a, "severity"),
                    truncate(&text(a, "title"), TITLE_WIDTH),
                    text(a, "updated_at"),
                    close_summary(a),
                ]
            })
            .collect();
        table(
            &["ID", "STATUS", "SEVERITY", "TITLE", "UPDATED", "CLOSE"],
            &rows,
        )
    };
    if let Some(cursor) = more {
        out.push_str(&format!(
            "\nShowing the newest {} alerts; more exist. Narrow with --status, or page with \
             GET /api/v1/alerts?cursor={}\n",
            alerts.len(),
            clean(cursor)
        ));
    }
    out
}

/// `alerts show`: the alert's fields, then its history oldest first.
pub fn alert_detail(alert: &Value) -> String {
    let sync = alert.get("close_sync").unwrap_or(&Value::Null);
    let mut out = fields(&[
        ("id", text(alert, "id")),
        ("status", text(alert, "status")),
        ("severity", text(alert, "severity")),
        ("title", text(alert, "title")),
        ("description", text(alert, "description")),
        ("incident", text(alert, "incident_id")),
        ("source", text(alert, "source_id")),
        ("environment", text(alert, "environment_id")),
        ("bigpanda status", text(alert, "bigpanda_status")),
        ("created at", text(alert, "created_at")),
        ("updated at", text(alert, "updated_at")),
        ("resolved at", text(alert, "resolved_at")),
        ("resolved by", text(alert, "resolved_by")),
        ("reopened", text(alert, "reopen_count")),
        ("close", close_summary(alert)),
        ("close error", text(sync, "last_error")),
        ("next attempt", text(sync, "next_attempt_at")),
    ]);
    let events = items(alert, "events");
    out.push('\n');
    if events.is_empty() {
        out.push_str("No history.\n");
    } else {
        let rows: Vec<Vec<String>> = events
            .iter()
            .map(|e| {
                vec![
                    text(e, "at"),
                    text(e, "kind"),
                    text(e, "outcome"),
                    truncate(&text(e, "detail"), DETAIL_WIDTH),
                ]
            })
            .collect();
        out.push_str(&table(&["AT", "KIND", "OUTCOME", "DETAIL"], &rows));
    }
    out
}

/// `alerts resolve`: the alert as it now stands. Resolving twice is not an error (the daemon
/// returns the alert unchanged), so this describes the state rather than claiming an action.
pub fn alert_resolved(alert: &Value) -> String {
    format!(
        "Alert {} is {} (resolved by {} at {}); close in BigPanda: {}.\n",
        text(alert, "id"),
        text(alert, "status"),
        text(alert, "resolved_by"),
        text(alert, "resolved_at"),
        close_summary(alert),
    )
}
