//! Durable state: alert sources, alerts, their history, the outbox and the BigPanda integration.
//!
//! The only module that imports sled. Everything lives in one sled tree under typed key
//! prefixes; one alert change (record, indexes, history entries and outbox effects) is one
//! atomic write-ahead-log record. Values are a format byte followed by JSON (LZ4-compressed for
//! alert records and history chunks), so the format can evolve record by record. A write is one
//! record of the write-ahead log (`wal`): the group commit (`commit`) writes and syncs many
//! records at once and answers them, an apply thread applies them to sled, and a checkpoint
//! thread makes sled itself durable in the background. Reads see only durable writes.
//!
//! Key layout (`\0` separates free-text parts; incident ids never contain control characters):
//! - `m:format` → the store format version
//! - `a:<alert_id>` → alert; alert ids are ULIDs, so key order is creation order
//! - `h:<alert_id>:<seq u64 BE>` → history entries from `seq` on: one entry (record format 1) or
//!   a chunk of them (format 2). The newest entries ride in the alert's own record (format 2:
//!   `{"alert": …, "history": […]}`) until [`HISTORY_CHUNK`] have gathered, then move to one
//!   `h:` key: a step costs one sled operation for the alert and its history, not two.
//! - `n:<incident_id>\0<source_id>` → alert id (one alert per source and incident; also the
//!   index of the listing by incident)
//! - `xs:firing:<alert_id>`, `xr:<source_id>\0<alert_id>` → listing indexes. Only firing alerts
//!   are indexed by status (store format 5): a resolve or a re-fire then costs one index
//!   operation, not two, and resolved alerts are listed as the alerts not in that index.
//! - `o:<alert_id>:<epoch u32 BE>:<kind>` → outbox entry
//! - `s:<source_id>` → alert source
//! - `g:bigpanda` → the BigPanda integration (API key included; the data dir is 0700)

mod commit;
mod repack;
mod wal;

use std::borrow::Cow;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, PoisonError, RwLock, TryLockError};
use std::time::{Duration, Instant};

use serde::{de::DeserializeOwned, Deserialize, Serialize};

pub use commit::{Durable, ExpectedWriters};
use commit::{GroupCommit, Linger};
pub use repack::{repack, RepackReport};
use wal::Record;

use crate::lifecycle::{
    Alert, AlertStatus, Effect, HistoryEvent, Millis, Outbound, OutboundKey, Step,
};

/// Record format of plain JSON values (sources, the integration, outbox entries; alerts and
/// history entries written before history chunks).
const FORMAT: u8 = 1;
/// Record format of alerts carrying their history tail, and of history chunks.
const FORMAT_CHUNKED: u8 = 2;
/// Record format of the same, compressed: the `FORMAT_CHUNKED` JSON as one LZ4 block after
/// its length (u32 LE). Alert JSON compresses about fourfold, and sled's cache, its log and the
/// write-ahead log then carry that much less per webhook.
const FORMAT_LZ4: u8 = 3;
/// Largest record a `FORMAT_LZ4` header may announce: far above any real alert (webhook bodies
/// are limited to 1 MiB), so a damaged length cannot make a read allocate gigabytes.
const MAX_RECORD_BYTES: usize = 64 << 20;
/// The store format. 5: no `xs:resolved:` index. 4: alert records and history chunks may be
/// `FORMAT_LZ4`. 3: `n:` keys instead of `i:` keys and the `xn:` index. Older stores are
/// upgraded on open: their alert and history records read as they are, the incident keys of 2
/// (history chunks with `i:` keys) and 1 (before history chunks) are moved, the index of
/// resolved alerts goes, and the store is marked 5, so an older binary refuses it instead of
/// misreading it.
const STORE_FORMAT: u8 = 5;
/// Store formats [`upgrade`] brings to [`STORE_FORMAT`] (store formats, not the record formats
/// above).
const UPGRADABLE_FORMATS: [u8; 4] = [1, 2, 3, 4];
/// How much one page of a listing may examine before it is returned short, with a cursor to
/// go on from: a record read costs [`LIST_READ_COST`], a key passed over 1. This bounds a page
/// whose filter matches few of the alerts it walks (resolved alerts among many firing ones, one
/// status of one source) at ~2,000 records read, some 10–20 ms. Small in tests, so that they
/// cross it.
const LIST_BUDGET: usize = if cfg!(test) { 300 } else { 20_000 };
const LIST_READ_COST: usize = 10;
/// The index of firing alerts; resolved alerts are not indexed by status.
const FIRING_INDEX: &[u8] = b"xs:firing:";
/// The index of resolved alerts that formats before 5 kept.
const RESOLVED_INDEX_BEFORE_5: &[u8] = b"xs:resolved:";
/// Present while an upgrade is under way (the store is already marked [`STORE_FORMAT`]).
const UPGRADING_KEY: &[u8] = b"m:upgrading";
/// Keys moved per sled batch by an upgrade; small in tests so they cross batches.
const UPGRADE_BATCH: usize = if cfg!(test) { 7 } else { 10_000 };
const FORMAT_KEY: &[u8] = b"m:format";
/// How many history entries ride in an alert's record before they move to a key of their own.
const HISTORY_CHUNK: usize = 8;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum StoreError {
    #[error("storage error: {0}")]
    Backend(String),
    #[error("storage IO error: {0}")]
    Io(String),
    #[error("stored record {key} is unreadable: {reason}")]
    Corrupt { key: String, reason: String },
    #[error("the store is closed")]
    Closed,
    #[error("injected store fault")]
    Injected,
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        match e {
            sled::Error::Io(io) => StoreError::Io(io.to_string()),
            other => StoreError::Backend(other.to_string()),
        }
    }
}

/// Switches that make every write and flush fail, or every read, or sled's applying of
/// durable groups, to test how the daemon behaves when the disk or sled does. Always compiled
/// (one relaxed load per operation); only tests flip them.
///
/// It also remembers whether the last write or flush failed (`degraded`), injected or real, so
/// `/readyz` can say so; the flusher probes the disk while degraded and clears it on success.
/// Read faults are not recorded as degraded and do not change `/readyz`.
#[derive(Debug, Default)]
pub struct Faults {
    fail_writes: AtomicBool,
    fail_flushes: AtomicBool,
    fail_reads: AtomicBool,
    fail_applies: AtomicBool,
    fail_folds: AtomicBool,
    degraded: AtomicBool,
}

