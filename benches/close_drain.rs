//! Benchmark of the close drain, issue 5's "closes drain at BigPanda's 5 requests/second, no
//! slower, while a backlog exists": `cargo bench --bench close_drain`.
//!
//! Each round starts the daemon (this build's `pandabridge`) against the fake BigPanda on
//! loopback, resolves `PB_BENCH_CLOSES` alerts (default 50) while no API key is stored, so that
//! a backlog is waiting, then stores the key and times the closes as they reach the fake: the
//! rate is (closes − 1) / (last arrival − first arrival). It prints every round, the median of
//! `PB_BENCH_ROUNDS` rounds (default 3) and the ratio to BigPanda's 5/s, and checks that no
//! second at the fake held more than five requests (arrivals judged over 950 ms, as the tests
//! do, since they carry this machine's scheduling jitter).
//!
//! `cargo test` runs it too (`test = true`), without cargo bench's `--bench` argument: then it
//! is a smoke run of 6 closes in one round, so that the benchmark cannot rot; no figure is
//! checked.

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use support::daemon::{with_incident_id, Daemon};
use support::fake_bigpanda::FakeBigPanda;

fn setting(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name} must be a whole number, not {v:?}")),
        Err(_) => default,
    }
}

/// One round; returns the measured rate in closes per second.
async fn round(round: usize, closes: usize) -> f64 {
    let bp = FakeBigPanda::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let d = Daemon::start(dir.path(), &["--bigpanda-api-url", &bp.url()]);
    let (src, token) = d.create_source("bench").await;
    let mut alert_ids = Vec::with_capacity(closes);
    for i in 0..closes {
        let body = with_incident_id("01-new", &format!("drain-{round}-{i}"));
        let (id, _) = d.accept_webhook(&src, &token, &body).await;
        alert_ids.push(id);
    }
    for id in &alert_ids {
        let path = format!("/api/v1/alerts/{id}/resolve");
        let (status, body) = d.send(d.admin(Method::POST, &path).json(&json!({}))).await;
        assert_eq!(status, 200, "resolve {id}: {body}");
    }
    let (status, body) = d
        .send(
            d.admin(Method::PUT, "/api/v1/integrations/bigpanda")
                .json(&json!({ "api_key": FakeBigPanda::VALID_KEY })),
        )
        .await;
    assert_eq!(status, 200, "store the key: {body}");

    // 5/s, plus room for a slow machine.
    let timeout = Duration::from_secs(closes as u64 / 5 + 30);
    let delivered = bp.wait_for_delivered(closes, timeout);
    assert_eq!(
        bp.resolve_calls().len(),
        closes,
        "a close was refused and sent again"
    );
    let busiest = bp.max_requests_in_any_window(Duration::from_millis(950));
    assert!(busiest <= 5, "{busiest} requests within 950 ms");
    let first = delivered.iter().map(|r| r.at).min().expect("a close");
    let last = delivered.iter().map(|r| r.at).max().expect("a close");
    let span = (last - first).as_secs_f64();
    let rate = (closes - 1) as f64 / span;
    println!(
        "round {round}: {closes} closes in {span:.3} s from the first to the last: {rate:.3}/s"
    );
    rate
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let benching = std::env::args().any(|a| a == "--bench");
    let (closes, rounds) = if benching {
        (
            setting("PB_BENCH_CLOSES", 50),
            setting("PB_BENCH_ROUNDS", 3),
        )
    } else {
        (6, 1)
    };
    let (closes, rounds) = (closes.max(2), rounds.max(1));
    let mut rates = Vec::with_capacity(rounds);
    for r in 0..rounds {
        rates.push(round(r, closes).await);
    }
    rates.sort_by(f64::total_cmp);
    let median = rates[rates.len() / 2];
    println!(
        "close drain: median {median:.3}/s over {rounds} rounds of {closes} closes \
         ({:.4} of BigPanda's 5/s; range {:.3}–{:.3}/s)",
        median / 5.0,
        rates[0],
        rates[rates.len() - 1]
    );
}
