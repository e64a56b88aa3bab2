//! Tests of the webhook reading rules: the shared fixtures, every variant `LIFECYCLE.md` lists,
//! the refusals, and property tests that the parser is total.

use super::*;
use proptest::prelude::*;
use serde_json::json;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/fixtures/bigpanda");

fn fixture(name: &str) -> Vec<u8> {
    let path = format!("{FIXTURES}/{name}");
    std::fs::read(&path).unwrap_or_else(|e| panic!("reading fixture {path}: {e}"))
}

fn parse_json(v: serde_json::Value) -> Result<Snapshot, ParseError> {
    parse(v.to_string().as_bytes())
}

fn ok(v: serde_json::Value) -> Snapshot {
    parse_json(v).expect("body should parse")
}

/// The snapshot's details, read back from the JSON they are kept as.
fn details(snap: &Snapshot) -> Details {
    snap.details.view().expect("details are valid JSON")
}

// --- shared fixtures -------------------------------------------------------------------------

#[test]
fn every_shared_fixture_parses_with_the_same_incident_id() {
    let mut seen = 0;
    let mut entries: Vec<_> = std::fs::read_dir(FIXTURES)
        .expect("fixtures directory")
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    entries.sort();
    let mut last_version = 0;
    for path in entries {
        let body = std::fs::read(&path).expect("fixture");
        let snap = parse(&body).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(
            snap.incident_id,
            "6553e19ec2f4b10019a7d0ff",
            "{}",
            path.display()
        );
        assert_eq!(
            snap.environment_id.as_deref(),
            Some("60b796b886d4050040dc9192")
        );
        // 01 → 04 is one incident's life with increasing versions.
        let version = snap.version.expect("fixtures carry a version");
        assert!(version > last_version, "{}", path.display());
        last_version = version;
        seen += 1;
    }
    assert_eq!(seen, 4, "expected the four shared fixtures");
}

#[test]
fn fixture_01_new_is_open_with_title_from_the_critical_alert() {
    let snap = parse(&fixture("01-new.json")).expect("01 parses");
    assert_eq!(snap.event_type.as_str(), "incident#new");
    assert_eq!(snap.open, Some(true));
    assert_eq!(snap.version, Some(1_732_600_030_000));
    assert_eq!(
        snap.environment_id.as_deref(),
        Some("60b796b886d4050040dc9192")
    );
    assert_eq!(snap.title, "prod-db-1 / cpu_load");
    assert_eq!(
        snap.description.as_deref(),
        Some("CPU load above 95% for 10 minutes")
    );
    assert_eq!(snap.severity.as_deref(), Some("critical"));
    assert_eq!(snap.status.as_deref(), Some("critical"));
    let d = &details(&snap);
    assert_eq!(d.alerts.len(), 2);
    assert_eq!(d.alerts[0].id.as_deref(), Some("6553e1a0c2f4b10019a7d101"));
    assert_eq!(
        d.alerts[0].source_system.as_deref(),
        Some("nagios.nagios_east")
    );
    assert_eq!(d.alerts[1].status.as_deref(), Some("warning"));
    assert_eq!(d.alerts[0].tags[0], ("host".into(), "prod-db-1".into()));
    assert_eq!(d.alerts[0].tags.len(), 4);
    assert_eq!(d.incident_tags, vec![("priority".into(), "P1".into())]);
    assert_eq!(d.flapping, Some(false));
    assert_eq!(d.snoozed, Some(false));
    assert_eq!(d.in_maintenance, None);
    assert_eq!(d.start, Some(1_732_600_000_000));
}

#[test]
fn fixture_02_updated_is_open_and_newer() {
    let snap = parse(&fixture("02-updated.json")).expect("02 parses");
    assert_eq!(snap.event_type.as_str(), "incident#updated");
    assert_eq!(snap.open, Some(true));
    assert_eq!(snap.version, Some(1_732_600_300_000));
    assert_eq!(details(&snap).alerts.len(), 3);
    assert_eq!(snap.title, "prod-db-1 / cpu_load");
}

#[test]
fn fixture_03_closed_is_closed() {
    let snap = parse(&fixture("03-closed.json")).expect("03 parses");
    assert_eq!(snap.event_type.as_str(), "incident#closed");
    assert_eq!(snap.open, Some(false));
    assert_eq!(snap.status.as_deref(), Some("ok"));
    assert_eq!(snap.version, Some(1_732_601_200_000));
    // All alerts are ok: the first one names the incident.
    assert_eq!(snap.title, "prod-db-1 / cpu_load");
}

