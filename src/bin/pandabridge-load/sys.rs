//! What the load tool reads from and asks of Linux: CPU pinning, CPU time of processes and
//! threads, memory of the daemon, how busy the whole machine was, and a polite SIGTERM.
//!
//! The only module of the tool with `unsafe` (three libc calls, each explained). Everything
//! degrades to "unknown" (`None`) rather than failing the run: a missing `/proc` costs columns
//! of the report, not the measurement.

use std::path::Path;

/// Pins the calling thread to one CPU, so the load generator does not roam onto the cores the
/// servers use (perf-baseline: an unpinned generator made wrk's histogram unreliable).
pub fn pin_current_thread(cpu: usize) -> std::io::Result<()> {
    // SAFETY: `cpu_set_t` is plain data for which all-zero is a valid (empty) set; CPU_SET
    // only writes inside it (it bounds-checks `cpu` against the set's size), and
    // sched_setaffinity(0, ...) reads `size_of::<cpu_set_t>()` bytes of it for this thread.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Number of CPUs this process may run on.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Asks a process to stop (SIGTERM), as an operator would.
pub fn terminate(pid: u32) -> std::io::Result<()> {
    let pid = libc::pid_t::try_from(pid).map_err(std::io::Error::other)?;
    // SAFETY: kill(2) takes plain integers and touches no memory of ours.
    let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn ticks_per_second() -> f64 {
    // SAFETY: sysconf(3) takes an integer name and returns an integer.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}

/// utime + stime in seconds from a `/proc/.../stat` file. The command name (field 2) may hold
/// spaces and parentheses, so fields are counted after its closing parenthesis.
fn stat_cpu_seconds(stat: &str) -> Option<f64> {
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the name: state is field 3, utime field 14, stime field 15.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks_per_second())
}

/// CPU seconds a process has used so far.
pub fn process_cpu_seconds(pid: u32) -> Option<f64> {
    stat_cpu_seconds(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)
}

/// CPU seconds used so far by this process's threads whose name starts with `prefix`.
pub fn own_threads_cpu_seconds(prefix: &str) -> Option<f64> {
    let mut total = 0.0;
    for entry in std::fs::read_dir("/proc/self/task").ok()?.flatten() {
        let dir = entry.path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim_end().starts_with(prefix) {
            total += std::fs::read_to_string(dir.join("stat"))
                .ok()
                .as_deref()
                .and_then(stat_cpu_seconds)
                .unwrap_or(0.0);
        }
    }
    Some(total)
}

/// CPU seconds the calling thread has used so far.
pub fn current_thread_cpu_seconds() -> Option<f64> {
    stat_cpu_seconds(&std::fs::read_to_string("/proc/thread-self/stat").ok()?)
}

/// Memory of a process, KiB: (VmRSS, VmHWM).
pub fn memory_kib(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
    };
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

/// Cumulative (busy, total) jiffies of all CPUs, from the first line of `/proc/stat`.
#[derive(Debug, Clone, Copy)]
pub struct MachineTicks {
    busy: u64,
    total: u64,
}

impl MachineTicks {
    pub fn now() -> Option<MachineTicks> {
        read_machine_ticks(Path::new("/proc/stat"))
    }

    /// The fraction of the machine's CPU time that was busy between `earlier` and `self`.
    pub fn busy_since(&self, earlier: &MachineTicks) -> Option<f64> {
        let total = self.total.checked_sub(earlier.total)?;
        let busy = self.busy.checked_sub(earlier.busy)?;
        (total > 0).then(|| busy as f64 / total as f64)
    }
}

fn read_machine_ticks(path: &Path) -> Option<MachineTicks> {
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().next()?.strip_prefix("cpu ")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .filter_map(|f| f.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal ...; idle and iowait are not busy.
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Some(MachineTicks {
        busy: total.saturating_sub(idle),
        total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_name() {
        let line = "42 (a (weird) name) S 1 2 3 4 5 6 7 8 9 10 250 150 0 0 20 0";
        let s = stat_cpu_seconds(line).expect("parsed");
        assert!((s - 400.0 / ticks_per_second()).abs() < 1e-9);
    }

    #[test]
    fn own_process_is_readable() {
        assert!(memory_kib(std::process::id()).is_some_and(|(rss, hwm)| rss > 0 && hwm >= rss));
        assert!(process_cpu_seconds(std::process::id()).is_some());
    }
}