/// The injected error while `switch` is on.
fn injected(switch: &AtomicBool) -> Result<(), StoreError> {
    if switch.load(Ordering::Relaxed) {
        Err(StoreError::Injected)
    } else {
        Ok(())
    }
}

impl Faults {
    pub fn set_failing(&self, failing: bool) {
        self.fail_writes.store(failing, Ordering::Relaxed);
    }
    /// Fails only the write-ahead log's writes (a full or broken disk): writes are accepted,
    /// then their group fails and nothing of it is applied.
    pub fn set_failing_flushes(&self, failing: bool) {
        self.fail_flushes.store(failing, Ordering::Relaxed);
    }
    /// Fails every read of the store (an unreadable disk), writes untouched.
    pub fn set_failing_reads(&self, failing: bool) {
        self.fail_reads.store(failing, Ordering::Relaxed);
    }
    fn check_read(&self) -> Result<(), StoreError> {
        injected(&self.fail_reads)
    }
    /// Fails the applying of durable groups to sled, as a sled error would: the groups are
    /// in the write-ahead log and answered, and the next open applies them.
    pub fn set_failing_applies(&self, failing: bool) {
        self.fail_applies.store(failing, Ordering::Relaxed);
    }
    fn check_apply(&self) -> Result<(), StoreError> {
        injected(&self.fail_applies)
    }
    /// Fails the opening of the store again when its log is folded while it runs (see
    /// `StoreOptions::fold_after_bytes`), after the old handle is gone.
    pub fn set_failing_folds(&self, failing: bool) {
        self.fail_folds.store(failing, Ordering::Relaxed);
    }
    fn check_fold(&self) -> Result<(), StoreError> {
        injected(&self.fail_folds)
    }
    fn check_flush(&self) -> Result<(), StoreError> {
        injected(&self.fail_flushes).and_then(|()| self.check())
    }
    fn check(&self) -> Result<(), StoreError> {
        injected(&self.fail_writes)
    }
    /// Records the result of a write or flush.
    fn record<T>(&self, result: Result<T, StoreError>) -> Result<T, StoreError> {
        self.degraded.store(result.is_err(), Ordering::Relaxed);
        result
    }
    fn is_degraded(&self) -> bool {
        self.degraded.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// sled page cache size. sled's default is 1 GiB, far more than an alert store needs.
    pub cache_bytes: u64,
    /// How long the flusher waits for more writers to join a batch.
    pub linger: Duration,
    /// How many writers may join a batch at most: the flusher stops waiting once they all
    /// have (see `commit::Linger`). `None`: it always waits out `linger`.
    pub expected_writers: Option<ExpectedWriters>,
    /// Once this many bytes of writes were applied to sled since it was opened, the store
    /// folds sled's log into its snapshot while it runs, at its next quiet second (or after
    /// four times as much if writes never pause); reads wait meanwhile. This bounds what a
    /// start after a crash replays. See docs/operations.md.
    pub fold_after_bytes: u64,
}

/// Default for `StoreOptions::fold_after_bytes`.
pub const DEFAULT_FOLD_AFTER_BYTES: u64 = 32 * 1024 * 1024;

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            cache_bytes: 64 * 1024 * 1024,
            linger: Duration::from_micros(500),
            expected_writers: None,
            fold_after_bytes: DEFAULT_FOLD_AFTER_BYTES,
        }
    }
}

/// An alert source as stored: the token only as a SHA-256 hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceRecord {
    pub id: String,
    pub name: String,
    pub default_environment_id: Option<String>,
    pub token_sha256: String,
    /// The token replaced by the last rotation, valid until `previous_expires_at`.
    pub previous_token_sha256: Option<String>,
    pub previous_expires_at: Option<Millis>,
    pub created_at: Millis,
}

/// The stored BigPanda integration. `Debug` hides the key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IntegrationRecord {
    pub api_key: String,
    pub api_url: String,
    pub validated_at: Millis,
    pub healthy: bool,
    pub last_error: Option<String>,
}

impl std::fmt::Debug for IntegrationRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IntegrationRecord")
            .field("api_key", &"<redacted>")
            .field("api_url", &self.api_url)
            .field("validated_at", &self.validated_at)
            .field("healthy", &self.healthy)
            .field("last_error", &self.last_error)
            .finish()
    }
}

/// Filters of the alert listing; all optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AlertFilter {
    pub status: Option<AlertStatus>,
    pub source_id: Option<String>,
    pub incident_id: Option<String>,
}

/// The WAL record of one lifecycle step (see [`Store::write_step`]) and the history tail it
/// leaves in the alert's record.
fn step_record(previous: Option<&StoredAlert>, step: &Step) -> (Record, HistoryTail) {
    let alert = &step.alert;
    let mut w = Record::with_capacity(4096);
    // The history entries since the last chunk, this step's included.
    let mut tail = HistoryTail::with_room(previous.map(|p| &p.tail), step.history.len());
    for entry in &step.history {
        tail.push(entry);
    }
    if tail.len >= HISTORY_CHUNK {
        // The chunk goes before the alert record: sled applies a record's operations one
        // by one, and `Store::history` reads the alert first, so a reader that sees the
        // emptied tail finds the chunk already there. Whoever read the old tail filters
        // the chunk out by sequence number.
        let first_seq = alert.history_len - tail.len as u64;
        w.insert_with(&history_key(&alert.id, first_seq), |b| tail.encode_chunk(b));
        tail = HistoryTail::default();
    }
    // The tail lives on in the writer's state, one per live incident actor. `with_room` kept
    // it from doubling; this trims the rest of the reserve where the allocator can.
    tail.json.shrink_to_fit();
    w.insert_with(&alert_key(&alert.id), |b| {
        encode_alert_record(alert, &tail, b)
    });
    match previous.map(|p| &p.alert) {
        None => {
            w.insert(
                &incident_key(&alert.source_id, &alert.incident_id),
                alert.id.as_bytes(),
            );
            w.insert(&source_index(&alert.source_id, &alert.id), &[]);
            if alert.status == AlertStatus::Firing {
                w.insert(&firing_index(&alert.id), &[]);
            }
        }
        Some(prev) if prev.status != alert.status => match alert.status {
            AlertStatus::Firing => w.insert(&firing_index(&alert.id), &[]),
            AlertStatus::Resolved => w.remove(&firing_index(&alert.id)),
        },
        Some(_) => {}
    }
    for effect in &step.effects {
        match effect {
            Effect::Enqueue(msg) => w.insert_with(&outbox_key(&msg.key()), |b| encode_into(msg, b)),
            Effect::Dequeue(k) => w.remove(&outbox_key(k)),
        }
    }
    (w, tail)
}

