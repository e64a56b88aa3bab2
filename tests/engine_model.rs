//! The real engine against the reference model of `LIFECYCLE.md` ("the real engine must agree
//! with the model after every step").
//!
//! Each case opens a sled store in a fresh temporary directory, starts the engine (router,
//! incident actors, group commit) on a real multi-thread tokio runtime, and runs a random
//! sequence over two or three incidents, interleaved: webhooks from each incident's snapshot
//! pool (duplicates, stale and missing versions, open, closed and silent), local resolves,
//! operator retries, close results for the current or an older epoch with every reply kind,
//! restarts (shutdown, store closed and reopened from the same directory, a new engine whose idle
//! timeout is 300 s, 50 ms or 1 ms), and waits that let idle actors retire, so that the next input
//! respawns the actor from the store or races its retirement. The model is the one
//! `lifecycle_model.rs` checks the pure `step` against (`support/model.rs`).
//!
//! After every operation, for every incident: the outcome the engine returned is the model's;
//! the alert it returned is the stored one; the stored alert agrees with the model; the stored
//! history is as long as `history_len`, only ever grows, and its new entries describe the input;
//! the stored outbox is the model's; `claim_close` agrees with the model for every epoch and
//! claims exactly the stored alert; and the store keeps one alert per (source, incident), whose
//! id never changes. At the end the outbox is driven to completion through `claim_close`, and
//! every resolve here must end closed or visibly failed.
//!
//! Cost: every case opens sled and every step waits for an fsync, so the default is 48 cases of
//! up to 30 operations; `PROPTEST_CASES` overrides it. Measured on the shared 2-core dev machine,
//! debug build, `cargo test --test engine_model`: 6-8 s for the 48 default cases (most of it
//! waiting on fsyncs and the idle-timeout pauses, not CPU); `PROPTEST_CASES=400` took 59 s.

mod support;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use pandabridge::engine::{AlertKey, Engine, EngineError, EngineOptions};
use pandabridge::lifecycle::{
    Alert, CloseReply, HistoryEvent, Input, Outbound, OutboundKey, Outcome, Snapshot,
};
use pandabridge::metrics::Metrics;
use pandabridge::store::{AlertFilter, Store, StoreOptions};
use proptest::prelude::*;
use proptest::test_runner::{FileFailurePersistence, TestCaseError, TestRunner};
use support::model::{
    check_alert, check_outbox, check_resolve_settled, model_input, op, snapshot_pool, Expect,
    Model, Op,
};

/// The incidents a case can touch. Two share an incident id under different sources: still two
/// alerts, since an alert is per (source, incident).
const KEYS: [(&str, &str); 3] = [("src-a", "inc-1"), ("src-a", "inc-2"), ("src-b", "inc-1")];

/// The engine's idle timeout, chosen per start.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Idle {
    /// Actors never retire within a case.
    Long,
    /// Actors retire between operations when a case waits for it.
    Short,
    /// Every sweep (each 50 ms) retires whatever the current operation is not using, so inputs
    /// also arrive while their actor is retiring. The window is microseconds wide, so only some
    /// cases hit it (measured about once per 48 cases when every input still went through the
    /// router; not re-measured since inputs for live actors skip it).
    Instant,
}

impl Idle {
    fn timeout(self) -> Duration {
        match self {
            Idle::Long => Duration::from_secs(300),
            Idle::Short => Duration::from_millis(50),
            Idle::Instant => Duration::from_millis(1),
        }
    }
}

fn idle() -> impl Strategy<Value = Idle> {
    prop::sample::select(vec![Idle::Long, Idle::Short, Idle::Instant])
}

/// How long retirement may take before it counts as never happening.
const RETIRE_DEADLINE: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------------------------
// Operations
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum EngineOp {
    /// One of the model's operations on incident `inc` (modulo the case's incident count). The
    /// model's `Restart` restarts the whole engine, keeping its idle timeout.
    On { inc: usize, op: Op },
    /// Restart with a new idle timeout.
    Restart { idle: Idle },
    /// Unless the idle timeout is long, wait until every actor has retired; otherwise a no-op.
    Retire,
    /// A pause about as long as the short idle timeout, so the next input may race a retirement.
    Sleep(u64),
}

