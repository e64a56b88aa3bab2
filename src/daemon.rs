//! `pandabridge serve`: opens the data dir and the store, starts the engine and the HTTP server,
//! and shuts everything down in order on SIGTERM/SIGINT.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;

use crate::bigpanda::client::BigPandaApi;
use crate::config::{self, ServeConfig};
use crate::engine::closer::{Closer, CloserArgs, CloserMsg};
use crate::engine::{Engine, EngineOptions};
use crate::http::server::ServerLimits;
use crate::http::{routes, App};
use crate::integration::Integration;
use crate::metrics::Metrics;
use crate::sources::Sources;
use crate::store::{self, Store, StoreOptions};

/// How long in-flight requests may take to finish once shutdown starts.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(8);

/// A start-up failure, reported as one line.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    DataDir(String),
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: SocketAddr, reason: String },
    #[error("cannot open the store in {}: {reason}", path.display())]
    Store { path: PathBuf, reason: String },
    #[error("cannot repack the store in {}: {reason}", path.display())]
    Repack { path: PathBuf, reason: String },
    #[error("{0}")]
    Engine(String),
    #[error("cannot start the async runtime: {0}")]
    Runtime(String),
}

/// The store lives in its own folder of the data dir, beside the secrets files.
pub fn store_dir(data_dir: &std::path::Path) -> PathBuf {
    data_dir.join("store")
}

/// How long the runtime's last tasks get to end after a clean shutdown.
const RUNTIME_EXIT_TIMEOUT: Duration = Duration::from_secs(5);

fn store_options(cfg: &ServeConfig) -> StoreOptions {
    StoreOptions {
        cache_bytes: cfg.store_cache_bytes,
        fold_after_bytes: cfg.store_fold_after_bytes,
        ..StoreOptions::default()
    }
}

/// The writers a group commit may wait for: the webhooks admitted and not yet done (each holds
/// a permit of `inflight` from its checks until its handler returns, body read and reply
/// included). Once that many writers are in the group, the flusher commits it instead of
/// lingering on.
fn expected_writers(inflight: &Arc<Semaphore>, max_in_flight: usize) -> store::ExpectedWriters {
    let inflight = Arc::clone(inflight);
    store::ExpectedWriters::new(move || max_in_flight.saturating_sub(inflight.available_permits()))
}

