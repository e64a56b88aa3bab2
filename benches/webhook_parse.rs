//! Benchmark of the webhook parser, the daemon's hot path: `cargo bench --bench webhook_parse`.
//!
//! A plain timing loop (no extra dev-dependency): prints the mean time per parse of each shared
//! fixture, compact and pretty, and of a 10,000-alert incident. The target is well under 10 µs
//! for a 3 KB body.

use std::hint::black_box;
use std::time::{Duration, Instant};

use pandabridge::bigpanda::webhook::parse;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures/bigpanda");

fn mean_parse_time(body: &[u8], iterations: u32) -> Duration {
    for _ in 0..iterations / 10 {
        black_box(parse(black_box(body)).ok());
    }
    let started = Instant::now();
    for _ in 0..iterations {
        black_box(parse(black_box(body)).ok());
    }
    started.elapsed() / iterations
}

fn main() {
    let mut bodies: Vec<(String, Vec<u8>)> = Vec::new();
    for name in [
        "01-new.json",
        "02-updated.json",
        "03-closed.json",
        "04-reopen.json",
    ] {
        let Ok(pretty) = std::fs::read(format!("{FIXTURES}/{name}")) else {
            eprintln!("skipping {name}: shared fixtures not found beside the repository");
            continue;
        };
        let compact = serde_json::from_slice::<serde_json::Value>(&pretty)
            .map(|v| v.to_string().into_bytes())
            .unwrap_or_default();
        bodies.push((format!("{name} (pretty)"), pretty));
        bodies.push((format!("{name} (compact)"), compact));
    }
    let alerts: Vec<_> = (0..10_000)
        .map(|i| {
            serde_json::json!({"id": format!("a{i}"), "status": "warning", "primary_property": "host",
                               "tags": [{"name": "host", "value": format!("h{i}")}]})
        })
        .collect();
    let large = serde_json::json!({"event_type": "incident#new",
                                   "incident": {"id": "big", "alerts": alerts}});
    bodies.push(("10,000 alerts".to_owned(), large.to_string().into_bytes()));

    for (label, body) in &bodies {
        assert!(parse(body).is_ok(), "{label} must parse");
        let iterations = if body.len() > 100_000 { 50 } else { 100_000 };
        let mean = mean_parse_time(body, iterations);
        println!(
            "{label:<28} {:>8} bytes  {mean:>10.2?} per parse",
            body.len()
        );
    }
}
