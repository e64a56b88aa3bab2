//! Command line, configuration file and data directory: everything `main` needs to know before
//! the daemon starts serving.
//!
//! Settings come from four layers, highest first: command-line flag, environment variable
//! (`PANDABRIDGE_*`), the TOML file named by `--config`, built-in default (CONTRACT §1).
//! clap handles flag-over-env; [`resolve`] merges the result with the file and the defaults
//! and validates every value, so a bad setting is reported once, on one line, naming where it
//! came from. Nothing here starts threads or touches the network.
//!
//! The data-dir helpers ([`prepare_data_dir`], [`load_or_create_admin_token`],
//! [`write_listen_addr`], [`write_private_file`]) live in `data_dir.rs`; logging setup in
//! `logging.rs`.

mod data_dir;
mod logging;

use std::fmt;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use serde::Deserialize;

pub use data_dir::{
    clear_listen_addr, load_or_create_admin_token, lock_data_dir, prepare_data_dir,
    write_listen_addr, write_private_file, AdminToken, AdminTokenError, AdminTokenSource,
    DataDirError, DataDirLock, DataDirStatus, ADMIN_TOKEN_FILE, LISTEN_ADDR_FILE, LOCK_FILE,
};
pub use logging::init_tracing;

/// Default for `--listen` (CONTRACT §1): 127.0.0.1:8080.
pub const DEFAULT_LISTEN: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, 1), 8080));
/// Default for `--data-dir` (CONTRACT §1), relative to the working directory.
pub const DEFAULT_DATA_DIR: &str = "./pandabridge-data";
/// Default for `--bigpanda-api-url` (CONTRACT §1).
pub const DEFAULT_BIGPANDA_API_URL: &str = "https://api.bigpanda.io";
/// Default for `--max-body-bytes`: 1 MiB (CONTRACT §2).
pub const DEFAULT_MAX_BODY_BYTES: u64 = 1024 * 1024;
/// Default for `--idle-actor-timeout`.
pub const DEFAULT_IDLE_ACTOR_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// Default for `--max-in-flight`.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 1024;
/// Default for `--header-read-timeout`: also how long an idle keep-alive connection is kept.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(15);
/// Default for `--body-read-timeout`.
pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
/// Default for `--max-connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;
/// Default for `--store-cache-mb`: see docs/performance.md for the trade between RSS and speed.
pub const DEFAULT_STORE_CACHE_MB: u64 = 64;
/// Default for `--store-fold-after-mb`: see docs/operations.md for the trade between a start
/// after a crash and the reads that wait for a fold.
pub const DEFAULT_STORE_FOLD_AFTER_MB: u64 = crate::store::DEFAULT_FOLD_AFTER_BYTES / (1024 * 1024);
/// Default for `--token-grace`.
pub const DEFAULT_TOKEN_GRACE: Duration = Duration::from_secs(60 * 60);
/// Default for the admin CLI's `--url` (CONTRACT §5).
pub const DEFAULT_ADMIN_URL: &str = "http://127.0.0.1:8080";

/// The `pandabridge` command line.
#[derive(Debug, Parser)]
#[command(name = "pandabridge", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level subcommands. Only `serve` is resolved here; the others talk to a running daemon
/// over the admin API (CONTRACT §5) and are implemented by the CLI client.
// Parsed once per process; boxing the serve flags would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon.
    Serve(ServeArgs),
    /// Manage the BigPanda integration (the API key used to close incidents).
    Integration(IntegrationArgs),
    /// Manage alert sources (webhook endpoints and their tokens).
    Source(SourceArgs),
    /// Inspect and resolve alerts.
    Alerts(AlertsArgs),
    /// Rewrite a stopped daemon's store so that its pages are packed (after upgrading from a
    /// version before 2026-11-27: less memory at many stored incidents). Offline: stop the
    /// daemon first.
    Repack(RepackArgs),
}

