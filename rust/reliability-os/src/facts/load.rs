//! `load`: the load averages of `/proc/loadavg`, also divided by the CPU count so that
//! one threshold fits hosts of any size.

use super::{round2, Host, ProcStat};
use serde::Serialize;

/// The `load` group.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Load {
    /// Load average over the last minute: runnable plus uninterruptible tasks.
    pub load1: f64,
    /// Load average over the last 5 minutes.
    pub load5: f64,
    /// Load average over the last 15 minutes.
    pub load15: f64,
    /// `load1` divided by the online CPU count; null if the count is unknown.
    pub load1_per_core: Option<f64>,
    /// `load5` divided by the online CPU count; null if the count is unknown.
    pub load5_per_core: Option<f64>,
    /// `load15` divided by the online CPU count; null if the count is unknown.
    pub load15_per_core: Option<f64>,
    /// Tasks (threads) runnable at the moment of reading.
    pub tasks_running: u32,
    /// Tasks (threads) that exist.
    pub tasks_total: u32,
}

/// Reads `/proc/loadavg` (`0.27 0.15 0.08 1/91 5734`); `cpus` is the online CPU count.
pub fn parse_loadavg(text: &str, cpus: Option<u32>) -> Result<Load, String> {
    let bad = || format!("/proc/loadavg: unexpected content '{}'", text.trim());
    let fields: Vec<&str> = text.split_ascii_whitespace().collect();
    let load = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).ok_or_else(bad);
    let (load1, load5, load15) = (load(0)?, load(1)?, load(2)?);
    let (running, total) = fields.get(3).and_then(|f| f.split_once('/')).ok_or_else(bad)?;
    let per_core = |l: f64| cpus.filter(|n| *n > 0).map(|n| round2(l / f64::from(n)));
    Ok(Load {
        load1,
        load5,
        load15,
        load1_per_core: per_core(load1),
        load5_per_core: per_core(load5),
        load15_per_core: per_core(load15),
        tasks_running: running.parse().map_err(|_| bad())?,
        tasks_total: total.parse().map_err(|_| bad())?,
    })
}

pub(super) fn gather(host: &Host, stat: Option<&Result<ProcStat, String>>) -> Result<Load, String> {
    let cpus = stat.and_then(|s| s.as_ref().ok()).map(|s| s.cpus);
    parse_loadavg(&host.read("/proc/loadavg")?, cpus)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `expected` is the group as JSON, or the error.
    fn check(text: &str, cpus: Option<u32>, expected: &str) {
        let got = parse_loadavg(text, cpus).map(|l| serde_json::to_string(&l).unwrap_or_default());
        assert_eq!(got.unwrap_or_else(|e| e), expected, "{text:?}");
    }

    #[test]
    fn loadavg() {
        // Captured on the development VM (2 vCPUs).
        check(
            "0.27 0.15 0.08 1/91 5734\n",
            Some(2),
            r#"{"load1":0.27,"load5":0.15,"load15":0.08,"load1_per_core":0.14,"load5_per_core":0.08,"load15_per_core":0.04,"tasks_running":1,"tasks_total":91}"#,
        );
        check(
            "12.00 6.00 3.00 40/2000 99\n",
            Some(8),
            r#"{"load1":12.0,"load5":6.0,"load15":3.0,"load1_per_core":1.5,"load5_per_core":0.75,"load15_per_core":0.38,"tasks_running":40,"tasks_total":2000}"#,
        );
        for cpus in [None, Some(0)] {
            check(
                "1.00 1.00 1.00 1/10 1\n",
                cpus,
                r#"{"load1":1.0,"load5":1.0,"load15":1.0,"load1_per_core":null,"load5_per_core":null,"load15_per_core":null,"tasks_running":1,"tasks_total":10}"#,
            );
        }
        check("1.00 1.00\n", Some(1), "/proc/loadavg: unexpected content '1.00 1.00'");
        check(
            "1.00 1.00 1.00 x 1\n",
            Some(1),
            "/proc/loadavg: unexpected content '1.00 1.00 1.00 x 1'",
        );
        check("", Some(1), "/proc/loadavg: unexpected content ''");
    }
}
