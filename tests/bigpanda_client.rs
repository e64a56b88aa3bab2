//! The BigPanda client against the fake BigPanda on loopback, and the fake itself.

mod support;

use std::time::Duration;

use pandabridge::bigpanda::client::{
    ApiKey, BigPandaApi, Environment, RateLimiter, ResolveOutcome, ValidateError,
};
use serde_json::json;
use support::fake_bigpanda::{FakeBigPanda, Reply};

const WAIT: Duration = Duration::from_secs(10);

fn key() -> ApiKey {
    ApiKey::new(FakeBigPanda::VALID_KEY).unwrap()
}

/// A client that does not pace (tests that are not about pacing stay fast).
fn api(timeout: Duration) -> BigPandaApi {
    BigPandaApi::with_limiter(
        timeout,
        RateLimiter::new(10_000, Duration::from_secs(1), Duration::ZERO),
    )
    .unwrap()
}

fn reference_env() -> Vec<Environment> {
    vec![Environment {
        id: "60b796b886d4050040dc9192".into(),
        name: "Production Crits".into(),
    }]
}

/// A loopback port with nothing listening.
fn closed_port_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}")
}

// ---- the fake itself -------------------------------------------------------------------

#[tokio::test]
async fn fake_lists_environments_for_a_valid_key_and_answers_401_envelope_otherwise() {
    let bp = FakeBigPanda::start();
    let http = reqwest::Client::new();
    let url = format!("{}/resources/v2.0/environments", bp.url());
    let ok = http
        .get(&url)
        .bearer_auth(FakeBigPanda::VALID_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let body: serde_json::Value = ok.json().await.unwrap();
    assert_eq!(body[0]["name"], "Production Crits");

    let bad = http.get(&url).bearer_auth("nope").send().await.unwrap();
    assert_eq!(bad.status(), 401);
    let body: serde_json::Value = bad.json().await.unwrap();
    assert_eq!(body["status"], 401);
    assert!(
        body["errors"][0].as_str().is_some_and(|s| !s.is_empty()),
        "{body}"
    );

    let missing = http.get(&url).send().await.unwrap();
    assert_eq!(missing.status(), 401);
    assert_eq!(bp.environment_calls().len(), 3);
    assert_eq!(
        bp.environment_calls()[0].bearer(),
        Some(FakeBigPanda::VALID_KEY)
    );
}

#[tokio::test]
async fn fake_answers_unknown_routes_like_bigpanda() {
    let bp = FakeBigPanda::start();
    let reply = reqwest::get(format!("{}/.well-known/agent-card.json", bp.url()))
        .await
        .unwrap();
    assert_eq!(reply.status(), 404);
    assert_eq!(
        reply.json::<serde_json::Value>().await.unwrap(),
        json!({"status":404,"errors":["Route /.well-known/agent-card.json is not found"]})
    );
    assert_eq!(bp.requests().len(), 1);
    assert!(bp.resolve_calls().is_empty());
}

#[tokio::test]
async fn fake_resolve_checks_content_type_and_body() {
    let bp = FakeBigPanda::start();
    let url = format!(
        "{}/resources/v2.0/environments/e/incidents/i/resolve",
        bp.url()
    );
    let http = reqwest::Client::new();
    let plain = http
        .post(&url)
        .bearer_auth(FakeBigPanda::VALID_KEY)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 415);
    let not_json = http
        .post(&url)
        .bearer_auth(FakeBigPanda::VALID_KEY)
        .header("content-type", "application/json")
        .body("comments")
        .send()
        .await
        .unwrap();
    assert_eq!(not_json.status(), 400);
    let ok = http
        .post(&url)
        .bearer_auth(FakeBigPanda::VALID_KEY)
        .json(&json!({"comments": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 202);
    assert_eq!(
        ok.json::<serde_json::Value>().await.unwrap(),
        json!({"status":202,"data":{}})
    );
    assert_eq!(bp.resolve_calls().len(), 3);
    assert_eq!(bp.delivered_resolves().len(), 1);
}

#[tokio::test]
async fn fake_enforces_its_rate_limit_when_asked() {
    // A long window, so that six requests in a row fall into it however slow the machine.
    let window = Duration::from_secs(60);
    let bp = FakeBigPanda::start();
    bp.enforce_rate_limit(5, window);
    let http = reqwest::Client::new();
    let url = format!("{}/resources/v2.0/environments", bp.url());
    let mut statuses = Vec::new();
    for _ in 0..6 {
        let reply = http
            .get(&url)
            .bearer_auth(FakeBigPanda::VALID_KEY)
            .send()
            .await
            .unwrap();
        statuses.push((
            reply.status().as_u16(),
            reply.headers().get("retry-after").cloned(),
        ));
    }
    assert!(statuses[..5].iter().all(|(s, _)| *s == 200), "{statuses:?}");
    assert_eq!(statuses[5].0, 429);
    assert_eq!(
        statuses[5].1.as_ref().map(|v| v.to_str().unwrap()),
        Some("1")
    );
    assert_eq!(bp.max_requests_in_any_window(window), 6);
}

#[test]
fn fake_waits_are_bounded_and_work_from_plain_tests() {
    let bp = FakeBigPanda::start();
    let started = std::time::Instant::now();
    let seen = bp.try_wait_for_resolves(1, Duration::from_millis(200));
    assert!(matches!(seen, Err(ref v) if v.is_empty()), "{seen:?}");
    assert!(started.elapsed() >= Duration::from_millis(200));

    let url = bp.url();
    let sender = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            api(Duration::from_secs(5))
                .resolve_incident(&url, &key(), "env", "inc-1", "closed by test")
                .await
        })
    });
    let calls = bp.wait_for_delivered(1, WAIT);
    assert_eq!(
        calls[0].resolve_target(),
        Some(("env".into(), "inc-1".into()))
    );
    assert!(matches!(
        sender.join().unwrap().outcome,
        ResolveOutcome::Delivered { status: 202 }
    ));
}

