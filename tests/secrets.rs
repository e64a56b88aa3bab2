//! Secrets (issue 4, item 6): a full run of the real binary at `RUST_LOG=debug` against a fake
//! BigPanda — sources created, a token rotated, webhooks with good and bad tokens, a key
//! rejected and one stored, an alert resolved and closed in BigPanda, every admin endpoint and
//! `/metrics` read — and then neither the captured log nor any reply may contain the admin
//! token, a source token (old or new) or a BigPanda key (rejected or stored). The only replies
//! allowed to carry a secret are the two that issue a source token, and only that token. Also
//! checks the data dir's file modes.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use reqwest::Method;
use serde_json::json;
use support::daemon::{fixture, fixture_json, Daemon};
use support::fake_bigpanda::FakeBigPanda;

/// Every reply of the run, with the one secret (if any) it may legitimately contain.
#[derive(Default)]
struct Replies(Vec<(String, String, Option<String>)>);

impl Replies {
    /// Sends `req`, records the raw reply body and returns `(status, body as JSON or Null)`.
    async fn send(&mut self, what: &str, req: reqwest::RequestBuilder) -> (u16, serde_json::Value) {
        let resp = req.send().await.expect("request to pandabridge");
        let status = resp.status().as_u16();
        let mut text = format!("{:?}\n", resp.headers());
        let body = resp.text().await.expect("reply body");
        text.push_str(&body);
        self.0.push((what.to_string(), text, None));
        (
            status,
            serde_json::from_str(&body).unwrap_or(serde_json::Value::Null),
        )
    }

    /// Marks the last reply as the one that issued `secret`.
    fn last_issues(&mut self, secret: &str) {
        self.0.last_mut().expect("a reply").2 = Some(secret.to_string());
    }
}

