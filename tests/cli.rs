//! Black-box tests of the admin CLI (CONTRACT §5): the real binary against a real daemon on
//! loopback, and against a fake admin API for the integration commands (whose real endpoint
//! needs a BigPanda to validate keys against).

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_pandabridge");
const NEW_INCIDENT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/fixtures/bigpanda/01-new.json"
);
const STARTUP_TIMEOUT: Duration = Duration::from_secs(15);

/// Kills the daemon however the test ends: SIGTERM first (so it flushes and removes its
/// files), SIGKILL if it has not exited within a few seconds.
struct Daemon {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Daemon {
    fn start(data_dir: &Path) -> Daemon {
        let log = data_dir.with_extension("log");
        let stderr = std::fs::File::create(&log).expect("create daemon log");
        let child = clean_env(Command::new(BIN))
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn daemon");
        let mut daemon = Daemon {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            log,
        };
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        let addr_file = data_dir.join("listen-addr");
        daemon.addr = loop {
            if let Some(addr) = std::fs::read_to_string(&addr_file)
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                break addr;
            }
            daemon.check_alive(deadline, "write listen-addr");
            std::thread::sleep(Duration::from_millis(20));
        };
        while !daemon.healthy() {
            daemon.check_alive(deadline, "answer /healthz");
            std::thread::sleep(Duration::from_millis(20));
        }
        daemon
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn healthy(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::net::TcpStream::connect_timeout(&self.addr, Duration::from_secs(1))
        else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        let req = format!(
            "GET /healthz HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        );
        let mut reply = String::new();
        s.write_all(req.as_bytes()).is_ok()
            && s.read_to_string(&mut reply).is_ok()
            && reply.starts_with("HTTP/1.1 200")
    }

    fn check_alive(&mut self, deadline: Instant, what: &str) {
        let log = || std::fs::read_to_string(&self.log).unwrap_or_default();
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "daemon exited ({status}) before it could {what}:\n{}",
                log()
            );
        }
        assert!(
            Instant::now() < deadline,
            "daemon did not {what} within {STARTUP_TIMEOUT:?}:\n{}",
            log()
        );
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The test's own environment must not choose the token or data dir.
fn clean_env(mut cmd: Command) -> Command {
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PANDABRIDGE_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("USER", "tester");
    cmd
}

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl Run {
    fn ok(self) -> String {
        assert_eq!(self.code, Some(0), "stderr: {}", self.stderr);
        self.stdout
    }
}

fn cli(cwd: &Path, args: &[&str]) -> Run {
    let Output {
        status,
        stdout,
        stderr,
    } = clean_env(Command::new(BIN))
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .expect("run cli");
    Run {
        code: status.code(),
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// The value after `label:` in the CLI's `key: value` output.
fn field(out: &str, label: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{label}:")))
        .unwrap_or_else(|| panic!("no {label:?} in:\n{out}"))
        .trim()
        .to_owned()
}

#[test]
fn cli_drives_a_running_daemon() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data_dir = tmp.path().join("pandabridge-data");
    let daemon = Daemon::start(&data_dir);
    let url = daemon.url();
    let token = std::fs::read_to_string(data_dir.join("admin-token")).expect("admin token");
    let token = token.trim();
    // From `tmp` the CLI finds ./pandabridge-data/admin-token itself; elsewhere it needs the
    // flag.
    let here = tmp.path();
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let elsewhere = elsewhere.path();

    // source create / list
    let out = cli(here, &["source", "create", "prod", "--url", &url]).ok();
    let source_id = field(&out, "id");
    let source_token = field(&out, "token");
    let callback = field(&out, "callback url");
    assert_eq!(callback, format!("{url}/webhooks/bigpanda/{source_id}"));
    assert!(out.contains("shown only once"), "{out}");

    let out = cli(
        elsewhere,
        &["source", "list", "--url", &url, "--admin-token", token],
    )
    .ok();
    let mut lines = out.lines();
    assert!(lines.next().is_some_and(|h| h.starts_with("ID ")), "{out}");
    let row = lines.next().unwrap_or_default();
    assert!(row.starts_with(&source_id) && row.contains("prod"), "{out}");
    assert!(!out.contains(&source_token), "list must not show tokens");

    let out = cli(here, &["source", "list", "--json", "--url", &url]).ok();
    let listed: Value = serde_json::from_str(&out).expect("source list --json is JSON");
    assert_eq!(listed["alert_sources"][0]["id"], json!(source_id));

    // A webhook makes an alert.
    let body = std::fs::read(NEW_INCIDENT).expect("fixture");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let reply: Value = rt.block_on(async {
        let resp = reqwest::Client::new()
            .post(&callback)
            .bearer_auth(&source_token)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("post webhook");
        assert_eq!(resp.status().as_u16(), 202);
        resp.json().await.expect("webhook reply")
    });
    let alert_id = reply["alert_id"].as_str().expect("alert_id").to_owned();

    // alerts list / show / resolve
    let out = cli(here, &["alerts", "list", "--url", &url]).ok();
    let header = out.lines().next().unwrap_or_default();
    for col in ["ID", "STATUS", "SEVERITY", "TITLE", "UPDATED", "CLOSE"] {
        assert!(header.contains(col), "{out}");
    }
    let row = out
        .lines()
        .find(|l| l.starts_with(&alert_id))
        .unwrap_or_else(|| panic!("alert {alert_id} not listed:\n{out}"));
    assert!(row.contains("firing"), "{out}");

    let out = cli(
        here,
        &["alerts", "list", "--status", "resolved", "--url", &url],
    )
    .ok();
    assert_eq!(out, "No alerts.\n");

    let out = cli(here, &["alerts", "show", &alert_id, "--url", &url]).ok();
    assert_eq!(field(&out, "id"), alert_id);
    assert_eq!(field(&out, "incident"), "6553e19ec2f4b10019a7d0ff");
    assert!(
        out.lines()
            .any(|l| l.contains("webhook") && l.contains("created")),
        "history should show the webhook:\n{out}"
    );

    let out = cli(
        here,
        &[
            "alerts",
            "resolve",
            &alert_id,
            "--comment",
            "fixed by test",
            "--url",
            &url,
        ],
    )
    .ok();
    assert!(
        out.contains("is resolved") && out.contains("user:tester"),
        "{out}"
    );

    let out = cli(
        here,
        &[
            "alerts", "list", "--status", "resolved", "--json", "--url", &url,
        ],
    )
    .ok();
    let listed: Value = serde_json::from_str(&out).expect("alerts list --json is JSON");
    assert_eq!(listed["alerts"][0]["id"], json!(alert_id));
    assert_eq!(listed["alerts"][0]["resolved_by"], json!("user:tester"));
    assert_eq!(listed["next_cursor"], Value::Null);

    // The daemon's errors come through as code and message.
    let run = cli(
        elsewhere,
        &["source", "list", "--url", &url, "--admin-token", "wrong"],
    );
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.starts_with("pandabridge: unauthorized: "),
        "{}",
        run.stderr
    );
    let run = cli(here, &["alerts", "show", "no-such-alert", "--url", &url]);
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.starts_with("pandabridge: not_found: "),
        "{}",
        run.stderr
    );
    let run = cli(
        here,
        &["alerts", "list", "--status", "bogus", "--url", &url],
    );
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("invalid_query"), "{}", run.stderr);