fn engine_op() -> impl Strategy<Value = EngineOp> {
    prop_oneof![
        14 => (0usize..3, op()).prop_map(|(inc, op)| EngineOp::On { inc, op }),
        1 => idle().prop_map(|idle| EngineOp::Restart { idle }),
        1 => Just(EngineOp::Retire),
        1 => (20u64..=80).prop_map(EngineOp::Sleep),
    ]
}

#[derive(Debug, Clone)]
struct Case {
    incidents: usize,
    /// One snapshot pool per incident of `KEYS`.
    pools: Vec<Vec<Snapshot>>,
    ops: Vec<EngineOp>,
    idle: Idle,
    /// For the finishing phase: true answers 2xx, false answers 404.
    finish_delivered: bool,
}

fn case() -> impl Strategy<Value = Case> {
    (
        2usize..=3,
        prop::collection::vec(snapshot_pool(), KEYS.len()),
        prop::collection::vec(engine_op(), 1..=30),
        idle(),
        any::<bool>(),
    )
        .prop_map(|(incidents, pools, ops, idle, finish_delivered)| Case {
            incidents,
            pools,
            ops,
            idle,
            finish_delivered,
        })
}

// ---------------------------------------------------------------------------------------------
// The harness: a real engine over a real store, restartable
// ---------------------------------------------------------------------------------------------

struct Running {
    engine: Engine,
    store: Store,
    idle: Idle,
}

async fn start(dir: &Path, idle: Idle) -> Result<Running, TestCaseError> {
    let store = Store::open(dir, &StoreOptions::default())
        .map_err(|e| TestCaseError::fail(format!("cannot open the store: {e}")))?;
    let idle_timeout = idle.timeout();
    let engine = Engine::start(
        store.clone(),
        Metrics::new(),
        EngineOptions {
            idle_timeout,
            ..Default::default()
        },
    )
    .await
    .map_err(TestCaseError::fail)?;
    Ok(Running {
        engine,
        store,
        idle,
    })
}

/// Stops the engine and lets go of every handle on the store, so the directory can be reopened.
async fn stop(running: Running) {
    running.engine.shutdown().await;
    drop(running);
}

/// What the test knows about one incident.
#[derive(Default)]
struct Incident {
    model: Option<Model>,
    /// Set by the webhook that created the alert; one alert per incident, forever.
    alert_id: Option<String>,
    /// The stored history as last read: later reads must extend it.
    history: Vec<HistoryEvent>,
}

fn alert_key(k: usize) -> AlertKey {
    AlertKey {
        source_id: KEYS[k].0.into(),
        incident_id: KEYS[k].1.into(),
    }
}

fn store_err<E: std::fmt::Display>(what: &str) -> impl FnOnce(E) -> TestCaseError + '_ {
    move |e| TestCaseError::fail(format!("{what}: {e}"))
}

/// The first history entry an input leaves (rule 11).
fn check_first_entry(
    input: &Input,
    outcome: Outcome,
    entries: &[HistoryEvent],
    what: &str,
) -> Result<(), TestCaseError> {
    prop_assert!(!entries.is_empty(), "no history entry for {}", what);
    let first = &entries[0];
    match input {
        Input::Webhook(_) => {
            prop_assert_eq!(first.kind.as_str(), "webhook", "{}", what);
            prop_assert_eq!(first.outcome.as_str(), outcome.as_str(), "{}", what);
        }
        Input::Resolve { .. } => {
            prop_assert_eq!(first.kind.as_str(), "resolve", "{}", what);
            prop_assert_eq!(first.outcome.as_str(), outcome.as_str(), "{}", what);
        }
        Input::CloseResult { .. } => prop_assert!(
            first.kind == "close_attempt" || first.kind == "close_failed",
            "close reply recorded as {} by {}",
            first.kind,
            what
        ),
        Input::RetryClose => {
            prop_assert_eq!(first.kind.as_str(), "retry_close", "{}", what);
            prop_assert_eq!(first.outcome.as_str(), outcome.as_str(), "{}", what);
        }
        Input::Quarantine { .. } => {
            prop_assert_eq!(first.kind.as_str(), "webhook", "{}", what);
            prop_assert_eq!(first.outcome.as_str(), "quarantined", "{}", what);
        }
    }
    Ok(())
}

