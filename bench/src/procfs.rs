//! Reads a process's CPU time and resident memory from `/proc`, as the issue prescribes:
//! CPU seconds from `/proc/PID/stat` (user + system, all threads) and RSS from
//! `/proc/PID/status` (`VmRSS`); and, to tell a slow server from a starved one, how long its
//! threads waited for a core (`/proc/PID/task/*/schedstat`).

use anyhow::{anyhow, Context};

/// Linux reports `utime`/`stime` in USER_HZ ticks, which is 100 on every Linux ABI.
const TICKS_PER_SECOND: f64 = 100.0;

/// A point-in-time reading of one process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ProcSample {
    /// User + system CPU seconds since the process started.
    pub cpu_seconds: f64,
    /// Resident set size in KiB.
    pub rss_kib: u64,
}

/// Reads `/proc/<pid>/stat` and `/proc/<pid>/status` (`pid` may be `"self"`).
///
/// # Errors
/// The process does not exist or the files are not in the expected format.
pub fn sample(pid: &str) -> anyhow::Result<ProcSample> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("read /proc/{pid}/stat"))?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("read /proc/{pid}/status"))?;
    Ok(ProcSample {
        cpu_seconds: cpu_seconds(&stat)?,
        rss_kib: rss_kib(&status)?,
    })
}

/// Seconds the threads of `pid` have spent runnable but waiting for a core, summed over its
/// live threads (field 2 of `schedstat`; a thread that has ended is no longer counted).
///
/// # Errors
/// The process does not exist, or the kernel keeps no scheduler statistics.
pub fn waiting_seconds(pid: &str) -> anyhow::Result<f64> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task"))
        .with_context(|| format!("list /proc/{pid}/task"))?;
    let mut nanos = 0u64;
    for task in tasks {
        let path = task.context("list threads")?.path().join("schedstat");
        // A thread may end between the listing and the read: it simply no longer counts.
        if let Ok(text) = std::fs::read_to_string(&path) {
            nanos += wait_nanos(&text)?;
        }
    }
    Ok(nanos as f64 / 1e9)
}

/// The run-queue wait in nanoseconds from a `schedstat` line (`cpu_ns wait_ns timeslices`).
fn wait_nanos(schedstat: &str) -> anyhow::Result<u64> {
    schedstat
        .split_whitespace()
        .nth(1)
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| anyhow!("malformed schedstat: {schedstat:?}"))
}

/// CPU seconds all cores of the machine have spent, from the first line of `/proc/stat`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct MachineTime {
    /// Everything but idle and I/O wait.
    pub busy: f64,
    /// Idle and I/O wait: a core with nothing to run. On a VM this includes the time a thread
    /// woken onto an idle vCPU waits for it, which its process also counts as waiting for a
    /// core: idle cores beside waiting threads mean wake-ups, not saturation.
    pub idle: f64,
}

/// Reads [`MachineTime`] now.
///
/// # Errors
/// `/proc/stat` is unreadable or malformed.
pub fn machine_time() -> anyhow::Result<MachineTime> {
    let stat = std::fs::read_to_string("/proc/stat").context("read /proc/stat")?;
    machine_time_of(&stat)
}

fn machine_time_of(stat: &str) -> anyhow::Result<MachineTime> {
    let line = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .ok_or_else(|| anyhow!("no cpu line in /proc/stat"))?;
    let ticks: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let is_idle = |i: usize| i == 3 || i == 4;
    let sum = |idle: bool| -> u64 {
        ticks
            .iter()
            .take(8)
            .enumerate()
            .filter(|(i, _)| is_idle(*i) == idle)
            .map(|(_, t)| t)
            .sum()
    };
    Ok(MachineTime {
        busy: sum(false) as f64 / TICKS_PER_SECOND,
        idle: sum(true) as f64 / TICKS_PER_SECOND,
    })
}