// ---- key validation --------------------------------------------------------------------

#[tokio::test]
async fn validate_lists_environments_with_the_documented_request() {
    let bp = FakeBigPanda::start();
    let envs = api(WAIT)
        .list_environments(&bp.url(), &key())
        .await
        .unwrap();
    assert_eq!(envs, reference_env());
    let calls = bp.requests();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].method, "GET");
    assert_eq!(calls[0].path, "/resources/v2.0/environments");
    assert_eq!(
        calls[0].header("authorization"),
        Some(format!("Bearer {}", FakeBigPanda::VALID_KEY).as_str())
    );
    assert_eq!(
        calls[0].header("user-agent"),
        Some(concat!("pandabridge/", env!("CARGO_PKG_VERSION")))
    );
}

#[tokio::test]
async fn validate_handles_a_trailing_slash_and_other_list_shapes() {
    let bp = FakeBigPanda::start();
    let api = api(WAIT);
    let env = support::fake_bigpanda::reference_environment();
    bp.set_environments_body(json!({"items": [env]}));
    let envs = api
        .list_environments(&format!("{}/", bp.url()), &key())
        .await
        .unwrap();
    assert_eq!(envs, reference_env());
    assert_eq!(bp.requests()[0].path, "/resources/v2.0/environments");

    bp.set_environments_body(json!({"data": [env]}));
    assert_eq!(
        api.list_environments(&bp.url(), &key()).await.unwrap(),
        reference_env()
    );

    // A JSON reply in a shape we do not know still means the key was accepted.
    bp.set_environments_body(json!({"total": 0}));
    assert_eq!(
        api.list_environments(&bp.url(), &key()).await.unwrap(),
        vec![]
    );
}

#[tokio::test]
async fn validate_maps_401_and_403() {
    let bp = FakeBigPanda::start();
    bp.set_forbidden_keys(["forbidden-key-000000000000000000"]);
    let api = api(WAIT);
    let other = ApiKey::new("ffffffffffffffffffffffffffffffff").unwrap();
    assert_eq!(
        api.list_environments(&bp.url(), &other).await,
        Err(ValidateError::Invalid)
    );
    let forbidden = ApiKey::new("forbidden-key-000000000000000000").unwrap();
    assert_eq!(
        api.list_environments(&bp.url(), &forbidden).await,
        Err(ValidateError::Forbidden)
    );
    bp.script_environments(Reply::Status(401));
    assert_eq!(
        api.list_environments(&bp.url(), &key()).await,
        Err(ValidateError::Invalid)
    );
    bp.script_environments(Reply::Status(404));
    assert_eq!(
        api.list_environments(&bp.url(), &key()).await,
        Err(ValidateError::Rejected { status: 404 })
    );
}

