//! The pandabridge under load: either a daemon this tool starts (a fresh data dir, an alert
//! source made through the admin API, its memory and CPU read from `/proc`) or one already
//! running at `--url`.
//!
//! Owns the daemon's process and data dir for the whole run: started once, so rounds see the
//! store and actors grow as a long-running daemon would, and stopped (SIGTERM, then kill) and
//! cleaned up when dropped.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};

use crate::sys;

/// A cold start of a debug build on a busy 2-core machine can take a while.
const START_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Where to send webhooks, and as whom.
pub struct Endpoint {
    pub addr: SocketAddr,
    pub host: String,
    pub path: String,
    pub authorization: String,
}

/// How to reach the daemon under test.
pub enum Spec {
    /// Start `bin serve` on a free port in a fresh data dir.
    Spawn {
        bin: PathBuf,
        extra_args: Vec<String>,
        keep_data_dir: bool,
    },
    /// A daemon already running.
    Running {
        url: String,
        admin_token: Option<String>,
        source_id: Option<String>,
        source_token: Option<String>,
        pid: Option<u32>,
    },
}

pub struct Daemon {
    pub endpoint: Endpoint,
    /// The process to read memory and CPU from, when known.
    pub pid: Option<u32>,
    child: Option<Child>,
    data_dir: Option<PathBuf>,
    keep_data_dir: bool,
}

impl Daemon {
    pub async fn start(spec: Spec) -> anyhow::Result<Daemon> {
        match spec {
            Spec::Spawn {
                bin,
                extra_args,
                keep_data_dir,
            } => spawn(&bin, &extra_args, keep_data_dir).await,
            Spec::Running {
                url,
                admin_token,
                source_id,
                source_token,
                pid,
            } => {
                let base = url.trim_end_matches('/').to_owned();
                let addr = resolve(&base)?;
                let (id, token) = match (source_id, source_token, admin_token) {
                    (Some(id), Some(token), _) => (id, token),
                    // A daemon the user says is running gets no grace period to start.
                    (_, _, Some(admin)) => create_source(&base, &admin, Duration::ZERO).await?,
                    _ => bail!(
                        "--url needs --source-id and --source-token, or --admin-token to create a \
                         source"
                    ),
                };
                Ok(Daemon {
                    endpoint: endpoint(addr, &id, &token),
                    pid,
                    child: None,
                    data_dir: None,
                    keep_data_dir: true,
                })
            }
        }
    }

    /// (VmRSS, VmHWM) in KiB, when the process is known.
    pub fn memory_kib(&self) -> Option<(u64, u64)> {
        sys::memory_kib(self.pid?)
    }

    pub fn cpu_seconds(&self) -> Option<f64> {
        sys::process_cpu_seconds(self.pid?)
    }

