//! The webhooks the load tool sends: a ~2.9 KB BigPanda incident body rendered from an embedded
//! template, over a fixed set of incidents that each live new → updated → updated → closed →
//! reopen → updated → … with increasing versions.
//!
//! Owns which incident and which event a request carries. Every body is a pure function of
//! (run, incident, step), so a deliberate resend of an earlier step is byte-identical: that is
//! how the mix includes `duplicate` (the last step again) and `stale` (an older step) deliveries.
//! Connections that race on one incident also produce some `stale` outcomes, as in real life.

use std::sync::atomic::{AtomicU32, Ordering};

use bytes::Bytes;

/// The body, compact JSON with `{{NAME}}` placeholders. A copy shaped after the shared fixtures
/// (`01-new` … `04-reopen`) with five alerts, so the tool needs no file at run time.
const TEMPLATE: &str = include_str!("webhook.json.tmpl");

/// `updated_at` of step 0; each later step adds [`VERSION_STEP`] seconds.
const BASE_VERSION: u64 = 1_732_600_000;
const VERSION_STEP: u64 = 60;

/// Per mille of requests that resend the incident's previous step (→ `duplicate`).
const DUPLICATE_PER_MILLE: u64 = 20;
/// Per mille of requests that resend an older step (→ `stale`).
const STALE_PER_MILLE: u64 = 10;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Event,
    Id,
    Status,
    Active,
    Version,
    End,
    Host,
}

enum Segment {
    Text(&'static str),
    Field(Field),
}

/// The template split once into literal text and fields, so rendering is a few copies.
struct Template {
    segments: Vec<Segment>,
    literal_len: usize,
}

impl Template {
    fn parse(text: &'static str) -> Template {
        let text = text.trim_end();
        let mut segments = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            let Some(close) = rest[open..].find("}}").map(|c| open + c) else {
                break;
            };
            let field = match &rest[open + 2..close] {
                "EVENT" => Field::Event,
                "ID" => Field::Id,
                "STATUS" => Field::Status,
                "ACTIVE" => Field::Active,
                "VERSION" => Field::Version,
                "END" => Field::End,
                "HOST" => Field::Host,
                // An unknown name is kept as text; the unit test below keeps the template honest.
                _ => {
                    segments.push(Segment::Text(&rest[..close + 2]));
                    rest = &rest[close + 2..];
                    continue;
                }
            };
            segments.push(Segment::Text(&rest[..open]));
            segments.push(Segment::Field(field));
            rest = &rest[close + 2..];
        }
        segments.push(Segment::Text(rest));
        let literal_len = segments
            .iter()
            .map(|s| match s {
                Segment::Text(t) => t.len(),
                Segment::Field(_) => 0,
            })
            .sum();
        Template {
            segments,
            literal_len,
        }
    }
}

/// What BigPanda says happened to the incident at one step of its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    New,
    Updated,
    Closed,
    Reopen,
}

impl EventKind {
    /// Step 0 opens the incident; then it cycles updated, updated, closed, reopen.
    pub fn at_step(step: u32) -> EventKind {
        if step == 0 {
            return EventKind::New;
        }
        match (step - 1) % 4 {
            0 | 1 => EventKind::Updated,
            2 => EventKind::Closed,
            _ => EventKind::Reopen,
        }
    }

    fn event_type(self) -> &'static str {
        match self {
            EventKind::New => "incident#new",
            EventKind::Updated => "incident#updated",
            EventKind::Closed => "incident#closed",
            EventKind::Reopen => "incident#reopen",
        }
    }
}

/// The incidents of one target (the baseline and the daemon each get their own, so the daemon
/// sees every incident's life continue across rounds).
pub struct Workload {
    run_id: u32,
    template: Template,
    /// The next step of each incident.
    steps: Vec<AtomicU32>,
}

impl Workload {
    /// `run_id` goes into every incident id, so two runs against one daemon never collide
    /// (a second run's events would otherwise all be stale).
    pub fn new(run_id: u32, incidents: usize) -> Workload {
        Workload {
            run_id,
            template: Template::parse(TEMPLATE),
            steps: (0..incidents.max(1)).map(|_| AtomicU32::new(0)).collect(),
        }
    }