/// `pandabridge repack` flags: where the store is, found as `serve` finds it.
#[derive(Debug, Clone, Default, Args)]
pub struct RepackArgs {
    /// The daemon's data directory. [default: ./pandabridge-data]
    #[arg(long, env = "PANDABRIDGE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// The daemon's TOML config file, for its `data_dir`.
    #[arg(long, env = "PANDABRIDGE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

impl RepackArgs {
    /// The data dir and store settings, resolved as `serve` resolves them.
    pub fn resolve(self) -> Result<ServeConfig, ConfigError> {
        resolve(ServeArgs {
            data_dir: self.data_dir,
            config: self.config,
            ..ServeArgs::default()
        })
    }
}

/// `pandabridge serve` flags, exactly as given on the command line or in the environment.
///
/// Every field is optional and unparsed (strings) on purpose: clap must not fill in defaults,
/// or the config file could never override them, and parsing in [`resolve`] gives the same
/// one-line error whether a value came from a flag, the environment or the file.
#[derive(Clone, Default, Args)]
pub struct ServeArgs {
    /// Address to listen on, IP:PORT; port 0 picks a free port (the bound address is written
    /// to DATA_DIR/listen-addr). [default: 127.0.0.1:8080]
    #[arg(long, env = "PANDABRIDGE_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,

    /// Directory for the database and generated secrets; created with mode 0700.
    /// [default: ./pandabridge-data]
    #[arg(long, env = "PANDABRIDGE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// BigPanda REST API base URL (EU: https://eu-api.bigpanda.io).
    /// [default: https://api.bigpanda.io]
    #[arg(long, env = "PANDABRIDGE_BIGPANDA_API_URL", value_name = "URL")]
    pub bigpanda_api_url: Option<String>,

    /// Bearer token for the admin API. [default: generated on first start and stored in
    /// DATA_DIR/admin-token]
    #[arg(
        long,
        env = "PANDABRIDGE_ADMIN_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,

    /// Base URL BigPanda uses to reach this daemon, used to build callback URLs; set it when
    /// listening on 0.0.0.0 or behind a proxy. [default: http://<bound listen address>]
    #[arg(long, env = "PANDABRIDGE_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,

    /// TOML file with the same settings (keys named like the flags, with underscores).
    #[arg(long, env = "PANDABRIDGE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Largest accepted webhook body in bytes; larger bodies get 413. [default: 1048576]
    #[arg(long, env = "PANDABRIDGE_MAX_BODY_BYTES", value_name = "BYTES")]
    pub max_body_bytes: Option<String>,

    /// How long an incident actor may sit idle before it is stopped (e.g. 90s, 5m).
    /// [default: 5m]
    #[arg(long, env = "PANDABRIDGE_IDLE_ACTOR_TIMEOUT", value_name = "DURATION")]
    pub idle_actor_timeout: Option<String>,

    /// Webhooks processed at once; beyond this the daemon answers 503 with Retry-After.
    /// [default: 1024]
    #[arg(long, env = "PANDABRIDGE_MAX_IN_FLIGHT", value_name = "N")]
    pub max_in_flight: Option<String>,

    /// How long a source's previous token keeps working after `source rotate` (0s = at once).
    /// [default: 1h]
    #[arg(long, env = "PANDABRIDGE_TOKEN_GRACE", value_name = "DURATION")]
    pub token_grace: Option<String>,

    /// How long a client may take to send a request's headers, and how long an idle
    /// keep-alive connection stays open. [default: 15s]
    #[arg(long, env = "PANDABRIDGE_HEADER_READ_TIMEOUT", value_name = "DURATION")]
    pub header_read_timeout: Option<String>,

    /// How long a client may take to send a request's body; slower gets 408. [default: 30s]
    #[arg(long, env = "PANDABRIDGE_BODY_READ_TIMEOUT", value_name = "DURATION")]
    pub body_read_timeout: Option<String>,

    /// Open client connections at most; beyond it new connections wait in the kernel's
    /// accept queue. [default: 4096]
    #[arg(long, env = "PANDABRIDGE_MAX_CONNECTIONS", value_name = "N")]
    pub max_connections: Option<String>,

