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

/// Writes a step and waits until it is durable (and so readable); returns the stored alert.
async fn commit(store: &Store, prev: Option<&StoredAlert>, s: &Step) -> StoredAlert {
    let (durable, tail) = store.write_step(prev, s).unwrap();
    durable.await.unwrap().unwrap();
    StoredAlert::after(Arc::new(s.alert.clone()), tail)
}

async fn apply(store: &Store, source: &str, input: Input, id: &str) -> Step {
    let incident = match &input {
        Input::Webhook(s) => s.incident_id.clone(),
        _ => unreachable!(),
    };
    let prev = store.load_alert(source, &incident).unwrap();
    let ctx = Ctx {
        now: 1,
        new_alert_id: id.into(),
        source_id: source.into(),
    };
    let s = step(prev.as_ref().map(|p| &*p.alert), &input, &ctx).unwrap();
    commit(store, prev.as_ref(), &s).await;
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
    )
    .await;
    apply(
        &store,
        "src1",
        Input::Webhook(snap("inc-1", false, 20)),
        "unused",
    )
    .await;
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
    apply(&store, "s", Input::Webhook(snap("inc", true, 1)), "01B").await;
    let stored = store.load_alert("s", "inc").unwrap().unwrap();
    let alert = stored.alert.clone();
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
    let resolved = commit(&store, Some(&stored), &s).await;
    assert_eq!(store.outbox().unwrap().len(), 1);
    // The echo dequeues the unsent close.
    let s2 = step(Some(&s.alert), &Input::Webhook(snap("inc", false, 3)), &ctx).unwrap();
    commit(&store, Some(&resolved), &s2).await;
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
        )
        .await;
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
    assert_eq!(
        store.write_step(None, &s).map(|_| ()).err(),
        Some(StoreError::Injected)
    );
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
    commit(&store, None, &s).await;
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
            store.write_step(None, &s).unwrap().0.await.unwrap()
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(store.count_alerts().expect("count"), 64);
    // The name's claim: writers share commits (one fdatasync takes far longer than 64 appends).
    let (commits, writes) = store.flush_stats();
    assert_eq!(writes, 64);
    assert!(commits < 64, "{commits} commits for 64 writers");
}

#[tokio::test]
async fn a_step_whose_flush_fails_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let ctx = |id: &str| Ctx {
        now: 1,
        new_alert_id: id.into(),
        source_id: "s".into(),
    };
    let failed = |store: &Store, prev: Option<&StoredAlert>, s: &Step| {
        store.faults().set_failing_flushes(true);
        let (durable, _) = store.write_step(prev, s).unwrap();
        async move {
            assert_eq!(durable.await.unwrap(), Err(StoreError::Injected));
        }
    };
    // A created alert never appears, indexes included.
    let created = step(None, &Input::Webhook(snap("inc", true, 1)), &ctx("01F")).unwrap();
    failed(&store, None, &created).await;
    store.faults().set_failing_flushes(false);
    assert!(store.alert("01F").unwrap().is_none());
    assert!(store.alert_id_for("s", "inc").unwrap().is_none());
    assert!(store.history("01F").unwrap().is_empty());
    assert!(store
        .list_alerts(&AlertFilter::default(), 10, None)
        .unwrap()
        .0
        .is_empty());

    // A resolve (status index move, history entry, outbox entry) leaves the firing alert.
    let stored = commit(&store, None, &created).await;
    let resolve = Input::Resolve {
        by: ResolvedBy::Api,
        comment: None,
    };
    let resolved = step(Some(&created.alert), &resolve, &ctx("")).unwrap();
    failed(&store, Some(&stored), &resolved).await;
    store.faults().set_failing_flushes(false);
    let check = |store: &Store| {
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
    };
    check(&store);
    // Nor does the failed step come back from the write-ahead log after a restart.
    store.close();
    drop(store);
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    check(&store);
}

/// Copies a live store's files, as a crash at this moment would leave them. The WAL goes
/// first: a checkpoint retires WAL files only after syncing sled, so whatever a checkpoint
/// does during the copy, a step is in the copied WAL or in the copied sled files (a file it
/// renamed or deleted meanwhile is skipped).
fn crash_image(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    let mut entries: Vec<_> = std::fs::read_dir(from)
        .unwrap()
        .map(|e| e.unwrap())
        .collect();
    entries.sort_by_key(|e| e.file_name() != "wal");
    for entry in entries {
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            crash_image(&entry.path(), &target);
        } else {
            match std::fs::copy(entry.path(), target) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                copied => {
                    copied.unwrap();
                }
            }
        }
    }
}

#[tokio::test]
async fn acknowledged_steps_survive_a_crash_before_any_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live");
    let store = Store::open(&live, &StoreOptions::default()).unwrap();
    let mut last = None;
    for i in 0..40 {
        let s = apply(
            &store,
            "s",
            Input::Webhook(snap("inc", i % 2 == 0, i)),
            "01G",
        )
        .await;
        last = Some(s.alert);
    }
    // Acknowledged, but sled itself has not been flushed: only the WAL holds these steps.
    let image = dir.path().join("image");
    crash_image(&live, &image);
    let recovered = Store::open(&image, &StoreOptions::default()).unwrap();
    assert_eq!(recovered.alert("01G").unwrap(), last);
    assert_eq!(recovered.history("01G").unwrap().len(), 40);
    // Replayed and checkpointed: the only log file is the fresh one (beside spares).
    let logs = std::fs::read_dir(image.join("wal"))
        .unwrap()
        .filter(|e| {
            let name = e.as_ref().unwrap().file_name();
            !name.to_string_lossy().ends_with(".spare")
        })
        .count();
    assert_eq!(logs, 1);
    store.close();
}

/// A group is answered once it is in the write-ahead log, before sled applies it. When sled
/// then fails, the acknowledged step must not be lost, nor a read serve a tree without it: the
/// store refuses reads and writes, and the next open applies the group from the log.
#[tokio::test]
async fn a_step_sled_could_not_apply_is_refused_to_readers_and_applied_by_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let created = apply(&store, "s", Input::Webhook(snap("inc", true, 1)), "01F").await;
    assert_eq!(created.alert.status, AlertStatus::Firing);

    // Read first: a read waits until every answered group is applied, so the switch below
    // cannot catch the first step's group, which is answered before it is applied.
    store.load_alert("s", "inc").unwrap();
    store.faults().set_failing_applies(true);
    // Acknowledged: `apply` waits until the step is durable.
    let closed = apply(&store, "s", Input::Webhook(snap("inc", false, 2)), "01F").await;
    assert_eq!(store.alert("01F").err(), Some(StoreError::Injected));
    assert_eq!(
        store.load_alert("s", "inc").err(),
        Some(StoreError::Injected)
    );
    assert!(!store.healthy(), "/readyz must say the store refuses work");
    // The switch off, the store still refuses: what sled failed to apply is only in the log.
    store.faults().set_failing_applies(false);
    assert_eq!(store.alert("01F").err(), Some(StoreError::Injected));
    store.close();
    drop(store);

    let reopened = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let alert = reopened.alert("01F").unwrap().unwrap();
    assert_eq!(alert.status, AlertStatus::Resolved);
    assert_eq!(alert, closed.alert);
    assert_eq!(reopened.history("01F").unwrap().len(), 2);
    reopened.close();
}

/// Writes one more step and reads it back: once this returns, the apply thread has finished
/// any fold that earlier groups started (it folds between groups), and with folding turned
/// off first, it starts none after this one.
async fn settle_folds(store: &Store, incident: &str, version: i64, id: &str) {
    store.set_fold_after_bytes(u64::MAX);
    apply(
        store,
        "s",
        Input::Webhook(snap(incident, true, version)),
        id,
    )
    .await;
    store.alert(id).unwrap().unwrap();
}

