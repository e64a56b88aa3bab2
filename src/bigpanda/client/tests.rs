use std::time::{Duration, Instant, SystemTime};

use proptest::prelude::*;
use rand::rngs::StdRng;
use rand::SeedableRng;
use reqwest::header::{HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::StatusCode;
use serde_json::json;

use super::*;

const KEY: &str = "0123456789abcdef0123456789abWXYZ";

#[test]
fn api_key_shows_only_its_hint() {
    let key = ApiKey::new(KEY).unwrap();
    assert_eq!(key.key_hint(), "…WXYZ");
    assert_eq!(key.to_string(), "…WXYZ");
    assert_eq!(format!("{key:?}"), "ApiKey(…WXYZ)");
    assert_eq!(format!("{:?}", Some(&key)), "Some(ApiKey(…WXYZ))");
    assert_eq!(key.expose_secret(), KEY);
}

#[test]
fn api_key_is_trimmed_and_checked() {
    assert_eq!(
        ApiKey::new(format!("  {KEY}\n")).unwrap().expose_secret(),
        KEY
    );
    assert_eq!(ApiKey::new("   "), Err(ApiKeyError::Empty));
    assert_eq!(
        ApiKey::new("abc def-ghijk"),
        Err(ApiKeyError::InvalidCharacter)
    );
    assert_eq!(
        ApiKey::new("abcdéfghijkl"),
        Err(ApiKeyError::InvalidCharacter)
    );
    assert_eq!(
        "k".parse::<ApiKey>().map(|k| k.key_hint()),
        Ok("…".to_string())
    );
}

#[test]
fn short_keys_reveal_nothing() {
    assert_eq!(ApiKey::new("12345678").unwrap().key_hint(), "…");
    assert_eq!(ApiKey::new("123456789").unwrap().key_hint(), "…6789");
}

#[test]
fn redact_replaces_the_key() {
    let key = ApiKey::new(KEY).unwrap();
    let message = key.redact(format!("oops Bearer {KEY} leaked"));
    assert!(!message.contains(KEY), "{message}");
    assert!(message.contains("…WXYZ"), "{message}");
}

#[test]
fn endpoint_joins_and_handles_trailing_slashes() {
    let segs = ["resources", "v2.0", "environments"];
    for base in ["https://api.bigpanda.io", "https://api.bigpanda.io/"] {
        assert_eq!(
            endpoint(base, &segs).unwrap().as_str(),
            "https://api.bigpanda.io/resources/v2.0/environments"
        );
    }
    assert_eq!(
        endpoint("http://127.0.0.1:9/proxy/bp/", &segs)
            .unwrap()
            .as_str(),
        "http://127.0.0.1:9/proxy/bp/resources/v2.0/environments"
    );
}

#[test]
fn endpoint_percent_encodes_each_segment() {
    let url = endpoint(
        "https://x",
        &["environments", "a/b?c#d", "incidents", "50% off é"],
    )
    .unwrap();
    assert_eq!(
        url.as_str(),
        "https://x/environments/a%2Fb%3Fc%23d/incidents/50%25%20off%20%C3%A9"
    );
    assert_eq!(url.path_segments().map(|s| s.count()), Some(4));
}

#[test]
fn endpoint_rejects_unusable_urls() {
    for bad in [
        "",
        "api.bigpanda.io",
        "ftp://x",
        "mailto:a@b",
        "https://x/?q=1",
        "https://x/#f",
    ] {
        assert!(endpoint(bad, &["a"]).is_err(), "{bad:?} was accepted");
    }
}

#[tokio::test]
async fn unaddressable_ids_are_not_sent() {
    let api = BigPandaApi::new(Duration::from_secs(1)).unwrap();
    let key = ApiKey::new(KEY).unwrap();
    // Port 9 on loopback: if anything were sent this would be a connection error (Retry).
    for (env, inc) in [("env", ".."), (".", "inc"), ("", "inc"), ("env", "")] {
        let result = api
            .resolve_incident("http://127.0.0.1:9", &key, env, inc, "c")
            .await;
        assert!(
            matches!(result.outcome, ResolveOutcome::NotSent { .. }),
            "{env:?}/{inc:?}: {result:?}"
        );
        assert!(result.outcome.is_terminal());
    }
}

#[test]
fn environments_are_read_from_every_known_shape() {
    let env = json!({"id": "60b796b886d4050040dc9192", "name": "Production Crits", "filter": "x"});
    let want = vec![Environment {
        id: "60b796b886d4050040dc9192".into(),
        name: "Production Crits".into(),
    }];
    for body in [
        json!([env]),
        json!({"items": [env]}),
        json!({"data": [env]}),
        json!({"environments": [env]}),
        json!({"data": {"items": [env]}}),
    ] {
        assert_eq!(parse_environments(&body), want, "{body}");
    }
    assert_eq!(parse_environments(&json!({"something": "else"})), vec![]);
    assert_eq!(
        parse_environments(&json!([{"name": "no id"}, {"id": 7}, {"id": ""}])),
        vec![Environment {
            id: "7".into(),
            name: String::new()
        }]
    );
}

#[test]
fn error_suffix_quotes_the_bigpanda_envelope() {
    let body = br#"{"status":404,"errors":["Route /x is not found","second"]}"#;
    assert_eq!(error_suffix(Some(body)), ": Route /x is not found; second");
    assert_eq!(error_suffix(Some(br#"{"message":"nope"}"#)), ": nope");
    assert_eq!(error_suffix(Some(b" plain text \n")), ": plain text");
    assert_eq!(error_suffix(Some(b"")), "");
    assert_eq!(error_suffix(None), "");
    let long = format!(r#"{{"errors":["{}"]}}"#, "x".repeat(500));
    let suffix = error_suffix(Some(long.as_bytes()));
    assert_eq!(suffix.chars().count(), 2 + MAX_ERROR_CHARS + 1, "{suffix}");
    assert!(suffix.ends_with('…'));
}

#[test]
fn resolve_replies_are_classified_as_contract_section_4_says() {
    let ra = Some(Duration::from_secs(3));
    let c = |code: u16| classify_resolve(StatusCode::from_u16(code).unwrap(), ra, Some(b"{}"));
    assert_eq!(c(202), ResolveOutcome::Delivered { status: 202 });
    assert_eq!(c(200), ResolveOutcome::Delivered { status: 200 });
    assert_eq!(c(204), ResolveOutcome::Delivered { status: 204 });
    assert_eq!(c(409), ResolveOutcome::Delivered { status: 409 });
    assert_eq!(c(404), ResolveOutcome::NotFound { status: 404 });
    assert_eq!(c(401), ResolveOutcome::Unauthorized { status: 401 });
    assert_eq!(c(403), ResolveOutcome::Unauthorized { status: 403 });
    for code in [408, 429, 500, 502, 503, 504] {
        assert!(
            matches!(c(code), ResolveOutcome::Retry { status: Some(s), retry_after, .. } if s == code && retry_after == ra),
            "{code}: {:?}",
            c(code)
        );
    }
    for code in [400, 405, 410, 413, 415, 422] {
        assert!(
            matches!(c(code), ResolveOutcome::Rejected { status, .. } if status == code),
            "{code}"
        );
        assert!(c(code).is_terminal());
    }
    assert!(matches!(
        c(301),
        ResolveOutcome::Retry {
            status: Some(301),
            ..
        }
    ));
    assert!(!c(503).is_terminal() && !c(401).is_terminal());
}

#[test]
fn rejected_and_retry_errors_carry_bigpanda_text() {
    let body = br#"{"status":503,"errors":["maintenance"]}"#;
    match classify_resolve(StatusCode::SERVICE_UNAVAILABLE, None, Some(body)) {
        ResolveOutcome::Retry { error, .. } => assert_eq!(error, "HTTP 503: maintenance"),
        other => panic!("{other:?}"),
    }
}

fn retry_after(value: &str) -> Option<Duration> {
    let mut headers = HeaderMap::new();
    headers.insert(RETRY_AFTER, HeaderValue::from_str(value).unwrap());
    // 1994-11-06T08:49:00Z
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_740);
    parse_retry_after(&headers, now)
}

#[test]
fn retry_after_accepts_seconds_and_http_dates() {
    assert_eq!(retry_after("7"), Some(Duration::from_secs(7)));
    assert_eq!(retry_after(" 0 "), Some(Duration::ZERO));
    assert_eq!(
        retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
        Some(Duration::from_secs(37))
    );
    assert_eq!(
        retry_after("Sun, 06 Nov 1994 08:48:00 GMT"),
        Some(Duration::ZERO)
    );
    assert_eq!(retry_after("999999"), Some(MAX_RETRY_AFTER));
    assert_eq!(retry_after("soon"), None);
    assert_eq!(retry_after("-1"), None);
    assert_eq!(
        parse_retry_after(&HeaderMap::new(), SystemTime::now()),
        None
    );
}

#[test]
fn http_dates_convert_to_unix_time() {
    let t = parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
    assert_eq!(
        t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(),
        784_111_777
    );
    let t = parse_http_date("Thu, 29 Feb 2024 23:59:59 GMT").unwrap();
    assert_eq!(
        t.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(),
        1_709_251_199
    );
    assert_eq!(parse_http_date("Sun, 06 Nov 1994 08:49:37 PST"), None);
    assert_eq!(parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"), None);
}

#[test]
fn backoff_ceiling_doubles_up_to_the_cap() {
    let secs: Vec<u64> = (0..12).map(|a| backoff_ceiling(a).as_secs()).collect();
    assert_eq!(secs, [1, 1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
    assert_eq!(backoff_ceiling(u32::MAX), BACKOFF_CAP);
}

#[test]
fn backoff_is_jittered_within_the_ceiling_and_honours_retry_after() {
    let mut rng = StdRng::seed_from_u64(7);
    for attempt in 1..20 {
        let samples: Vec<Duration> = (0..200)
            .map(|_| backoff_with(attempt, None, &mut rng))
            .collect();
        let ceiling = backoff_ceiling(attempt);
        assert!(samples.iter().all(|d| *d <= ceiling), "attempt {attempt}");
        // Full jitter: the samples spread over the range instead of sitting at the ceiling.
        let distinct: std::collections::HashSet<_> = samples.iter().collect();
        assert!(
            distinct.len() > 50,
            "attempt {attempt}: {} distinct",
            distinct.len()
        );
    }
    for _ in 0..200 {
        let d = backoff_with(1, Some(Duration::from_secs(30)), &mut rng);
        assert!(d >= Duration::from_secs(30), "{d:?}");
    }
    assert!(backoff(3, Some(Duration::from_secs(9))) >= Duration::from_secs(9));
}

/// Largest number of `starts` (sorted) inside any closed interval of length `window`.
fn max_in_window(starts: &[Instant], window: Duration) -> usize {
    let mut best = 0;
    let mut lo = 0;
    for hi in 0..starts.len() {
        while starts[hi] - starts[lo] > window {
            lo += 1;
        }
        best = best.max(hi - lo + 1);
    }
    best
}

#[test]
fn max_in_window_counts_inclusively() {
    let t0 = Instant::now();
    let at = |ms: u64| t0 + Duration::from_millis(ms);
    let starts = [at(0), at(500), at(1000), at(1001), at(2002)];
    assert_eq!(max_in_window(&starts, Duration::from_secs(1)), 3);
}

proptest! {
    // 200 cases by default (each case runs up to 3,000 acquisitions); PROPTEST_CASES raises it.
    #![proptest_config(ProptestConfig::with_cases(
        std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(200)
    ))]

    /// Callers arriving at random times (bursts and pauses), each taking a slot when offered or
    /// coming back when told: no 1 s window ever holds more than 5 starts.
    #[test]
    fn try_acquire_never_allows_six_in_a_second(
        gaps in proptest::collection::vec(0u64..400, 1..3000),
        obey in proptest::collection::vec(any::<bool>(), 3000),
    ) {
        let t0 = Instant::now();
        let mut limiter = RateLimiter::bigpanda();
        let mut now = t0;
        let mut starts = Vec::new();
        for (i, gap) in gaps.iter().enumerate() {
            now += Duration::from_millis(*gap);
            match limiter.try_acquire(now) {
                Ok(()) => starts.push(now),
                Err(at) => {
                    prop_assert!(at > now);
                    // Half the callers come back exactly when told; that retry must succeed.
                    if obey[i] {
                        now = at;
                        prop_assert_eq!(limiter.try_acquire(now), Ok(()));
                        starts.push(now);
                    }
                }
            }
        }
        prop_assert!(max_in_window(&starts, BIGPANDA_WINDOW) <= BIGPANDA_REQUESTS_PER_WINDOW);
    }

    /// The same guarantee for reservations, which may be handed out far ahead of `now`.
    #[test]
    fn next_slot_never_allows_six_in_a_second(gaps in proptest::collection::vec(0u64..300, 1..3000)) {
        let mut limiter = RateLimiter::bigpanda();
        let mut now = Instant::now();
        let mut slots = Vec::new();
        for gap in gaps {
            now += Duration::from_millis(gap);
            let slot = limiter.next_slot(now);
            prop_assert!(slot >= now);
            prop_assert!(slots.last().is_none_or(|last| *last <= slot));
            slots.push(slot);
        }
        prop_assert!(max_in_window(&slots, BIGPANDA_WINDOW) <= BIGPANDA_REQUESTS_PER_WINDOW);
    }
}

#[test]
fn saturated_rate_stays_above_4_7_per_second() {
    let t0 = Instant::now();
    let mut limiter = RateLimiter::bigpanda();
    let mut now = t0;
    let mut starts = Vec::new();
    while now - t0 < Duration::from_secs(600) {
        match limiter.try_acquire(now) {
            Ok(()) => starts.push(now),
            Err(at) => now = at,
        }
    }
    let rate = starts.len() as f64 / 600.0;
    assert!(rate >= 4.99, "{rate}/s");
    assert!(max_in_window(&starts, BIGPANDA_WINDOW) <= 5);

    let mut limiter = RateLimiter::bigpanda();
    let slots: Vec<Instant> = (0..3000).map(|_| limiter.next_slot(t0)).collect();
    let span = (*slots.last().unwrap() - t0).as_secs_f64();
    // A backlog drains at BigPanda's 5/s, no slower (the margin costs 0.1 %).
    assert!(2999.0 / span >= 4.99, "{}/s", 2999.0 / span);
}

#[test]
fn a_free_limiter_grants_immediately_then_spreads_starts_evenly() {
    let t0 = Instant::now();
    let mut limiter = RateLimiter::bigpanda();
    assert_eq!(limiter.try_acquire(t0), Ok(()));
    let gap = Duration::from_millis(195);
    assert_eq!(limiter.try_acquire(t0).unwrap_err(), t0 + gap);
    for i in 1..5 {
        assert_eq!(limiter.try_acquire(t0 + gap * i), Ok(()));
    }
    // The sixth waits for the window (plus margin) after the first, not just one more gap.
    let again = limiter.try_acquire(t0 + gap * 5).unwrap_err();
    assert_eq!(again, t0 + BIGPANDA_WINDOW + BIGPANDA_SAFETY_MARGIN);
    assert_eq!(
        RateLimiter::new(0, BIGPANDA_WINDOW, Duration::ZERO).try_acquire(t0),
        Ok(())
    );
}

#[test]
fn free_at_says_when_a_start_is_allowed_and_takes_nothing() {
    let t0 = Instant::now();
    let gap = Duration::from_millis(195);
    let mut limiter = RateLimiter::bigpanda();
    assert_eq!(limiter.free_at(t0), t0);
    assert_eq!(limiter.free_at(t0), t0, "asking twice takes nothing");
    assert_eq!(limiter.try_acquire(t0), Ok(()));
    assert_eq!(limiter.free_at(t0), t0 + gap);
    // The close sender takes its slot later than the instant it was told, after its check:
    // the next one is then counted from that later start.
    let late = t0 + gap + Duration::from_millis(40);
    assert_eq!(limiter.try_acquire(late), Ok(()));
    assert_eq!(limiter.free_at(late), late + gap);
}

/// A caller whose timer wakes 1 ms after each instant it was told (tokio's timer does) pays
/// that once per five starts, not once per start: 50 starts span 9.802 s, not 9.849 s.
#[test]
fn a_timer_that_wakes_late_costs_the_pace_once_per_window() {
    let t0 = Instant::now();
    let late = Duration::from_millis(1);
    let mut limiter = RateLimiter::bigpanda();
    let mut now = t0;
    let mut starts = Vec::new();
    while starts.len() < 50 {
        match limiter.try_acquire(now) {
            Ok(()) => starts.push(now),
            Err(at) => now = at + late,
        }
    }
    let span = starts[49] - starts[0];
    assert!(span <= Duration::from_millis(9_810), "{span:?}");
    assert!(max_in_window(&starts, BIGPANDA_WINDOW) <= BIGPANDA_REQUESTS_PER_WINDOW);
}
