//! `cpu`: how many processors, which model, and how busy over a short sample.
//!
//! Usage is the change between two readings of the aggregate `cpu` line of `/proc/stat`,
//! as `top` and `mpstat` compute it ([`CpuTimes::usage_since`], in the core). A single
//! reading says nothing about the present (its counters run since boot), hence the sample
//! interval.

use super::{round2, Host};
use reliability_core::cpu_times::CpuTimes;
use serde::Serialize;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::time::{Duration, Instant};

/// The `cpu` group.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Cpu {
    /// Logical CPUs online (the `cpuN` lines of `/proc/stat`): the host's, whatever CPU
    /// limit a container is under.
    pub count: u32,
    /// Processor model as `/proc/cpuinfo` names it (`model name`, or the architecture's
    /// equivalent); null when the kernel reports none, as on most ARM64 hosts.
    pub model: Option<String>,
    /// Percent of all CPUs' time spent busy (neither idle nor waiting for I/O) during the
    /// sample; null when the sample interval is 0.
    pub usage_percent: Option<f64>,
    /// Percent of all CPUs' time spent idle with I/O outstanding during the sample; null when
    /// the sample interval is 0.
    pub iowait_percent: Option<f64>,
    /// Percent of all CPUs' time taken by the hypervisor for other guests during the sample;
    /// null when the sample interval is 0.
    pub steal_percent: Option<f64>,
    /// Length of the sample actually measured, in seconds; null when not sampled.
    pub sample_seconds: Option<f64>,
}

/// What the facts need from `/proc/stat`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcStat {
    /// The aggregate `cpu` line.
    pub cpu: CpuTimes,
    /// How many `cpuN` lines: the online CPUs.
    pub cpus: u32,
    /// `btime`: boot time, seconds since the epoch.
    pub btime: Option<u64>,
}

/// Reads `/proc/stat`. Fails only without an aggregate `cpu` line of at least four numbers.
pub fn parse_proc_stat(text: &str) -> Result<ProcStat, String> {
    let mut cpu = None;
    let mut cpus = 0u32;
    let mut btime = None;
    for line in text.lines() {
        let mut fields = line.split_ascii_whitespace();
        match fields.next() {
            Some("cpu") => {
                let n: Vec<u64> = fields.map_while(|f| f.parse().ok()).collect();
                let at = |i: usize| n.get(i).copied().unwrap_or(0);
                if n.len() >= 4 {
                    cpu = Some(CpuTimes {
                        user: at(0),
                        nice: at(1),
                        system: at(2),
                        idle: at(3),
                        iowait: at(4),
                        irq: at(5),
                        softirq: at(6),
                        steal: at(7),
                    });
                }
            }
            Some(name)
                if name
                    .strip_prefix("cpu")
                    .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) =>
            {
                cpus += 1;
            }
            Some("btime") => btime = fields.next().and_then(|f| f.parse().ok()),
            _ => {}
        }
    }
    let cpu = cpu.ok_or("/proc/stat: no aggregate 'cpu' line")?;
    Ok(ProcStat { cpu, cpus, btime })
}

/// The processor model in (the start of) `/proc/cpuinfo`, under whichever key the
/// architecture uses: `model name` (x86, some ARM), `Processor` (32-bit ARM), `cpu model`
/// (MIPS), `cpu` (POWER), `uarch` (RISC-V).
pub fn parse_cpu_model(text: &str) -> Option<String> {
    const KEYS: [&str; 5] = ["model name", "Processor", "cpu model", "cpu", "uarch"];
    let pairs: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim(), v.trim()))
        .collect();
    KEYS.iter()
        .find_map(|key| pairs.iter().find(|(k, v)| k == key && !v.is_empty()))
        .map(|(_, v)| v.to_string())
}

/// The `cpu` group. `first` is the reading taken when gathering started, at `started`.
pub(super) fn gather(
    host: &Host,
    first: &Result<ProcStat, String>,
    started: Instant,
    sample: Duration,
) -> Result<Cpu, String> {
    let first = first.as_ref().map_err(String::clone)?;
    let model = first_processor(host).and_then(|text| parse_cpu_model(&text));
    let mut cpu = Cpu {
        count: first.cpus,
        model,
        usage_percent: None,
        iowait_percent: None,
        steal_percent: None,
        sample_seconds: None,
    };
    if sample.is_zero() {
        return Ok(cpu);
    }
    std::thread::sleep(sample.saturating_sub(started.elapsed()));
    let second = host.read("/proc/stat").and_then(|text| parse_proc_stat(&text));
    cpu.sample_seconds = Some(round2(started.elapsed().as_secs_f64()));
    if let Some(usage) = second.ok().and_then(|s| s.cpu.usage_since(&first.cpu)) {
        cpu.usage_percent = Some(usage.usage_percent);
        cpu.iowait_percent = Some(usage.iowait_percent);
        cpu.steal_percent = Some(usage.steal_percent);
    }
    Ok(cpu)
}