    /// The body of the next request: mostly the next step of a random incident, sometimes a
    /// resend of an earlier one.
    pub fn next_body(&self, rng: &mut Rng) -> Bytes {
        let incident = rng.below(self.steps.len() as u64) as usize;
        let roll = rng.below(1000);
        let done = self.steps[incident].load(Ordering::Relaxed);
        let step = if roll < DUPLICATE_PER_MILLE && done >= 1 {
            done - 1
        } else if roll < DUPLICATE_PER_MILLE + STALE_PER_MILLE && done >= 3 {
            done - 3
        } else {
            self.steps[incident].fetch_add(1, Ordering::Relaxed)
        };
        Bytes::from(self.render(incident, step))
    }

    /// The body of `incident`'s event at `step`.
    pub fn body(&self, incident: usize, step: u32) -> Vec<u8> {
        self.render(incident, step)
    }

    /// A sample body (incident 0, step 1), for reporting its size.
    pub fn sample_len(&self) -> usize {
        self.render(0, 1).len()
    }

    fn render(&self, incident: usize, step: u32) -> Vec<u8> {
        use std::io::Write;
        let kind = EventKind::at_step(step);
        let version = BASE_VERSION + u64::from(step) * VERSION_STEP;
        let closed = kind == EventKind::Closed;
        let mut out = Vec::with_capacity(self.template.literal_len + 160);
        for segment in &self.template.segments {
            // Writes into a Vec cannot fail.
            let _ = match segment {
                Segment::Text(t) => out.write_all(t.as_bytes()),
                Segment::Field(Field::Event) => out.write_all(kind.event_type().as_bytes()),
                // 24 hex characters, like BigPanda's ids.
                Segment::Field(Field::Id) => write!(out, "{:08x}{:016x}", self.run_id, incident),
                Segment::Field(Field::Status) => out.write_all(status(kind, step).as_bytes()),
                Segment::Field(Field::Active) => {
                    out.write_all(if closed { b"false" } else { b"true" })
                }
                Segment::Field(Field::Version) => write!(out, "{version}"),
                Segment::Field(Field::End) if closed => write!(out, "{version}"),
                Segment::Field(Field::End) => out.write_all(b"null"),
                Segment::Field(Field::Host) => write!(out, "{}", incident % 500),
            };
        }
        out
    }
}

/// The incident's (and its alerts') status at a step. Updates alternate warning and critical,
/// so each one changes what the alert shows and counts as `updated`, not `ignored`.
fn status(kind: EventKind, step: u32) -> &'static str {
    match kind {
        EventKind::Closed => "ok",
        EventKind::Updated if step % 2 == 1 => "warning",
        _ => "critical",
    }
}

/// A small, fast xorshift generator: the load loop needs cheap randomness, not quality.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        // splitmix64 of the seed, so nearby seeds give unrelated streams; never zero.
        let mut z = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Rng((z ^ (z >> 31)) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `0..n` (`n` > 0); the modulo bias is irrelevant here.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_placeholder_is_known_and_bodies_are_json() {
        let w = Workload::new(7, 3);
        assert!(w
            .template
            .segments
            .iter()
            .all(|s| !matches!(s, Segment::Text(t) if t.contains("{{"))));
        for step in 0..6 {
            let body = w.render(2, step);
            let v: serde_json::Value = serde_json::from_slice(&body).expect("valid JSON");
            assert_eq!(v["incident"]["id"], "000000070000000000000002");
            assert_eq!(
                v["incident"]["updated_at"],
                BASE_VERSION + u64::from(step) * VERSION_STEP
            );
            let closed = EventKind::at_step(step) == EventKind::Closed;
            assert_eq!(v["incident"]["active"], !closed);
        }
        assert!((2_500..3_500).contains(&w.sample_len()));
    }

    #[test]
    fn incidents_live_new_updated_closed_reopen() {
        let kinds: Vec<_> = (0..7).map(EventKind::at_step).collect();
        assert_eq!(
            kinds,
            [
                EventKind::New,
                EventKind::Updated,
                EventKind::Updated,
                EventKind::Closed,
                EventKind::Reopen,
                EventKind::Updated,
                EventKind::Updated
            ]
        );
    }

    #[test]
    fn resends_are_byte_identical() {
        let w = Workload::new(1, 1);
        assert_eq!(w.render(0, 4), w.render(0, 4));
    }
}
