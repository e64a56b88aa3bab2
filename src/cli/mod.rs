//! The admin CLI (CONTRACT §5): `integration`, `source` and `alerts` subcommands that talk to
//! a running daemon over its admin API (CONTRACT §3). It owns no state and never opens the
//! store: everything goes through HTTP, so it works the same against a remote daemon.
//!
//! - `client.rs`: the authenticated JSON request and the mapping of failures to one line.
//! - `render.rs`: replies → aligned tables; pure, so layouts are unit-tested.
//!
//! Output: tables on stdout by default; `--json` prints the daemon's reply pretty-printed
//! (serde_json's sorted key order), for scripts. `alerts list --json` follows `next_cursor`
//! like the table does and prints the same `{"alerts", "next_cursor"}` shape with the pages
//! joined; `next_cursor` is non-null only when the CLI stopped at its cap.
//!
//! Exit codes: 0 success; 1 the daemon refused (`pandabridge: <code>: <message>`), could not be
//! reached, or answered something unexpected; 2 a usage problem (clap's own errors, a bad
//! `--url`, no admin token to be found).
//!
//! The BigPanda API key given to `integration connect` is sent once, in the request body, and
//! never printed: the confirmation echoes the daemon's `key_hint`.

mod client;
mod render;

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use reqwest::Method;
use serde_json::{json, Value};

use crate::config::{
    AlertsCommand, ClientArgs, Command, IntegrationCommand, SourceCommand, ADMIN_TOKEN_FILE,
    DEFAULT_DATA_DIR,
};
use client::AdminClient;

/// Alerts fetched per request by `alerts list`.
const PAGE_SIZE: usize = 200;
/// `alerts list` stops following `next_cursor` after this many alerts; a terminal table
/// longer than this is not read, and the daemon should not be walked end to end by accident.
const MAX_LISTED_ALERTS: usize = 1000;
/// ... or after this many pages. A daemon's page may be short, even empty, when the walk behind
/// it ran out (docs/api.md); 50 such pages pass at least a million firing alerts.
const MAX_PAGES: usize = 50;

/// Why a subcommand failed; `Display` is the line printed after `pandabridge: `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// The command line cannot work as given (exit 2, like clap's own usage errors).
    #[error("{0}")]
    Usage(String),
    /// The daemon (or whatever answered at `--url`) returned a non-2xx status.
    #[error("{code}: {message}")]
    Api { code: String, message: String },
    /// Nothing accepted the connection at `--url`.
    #[error("cannot reach pandabridge at {url}: {detail} (is the daemon running? see --url)")]
    Unreachable { url: String, detail: String },
    /// Anything else: timeouts, a reply that is not JSON, IO.
    #[error("{0}")]
    Other(String),
}

impl Failure {
    pub fn exit_code(&self) -> ExitCode {
        match self {
            Failure::Usage(_) => ExitCode::from(2),
            _ => ExitCode::FAILURE,
        }
    }
}

/// Runs one client subcommand to completion and returns the process exit code.
pub fn run(command: Command) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pandabridge: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(execute(command)) {
        Ok(text) => {
            // A closed pipe (`pandabridge alerts list | head`) is not a failure worth a panic,
            // which is what `print!` would do.
            let mut out = io::stdout().lock();
            let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
            ExitCode::SUCCESS
        }
        Err(failure) => {
            eprintln!("pandabridge: {failure}");
            failure.exit_code()
        }
    }
}

/// Performs the subcommand and returns what to print on stdout.
async fn execute(command: Command) -> Result<String, Failure> {
    match command {
        Command::Serve(_) => Err(Failure::Usage(
            "`serve` runs the daemon; it is not an admin client command".to_owned(),
        )),
        Command::Repack(_) => Err(Failure::Usage(
            "`repack` rewrites a stopped daemon's store; it is not an admin client command"
                .to_owned(),
        )),
        Command::Integration(args) => {
            let client = connect(&args.client)?;
            let path = ["integrations", "bigpanda"];
            match args.command {
                IntegrationCommand::Connect(c) => {
                    let body = json!({ "api_key": c.api_key });
                    let reply = client.call(Method::PUT, &path, &[], Some(&body)).await?;
                    output(&args.client, &reply, render::integration_connected)
                }
                IntegrationCommand::Status => {
                    let reply = client.call(Method::GET, &path, &[], None).await?;
                    output(&args.client, &reply, render::integration_status)
                }
            }
        }
        Command::Source(args) => {
            let client = connect(&args.client)?;
            match args.command {
                SourceCommand::Create { name } => {
                    let body = json!({ "name": name });
                    let reply = client
                        .call(Method::POST, &["alert-sources"], &[], Some(&body))
                        .await?;
                    output(&args.client, &reply, render::source_created)
                }
                SourceCommand::List => {
                    let reply = client
                        .call(Method::GET, &["alert-sources"], &[], None)
                        .await?;
                    output(&args.client, &reply, render::source_list)
                }
                SourceCommand::Rotate { id } => {
                    let id = id_arg(&id, "source")?;
                    let reply = client
                        .call(
                            Method::POST,
                            &["alert-sources", id, "rotate-token"],
                            &[],
                            None,
                        )
                        .await?;
                    output(&args.client, &reply, |r| render::source_rotated(id, r))
                }
            }
        }
        Command::Alerts(args) => {
            let client = connect(&args.client)?;
            match args.command {
                AlertsCommand::List { status } => {
                    let (alerts, more) = list_alerts(&client, status.as_deref()).await?;
                    if args.client.json {
                        return pretty(&json!({ "alerts": alerts, "next_cursor": more }));
                    }
                    Ok(render::alert_list(&alerts, more.as_deref()))
                }
                AlertsCommand::Show { id } => {
                    let id = id_arg(&id, "alert")?;
                    let reply = client.call(Method::GET, &["alerts", id], &[], None).await?;
                    output(&args.client, &reply, render::alert_detail)
                }
                AlertsCommand::Resolve { id, comment } => {
                    let id = id_arg(&id, "alert")?;
                    let user = std::env::var("USER").ok();
                    let body = resolve_body(comment.as_deref(), user.as_deref());
                    let reply = client
                        .call(Method::POST, &["alerts", id, "resolve"], &[], Some(&body))
                        .await?;
                    output(&args.client, &reply, render::alert_resolved)
                }
            }
        }
    }
}

