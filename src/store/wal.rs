//! The write-ahead log: where a store write becomes durable.
//!
//! sled 0.34 makes a multi-key batch atomic by writing its log buffer out twice per batch
//! (`PageCache::pin_log` seals the IO buffer before and after the batch), and every such write
//! and every `flush()` is a job for its IO thread pool, which wakes all seven of its threads
//! per job (`threadpool.rs` uses `notify_all`). At a few thousand webhooks per second that cost
//! more CPU than everything else a webhook does (see docs/performance.md). So a write is first
//! one record here; the group commit writes and `fdatasync`s many records at once on its own
//! thread and answers their writers, and an apply thread then applies them to sled as plain
//! inserts and removes, in log order. sled never holds a write that is not durable here, and a
//! failed write touches nothing.
//!
//! sled is made durable in the background by a checkpoint: once a WAL file is closed and all of
//! it has been applied, `sled.flush()` plus an `fdatasync` of sled's file make the WAL file
//! redundant and it is retired (kept for reuse or deleted, below). On open, every WAL file
//! left over is replayed into sled in order. Records hold absolute values (insert key=value,
//! remove key) and are applied in WAL order by one thread, so replaying records sled already
//! has is harmless, and a crash that left sled with part of a record's operations is repaired
//! by the replay.
//!
//! sled itself replays at open everything it logged since its last open, and writes the
//! snapshot that ends that replay only then; so the apply thread also folds sled's log while
//! the store runs, by opening sled anew once enough was applied (`WalApplier::fold`).
//!
//! Record: `len u32 LE | crc32 u32 LE | payload`, the payload a sequence of operations
//! `1 | key len u32 | key | value len u32 | value` (insert) or `2 | key len u32 | key` (remove).
//!
//! File: `wal/<seq as 16 hex digits>.wal2`, a sequence of groups, each as the group commit
//! wrote it with one `writev` and one `fdatasync`: `GROUP_MAGIC u32 LE | len u32 LE | seq u64
//! LE | crc32 u32 LE | records (len bytes)`, the checksum taken over `seq`, `len` and the
//! records. A group of the file's own `seq` that is cut short or fails its checksum ends that
//! file's replay (logged as a warning): it was being written when the process or the disk
//! failed, and was never acknowledged; nothing of it is applied, even records of it that
//! reached the disk whole. So does anything that is not a group of the file's `seq` (quietly:
//! in a reused file that is its old content).
//!
//! **Closed files are reused.** Once checkpointed, a file is renamed to `<seq>.spare` instead
//! of deleted (the [`SPARES`] newest are kept, older spares deleted), and the next file is the
//! oldest spare renamed into place and written from its start. Writes that stay within a
//! file's length allocate no blocks and change no size, so their `fdatasync` need not write
//! the inode for them (it may still for the mtime, which ext4 without a journal writes
//! whenever dirty). Under load that took the disk requests per group commit from 3.4 to 2.5 and
//! throughput up 5–7 % (docs/performance.md, "Fourteenth pass"). What the file held before is
//! left after the new groups; its groups carry an older sequence number, so a replay stops at
//! the first of them. Sequence numbers only grow: the next one is above every file's, spares'
//! included, and the newest file retired is always kept.
//!
//! Files named `<seq>.wal` are the format before groups were framed (bare records, one after
//! the other), left by an older build; they are replayed the same way and deleted, never
//! reused.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{Faults, SharedDb, StoreError, StoreOptions};

/// One write of a record, as decoded: a key and its new value, or `None` to remove it.
#[cfg(test)]
pub(super) type Op = (Vec<u8>, Option<Vec<u8>>);

const INSERT: u8 = 1;
const REMOVE: u8 = 2;
const HEADER: usize = 8;

/// A WAL file this large is closed and checkpointed even before `CHECKPOINT_EVERY`.
const CHECKPOINT_BYTES: u64 = 64 * 1024 * 1024;
/// How often a WAL file with records in it is closed and checkpointed: bounds replay at start.
/// Checked when a group is written, so a file left idle stays open (and small) until the next.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// Under traffic that never pauses, a fold waits for this many times
/// `StoreOptions::fold_after_bytes` (see `WalApplier::quiet`).
const FOLD_ANYWAY_AFTER: u64 = 4;

/// Builds one record in place: values are serialised straight into it, with no copy per key
/// or value and nothing for another thread to free.
pub(super) struct Record {
    buf: Vec<u8>,
}

impl Record {
    pub(super) fn with_capacity(capacity: usize) -> Record {
        let mut buf = Vec::with_capacity(HEADER + capacity);
        buf.extend_from_slice(&[0; HEADER]);
        Record { buf }
    }

    /// Sets `key` to the bytes `value` writes.
    pub(super) fn insert_with(&mut self, key: &[u8], value: impl FnOnce(&mut Vec<u8>)) {
        self.buf.push(INSERT);
        put_bytes(&mut self.buf, key);
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        value(&mut self.buf);
        let len = (self.buf.len() - at - 4) as u32;
        self.buf[at..at + 4].copy_from_slice(&len.to_le_bytes());
    }