/// Runs the daemon on a runtime of its own until a shutdown signal. After a clean shutdown
/// it drops the runtime (giving its last tasks [`RUNTIME_EXIT_TIMEOUT`]) and readies the store
/// for a quick next start ([`store::fold_log_for_next_open`]); sled's file lock makes that
/// step refuse, harmlessly, if a handle on the store is still alive anyway.
pub fn run(cfg: ServeConfig) -> Result<(), StartError> {
    config::prepare_data_dir(&cfg.data_dir).map_err(|e| StartError::DataDir(e.to_string()))?;
    // Held until the process ends, the fold below included.
    let _lock =
        config::lock_data_dir(&cfg.data_dir).map_err(|e| StartError::DataDir(e.to_string()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| StartError::Runtime(e.to_string()))?;
    let (store_path, opts) = (store_dir(&cfg.data_dir), store_options(&cfg));
    runtime.block_on(serve(cfg))?;
    runtime.shutdown_timeout(RUNTIME_EXIT_TIMEOUT);
    let started = std::time::Instant::now();
    // sled unwraps some IO results; a panic there must not turn a clean stop into a crash.
    // Nothing is observed after a panic but the error below: the options are only read.
    let fold = std::panic::AssertUnwindSafe(|| store::fold_log_for_next_open(&store_path, &opts));
    let folded = std::panic::catch_unwind(fold).unwrap_or_else(|_| {
        Err(store::StoreError::Io(
            "the store panicked while opening".into(),
        ))
    });
    match folded {
        Ok(()) => tracing::info!(
            ms = started.elapsed().as_millis() as u64,
            "Readied the store for a quick next start."
        ),
        Err(e) => tracing::warn!(error = %e,
            "Could not ready the store for a quick next start; the next start replays its log instead."),
    }
    tracing::info!("pandabridge stopped cleanly.");
    Ok(())
}

/// `pandabridge repack`: rewrites the store of a stopped daemon (see `store::repack`). Takes
/// the data dir's lock, so it refuses while a daemon runs on it.
pub fn repack(cfg: &ServeConfig) -> Result<store::RepackReport, StartError> {
    if !cfg.data_dir.is_dir() {
        return Err(StartError::DataDir(format!(
            "data dir {} does not exist",
            cfg.data_dir.display()
        )));
    }
    let _lock =
        config::lock_data_dir(&cfg.data_dir).map_err(|e| StartError::DataDir(e.to_string()))?;
    let path = store_dir(&cfg.data_dir);
    store::repack(&path, &store_options(cfg)).map_err(|e| StartError::Repack {
        path,
        reason: e.to_string(),
    })
}

/// Runs the daemon, its data dir prepared and locked by [`run`], until a shutdown signal;
/// returns after a clean shutdown, the store closed (everything durable, the write-ahead log
/// checkpointed). sled's own handles may outlive it until the tasks that hold them are
/// dropped: [`run`] drops them before it folds the log.
async fn serve(cfg: ServeConfig) -> Result<(), StartError> {
    let admin = config::load_or_create_admin_token(&cfg.data_dir, cfg.admin_token.as_deref())
        .map_err(|e| StartError::DataDir(e.to_string()))?;
    if admin.was_generated() {
        tracing::info!(path = %cfg.data_dir.join(config::ADMIN_TOKEN_FILE).display(),
            "Generated an admin token; read it from this file to use the admin API.");
    }

    let _ = config::clear_listen_addr(&cfg.data_dir);
    // Bind before opening anything heavy, so a port in use fails fast; std's bind reports the
    // error where warp's would panic.
    let listener = std::net::TcpListener::bind(cfg.listen)
        .and_then(|l| l.set_nonblocking(true).map(|_| l))
        .and_then(tokio::net::TcpListener::from_std)
        .map_err(|e| StartError::Listen {
            addr: cfg.listen,
            reason: e.to_string(),
        })?;
    let bound = listener.local_addr().map_err(|e| StartError::Listen {
        addr: cfg.listen,
        reason: e.to_string(),
    })?;

    let store_path = store_dir(&cfg.data_dir);
    let inflight = Arc::new(Semaphore::new(cfg.max_in_flight));
    let store = {
        let path = store_path.clone();
        let opts = StoreOptions {
            expected_writers: Some(expected_writers(&inflight, cfg.max_in_flight)),
            ..store_options(&cfg)
        };
        tokio::task::spawn_blocking(move || Store::open(&path, &opts))
            .await
            .map_err(|e| StartError::Store {
                path: store_path.clone(),
                reason: e.to_string(),
            })?
            .map_err(|e| StartError::Store {
                path: store_path.clone(),
                reason: e.to_string(),
            })?
    };
    let metrics = Metrics::new();
    let sources = Sources::load(store.clone(), cfg.token_grace).map_err(|e| StartError::Store {
        path: store_path.clone(),
        reason: e.to_string(),
    })?;
    let engine = Engine::start(
        store,
        Arc::clone(&metrics),
        EngineOptions {
            idle_timeout: cfg.idle_actor_timeout,
            max_live_actors: cfg.max_live_actors,
            ..EngineOptions::default()
        },
    )
    .await
    .map_err(StartError::Engine)?;

    let api = BigPandaApi::new(crate::bigpanda::client::DEFAULT_TIMEOUT)
        .map_err(|e| StartError::Engine(e.to_string()))?;
    let outbox_rx = engine
        .subscribe_outbox()
        .ok_or_else(|| StartError::Engine("the outbox has a subscriber already".into()))?;
    let (closer, _closer_join) = ractor::Actor::spawn(
        None,
        Closer,
        CloserArgs {
            engine: engine.clone(),
            sources: sources.clone(),
            api: api.clone(),
        },
    )
    .await
    .map_err(|e| StartError::Engine(format!("cannot start the BigPanda client: {e}")))?;
    forward_outbox(outbox_rx, closer.clone());
    let integration = Integration {
        store: engine.store().clone(),
        api,
        default_api_url: cfg.bigpanda_api_url.clone(),
        closer: closer.clone(),
    };

    let public_url = cfg.callback_base(bound);
    let app = Arc::new(App {
        engine: engine.clone(),
        sources,
        metrics,
        admin_token: admin,
        public_url: public_url.clone(),
        max_body_bytes: cfg.max_body_bytes,
        body_read_timeout: cfg.body_read_timeout,
        inflight,
        accepting: AtomicBool::new(true),
        integration: Some(Arc::new(integration)),
    });

    config::write_listen_addr(&cfg.data_dir, bound)
        .map_err(|e| StartError::DataDir(e.to_string()))?;

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let limits = ServerLimits {
        header_read_timeout: cfg.header_read_timeout,
        max_connections: cfg.max_connections,
    };
    let server = tokio::spawn(crate::http::server::serve(
        listener,
        routes(Arc::clone(&app)),
        limits,
        async move {
            let _ = stop_rx.await;
        },
    ));
    tracing::info!(listen = %bound, public_url = %public_url, data_dir = %cfg.data_dir.display(),
        "pandabridge is ready to serve.");

    let signal = shutdown_signal().await;
    // Refuse first, then say so: whoever reads the line can rely on it.
    app.stop_accepting();
    tracing::info!(
        signal,
        "Shutting down: no new webhooks, finishing those in flight."
    );
    let _ = stop_tx.send(());
    if tokio::time::timeout(DRAIN_TIMEOUT, server).await.is_err() {
        tracing::warn!(
            timeout_s = DRAIN_TIMEOUT.as_secs(),
            "Some connections did not finish in time; closing them."
        );
    }
    // Sends in flight are abandoned: their entries stay in the outbox and go out after restart.
    closer.stop(None);
    engine.shutdown().await;
    let _ = config::clear_listen_addr(&cfg.data_dir);
    Ok(())
}

/// Hands the engine's durable-enqueue notifications to the BigPanda client actor.
fn forward_outbox(
    mut rx: tokio::sync::mpsc::UnboundedReceiver<Vec<crate::lifecycle::Outbound>>,
    closer: ractor::ActorRef<CloserMsg>,
) {
    tokio::spawn(async move {
        while let Some(msgs) = rx.recv().await {
            if closer.cast(CloserMsg::Enqueued(msgs)).is_err() {
                break;
            }
        }
    });
}

async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return "SIGINT";
        }
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = tokio::signal::ctrl_c() => "SIGINT",
    }
}