/// Sends one input as the daemon would: webhooks by incident, local actions by alert id once
/// the alert exists. Returns what the engine answered, in the model's terms.
async fn send(
    running: &Running,
    k: usize,
    incident: &Incident,
    input: Input,
) -> Result<(Expect, Option<Alert>), TestCaseError> {
    let result = match (&input, &incident.alert_id) {
        (Input::Webhook(_), _) | (_, None) => running.engine.apply(&alert_key(k), input).await,
        (_, Some(id)) => running.engine.apply_to_alert(id, input).await,
    };
    match result {
        Ok(applied) => Ok((
            Expect::Outcome(applied.outcome),
            Some(std::sync::Arc::unwrap_or_clone(applied.alert)),
        )),
        Err(EngineError::NotFound) => Ok((Expect::NoAlert, None)),
        Err(e) => Err(TestCaseError::fail(format!("the engine failed: {e}"))),
    }
}

/// Everything that must hold after an operation. `touched` is the incident the operation went
/// to, whose history may have grown; every other history must be exactly as it was.
async fn check_all(
    running: &Running,
    incidents: &mut [Incident],
    touched: Option<usize>,
    what: &str,
) -> Result<(), TestCaseError> {
    let store = &running.store;
    let outbox = store.outbox().map_err(store_err("reading the outbox"))?;
    let mut created = 0;
    for (k, incident) in incidents.iter_mut().enumerate() {
        let key = alert_key(k);
        let what = format!("{what}, incident {k} {}/{}", key.source_id, key.incident_id);
        let stored_id = store
            .alert_id_for(&key.source_id, &key.incident_id)
            .map_err(store_err("reading the incident index"))?;
        // One alert per incident: the index points at the alert the first webhook created.
        prop_assert_eq!(&stored_id, &incident.alert_id, "alert id of {}", what);
        let Some(model) = &incident.model else {
            prop_assert!(
                running
                    .engine
                    .claim_close(&key, 0)
                    .await
                    .map_err(store_err("claim_close"))?
                    .is_none(),
                "claimed a close of an incident never seen, {}",
                what
            );
            continue;
        };
        created += 1;
        let id = incident.alert_id.clone().unwrap_or_default();
        let Some(alert) = store.alert(&id).map_err(store_err("reading the alert"))? else {
            return Err(TestCaseError::fail(format!("alert {id} missing, {what}")));
        };
        prop_assert_eq!(&alert.id, &id);
        prop_assert_eq!(&alert.source_id, &key.source_id, "{}", what);
        prop_assert_eq!(&alert.incident_id, &key.incident_id, "{}", what);
        check_alert(model, &alert, &what)?;
        let (listed, _) = store
            .list_alerts(
                &AlertFilter {
                    source_id: Some(key.source_id.clone()),
                    incident_id: Some(key.incident_id.clone()),
                    ..AlertFilter::default()
                },
                10,
                None,
            )
            .map_err(store_err("listing alerts"))?;
        prop_assert_eq!(
            listed.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
            vec![id.as_str()],
            "listing by source and incident, {}",
            what
        );

        // Rule 11: the history survives restarts, only grows, and history_len counts it.
        let history = store.history(&id).map_err(store_err("reading history"))?;
        prop_assert_eq!(
            history.len() as u64,
            alert.history_len,
            "stored history against history_len, {}",
            what
        );
        if touched == Some(k) {
            prop_assert!(
                history.starts_with(&incident.history),
                "history rewritten, {}",
                what
            );
        } else {
            prop_assert_eq!(
                &history,
                &incident.history,
                "history of an untouched incident"
            );
        }
        incident.history = history;

        let mine: BTreeSet<OutboundKey> = outbox
            .iter()
            .filter(|m| m.key().alert_id == id)
            .map(Outbound::key)
            .collect();
        check_outbox(model, &alert, &mine, &what)?;
        for m in outbox.iter().filter(|m| m.key().alert_id == id) {
            let Outbound::Close {
                source_id,
                incident_id,
                ..
            } = m;
            prop_assert_eq!(source_id, &key.source_id, "outbox entry of {}", what);
            prop_assert_eq!(incident_id, &key.incident_id, "outbox entry of {}", what);
        }

        // Rule 9: the sender's claim agrees with the model, and claims the stored alert.
        for epoch in 0..=alert.epoch + 1 {
            let claim = running
                .engine
                .claim_close(&key, epoch)
                .await
                .map_err(store_err("claim_close"))?;
            prop_assert_eq!(
                claim.is_some(),
                model.owes_close(epoch),
                "claim_close({}), {}",
                epoch,
                what
            );
            if let Some(claimed) = claim {
                prop_assert_eq!(&claimed, &alert, "claimed alert against stored, {}", what);
            }
        }
    }
    prop_assert_eq!(
        store.count_alerts().expect("count"),
        created,
        "alert count after {}",
        what
    );
    let owed: usize = incidents
        .iter()
        .filter_map(|i| i.model.as_ref())
        .map(|m| m.outbox.len())
        .sum();
    prop_assert_eq!(outbox.len(), owed, "outbox size after {}", what);
    Ok(())
}

