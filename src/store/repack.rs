//! Rewrites a stopped store into a fresh sled, so that its pages are packed by the vendored
//! sled's leaf rule (vendor/sled/PATCHES.md, change 3). sled never repacks the leaves of a
//! store written before that rule (it merges a leaf only below 4 entries), and a 1M-incident
//! store written before it holds ~50 MiB more at rest and more at every fold
//! (docs/performance.md, "Twelfth pass").
//!
//! The copy goes to `store.repack` beside the store, is made durable file by file, reopened and
//! compared key by key with the store, and only then marked complete; then the write-ahead log
//! moves into it and the directories are swapped (the store goes to `store.pre-repack`, the
//! copy takes its name). The store is never changed before the swap, so a repack cut short
//! is rolled back, or finished once the swap began, by [`finish_interrupted`], which
//! [`Store::open`](super::Store::open) and [`repack`] run first.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::wal::{self, io};
use super::{open_sled, Store, StoreError, StoreOptions};

/// Written into the copy, last, once it is durable and checked. It stays in the swapped-in
/// store until the store moved aside is removed: the proof that the copy replaced it.
const COMPLETE_MARKER: &str = "repack-complete";
/// Keys per sled batch while copying.
const COPY_BATCH: usize = if cfg!(test) { 7 } else { 10_000 };
/// Keys between two progress lines.
const PROGRESS_EVERY: u64 = 500_000;

/// What a repack did.
#[derive(Debug, Clone, PartialEq)]
pub struct RepackReport {
    /// Keys copied (every key of the store).
    pub keys: u64,
    /// sled's file before and after (garbage included before: sled reuses space lazily).
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// The whole repack, the store's open included.
    pub seconds: f64,
}

/// `store.repack` and `store.pre-repack` beside the store directory `dir`.
pub(super) fn siblings(dir: &Path) -> (PathBuf, PathBuf) {
    let name = dir
        .file_name()
        .map_or_else(|| "store".into(), |n| n.to_string_lossy().into_owned());
    (
        dir.with_file_name(format!("{name}.repack")),
        dir.with_file_name(format!("{name}.pre-repack")),
    )
}

/// Renames and makes the rename durable in both directories.
fn rename(from: &Path, to: &Path) -> Result<(), StoreError> {
    fs::rename(from, to).map_err(|e| {
        StoreError::Io(format!(
            "cannot rename {} to {}: {e}",
            from.display(),
            to.display()
        ))
    })?;
    for parent in [to.parent(), from.parent()].into_iter().flatten() {
        wal::sync_dir(parent)?;
    }
    Ok(())
}

fn remove_tree(path: &Path) -> Result<(), StoreError> {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io("remove", path, e)),
    }
}

/// fsyncs every file and directory under `path`: sled syncs its log with `sync_file_range`
/// and never syncs `conf` or its blob files (STYLE.md's sled traps).
fn sync_tree(path: &Path) -> Result<(), StoreError> {
    for entry in fs::read_dir(path).map_err(|e| io("list", path, e))? {
        let entry = entry.map_err(|e| io("list", path, e))?;
        let p = entry.path();
        if entry.file_type().map_err(|e| io("stat", &p, e))?.is_dir() {
            sync_tree(&p)?;
        } else {
            fs::File::open(&p)
                .and_then(|f| f.sync_all())
                .map_err(|e| io("sync", &p, e))?;
        }
    }
    wal::sync_dir(path)
}