    /// Fails if a daemon this tool started has exited (it crashed under load).
    pub fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(child) = self.child.as_mut() {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "the daemon exited with {status}; its log:\n{}",
                    self.log_tail()
                );
            }
        }
        Ok(())
    }

    fn log_tail(&self) -> String {
        let Some(dir) = &self.data_dir else {
            return String::new();
        };
        let log = fs::read_to_string(log_path(dir)).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = sys::terminate(child.id());
            let deadline = Instant::now() + STOP_TIMEOUT;
            while Instant::now() < deadline {
                if matches!(child.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        if let Some(dir) = &self.data_dir {
            if self.keep_data_dir {
                eprintln!(
                    "pandabridge-load: kept the daemon's data in {}",
                    dir.display()
                );
            } else {
                let _ = fs::remove_dir_all(dir);
                let _ = fs::remove_file(log_path(dir));
            }
        }
    }
}

fn log_path(data_dir: &Path) -> PathBuf {
    data_dir.with_extension("log")
}

fn endpoint(addr: SocketAddr, source_id: &str, token: &str) -> Endpoint {
    Endpoint {
        addr,
        host: addr.to_string(),
        path: format!("/webhooks/bigpanda/{source_id}"),
        authorization: format!("Bearer {token}"),
    }
}

/// `http://host:port` → a socket address (the tool speaks plain HTTP/1.1 on one connection per
/// task, so TLS and paths are out of scope).
fn resolve(base: &str) -> anyhow::Result<SocketAddr> {
    use std::net::ToSocketAddrs;
    let hostport = base
        .strip_prefix("http://")
        .ok_or_else(|| anyhow!("--url must start with http:// (got {base})"))?;
    let hostport = hostport.split('/').next().unwrap_or(hostport);
    hostport
        .to_socket_addrs()
        .with_context(|| format!("cannot resolve {hostport}"))?
        .next()
        .ok_or_else(|| anyhow!("{hostport} resolves to no address"))
}

async fn spawn(bin: &Path, extra_args: &[String], keep_data_dir: bool) -> anyhow::Result<Daemon> {
    if !bin.is_file() {
        bail!(
            "daemon binary {} not found; build it with the same profile as this tool \
             (`cargo build --release --bins`) or pass --daemon-bin or --url",
            bin.display()
        );
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let data_dir = std::env::temp_dir().join(format!(
        "pandabridge-load-{}-{nanos:09}",
        std::process::id()
    ));
    let log = fs::File::create(log_path(&data_dir))
        .with_context(|| format!("cannot create {}", log_path(&data_dir).display()))?;
    let mut cmd = Command::new(bin);
    cmd.arg("serve")
        .args(["--listen", "127.0.0.1:0"])
        .arg("--data-dir")
        .arg(&data_dir)
        .args(extra_args);
    // The caller's PANDABRIDGE_* settings must not change what is measured.
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("PANDABRIDGE_") {
            cmd.env_remove(&k);
        }
    }
    if std::env::var_os("RUST_LOG").is_none() {
        cmd.env("RUST_LOG", "warn");
    }
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| format!("cannot start {}", bin.display()))?;
    let mut daemon = Daemon {
        endpoint: endpoint(SocketAddr::from(([127, 0, 0, 1], 0)), "", ""),
        pid: Some(child.id()),
        child: Some(child),
        data_dir: Some(data_dir.clone()),
        keep_data_dir,
    };

    // The daemon writes its bound address once it is about to serve.
    let deadline = Instant::now() + START_TIMEOUT;
    let addr = loop {
        daemon.check_alive()?;
        let written = fs::read_to_string(data_dir.join("listen-addr")).unwrap_or_default();
        if let Ok(addr) = written.trim().parse::<SocketAddr>() {
            break addr;
        }
        if Instant::now() > deadline {
            bail!(
                "the daemon did not start within {START_TIMEOUT:?}; its log:\n{}",
                daemon.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let base = format!("http://{addr}");
    let admin = fs::read_to_string(data_dir.join("admin-token"))
        .context("cannot read the daemon's admin token")?;
    let (id, token) = create_source(&base, admin.trim(), START_TIMEOUT).await?;
    daemon.endpoint = endpoint(addr, &id, &token);
    Ok(daemon)
}

/// Creates the alert source the load posts to (CONTRACT §3), retrying for `grace` while the
/// daemon finishes starting.
async fn create_source(
    base: &str,
    admin_token: &str,
    grace: Duration,
) -> anyhow::Result<(String, String)> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let deadline = Instant::now() + grace;
    loop {
        let sent = client
            .post(format!("{base}/api/v1/alert-sources"))
            .bearer_auth(admin_token)
            .json(&serde_json::json!({"name": "pandabridge-load"}))
            .send()
            .await;
        match sent {
            Ok(resp) if resp.status().as_u16() == 201 => {
                let v: serde_json::Value = resp.json().await?;
                let field = |k: &str| {
                    v[k].as_str()
                        .map(str::to_owned)
                        .ok_or_else(|| anyhow!("alert source reply has no {k}: {v}"))
                };
                return Ok((field("id")?, field("token")?));
            }
            Ok(resp) => {
                let status = resp.status();
                bail!(
                    "creating an alert source failed with {status}: {}",
                    resp.text().await.unwrap_or_default()
                );
            }
            Err(e) if Instant::now() >= deadline => {
                return Err(e).context("cannot reach the daemon's admin API")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}
