//! `pandabridge-load`: the project's load tool (issue 5). Drives pandabridge with realistic
//! BigPanda webhooks and, in the same run, a bare warp server that only parses the body, so the
//! result is a ratio that survives this shared machine's drift.
//!
//! Owns the run: the command line, the baseline and the daemon under test, and the order of the
//! phases — baseline, daemon, baseline, daemon, … for `--rounds` rounds, so both targets see the
//! same machine conditions — then the report and the exit status (0 only when every phase
//! completed responses and none failed).
//!
//! ```text
//! cargo build --release --bins
//! target/release/pandabridge-load                      # 3 rounds × 10 s, 64 connections
//! target/release/pandabridge-load --rate 1000          # latency at a steady 1,000 events/s
//! target/release/pandabridge-load --smoke              # what CI runs: seconds, not a benchmark
//! ```

mod baseline;
mod daemon;
mod driver;
mod report;
mod seed;
mod sys;
mod workload;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;

use daemon::{Daemon, Endpoint, Spec};
use driver::Plan;
use report::{Kind, Phase, Report, Setup};
use workload::Workload;

/// Load-test pandabridge's webhook path against a bare HTTP baseline measured in the same run.
#[derive(Debug, Parser)]
#[command(name = "pandabridge-load", version)]
struct Args {
    /// Rounds; each runs the baseline, then the daemon. Medians are reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Measured time per target per round.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Unmeasured warm-up before each measured window (connections open, caches fill).
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    warmup: Duration,
    /// Concurrent keep-alive connections, one request in flight on each.
    #[arg(long, default_value_t = 64)]
    connections: usize,
    /// Distinct BigPanda incidents the events are spread over.
    #[arg(long, default_value_t = 10_000)]
    incidents: usize,
    /// Offered load in requests/s over all connections (paced); without it, a closed loop.
    #[arg(long)]
    rate: Option<f64>,
    /// Threads of the load generator (each a single-threaded runtime).
    #[arg(long, default_value_t = 1)]
    client_threads: usize,
    /// CPU the load generator is pinned to. [default: the last CPU, when there are several]
    #[arg(long, conflicts_with = "no_pin")]
    pin_cpu: Option<usize>,
    /// Do not pin the load generator.
    #[arg(long)]
    no_pin: bool,
    /// Worker threads of the in-process baseline server.
    #[arg(long, default_value_t = 2)]
    baseline_workers: usize,
    /// The `pandabridge` binary to start. [default: beside this tool's own executable]
    #[arg(long, value_name = "PATH")]
    daemon_bin: Option<PathBuf>,
    /// An extra argument for `pandabridge serve` (repeatable), e.g. --daemon-arg=--max-in-flight=4096.
    #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
    daemon_arg: Vec<String>,
    /// Keep the started daemon's data dir (printed at the end) instead of deleting it.
    #[arg(long)]
    keep_data_dir: bool,
    /// Load a daemon that is already running, e.g. http://127.0.0.1:8080, instead of starting one.
    #[arg(long, value_name = "URL")]
    url: Option<String>,
    /// With --url: the admin token, to create an alert source for the load.
    #[arg(long, requires = "url")]
    admin_token: Option<String>,
    /// With --url: an existing alert source to post to (with --source-token).
    #[arg(long, requires_all = ["url", "source_token"])]
    source_id: Option<String>,
    /// With --url: the token of --source-id.
    #[arg(long, requires = "source_id")]
    source_token: Option<String>,
    /// With --url: the daemon's process id, to report its memory and CPU.
    #[arg(long, requires = "url")]
    daemon_pid: Option<u32>,
    /// Print one JSON object on stdout instead of the table.
    #[arg(long)]
    json: bool,
    /// Also write the JSON report to this file (the table still goes to stdout).
    #[arg(long, value_name = "PATH")]
    json_out: Option<PathBuf>,
    /// CI smoke run: 1 round of 1 s, 4 connections, 200 incidents. Overrides those settings.
    #[arg(long)]
    smoke: bool,
    /// Instead of a load run: write --incidents incidents into the store of this data dir
    /// through the daemon's own write path (no HTTP), to measure a large store. The daemon must
    /// not be running on it.
    #[arg(long, value_name = "DATA_DIR", conflicts_with_all = ["url", "smoke"])]
    seed_store: Option<PathBuf>,
    /// With --seed-store: events per incident (new, updated, updated, closed, reopen, …).
    #[arg(long, default_value_t = 2, requires = "seed_store")]
    seed_steps: u32,
}

