//! Black-box tests: start the real `pandabridge` binary on loopback and drive it over HTTP
//! (CONTRACT §1–§3). Each test owns its data dir; checks that need the same state share one
//! daemon within a test.

mod support;

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};
use support::daemon::{
    error_code, fixture, fixture_json, retry_after_secs, run_expecting_exit, with_incident_id,
    Daemon, SlowPost,
};

/// The incident id used by the four fixtures.
const FIXTURE_INCIDENT: &str = "6553e19ec2f4b10019a7d0ff";

fn outcomes(events: &Value, kind: &str) -> Vec<String> {
    events
        .as_array()
        .expect("events array")
        .iter()
        .filter(|e| e["kind"] == kind)
        .map(|e| e["outcome"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test]
async fn incident_story_lands_on_one_alert_with_full_history() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &[]);
    let (src, token) = d.create_source("prod").await;

    let mut ids = Vec::new();
    let mut got = Vec::new();
    for name in [
        "01-new",
        "02-updated",
        "03-closed",
        "02-updated",
        "04-reopen",
    ] {
        let (id, outcome) = d.accept_webhook(&src, &token, &fixture(name)).await;
        ids.push(id);
        got.push(outcome);
    }
    assert_eq!(got, ["created", "updated", "resolved", "stale", "refired"]);
    assert!(ids.iter().all(|id| id == &ids[0]), "not one alert: {ids:?}");
    let alert_id = &ids[0];

    let (status, alert) = d.get_alert(alert_id).await;
    assert_eq!(status, 200, "{alert}");
    assert_eq!(alert["id"], json!(alert_id));
    assert_eq!(alert["source_id"], json!(src));
    assert_eq!(alert["incident_id"], json!(FIXTURE_INCIDENT));
    assert_eq!(alert["status"], "firing");
    assert_eq!(alert["reopen_count"], 1);
    assert_eq!(alert["resolved_by"], Value::Null);
    assert_eq!(alert["resolved_at"], Value::Null);
    assert_eq!(alert["severity"], "critical");
    assert_eq!(alert["environment_id"], "60b796b886d4050040dc9192");
    assert_eq!(alert["title"], "prod-db-1 / cpu_load");
    assert_eq!(
        outcomes(&alert["events"], "webhook"),
        ["created", "updated", "resolved", "stale", "refired"]
    );
    let webhook_types: Vec<_> = alert["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "webhook")
        .map(|e| e["detail"]["event_type"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        webhook_types,
        [
            "incident#new",
            "incident#updated",
            "incident#closed",
            "incident#updated",
            "incident#reopen"
        ]
    );
    for e in alert["events"].as_array().unwrap() {
        let at = e["at"].as_str().unwrap_or("");
        assert!(
            at.ends_with('Z') && at.contains('T'),
            "not RFC 3339 UTC: {e}"
        );
    }

    // The same reopen again changes nothing.
    let (again, outcome) = d.accept_webhook(&src, &token, &fixture("04-reopen")).await;
    assert_eq!(
        (again.as_str(), outcome.as_str()),
        (alert_id.as_str(), "duplicate")
    );
    let (_, after) = d.get_alert(alert_id).await;
    assert_eq!(after["status"], "firing");
    assert_eq!(after["reopen_count"], 1);
    assert_eq!(after["updated_at"], alert["updated_at"]);
    assert_eq!(
        outcomes(&after["events"], "webhook"),
        [
            "created",
            "updated",
            "resolved",
            "stale",
            "refired",
            "duplicate"
        ]
    );

    let listing = d.list_alerts("").await;
    assert_eq!(listing["alerts"].as_array().unwrap().len(), 1, "{listing}");
}

#[tokio::test]
async fn webhook_auth_failures_are_401_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &[]);
    let (src_a, token_a) = d.create_source("a").await;
    let (_src_b, token_b) = d.create_source("b").await;
    let (alert_id, _) = d.accept_webhook(&src_a, &token_a, &fixture("01-new")).await;
    let before = d.list_alerts("").await;
    let (_, alert_before) = d.get_alert(&alert_id).await;

    // Bodies that would change state if accepted: an update and a brand-new incident.
    let update = fixture("02-updated");
    let fresh = with_incident_id("01-new", "auth-probe");
    let path_a = format!("/webhooks/bigpanda/{src_a}");
    let mut bodies = Vec::new();
    for body in [&update, &fresh] {
        let cases = [
            ("no authorization", d.request(Method::POST, &path_a)),
            (
                "wrong token",
                d.request(Method::POST, &path_a)
                    .bearer_auth("not-the-token"),
            ),
            (
                "basic scheme",
                d.request(Method::POST, &path_a)
                    .header("authorization", format!("Basic {token_a}")),
            ),
            (
                "other source's token",
                d.request(Method::POST, &path_a).bearer_auth(&token_b),
            ),
            (
                "unknown source, valid token of another",
                d.request(Method::POST, "/webhooks/bigpanda/01NOSUCHSOURCE00000000000")
                    .bearer_auth(&token_b),
            ),
            (
                "empty bearer",
                d.request(Method::POST, &path_a)
                    .header("authorization", "Bearer "),
            ),
        ];
        for (what, req) in cases {
            let (status, reply) = d
                .send(
                    req.header("content-type", "application/json")
                        .body(body.clone()),
                )
                .await;
            assert_eq!(status, 401, "{what}: {reply}");
            assert_eq!(error_code(&reply), "unauthorized", "{what}");
            bodies.push((what, reply));
        }
    }
    // An unknown source must be indistinguishable from a wrong token.
    let wrong = &bodies.iter().find(|(w, _)| *w == "wrong token").unwrap().1;
    for (what, reply) in &bodies {
        assert_eq!(
            reply, wrong,
            "{what} answers differently from a wrong token"
        );
    }

    assert_eq!(d.list_alerts("").await, before);
    let (_, alert_after) = d.get_alert(&alert_id).await;
    assert_eq!(alert_after, alert_before);
    assert!(
        !d.stderr().contains(&token_a),
        "a source token appears in the log"
    );
}

