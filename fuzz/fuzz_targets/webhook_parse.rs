//! Fuzzes `pandabridge::bigpanda::webhook::parse` with arbitrary bytes.
//!
//! The parser is total: any input gives a snapshot or a `ParseError`, never a panic, a stack
//! overflow or an abort (libFuzzer reports all three). When it accepts a body, the incident id
//! it returns must satisfy what the store and the HTTP layer rely on: non-empty (not blank),
//! at most `MAX_INCIDENT_ID_BYTES` bytes, no control characters (store keys use `\0` as a
//! separator). Parsing is also deterministic: the same bytes give the same result.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pandabridge::bigpanda::webhook::{parse, MAX_INCIDENT_ID_BYTES};

fuzz_target!(|data: &[u8]| {
    let first = parse(data);
    if let Ok(snapshot) = &first {
        let id = &snapshot.incident_id;
        assert!(!id.trim().is_empty(), "accepted a blank id: {id:?}");
        assert!(
            id.len() <= MAX_INCIDENT_ID_BYTES,
            "accepted a {}-byte id",
            id.len()
        );
        assert!(
            !id.chars().any(char::is_control),
            "accepted an id with control characters: {id:?}"
        );
    }
    assert_eq!(first, parse(data), "parse is not deterministic");
});
