//! The BigPanda REST client: the only code in pandabridge that talks to BigPanda's API.
//!
//! It owns the HTTP connection pool, timeouts, the user agent, the 5 requests/second pacing
//! shared by every call, the mapping of replies onto domain outcomes ([`ValidateError`],
//! [`ResolveOutcome`]) and the secrecy of the API key ([`ApiKey`]). It does not decide what to
//! do with an outcome (retry scheduling, marking the integration unhealthy): that is the
//! engine's job, fed by [`backoff`] and the outcome variants.

mod rate_limit;
#[cfg(test)]
mod tests;

use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use reqwest::header::{HeaderMap, HeaderValue, AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use serde::Serialize;
use serde_json::Value;

pub use rate_limit::{
    backoff, backoff_ceiling, backoff_with, RateLimiter, BACKOFF_BASE, BACKOFF_CAP,
    BIGPANDA_REQUESTS_PER_WINDOW, BIGPANDA_SAFETY_MARGIN, BIGPANDA_WINDOW,
};

/// Default per-request timeout (connect, send and read the whole reply).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// Connecting is bounded separately so an unroutable host fails fast even with a long timeout.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// BigPanda error texts are quoted into alert history and logs; keep them readable.
const MAX_ERROR_CHARS: usize = 200;
/// A broken or hostile `Retry-After` must not park a close for days.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60 * 60);

/// A BigPanda API key. Its `Debug` and `Display` show only a hint (`…abcd`), so it can be
/// logged, put in errors or derived into `Debug` structs without leaking; the raw value is
/// reachable only through [`ApiKey::expose_secret`], which is for the header and the store.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiKeyError {
    #[error("the API key is empty")]
    Empty,
    // The offending character is not named: it is part of the secret.
    #[error("the API key contains a character that cannot be sent in an HTTP header")]
    InvalidCharacter,
}

impl ApiKey {
    /// Accepts a key as pasted by an operator: surrounding whitespace is dropped; what remains
    /// must be non-empty visible ASCII (anything else cannot be a bearer token).
    pub fn new(raw: impl AsRef<str>) -> Result<Self, ApiKeyError> {
        let key = raw.as_ref().trim();
        if key.is_empty() {
            return Err(ApiKeyError::Empty);
        }
        if !key.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ApiKeyError::InvalidCharacter);
        }
        Ok(Self(key.to_string()))
    }

    /// `…` and the last 4 characters. Keys of 8 characters or fewer show only `…`, since
    /// four of them would be half the secret.
    pub fn key_hint(&self) -> String {
        let n = self.0.chars().count();
        if n <= 8 {
            return "…".to_string();
        }
        let tail: String = self.0.chars().skip(n - 4).collect();
        format!("…{tail}")
    }

    /// The raw key, for the `Authorization` header and for persisting it. Named loudly so
    /// that every use is easy to audit.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }

    fn bearer(&self) -> Result<HeaderValue, String> {
        let mut value = HeaderValue::from_str(&format!("Bearer {}", self.0))
            .map_err(|_| "the API key cannot be sent in an HTTP header".to_string())?;
        // Keeps the value out of hyper/reqwest debug output.
        value.set_sensitive(true);
        Ok(value)
    }

    /// Removes the key from a message that might have picked it up (defence in depth: reqwest
    /// and hyper errors are not known to quote headers, but they are not ours to audit).
    fn redact(&self, message: String) -> String {
        if message.contains(&self.0) {
            message.replace(&self.0, &self.key_hint())
        } else {
            message
        }
    }
}

impl FromStr for ApiKey {
    type Err = ApiKeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ApiKey({})", self.key_hint())
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.key_hint())
    }
}

/// A BigPanda environment, as much of it as pandabridge shows to the operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Environment {
    pub id: String,
    pub name: String,
}

/// Why a key could not be validated. The admin API maps these onto its replies
/// (`Invalid` → 422 `bigpanda_key_invalid`, `Forbidden` → 422 `bigpanda_key_forbidden`,
/// `Unreachable` → 502 `bigpanda_unreachable`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidateError {
    #[error("BigPanda rejected the API key (HTTP 401)")]
    Invalid,
    #[error("the API key is not allowed to list BigPanda environments (HTTP 403)")]
    Forbidden,
    #[error("BigPanda refused the request with HTTP {status}")]
    Rejected { status: u16 },
    #[error("BigPanda is unreachable: {0}")]
    Unreachable(String),
    /// The configured API URL cannot be used at all; nothing was sent.
    #[error("the BigPanda API URL is unusable: {0}")]
    InvalidUrl(String),
}