/// Runs `wait`, which blocks until the apply thread is done with something (a fold, groups
/// not yet applied), without stalling the other tasks of a tokio worker: on a multi-thread
/// runtime tokio hands them to another thread first. Elsewhere (a plain thread, a
/// current-thread runtime) it simply blocks. Only the slow path of a read comes here.
fn off_worker<T>(wait: impl FnOnce() -> T) -> T {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(wait)
        }
        _ => wait(),
    }
}

/// The open sled database, shared by the store's readers and its apply thread, which opens
/// it anew when it folds sled's log (`wal::WalApplier`); `None` if that open failed.
type SharedDb = Arc<RwLock<Option<sled::Db>>>;

#[derive(Clone)]
pub struct Store {
    tree: SharedDb,
    commit: Arc<GroupCommit>,
    faults: Arc<Faults>,
    folds: Arc<wal::Folds>,
    integration_writes: Arc<tokio::sync::Mutex<()>>,
}

fn encode_into<T: Serialize>(value: &T, out: &mut Vec<u8>) {
    out.push(FORMAT);
    // Serialising our own plain structs into a Vec cannot fail.
    let _ = serde_json::to_writer(out, value);
}

/// The outcome of one write: durable and readable, or not written at all.
async fn settle(durable: Durable) -> Result<(), StoreError> {
    durable.await.unwrap_or(Err(StoreError::Closed))
}

fn corrupt(key: &[u8], reason: String) -> StoreError {
    StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason,
    }
}

fn decode<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, StoreError> {
    match bytes.split_first() {
        Some((&FORMAT, rest)) => parse(key, rest),
        Some((v, _)) => Err(corrupt(key, format!("unknown record format {v}"))),
        None => Err(corrupt(key, "empty record".into())),
    }
}

fn parse<T: DeserializeOwned>(key: &[u8], json: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(json).map_err(|e| corrupt(key, e.to_string()))
}

#[derive(Deserialize)]
struct AlertRecord<H> {
    alert: Alert,
    history: H,
}

/// Decodes an alert record of either format; `H` is what to make of its history tail.
fn decode_alert<H: DeserializeOwned + Default>(
    key: &[u8],
    bytes: &[u8],
) -> Result<(Alert, H), StoreError> {
    if let Some(json) = chunked_json(key, bytes)? {
        let r: AlertRecord<H> = parse(key, &json)?;
        return Ok((r.alert, r.history));
    }
    Ok((decode(key, bytes)?, H::default()))
}

/// The JSON of a `FORMAT_CHUNKED` or `FORMAT_LZ4` record (decompressed); `None` for a record
/// of another format.
fn chunked_json<'a>(key: &[u8], bytes: &'a [u8]) -> Result<Option<Cow<'a, [u8]>>, StoreError> {
    match bytes.split_first() {
        Some((&FORMAT_CHUNKED, rest)) => Ok(Some(Cow::Borrowed(rest))),
        Some((&FORMAT_LZ4, rest)) => Ok(Some(Cow::Owned(decompress(key, rest)?))),
        _ => Ok(None),
    }
}

/// Appends the entries of one `h:` record, of either format, whose sequence number is below
/// `upto`. The key ends with the sequence number of the record's first entry.
fn decode_history(
    key: &[u8],
    bytes: &[u8],
    upto: u64,
    out: &mut Vec<HistoryEvent>,
) -> Result<(), StoreError> {
    let first = key
        .len()
        .checked_sub(8)
        .and_then(|at| key[at..].try_into().ok())
        .map(u64::from_be_bytes)
        .ok_or_else(|| corrupt(key, "history key without a sequence number".into()))?;
    if first >= upto {
        // A chunk of entries that were still in the tail the reader saw.
        return Ok(());
    }
    let room = usize::try_from(upto - first).unwrap_or(usize::MAX);
    match chunked_json(key, bytes)? {
        Some(json) => out.extend(
            parse::<Vec<HistoryEvent>>(key, &json)?
                .into_iter()
                .take(room),
        ),
        None => out.push(decode(key, bytes)?),
    }
    Ok(())
}

/// Appends a `FORMAT_LZ4` record holding `json` (what a `FORMAT_CHUNKED` record holds after
/// its format byte).
fn compress_into(json: &[u8], out: &mut Vec<u8>) {
    // A record longer than a reader accepts (none is near that) is kept plain, as is one that
    // fails to compress (cannot happen with a buffer of the maximum size).
    if let Ok(len) = u32::try_from(json.len()) {
        if json.len() <= MAX_RECORD_BYTES {
            let start = out.len();
            out.push(FORMAT_LZ4);
            out.extend_from_slice(&len.to_le_bytes());
            let block = out.len();
            out.resize(
                block + lz4_flex::block::get_maximum_output_size(json.len()),
                0,
            );
            match lz4_flex::block::compress_into(json, &mut out[block..]) {
                Ok(n) => return out.truncate(block + n),
                Err(_) => out.truncate(start),
            }
        }
    }
    out.push(FORMAT_CHUNKED);
    out.extend_from_slice(json);
}

/// The JSON of a `FORMAT_LZ4` record (`bytes` after the format byte).
fn decompress(key: &[u8], bytes: &[u8]) -> Result<Vec<u8>, StoreError> {
    let Some((len, block)) = bytes.split_first_chunk::<4>() else {
        return Err(corrupt(key, "compressed record without its length".into()));
    };
    let len = usize::try_from(u32::from_le_bytes(*len)).unwrap_or(usize::MAX);
    if len > MAX_RECORD_BYTES {
        return Err(corrupt(
            key,
            format!("compressed record claims {len} bytes"),
        ));
    }
    let mut json = vec![0; len];
    match lz4_flex::block::decompress_into(block, &mut json) {
        Ok(n) if n == len => Ok(json),
        Ok(n) => Err(corrupt(
            key,
            format!("compressed record holds {n} bytes, not {len}"),
        )),
        Err(e) => Err(corrupt(key, format!("compressed record: {e}"))),
    }
}

/// An alert as its writer (the incident actor) carries it from one step to the next: the
/// alert, and its newest history entries that ride in its record (see the key layout above).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredAlert {
    /// Shared with whoever is told of the step that made it, not copied for them.
    pub alert: Arc<Alert>,
    tail: HistoryTail,
}