#[test]
fn fixture_04_reopen_is_open() {
    let snap = parse(&fixture("04-reopen.json")).expect("04 parses");
    assert_eq!(snap.event_type.as_str(), "incident#reopen");
    assert!(snap.event_type.is_explicit_reopen());
    assert_eq!(snap.open, Some(true));
    assert_eq!(snap.version, Some(1_732_601_500_000));
}

/// Small embedded copies of the fixtures' key facts, so the rules are tested even where the
/// shared directory is not beside the repository.
#[test]
fn embedded_fixture_lifecycle() {
    let body = |event: &str, status: &str, active: bool, updated: i64| {
        json!({
            "event_type": event,
            "incident": {
                "id": "6553e19ec2f4b10019a7d0ff", "status": status, "severity": "critical",
                "active": active, "changed_at": updated, "updated_at": updated,
                "environments": ["60b796b886d4050040dc9192"],
                "alerts": [{
                    "id": "a1", "status": status, "primary_property": "host",
                    "secondary_property": "check", "description": "CPU load",
                    "tags": [{"name": "host", "value": "prod-db-1"},
                             {"name": "check", "value": "cpu_load"}]
                }]
            },
            "metadata": {"environment_id": "60b796b886d4050040dc9192"}
        })
    };
    let new = ok(body("incident#new", "critical", true, 1_732_600_030));
    assert_eq!(new.event_type.as_str(), "incident#new");
    assert_eq!(new.open, Some(true));
    assert_eq!(new.version, Some(1_732_600_030_000));
    assert_eq!(
        new.environment_id.as_deref(),
        Some("60b796b886d4050040dc9192")
    );
    assert_eq!(new.title, "prod-db-1 / cpu_load");
    let closed = ok(body("incident#closed", "ok", false, 1_732_601_200));
    assert_eq!(closed.open, Some(false));
    let reopen = ok(body("incident#reopen", "critical", true, 1_732_601_500));
    assert_eq!(reopen.event_type.as_str(), "incident#reopen");
    assert_eq!(reopen.open, Some(true));
}

#[test]
fn reference_api_v2_incident_object_parses() {
    let snap = parse(&fixture(
        "reference/cloin-bigpanda-demo-api-v2-incident-and-activity.json",
    ))
    .expect("reference incident parses");
    assert_eq!(snap.incident_id, "653989e52d00001901351684");
    assert_eq!(snap.open, Some(true));
    assert_eq!(snap.version, Some(1_700_061_365_000));
    assert_eq!(snap.severity.as_deref(), Some("critical"));
    assert_eq!(snap.status.as_deref(), Some("critical"));
    assert_eq!(snap.environment_id.as_deref(), Some("124312341234"));
    assert_eq!(
        details(&snap).alerts[0].id.as_deref(),
        Some("65397b2eede0a80012631b0c")
    );
    // Its `activity.type` is nested, so it is not the event type.
    assert_eq!(snap.event_type.as_str(), "");
    assert_eq!(snap.title, "BigPanda incident 653989e52d00001901351684");
}

#[test]
fn reference_callback_request_uses_top_level_incident_id() {
    // The documented request carries an empty id: refused, as invalid rather than missing.
    let err = parse(&fixture("reference/docs-callback-service-request.json")).unwrap_err();
    assert_eq!(err.code(), "invalid_incident_id");
    let snap = ok(json!({"event_type": "incident#new", "incident_id": "abc", "app_key": "k"}));
    assert_eq!(snap.incident_id, "abc");
    assert_eq!(snap.open, Some(true));
}

#[test]
fn reference_non_incident_objects_are_missing_an_id() {
    for name in [
        "docs-v2-resolve-response-202.json",
        "docs-webhook-v2-body-template.json",
        "observed-api-error-404.json",
        "docs-v1-resolve-request.json",
        "stevefulme1-bigpanda-ansible-eda-event-illustrative.json",
    ] {
        let err = parse(&fixture(&format!("reference/{name}"))).unwrap_err();
        assert_eq!(err, ParseError::MissingIncidentId, "{name}");
    }
}

// --- the variants of LIFECYCLE.md ------------------------------------------------------------

#[test]
fn bare_incident_object_at_top_level() {
    let snap = ok(json!({
        "id": "inc-1", "active": false, "status": "OK", "updated_at": 1_700_000_000,
        "alerts": [{"alert_id": "a", "description": "disk full"}]
    }));
    assert_eq!(snap.incident_id, "inc-1");
    assert_eq!(snap.open, Some(false));
    assert_eq!(snap.version, Some(1_700_000_000_000));
    assert_eq!(snap.title, "disk full");
}