    pub(super) fn insert(&mut self, key: &[u8], value: &[u8]) {
        self.insert_with(key, |buf| buf.extend_from_slice(value));
    }

    pub(super) fn remove(&mut self, key: &[u8]) {
        self.buf.push(REMOVE);
        put_bytes(&mut self.buf, key);
    }

    /// The finished record: header (length, checksum) and payload.
    pub(super) fn finish(mut self) -> Vec<u8> {
        let payload = &self.buf[HEADER..];
        let len = payload.len() as u32;
        let crc = crc32fast::hash(payload);
        self.buf[0..4].copy_from_slice(&len.to_le_bytes());
        self.buf[4..8].copy_from_slice(&crc.to_le_bytes());
        self.buf
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Appends one record holding `ops` to `out`.
#[cfg(test)]
pub(super) fn encode_record(ops: &[Op], out: &mut Vec<u8>) {
    let mut record = Record::with_capacity(0);
    for (key, value) in ops {
        match value {
            Some(v) => record.insert(key, v),
            None => record.remove(key),
        }
    }
    out.extend_from_slice(&record.finish());
}

/// One operation of a record, borrowed from its bytes.
type OpRef<'a> = (&'a [u8], Option<&'a [u8]>);

/// The records of one WAL file, and how many bytes at its end were not a valid record.
#[cfg(test)]
pub(super) struct Decoded {
    pub records: Vec<Vec<Op>>,
    pub dropped_bytes: usize,
}

#[cfg(test)]
pub(super) fn decode_records(mut bytes: &[u8]) -> Decoded {
    let mut records = Vec::new();
    while let Some((ops, len)) = decode_one(bytes) {
        records.push(
            ops.into_iter()
                .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
                .collect(),
        );
        bytes = &bytes[len..];
    }
    Decoded {
        records,
        dropped_bytes: bytes.len(),
    }
}

/// One record's operations and its length, or `None` if the bytes do not start with a whole
/// record that passes its checksum.
fn decode_one(bytes: &[u8]) -> Option<(Vec<OpRef<'_>>, usize)> {
    let len = u32::from_le_bytes(bytes.get(0..4)?.try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(bytes.get(4..8)?.try_into().ok()?);
    let payload = bytes.get(HEADER..HEADER.checked_add(len)?)?;
    if crc32fast::hash(payload) != crc {
        return None;
    }
    let mut ops = Vec::new();
    let mut rest = payload;
    while let Some((&op, tail)) = rest.split_first() {
        let (key, tail) = take_bytes(tail)?;
        match op {
            INSERT => {
                let (value, tail) = take_bytes(tail)?;
                ops.push((key, Some(value)));
                rest = tail;
            }
            REMOVE => {
                ops.push((key, None));
                rest = tail;
            }
            _ => return None,
        }
    }
    Some((ops, HEADER + len))
}

fn take_bytes(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let len = u32::from_le_bytes(bytes.get(0..4)?.try_into().ok()?) as usize;
    let value = bytes.get(4..4usize.checked_add(len)?)?;
    Some((value, &bytes[4 + len..]))
}

/// Applies every whole record at the start of `bytes` to sled, as plain inserts and removes
/// (the record is what makes them atomic; see the module doc). Returns the records applied and
/// the bytes after the last of them.
fn apply_records<'a>(db: &sled::Db, mut bytes: &'a [u8]) -> Result<(usize, &'a [u8]), StoreError> {
    let mut applied = 0;
    while let Some((ops, len)) = decode_one(bytes) {
        for (key, value) in ops {
            match value {
                Some(v) => db.insert(key, v)?,
                None => db.remove(key)?,
            };
        }
        applied += 1;
        bytes = &bytes[len..];
    }
    Ok((applied, bytes))
}

/// How many records a replay reads ahead at a time (see [`warm_leaves`]): few enough that
/// the leaves they write to stay in sled's cache until they are applied.
const REPLAY_WINDOW: usize = 1024;
/// How many threads read those leaves at once: more than the cores, as a read on a cold page
/// cache waits for the disk.
const REPLAY_READERS: usize = 8;

/// Reads into sled's cache, from [`REPLAY_READERS`] threads at once, the leaves that the next
/// [`REPLAY_WINDOW`] whole records at the start of `bytes` write to, and returns those
/// records' length in bytes.
///
/// After a crash sled's cache is empty, and bringing a leaf back (reading its base and
/// fragments from sled's file and rebuilding it) is most of a replay: 50–80 µs a record at a
/// million incidents (docs/performance.md, ninth pass). Done in order by the one thread that
/// applies the records, those reads would wait for a cold disk one by one. Only a warm-up: a
/// read that fails is left for the apply to meet.
fn warm_leaves(db: &sled::Db, bytes: &[u8]) -> usize {
    let mut keys = Vec::new();
    let mut len = 0;
    let mut records = 0;
    while let Some((ops, record_len)) = decode_one(&bytes[len..]) {
        keys.extend(ops.into_iter().map(|(key, _)| key));
        len += record_len;
        records += 1;
        if records == REPLAY_WINDOW {
            break;
        }
    }
    // Neighbouring keys mostly share a leaf: each thread takes a run of them in order.
    keys.sort_unstable();
    keys.dedup();
    if keys.len() >= REPLAY_READERS * 4 {
        std::thread::scope(|scope| {
            let readers: Vec<_> = keys
                .chunks(keys.len().div_ceil(REPLAY_READERS))
                .filter_map(|run| {
                    // A thread that cannot be started leaves its run for the apply to read.
                    std::thread::Builder::new()
                        .name("pb-replay-read".into())
                        .spawn_scoped(scope, move || {
                            for key in run {
                                let _ = db.get(key);
                            }
                        })
                        .ok()
                })
                .collect();
            // Joined here, so that a reader that panicked (inside sled) is ignored like an
            // error rather than raised again by the scope.
            for reader in readers {
                let _ = reader.join();
            }
        });
    }
    len
}

pub(super) fn io(what: &str, path: &Path, e: std::io::Error) -> StoreError {
    StoreError::Io(format!("cannot {what} {}: {e}", path.display()))
}

/// What a file in the WAL directory is, by its name's extension.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    /// `.wal`: bare records, written by a build before groups were framed.
    Records,
    /// `.wal2`: framed groups (the module doc).
    Groups,
    /// `.spare`: a checkpointed file kept for reuse; its content is never replayed.
    Spare,
}

impl Kind {
    fn ext(self) -> &'static str {
        match self {
            Kind::Records => "wal",
            Kind::Groups => "wal2",
            Kind::Spare => "spare",
        }
    }
}