/// sled writes its snapshot only when it opens, so a start after a crash replays everything it
/// logged since. Once `fold_after_bytes` have been applied, the store opens sled anew while it
/// runs. Reads on another thread go on through the folds, never fail and never go back in
/// time; every step is readable once acknowledged; sled's snapshot moves forward; and a crash
/// image taken after the folds holds every step.
#[tokio::test]
async fn the_log_is_folded_while_the_store_runs_and_reads_and_writes_go_on() {
    use std::sync::atomic::AtomicBool;
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live");
    let opts = StoreOptions {
        fold_after_bytes: 1,
        ..StoreOptions::default()
    };
    let store = Store::open(&live, &opts).unwrap();
    let opened_with = newest_snapshot(&live);
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let (store, stop) = (store.clone(), Arc::clone(&stop));
        std::thread::spawn(move || {
            let (mut seen, mut reads) = (0, 0u64);
            while !stop.load(Ordering::Relaxed) {
                match store.alert("01D") {
                    Ok(Some(a)) => {
                        assert!(a.history_len >= seen, "a read went back in time");
                        seen = a.history_len;
                    }
                    Ok(None) => assert_eq!(seen, 0, "a read lost the alert"),
                    Err(e) => panic!("a read failed during a fold: {e}"),
                }
                reads += 1;
            }
            reads
        })
    };
    let mut last = None;
    for i in 0..30 {
        let s = apply(
            &store,
            "s",
            Input::Webhook(snap("inc", i % 2 == 0, i)),
            "01D",
        )
        .await;
        assert_eq!(store.alert("01D").unwrap().as_ref(), Some(&s.alert));
        last = Some(s.alert);
    }
    stop.store(true, Ordering::Relaxed);
    assert!(reader.join().unwrap() > 0);
    settle_folds(&store, "other", 1, "01E").await;
    let (folds, took) = store.fold_stats();
    assert!(folds > 0, "no fold ran");
    assert!(took > Duration::ZERO);
    assert!(
        newest_snapshot(&live) > opened_with,
        "a fold writes a snapshot of a later log position"
    );

    let image = dir.path().join("image");
    crash_image(&live, &image);
    let recovered = Store::open(&image, &StoreOptions::default()).unwrap();
    assert_eq!(recovered.alert("01D").unwrap(), last);
    assert_eq!(recovered.history("01D").unwrap().len(), 30);
    assert!(recovered.alert("01E").unwrap().is_some());
    recovered.close();
    store.close();
}

/// A fold drops sled's handle before it opens the store again. If that open keeps failing,
/// the store must refuse reads and writes (not serve a missing tree, nor take writes it cannot
/// apply), `/readyz` must say so, and the next open must have every acknowledged step.
#[tokio::test]
async fn a_fold_that_cannot_open_the_store_again_refuses_work_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions {
        fold_after_bytes: u64::MAX,
        ..StoreOptions::default()
    };
    let store = Store::open(dir.path(), &opts).unwrap();
    apply(&store, "s", Input::Webhook(snap("inc", true, 1)), "01H").await;
    // Read first: a read waits until the first step's group is applied, so the switches below
    // catch the second step's group only.
    store.load_alert("s", "inc").unwrap();
    store.faults().set_failing_folds(true);
    // From the next group on, every group is past the forced threshold and folds.
    store.set_fold_after_bytes(1);
    let closed = apply(&store, "s", Input::Webhook(snap("inc", false, 2)), "01H").await;
    assert_eq!(store.fold_stats().0, 0);
    assert!(store.alert("01H").is_err(), "a read served a store it lost");
    assert!(!store.healthy(), "/readyz must say the store refuses work");
    let write = match store.write_step(None, &closed) {
        Ok((durable, _)) => settle(durable).await,
        Err(e) => Err(e),
    };
    assert!(write.is_err(), "a write was taken that cannot be applied");
    store.close();
    drop(store);

    let reopened = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    assert_eq!(reopened.alert("01H").unwrap(), Some(closed.alert));
    assert_eq!(reopened.history("01H").unwrap().len(), 2);
    reopened.close();
}

/// A read that has to wait for a fold must not stall the other tasks of its tokio worker: on
/// a runtime with one worker, another task still runs while the read waits.
#[test]
fn a_read_waiting_for_a_fold_does_not_stall_its_worker() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    // What a fold holds while it opens the store again.
    let fold = store.tree.write().unwrap();
    let reader = {
        let store = store.clone();
        runtime.spawn(async move { store.alert("01X") })
    };
    // Let the reader reach its wait on the only worker.
    std::thread::sleep(Duration::from_millis(100));
    let (tx, rx) = std::sync::mpsc::channel();
    runtime.spawn(async move { tx.send(7) });
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).ok(),
        Some(7),
        "the worker was stalled"
    );
    drop(fold);
    assert_eq!(runtime.block_on(reader).unwrap(), Ok(None));
    store.close();
}

/// A sled database and an empty WAL directory beside it, for replays driven by hand.
struct Replay {
    dir: tempfile::TempDir,
    db: sled::Db,
    wal_dir: std::path::PathBuf,
}

impl Replay {
    fn new() -> Replay {
        let dir = tempfile::tempdir().unwrap();
        let db = sled::Config::new().path(dir.path()).open().unwrap();
        let wal_dir = dir.path().join("wal");
        std::fs::create_dir(&wal_dir).unwrap();
        Replay { dir, db, wal_dir }
    }

    /// Replays the WAL directory into the database: the next file's number, and how many
    /// records were replayed.
    fn recover(&self) -> (u64, usize) {
        let log = std::fs::File::open(self.dir.path().join("db")).unwrap();
        let spares = wal::Spares::default();
        wal::recover(&self.wal_dir, &self.db, &log, &spares).unwrap()
    }

    /// Every key and value in the database, in key order.
    fn stored(&self) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.db
            .iter()
            .map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap())
            .collect()
    }
}

/// A replay reads the leaves of a window of records ahead, from several threads, then applies
/// that window. What it leaves in sled must be what applying every record in order leaves:
/// across windows, with a key removed and written again in different windows, and with a torn
/// record at the end ignored.
#[test]
fn a_replay_read_ahead_in_windows_applies_every_record_in_order() {
    let replay = Replay::new();
    let wal_dir = &replay.wal_dir;
    let mut expected = std::collections::BTreeMap::new();
    let mut bytes = Vec::new();
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let records = 2600;
    for i in 0..records {
        let ops: Vec<wal::Op> = (0..3)
            .map(|j| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let key = format!("k:{:03}", seed % 700).into_bytes();
                let value = (seed % 5 != 0).then(|| format!("{i}.{j}").into_bytes());
                (key, value)
            })
            .collect();
        for (key, value) in &ops {
            match value {
                Some(v) => expected.insert(key.clone(), v.clone()),
                None => expected.remove(key),
            };
        }
        wal::encode_record(&ops, &mut bytes);
    }
    let mut torn = Vec::new();
    wal::encode_record(&[(b"k:torn".to_vec(), Some(b"never".to_vec()))], &mut torn);
    bytes.extend_from_slice(&torn[..torn.len() - 1]);
    std::fs::write(wal_dir.join(format!("{:016x}.wal", 7)), &bytes).unwrap();

    assert_eq!(replay.recover(), (8, records));
    assert_eq!(replay.stored(), expected.into_iter().collect::<Vec<_>>());
    assert_eq!(std::fs::read_dir(wal_dir).unwrap().count(), 0);
}

fn wal_record(key: &str, value: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let ops = [(key.as_bytes().to_vec(), Some(value.as_bytes().to_vec()))];
    wal::encode_record(&ops, &mut out);
    out
}

