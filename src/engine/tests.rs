use super::*;
use crate::lifecycle::{AlertStatus, EventType, ResolvedBy, Snapshot};
use crate::store::StoreOptions;

fn snap(incident: &str, open: bool, version: i64) -> Snapshot {
    Snapshot {
        incident_id: incident.into(),
        event_type: EventType::new("incident#updated"),
        open: Some(open),
        version: Some(version),
        environment_id: None,
        title: "t".into(),
        description: None,
        severity: None,
        status: None,
        details: Default::default(),
    }
}

async fn engine(dir: &std::path::Path, idle: Duration) -> Engine {
    engine_with(
        dir,
        EngineOptions {
            idle_timeout: idle,
            ..Default::default()
        },
    )
    .await
}

async fn engine_with(dir: &std::path::Path, opts: EngineOptions) -> Engine {
    let store = Store::open(dir, &StoreOptions::default()).unwrap();
    Engine::start(store, Metrics::new(), opts).await.unwrap()
}

fn key(incident: &str) -> AlertKey {
    AlertKey {
        source_id: "src".into(),
        incident_id: incident.into(),
    }
}

#[tokio::test]
async fn one_incidents_inputs_apply_in_order_and_alerts_are_shared() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path(), Duration::from_secs(60)).await;
    let mut tasks = Vec::new();
    for i in 0..20 {
        let engine = engine.clone();
        tasks.push(tokio::spawn(async move {
            let incident = format!("inc-{}", i % 4);
            engine
                .apply(&key(&incident), Input::Webhook(snap(&incident, true, i)))
                .await
        }));
    }
    let mut ids = std::collections::HashMap::new();
    for t in tasks {
        let applied = t.await.unwrap().unwrap();
        ids.entry(applied.alert.incident_id.clone())
            .or_insert_with(Vec::new)
            .push(applied.alert.id.clone());
    }
    assert_eq!(ids.len(), 4);
    for v in ids.values() {
        assert_eq!(v.len(), 5);
        assert!(
            v.iter().all(|id| id == &v[0]),
            "one alert per incident: {v:?}"
        );
    }
    assert_eq!(engine.store().count_alerts().expect("count"), 4);
    for i in 0..4 {
        let id = engine
            .store()
            .alert_id_for("src", &format!("inc-{i}"))
            .unwrap()
            .unwrap();
        assert_eq!(engine.store().history(&id).unwrap().len(), 5);
    }
    engine.shutdown().await;
}

