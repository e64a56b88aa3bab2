use super::*;
use crate::lifecycle::{step, Ctx, EventType, Input, ResolvedBy, Snapshot};

fn snap(incident: &str, open: bool, version: i64) -> Snapshot {
    Snapshot {
        incident_id: incident.into(),
        event_type: EventType::new(if open {
            "incident#new"
        } else {
            "incident#closed"
        }),
        open: Some(open),
        version: Some(version),
        environment_id: Some("env-1".into()),
        title: format!("title {incident}"),
        description: None,
        severity: Some("critical".into()),
        status: Some(if open { "critical" } else { "ok" }.into()),
        details: Default::default(),
    }
}

fn apply(store: &Store, source: &str, input: Input, id: &str) -> Step {
    let prev = store
        .alert_id_for(
            source,
            match &input {
                Input::Webhook(s) => &s.incident_id,
                _ => unreachable!(),
            },
        )
        .unwrap()
        .and_then(|id| store.alert(&id).unwrap());
    let ctx = Ctx {
        now: 1,
        new_alert_id: id.into(),
        source_id: source.into(),
    };
    let s = step(prev.as_ref(), &input, &ctx).unwrap();
    store.write_step(prev.as_ref(), &s).unwrap();
    s
}

#[tokio::test]
async fn step_is_written_atomically_and_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    apply(
        &store,
        "src1",
        Input::Webhook(snap("inc-1", true, 10)),
        "01A",
    );
    apply(
        &store,
        "src1",
        Input::Webhook(snap("inc-1", false, 20)),
        "unused",
    );
    store.durable().await.unwrap().unwrap();
    store.close();
    drop(store);

    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let alert = store.alert("01A").unwrap().unwrap();
    assert_eq!(alert.status, AlertStatus::Resolved);
    assert_eq!(
        store.alert_id_for("src1", "inc-1").unwrap().as_deref(),
        Some("01A")
    );
    let history = store.history("01A").unwrap();
    let outcomes: Vec<_> = history.iter().map(|h| h.outcome.as_str()).collect();
    assert_eq!(outcomes, ["created", "resolved"]);
    // The status index moved with the alert.
    let firing = AlertFilter {
        status: Some(AlertStatus::Firing),
        ..Default::default()
    };
    assert!(store.list_alerts(&firing, 10, None).unwrap().0.is_empty());
}

#[tokio::test]
async fn outbox_follows_enqueue_and_dequeue_effects() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    apply(&store, "s", Input::Webhook(snap("inc", true, 1)), "01B");
    let alert = store.alert("01B").unwrap().unwrap();
    let ctx = Ctx {
        now: 2,
        new_alert_id: String::new(),
        source_id: "s".into(),
    };
    let resolve = Input::Resolve {
        by: ResolvedBy::User("ann".into()),
        comment: None,
    };
    let s = step(Some(&alert), &resolve, &ctx).unwrap();
    store.write_step(Some(&alert), &s).unwrap();
    assert_eq!(store.outbox().unwrap().len(), 1);
    // The echo dequeues the unsent close.
    let s2 = step(Some(&s.alert), &Input::Webhook(snap("inc", false, 3)), &ctx).unwrap();
    store.write_step(Some(&s.alert), &s2).unwrap();
    assert!(store.outbox().unwrap().is_empty());
    assert_eq!(
        store.history("01B").unwrap().len() as u64,
        s2.alert.history_len
    );
}

#[tokio::test]
async fn listing_is_newest_first_and_pages_never_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let ids: Vec<String> = (0..25).map(|i| format!("01C{i:03}")).collect();
    for (i, id) in ids.iter().enumerate() {
        let source = if i % 2 == 0 { "even" } else { "odd" };
        apply(
            &store,
            source,
            Input::Webhook(snap(&format!("inc-{i}"), i % 3 != 0, 1)),
            id,
        );
    }
    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let (page, next) = store
            .list_alerts(&AlertFilter::default(), 7, cursor.as_deref())
            .unwrap();
        seen.extend(page.into_iter().map(|a| a.id));
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    let mut expected = ids.clone();
    expected.reverse();
    assert_eq!(seen, expected);

    let filter = AlertFilter {
        source_id: Some("odd".into()),
        status: Some(AlertStatus::Firing),
        ..Default::default()
    };
    let (page, next) = store.list_alerts(&filter, 100, None).unwrap();
    assert!(next.is_none());
    let expected: Vec<_> = (0..25)
        .rev()
        .filter(|i| i % 2 == 1 && i % 3 != 0)
        .map(|i| format!("01C{i:03}"))
        .collect();
    assert_eq!(
        page.iter().map(|a| a.id.clone()).collect::<Vec<_>>(),
        expected
    );

    let by_incident = AlertFilter {
        incident_id: Some("inc-4".into()),
        ..Default::default()
    };
    let (page, _) = store.list_alerts(&by_incident, 10, None).unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].id, "01C004");
}

