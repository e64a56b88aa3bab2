//! The load itself: `connections` tasks, each with one keep-alive HTTP/1.1 connection, on one or
//! more client threads pinned to a CPU, sending webhooks back to back (closed loop) or on a paced
//! schedule (`--rate`), for a warm-up and then a measured window.
//!
//! Owns what counts as a sample: a response that completes inside the window. With `--rate`,
//! latency starts at the request's scheduled time whenever the connection was still busy with an
//! earlier request at that time, so a slow server cannot hide its queueing by delaying the
//! generator (coordinated omission); when the connection was idle it starts at the actual send,
//! so the timer's slack is not blamed on the server.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::header::{HeaderValue, AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Method, Request, Uri};
use hyper_util::rt::TokioIo;

use crate::daemon::Endpoint;
use crate::sys;
use crate::workload::{Rng, Workload};

/// After a connection error, wait this long before reconnecting, so a dead server is not
/// hammered in a hot loop.
const RECONNECT_PAUSE: Duration = Duration::from_millis(10);

/// How one phase is driven.
#[derive(Debug, Clone)]
pub struct Plan {
    pub connections: usize,
    pub client_threads: usize,
    pub warmup: Duration,
    pub duration: Duration,
    /// Total offered requests per second, spread evenly over the connections; `None` = closed loop.
    pub rate: Option<f64>,
    pub pin_cpu: Option<usize>,
}

/// What a phase measured on the client side.
#[derive(Debug, Default)]
pub struct Samples {
    /// Latency of every response completed in the window, nanoseconds, sorted.
    pub latencies_ns: Vec<u64>,
    /// Responses in the window by HTTP status.
    pub statuses: BTreeMap<u16, u64>,
    /// Connection or protocol failures in the window (no HTTP status).
    pub transport_errors: u64,
    /// The daemon's `outcome` field of 2xx replies in the window.
    pub outcomes: BTreeMap<String, u64>,
    /// CPU seconds the client threads used during the window.
    pub client_cpu_s: f64,
    /// The first transport error seen, to explain a failing run.
    pub first_error: Option<String>,
}

impl Samples {
    fn merge(&mut self, other: Samples) {
        self.latencies_ns.extend(other.latencies_ns);
        for (k, v) in other.statuses {
            *self.statuses.entry(k).or_default() += v;
        }
        for (k, v) in other.outcomes {
            *self.outcomes.entry(k).or_default() += v;
        }
        self.transport_errors += other.transport_errors;
        self.client_cpu_s += other.client_cpu_s;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

/// The request parts every connection reuses.
struct Target {
    addr: SocketAddr,
    uri: Uri,
    host: HeaderValue,
    authorization: HeaderValue,
    json: HeaderValue,
}

/// The instants that bound a phase; shared by every connection.
#[derive(Clone, Copy)]
struct Window {
    start: Instant,
    measure_from: Instant,
    end: Instant,
}

impl Window {
    fn contains(&self, t: Instant) -> bool {
        t >= self.measure_from && t <= self.end
    }
}

/// Runs one phase against `endpoint`. `probe` is called on this thread at the start and at the
/// end of the measured window (for the server's CPU and the machine's load); both results are
/// returned with the samples.
pub fn run_phase<P: Send>(
    endpoint: &Endpoint,
    workload: &Arc<Workload>,
    plan: &Plan,
    seed: u64,
    mut probe: impl FnMut() -> P,
) -> anyhow::Result<(Samples, P, P)> {
    let target = Arc::new(Target {
        addr: endpoint.addr,
        uri: endpoint.path.parse().context("webhook path")?,
        host: HeaderValue::from_str(&endpoint.host).context("host header")?,
        authorization: HeaderValue::from_str(&endpoint.authorization)
            .context("authorization header")?,
        json: HeaderValue::from_static("application/json"),
    });
    let start = Instant::now();
    let window = Window {
        start,
        measure_from: start + plan.warmup,
        end: start + plan.warmup + plan.duration,
    };
    let threads = plan.client_threads.clamp(1, plan.connections.max(1));
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            // Connections t, t + threads, t + 2·threads, … belong to thread t.
            let conns: Vec<usize> = (t..plan.connections).step_by(threads).collect();
            let target = Arc::clone(&target);
            let workload = Arc::clone(workload);
            let plan = plan.clone();
            std::thread::Builder::new()
                .name(format!("load-client-{t}"))
                .spawn(move || client_thread(target, workload, plan, window, conns, seed))
                .context("cannot start a client thread")
        })
        .collect::<anyhow::Result<_>>()?;

    std::thread::sleep(
        window
            .measure_from
            .saturating_duration_since(Instant::now()),
    );
    let at_start = probe();
    std::thread::sleep(window.end.saturating_duration_since(Instant::now()));
    let at_end = probe();

    let mut samples = Samples::default();
    for h in handles {
        let part = h
            .join()
            .map_err(|_| anyhow::anyhow!("a client thread panicked"))??;
        samples.merge(part);
    }
    samples.latencies_ns.sort_unstable();
    Ok((samples, at_start, at_end))
}

