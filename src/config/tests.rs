use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;

use clap::CommandFactory;

use super::*;

fn serve_args(cli: Cli) -> ServeArgs {
    match cli.command {
        Command::Serve(args) => args,
        _ => panic!("expected serve"),
    }
}

fn file(text: &str) -> ServeFile {
    parse_file(Path::new("/etc/pandabridge.toml"), text).unwrap()
}

fn args_with_config() -> ServeArgs {
    ServeArgs {
        config: Some(PathBuf::from("/etc/pandabridge.toml")),
        ..ServeArgs::default()
    }
}

fn mode(path: &Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn serve_env_names_match_the_contract() {
    let cmd = Cli::command();
    let serve = cmd.find_subcommand("serve").unwrap();
    let envs: BTreeMap<String, String> = serve
        .get_arguments()
        .filter_map(|a| {
            let env = a.get_env()?.to_str()?.to_owned();
            Some((a.get_long()?.to_owned(), env))
        })
        .collect();
    let expected = [
        ("listen", "PANDABRIDGE_LISTEN"),
        ("data-dir", "PANDABRIDGE_DATA_DIR"),
        ("bigpanda-api-url", "PANDABRIDGE_BIGPANDA_API_URL"),
        ("admin-token", "PANDABRIDGE_ADMIN_TOKEN"),
        ("public-url", "PANDABRIDGE_PUBLIC_URL"),
        ("config", "PANDABRIDGE_CONFIG"),
        ("max-body-bytes", "PANDABRIDGE_MAX_BODY_BYTES"),
        ("idle-actor-timeout", "PANDABRIDGE_IDLE_ACTOR_TIMEOUT"),
        ("max-in-flight", "PANDABRIDGE_MAX_IN_FLIGHT"),
        ("token-grace", "PANDABRIDGE_TOKEN_GRACE"),
        ("header-read-timeout", "PANDABRIDGE_HEADER_READ_TIMEOUT"),
        ("body-read-timeout", "PANDABRIDGE_BODY_READ_TIMEOUT"),
        ("max-connections", "PANDABRIDGE_MAX_CONNECTIONS"),
        ("store-cache-mb", "PANDABRIDGE_STORE_CACHE_MB"),
        ("store-fold-after-mb", "PANDABRIDGE_STORE_FOLD_AFTER_MB"),
        ("max-live-actors", "PANDABRIDGE_MAX_LIVE_ACTORS"),
        ("log-format", "PANDABRIDGE_LOG_FORMAT"),
    ];
    let expected: BTreeMap<String, String> = expected
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    assert_eq!(envs, expected);
}

#[test]
fn cli_definition_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn every_serve_flag_has_a_file_key() {
    let cmd = Cli::command();
    let serve = cmd.find_subcommand("serve").unwrap();
    for arg in serve.get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if long == "config" {
            continue;
        }
        assert!(
            FILE_KEYS.contains(&long.replace('-', "_").as_str()),
            "--{long} has no config file key"
        );
    }
}

#[test]
fn file_with_every_key_parses() {
    let f = file(
        r#"
        listen = "0.0.0.0:9000"
        data_dir = "/var/lib/pandabridge"
        bigpanda_api_url = "https://eu-api.bigpanda.io"
        admin_token = "adm"
        public_url = "https://pb.example.com"
        max_body_bytes = 2048
        idle_actor_timeout = "90s"
        max_in_flight = 16
        token_grace = "2h"
        header_read_timeout = "5s"
        body_read_timeout = "7s"
        max_connections = 99
        store_cache_mb = 48
        store_fold_after_mb = 96
        max_live_actors = 2000
        log_format = "json"
        "#,
    );
    let c = merge(args_with_config(), Some(f)).unwrap();
    assert_eq!(c.listen, "0.0.0.0:9000".parse().unwrap());
    assert_eq!(c.data_dir, PathBuf::from("/var/lib/pandabridge"));
    assert_eq!(c.bigpanda_api_url, "https://eu-api.bigpanda.io");
    assert_eq!(c.admin_token.as_deref(), Some("adm"));
    assert_eq!(c.public_url.as_deref(), Some("https://pb.example.com"));
    assert_eq!(c.max_body_bytes, 2048);
    assert_eq!(c.idle_actor_timeout, Duration::from_secs(90));
    assert_eq!(c.max_in_flight, 16);
    assert_eq!(c.token_grace, Duration::from_secs(7200));
    assert_eq!(c.header_read_timeout, Duration::from_secs(5));
    assert_eq!(c.body_read_timeout, Duration::from_secs(7));
    assert_eq!(c.max_connections, 99);
    assert_eq!(c.store_cache_bytes, 48 * 1024 * 1024);
    assert_eq!(c.store_fold_after_bytes, 96 * 1024 * 1024);
    assert_eq!(c.max_live_actors, 2000);
    assert_eq!(c.log_format, LogFormat::Json);
}