impl StoredAlert {
    /// The stored state once a step written by [`Store::write_step`] is durable: the step's
    /// alert and the tail that the write returned.
    pub fn after(alert: Arc<Alert>, written: HistoryTail) -> StoredAlert {
        StoredAlert {
            alert,
            tail: written,
        }
    }
}

/// The history entries in an alert's record, kept as the JSON they are stored as (entries
/// separated by commas, no brackets): a step appends its own entries to the bytes instead of
/// cloning and re-encoding the earlier ones.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct HistoryTail {
    json: Vec<u8>,
    len: usize,
}

impl HistoryTail {
    /// A copy of `previous` (or an empty tail) with room for `entries` more, so that
    /// appending them allocates once.
    fn with_room(previous: Option<&HistoryTail>, entries: usize) -> HistoryTail {
        // A webhook's entry is about 150 bytes; a larger one just grows the buffer.
        const ENTRY_ROOM: usize = 192;
        let earlier = previous.map_or(&[][..], |p| &p.json[..]);
        let mut json = Vec::with_capacity(earlier.len() + entries * ENTRY_ROOM);
        json.extend_from_slice(earlier);
        HistoryTail {
            json,
            len: previous.map_or(0, |p| p.len),
        }
    }

    fn push(&mut self, entry: &HistoryEvent) {
        if self.len > 0 {
            self.json.push(b',');
        }
        // Serialising our own plain struct into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut self.json, entry);
        self.len += 1;
    }

    fn from_entries(entries: &[HistoryEvent]) -> HistoryTail {
        let mut tail = HistoryTail::with_room(None, entries.len());
        for entry in entries {
            tail.push(entry);
        }
        tail.json.shrink_to_fit();
        tail
    }

    /// The entries as a history chunk record: one JSON array, compressed.
    fn encode_chunk(&self, out: &mut Vec<u8>) {
        let mut json = Vec::with_capacity(self.json.len() + 2);
        json.push(b'[');
        json.extend_from_slice(&self.json);
        json.push(b']');
        compress_into(&json, out);
    }
}

/// Encodes an alert record: `{"alert": …, "history": [tail]}`, compressed.
fn encode_alert_record(alert: &Alert, tail: &HistoryTail, out: &mut Vec<u8>) {
    let mut json = Vec::with_capacity(4096);
    json.extend_from_slice(br#"{"alert":"#);
    // Serialising our own plain struct into a Vec cannot fail.
    let _ = serde_json::to_writer(&mut json, alert);
    json.extend_from_slice(br#","history":["#);
    json.extend_from_slice(&tail.json);
    json.extend_from_slice(b"]}");
    compress_into(&json, out);
}

fn key(parts: &[&[u8]]) -> Vec<u8> {
    let mut k = Vec::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        k.extend_from_slice(p);
    }
    k
}

fn alert_key(id: &str) -> Vec<u8> {
    key(&[b"a:", id.as_bytes()])
}
fn history_key(id: &str, seq: u64) -> Vec<u8> {
    key(&[b"h:", id.as_bytes(), b":", &seq.to_be_bytes()])
}
fn incident_key(source_id: &str, incident_id: &str) -> Vec<u8> {
    key(&[b"n:", incident_id.as_bytes(), b"\0", source_id.as_bytes()])
}
fn firing_index(id: &str) -> Vec<u8> {
    key(&[FIRING_INDEX, id.as_bytes()])
}
fn source_index(source_id: &str, id: &str) -> Vec<u8> {
    key(&[b"xr:", source_id.as_bytes(), b"\0", id.as_bytes()])
}
fn outbox_key(k: &OutboundKey) -> Vec<u8> {
    key(&[
        b"o:",
        k.alert_id.as_bytes(),
        b":",
        &k.epoch.to_be_bytes(),
        b":",
        k.kind.as_bytes(),
    ])
}
fn source_key(id: &str) -> Vec<u8> {
    key(&[b"s:", id.as_bytes()])
}
const INTEGRATION_KEY: &[u8] = b"g:bigpanda";

/// Brings a store of an older format to [`STORE_FORMAT`]. In a format-1 or -2 store each
/// `i:<source>\0<incident>` key becomes `n:<incident>\0<source>` and the `xn:` index goes (the
/// `n:` keys are that index now); the `xs:resolved:` index of formats 1 to 4 goes; alert and
/// history records read as they are. Runs before the store takes writes. The first batch marks
/// the store [`STORE_FORMAT`] and [`UPGRADING_KEY`], so that from then on an older binary
/// refuses it and the next open resumes an upgrade cut short; the keys then move in sled
/// batches (atomic, and sled recovers a prefix of its batches) that are idempotent, and the
/// marker goes last.
fn upgrade(db: &sled::Db, from: u8) -> Result<(), StoreError> {
    let started = Instant::now();
    let mut mark = sled::Batch::default();
    mark.insert(FORMAT_KEY, &[STORE_FORMAT]);
    mark.insert(UPGRADING_KEY, &[from]);
    db.apply_batch(mark)?;
    tracing::info!(
        from,
        to = STORE_FORMAT,
        "Upgrading the store; pandabridge versions before this format will refuse it."
    );
    let mut moved = 0usize;
    loop {
        let mut batch = sled::Batch::default();
        let mut n = 0;
        // Each batch removes the keys it read, so every scan starts on the ones left.
        for kv in db.scan_prefix(b"i:").take(UPGRADE_BATCH) {
            let (k, v) = kv?;
            let rest = &k[2..];
            let Some(sep) = rest.iter().position(|&b| b == 0) else {
                return Err(corrupt(&k, "incident key without a separator".into()));
            };
            let (source, incident) = (&rest[..sep], &rest[sep + 1..]);
            let moved_key = key(&[b"n:", incident, b"\0", source]);
            match db.get(&moved_key)? {
                // Only a store opened by an older binary in the middle of an upgrade (which
                // the marker prevents) could hold two alerts for one incident: keep the one
                // already reachable, and say so.
                Some(existing) if existing != v => tracing::warn!(
                    key = %String::from_utf8_lossy(&k),
                    kept = %String::from_utf8_lossy(&existing),
                    dropped = %String::from_utf8_lossy(&v),
                    "Two alerts for one incident; webhooks go to the one kept, the other stays listed."
                ),
                _ => batch.insert(moved_key, v),
            }
            batch.remove(k);
            n += 1;
        }
        if n == 0 {
            break;
        }
        db.apply_batch(batch)?;
        moved += n;
        if moved % 100_000 < n {
            tracing::info!(
                incidents = moved,
                "Upgrading the store: incident keys moved."
            );
        }
    }
    remove_prefix(db, b"xn:")?;
    let resolved = remove_prefix(db, RESOLVED_INDEX_BEFORE_5)?;
    db.remove(UPGRADING_KEY)?;
    tracing::info!(
        from,
        to = STORE_FORMAT,
        incidents = moved,
        resolved_index_entries_removed = resolved,
        seconds = started.elapsed().as_secs_f64(),
        "Store upgraded."
    );
    Ok(())
}

/// Removes every key under `prefix`, in sled batches; returns how many.
fn remove_prefix(db: &sled::Db, prefix: &[u8]) -> Result<usize, StoreError> {
    let mut removed = 0;
    loop {
        let mut batch = sled::Batch::default();
        let mut n = 0;
        for k in db.scan_prefix(prefix).keys().take(UPGRADE_BATCH) {
            batch.remove(k?);
            n += 1;
        }
        if n == 0 {
            return Ok(removed);
        }
        db.apply_batch(batch)?;
        removed += n;
    }
}

/// Makes `dir` mode 0700 (creating it first when `create`) and every entry sled put in it
/// 0600 (files) or 0700 (directories, e.g. `blobs/`). The store holds the BigPanda key; sled
/// follows the umask, and files it creates later are protected by the 0700 directories.
fn make_private(dir: &Path, create: bool) -> Result<(), StoreError> {
    use std::fs::{self, DirBuilder, Permissions};
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let io = |what: &str, p: &Path, e: std::io::Error| {
        StoreError::Io(format!("cannot {what} {}: {e}", p.display()))
    };
    let set = |p: &Path, mode: u32| {
        fs::set_permissions(p, Permissions::from_mode(mode)).map_err(|e| io("restrict", p, e))
    };
    if create {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(|e| io("create", dir, e))?;
    }
    set(dir, 0o700)?;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in fs::read_dir(&d).map_err(|e| io("list", &d, e))? {
            let entry = entry.map_err(|e| io("list", &d, e))?;
            let (path, kind) = (
                entry.path(),
                entry.file_type().map_err(|e| io("stat", &d, e))?,
            );
            if kind.is_dir() {
                set(&path, 0o700)?;
                pending.push(path);
            } else if kind.is_file() {
                set(&path, 0o600)?;
            }
        }
    }
    Ok(())
}