/// Brings the store directory `dir` back to one whole store after a repack that stopped
/// part way (a crash, a kill, a full disk). Does nothing when no repack was under way.
/// - A copy while the store is in place: dropped (the write-ahead log goes back to the store
///   if it had moved). The store was never changed; run the repack again.
/// - A complete copy while the store is not in place: the copy takes the store's place.
/// - A store moved aside: removed once the store in place carries the copy's marker, put
///   back if nothing else is there.
///
/// Any other mix (a store moved aside beside one without the marker: something else wrote
/// there) is refused with an error that names both, rather than guessed at.
pub fn finish_interrupted(dir: &Path) -> Result<(), StoreError> {
    let (copy, aside) = siblings(dir);
    let ambiguous = |what: &str| {
        StoreError::Io(format!(
            "a repack of the store was cut short and {what}; keep both {} and {} and restore the \
             right one by hand (the one the repack moved aside is the store as it was)",
            dir.display(),
            aside.display()
        ))
    };
    // The copy is dropped: the write-ahead log, if it had moved into it, goes back first.
    let drop_copy = || -> Result<(), StoreError> {
        let (wal_there, wal_here) = (copy.join("wal"), dir.join("wal"));
        if wal_there.exists() && !wal_here.exists() {
            rename(&wal_there, &wal_here)?;
        }
        remove_tree(&copy)
    };
    if copy.exists() {
        let complete = copy.join(COMPLETE_MARKER).exists();
        if dir.exists() {
            if aside.exists() {
                return Err(ambiguous("a store appeared in place of the moved one"));
            }
            tracing::warn!(copy = %copy.display(), "A repack of the store was cut short before its swap; the copy is dropped and the store is as it was. Run `pandabridge repack` again.");
            drop_copy()?;
        } else if complete {
            // Durable and checked against the store before it was marked: it takes the
            // store's place (the store moved aside, if still there, goes below).
            tracing::warn!(store = %dir.display(), "A repack of the store was cut short during its swap; the complete copy takes the store's place.");
            rename(&copy, dir)?;
        } else if aside.exists() {
            // The swap moves the store aside only once the copy is complete: this copy was
            // tampered with. The store moved aside is whole; put it back.
            rename(&aside, dir)?;
            drop_copy()?;
        } else {
            return Err(StoreError::Io(format!(
                "{} is missing and only a repack's copy, {}, is there; restore the store from a backup",
                dir.display(),
                copy.display()
            )));
        }
    }
    let marker = dir.join(COMPLETE_MARKER);
    if aside.exists() {
        if !dir.exists() {
            tracing::warn!(store = %dir.display(), "A repack left the store moved aside and no copy; the store is put back.");
            rename(&aside, dir)?;
        } else if marker.exists() {
            remove_tree(&aside)?;
            // Durably gone before the marker goes: the marker is what allows removing it.
            if let Some(parent) = aside.parent() {
                wal::sync_dir(parent)?;
            }
        } else {
            return Err(ambiguous("the store in place is not the repack's copy"));
        }
    }
    if marker.exists() {
        fs::remove_file(&marker).map_err(|e| io("remove", &marker, e))?;
        wal::sync_dir(dir)?;
    }
    Ok(())
}

/// Every key, and nothing else, in the same order with the same value.
pub(super) fn same_keys_and_values(a: &sled::Db, b: &sled::Db) -> Result<(), StoreError> {
    let (mut a, mut b) = (a.iter(), b.iter());
    loop {
        match (a.next().transpose()?, b.next().transpose()?) {
            (None, None) => return Ok(()),
            (x, y) if x == y => {}
            (x, y) => {
                let key = |kv: Option<(sled::IVec, sled::IVec)>| {
                    kv.map_or_else(
                        || "(the end)".to_owned(),
                        |(k, _)| String::from_utf8_lossy(&k).into_owned(),
                    )
                };
                return Err(StoreError::Backend(format!(
                    "the repacked copy differs from the store: {} against {}",
                    key(x),
                    key(y)
                )));
            }
        }
    }
}

/// Copies every key of the (closed) store in `dir` into a fresh sled at `copy`, makes the copy
/// durable, reads both back from disk and compares them, and marks the copy complete. The
/// store is only read.
pub(super) fn copy_store(dir: &Path, copy: &Path, opts: &StoreOptions) -> Result<u64, StoreError> {
    remove_tree(copy)?;
    super::make_private(copy, true)?;
    let mut keys = 0u64;
    {
        let from = open_sled(dir, opts)?;
        let to = open_sled(copy, opts)?;
        let mut batch = sled::Batch::default();
        let mut in_batch = 0;
        for kv in from.iter() {
            let (k, v) = kv?;
            batch.insert(k, v);
            in_batch += 1;
            keys += 1;
            if in_batch == COPY_BATCH {
                to.apply_batch(std::mem::take(&mut batch))?;
                in_batch = 0;
            }
            if keys % PROGRESS_EVERY == 0 {
                tracing::info!(keys, "Repacking the store: keys copied.");
            }
        }
        to.apply_batch(batch)?;
        to.flush()?;
    }
    // Opening it once more writes its snapshot (the first start after is quick); then every
    // file of it is made durable, and it is compared as read back from disk.
    super::fold_log_for_next_open(copy, opts)?;
    sync_tree(copy)?;
    {
        let (from, to) = (open_sled(dir, opts)?, open_sled(copy, opts)?);
        same_keys_and_values(&from, &to)?;
    }
    let marker = copy.join(COMPLETE_MARKER);
    fs::File::create(&marker)
        .and_then(|f| f.sync_all())
        .map_err(|e| io("write", &marker, e))?;
    wal::sync_dir(copy)?;
    Ok(keys)
}

