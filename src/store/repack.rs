//! Rewrites a stopped store into a fresh sled, so that its pages are packed by the vendored
//! sled's leaf rule (vendor/sled/PATCHES.md, change 3). sled never repacks the leaves of a
//! store written before that rule (it merges a leaf only below 4 entries), and a 1M-incident
//! store written before it holds ~40 MiB more at rest and at every fold (docs/performance.md,
//! "Twelfth pass").
//!
//! The copy goes to `store.repack` beside the store, is compared key by key with the store,
//! and is marked complete; only then are the directories swapped. The store is never changed
//! before that, so an interrupted repack is rolled back by [`finish_interrupted`], which
//! [`Store::open`](super::Store::open) runs first: the copy is dropped unless the swap had
//! already taken the store away, in which case the copy is put in its place.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::{open_sled, wal, Store, StoreError, StoreOptions};

/// Written into the copy, last, once it holds every key of the store.
const COMPLETE_MARKER: &str = "repack-complete";
/// Keys per sled batch while copying.
const COPY_BATCH: usize = if cfg!(test) { 7 } else { 10_000 };

/// What a repack did.
#[derive(Debug, Clone, PartialEq)]
pub struct RepackReport {
    pub keys: u64,
    /// sled's file before and after (garbage included before: sled reuses space lazily).
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub seconds: f64,
}

/// `store.repack` and `store.pre-repack` beside the store directory `dir`.
fn siblings(dir: &Path) -> (PathBuf, PathBuf) {
    let name = dir
        .file_name()
        .map_or_else(|| "store".into(), |n| n.to_string_lossy().into_owned());
    (
        dir.with_file_name(format!("{name}.repack")),
        dir.with_file_name(format!("{name}.pre-repack")),
    )
}

fn io(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Io(format!("cannot {what} {}: {e}", path.display()))
}