fn path_of(dir: &Path, seq: u64, kind: Kind) -> PathBuf {
    dir.join(format!("{seq:016x}.{}", kind.ext()))
}

fn file_path(dir: &Path, seq: u64) -> PathBuf {
    path_of(dir, seq, Kind::Groups)
}

/// The WAL files and spares in `dir`, by sequence number.
fn list(dir: &Path) -> Result<Vec<(u64, Kind, PathBuf)>, StoreError> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| io("list", dir, e))? {
        let entry = entry.map_err(|e| io("list", dir, e))?;
        let name = entry.file_name();
        let Some((stem, ext)) = name.to_str().and_then(|n| n.split_once('.')) else {
            continue;
        };
        let kind = [Kind::Records, Kind::Groups, Kind::Spare]
            .into_iter()
            .find(|k| k.ext() == ext);
        if let (Some(kind), Ok(seq)) = (kind, u64::from_str_radix(stem, 16)) {
            files.push((seq, kind, entry.path()));
        }
    }
    files.sort();
    Ok(files)
}

/// The most closed files kept for reuse (see the module doc). Each is as long as the file was
/// when it closed: at most [`CHECKPOINT_BYTES`] and a group.
pub(super) const SPARES: usize = 2;

/// Checkpointed files waiting to be reused, oldest first, shared by the checkpoint thread,
/// which adds them, and the group commit's writer, which takes them.
#[derive(Default)]
pub(super) struct Spares {
    files: std::sync::Mutex<Vec<PathBuf>>,
}

impl Spares {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<PathBuf>> {
        self.files.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The oldest spare, so that none waits for ever.
    fn take(&self) -> Option<PathBuf> {
        let mut files = self.lock();
        (!files.is_empty()).then(|| files.remove(0))
    }

    /// Makes room for one more: returns the oldest spare, to delete, if [`SPARES`] are kept.
    /// The one added next (`push`) is then the newest.
    fn make_room(&self) -> Option<PathBuf> {
        let mut files = self.lock();
        (files.len() >= SPARES).then(|| files.remove(0))
    }

    fn push(&self, spare: PathBuf) {
        self.lock().push(spare);
    }
}

/// The header of a group: magic, length, the file's sequence number, checksum (see the module
/// doc).
const GROUP_MAGIC: u32 = 0x3270_6270; // "pbp2" in a file viewer
const GROUP_HEADER: usize = 20;

fn group_crc(seq: u64, len: u32, records: &[u8]) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&seq.to_le_bytes());
    crc.update(&len.to_le_bytes());
    crc.update(records);
    crc.finalize()
}

fn group_header(seq: u64, records: &[u8]) -> std::io::Result<[u8; GROUP_HEADER]> {
    let len = u32::try_from(records.len())
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidInput, "a group over 4 GiB"))?;
    let mut header = [0; GROUP_HEADER];
    header[0..4].copy_from_slice(&GROUP_MAGIC.to_le_bytes());
    header[4..8].copy_from_slice(&len.to_le_bytes());
    header[8..16].copy_from_slice(&seq.to_le_bytes());
    header[16..20].copy_from_slice(&group_crc(seq, len, records).to_le_bytes());
    Ok(header)
}