/// An alert record, decoded with `H` as what to make of its history tail. The read helpers
/// take the tree a public read got from `Store::read`, so that one read waits once.
fn alert_record<H: DeserializeOwned + Default>(
    tree: &sled::Db,
    id: &str,
) -> Result<Option<(Alert, H)>, StoreError> {
    let k = alert_key(id);
    match tree.get(&k)? {
        Some(v) => decode_alert(&k, &v).map(Some),
        None => Ok(None),
    }
}

/// An alert without its history tail (skipped, not built).
fn alert_only(tree: &sled::Db, id: &str) -> Result<Option<Alert>, StoreError> {
    Ok(alert_record::<Option<serde::de::IgnoredAny>>(tree, id)?.map(|(alert, _)| alert))
}

fn alert_id_in(
    tree: &sled::Db,
    source_id: &str,
    incident_id: &str,
) -> Result<Option<String>, StoreError> {
    Ok(tree
        .get(incident_key(source_id, incident_id))?
        .map(|v| String::from_utf8_lossy(&v).into_owned()))
}

/// An alert a listing walks past: to be read and checked against the filter, or known by its
/// key alone not to match.
enum Candidate {
    Read(String),
    Pass(String),
}

/// The alert ids of the keys under `prefix` (each key is the prefix and an alert id), newest
/// first, below `cursor`.
fn ids_below(
    tree: &sled::Db,
    prefix: &[u8],
    cursor: Option<&str>,
) -> impl Iterator<Item = Result<String, StoreError>> {
    let upper = match cursor {
        Some(c) => key(&[prefix, c.as_bytes()]),
        None => {
            let mut end = prefix.to_vec();
            // The prefix's last byte is ':' or '\0'; bumping it bounds the range.
            if let Some(last) = end.last_mut() {
                *last += 1;
            }
            end
        }
    };
    let skip = prefix.len();
    tree.range(prefix..upper.as_slice()).rev().map(move |kv| {
        let (k, _) = kv?;
        Ok(String::from_utf8_lossy(&k[skip..]).into_owned())
    })
}

fn sled_config(dir: &Path, opts: &StoreOptions) -> sled::Config {
    sled::Config::new()
        .path(dir)
        .cache_capacity(opts.cache_bytes)
        // One flusher only (concurrent flushes deadlock sled 0.34): our checkpoint thread.
        // Durability comes from the write-ahead log; sled is flushed at checkpoints.
        .flush_every_ms(None)
}

/// Readies a closed store for a quick next open, once every handle on it is gone.
///
/// sled 0.34 folds the log it wrote since its last open into the snapshot of its page table
/// only when it opens again, so the start after a busy run replays all of that log: seconds
/// at a million incidents (see docs/performance.md). Opening it once more at a clean stop
/// does that replay and writes the snapshot now, while nobody waits for the daemon to be
/// ready. The store's data is untouched. Fails, harmlessly, while a handle is still open
/// (sled locks its file): the next open then replays the log as it would have anyway. A
/// directory without a store is left alone.
pub fn fold_log_for_next_open(dir: &Path, opts: &StoreOptions) -> Result<(), StoreError> {
    if !dir.join("db").exists() {
        return Ok(());
    }
    let db = open_sled(dir, opts)?;
    drop(db);
    // The snapshot was written with the process umask.
    make_private(dir, false)
}

/// How long an open waits for sled's file lock. A store closed and dropped in this process
/// can keep it a moment longer: the last handle may be released by one of sled's IO threads
/// (sled's own tests block on the lock for this reason). Another process keeps it for good.
const LOCK_PATIENCE: Duration = Duration::from_secs(2);

fn open_sled(dir: &Path, opts: &StoreOptions) -> Result<sled::Db, StoreError> {
    if !discard_torn_snapshot(dir)? {
        return Err(StoreError::Io(format!(
            "{LOCK_HELD} on {} (is another pandabridge using this data dir?)",
            dir.join("db").display()
        )));
    }
    Ok(sled_config(dir, opts).open()?)
}