#[test]
fn defaults_match_the_contract() {
    let c = merge(ServeArgs::default(), None).unwrap();
    assert_eq!(c.listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(c.data_dir, PathBuf::from("./pandabridge-data"));
    assert_eq!(c.bigpanda_api_url, "https://api.bigpanda.io");
    assert_eq!(c.admin_token, None);
    assert_eq!(c.public_url, None);
    assert_eq!(c.max_body_bytes, 1_048_576);
    assert_eq!(c.idle_actor_timeout, Duration::from_secs(300));
    assert_eq!(c.max_in_flight, 1024);
    assert_eq!(c.token_grace, Duration::from_secs(3600));
    assert_eq!(c.max_live_actors, 10_000);
    assert_eq!(c.store_fold_after_bytes, 32 * 1024 * 1024);
    assert_eq!(c.log_format, LogFormat::Text);
    assert_eq!(c.config_file, None);
}

#[test]
fn file_beats_default() {
    let f = file("listen = \"127.0.0.1:9100\"\ndata_dir = \"/srv/pb\"\n");
    let c = merge(args_with_config(), Some(f)).unwrap();
    assert_eq!(c.listen.port(), 9100);
    assert_eq!(c.data_dir, PathBuf::from("/srv/pb"));
}

#[test]
fn flag_beats_file() {
    let f = file("listen = \"127.0.0.1:9100\"\ndata_dir = \"/srv/pb\"\nmax_in_flight = 5\n");
    let cli = Cli::try_parse_from([
        "pandabridge",
        "serve",
        "--config",
        "/etc/pandabridge.toml",
        "--listen",
        "127.0.0.1:9200",
        "--data-dir",
        "/flag/dir",
    ])
    .unwrap();
    let c = merge(serve_args(cli), Some(f)).unwrap();
    assert_eq!(c.listen.port(), 9200);
    assert_eq!(c.data_dir, PathBuf::from("/flag/dir"));
    // Not given as a flag: the file still applies.
    assert_eq!(c.max_in_flight, 5);
}

/// The only test that touches the process environment; the values are unique to it, and no
/// other test asserts that these variables are absent.
#[test]
fn env_beats_file_and_flag_beats_env() {
    let vars = [
        ("PANDABRIDGE_LISTEN", "127.0.0.1:47311"),
        ("PANDABRIDGE_DATA_DIR", "/env/data-dir-47311"),
    ];
    let saved: Vec<_> = vars.iter().map(|(k, _)| std::env::var_os(k)).collect();
    for (k, v) in vars {
        std::env::set_var(k, v);
    }
    let from_env = Cli::try_parse_from(["pandabridge", "serve"]);
    let from_flag = Cli::try_parse_from([
        "pandabridge",
        "serve",
        "--listen",
        "127.0.0.1:47312",
        "--data-dir",
        "/flag/data-dir-47312",
    ]);
    for ((k, _), old) in vars.iter().zip(saved) {
        match old {
            Some(v) => std::env::set_var(k, v),
            None => std::env::remove_var(k),
        }
    }

    let f = || file("listen = \"127.0.0.1:9100\"\ndata_dir = \"/srv/pb\"\n");
    let c = merge(serve_args(from_env.unwrap()), Some(f())).unwrap();
    assert_eq!(c.listen, "127.0.0.1:47311".parse().unwrap());
    assert_eq!(c.data_dir, PathBuf::from("/env/data-dir-47311"));

    let c = merge(serve_args(from_flag.unwrap()), Some(f())).unwrap();
    assert_eq!(c.listen, "127.0.0.1:47312".parse().unwrap());
    assert_eq!(c.data_dir, PathBuf::from("/flag/data-dir-47312"));
}

#[test]
fn all_serve_flags_parse() {
    let cli = Cli::try_parse_from([
        "pandabridge",
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data-dir",
        "/d",
        "--bigpanda-api-url",
        "https://eu-api.bigpanda.io/",
        "--admin-token",
        "tok",
        "--public-url",
        "https://pb.example.com/",
        "--max-body-bytes",
        "4096",
        "--idle-actor-timeout",
        "1m 30s",
        "--max-in-flight",
        "8",
        "--token-grace",
        "0s",
        "--log-format",
        "json",
    ])
    .unwrap();
    let c = merge(serve_args(cli), None).unwrap();
    assert_eq!(c.listen, "127.0.0.1:0".parse().unwrap());
    assert_eq!(c.data_dir, PathBuf::from("/d"));
    assert_eq!(c.bigpanda_api_url, "https://eu-api.bigpanda.io");
    assert_eq!(c.admin_token.as_deref(), Some("tok"));
    assert_eq!(c.public_url.as_deref(), Some("https://pb.example.com"));
    assert_eq!(c.max_body_bytes, 4096);
    assert_eq!(c.idle_actor_timeout, Duration::from_secs(90));
    assert_eq!(c.max_in_flight, 8);
    assert_eq!(c.token_grace, Duration::ZERO);
    assert_eq!(c.log_format, LogFormat::Json);
}

#[test]
fn unknown_config_key_is_named() {
    let err = parse_file(Path::new("/p.toml"), "listen = \"127.0.0.1:1\"\nfoo = 1\n").unwrap_err();
    assert!(matches!(err, ConfigError::UnknownKey { .. }));
    assert_eq!(err.to_string(), "config file /p.toml: unknown key \"foo\"");
}

#[test]
fn config_file_syntax_and_type_errors_are_one_line_with_line_number() {
    let err = parse_file(
        Path::new("/p.toml"),
        "listen = \"a\"\nmax_in_flight = \"many\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(err.starts_with("config file /p.toml: line 2: "), "{err}");
    assert!(!err.contains('\n'), "{err}");

    let err = parse_file(Path::new("/p.toml"), "listen = \n")
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("config file /p.toml: line 1: "), "{err}");
    assert!(!err.contains('\n'), "{err}");
}

#[test]
fn bad_listen_flag_is_one_line_error_naming_the_flag() {
    let args = ServeArgs {
        listen: Some("x".into()),
        ..ServeArgs::default()
    };
    let err = merge(args, None).unwrap_err().to_string();
    assert!(err.starts_with("invalid --listen \"x\": "), "{err}");
    assert!(err.contains("IP:PORT"), "{err}");
    assert!(!err.contains('\n'), "{err}");
}

#[test]
fn bad_listen_in_file_names_file_and_key() {
    let err = merge(args_with_config(), Some(file("listen = \"localhost\"")))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("config file /etc/pandabridge.toml: invalid listen \"localhost\": "),
        "{err}"
    );
}