/// What became of one resolve request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResolveOutcome {
    /// 2xx, or 409 (BigPanda already has it resolved): nothing left to do.
    Delivered { status: u16 },
    /// 404: BigPanda does not know this incident (in this environment); retrying cannot help.
    NotFound { status: u16 },
    /// 401/403: the key is bad or lacks the permission; keep the close and pause.
    Unauthorized { status: u16 },
    /// Any other 4xx (400, 405, 410, 413, 422, …): BigPanda judged this very request wrong.
    /// It is terminal rather than retried because resending the identical request gets the
    /// identical answer, and retrying forever would spend the 5 req/s budget that other
    /// closes need. The engine should treat it like `NotFound` (close `failed`, visible, and
    /// re-queueable by an operator).
    Rejected { status: u16, error: String },
    /// 429, 408, 5xx, an unexpected 1xx/3xx, a timeout or a connection failure: try again
    /// after [`backoff`] (at least `retry_after`).
    Retry {
        status: Option<u16>,
        retry_after: Option<Duration>,
        error: String,
    },
    /// The ids cannot address an incident (empty, `.` or `..` — URL syntax gives those path
    /// segments a meaning of their own); nothing was sent. Terminal, like `NotFound`.
    NotSent { error: String },
}

impl ResolveOutcome {
    /// Whether the close is finished for good, either way (no retry, no pause).
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            ResolveOutcome::Delivered { .. }
                | ResolveOutcome::NotFound { .. }
                | ResolveOutcome::Rejected { .. }
                | ResolveOutcome::NotSent { .. }
        )
    }

    /// The HTTP status BigPanda answered, if it answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            ResolveOutcome::Delivered { status }
            | ResolveOutcome::NotFound { status }
            | ResolveOutcome::Unauthorized { status }
            | ResolveOutcome::Rejected { status, .. } => Some(*status),
            ResolveOutcome::Retry { status, .. } => *status,
            ResolveOutcome::NotSent { .. } => None,
        }
    }
}

/// A resolve outcome and how long the HTTP exchange took (waiting for a rate-limit slot is
/// not included: it says nothing about BigPanda).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolveResult {
    pub outcome: ResolveOutcome,
    pub elapsed: Duration,
}

#[derive(Debug, thiserror::Error)]
#[error("cannot build the BigPanda HTTP client: {0}")]
pub struct BuildError(String);

/// The BigPanda API client. Build it once and share it (it is cheap to clone): clones share
/// one connection pool and one rate limiter, so every call the process makes counts against
/// the same 5 requests/second.
#[derive(Clone)]
pub struct BigPandaApi {
    http: reqwest::Client,
    timeout: Duration,
    limiter: Arc<Mutex<RateLimiter>>,
}