    /// Memory for the store's page cache, in MiB: more keeps more alerts and history in
    /// memory (faster webhooks under load), less lowers the daemon's RSS. [default: 64]
    #[arg(long, env = "PANDABRIDGE_STORE_CACHE_MB", value_name = "MIB")]
    pub store_cache_mb: Option<String>,

    /// Once this many MiB of writes reached the store since it was last opened, it folds its
    /// log into a snapshot at the next second without writes (or after four times as much
    /// under steady traffic); reads wait for it, ~0.5 s at a million incidents. Bounds how
    /// long a start after a crash takes. [default: 32]
    #[arg(long, env = "PANDABRIDGE_STORE_FOLD_AFTER_MB", value_name = "MIB")]
    pub store_fold_after_mb: Option<String>,

    /// Incident actors alive at once at most (each holds its alert in memory, ~12-15 KB); past
    /// it the least recently used tenth stop early and reload from the store on their next
    /// event. Lower it to bound RSS. [default: 10000]
    #[arg(long, env = "PANDABRIDGE_MAX_LIVE_ACTORS", value_name = "N")]
    pub max_live_actors: Option<String>,

    /// Log format on stderr: text or json. Verbosity comes from RUST_LOG. [default: text]
    #[arg(long, env = "PANDABRIDGE_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<String>,
}

// Hand-written so that printing the arguments (e.g. `?cli` in a log line) never shows the
// admin token.
impl fmt::Debug for ServeArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServeArgs")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("bigpanda_api_url", &self.bigpanda_api_url)
            .field("admin_token", &redacted(self.admin_token.as_deref()))
            .field("public_url", &self.public_url)
            .field("config", &self.config)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("idle_actor_timeout", &self.idle_actor_timeout)
            .field("max_in_flight", &self.max_in_flight)
            .field("token_grace", &self.token_grace)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("body_read_timeout", &self.body_read_timeout)
            .field("max_connections", &self.max_connections)
            .field("store_cache_mb", &self.store_cache_mb)
            .field("store_fold_after_mb", &self.store_fold_after_mb)
            .field("max_live_actors", &self.max_live_actors)
            .field("log_format", &self.log_format)
            .finish()
    }
}

/// Options shared by the admin-API client subcommands (CONTRACT §5). `global` lets them
/// appear before or after the nested subcommand (`source --json list`, `source list --json`).
#[derive(Clone, Args)]
pub struct ClientArgs {
    /// Base URL of the running daemon.
    #[arg(long, global = true, value_name = "URL", default_value = DEFAULT_ADMIN_URL)]
    pub url: String,

    /// Admin token (the value). [default: the contents of ./pandabridge-data/admin-token]
    #[arg(
        long,
        global = true,
        env = "PANDABRIDGE_ADMIN_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,

    /// Print JSON instead of a table, for scripts.
    #[arg(long, global = true)]
    pub json: bool,
}

impl fmt::Debug for ClientArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientArgs")
            .field("url", &self.url)
            .field("admin_token", &redacted(self.admin_token.as_deref()))
            .field("json", &self.json)
            .finish()
    }
}

/// `pandabridge integration ...`
#[derive(Debug, Args)]
pub struct IntegrationArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: IntegrationCommand,
}

#[derive(Debug, Subcommand)]
pub enum IntegrationCommand {
    /// Store the BigPanda API key (validated against BigPanda first).
    Connect(ConnectArgs),
    /// Show whether the integration is connected and healthy.
    Status,
}

/// `pandabridge integration connect --api-key K`
#[derive(Args)]
pub struct ConnectArgs {
    /// BigPanda API key (bearer token for the BigPanda REST API).
    #[arg(long, value_name = "K")]
    pub api_key: String,
}

impl fmt::Debug for ConnectArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectArgs")
            .field("api_key", &redacted(Some(&self.api_key)))
            .finish()
    }
}

/// `pandabridge source ...`
#[derive(Debug, Args)]
pub struct SourceArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: SourceCommand,
}