/// Refuses a store this process could not hand back as it found it: one on another
/// filesystem than its data dir (a symlink or a mount point: the swap renames it) or owned
/// by another user (the copy would belong to this one, and the daemon could not open it).
fn check_swappable(dir: &Path, copy: &Path) -> Result<(), StoreError> {
    let meta = |p: &Path| fs::symlink_metadata(p).map_err(|e| io("stat", p, e));
    let store = meta(dir)?;
    let data_dir = dir.parent().unwrap_or(dir);
    // The data dir itself may be a symlink (to another disk): what counts is where it points.
    let data_dev = fs::metadata(data_dir)
        .map_err(|e| io("stat", data_dir, e))?
        .dev();
    if store.file_type().is_symlink() || store.dev() != data_dev {
        return Err(StoreError::Io(format!(
            "{} is a symlink or on another filesystem than {}; repack moves it, so it must be a \
             plain directory there",
            dir.display(),
            data_dir.display()
        )));
    }
    let (owner, us) = (meta(&dir.join("db"))?.uid(), meta(copy)?.uid());
    if owner != us {
        return Err(StoreError::Io(format!(
            "the store belongs to uid {owner} and this repack runs as uid {us}; run it as the \
             daemon's user"
        )));
    }
    Ok(())
}

/// Repacks the store in `dir`, which no process may have open (the caller holds the data
/// dir's lock). Finishes a repack cut short first; opens the store, so that its write-ahead
/// log is applied and an older store format upgraded; then copies, checks and swaps (see the
/// module's doc). On an error before the swap the store is as it was; after the swap only the
/// removal of the old store is left, which is logged and left to the next open.
pub fn repack(dir: &Path, opts: &StoreOptions) -> Result<RepackReport, StoreError> {
    finish_interrupted(dir)?;
    if !dir.join("db").exists() {
        return Err(StoreError::Io(format!("no store in {}", dir.display())));
    }
    let started = Instant::now();
    let (copy, aside) = siblings(dir);
    // Checked before the open, which may write to the store (an upgrade, a snapshot): as
    // another user, that alone could lock the daemon out of it. The copy's directory is made
    // only to learn who this process is, and removed before the open, which would take it for
    // a repack cut short.
    let checked = super::make_private(&copy, true).and_then(|()| check_swappable(dir, &copy));
    remove_tree(&copy)?;
    checked?;
    let store = Store::open(dir, opts)?;
    store.close();
    drop(store);
    let bytes = |d: &Path| fs::metadata(d.join("db")).map_or(0, |m| m.len());
    let bytes_before = bytes(dir);
    let copied = copy_store(dir, &copy, opts).and_then(|keys| {
        // The write-ahead log moves with the store: a checkpoint that failed at the close
        // above can leave records in it that sled's file lacks.
        let (wal_here, wal_there) = (dir.join("wal"), copy.join("wal"));
        if wal_here.exists() {
            rename(&wal_here, &wal_there)?;
        }
        rename(dir, &aside)?;
        Ok(keys)
    });
    let keys = match copied {
        Ok(keys) => keys,
        Err(e) => {
            // Roll back (the log returns to the store, the copy goes), so nothing is left
            // for the next open to do and no gigabytes of half a copy stay behind.
            if let Err(undo) = finish_interrupted(dir) {
                tracing::warn!(error = %undo, "Could not undo the repack; the next open of the store does.");
            }
            return Err(e);
        }
    };
    rename(&copy, dir)?;
    if let Err(e) = finish_interrupted(dir) {
        tracing::warn!(error = %e, aside = %aside.display(), "The store is repacked, but the old one could not be removed; the next open removes it.");
    }
    if let Err(e) = super::make_private(dir, false) {
        tracing::warn!(error = %e, "Could not restrict the permissions of the repacked store (the data dir's own permissions still apply).");
    }
    Ok(RepackReport {
        keys,
        bytes_before,
        bytes_after: bytes(dir),
        seconds: started.elapsed().as_secs_f64(),
    })
}