#[test]
fn incident_object_wins_over_top_level_id() {
    let snap = ok(json!({"id": "delivery-9", "incident": {"id": "inc-1"}}));
    assert_eq!(snap.incident_id, "inc-1");
    // With an incident object lacking an id, the envelope's own id is not the incident's.
    let err = parse_json(json!({"id": "delivery-9", "incident": {"status": "critical"}}));
    assert_eq!(err, Err(ParseError::MissingIncidentId));
    let snap = ok(json!({"incident_id": "inc-2", "incident": {"status": "critical"}}));
    assert_eq!(snap.incident_id, "inc-2");
}

#[test]
fn event_type_sources_in_order() {
    let inc = json!({"id": "i"});
    let cases = [
        (
            json!({"incident": inc, "event_type": "Incident#New"}),
            "incident#new",
        ),
        (
            json!({"incident": inc, "metadata": {"event_type": "incident#closed"}}),
            "incident#closed",
        ),
        (
            json!({"incident": inc, "event": "incident#reopen"}),
            "incident#reopen",
        ),
        (json!({"incident": inc, "type": " manual "}), "manual"),
        (
            json!({"incident": inc, "event_type": "a", "metadata": {"event_type": "b"},
                   "event": "c", "type": "d"}),
            "a",
        ),
        // A non-string earlier source is skipped, not an error.
        (json!({"incident": inc, "event_type": 7, "event": "c"}), "c"),
        (json!({"incident": inc}), ""),
    ];
    for (body, want) in cases {
        assert_eq!(ok(body.clone()).event_type.as_str(), want, "{body}");
    }
}

#[test]
fn open_rules_in_order() {
    let cases = [
        // active wins over everything else
        (
            json!({"active": true, "status": "ok"}),
            "incident#closed",
            Some(true),
        ),
        (json!({"active": false}), "incident#new", Some(false)),
        // resolved, inverted
        (json!({"resolved": true}), "incident#new", Some(false)),
        (json!({"resolved": false, "status": "ok"}), "", Some(true)),
        // status or severity ok, any case, with no flag
        (json!({"status": "ok"}), "incident#new", Some(false)),
        (json!({"status": "OK"}), "", Some(false)),
        (json!({"severity": "Ok"}), "", Some(false)),
        // Critical with no flag: status does not decide, the event type does
        (json!({"status": "Critical"}), "incident#updated", None),
        (json!({"status": "Critical"}), "incident#new", Some(true)),
        (json!({"status": "Critical"}), "incident#reopen", Some(true)),
        (
            json!({"status": "Critical"}),
            "incident#closed",
            Some(false),
        ),
        (json!({}), "incident#snoozed", None),
        (json!({}), "", None),
        // wrong types are absent
        (
            json!({"active": "yes", "resolved": 1}),
            "incident#new",
            Some(true),
        ),
    ];
    for (mut incident, event, want) in cases {
        incident["id"] = json!("i");
        let body = json!({"event_type": event, "incident": incident});
        assert_eq!(ok(body.clone()).open, want, "{body}");
    }
}

#[test]
fn status_and_severity_are_lower_cased() {
    let snap = ok(json!({"incident": {"id": "i", "status": "Critical", "severity": "WARNING"}}));
    assert_eq!(snap.status.as_deref(), Some("critical"));
    assert_eq!(snap.severity.as_deref(), Some("warning"));
}

#[test]
fn version_normalises_seconds_and_milliseconds() {
    let v = |incident: serde_json::Value| {
        let mut incident = incident;
        incident["id"] = json!("i");
        ok(json!({ "incident": incident })).version
    };
    assert_eq!(
        v(json!({"updated_at": 1_700_000_000})),
        Some(1_700_000_000_000)
    );
    assert_eq!(
        v(json!({"updated_at": 1_700_000_000_123_i64})),
        Some(1_700_000_000_123)
    );
    assert_eq!(
        v(json!({"updated_at": 1_700_000_000.5})),
        Some(1_700_000_000_500)
    );
    assert_eq!(
        v(json!({"updated_at": "1700000000"})),
        Some(1_700_000_000_000)
    );
    assert_eq!(
        v(json!({"updated_at": "2023-11-14T22:13:20Z"})),
        Some(1_700_000_000_000)
    );
    // The largest field wins, mixing seconds and milliseconds.
    assert_eq!(
        v(
            json!({"updated_at": 1_700_000_000, "changed_at": 1_700_000_001_000_i64,
                 "end": null})
        ),
        Some(1_700_000_001_000)
    );
    assert_eq!(
        v(json!({"updated_at": 5, "end": 1_700_000_009})),
        Some(1_700_000_009_000)
    );
    // Absent, null, zero, negative and nonsense count as no version.
    assert_eq!(v(json!({})), None);
    assert_eq!(v(json!({"updated_at": null, "changed_at": "soon"})), None);
    assert_eq!(v(json!({"updated_at": 0, "changed_at": -5})), None);
    assert_eq!(v(json!({"updated_at": [1], "changed_at": {"t": 1}})), None);
}