#[test]
fn durations_parse_and_bad_ones_are_rejected() {
    let f = file("idle_actor_timeout = \"2h 5m\"\ntoken_grace = \"10s\"");
    let c = merge(args_with_config(), Some(f)).unwrap();
    assert_eq!(c.idle_actor_timeout, Duration::from_secs(2 * 3600 + 300));
    assert_eq!(c.token_grace, Duration::from_secs(10));

    let args = ServeArgs {
        token_grace: Some("5".into()),
        ..ServeArgs::default()
    };
    let err = merge(args, None).unwrap_err().to_string();
    assert!(err.starts_with("invalid --token-grace \"5\": "), "{err}");

    let args = ServeArgs {
        idle_actor_timeout: Some("0s".into()),
        ..ServeArgs::default()
    };
    let err = merge(args, None).unwrap_err().to_string();
    assert_eq!(
        err,
        "invalid --idle-actor-timeout \"0s\": must be greater than 0"
    );
}

#[test]
fn numbers_must_be_positive_integers() {
    for (args, want) in [
        (
            ServeArgs {
                max_in_flight: Some("0".into()),
                ..ServeArgs::default()
            },
            "invalid --max-in-flight \"0\": must be greater than 0",
        ),
        (
            ServeArgs {
                max_body_bytes: Some("1MB".into()),
                ..ServeArgs::default()
            },
            "invalid --max-body-bytes \"1MB\": invalid digit found in string; expected a \
             positive integer",
        ),
    ] {
        assert_eq!(merge(args, None).unwrap_err().to_string(), want);
    }
    let err = merge(args_with_config(), Some(file("max_body_bytes = 0")))
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "config file /etc/pandabridge.toml: invalid max_body_bytes \"0\": must be greater than 0"
    );
}

