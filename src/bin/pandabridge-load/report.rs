//! Turns the samples of every phase into the report: per-phase rows, medians over rounds for
//! each target, the daemon/baseline ratio, and a Little's-law check of the latency figures;
//! printed as a table for people or as one JSON object (`--json`) for scripts.
//!
//! Owns the statistics (exact percentiles over every recorded latency) and the wording of the
//! report, including the lines the CI smoke test looks for (`baseline: … req/s`,
//! `daemon: … req/s`).

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::driver::Samples;

/// When mean latency × throughput differs from the connection count by more than this share in
/// a closed loop, the latency figures are not to be trusted (perf-baseline: wrk once reported
/// p99s that Little's law ruled out).
const LITTLE_TOLERANCE: f64 = 0.25;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Baseline,
    Daemon,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Baseline => "baseline",
            Kind::Daemon => "daemon",
        }
    }
}

/// Latency figures in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    pub p50_ms: f64,
    pub p90_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
}

impl Latency {
    /// From sorted nanoseconds; `None` when nothing was recorded.
    fn of_sorted(ns: &[u64]) -> Option<Latency> {
        if ns.is_empty() {
            return None;
        }
        let at = |q: f64| {
            // Nearest rank: the smallest value with at least q of the samples at or below it.
            let rank = ((q * ns.len() as f64).ceil() as usize).clamp(1, ns.len());
            ns[rank - 1] as f64 / 1e6
        };
        let mean = ns.iter().map(|&v| v as f64).sum::<f64>() / ns.len() as f64 / 1e6;
        Some(Latency {
            p50_ms: at(0.50),
            p90_ms: at(0.90),
            p99_ms: at(0.99),
            p999_ms: at(0.999),
            max_ms: at(1.0),
            mean_ms: mean,
        })
    }
}

/// One phase: one target in one round.
#[derive(Debug, Clone, Serialize)]
pub struct Phase {
    pub round: usize,
    pub target: Kind,
    /// Responses completed in the measured window.
    pub responses: u64,
    pub rps: f64,
    pub latency: Option<Latency>,
    pub statuses: BTreeMap<u16, u64>,
    pub transport_errors: u64,
    /// Non-2xx responses plus transport errors.
    pub errors: u64,
    pub outcomes: BTreeMap<String, u64>,
    /// Mean requests in flight by Little's law (mean latency × rps).
    pub in_flight: Option<f64>,
    /// Server CPU per response, µs (the baseline's runtime threads, or the daemon process).
    pub server_cpu_us_per_req: Option<f64>,
    /// Cores the load generator used during the window.
    pub client_cpu_cores: f64,
    /// Share of the whole machine's CPU that was busy during the window (all processes).
    pub machine_busy: Option<f64>,
    pub rss_kib: Option<u64>,
    pub hwm_kib: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_error: Option<String>,
}

impl Phase {
    pub fn new(
        round: usize,
        target: Kind,
        samples: Samples,
        window_s: f64,
        server_cpu_s: Option<f64>,
        machine_busy: Option<f64>,
    ) -> Phase {
        let responses = samples.latencies_ns.len() as u64;
        let rps = responses as f64 / window_s;
        let latency = Latency::of_sorted(&samples.latencies_ns);
        let non_2xx: u64 = samples
            .statuses
            .iter()
            .filter(|(s, _)| !(200..300).contains(*s))
            .map(|(_, n)| n)
            .sum();
        Phase {
            round,
            target,
            responses,
            rps,
            in_flight: latency.map(|l| l.mean_ms / 1e3 * rps),
            latency,
            errors: non_2xx + samples.transport_errors,
            statuses: samples.statuses,
            transport_errors: samples.transport_errors,
            outcomes: samples.outcomes,
            server_cpu_us_per_req: server_cpu_s
                .filter(|_| responses > 0)
                .map(|s| s * 1e6 / responses as f64),
            client_cpu_cores: samples.client_cpu_s / window_s,
            machine_busy,
            rss_kib: None,
            hwm_kib: None,
            first_error: samples.first_error,
        }
    }
}

/// Medians over the rounds of one target.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub rps: f64,
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub p999_ms: Option<f64>,
    pub mean_ms: Option<f64>,
    pub in_flight: Option<f64>,
    pub server_cpu_us_per_req: Option<f64>,
    pub errors: u64,
}

/// The settings worth printing beside the numbers.
#[derive(Debug, Clone, Serialize)]
pub struct Setup {
    pub rounds: usize,
    pub warmup_s: f64,
    pub duration_s: f64,
    pub connections: usize,
    pub rate: Option<f64>,
    pub incidents: usize,
    pub body_bytes: usize,
    pub client_threads: usize,
    pub pin_cpu: Option<usize>,
    pub baseline_workers: usize,
    pub daemon: String,
    pub cpus: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub setup: Setup,
    pub phases: Vec<Phase>,
    pub baseline: Option<Summary>,
    pub daemon: Option<Summary>,
    /// Median over rounds of (daemon rps / baseline rps in the same round).
    pub ratio: Option<f64>,
    pub ratios: Vec<f64>,
    /// The daemon's memory after the last round, KiB.
    pub daemon_rss_kib: Option<u64>,
    pub daemon_hwm_kib: Option<u64>,
    /// Whether every phase completed responses and none failed.
    pub ok: bool,
}