#[test]
fn v1_field_names() {
    let snap = ok(json!({
        "incident": {
            "id": "i",
            "updatedOn": 1_700_000_100, "changedOn": 1_700_000_200, "endedOn": 1_700_000_050,
            "startedOn": 1_700_000_000,
            "alerts": [{"alert_id": "a-1", "status": "Warning", "source_system": "nagios"}],
            "is_snoozed": true
        }
    }));
    assert_eq!(snap.version, Some(1_700_000_200_000));
    assert_eq!(details(&snap).start, Some(1_700_000_000_000));
    assert_eq!(details(&snap).alerts[0].id.as_deref(), Some("a-1"));
    assert_eq!(details(&snap).alerts[0].status.as_deref(), Some("warning"));
    assert_eq!(details(&snap).snoozed, Some(true));
}

#[test]
fn start_prefers_start_over_started_on() {
    let snap = ok(json!({"incident": {"id": "i", "started_on": 1_600_000_000,
                                      "start": 1_700_000_000}}));
    assert_eq!(details(&snap).start, Some(1_700_000_000_000));
    let snap = ok(json!({"incident": {"id": "i", "started_on": 1_600_000_000}}));
    assert_eq!(details(&snap).start, Some(1_600_000_000_000));
}

#[test]
fn environment_sources() {
    let env = |body: serde_json::Value| ok(body).environment_id;
    assert_eq!(
        env(json!({"incident": {"id": "i", "environments": [{"id": "e1", "name": "Prod"}, "e2"]}})),
        Some("e1".into())
    );
    assert_eq!(
        env(json!({"incident": {"id": "i", "environments": ["e2"]},
                   "metadata": {"environment_id": "m1"}})),
        Some("m1".into())
    );
    assert_eq!(
        env(json!({"incident": {"id": "i", "environments": []}})),
        None
    );
    assert_eq!(
        env(json!({"incident": {"id": "i", "environments": "e"}})),
        None
    );
    assert_eq!(
        env(json!({"incident": {"id": "i", "environments": [null, "e"]}})),
        None
    );
}

#[test]
fn title_from_the_most_severe_alert() {
    let alert = |status: &str, host: &str, description: &str| {
        json!({"status": status, "primary_property": "host", "secondary_property": "check",
               "description": description,
               "tags": [{"name": "host", "value": host}, {"name": "check", "value": "ping"}]})
    };
    let snap = ok(json!({"incident": {"id": "i", "alerts": [
        alert("ok", "h-ok", "d-ok"),
        alert("unknown", "h-unknown", "d-unknown"),
        alert("Warning", "h-warning", "d-warning"),
        alert("CRITICAL", "h-crit-1", "d-crit-1"),
        alert("critical", "h-crit-2", "d-crit-2"),
    ]}}));
    assert_eq!(snap.title, "h-crit-1 / ping");
    assert_eq!(snap.description.as_deref(), Some("d-crit-1"));

    let snap = ok(json!({"incident": {"id": "i", "alerts": [
        alert("ok", "h-ok", "d-ok"), alert("weird", "h-weird", "d-weird"),
    ]}}));
    assert_eq!(snap.title, "h-weird / ping");
}

#[test]
fn title_falls_back_to_one_tag_then_description_then_id() {
    // Only the primary property resolves.
    let snap = ok(json!({"incident": {"id": "i", "alerts": [{
        "primary_property": "host", "secondary_property": "missing",
        "tags": {"host": "db-1"}, "description": "d"}]}}));
    assert_eq!(snap.title, "db-1");
    // Only the secondary one does.
    let snap = ok(json!({"incident": {"id": "i", "alerts": [{
        "primary_property": "nope", "secondary_property": "check",
        "tags": [{"name": "check", "value": "cpu"}]}]}}));
    assert_eq!(snap.title, "cpu");
    // Neither: the alert's description.
    let snap = ok(json!({"incident": {"id": "i", "alerts": [{
        "primary_property": "host", "description": "CPU high"}]}}));
    assert_eq!(snap.title, "CPU high");
    assert_eq!(snap.description.as_deref(), Some("CPU high"));
    // Nothing at all.
    let snap = ok(json!({"incident": {"id": "i", "alerts": [{}]}}));
    assert_eq!(snap.title, "BigPanda incident i");
    assert_eq!(snap.description, None);
    let snap = ok(json!({"incident": {"id": "i"}}));
    assert_eq!(snap.title, "BigPanda incident i");
}