/// A reused log file holds, after the groups written under its own number, what it held
/// before: groups written under an older number. A replay applies the first and stops at the
/// second, even where one ends exactly where an old one begins. A group cut short (its header
/// on disk, not all its records) is applied not at all, not even the record of it that reached
/// the disk whole. A spare is never replayed, and the next file's number is above its number
/// too.
#[test]
fn a_reused_log_file_replays_only_the_whole_groups_of_its_own_number() {
    let replay = Replay::new();
    let wal_dir = &replay.wal_dir;
    let group_of = |seq: u64, key: &str, value: &str| {
        let mut group = Vec::new();
        wal::encode_group(seq, &wal_record(key, value), &mut group);
        group
    };
    // File 5, reused: it held 50 groups written as number 3, each as long as the two written
    // over its start as number 5, so the third group it holds is a whole old one.
    let mut file5: Vec<u8> = (0..50)
        .flat_map(|i| group_of(3, "k:a", &format!("old {i:02}")))
        .collect();
    let new = [group_of(5, "k:a", "new 01"), group_of(5, "k:a", "new 02")].concat();
    file5[..new.len()].copy_from_slice(&new);
    std::fs::write(wal_dir.join(format!("{:016x}.wal2", 5)), &file5).unwrap();
    // File 6: a whole group, then one whose first record reached the disk and the rest not.
    let mut file6 = group_of(6, "k:b", "six");
    let torn_records = [wal_record("k:a", "torn"), wal_record("k:c", "torn")].concat();
    let mut torn = Vec::new();
    wal::encode_group(6, &torn_records, &mut torn);
    let header = torn.len() - torn_records.len();
    file6.extend_from_slice(&torn[..header + wal_record("k:a", "torn").len()]);
    file6.extend_from_slice(&[0xab; 100]);
    std::fs::write(wal_dir.join(format!("{:016x}.wal2", 6)), &file6).unwrap();
    // A spare holding a whole group of its own number.
    let mut spare = Vec::new();
    wal::encode_group(9, &wal_record("k:s", "spare"), &mut spare);
    std::fs::write(wal_dir.join(format!("{:016x}.spare", 9)), &spare).unwrap();
    // More spares than are kept.
    for seq in [1, 2] {
        std::fs::write(wal_dir.join(format!("{seq:016x}.spare")), b"old").unwrap();
    }

    assert_eq!(replay.recover(), (10, 3));
    assert_eq!(
        replay.stored(),
        vec![
            (b"k:a".to_vec(), b"new 02".to_vec()),
            (b"k:b".to_vec(), b"six".to_vec())
        ]
    );
    // Kept for reuse: the two files replayed, the last retired; the spares found before them
    // make room.
    let mut left: Vec<String> = std::fs::read_dir(wal_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [format!("{:016x}.spare", 5), format!("{:016x}.spare", 6)]
    );
}

/// A clean stop retires the last log file too, so the directory then holds only spares, the
/// newest of them the last file; the next start numbers its file above them, reuses one, and
/// what it writes reads back after another start.
#[tokio::test]
async fn after_a_clean_stop_the_log_holds_only_spares_and_the_next_file_is_numbered_above_them() {
    let dir = tempfile::tempdir().unwrap();
    let names = || {
        let mut names: Vec<String> = std::fs::read_dir(dir.path().join("wal"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let mut n = 0;
    // Three files: a step, then one 0.6 s later in each (it lands in the file, which rotates).
    for _ in 0..3 {
        apply(&store, "s", Input::Webhook(snap("inc", true, n)), "01G").await;
        n += 1;
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    store.close();
    drop(store);
    let stopped = names();
    assert!(
        stopped.len() == 2 && stopped.iter().all(|n| n.ends_with(".spare")),
        "{stopped:?}"
    );
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    apply(&store, "s", Input::Webhook(snap("inc", true, n)), "01G").await;
    let started = names();
    let live: Vec<&String> = started.iter().filter(|n| n.ends_with(".wal2")).collect();
    assert_eq!(live.len(), 1, "{started:?}");
    assert!(
        stopped
            .iter()
            .all(|spare| spare.as_str() < live[0].as_str()),
        "{stopped:?} then {started:?}"
    );
    assert!(started.len() == 2, "one spare taken: {started:?}");
    store.close();
    drop(store);
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    assert_eq!(store.history("01G").unwrap().len(), n as usize + 1);
}

/// Checkpointed log files are reused end to end: the first file, which held many steps, comes
/// back as a later one, and a crash while it is live recovers exactly the acknowledged steps,
/// its new groups from its start and none of its old ones. (Here the new groups rarely end
/// where an old one begins; that an old group is refused even then is checked by
/// `a_reused_log_file_replays_only_the_whole_groups_of_its_own_number`.)
#[tokio::test]
async fn reused_log_files_never_replay_what_they_held_before() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let live = dir.path().join("live");
    let store = Store::open(&live, &StoreOptions::default()).unwrap();
    let wal_dir = live.join("wal");
    // The newest log file, and its inode (a file the checkpoint renames meanwhile is skipped).
    let live_file = || {
        std::fs::read_dir(&wal_dir)
            .unwrap()
            .map(|e| e.unwrap())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".wal2"))
            .filter_map(|e| Some((e.file_name(), e.metadata().ok()?.ino())))
            .max()
            .unwrap()
    };
    let (first_name, first_inode) = live_file();
    // Version n of the incident, resolved every third step.
    let step = |n: i64| {
        let store = store.clone();
        async move {
            apply(
                &store,
                "s",
                Input::Webhook(snap("inc", n % 3 != 0, n)),
                "01G",
            )
            .await
        }
    };
    let mut n = 0;
    let mut last = None;
    // A long first file.
    while n < 60 {
        last = Some(step(n).await.alert);
        n += 1;
    }
    // Then a step every 0.6 s: each rotates the file it lands in (they close after 0.5 s),
    // until the live file is the first one again, under another name.
    let mut reused = false;
    for _ in 0..12 {
        tokio::time::sleep(Duration::from_millis(600)).await;
        last = Some(step(n).await.alert);
        n += 1;
        let (name, inode) = live_file();
        if inode == first_inode && name != first_name {
            reused = true;
            break;
        }
    }
    assert!(reused, "the first log file was never reused");
    // Two short steps into it, then the crash.
    for _ in 0..2 {
        last = Some(step(n).await.alert);
        n += 1;
    }
    let image = dir.path().join("image");
    crash_image(&live, &image);
    let recovered = Store::open(&image, &StoreOptions::default()).unwrap();
    assert_eq!(recovered.alert("01G").unwrap(), last);
    assert_eq!(recovered.history("01G").unwrap().len(), n as usize);
    store.close();
}

#[test]
fn wal_records_round_trip_and_a_torn_tail_is_dropped() {
    let ops_a: Vec<wal::Op> = vec![
        (b"a:1".to_vec(), Some(b"one".to_vec())),
        (b"x".to_vec(), None),
    ];
    let ops_b: Vec<wal::Op> = vec![(b"a:2".to_vec(), Some(vec![7; 3000]))];
    let mut bytes = Vec::new();
    wal::encode_record(&ops_a, &mut bytes);
    wal::encode_record(&ops_b, &mut bytes);
    let whole = wal::decode_records(&bytes);
    assert_eq!(whole.records, vec![ops_a.clone(), ops_b.clone()]);
    assert_eq!(whole.dropped_bytes, 0);
    // Cut anywhere inside the second record: the first survives, the rest is dropped.
    let first_len = {
        let mut one = Vec::new();
        wal::encode_record(&ops_a, &mut one);
        one.len()
    };
    for cut in [first_len + 1, first_len + 8, bytes.len() - 1] {
        let torn = wal::decode_records(&bytes[..cut]);
        assert_eq!(torn.records, vec![ops_a.clone()], "cut at {cut}");
        assert_eq!(torn.dropped_bytes, cut - first_len);
    }
    // A flipped bit fails the checksum.
    let mut flipped = bytes.clone();
    flipped[first_len + 20] ^= 1;
    assert_eq!(wal::decode_records(&flipped).records, vec![ops_a]);
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

/// Drives one incident through `n` webhooks that each change it, starting from `stored`.
async fn flap(
    store: &Store,
    mut stored: Option<StoredAlert>,
    from: i64,
    n: i64,
    id: &str,
) -> StoredAlert {
    for v in from..from + n {
        let ctx = Ctx {
            now: v,
            new_alert_id: id.into(),
            source_id: "s".into(),
        };
        let input = Input::Webhook(snap("inc", v % 2 == 0, v));
        let s = step(stored.as_ref().map(|p| &*p.alert), &input, &ctx).unwrap();
        stored = Some(commit(store, stored.as_ref(), &s).await);
    }
    stored.unwrap()
}

fn versions(history: &[HistoryEvent]) -> Vec<i64> {
    history
        .iter()
        .map(|h| h.detail["version"].as_i64().unwrap())
        .collect()
}

#[tokio::test]
async fn history_moves_to_chunks_and_reads_back_whole_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let mut stored = None;
    // Stop on every count around the chunk size: tail only, exactly full, one past, two chunks.
    let mut written = 0;
    for upto in [1, 7, 8, 9, 16, 17, 25] {
        stored = Some(flap(&store, stored, written, upto - written, "01H").await);
        written = upto;
        assert_eq!(
            versions(&store.history("01H").unwrap()),
            (0..upto).collect::<Vec<_>>()
        );
        let loaded = store.load_alert("s", "inc").unwrap().unwrap();
        assert_eq!(Some(&loaded), stored.as_ref(), "after {upto}");
        assert_eq!(loaded.tail.len, upto as usize % HISTORY_CHUNK);
    }
    let chunks = store.visible().unwrap().scan_prefix(b"h:01H:").count();
    assert_eq!(chunks, 3, "25 entries: three chunks of 8 and a tail of 1");
}

/// Every live incident actor keeps its tail between steps, so spare room in it is memory
/// multiplied by the live-actor cap.
#[tokio::test]
async fn a_tail_kept_between_steps_has_no_spare_room() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let mut stored = None;
    for n in 1..=(HISTORY_CHUNK as i64 + 2) {
        let kept = flap(&store, stored, n - 1, 1, "01H").await;
        assert!(kept.tail.len > 0 || n as usize % HISTORY_CHUNK == 0);
        assert_eq!(kept.tail.json.capacity(), kept.tail.json.len(), "after {n}");
        let loaded = store.load_alert("s", "inc").unwrap().unwrap();
        assert_eq!(loaded, kept);
        assert_eq!(loaded.tail.json.capacity(), loaded.tail.json.len());
        stored = Some(kept);
    }
}