/// Runs one input on incident `k` through the model and the engine, and compares their answers.
async fn step(
    running: &Running,
    incidents: &mut [Incident],
    k: usize,
    input: Input,
    expect: Expect,
    what: &str,
) -> Result<(), TestCaseError> {
    let before = incidents[k].history.len();
    let (got, returned) = send(running, k, &incidents[k], input.clone()).await?;
    prop_assert_eq!(&got, &expect, "outcome of {}", what);
    if let (Expect::Outcome(outcome), Some(returned)) = (got, returned) {
        if outcome == Outcome::Created {
            prop_assert!(incidents[k].alert_id.is_none(), "created twice: {}", what);
            incidents[k].alert_id = Some(returned.id.clone());
        }
        prop_assert_eq!(Some(&returned.id), incidents[k].alert_id.as_ref());
        // `apply` answers only once the step is durable: the store already has it.
        let stored = running
            .store
            .alert(&returned.id)
            .map_err(store_err("reading the alert"))?;
        prop_assert_eq!(
            stored.as_ref(),
            Some(&returned),
            "returned vs stored, {}",
            what
        );
        let history = running
            .store
            .history(&returned.id)
            .map_err(store_err("reading history"))?;
        prop_assert!(history.len() >= before, "history shrank, {}", what);
        check_first_entry(&input, outcome, &history[before..], what)?;
    }
    check_all(running, incidents, Some(k), what).await
}

/// Stops the running engine, then starts another on the same directory. The old engine and store
/// are gone before the new open, as after a process restart.
async fn restart(dir: &Path, slot: &mut Option<Running>, idle: Idle) -> Result<(), TestCaseError> {
    if let Some(old) = slot.take() {
        stop(old).await;
    }
    *slot = Some(start(dir, idle).await?);
    Ok(())
}

fn live(slot: &Option<Running>) -> Result<&Running, TestCaseError> {
    slot.as_ref()
        .ok_or_else(|| TestCaseError::fail("no engine running"))
}

async fn run_case(case: Case) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().map_err(store_err("temp dir"))?;
    let pools: Vec<Vec<Snapshot>> = case
        .pools
        .iter()
        .enumerate()
        .map(|(k, pool)| {
            pool.iter()
                .map(|s| Snapshot {
                    incident_id: KEYS[k].1.into(),
                    ..s.clone()
                })
                .collect()
        })
        .collect();
    let mut incidents: Vec<Incident> = (0..case.incidents).map(|_| Incident::default()).collect();
    let mut slot = Some(start(dir.path(), case.idle).await?);

    let result = async {
        for (i, eop) in case.ops.iter().enumerate() {
            let what = format!("op {i} {eop:?}");
            let running = live(&slot)?;
            match eop {
                EngineOp::On { inc, op } => {
                    let k = inc % case.incidents;
                    match model_input(&mut incidents[k].model, op, &pools[k], i) {
                        Some((input, expect)) => {
                            step(running, &mut incidents, k, input, expect, &what).await?
                        }
                        None => {
                            let idle = running.idle;
                            restart(dir.path(), &mut slot, idle).await?;
                            check_all(live(&slot)?, &mut incidents, None, &what).await?;
                        }
                    }
                }
                EngineOp::Restart { idle } => {
                    restart(dir.path(), &mut slot, *idle).await?;
                    check_all(live(&slot)?, &mut incidents, None, &what).await?;
                }
                EngineOp::Retire => {
                    if running.idle != Idle::Long {
                        let deadline = tokio::time::Instant::now() + RETIRE_DEADLINE;
                        while running.engine.live_actors().await != 0 {
                            prop_assert!(
                                tokio::time::Instant::now() < deadline,
                                "idle actors never retired"
                            );
                            tokio::time::sleep(Duration::from_millis(10)).await;
                        }
                    }
                    check_all(running, &mut incidents, None, &what).await?;
                }
                EngineOp::Sleep(ms) => {
                    tokio::time::sleep(Duration::from_millis(*ms)).await;
                    check_all(running, &mut incidents, None, &what).await?;
                }
            }
        }
        finish(live(&slot)?, &mut incidents, case.finish_delivered).await
    }
    .await;
    if let Some(running) = slot.take() {
        stop(running).await;
    }
    result
}