#[test]
fn tags_as_list_or_map_with_non_string_values() {
    let snap = ok(json!({"incident": {"id": "i",
        "alerts": [
            {"tags": [{"name": "host", "value": "x"}, {"name": "n", "value": 5},
                      {"name": "multi", "value": ["a", "b"]}, {"value": "nameless"},
                      {"name": "valueless"}, "junk", {"name": "nil", "value": null}]},
            {"tags": {"host": "y", "port": 8080, "up": true}},
            {"tags": "not tags"}
        ],
        "incident_tags": [{"id": "priority", "value": "P1"}, {"name": "team", "value": "db"},
                          {"id": "owners", "value": ["ann", "bob"]}]
    }}));
    let alerts = &details(&snap).alerts;
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    };
    assert_eq!(
        alerts[0].tags,
        pairs(&[
            ("host", "x"),
            ("n", "5"),
            ("multi", r#"["a","b"]"#),
            ("nil", "null")
        ])
    );
    assert_eq!(
        alerts[1].tags,
        pairs(&[("host", "y"), ("port", "8080"), ("up", "true")])
    );
    assert!(alerts[2].tags.is_empty());
    assert_eq!(
        details(&snap).incident_tags,
        pairs(&[
            ("priority", "P1"),
            ("team", "db"),
            ("owners", r#"["ann","bob"]"#)
        ])
    );
}

#[test]
fn flags_flapping_snooze_maintenance() {
    let d = |incident: serde_json::Value| {
        let mut incident = incident;
        incident["id"] = json!("i");
        details(&ok(json!({ "incident": incident })))
    };
    let details =
        d(json!({"flapping": true, "snooze": {"snoozed": true}, "maintenance": {"id": "m"}}));
    assert_eq!(details.flapping, Some(true));
    assert_eq!(details.snoozed, Some(true));
    assert_eq!(details.in_maintenance, Some(true));
    let details = d(json!({"maintenance": null, "snooze": null, "flapping": "no"}));
    assert_eq!(details.in_maintenance, None);
    assert_eq!(details.snoozed, None);
    assert_eq!(details.flapping, None);
    assert_eq!(d(json!({"maintenance": false})).in_maintenance, Some(false));
    assert_eq!(
        d(json!({"maintenance": ["plan-1"]})).in_maintenance,
        Some(true)
    );
    assert_eq!(d(json!({"maintenance": []})).in_maintenance, Some(false));
    assert_eq!(d(json!({"maintenance": true})).in_maintenance, Some(true));
    assert_eq!(d(json!({"snooze": true})).snoozed, Some(true));
    assert_eq!(d(json!({"is_snoozed": false})).snoozed, Some(false));
    assert_eq!(d(json!({})), Details::default());
}

#[test]
fn missing_content_still_parses() {
    let snap = ok(json!({"incident": {"id": "only-an-id"}}));
    assert_eq!(snap.incident_id, "only-an-id");
    assert_eq!(snap.event_type.as_str(), "");
    assert_eq!(snap.open, None);
    assert_eq!(snap.version, None);
    assert_eq!(snap.environment_id, None);
    assert_eq!(snap.severity, None);
    assert_eq!(snap.status, None);
    assert_eq!(snap.description, None);
    assert_eq!(details(&snap), Details::default());
}

#[test]
fn wrong_types_for_optional_fields_are_absent() {
    let snap = ok(json!({
        "event_type": {"x": 1},
        "metadata": [1, 2],
        "incident": {
            "id": "i", "status": 3, "severity": ["a"], "active": "true", "resolved": null,
            "updated_at": true, "environments": {"id": "e"}, "alerts": {"id": "a"},
            "incident_tags": 5, "flapping": 1, "snooze": "no", "start": "later",
            "unknown": {"deep": [[[{"x": null}]]]}
        }
    }));
    assert_eq!(snap.incident_id, "i");
    assert_eq!(snap.status, None);
    assert_eq!(snap.severity, None);
    assert_eq!(snap.open, None);
    assert_eq!(snap.version, None);
    assert_eq!(snap.environment_id, None);
    assert_eq!(details(&snap), Details::default());
    // A non-object `incident` falls back to the bare reading.
    let snap = ok(json!({"incident": "x", "id": "bare"}));
    assert_eq!(snap.incident_id, "bare");
}

#[test]
fn numeric_ids_become_decimal_text() {
    assert_eq!(ok(json!({"incident": {"id": 12345}})).incident_id, "12345");
    assert_eq!(ok(json!({"incident": {"id": -7}})).incident_id, "-7");
    assert_eq!(ok(json!({"incident_id": 42})).incident_id, "42");
    let snap = ok(json!({"incident": {"id": 1, "alerts": [{"id": 99}]}}));
    assert_eq!(details(&snap).alerts[0].id.as_deref(), Some("99"));
}

#[test]
fn escaped_keys_and_values_are_read() {
    let snap = parse(br#"{"incident":{"\u0069d":"a\"b","status":"\u004Fk"}}"#).expect("parses");
    assert_eq!(snap.incident_id, "a\"b");
    assert_eq!(snap.open, Some(false));
}

#[test]
fn escaped_and_unnormalised_strings_in_details_are_kept_as_their_text() {
    let snap = parse(
        br#"{"incident":{"id":"i","alerts":[{"id":"a\u00e9","status":" CRITICAL ",
            "description":"line 1\nline \"2\"","tags":{"h\/ost":"db\t1","n":7,"l":["x"]}}],
            "incident_tags":[{"name":"team","value":"sre\\eu"}]}}"#,
    )
    .expect("parses");
    let d = details(&snap);
    let alert = &d.alerts[0];
    assert_eq!(alert.id.as_deref(), Some("a\u{e9}"));
    assert_eq!(alert.status.as_deref(), Some("critical"));
    assert_eq!(alert.description.as_deref(), Some("line 1\nline \"2\""));
    assert_eq!(
        alert.tags,
        [
            ("h/ost".to_owned(), "db\t1".to_owned()),
            ("n".to_owned(), "7".to_owned()),
            ("l".to_owned(), r#"["x"]"#.to_owned()),
        ]
    );
    assert_eq!(d.incident_tags, [("team".to_owned(), "sre\\eu".to_owned())]);
    assert_eq!(snap.description.as_deref(), Some("line 1\nline \"2\""));
}

