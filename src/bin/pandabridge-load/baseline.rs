//! The bare ceiling: a warp server in this process that does only what any webhook receiver must
//! (route, bearer check, size limit, parse the body into `serde_json::Value`, answer 202 JSON),
//! with no actor and no store. The daemon's throughput is reported as a ratio to it.
//!
//! It is the perf-baseline's "bare HTTP ceiling" (`/work/shared/perf-baseline.md` §2.1) plus
//! the header check and JSON reply, on its own multi-thread runtime with 2 workers and the
//! system allocator, not pinned, like that measurement.

use std::net::SocketAddr;

use bytes::Bytes;
use warp::http::StatusCode;
use warp::Filter;

/// Same limit as the daemon's default (CONTRACT §2: 1 MiB).
const MAX_BODY_BYTES: u64 = 1024 * 1024;

/// Thread-name prefix of the baseline's runtime, so its CPU time can be read per thread.
pub const THREAD_NAME: &str = "bare-http";

/// Source id and token the baseline accepts; the path has the daemon's shape.
pub const SOURCE_ID: &str = "baseline";
pub const SOURCE_TOKEN: &str = "baseline-token";

/// A running baseline server; dropping it stops the server and its runtime.
pub struct Baseline {
    pub addr: SocketAddr,
    _stop: tokio::sync::oneshot::Sender<()>,
    _runtime: tokio::runtime::Runtime,
}

impl Baseline {
    pub fn start(workers: usize) -> anyhow::Result<Baseline> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers.max(1))
            .thread_name(THREAD_NAME)
            .enable_all()
            .build()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = warp::serve(routes())
            .incoming(listener)
            .graceful(async move {
                let _ = stopped.await;
            });
        runtime.spawn(server.run());
        Ok(Baseline {
            addr,
            _stop: stop,
            _runtime: runtime,
        })
    }

    pub fn path(&self) -> String {
        format!("/webhooks/bigpanda/{SOURCE_ID}")
    }
}

fn routes() -> impl Filter<Extract = (warp::reply::Response,), Error = warp::Rejection> + Clone {
    warp::path!("webhooks" / "bigpanda" / String)
        .and(warp::post())
        .and(warp::header::optional::<String>("authorization"))
        .and(warp::body::content_length_limit(MAX_BODY_BYTES))
        .and(warp::body::bytes())
        .map(handle)
}

fn handle(source: String, authorization: Option<String>, body: Bytes) -> warp::reply::Response {
    use warp::Reply;
    let expected = format!("Bearer {SOURCE_TOKEN}");
    if source != SOURCE_ID || authorization.as_deref() != Some(expected.as_str()) {
        return status_json(StatusCode::UNAUTHORIZED, "unauthorized");
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return status_json(StatusCode::BAD_REQUEST, "invalid_json");
    };
    let id = value
        .pointer("/incident/id")
        .and_then(|v| v.as_str())
        .unwrap_or("");
    let reply = serde_json::json!({"alert_id": id, "outcome": "created"});
    warp::reply::with_status(warp::reply::json(&reply), StatusCode::ACCEPTED).into_response()
}

fn status_json(status: StatusCode, code: &str) -> warp::reply::Response {
    use warp::Reply;
    let body = serde_json::json!({"error": {"code": code, "message": code}});
    warp::reply::with_status(warp::reply::json(&body), status).into_response()
}