fn rename(from: &Path, to: &Path) -> Result<(), StoreError> {
    fs::rename(from, to).map_err(|e| io("rename", from, e))?;
    if let Some(parent) = to.parent() {
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

/// Brings the store directory `dir` back to one whole store after a repack that stopped
/// part way (a crash, a kill, a full disk). Nothing to do, and nothing done, when no repack
/// was under way.
/// - An incomplete copy is dropped; the store was never changed.
/// - A complete copy is dropped too while the store is there (the write-ahead log goes back
///   to the store if it had moved): run the repack again.
/// - If the swap had moved the store aside, the complete copy takes its place.
/// - A store moved aside is removed once the copy is in place.
pub fn finish_interrupted(dir: &Path) -> Result<(), StoreError> {
    let (copy, aside) = siblings(dir);
    if copy.exists() {
        let complete = copy.join(COMPLETE_MARKER).exists();
        if dir.exists() || !complete {
            if !dir.exists() {
                // Cannot happen (the store is moved aside only once the copy is complete),
                // unless someone moved it: put it back rather than lose it.
                if aside.exists() {
                    rename(&aside, dir)?;
                } else {
                    return Err(StoreError::Io(format!(
                        "{} holds an incomplete repack and {} is missing; restore the store from a backup",
                        copy.display(),
                        dir.display()
                    )));
                }
            }
            let (wal_there, wal_here) = (copy.join("wal"), dir.join("wal"));
            if wal_there.exists() && !wal_here.exists() {
                rename(&wal_there, &wal_here)?;
            }
            tracing::warn!(copy = %copy.display(), "A repack of the store was interrupted before it swapped the store; the copy is dropped and the store is as it was. Run `pandabridge repack` again.");
            remove_tree(&copy)?;
        } else {
            tracing::warn!(store = %dir.display(), "A repack of the store was interrupted during its swap; the complete copy takes the store's place.");
            rename(&copy, dir)?;
        }
    }
    if aside.exists() && dir.exists() {
        remove_tree(&aside)?;
    }
    let marker = dir.join(COMPLETE_MARKER);
    if marker.exists() {
        fs::remove_file(&marker).map_err(|e| io("remove", &marker, e))?;
    }
    Ok(())
}

/// Copies every key of the (closed) store in `dir` into a fresh sled at `copy`, checks the
/// copy key by key, and marks it complete. The store is only read.
fn copy_store(dir: &Path, copy: &Path, opts: &StoreOptions) -> Result<u64, StoreError> {
    remove_tree(copy)?;
    super::make_private(copy, true)?;
    let from = open_sled(dir, opts)?;
    let to = open_sled(copy, opts)?;
    let mut keys = 0u64;
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
    }
    to.apply_batch(batch)?;
    to.flush()?;
    same_keys_and_values(&from, &to)?;
    // The iterators are gone too: sled lets go of its file lock with the last handle.
    drop((from, to));
    // Opening it once more writes its snapshot, so the first start after is quick.
    super::fold_log_for_next_open(copy, opts)?;
    let marker = copy.join(COMPLETE_MARKER);
    fs::File::create(&marker)
        .and_then(|f| f.sync_all())
        .map_err(|e| io("write", &marker, e))?;
    wal::sync_dir(copy)?;
    Ok(keys)
}

/// Every key, and nothing else, in the same order with the same value.
fn same_keys_and_values(a: &sled::Db, b: &sled::Db) -> Result<(), StoreError> {
    let (mut a, mut b) = (a.iter(), b.iter());
    loop {
        match (a.next().transpose()?, b.next().transpose()?) {
            (None, None) => return Ok(()),
            (x, y) if x == y => {}
            (x, y) => {
                let key = |kv: Option<(sled::IVec, sled::IVec)>| {
                    kv.map(|(k, _)| String::from_utf8_lossy(&k).into_owned())
                };
                return Err(StoreError::Backend(format!(
                    "the repacked copy differs from the store at {:?} / {:?}; the store is unchanged",
                    key(x),
                    key(y)
                )));
            }
        }
    }
}

/// Repacks the store in `dir`, which no process may have open (the caller holds the data
/// dir's lock). Opens it first, so that its write-ahead log is applied and an older store
/// format upgraded; then copies, checks and swaps (see the module's doc).
pub fn repack(dir: &Path, opts: &StoreOptions) -> Result<RepackReport, StoreError> {
    if !dir.join("db").exists() {
        return Err(StoreError::Io(format!("no store in {}", dir.display())));
    }
    let started = Instant::now();
    let store = Store::open(dir, opts)?;
    store.close();
    drop(store);
    let bytes = |d: &Path| fs::metadata(d.join("db")).map_or(0, |m| m.len());
    let bytes_before = bytes(dir);
    let (copy, aside) = siblings(dir);
    let keys = match copy_store(dir, &copy, opts) {
        Ok(keys) => keys,
        Err(e) => {
            // The store is unchanged; do not leave gigabytes of half a copy behind.
            if let Err(cleanup) = remove_tree(&copy) {
                tracing::warn!(error = %cleanup, "Could not remove the unfinished copy; the next open of the store removes it.");
            }
            return Err(e);
        }
    };
    // The write-ahead log holds nothing sled lacks now (the open applied it), but it moves
    // with the store all the same.
    let (wal_here, wal_there) = (dir.join("wal"), copy.join("wal"));
    if wal_here.exists() {
        rename(&wal_here, &wal_there)?;
    }
    rename(dir, &aside)?;
    rename(&copy, dir)?;
    finish_interrupted(dir)?;
    super::make_private(dir, false)?;
    Ok(RepackReport {
        keys,
        bytes_before,
        bytes_after: bytes(dir),
        seconds: started.elapsed().as_secs_f64(),
    })
}

#[cfg(test)]
pub(super) fn copy_for_test(dir: &Path, opts: &StoreOptions) -> PathBuf {
    let (copy, _) = siblings(dir);
    copy_store(dir, &copy, opts).unwrap();
    copy
}
