//! A harness that runs the real `pandabridge` binary on loopback and talks to it over HTTP.
//!
//! The daemon's stderr goes to a file beside (not inside) the data dir, so it survives a data
//! dir that is not a directory and can be printed when a test fails: a black-box failure with
//! no daemon log is hard to act on.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// How long the daemon may take to come up (a cold start on a busy 2-core machine).
pub const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Bound on any single HTTP request made by a test.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// The raw bytes of a BigPanda fixture, e.g. `fixture("01-new")`.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/fixtures/bigpanda")
        .join(format!("{name}.json"));
    fs::read(&path).unwrap_or_else(|e| panic!("cannot read fixture {}: {e}", path.display()))
}

/// A fixture parsed as JSON, for tests that edit it (e.g. a different `incident.id`).
pub fn fixture_json(name: &str) -> Value {
    serde_json::from_slice(&fixture(name)).expect("fixture is JSON")
}

/// The `Retry-After` header of a reply, in seconds, if present and numeric.
pub fn retry_after_secs(resp: &reqwest::Response) -> Option<u64> {
    resp.headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// A fixture with its `incident.id` replaced, as bytes ready to post.
pub fn with_incident_id(name: &str, incident_id: &str) -> Vec<u8> {
    let mut body = fixture_json(name);
    body["incident"]["id"] = serde_json::json!(incident_id);
    serde_json::to_vec(&body).expect("serialize")
}

/// Asserts the CONTRACT §3 error shape (`{"error": {"code", "message"}}` and nothing else, a
/// snake_case code, a message) and returns the error code.
#[track_caller]
pub fn error_code(body: &Value) -> &str {
    let err = &body["error"];
    let message = err["message"].as_str().unwrap_or("");
    assert!(!message.is_empty(), "error without a message: {body}");
    assert_eq!(
        body.as_object().map(|o| o.len()),
        Some(1),
        "error reply has extra keys: {body}"
    );
    let code = err["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no code: {body}"));
    assert!(
        !code.is_empty() && code.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
        "code is not snake_case: {code:?}"
    );
    code
}

/// The command line for `pandabridge serve` on a free loopback port, isolated from the
/// caller's `PANDABRIDGE_*` environment so a developer's settings cannot change the tests.
fn serve_command(data_dir: &Path, extra_args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_pandabridge"));
    cmd.arg("serve");
    if !extra_args.contains(&"--listen") {
        cmd.args(["--listen", "127.0.0.1:0"]);
    }
    cmd.arg("--data-dir").arg(data_dir).args(extra_args);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("PANDABRIDGE_") {
            cmd.env_remove(&k);
        }
    }
    cmd.env("RUST_LOG", "info");
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    cmd
}

/// Runs `pandabridge serve` expecting it to fail at start-up; returns its exit status and
/// stderr. Panics if it is still running after `timeout`.
pub fn run_expecting_exit(
    data_dir: &Path,
    extra_args: &[&str],
    timeout: Duration,
) -> (ExitStatus, String) {
    let log = tempfile::NamedTempFile::new().expect("log file");
    let mut child = serve_command(data_dir, extra_args)
        .stderr(log.reopen().expect("reopen log"))
        .spawn()
        .expect("spawn pandabridge");
    let status = wait_child(&mut child, timeout);
    let stderr = fs::read_to_string(log.path()).unwrap_or_default();
    match status {
        Some(s) => (s, stderr),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("pandabridge still running after {timeout:?}; stderr:\n{stderr}");
        }
    }
}

fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(s) = child.try_wait().expect("try_wait") {
            return Some(s);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A running daemon. Dropping it kills the process (and prints its log if the test failed).
pub struct Daemon {
    child: Child,
    exited: Option<ExitStatus>,
    data_dir: PathBuf,
    log: tempfile::NamedTempFile,
    addr: SocketAddr,
    admin_token: String,
    http: reqwest::Client,
}

impl Daemon {
    /// Starts `pandabridge serve --listen 127.0.0.1:0 --data-dir DATA_DIR EXTRA_ARGS...` and
    /// waits until it has written its address and answers `/healthz`.
    pub fn start(data_dir: &Path, extra_args: &[&str]) -> Daemon {
        Self::start_with_env(data_dir, extra_args, &[])
    }

    /// Like [`Daemon::start`], with extra environment variables (e.g. `PANDABRIDGE_*`).
    pub fn start_with_env(data_dir: &Path, extra_args: &[&str], env: &[(&str, &str)]) -> Daemon {
        // A previous run that was killed leaves its address behind; never read a stale one.
        let _ = fs::remove_file(data_dir.join("listen-addr"));
        let log = tempfile::NamedTempFile::new().expect("log file");
        let child = serve_command(data_dir, extra_args)
            .envs(env.iter().copied())
            .stderr(log.reopen().expect("reopen log"))
            .spawn()
            .expect("spawn pandabridge");
        let mut daemon = Daemon {
            child,
            exited: None,
            data_dir: data_dir.to_owned(),
            log,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            admin_token: String::new(),
            http: reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                // Shorter than any keep-alive timeout a test gives the daemon (1 s at least):
                // a pooled connection is never reused just as the daemon closes it.
                .pool_idle_timeout(Duration::from_millis(500))
                .build()
                .expect("http client"),
        };
        let deadline = Instant::now() + START_TIMEOUT;
        daemon.addr = loop {
            if let Some(s) = daemon.child.try_wait().expect("try_wait") {
                panic!(
                    "pandabridge exited during start-up with {s}; stderr:\n{}",
                    daemon.stderr()
                );
            }
            let written = fs::read_to_string(data_dir.join("listen-addr")).unwrap_or_default();
            if let Ok(addr) = written.trim().parse::<SocketAddr>() {
                if healthz_answers(addr) {
                    break addr;
                }
            }
            if Instant::now() >= deadline {
                panic!(
                    "pandabridge not ready within {START_TIMEOUT:?}; stderr:\n{}",
                    daemon.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(25));
        };
        daemon.admin_token = fs::read_to_string(data_dir.join("admin-token"))
            .expect("admin-token file")
            .trim()
            .to_string();
        assert!(!daemon.admin_token.is_empty(), "admin-token file is empty");
        daemon
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn admin_token(&self) -> &str {
        &self.admin_token
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything the daemon wrote to stderr so far.
    pub fn stderr(&self) -> String {
        fs::read_to_string(self.log.path()).unwrap_or_default()
    }

    /// Sends SIGTERM (a graceful shutdown).
    pub fn stop(&self) {
        self.signal("TERM");
    }

    /// Sends a signal by name (`TERM`, `INT`, ...) with kill(1): tests need no unsafe code.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Sends SIGKILL (a crash).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
    }

    /// Waits for the process to exit; panics (with the daemon's log) after `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        if let Some(s) = self.exited {
            return s;
        }
        match wait_child(&mut self.child, timeout) {
            Some(s) => {
                self.exited = Some(s);
                s
            }
            None => panic!(
                "pandabridge did not exit within {timeout:?}; stderr:\n{}",
                self.stderr()
            ),
        }
    }

    // ---- HTTP helpers -------------------------------------------------------------------

    /// A request to `path` on the daemon, not yet sent.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.url()))
    }

    /// A request carrying the admin token.
    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.request(method, path).bearer_auth(&self.admin_token)
    }

    /// Sends a request; returns the status and the body as JSON (`Null` when empty).
    pub async fn send(&self, req: reqwest::RequestBuilder) -> (u16, Value) {
        let resp = req.send().await.expect("request to pandabridge");
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.expect("response body");
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                panic!(
                    "status {status}: body is not JSON ({e}): {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        (status, body)
    }

    /// A GET that returns the raw text, for `/metrics`.
    pub async fn get_text(&self, path: &str) -> (u16, String) {
        let resp = self
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .expect("request to pandabridge");
        let status = resp.status().as_u16();
        (status, resp.text().await.expect("response text"))
    }

    /// Creates an alert source; returns `(id, token)`.
    pub async fn create_source(&self, name: &str) -> (String, String) {
        let (status, body) = self
            .send(
                self.admin(reqwest::Method::POST, "/api/v1/alert-sources")
                    .json(&serde_json::json!({ "name": name })),
            )
            .await;
        assert_eq!(status, 201, "create source: {body}");
        let id = body["id"].as_str().expect("source id").to_string();
        let token = body["token"].as_str().expect("source token").to_string();
        (id, token)
    }

    /// Posts a webhook body with `Authorization: Bearer TOKEN` and the given content type
    /// (`None` sends no Content-Type header at all).
    pub async fn post_webhook(
        &self,
        source_id: &str,
        token: &str,
        body: &[u8],
        content_type: Option<&str>,
    ) -> (u16, Value) {
        let mut req = self
            .request(
                reqwest::Method::POST,
                &format!("/webhooks/bigpanda/{source_id}"),
            )
            .bearer_auth(token)
            .body(body.to_vec());
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        self.send(req).await
    }

    /// Posts a body over a raw socket, reading the reply while the body is still being written,
    /// as curl does. A server that refuses a body early (413) closes the connection without
    /// reading the rest, and clients that give up on the first write error (reqwest does)
    /// never see its reply; this shows what the daemon actually answered. `chunked` sends no
    /// Content-Length, so the limit must be enforced while reading.
    pub fn raw_post(&self, path: &str, token: &str, body: &[u8], chunked: bool) -> (u16, Value) {
        let mut stream = TcpStream::connect(self.addr).expect("connect");
        stream.set_read_timeout(Some(REQUEST_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(REQUEST_TIMEOUT)).unwrap();
        let length = if chunked {
            "transfer-encoding: chunked".to_string()
        } else {
            format!("content-length: {}", body.len())
        };
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {token}\r\n\
             content-type: application/json\r\n{length}\r\nconnection: close\r\n\r\n",
            self.addr
        );
        let mut payload = head.into_bytes();
        if chunked {
            for part in body.chunks(64 * 1024) {
                payload.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
                payload.extend_from_slice(part);
                payload.extend_from_slice(b"\r\n");
            }
            payload.extend_from_slice(b"0\r\n\r\n");
        } else {
            payload.extend_from_slice(body);
        }
        let mut writer = stream.try_clone().expect("clone socket");
        // Write errors are expected once the server has answered and closed.
        let sender = std::thread::spawn(move || {
            let _ = writer.write_all(&payload);
        });
        let mut reply = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            match stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => reply.extend_from_slice(&buf[..n]),
            }
            if let Some(parsed) = parse_http_reply(&reply) {
                let _ = stream.shutdown(std::net::Shutdown::Both);
                let _ = sender.join();
                return parsed;
            }
        }
        let _ = sender.join();
        parse_http_reply(&reply).unwrap_or_else(|| {
            panic!(
                "no complete HTTP reply to POST {path}: {:?}",
                String::from_utf8_lossy(&reply)
            )
        })
    }

    /// Starts a chunked POST and sends only its headers and the first half of the body, so
    /// the request stays in flight (admitted, body still being read) until
    /// [`SlowPost::finish`].
    pub fn start_slow_post(&self, path: &str, token: &str, body: &[u8]) -> SlowPost {
        let mut stream = TcpStream::connect(self.addr).expect("connect");
        stream.set_read_timeout(Some(REQUEST_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(REQUEST_TIMEOUT)).unwrap();
        let (first, rest) = body.split_at(body.len() / 2);
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: {}\r\nauthorization: Bearer {token}\r\n\
             content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n",
            self.addr,
            first.len()
        );
        stream.write_all(head.as_bytes()).expect("write head");
        stream.write_all(first).expect("write first chunk");
        stream.write_all(b"\r\n").expect("write chunk end");
        stream.flush().unwrap();
        let mut tail = format!("{:x}\r\n", rest.len()).into_bytes();
        tail.extend_from_slice(rest);
        tail.extend_from_slice(b"\r\n0\r\n\r\n");
        SlowPost { stream, tail }
    }

    /// Posts a webhook that must be accepted; returns `(alert_id, outcome)`.
    pub async fn accept_webhook(
        &self,
        source_id: &str,
        token: &str,
        body: &[u8],
    ) -> (String, String) {
        let (status, reply) = self
            .post_webhook(source_id, token, body, Some("application/json"))
            .await;
        assert_eq!(status, 202, "webhook not accepted: {reply}");
        (
            reply["alert_id"].as_str().expect("alert_id").to_string(),
            reply["outcome"].as_str().expect("outcome").to_string(),
        )
    }

    /// `GET /api/v1/alerts/{id}`: `(status, alert with events)`.
    pub async fn get_alert(&self, id: &str) -> (u16, Value) {
        self.send(self.admin(reqwest::Method::GET, &format!("/api/v1/alerts/{id}")))
            .await
    }

    /// `GET /api/v1/alerts?QUERY` (QUERY without the `?`); must answer 200.
    pub async fn list_alerts(&self, query: &str) -> Value {
        let (status, body) = self
            .send(self.admin(reqwest::Method::GET, &format!("/api/v1/alerts?{query}")))
            .await;
        assert_eq!(status, 200, "list alerts ?{query}: {body}");
        body
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!(
                "---- pandabridge (pid {}) stderr ----\n{}---- end of pandabridge stderr ----",
                self.child.id(),
                self.stderr()
            );
        }
    }
}