#[tokio::test]
async fn a_history_read_racing_a_chunk_move_sees_each_entry_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let stored = flap(&store, None, 0, 12, "01I").await;
    // A reader that got the alert record with its tail of 4 (entries 8..12), and then a chunk
    // holding those same entries (as the next step's move would write): entries 8..12 once.
    let moved = key(&[b"h:01I:", &8u64.to_be_bytes()]);
    let mut chunk = Vec::new();
    stored.tail.encode_chunk(&mut chunk);
    store.visible().unwrap().insert(moved, chunk).unwrap();
    assert_eq!(
        versions(&store.history("01I").unwrap()),
        (0..12).collect::<Vec<_>>()
    );
}

/// Writes a store as a binary of format `from` left it, then opens it with this one.
async fn upgrade_from(from: u8) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let stored = flap(&store, None, 0, 3, "01J").await;
    let history = store.history("01J").unwrap();
    let stored_tail = store.load_alert("s", "inc").unwrap().unwrap().tail;
    // More incidents than one upgrade batch holds.
    for i in 0..3 * UPGRADE_BATCH {
        let id = format!("01JB{i:03}");
        apply(
            &store,
            "s",
            Input::Webhook(snap(&format!("bulk-{i}"), true, 1)),
            &id,
        )
        .await;
        let tree = store.visible().unwrap();
        tree.remove(incident_key("s", &format!("bulk-{i}")))
            .unwrap();
        tree.insert(format!("i:s\0bulk-{i}"), id.as_bytes())
            .unwrap();
        tree.insert(format!("xn:bulk-{i}\0{id}"), &[][..]).unwrap();
    }
    let tree = store.visible().unwrap();
    // Store format 1 had record format 1: a bare alert record, one key per history entry.
    if from == 1 {
        for kv in tree.scan_prefix(b"h:01J:") {
            tree.remove(kv.unwrap().0).unwrap();
        }
        for (seq, entry) in history.iter().enumerate() {
            let mut v = Vec::new();
            encode_into(entry, &mut v);
            tree.insert(history_key("01J", seq as u64), v).unwrap();
        }
        let mut v = Vec::new();
        encode_into(&stored.alert, &mut v);
        tree.insert(alert_key("01J"), v).unwrap();
    }
    // Its incident key as `i:<source>\0<incident>`, with the `xn:` index of then.
    tree.remove(incident_key("s", "inc")).unwrap();
    tree.insert(b"i:s\0inc", &b"01J"[..]).unwrap();
    tree.insert(b"xn:inc\x0001J", &[][..]).unwrap();
    // The same incident id in another source, as an upgrade cut short by a crash leaves it:
    // its key already moved, its `xn:` entry not yet removed.
    apply(&store, "s2", Input::Webhook(snap("inc", true, 1)), "01J2").await;
    tree.insert(b"xn:inc\x0001J2", &[][..]).unwrap();
    // Formats before 5 indexed resolved alerts too.
    apply(&store, "s", Input::Webhook(snap("gone", false, 1)), "01J3").await;
    assert_eq!(
        store.alert("01J3").unwrap().unwrap().status,
        AlertStatus::Resolved
    );
    tree.insert(b"xs:resolved:01J3", &[][..]).unwrap();
    tree.insert(FORMAT_KEY, &[from]).unwrap();
    // A handle held on keeps sled's file lock.
    drop(tree);
    store.close();
    drop(store);

    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let tree = store.visible().unwrap();
    assert_eq!(
        tree.get(FORMAT_KEY).unwrap().unwrap().as_ref(),
        [STORE_FORMAT]
    );
    assert_eq!(tree.scan_prefix(b"i:").count(), 0);
    assert_eq!(tree.scan_prefix(b"xn:").count(), 0);
    assert_eq!(tree.scan_prefix(b"xs:resolved:").count(), 0);
    assert!(tree.get(UPGRADING_KEY).unwrap().is_none());
    assert_eq!(
        store.alert_id_for("s2", "inc").unwrap().as_deref(),
        Some("01J2")
    );
    let resolved = AlertFilter {
        status: Some(AlertStatus::Resolved),
        ..Default::default()
    };
    assert_eq!(all_listed(&store, &resolved, 10), ["01J3"]);
    for i in 0..3 * UPGRADE_BATCH {
        let id = store.alert_id_for("s", &format!("bulk-{i}")).unwrap();
        assert_eq!(id, Some(format!("01JB{i:03}")));
    }
    let by_incident = AlertFilter {
        incident_id: Some("inc".into()),
        ..Default::default()
    };
    let (page, _) = store.list_alerts(&by_incident, 10, None).unwrap();
    let ids: Vec<_> = page.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, ["01J2", "01J"]);
    let loaded = store.load_alert("s", "inc").unwrap().unwrap();
    assert_eq!(loaded.alert, stored.alert);
    let expected_tail = if from == 1 {
        HistoryTail::default()
    } else {
        stored_tail
    };
    assert_eq!(loaded.tail, expected_tail);
    assert_eq!(store.alert("01J").unwrap().as_ref(), Some(&*stored.alert));
    assert_eq!(versions(&store.history("01J").unwrap()), [0, 1, 2]);
    // New steps chunk on top of the old entries.
    flap(&store, Some(loaded), 3, 10, "01J").await;
    assert_eq!(
        versions(&store.history("01J").unwrap()),
        (0..13).collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn a_format_1_store_reads_moves_its_incident_keys_and_carries_on() {
    upgrade_from(1).await;
}

#[tokio::test]
async fn a_format_2_store_moves_its_incident_keys_and_carries_on() {
    upgrade_from(2).await;
}

/// (`upgrade_from` also leaves keys of formats 1 and 2, which a format-4 store never has: the
/// upgrade moves them all the same.)
#[tokio::test]
async fn a_format_4_store_loses_its_index_of_resolved_alerts_and_carries_on() {
    upgrade_from(4).await;
}

/// A format-2 store with one incident, closed; returns its directory.
async fn format_2_store() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    apply(&store, "s", Input::Webhook(snap("inc", true, 1)), "01P").await;
    let tree = store.visible().unwrap();
    tree.remove(incident_key("s", "inc")).unwrap();
    tree.insert(b"i:s\0inc", &b"01P"[..]).unwrap();
    tree.insert(FORMAT_KEY, &[2]).unwrap();
    store.close();
    dir
}

#[tokio::test]
async fn an_upgrade_cut_short_is_finished_by_the_next_open() {
    let dir = format_2_store().await;
    // What the first batch of an upgrade leaves: marked, nothing moved yet.
    {
        let db = open_sled(dir.path(), &StoreOptions::default()).unwrap();
        db.insert(FORMAT_KEY, &[STORE_FORMAT]).unwrap();
        db.insert(UPGRADING_KEY, &[2]).unwrap();
        db.flush().unwrap();
    }
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    assert_eq!(
        store.alert_id_for("s", "inc").unwrap().as_deref(),
        Some("01P")
    );
    assert_eq!(store.visible().unwrap().scan_prefix(b"i:").count(), 0);
    assert!(store
        .visible()
        .unwrap()
        .get(UPGRADING_KEY)
        .unwrap()
        .is_none());
}