#[derive(Debug, Subcommand)]
pub enum SourceCommand {
    /// Create a source; prints its webhook URL and token.
    Create {
        /// Human-readable name.
        name: String,
    },
    /// List sources.
    List,
    /// Issue a new token; the old one keeps working for the token grace period.
    Rotate {
        /// Source id.
        id: String,
    },
}

/// `pandabridge alerts ...`
#[derive(Debug, Args)]
pub struct AlertsArgs {
    #[command(flatten)]
    pub client: ClientArgs,
    #[command(subcommand)]
    pub command: AlertsCommand,
}

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// List alerts.
    List {
        /// Only alerts in this status.
        #[arg(long, value_name = "S")]
        status: Option<String>,
    },
    /// Show one alert.
    Show {
        /// Alert id.
        id: String,
    },
    /// Resolve an alert here and close the incident in BigPanda.
    Resolve {
        /// Alert id.
        id: String,
        /// Comment sent to BigPanda with the close.
        #[arg(long, value_name = "C")]
        comment: Option<String>,
    },
}

/// Log output format.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err("expected \"text\" or \"json\"".to_owned()),
        }
    }
}

/// The config file (`--config`): the `serve` settings as TOML keys, all optional.
///
/// Durations are strings in humantime syntax (`"5m"`, `"90s"`); numbers are TOML integers.
/// A relative `data_dir` is taken relative to the file's own directory, so a config file
/// means the same thing whatever directory the daemon is started from.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeFile {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub bigpanda_api_url: Option<String>,
    pub admin_token: Option<String>,
    pub public_url: Option<String>,
    pub max_body_bytes: Option<u64>,
    pub idle_actor_timeout: Option<String>,
    pub max_in_flight: Option<usize>,
    pub token_grace: Option<String>,
    pub header_read_timeout: Option<String>,
    pub body_read_timeout: Option<String>,
    pub max_connections: Option<usize>,
    pub store_cache_mb: Option<u64>,
    pub store_fold_after_mb: Option<u64>,
    pub max_live_actors: Option<usize>,
    pub log_format: Option<String>,
}

/// Keys [`ServeFile`] accepts. Checked before deserializing so an unknown key gets a short
/// message instead of serde's list of every expected field.
const FILE_KEYS: &[&str] = &[
    "listen",
    "data_dir",
    "bigpanda_api_url",
    "admin_token",
    "public_url",
    "max_body_bytes",
    "idle_actor_timeout",
    "max_in_flight",
    "token_grace",
    "header_read_timeout",
    "body_read_timeout",
    "max_connections",
    "store_cache_mb",
    "store_fold_after_mb",
    "max_live_actors",
    "log_format",
];

impl fmt::Debug for ServeFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServeFile")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("bigpanda_api_url", &self.bigpanda_api_url)
            .field("admin_token", &redacted(self.admin_token.as_deref()))
            .field("public_url", &self.public_url)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("idle_actor_timeout", &self.idle_actor_timeout)
            .field("max_in_flight", &self.max_in_flight)
            .field("token_grace", &self.token_grace)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("body_read_timeout", &self.body_read_timeout)
            .field("max_connections", &self.max_connections)
            .field("store_cache_mb", &self.store_cache_mb)
            .field("store_fold_after_mb", &self.store_fold_after_mb)
            .field("max_live_actors", &self.max_live_actors)
            .field("log_format", &self.log_format)
            .finish()
    }
}

/// Effective `serve` settings after merging flags, environment, file and defaults.
#[derive(Clone, PartialEq, Eq)]
pub struct ServeConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    /// No trailing slash, so callers can append `/resolve-incidents` style paths.
    pub bigpanda_api_url: String,
    /// `None`: use (or generate) `DATA_DIR/admin-token`.
    pub admin_token: Option<String>,
    /// No trailing slash. `None`: derive from the bound address, see [`Self::callback_base`].
    pub public_url: Option<String>,
    pub max_body_bytes: u64,
    pub idle_actor_timeout: Duration,
    pub max_in_flight: usize,
    pub token_grace: Duration,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub max_connections: usize,
    /// The store's page cache, in bytes.
    pub store_cache_bytes: u64,
    /// How much the store takes in before it folds its log while running, in bytes.
    pub store_fold_after_bytes: u64,
    pub max_live_actors: usize,
    pub log_format: LogFormat,
    /// The file the settings were merged with, for the startup log line.
    pub config_file: Option<PathBuf>,
}

