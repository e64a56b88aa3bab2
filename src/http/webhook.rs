//! `POST /webhooks/bigpanda/{source_id}`: authenticate, bound, parse, apply, answer after fsync.

use std::sync::Arc;

use bytes::Bytes;
use tokio::sync::OwnedSemaphorePermit;
use warp::http::StatusCode;
use warp::reply::{Reply, Response};

use super::error::{respond, ApiError};
use super::{bearer, App};
use crate::bigpanda::webhook::parse;
use crate::engine::AlertKey;
use crate::lifecycle::{Input, Outcome};

/// A webhook that passed the checks made before its body is read.
pub struct Admitted {
    app: Arc<App>,
    source_id: String,
    _permit: OwnedSemaphorePermit,
}

/// Checks that need no body, so that unauthenticated or excess requests cost almost nothing.
pub fn admit(
    source_id: String,
    authorization: Option<String>,
    content_type: Option<String>,
    app: Arc<App>,
) -> Result<Admitted, ApiError> {
    let metrics = Arc::clone(&app.metrics);
    check(source_id, authorization, content_type, app)
        .inspect_err(|e| metrics.count_rejected(e.code))
}

fn check(
    source_id: String,
    authorization: Option<String>,
    content_type: Option<String>,
    app: Arc<App>,
) -> Result<Admitted, ApiError> {
    let token = bearer(authorization.as_deref()).ok_or_else(ApiError::unauthorized)?;
    // Unknown sources get the same answer as wrong tokens: do not reveal which sources exist.
    if !app.sources.verify(&source_id, token) {
        return Err(ApiError::unauthorized());
    }
    if let Some(ct) = content_type.as_deref() {
        let essence = ct
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let json =
            essence == "application/json" || essence == "text/json" || essence.ends_with("+json");
        if !json {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("content type {essence:?} is not accepted; send application/json"),
            ));
        }
    }
    if !app.is_accepting() {
        return Err(ApiError::unavailable(
            "shutting_down",
            "pandabridge is shutting down; retry later",
        ));
    }
    let permit = Arc::clone(&app.inflight).try_acquire_owned().map_err(|_| {
        ApiError::unavailable("overloaded", "too many webhooks in flight; retry later")
    })?;
    Ok(Admitted {
        app,
        source_id,
        _permit: permit,
    })
}

pub async fn handle(admitted: Admitted, body: Result<Bytes, ApiError>) -> Response {
    let metrics = Arc::clone(&admitted.app.metrics);
    let result = apply(admitted, body).await;
    if let Err(e) = &result {
        metrics.count_rejected(e.code);
    }
    respond(result)
}

async fn apply(admitted: Admitted, body: Result<Bytes, ApiError>) -> Result<Response, ApiError> {
    let body = body?;
    let snapshot = parse(&body).map_err(|e| ApiError::bad_request(e.code(), e.to_string()))?;
    let key = AlertKey {
        source_id: admitted.source_id.clone(),
        incident_id: snapshot.incident_id.clone(),
    };
    let applied = admitted
        .app
        .engine
        .apply(&key, Input::Webhook(snapshot))
        .await?;
    // A quarantined (poison) event is acknowledged as `ignored`, the contract's word for an
    // event stored without effect; its history entry says `quarantined`.
    let outcome = match applied.outcome {
        Outcome::Quarantined => Outcome::Ignored,
        other => other,
    };
    let reply = Accepted {
        alert_id: &applied.alert.id,
        outcome: outcome.as_str(),
    };
    Ok(warp::reply::with_status(warp::reply::json(&reply), StatusCode::ACCEPTED).into_response())
}

/// The 202 reply (CONTRACT §2), serialised straight from borrowed text rather than through
/// a `serde_json::Value` map built per webhook.
#[derive(serde::Serialize)]
struct Accepted<'a> {
    alert_id: &'a str,
    outcome: &'a str,
}
