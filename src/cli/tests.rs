//! Unit tests for the CLI: table layout, renderers, token resolution order, error rendering.

use std::path::PathBuf;

use reqwest::{StatusCode, Url};
use serde_json::json;

use super::client::{api_error, endpoint, parse_base_url};
use super::render::{self, table, truncate};
use super::*;

fn lines(s: &str) -> Vec<&str> {
    s.lines().collect()
}

#[test]
fn table_pads_columns_to_the_widest_cell_without_trailing_spaces() {
    let rows = vec![
        vec!["a".to_owned(), "long value".to_owned(), "x".to_owned()],
        vec!["bbbbbb".to_owned(), "v".to_owned(), "".to_owned()],
    ];
    let out = table(&["ID", "VALUE", "LAST"], &rows);
    assert_eq!(
        lines(&out),
        [
            "ID      VALUE       LAST",
            "a       long value  x",
            "bbbbbb  v",
        ]
    );
}

#[test]
fn table_without_headers_aligns_rows_only() {
    let out = render::fields(&[("id", "1".to_owned()), ("callback url", "u".to_owned())]);
    assert_eq!(lines(&out), ["id:            1", "callback url:  u"]);
}

#[test]
fn truncate_marks_the_cut_and_keeps_short_text() {
    assert_eq!(truncate("short", 10), "short");
    assert_eq!(truncate("exactly10!", 10), "exactly10!");
    assert_eq!(truncate("abcdefghijk", 5), "abcd…");
    assert_eq!(truncate("ééééééé", 3), "éé…");
}

#[test]
fn webhook_text_cannot_inject_terminal_escapes_or_break_rows() {
    let alerts = [json!({
        "id": "a1", "status": "firing", "severity": "critical",
        "title": "evil\u{1b}[2J\ntitle", "updated_at": "t",
        "close_sync": {"state": "none", "attempts": 0},
    })];
    let out = render::alert_list(&alerts, None);
    assert!(!out.contains('\u{1b}'));
    assert_eq!(out.lines().count(), 2, "{out}");
}

#[test]
fn alert_list_truncates_titles_and_summarises_close_state() {
    let long = "x".repeat(100);
    let alerts = [
        json!({
            "id": "a1", "status": "resolved", "severity": "critical", "title": long,
            "updated_at": "2024-11-26T05:47:10.000Z",
            "close_sync": {"state": "failed", "attempts": 3, "last_error": "boom"},
        }),
        json!({
            "id": "a2", "status": "firing", "severity": null, "title": "short",
            "updated_at": "2024-11-26T05:47:11.000Z",
            "close_sync": {"state": "none", "attempts": 0},
        }),
    ];
    let out = render::alert_list(&alerts, None);
    let l = lines(&out);
    assert!(l[0].starts_with("ID  STATUS    SEVERITY  TITLE"), "{out}");
    assert!(l[1].contains(&format!("{}…", "x".repeat(render::TITLE_WIDTH - 1))));
    assert!(!l[1].contains(&"x".repeat(render::TITLE_WIDTH)));
    assert!(l[1].ends_with("failed (3 tries)"), "{out}");
    assert!(l[2].contains(" - "), "null severity shows as -: {out}");
    assert!(l[2].ends_with("none"));
}

#[test]
fn alert_list_says_when_it_stopped_early() {
    assert_eq!(render::alert_list(&[], None), "No alerts.\n");
    let out = render::alert_list(&[], Some("cur123"));
    assert!(out.contains("cursor=cur123"), "{out}");
}

#[test]
fn alert_detail_shows_fields_and_history() {
    let alert = json!({
        "id": "a1", "status": "firing", "title": "CPU", "incident_id": "inc",
        "resolved_at": null, "reopen_count": 0,
        "close_sync": {"state": "none", "attempts": 0, "last_error": null},
        "events": [{"at": "t1", "kind": "webhook", "outcome": "created",
                    "detail": {"event_type": "incident#new"}}],
    });
    let out = render::alert_detail(&alert);
    assert!(out.contains("incident:         inc"), "{out}");
    assert!(out.contains("resolved at:      -"), "{out}");
    let history: Vec<&str> = out.lines().skip_while(|l| !l.starts_with("AT")).collect();
    assert_eq!(history.len(), 2, "{out}");
    assert!(history[1].starts_with("t1  webhook  created  {\"event_type\""));
}

#[test]
fn integration_connect_echoes_only_the_key_hint() {
    let reply = json!({"connected": true, "key_hint": "…wxyz",
                       "environments": [{"id": "e1", "name": "Production"}]});
    let out = render::integration_connected(&reply);
    assert!(out.starts_with("Connected to BigPanda with key …wxyz."));
    assert!(out.contains("e1              Production"), "{out}");
}

#[test]
fn integration_status_renders_booleans_and_nulls() {
    let reply = json!({"connected": false, "api_url": "https://api.bigpanda.io",
                       "key_hint": null, "validated_at": null, "healthy": false,
                       "last_error": null});
    let out = render::integration_status(&reply);
    assert!(out.contains("connected:     no"), "{out}");
    assert!(out.contains("key:           -"), "{out}");
}

#[test]
fn source_create_shows_the_token_and_says_it_is_shown_once() {
    let reply = json!({"id": "src_1", "name": "prod", "callback_url": "http://h/webhooks/bigpanda/src_1",
                       "token": "pbsrc_secret", "created_at": "t"});
    let out = render::source_created(&reply);
    assert!(out.contains("token:         pbsrc_secret"), "{out}");
    assert!(out.contains("callback url:  http://h/webhooks/bigpanda/src_1"));
    assert!(out.contains("shown only once"));
}

