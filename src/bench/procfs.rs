//! Reads a process's CPU time and resident memory from `/proc`, as the issue prescribes:
//! CPU seconds from `/proc/PID/stat` (user + system, all threads) and RSS from
//! `/proc/PID/status` (`VmRSS`).

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
    fn reads_this_process() {
        let s = sample("self").unwrap();
        assert!(s.rss_kib > 0);
        assert!(s.cpu_seconds >= 0.0);
    }
}