impl ServeConfig {
    /// Base of the callback URLs handed out to BigPanda: `--public-url` if set, otherwise
    /// `http://<bound>`. `bound` is the address actually bound, which differs from `listen`
    /// when the port was 0. Never ends with a slash.
    pub fn callback_base(&self, bound: SocketAddr) -> String {
        match &self.public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{bound}"),
        }
    }
}

impl fmt::Debug for ServeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServeConfig")
            .field("listen", &self.listen)
            .field("data_dir", &self.data_dir)
            .field("bigpanda_api_url", &self.bigpanda_api_url)
            .field("admin_token", &redacted(self.admin_token.as_deref()))
            .field("public_url", &self.public_url)
            .field("max_body_bytes", &self.max_body_bytes)
            .field("idle_actor_timeout", &self.idle_actor_timeout)
            .field("max_in_flight", &self.max_in_flight)
            .field("token_grace", &self.token_grace)
            .field("header_read_timeout", &self.header_read_timeout)
            .field("body_read_timeout", &self.body_read_timeout)
            .field("max_connections", &self.max_connections)
            .field("store_cache_bytes", &self.store_cache_bytes)
            .field("store_fold_after_bytes", &self.store_fold_after_bytes)
            .field("max_live_actors", &self.max_live_actors)
            .field("log_format", &self.log_format)
            .field("config_file", &self.config_file)
            .finish()
    }
}

/// Why the `serve` settings cannot be used. Each renders as one line for the exit message.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    ReadFile {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("config file {}: {message}", path.display())]
    ParseFile { path: PathBuf, message: String },
    #[error("config file {}: unknown key \"{key}\"", path.display())]
    UnknownKey { path: PathBuf, key: String },
    /// A flag or environment value is invalid. `value` is already quoted, or empty for
    /// secrets, which are never echoed.
    #[error("invalid --{flag}{value}: {reason}")]
    InvalidArg {
        flag: &'static str,
        value: String,
        reason: String,
    },
    #[error("config file {}: invalid {key}{value}: {reason}", path.display())]
    InvalidFileValue {
        path: PathBuf,
        key: &'static str,
        value: String,
        reason: String,
    },
}

/// Reads the file named by `args.config` (if any) and merges it with `args` and the defaults.
pub fn resolve(args: ServeArgs) -> Result<ServeConfig, ConfigError> {
    let file = match &args.config {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::ReadFile {
                path: path.clone(),
                source,
            })?;
            Some(parse_file(path, &text)?)
        }
        None => None,
    };
    merge(args, file)
}

/// Parses config file contents. `path` is only used in error messages and to anchor a
/// relative `data_dir`.
pub fn parse_file(path: &Path, text: &str) -> Result<ServeFile, ConfigError> {
    let parse_error = |e: toml::de::Error| ConfigError::ParseFile {
        path: path.to_owned(),
        message: one_line_toml_error(&e, text),
    };
    let table: toml::Table = toml::from_str(text).map_err(parse_error)?;
    if let Some(key) = table.keys().find(|k| !FILE_KEYS.contains(&k.as_str())) {
        return Err(ConfigError::UnknownKey {
            path: path.to_owned(),
            key: key.clone(),
        });
    }
    // Deserializing the text again (rather than the table) keeps toml's line information for
    // type errors such as `max_in_flight = "many"`.
    let mut file: ServeFile = toml::from_str(text).map_err(parse_error)?;
    if let Some(dir) = &file.data_dir {
        if dir.is_relative() {
            let base = path.parent().unwrap_or(Path::new(""));
            file.data_dir = Some(base.join(dir));
        }
    }
    Ok(file)
}