    // No token anywhere, and usage errors.
    let run = cli(elsewhere, &["source", "list", "--url", &url]);
    assert_eq!(run.code, Some(2));
    assert!(run.stderr.contains("--admin-token"), "{}", run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert_eq!(cli(here, &["alerts", "show"]).code, Some(2));

    drop(daemon);

    // Nothing listening: a hint, not a stack of reqwest errors.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr")
    };
    let closed_url = format!("http://{closed}");
    let run = cli(
        elsewhere,
        &["alerts", "list", "--url", &closed_url, "--admin-token", "t"],
    );
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.starts_with(&format!(
            "pandabridge: cannot reach pandabridge at {closed_url}: "
        )),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("is the daemon running?"),
        "{}",
        run.stderr
    );
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
}

/// What the fake admin API saw: method, authorization header, body.
type Seen = Arc<Mutex<Vec<(String, Option<String>, String)>>>;

#[test]
fn integration_commands_send_the_key_once_and_never_print_it() {
    use warp::Filter;

    const KEY: &str = "bp-secret-key-1234567890";
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let seen: Seen = Arc::default();
    let log = Arc::clone(&seen);
    let routes = warp::path!("api" / "v1" / "integrations" / "bigpanda")
        .and(warp::method())
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::body::bytes())
        .map(
            move |method: warp::http::Method, auth: Option<String>, body: bytes::Bytes| {
                let body = String::from_utf8_lossy(&body).into_owned();
                let bad_key = body.contains("\"rejected\"");
                if let Ok(mut log) = log.lock() {
                    log.push((method.to_string(), auth, body));
                }
                let (status, reply) = match method.as_str() {
                    "PUT" if bad_key => (
                        422,
                        json!({"error": {"code": "bigpanda_key_invalid",
                                         "message": "BigPanda rejected the API key (401)"}}),
                    ),
                    "PUT" => (
                        200,
                        json!({"connected": true, "key_hint": "…7890",
                               "environments": [{"id": "env-1", "name": "Production"}]}),
                    ),
                    _ => (
                        200,
                        json!({"connected": true, "api_url": "https://api.bigpanda.io",
                               "key_hint": "…7890", "validated_at": "2024-11-26T05:47:10.000Z",
                               "healthy": false, "last_error": "BigPanda answered 401"}),
                    ),
                };
                warp::reply::with_status(
                    warp::reply::json(&reply),
                    warp::http::StatusCode::from_u16(status).expect("status"),
                )
            },
        );
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind fake");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    rt.spawn(warp::serve(routes).incoming(listener).run());
    let tmp = tempfile::tempdir().expect("tempdir");
    let auth = ["--url", &url, "--admin-token", "adm"];

    let mut args = vec!["integration", "connect", "--api-key", KEY];
    args.extend(auth);
    let run = cli(tmp.path(), &args);
    assert!(!run.stdout.contains(KEY) && !run.stderr.contains(KEY));
    let out = run.ok();
    assert!(out.contains("with key …7890"), "{out}");
    assert!(out.contains("env-1") && out.contains("Production"), "{out}");

    let mut args = vec!["integration", "connect", "--api-key", "rejected"];
    args.extend(auth);
    let run = cli(tmp.path(), &args);
    assert_eq!(run.code, Some(1));
    assert_eq!(
        run.stderr,
        "pandabridge: bigpanda_key_invalid: BigPanda rejected the API key (401)\n"
    );

    let mut args = vec!["integration", "status"];
    args.extend(auth);
    let out = cli(tmp.path(), &args).ok();
    assert_eq!(field(&out, "healthy"), "no");
    assert_eq!(field(&out, "last error"), "BigPanda answered 401");

    args.push("--json");
    let out = cli(tmp.path(), &args).ok();
    let status: Value = serde_json::from_str(&out).expect("status --json is JSON");
    assert_eq!(status["key_hint"], json!("…7890"));

    let seen = seen.lock().expect("lock").clone();
    assert_eq!(seen.len(), 4);
    let (method, auth, body) = &seen[0];
    assert_eq!(method, "PUT");
    assert_eq!(auth.as_deref(), Some("Bearer adm"));
    assert_eq!(
        serde_json::from_str::<Value>(body).expect("json body"),
        json!({"api_key": KEY})
    );
    assert!(seen[2..].iter().all(|(m, _, _)| m == "GET"));
}