/// Details are kept as text and compared, stored and digested as text: that text must be
/// exactly what the typed view serialises to, as records written before it hold.
#[test]
fn details_text_is_the_typed_serialisation() {
    for name in [
        "01-new.json",
        "02-updated.json",
        "03-closed.json",
        "04-reopen.json",
    ] {
        let snap = parse(&fixture(name)).expect("fixture parses");
        let typed = details(&snap);
        assert!(!typed.alerts.is_empty(), "{name} has alerts");
        assert_eq!(
            snap.details.as_json(),
            serde_json::to_string(&typed).expect("serialises"),
            "{name}"
        );
    }
    let empty = ok(json!({"id": "i"}));
    assert_eq!(empty.details.as_json(), "{}");
}

// --- refusals --------------------------------------------------------------------------------

#[test]
fn not_json_is_refused() {
    for body in [
        &b""[..],
        b"not json",
        b"{\"incident\":",
        b"{\"incident\":{\"id\":\"a\"}} trailing",
        b"{'incident': 1}",
    ] {
        let err = parse(body).unwrap_err();
        assert!(matches!(err, ParseError::NotJson(_)), "{body:?}: {err:?}");
        assert_eq!(err.code(), "invalid_json");
    }
}

#[test]
fn invalid_utf8_is_refused_even_in_skipped_strings() {
    let err = parse(b"{\"incident\":{\"id\":\"a\",\"junk\":\"\xff\xfe\"}}").unwrap_err();
    assert!(
        matches!(err, ParseError::NotJson(ref m) if m.contains("UTF-8")),
        "{err:?}"
    );
}

#[test]
fn non_object_top_level_is_refused() {
    for body in [
        "[]",
        "[{\"id\":\"a\"}]",
        "\"id\"",
        "42",
        "null",
        "true",
        "1e400",
    ] {
        let err = parse(body.as_bytes()).unwrap_err();
        assert_eq!(err, ParseError::NotAnObject, "{body}");
        assert_eq!(err.code(), "not_an_object");
    }
}