#[test]
fn urls_need_http_scheme_and_lose_trailing_slash() {
    let args = ServeArgs {
        bigpanda_api_url: Some("api.bigpanda.io".into()),
        ..ServeArgs::default()
    };
    let err = merge(args, None).unwrap_err().to_string();
    assert_eq!(
        err,
        "invalid --bigpanda-api-url \"api.bigpanda.io\": must start with http:// or https://"
    );
    let args = ServeArgs {
        public_url: Some("https://".into()),
        ..ServeArgs::default()
    };
    assert!(merge(args, None).is_err());
    let args = ServeArgs {
        public_url: Some("http://pb.internal:8080//".into()),
        ..ServeArgs::default()
    };
    let c = merge(args, None).unwrap();
    assert_eq!(c.public_url.as_deref(), Some("http://pb.internal:8080"));
}

#[test]
fn log_format_must_be_text_or_json() {
    let args = ServeArgs {
        log_format: Some("xml".into()),
        ..ServeArgs::default()
    };
    let err = merge(args, None).unwrap_err().to_string();
    assert_eq!(
        err,
        "invalid --log-format \"xml\": expected \"text\" or \"json\""
    );
}

#[test]
fn admin_token_is_never_echoed() {
    let args = ServeArgs {
        admin_token: Some("secret with space".into()),
        ..ServeArgs::default()
    };
    let err = merge(args.clone(), None).unwrap_err().to_string();
    assert_eq!(
        err,
        "invalid --admin-token: must be printable ASCII without spaces"
    );
    assert!(!format!("{args:?}").contains("secret"));

    let args = ServeArgs {
        admin_token: Some(String::new()),
        ..ServeArgs::default()
    };
    let err = merge(args, None).unwrap_err().to_string();
    assert_eq!(err, "invalid --admin-token: must not be empty");

    let c = merge(
        ServeArgs {
            admin_token: Some("hunter2".into()),
            ..ServeArgs::default()
        },
        None,
    )
    .unwrap();
    assert!(!format!("{c:?}").contains("hunter2"));
}

#[test]
fn callback_base_defaults_to_bound_address() {
    let mut c = merge(ServeArgs::default(), None).unwrap();
    let bound: SocketAddr = "127.0.0.1:43210".parse().unwrap();
    assert_eq!(c.callback_base(bound), "http://127.0.0.1:43210");
    assert_eq!(
        c.callback_base("[::1]:5".parse().unwrap()),
        "http://[::1]:5"
    );
    c.public_url = Some("https://pb.example.com/".into());
    assert_eq!(c.callback_base(bound), "https://pb.example.com");
}

#[test]
fn resolve_reads_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pb.toml");
    fs::write(&path, "data_dir = \"state\"\nmax_in_flight = 3\n").unwrap();
    let c = resolve(ServeArgs {
        config: Some(path.clone()),
        ..ServeArgs::default()
    })
    .unwrap();
    assert_eq!(c.max_in_flight, 3);
    // Relative to the file, not to the working directory.
    assert_eq!(c.data_dir, dir.path().join("state"));
    assert_eq!(c.config_file, Some(path));
}

#[test]
fn missing_config_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("absent.toml");
    let err = resolve(ServeArgs {
        config: Some(path.clone()),
        ..ServeArgs::default()
    })
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with(&format!("cannot read config file {}: ", path.display())),
        "{err}"
    );
}