fn connect(args: &ClientArgs) -> Result<AdminClient, Failure> {
    // Parse the URL before looking for a token, so a typo in --url is reported as such.
    client::parse_base_url(&args.url)?;
    let data_dir = std::env::var_os("PANDABRIDGE_DATA_DIR").map(PathBuf::from);
    let token = resolve_token(args.admin_token.as_deref(), &default_token_file(data_dir))?;
    AdminClient::new(&args.url, token)
}

/// The reply as JSON for `--json`, else rendered for people.
fn output(
    args: &ClientArgs,
    reply: &Value,
    render: impl FnOnce(&Value) -> String,
) -> Result<String, Failure> {
    if args.json {
        pretty(reply)
    } else {
        Ok(render(reply))
    }
}

fn pretty(value: &Value) -> Result<String, Failure> {
    serde_json::to_string_pretty(value)
        .map(|s| s + "\n")
        .map_err(|e| Failure::Other(format!("cannot format the reply as JSON: {e}")))
}

/// An empty id would turn `/alerts/{id}` into `/alerts/` — a different endpoint.
fn id_arg<'a>(id: &'a str, what: &str) -> Result<&'a str, Failure> {
    let id = id.trim();
    if id.is_empty() {
        return Err(Failure::Usage(format!("the {what} id must not be empty")));
    }
    Ok(id)
}

/// Where the admin token is read from when neither `--admin-token` nor
/// `PANDABRIDGE_ADMIN_TOKEN` is set: the daemon's data dir if `PANDABRIDGE_DATA_DIR` names
/// one (the same variable `serve` reads), else `./pandabridge-data` (CONTRACT §5).
pub fn default_token_file(data_dir: Option<PathBuf>) -> PathBuf {
    data_dir
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR))
        .join(ADMIN_TOKEN_FILE)
}

/// The admin token: `--admin-token` / `PANDABRIDGE_ADMIN_TOKEN` (clap has already merged the
/// two, flag first), else the contents of `file`, trimmed (it is often written with `echo`).
pub fn resolve_token(given: Option<&str>, file: &Path) -> Result<String, Failure> {
    if let Some(token) = given.map(str::trim).filter(|t| !t.is_empty()) {
        return Ok(token.to_owned());
    }
    let how = "pass --admin-token or set PANDABRIDGE_ADMIN_TOKEN (the daemon writes a \
               generated token to DATA_DIR/admin-token)";
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(Failure::Usage(format!(
                "no admin token: {} does not exist; {how}",
                file.display()
            )))
        }
        Err(e) => {
            return Err(Failure::Usage(format!(
                "cannot read the admin token from {}: {e}; {how}",
                file.display()
            )))
        }
    };
    let token = text.trim();
    if token.is_empty() {
        return Err(Failure::Usage(format!(
            "no admin token: {} is empty; {how}",
            file.display()
        )));
    }
    Ok(token.to_owned())
}

/// Body of `POST /alerts/{id}/resolve`. `resolved_by` is the local user name so the alert
/// (and the comment sent to BigPanda) says who closed it; absent fields stay absent.
pub fn resolve_body(comment: Option<&str>, user: Option<&str>) -> Value {
    let mut body = serde_json::Map::new();
    if let Some(comment) = comment {
        body.insert("comment".to_owned(), Value::String(comment.to_owned()));
    }
    if let Some(user) = user.map(str::trim).filter(|u| !u.is_empty()) {
        body.insert("resolved_by".to_owned(), Value::String(user.to_owned()));
    }
    Value::Object(body)
}

/// Follows `next_cursor` until the last page, [`MAX_LISTED_ALERTS`] or [`MAX_PAGES`]; returns
/// the alerts and the cursor it stopped at, if any.
async fn list_alerts(
    client: &AdminClient,
    status: Option<&str>,
) -> Result<(Vec<Value>, Option<String>), Failure> {
    let limit = PAGE_SIZE.to_string();
    let mut alerts = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        pages += 1;
        let mut query = vec![("limit", limit.as_str())];
        if let Some(status) = status {
            query.push(("status", status));
        }
        if let Some(c) = &cursor {
            query.push(("cursor", c.as_str()));
        }
        let reply = client.call(Method::GET, &["alerts"], &query, None).await?;
        let page = reply
            .get("alerts")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                Failure::Other("the daemon's alert list has no \"alerts\"".to_owned())
            })?;
        alerts.extend(page.iter().cloned());
        let next = reply
            .get("next_cursor")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
            .map(str::to_owned);
        // A page may be short, even empty, when the daemon's walk for it ran out (docs/api.md);
        // only a cursor that does not move would loop forever.
        let stuck = next == cursor;
        cursor = next;
        if cursor.is_none() || stuck || alerts.len() >= MAX_LISTED_ALERTS || pages >= MAX_PAGES {
            return Ok((alerts, cursor));
        }
    }
}

#[cfg(test)]
mod tests;