#[test]
fn alerts_list_follows_cursors_up_to_a_cap() {
    use warp::Filter;

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let queries: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = Arc::clone(&queries);
    // With status=firing: a page, an empty page that leads on (the daemon's walk for it ran
    // out), a last page. With status=resolved: a cursor that never moves. With status=walk:
    // empty pages that lead on forever. Without: pages forever.
    let routes = warp::path!("api" / "v1" / "alerts")
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .map(move |query: String| {
            if let Ok(mut log) = log.lock() {
                log.push(query.clone());
            }
            let page: u32 = query
                .split('&')
                .find_map(|p| p.strip_prefix("cursor=p"))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let finite = query.contains("status=firing");
            let stuck = query.contains("status=resolved");
            let walk = query.contains("status=walk");
            let size = match (finite, stuck) {
                _ if walk => 0,
                (true, _) if page == 1 => 0,
                (true, _) | (_, true) => 2,
                _ => 200,
            };
            let alerts: Vec<Value> = (0..size)
                .map(|i| {
                    json!({"id": format!("a{page}-{i}"), "status": "firing", "severity": "warning",
                           "title": "t", "updated_at": "u",
                           "close_sync": {"state": "none", "attempts": 0}})
                })
                .collect();
            let next = if stuck {
                Some("same".to_owned())
            } else {
                (!finite || page < 2).then(|| format!("p{}", page + 1))
            };
            warp::reply::json(&json!({"alerts": alerts, "next_cursor": next}))
        });
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind fake");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    rt.spawn(warp::serve(routes).incoming(listener).run());
    let tmp = tempfile::tempdir().expect("tempdir");
    let auth = ["--url", url.as_str(), "--admin-token", "adm"];

    let mut args = vec!["alerts", "list", "--status", "firing", "--json"];
    args.extend(auth);
    let out = cli(tmp.path(), &args).ok();
    let listed: Value = serde_json::from_str(&out).expect("json");
    let ids: Vec<&str> = listed["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .filter_map(|a| a["id"].as_str())
        .collect();
    assert_eq!(ids, ["a0-0", "a0-1", "a2-0", "a2-1"]);
    assert_eq!(listed["next_cursor"], Value::Null);
    let seen = queries.lock().expect("lock").clone();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(seen[0].contains("limit=") && !seen[0].contains("cursor="));
    assert!(seen[1].contains("cursor=p1"), "{seen:?}");
    assert!(seen[2].contains("cursor=p2"), "{seen:?}");

    let mut args = vec!["alerts", "list"];
    args.extend(auth);
    let out = cli(tmp.path(), &args).ok();
    let rows = out.lines().filter(|l| l.starts_with('a')).count();
    assert_eq!(rows, 1000, "the CLI stops at its cap");
    assert!(
        out.contains("more exist") && out.contains("cursor=p5"),
        "{out}"
    );
    assert_eq!(queries.lock().expect("lock").len(), 3 + 5);

    let mut args = vec!["alerts", "list", "--status", "resolved"];
    args.extend(auth);
    let out = cli(tmp.path(), &args).ok();
    assert!(out.contains("cursor=same"), "{out}");
    assert_eq!(
        queries.lock().expect("lock").len(),
        3 + 5 + 2,
        "a cursor that does not move is followed once, not forever"
    );

    let mut args = vec!["alerts", "list", "--status", "walk"];
    args.extend(auth);
    let out = cli(tmp.path(), &args).ok();
    assert!(out.contains("cursor=p50"), "{out}");
    assert_eq!(
        queries.lock().expect("lock").len(),
        3 + 5 + 2 + 50,
        "empty pages that lead on are followed up to a cap"
    );
}