/// Appends `records` to `out` as one group of file `seq`, as the writer writes it.
#[cfg(test)]
pub(super) fn encode_group(seq: u64, records: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&group_header(seq, records).unwrap());
    out.extend_from_slice(records);
}

/// Writes `records` as one group of file `seq` at the file's position, with one `writev`
/// unless the kernel takes less.
fn write_group_to(file: &mut File, seq: u64, records: &[u8]) -> std::io::Result<usize> {
    use std::io::{ErrorKind, IoSlice};
    let header = group_header(seq, records)?;
    let mut slices = [IoSlice::new(&header), IoSlice::new(records)];
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        match file.write_vectored(rest) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut rest, n),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(GROUP_HEADER + records.len())
}

/// Where the groups of a `.wal2` file end.
#[derive(PartialEq)]
enum GroupsEnd {
    /// At the end of the file, or before bytes that are not a group of this file: a reused
    /// file's old content (or a header cut short).
    Clean,
    /// At a group of this file cut short or failing its checksum: a write a crash or the disk
    /// cut short, never acknowledged.
    Torn,
}

/// The records of the whole groups at the start of `.wal2` file `seq`, joined, and where they
/// end. Reads no further than that: a reused file's old content is not read.
fn read_groups(path: &Path, seq: u64) -> Result<(Vec<u8>, GroupsEnd), StoreError> {
    use std::io::Read;
    let file = File::open(path).map_err(|e| io("open", path, e))?;
    let size = file.metadata().map_err(|e| io("read", path, e))?.len();
    let mut reader = std::io::BufReader::with_capacity(1 << 20, file);
    let mut records = Vec::new();
    let mut left = size;
    loop {
        if left == 0 {
            return Ok((records, GroupsEnd::Clean));
        }
        let mut header = [0; GROUP_HEADER];
        if left < GROUP_HEADER as u64 {
            return Ok((records, GroupsEnd::Clean));
        }
        reader
            .read_exact(&mut header)
            .map_err(|e| io("read", path, e))?;
        left -= GROUP_HEADER as u64;
        let word = |at: usize| {
            u32::from_le_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]])
        };
        let (magic, len, crc) = (word(0), word(4), word(16));
        let group_seq = u64::from_le_bytes(header[8..16].try_into().unwrap_or_default());
        if magic != GROUP_MAGIC || group_seq != seq {
            return Ok((records, GroupsEnd::Clean));
        }
        if u64::from(len) > left {
            return Ok((records, GroupsEnd::Torn));
        }
        let start = records.len();
        records.resize(start + len as usize, 0);
        reader
            .read_exact(&mut records[start..])
            .map_err(|e| io("read", path, e))?;
        left -= u64::from(len);
        if group_crc(seq, len, &records[start..]) != crc {
            records.truncate(start);
            return Ok((records, GroupsEnd::Torn));
        }
    }
}

pub(super) fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io("sync", dir, e))
}

/// Makes sled durable on its own: `flush()` then `fdatasync` of its file (sled's flush ends in
/// `sync_file_range`, which does not reach the disk's write cache; sled issue 1452).
///
/// sled keeps values larger than a quarter of its segment (128 KiB here) as files in `blobs/`
/// and never syncs them, so those are synced too (an alert's details can be that large: bodies
/// may reach 1 MiB). There are none unless such a value was written.
fn sync_sled(db: &sled::Db, log: &File, blobs: &Path) -> Result<(), StoreError> {
    db.flush()?;
    log.sync_data()
        .map_err(|e| StoreError::Io(format!("cannot sync the sled file: {e}")))?;
    let entries = match fs::read_dir(blobs) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io("list", blobs, e)),
    };
    let mut any = false;
    for entry in entries {
        let path = entry.map_err(|e| io("list", blobs, e))?.path();
        File::open(&path)
            .and_then(|f| f.sync_data())
            .map_err(|e| io("sync", &path, e))?;
        any = true;
    }
    if any {
        sync_dir(blobs)?;
    }
    Ok(())
}

/// Makes everything in sled durable (outside the checkpoint thread: only before it starts).
pub(super) fn sync_store(wal_dir: &Path, db: &sled::Db, log: &File) -> Result<(), StoreError> {
    sync_sled(db, log, &blobs_dir(wal_dir))
}

/// sled's blob directory, beside the WAL directory.
fn blobs_dir(wal_dir: &Path) -> PathBuf {
    wal_dir.parent().unwrap_or(wal_dir).join("blobs")
}

/// Retires the WAL files up to `upto`, oldest first, syncing the directory after each: if an
/// older file came back after a crash while a newer one did not, replaying it would roll keys
/// back. A file of framed groups becomes the newest spare (its groups then no longer replay: a
/// spare is never read), the oldest spare deleted if [`SPARES`] are kept; any other is
/// deleted.
fn retire_upto(dir: &Path, upto: u64, spares: &Spares) -> Result<(), StoreError> {
    for (seq, kind, path) in list(dir)? {
        if seq > upto || kind == Kind::Spare {
            continue;
        }
        if kind == Kind::Groups {
            // Kept as the newest spare: its number stays the highest in the directory.
            if let Some(oldest) = spares.make_room() {
                remove_if_there(&oldest)?;
            }
            let spare = path_of(dir, seq, Kind::Spare);
            fs::rename(&path, &spare).map_err(|e| io("rename", &path, e))?;
            spares.push(spare);
        } else {
            fs::remove_file(&path).map_err(|e| io("remove", &path, e))?;
        }
        sync_dir(dir)?;
    }
    Ok(())
}

