//! The admin API under `/api/v1` (CONTRACT §3): alert sources, alerts, the BigPanda integration.
//! The caller is already authenticated with the admin token.

use std::sync::Arc;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use warp::http::{Method, StatusCode};
use warp::path::Tail;
use warp::reply::{Reply, Response};

use super::error::{respond, ApiError};
use super::{views, App};
use crate::lifecycle::{AlertStatus, Input, ResolvedBy};
use crate::store::AlertFilter;

const DEFAULT_PAGE: usize = 50;
const MAX_PAGE: usize = 500;

pub async fn handle(
    app: Arc<App>,
    method: Method,
    tail: Tail,
    query: String,
    body: Result<Bytes, ApiError>,
) -> Response {
    respond(route(&app, &method, tail.as_str(), &query, body).await)
}

fn json_reply(status: StatusCode, value: &serde_json::Value) -> Response {
    warp::reply::with_status(warp::reply::json(value), status).into_response()
}

fn ok(value: serde_json::Value) -> Result<Response, ApiError> {
    Ok(json_reply(StatusCode::OK, &value))
}

/// Parses a JSON body; an empty body is `{}` so that every field can be optional.
fn parse_body<T: DeserializeOwned>(body: Result<Bytes, ApiError>) -> Result<T, ApiError> {
    let body = body?;
    let bytes: &[u8] = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        &body
    };
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::bad_request(
            "invalid_json",
            format!("request body is not valid JSON for this endpoint: {e}"),
        )
    })
}

fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this endpoint",
    )
}

async fn route(
    app: &App,
    method: &Method,
    path: &str,
    query: &str,
    body: Result<Bytes, ApiError>,
) -> Result<Response, ApiError> {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    match (segments.as_slice(), method) {
        // Every source change below is durable before it is answered (`Sources` awaits the
        // store), so a token shown once survives a crash right after it was shown.
        (["alert-sources"], &Method::POST) => create_source(app, body).await,
        (["alert-sources"], &Method::GET) => {
            let base = &app.public_url;
            let list: Vec<_> = app
                .sources
                .list()
                .iter()
                .map(|s| views::source(s, base))
                .collect();
            ok(serde_json::json!({ "alert_sources": list }))
        }
        (["alert-sources"], _) => Err(method_not_allowed()),
        (["alert-sources", id], &Method::GET) => {
            let s = app
                .sources
                .get(id)
                .ok_or_else(|| ApiError::not_found("alert source"))?;
            ok(views::source(&s, &app.public_url))
        }
        (["alert-sources", id], &Method::PATCH) => update_source(app, id, body).await,
        (["alert-sources", id], &Method::DELETE) => {
            app.sources.delete(id).await?;
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        (["alert-sources", _], _) => Err(method_not_allowed()),
        (["alert-sources", id, "rotate-token"], &Method::POST) => {
            let (record, token) = app.sources.rotate(id).await?;
            let mut view = views::source(&record, &app.public_url);
            view["token"] = serde_json::Value::String(token.0);
            ok(view)
        }
        (["alert-sources", _, "rotate-token"], _) => Err(method_not_allowed()),
        (["alerts"], &Method::GET) => list_alerts(app, query),
        (["alerts", id], &Method::GET) => {
            let store = app.engine.store();
            let alert = store
                .alert(id)?
                .ok_or_else(|| ApiError::not_found("alert"))?;
            let events: Vec<_> = store.history(id)?.iter().map(views::event).collect();
            let mut view = views::alert(&alert);
            view["events"] = serde_json::Value::Array(events);
            ok(view)
        }
        (["alerts", id, "resolve"], &Method::POST) => resolve(app, id, body).await,
        (["alerts", id, "retry-close"], &Method::POST) => {
            let applied = app.engine.apply_to_alert(id, Input::RetryClose).await?;
            if applied.outcome != crate::lifecycle::Outcome::Requeued {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    "close_not_failed",
                    format!(
                        "only a failed close can be retried; this alert's close is {:?}",
                        applied.alert.close_sync.state
                    )
                    .to_lowercase(),
                ));
            }
            ok(views::alert(&applied.alert))
        }
        (["integrations", "bigpanda"], m) => {
            let Some(integration) = app.integration.as_ref() else {
                return Err(ApiError::not_found("endpoint"));
            };
            match *m {
                Method::PUT => ok(super::integration::put(integration, body?).await?),
                Method::GET => ok(super::integration::get(integration)?),
                Method::DELETE => {
                    integration.disconnect().await?;
                    Ok(StatusCode::NO_CONTENT.into_response())
                }
                _ => Err(method_not_allowed()),
            }
        }
        #[cfg(feature = "fault-injection")]
        (["_faults"], &Method::PUT) => {
            #[derive(Deserialize)]
            struct Faults {
                store_failing: bool,
            }
            let req: Faults = parse_body(body)?;
            app.engine.store().faults().set_failing(req.store_failing);
            ok(serde_json::json!({ "store_failing": req.store_failing }))
        }
        (["alerts", ..], _) => Err(method_not_allowed()),
        _ => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "no such endpoint",
        )),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateSource {
    name: String,
    #[serde(default)]
    default_environment_id: Option<String>,
}