pub fn median(mut v: Vec<f64>) -> Option<f64> {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

fn summarize(phases: &[&Phase]) -> Option<Summary> {
    if phases.is_empty() {
        return None;
    }
    let of =
        |f: &dyn Fn(&Phase) -> Option<f64>| median(phases.iter().filter_map(|p| f(p)).collect());
    Some(Summary {
        rps: of(&|p| Some(p.rps)).unwrap_or(0.0),
        p50_ms: of(&|p| p.latency.map(|l| l.p50_ms)),
        p99_ms: of(&|p| p.latency.map(|l| l.p99_ms)),
        p999_ms: of(&|p| p.latency.map(|l| l.p999_ms)),
        mean_ms: of(&|p| p.latency.map(|l| l.mean_ms)),
        in_flight: of(&|p| p.in_flight),
        server_cpu_us_per_req: of(&|p| p.server_cpu_us_per_req),
        errors: phases.iter().map(|p| p.errors).sum(),
    })
}

impl Report {
    pub fn new(setup: Setup, phases: Vec<Phase>) -> Report {
        let of = |k: Kind| phases.iter().filter(|p| p.target == k).collect::<Vec<_>>();
        let (base, daemon) = (of(Kind::Baseline), of(Kind::Daemon));
        let ratios: Vec<f64> = base
            .iter()
            .filter_map(|b| {
                let d = daemon.iter().find(|d| d.round == b.round)?;
                (b.rps > 0.0).then(|| d.rps / b.rps)
            })
            .collect();
        let last = daemon.last();
        let ok = !phases.is_empty() && phases.iter().all(|p| p.responses > 0 && p.errors == 0);
        Report {
            baseline: summarize(&base),
            daemon: summarize(&daemon),
            ratio: median(ratios.clone()),
            ratios,
            daemon_rss_kib: last.and_then(|p| p.rss_kib),
            daemon_hwm_kib: last.and_then(|p| p.hwm_kib),
            ok,
            setup,
            phases,
        }
    }

    pub fn to_text(&self) -> String {
        let s = &self.setup;
        let mut out = String::new();
        let mode = match s.rate {
            Some(r) => format!("paced at {r:.0} req/s in total"),
            None => "closed loop".to_owned(),
        };
        let pin = s
            .pin_cpu
            .map_or("not pinned".to_owned(), |c| format!("pinned to CPU {c}"));
        let _ = writeln!(
            out,
            "pandabridge-load: {} round(s) of {:.1} s warm-up + {:.1} s per target, {} connections \
             ({mode}), {} incidents, {}-byte bodies",
            s.rounds, s.warmup_s, s.duration_s, s.connections, s.incidents, s.body_bytes
        );
        let _ = writeln!(
            out,
            "machine: {} CPUs; load generator: {} client thread(s) {pin}; baseline: in-process \
             warp + serde_json::Value, {} workers; daemon: {}",
            s.cpus, s.client_threads, s.baseline_workers, s.daemon
        );
        let _ = writeln!(out);
        let _ = writeln!(
            out,
            "{:>5}  {:<8} {:>9} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>6} {:>9} {:>7} {:>7} {:>7} {:>13}",
            "round",
            "target",
            "req/s",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
            "mean ms",
            "errors",
            "in flight",
            "srv µs",
            "gen CPU",
            "machine",
            "RSS/HWM MiB"
        );
        for p in &self.phases {
            let l = p.latency.unwrap_or_default();
            let mem = match (p.rss_kib, p.hwm_kib) {
                (Some(r), Some(h)) => format!("{:.1}/{:.1}", r as f64 / 1024.0, h as f64 / 1024.0),
                _ => "-".to_owned(),
            };
            let _ = writeln!(
                out,
                "{:>5}  {:<8} {:>9.0} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>6} {:>9} {:>7} {:>7.2} {:>7} {:>13}",
                p.round,
                p.target.name(),
                p.rps,
                l.p50_ms,
                l.p90_ms,
                l.p99_ms,
                l.p999_ms,
                l.max_ms,
                l.mean_ms,
                p.errors,
                opt(p.in_flight, 1),
                opt(p.server_cpu_us_per_req, 1),
                p.client_cpu_cores,
                p.machine_busy
                    .map_or("-".to_owned(), |b| format!("{:.0}%", b * 100.0)),
                mem
            );
        }
        let _ = writeln!(out);
        for (kind, summary) in [
            (Kind::Baseline, &self.baseline),
            (Kind::Daemon, &self.daemon),
        ] {
            if let Some(m) = summary {
                let _ = writeln!(
                    out,
                    "{:<9} {:>8.0} req/s  p50 {} ms  p99 {} ms  p99.9 {} ms  server CPU {} µs/req  \
                     (medians of {} round(s))",
                    format!("{}:", kind.name()),
                    m.rps,
                    opt(m.p50_ms, 2),
                    opt(m.p99_ms, 2),
                    opt(m.p999_ms, 2),
                    opt(m.server_cpu_us_per_req, 1),
                    s.rounds
                );
            }
        }
        if let Some(r) = self.ratio {
            let each: Vec<String> = self.ratios.iter().map(|r| format!("{r:.2}")).collect();
            let _ = writeln!(
                out,
                "ratio daemon/baseline: {r:.2} (median of the per-round ratios {})",
                each.join(", ")
            );
        }
        if let (Some(rss), Some(hwm)) = (self.daemon_rss_kib, self.daemon_hwm_kib) {
            let _ = writeln!(
                out,
                "daemon memory after the last round: VmRSS {:.1} MiB, VmHWM {:.1} MiB",
                rss as f64 / 1024.0,
                hwm as f64 / 1024.0
            );
        }
        let mut outcomes: BTreeMap<&str, u64> = BTreeMap::new();
        for p in self.phases.iter().filter(|p| p.target == Kind::Daemon) {
            for (k, v) in &p.outcomes {
                *outcomes.entry(k).or_default() += v;
            }
        }
        let total: u64 = outcomes.values().sum();
        if total > 0 {
            let parts: Vec<String> = outcomes
                .iter()
                .map(|(k, v)| format!("{k} {:.1}%", *v as f64 * 100.0 / total as f64))
                .collect();
            let _ = writeln!(
                out,
                "daemon outcomes (measured windows): {}",
                parts.join(", ")
            );
        }
        let _ = writeln!(
            out,
            "columns: in flight = mean latency × req/s; srv µs = server CPU per request; gen CPU = \
             cores used by the load generator; machine = busy share of all CPUs (other processes \
             included)"
        );
        let _ = writeln!(out, "{}", self.little_line());
        let _ = writeln!(out, "{}", self.errors_line());
        out
    }

    /// Mean latency × throughput must be about the connection count in a closed loop; otherwise
    /// the latency figures (or the generator) are off.
    fn little_line(&self) -> String {
        let mut parts = Vec::new();
        let mut suspicious = false;
        for (kind, m) in [
            (Kind::Baseline, &self.baseline),
            (Kind::Daemon, &self.daemon),
        ] {
            let Some(m) = m else { continue };
            let (Some(mean), Some(l)) = (m.mean_ms, m.in_flight) else {
                continue;
            };
            parts.push(format!(
                "{} {mean:.2} ms × {:.0}/s = {l:.1}",
                kind.name(),
                m.rps
            ));
            if self.setup.rate.is_none() {
                let c = self.setup.connections as f64;
                suspicious |= (l / c - 1.0).abs() > LITTLE_TOLERANCE;
            }
        }
        let verdict = match (self.setup.rate, suspicious) {
            (Some(_), _) => "mean requests in flight (paced load)".to_owned(),
            (None, false) => format!("≈ {} connections: consistent", self.setup.connections),
            (None, true) => format!(
                "differs from {} connections by more than {:.0}%: do not trust these latencies",
                self.setup.connections,
                LITTLE_TOLERANCE * 100.0
            ),
        };
        format!("Little's law: {}; {verdict}", parts.join("; "))
    }

    fn errors_line(&self) -> String {
        let mut parts = Vec::new();
        for p in self
            .phases
            .iter()
            .filter(|p| p.errors > 0 || p.responses == 0)
        {
            let mut what: Vec<String> = p
                .statuses
                .iter()
                .filter(|(s, _)| !(200..300).contains(*s))
                .map(|(s, n)| format!("{n}× HTTP {s}"))
                .collect();
            if p.transport_errors > 0 {
                what.push(format!("{}× connection error", p.transport_errors));
            }
            if p.responses == 0 {
                what.push("no responses".to_owned());
            }
            if let Some(e) = &p.first_error {
                what.push(format!("first: {e}"));
            }
            parts.push(format!(
                "round {} {}: {}",
                p.round,
                p.target.name(),
                what.join(", ")
            ));
        }
        if parts.is_empty() {
            "errors: none".to_owned()
        } else {
            format!("errors: {}", parts.join("; "))
        }
    }
}

fn opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or("-".to_owned(), |v| format!("{v:.decimals$}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_nearest_rank() {
        let ns: Vec<u64> = (1..=1000).map(|i| i * 1_000_000).collect();
        let l = Latency::of_sorted(&ns).expect("samples");
        assert_eq!(l.p50_ms, 500.0);
        assert_eq!(l.p99_ms, 990.0);
        assert_eq!(l.p999_ms, 999.0);
        assert_eq!(l.max_ms, 1000.0);
        assert!(Latency::of_sorted(&[]).is_none());
    }

    #[test]
    fn median_of_even_and_odd() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some(2.5));
        assert_eq!(median(vec![]), None);
    }
}
