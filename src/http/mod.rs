//! The HTTP surface: the webhook callback, the admin API, health and metrics.
//!
//! `routes(app)` builds the whole filter tree, so tests can drive it without a socket. Handlers
//! read and validate input themselves and return domain errors as replies (a failing filter in
//! an `.or()` chain would otherwise surface as a 405); `error` maps every failure in one place.

mod admin;
pub mod error;
mod integration;
pub mod server;
pub mod views;
mod webhook;

use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::{Buf, Bytes, BytesMut};
use futures_util::{Stream, StreamExt};
use tokio::sync::Semaphore;
use warp::http::StatusCode;
use warp::reply::Reply;
use warp::Filter;

use crate::engine::Engine;
use crate::metrics::Metrics;
use crate::sources::Sources;
use error::{recover, ApiError};

/// Everything a request handler may touch.
pub struct App {
    pub engine: Engine,
    pub sources: Sources,
    pub metrics: Arc<Metrics>,
    pub admin_token: crate::config::AdminToken,
    /// Base of callback URLs, e.g. `https://pandabridge.example.com`, no trailing slash.
    pub public_url: String,
    pub max_body_bytes: u64,
    /// A body not fully received within this time gets 408.
    pub body_read_timeout: std::time::Duration,
    /// Webhooks being processed at once; beyond it new ones get 503 (backpressure).
    pub inflight: Arc<Semaphore>,
    /// False once shutdown begins: new webhooks get 503.
    pub accepting: AtomicBool,
    /// The BigPanda integration (absent in tests that need no BigPanda).
    pub integration: Option<Arc<crate::integration::Integration>>,
}

impl App {
    pub fn stop_accepting(&self) {
        self.accepting.store(false, Ordering::SeqCst);
    }
    pub fn is_accepting(&self) -> bool {
        self.accepting.load(Ordering::SeqCst)
    }
    fn admin_ok(&self, authorization: Option<&str>) -> bool {
        match bearer(authorization) {
            Some(token) => self.admin_token.matches(token),
            None => false,
        }
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive).
pub fn bearer(header: Option<&str>) -> Option<&str> {
    let h = header?.trim();
    let (scheme, token) = h.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Reads a body of at most `max` bytes, whether or not it has a Content-Length.
async fn read_limited<S, B>(stream: S, max: u64) -> Result<Bytes, ApiError>
where
    S: Stream<Item = Result<B, warp::Error>>,
    B: Buf,
{
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body is larger than {max} bytes"),
        )
    };
    let mut stream = std::pin::pin!(stream);
    // A webhook's body usually arrives as one chunk: it is kept as it came, without a copy
    // (hyper hands out `Bytes`, whose `copy_to_bytes` shares the buffer). Only a body in
    // several chunks is joined into `joined`.
    let mut first = Bytes::new();
    let mut joined = BytesMut::new();
    while let Some(chunk) = stream.next().await {
        let mut chunk = chunk.map_err(|e| {
            ApiError::bad_request(
                "body_read_failed",
                format!("could not read the request body: {e}"),
            )
        })?;
        let read = first.len() + joined.len();
        if read as u64 + chunk.remaining() as u64 > max {
            return Err(too_large());
        }
        let part = chunk.copy_to_bytes(chunk.remaining());
        if read == 0 {
            first = part;
        } else {
            if joined.is_empty() {
                joined.extend_from_slice(&std::mem::take(&mut first));
            }
            joined.extend_from_slice(&part);
        }
    }
    Ok(if joined.is_empty() {
        first
    } else {
        joined.freeze()
    })
}

fn with_app(app: Arc<App>) -> impl Filter<Extract = (Arc<App>,), Error = Infallible> + Clone {
    warp::any().map(move || Arc::clone(&app))
}

fn route_name(path: &str) -> &'static str {
    if path.starts_with("/webhooks/") {
        "webhook"
    } else if path.starts_with("/api/") {
        "admin"
    } else if path == "/metrics" {
        "metrics"
    } else {
        "health"
    }
}

/// A filter that reads the body with the app's size limit and checks the content length first,
/// so an oversized declared body is refused before it is read.
fn body(
    app: Arc<App>,
) -> impl Filter<Extract = (Result<Bytes, ApiError>,), Error = Rejection> + Clone {
    warp::header::optional::<u64>("content-length")
        .and(warp::body::stream())
        .and(with_app(app))
        .then(|len: Option<u64>, stream, app: Arc<App>| async move {
            if len.is_some_and(|l| l > app.max_body_bytes) {
                return Err(ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    format!("request body is larger than {} bytes", app.max_body_bytes),
                ));
            }
            match tokio::time::timeout(
                app.body_read_timeout,
                read_limited(stream, app.max_body_bytes),
            )
            .await
            {
                Ok(body) => body,
                Err(_) => Err(ApiError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    "request_timeout",
                    format!(
                        "the request body did not arrive within {}",
                        humantime::format_duration(app.body_read_timeout)
                    ),
                )),
            }
        })
}

