//! The admin CLI (CONTRACT §5): subcommands that talk to a running daemon over the admin API.

use crate::config::Command;

pub fn run(command: Command) -> std::process::ExitCode {
    let _ = command;
    eprintln!(
        "pandabridge: this subcommand is not available yet; use the admin API (see README.md)"
    );
    std::process::ExitCode::from(2)
}