#[tokio::test]
async fn validate_treats_5xx_as_unreachable_and_quotes_bigpanda() {
    let bp = FakeBigPanda::start();
    bp.script_environments(Reply::Raw {
        status: 503,
        body: r#"{"status":503,"errors":["down for maintenance"]}"#.into(),
    });
    match api(WAIT).list_environments(&bp.url(), &key()).await {
        Err(ValidateError::Unreachable(msg)) => {
            assert!(
                msg.contains("503") && msg.contains("down for maintenance"),
                "{msg}"
            )
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn validate_treats_a_non_json_200_as_unreachable() {
    let bp = FakeBigPanda::start();
    bp.script_environments(Reply::Raw {
        status: 200,
        body: "<html>captive portal</html>".into(),
    });
    match api(WAIT).list_environments(&bp.url(), &key()).await {
        Err(ValidateError::Unreachable(msg)) => assert!(msg.contains("not JSON"), "{msg}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn validate_reports_a_closed_port_as_unreachable() {
    match api(WAIT)
        .list_environments(&closed_port_url(), &key())
        .await
    {
        Err(ValidateError::Unreachable(msg)) => {
            assert!(msg.starts_with("connection error"), "{msg}")
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn validate_times_out() {
    let bp = FakeBigPanda::start();
    bp.script_environments(Reply::slow(Duration::from_secs(3), Reply::Status(200)));
    let started = std::time::Instant::now();
    let result = api(Duration::from_millis(300))
        .list_environments(&bp.url(), &key())
        .await;
    assert_eq!(
        result,
        Err(ValidateError::Unreachable("timeout after 300ms".into()))
    );
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn validate_rejects_an_unusable_url_without_sending() {
    let result = api(WAIT).list_environments("ftp://bigpanda", &key()).await;
    assert!(
        matches!(result, Err(ValidateError::InvalidUrl(_))),
        "{result:?}"
    );
}

// ---- resolve ---------------------------------------------------------------------------

#[tokio::test]
async fn resolve_sends_the_documented_request_and_202_is_delivered() {
    let bp = FakeBigPanda::start();
    let comment = "Resolved in pandabridge by user:alice";
    let result = api(WAIT)
        .resolve_incident(
            &format!("{}/", bp.url()),
            &key(),
            "60b796b886d4050040dc9192",
            "653989e52d00001901351684",
            comment,
        )
        .await;
    assert_eq!(result.outcome, ResolveOutcome::Delivered { status: 202 });
    assert!(result.elapsed < WAIT);
    let calls = bp.resolve_calls();
    assert_eq!(calls.len(), 1);
    let call = &calls[0];
    assert_eq!(call.method, "POST");
    assert_eq!(
        call.path,
        "/resources/v2.0/environments/60b796b886d4050040dc9192/incidents/653989e52d00001901351684/resolve"
    );
    assert_eq!(call.bearer(), Some(FakeBigPanda::VALID_KEY));
    assert_eq!(call.header("content-type"), Some("application/json"));
    assert_eq!(call.json, Some(json!({"comments": comment})));
}

#[tokio::test]
async fn resolve_percent_encodes_ids_from_webhooks() {
    let bp = FakeBigPanda::start();
    let (env, incident) = ("env/1", "inc 2?x=#%/..");
    let result = api(WAIT)
        .resolve_incident(&bp.url(), &key(), env, incident, "c")
        .await;
    assert_eq!(result.outcome, ResolveOutcome::Delivered { status: 202 });
    let calls = bp.resolve_calls();
    assert_eq!(
        calls[0].resolve_target(),
        Some((env.to_string(), incident.to_string()))
    );
    assert!(calls[0].path.contains("env%2F1"), "{}", calls[0].path);
}

#[tokio::test]
async fn resolve_classifies_each_documented_reply() {
    let bp = FakeBigPanda::start();
    let api = api(WAIT);
    let cases: Vec<(Reply, ResolveOutcome)> = vec![
        (
            Reply::Status(202),
            ResolveOutcome::Delivered { status: 202 },
        ),
        (
            Reply::Status(200),
            ResolveOutcome::Delivered { status: 200 },
        ),
        (
            Reply::Status(409),
            ResolveOutcome::Delivered { status: 409 },
        ),
        (Reply::Status(404), ResolveOutcome::NotFound { status: 404 }),
        (
            Reply::Status(401),
            ResolveOutcome::Unauthorized { status: 401 },
        ),
        (
            Reply::Status(403),
            ResolveOutcome::Unauthorized { status: 403 },
        ),
    ];
    for (i, (reply, want)) in cases.into_iter().enumerate() {
        let incident = format!("inc-{i}");
        bp.script_resolve_for(&incident, reply.clone());
        let got = api
            .resolve_incident(&bp.url(), &key(), "env", &incident, "c")
            .await;
        assert_eq!(got.outcome, want, "scripted {reply:?}");
    }
}

#[tokio::test]
async fn resolve_with_an_unknown_or_forbidden_key_is_unauthorized() {
    let bp = FakeBigPanda::start();
    bp.set_forbidden_keys(["forbidden-key-000000000000000000"]);
    let api = api(WAIT);
    let unknown = ApiKey::new("ffffffffffffffffffffffffffffffff").unwrap();
    let got = api
        .resolve_incident(&bp.url(), &unknown, "env", "inc", "c")
        .await;
    assert_eq!(got.outcome, ResolveOutcome::Unauthorized { status: 401 });
    let forbidden = ApiKey::new("forbidden-key-000000000000000000").unwrap();
    let got = api
        .resolve_incident(&bp.url(), &forbidden, "env", "inc", "c")
        .await;
    assert_eq!(got.outcome, ResolveOutcome::Unauthorized { status: 403 });
    assert!(bp.delivered_resolves().is_empty());
}

#[tokio::test]
async fn resolve_429_is_retried_after_retry_after() {
    let bp = FakeBigPanda::start();
    let api = api(WAIT);
    bp.script_resolve(Reply::RetryAfter(429, "7".into()));
    match api
        .resolve_incident(&bp.url(), &key(), "env", "inc", "c")
        .await
        .outcome
    {
        ResolveOutcome::Retry {
            status: Some(429),
            retry_after,
            error,
        } => {
            assert_eq!(retry_after, Some(Duration::from_secs(7)));
            assert!(
                error.contains("429") && error.contains("5 per second"),
                "{error}"
            );
        }
        other => panic!("{other:?}"),
    }
    let date = "Wed, 21 Oct 2015 07:28:00 GMT"; // in the past: retry now
    bp.script_resolve(Reply::RetryAfter(429, date.into()));
    let got = api
        .resolve_incident(&bp.url(), &key(), "env", "inc", "c")
        .await
        .outcome;
    assert!(
        matches!(got, ResolveOutcome::Retry { status: Some(429), retry_after: Some(d), .. } if d.is_zero()),
        "{got:?}"
    );
    bp.script_resolve(Reply::Status(429));
    let got = api
        .resolve_incident(&bp.url(), &key(), "env", "inc", "c")
        .await
        .outcome;
    assert!(
        matches!(
            got,
            ResolveOutcome::Retry {
                status: Some(429),
                retry_after: None,
                ..
            }
        ),
        "{got:?}"
    );
}

#[tokio::test]
async fn resolve_5xx_is_retried_with_bigpanda_text() {
    let bp = FakeBigPanda::start();
    bp.script_resolve(Reply::Status(503));
    bp.script_resolve(Reply::Status(500));
    let api = api(WAIT);
    for want in [503, 500] {
        match api
            .resolve_incident(&bp.url(), &key(), "env", "inc", "c")
            .await
            .outcome
        {
            ResolveOutcome::Retry {
                status: Some(s),
                retry_after: None,
                error,
            } => {
                assert_eq!(s, want);
                assert_eq!(error, format!("HTTP {want}: Internal server error"));
            }
            other => panic!("{other:?}"),
        }
    }
    // The script is used up: the next resolve goes through.
    let got = api
        .resolve_incident(&bp.url(), &key(), "env", "inc", "c")
        .await;
    assert_eq!(got.outcome, ResolveOutcome::Delivered { status: 202 });
}

#[tokio::test]
async fn resolve_other_4xx_is_rejected_for_good() {
    let bp = FakeBigPanda::start();
    bp.script_resolve(Reply::Raw {
        status: 400,
        body: r#"{"status":400,"errors":["comments too long"]}"#.into(),
    });
    let got = api(WAIT)
        .resolve_incident(&bp.url(), &key(), "env", "inc", "c")
        .await
        .outcome;
    assert_eq!(
        got,
        ResolveOutcome::Rejected {
            status: 400,
            error: "HTTP 400: comments too long".into()
        }
    );
    assert!(got.is_terminal());
}

#[tokio::test]
async fn resolve_on_a_dropped_connection_is_retried() {
    let bp = FakeBigPanda::start();
    bp.script_resolve(Reply::Drop);
    let got = api(WAIT)
        .resolve_incident(&bp.url(), &key(), "env", "inc", "c")
        .await
        .outcome;
    match got {
        ResolveOutcome::Retry {
            status: None,
            error,
            ..
        } => {
            assert!(error.starts_with("connection error: "), "{error}");
            assert!(!error.contains("http://"), "{error}");
        }
        other => panic!("{other:?}"),
    }
    let calls = bp.resolve_calls();
    assert_eq!(
        calls.len(),
        1,
        "a dropped POST must not be silently resent: {calls:?}"
    );
    assert_eq!(calls[0].reply, None);
}

#[tokio::test]
async fn resolve_times_out_and_is_retried() {
    let bp = FakeBigPanda::start();
    bp.script_resolve(Reply::slow(Duration::from_secs(3), Reply::Status(202)));
    let got = api(Duration::from_millis(300))
        .resolve_incident(&bp.url(), &key(), "env", "inc", "c")
        .await;
    assert_eq!(
        got.outcome,
        ResolveOutcome::Retry {
            status: None,
            retry_after: None,
            error: "timeout after 300ms".into()
        }
    );
    assert!(
        got.elapsed >= Duration::from_millis(300) && got.elapsed < Duration::from_secs(2),
        "{:?}",
        got.elapsed
    );
}

#[tokio::test]
async fn a_slow_reply_within_the_timeout_is_delivered() {
    let bp = FakeBigPanda::start();
    bp.script_resolve(Reply::slow(Duration::from_millis(200), Reply::Status(202)));
    let got = api(WAIT)
        .resolve_incident(&bp.url(), &key(), "env", "inc", "c")
        .await;
    assert_eq!(got.outcome, ResolveOutcome::Delivered { status: 202 });
    assert!(
        got.elapsed >= Duration::from_millis(200),
        "{:?}",
        got.elapsed
    );
}

#[tokio::test]
async fn resolve_to_a_closed_port_is_a_connection_error() {
    let got = api(WAIT)
        .resolve_incident(&closed_port_url(), &key(), "env", "inc", "c")
        .await;
    match got.outcome {
        ResolveOutcome::Retry {
            status: None,
            error,
            ..
        } => assert!(error.starts_with("connection error"), "{error}"),
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn an_already_resolved_incident_answers_as_configured() {
    let bp = FakeBigPanda::start();
    let api = api(WAIT);
    let first = api
        .resolve_incident(&bp.url(), &key(), "env", "inc", "c")
        .await;
    let again = api
        .resolve_incident(&bp.url(), &key(), "env", "inc", "c")
        .await;
    assert_eq!(first.outcome, ResolveOutcome::Delivered { status: 202 });
    assert_eq!(again.outcome, ResolveOutcome::Delivered { status: 202 });
    bp.set_already_resolved_status(409);
    let third = api
        .resolve_incident(&bp.url(), &key(), "env", "inc", "c")
        .await;
    assert_eq!(third.outcome, ResolveOutcome::Delivered { status: 409 });
    assert_eq!(bp.delivered_resolves().len(), 2);
}

#[tokio::test]
async fn the_key_never_appears_in_errors_or_debug_output() {
    let bp = FakeBigPanda::start();
    let api = api(Duration::from_millis(300));
    let mut texts = vec![
        format!("{:?}", key()),
        key().to_string(),
        format!("{api:?}"),
    ];
    bp.script_environments(Reply::Status(500));
    bp.script_environments(Reply::slow(Duration::from_secs(2), Reply::Status(200)));
    bp.script_environments(Reply::Drop);
    for _ in 0..3 {
        let err = api.list_environments(&bp.url(), &key()).await.unwrap_err();
        texts.push(err.to_string());
        texts.push(format!("{err:?}"));
    }
    for reply in [
        Reply::Status(503),
        Reply::Drop,
        Reply::slow(Duration::from_secs(2), Reply::Status(202)),
        Reply::Status(400),
    ] {
        bp.script_resolve(reply);
        let got = api
            .resolve_incident(&bp.url(), &key(), "env", "inc", "c")
            .await;
        texts.push(format!("{got:?}"));
    }
    texts.push(format!(
        "{:?}",
        api.resolve_incident(&closed_port_url(), &key(), "env", "inc", "c")
            .await
    ));
    texts.push(format!(
        "{:?}",
        api.list_environments(&closed_port_url(), &key()).await
    ));
    for text in &texts {
        assert!(
            !text.contains(FakeBigPanda::VALID_KEY),
            "key leaked: {text}"
        );
    }
    // And the texts are real error texts, not empty strings that would pass trivially.
    assert!(
        texts.iter().any(|t| t.contains("timeout after 300ms")),
        "{texts:#?}"
    );
    assert!(
        texts.iter().any(|t| t.contains(&key().key_hint())),
        "{texts:#?}"
    );
}

#[tokio::test]
async fn the_client_never_sends_six_requests_in_a_second() {
    // The client never *starts* six requests within a second (proven exactly on the limiter's
    // slots in the unit tests, with a 1 ms margin). The fake stamps arrivals, which carry the
    // scheduling jitter of a busy machine: a first request that opens a connection can arrive
    // a few ms later than its start, and a sixth on a pooled one on time. So the fake refuses
    // a sixth request within 950 ms; a client that bursts, or paces at less than ~1 s per five,
    // still gets its 429s here.
    let window = Duration::from_millis(950);
    let bp = FakeBigPanda::start();
    bp.enforce_rate_limit(5, window);
    let api = BigPandaApi::new(WAIT).unwrap();
    let url = bp.url();
    let mut tasks = Vec::new();
    for i in 0..12 {
        let (api, url) = (api.clone(), url.clone());
        tasks.push(tokio::spawn(async move {
            api.resolve_incident(&url, &key(), "env", &format!("inc-{i}"), "c")
                .await
        }));
    }
    for task in tasks {
        let got = tokio::time::timeout(WAIT, task).await.unwrap().unwrap();
        let requests = bp.requests();
        let arrivals: Vec<u128> = requests
            .iter()
            .map(|r| (r.at - requests[0].at).as_millis())
            .collect();
        assert_eq!(
            got.outcome,
            ResolveOutcome::Delivered { status: 202 },
            "arrivals in ms: {arrivals:?}"
        );
    }
    assert_eq!(bp.delivered_resolves().len(), 12);
    assert!(bp.max_requests_in_any_window(window) <= 5);
}

#[tokio::test]
async fn transport_errors_read_as_one_short_line() {
    let got = api(WAIT)
        .resolve_incident(&closed_port_url(), &key(), "env", "inc", "c")
        .await;
    match got.outcome {
        ResolveOutcome::Retry { error, .. } => {
            assert!(error.contains("Connection refused"), "{error}");
            assert!(!error.contains("http://") && error.len() < 120, "{error}");
        }
        other => panic!("{other:?}"),
    }
}