#[test]
fn missing_id_is_refused() {
    for body in [
        json!({}),
        json!({"incident": {}}),
        json!({"incident": {"id": null}}),
        json!({"incident": {"id": true}}),
        json!({"incident": {"id": {"x": 1}}}),
        json!({"incident": {"id": ["a"]}}),
    ] {
        let err = parse_json(body.clone()).unwrap_err();
        assert_eq!(err, ParseError::MissingIncidentId, "{body}");
        assert_eq!(err.code(), "missing_incident_id");
    }
}

#[test]
fn invalid_ids_are_refused() {
    let long = "x".repeat(10 * 1024);
    for (id, why) in [
        ("", "empty"),
        ("   ", "empty"),
        (long.as_str(), "limit"),
        ("a\0b", "control"),
        ("a\nb", "control"),
        ("a\u{7f}", "control"),
    ] {
        let err = parse_json(json!({"incident": {"id": id}})).unwrap_err();
        assert_eq!(err.code(), "invalid_incident_id", "{id:?}");
        assert!(err.to_string().contains(why), "{id:?}: {err}");
    }
    // Exactly at the limit is fine.
    let at_limit = "y".repeat(MAX_INCIDENT_ID_BYTES);
    assert_eq!(
        ok(json!({"incident": {"id": at_limit}})).incident_id.len(),
        512
    );
    // An empty incident.id falls through to a usable incident_id.
    assert_eq!(
        ok(json!({"incident": {"id": ""}, "incident_id": "z"})).incident_id,
        "z"
    );
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    for body in ["[".repeat(100_000), "{\"a\":".repeat(100_000)] {
        let err = parse(body.as_bytes()).unwrap_err();
        assert!(matches!(err, ParseError::NotJson(_)), "{err:?}");
    }
    // Deep but closed nesting inside an ignored field, and inside a tag value.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let body = format!(r#"{{"incident":{{"id":"i","junk":{deep}}}}}"#);
    // serde_json skips ignored values iteratively, so depth there costs no stack.
    assert_eq!(
        parse(body.as_bytes()).map(|s| s.incident_id),
        Ok("i".to_owned())
    );
    let body = format!(r#"{{"incident":{{"id":"i","incident_tags":{{"t":{deep}}}}}}}"#);
    // A tag value is kept as JSON text, so it is built, and serde_json's recursion limit holds.
    let err = parse(body.as_bytes()).unwrap_err();
    assert!(
        matches!(err, ParseError::NotJson(ref m) if m.contains("recursion")),
        "{err:?}"
    );
}

#[test]
fn huge_numbers_do_not_error() {
    let body = r#"{"incident":{"id":"i","updated_at":1e400,"changed_at":1180591620717411303424,
        "end":1700000000,"endedOn":-1e999,"x":[1e400,{"y":1e400}],
        "incident_tags":{"big":1e400,"s":"1e400 stays"}}}"#;
    let snap = parse(body.as_bytes()).expect("huge numbers are ignored");
    assert_eq!(snap.version, Some(1_700_000_000_000));
    assert_eq!(
        details(&snap).incident_tags,
        vec![
            ("big".to_owned(), "1e400".to_owned()),
            ("s".to_owned(), "1e400 stays".to_owned())
        ]
    );
    let snap = parse(br#"{"incident":{"id":1e400}}"#).expect("huge id is text");
    assert_eq!(snap.incident_id, "1e400");
    let snap = parse(br#"{"incident":{"id":"i","updated_at":1180591620717411303424}}"#)
        .expect("2^70 parses");
    assert_eq!(snap.version, None);
}

#[test]
fn ten_thousand_alerts_parse() {
    let alerts: Vec<_> = (0..10_000)
        .map(|i| {
            json!({"id": format!("a{i}"), "status": if i == 7_777 { "critical" } else { "warning" },
                   "primary_property": "host",
                   "tags": [{"name": "host", "value": format!("h{i}")}]})
        })
        .collect();
    let body = json!({"event_type": "incident#new", "incident": {"id": "big", "alerts": alerts}})
        .to_string();
    assert!(body.len() < 1 << 20, "body is {} bytes", body.len());
    let snap = parse(body.as_bytes()).expect("large body parses");
    assert_eq!(details(&snap).alerts.len(), 10_000);
    assert_eq!(snap.title, "h7777");
}

#[test]
fn quote_huge_numbers_leaves_strings_and_small_numbers_alone() {
    assert_eq!(
        quote_huge_numbers(r#"{"a":"1e400","b":1e400,"c":-2e999,"d":12,"e":"\"1e999"}"#),
        r#"{"a":"1e400","b":"1e400","c":"-2e999","d":12,"e":"\"1e999"}"#
    );
}

// --- properties ------------------------------------------------------------------------------

/// Arbitrary JSON, small enough to keep cases fast, with BigPanda's key names likely so the
/// typed paths (not only the skipping ones) get exercised.
fn arb_json() -> impl Strategy<Value = serde_json::Value> {
    let key = prop_oneof![
        Just("id".to_owned()),
        Just("incident".to_owned()),
        Just("alerts".to_owned()),
        Just("tags".to_owned()),
        Just("status".to_owned()),
        Just("active".to_owned()),
        Just("updated_at".to_owned()),
        Just("environments".to_owned()),
        Just("incident_tags".to_owned()),
        Just("metadata".to_owned()),
        Just("snooze".to_owned()),
        Just("maintenance".to_owned()),
        "[a-z_]{0,8}",
    ];
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        any::<f64>().prop_map(serde_json::Value::from),
        ".{0,12}".prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            prop::collection::vec((key.clone(), inner), 0..6)
                .prop_map(|kv| serde_json::Value::Object(kv.into_iter().collect())),
        ]
    })
}

