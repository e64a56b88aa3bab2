//! Lenient, total parsing of BigPanda Notifications Webhook bodies into [`Snapshot`]s.
//!
//! Owns the reading rules of `LIFECYCLE.md` ("What is read from a webhook"): where the incident
//! id, event type, open/closed meaning, version, environment, title and details come from. It
//! must not decide anything about the alert's lifecycle; that is `crate::lifecycle`.
//!
//! BigPanda publishes no complete webhook sample and its objects differ between API versions,
//! so only the incident id is required; every other field is optional and a value of the wrong
//! type counts as absent. This is the hot path of the daemon: the body is deserialized once,
//! straight into the lenient views of [`dto`], never through a `serde_json::Value` tree.

mod dto;

use std::borrow::Cow;

use serde::Deserialize;

use crate::lifecycle::{Details, DetailsJson, EventType, IncidentAlert, Snapshot};

use dto::{Any, Body, Obj};

/// Longest incident id accepted, in bytes. BigPanda's ids are 24 hex characters; the bound
/// keeps a hostile id from bloating keys in the store and every history entry.
pub const MAX_INCIDENT_ID_BYTES: usize = 512;

/// Why a body was refused. The message is shown to the caller (HTTP 400), so it names the
/// problem without echoing the body.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("body is not valid JSON: {0}")]
    NotJson(String),
    #[error("body is not a JSON object (expected a BigPanda incident or a webhook envelope)")]
    NotAnObject,
    #[error(
        "body has no incident id (looked for incident.id, a top-level id and a top-level \
         incident_id, as a string or number)"
    )]
    MissingIncidentId,
    #[error("incident id is invalid: {0}")]
    InvalidIncidentId(String),
}

impl ParseError {
    /// A stable snake_case code for the error envelope `{"error":{"code","message"}}`.
    pub fn code(&self) -> &'static str {
        match self {
            ParseError::NotJson(_) => "invalid_json",
            ParseError::NotAnObject => "not_an_object",
            ParseError::MissingIncidentId => "missing_incident_id",
            ParseError::InvalidIncidentId(_) => "invalid_incident_id",
        }
    }
}

/// Parses one webhook body. Total: any byte string gives a snapshot or a [`ParseError`], never a
/// panic, and nesting deeper than serde_json's recursion limit is an error, not a stack overflow.
pub fn parse(body: &[u8]) -> Result<Snapshot, ParseError> {
    // Validate UTF-8 up front: serde_json does not check strings it skips, and a body with
    // invalid UTF-8 anywhere is not JSON.
    let text = std::str::from_utf8(body)
        .map_err(|e| ParseError::NotJson(format!("invalid UTF-8 at byte {}", e.valid_up_to())))?;
    match read_body(text) {
        Ok(body) => snapshot(body.ok_or(ParseError::NotAnObject)?),
        Err(e) if is_number_out_of_range(&e) => {
            // serde_json refuses numbers beyond f64 (`1e400`) even where we would ignore them.
            // Rare enough for a second pass: quote such numbers so they become strings, which
            // every lenient field already treats like the number's text.
            let quoted = quote_huge_numbers(text);
            let body = read_body(&quoted).map_err(|_| ParseError::NotJson(e.to_string()))?;
            snapshot(body.ok_or(ParseError::NotAnObject)?)
        }
        Err(e) => Err(ParseError::NotJson(e.to_string())),
    }
}

/// One pass of serde_json over the whole text; `None` when the top level is not an object.
fn read_body(text: &str) -> Result<Option<Body<'_>>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let Obj(body) = Obj::<Body>::deserialize(&mut de)?;
    // Trailing garbage after the object makes the body invalid JSON.
    de.end()?;
    Ok(body)
}

fn is_number_out_of_range(e: &serde_json::Error) -> bool {
    e.is_syntax() && e.to_string().starts_with("number out of range")
}

