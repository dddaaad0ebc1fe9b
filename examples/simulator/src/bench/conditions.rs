//! What the machine was doing while a figure was measured: the load average before and after,
//! and the CPU time the measurement took beside its wall time. A figure taken while the load
//! exceeded the machine's cores is marked disturbed: it says as much about the other processes
//! as about this program.
//!
//! Linux only (`/proc`); elsewhere the conditions are unknown and nothing is marked.

use serde::{Deserialize, Serialize};

/// The conditions of one measured figure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Conditions {
    /// What was measured.
    pub figure: String,
    /// Wall seconds it took.
    pub wall_s: f64,
    /// CPU seconds it took (user and system, of this process, or of the child it ran).
    pub cpu_s: Option<f64>,
    /// The 1-minute load average when it started.
    pub load_before: Option<f64>,
    /// The 1-minute load average when it ended.
    pub load_after: Option<f64>,
    /// The load exceeded the machine's cores at its start or end.
    pub disturbed: bool,
}

/// The 1-minute load average.
pub fn load_average() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// `/proc` reports CPU time in clock ticks of 1/100 s (`USER_HZ`, fixed at 100 on Linux).
const TICKS_PER_S: f64 = 100.0;

/// CPU seconds of this process (`children == false`) or of its waited-for children.
pub fn cpu_seconds(children: bool) -> Option<f64> {
    let text = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name, field 2, is in parentheses and may hold spaces: count after it.
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 (utime, stime) and 16 and 17 (cutime, cstime), counted from 1 with
    // the state, field 3, first here.
    let (a, b) = if children { (13, 14) } else { (11, 12) };
    let ticks: f64 = fields.get(a)?.parse::<f64>().ok()? + fields.get(b)?.parse::<f64>().ok()?;
    Some(ticks / TICKS_PER_S)
}

/// Whether a load average of `load` disturbs a measurement on `cores` cores.
pub fn is_disturbed(load: Option<f64>, cores: usize) -> bool {
    load.is_some_and(|l| l > cores as f64)
}

/// Runs `measure`, recording its conditions as `figure`. `children`: the work runs in a child
/// process (waited for inside `measure`), whose CPU time is counted.
pub fn measured<T>(
    figure: &str,
    cores: usize,
    children: bool,
    measure: impl FnOnce() -> T,
) -> (T, Conditions) {
    let load_before = load_average();
    let cpu_before = cpu_seconds(children);
    let started = std::time::Instant::now();
    let out = measure();
    let wall_s = started.elapsed().as_secs_f64();
    let cpu_s = cpu_seconds(children).zip(cpu_before).map(|(a, b)| (a - b).max(0.0));
    let load_after = load_average();
    let disturbed = is_disturbed(load_before, cores) || is_disturbed(load_after, cores);
    let c =
        Conditions { figure: figure.to_owned(), wall_s, cpu_s, load_before, load_after, disturbed };
    (out, c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_load_above_the_cores_disturbs_and_one_at_or_below_does_not() {
        assert!(is_disturbed(Some(2.01), 2));
        assert!(!is_disturbed(Some(2.0), 2));
        assert!(!is_disturbed(Some(0.3), 2));
        assert!(!is_disturbed(None, 2), "unknown conditions mark nothing");
    }

    #[test]
    fn cpu_time_is_counted_for_work_done_and_the_load_is_read() {
        let (_, c) = measured("spin", 1_000, false, || {
            let t = std::time::Instant::now();
            let mut x = 0u64;
            while t.elapsed().as_millis() < 300 {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        });
        assert!(c.wall_s >= 0.3);
        if cfg!(target_os = "linux") {
            let cpu = c.cpu_s.expect("linux reports CPU time");
            assert!(cpu >= 0.1, "a busy loop takes CPU time: {cpu}");
            assert!(c.load_before.is_some() && c.load_after.is_some());
            assert!(!c.disturbed, "no machine has a load above 1 000 cores");
        }
        let (_, idle) = measured("sleep", 1_000, false, || {
            std::thread::sleep(std::time::Duration::from_millis(300))
        });
        if let Some(cpu) = idle.cpu_s {
            assert!(cpu < 0.1, "sleeping takes no CPU time: {cpu}");
        }
    }
}
