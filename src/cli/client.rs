//! The admin API client: one authenticated JSON request at a time against `--url`, with every
//! way it can fail turned into a [`Failure`] the CLI prints as one line.

use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use serde_json::Value;

use super::Failure;

/// Connecting to a local daemon is instant; longer means the address is wrong or filtered.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Covers `integration connect`, which waits for the daemon to validate the key with BigPanda.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);
/// How much of an unexpected (non-JSON-error) body to show.
const BODY_SNIPPET: usize = 200;

pub struct AdminClient {
    http: reqwest::Client,
    base: Url,
    /// `--url` as the operator typed it, for messages.
    shown_url: String,
    token: String,
}

impl AdminClient {
    pub fn new(url: &str, token: String) -> Result<Self, Failure> {
        let base = parse_base_url(url)?;
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("pandabridge-cli/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Failure::Other(format!("cannot build the HTTP client: {e}")))?;
        Ok(AdminClient {
            http,
            base,
            shown_url: url.to_owned(),
            token,
        })
    }

    /// Sends one request to `/api/v1/<segments...>?<query>` and returns the parsed 2xx body.
    /// Segments are percent-encoded, so an id can never change which endpoint is called.
    pub async fn call(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<&Value>,
    ) -> Result<Value, Failure> {
        let url = endpoint(&self.base, segments, query);
        let mut req = self
            .http
            .request(method, url)
            .bearer_auth(&self.token)
            .header(reqwest::header::ACCEPT, "application/json");
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().await.map_err(|e| self.transport(e))?;
        let status = resp.status();
        let bytes = resp.bytes().await.map_err(|e| self.transport(e))?;
        if !status.is_success() {
            return Err(api_error(status, &bytes));
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            Failure::Other(format!(
                "{} answered {status} with a body that is not JSON ({e}); is --url pointing at pandabridge?",
                self.shown_url
            ))
        })
    }

    fn transport(&self, e: reqwest::Error) -> Failure {
        if e.is_timeout() {
            return Failure::Other(format!(
                "pandabridge at {} did not answer within {}s",
                self.shown_url,
                REQUEST_TIMEOUT.as_secs()
            ));
        }
        if e.is_connect() {
            return Failure::Unreachable {
                url: self.shown_url.clone(),
                detail: root_cause(&e),
            };
        }
        if e.is_builder() {
            // The only header we set from input is the token.
            return Failure::Usage(
                "the admin token contains characters not allowed in an HTTP header".to_owned(),
            );
        }
        Failure::Other(format!(
            "request to {} failed: {}",
            self.shown_url,
            root_cause(&e)
        ))
    }
}

/// Checks `--url` once, up front, so a typo is a usage error rather than a connection error.
pub fn parse_base_url(url: &str) -> Result<Url, Failure> {
    let parsed = Url::parse(url.trim())
        .map_err(|e| Failure::Usage(format!("invalid --url {url:?}: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.cannot_be_a_base() {
        return Err(Failure::Usage(format!(
            "invalid --url {url:?}: expected http://HOST:PORT or https://HOST:PORT"
        )));
    }
    Ok(parsed)
}

/// `base` + `/api/v1/` + encoded segments + query. A path in `base` (a daemon behind a
/// reverse proxy at `/pandabridge/`) is kept.
pub fn endpoint(base: &Url, segments: &[&str], query: &[(&str, &str)]) -> Url {
    let mut url = base.clone();
    url.set_query(None);
    url.set_fragment(None);
    if let Ok(mut path) = url.path_segments_mut() {
        path.pop_if_empty().extend(["api", "v1"]).extend(segments);
    }
    if !query.is_empty() {
        url.query_pairs_mut().extend_pairs(query);
    }
    url
}

/// The daemon's `{"error": {"code", "message"}}`, or the HTTP status (and a bit of the body)
/// when something else answered, such as a proxy.
pub fn api_error(status: StatusCode, body: &[u8]) -> Failure {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let error = parsed.as_ref().and_then(|v| v.get("error"));
    let code = error.and_then(|e| e.get("code")).and_then(Value::as_str);
    let message = error.and_then(|e| e.get("message")).and_then(Value::as_str);
    if let (Some(code), Some(message)) = (code, message) {
        return Failure::Api {
            code: super::render::clean(code),
            message: super::render::clean(message),
        };
    }
    let snippet = super::render::clean(String::from_utf8_lossy(body).trim());
    let mut message = status
        .canonical_reason()
        .unwrap_or("unexpected status")
        .to_owned();
    if !snippet.is_empty() {
        message.push_str(": ");
        message.push_str(&super::render::truncate(&snippet, BODY_SNIPPET));
    }
    Failure::Api {
        code: format!("HTTP {}", status.as_u16()),
        message,
    }
}

/// reqwest's top-level message is "error sending request for url (...)"; the useful part
/// ("Connection refused (os error 111)") is at the bottom of the source chain.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}