fn remove_if_there(path: &Path) -> Result<(), StoreError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io("remove", path, e)),
        _ => Ok(()),
    }
}

/// Replays the WAL files left in `dir` into `db`, makes sled durable (with whatever was
/// written to it before, such as the store's format key) and retires the files (into
/// `spares`, with the spares found). Returns the sequence number for the next file and how
/// many records were replayed.
pub(super) fn recover(
    dir: &Path,
    db: &sled::Db,
    log: &File,
    spares: &Spares,
) -> Result<(u64, usize), StoreError> {
    let files = list(dir)?;
    // Above every file's, spares' included: a reused file must never get the number its old
    // groups were written under.
    let next = files.last().map_or(0, |(seq, ..)| seq + 1);
    let mut replayed = 0;
    let mut last = None;
    for (seq, kind, path) in &files {
        if *kind == Kind::Spare {
            // In order of their numbers: the newest are kept.
            if let Some(oldest) = spares.make_room() {
                remove_if_there(&oldest)?;
            }
            spares.push(path.clone());
            continue;
        }
        last = Some(*seq);
        let bytes = match kind {
            Kind::Groups => {
                let (records, end) = read_groups(path, *seq)?;
                if end == GroupsEnd::Torn {
                    tracing::warn!(file = %path.display(),
                        "A write-ahead log file ends in a group cut short or failing its checksum (a write cut short by a crash or a disk error); it was never acknowledged and is ignored.");
                }
                records
            }
            _ => fs::read(path).map_err(|e| io("read", path, e))?,
        };
        let mut rest = &bytes[..];
        loop {
            let window = warm_leaves(db, rest);
            if window == 0 {
                break;
            }
            // The window is whole records: all of it is applied.
            let (applied, tail) = apply_records(db, &rest[..window])?;
            debug_assert!(tail.is_empty(), "a window ended inside a record");
            replayed += applied;
            rest = &rest[window..];
        }
        if !rest.is_empty() {
            tracing::warn!(file = %path.display(), bytes = rest.len(),
                "The end of a write-ahead log file is not a whole record (a write cut short by a crash or a disk error); it was never acknowledged and is ignored.");
        }
    }
    sync_sled(db, log, &blobs_dir(dir))?;
    if let Some(last) = last {
        retire_upto(dir, last, spares)?;
    }
    Ok((next, replayed))
}

enum Checkpoint {
    /// Every WAL file up to this sequence number is in sled's memory: make sled durable and
    /// retire them.
    Upto(u64),
}

/// The thread that makes sled durable and retires the WAL files it covers. The only caller of
/// `sled::Db::flush` while the store is open (concurrent flushes deadlock sled 0.34), but for
/// a fold, which stops it first.
struct Checkpointer {
    tx: Option<mpsc::Sender<Checkpoint>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    fn start(
        dir: PathBuf,
        db: sled::Db,
        log: File,
        spares: Arc<Spares>,
    ) -> Result<Checkpointer, StoreError> {
        let (tx, rx) = mpsc::channel::<Checkpoint>();
        let thread = std::thread::Builder::new()
            .name("pb-checkpoint".into())
            .spawn(move || {
                while let Ok(Checkpoint::Upto(mut upto)) = rx.recv() {
                    // Requests that queued up meanwhile are covered by the latest one.
                    while let Ok(Checkpoint::Upto(later)) = rx.try_recv() {
                        upto = upto.max(later);
                    }
                    if let Err(e) = checkpoint(&dir, &db, &log, upto, &spares) {
                        // The files stay; the next checkpoint covers them too.
                        tracing::error!(error = %e, "Checkpoint of the store failed; the write-ahead log keeps the data and it is retried.");
                    }
                }
            })
            .map_err(|e| StoreError::Io(format!("cannot start the checkpoint thread: {e}")))?;
        Ok(Checkpointer {
            tx: Some(tx),
            thread: Some(thread),
        })
    }

    fn request(&self, upto: u64) {
        if let Some(tx) = &self.tx {
            let _ = tx.send(Checkpoint::Upto(upto));
        }
    }

    /// Runs a last checkpoint up to `upto` and waits for the thread to end.
    fn finish(&mut self, upto: u64) {
        self.request(upto);
        self.stop();
    }