/// Asserts `secret` (and its first half, which would betray a truncated leak) is not in `text`.
#[track_caller]
fn assert_absent(where_: &str, text: &str, name: &str, secret: &str) {
    assert!(secret.len() >= 16, "{name} is too short to grep for");
    let half = &secret[..secret.len() / 2];
    assert!(
        !text.contains(secret) && !text.contains(half),
        "{name} appears in {where_}:\n{text}"
    );
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p)
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test]
async fn no_secret_appears_in_logs_replies_or_metrics_and_files_are_private() {
    let bp = FakeBigPanda::start();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let d = Daemon::start_with_env(
        &data,
        &["--bigpanda-api-url", &bp.url()],
        &[("RUST_LOG", "debug")],
    );
    let admin = d.admin_token().to_string();
    let mut r = Replies::default();
    let json = |v: serde_json::Value| serde_json::to_vec(&v).unwrap();

    // --- the BigPanda key: a rejected one, a forbidden one, then the valid one ---
    let rejected_key = "9a8b7c6d5e4f30211203f4e5d6c7b8a9";
    let forbidden_key = "5555aaaa6666bbbb7777cccc8888dddd";
    bp.set_forbidden_keys([forbidden_key]);
    for (key, status) in [(rejected_key, 422), (forbidden_key, 422)] {
        let (got, body) = r
            .send(
                "PUT integration (bad key)",
                d.admin(Method::PUT, "/api/v1/integrations/bigpanda")
                    .json(&json!({ "api_key": key })),
            )
            .await;
        assert_eq!(got, status, "{body}");
    }
    let (status, body) = r
        .send(
            "PUT integration",
            d.admin(Method::PUT, "/api/v1/integrations/bigpanda")
                .json(&json!({ "api_key": FakeBigPanda::VALID_KEY })),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let last4 = &FakeBigPanda::VALID_KEY[FakeBigPanda::VALID_KEY.len() - 4..];
    assert_eq!(body["key_hint"], json!(format!("…{last4}")), "{body}");

    // --- sources, a rotation, webhooks with every token ---
    let (status, created) = r
        .send(
            "create source a",
            d.admin(Method::POST, "/api/v1/alert-sources")
                .json(&json!({"name": "a", "default_environment_id": "env-default"})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let src_a = created["id"].as_str().unwrap().to_string();
    let old_token = created["token"].as_str().unwrap().to_string();
    r.last_issues(&old_token);
    let (status, created) = r
        .send(
            "create source b",
            d.admin(Method::POST, "/api/v1/alert-sources")
                .json(&json!({"name": "b"})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let src_b = created["id"].as_str().unwrap().to_string();
    let token_b = created["token"].as_str().unwrap().to_string();
    r.last_issues(&token_b);

    let webhook = |src: &str, token: &str, body: Vec<u8>| {
        d.request(Method::POST, &format!("/webhooks/bigpanda/{src}"))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(body)
    };
    let (status, reply) = r
        .send(
            "webhook, old token",
            webhook(&src_a, &old_token, fixture("01-new")),
        )
        .await;
    assert_eq!(status, 202, "{reply}");
    let alert_id = reply["alert_id"].as_str().unwrap().to_string();

    let (status, rotated) = r
        .send(
            "rotate",
            d.admin(
                Method::POST,
                &format!("/api/v1/alert-sources/{src_a}/rotate-token"),
            ),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let new_token = rotated["token"].as_str().unwrap().to_string();
    r.last_issues(&new_token);
    assert_ne!(new_token, old_token);

    let mut other = fixture_json("01-new");
    other["incident"]["id"] = json!("second-incident");
    for (what, src, token, body, want) in [
        (
            "webhook, new token",
            &src_a,
            &new_token,
            fixture("02-updated"),
            202,
        ),
        (
            "webhook, old token in grace",
            &src_a,
            &old_token,
            json(other.clone()),
            202,
        ),
        (
            "webhook, source b",
            &src_b,
            &token_b,
            fixture("01-new"),
            202,
        ),
        (
            "webhook, b's token on a",
            &src_a,
            &token_b,
            fixture("01-new"),
            401,
        ),
        (
            "webhook, admin token",
            &src_a,
            &admin,
            fixture("01-new"),
            401,
        ),
        (
            "webhook, bad body",
            &src_a,
            &new_token,
            b"not json".to_vec(),
            400,
        ),
    ] {
        let (status, reply) = r.send(what, webhook(src, token, body)).await;
        assert_eq!(status, want, "{what}: {reply}");
    }
    // A wrong token that embeds real ones, and the admin API with a source token.
    let (status, _) = r
        .send(
            "webhook, tokens concatenated",
            webhook(
                &src_a,
                &format!("{new_token}{old_token}"),
                fixture("01-new"),
            ),
        )
        .await;
    assert_eq!(status, 401);
    let (status, _) = r
        .send(
            "admin with a source token",
            d.request(Method::GET, "/api/v1/alerts")
                .bearer_auth(&new_token),
        )
        .await;
    assert_eq!(status, 401);

    // --- resolve: the close goes to BigPanda with the key ---
    let (status, resolved) = r
        .send(
            "resolve",
            d.admin(Method::POST, &format!("/api/v1/alerts/{alert_id}/resolve"))
                .json(&json!({"comment": "done", "resolved_by": "ops"})),
        )
        .await;
    assert_eq!(status, 200, "{resolved}");
    let delivered = bp.wait_for_delivered(1, Duration::from_secs(15));
    assert_eq!(delivered[0].bearer(), Some(FakeBigPanda::VALID_KEY));
    // Wait (bounded) until the alert shows the confirmed close, so its history is complete.
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (_, alert) = d.get_alert(&alert_id).await;
        if alert["close_sync"]["state"] == "closed" {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "close not confirmed: {alert}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // --- read everything ---
    let gets = [
        "/api/v1/integrations/bigpanda".to_string(),
        "/api/v1/alert-sources".to_string(),
        format!("/api/v1/alert-sources/{src_a}"),
        format!("/api/v1/alert-sources/{src_b}"),
        "/api/v1/alerts".to_string(),
        "/api/v1/alerts?status=resolved".to_string(),
        format!("/api/v1/alerts?source_id={src_a}"),
        format!("/api/v1/alerts/{alert_id}"),
        "/api/v1/alerts/nope".to_string(),
        "/api/v1/nope".to_string(),
    ];
    for path in &gets {
        let (status, body) = r.send(path, d.admin(Method::GET, path)).await;
        assert!(
            status == 200 || status == 404,
            "GET {path}: {status} {body}"
        );
    }
    let (status, body) = r
        .send(
            "retry-close",
            d.admin(
                Method::POST,
                &format!("/api/v1/alerts/{alert_id}/retry-close"),
            ),
        )
        .await;
    assert!(status < 500, "retry-close: {status} {body}");
    for path in ["/healthz", "/readyz", "/metrics"] {
        let (status, _) = r.send(path, d.request(Method::GET, path)).await;
        assert_eq!(status, 200, "{path}");
    }
    let (status, _) = r
        .send(
            "delete source b",
            d.admin(Method::DELETE, &format!("/api/v1/alert-sources/{src_b}")),
        )
        .await;
    assert_eq!(status, 204);
    let (status, integration) = r
        .send(
            "GET integration",
            d.admin(Method::GET, "/api/v1/integrations/bigpanda"),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(integration["connected"], json!(true), "{integration}");
    assert_eq!(integration["key_hint"], json!(format!("…{last4}")));

    // --- file modes, while running ---
    assert_eq!(mode(&data), 0o700, "data dir");
    for f in ["admin-token", "listen-addr"] {
        assert_eq!(mode(&data.join(f)), 0o600, "{f}");
    }
    let store = data.join("store");
    assert_eq!(mode(&store), 0o700, "store dir");
    let mut pending = vec![data.clone()];
    let mut files = 0;
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let p = entry.unwrap().path();
            // The daemon is running: a log segment it removed since the listing is gone.
            let m = match std::fs::metadata(&p) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                _ => mode(&p),
            };
            if p.is_dir() {
                assert_eq!(m, 0o700, "{}", p.display());
                pending.push(p);
            } else {
                assert_eq!(m & 0o077, 0, "{} is {m:o}", p.display());
                files += 1;
            }
        }
    }
    assert!(
        files >= 4,
        "expected the secrets and sled's files, saw {files}"
    );

    // --- shut down, so shutdown lines are in the log too ---
    let mut d = d;
    d.stop();
    assert!(d.wait_exit(Duration::from_secs(15)).success());
    let log = d.stderr();
    assert!(
        log.contains("DEBUG pandabridge::"),
        "RUST_LOG=debug did not produce pandabridge's debug lines:\n{log}"
    );
    // The log does talk about the key, by its hint only.
    assert!(
        log.contains(&format!("key=…{last4}")),
        "no key hint in the log:\n{log}"
    );

    // --- the grep ---
    let secrets = [
        ("the admin token", admin.as_str()),
        ("source a's old token", old_token.as_str()),
        ("source a's new token", new_token.as_str()),
        ("source b's token", token_b.as_str()),
        ("the BigPanda key", FakeBigPanda::VALID_KEY),
        ("a rejected BigPanda key", rejected_key),
        ("a forbidden BigPanda key", forbidden_key),
    ];
    for (name, secret) in secrets {
        assert_absent("the daemon's log", &log, name, secret);
        for (what, text, issued) in &r.0 {
            if issued.as_deref() == Some(secret) {
                assert!(text.contains(secret), "{what} did not show {name}");
                continue;
            }
            assert_absent(&format!("the reply to {what}"), text, name, secret);
        }
    }
    assert!(r.0.len() >= 30, "only {} replies checked", r.0.len());
}
