//! The BigPanda integration: the API key used to close incidents, validated against BigPanda
//! before it is stored (CONTRACT §3 "BigPanda integration").
//!
//! A rejected key never replaces the stored one. The key is kept in the store (inside the
//! 0700 data dir) and is never returned, logged or exported as a metric: replies show only its
//! last four characters.

use bytes::Bytes;
use futures_util::future::BoxFuture;
use ractor::ActorRef;
use serde::Deserialize;
use serde_json::{json, Value};
use warp::http::StatusCode;

use crate::bigpanda::client::{ApiKey, BigPandaApi, ValidateError};
use crate::engine::closer::{integration_record, CloserMsg};
use crate::http::error::ApiError;
use crate::http::views::ts;
use crate::http::IntegrationApi;
use crate::store::Store;

pub struct Integration {
    pub store: Store,
    pub api: BigPandaApi,
    /// `--bigpanda-api-url`: used when a PUT names no `api_url`.
    pub default_api_url: String,
    pub closer: ActorRef<CloserMsg>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PutRequest {
    api_key: String,
    #[serde(default)]
    api_url: Option<String>,
}

fn normalise_url(raw: &str) -> Result<String, ApiError> {
    let url = raw.trim().trim_end_matches('/');
    let ok = (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() > "https://".len()
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(url.to_string())
    } else {
        Err(ApiError::bad_request(
            "invalid_request",
            "api_url must be an http:// or https:// URL, e.g. https://api.bigpanda.io",
        ))
    }
}

fn key_hint(raw: &str) -> Value {
    ApiKey::new(raw)
        .map(|k| Value::String(k.key_hint()))
        .unwrap_or(Value::Null)
}

impl Integration {
    async fn put_inner(&self, body: Bytes) -> Result<Value, ApiError> {
        let req: PutRequest = serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(
                "invalid_json",
                format!("expected {{\"api_key\": \"...\", \"api_url\": \"optional\"}}: {e}"),
            )
        })?;
        let key = ApiKey::new(&req.api_key).map_err(|e| {
            ApiError::bad_request("invalid_request", format!("api_key is unusable: {e}"))
        })?;
        let url = normalise_url(req.api_url.as_deref().unwrap_or(&self.default_api_url))?;
        let environments = self.api.list_environments(&url, &key).await.map_err(|e| {
            tracing::warn!(key = %key, api_url = %url, error = %e, "BigPanda API key was not accepted; the stored key is unchanged.");
            match e {
                ValidateError::Invalid => ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "bigpanda_key_invalid",
                    "BigPanda rejected this API key (HTTP 401); the stored key is unchanged",
                ),
                ValidateError::Forbidden => ApiError::new(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    "bigpanda_key_forbidden",
                    "this API key may not list BigPanda environments (HTTP 403); the stored key is unchanged",
                ),
                ValidateError::InvalidUrl(m) => ApiError::bad_request("invalid_request", m),
                ValidateError::Rejected { status } => ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "bigpanda_unreachable",
                    format!("BigPanda answered HTTP {status} at {url}; check api_url. The stored key is unchanged"),
                ),
                ValidateError::Unreachable(m) => ApiError::new(
                    StatusCode::BAD_GATEWAY,
                    "bigpanda_unreachable",
                    format!("{m}; the stored key is unchanged"),
                ),
            }
        })?;
        self.store
            .put_integration(&integration_record(&key, &url))?;
        // The key must survive a crash once we said it is stored.
        if let Ok(Err(e)) = self.store.durable().await {
            return Err(e.into());
        }
        let _ = self.closer.cast(CloserMsg::IntegrationChanged);
        tracing::info!(key = %key, api_url = %url, environments = environments.len(), "BigPanda API key validated and stored.");
        Ok(json!({
            "connected": true,
            "api_url": url,
            "key_hint": key.key_hint(),
            "environments": environments,
        }))
    }
}

impl IntegrationApi for Integration {
    fn put(&self, body: Bytes) -> BoxFuture<'_, Result<Value, ApiError>> {
        Box::pin(self.put_inner(body))
    }

    fn get(&self) -> Result<Value, ApiError> {
        Ok(match self.store.integration()? {
            Some(rec) => json!({
                "connected": true,
                "api_url": rec.api_url,
                "key_hint": key_hint(&rec.api_key),
                "validated_at": ts(rec.validated_at),
                "healthy": rec.healthy,
                "last_error": rec.last_error,
            }),
            None => json!({
                "connected": false,
                "api_url": self.default_api_url,
                "key_hint": null,
                "validated_at": null,
                "healthy": false,
                "last_error": null,
            }),
        })
    }

    fn delete(&self) -> Result<(), ApiError> {
        self.store.delete_integration()?;
        let _ = self.closer.cast(CloserMsg::IntegrationChanged);
        tracing::info!("BigPanda API key removed; closes wait until a new key is stored.");
        Ok(())
    }
}