/// How a store whose lock another process holds is reported (sled's own words for it).
const LOCK_HELD: &str = "could not acquire lock";

/// sled 0.34 writes a snapshot to `snap.N.generating`, syncs it, renames it to `snap.N` and
/// only then deletes the previous one. A process killed before the rename leaves the torn
/// file behind, which sled's next open takes for the newest snapshot and refuses as corrupt:
/// the store would not open again by itself. Removing it loses nothing, the previous
/// snapshot and the log being intact. Done only under sled's own file lock (waited for up to
/// [`LOCK_PATIENCE`]), so that the file of a live process is never touched; false if another
/// handle still holds that lock. Once it is released here, sled's open takes it.
fn discard_torn_snapshot(dir: &Path) -> Result<bool, StoreError> {
    let file = match std::fs::File::open(dir.join("db")) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(true),
        Err(e) => return Err(StoreError::Io(format!("cannot open the store's file: {e}"))),
    };
    let locked = crate::flock::lock_within(&file, LOCK_PATIENCE)
        .map_err(|e| StoreError::Io(format!("cannot lock the store's file: {e}")))?;
    if !locked {
        return Ok(false);
    }
    let entries = std::fs::read_dir(dir)
        .map_err(|e| StoreError::Io(format!("cannot list {}: {e}", dir.display())))?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            tracing::warn!(file = %name, "Removing a store snapshot left half-written by a process that was killed while writing it.");
            std::fs::remove_file(entry.path())
                .map_err(|e| StoreError::Io(format!("cannot remove {name}: {e}")))?;
        }
    }
    // The lock goes with the file.
    Ok(true)
}