use warp::Rejection;

/// An [`ApiError`] raised by a filter before the handler runs (auth, admission).
#[derive(Debug)]
pub struct Rejected(pub ApiError);
impl warp::reject::Reject for Rejected {}

pub fn routes(app: Arc<App>) -> impl Filter<Extract = (impl Reply,), Error = Infallible> + Clone {
    let metrics = Arc::clone(&app.metrics);
    let auth = warp::header::optional::<String>("authorization");

    // Path before method everywhere: a method filter first would turn every unknown path into 405.
    let webhook = warp::path!("webhooks" / "bigpanda" / String)
        .and(warp::post())
        .and(auth)
        .and(warp::header::optional::<String>("content-type"))
        .and(with_app(Arc::clone(&app)))
        .and_then(|source, authz, ct, app| async move {
            webhook::admit(source, authz, ct, app).map_err(|e| warp::reject::custom(Rejected(e)))
        })
        .and(body(Arc::clone(&app)))
        .then(webhook::handle);

    let healthz = warp::path!("healthz")
        .and(warp::get())
        .map(|| warp::reply::json(&serde_json::json!({"status": "ok"})).into_response());
    let readyz = warp::path!("readyz")
        .and(warp::get())
        .and(with_app(Arc::clone(&app)))
        .map(|app: Arc<App>| {
            if app.is_accepting() && app.engine.store().healthy() {
                warp::reply::json(&serde_json::json!({"status": "ready"})).into_response()
            } else {
                ApiError::unavailable(
                    "not_ready",
                    "the store or the engine is not accepting events",
                )
                .into_response()
            }
        });
    let metrics_route = warp::path!("metrics")
        .and(warp::get())
        .and(with_app(Arc::clone(&app)))
        .map(|app: Arc<App>| {
            let (flushes, writes) = app.engine.store().flush_stats();
            app.metrics.store_flushes.set(flushes as i64);
            app.metrics.store_flushed_writes.set(writes as i64);
            let (folds, last_fold) = app.engine.store().fold_stats();
            app.metrics.store_folds.set(folds as i64);
            app.metrics
                .store_last_fold_seconds
                .set(last_fold.as_secs_f64());
            warp::reply::with_header(
                app.metrics.render(),
                "content-type",
                "application/openmetrics-text; version=1.0.0; charset=utf-8",
            )
            .into_response()
        });

    let admin = warp::path("api")
        .and(warp::path("v1"))
        .and(auth)
        .and(with_app(Arc::clone(&app)))
        .and_then(|authz: Option<String>, app: Arc<App>| async move {
            if app.admin_ok(authz.as_deref()) {
                Ok(app)
            } else {
                Err(warp::reject::custom(Rejected(ApiError::unauthorized())))
            }
        })
        .and(warp::method())
        .and(warp::path::tail())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(body(app))
        .then(admin::handle);

    webhook
        .or(healthz)
        .unify()
        .or(readyz)
        .unify()
        .or(metrics_route)
        .unify()
        .or(admin)
        .unify()
        .recover(recover)
        .unify()
        .with(warp::log::custom(move |info| {
            metrics.observe_request(route_name(info.path()), info.elapsed().as_secs_f64());
        }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunks(parts: &[&'static str]) -> impl Stream<Item = Result<Bytes, warp::Error>> {
        futures_util::stream::iter(
            parts
                .iter()
                .map(|p| Ok(Bytes::from_static(p.as_bytes())))
                .collect::<Vec<_>>(),
        )
    }

    #[tokio::test]
    async fn a_body_in_one_chunk_is_kept_without_a_copy() {
        let whole = Bytes::from_static(b"{\"incident\":{}}");
        let stream = futures_util::stream::iter(vec![Ok::<_, warp::Error>(whole.clone())]);
        let body = read_limited(stream, 1024).await.unwrap();
        assert_eq!(body, whole);
        assert_eq!(
            body.as_ptr(),
            whole.as_ptr(),
            "the chunk's buffer is shared, not copied"
        );
    }

    #[tokio::test]
    async fn a_body_in_several_chunks_is_joined_in_order() {
        for parts in [
            &["ab", "cd", "ef"][..],
            &["", "abc", "", "def"],
            &["abcdef", ""],
            &["", "", "abcdef"],
        ] {
            let body = read_limited(chunks(parts), 6).await.unwrap();
            assert_eq!(&body[..], b"abcdef", "{parts:?}");
        }
        assert!(read_limited(chunks(&[]), 6).await.unwrap().is_empty());
        assert!(read_limited(chunks(&["", ""]), 6).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_refused_whichever_chunk_crosses_it() {
        for parts in [&["abcdefg"][..], &["abc", "defg"], &["", "abcdef", "g"]] {
            let err = read_limited(chunks(parts), 6).await.unwrap_err();
            assert_eq!(err.code, "payload_too_large", "{parts:?}");
        }
    }
}
