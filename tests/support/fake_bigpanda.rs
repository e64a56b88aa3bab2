//! A fake BigPanda REST API on loopback, for black-box tests of everything that calls BigPanda.
//!
//! It owns a faithful-enough model of the two endpoints pandabridge uses (CONTRACT §4):
//! `GET /resources/v2.0/environments` and
//! `POST /resources/v2.0/environments/{env}/incidents/{id}/resolve`, with bearer-key checks,
//! BigPanda's reply bodies (`{"status":202,"data":{}}`, the `{"status":…,"errors":[…]}`
//! envelope), an optional 5 requests/second limit, scripted failures (any status, slow
//! replies, dropped connections) and a record of every request with its arrival time.
//!
//! It is a small hand-rolled HTTP/1.1 server rather than warp so that a reply can be delayed or
//! the connection dropped without answering, exactly like a broken network would. It runs on
//! its own thread with its own tokio runtime, so it serves the same way under `#[tokio::test]`
//! (any flavour, paused time included) and under plain `#[test]`s that drive the real binary.
//!
//! ```ignore
//! mod support;
//! use support::fake_bigpanda::{FakeBigPanda, Reply};
//! let bp = FakeBigPanda::start();
//! bp.script_resolve(Reply::Status(503));          // the next resolve fails once
//! // ... point pandabridge at bp.url() with key FakeBigPanda::VALID_KEY ...
//! let calls = bp.wait_for_delivered(1, Duration::from_secs(10));
//! assert_eq!(calls[0].json.as_ref().unwrap()["comments"], "...");
//! ```

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// How the fake answers one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// That status with BigPanda's body for it: the environment list or `{"status":2xx,"data":{}}`
    /// on success, the error envelope otherwise.
    Status(u16),
    /// A status plus a verbatim `Retry-After` header (seconds or an HTTP date).
    RetryAfter(u16, String),
    /// Anything else: a status and a raw JSON (or not) body.
    Raw { status: u16, body: String },
    /// The inner reply, after a delay (the request is recorded on arrival).
    Slow(Duration, Box<Reply>),
    /// Close the connection after reading the request, without answering.
    Drop,
}

impl Reply {
    pub fn slow(delay: Duration, then: Reply) -> Reply {
        Reply::Slow(delay, Box::new(then))
    }
}

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub method: String,
    /// The request target as sent, still percent-encoded, query included.
    pub path: String,
    /// Header names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The body parsed as JSON, when it is JSON.
    pub json: Option<Value>,
    /// When the request's head was fully read.
    pub at: Instant,
    /// The status answered; `None` when the connection was dropped (or the fake stopped first).
    pub reply: Option<u16>,
}

impl RecordedRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The bearer token, if the request carried `Authorization: Bearer …`.
    pub fn bearer(&self) -> Option<&str> {
        let value = self.header("authorization")?;
        let (scheme, token) = value.split_once(' ')?;
        scheme
            .eq_ignore_ascii_case("bearer")
            .then_some(token.trim())
    }

    /// `(environment_id, incident_id)`, percent-decoded, if this is a resolve call.
    pub fn resolve_target(&self) -> Option<(String, String)> {
        match route(&self.method, &self.path) {
            Route::Resolve { env, incident } => Some((env, incident)),
            _ => None,
        }
    }

    pub fn is_resolve(&self) -> bool {
        self.resolve_target().is_some()
    }

    pub fn delivered(&self) -> bool {
        matches!(self.reply, Some(200..=299))
    }

    /// A resolve call answered 2xx (environment listings are answered 200 too, and are not
    /// closes).
    pub fn delivered_resolve(&self) -> bool {
        self.is_resolve() && self.delivered()
    }
}

/// The canonical environment object from BigPanda's documentation
/// (`fixtures/bigpanda/reference/docs-environment-object.json`).
pub fn reference_environment() -> Value {
    json!({
        "name": "Production Crits",
        "id": "60b796b886d4050040dc9192",
        "created_at": 1622644409,
        "updated_at": 1622644409,
        "updated_by": "608ffeefcc86eff26b51412a",
        "created_by": "608ffeefcc86eff26b51412a",
        "filter": "incident_tag.priority=P1 AND source IN [nagios]"
    })
}