impl Store {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path, opts: &StoreOptions) -> Result<Store, StoreError> {
        // Before anything creates `dir`: a repack cut short may have moved the store aside.
        repack::finish_interrupted(dir)?;
        make_private(dir, true)?;
        let opening = Instant::now();
        let db = open_sled(dir, opts)?;
        let sled_open = opening.elapsed();
        let format = db.get(FORMAT_KEY)?;
        match format.as_deref() {
            // A new store: sled is made durable (this key included) by `wal::recover` below.
            None => {
                db.insert(FORMAT_KEY, &[STORE_FORMAT])?;
            }
            Some([STORE_FORMAT]) => {}
            Some([v]) if UPGRADABLE_FORMATS.contains(v) => {}
            Some(v) => {
                return Err(StoreError::Corrupt {
                    key: "m:format".into(),
                    reason: format!("store format {v:?} is newer than this binary understands"),
                })
            }
        }
        let wal_dir = dir.join("wal");
        if !wal_dir.exists() {
            std::fs::create_dir_all(&wal_dir).map_err(|e| StoreError::Io(e.to_string()))?;
            // The WAL's own directory entry must survive a crash too.
            wal::sync_dir(dir)?;
        }
        // sled creates its files with the process umask (often 0644): tighten what it made.
        make_private(dir, false)?;
        let log = std::fs::File::open(dir.join("db")).map_err(|e| StoreError::Io(e.to_string()))?;
        let replaying = Instant::now();
        let spares = Arc::new(wal::Spares::default());
        let (next_seq, replayed) = wal::recover(&wal_dir, &db, &log, &spares)?;
        let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        tracing::info!(
            sled_open_ms = millis(sled_open),
            replayed_records = replayed,
            replay_ms = millis(replaying.elapsed()),
            "Opened the store (sled's open replays its own log since its last snapshot; then the write-ahead log is replayed into it)."
        );
        // After the replay: a WAL left by an older binary holds its keys too.
        let upgrade_from = match (format.as_deref(), db.get(UPGRADING_KEY)?) {
            // An upgrade cut short: resume it.
            (_, Some(from)) => from.first().copied(),
            (Some(&[from]), None) if UPGRADABLE_FORMATS.contains(&from) => Some(from),
            _ => None,
        };
        if let Some(from) = upgrade_from {
            upgrade(&db, from)?;
            wal::sync_store(&wal_dir, &db, &log)?;
        }
        let faults = Arc::new(Faults::default());
        let folds = Arc::new(wal::Folds::new(opts.fold_after_bytes));
        let tree: SharedDb = Arc::new(RwLock::new(Some(db)));
        let (writer, applier) = wal::start(
            wal_dir,
            next_seq,
            wal::ApplierParts {
                db: Arc::clone(&tree),
                log,
                faults: Arc::clone(&faults),
                store_dir: dir.to_path_buf(),
                opts: opts.clone(),
                folds: Arc::clone(&folds),
                spares,
            },
        )?;
        let fold_flag = Arc::clone(&folds);
        let linger = Linger {
            time: opts.linger,
            expected: opts.expected_writers.clone(),
        };
        let commit = GroupCommit::start(writer, applier, linger, move || {
            fold_flag.active.load(Ordering::Acquire)
        })?;
        Ok(Store {
            tree,
            commit,
            faults,
            folds,
            integration_writes: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// Group commits done so far, and the writers they covered.
    pub fn flush_stats(&self) -> (u64, u64) {
        use std::sync::atomic::Ordering::Relaxed;
        (
            self.commit.flushes.load(Relaxed),
            self.commit.flushed_waiters.load(Relaxed),
        )
    }

    /// Folds of sled's log done while the store runs, and how long the last one took.
    pub fn fold_stats(&self) -> (u64, Duration) {
        (
            self.folds.count.load(Ordering::Relaxed),
            Duration::from_micros(self.folds.last_micros.load(Ordering::Relaxed)),
        )
    }

    /// Changes `StoreOptions::fold_after_bytes` of a running store: from the next group on.
    #[cfg(test)]
    fn set_fold_after_bytes(&self, bytes: u64) {
        self.folds.after_bytes.store(bytes, Ordering::Relaxed);
    }

    /// Makes everything written so far durable and stops the flusher. Later writes fail.
    pub fn close(&self) {
        self.commit.stop();
    }

    /// Runs `read` on the tree once every write acknowledged so far is applied to it: what
    /// every read goes through (see `GroupCommit::wait_applied`). The tree cannot be folded
    /// (opened anew) while `read` runs; a read that comes during a fold waits for it.
    fn read<T>(
        &self,
        read: impl FnOnce(&sled::Db) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.faults.check_read()?;
        self.commit.wait_applied(&self.folds.active)?;
        let slot = match self.tree.try_read() {
            Ok(slot) => slot,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            // A fold holds it.
            Err(TryLockError::WouldBlock) => {
                off_worker(|| self.tree.read().unwrap_or_else(PoisonError::into_inner))
            }
        };
        match slot.as_ref() {
            Some(tree) => read(tree),
            // A fold could not open the store again; the apply thread reports why.
            None => Err(self.commit.failure().unwrap_or(StoreError::Closed)),
        }
    }

    /// A handle on the tree, as `read` would see it, for tests that look at or change the keys
    /// directly. Held, it keeps a fold from opening the store again.
    #[cfg(test)]
    fn visible(&self) -> Result<sled::Db, StoreError> {
        self.read(|tree| Ok(tree.clone()))
    }

    /// Every record under `prefix`, in key order.
    fn decode_all<T: DeserializeOwned>(&self, prefix: &[u8]) -> Result<Vec<T>, StoreError> {
        self.read(|tree| {
            tree.scan_prefix(prefix)
                .map(|kv| {
                    let (k, v) = kv?;
                    decode(&k, &v)
                })
                .collect()
        })
    }

    fn get<T: DeserializeOwned>(&self, k: &[u8]) -> Result<Option<T>, StoreError> {
        self.read(|tree| match tree.get(k)? {
            Some(v) => decode(k, &v).map(Some),
            None => Ok(None),
        })
    }

    /// Queues one record for the next group commit. Its writes become visible to reads only
    /// once durable, when the returned future resolves.
    fn apply(&self, record: Record) -> Result<Durable, StoreError> {
        let result = self
            .faults
            .check()
            .and_then(|()| self.commit.append(&record.finish()));
        // Only a failure says something about the disk here; success is decided (and health
        // recorded) when the group is written.
        if result.is_err() {
            return self.faults.record(result);
        }
        result
    }

    /// False while writes or flushes fail (for `/readyz`); true again once the disk recovers.
    /// Also false for good once a durable group could not be applied (until a restart).
    pub fn healthy(&self) -> bool {
        !self.faults.is_degraded() && self.faults.check().is_ok() && self.commit.applies()
    }

    // ----- alerts -------------------------------------------------------------------------

    pub fn alert(&self, id: &str) -> Result<Option<Alert>, StoreError> {
        self.read(|tree| alert_only(tree, id))
    }

    pub fn alert_id_for(
        &self,
        source_id: &str,
        incident_id: &str,
    ) -> Result<Option<String>, StoreError> {
        self.read(|tree| alert_id_in(tree, source_id, incident_id))
    }

    /// The alert of one source's incident as its writer needs it: with its history tail.
    pub fn load_alert(
        &self,
        source_id: &str,
        incident_id: &str,
    ) -> Result<Option<StoredAlert>, StoreError> {
        self.read(|tree| {
            let Some(id) = alert_id_in(tree, source_id, incident_id)? else {
                return Ok(None);
            };
            match alert_record::<Vec<HistoryEvent>>(tree, &id)? {
                Some((alert, tail)) => Ok(Some(StoredAlert {
                    alert: Arc::new(alert),
                    tail: HistoryTail::from_entries(&tail),
                })),
                // An incident key always comes with its alert, in the same record.
                None => Err(corrupt(
                    &alert_key(&id),
                    "the incident's alert record is missing".into(),
                )),
            }
        })
    }

    /// Writes one lifecycle step atomically: the alert, its index entries, its new history
    /// entries and its outbox effects. Nothing of it is visible, to reads or after a restart,
    /// until the returned future resolves with `Ok`; if it fails, nothing of the step remains.
    /// `previous` is the alert as stored before the step; once the write is durable, the
    /// writer's new state is `StoredAlert::after(Arc::new(step.alert), tail)`.
    pub fn write_step(
        &self,
        previous: Option<&StoredAlert>,
        step: &Step,
    ) -> Result<(Durable, HistoryTail), StoreError> {
        let (record, tail) = step_record(previous, step);
        Ok((self.apply(record)?, tail))
    }

    /// Every history entry of an alert, oldest first, as of one reading of its record.
    pub fn history(&self, alert_id: &str) -> Result<Vec<HistoryEvent>, StoreError> {
        self.read(|tree| {
            let Some((alert, tail)) = alert_record::<Vec<HistoryEvent>>(tree, alert_id)? else {
                return Ok(Vec::new());
            };
            // Chunks written after that reading (a step that moved this tail into one) are left
            // out: their entries are the tail's.
            let upto = alert
                .history_len
                .checked_sub(tail.len() as u64)
                .ok_or_else(|| {
                    corrupt(
                        &alert_key(alert_id),
                        "more history in the record than its length".into(),
                    )
                })?;
            let prefix = key(&[b"h:", alert_id.as_bytes(), b":"]);
            let mut out =
                Vec::with_capacity(usize::try_from(alert.history_len.min(1024)).unwrap_or(0));
            for kv in tree.scan_prefix(&prefix) {
                let (k, v) = kv?;
                decode_history(&k, &v, upto, &mut out)?;
            }
            out.extend(tail);
            Ok(out)
        })
    }

    /// Newest first. `cursor` is the `next` of the previous page: the id of its last alert, or
    /// of the last alert it examined when [`LIST_BUDGET`] ran out before the page was full (the
    /// page is then short, even empty, and `next` still says more may follow).
    pub fn list_alerts(
        &self,
        filter: &AlertFilter,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<(Vec<Alert>, Option<String>), StoreError> {
        self.read(|tree| {
            // Candidate alert ids, newest first and below the cursor, from the most selective
            // index; the remaining filters are checked on each record.
            let ids: Box<dyn Iterator<Item = Result<Candidate, StoreError>>> = if let Some(inc) =
                &filter.incident_id
            {
                // An incident has one alert per source: its `n:` keys, sorted here.
                let mut ids = tree
                    .scan_prefix(key(&[b"n:", inc.as_bytes(), b"\0"]))
                    .values()
                    .map(|v| Ok(String::from_utf8_lossy(&v?).into_owned()))
                    .collect::<Result<Vec<String>, StoreError>>()?;
                ids.retain(|id| cursor.is_none_or(|c| id.as_str() < c));
                ids.sort_unstable_by(|a, b| b.cmp(a));
                Box::new(ids.into_iter().map(|id| Ok(Candidate::Read(id))))
            } else if let Some(src) = &filter.source_id {
                let prefix = key(&[b"xr:", src.as_bytes(), b"\0"]);
                Box::new(ids_below(tree, &prefix, cursor).map(|id| id.map(Candidate::Read)))
            } else if filter.status == Some(AlertStatus::Firing) {
                Box::new(ids_below(tree, FIRING_INDEX, cursor).map(|id| id.map(Candidate::Read)))
            } else if filter.status == Some(AlertStatus::Resolved) {
                // Resolved alerts have no index (store format 5): they are the alerts not
                // in the firing index. Both are walked newest first, side by side, so a
                // firing alert is passed over without decoding its record (sled still
                // loads the leaf that holds it).
                let mut firing = ids_below(tree, FIRING_INDEX, cursor).peekable();
                Box::new(ids_below(tree, b"a:", cursor).map(move |id| {
                    let id = id?;
                    loop {
                        match firing.peek() {
                            Some(Ok(f)) if *f > id => {
                                firing.next();
                            }
                            Some(Ok(f)) if *f == id => return Ok(Candidate::Pass(id)),
                            Some(Ok(_)) | None => return Ok(Candidate::Read(id)),
                            Some(Err(_)) => {
                                return match firing.next() {
                                    Some(Err(e)) => Err(e),
                                    _ => Ok(Candidate::Read(id)),
                                }
                            }
                        }
                    }
                }))
            } else {
                Box::new(ids_below(tree, b"a:", cursor).map(|id| id.map(Candidate::Read)))
            };
            let mut out = Vec::with_capacity(limit.min(512));
            let mut spent = 0;
            let mut examined: Option<String> = None;
            for candidate in ids {
                if spent >= LIST_BUDGET {
                    // A short page; the next one goes on below the last alert examined.
                    return Ok((out, examined));
                }
                let id = match candidate? {
                    Candidate::Pass(id) => {
                        spent += 1;
                        examined = Some(id);
                        continue;
                    }
                    Candidate::Read(id) => id,
                };
                spent += LIST_READ_COST;
                let alert = alert_only(tree, &id)?;
                examined = Some(id);
                let Some(alert) = alert else {
                    continue;
                };
                let keep = filter.status.is_none_or(|s| s == alert.status)
                    && filter
                        .source_id
                        .as_deref()
                        .is_none_or(|s| s == alert.source_id)
                    && filter
                        .incident_id
                        .as_deref()
                        .is_none_or(|i| i == alert.incident_id);
                if !keep {
                    continue;
                }
                if out.len() == limit {
                    let next = out.last().map(|a: &Alert| a.id.clone());
                    return Ok((out, next));
                }
                out.push(alert);
            }
            Ok((out, None))
        })
    }

    pub fn count_alerts(&self) -> Result<usize, StoreError> {
        self.read(|tree| Ok(tree.scan_prefix(b"a:").count()))
    }

    // ----- outbox -------------------------------------------------------------------------

    /// Every pending outbound message, oldest alert first.
    pub fn outbox(&self) -> Result<Vec<Outbound>, StoreError> {
        self.decode_all(b"o:")
    }

    // ----- sources ------------------------------------------------------------------------

    /// Stores a source and waits until it is durable.
    pub async fn put_source(&self, source: &SourceRecord) -> Result<(), StoreError> {
        let mut w = Record::with_capacity(512);
        w.insert_with(&source_key(&source.id), |b| encode_into(source, b));
        settle(self.apply(w)?).await
    }

    pub fn source(&self, id: &str) -> Result<Option<SourceRecord>, StoreError> {
        self.get(&source_key(id))
    }

    pub fn sources(&self) -> Result<Vec<SourceRecord>, StoreError> {
        self.decode_all(b"s:")
    }

    /// Deletes a source and waits until that is durable. Returns whether it existed.
    pub async fn delete_source(&self, id: &str) -> Result<bool, StoreError> {
        let existed = self.source(id)?.is_some();
        let mut w = Record::with_capacity(64);
        w.remove(&source_key(id));
        settle(self.apply(w)?).await?;
        Ok(existed)
    }

    // ----- integration --------------------------------------------------------------------

    pub fn integration(&self) -> Result<Option<IntegrationRecord>, StoreError> {
        self.get(INTEGRATION_KEY)
    }

    /// Stores the integration and waits until it is durable. Integration writes are
    /// serialised, so [`Store::update_integration`] never overwrites a newer key.
    pub async fn put_integration(&self, record: &IntegrationRecord) -> Result<(), StoreError> {
        let record = record.clone();
        self.serialised_integration(move |store| async move {
            store.write_integration(Some(&record)).await
        })
        .await
    }

    pub async fn delete_integration(&self) -> Result<(), StoreError> {
        self.serialised_integration(|store| async move { store.write_integration(None).await })
            .await
    }

    /// Reads the stored integration and writes back what `change` makes of it, if anything,
    /// with no other integration write in between. Returns whether it wrote.
    pub async fn update_integration(
        &self,
        change: impl FnOnce(IntegrationRecord) -> Option<IntegrationRecord> + Send + 'static,
    ) -> Result<bool, StoreError> {
        self.serialised_integration(move |store| async move {
            let Some(updated) = store.integration()?.and_then(change) else {
                return Ok(false);
            };
            store.write_integration(Some(&updated)).await.map(|()| true)
        })
        .await
    }

    /// Runs one integration write under the integration lock, in its own task: if the caller
    /// stops waiting (a client hangs up), the lock is still held until the write has settled,
    /// so the next writer reads what this one wrote.
    async fn serialised_integration<F, Fut, T>(&self, write: F) -> Result<T, StoreError>
    where
        F: FnOnce(Store) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = Result<T, StoreError>> + Send + 'static,
        T: Send + 'static,
    {
        let held = Arc::clone(&self.integration_writes).lock_owned().await;
        let store = self.clone();
        tokio::spawn(async move {
            let _held = held;
            write(store).await
        })
        .await
        .unwrap_or(Err(StoreError::Closed))
    }

    async fn write_integration(
        &self,
        record: Option<&IntegrationRecord>,
    ) -> Result<(), StoreError> {
        let mut w = Record::with_capacity(512);
        match record {
            Some(r) => w.insert_with(INTEGRATION_KEY, |b| encode_into(r, b)),
            None => w.remove(INTEGRATION_KEY),
        }
        settle(self.apply(w)?).await
    }
}

#[cfg(test)]
mod tests;