/// Invariant (d): every resolve here ends closed or visibly failed. Drives the outbox to
/// completion as the BigPanda client would, claiming each entry first.
async fn finish(
    running: &Running,
    incidents: &mut [Incident],
    delivered: bool,
) -> Result<(), TestCaseError> {
    for round in 0.. {
        let outbox = running
            .store
            .outbox()
            .map_err(store_err("reading the outbox"))?;
        let Some(entry) = outbox.first() else { break };
        prop_assert!(
            round < 2 * KEYS.len(),
            "the outbox never drains: {:?}",
            outbox
        );
        let Outbound::Close {
            alert_id,
            source_id,
            incident_id,
            epoch,
            ..
        } = entry;
        let Some(k) = KEYS
            .iter()
            .position(|(s, i)| s == source_id && i == incident_id)
            .filter(|k| *k < incidents.len())
        else {
            return Err(TestCaseError::fail(format!(
                "outbox entry {entry:?} of no incident"
            )));
        };
        prop_assert_eq!(Some(alert_id), incidents[k].alert_id.as_ref());
        let claim = running
            .engine
            .claim_close(&alert_key(k), *epoch)
            .await
            .map_err(store_err("claim_close"))?;
        prop_assert!(
            claim.is_some(),
            "outbox entry {:?} would not be sent",
            entry
        );
        let reply = if delivered {
            CloseReply::Delivered { status: 202 }
        } else {
            CloseReply::NotFound { status: 404 }
        };
        let Some(model) = incidents[k].model.as_mut() else {
            return Err(TestCaseError::fail(format!(
                "outbox entry {entry:?} before any alert"
            )));
        };
        let expect = Expect::Outcome(model.close_reply(*epoch, &reply));
        let input = Input::CloseResult {
            epoch: *epoch,
            reply,
            duration_ms: 5,
        };
        step(running, incidents, k, input, expect, "the finishing phase").await?;
    }
    for (k, incident) in incidents.iter().enumerate() {
        let Some(id) = &incident.alert_id else {
            continue;
        };
        let Some(alert) = running
            .store
            .alert(id)
            .map_err(store_err("reading the alert"))?
        else {
            return Err(TestCaseError::fail(format!(
                "alert {id} missing at the end"
            )));
        };
        check_resolve_settled(&alert, &format!("incident {k}"))?;
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(48)
}

#[test]
fn engine_agrees_with_the_model() {
    // One runtime for the whole run; every case shuts its engine down and drops its store.
    let runtime = Arc::new(
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("building the tokio runtime"),
    );
    let config = ProptestConfig {
        cases: cases(),
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/engine_model.txt",
        ))),
        ..ProptestConfig::default()
    };
    let mut runner = TestRunner::new(config);
    let result = runner.run(&case(), |case| {
        runtime.block_on(async {
            match tokio::time::timeout(Duration::from_secs(120), run_case(case)).await {
                Ok(result) => result,
                Err(_) => Err(TestCaseError::fail("the case did not finish in 120 s")),
            }
        })
    });
    if let Err(e) = result {
        panic!("{e}\n{runner}");
    }
}
