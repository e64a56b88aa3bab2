//! Prometheus metrics: one registry, handles cloned into the code that counts.
//!
//! Counters for every label value are created up front so the hot path only bumps an atomic.
//! Secrets never become label values.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::lifecycle::Outcome;

type Labels = Vec<(&'static str, String)>;

pub struct Metrics {
    registry: Registry,
    events: Family<Labels, Counter>,
    outcome_counters: Vec<(Outcome, Counter)>,
    pub webhook_rejected: Family<Labels, Counter>,
    pub close_attempts: Family<Labels, Counter>,
    pub live_actors: Gauge,
    pub actor_restarts: Counter,
    pub actor_starts: Counter,
    pub redeliveries: Counter,
    pub poison_events: Counter,
    pub outbox_depth: Gauge,
    pub outbox_oldest_age_seconds: Gauge<f64, AtomicU64>,
    pub integration_healthy: Gauge,
    pub request_duration: Family<Labels, Histogram>,
    pub store_flushes: Gauge,
    pub store_flushed_writes: Gauge,
    pub store_folds: Gauge,
    pub store_last_fold_seconds: Gauge<f64, AtomicU64>,
    /// Pre-created per route, so observing a request allocates nothing.
    route_histograms: Vec<(&'static str, Histogram)>,
}

/// The `route` label values of the request latency histogram.
pub const ROUTES: [&str; 4] = ["webhook", "admin", "metrics", "health"];

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("pandabridge");
        let events = Family::<Labels, Counter>::default();
        registry.register(
            "webhook_events",
            "Webhook events applied, by lifecycle outcome",
            events.clone(),
        );
        let outcome_counters = Outcome::WEBHOOK
            .iter()
            .map(|o| {
                (
                    *o,
                    events
                        .get_or_create(&vec![("outcome", o.as_str().to_string())])
                        .clone(),
                )
            })
            .collect();
        let webhook_rejected = Family::<Labels, Counter>::default();
        registry.register(
            "webhook_rejected",
            "Webhook requests answered with an error, by error code",
            webhook_rejected.clone(),
        );
        let close_attempts = Family::<Labels, Counter>::default();
        registry.register(
            "close_attempts",
            "Close requests sent to BigPanda, by result",
            close_attempts.clone(),
        );
        let live_actors = Gauge::default();
        registry.register(
            "live_actors",
            "Incident actors currently running",
            live_actors.clone(),
        );
        let actor_restarts = Counter::default();
        registry.register(
            "actor_failures",
            "Incident actors that failed and were replaced from stored state",
            actor_restarts.clone(),
        );
        let actor_starts = Counter::default();
        registry.register(
            "actor_starts",
            "Incident actors started: on an incident's first input, and again after idle retirement, eviction or a failure",
            actor_starts.clone(),
        );
        let redeliveries = Counter::default();
        registry.register(
            "input_redeliveries",
            "Inputs handed to an incident actor again because the actor stopped before answering",
            redeliveries.clone(),
        );
        let poison_events = Counter::default();
        registry.register(
            "poison_events",
            "Webhook events quarantined after crashing their actor twice",
            poison_events.clone(),
        );
        let outbox_depth = Gauge::default();
        registry.register(
            "outbox_depth",
            "Outbound messages waiting for delivery",
            outbox_depth.clone(),
        );
        let outbox_oldest_age_seconds = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "outbox_oldest_age_seconds",
            "Age of the oldest outbound message still waiting",
            outbox_oldest_age_seconds.clone(),
        );
        let integration_healthy = Gauge::default();
        registry.register(
            "bigpanda_integration_healthy",
            "1 when a BigPanda API key is stored and was not rejected since",
            integration_healthy.clone(),
        );
        let request_duration = Family::<Labels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.000_1, 2.0, 16))
        });
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency, by route",
            request_duration.clone(),
        );
        let store_flushes = Gauge::default();
        registry.register(
            "store_group_commits",
            "Group commits (flush + fdatasync) since start",
            store_flushes.clone(),
        );
        let store_flushed_writes = Gauge::default();
        registry.register(
            "store_group_commit_writes",
            "Writes covered by group commits since start; divided by group_commits, the mean group size",
            store_flushed_writes.clone(),
        );
        let store_folds = Gauge::default();
        registry.register(
            "store_log_folds",
            "Folds of the store's log into its snapshot while running, since start (each keeps reads waiting; see docs/operations.md)",
            store_folds.clone(),
        );
        let store_last_fold_seconds = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "store_last_log_fold_seconds",
            "How long the last fold of the store's log kept reads waiting",
            store_last_fold_seconds.clone(),
        );
        let route_histograms = ROUTES
            .iter()
            .map(|r| {
                (
                    *r,
                    request_duration
                        .get_or_create(&vec![("route", r.to_string())])
                        .clone(),
                )
            })
            .collect();
        Arc::new(Metrics {
            registry,
            events,
            outcome_counters,
            webhook_rejected,
            close_attempts,
            live_actors,
            actor_restarts,
            actor_starts,
            redeliveries,
            poison_events,
            outbox_depth,
            outbox_oldest_age_seconds,
            integration_healthy,
            request_duration,
            store_flushes,
            store_flushed_writes,
            store_folds,
            store_last_fold_seconds,
            route_histograms,
        })
    }

    pub fn count_outcome(&self, outcome: Outcome) {
        match self.outcome_counters.iter().find(|(o, _)| *o == outcome) {
            Some((_, c)) => {
                c.inc();
            }
            None => {
                self.events
                    .get_or_create(&vec![("outcome", outcome.as_str().to_string())])
                    .inc();
            }
        }
    }

    pub fn count_rejected(&self, code: &str) {
        self.webhook_rejected
            .get_or_create(&vec![("code", code.to_string())])
            .inc();
    }

    pub fn count_close_attempt(&self, result: &str) {
        self.close_attempts
            .get_or_create(&vec![("result", result.to_string())])
            .inc();
    }

    pub fn observe_request(&self, route: &'static str, seconds: f64) {
        match self.route_histograms.iter().find(|(r, _)| *r == route) {
            Some((_, h)) => h.observe(seconds),
            None => self
                .request_duration
                .get_or_create(&vec![("route", route.to_string())])
                .observe(seconds),
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
