//! Keeps the load tool from rotting: runs `pandabridge-load --smoke` (one short round against the
//! in-process baseline and the real debug daemon) and checks that it succeeds and reports
//! throughput for both targets. A smoke test, not a timed assertion: no figure is checked.

use std::process::Command;

#[test]
fn load_tool_smoke_run_drives_the_baseline_and_the_daemon() {
    let output = Command::new(env!("CARGO_BIN_EXE_pandabridge-load"))
        .args(["--smoke", "--daemon-bin", env!("CARGO_BIN_EXE_pandabridge")])
        .env_remove("RUST_LOG")
        .output()
        .expect("run pandabridge-load");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "pandabridge-load --smoke failed with {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        output.status
    );
    for line in ["baseline:", "daemon:"] {
        assert!(
            stdout
                .lines()
                .any(|l| l.starts_with(line) && l.contains("req/s")),
            "no `{line} … req/s` line in the report:\n{stdout}"
        );
    }
    assert!(
        stdout.contains("ratio daemon/baseline:"),
        "no ratio in:\n{stdout}"
    );
    assert!(stdout.contains("errors: none"), "errors in:\n{stdout}");
}

#[test]
fn load_tool_json_report_is_one_object() {
    let output = Command::new(env!("CARGO_BIN_EXE_pandabridge-load"))
        .args([
            "--smoke",
            "--json",
            "--daemon-bin",
            env!("CARGO_BIN_EXE_pandabridge"),
        ])
        .output()
        .expect("run pandabridge-load");
    assert!(
        output.status.success(),
        "stderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&output.stdout).expect("stdout is one JSON object");
    assert_eq!(report["ok"], true);
    assert!(report["baseline"]["rps"].as_f64().is_some_and(|r| r > 0.0));
    assert!(report["daemon"]["rps"].as_f64().is_some_and(|r| r > 0.0));
    assert!(report["ratio"].as_f64().is_some());
    assert!(report["daemon_rss_kib"].as_u64().is_some_and(|k| k > 0));
}

#[test]
fn seed_store_writes_incidents_the_daemon_then_lists() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let output = Command::new(env!("CARGO_BIN_EXE_pandabridge-load"))
        .args(["--seed-store", data.to_str().unwrap(), "--incidents", "120"])
        .args(["--seed-steps", "3"])
        .output()
        .expect("run pandabridge-load --seed-store");
    assert!(
        output.status.success(),
        "stderr:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    // The store is the daemon's own: it opens it and finds every incident, with its history.
    let store = pandabridge::store::Store::open(
        &pandabridge::daemon::store_dir(&data),
        &pandabridge::store::StoreOptions::default(),
    )
    .unwrap();
    assert_eq!(store.count_alerts().expect("count"), 120);
    let (page, _) = store
        .list_alerts(&Default::default(), 1, None)
        .expect("list");
    assert_eq!(store.history(&page[0].id).unwrap().len(), 3);
    store.close();
}