#[tokio::test]
async fn injected_fault_fails_writes_and_flushes_until_cleared() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    store.faults().set_failing(true);
    let s = step(
        None,
        &Input::Webhook(snap("inc", true, 1)),
        &Ctx {
            now: 1,
            new_alert_id: "01D".into(),
            source_id: "s".into(),
        },
    )
    .unwrap();
    assert_eq!(store.write_step(None, &s).err(), Some(StoreError::Injected));
    assert_eq!(store.durable().await.unwrap(), Err(StoreError::Injected));
    assert!(store.alert("01D").unwrap().is_none());
    assert!(!store.healthy());
    store.faults().set_failing(false);
    // With no traffic at all, the flusher's probe notices the disk is back.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !store.healthy() {
        assert!(
            std::time::Instant::now() < deadline,
            "store never recovered"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    store.write_step(None, &s).unwrap();
    store.durable().await.unwrap().unwrap();
    assert!(store.alert("01D").unwrap().is_some());
}

#[tokio::test]
async fn many_concurrent_writers_share_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let mut tasks = Vec::new();
    for i in 0..64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let s = step(
                None,
                &Input::Webhook(snap(&format!("inc-{i}"), true, 1)),
                &Ctx {
                    now: 1,
                    new_alert_id: format!("01E{i:03}"),
                    source_id: "s".into(),
                },
            )
            .unwrap();
            store.write_step(None, &s).unwrap();
            store.durable().await.unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(store.count_alerts(), 64);
}

#[tokio::test]
async fn undo_restores_every_key_a_step_touched() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let ctx = |id: &str| Ctx {
        now: 1,
        new_alert_id: id.into(),
        source_id: "s".into(),
    };
    // A created alert disappears entirely, indexes included.
    let created = step(None, &Input::Webhook(snap("inc", true, 1)), &ctx("01F")).unwrap();
    let undo = store.write_step(None, &created).unwrap();
    store.undo(undo).unwrap();
    assert!(store.alert("01F").unwrap().is_none());
    assert!(store.alert_id_for("s", "inc").unwrap().is_none());
    assert!(store.history("01F").unwrap().is_empty());
    assert!(store
        .list_alerts(&AlertFilter::default(), 10, None)
        .unwrap()
        .0
        .is_empty());

    // A resolve (status index move, history entry, outbox entry) is reverted to the firing alert.
    store.write_step(None, &created).unwrap();
    let resolve = Input::Resolve {
        by: ResolvedBy::Api,
        comment: None,
    };
    let resolved = step(Some(&created.alert), &resolve, &ctx("")).unwrap();
    let undo = store.write_step(Some(&created.alert), &resolved).unwrap();
    assert_eq!(store.outbox().unwrap().len(), 1);
    store.undo(undo).unwrap();
    assert_eq!(store.alert("01F").unwrap().unwrap(), created.alert);
    assert!(store.outbox().unwrap().is_empty());
    assert_eq!(store.history("01F").unwrap().len(), 1);
    let firing = AlertFilter {
        status: Some(AlertStatus::Firing),
        ..Default::default()
    };
    assert_eq!(store.list_alerts(&firing, 10, None).unwrap().0.len(), 1);
    let resolved_filter = AlertFilter {
        status: Some(AlertStatus::Resolved),
        ..Default::default()
    };
    assert!(store
        .list_alerts(&resolved_filter, 10, None)
        .unwrap()
        .0
        .is_empty());
}

#[test]
fn store_dir_and_files_are_private_even_when_created_with_a_loose_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("store");
    // A store made by an older build: world-readable directory and files.
    std::fs::create_dir(&path).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    let store = Store::open(&path, &StoreOptions::default()).unwrap();
    store.close();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o700);
    let mut seen = 0;
    for entry in std::fs::read_dir(&path).unwrap() {
        let p = entry.unwrap().path();
        let want = if p.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&p), want, "{}", p.display());
        seen += 1;
    }
    assert!(seen >= 2, "sled wrote no files?");
}