struct State {
    valid_keys: HashSet<String>,
    forbidden_keys: HashSet<String>,
    environments_body: Value,
    environments_script: VecDeque<Reply>,
    resolve_script: VecDeque<Reply>,
    resolve_script_for: HashMap<String, VecDeque<Reply>>,
    /// Incidents (env, id) already answered 2xx.
    resolved: HashSet<(String, String)>,
    already_resolved_status: u16,
    rate_limit: Option<(usize, Duration)>,
    requests: Vec<RecordedRequest>,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking test thread must not take every later assertion down with it.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The running fake. Dropping it stops the server.
pub struct FakeBigPanda {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeBigPanda {
    /// The key the fake accepts until told otherwise (shaped like a real 32-hex BigPanda key).
    pub const VALID_KEY: &'static str = "0f1e2d3c4b5a69788796a5b4c3d2e1f0";

    /// Starts on a free loopback port.
    pub fn start() -> Self {
        Self::start_on(0)
    }

    /// Starts on `port` (0 = any): lets a test stop BigPanda and bring it back at the same URL.
    pub fn start_on(port: u16) -> Self {
        let listener = std::net::TcpListener::bind(("127.0.0.1", port))
            .unwrap_or_else(|e| panic!("fake BigPanda cannot bind 127.0.0.1:{port}: {e}"));
        listener
            .set_nonblocking(true)
            .expect("fake BigPanda: set_nonblocking");
        let addr = listener.local_addr().expect("fake BigPanda: local_addr");
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                valid_keys: HashSet::from([Self::VALID_KEY.to_string()]),
                forbidden_keys: HashSet::new(),
                environments_body: json!([reference_environment()]),
                environments_script: VecDeque::new(),
                resolve_script: VecDeque::new(),
                resolve_script_for: HashMap::new(),
                resolved: HashSet::new(),
                already_resolved_status: 202,
                rate_limit: None,
                requests: Vec::new(),
            }),
            changed: Condvar::new(),
        });
        let (tx, rx) = tokio::sync::oneshot::channel();
        let server_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("fake-bigpanda".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .enable_all()
                    .build()
                    .expect("fake BigPanda: runtime");
                rt.block_on(async move {
                    let listener =
                        TcpListener::from_std(listener).expect("fake BigPanda: listener");
                    tokio::select! {
                        _ = accept_loop(listener, server_shared) => {}
                        _ = rx => {}
                    }
                });
                // Cancels connection tasks still sleeping on a `Slow` reply.
                rt.shutdown_timeout(Duration::from_secs(1));
            })
            .expect("fake BigPanda: spawn thread");
        Self {
            addr,
            shared,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// `http://127.0.0.1:PORT`, to use as the BigPanda API URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Replaces the set of keys that authenticate (all others get 401).
    pub fn set_valid_keys<S: Into<String>>(&self, keys: impl IntoIterator<Item = S>) {
        self.shared.lock().valid_keys = keys.into_iter().map(Into::into).collect();
    }

    /// Keys that authenticate but lack permission: 403 on every endpoint.
    pub fn set_forbidden_keys<S: Into<String>>(&self, keys: impl IntoIterator<Item = S>) {
        let keys: HashSet<String> = keys.into_iter().map(Into::into).collect();
        let mut state = self.shared.lock();
        state.valid_keys.extend(keys.iter().cloned());
        state.forbidden_keys = keys;
    }

    /// The environment objects listed (as a bare JSON array).
    pub fn set_environments(&self, environments: Vec<Value>) {
        self.shared.lock().environments_body = Value::Array(environments);
    }

    /// The whole 200 body of the environment list, for testing other response shapes.
    pub fn set_environments_body(&self, body: Value) {
        self.shared.lock().environments_body = body;
    }

    /// Queues a reply for the next authenticated environments request.
    pub fn script_environments(&self, reply: Reply) {
        self.shared.lock().environments_script.push_back(reply);
    }

    /// Queues a reply for the next authenticated resolve of any incident without its own script.
    pub fn script_resolve(&self, reply: Reply) {
        self.shared.lock().resolve_script.push_back(reply);
    }

    /// Queues a reply for the next authenticated resolve of `incident_id` (any environment).
    pub fn script_resolve_for(&self, incident_id: &str, reply: Reply) {
        self.shared
            .lock()
            .resolve_script_for
            .entry(incident_id.to_string())
            .or_default()
            .push_back(reply);
    }

    /// What an unscripted resolve of an incident already answered 2xx gets. BigPanda v2
    /// answers 202 again (the default); 409 exercises the "already resolved" path.
    pub fn set_already_resolved_status(&self, status: u16) {
        self.shared.lock().already_resolved_status = status;
    }

    /// Enforces `limit` requests per `window` across all endpoints, like BigPanda's
    /// 5/second: excess requests get 429 with `Retry-After: 1`. Off by default.
    pub fn enforce_rate_limit(&self, limit: usize, window: Duration) {
        self.shared.lock().rate_limit = Some((limit, window));
    }

    /// Every request received, in arrival order.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.shared.lock().requests.clone()
    }

    /// Every resolve request, whatever it was answered.
    pub fn resolve_calls(&self) -> Vec<RecordedRequest> {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|r| r.is_resolve())
            .cloned()
            .collect()
    }

    /// Resolve requests that were answered 2xx.
    pub fn delivered_resolves(&self) -> Vec<RecordedRequest> {
        self.resolve_calls()
            .into_iter()
            .filter(RecordedRequest::delivered)
            .collect()
    }

    pub fn environment_calls(&self) -> Vec<RecordedRequest> {
        self.shared
            .lock()
            .requests
            .iter()
            .filter(|r| matches!(route(&r.method, &r.path), Route::Environments))
            .cloned()
            .collect()
    }

    /// The largest number of requests that arrived within any interval of `window`.
    pub fn max_requests_in_any_window(&self, window: Duration) -> usize {
        let mut arrivals: Vec<Instant> = self.shared.lock().requests.iter().map(|r| r.at).collect();
        // Recorded in the order they took the lock, which concurrent requests may not share
        // with the order of their arrival stamps.
        arrivals.sort_unstable();
        let mut best = 0;
        let mut lo = 0;
        for hi in 0..arrivals.len() {
            while arrivals[hi] - arrivals[lo] > window {
                lo += 1;
            }
            best = best.max(hi - lo + 1);
        }
        best
    }

    /// Waits until `n` resolve requests have arrived (answered or not); panics after `timeout`.
    pub fn wait_for_resolves(&self, n: usize, timeout: Duration) -> Vec<RecordedRequest> {
        self.try_wait_for_resolves(n, timeout)
            .unwrap_or_else(|seen| {
                panic!(
                    "fake BigPanda: waited {timeout:?} for {n} resolve calls, got {}: {seen:#?}",
                    seen.len()
                )
            })
    }

    /// Waits until `n` resolve requests were answered 2xx; panics after `timeout`.
    pub fn wait_for_delivered(&self, n: usize, timeout: Duration) -> Vec<RecordedRequest> {
        wait_until(&self.shared, timeout, n, RecordedRequest::delivered_resolve).unwrap_or_else(
            |seen| {
                panic!(
                "fake BigPanda: waited {timeout:?} for {n} delivered resolves, got {}: {seen:#?}",
                seen.len()
            )
            },
        )
    }

    /// Like [`FakeBigPanda::wait_for_resolves`] but returns what was seen instead of panicking,
    /// for tests that expect nothing to arrive.
    pub fn try_wait_for_resolves(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Result<Vec<RecordedRequest>, Vec<RecordedRequest>> {
        wait_until(&self.shared, timeout, n, RecordedRequest::is_resolve)
    }

    /// [`FakeBigPanda::wait_for_resolves`] for async tests: waits on a blocking thread so the
    /// test's runtime keeps driving the code under test.
    pub async fn wait_for_resolves_async(
        &self,
        n: usize,
        timeout: Duration,
    ) -> Vec<RecordedRequest> {
        let shared = self.shared.clone();
        let result = tokio::task::spawn_blocking(move || {
            wait_until(&shared, timeout, n, RecordedRequest::is_resolve)
        })
        .await
        .expect("fake BigPanda: wait task");
        result.unwrap_or_else(|seen| {
            panic!(
                "fake BigPanda: waited {timeout:?} for {n} resolve calls, got {}: {seen:#?}",
                seen.len()
            )
        })
    }
}