/// `/proc/cpuinfo` up to the first blank line: the first processor's block. The kernel
/// formats the file per CPU as it is read, so stopping early keeps this cheap on big hosts.
fn first_processor(host: &Host) -> Option<String> {
    let file = File::open(host.path("/proc/cpuinfo")).ok()?;
    let mut text = String::new();
    for line in BufReader::new(file).lines() {
        let line = line.ok()?;
        if line.trim().is_empty() && !text.is_empty() {
            break;
        }
        text.push_str(&line);
        text.push('\n');
    }
    Some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured on the development VM (Debian 12, kernel 6.18, 2 vCPUs); `intr` and
    /// `softirq` shortened.
    const STAT: &str = "\
cpu  18422 0 5179 171435 464 0 162 118 0 0
cpu0 5076 0 1497 91108 58 0 81 62 0 0
cpu1 13346 0 3681 80326 406 0 80 56 0 0
intr 257298 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1 1 10 0 0
ctxt 353084
btime 1795423176
processes 7222
procs_running 2
procs_blocked 0
softirq 203875 0 28145 4 10077 40302 0 43 65027 0 60277
";

    fn check_stat(text: &str, expected: Result<ProcStat, &str>) {
        assert_eq!(parse_proc_stat(text), expected.map_err(str::to_string), "{text}");
    }

    #[test]
    fn proc_stat() {
        check_stat(
            STAT,
            Ok(ProcStat {
                cpu: CpuTimes {
                    user: 18422,
                    nice: 0,
                    system: 5179,
                    idle: 171435,
                    iowait: 464,
                    irq: 0,
                    softirq: 162,
                    steal: 118,
                },
                cpus: 2,
                btime: Some(1795423176),
            }),
        );
        // Kernels before 2.6.11 have no steal, before 2.5.41 no iowait.
        check_stat(
            "cpu 1 2 3 4\ncpu0 1 2 3 4\n",
            Ok(ProcStat {
                cpu: CpuTimes {
                    user: 1,
                    nice: 2,
                    system: 3,
                    idle: 4,
                    ..CpuTimes::default()
                },
                cpus: 1,
                btime: None,
            }),
        );
        check_stat("cpu0 1 2 3 4\nbtime 5\n", Err("/proc/stat: no aggregate 'cpu' line"));
        check_stat("cpu 1 2 3\n", Err("/proc/stat: no aggregate 'cpu' line"));
        check_stat("", Err("/proc/stat: no aggregate 'cpu' line"));
    }

    #[test]
    fn cpu_model() {
        let check =
            |text: &str, expected: Option<&str>| assert_eq!(parse_cpu_model(text).as_deref(), expected, "{text}");
        // Captured on the development VM (first lines of the first block).
        check(
            "processor\t: 0\nvendor_id\t: AuthenticAMD\ncpu family\t: 25\nmodel\t\t: 1\nmodel name\t: AMD EPYC\nstepping\t: 1\n",
            Some("AMD EPYC"),
        );
        check(
            "Processor\t: ARMv7 Processor rev 4 (v7l)\nprocessor\t: 0\nBogoMIPS\t: 38.40\n",
            Some("ARMv7 Processor rev 4 (v7l)"),
        );
        check(
            "processor\t: 0\ncpu\t\t: POWER9 (architected), altivec supported\nclock\t\t: 2200.000000MHz\n",
            Some("POWER9 (architected), altivec supported"),
        );
        check(
            "processor\t: 0\nhart\t\t: 1\nisa\t\t: rv64imafdc\nmmu\t\t: sv39\nuarch\t\t: sifive,u74-mc\n",
            Some("sifive,u74-mc"),
        );
        // ARM64: no model at all.
        check(
            "processor\t: 0\nBogoMIPS\t: 50.00\nFeatures\t: fp asimd\nCPU implementer\t: 0x41\n",
            None,
        );
        check("", None);
    }
}