impl fmt::Debug for BigPandaApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BigPandaApi")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl BigPandaApi {
    /// A client with `timeout` per request and BigPanda's rate limit.
    pub fn new(timeout: Duration) -> Result<Self, BuildError> {
        Self::with_limiter(timeout, RateLimiter::bigpanda())
    }

    /// A client with its own pacing (tests use a generous one to stay fast).
    pub fn with_limiter(timeout: Duration, limiter: RateLimiter) -> Result<Self, BuildError> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("pandabridge/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(CONNECT_TIMEOUT.min(timeout))
            .timeout(timeout)
            // An API endpoint that redirects means a wrong api_url (say http:// for https://);
            // following it would drop the Authorization header on the way and turn a config
            // mistake into a misleading "invalid key". Report the redirect instead.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| BuildError(error_chain(&e)))?;
        Ok(Self {
            http,
            timeout,
            limiter: Arc::new(Mutex::new(limiter)),
        })
    }

    /// Lists the environments the key can see: the key validation of CONTRACT §3.
    pub async fn list_environments(
        &self,
        api_url: &str,
        key: &ApiKey,
    ) -> Result<Vec<Environment>, ValidateError> {
        let url = endpoint(api_url, &["resources", "v2.0", "environments"])
            .map_err(ValidateError::InvalidUrl)?;
        let auth = key.bearer().map_err(|_| ValidateError::Invalid)?;
        self.wait_for_slot().await;
        let started = Instant::now();
        let reply = self
            .http
            .get(url)
            .header(AUTHORIZATION, auth)
            .send()
            .await
            .map_err(|e| ValidateError::Unreachable(key.redact(self.describe(&e))))?;
        let status = reply.status();
        let body = reply.bytes().await;
        tracing::debug!(
            http_status = status.as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            key = %key,
            "BigPanda answered the environments request."
        );
        match status.as_u16() {
            200..=299 => {
                let body = body.map_err(|e| {
                    ValidateError::Unreachable(
                        key.redact(format!("reading the reply failed: {}", self.describe(&e))),
                    )
                })?;
                let json: Value = serde_json::from_slice(&body).map_err(|_| {
                    ValidateError::Unreachable(key.redact(format!(
                        "unexpected reply (HTTP {}, not JSON): {}",
                        status.as_u16(),
                        truncate(String::from_utf8_lossy(&body).trim())
                    )))
                })?;
                Ok(parse_environments(&json))
            }
            401 => Err(ValidateError::Invalid),
            403 => Err(ValidateError::Forbidden),
            400..=499 => Err(ValidateError::Rejected {
                status: status.as_u16(),
            }),
            300..=399 => Err(ValidateError::Unreachable(redirect_message(status))),
            _ => Err(ValidateError::Unreachable(key.redact(format!(
                "HTTP {}{}",
                status.as_u16(),
                error_suffix(body.ok().as_deref())
            )))),
        }
    }

    /// Asks BigPanda to resolve one incident (CONTRACT §4). Never fails: every way it can go
    /// is a [`ResolveOutcome`].
    pub async fn resolve_incident(
        &self,
        api_url: &str,
        key: &ApiKey,
        environment_id: &str,
        incident_id: &str,
        comment: &str,
    ) -> ResolveResult {
        self.wait_for_slot().await;
        self.resolve_incident_in_slot(api_url, key, environment_id, incident_id, comment)
            .await
    }

    /// Waits until a request could start within `ahead` without breaking BigPanda's rate
    /// limit; nothing is taken. The close sender waits with a short lead, checks that the close
    /// is still owed, waits out the rest, then takes the slot with
    /// [`BigPandaApi::try_take_slot`] and sends at once: the check happens right before the
    /// request, and the start the limiter records is when the request leaves (a slot taken
    /// before the check would let the request leave as late as the check took, and a late
    /// first of five can put a sixth into BigPanda's second).
    pub async fn wait_until_slot_free(&self, ahead: Duration) {
        loop {
            let now = tokio::time::Instant::now().into_std();
            let free = self.limiter().free_at(now);
            let wake = free.checked_sub(ahead).unwrap_or(now);
            if wake <= now {
                return;
            }
            tokio::time::sleep_until(tokio::time::Instant::from_std(wake)).await;
        }
    }

    /// Takes a slot starting now if one is free; the caller must then send at once with
    /// [`BigPandaApi::resolve_incident_in_slot`]. `false` when another call took it first.
    pub fn try_take_slot(&self) -> bool {
        let now = tokio::time::Instant::now().into_std();
        self.limiter().try_acquire(now).is_ok()
    }

    /// [`BigPandaApi::resolve_incident`] for a caller that already holds a slot from
    /// [`BigPandaApi::try_take_slot`].
    pub async fn resolve_incident_in_slot(
        &self,
        api_url: &str,
        key: &ApiKey,
        environment_id: &str,
        incident_id: &str,
        comment: &str,
    ) -> ResolveResult {
        for (what, id) in [
            ("environment id", environment_id),
            ("incident id", incident_id),
        ] {
            if matches!(id, "" | "." | "..") {
                return ResolveResult {
                    outcome: ResolveOutcome::NotSent {
                        error: format!("the {what} {id:?} cannot be used in a BigPanda URL"),
                    },
                    elapsed: Duration::ZERO,
                };
            }
        }
        let url = match endpoint(
            api_url,
            &[
                "resources",
                "v2.0",
                "environments",
                environment_id,
                "incidents",
                incident_id,
                "resolve",
            ],
        ) {
            Ok(url) => url,
            // Kept retryable: the URL is configuration, and fixing it should let the close go.
            Err(error) => {
                return ResolveResult {
                    outcome: ResolveOutcome::Retry {
                        status: None,
                        retry_after: None,
                        error: format!("the BigPanda API URL is unusable: {error}"),
                    },
                    elapsed: Duration::ZERO,
                }
            }
        };
        let auth = match key.bearer() {
            Ok(auth) => auth,
            Err(error) => {
                return ResolveResult {
                    outcome: ResolveOutcome::Retry {
                        status: None,
                        retry_after: None,
                        error,
                    },
                    elapsed: Duration::ZERO,
                }
            }
        };
        let started = Instant::now();
        let sent = self
            .http
            .post(url)
            .header(AUTHORIZATION, auth)
            .header(CONTENT_TYPE, "application/json")
            .body(serde_json::json!({ "comments": comment }).to_string())
            .send()
            .await;
        let outcome = match sent {
            Err(e) => ResolveOutcome::Retry {
                status: None,
                retry_after: None,
                error: key.redact(self.describe(&e)),
            },
            Ok(reply) => {
                let status = reply.status();
                let retry_after = parse_retry_after(reply.headers(), SystemTime::now());
                match reply.bytes().await {
                    Ok(body) => classify_resolve(status, retry_after, Some(&body)),
                    // The status line is BigPanda's decision; a 2xx/409 whose body got lost
                    // is still delivered. For anything else a broken reply is a transport
                    // failure, and trying again is safe (a repeated resolve is harmless).
                    Err(_) if status.is_success() || status == StatusCode::CONFLICT => {
                        classify_resolve(status, retry_after, None)
                    }
                    Err(e) => ResolveOutcome::Retry {
                        status: None,
                        retry_after,
                        error: format!(
                            "reading the HTTP {} reply failed: {}",
                            status.as_u16(),
                            self.describe(&e)
                        ),
                    },
                }
            }
        };
        let outcome = match outcome {
            ResolveOutcome::Retry {
                status,
                retry_after,
                error,
            } => ResolveOutcome::Retry {
                status,
                retry_after,
                error: key.redact(error),
            },
            ResolveOutcome::Rejected { status, error } => ResolveOutcome::Rejected {
                status,
                error: key.redact(error),
            },
            other => other,
        };
        let elapsed = started.elapsed();
        tracing::debug!(
            environment_id,
            incident_id,
            http_status = outcome.status(),
            elapsed_ms = elapsed.as_millis() as u64,
            key = %key,
            "BigPanda resolve request finished."
        );
        ResolveResult { outcome, elapsed }
    }

    /// Waits until the shared limiter grants a start. `try_acquire` (not reservations) so a
    /// key validation is not queued behind a backlog of closes.
    async fn wait_for_slot(&self) {
        loop {
            // tokio's clock, not std's: under `tokio::time::pause()` the two differ, and the
            // sleep below runs on tokio's, so the limiter must too (or it would spin).
            let now = tokio::time::Instant::now().into_std();
            let verdict = self.limiter().try_acquire(now);
            match verdict {
                Ok(()) => return,
                Err(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
            }
        }
    }

    fn limiter(&self) -> std::sync::MutexGuard<'_, RateLimiter> {
        // A panic while holding this lock cannot leave the limiter inconsistent in a way that
        // matters more than pacing; keep going.
        self.limiter
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A one-line, key-free description of a transport error: "timeout after 10s" or
    /// "connection error: <cause>".
    fn describe(&self, e: &reqwest::Error) -> String {
        if e.is_timeout() {
            format!("timeout after {}", humantime::format_duration(self.timeout))
        } else {
            format!("connection error: {}", transport_cause(e))
        }
    }
}