#[tokio::test]
async fn an_upgrade_also_moves_the_keys_an_older_binarys_wal_replays() {
    let dir = format_2_store().await;
    // A WAL file left by the older binary: a second incident, created resolved, with its own
    // key layout (an index of resolved alerts included).
    let ops: Vec<wal::Op> = vec![
        (b"i:s\0late".to_vec(), Some(b"01Q".to_vec())),
        (b"xn:late\x0001Q".to_vec(), Some(Vec::new())),
        (b"xs:resolved:01Q".to_vec(), Some(Vec::new())),
    ];
    let mut bytes = Vec::new();
    wal::encode_record(&ops, &mut bytes);
    std::fs::write(dir.path().join("wal").join("00000000000000ff.wal"), bytes).unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    assert_eq!(
        store.alert_id_for("s", "late").unwrap().as_deref(),
        Some("01Q")
    );
    assert_eq!(
        store.alert_id_for("s", "inc").unwrap().as_deref(),
        Some("01P")
    );
    assert_eq!(store.visible().unwrap().scan_prefix(b"i:").count(), 0);
    assert_eq!(store.visible().unwrap().scan_prefix(b"xn:").count(), 0);
    assert_eq!(
        store
            .visible()
            .unwrap()
            .scan_prefix(b"xs:resolved:")
            .count(),
        0
    );
}

#[tokio::test]
async fn an_upgrade_from_4_cut_short_is_finished_by_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    apply(&store, "s", Input::Webhook(snap("inc", false, 1)), "01U").await;
    store.close();
    drop(store);
    // What the first batch of an upgrade from 4 leaves: marked, the resolved index still there.
    {
        let db = open_sled(dir.path(), &StoreOptions::default()).unwrap();
        db.insert(FORMAT_KEY, &[STORE_FORMAT]).unwrap();
        db.insert(UPGRADING_KEY, &[4]).unwrap();
        db.insert(b"xs:resolved:01U", &[][..]).unwrap();
        db.flush().unwrap();
    }
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let tree = store.visible().unwrap();
    assert_eq!(tree.scan_prefix(b"xs:resolved:").count(), 0);
    assert!(tree.get(UPGRADING_KEY).unwrap().is_none());
    let resolved = AlertFilter {
        status: Some(AlertStatus::Resolved),
        ..Default::default()
    };
    assert_eq!(all_listed(&store, &resolved, 10), ["01U"]);
}

#[test]
fn a_store_of_a_newer_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    store
        .visible()
        .unwrap()
        .insert(FORMAT_KEY, &[STORE_FORMAT + 1])
        .unwrap();
    store.close();
    drop(store);
    let err = Store::open(dir.path(), &StoreOptions::default())
        .err()
        .unwrap();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
}

/// A store with one alert of seven history entries, and the step that brings the eighth.
async fn one_entry_before_a_chunk(id: &str) -> (tempfile::TempDir, Store, StoredAlert, Step) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let stored = flap(&store, None, 0, 7, id).await;
    let ctx = Ctx {
        now: 7,
        new_alert_id: String::new(),
        source_id: "s".into(),
    };
    let input = Input::Webhook(snap("inc", true, 8));
    let s = step(Some(&stored.alert), &input, &ctx).unwrap();
    (dir, store, stored, s)
}

#[tokio::test]
async fn a_chunk_is_written_before_the_alert_record_that_empties_the_tail() {
    let (_dir, _store, stored, s) = one_entry_before_a_chunk("01K").await;
    let (record, tail) = step_record(Some(&stored), &s);
    assert_eq!(tail.len, 0, "the eighth entry moves the tail");
    let decoded = wal::decode_records(&record.finish());
    let keys: Vec<&[u8]> = decoded.records[0].iter().map(|(k, _)| &k[..2]).collect();
    // A history reader takes the alert record first: if it sees the emptied tail, the chunk
    // must already be in sled.
    assert_eq!(keys, [&b"h:"[..], &b"a:"[..]]);
}

#[tokio::test]
async fn a_failed_step_that_would_move_the_tail_can_be_retried_as_it_was() {
    let (_dir, store, stored, s) = one_entry_before_a_chunk("01L").await;
    store.faults().set_failing_flushes(true);
    let (durable, _) = store.write_step(Some(&stored), &s).unwrap();
    assert_eq!(durable.await.unwrap(), Err(StoreError::Injected));
    store.faults().set_failing_flushes(false);
    assert_eq!(store.visible().unwrap().scan_prefix(b"h:01L:").count(), 0);
    assert_eq!(
        versions(&store.history("01L").unwrap()),
        (0..7).collect::<Vec<_>>()
    );
    // The writer kept its state, so the same step goes again.
    commit(&store, Some(&stored), &s).await;
    assert_eq!(store.visible().unwrap().scan_prefix(b"h:01L:").count(), 1);
    assert_eq!(
        versions(&store.history("01L").unwrap()),
        [0, 1, 2, 3, 4, 5, 6, 8]
    );
}

#[tokio::test]
async fn history_reads_back_every_step_entry_across_multi_entry_steps() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let mut stored: Option<StoredAlert> = None;
    let mut expected: Vec<HistoryEvent> = Vec::new();
    let resolve = Input::Resolve {
        by: ResolvedBy::User("ann".into()),
        comment: None,
    };
    let mut changed = snap("inc", true, 1);
    changed.status = Some("warning".into());
    let mut inputs = vec![
        Input::Webhook(snap("inc", true, 0)),
        Input::Webhook(changed),
    ];
    // Resolve here, BigPanda's echo, re-fire. The echo adds two entries (the webhook and
    // `close_confirmed`); after the two entries above, the second echo finds a tail of seven
    // and makes a chunk of nine.
    for round in 1..6i64 {
        inputs.push(resolve.clone());
        inputs.push(Input::Webhook(snap("inc", false, 2 * round)));
        inputs.push(Input::Webhook(snap("inc", true, 2 * round + 1)));
    }
    for (n, input) in inputs.iter().enumerate() {
        let ctx = Ctx {
            now: n as i64,
            new_alert_id: "01M".into(),
            source_id: "s".into(),
        };
        let s = step(stored.as_ref().map(|p| &*p.alert), input, &ctx).unwrap();
        expected.extend(s.history.iter().cloned());
        stored = Some(commit(&store, stored.as_ref(), &s).await);
        assert_eq!(store.history("01M").unwrap(), expected, "after input {n}");
        assert_eq!(store.load_alert("s", "inc").unwrap(), stored);
    }
    let sizes: Vec<usize> = store
        .visible()
        .unwrap()
        .scan_prefix(b"h:01M:")
        .map(|kv| {
            let (k, v) = kv.unwrap();
            let mut entries = Vec::new();
            decode_history(&k, &v, u64::MAX, &mut entries).unwrap();
            entries.len()
        })
        .collect();
    assert!(
        sizes.iter().any(|&n| n > HISTORY_CHUNK),
        "chunk sizes {sizes:?}"
    );
}

#[tokio::test]
async fn listing_by_incident_spans_sources_newest_first_and_pages() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    // One incident id in three sources, whose key order (by source) is not the alerts' order.
    for (source, id) in [("a", "01N2"), ("b", "01N3"), ("c", "01N1")] {
        apply(&store, source, Input::Webhook(snap("inc", true, 1)), id).await;
    }
    let filter = |source: Option<&str>| AlertFilter {
        incident_id: Some("inc".into()),
        source_id: source.map(Into::into),
        ..Default::default()
    };
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let (page, next) = store
            .list_alerts(&filter(None), 2, cursor.as_deref())
            .unwrap();
        seen.extend(page.into_iter().map(|a| a.id));
        match next {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    assert_eq!(seen, ["01N3", "01N2", "01N1"]);
    let (page, next) = store.list_alerts(&filter(Some("b")), 10, None).unwrap();
    assert_eq!(
        page.iter().map(|a| a.id.as_str()).collect::<Vec<_>>(),
        ["01N3"]
    );
    assert_eq!(next, None);
    let resolved = AlertFilter {
        status: Some(AlertStatus::Resolved),
        ..filter(None)
    };
    assert!(store.list_alerts(&resolved, 10, None).unwrap().0.is_empty());
}