/// CPU used over an interval by the server, by this client, and by everything else.
#[derive(Debug, Clone, Copy)]
pub struct Usage {
    pub wall_seconds: f64,
    pub server_seconds: Option<f64>,
    pub client_seconds: Option<f64>,
    /// Busy CPU seconds of every other process on the machine (other engineers' builds…).
    pub other_seconds: Option<f64>,
    /// CPU seconds the machine's cores spent idle (see [`MachineTime::idle`]).
    pub idle_seconds: Option<f64>,
    /// Seconds the server's and this client's threads spent waiting for a core: where both
    /// wait, the machine is saturated and latency is the scheduler's sharing of it.
    pub server_waiting_seconds: Option<f64>,
    pub client_waiting_seconds: Option<f64>,
}

impl Usage {
    /// Cores kept busy by other processes on average, e.g. `0.8`.
    pub fn other_cores(&self) -> Option<f64> {
        self.on_average(self.other_seconds)
    }

    /// Cores idle on average, e.g. `0.5` of 2.
    pub fn idle_cores(&self) -> Option<f64> {
        self.on_average(self.idle_seconds)
    }

    /// The server's threads waiting for a core, on average over the interval.
    pub fn server_waiting_threads(&self) -> Option<f64> {
        self.on_average(self.server_waiting_seconds)
    }

    /// This client's threads waiting for a core, on average over the interval.
    pub fn client_waiting_threads(&self) -> Option<f64> {
        self.on_average(self.client_waiting_seconds)
    }

    /// Seconds of some thread-time per second of the interval.
    fn on_average(&self, seconds: Option<f64>) -> Option<f64> {
        Some(seconds? / self.wall_seconds.max(1e-9))
    }
}

/// Starts measuring CPU use of the server (`pid`), this process and the whole machine.
pub struct Meter {
    pid: Option<String>,
    started: std::time::Instant,
    server: Option<ProcSample>,
    client: Option<ProcSample>,
    machine: Option<MachineTime>,
    server_waiting: Option<f64>,
    client_waiting: Option<f64>,
}

impl Meter {
    pub fn start(pid: Option<u32>) -> Self {
        let pid = pid.map(|p| p.to_string());
        Self {
            server: pid.as_deref().and_then(|p| sample(p).ok()),
            client: sample("self").ok(),
            machine: machine_time().ok(),
            server_waiting: pid.as_deref().and_then(|p| waiting_seconds(p).ok()),
            client_waiting: waiting_seconds("self").ok(),
            started: std::time::Instant::now(),
            pid,
        }
    }

    /// The CPU used since [`Meter::start`].
    pub fn stop(&self) -> Usage {
        let delta = |before: Option<ProcSample>, pid: Option<&str>| {
            let after = sample(pid?).ok()?;
            Some((after.cpu_seconds - before?.cpu_seconds).max(0.0))
        };
        let server_seconds = delta(self.server, self.pid.as_deref());
        let client_seconds = delta(self.client, Some("self"));
        let machine = machine_time().ok().zip(self.machine);
        let other_seconds = machine.map(|(after, before)| {
            let busy = after.busy - before.busy;
            (busy - server_seconds.unwrap_or(0.0) - client_seconds.unwrap_or(0.0)).max(0.0)
        });
        let idle_seconds = machine.map(|(after, before)| (after.idle - before.idle).max(0.0));
        let waited = |before: Option<f64>, pid: Option<&str>| {
            Some((waiting_seconds(pid?).ok()? - before?).max(0.0))
        };
        Usage {
            wall_seconds: self.started.elapsed().as_secs_f64(),
            server_seconds,
            client_seconds,
            other_seconds,
            idle_seconds,
            server_waiting_seconds: waited(self.server_waiting, self.pid.as_deref()),
            client_waiting_seconds: waited(self.client_waiting, Some("self")),
        }
    }
}

