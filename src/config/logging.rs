//! Process-wide tracing subscriber: stderr, text or JSON, verbosity from `RUST_LOG`.

use std::io::IsTerminal;

use tracing::level_filters::LevelFilter;
use tracing_subscriber::EnvFilter;

use super::LogFormat;

/// Installs the global subscriber. Filter from `RUST_LOG` (e.g. `pandabridge=debug,info`),
/// `info` when unset; invalid directives are ignored rather than fatal, so a typo in
/// `RUST_LOG` cannot keep the daemon from starting.
///
/// Logs go to stderr so stdout stays free for anything a wrapper script wants to parse.
/// A second call is a no-op (the first subscriber stays), which keeps tests that start the
/// daemon more than once in one process working.
pub fn init_tracing(format: LogFormat) {
    let filter = EnvFilter::builder()
        .with_default_directive(LevelFilter::INFO.into())
        .from_env_lossy();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        // Flattened so a log shipper sees `message` and the event fields at the top level.
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    // Err only means a subscriber is already installed; see above.
    drop(result);
}