#[tokio::test]
async fn idle_actors_retire_and_come_back_with_their_state() {
    let dir = tempfile::tempdir().unwrap();
    // 1 s idle: the idle clock starts when the input is sent to the actor, so the step, its
    // fsync and the count below must fit in it on a loaded machine.
    let engine = engine(dir.path(), Duration::from_secs(1)).await;
    let k = key("inc-idle");
    let first = engine
        .apply(&k, Input::Webhook(snap("inc-idle", true, 1)))
        .await
        .unwrap();
    assert_eq!(first.outcome, Outcome::Created);
    assert_eq!(engine.live_actors().await, 1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while engine.live_actors().await != 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "idle actor never retired"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let resolved = engine
        .apply(
            &k,
            Input::Resolve {
                by: ResolvedBy::Api,
                comment: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(resolved.outcome, Outcome::Resolved);
    assert_eq!(resolved.alert.id, first.alert.id);
    assert_eq!(resolved.alert.status, AlertStatus::Resolved);
    engine.shutdown().await;
}

#[tokio::test]
async fn restart_restores_alerts_and_claims() {
    let dir = tempfile::tempdir().unwrap();
    let k = key("inc-r");
    {
        let engine = engine(dir.path(), Duration::from_secs(60)).await;
        engine
            .apply(&k, Input::Webhook(snap("inc-r", true, 1)))
            .await
            .unwrap();
        engine
            .apply(
                &k,
                Input::Resolve {
                    by: ResolvedBy::User("ann".into()),
                    comment: Some("fixed".into()),
                },
            )
            .await
            .unwrap();
        engine.shutdown().await;
    }
    let engine = engine(dir.path(), Duration::from_secs(60)).await;
    let claim = engine.claim_close(&k, 0).await.unwrap();
    assert!(claim.is_some(), "a pending close survives a restart");
    assert!(engine.claim_close(&k, 1).await.unwrap().is_none());
    assert_eq!(engine.store().outbox().unwrap().len(), 1);
    let missing = engine
        .apply(
            &key("never-seen"),
            Input::Resolve {
                by: ResolvedBy::Api,
                comment: None,
            },
        )
        .await;
    assert_eq!(missing.err(), Some(EngineError::NotFound));
    engine.shutdown().await;
}

#[cfg(feature = "fault-injection")]
#[tokio::test]
async fn a_crash_is_retried_once_and_a_poison_event_is_quarantined() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path(), Duration::from_secs(60)).await;

    // Crashes once: the retry on a fresh actor (restored from the store) applies it.
    let once = format!("{}a", crate::faults::PANIC_ONCE);
    let applied = engine
        .apply(&key(&once), Input::Webhook(snap(&once, true, 1)))
        .await
        .unwrap();
    assert_eq!(applied.outcome, Outcome::Created);
    assert_eq!(engine.metrics().poison_events.get(), 0);

    // Crashes every time: quarantined, kept in history, the incident still gets an alert.
    let always = format!("{}b", crate::faults::PANIC_ALWAYS);
    let q = engine
        .apply(&key(&always), Input::Webhook(snap(&always, true, 1)))
        .await
        .unwrap();
    assert_eq!(q.outcome, Outcome::Quarantined);
    assert_eq!(q.alert.status, AlertStatus::Firing);
    let history = engine.store().history(&q.alert.id).unwrap();
    assert_eq!(history.len(), 1);
    assert_eq!(history[0].outcome, "quarantined");
    assert_eq!(engine.metrics().poison_events.get(), 1);
    assert!(engine.metrics().actor_restarts.get() >= 3);

    // The incident keeps working for inputs that do not crash.
    let resolved = engine
        .apply(
            &key(&always),
            Input::Resolve {
                by: ResolvedBy::Api,
                comment: None,
            },
        )
        .await
        .unwrap();
    assert_eq!(resolved.outcome, Outcome::Resolved);
    assert_eq!(resolved.alert.id, q.alert.id);
    engine.shutdown().await;
}

#[tokio::test]
async fn live_actors_stay_under_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_with(
        dir.path(),
        EngineOptions {
            idle_timeout: Duration::from_secs(600),
            max_live_actors: 20,
            ..Default::default()
        },
    )
    .await;
    for i in 0..100 {
        let incident = format!("inc-{i}");
        engine
            .apply(&key(&incident), Input::Webhook(snap(&incident, true, 1)))
            .await
            .unwrap();
    }
    // Retirement is asynchronous: allow the last retirees to finish.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while engine.live_actors().await > 20 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "live actors never dropped to the cap"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Evicted incidents come back with their state.
    let again = engine
        .apply(&key("inc-0"), Input::Webhook(snap("inc-0", false, 2)))
        .await
        .unwrap();
    assert_eq!(again.outcome, Outcome::Resolved);
    assert_eq!(engine.store().count_alerts().expect("count"), 100);
    engine.shutdown().await;
}

#[tokio::test]
async fn a_failed_flush_is_not_acknowledged_and_leaves_no_trace() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path(), Duration::from_secs(60)).await;
    let k = key("inc-f");
    let first = engine
        .apply(&k, Input::Webhook(snap("inc-f", true, 1)))
        .await
        .unwrap();

    engine.store().faults().set_failing_flushes(true);
    let failed = engine
        .apply(&k, Input::Webhook(snap("inc-f", false, 2)))
        .await;
    assert_eq!(failed.err(), Some(EngineError::Store(StoreError::Injected)));
    // Neither the actor nor the tree kept the unacknowledged step.
    let stored = engine.store().alert(&first.alert.id).unwrap().unwrap();
    assert_eq!(stored, *first.alert);
    assert_eq!(engine.store().history(&first.alert.id).unwrap().len(), 1);

    engine.store().faults().set_failing_flushes(false);
    // BigPanda resends the same event: it applies now, it is not a duplicate.
    let resent = engine
        .apply(&k, Input::Webhook(snap("inc-f", false, 2)))
        .await
        .unwrap();
    assert_eq!(resent.outcome, Outcome::Resolved);
    engine.shutdown().await;
}