#[test]
fn client_subcommands_parse_as_in_the_contract() {
    let cli = Cli::try_parse_from(["pandabridge", "source", "list", "--json"]).unwrap();
    let Command::Source(s) = cli.command else {
        panic!("expected source")
    };
    assert!(s.client.json);
    assert_eq!(s.client.url, "http://127.0.0.1:8080");
    assert!(matches!(s.command, SourceCommand::List));

    let cli = Cli::try_parse_from([
        "pandabridge",
        "alerts",
        "--url",
        "http://pb:1",
        "resolve",
        "01ALERT",
        "--comment",
        "fixed",
    ])
    .unwrap();
    let Command::Alerts(a) = cli.command else {
        panic!("expected alerts")
    };
    assert_eq!(a.client.url, "http://pb:1");
    match a.command {
        AlertsCommand::Resolve { id, comment } => {
            assert_eq!(id, "01ALERT");
            assert_eq!(comment.as_deref(), Some("fixed"));
        }
        _ => panic!("expected resolve"),
    }

    let cli = Cli::try_parse_from(["pandabridge", "alerts", "list", "--status", "open"]).unwrap();
    let Command::Alerts(a) = cli.command else {
        panic!("expected alerts")
    };
    assert!(matches!(a.command, AlertsCommand::List { status: Some(s) } if s == "open"));

    let cli = Cli::try_parse_from([
        "pandabridge",
        "integration",
        "connect",
        "--api-key",
        "bp-key",
        "--admin-token",
        "adm",
    ])
    .unwrap();
    let Command::Integration(i) = cli.command else {
        panic!("expected integration")
    };
    assert_eq!(i.client.admin_token.as_deref(), Some("adm"));
    match &i.command {
        IntegrationCommand::Connect(c) => assert_eq!(c.api_key, "bp-key"),
        IntegrationCommand::Status => panic!("expected connect"),
    }
    let shown = format!("{i:?}");
    assert!(
        !shown.contains("bp-key") && !shown.contains("adm\""),
        "{shown}"
    );

    for argv in [
        &["pandabridge", "integration", "status"][..],
        &["pandabridge", "source", "create", "prod"],
        &["pandabridge", "source", "rotate", "src1"],
        &["pandabridge", "alerts", "show", "a1"],
    ] {
        Cli::try_parse_from(argv).unwrap();
    }
    assert!(Cli::try_parse_from(["pandabridge", "integration", "connect"]).is_err());
}

#[test]
fn data_dir_is_created_with_mode_0700() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a/b/data");
    assert_eq!(prepare_data_dir(&dir).unwrap(), DataDirStatus::Created);
    assert!(dir.is_dir());
    assert_eq!(mode(&dir), 0o700);
    // Idempotent, and the write probe leaves nothing behind.
    assert_eq!(prepare_data_dir(&dir).unwrap(), DataDirStatus::Existing);
    assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
}

#[test]
fn existing_data_dir_of_ours_is_tightened_to_0700() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    assert_eq!(
        prepare_data_dir(&dir).unwrap(),
        DataDirStatus::PermissionsTightened {
            previous_mode: 0o755
        }
    );
    assert_eq!(mode(&dir), 0o700);
}

#[test]
fn data_dir_that_is_a_file_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("data");
    fs::write(&file, "x").unwrap();
    let err = prepare_data_dir(&file).unwrap_err();
    assert!(matches!(err, DataDirError::NotADirectory { .. }));
    assert_eq!(
        err.to_string(),
        format!("data dir {} is not a directory", file.display())
    );
}

#[test]
fn data_dir_below_a_file_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("plain");
    fs::write(&file, "x").unwrap();
    let dir = file.join("data");
    let err = prepare_data_dir(&dir).unwrap_err().to_string();
    assert!(
        err.starts_with(&format!("cannot access data dir {}: ", dir.display())),
        "{err}"
    );
    assert!(!err.contains('\n'));
}