#[tokio::test]
async fn bad_webhook_bodies_are_rejected_without_state_change() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &[]);
    let (src, token) = d.create_source("prod").await;
    let (alert_id, _) = d.accept_webhook(&src, &token, &fixture("01-new")).await;
    let before = d.list_alerts("").await;
    let (_, alert_before) = d.get_alert(&alert_id).await;

    let big = {
        // Valid JSON that is too large: 2 MiB of padding in an ignored field.
        let mut body = fixture_json("01-new");
        body["incident"]["id"] = json!("too-big");
        body["padding"] = json!("x".repeat(2 * 1024 * 1024));
        serde_json::to_vec(&body).unwrap()
    };
    // (what, body, content type, expected status, expected error code)
    type Case = (
        &'static str,
        Vec<u8>,
        Option<&'static str>,
        u16,
        &'static str,
    );
    let cases: Vec<Case> = vec![
        (
            "not json",
            b"this is not json".to_vec(),
            Some("application/json"),
            400,
            "invalid_json",
        ),
        (
            "truncated json",
            fixture("01-new")[..100].to_vec(),
            Some("application/json"),
            400,
            "invalid_json",
        ),
        (
            "empty body",
            Vec::new(),
            Some("application/json"),
            400,
            "invalid_json",
        ),
        (
            "no incident id",
            br#"{"incident":{}}"#.to_vec(),
            Some("application/json"),
            400,
            "missing_incident_id",
        ),
        (
            "json array",
            br#"[{"incident":{"id":"x"}}]"#.to_vec(),
            Some("application/json"),
            400,
            "not_an_object",
        ),
        (
            "text/plain",
            with_incident_id("01-new", "as-text"),
            Some("text/plain"),
            415,
            "unsupported_media_type",
        ),
        (
            "text/plain update of the existing incident",
            fixture("02-updated"),
            Some("text/plain"),
            415,
            "unsupported_media_type",
        ),
    ];
    for (what, body, ct, want_status, want_code) in cases {
        let (status, reply) = d.post_webhook(&src, &token, &body, ct).await;
        assert_eq!(status, want_status, "{what}: {reply}");
        assert_eq!(error_code(&reply), want_code, "{what}");
        if want_status == 400 {
            assert!(
                !reply["error"]["message"].as_str().unwrap().is_empty(),
                "{what}: the error must name the problem"
            );
        }
    }
    // Too large, whether declared up front or only found while reading a chunked body.
    let path = format!("/webhooks/bigpanda/{src}");
    for chunked in [false, true] {
        let (status, reply) = d.raw_post(&path, &token, &big, chunked);
        assert_eq!(status, 413, "2 MiB body (chunked: {chunked}): {reply}");
        assert_eq!(error_code(&reply), "payload_too_large");
    }
    assert_eq!(
        d.list_alerts("").await,
        before,
        "a rejected webhook changed state"
    );
    let (_, alert_after) = d.get_alert(&alert_id).await;
    assert_eq!(
        alert_after, alert_before,
        "a rejected webhook reached the history"
    );

    let (status, reply) = d
        .post_webhook(&src, &token, &with_incident_id("01-new", "no-ct"), None)
        .await;
    assert_eq!(
        (status, &reply["outcome"]),
        (202, &json!("created")),
        "{reply}"
    );
    let (status, reply) = d
        .post_webhook(
            &src,
            &token,
            &with_incident_id("01-new", "charset"),
            Some("application/json; charset=utf-8"),
        )
        .await;
    assert_eq!(
        (status, &reply["outcome"]),
        (202, &json!("created")),
        "{reply}"
    );
    let after = d.list_alerts("").await;
    let incidents: Vec<_> = after["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["incident_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(incidents, ["charset", "no-ct", FIXTURE_INCIDENT]);
}

