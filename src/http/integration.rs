//! `PUT/GET/DELETE /api/v1/integrations/bigpanda`: the integration's results as JSON replies.

use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};
use warp::http::StatusCode;

use super::error::ApiError;
use super::views::ts;
use crate::integration::{ConnectError, Integration};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutRequest {
    api_key: String,
    #[serde(default)]
    api_url: Option<String>,
}

impl From<ConnectError> for ApiError {
    fn from(e: ConnectError) -> Self {
        let unchanged = "the stored key is unchanged";
        match e {
            ConnectError::BadKey(_) | ConnectError::BadUrl => {
                ApiError::bad_request("invalid_request", e.to_string())
            }
            ConnectError::KeyInvalid => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "bigpanda_key_invalid",
                format!("{e}; {unchanged}"),
            ),
            ConnectError::KeyForbidden => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "bigpanda_key_forbidden",
                format!("{e}; {unchanged}"),
            ),
            ConnectError::Unreachable(m) => ApiError::new(
                StatusCode::BAD_GATEWAY,
                "bigpanda_unreachable",
                format!("{m}; {unchanged}"),
            ),
            ConnectError::Store(s) => s.into(),
        }
    }
}

pub async fn put(integration: &Integration, body: Bytes) -> Result<Value, ApiError> {
    let req: PutRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request(
            "invalid_json",
            format!("expected {{\"api_key\": \"...\", \"api_url\": \"optional\"}}: {e}"),
        )
    })?;
    let connected = integration
        .connect(&req.api_key, req.api_url.as_deref())
        .await?;
    Ok(json!({
        "connected": true,
        "api_url": connected.api_url,
        "key_hint": connected.key_hint,
        "environments": connected.environments,
    }))
}

pub fn get(integration: &Integration) -> Result<Value, ApiError> {
    let s = integration.status()?;
    Ok(json!({
        "connected": s.connected,
        "api_url": s.api_url,
        "key_hint": s.key_hint,
        "validated_at": s.validated_at.map(ts),
        "healthy": s.healthy,
        "last_error": s.last_error,
    }))
}