/// `utime + stime` from a `stat` line, in seconds.
fn cpu_seconds(stat: &str) -> anyhow::Result<f64> {
    // The command name (field 2) may contain spaces and parentheses: split after the last ')'.
    let after = stat
        .rfind(')')
        .map(|i| &stat[i + 1..])
        .ok_or_else(|| anyhow!("malformed stat"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat(5); `after` starts at field 3.
    let ticks = |i: usize| -> anyhow::Result<u64> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| anyhow!("malformed stat field {}", i + 3))
    };
    Ok((ticks(11)? + ticks(12)?) as f64 / TICKS_PER_SECOND)
}

/// `VmRSS` from a `status` file, in KiB.
fn rss_kib(status: &str) -> anyhow::Result<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow!("no VmRSS in status"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_cpu_ticks_after_a_tricky_command_name() {
        let stat =
            "1234 (app (x) y) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 1 1 1";
        assert_eq!(cpu_seconds(stat).unwrap(), 3.0);
    }

    #[test]
    fn parses_vm_rss() {
        let status = "Name:\tapp\nVmPeak:\t 9000 kB\nVmRSS:\t   12345 kB\nThreads: 3\n";
        assert_eq!(rss_kib(status).unwrap(), 12345);
    }

    #[test]
    fn machine_time_splits_busy_from_idle_and_iowait() {
        let stat = "cpu  100 10 50 9000 40 5 5 2 0 0\ncpu0 1 1 1 1 1 1 1 1 0 0\n";
        let time = machine_time_of(stat).unwrap();
        assert_eq!((time.busy, time.idle), (1.72, 90.4));
        assert!(machine_time_of("cpu0 1 2 3\n").is_err());
    }

    #[test]
    fn the_meter_gives_idle_time_over_its_interval_not_since_boot() {
        let meter = Meter::start(None);
        std::thread::sleep(std::time::Duration::from_millis(300));
        let usage = meter.stop();
        let idle = usage.idle_seconds.expect("idle time read from /proc/stat");
        let busy = usage.other_seconds.expect("busy time read from /proc/stat")
            + usage.client_seconds.expect("this process's CPU time");
        // Busy and idle together are every core's time over the interval: an idle figure
        // counted since boot, or one lost (zero while the cores idled), falls far outside
        // it (which ticks are busy and which idle is
        // `machine_time_splits_busy_from_idle_and_iowait`'s). The cores are the ones
        // /proc/stat sums, which a container's CPU quota (`available_parallelism`) does not
        // change.
        let stat = std::fs::read_to_string("/proc/stat").unwrap();
        let cores = stat
            .lines()
            .filter(|l| l.starts_with("cpu") && !l.starts_with("cpu "))
            .count();
        let all = usage.wall_seconds * cores as f64;
        let slack = 0.1 * all + 4.0 * cores as f64 / TICKS_PER_SECOND;
        assert!(
            (busy + idle - all).abs() <= slack,
            "busy {busy} s + idle {idle} s against {all} s of {cores} cores (± {slack} s)"
        );
    }

    #[test]
    fn takes_the_run_queue_wait_from_schedstat() {
        assert_eq!(
            wait_nanos("123456789 2500000000 42\n").unwrap(),
            2_500_000_000
        );
        assert!(wait_nanos("123456789\n").is_err());
        assert!(wait_nanos("a b c").is_err());
    }

    #[test]
    fn threads_outnumbering_the_cores_wait_for_one() {
        // Twice as many spinning threads as cores: some are always runnable but not running.
        let cores = std::thread::available_parallelism().map_or(2, usize::from);
        let before = waiting_seconds("self").unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let spinners: Vec<_> = (0..cores * 2)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(300));
        // Read while the spinners are alive: an ended thread's wait is no longer counted.
        let during = waiting_seconds("self").unwrap();
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for s in spinners {
            s.join().unwrap();
        }
        assert!(during > before, "no wait seen: {before} → {during}");
    }

    #[test]
    fn reads_this_process() {
        let s = sample("self").unwrap();
        assert!(s.rss_kib > 0);
        assert!(s.cpu_seconds >= 0.0);
    }
}