/// Rewrites every `FORMAT_LZ4` record under `prefix` as the plain `FORMAT_CHUNKED` record a
/// store of format 2 or 3 holds.
fn decompress_records(store: &Store, prefix: &[u8]) {
    let tree = store.visible().unwrap();
    for kv in tree.scan_prefix(prefix) {
        let (k, v) = kv.unwrap();
        assert_eq!(v[0], FORMAT_LZ4, "written compressed");
        let mut plain = vec![FORMAT_CHUNKED];
        plain.extend(decompress(&k, &v[1..]).unwrap());
        tree.insert(k, plain).unwrap();
    }
}

#[tokio::test]
async fn a_format_3_store_with_plain_records_reads_and_is_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let stored = flap(&store, None, 0, 11, "01K").await;
    let history = store.history("01K").unwrap();
    decompress_records(&store, b"a:");
    decompress_records(&store, b"h:");
    store.visible().unwrap().insert(FORMAT_KEY, &[3]).unwrap();
    store.close();
    drop(store);

    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let format = store.visible().unwrap().get(FORMAT_KEY).unwrap().unwrap();
    assert_eq!(format.as_ref(), [STORE_FORMAT]);
    assert_eq!(store.history("01K").unwrap(), history);
    let loaded = store.load_alert("s", "inc").unwrap().unwrap();
    assert_eq!(loaded, stored);
    // New steps write compressed records beside the plain ones, and all of it reads back.
    flap(&store, Some(loaded), 11, 10, "01K").await;
    assert_eq!(
        versions(&store.history("01K").unwrap()),
        (0..21).collect::<Vec<_>>()
    );
}

#[test]
fn alert_records_are_stored_compressed_and_read_back() {
    let json = br#"{"alert":{"title":"db-1 / cpu_load","details":{"alerts":[{"tags":[["host","db-1"],["env","production"]]},{"tags":[["host","db-1"],["env","production"]]}]}},"history":[]}"#;
    let mut record = Vec::new();
    compress_into(json, &mut record);
    assert_eq!(record[0], FORMAT_LZ4);
    assert!(record.len() < json.len(), "{} bytes", record.len());
    assert_eq!(decompress(b"a:x", &record[1..]).unwrap(), json);
}

#[test]
fn a_damaged_compressed_record_is_reported_not_trusted() {
    let mut record = Vec::new();
    compress_into(br#"{"alert":{"title":"t"},"history":[]}"#, &mut record);
    let body = &record[1..];
    // Cut short, without its length, claiming more than it holds, or claiming 4 GiB.
    let mut longer = body.to_vec();
    longer[..4]
        .copy_from_slice(&(u32::from_le_bytes(body[..4].try_into().unwrap()) + 5).to_le_bytes());
    let mut huge = body.to_vec();
    huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
    for damaged in [&body[..body.len() - 3], &body[..2], &longer[..], &huge[..]] {
        let err = decompress(b"a:x", damaged).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
    }
}

#[test]
fn a_record_too_large_to_announce_is_kept_plain() {
    let json = vec![b' '; MAX_RECORD_BYTES + 1];
    let mut record = Vec::new();
    compress_into(&json, &mut record);
    assert_eq!(record[0], FORMAT_CHUNKED);
    assert_eq!(&record[1..], &json[..]);
}

/// The log position the newest snapshot of sled's page table covers (from its file name).
fn newest_snapshot(dir: &Path) -> Option<u64> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().ok()?;
            u64::from_str_radix(name.strip_prefix("snap.")?, 16).ok()
        })
        .max()
}

#[tokio::test]
async fn a_clean_stop_folds_sleds_log_into_a_snapshot_once_the_store_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions::default();
    let store = Store::open(dir.path(), &opts).unwrap();
    for i in 0..40 {
        let incident = format!("inc-{i}");
        apply(
            &store,
            "s",
            Input::Webhook(snap(&incident, true, 1)),
            &format!("01F{i:02}"),
        )
        .await;
    }
    store.close();
    let before = newest_snapshot(dir.path());
    // While a handle is open, sled's file lock refuses the fold and nothing changes.
    let refused = fold_log_for_next_open(dir.path(), &opts).unwrap_err();
    // What `open_sled` waits on: if sled words it differently, the wait silently stops.
    assert!(refused.to_string().contains(LOCK_HELD), "{refused}");
    assert_eq!(newest_snapshot(dir.path()), before);

    drop(store);
    fold_log_for_next_open(dir.path(), &opts).unwrap();
    let after = newest_snapshot(dir.path());
    assert!(
        after > before,
        "no newer snapshot: {before:?} then {after:?}"
    );
    let store = Store::open(dir.path(), &opts).unwrap();
    assert_eq!(store.count_alerts().unwrap(), 40);
    assert_eq!(
        store.alert_id_for("s", "inc-39").unwrap().as_deref(),
        Some("01F39")
    );
}

#[tokio::test]
async fn a_snapshot_left_half_written_by_a_kill_does_not_stop_the_next_open() {
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions::default();
    let store = Store::open(dir.path(), &opts).unwrap();
    apply(&store, "s", Input::Webhook(snap("inc", true, 1)), "01T").await;
    store.close();
    drop(store);
    // What sled leaves when killed mid-snapshot: the newest-sorting name, a torn body.
    let torn = dir.path().join("snap.FFFFFFFFFFFFFFF0.generating");
    std::fs::write(&torn, b"half a snapshot").unwrap();

    let store = Store::open(dir.path(), &opts).unwrap();
    assert!(!torn.exists());
    assert_eq!(
        store.alert_id_for("s", "inc").unwrap().as_deref(),
        Some("01T")
    );
}

/// Store format 5 indexes only firing alerts: a resolve takes the alert out of that index, a
/// re-fire puts it back, and no step writes an index of resolved alerts.
#[tokio::test]
async fn only_firing_alerts_are_indexed_by_status() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    let listed = |store: &Store, status| {
        let filter = AlertFilter {
            status: Some(status),
            ..Default::default()
        };
        all_listed(store, &filter, 10)
    };
    let mut stored = None;
    for v in 0..5 {
        // Even versions are open: created firing, then resolved, re-fired, resolved, re-fired.
        stored = Some(flap(&store, stored, v, 1, "01X").await);
        let firing = v % 2 == 0;
        let tree = store.visible().unwrap();
        assert_eq!(
            tree.contains_key(b"xs:firing:01X").unwrap(),
            firing,
            "step {v}"
        );
        assert_eq!(tree.scan_prefix(b"xs:").count(), usize::from(firing));
        let (want_firing, want_resolved): (&[&str], &[&str]) = if firing {
            (&["01X"], &[])
        } else {
            (&[], &["01X"])
        };
        assert_eq!(listed(&store, AlertStatus::Firing), want_firing);
        assert_eq!(listed(&store, AlertStatus::Resolved), want_resolved);
    }
}