impl Drop for FakeBigPanda {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn wait_until(
    shared: &Shared,
    timeout: Duration,
    n: usize,
    keep: fn(&RecordedRequest) -> bool,
) -> Result<Vec<RecordedRequest>, Vec<RecordedRequest>> {
    let deadline = Instant::now() + timeout;
    let mut state = shared.lock();
    loop {
        let matching: Vec<RecordedRequest> =
            state.requests.iter().filter(|r| keep(r)).cloned().collect();
        if matching.len() >= n {
            return Ok(matching);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(matching);
        }
        state = shared
            .changed
            .wait_timeout(state, deadline - now)
            .map(|(guard, _)| guard)
            .unwrap_or_else(|p| p.into_inner().0);
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(serve_connection(stream, shared.clone()));
            }
            // Out of file descriptors and the like: back off instead of spinning.
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
}

struct Head {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
}

const MAX_HEAD: usize = 64 * 1024;

/// Serves requests on one keep-alive connection until the client closes it or a reply drops it.
async fn serve_connection(mut stream: TcpStream, shared: Arc<Shared>) {
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let head_end = loop {
            if let Some(pos) = find(&buf, b"\r\n\r\n") {
                break pos;
            }
            if buf.len() > MAX_HEAD {
                return;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let at = Instant::now();
        let Some(head) = parse_head(&buf[..head_end]) else {
            let _ = write_reply(&mut stream, 400, &[], &envelope(400, "Malformed request")).await;
            return;
        };
        buf.drain(..head_end + 4);
        let header = |name: &str| {
            head.headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        if header("transfer-encoding").is_some() {
            // Neither pandabridge nor reqwest sends chunked bodies to this API; say so loudly.
            let _ = write_reply(&mut stream, 411, &[], &envelope(411, "Length Required")).await;
            return;
        }
        let length: usize = match header("content-length").map(|v| v.trim().parse()) {
            None => 0,
            Some(Ok(n)) => n,
            Some(Err(_)) => {
                let _ =
                    write_reply(&mut stream, 400, &[], &envelope(400, "Bad Content-Length")).await;
                return;
            }
        };
        while buf.len() < length {
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body: Vec<u8> = buf.drain(..length).collect();
        let close_after = header("connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));

        let (delay, answer) = decide(&shared, head, body, at);
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let Some((status, headers, body)) = answer else {
            // Reply::Drop: the socket closes when `stream` goes out of scope.
            return;
        };
        if write_reply(&mut stream, status, &headers, &body)
            .await
            .is_err()
            || close_after
        {
            return;
        }
    }
}

type Answer = Option<(u16, Vec<(String, String)>, String)>;

/// Records the request and decides the reply (under one lock, so arrival order, rate-limit
/// accounting and script consumption agree).
fn decide(shared: &Shared, head: Head, body: Vec<u8>, at: Instant) -> (Duration, Answer) {
    let mut state = shared.lock();
    let json = serde_json::from_slice::<Value>(&body).ok();
    let mut recorded = RecordedRequest {
        method: head.method,
        path: head.path,
        headers: head.headers,
        body,
        json,
        at,
        reply: None,
    };
    let route = route(&recorded.method, &recorded.path);
    let (delay, answer) = answer_for(&mut state, &recorded, &route);
    recorded.reply = answer.as_ref().map(|(status, _, _)| *status);
    if let (Some(200..=299), Route::Resolve { env, incident }) = (recorded.reply, &route) {
        state.resolved.insert((env.clone(), incident.clone()));
    }
    state.requests.push(recorded);
    drop(state);
    shared.changed.notify_all();
    (delay, answer)
}

fn answer_for(state: &mut State, req: &RecordedRequest, route: &Route) -> (Duration, Answer) {
    if let Some((limit, window)) = state.rate_limit {
        let recent = state
            .requests
            .iter()
            .filter(|r| req.at.duration_since(r.at) <= window)
            .count();
        if recent + 1 > limit {
            return (
                Duration::ZERO,
                Some(render(route, &Reply::RetryAfter(429, "1".into()))),
            );
        }
    }
    let reply = match route {
        Route::NotFound => Reply::Raw {
            status: 404,
            body: envelope(404, &format!("Route {} is not found", req.path)),
        },
        Route::Environments | Route::Resolve { .. } => {
            let key = req.bearer().unwrap_or_default();
            if !state.valid_keys.contains(key) {
                Reply::Status(401)
            } else if state.forbidden_keys.contains(key) {
                Reply::Status(403)
            } else if let Route::Resolve { env, incident } = route {
                resolve_reply(state, req, env, incident)
            } else {
                state
                    .environments_script
                    .pop_front()
                    .unwrap_or(Reply::Status(200))
            }
        }
    };
    let (delay, reply) = unwrap_slow(reply);
    let answer = match reply {
        Reply::Drop => None,
        Reply::Status(200) if matches!(route, Route::Environments) => {
            Some((200, Vec::new(), state.environments_body.to_string()))
        }
        other => Some(render(route, &other)),
    };
    (delay, answer)
}

fn resolve_reply(state: &mut State, req: &RecordedRequest, env: &str, incident: &str) -> Reply {
    let is_json = req.header("content-type").is_some_and(|v| {
        v.trim()
            .to_ascii_lowercase()
            .starts_with("application/json")
    });
    if !is_json {
        return Reply::Raw {
            status: 415,
            body: envelope(415, "Content-Type must be application/json"),
        };
    }
    if !req
        .json
        .as_ref()
        .is_some_and(|j| j.get("comments").is_none_or(Value::is_string))
    {
        return Reply::Raw {
            status: 400,
            body: envelope(
                400,
                "Request body must be a JSON object with string \"comments\"",
            ),
        };
    }
    if let Some(reply) = state
        .resolve_script_for
        .get_mut(incident)
        .and_then(VecDeque::pop_front)
    {
        return reply;
    }
    if let Some(reply) = state.resolve_script.pop_front() {
        return reply;
    }
    if state
        .resolved
        .contains(&(env.to_string(), incident.to_string()))
    {
        return Reply::Status(state.already_resolved_status);
    }
    Reply::Status(202)
}

fn unwrap_slow(reply: Reply) -> (Duration, Reply) {
    match reply {
        Reply::Slow(delay, inner) => {
            let (more, inner) = unwrap_slow(*inner);
            (delay + more, inner)
        }
        other => (Duration::ZERO, other),
    }
}

fn render(route: &Route, reply: &Reply) -> (u16, Vec<(String, String)>, String) {
    match reply {
        Reply::Status(status) | Reply::RetryAfter(status, _) => {
            let headers = match reply {
                Reply::RetryAfter(_, value) => vec![("Retry-After".to_string(), value.clone())],
                _ => Vec::new(),
            };
            let body = if (200..300).contains(status) {
                json!({"status": status, "data": {}}).to_string()
            } else {
                envelope(*status, &default_message(*status, route))
            };
            (*status, headers, body)
        }
        Reply::Raw { status, body } => (*status, Vec::new(), body.clone()),
        Reply::Slow(..) | Reply::Drop => unreachable!("unwrapped before rendering"),
    }
}

fn default_message(status: u16, route: &Route) -> String {
    match (status, route) {
        (401, _) => "Unauthorized: invalid or missing bearer token".into(),
        (403, _) => "Forbidden: the token lacks the required permission".into(),
        (404, Route::Resolve { incident, .. }) => format!("Incident {incident} not found"),
        (409, _) => "Incident is already resolved".into(),
        (429, _) => "Too many requests: the limit is 5 per second".into(),
        (500..=599, _) => "Internal server error".into(),
        _ => reason(status).into(),
    }
}

fn envelope(status: u16, message: &str) -> String {
    json!({"status": status, "errors": [message]}).to_string()
}

async fn write_reply(
    stream: &mut TcpStream,
    status: u16,
    headers: &[(String, String)],
    body: &str,
) -> std::io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {status} {}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\n",
        reason(status),
        body.len()
    );
    for (name, value) in headers {
        out.push_str(&format!("{name}: {value}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(body);
    stream.write_all(out.as_bytes()).await?;
    stream.flush().await
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Entity",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}

fn parse_head(raw: &[u8]) -> Option<Head> {
    let text = std::str::from_utf8(raw).ok()?;
    let mut lines = text.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let path = first.next()?.to_string();
    if !first.next()?.starts_with("HTTP/1.") {
        return None;
    }
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    Some(Head {
        method,
        path,
        headers,
    })
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

enum Route {
    Environments,
    Resolve { env: String, incident: String },
    NotFound,
}

fn route(method: &str, target: &str) -> Route {
    let path = target.split(['?', '#']).next().unwrap_or_default();
    let segments: Vec<&str> = path.split('/').collect();
    match (method, segments.as_slice()) {
        ("GET", ["", "resources", "v2.0", "environments"]) => Route::Environments,
        ("POST", ["", "resources", "v2.0", "environments", env, "incidents", id, "resolve"]) => {
            match (percent_decode(env), percent_decode(id)) {
                (Some(env), Some(incident)) if !env.is_empty() && !incident.is_empty() => {
                    Route::Resolve { env, incident }
                }
                _ => Route::NotFound,
            }
        }
        _ => Route::NotFound,
    }
}

pub fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}