#[test]
fn source_rotate_mentions_the_grace_period() {
    let out = render::source_rotated(
        "src_1",
        &json!({"token": "new", "previous_token_expires_at": "2030-01-01T00:00:00.000Z"}),
    );
    assert!(out.contains("until 2030-01-01T00:00:00.000Z"), "{out}");
    let out = render::source_rotated("src_1", &json!({"token": "new"}));
    assert!(out.contains("no longer works"), "{out}");
}

#[test]
fn empty_source_list_says_how_to_create_one() {
    let out = render::source_list(&json!({"alert_sources": []}));
    assert!(out.contains("source create"), "{out}");
}

#[test]
fn token_flag_or_env_beats_the_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("admin-token");
    std::fs::write(&file, "from-file\n").expect("write");
    assert_eq!(
        resolve_token(Some("from-flag"), &file),
        Ok("from-flag".into())
    );
    // An empty flag or env value counts as not given.
    assert_eq!(resolve_token(Some("  "), &file), Ok("from-file".into()));
    assert_eq!(resolve_token(None, &file), Ok("from-file".into()));
}

#[test]
fn missing_or_empty_token_file_says_how_to_provide_a_token() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("admin-token");
    let Err(Failure::Usage(msg)) = resolve_token(None, &file) else {
        panic!("expected a usage error");
    };
    assert!(msg.contains("--admin-token") && msg.contains("PANDABRIDGE_ADMIN_TOKEN"));
    assert!(!msg.contains('\n'));
    std::fs::write(&file, "\n").expect("write");
    let err = resolve_token(None, &file).expect_err("empty file");
    assert!(err.to_string().contains("is empty"), "{err}");
    assert_eq!(err.exit_code(), ExitCode::from(2));
}

#[test]
fn default_token_file_follows_the_daemons_data_dir_variable() {
    assert_eq!(
        default_token_file(None),
        PathBuf::from("./pandabridge-data/admin-token")
    );
    assert_eq!(
        default_token_file(Some(PathBuf::new())),
        PathBuf::from("./pandabridge-data/admin-token")
    );
    assert_eq!(
        default_token_file(Some(PathBuf::from("/var/lib/pb"))),
        PathBuf::from("/var/lib/pb/admin-token")
    );
}

#[test]
fn daemon_errors_render_as_code_and_message() {
    let body = br#"{"error":{"code":"unauthorized","message":"missing or invalid bearer token"}}"#;
    let err = api_error(StatusCode::UNAUTHORIZED, body);
    assert_eq!(
        err.to_string(),
        "unauthorized: missing or invalid bearer token"
    );
    assert_eq!(err.exit_code(), ExitCode::FAILURE);
}

#[test]
fn other_error_bodies_fall_back_to_the_http_status() {
    let err = api_error(StatusCode::BAD_GATEWAY, b"<html>\nbad gateway\n</html>");
    assert_eq!(
        err.to_string(),
        "HTTP 502: Bad Gateway: <html> bad gateway </html>"
    );
    let err = api_error(StatusCode::NOT_FOUND, b"");
    assert_eq!(err.to_string(), "HTTP 404: Not Found");
    let err = api_error(StatusCode::BAD_REQUEST, br#"{"error":"flat"}"#);
    assert!(err.to_string().starts_with("HTTP 400: Bad Request: "));
}

#[test]
fn unreachable_daemon_renders_a_hint() {
    let err = Failure::Unreachable {
        url: "http://127.0.0.1:1".into(),
        detail: "Connection refused (os error 111)".into(),
    };
    assert_eq!(
        err.to_string(),
        "cannot reach pandabridge at http://127.0.0.1:1: Connection refused (os error 111) \
         (is the daemon running? see --url)"
    );
    assert_eq!(err.exit_code(), ExitCode::FAILURE);
}

#[test]
fn endpoints_encode_ids_and_keep_a_base_path() {
    let base = parse_base_url("http://127.0.0.1:8080").expect("url");
    assert_eq!(
        endpoint(&base, &["alerts", "a/../b?x", "resolve"], &[]).as_str(),
        "http://127.0.0.1:8080/api/v1/alerts/a%2F..%2Fb%3Fx/resolve"
    );
    assert_eq!(
        endpoint(
            &base,
            &["alerts"],
            &[("status", "firing"), ("cursor", "a&b")]
        )
        .as_str(),
        "http://127.0.0.1:8080/api/v1/alerts?status=firing&cursor=a%26b"
    );
    let proxied = Url::parse("https://ops.example/pandabridge/").expect("url");
    assert_eq!(
        endpoint(&proxied, &["alert-sources"], &[]).as_str(),
        "https://ops.example/pandabridge/api/v1/alert-sources"
    );
}

#[test]
fn bad_urls_are_usage_errors() {
    for url in ["127.0.0.1:8080", "ftp://host", "not a url"] {
        let err = parse_base_url(url).expect_err(url);
        assert_eq!(err.exit_code(), ExitCode::from(2), "{url}");
        assert!(err.to_string().contains("--url"), "{err}");
    }
}

#[test]
fn resolve_body_names_the_user_and_omits_what_is_absent() {
    assert_eq!(
        resolve_body(Some("fixed"), Some("alice")),
        json!({"comment": "fixed", "resolved_by": "alice"})
    );
    assert_eq!(resolve_body(None, Some(" ")), json!({}));
    assert_eq!(resolve_body(None, None), json!({}));
}

#[test]
fn empty_ids_are_refused_before_any_request() {
    assert!(matches!(id_arg(" ", "alert"), Err(Failure::Usage(_))));
    assert_eq!(id_arg(" a1 ", "alert"), Ok("a1"));
}