/// A webhook request held in flight by the test; see [`Daemon::start_slow_post`].
pub struct SlowPost {
    stream: TcpStream,
    tail: Vec<u8>,
}

impl SlowPost {
    /// Whether the daemon has already answered (so refused) the request before its body was
    /// complete: bytes waiting on the connection, or the connection closed.
    pub fn answered(&self) -> bool {
        self.stream.set_nonblocking(true).expect("nonblocking");
        let mut byte = [0u8; 1];
        let answered = match self.stream.peek(&mut byte) {
            Ok(_) => true,
            Err(e) => e.kind() != std::io::ErrorKind::WouldBlock,
        };
        self.stream.set_nonblocking(false).expect("blocking");
        answered
    }

    /// Sends the rest of the body and reads the reply.
    pub fn finish(mut self) -> (u16, Value) {
        self.stream
            .write_all(&self.tail)
            .expect("write rest of body");
        let mut reply = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            if let Some(parsed) = parse_http_reply(&reply) {
                return parsed;
            }
            match self.stream.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => reply.extend_from_slice(&buf[..n]),
            }
        }
        panic!(
            "no complete HTTP reply to a slow POST: {:?}",
            String::from_utf8_lossy(&reply)
        )
    }
}

/// `(status, JSON body)` once `raw` holds a whole reply with a Content-Length.
fn parse_http_reply(raw: &[u8]) -> Option<(u16, Value)> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..end]).ok()?;
    let status: u16 = head.split(' ').nth(1)?.parse().ok()?;
    let length: usize = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse().ok())?
    })?;
    let body = raw.get(end + 4..end + 4 + length)?;
    Some((status, serde_json::from_slice(body).unwrap_or(Value::Null)))
}

/// A plain blocking `GET /healthz`, used while the async client may not be usable yet.
fn healthz_answers(addr: SocketAddr) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut reply = String::new();
    let _ = s.read_to_string(&mut reply);
    reply.starts_with("HTTP/1.1 200")
}