/// Rewrites every number token that overflows f64 as a JSON string of the same text. Works on
/// any text: string literals are skipped, and on invalid JSON the result is still invalid.
fn quote_huge_numbers(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len() + 16);
    let (mut i, mut copied) = (0, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() {
                    match bytes[i] {
                        b'\\' => i += 2,
                        b'"' => {
                            i += 1;
                            break;
                        }
                        _ => i += 1,
                    }
                }
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < bytes.len()
                    && matches!(bytes[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                // Number tokens are ASCII and start and end on char boundaries, so these slices
                // cannot split a character.
                let token = text.get(start..i).unwrap_or_default();
                if token.parse::<f64>().is_ok_and(f64::is_infinite) {
                    out.push_str(text.get(copied..start).unwrap_or_default());
                    out.push('"');
                    out.push_str(token);
                    out.push('"');
                    copied = i;
                }
            }
            _ => i += 1,
        }
    }
    out.push_str(text.get(copied..).unwrap_or_default());
    out
}

/// Applies the reading rules of `LIFECYCLE.md` to the deserialized views.
fn snapshot(body: Body<'_>) -> Result<Snapshot, ParseError> {
    let Body {
        incident,
        bare,
        incident_id,
        event_type,
        event,
        r#type,
        metadata,
    } = body;
    // An `incident` object wins; otherwise the body itself is taken as a bare incident. The
    // top-level `id` of an envelope is not the incident's, so it counts only in the bare case.
    let mut incident = incident.unwrap_or(bare);
    let id = incident_id_of([std::mem::take(&mut incident.id), incident_id])?;

    let (meta_event_type, meta_environment) = match metadata {
        Some(m) => (m.event_type, m.environment_id),
        None => (Any::Absent, Any::Absent),
    };
    let event_type = [event_type, meta_event_type, event, r#type]
        .into_iter()
        .find_map(Any::into_string)
        .map(|raw| EventType::new(&raw))
        .unwrap_or_default();

    let status = lower(incident.status).map(Cow::into_owned);
    let severity = lower(incident.severity).map(Cow::into_owned);
    let open = incident
        .active
        .as_bool()
        .or_else(|| incident.resolved.as_bool().map(|resolved| !resolved))
        .or_else(|| {
            let ok = |v: &Option<String>| v.as_deref() == Some("ok");
            (ok(&status) || ok(&severity)).then_some(false)
        })
        .or(match event_type.as_str() {
            "incident#closed" => Some(false),
            "incident#new" | "incident#reopen" | "incident#reopened" => Some(true),
            _ => None,
        });

    let environment_id = meta_environment
        .into_id_text()
        .filter(|s| !s.is_empty())
        .map(Cow::into_owned)
        .or(incident.environment.0.filter(|s| !s.is_empty()));

    let (alerts, title, description) = alerts_and_title(incident.alerts.0, &id);

    let maintenance = match incident.maintenance {
        Any::Absent | Any::Null => None,
        Any::Bool(b) => Some(b),
        // An empty maintenance plan list or object names no maintenance.
        Any::Container { empty } => Some(!empty),
        Any::Str(s) => Some(!s.is_empty()),
        Any::U64(_) | Any::I64(_) | Any::F64(_) => Some(true),
    };

    Ok(Snapshot {
        incident_id: id,
        event_type,
        open,
        version: incident.version,
        environment_id,
        title,
        description,
        severity,
        status,
        details: std::sync::Arc::new(DetailsJson::new(&Details {
            alerts,
            incident_tags: incident.incident_tags.0,
            flapping: incident.flapping.as_bool(),
            snoozed: incident.snooze.0.or(incident.is_snoozed.as_bool()),
            in_maintenance: maintenance,
            start: incident.start.or(incident.started_on),
        })),
    })
}

/// The first candidate that is a non-empty string or number, validated. An empty candidate
/// falls through to the next; if nothing else is found, the empty id is reported as invalid.
fn incident_id_of<const N: usize>(candidates: [Any<'_>; N]) -> Result<String, ParseError> {
    let mut saw_empty = false;
    for candidate in candidates {
        let Some(id) = candidate.into_id_text() else {
            continue;
        };
        if id.trim().is_empty() {
            saw_empty = true;
            continue;
        }
        if id.len() > MAX_INCIDENT_ID_BYTES {
            return Err(ParseError::InvalidIncidentId(format!(
                "{} bytes long, the limit is {MAX_INCIDENT_ID_BYTES}",
                id.len()
            )));
        }
        if id.chars().any(char::is_control) {
            return Err(ParseError::InvalidIncidentId(
                "contains control characters".to_owned(),
            ));
        }
        return Ok(id.into_owned());
    }
    if saw_empty {
        Err(ParseError::InvalidIncidentId("empty".to_owned()))
    } else {
        Err(ParseError::MissingIncidentId)
    }
}

/// A string field, trimmed and lower-cased; empty counts as absent. Borrowed when it already
/// is (the usual case).
fn lower(v: Any<'_>) -> Option<Cow<'_, str>> {
    let s = v.into_string()?;
    let trimmed = s.trim();
    if trimmed.is_empty() {
        return None;
    }
    if trimmed.len() == s.len() && !s.bytes().any(|b| b.is_ascii_uppercase()) {
        return Some(s);
    }
    Some(Cow::Owned(trimmed.to_ascii_lowercase()))
}

/// How severe an alert status is, for picking the alert that names the incident:
/// critical > warning > unknown or other > ok.
fn severity_rank(status: Option<&str>) -> u8 {
    match status {
        Some("critical") => 3,
        Some("warning") => 2,
        Some("ok") => 0,
        _ => 1,
    }
}

/// Converts the alerts and derives the title and description from the most severe one (the
/// first among equals).
fn alerts_and_title<'de>(
    raw: Vec<dto::Alert<'de>>,
    incident_id: &str,
) -> (Vec<IncidentAlert<Cow<'de, str>>>, String, Option<String>) {
    let mut alerts = Vec::with_capacity(raw.len());
    // (rank, index, primary_property, secondary_property) of the most severe alert so far.
    type Property<'de> = Option<Cow<'de, str>>;
    let mut top: Option<(u8, usize, Property<'de>, Property<'de>)> = None;
    for a in raw {
        let alert = IncidentAlert {
            id: a.id.into_id_text().or_else(|| a.alert_id.into_id_text()),
            status: lower(a.status),
            source_system: a.source_system.into_string(),
            description: a.description.into_string().filter(|d| !d.is_empty()),
            tags: a.tags.0,
        };
        let rank = severity_rank(alert.status.as_deref());
        if top.as_ref().is_none_or(|t| rank > t.0) {
            top = Some((
                rank,
                alerts.len(),
                a.primary_property.into_string(),
                a.secondary_property.into_string(),
            ));
        }
        alerts.push(alert);
    }

    let Some((_, index, primary, secondary)) = top else {
        return (alerts, format!("BigPanda incident {incident_id}"), None);
    };
    let Some(alert) = alerts.get(index) else {
        return (alerts, format!("BigPanda incident {incident_id}"), None);
    };
    let tag_value = |name: Property<'de>| -> Option<&str> {
        let name = name?;
        alert
            .tags
            .iter()
            .find(|(n, v)| *n == name && !v.is_empty())
            .map(|(_, v)| v.as_ref())
    };
    let named: Vec<&str> = [tag_value(primary), tag_value(secondary)]
        .into_iter()
        .flatten()
        .collect();
    let description = alert.description.as_deref().map(str::to_owned);
    let title = if !named.is_empty() {
        named.join(" / ")
    } else if let Some(d) = &description {
        d.clone()
    } else {
        format!("BigPanda incident {incident_id}")
    };
    (alerts, title, description)
}

#[cfg(test)]
mod tests;