fn main() -> ExitCode {
    let mut args = Args::parse();
    if let Some(dir) = &args.seed_store {
        return match seed::seed(dir, args.incidents, args.seed_steps.max(1)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("pandabridge-load: {e:#}");
                ExitCode::FAILURE
            }
        };
    }
    if args.smoke {
        args.rounds = 1;
        args.duration = Duration::from_secs(1);
        args.warmup = Duration::from_millis(250);
        args.connections = 4;
        args.incidents = 200;
    }
    match run(&args) {
        Ok(report) => {
            if let Some(path) = &args.json_out {
                let written = serde_json::to_vec_pretty(&report)
                    .map_err(std::io::Error::other)
                    .and_then(|json| std::fs::write(path, json));
                if let Err(e) = written {
                    eprintln!("pandabridge-load: cannot write {}: {e}", path.display());
                    return ExitCode::FAILURE;
                }
            }
            if args.json {
                match serde_json::to_string_pretty(&report) {
                    Ok(text) => println!("{text}"),
                    Err(e) => eprintln!("pandabridge-load: cannot write JSON: {e}"),
                }
            } else {
                print!("{}", report.to_text());
            }
            if report.ok {
                ExitCode::SUCCESS
            } else {
                eprintln!("pandabridge-load: FAILED: a phase had errors or no responses");
                ExitCode::from(3)
            }
        }
        Err(e) => {
            eprintln!("pandabridge-load: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> anyhow::Result<Report> {
    anyhow::ensure!(args.rounds >= 1, "--rounds must be at least 1");
    anyhow::ensure!(args.connections >= 1, "--connections must be at least 1");
    anyhow::ensure!(!args.duration.is_zero(), "--duration must be positive");
    let cpus = sys::cpus();
    let pin_cpu = match (args.no_pin, args.pin_cpu) {
        (true, _) => None,
        (false, Some(c)) => Some(c),
        (false, None) => (cpus > 1).then(|| cpus - 1),
    };
    let plan = Plan {
        connections: args.connections,
        client_threads: args.client_threads.max(1),
        warmup: args.warmup,
        duration: args.duration,
        rate: args.rate,
        pin_cpu,
    };

    let control = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let spec = match &args.url {
        Some(url) => Spec::Running {
            url: url.clone(),
            admin_token: args.admin_token.clone(),
            source_id: args.source_id.clone(),
            source_token: args.source_token.clone(),
            pid: args.daemon_pid,
        },
        None => Spec::Spawn {
            bin: match &args.daemon_bin {
                Some(p) => p.clone(),
                None => std::env::current_exe()
                    .context("cannot find this tool's executable")?
                    .with_file_name("pandabridge"),
            },
            extra_args: args.daemon_arg.clone(),
            keep_data_dir: args.keep_data_dir,
        },
    };
    let daemon_label = match &spec {
        Spec::Spawn { bin, .. } => format!("{} (started by this tool)", bin.display()),
        Spec::Running { url, .. } => url.clone(),
    };
    let mut daemon = control.block_on(Daemon::start(spec))?;
    let baseline = baseline::Baseline::start(args.baseline_workers)?;
    let baseline_endpoint = Endpoint {
        addr: baseline.addr,
        host: baseline.addr.to_string(),
        path: baseline.path(),
        authorization: format!("Bearer {}", baseline::SOURCE_TOKEN),
    };

    // Incident ids carry the run, so a second run against one daemon starts fresh incidents.
    let run_id = (std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as u32)
        ^ std::process::id().rotate_left(16);
    let baseline_work = Arc::new(Workload::new(run_id, args.incidents));
    let daemon_work = Arc::new(Workload::new(run_id.wrapping_add(1), args.incidents));
    let window_s = args.duration.as_secs_f64();

    let mut phases = Vec::new();
    for round in 1..=args.rounds {
        let seed = u64::from(run_id) << 16 | round as u64;
        let probe = || {
            (
                sys::own_threads_cpu_seconds(baseline::THREAD_NAME),
                sys::MachineTicks::now(),
            )
        };
        let (samples, start, end) =
            driver::run_phase(&baseline_endpoint, &baseline_work, &plan, seed, probe)?;
        let phase = Phase::new(
            round,
            Kind::Baseline,
            samples,
            window_s,
            cpu_used(start.0, end.0),
            busy(start.1, end.1),
        );
        progress(args, &phase);
        phases.push(phase);

        let probe = || (daemon.cpu_seconds(), sys::MachineTicks::now());
        let (samples, start, end) =
            driver::run_phase(&daemon.endpoint, &daemon_work, &plan, seed ^ 1, probe)?;
        daemon.check_alive()?;
        let mut phase = Phase::new(
            round,
            Kind::Daemon,
            samples,
            window_s,
            cpu_used(start.0, end.0),
            busy(start.1, end.1),
        );
        if let Some((rss, hwm)) = daemon.memory_kib() {
            phase.rss_kib = Some(rss);
            phase.hwm_kib = Some(hwm);
        }
        progress(args, &phase);
        phases.push(phase);
    }
    drop(baseline);
    drop(daemon);

    let body_bytes = daemon_work.sample_len();
    let setup = Setup {
        rounds: args.rounds,
        warmup_s: args.warmup.as_secs_f64(),
        duration_s: window_s,
        connections: args.connections,
        rate: args.rate,
        incidents: args.incidents,
        body_bytes,
        client_threads: plan.client_threads,
        pin_cpu,
        baseline_workers: args.baseline_workers,
        daemon: daemon_label,
        cpus,
    };
    Ok(Report::new(setup, phases))
}

/// A duration like `10s`, `500ms` or `1m`; a bare number is seconds (`--duration 10`).
fn parse_duration(text: &str) -> Result<Duration, String> {
    match text.parse::<f64>() {
        Ok(secs) => Duration::try_from_secs_f64(secs).map_err(|e| e.to_string()),
        Err(_) => humantime::parse_duration(text).map_err(|e| e.to_string()),
    }
}

fn cpu_used(start: Option<f64>, end: Option<f64>) -> Option<f64> {
    Some(end? - start?)
}

fn busy(start: Option<sys::MachineTicks>, end: Option<sys::MachineTicks>) -> Option<f64> {
    end?.busy_since(&start?)
}

/// One line per phase on stderr, so a long run shows it is alive without spoiling `--json`.
fn progress(args: &Args, p: &Phase) {
    let p99 = p
        .latency
        .map_or("-".to_owned(), |l| format!("{:.2} ms", l.p99_ms));
    eprintln!(
        "pandabridge-load: round {}/{} {:<8} {:>8.0} req/s  p99 {p99}  errors {}",
        p.round,
        args.rounds,
        match p.target {
            Kind::Baseline => "baseline",
            Kind::Daemon => "daemon",
        },
        p.rps,
        p.errors
    );
}