/// Merges already-read layers: `args` (flags over env, done by clap) over `file` over the
/// defaults, validating each chosen value. Does no IO, so tests can drive it directly.
pub fn merge(args: ServeArgs, file: Option<ServeFile>) -> Result<ServeConfig, ConfigError> {
    let path = args.config.clone().unwrap_or_default();
    let file = file.unwrap_or_default();
    let layers = Layers { path: &path };

    let listen = layers.pick("listen", args.listen, file.listen, DEFAULT_LISTEN, |s| {
        s.parse::<SocketAddr>()
            .map_err(|e| format!("{e}; expected IP:PORT such as 127.0.0.1:8080"))
    })?;
    // Paths cannot fail to parse; an unusable directory is reported by `prepare_data_dir`.
    let data_dir = args
        .data_dir
        .or(file.data_dir)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR));
    let bigpanda_api_url = layers.pick(
        "bigpanda-api-url",
        args.bigpanda_api_url,
        file.bigpanda_api_url,
        DEFAULT_BIGPANDA_API_URL.to_owned(),
        parse_url,
    )?;
    let public_url = layers.pick_optional(
        "public-url",
        args.public_url,
        file.public_url,
        parse_url,
        true,
    )?;
    let admin_token = layers.pick_optional(
        "admin-token",
        args.admin_token,
        file.admin_token,
        |s| data_dir::check_token(s).map(str::to_owned),
        false,
    )?;
    let max_body_bytes = layers.pick(
        "max-body-bytes",
        args.max_body_bytes,
        file.max_body_bytes.map(|n| n.to_string()),
        DEFAULT_MAX_BODY_BYTES,
        positive_int::<u64>,
    )?;
    let idle_actor_timeout = layers.pick(
        "idle-actor-timeout",
        args.idle_actor_timeout,
        file.idle_actor_timeout,
        DEFAULT_IDLE_ACTOR_TIMEOUT,
        |s| {
            let d = parse_duration(s)?;
            // A zero timeout would stop every actor between two events of the same incident.
            if d.is_zero() {
                return Err("must be greater than 0".to_owned());
            }
            Ok(d)
        },
    )?;
    let max_in_flight = layers.pick(
        "max-in-flight",
        args.max_in_flight,
        file.max_in_flight.map(|n| n.to_string()),
        DEFAULT_MAX_IN_FLIGHT,
        positive_int::<usize>,
    )?;
    let token_grace = layers.pick(
        "token-grace",
        args.token_grace,
        file.token_grace,
        DEFAULT_TOKEN_GRACE,
        parse_duration,
    )?;
    let nonzero_duration = |s: &str| {
        let d = parse_duration(s)?;
        if d.is_zero() {
            return Err("must be greater than 0".to_owned());
        }
        Ok(d)
    };
    let header_read_timeout = layers.pick(
        "header-read-timeout",
        args.header_read_timeout,
        file.header_read_timeout,
        DEFAULT_HEADER_READ_TIMEOUT,
        nonzero_duration,
    )?;
    let body_read_timeout = layers.pick(
        "body-read-timeout",
        args.body_read_timeout,
        file.body_read_timeout,
        DEFAULT_BODY_READ_TIMEOUT,
        nonzero_duration,
    )?;
    let max_connections = layers.pick(
        "max-connections",
        args.max_connections,
        file.max_connections.map(|n| n.to_string()),
        DEFAULT_MAX_CONNECTIONS,
        positive_int::<usize>,
    )?;
    let store_cache_mb = layers.pick(
        "store-cache-mb",
        args.store_cache_mb,
        file.store_cache_mb.map(|n| n.to_string()),
        DEFAULT_STORE_CACHE_MB,
        positive_int::<u64>,
    )?;
    let store_fold_after_mb = layers.pick(
        "store-fold-after-mb",
        args.store_fold_after_mb,
        file.store_fold_after_mb.map(|n| n.to_string()),
        DEFAULT_STORE_FOLD_AFTER_MB,
        positive_int::<u64>,
    )?;
    let max_live_actors = layers.pick(
        "max-live-actors",
        args.max_live_actors,
        file.max_live_actors.map(|n| n.to_string()),
        crate::engine::DEFAULT_MAX_LIVE_ACTORS,
        positive_int::<usize>,
    )?;
    let log_format = layers.pick(
        "log-format",
        args.log_format,
        file.log_format,
        LogFormat::Text,
        |s| s.parse::<LogFormat>(),
    )?;

    Ok(ServeConfig {
        listen,
        data_dir,
        bigpanda_api_url,
        admin_token,
        public_url,
        max_body_bytes,
        idle_actor_timeout,
        max_in_flight,
        token_grace,
        header_read_timeout,
        body_read_timeout,
        max_connections,
        store_cache_bytes: store_cache_mb.saturating_mul(1024 * 1024),
        store_fold_after_bytes: store_fold_after_mb.saturating_mul(1024 * 1024),
        max_live_actors,
        log_format,
        config_file: args.config,
    })
}

