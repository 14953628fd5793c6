//! The server's own accounting, read from /proc: CPU time and resident memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Watches a process: its CPU time on demand, its peak resident memory in the background.
pub struct Monitor {
    pid: u32,
    ticks_per_second: f64,
    /// Resident memory when monitoring started, before any client.
    pub baseline_rss: u64,
    peak_rss: Arc<AtomicU64>,
    sampler: tokio::task::JoinHandle<()>,
}

impl Monitor {
    pub fn start(pid: u32) -> Result<Monitor, String> {
        let baseline_rss = resident_bytes(pid)?;
        cpu_ticks(pid)?;
        let peak_rss = Arc::new(AtomicU64::new(baseline_rss));
        let peak = peak_rss.clone();
        let sampler = tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                match resident_bytes(pid) {
                    Ok(rss) => {
                        peak.fetch_max(rss, Ordering::Relaxed);
                    }
                    Err(_) => return,
                }
            }
        });
        Ok(Monitor {
            pid,
            ticks_per_second: clock_ticks_per_second(),
            baseline_rss,
            peak_rss,
            sampler,
        })
    }

    /// CPU seconds (user and system, all threads) the process has used so far.
    pub fn cpu_seconds(&self) -> Option<f64> {
        cpu_ticks(self.pid)
            .ok()
            .map(|t| t as f64 / self.ticks_per_second)
    }

    pub fn peak_rss(&self) -> u64 {
        self.peak_rss.load(Ordering::Relaxed)
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.sampler.abort();
    }
}

/// utime + stime from /proc/PID/stat, in clock ticks.
fn cpu_ticks(pid: u32) -> Result<u64, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("process {pid}: {e}"))?;
    // The command name is in parentheses and may contain spaces: count fields after it.
    let after = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .ok_or_else(|| format!("process {pid}: unreadable stat"))?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // Fields 14 and 15 of stat(5) are the 12th and 13th after the command name.
    let field = |i: usize| -> Result<u64, String> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| format!("process {pid}: unreadable stat"))
    };
    Ok(field(11)? + field(12)?)
}

fn resident_bytes(pid: u32) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("process {pid}: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map(|kib| kib * 1024)
        .ok_or_else(|| format!("process {pid}: no VmRSS"))
}

fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        assert!(resident_bytes(pid).unwrap() > 0);
        // Burn a little CPU so the counter is not zero.
        let mut x = 0u64;
        for i in 0..50_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        assert!(x > 0);
        assert!(cpu_ticks(pid).unwrap() > 0);
        assert!(cpu_ticks(u32::MAX).is_err());
    }
}