fn client_thread(
    target: Arc<Target>,
    workload: Arc<Workload>,
    plan: Plan,
    window: Window,
    conns: Vec<usize>,
    seed: u64,
) -> anyhow::Result<Samples> {
    if let Some(cpu) = plan.pin_cpu {
        // Not fatal: an unpinned generator still measures, only less cleanly.
        if let Err(e) = sys::pin_current_thread(cpu) {
            eprintln!("pandabridge-load: cannot pin the load generator to CPU {cpu}: {e}");
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        // The thread's CPU over the window, read from a task on this very thread.
        let cpu_probe = tokio::spawn(async move {
            tokio::time::sleep_until(window.measure_from.into()).await;
            let before = sys::current_thread_cpu_seconds();
            tokio::time::sleep_until(window.end.into()).await;
            let after = sys::current_thread_cpu_seconds();
            before.zip(after).map_or(0.0, |(b, a)| a - b)
        });
        let mut tasks = tokio::task::JoinSet::new();
        for conn in conns {
            let pace = plan.rate.filter(|r| *r > 0.0).map(|rate| {
                // Each connection sends every `connections / rate` seconds, staggered so the
                // connections together send evenly.
                let interval = Duration::from_secs_f64(plan.connections as f64 / rate);
                let offset = interval.mul_f64(conn as f64 / plan.connections as f64);
                (window.start + offset, interval)
            });
            tasks.spawn(connection(
                Arc::clone(&target),
                Arc::clone(&workload),
                window,
                pace,
                seed ^ (conn as u64).wrapping_mul(0x9E37_79B9),
            ));
        }
        let mut samples = Samples::default();
        while let Some(done) = tasks.join_next().await {
            samples.merge(done?);
        }
        samples.client_cpu_s = cpu_probe.await.unwrap_or(0.0);
        Ok(samples)
    })
}

/// One connection's life: connect, send until the window ends, reconnect after an error.
async fn connection(
    target: Arc<Target>,
    workload: Arc<Workload>,
    window: Window,
    pace: Option<(Instant, Duration)>,
    seed: u64,
) -> Samples {
    let mut samples = Samples::default();
    let mut rng = Rng::new(seed);
    let mut next_send = pace.map(|(first, _)| first);
    let mut last_done = window.start;
    'connect: while Instant::now() < window.end {
        let mut sender = match open(target.addr).await {
            Ok(s) => s,
            Err(e) => {
                note_error(&mut samples, &window, e);
                tokio::time::sleep(RECONNECT_PAUSE).await;
                continue;
            }
        };
        loop {
            let scheduled = match (next_send, pace) {
                (Some(at), Some((_, interval))) => {
                    if at >= window.end {
                        break 'connect;
                    }
                    tokio::time::sleep_until(at.into()).await;
                    next_send = Some(at + interval);
                    Some(at)
                }
                _ => None,
            };
            if Instant::now() >= window.end {
                break 'connect;
            }
            let body = workload.next_body(&mut rng);
            let request = Request::builder()
                .method(Method::POST)
                .uri(target.uri.clone())
                .header(HOST, target.host.clone())
                .header(AUTHORIZATION, target.authorization.clone())
                .header(CONTENT_TYPE, target.json.clone())
                .body(Full::new(body));
            let request = match request {
                Ok(r) => r,
                Err(e) => {
                    note_error(&mut samples, &window, e.into());
                    break 'connect;
                }
            };
            let sent_at = Instant::now();
            let started = match scheduled {
                // Busy at the scheduled time: the wait for the connection is server latency.
                Some(at) if last_done > at => at,
                _ => sent_at,
            };
            let reply = exchange(&mut sender, request).await;
            let done = Instant::now();
            last_done = done;
            match reply {
                Ok((status, body)) => {
                    if window.contains(done) {
                        samples
                            .latencies_ns
                            .push((done - started).as_nanos() as u64);
                        *samples.statuses.entry(status).or_default() += 1;
                        if (200..300).contains(&status) {
                            if let Some(outcome) = outcome_of(&body) {
                                *samples.outcomes.entry(outcome.to_owned()).or_default() += 1;
                            }
                        }
                    }
                }
                Err(e) => {
                    note_error(&mut samples, &window, e);
                    tokio::time::sleep(RECONNECT_PAUSE).await;
                    continue 'connect;
                }
            }
        }
    }
    samples
}

fn note_error(samples: &mut Samples, window: &Window, e: anyhow::Error) {
    if window.contains(Instant::now()) {
        samples.transport_errors += 1;
    }
    if samples.first_error.is_none() {
        samples.first_error = Some(format!("{e:#}"));
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn open(addr: SocketAddr) -> anyhow::Result<Sender> {
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("cannot connect to {addr}"))?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // Its error also surfaces on the next request, where it is counted.
        let _ = conn.await;
    });
    Ok(sender)
}

/// Sends one request and reads the whole reply, so the connection can be reused.
async fn exchange(
    sender: &mut Sender,
    request: Request<Full<Bytes>>,
) -> anyhow::Result<(u16, Bytes)> {
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

/// The `outcome` of a `{"alert_id":…,"outcome":"…"}` reply, found without a JSON parse: the
/// generator's CPU is part of the measurement.
fn outcome_of(body: &[u8]) -> Option<&str> {
    const KEY: &[u8] = b"\"outcome\":\"";
    let at = body.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let len = body[at..].iter().position(|&b| b == b'"')?;
    std::str::from_utf8(&body[at..at + len]).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcome_is_read_from_the_reply() {
        assert_eq!(
            outcome_of(br#"{"alert_id":"01J","outcome":"refired"}"#),
            Some("refired")
        );
        assert_eq!(outcome_of(br#"{"error":{}}"#), None);
    }
}