#[tokio::test]
async fn admin_api_sources_alerts_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &[]);

    // --- the admin token is required ---
    for path in ["/api/v1/alerts", "/api/v1/alert-sources", "/api/v1/nope"] {
        let (status, reply) = d.send(d.request(Method::GET, path)).await;
        assert_eq!(status, 401, "{path} without a token: {reply}");
        assert_eq!(error_code(&reply), "unauthorized");
        let (status, _) = d
            .send(
                d.request(Method::GET, path)
                    .bearer_auth("wrong-admin-token"),
            )
            .await;
        assert_eq!(status, 401, "{path} with a wrong token");
    }
    for path in ["/api/v1/nope", "/api/v2/alerts", "/nope"] {
        let (status, reply) = d.send(d.admin(Method::GET, path)).await;
        assert_eq!(status, 404, "{path}: {reply}");
        assert_eq!(error_code(&reply), "not_found");
    }

    // --- alert sources ---
    let (status, created) = d
        .send(
            d.admin(Method::POST, "/api/v1/alert-sources")
                .json(&json!({"name": "prod"})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let src = created["id"].as_str().unwrap().to_string();
    let token1 = created["token"].as_str().unwrap().to_string();
    assert!(token1.len() >= 16, "token too short: {token1:?}");
    assert_eq!(created["name"], "prod");
    assert_eq!(
        created["callback_url"],
        json!(format!("{}/webhooks/bigpanda/{src}", d.url()))
    );
    assert!(created["created_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));

    let (status, list) = d.send(d.admin(Method::GET, "/api/v1/alert-sources")).await;
    assert_eq!(status, 200);
    let sources = list["alert_sources"].as_array().expect("alert_sources");
    assert_eq!(sources.len(), 1);
    assert_eq!(sources[0]["id"], json!(src));
    assert!(
        sources[0].get("token").is_none(),
        "list shows a token: {list}"
    );
    assert!(!list.to_string().contains(&token1), "list leaks the token");

    let (status, one) = d
        .send(d.admin(Method::GET, &format!("/api/v1/alert-sources/{src}")))
        .await;
    assert_eq!(status, 200);
    assert_eq!((&one["id"], &one["name"]), (&json!(src), &json!("prod")));
    assert!(one.get("token").is_none() && !one.to_string().contains(&token1));
    let (status, reply) = d
        .send(d.admin(
            Method::GET,
            "/api/v1/alert-sources/01NOSUCHSOURCE00000000000",
        ))
        .await;
    assert_eq!(status, 404, "{reply}");
    error_code(&reply);

    let (alert_id, outcome) = d.accept_webhook(&src, &token1, &fixture("01-new")).await;
    assert_eq!(outcome, "created");

    // Rotation: both tokens work during the grace period.
    let (status, rotated) = d
        .send(d.admin(
            Method::POST,
            &format!("/api/v1/alert-sources/{src}/rotate-token"),
        ))
        .await;
    assert_eq!(status, 200, "{rotated}");
    let token2 = rotated["token"].as_str().unwrap().to_string();
    assert_ne!(token2, token1);
    assert_eq!(
        d.accept_webhook(&src, &token1, &fixture("02-updated"))
            .await,
        (alert_id.clone(), "updated".to_string())
    );
    assert_eq!(
        d.accept_webhook(&src, &token2, &fixture("03-closed")).await,
        (alert_id.clone(), "resolved".to_string())
    );

    // --- alert listing: a second source with 12 incidents, 4 of them closed ---
    let (src2, token_s2) = d.create_source("staging").await;
    let mut created_ids = Vec::new();
    for i in 0..12 {
        let (id, outcome) = d
            .accept_webhook(
                &src2,
                &token_s2,
                &with_incident_id("01-new", &format!("inc-{i:02}")),
            )
            .await;
        assert_eq!(outcome, "created");
        created_ids.push(id);
    }
    for (i, created_id) in created_ids.iter().enumerate().take(4) {
        let (id, outcome) = d
            .accept_webhook(
                &src2,
                &token_s2,
                &with_incident_id("03-closed", &format!("inc-{i:02}")),
            )
            .await;
        assert_eq!(
            (id.as_str(), outcome.as_str()),
            (created_id.as_str(), "resolved")
        );
    }
    let newest_first: Vec<String> = created_ids.iter().rev().cloned().collect();
    let ids_of = |v: &Value| -> Vec<String> {
        v["alerts"]
            .as_array()
            .expect("alerts")
            .iter()
            .map(|a| a["id"].as_str().unwrap().to_string())
            .collect()
    };

    let all = d.list_alerts("").await;
    assert_eq!(ids_of(&all).len(), 13);
    assert_eq!(ids_of(&all)[..12], newest_first[..], "not newest first");
    assert_eq!(ids_of(&all)[12], alert_id);
    assert_eq!(all["next_cursor"], Value::Null);

    let by_source = d.list_alerts(&format!("source_id={src2}")).await;
    assert_eq!(ids_of(&by_source), newest_first);
    let firing = d
        .list_alerts(&format!("status=firing&source_id={src2}"))
        .await;
    assert_eq!(ids_of(&firing), newest_first[..8]);
    assert!(firing["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .all(|a| a["status"] == "firing"));
    let resolved = d.list_alerts("status=resolved").await;
    let mut want_resolved: Vec<String> = newest_first[8..].to_vec();
    want_resolved.push(alert_id.clone());
    assert_eq!(ids_of(&resolved), want_resolved);
    let one_incident = d.list_alerts("incident_id=inc-05").await;
    assert_eq!(ids_of(&one_incident), [created_ids[5].clone()]);
    assert_eq!(one_incident["alerts"][0]["incident_id"], "inc-05");
    assert_eq!(
        ids_of(&d.list_alerts("incident_id=nope").await),
        Vec::<String>::new()
    );

    // Paging: 5 + 5 + 3, no overlap, same order as one big page.
    let mut paged = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let q = match &cursor {
            Some(c) => format!("limit=5&cursor={c}"),
            None => "limit=5".to_string(),
        };
        let page = d.list_alerts(&q).await;
        let ids = ids_of(&page);
        assert!(ids.len() <= 5, "page larger than limit: {page}");
        paged.extend(ids);
        pages += 1;
        assert!(pages <= 4, "paging does not end");
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(paged, ids_of(&all), "pages overlap, skip or reorder alerts");

    let (status, reply) = d
        .send(d.admin(Method::GET, "/api/v1/alerts?status=foo"))
        .await;
    assert_eq!(status, 400, "{reply}");
    error_code(&reply);
    let (status, reply) = d.send(d.admin(Method::GET, "/api/v1/alerts?limit=0")).await;
    assert_eq!(status, 400, "{reply}");
    error_code(&reply);

    // --- local resolve ---
    let target = &created_ids[10];
    let (status, resolved1) = d
        .send(
            d.admin(Method::POST, &format!("/api/v1/alerts/{target}/resolve"))
                .json(&json!({"resolved_by": "ann", "comment": "fixed"})),
        )
        .await;
    assert_eq!(status, 200, "{resolved1}");
    assert_eq!(resolved1["id"], json!(target));
    assert_eq!(resolved1["status"], "resolved");
    assert_eq!(resolved1["resolved_by"], "user:ann");
    assert!(resolved1["resolved_at"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    assert_eq!(resolved1["close_sync"]["state"], "pending");
    let (status, resolved2) = d
        .send(
            d.admin(Method::POST, &format!("/api/v1/alerts/{target}/resolve"))
                .json(&json!({"resolved_by": "bob"})),
        )
        .await;
    assert_eq!(status, 200, "{resolved2}");
    assert_eq!(
        resolved2, resolved1,
        "resolving a resolved alert changed it"
    );
    let (_, shown) = d.get_alert(target).await;
    assert_eq!(shown["resolved_by"], "user:ann");
    assert_eq!(shown["updated_at"], resolved1["updated_at"]);
    let resolves = outcomes(&shown["events"], "resolve");
    assert_eq!(resolves.len(), 2, "{shown}");
    assert_eq!(resolves[0], "resolved");

    let (status, reply) = d
        .send(
            d.admin(
                Method::POST,
                "/api/v1/alerts/01NOSUCHALERT000000000000/resolve",
            )
            .json(&json!({})),
        )
        .await;
    assert_eq!(status, 404, "{reply}");
    error_code(&reply);
    let (status, reply) = d.get_alert("01NOSUCHALERT000000000000").await;
    assert_eq!(status, 404, "{reply}");
    error_code(&reply);

    // --- deleting a source: webhooks stop, alerts stay ---
    let (status, reply) = d
        .send(d.admin(Method::DELETE, &format!("/api/v1/alert-sources/{src}")))
        .await;
    assert_eq!(status, 204, "{reply}");
    for token in [&token1, &token2] {
        let (status, reply) = d
            .post_webhook(&src, token, &fixture("04-reopen"), Some("application/json"))
            .await;
        assert_eq!(status, 401, "webhook to a deleted source: {reply}");
    }
    let (status, kept) = d.get_alert(&alert_id).await;
    assert_eq!(status, 200, "{kept}");
    assert_eq!(kept["status"], "resolved");
    assert_eq!(
        ids_of(&d.list_alerts(&format!("source_id={src}")).await),
        std::slice::from_ref(&alert_id)
    );
    let (status, _) = d
        .send(d.admin(Method::GET, &format!("/api/v1/alert-sources/{src}")))
        .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn health_readiness_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &[]);
    let (status, _) = d.send(d.request(Method::GET, "/healthz")).await;
    assert_eq!(status, 200);
    let (status, reply) = d.send(d.request(Method::GET, "/readyz")).await;
    assert_eq!(status, 200, "{reply}");

    let (src, token) = d.create_source("prod").await;
    d.accept_webhook(&src, &token, &fixture("01-new")).await;
    d.accept_webhook(&src, &token, &fixture("02-updated")).await;

    let (status, text) = d.get_text("/metrics").await;
    assert_eq!(status, 200);
    let sample = |name: &str| -> Option<f64> {
        text.lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    };
    let created = sample(r#"pandabridge_webhook_events_total{outcome="created"}"#);
    assert!(
        created.is_some_and(|v| v >= 1.0),
        "created sample: {created:?}\n{text}"
    );
    let updated = sample(r#"pandabridge_webhook_events_total{outcome="updated"}"#);
    assert!(
        updated.is_some_and(|v| v >= 1.0),
        "updated sample: {updated:?}\n{text}"
    );
    let live = sample("pandabridge_live_actors");
    assert!(
        live.is_some_and(|v| v >= 1.0),
        "live actors: {live:?}\n{text}"
    );
}

#[tokio::test]
async fn flags_beat_env_beat_config_file_beat_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pandabridge.toml");
    std::fs::write(
        &config,
        "public_url = \"https://file.example\"\n\
         max_body_bytes = 100\n\
         token_grace = \"0s\"\n",
    )
    .unwrap();
    let data = dir.path().join("data");
    let d = Daemon::start_with_env(
        &data,
        &[
            "--config",
            config.to_str().unwrap(),
            "--max-body-bytes",
            "1048576",
            "--log-format",
            "json",
        ],
        &[
            ("PANDABRIDGE_PUBLIC_URL", "https://env.example"),
            ("PANDABRIDGE_MAX_BODY_BYTES", "200"),
        ],
    );
    // public_url: env over file.
    let (status, created) = d
        .send(
            d.admin(Method::POST, "/api/v1/alert-sources")
                .json(&json!({"name": "prod"})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let src = created["id"].as_str().unwrap().to_string();
    let token = created["token"].as_str().unwrap().to_string();
    assert_eq!(
        created["callback_url"],
        json!(format!("https://env.example/webhooks/bigpanda/{src}"))
    );
    // max_body_bytes: flag over env and file (the fixture is larger than 200 bytes).
    let (_, outcome) = d.accept_webhook(&src, &token, &fixture("01-new")).await;
    assert_eq!(outcome, "created");
    // token_grace: file over the 1 h default, so the old token stops at once.
    let (status, rotated) = d
        .send(d.admin(
            Method::POST,
            &format!("/api/v1/alert-sources/{src}/rotate-token"),
        ))
        .await;
    assert_eq!(status, 200, "{rotated}");
    let (status, _) = d
        .post_webhook(&src, &token, &fixture("02-updated"), None)
        .await;
    assert_eq!(status, 401, "old token still works with token_grace = 0s");
    let new_token = rotated["token"].as_str().unwrap();
    let (_, outcome) = d
        .accept_webhook(&src, new_token, &fixture("02-updated"))
        .await;
    assert_eq!(outcome, "updated");
}

#[tokio::test]
async fn graceful_restart_keeps_alerts_history_tokens_and_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let (src, token, alert_id, admin_token) = {
        let mut d = Daemon::start(dir.path(), &[]);
        let (src, token) = d.create_source("prod").await;
        let (alert_id, o1) = d.accept_webhook(&src, &token, &fixture("01-new")).await;
        let (_, o2) = d.accept_webhook(&src, &token, &fixture("02-updated")).await;
        assert_eq!((o1.as_str(), o2.as_str()), ("created", "updated"));
        let t0 = Instant::now();
        d.stop();
        let status = d.wait_exit(Duration::from_secs(10));
        assert!(status.success(), "SIGTERM exit: {status}\n{}", d.stderr());
        assert!(t0.elapsed() < Duration::from_secs(10));
        // Every handle on the store was gone by then: sled's lock let the stop fold its log.
        assert!(
            d.stderr()
                .contains("Readied the store for a quick next start"),
            "the stop did not ready the store:\n{}",
            d.stderr()
        );
        (src, token, alert_id, d.admin_token().to_string())
    };

    let d = Daemon::start(dir.path(), &[]);
    assert_eq!(d.admin_token(), admin_token, "admin token was regenerated");
    let (status, alert) = d.get_alert(&alert_id).await;
    assert_eq!(status, 200, "{alert}");
    assert_eq!(alert["status"], "firing");
    assert_eq!(
        outcomes(&alert["events"], "webhook"),
        ["created", "updated"]
    );
    let (id, outcome) = d.accept_webhook(&src, &token, &fixture("03-closed")).await;
    assert_eq!(
        (id.as_str(), outcome.as_str()),
        (alert_id.as_str(), "resolved")
    );
    // Stale ordering also survives the restart: the highest applied version is remembered.
    let (_, outcome) = d.accept_webhook(&src, &token, &fixture("01-new")).await;
    assert_eq!(outcome, "stale");
}

#[tokio::test]
async fn acknowledged_webhooks_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let (src, token, alert_id) = {
        let mut d = Daemon::start(dir.path(), &[]);
        let (src, token) = d.create_source("prod").await;
        let (alert_id, _) = d.accept_webhook(&src, &token, &fixture("01-new")).await;
        let (_, outcome) = d.accept_webhook(&src, &token, &fixture("03-closed")).await;
        assert_eq!(outcome, "resolved");
        d.kill();
        d.wait_exit(Duration::from_secs(5));
        (src, token, alert_id)
    };
    let d = Daemon::start(dir.path(), &[]);
    let (status, alert) = d.get_alert(&alert_id).await;
    assert_eq!(status, 200, "{alert}");
    assert_eq!(alert["status"], "resolved");
    assert_eq!(alert["resolved_by"], "bigpanda");
    assert_eq!(
        outcomes(&alert["events"], "webhook"),
        ["created", "resolved"]
    );
    let (_, outcome) = d.accept_webhook(&src, &token, &fixture("04-reopen")).await;
    assert_eq!(outcome, "refired");
}

/// The reason lines a failed start printed: `pandabridge: ...`, one per failure.
fn reason_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.starts_with("pandabridge: "))
        .collect()
}

#[test]
fn port_in_use_fails_fast_naming_the_address() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    // Fast: it must exit by itself, within 10 s (a start on this busy machine may take a few),
    // instead of waiting or retrying the bind.
    let (status, stderr) =
        run_expecting_exit(dir.path(), &["--listen", &addr], Duration::from_secs(10));
    assert!(!status.success(), "exit {status}; stderr:\n{stderr}");
    let reasons = reason_lines(&stderr);
    assert_eq!(reasons.len(), 1, "stderr:\n{stderr}");
    assert!(reasons[0].contains(&addr), "stderr:\n{stderr}");
    drop(taken);
}

#[tokio::test]
async fn a_second_daemon_on_the_same_data_dir_fails_with_one_line_and_leaves_the_first_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = Daemon::start(dir.path(), &[]);
    let (src, token) = first.create_source("prod").await;

    let listen_addr = std::fs::read_to_string(dir.path().join("listen-addr")).unwrap();
    let (status, stderr) = run_expecting_exit(
        dir.path(),
        &["--listen", "127.0.0.1:0"],
        Duration::from_secs(15),
    );
    assert!(!status.success(), "exit {status}; stderr:\n{stderr}");
    let reasons = reason_lines(&stderr);
    assert_eq!(reasons.len(), 1, "stderr:\n{stderr}");
    assert!(
        reasons[0].contains("is in use by another pandabridge"),
        "stderr:\n{stderr}"
    );
    // It stopped before touching the first daemon's files.
    assert_eq!(
        std::fs::read_to_string(dir.path().join("listen-addr")).unwrap(),
        listen_addr
    );

    let (_, outcome) = first.accept_webhook(&src, &token, &fixture("01-new")).await;
    assert_eq!(outcome, "created");
    first.stop();
    assert!(first.wait_exit(Duration::from_secs(10)).success());
}

#[test]
fn data_dir_that_is_a_file_fails_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"hello").unwrap();
    let (status, stderr) = run_expecting_exit(&file, &[], Duration::from_secs(10));
    assert!(!status.success(), "exit {status}; stderr:\n{stderr}");
    let reasons = reason_lines(&stderr);
    assert_eq!(reasons.len(), 1, "stderr:\n{stderr}");
    assert!(reasons[0].contains("not-a-dir"), "stderr:\n{stderr}");
    assert_eq!(
        std::fs::read(&file).unwrap(),
        b"hello",
        "the file was modified"
    );
}

#[test]
fn bad_listen_value_fails_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let (status, stderr) =
        run_expecting_exit(dir.path(), &["--listen", "nope"], Duration::from_secs(10));
    assert!(!status.success(), "exit {status}; stderr:\n{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "stderr:\n{stderr}");
    assert!(stderr.contains("nope"), "stderr:\n{stderr}");
    assert!(!dir.path().join("listen-addr").exists());
}

/// Starts a slow POST of `body` and waits until it occupies the only webhook slot of a daemon
/// started with `--max-in-flight 1`; returns it, held. Probes with a body that is refused
/// anyway (400 when a slot is free, 503 once it is taken), so probing never changes state.
/// A probe holds the slot for a moment itself, so the held request can arrive just then and
/// be refused: it is then sent again.
async fn hold_the_only_slot(d: &Daemon, source_id: &str, token: &str, body: &[u8]) -> SlowPost {
    let path = format!("/webhooks/bigpanda/{source_id}");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut held = d.start_slow_post(&path, token, body);
    loop {
        let (status, reply) = d
            .post_webhook(source_id, token, b"probe", Some("application/json"))
            .await;
        match status {
            503 => return held,
            400 => assert!(Instant::now() < deadline, "held request never admitted"),
            _ => panic!("unexpected probe reply {status}: {reply}"),
        }
        if held.answered() {
            held = d.start_slow_post(&path, token, body);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn overload_answers_503_with_retry_after_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &["--max-in-flight", "1"]);
    let (src, token) = d.create_source("prod").await;
    let path = format!("/webhooks/bigpanda/{src}");

    // Holds the only slot: admitted, body half sent.
    let held = hold_the_only_slot(&d, &src, &token, &fixture("01-new")).await;
    let resp = d
        .request(Method::POST, &path)
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(with_incident_id("01-new", "overflow"))
        .send()
        .await
        .expect("request");
    assert_eq!(resp.status().as_u16(), 503);
    let retry_after = retry_after_secs(&resp);
    assert!(
        retry_after.is_some_and(|s| s >= 1),
        "Retry-After: {retry_after:?}"
    );
    let reply: Value = resp.json().await.expect("JSON error body");
    assert_eq!(error_code(&reply), "overloaded");
    assert_eq!(
        d.list_alerts("incident_id=overflow").await["alerts"],
        json!([])
    );

    let (status, reply) = tokio::task::spawn_blocking(move || held.finish())
        .await
        .unwrap();
    assert_eq!(
        (status, &reply["outcome"]),
        (202, &json!("created")),
        "{reply}"
    );
    // The slot is free again.
    let (_, outcome) = d
        .accept_webhook(&src, &token, &with_incident_id("01-new", "overflow"))
        .await;
    assert_eq!(outcome, "created");
}

#[tokio::test]
async fn sigterm_lets_an_in_flight_webhook_finish_and_refuses_new_work() {
    let dir = tempfile::tempdir().unwrap();
    // One slot, so the test can tell when the held request has been admitted.
    let mut d = Daemon::start(dir.path(), &["--max-in-flight", "1"]);
    let (src, token) = d.create_source("prod").await;
    let path = format!("/webhooks/bigpanda/{src}");
    let held = hold_the_only_slot(&d, &src, &token, &fixture("01-new")).await;

    d.stop();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !d.stderr().contains("Shutting down") {
        assert!(
            Instant::now() < deadline,
            "no shutdown log:\n{}",
            d.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // New work is refused once shutdown has begun: no connection, or a 503.
    let late = d
        .request(Method::POST, &path)
        .bearer_auth(&token)
        .header("content-type", "application/json")
        .body(with_incident_id("01-new", "late"))
        .send()
        .await;
    if let Ok(resp) = late {
        assert_eq!(
            resp.status().as_u16(),
            503,
            "a webhook was accepted during shutdown"
        );
    }

    let (status, reply) = tokio::task::spawn_blocking(move || held.finish())
        .await
        .unwrap();
    assert_eq!(
        (status, &reply["outcome"]),
        (202, &json!("created")),
        "{reply}"
    );
    let alert_id = reply["alert_id"].as_str().unwrap().to_string();
    let exit = d.wait_exit(Duration::from_secs(10));
    assert!(exit.success(), "exit {exit}\n{}", d.stderr());
    drop(d);

    let d = Daemon::start(dir.path(), &[]);
    let (status, alert) = d.get_alert(&alert_id).await;
    assert_eq!(
        status, 200,
        "the in-flight webhook was answered 202 but lost: {alert}"
    );
    assert_eq!(d.list_alerts("incident_id=late").await["alerts"], json!([]));
}

#[tokio::test]
async fn local_resolve_holds_stale_opens_until_bigpanda_echoes_the_close() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &[]);
    let (src, token) = d.create_source("prod").await;
    let (alert_id, _) = d.accept_webhook(&src, &token, &fixture("01-new")).await;

    let (status, resolved) = d
        .send(
            d.admin(Method::POST, &format!("/api/v1/alerts/{alert_id}/resolve"))
                .json(&json!({})),
        )
        .await;
    assert_eq!(status, 200, "{resolved}");
    assert_eq!(resolved["resolved_by"], "api");
    assert_eq!(resolved["close_sync"]["state"], "pending");

    // An open update that predates our close is held (rule 7).
    let (_, outcome) = d.accept_webhook(&src, &token, &fixture("02-updated")).await;
    assert_eq!(outcome, "held");
    let (_, alert) = d.get_alert(&alert_id).await;
    assert_eq!(alert["status"], "resolved");
    // BigPanda's own close confirms ours (rule 8).
    d.accept_webhook(&src, &token, &fixture("03-closed")).await;
    let (_, alert) = d.get_alert(&alert_id).await;
    assert_eq!(alert["status"], "resolved");
    assert_eq!(alert["resolved_by"], "api");
    assert_eq!(alert["close_sync"]["state"], "closed", "{alert}");
    // After the echo a reopen fires the same alert again (rule 5).
    let (id, outcome) = d.accept_webhook(&src, &token, &fixture("04-reopen")).await;
    assert_eq!(
        (id.as_str(), outcome.as_str()),
        (alert_id.as_str(), "refired")
    );
    let (_, alert) = d.get_alert(&alert_id).await;
    assert_eq!(alert["status"], "firing");
    assert_eq!(alert["reopen_count"], 1);
    assert_eq!(alert["resolved_by"], Value::Null);
    let kinds: Vec<_> = alert["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e["kind"].as_str().unwrap(),
                e["outcome"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(kinds.first().map(String::as_str), Some("webhook:created"));
    assert!(kinds.contains(&"resolve:resolved".to_string()), "{kinds:?}");
    assert!(
        kinds.iter().any(|k| k.starts_with("close_confirmed:")),
        "{kinds:?}"
    );
    assert_eq!(kinds.last().map(String::as_str), Some("webhook:refired"));
}

#[tokio::test]
async fn lenient_bodies_are_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let d = Daemon::start(dir.path(), &[]);
    let (src, token) = d.create_source("prod").await;

    // A bare incident object at the top level, millisecond timestamps, unknown keys.
    let mut bare = fixture_json("01-new")["incident"].clone();
    bare["id"] = json!("bare-1");
    bare["updated_at"] = json!(1_732_600_030_000_i64);
    bare["changed_at"] = json!(1_732_600_030_000_i64);
    bare["something_new"] = json!({"nested": [1, 2, 3]});
    let (alert_id, outcome) = d
        .accept_webhook(&src, &token, &serde_json::to_vec(&bare).unwrap())
        .await;
    assert_eq!(outcome, "created");
    // A later close stamped in seconds applies: had the milliseconds not been normalised,
    // 1_732_600_030_000 > 1_732_601_200 would make it stale.
    let mut secs = fixture_json("03-closed");
    secs["incident"]["id"] = json!("bare-1");
    let (id, outcome) = d
        .accept_webhook(&src, &token, &serde_json::to_vec(&secs).unwrap())
        .await;
    assert_eq!(
        (id.as_str(), outcome.as_str()),
        (alert_id.as_str(), "resolved")
    );

    // Only an id: still a valid event.
    let (_, outcome) = d
        .accept_webhook(&src, &token, br#"{"incident":{"id":"minimal"}}"#)
        .await;
    assert_eq!(outcome, "created");
    let listing = d.list_alerts("incident_id=minimal").await;
    assert_eq!(listing["alerts"][0]["title"], "BigPanda incident minimal");
}

/// The value of an unlabelled gauge or counter in `/metrics`.
async fn metric(d: &Daemon, name: &str) -> f64 {
    let (status, text) = d.get_text("/metrics").await;
    assert_eq!(status, 200);
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
}

#[tokio::test]
async fn idle_actors_stop_and_reload_their_alert_from_the_store() {
    let dir = tempfile::tempdir().unwrap();
    // 2 s idle: the idle clock starts when an input is sent to its actor, and the last check
    // below (a webhook's fsync and reply, then a metrics request) must fit in it on a busy
    // machine.
    let d = Daemon::start(dir.path(), &["--idle-actor-timeout", "2s"]);
    let (src, token) = d.create_source("prod").await;
    let (alert_id, _) = d.accept_webhook(&src, &token, &fixture("01-new")).await;
    d.accept_webhook(&src, &token, &fixture("02-updated")).await;

    let deadline = Instant::now() + Duration::from_secs(20);
    while metric(&d, "pandabridge_live_actors").await > 0.0 {
        assert!(Instant::now() < deadline, "idle actor never stopped");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A fresh actor must know the version and last event applied before it stopped.
    let mut got = Vec::new();
    for name in ["01-new", "02-updated", "03-closed"] {
        let (id, outcome) = d.accept_webhook(&src, &token, &fixture(name)).await;
        assert_eq!(id, alert_id);
        got.push(outcome);
    }
    assert_eq!(got, ["stale", "duplicate", "resolved"]);
    assert!(metric(&d, "pandabridge_live_actors").await >= 1.0);
}

#[tokio::test]
async fn sigint_shuts_down_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(dir.path(), &[]);
    let (src, token) = d.create_source("prod").await;
    d.accept_webhook(&src, &token, &fixture("01-new")).await;
    d.signal("INT");
    let status = d.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "SIGINT exit: {status}\n{}", d.stderr());
    drop(d);
    let d = Daemon::start(dir.path(), &[]);
    assert_eq!(
        d.list_alerts("").await["alerts"].as_array().unwrap().len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_deliveries_of_one_incident_create_one_alert() {
    let dir = tempfile::tempdir().unwrap();
    let d = std::sync::Arc::new(Daemon::start(dir.path(), &[]));
    let (src, token) = d.create_source("prod").await;

    // 16 copies of the same new incident and one new incident each for 8 others, all at once.
    let mut tasks = Vec::new();
    for i in 0..24 {
        let (d, src, token) = (d.clone(), src.clone(), token.clone());
        let incident = if i < 16 {
            "racy".to_string()
        } else {
            format!("other-{i}")
        };
        tasks.push(tokio::spawn(async move {
            let body = with_incident_id("01-new", &incident);
            let (id, outcome) = d.accept_webhook(&src, &token, &body).await;
            (incident, id, outcome)
        }));
    }
    let mut racy = Vec::new();
    for t in tasks {
        let (incident, id, outcome) = t.await.unwrap();
        if incident == "racy" {
            racy.push((id, outcome));
        } else {
            assert_eq!(outcome, "created", "{incident}");
        }
    }
    assert!(racy.iter().all(|(id, _)| id == &racy[0].0), "{racy:?}");
    let created = racy.iter().filter(|(_, o)| o == "created").count();
    let duplicates = racy.iter().filter(|(_, o)| o == "duplicate").count();
    assert_eq!((created, duplicates), (1, 15), "{racy:?}");

    let listing = d.list_alerts("").await;
    assert_eq!(listing["alerts"].as_array().unwrap().len(), 9);
    let (_, alert) = d.get_alert(&racy[0].0).await;
    assert_eq!(outcomes(&alert["events"], "webhook").len(), 16);
}

/// With a small `--store-fold-after-mb` the store folds its log while the daemon runs, at the
/// first quiet second: the fold shows in /metrics, webhooks go on being accepted after it, and
/// a SIGKILL after it loses nothing that was acknowledged.
#[tokio::test]
async fn the_store_folds_its_log_while_running_and_a_kill_after_it_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (alerts, resolved) = {
        let mut d = Daemon::start(dir.path(), &["--store-fold-after-mb", "1"]);
        let (src, token) = d.create_source("prod").await;
        // Each new incident writes more than 1 KB to the store: well over 1 MiB in all.
        let mut alerts = Vec::new();
        for i in 0..1200 {
            let body = with_incident_id("01-new", &format!("fold-{i}"));
            let (id, outcome) = d.accept_webhook(&src, &token, &body).await;
            assert_eq!(outcome, "created");
            alerts.push(id);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while metric(&d, "pandabridge_store_log_folds").await < 1.0 {
            assert!(Instant::now() < deadline, "no fold:\n{}", d.stderr());
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(metric(&d, "pandabridge_store_last_log_fold_seconds").await > 0.0);
        let body = with_incident_id("03-closed", "fold-0");
        let (resolved, outcome) = d.accept_webhook(&src, &token, &body).await;
        assert_eq!(outcome, "resolved");
        d.kill();
        d.wait_exit(Duration::from_secs(5));
        (alerts, resolved)
    };
    let d = Daemon::start(dir.path(), &[]);
    for id in &alerts {
        let (status, alert) = d.get_alert(id).await;
        assert_eq!(status, 200, "{id} lost: {alert}");
    }
    let (_, alert) = d.get_alert(&resolved).await;
    assert_eq!(alert["status"], "resolved");
    assert_eq!(
        outcomes(&alert["events"], "webhook"),
        ["created", "resolved"]
    );
}

/// `pandabridge repack DIR`, isolated from the caller's `PANDABRIDGE_*` environment: its exit
/// status, stdout and stderr.
fn repack(data_dir: &std::path::Path) -> (std::process::ExitStatus, String, String) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pandabridge"));
    cmd.arg("repack").arg("--data-dir").arg(data_dir);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("PANDABRIDGE_") {
            cmd.env_remove(&k);
        }
    }
    let out = cmd.output().expect("run pandabridge repack");
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    (out.status, text(out.stdout), text(out.stderr))
}

/// `pandabridge repack` refuses while the daemon runs on the data dir, rewrites the store once
/// it has stopped, and the daemon then serves the same alerts and goes on with them.
#[tokio::test]
async fn repack_rewrites_a_stopped_daemons_store_and_refuses_while_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    let mut d = Daemon::start(dir.path(), &[]);
    let (src, token) = d.create_source("prod").await;
    for i in 0..30 {
        let body = with_incident_id("01-new", &format!("repack-{i}"));
        assert_eq!(d.accept_webhook(&src, &token, &body).await.1, "created");
    }
    for i in (0..30).step_by(3) {
        let body = with_incident_id("03-closed", &format!("repack-{i}"));
        assert_eq!(d.accept_webhook(&src, &token, &body).await.1, "resolved");
    }
    let before = d.list_alerts("limit=100").await;

    let (status, _, stderr) = repack(dir.path());
    assert!(!status.success(), "repack ran beside the daemon: {stderr}");
    assert!(
        stderr.contains("is in use by another pandabridge"),
        "{stderr}"
    );

    d.stop();
    assert!(d.wait_exit(Duration::from_secs(10)).success());
    let (status, stdout, stderr) = repack(dir.path());
    assert!(status.success(), "{stderr}");
    assert!(stdout.starts_with("Repacked the store"), "{stdout}");

    let d = Daemon::start(dir.path(), &[]);
    assert_eq!(d.list_alerts("limit=100").await, before);
    let body = with_incident_id("04-reopen", "repack-0");
    assert_eq!(d.accept_webhook(&src, &token, &body).await.1, "refired");
}