#[test]
fn admin_token_is_generated_once_then_reused() {
    let tmp = tempfile::tempdir().unwrap();
    let first = load_or_create_admin_token(tmp.path(), None).unwrap();
    let path = tmp.path().join(ADMIN_TOKEN_FILE);
    assert!(first.was_generated());
    assert_eq!(first.source(), &AdminTokenSource::Generated(path.clone()));
    assert!(first.expose().starts_with("pbadm_"));
    assert_eq!(first.expose().len(), "pbadm_".len() + 64);
    assert_eq!(mode(&path), 0o600);
    assert_eq!(
        fs::read_to_string(&path).unwrap(),
        format!("{}\n", first.expose())
    );
    assert!(!format!("{first:?}").contains(first.expose()));

    let second = load_or_create_admin_token(tmp.path(), None).unwrap();
    assert!(!second.was_generated());
    assert_eq!(second.source(), &AdminTokenSource::File(path));
    assert_eq!(second.expose(), first.expose());
    // Only the token file: no temp files left behind.
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 1);

    let other = tempfile::tempdir().unwrap();
    let third = load_or_create_admin_token(other.path(), None).unwrap();
    assert_ne!(third.expose(), first.expose());
}

#[test]
fn admin_token_file_is_trimmed_and_tightened() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join(ADMIN_TOKEN_FILE);
    fs::write(&path, "  handmade-token\n").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let token = load_or_create_admin_token(tmp.path(), None).unwrap();
    assert_eq!(token.expose(), "handmade-token");
    assert_eq!(mode(&path), 0o600);
}

#[test]
fn empty_admin_token_file_is_an_error_not_a_new_token() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join(ADMIN_TOKEN_FILE);
    fs::write(&path, "\n").unwrap();
    let err = load_or_create_admin_token(tmp.path(), None)
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        format!(
            "admin token file {}: must not be empty; fix it or delete it to generate a new token",
            path.display()
        )
    );
}

#[test]
fn explicit_admin_token_wins_and_is_not_written() {
    let tmp = tempfile::tempdir().unwrap();
    fs::write(tmp.path().join(ADMIN_TOKEN_FILE), "from-file\n").unwrap();
    let token = load_or_create_admin_token(tmp.path(), Some("explicit")).unwrap();
    assert_eq!(token.expose(), "explicit");
    assert_eq!(token.source(), &AdminTokenSource::Explicit);

    let empty = tempfile::tempdir().unwrap();
    load_or_create_admin_token(empty.path(), Some("explicit")).unwrap();
    assert_eq!(fs::read_dir(empty.path()).unwrap().count(), 0);
}

#[test]
fn empty_explicit_admin_token_is_rejected() {
    let tmp = tempfile::tempdir().unwrap();
    let err = load_or_create_admin_token(tmp.path(), Some(""))
        .unwrap_err()
        .to_string();
    assert_eq!(err, "invalid admin token: must not be empty");
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
fn admin_token_matches_only_itself() {
    let tmp = tempfile::tempdir().unwrap();
    let token = load_or_create_admin_token(tmp.path(), Some("abc123")).unwrap();
    assert!(token.matches("abc123"));
    assert!(!token.matches("abc124"));
    assert!(!token.matches("abc12"));
    assert!(!token.matches(""));
}

#[test]
fn listen_addr_file_holds_the_bound_address() {
    let tmp = tempfile::tempdir().unwrap();
    let addr: SocketAddr = "127.0.0.1:41234".parse().unwrap();
    write_listen_addr(tmp.path(), addr).unwrap();
    let path = tmp.path().join(LISTEN_ADDR_FILE);
    assert_eq!(fs::read_to_string(&path).unwrap(), "127.0.0.1:41234\n");
    assert_eq!(mode(&path), 0o600);

    write_listen_addr(tmp.path(), "[::1]:7".parse().unwrap()).unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), "[::1]:7\n");

    clear_listen_addr(tmp.path()).unwrap();
    assert!(!path.exists());
    clear_listen_addr(tmp.path()).unwrap();
}

#[test]
fn private_file_replaces_atomically_with_mode_0600() {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("secret");
    fs::write(&path, "old").unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    write_private_file(&path, b"new").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"new");
    // A new inode, so the old file's wider mode does not carry over.
    assert_eq!(mode(&path), 0o600);
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 1);
}

#[test]
fn private_file_in_missing_dir_fails_without_leftovers() {
    let tmp = tempfile::tempdir().unwrap();
    let err = write_private_file(&tmp.path().join("missing/secret"), b"x").unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 0);
}

#[test]
fn init_tracing_twice_does_not_panic() {
    init_tracing(LogFormat::Json);
    init_tracing(LogFormat::Text);
}