    /// Lets the thread run the checkpoints already asked for and waits for it to end, and
    /// with it its handle on sled.
    fn stop(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn checkpoint(
    dir: &Path,
    db: &sled::Db,
    log: &File,
    upto: u64,
    spares: &Spares,
) -> Result<(), StoreError> {
    sync_sled(db, log, &blobs_dir(dir))?;
    retire_upto(dir, upto, spares)
}

/// The group commit's end of the WAL: owns the open file, writes and syncs each group and
/// rotates files. Used by the flusher thread only; its groups are applied by [`WalApplier`].
pub(super) struct WalWriter {
    dir: PathBuf,
    file: Option<File>,
    seq: u64,
    written: u64,
    opened_at: Instant,
    /// The newest file closed since the last `closed_file` call, to checkpoint once applied
    /// (a checkpoint up to it covers any closed before it).
    closed: Option<u64>,
    faults: Arc<Faults>,
    spares: Arc<Spares>,
}

/// The applier's end: applies durable groups to sled in WAL order, asks for checkpoints of
/// the files whose groups are all applied, and folds sled's log once it has grown (see
/// [`WalApplier::fold`]). Used by the applier thread only.
pub(super) struct WalApplier {
    db: SharedDb,
    checkpointer: Checkpointer,
    faults: Arc<Faults>,
    /// What a fold needs: the WAL directory (for the checkpoint thread it restarts), sled's
    /// file (to sync it), and how to open the store again.
    dir: PathBuf,
    log: File,
    store_dir: PathBuf,
    opts: StoreOptions,
    /// Bytes of groups applied since sled was last opened: what its next open would replay.
    since_open: u64,
    folds: Arc<Folds>,
    spares: Arc<Spares>,
}

/// When to fold, folds done while the store is open, and how long the last one kept reads
/// waiting.
#[derive(Debug)]
pub(super) struct Folds {
    /// `StoreOptions::fold_after_bytes`; tests change it while the store runs.
    pub(super) after_bytes: AtomicU64,
    /// Set while a fold runs: reads that wait then wait off their tokio worker, and the group
    /// commit's apply backlog may grow to 16 MiB (`commit::Backlog::reserve`).
    pub(super) active: AtomicBool,
    /// Folds done since the store opened.
    pub(super) count: AtomicU64,
    /// How long the last fold held the handle's write lock, in microseconds.
    pub(super) last_micros: AtomicU64,
}

impl Folds {
    pub(super) fn new(after_bytes: u64) -> Folds {
        Folds {
            after_bytes: AtomicU64::new(after_bytes),
            active: AtomicBool::new(false),
            count: AtomicU64::new(0),
            last_micros: AtomicU64::new(0),
        }
    }
}

/// What the applier shares with the store, besides the log's directory.
pub(super) struct ApplierParts {
    pub(super) db: SharedDb,
    pub(super) log: File,
    pub(super) faults: Arc<Faults>,
    pub(super) store_dir: PathBuf,
    pub(super) opts: StoreOptions,
    pub(super) folds: Arc<Folds>,
    /// The files `recover` kept for reuse; the writer takes them, checkpoints add to them.
    pub(super) spares: Arc<Spares>,
}

/// The handle now in `db`; `None` once a fold could not open the store again.
fn current_handle(db: &SharedDb) -> Option<sled::Db> {
    db.read().unwrap_or_else(PoisonError::into_inner).clone()
}

/// Opens the next WAL file and starts the checkpoint thread: the two ends of the log.
pub(super) fn start(
    dir: PathBuf,
    next_seq: u64,
    parts: ApplierParts,
) -> Result<(WalWriter, WalApplier), StoreError> {
    let ApplierParts {
        db,
        log,
        faults,
        store_dir,
        opts,
        folds,
        spares,
    } = parts;
    let checkpointer = start_checkpointer(&dir, &db, &log, &spares)?;
    let mut writer = WalWriter {
        dir: dir.clone(),
        file: None,
        seq: next_seq,
        written: 0,
        opened_at: Instant::now(),
        closed: None,
        faults: Arc::clone(&faults),
        spares: Arc::clone(&spares),
    };
    writer.open_file()?;
    let applier = WalApplier {
        db,
        checkpointer,
        faults,
        dir,
        log,
        store_dir,
        opts,
        since_open: 0,
        folds,
        spares,
    };
    Ok((writer, applier))
}

fn start_checkpointer(
    dir: &Path,
    db: &SharedDb,
    log: &File,
    spares: &Arc<Spares>,
) -> Result<Checkpointer, StoreError> {
    let db = current_handle(db).ok_or(StoreError::Closed)?;
    let log = log
        .try_clone()
        .map_err(|e| StoreError::Io(format!("cannot reopen the sled file: {e}")))?;
    Checkpointer::start(dir.to_path_buf(), db, log, Arc::clone(spares))
}

impl WalWriter {
    /// Opens the file for `self.seq`, a spare if there is one, and makes its directory entry
    /// durable. Groups are written from the start of the file.
    fn open_file(&mut self) -> Result<(), StoreError> {
        let path = file_path(&self.dir, self.seq);
        use std::os::unix::fs::OpenOptionsExt;
        let reused = self.spares.take().and_then(|spare| {
            if let Err(e) = fs::rename(&spare, &path) {
                tracing::debug!(error = %e, spare = %spare.display(), "Could not reuse a write-ahead log file; starting a new one.");
                return None;
            }
            match OpenOptions::new().write(true).open(&path) {
                Ok(file) => Some(file),
                Err(e) => {
                    // Renamed but not opened: out of the way of the new file, or it fails too.
                    tracing::debug!(error = %e, file = %path.display(), "Could not reuse a write-ahead log file; starting a new one.");
                    let _ = fs::remove_file(&path);
                    None
                }
            }
        });
        let file = match reused {
            Some(file) => file,
            None => OpenOptions::new()
                .create_new(true)
                .mode(0o600)
                .write(true)
                .open(&path)
                .map_err(|e| io("create", &path, e))?,
        };
        sync_dir(&self.dir)?;
        self.file = Some(file);
        self.written = 0;
        self.opened_at = Instant::now();
        Ok(())
    }

    /// Closes the current file and starts the next one; the closed one is checkpointed once
    /// its groups are applied.
    fn rotate(&mut self) -> Result<(), StoreError> {
        self.closed = Some(self.seq);
        self.file = None;
        self.seq += 1;
        self.open_file()
    }

    /// Writes and syncs `bytes` as the next group of the current file. On failure the file is
    /// cut back to where the group began and closed: after a failed fsync the kernel may have
    /// dropped the dirty pages, so the next group goes to a fresh file.
    fn write_group(&mut self, bytes: &[u8]) -> Result<(), StoreError> {
        self.faults.check_flush()?;
        if self.file.is_none() {
            self.rotate()?;
        }
        let path = file_path(&self.dir, self.seq);
        let Some(file) = self.file.as_mut() else {
            return Err(StoreError::Closed);
        };
        let seq = self.seq;
        match write_group_to(file, seq, bytes).and_then(|n| file.sync_data().map(|()| n)) {
            Ok(n) => {
                self.written += n as u64;
                Ok(())
            }
            Err(e) => {
                self.cut_back(self.written);
                self.file = None;
                Err(io("write", &path, e))
            }
        }
    }

    /// Cuts the current file back to `len` bytes, so that a group nobody was told about is
    /// not replayed at the next start. If even that fails, the group stays in the file and a
    /// restart would apply it: said in the log, since its writers were answered with an error.
    fn cut_back(&mut self, len: u64) {
        let Some(file) = self.file.as_mut() else {
            return;
        };
        if let Err(e) = file.set_len(len).and_then(|()| file.sync_data()) {
            tracing::error!(error = %e, "Could not remove a failed group from the write-ahead log; a restart will apply writes that were refused.");
        }
    }
}

/// The record a degraded store writes to find out whether the disk accepts writes again.
fn probe_record() -> Vec<u8> {
    let mut record = Record::with_capacity(16);
    record.insert(b"m:probe", &[1]);
    record.finish()
}

impl super::commit::Sink for WalWriter {
    fn write(&mut self, group: &[u8]) -> Result<(), StoreError> {
        // An empty group is the degraded store's probe: write a real record, since an empty
        // write succeeds even on a full disk.
        let probe;
        let bytes = if !group.is_empty() {
            group
        } else if self.faults.is_degraded() {
            probe = probe_record();
            &probe[..]
        } else {
            &[]
        };
        let was_degraded = self.faults.is_degraded();
        let written = if bytes.is_empty() {
            Ok(())
        } else {
            self.write_group(bytes)
        };
        let result = self.faults.record(written);
        if result.is_ok() && was_degraded {
            tracing::info!("The store accepts writes again.");
        }
        if result.is_ok()
            && self.written > 0
            && (self.written >= CHECKPOINT_BYTES || self.opened_at.elapsed() >= CHECKPOINT_EVERY)
        {
            if let Err(e) = self.rotate() {
                tracing::warn!(error = %e, "Could not start a new write-ahead log file; the next group retries.");
            }
        }
        result
    }

    fn closed_file(&mut self) -> Option<u64> {
        self.closed.take()
    }

    fn finish(&mut self) -> u64 {
        self.file = None;
        self.seq
    }
}

impl WalApplier {
    /// Folds sled's log into its snapshot while the store stays open, so that a start after a
    /// crash replays only what was logged since (sled 0.34 writes that snapshot only when it
    /// opens; `store::fold_log_for_next_open` does the same at a clean stop).
    ///
    /// sled is made durable, every handle on it is dropped and the same files are opened
    /// again, all under the write lock of the shared handle: reads wait meanwhile, and so do
    /// the groups to apply, while the group commit goes on making writes durable in the log
    /// and answering them (beyond the usual 64 groups, up to 16 MiB in all waiting for the
    /// apply: webhooks for live incidents need no read, and go on through the fold). Nothing
    /// can be lost: the groups applied so far are in sled's synced files, and the rest wait
    /// for the new handle. If the store cannot be opened again, that is a failed apply: reads
    /// and writes are refused until a restart, which replays the log as after a crash.
    fn fold(&mut self) -> Result<(), StoreError> {
        self.folds.active.store(true, Ordering::Release);
        let folded = self.fold_now();
        self.folds.active.store(false, Ordering::Release);
        folded
    }

    fn fold_now(&mut self) -> Result<(), StoreError> {
        let logged = std::mem::take(&mut self.since_open);
        // The checkpoint thread holds a handle, and is the only other caller of `flush`.
        self.checkpointer.stop();
        let started = Instant::now();
        let mut slot = self.db.write().unwrap_or_else(PoisonError::into_inner);
        let synced = match slot.as_ref() {
            Some(db) => sync_sled(db, &self.log, &blobs_dir(&self.dir)),
            None => Err(StoreError::Closed),
        };
        if let Err(e) = synced {
            drop(slot);
            tracing::warn!(error = %e, "Could not make the store durable to fold its log; the fold is tried again later and the write-ahead log keeps the data.");
            self.checkpointer = start_checkpointer(&self.dir, &self.db, &self.log, &self.spares)?;
            return Ok(());
        }
        // sled lets go of its file lock once the last handle is gone.
        drop(slot.take());
        *slot = Some(self.reopen()?);
        let took = started.elapsed();
        drop(slot);
        if let Err(e) = super::make_private(&self.store_dir, false) {
            tracing::warn!(error = %e, "Could not restrict the permissions of the store's new snapshot (the data dir's own permissions still apply).");
        }
        self.checkpointer = start_checkpointer(&self.dir, &self.db, &self.log, &self.spares)?;
        self.folds.count.fetch_add(1, Ordering::Relaxed);
        self.folds.last_micros.store(
            u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
        tracing::info!(
            logged_bytes = logged,
            millis = u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
            "Folded the store's log into its snapshot: a start after a crash will not replay it."
        );
        Ok(())
    }

    /// Opens the store again for a fold, trying a few times: a passing failure (sled's lock
    /// released late by one of its IO threads, no file descriptor free) must not stop the
    /// store until a restart.
    fn reopen(&self) -> Result<sled::Db, StoreError> {
        const ATTEMPTS: u32 = 3;
        let mut attempt = 1;
        loop {
            let opened = self
                .faults
                .check_fold()
                .and_then(|()| super::open_sled(&self.store_dir, &self.opts));
            match opened {
                Ok(db) => return Ok(db),
                Err(e) if attempt < ATTEMPTS => {
                    tracing::warn!(error = %e, attempt, "Could not open the store again after folding its log; trying again.");
                    std::thread::sleep(Duration::from_millis(500));
                    attempt += 1;
                }
                Err(e) => {
                    tracing::error!(error = %e, "Could not open the store again after folding its log; it refuses writes and reads until pandabridge is restarted, which replays the write-ahead log.");
                    return Err(e);
                }
            }
        }
    }
}

impl super::commit::Apply for WalApplier {
    fn apply(&mut self, group: &[u8]) -> Result<(), StoreError> {
        let records = self.faults.check_apply().and_then(|()| {
            let slot = self.db.read().unwrap_or_else(PoisonError::into_inner);
            let db = slot.as_ref().ok_or(StoreError::Closed)?;
            apply_records(db, group)
        });
        let applied = match records {
            Ok((_, [])) => Ok(()),
            Ok((_, rest)) => Err(StoreError::Corrupt {
                key: "write-ahead log group".into(),
                reason: format!("{} bytes are not a whole record", rest.len()),
            }),
            Err(e) => Err(e),
        };
        if let Err(e) = &applied {
            // sled failed (its errors are sticky). The group's writers were answered: it stays
            // in the log, and the next start applies it. Until then no later group can be
            // applied, so the store refuses writes and reads (`/readyz` says so).
            tracing::error!(error = %e, "The store could not apply a durable group; it refuses writes and reads until pandabridge is restarted, which applies the group from the write-ahead log.");
            return applied;
        }
        self.since_open += group.len() as u64;
        // Under traffic that never pauses, fold anyway, even with groups waiting: that bounds
        // what a crash leaves to replay whatever the load.
        let after = self.folds.after_bytes.load(Ordering::Relaxed);
        if self.since_open >= after.saturating_mul(FOLD_ANYWAY_AFTER) {
            self.fold()?;
        }
        Ok(())
    }

    /// Folds sled's log once `StoreOptions::fold_after_bytes` were applied since sled was
    /// opened: the fold makes reads wait, and in a lull nobody does.
    fn quiet(&mut self) -> Result<(), StoreError> {
        if self.since_open < self.folds.after_bytes.load(Ordering::Relaxed) {
            return Ok(());
        }
        self.fold()
    }

    fn applied_file(&mut self, seq: u64) {
        self.checkpointer.request(seq);
    }

    /// Checkpoints the last file too (on close: every record is applied) and stops.
    fn finish(&mut self, seq: u64) {
        self.checkpointer.finish(seq);
    }
}
