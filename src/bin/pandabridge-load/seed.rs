//! `--seed-store DIR`: fills a data dir with many incidents through the daemon's own write
//! path (parse → lifecycle step → store record → group commit), without HTTP, so that start-up
//! time, memory and listing can be measured against a large store (issue 5: 1M incidents)
//! without first spending an hour of load. The daemon is then started on that data dir.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use anyhow::Context;
use pandabridge::bigpanda::webhook::parse;
use pandabridge::lifecycle::{step, Ctx, Input};
use pandabridge::store::{Store, StoreOptions, StoredAlert};

use crate::workload::Workload;

/// Writers working at once: enough that the group commit covers many of them per fsync.
const WRITERS: usize = 256;

/// The alert source the seeded alerts belong to (any id; the load creates its own source).
pub const SEED_SOURCE: &str = "seed";

/// Writes `incidents` incidents of `steps` events each (new, updated, updated, closed, …) into
/// the store of `data_dir`, and prints progress and the rate.
pub fn seed(data_dir: &Path, incidents: usize, steps: u32) -> anyhow::Result<()> {
    let store_dir = pandabridge::daemon::store_dir(data_dir);
    let store = Store::open(&store_dir, &StoreOptions::default())
        .with_context(|| format!("cannot open the store in {}", store_dir.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let work = Arc::new(Workload::new(0x5eed, incidents));
    let next = Arc::new(AtomicUsize::new(0));
    let ids = Arc::new(Mutex::new(ulid::Generator::new()));
    let started = Instant::now();
    let result: anyhow::Result<()> = runtime.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..WRITERS {
            let (store, work, next, ids) = (
                store.clone(),
                Arc::clone(&work),
                Arc::clone(&next),
                Arc::clone(&ids),
            );
            tasks.push(tokio::spawn(async move {
                loop {
                    let incident = next.fetch_add(1, Ordering::Relaxed);
                    if incident >= incidents {
                        return Ok::<(), anyhow::Error>(());
                    }
                    let mut alert: Option<StoredAlert> = None;
                    for s in 0..steps {
                        let snap = parse(&work.body(incident, s))
                            .map_err(|e| anyhow::anyhow!("template does not parse: {e}"))?;
                        let ctx = Ctx {
                            now: pandabridge::engine::now_millis(),
                            new_alert_id: match alert {
                                None => ids
                                    .lock()
                                    .map_err(|_| anyhow::anyhow!("id generator poisoned"))?
                                    .generate()?
                                    .to_string(),
                                Some(_) => String::new(),
                            },
                            source_id: SEED_SOURCE.into(),
                        };
                        let Some(st) = step(
                            alert.as_ref().map(|a| &*a.alert),
                            &Input::Webhook(snap),
                            &ctx,
                        ) else {
                            anyhow::bail!("a webhook produced no step");
                        };
                        let (durable, tail) = store.write_step(alert.as_ref(), &st)?;
                        durable.await??;
                        alert = Some(StoredAlert::after(Arc::new(st.alert), tail));
                    }
                    if incident > 0 && incident % 100_000 == 0 {
                        eprintln!(
                            "pandabridge-load: seeded {incident} incidents in {:.0} s",
                            started.elapsed().as_secs_f64()
                        );
                    }
                }
            }));
        }
        for t in tasks {
            t.await??;
        }
        Ok(())
    });
    result?;
    let secs = started.elapsed().as_secs_f64();
    store.close();
    // As a daemon's clean stop does: the next start then need not replay sled's log.
    drop((runtime, store));
    let folding = Instant::now();
    match pandabridge::store::fold_log_for_next_open(&store_dir, &StoreOptions::default()) {
        Ok(()) => eprintln!(
            "pandabridge-load: readied the store for a quick start in {:.1} s",
            folding.elapsed().as_secs_f64()
        ),
        // The seeded data is complete; only its first start will be slower.
        Err(e) => eprintln!(
            "pandabridge-load: warning: could not ready the store for a quick start ({e}); its first start replays sled's log"
        ),
    }
    let events = incidents as f64 * f64::from(steps);
    println!(
        "seeded {incidents} incidents ({steps} events each) into {} in {secs:.1} s ({:.0} events/s)",
        store_dir.display(),
        events / secs
    );
    Ok(())
}