// `ProptestConfig::default()` runs 256 cases and honours `PROPTEST_CASES`, so CI can raise it.
proptest! {
    #![proptest_config(ProptestConfig::default())]

    #[test]
    fn arbitrary_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse(&body);
    }

    #[test]
    fn arbitrary_json_never_panics(v in arb_json()) {
        let _ = parse(v.to_string().as_bytes());
        let _ = parse(json!({"incident": v.clone()}).to_string().as_bytes());
        if let serde_json::Value::Object(mut m) = v {
            m.insert("id".into(), json!("x"));
            let snap = parse(serde_json::Value::Object(m).to_string().as_bytes());
            // A bare incident with an id parses whatever else it holds... unless an `incident`
            // object carrying its own (maybe bad) id takes over.
            prop_assert!(snap.is_ok() || matches!(snap, Err(ParseError::MissingIncidentId
                | ParseError::InvalidIncidentId(_))));
        }
    }

    /// The stable-toolchain twin of the `webhook_parse` fuzz target (fuzz/, docs/fuzzing.md):
    /// whatever id a body carries, an accepted id is not blank, at most
    /// `MAX_INCIDENT_ID_BYTES` long and free of control characters; an id that is all of
    /// these is accepted as is.
    #[test]
    fn accepted_ids_keep_their_invariants(
        id in prop_oneof![
            "\\PC{0,8}",
            ".{0,3}[\u{0}-\u{1f}\u{7f}-\u{9f}].{0,3}",
            "[ \t]{0,3}",
            "[a-zé]{500,520}",
        ],
        numeric in any::<bool>(),
        at_top in any::<bool>(),
        extra in arb_json(),
    ) {
        let value = if numeric { json!(id.len()) } else { json!(id) };
        let body = if at_top {
            json!({"incident_id": value, "extra": extra})
        } else {
            json!({"incident": {"id": value}, "extra": extra})
        };
        let text = body.to_string();
        let valid = |s: &str| {
            !s.trim().is_empty()
                && s.len() <= MAX_INCIDENT_ID_BYTES
                && !s.chars().any(char::is_control)
        };
        match parse(text.as_bytes()) {
            Ok(snap) => {
                prop_assert!(valid(&snap.incident_id), "accepted {:?}", snap.incident_id);
                let want = if numeric { id.len().to_string() } else { id.clone() };
                prop_assert_eq!(snap.incident_id, want);
            }
            Err(e) => {
                prop_assert!(!numeric && !valid(&id), "refused valid id {:?}: {}", id, e)
            }
        }
    }

    #[test]
    fn valid_body_round_trips_its_id(
        id in "[^\\p{Cc}]{1,64}".prop_filter("not blank", |s| !s.trim().is_empty()),
        extra in arb_json(),
        event in prop::sample::select(vec!["incident#new", "incident#closed", "Incident#Reopen"]),
        updated in 1u64..4_000_000_000_000,
    ) {
        let body = json!({
            "event_type": event,
            "extra": extra,
            "incident": {"id": id, "updated_at": updated, "alerts": [{"id": "a", "status": "critical"}]}
        });
        let snap = parse(body.to_string().as_bytes()).expect("valid body parses");
        prop_assert_eq!(&snap.incident_id, &id);
        prop_assert_eq!(snap.event_type.as_str(), event.to_ascii_lowercase());
        let want = if updated < 100_000_000_000 { updated * 1000 } else { updated };
        prop_assert_eq!(snap.version, Some(want as i64));
        prop_assert_eq!(details(&snap).alerts.len(), 1);
    }
}