/// An actor reads its incident's alert on the first input that needs it. When that read
/// fails, the input fails with it, and the actor must not take the incident for a new one: the
/// next input reads again and finds the alert.
#[tokio::test]
async fn a_failed_first_read_fails_its_input_and_the_next_input_reads_again() {
    let dir = tempfile::tempdir().unwrap();
    let k = key("inc-rd");
    let first = {
        let engine = engine(dir.path(), Duration::from_secs(60)).await;
        let first = engine
            .apply(&k, Input::Webhook(snap("inc-rd", true, 1)))
            .await
            .unwrap();
        engine.shutdown().await;
        first
    };
    // A fresh engine: the incident's actor has not read its alert yet.
    let engine = engine(dir.path(), Duration::from_secs(60)).await;
    engine.store().faults().set_failing_reads(true);
    for _ in 0..2 {
        let failed = engine
            .apply(&k, Input::Webhook(snap("inc-rd", false, 2)))
            .await;
        assert_eq!(failed.err(), Some(EngineError::Store(StoreError::Injected)));
    }
    engine.store().faults().set_failing_reads(false);
    assert_eq!(engine.store().history(&first.alert.id).unwrap().len(), 1);
    let resent = engine
        .apply(&k, Input::Webhook(snap("inc-rd", false, 2)))
        .await
        .unwrap();
    assert_eq!(resent.outcome, Outcome::Resolved);
    assert_eq!(resent.alert.id, first.alert.id);
    assert_eq!(resent.alert.history_len, 2);
    assert_eq!(
        engine.metrics().actor_restarts.get(),
        0,
        "a failed read is an answer, not a crash"
    );
    engine.shutdown().await;
}

#[cfg(feature = "fault-injection")]
// Two workers: the slow step blocks one, as a stuck disk would, while callers' timers run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_input_whose_caller_gave_up_is_never_applied() {
    use crate::faults::{SLOW, SLOW_FOR, SLOW_STARTED};
    use std::sync::atomic::Ordering;
    // The slow step takes 1.5 s and callers wait 1 s (then, if the actor had started on their
    // input, 1 s more): each margin below is 0.5 s, for a busy machine.
    let reply_timeout = Duration::from_secs(1);
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_with(
        dir.path(),
        EngineOptions {
            reply_timeout,
            ..Default::default()
        },
    )
    .await;
    let incident = format!("{SLOW}x");
    let k = key(&incident);
    // The first input is slow: its caller times out, but the actor had started on it, so the
    // caller waits for it and it is applied.
    let slow = {
        let engine = engine.clone();
        let k = k.clone();
        let incident = incident.clone();
        tokio::spawn(async move {
            engine
                .apply(&k, Input::Webhook(snap(&incident, true, 1)))
                .await
        })
    };
    // Once the first slow step has begun, the second queues behind it. (Only this test uses
    // the slow prefix, so the count is this test's.)
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while SLOW_STARTED.load(Ordering::SeqCst) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the slow step never began"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The second waits in the mailbox behind it, past its caller's timeout: abandoned.
    let queued = engine
        .apply(&k, Input::Webhook(snap(&incident, false, 2)))
        .await;
    assert_eq!(queued.err(), Some(EngineError::Timeout));
    let first = slow.await.unwrap().unwrap();
    assert_eq!(first.outcome, Outcome::Created);
    // Let the actor reach the abandoned input: had it run it, another slow step would have
    // been stored by then.
    tokio::time::sleep(SLOW_FOR + reply_timeout).await;
    let stored = engine.store().alert(&first.alert.id).unwrap().unwrap();
    assert_eq!(
        stored.status,
        AlertStatus::Firing,
        "the abandoned close was applied"
    );
    assert_eq!(engine.store().history(&first.alert.id).unwrap().len(), 1);
    engine.shutdown().await;
}

