//! The BigPanda integration: the API key used to close incidents, validated against BigPanda
//! before it is stored (CONTRACT §3 "BigPanda integration").
//!
//! A rejected key never replaces the stored one. The key is kept in the store (inside the
//! 0700 data dir) and is never returned, logged or exported as a metric: callers get only its
//! last four characters. How these results look over HTTP is `http::integration`'s business.

use ractor::ActorRef;

use crate::bigpanda::client::{ApiKey, BigPandaApi, Environment, ValidateError};
use crate::engine::closer::{integration_record, CloserMsg};
use crate::lifecycle::Millis;
use crate::store::{Store, StoreError};

pub struct Integration {
    pub store: Store,
    pub api: BigPandaApi,
    /// `--bigpanda-api-url`: used when a connect names no API URL.
    pub default_api_url: String,
    pub closer: ActorRef<CloserMsg>,
}

/// Why a key was not stored. In every case the previously stored key (if any) is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("api_key is unusable: {0}")]
    BadKey(String),
    #[error("api_url must be an http:// or https:// URL, e.g. https://api.bigpanda.io")]
    BadUrl,
    #[error("BigPanda rejected this API key (HTTP 401)")]
    KeyInvalid,
    #[error("this API key may not list BigPanda environments (HTTP 403)")]
    KeyForbidden,
    #[error("{0}")]
    Unreachable(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A key that was validated and stored.
#[derive(Debug, Clone)]
pub struct Connected {
    pub api_url: String,
    pub key_hint: String,
    pub environments: Vec<Environment>,
}

/// What `GET /api/v1/integrations/bigpanda` reports.
#[derive(Debug, Clone)]
pub struct Status {
    pub connected: bool,
    pub api_url: String,
    pub key_hint: Option<String>,
    pub validated_at: Option<Millis>,
    pub healthy: bool,
    pub last_error: Option<String>,
}

fn normalise_url(raw: &str) -> Result<String, ConnectError> {
    let url = raw.trim().trim_end_matches('/');
    let ok = (url.starts_with("https://") || url.starts_with("http://"))
        && url.len() > "https://".len()
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(url.to_string())
    } else {
        Err(ConnectError::BadUrl)
    }
}

impl Integration {
    /// Validates `api_key` against BigPanda (listing its environments) and stores it only if
    /// BigPanda accepts it; returns once the stored key is durable.
    pub async fn connect(
        &self,
        api_key: &str,
        api_url: Option<&str>,
    ) -> Result<Connected, ConnectError> {
        let key = ApiKey::new(api_key).map_err(|e| ConnectError::BadKey(e.to_string()))?;
        let url = normalise_url(api_url.unwrap_or(&self.default_api_url))?;
        let environments = self.api.list_environments(&url, &key).await.map_err(|e| {
            tracing::warn!(key = %key, api_url = %url, error = %e,
                "BigPanda API key was not accepted; the stored key is unchanged.");
            match e {
                ValidateError::Invalid => ConnectError::KeyInvalid,
                ValidateError::Forbidden => ConnectError::KeyForbidden,
                ValidateError::InvalidUrl(_) => ConnectError::BadUrl,
                ValidateError::Rejected { status } => ConnectError::Unreachable(format!(
                    "BigPanda answered HTTP {status} at {url}; check api_url"
                )),
                ValidateError::Unreachable(m) => ConnectError::Unreachable(m),
            }
        })?;
        // Durable before we say it is stored: the key must survive a crash.
        self.store
            .put_integration(&integration_record(&key, &url))
            .await?;
        let _ = self.closer.cast(CloserMsg::IntegrationChanged);
        tracing::info!(key = %key, api_url = %url, environments = environments.len(),
            "BigPanda API key validated and stored.");
        Ok(Connected {
            api_url: url,
            key_hint: key.key_hint(),
            environments,
        })
    }

    pub fn status(&self) -> Result<Status, StoreError> {
        Ok(match self.store.integration()? {
            Some(rec) => Status {
                connected: true,
                key_hint: ApiKey::new(&rec.api_key).ok().map(|k| k.key_hint()),
                api_url: rec.api_url,
                validated_at: Some(rec.validated_at),
                healthy: rec.healthy,
                last_error: rec.last_error,
            },
            None => Status {
                connected: false,
                api_url: self.default_api_url.clone(),
                key_hint: None,
                validated_at: None,
                healthy: false,
                last_error: None,
            },
        })
    }

    /// Forgets the key; pending closes wait until a new one is stored.
    pub async fn disconnect(&self) -> Result<(), StoreError> {
        self.store.delete_integration().await?;
        let _ = self.closer.cast(CloserMsg::IntegrationChanged);
        tracing::info!("BigPanda API key removed; closes wait until a new key is stored.");
        Ok(())
    }
}
