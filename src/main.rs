//! The `pandabridge` binary: parses the command line and hands over to the library.
#![forbid(unsafe_code)]

use clap::Parser;
use pandabridge::config::{self, Cli, Command};

/// glibc malloc took a fifth of the CPU of the webhook path in the perf baseline.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
                || matches!(
                    e.kind(),
                    ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
                )
            {
                e.exit();
            }
            // One line, as CONTRACT §1 asks for a bad flag; `--help` has the details.
            let rendered = e.render().to_string();
            let first = rendered.lines().next().unwrap_or("invalid arguments");
            let reason = first.strip_prefix("error: ").unwrap_or(first);
            eprintln!("pandabridge: {reason} (see pandabridge --help)");
            return std::process::ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Serve(args) => {
            let cfg = match config::resolve(args) {
                Ok(cfg) => cfg,
                Err(e) => {
                    eprintln!("pandabridge: {e}");
                    return std::process::ExitCode::from(2);
                }
            };
            config::init_tracing(cfg.log_format);
            match pandabridge::daemon::run(cfg) {
                Ok(()) => std::process::ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("pandabridge: {e}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
        Command::Repack(args) => {
            let cfg = match args.resolve() {
                Ok(cfg) => cfg,
                Err(e) => {
                    eprintln!("pandabridge: {e}");
                    return std::process::ExitCode::from(2);
                }
            };
            config::init_tracing(cfg.log_format);
            match pandabridge::daemon::repack(&cfg) {
                Ok(r) => {
                    println!(
                        "Repacked the store in {}: {} keys in {:.1} s; sled's file {} -> {} MiB.",
                        cfg.data_dir.display(),
                        r.keys,
                        r.seconds,
                        r.bytes_before >> 20,
                        r.bytes_after >> 20
                    );
                    std::process::ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("pandabridge: {e}");
                    std::process::ExitCode::FAILURE
                }
            }
        }
        other => pandabridge::cli::run(other),
    }
}