/// Inputs for a live actor go to it directly, past the router; the router must still see them
/// as use, or it retires busy actors as idle and evicts the busiest first.
#[tokio::test]
async fn direct_inputs_keep_an_actor_from_idling_out_or_being_evicted() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine_with(
        dir.path(),
        EngineOptions {
            idle_timeout: Duration::from_secs(1),
            max_live_actors: 4,
            ..Default::default()
        },
    )
    .await;
    let hot = key("inc-hot");
    let mut version = 0;
    // 3 s of an input every 100 ms, each followed by a new incident: over the 1 s idle timeout
    // three times, and over the cap of 4 live actors at every new incident from the fifth on,
    // each time evicting the least recently used (never the hot one, just used).
    for i in 0..30 {
        version += 1;
        engine
            .apply(&hot, Input::Webhook(snap("inc-hot", true, version)))
            .await
            .unwrap();
        let cold = format!("inc-cold-{i}");
        engine
            .apply(&key(&cold), Input::Webhook(snap(&cold, true, 1)))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // One start per cold incident and one for the hot one: it was never retired.
    assert_eq!(engine.metrics().actor_starts.get(), 31);
    engine.shutdown().await;
}

/// Actors retiring all the time (a 50 ms sweep of a 1 ms idle timeout) while inputs keep
/// coming. Beside two webhook callers, each incident has a third caller whose close claims
/// take 40 ms (`CLAIM_SLOW`): a sweep during one finds the actor idle for over 1 ms with
/// inputs queued, so the callers answered after it cast their next inputs while `Retire` waits
/// in the mailbox. Every input must be applied exactly once, and none taken for a crash or
/// handed again (none reached the actor after it was told to retire).
#[cfg(feature = "fault-injection")]
// Four workers: a slow claim blocks one, while the router's sweep and the other callers run.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn inputs_sent_while_actors_retire_are_applied_once_and_never_lost() {
    let dir = tempfile::tempdir().unwrap();
    let engine = engine(dir.path(), Duration::from_millis(1)).await;
    let incident = |i: u64| format!("{}r{i}", crate::faults::CLAIM_SLOW);
    let mut chains = Vec::new();
    for c in 0..6u64 {
        let engine = engine.clone();
        let incident = incident(c / 2);
        chains.push(tokio::spawn(async move {
            let k = key(&incident);
            // The two webhook callers of an incident send its odd and its even versions.
            for n in 1..=40i64 {
                let version = 2 * n - (c % 2) as i64;
                engine
                    .apply(&k, Input::Webhook(snap(&incident, n % 7 != 0, version)))
                    .await
                    .unwrap();
            }
        }));
    }
    for i in 0..3 {
        let engine = engine.clone();
        let k = key(&incident(i));
        chains.push(tokio::spawn(async move {
            for _ in 0..20 {
                engine.claim_close(&k, 0).await.unwrap();
            }
        }));
    }
    for chain in chains {
        chain.await.unwrap();
    }
    let metrics = engine.metrics();
    assert!(
        metrics.actor_starts.get() > 6,
        "the test must make actors retire while inputs arrive: {} starts",
        metrics.actor_starts.get()
    );
    assert_eq!(metrics.actor_restarts.get(), 0);
    assert_eq!(metrics.redeliveries.get(), 0);
    for i in 0..3 {
        let incident = incident(i);
        let id = engine
            .store()
            .alert_id_for("src", &incident)
            .unwrap()
            .unwrap();
        let alert = engine.store().alert(&id).unwrap().unwrap();
        assert_eq!(alert.max_version, Some(80), "{incident}");
        // Every webhook leaves one history entry, applied or found stale.
        assert_eq!(engine.store().history(&id).unwrap().len(), 80, "{incident}");
    }
    engine.shutdown().await;
}