async fn create_source(app: &App, body: Result<Bytes, ApiError>) -> Result<Response, ApiError> {
    let req: CreateSource = parse_body(body)?;
    let (record, token) = app
        .sources
        .create(&req.name, req.default_environment_id)
        .await?;
    let mut view = views::source(&record, &app.public_url);
    view["token"] = serde_json::Value::String(token.0);
    tracing::info!(source_id = %record.id, name = %record.name, "Alert source created.");
    Ok(json_reply(StatusCode::CREATED, &view))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UpdateSource {
    default_environment_id: Option<String>,
}

async fn update_source(
    app: &App,
    id: &str,
    body: Result<Bytes, ApiError>,
) -> Result<Response, ApiError> {
    let req: UpdateSource = parse_body(body)?;
    let record = app
        .sources
        .set_default_environment(id, req.default_environment_id)
        .await?;
    ok(views::source(&record, &app.public_url))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    status: Option<String>,
    source_id: Option<String>,
    incident_id: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

fn list_alerts(app: &App, query: &str) -> Result<Response, ApiError> {
    let q: ListQuery = serde_urlencoded_lenient(query)?;
    let status = match q.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(AlertStatus::parse(s).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_query",
                format!("status must be firing or resolved, not {s:?}"),
            )
        })?),
    };
    let limit = match q.limit.as_deref().filter(|s| !s.is_empty()) {
        None => DEFAULT_PAGE,
        Some(l) => match l.parse::<usize>() {
            Ok(n) if (1..=MAX_PAGE).contains(&n) => n,
            _ => {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    format!("limit must be a number from 1 to {MAX_PAGE}"),
                ))
            }
        },
    };
    let filter = AlertFilter {
        status,
        source_id: q.source_id.filter(|s| !s.is_empty()),
        incident_id: q.incident_id.filter(|s| !s.is_empty()),
    };
    let cursor = q.cursor.filter(|c| !c.is_empty());
    // Cursors are alert ids (ULIDs); anything else cannot have come from a previous page.
    if let Some(c) = &cursor {
        if ulid::Ulid::from_string(c).is_err() {
            return Err(ApiError::bad_request(
                "invalid_query",
                "cursor is not one this API returned (use next_cursor from the previous page)",
            ));
        }
    }
    let (alerts, next) = app
        .engine
        .store()
        .list_alerts(&filter, limit, cursor.as_deref())?;
    let alerts: Vec<_> = alerts.iter().map(views::alert).collect();
    ok(serde_json::json!({ "alerts": alerts, "next_cursor": next }))
}

/// Decodes `a=b&c=d` into the query struct, with one clear error for unknown keys.
fn serde_urlencoded_lenient(query: &str) -> Result<ListQuery, ApiError> {
    let mut map = serde_json::Map::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = percent_decode(k)?;
        let v = percent_decode(v)?;
        map.insert(k, serde_json::Value::String(v));
    }
    serde_json::from_value(serde_json::Value::Object(map))
        .map_err(|e| ApiError::bad_request("invalid_query", format!("invalid query: {e}")))
}

fn percent_decode(s: &str) -> Result<String, ApiError> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                let b = hex
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            "invalid_query",
                            "invalid percent-encoding in the query",
                        )
                    })?;
                out.push(b);
                i += 2;
            }
            b'%' => {
                return Err(ApiError::bad_request(
                    "invalid_query",
                    "invalid percent-encoding in the query",
                ))
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out)
        .map_err(|_| ApiError::bad_request("invalid_query", "query is not valid UTF-8"))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct ResolveRequest {
    #[serde(default)]
    comment: Option<String>,
    #[serde(default)]
    resolved_by: Option<String>,
}

async fn resolve(app: &App, id: &str, body: Result<Bytes, ApiError>) -> Result<Response, ApiError> {
    let req: ResolveRequest = parse_body(body)?;
    let by = match req
        .resolved_by
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        Some(name) if name.len() > 200 || name.chars().any(char::is_control) => {
            return Err(ApiError::bad_request(
                "invalid_request",
                "resolved_by must be at most 200 printable characters",
            ))
        }
        Some(name) => ResolvedBy::User(name.to_string()),
        None => ResolvedBy::Api,
    };
    if req.comment.as_ref().is_some_and(|c| c.len() > 2000) {
        return Err(ApiError::bad_request(
            "invalid_request",
            "comment must be at most 2000 bytes",
        ));
    }
    let applied = app
        .engine
        .apply_to_alert(
            id,
            Input::Resolve {
                by,
                comment: req.comment,
            },
        )
        .await?;
    ok(views::alert(&applied.alert))
}