/// The useful part of a reqwest error: its causes, without reqwest's "error sending request
/// for url (…)" wrapper (the URL is known to the caller) and hyper-util's "client error (…)".
fn transport_cause(e: &reqwest::Error) -> String {
    let mut parts = Vec::new();
    let mut source = std::error::Error::source(e);
    while let Some(inner) = source {
        let text = inner.to_string();
        if !text.starts_with("client error (") {
            parts.push(text);
        }
        source = inner.source();
    }
    // Outer messages often repeat their source; keep the most specific wording once.
    parts.dedup_by(|later, earlier| earlier.contains(later.as_str()));
    if parts.is_empty() {
        e.to_string()
    } else {
        parts.join(": ")
    }
}

fn classify_resolve(
    status: StatusCode,
    retry_after: Option<Duration>,
    body: Option<&[u8]>,
) -> ResolveOutcome {
    let code = status.as_u16();
    let error = || format!("HTTP {code}{}", error_suffix(body));
    match code {
        200..=299 | 409 => ResolveOutcome::Delivered { status: code },
        404 => ResolveOutcome::NotFound { status: code },
        401 | 403 => ResolveOutcome::Unauthorized { status: code },
        // 408 is the server giving up on a slow request: a transport problem, not a verdict.
        408 | 429 | 500..=599 => ResolveOutcome::Retry {
            status: Some(code),
            retry_after,
            error: error(),
        },
        400..=499 => ResolveOutcome::Rejected {
            status: code,
            error: error(),
        },
        300..=399 => ResolveOutcome::Retry {
            status: Some(code),
            retry_after: None,
            error: redirect_message(status),
        },
        _ => ResolveOutcome::Retry {
            status: Some(code),
            retry_after,
            error: format!("unexpected {}", error()),
        },
    }
}