/// A page whose filter matches little of what it walks stops at `LIST_BUDGET` (300 in tests:
/// 30 records read, or 300 firing alerts passed by their keys) and says where to go on.
#[tokio::test]
async fn a_listing_that_finds_little_returns_short_pages_that_lead_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), &StoreOptions::default()).unwrap();
    // Two resolved alerts, the oldest, under 330 firing ones; source "a" has the even ones.
    let id = |i: usize| format!("01L{i:04}");
    for i in 0..332 {
        let s = snap(&format!("inc-{i}"), i >= 2, 1);
        apply(
            &store,
            if i % 2 == 0 { "a" } else { "b" },
            Input::Webhook(s),
            &id(i),
        )
        .await;
    }
    // Resolved: 300 firing alerts passed by key, then the budget is spent.
    let resolved = AlertFilter {
        status: Some(AlertStatus::Resolved),
        ..Default::default()
    };
    let (page, next) = store.list_alerts(&resolved, 10, None).unwrap();
    assert!(page.is_empty());
    assert_eq!(next, Some(id(32)));
    let (page, next) = store.list_alerts(&resolved, 10, Some(&id(32))).unwrap();
    let ids: Vec<_> = page.iter().map(|a| a.id.as_str()).collect();
    assert_eq!(ids, [id(1), id(0)]);
    assert_eq!(next, None);
    // Source "a", resolved: its records are read, 30 of them per page.
    let a_resolved = AlertFilter {
        source_id: Some("a".into()),
        status: Some(AlertStatus::Resolved),
        ..Default::default()
    };
    let (page, next) = store.list_alerts(&a_resolved, 10, None).unwrap();
    assert!(page.is_empty());
    assert_eq!(next, Some(id(330 - 2 * 29)));
    assert_eq!(all_listed(&store, &a_resolved, 10), [id(0)]);
    // A page that fills before the budget is spent ends at its last alert, as before.
    let firing = AlertFilter {
        status: Some(AlertStatus::Firing),
        ..Default::default()
    };
    let (page, next) = store.list_alerts(&firing, 5, None).unwrap();
    assert_eq!(page.len(), 5);
    assert_eq!(next, Some(id(327)));
}

/// Every id a listing returns, paging through it `page` at a time.
fn all_listed(store: &Store, filter: &AlertFilter, page: usize) -> Vec<String> {
    let (mut seen, mut cursor) = (Vec::new(), None);
    loop {
        let (alerts, next) = store.list_alerts(filter, page, cursor.as_deref()).unwrap();
        seen.extend(alerts.into_iter().map(|a| a.id));
        match next {
            Some(c) => cursor = Some(c),
            None => return seen,
        }
    }
}

/// Enough alerts that sled splits their leaves many times under the vendored rule (index
/// leaves past 128 entries, and leaves of alert records past 16 KiB, the descriptions being
/// incompressible): every listing still returns exactly its alerts, newest first, and so does
/// the store after a clean stop's fold and a reopen.
#[tokio::test]
async fn listings_stay_whole_across_many_leaf_splits_and_a_reopen() {
    const N: usize = 600;
    let dir = tempfile::tempdir().unwrap();
    let opts = StoreOptions::default();
    let store = Store::open(dir.path(), &opts).unwrap();
    let id = |i: usize| format!("01S{i:04}");
    let source = |i: usize| if i % 2 == 0 { "even" } else { "odd" };
    let firing = |i: usize| i % 3 != 0;
    let mut noise = 0x9e37_79b9_7f4a_7c15_u64;
    for i in 0..N {
        let mut s = snap(&format!("inc-{i}"), firing(i), 1);
        let text: String = (0..200)
            .map(|_| {
                noise ^= noise << 13;
                noise ^= noise >> 7;
                noise ^= noise << 17;
                format!("{noise:016x}")
            })
            .collect();
        s.description = Some(text);
        apply(&store, source(i), Input::Webhook(s), &id(i)).await;
    }
    let expect = |keep: &dyn Fn(usize) -> bool| -> Vec<String> {
        (0..N).rev().filter(|&i| keep(i)).map(id).collect()
    };
    let check = |store: &Store| {
        assert_eq!(store.count_alerts().unwrap(), N);
        assert_eq!(
            all_listed(store, &AlertFilter::default(), 50),
            expect(&|_| true)
        );
        for status in [AlertStatus::Firing, AlertStatus::Resolved] {
            let filter = AlertFilter {
                status: Some(status),
                ..Default::default()
            };
            let want = expect(&|i| firing(i) == (status == AlertStatus::Firing));
            assert_eq!(all_listed(store, &filter, 37), want, "{status:?}");
        }
        let odd = AlertFilter {
            source_id: Some("odd".into()),
            ..Default::default()
        };
        assert_eq!(all_listed(store, &odd, 64), expect(&|i| i % 2 == 1));
        let even_resolved = AlertFilter {
            source_id: Some("even".into()),
            status: Some(AlertStatus::Resolved),
            ..Default::default()
        };
        assert_eq!(
            all_listed(store, &even_resolved, 10),
            expect(&|i| i % 2 == 0 && !firing(i))
        );
        for i in [0, 1, 299, N - 1] {
            let loaded = store
                .load_alert(source(i), &format!("inc-{i}"))
                .unwrap()
                .unwrap();
            assert_eq!(loaded.alert.id, id(i));
        }
    };
    check(&store);
    store.close();
    drop(store);
    fold_log_for_next_open(dir.path(), &opts).unwrap();
    let store = Store::open(dir.path(), &opts).unwrap();
    check(&store);
}

/// Every key and value of the closed store in `dir`, read through sled itself.
fn dump(dir: &Path) -> Vec<(sled::IVec, sled::IVec)> {
    let db = open_sled(dir, &StoreOptions::default()).unwrap();
    let all = db.iter().map(|kv| kv.unwrap()).collect();
    drop(db);
    all
}

/// A closed store of 40 alerts (two sources, some resolved, history past a chunk for one),
/// in `<tempdir>/store` as the daemon lays it out, beside where a repack puts its copy.
async fn store_to_repack() -> (tempfile::TempDir, std::path::PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("store");
    let store = Store::open(&dir, &StoreOptions::default()).unwrap();
    // (incident, open, version): 40 new, every third closed, then inc-0 flapping.
    let mut steps: Vec<(usize, bool, i64)> = Vec::new();
    for i in 0..40 {
        steps.push((i, true, 1));
        if i % 3 == 0 {
            steps.push((i, false, 2));
        }
    }
    steps.extend((3..15).map(|v| (0, v % 2 == 1, v)));
    for (i, open, version) in steps {
        let source = if i % 2 == 0 { "even" } else { "odd" };
        let input = Input::Webhook(snap(&format!("inc-{i}"), open, version));
        apply(&store, source, input, &format!("01R{i:03}")).await;
    }
    store.close();
    drop(store);
    (root, dir)
}

/// A complete repack copy of the closed store in `dir`, where a repack puts it; the store
/// is untouched.
fn copy_beside(dir: &Path) -> std::path::PathBuf {
    let (copy, _) = super::repack::siblings(dir);
    super::repack::copy_store(dir, &copy, &StoreOptions::default()).unwrap();
    copy
}

/// What the store in `dir` serves: every alert listed, and one alert's whole history.
fn served(dir: &Path) -> (Vec<String>, Vec<i64>) {
    let store = Store::open(dir, &StoreOptions::default()).unwrap();
    let listed = all_listed(&store, &AlertFilter::default(), 9);
    let history = versions(&store.history("01R000").unwrap());
    store.close();
    (listed, history)
}

#[tokio::test]
async fn a_repack_keeps_every_key_and_value_and_the_store_carries_on() {
    let (root, dir) = store_to_repack().await;
    let before = dump(&dir);
    let served_before = served(&dir);
    let report = repack(&dir, &StoreOptions::default()).unwrap();
    assert_eq!(report.keys, before.len() as u64);
    assert_eq!(dump(&dir), before);
    assert_eq!(served(&dir), served_before);
    // Nothing is left beside the store, and it takes writes.
    assert_eq!(listing(root.path()), ["store"]);
    assert!(!dir.join("repack-complete").exists());
    let store = Store::open(&dir, &StoreOptions::default()).unwrap();
    let input = Input::Webhook(snap("inc-new", true, 1));
    apply(&store, "odd", input, "01R999").await;
    assert_eq!(store.count_alerts().unwrap(), 41);
}