/// Picks a setting from the highest layer that has it and parses it, so the error can say
/// which layer held the bad value.
struct Layers<'a> {
    path: &'a Path,
}

impl Layers<'_> {
    fn pick<T>(
        &self,
        flag: &'static str,
        arg: Option<String>,
        file: Option<String>,
        default: T,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        Ok(self
            .pick_optional(flag, arg, file, parse, true)?
            .unwrap_or(default))
    }

    fn pick_optional<T>(
        &self,
        flag: &'static str,
        arg: Option<String>,
        file: Option<String>,
        parse: impl Fn(&str) -> Result<T, String>,
        echo: bool,
    ) -> Result<Option<T>, ConfigError> {
        let shown = |v: &str| {
            if echo {
                format!(" {v:?}")
            } else {
                String::new()
            }
        };
        if let Some(v) = arg {
            return parse(&v)
                .map(Some)
                .map_err(|reason| ConfigError::InvalidArg {
                    flag,
                    value: shown(&v),
                    reason,
                });
        }
        if let Some(v) = file {
            return parse(&v)
                .map(Some)
                .map_err(|reason| ConfigError::InvalidFileValue {
                    path: self.path.to_owned(),
                    key: file_key(flag),
                    value: shown(&v),
                    reason,
                });
        }
        Ok(None)
    }
}

/// The file key for a flag name (`max-body-bytes` → `max_body_bytes`).
fn file_key(flag: &'static str) -> &'static str {
    FILE_KEYS
        .iter()
        .copied()
        .find(|k| k.len() == flag.len() && k.bytes().zip(flag.bytes()).all(same_key_byte))
        .unwrap_or(flag)
}

fn same_key_byte((k, f): (u8, u8)) -> bool {
    k == f || (k == b'_' && f == b'-')
}

/// Minimal URL check: scheme and something after it. A full parse would need a dependency,
/// and a wrong host shows up soon enough in the first BigPanda call.
fn parse_url(s: &str) -> Result<String, String> {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .ok_or("must start with http:// or https://")?;
    if rest.trim_end_matches('/').is_empty() {
        return Err("has no host".to_owned());
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("must not contain spaces or control characters".to_owned());
    }
    Ok(s.trim_end_matches('/').to_owned())
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{e}; expected a duration such as 30s, 5m or 1h"))
}

fn positive_int<T>(s: &str) -> Result<T, String>
where
    T: std::str::FromStr<Err = std::num::ParseIntError> + Default + PartialEq,
{
    let n: T = s
        .parse()
        .map_err(|e| format!("{e}; expected a positive integer"))?;
    if n == T::default() {
        return Err("must be greater than 0".to_owned());
    }
    Ok(n)
}

/// toml's `Display` spans several lines with a source excerpt; the exit message must be one.
fn one_line_toml_error(e: &toml::de::Error, text: &str) -> String {
    let message = e.message().trim().replace('\n', " ");
    match e.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            format!("line {line}: {message}")
        }
        None => message,
    }
}

fn redacted(secret: Option<&str>) -> Option<&'static str> {
    secret.map(|_| "<redacted>")
}

#[cfg(test)]
mod tests;