/// `{api_url}/seg/seg/…` with every segment percent-encoded. Ids arrive in webhooks, so an id
/// containing `/`, `?`, `#` or `%` must stay one path segment.
fn endpoint(api_url: &str, segments: &[&str]) -> Result<Url, String> {
    let mut url = Url::parse(api_url.trim()).map_err(|e| format!("{e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("scheme {:?} is not http or https", url.scheme()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err("it must not have a query or fragment".to_string());
    }
    url.path_segments_mut()
        .map_err(|_| "it cannot have a path".to_string())?
        // Handles a trailing slash: `https://x/` and `https://x/prefix/` both work.
        .pop_if_empty()
        .extend(segments);
    Ok(url)
}

/// Environments from the lenient set of shapes BigPanda's versions use: a bare array, or one
/// under `items`, `data` or `environments` (possibly one level deeper under `data`). An
/// unknown JSON shape is an empty list: the key was accepted, which is what validation asks.
fn parse_environments(json: &Value) -> Vec<Environment> {
    fn list(v: &Value) -> Option<&Vec<Value>> {
        if let Some(items) = v.as_array() {
            return Some(items);
        }
        ["items", "data", "environments"].iter().find_map(|k| {
            v.get(*k)
                .and_then(|inner| inner.as_array().or_else(|| list_in(inner)))
        })
    }
    fn list_in(v: &Value) -> Option<&Vec<Value>> {
        ["items", "environments"]
            .iter()
            .find_map(|k| v.get(*k).and_then(Value::as_array))
    }
    let Some(items) = list(json) else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|env| {
            let id = match env.get("id").or_else(|| env.get("_id"))? {
                Value::String(s) if !s.is_empty() => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return None,
            };
            let name = env
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string();
            Some(Environment { id, name })
        })
        .collect()
}

/// `": <what BigPanda said>"`, from its error envelope `{"status":…,"errors":[…]}` (or a
/// `message`/`error` field, or the raw text), truncated; empty when there is nothing to say.
fn error_suffix(body: Option<&[u8]>) -> String {
    let Some(body) = body else {
        return String::new();
    };
    let text = match serde_json::from_slice::<Value>(body) {
        Ok(json) => envelope_text(&json),
        Err(_) => Some(String::from_utf8_lossy(body).trim().to_string()),
    };
    match text {
        Some(t) if !t.is_empty() => format!(": {}", truncate(&t)),
        _ => String::new(),
    }
}

fn envelope_text(json: &Value) -> Option<String> {
    if let Some(errors) = json.get("errors").and_then(Value::as_array) {
        let parts: Vec<String> = errors
            .iter()
            .map(|e| match e {
                Value::String(s) => s.clone(),
                other => other
                    .get("message")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| other.to_string()),
            })
            .collect();
        return Some(parts.join("; "));
    }
    for k in ["message", "error", "errorMessage"] {
        match json.get(k) {
            Some(Value::String(s)) => return Some(s.clone()),
            Some(obj @ Value::Object(_)) => return envelope_text(obj),
            _ => {}
        }
    }
    None
}

fn redirect_message(status: StatusCode) -> String {
    format!(
        "BigPanda answered HTTP {} (a redirect); check the configured API URL",
        status.as_u16()
    )
}

fn truncate(s: &str) -> String {
    if s.chars().count() <= MAX_ERROR_CHARS {
        return s.to_string();
    }
    let mut out: String = s.chars().take(MAX_ERROR_CHARS).collect();
    out.push('…');
    out
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = inner.source();
    }
    out
}

/// `Retry-After` as delay-seconds or an HTTP date (RFC 9110 §10.2.3), capped.
fn parse_retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    let delay = if let Ok(secs) = value.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let at = parse_http_date(value)?;
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(delay.min(MAX_RETRY_AFTER))
}

/// IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`), the only form senders may generate.
fn parse_http_date(s: &str) -> Option<SystemTime> {
    let rest = s.split_once(", ")?.1;
    let parts: Vec<&str> = rest.split(' ').collect();
    let [day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let day: u64 = day.parse().ok()?;
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)? as u64
        + 1;
    let year: u64 = year.parse().ok()?;
    let hms: Vec<u64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, sec] = hms.as_slice() else {
        return None;
    };
    if year < 1970 || !(1..=31).contains(&day) || *h > 23 || *m > 59 || *sec > 60 {
        return None;
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + h * 3600 + m * 60 + sec;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}
