//! The one mapping from failures to HTTP replies: `{"error": {"code", "message"}}`.

use std::convert::Infallible;

use warp::http::StatusCode;
use warp::reply::{Reply, Response};

use crate::engine::EngineError;
use crate::sources::SourceError;
use crate::store::StoreError;

/// Seconds a client should wait before retrying a 503.
pub const RETRY_AFTER_SECS: u32 = 5;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or invalid bearer token",
        )
    }
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }
    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no such {what}"),
        )
    }
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
    }
}

impl Reply for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        let mut resp =
            warp::reply::with_status(warp::reply::json(&body), self.status).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut().insert(
                "retry-after",
                warp::http::HeaderValue::from(RETRY_AFTER_SECS),
            );
        }
        resp
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::warn!(error = %e, "Request failed on the store.");
        ApiError::unavailable(
            "store_unavailable",
            "the store cannot accept writes right now; retry later",
        )
    }
}

impl From<EngineError> for ApiError {
    fn from(e: EngineError) -> Self {
        match e {
            EngineError::NotFound => ApiError::not_found("alert"),
            EngineError::Store(s) => s.into(),
            EngineError::ShuttingDown => {
                ApiError::unavailable("shutting_down", "pandabridge is shutting down; retry later")
            }
            EngineError::ActorLost | EngineError::Timeout => {
                tracing::warn!(error = %e, "Request failed in the engine.");
                ApiError::unavailable(
                    "engine_unavailable",
                    "the event could not be processed; retry later",
                )
            }
        }
    }
}

impl From<SourceError> for ApiError {
    fn from(e: SourceError) -> Self {
        match e {
            SourceError::NotFound => ApiError::not_found("alert source"),
            SourceError::Invalid(m) => ApiError::bad_request("invalid_request", m),
            SourceError::Store(s) => s.into(),
        }
    }
}

/// Handlers return `Result<impl Reply, ApiError>`; this turns both arms into one response.
pub fn respond<R: Reply>(result: Result<R, ApiError>) -> Response {
    match result {
        Ok(r) => r.into_response(),
        Err(e) => e.into_response(),
    }
}

/// Maps warp's own rejections (unknown path, wrong method) to the JSON error format.
pub async fn recover(rejection: warp::Rejection) -> Result<Response, Infallible> {
    let err = if let Some(super::Rejected(e)) = rejection.find::<super::Rejected>() {
        e.clone()
    } else if rejection.is_not_found() {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
    } else if rejection.find::<warp::reject::MethodNotAllowed>().is_some() {
        ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "method not allowed on this endpoint",
        )
    } else if rejection.find::<warp::reject::PayloadTooLarge>().is_some() {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "request body is too large",
        )
    } else if rejection.find::<warp::reject::LengthRequired>().is_some() {
        ApiError::new(
            StatusCode::LENGTH_REQUIRED,
            "length_required",
            "request body needs a Content-Length",
        )
    } else if let Some(h) = rejection.find::<warp::reject::InvalidHeader>() {
        // E.g. an Authorization value with non-ASCII bytes: name the header, not its value.
        ApiError::bad_request(
            "invalid_header",
            format!("the {} header is not valid", h.name()),
        )
    } else {
        tracing::debug!(?rejection, "Unhandled rejection.");
        ApiError::bad_request("bad_request", "the request could not be understood")
    };
    Ok(err.into_response())
}
