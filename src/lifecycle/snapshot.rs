//! What one BigPanda webhook says about an incident, after lenient parsing.
//!
//! The parser in `crate::bigpanda::webhook` produces a [`Snapshot`]; the lifecycle only ever
//! sees this normalised form, never BigPanda's raw JSON.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

/// Unix time in milliseconds. Every timestamp inside the lifecycle uses it.
pub type Millis = i64;

/// BigPanda's event type, normalised to lower case (`incident#new`, `incident#closed`, ...).
/// Kept as text: BigPanda adds types over time and an unknown one must still be stored.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(transparent)]
pub struct EventType(pub String);

impl EventType {
    pub fn new(raw: &str) -> Self {
        EventType(raw.trim().to_ascii_lowercase())
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// `incident#reopen`: the one event that re-fires an alert held after a local resolve.
    pub fn is_explicit_reopen(&self) -> bool {
        matches!(self.0.as_str(), "incident#reopen" | "incident#reopened")
    }
}

/// One alert inside a BigPanda incident, as kept in the alert's details. `S` is the string
/// type: `String` when read back, text borrowed from the body while a webhook is parsed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct IncidentAlert<S = String> {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_system: Option<S>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<S>,
    /// Name/value pairs, in the order BigPanda sent them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<(S, S)>,
}

/// The descriptive part of an incident: shown to users, never drives a state change. The
/// typed view; snapshots and alerts carry it as [`DetailsJson`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Details<S = String> {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alerts: Vec<IncidentAlert<S>>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub incident_tags: Vec<(S, S)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flapping: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snoozed: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_maintenance: Option<bool>,
    /// Incident start, normalised to milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<Millis>,
}

/// [`Details`] as the JSON object they are stored and shown as. The parser serialises them
/// once, straight from text borrowed from the body; after that a step, the store, the digest
/// and the API copy the text instead of building, walking and dropping some sixty strings
/// per webhook. The text is what `Details` serialises to, so records written before this
/// type existed read back byte for byte the same, and so do their digests.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DetailsJson(Box<RawValue>);

impl DetailsJson {
    pub fn new<S: Serialize>(details: &Details<S>) -> DetailsJson {
        // Serialising a plain struct of strings, numbers and booleans cannot fail.
        match serde_json::value::to_raw_value(details) {
            Ok(raw) => DetailsJson(raw),
            Err(_) => DetailsJson::default(),
        }
    }

    /// The JSON object's text.
    pub fn as_json(&self) -> &str {
        self.0.get()
    }

    /// The typed view, read back from the text.
    pub fn view(&self) -> Result<Details, serde_json::Error> {
        serde_json::from_str(self.0.get())
    }
}

impl Default for DetailsJson {
    fn default() -> Self {
        DetailsJson::new(&Details::<String>::default())
    }
}

impl PartialEq for DetailsJson {
    fn eq(&self, other: &Self) -> bool {
        self.as_json() == other.as_json()
    }
}

impl Eq for DetailsJson {}

/// The normalised content of one webhook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// `incident.id`; never empty.
    pub incident_id: String,
    pub event_type: EventType,
    /// `Some(true)` open, `Some(false)` closed, `None` when the webhook does not say.
    pub open: Option<bool>,
    /// Ordering version in milliseconds: the largest of the incident's update timestamps.
    pub version: Option<Millis>,
    pub environment_id: Option<String>,
    pub title: String,
    pub description: Option<String>,
    /// Lower-cased.
    pub severity: Option<String>,
    /// Lower-cased BigPanda status (`critical`, `warning`, `ok`, ...).
    pub status: Option<String>,
    pub details: Arc<DetailsJson>,
}

/// What every digest written by [`Snapshot::digest`] starts with. A stored digest without it
/// was written before (a SHA-256, see [`Snapshot::legacy_digest`]) and is still honoured.
const DIGEST_PREFIX: &str = "x3:";

impl Snapshot {
    /// A stable digest of everything the snapshot says. Two webhooks with the same digest are
    /// the same event (rule 2, duplicate); stored in the alert so the check survives restarts.
    ///
    /// XXH3-128 over the snapshot's JSON: struct fields serialise in declaration order and
    /// carry no maps, so the bytes are stable. A fast hash, not a cryptographic one: nobody
    /// gains by forging a collision with the previous event of one incident, since sending
    /// webhooks at all takes the source's token; an accidental one is 2^-128 likely. SHA-256
    /// cost ~1 µs a webhook (docs/performance.md, "Seventeenth pass").
    pub fn digest(&self) -> String {
        // Serialised whole, then hashed in one call: fed to XXH3's streaming hasher as
        // serde_json writes it (a call per token), the digest took 2.8k more instructions a
        // webhook under callgrind than this buffer costs (docs/performance.md, "Seventeenth
        // pass"). Serialising a plain struct into a Vec cannot fail.
        let mut json = Vec::with_capacity(4096);
        let _ = serde_json::to_writer(&mut json, self);
        let hash = xxhash_rust::xxh3::xxh3_128(&json).to_be_bytes();
        let mut out = String::with_capacity(DIGEST_PREFIX.len() + 32);
        out.push_str(DIGEST_PREFIX);
        push_hex(&mut out, &hash);
        out
    }

    /// Whether `stored`, a digest kept in an alert, is this snapshot's. `digest` is
    /// [`Snapshot::digest`]'s; a digest stored before it existed is compared against
    /// [`Snapshot::legacy_digest`], so the first resend after an upgrade is still a duplicate.
    pub fn has_digest(&self, stored: &str, digest: &str) -> bool {
        if stored.starts_with(DIGEST_PREFIX) {
            stored == digest
        } else {
            stored == self.legacy_digest()
        }
    }

    /// The digest stored before [`DIGEST_PREFIX`]: the first 16 bytes of a SHA-256 over the
    /// same JSON, in hex.
    pub fn legacy_digest(&self) -> String {
        // Streamed into the hash (sha2's hasher is an `io::Write`).
        let mut hasher = Sha256::new();
        let _ = serde_json::to_writer(&mut hasher, self);
        let hash = hasher.finalize();
        let mut out = String::with_capacity(32);
        push_hex(&mut out, &hash[..16]);
        out
    }
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 0xf)] as char);
    }
}