#[tokio::test]
async fn a_repack_cut_short_is_rolled_back_or_finished_at_every_step() {
    // Each case: what the directories hold when the repack stopped. The copy carries a key
    // the store lacks, so the result says which of the two the next open kept.
    let cases = [
        ("copying", false),
        ("copied", false),
        ("wal moved", false),
        ("store aside", true),
        ("swapped", true),
        ("only the store aside", false),
        ("an unfinished copy beside the store aside", false),
        ("only the complete copy", true),
    ];
    for (case, forward) in cases {
        let (root, dir) = store_to_repack().await;
        std::fs::write(dir.join("wal").join("kept"), b"").unwrap();
        let before = dump(&dir);
        let served_before = served(&dir);
        let copy = copy_beside(&dir);
        let db = open_sled(&copy, &StoreOptions::default()).unwrap();
        db.insert(b"m:repack-sentinel", &b"copy"[..]).unwrap();
        db.flush().unwrap();
        drop(db);
        let aside = root.path().join("store.pre-repack");
        let mv = |from: &Path, to: &Path| std::fs::rename(from, to).unwrap();
        match case {
            "copying" => std::fs::remove_file(copy.join("repack-complete")).unwrap(),
            "copied" => {}
            "wal moved" => mv(&dir.join("wal"), &copy.join("wal")),
            "store aside" | "swapped" => {
                mv(&dir.join("wal"), &copy.join("wal"));
                mv(&dir, &aside);
                if case == "swapped" {
                    mv(&copy, &dir);
                }
            }
            "only the store aside" => {
                std::fs::remove_dir_all(&copy).unwrap();
                mv(&dir, &aside);
            }
            "only the complete copy" => {
                mv(&dir.join("wal"), &copy.join("wal"));
                std::fs::remove_dir_all(&dir).unwrap();
            }
            "an unfinished copy beside the store aside" => {
                std::fs::remove_file(copy.join("repack-complete")).unwrap();
                mv(&dir.join("wal"), &copy.join("wal"));
                mv(&dir, &aside);
            }
            _ => unreachable!(),
        }
        let served_after = served(&dir);
        assert!(!copy.exists() && !aside.exists(), "{case}");
        assert!(
            dir.join("wal").join("kept").exists(),
            "{case}: the log did not follow"
        );
        assert!(!dir.join("repack-complete").exists(), "{case}");
        assert_eq!(served_after, served_before, "{case}");
        let mut want = before.clone();
        if forward {
            want.push((b"m:repack-sentinel".into(), b"copy".into()));
            want.sort();
        }
        assert_eq!(dump(&dir), want, "{case}");
    }
}

#[tokio::test]
async fn a_store_moved_aside_beside_another_store_is_refused_not_guessed() {
    let (root, dir) = store_to_repack().await;
    std::fs::rename(&dir, root.path().join("store.pre-repack")).unwrap();
    // Something (an older binary) created a store in its place.
    drop(Store::open(&root.path().join("elsewhere"), &StoreOptions::default()).unwrap());
    std::fs::rename(root.path().join("elsewhere"), &dir).unwrap();
    let Err(err) = Store::open(&dir, &StoreOptions::default()) else {
        panic!("opened a store beside the one a repack moved aside");
    };
    assert!(
        err.to_string().contains("restore the right one by hand"),
        "{err}"
    );
    assert!(root.path().join("store.pre-repack").join("db").exists());
}

#[tokio::test]
async fn a_repack_run_again_after_one_cut_short_in_its_swap_finishes_it() {
    let (root, dir) = store_to_repack().await;
    let mut want = dump(&dir);
    let copy = copy_beside(&dir);
    // A key only the copy has: kept only if the cut-short repack is finished, not undone.
    let db = open_sled(&copy, &StoreOptions::default()).unwrap();
    db.insert(b"m:repack-sentinel", &b"copy"[..]).unwrap();
    db.flush().unwrap();
    drop(db);
    want.push((b"m:repack-sentinel".into(), b"copy".into()));
    want.sort();
    std::fs::rename(dir.join("wal"), copy.join("wal")).unwrap();
    std::fs::rename(&dir, root.path().join("store.pre-repack")).unwrap();
    let report = repack(&dir, &StoreOptions::default()).unwrap();
    assert_eq!(report.keys, want.len() as u64);
    assert_eq!(dump(&dir), want);
    assert_eq!(listing(root.path()), ["store"]);
}

/// The names in `dir`, sorted.
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn a_repack_it_cannot_swap_is_refused_and_leaves_the_store_as_it_was() {
    // A store dir that is a symlink: the swap would move the link, not the store.
    let (root, real) = store_to_repack().await;
    let before = dump(&real);
    let dir = root.path().join("linked");
    std::os::unix::fs::symlink(&real, &dir).unwrap();
    let err = repack(&dir, &StoreOptions::default()).unwrap_err();
    assert!(err.to_string().contains("symlink"), "{err}");
    assert_eq!(listing(root.path()), ["linked", "store"]);
    assert_eq!(dump(&real), before);
}

#[test]
fn a_copy_that_differs_from_the_store_is_caught() {
    let open = |d: &tempfile::TempDir| open_sled(d.path(), &StoreOptions::default()).unwrap();
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (x, y) = (open(&a), open(&b));
    for k in ["a:1", "a:2", "n:3"] {
        x.insert(k, k).unwrap();
        y.insert(k, k).unwrap();
    }
    assert!(super::repack::same_keys_and_values(&x, &y).is_ok());
    y.insert("a:2", "changed").unwrap();
    assert!(super::repack::same_keys_and_values(&x, &y).is_err());
    y.insert("a:2", "a:2").unwrap();
    y.remove("n:3").unwrap();
    let err = super::repack::same_keys_and_values(&x, &y).unwrap_err();
    assert!(err.to_string().contains("n:3 against (the end)"), "{err}");
    y.insert("n:3", "n:3").unwrap();
    y.insert("s:4", "extra").unwrap();
    assert!(super::repack::same_keys_and_values(&x, &y).is_err());
}

/// The vendored sled builds each written leaf in one pass (`Node::applied`) instead of cloning
/// it and inserting. Against a model, over leaves that split, then lose most of their keys and
/// fill again: new keys at the start, middle and end of a leaf, overwritten values, removes of
/// present and absent keys, keys and values short enough to be stored inline in sled and long
/// enough not to be. Checked in memory after every round, which is where `applied`'s leaves
/// live; the reopen at the end reads them back from sled's log, mostly as pages that sled
/// consolidated from them.
#[test]
fn sled_leaves_written_in_one_pass_hold_what_a_model_holds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let mut expected = std::collections::BTreeMap::<Vec<u8>, Vec<u8>>::new();
    let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let check = |db: &sled::Db, expected: &std::collections::BTreeMap<Vec<u8>, Vec<u8>>| {
        let stored: Vec<(Vec<u8>, Vec<u8>)> = db
            .iter()
            .map(|kv| kv.map(|(k, v)| (k.to_vec(), v.to_vec())).unwrap())
            .collect();
        let want: Vec<(Vec<u8>, Vec<u8>)> = expected
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        assert_eq!(stored, want);
    };
    let db = sled::Config::new().path(&path).open().unwrap();
    for round in 0..40_u64 {
        for i in 0..500_u64 {
            let r = next();
            // Few enough keys that most writes hit a key or a leaf written before; some keys
            // are long (not inline in sled), some values empty, some long.
            let n = r % 1500;
            let key = if n % 3 == 0 {
                format!("k:{n:05}:{}", "long-key-suffix-".repeat(3)).into_bytes()
            } else {
                format!("k:{n:05}").into_bytes()
            };
            if (r >> 20) % 4 == 0 {
                // Absent keys too: a remove that finds nothing leaves the leaf as it was.
                assert_eq!(
                    db.remove(&key).unwrap().map(|v| v.to_vec()),
                    expected.remove(&key)
                );
            } else {
                let value = match (r >> 24) % 3 {
                    0 => Vec::new(),
                    1 => format!("{round}.{i}").into_bytes(),
                    _ => format!("{round}.{i}:{}", "v".repeat(200)).into_bytes(),
                };
                assert_eq!(
                    db.insert(&key, value.clone()).unwrap().map(|v| v.to_vec()),
                    expected.insert(key, value)
                );
            }
        }
        check(&db, &expected);
        // The leaves that now exist, read back one key at a time as well as in order.
        for (k, v) in expected.iter().step_by(7) {
            assert_eq!(db.get(k).unwrap().as_deref(), Some(v.as_slice()));
        }
        // Halfway, most keys go (leaves shrink, and some may merge); then they come back.
        if round == 20 {
            let doomed: Vec<Vec<u8>> = expected
                .keys()
                .filter(|_| next() % 10 != 0)
                .cloned()
                .collect();
            for key in doomed {
                assert!(db.remove(&key).unwrap().is_some());
                expected.remove(&key);
            }
            check(&db, &expected);
        }
    }
    db.flush().unwrap();
    drop(db);
    let db = sled::Config::new().path(&path).open().unwrap();
    check(&db, &expected);
}
