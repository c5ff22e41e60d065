//! `memory`: `/proc/meminfo`, with `used` computed as procps `free` computes it.

use super::{percent, Host};
use serde::Serialize;
use std::collections::HashMap;

/// The `memory` group. Every amount is in bytes.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Memory {
    /// Usable RAM (`MemTotal`): the host's, whatever memory limit a container is under.
    pub total: u64,
    /// RAM not used for anything (`MemFree`).
    pub free: u64,
    /// RAM available to start new applications without swapping (`MemAvailable`; on
    /// kernels older than 3.14, estimated as free + buffers + cached).
    pub available: u64,
    /// `total - available`, the `used` column of procps `free` 4.x.
    pub used: u64,
    /// `used` as a percentage of `total`, two decimals.
    pub used_percent: f64,
    /// Block device buffers (`Buffers`).
    pub buffers: u64,
    /// Page cache and reclaimable slab (`Cached + SReclaimable`), as `free` counts "cache".
    pub cached: u64,
    /// Shared memory, tmpfs included (`Shmem`).
    pub shared: u64,
    /// Swap space (`SwapTotal`); 0 without swap.
    pub swap_total: u64,
    /// Unused swap (`SwapFree`).
    pub swap_free: u64,
    /// `swap_total - swap_free`.
    pub swap_used: u64,
    /// `swap_used` as a percentage of `swap_total`, two decimals; 0 without swap.
    pub swap_used_percent: f64,
}

/// Reads `/proc/meminfo`. Fails only without `MemTotal` or `MemFree`.
pub fn parse_meminfo(text: &str) -> Result<Memory, String> {
    let values: HashMap<&str, u64> = text
        .lines()
        .filter_map(|line| {
            let (key, rest) = line.split_once(':')?;
            let mut rest = rest.split_ascii_whitespace();
            let n: u64 = rest.next()?.parse().ok()?;
            let scale = if rest.next() == Some("kB") { 1024 } else { 1 };
            Some((key.trim(), n.saturating_mul(scale)))
        })
        .collect();
    let required = |key: &str| {
        values
            .get(key)
            .copied()
            .ok_or_else(|| format!("/proc/meminfo: no '{key}' line"))
    };
    let optional = |key: &str| values.get(key).copied().unwrap_or(0);

    let total = required("MemTotal")?;
    let free = required("MemFree")?;
    let buffers = optional("Buffers");
    let cached = optional("Cached").saturating_add(optional("SReclaimable"));
    let available = values
        .get("MemAvailable")
        .copied()
        .unwrap_or_else(|| free.saturating_add(buffers).saturating_add(cached))
        .min(total);
    let used = total.saturating_sub(available);
    let swap_total = optional("SwapTotal");
    let swap_free = optional("SwapFree").min(swap_total);
    let swap_used = swap_total - swap_free;
    Ok(Memory {
        total,
        free,
        available,
        used,
        used_percent: percent(used as f64, total as f64).unwrap_or(0.0),
        buffers,
        cached,
        shared: optional("Shmem"),
        swap_total,
        swap_free,
        swap_used,
        swap_used_percent: percent(swap_used as f64, swap_total as f64).unwrap_or(0.0),
    })
}

pub(super) fn gather(host: &Host) -> Result<Memory, String> {
    parse_meminfo(&host.read("/proc/meminfo")?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured on the development VM (Debian 12, kernel 6.18, no swap); cut after `Slab`.
    /// `free -b` said at the time: total 25276063744, used 399642624 (within a second).
    const VM: &str = "\
MemTotal:       24683656 kB
MemFree:        24009440 kB
MemAvailable:   24293508 kB
Buffers:            9056 kB
Cached:           452636 kB
SwapCached:            0 kB
Active:           132980 kB
Inactive:         373028 kB
Unevictable:       10468 kB
Mlocked:            8896 kB
SwapTotal:             0 kB
SwapFree:              0 kB
Zswap:                 0 kB
Zswapped:              0 kB
Dirty:               484 kB
Writeback:             0 kB
AnonPages:         54836 kB
Mapped:            22412 kB
Shmem:              8952 kB
KReclaimable:      79080 kB
Slab:             100808 kB
SReclaimable:      79080 kB
SUnreclaim:        21728 kB
HugePages_Total:       0
Hugepagesize:       2048 kB
";

    /// `expected` is the group as JSON, or the error.
    fn check(text: &str, expected: &str) {
        let got = parse_meminfo(text).map(|m| serde_json::to_string(&m).unwrap_or_default());
        assert_eq!(got.unwrap_or_else(|e| e), expected);
    }

    #[test]
    fn meminfo() {
        check(
            VM,
            r#"{"total":25276063744,"free":24585666560,"available":24876552192,"used":399511552,"used_percent":1.58,"buffers":9273344,"cached":544477184,"shared":9166848,"swap_total":0,"swap_free":0,"swap_used":0,"swap_used_percent":0.0}"#,
        );
        // With swap in use, and from a kernel without MemAvailable (before 3.14).
        check(
            "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 250 kB\nSwapTotal: 400 kB\nSwapFree: 300 kB\n",
            r#"{"total":1024000,"free":102400,"available":409600,"used":614400,"used_percent":60.0,"buffers":51200,"cached":256000,"shared":0,"swap_total":409600,"swap_free":307200,"swap_used":102400,"swap_used_percent":25.0}"#,
        );
        check("MemFree: 1 kB\n", "/proc/meminfo: no 'MemTotal' line");
        check("MemTotal: x kB\nMemFree: 1 kB\n", "/proc/meminfo: no 'MemTotal' line");
        check("", "/proc/meminfo: no 'MemTotal' line");
    }
}
