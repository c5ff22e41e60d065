//! Host CPU busy between two readings of the aggregate `cpu` line of `/proc/stat`.
//!
//! A single reading says nothing about the present (its counters run since boot): usage is
//! the change between two, as `top` and `mpstat` compute it. `reliability_facts` takes both
//! readings in one run (a short sample); [`crate::cpu_sample`] keeps a run's reading for the
//! next. Reading `/proc/stat` is the OS layer's (`reliability_os::facts::parse_proc_stat`).

use serde::{Deserialize, Serialize};

/// The aggregate CPU times of `/proc/stat`, in clock ticks since boot.
///
/// `guest` and `guest_nice` are left out: the kernel already counts them in `user` and
/// `nice`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuTimes {
    pub user: u64,
    pub nice: u64,
    pub system: u64,
    pub idle: u64,
    pub iowait: u64,
    pub irq: u64,
    pub softirq: u64,
    pub steal: u64,
}

/// Utilisation between two [`CpuTimes`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CpuUsage {
    pub usage_percent: f64,
    pub iowait_percent: f64,
    pub steal_percent: f64,
}

impl CpuTimes {
    /// Every counter summed (saturating): the ticks of all CPUs since boot.
    pub fn total(&self) -> u64 {
        [
            self.user,
            self.nice,
            self.system,
            self.idle,
            self.iowait,
            self.irq,
            self.softirq,
            self.steal,
        ]
        .iter()
        .fold(0u64, |sum, t| sum.saturating_add(*t))
    }

    /// Utilisation from `earlier` to `self`; `None` if no tick passed in between.
    ///
    /// Each counter's change is clamped at zero: `iowait` is known to step backwards.
    pub fn usage_since(&self, earlier: &CpuTimes) -> Option<CpuUsage> {
        let delta = CpuTimes {
            user: self.user.saturating_sub(earlier.user),
            nice: self.nice.saturating_sub(earlier.nice),
            system: self.system.saturating_sub(earlier.system),
            idle: self.idle.saturating_sub(earlier.idle),
            iowait: self.iowait.saturating_sub(earlier.iowait),
            irq: self.irq.saturating_sub(earlier.irq),
            softirq: self.softirq.saturating_sub(earlier.softirq),
            steal: self.steal.saturating_sub(earlier.steal),
        };
        let total = delta.total() as f64;
        let busy = delta.total().saturating_sub(delta.idle).saturating_sub(delta.iowait) as f64;
        Some(CpuUsage {
            usage_percent: percent(busy, total)?,
            iowait_percent: percent(delta.iowait as f64, total)?,
            steal_percent: percent(delta.steal as f64, total)?,
        })
    }
}

/// `part` of `whole` in percent, two decimals (the kernel's inputs are not more precise);
/// `None` when `whole` is 0.
fn percent(part: f64, whole: f64) -> Option<f64> {
    (whole > 0.0).then(|| (part * 100.0 / whole * 100.0).round() / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn times(t: [u64; 8]) -> CpuTimes {
        CpuTimes {
            user: t[0],
            nice: t[1],
            system: t[2],
            idle: t[3],
            iowait: t[4],
            irq: t[5],
            softirq: t[6],
            steal: t[7],
        }
    }

    fn check_usage(earlier: [u64; 8], later: [u64; 8], expected: Option<(f64, f64, f64)>) {
        let got = times(later)
            .usage_since(&times(earlier))
            .map(|u| (u.usage_percent, u.iowait_percent, u.steal_percent));
        assert_eq!(got, expected, "{earlier:?} -> {later:?}");
    }

    #[test]
    fn usage() {
        check_usage([0; 8], [25, 0, 25, 40, 10, 0, 0, 0], Some((50.0, 10.0, 0.0)));
        check_usage(
            [100, 0, 100, 100, 0, 0, 0, 0],
            [130, 0, 100, 160, 0, 0, 0, 10],
            Some((40.0, 0.0, 10.0)),
        );
        // Nothing passed: no answer rather than NaN.
        check_usage([5; 8], [5; 8], None);
        // iowait stepped back: clamped, not wrapped.
        check_usage(
            [0, 0, 0, 0, 10, 0, 0, 0],
            [1, 0, 0, 2, 5, 0, 0, 0],
            Some((33.33, 0.0, 0.0)),
        );
    }

    #[test]
    fn total_saturates() {
        assert_eq!(times([1, 2, 3, 4, 5, 6, 7, 8]).total(), 36);
        assert_eq!(times([u64::MAX, 1, 0, 0, 0, 0, 0, 0]).total(), u64::MAX);
    }
}
