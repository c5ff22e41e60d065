//! `resources`: the host's CPU, memory, swap, load, disks and network against levels.
//!
//! The numbers are the facts of [`reliability_os::facts`], read the way the usual tools
//! read them: CPU busy percent between two readings of `/proc/stat` (as `top`), memory used from
//! available memory (as `free`), disk and inode use of the filesystem holding each path,
//! rounded up (as `df` and `df -i`), load average per core, and network byte and error
//! rates from two readings of the interface counters.
//!
//! CPU busy costs no wait when a recent reading was kept: the previous run's (or the
//! monitor daemon's) under the state directory, between `cpu_sample` seconds and
//! `cpu_max_age` seconds old, serves as the first reading; otherwise the CPU is sampled over
//! `cpu_sample` seconds (see `reliability_os::cpu_sample`). The `cpu` result says which
//! (`source`) and over what window (`window_s`).
//!
//! Seed levels (warning/critical): CPU 70/90, memory 80/95, disk and inodes 85/95. The
//! others have no default levels and are reported with their value.
//!
//! One result per measure: `cpu`, `memory`, `swap`, `load`, `disk <path>`,
//! `inodes <path>` (filesystems with a fixed inode count), and per interface
//! `net <if> rx`, `net <if> tx`, `net <if> errors`.

use reliability_core::check::{CheckResult, Status, Unit};
use reliability_core::size::format_size;
use reliability_core::spec::{Kind, Opt, Spec};
use reliability_core::subset::{Group, Subset};
use reliability_core::threshold::Levels;
use reliability_os::cpu_sample::{self, HostCpu};
use reliability_os::facts::{self, disk_usage, DiskUsage, Gathered, Interface};
use serde::Deserialize;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::levels::{levels, size_levels, Problems};

/// The measures `include` may name.
pub const MEASURES: [&str; 6] = ["cpu", "memory", "swap", "load", "disk", "network"];

/// The `resources` option: one dict. Absent (null) unless given, so that a call with only
/// port checks does not also sample the CPU.
pub fn option() -> Opt {
    Opt::dict("resources").default(Value::Null).options(Spec::new(vec![
        Opt::list("include", Kind::Str)
            .choices(&MEASURES)
            .default(json!(["cpu", "memory", "swap", "load", "disk"])),
        Opt::raw("cpu_warning").default(70),
        Opt::raw("cpu_critical").default(90),
        Opt::float("cpu_sample").default(0.1).range(0.05, 60.0),
        Opt::float("cpu_max_age").default(300.0).range(0.0, 86400.0),
        Opt::raw("memory_warning").default(80),
        Opt::raw("memory_critical").default(95),
        Opt::raw("swap_warning"),
        Opt::raw("swap_critical"),
        Opt::raw("load_warning"),
        Opt::raw("load_critical"),
        Opt::list("disks", Kind::Path).default(json!(["/"])),
        Opt::raw("disk_warning").default(85),
        Opt::raw("disk_critical").default(95),
        Opt::raw("inode_warning").default(85),
        Opt::raw("inode_critical").default(95),
        Opt::list("interfaces", Kind::Str).default(json!([])),
        Opt::raw("net_rate_warning"),
        Opt::raw("net_rate_critical"),
        Opt::raw("net_errors_warning"),
        Opt::raw("net_errors_critical"),
    ]))
}

/// The `resources` dict as the spec validated it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceParams {
    pub include: Vec<String>,
    pub cpu_warning: Option<Value>,
    pub cpu_critical: Option<Value>,
    pub cpu_sample: f64,
    pub cpu_max_age: f64,
    pub memory_warning: Option<Value>,
    pub memory_critical: Option<Value>,
    pub swap_warning: Option<Value>,
    pub swap_critical: Option<Value>,
    pub load_warning: Option<Value>,
    pub load_critical: Option<Value>,
    pub disks: Vec<PathBuf>,
    pub disk_warning: Option<Value>,
    pub disk_critical: Option<Value>,
    pub inode_warning: Option<Value>,
    pub inode_critical: Option<Value>,
    pub interfaces: Vec<String>,
    pub net_rate_warning: Option<Value>,
    pub net_rate_critical: Option<Value>,
    pub net_errors_warning: Option<Value>,
    pub net_errors_critical: Option<Value>,
}

/// The resource checks, ready to run.
#[derive(Clone, Debug, PartialEq)]
pub struct ResourceCheck {
    pub cpu: Option<Levels>,
    /// The length of a fresh CPU sample, and the youngest kept reading used.
    pub cpu_sample: Duration,
    /// The oldest kept CPU reading used; zero: always sample.
    pub cpu_max_age: Duration,
    pub memory: Option<Levels>,
    pub swap: Option<Levels>,
    /// Load average over one minute, per core.
    pub load: Option<Levels>,
    /// Paths whose filesystems are checked; empty when disks are not included.
    pub disks: Vec<PathBuf>,
    pub disk: Levels,
    pub inodes: Levels,
    /// `None` when the network is not included; empty: every interface but `lo`.
    pub interfaces: Option<Vec<String>>,
    /// Bytes per second, received or sent.
    pub net_rate: Levels,
    /// Receive plus transmit errors per second.
    pub net_errors: Levels,
}

impl ResourceCheck {
    /// Validates what the spec cannot: the paths, the levels.
    pub fn compile(p: ResourceParams, path: &str, problems: &mut Problems) -> ResourceCheck {
        let has = |m: &str| p.include.iter().any(|i| i == m);
        for (i, disk) in p.disks.iter().enumerate() {
            if !disk.is_absolute() {
                problems.push(
                    &format!("{path}.disks[{i}]"),
                    format!("'{}' is not an absolute path", disk.display()),
                );
            }
        }
        for (i, name) in p.interfaces.iter().enumerate() {
            if name.is_empty() || name.contains(['/', ' ']) || name.len() > 15 {
                problems.push(
                    &format!("{path}.interfaces[{i}]"),
                    format!("'{name}' is not an interface name"),
                );
            }
        }
        let mut l =
            |name: &str, w: &Option<Value>, c: &Option<Value>| levels(path, name, w.as_ref(), c.as_ref(), problems);
        let cpu = l("cpu", &p.cpu_warning, &p.cpu_critical);
        let memory = l("memory", &p.memory_warning, &p.memory_critical);
        let swap = l("swap", &p.swap_warning, &p.swap_critical);
        let load = l("load", &p.load_warning, &p.load_critical);
        let disk = l("disk", &p.disk_warning, &p.disk_critical);
        let inodes = l("inode", &p.inode_warning, &p.inode_critical);
        let net_errors = l("net_errors", &p.net_errors_warning, &p.net_errors_critical);
        let net_rate = size_levels(
            path,
            "net_rate",
            p.net_rate_warning.as_ref(),
            p.net_rate_critical.as_ref(),
            problems,
        );
        ResourceCheck {
            cpu: has("cpu").then_some(cpu),
            cpu_sample: Duration::from_secs_f64(p.cpu_sample),
            cpu_max_age: Duration::from_secs_f64(p.cpu_max_age),
            memory: has("memory").then_some(memory),
            swap: has("swap").then_some(swap),
            load: has("load").then_some(load),
            disks: if has("disk") { p.disks } else { Vec::new() },
            disk,
            inodes,
            interfaces: has("network").then_some(p.interfaces),
            net_rate,
            net_errors,
        }
    }
}

/// Where the host's CPU reading is kept between runs.
#[derive(Clone, Copy, Debug)]
pub struct CpuStore<'a> {
    /// `None`: never read nor kept.
    pub state_dir: Option<&'a std::path::Path>,
    /// Whether this run keeps its reading (false in check mode).
    pub keep: bool,
}

/// Measures and judges everything asked for, with the warnings to pass on. The network is
/// sampled over `interval`; CPU busy comes from the kept reading or a `cpu_sample` long
/// sample at the same time; the filesystems are measured meanwhile.
pub fn run(check: &ResourceCheck, interval: Duration, store: CpuStore<'_>) -> (Vec<CheckResult>, Vec<String>) {
    let started = Instant::now();
    let groups = [
        (check.cpu.is_some(), Group::Cpu),
        (check.memory.is_some() || check.swap.is_some(), Group::Memory),
        (check.load.is_some(), Group::Load),
    ];
    let subset: Subset = groups.iter().filter(|(w, _)| *w).map(|(_, g)| *g).collect();
    let network: Subset = [Group::Network].into_iter().collect();
    let (facts, disks, net, host_cpu) = std::thread::scope(|scope| {
        // A thread only for filesystems to measure (a daemon's memory check each cycle
        // starts none).
        let disks = (!check.disks.is_empty()).then(|| scope.spawn(|| disk_usage(&check.disks)));
        let before = check
            .interfaces
            .as_ref()
            .map(|_| (Instant::now(), facts::gather(&network, Duration::ZERO)));
        let host_cpu = check.cpu.is_some().then(|| {
            scope.spawn(|| {
                cpu_sample::measure(cpu_sample::Options {
                    state_dir: store.state_dir,
                    fresh: check.cpu_sample,
                    max_age: check.cpu_max_age,
                    keep: store.keep,
                })
            })
        });
        let facts = facts::gather(&subset, Duration::ZERO);
        let net = before.map(|(t0, before)| {
            let rest = interval.saturating_sub(t0.elapsed());
            std::thread::sleep(rest);
            let after = facts::gather(&network, Duration::ZERO);
            (before, after, t0.elapsed())
        });
        let disks = disks.map_or_else(Vec::new, |d| {
            d.join()
                .unwrap_or_else(|_| vec![Err("the measurement failed".into()); check.disks.len()])
        });
        let host_cpu = host_cpu.map(|h| h.join().unwrap_or_else(|_| Err("the measurement failed".into())));
        (facts, disks, net, host_cpu)
    });
    let duration = started.elapsed();
    let mut results = Vec::new();
    let unknown =
        |name: &str, kind: &str, why: &str| CheckResult::unknown(name, kind, format!("{name}: {why}"), duration);

    let mut warnings = Vec::new();
    if let Some(levels) = &check.cpu {
        let count = facts.cpu.as_ref().map(gathered);
        results.push(match (count, host_cpu) {
            (Some(Ok(cpu)), Some(Ok(host))) => {
                warnings.extend(host.warnings.iter().cloned());
                judge_cpu(levels, cpu.count, &host, duration)
            }
            (Some(Err(e)), _) | (_, Some(Err(e))) => unknown("cpu", "cpu", &e),
            _ => unknown("cpu", "cpu", "not measured"),
        });
    }
    let memory = facts.memory.as_ref().map(gathered);
    if let Some(levels) = &check.memory {
        results.push(match &memory {
            Some(Ok(m)) => {
                let mut r = CheckResult::measured(
                    "memory",
                    "memory",
                    m.used_percent,
                    Some(Unit::Percent),
                    levels,
                    duration,
                );
                r.message = format!(
                    "{} ({} of {} used)",
                    r.message,
                    format_size(m.used as f64),
                    format_size(m.total as f64)
                );
                r.with_detail("total_bytes", m.total)
                    .with_detail("used_bytes", m.used)
                    .with_detail("available_bytes", m.available)
            }
            Some(Err(e)) => unknown("memory", "memory", e),
            None => unknown("memory", "memory", "not measured"),
        });
    }
    if let Some(levels) = &check.swap {
        results.push(match &memory {
            Some(Ok(m)) => {
                let mut r = CheckResult::measured(
                    "swap",
                    "swap",
                    m.swap_used_percent,
                    Some(Unit::Percent),
                    levels,
                    duration,
                );
                r.message = if m.swap_total == 0 {
                    "swap: none configured".to_string()
                } else {
                    format!(
                        "{} ({} of {} used)",
                        r.message,
                        format_size(m.swap_used as f64),
                        format_size(m.swap_total as f64)
                    )
                };
                r.with_detail("total_bytes", m.swap_total)
                    .with_detail("used_bytes", m.swap_used)
            }
            Some(Err(e)) => unknown("swap", "swap", e),
            None => unknown("swap", "swap", "not measured"),
        });
    }
    if let Some(levels) = &check.load {
        results.push(match facts.load.as_ref().map(gathered) {
            Some(Ok(load)) => match load.load1_per_core {
                Some(per_core) => {
                    let mut r = CheckResult::measured("load", "load", per_core, None, levels, duration);
                    r.message = format!(
                        "{} per core (load average {} {} {})",
                        r.message, load.load1, load.load5, load.load15
                    );
                    r.with_detail("load1", load.load1)
                        .with_detail("load5", load.load5)
                        .with_detail("load15", load.load15)
                        .with_detail("load5_per_core", load.load5_per_core)
                        .with_detail("load15_per_core", load.load15_per_core)
                }
                None => unknown("load", "load", "the CPU count is unknown"),
            },
            Some(Err(e)) => unknown("load", "load", &e),
            None => unknown("load", "load", "not measured"),
        });
    }
    for (path, usage) in check.disks.iter().zip(disks) {
        results.extend(judge_disk(check, path, usage, duration));
    }
    if let (Some(wanted), Some((before, after, elapsed))) = (&check.interfaces, net) {
        let read = |f: facts::Facts| {
            f.network
                .as_ref()
                .map(gathered)
                .map(|r| r.map(|n| n.interfaces.clone()))
        };
        match (read(before), read(after)) {
            (Some(Ok(before)), Some(Ok(after))) => {
                results.extend(judge_network(check, wanted, &before, &after, elapsed, duration));
            }
            (Some(Err(e)), _) | (_, Some(Err(e))) => results.push(unknown("network", "network", &e)),
            _ => results.push(unknown("network", "network", "not measured")),
        }
    }
    (results, warnings)
}

/// The `cpu` result of a measurement: busy against `levels`, with the window it covers
/// and where its first reading came from.
pub fn judge_cpu(levels: &Levels, count: u32, host: &HostCpu, duration: Duration) -> CheckResult {
    let window_s = (host.window.as_secs_f64() * 1000.0).round() / 1000.0;
    let Some(usage) = host.usage else {
        return CheckResult::unknown("cpu", "cpu", "cpu: no clock tick passed during the sample", duration)
            .with_detail("window_s", window_s)
            .with_detail("source", host.source.as_str());
    };
    let mut r = CheckResult::measured("cpu", "cpu", usage.usage_percent, Some(Unit::Percent), levels, duration)
        .with_detail("count", count)
        .with_detail("iowait_percent", usage.iowait_percent)
        .with_detail("steal_percent", usage.steal_percent)
        .with_detail("window_s", window_s)
        .with_detail("sample_seconds", window_s)
        .with_detail("source", host.source.as_str());
    if let Some(why) = host.sampled_because {
        r = r.with_detail("sampled_because", why);
    }
    if let Some(e) = &host.store_error {
        r = r.with_detail("state_error", e.clone());
    }
    r
}

fn gathered<T: Clone>(g: &Gathered<T>) -> Result<T, String> {
    match g {
        Gathered::Ok(t) => Ok(t.clone()),
        Gathered::Failed { error } => Err(error.clone()),
    }
}

/// `disk <path>` and, where the filesystem counts inodes, `inodes <path>`.
pub fn judge_disk(
    check: &ResourceCheck,
    path: &std::path::Path,
    usage: Result<DiskUsage, String>,
    duration: Duration,
) -> Vec<CheckResult> {
    let shown = path.display().to_string();
    let disk_name = format!("disk {shown}");
    let usage = match usage {
        Ok(u) => u,
        Err(e) => {
            return vec![CheckResult::unknown(
                &disk_name,
                "disk",
                format!("{disk_name}: {e}"),
                duration,
            )]
        }
    };
    let mut out = Vec::new();
    match usage.used_percent {
        Some(pct) => {
            let mut r = CheckResult::measured(
                &disk_name,
                "disk",
                f64::from(pct),
                Some(Unit::Percent),
                &check.disk,
                duration,
            );
            if let (Some(used), Some(avail), Some(total)) = (usage.size_used, usage.size_available, usage.size_total) {
                r.message = format!(
                    "{} ({} used, {} available of {})",
                    r.message,
                    format_size(used as f64),
                    format_size(avail as f64),
                    format_size(total as f64)
                );
            }
            out.push(
                r.with_detail("path", shown.clone())
                    .with_detail("size_total", usage.size_total)
                    .with_detail("size_used", usage.size_used)
                    .with_detail("size_available", usage.size_available),
            );
        }
        None => out.push(CheckResult::unknown(
            &disk_name,
            "disk",
            format!("{disk_name}: the filesystem reports no blocks"),
            duration,
        )),
    }
    if let Some(pct) = usage.inodes_used_percent {
        let name = format!("inodes {shown}");
        out.push(
            CheckResult::measured(
                &name,
                "inodes",
                f64::from(pct),
                Some(Unit::Percent),
                &check.inodes,
                duration,
            )
            .with_detail("path", shown)
            .with_detail("inodes_total", usage.inodes_total)
            .with_detail("inodes_used", usage.inodes_used),
        );
    }
    out
}

/// Rates of each wanted interface between two readings `elapsed` apart.
pub fn judge_network(
    check: &ResourceCheck,
    wanted: &[String],
    before: &[Interface],
    after: &[Interface],
    elapsed: Duration,
    duration: Duration,
) -> Vec<CheckResult> {
    let names: Vec<String> = if wanted.is_empty() {
        after.iter().map(|i| i.name.clone()).filter(|n| n != "lo").collect()
    } else {
        wanted.to_vec()
    };
    let seconds = elapsed.as_secs_f64().max(1e-6);
    let mut out = Vec::new();
    for name in names {
        let base = format!("net {name}");
        let (Some(b), Some(a)) = (
            before.iter().find(|i| i.name == name),
            after.iter().find(|i| i.name == name),
        ) else {
            out.push(CheckResult::unknown(
                &base,
                "network",
                format!("{base}: no such interface"),
                duration,
            ));
            continue;
        };
        let rate = |x: u64, y: u64| ((y.saturating_sub(x) as f64 / seconds) * 100.0).round() / 100.0;
        for (dir, value) in [
            ("rx", rate(b.rx_bytes, a.rx_bytes)),
            ("tx", rate(b.tx_bytes, a.tx_bytes)),
        ] {
            let rname = format!("{base} {dir}");
            let mut r = CheckResult::measured(&rname, "network", value, None, &check.net_rate, duration);
            let why = check
                .net_rate
                .explain_with(value, format_size)
                .map(|w| format!(" ({w}/s)"))
                .unwrap_or_default();
            r.message = format!("{rname} {}/s{why}", format_size(value));
            r.unit = Some("bytes/s".into());
            out.push(r.with_detail("interface", name.clone()));
        }
        let errors = rate(b.rx_errors + b.tx_errors, a.rx_errors + a.tx_errors);
        let ename = format!("{base} errors");
        let mut r = CheckResult::measured(&ename, "network", errors, None, &check.net_errors, duration);
        let why = check
            .net_errors
            .explain(errors)
            .map(|w| format!(" ({w})"))
            .unwrap_or_default();
        r.message = format!("{ename} {errors}/s{why}");
        r.unit = Some("errors/s".into());
        let mut r = r
            .with_detail("interface", name.clone())
            .with_detail("rx_errors", a.rx_errors)
            .with_detail("tx_errors", a.tx_errors)
            .with_detail("rx_dropped", a.rx_dropped)
            .with_detail("tx_dropped", a.tx_dropped)
            .with_detail("operstate", a.operstate.clone());
        // A link that was asked for by name and is down is an outage, whatever the rates.
        if !wanted.is_empty() && a.operstate.as_deref() == Some("down") {
            r.status = Status::Critical;
            r.message = format!("{base}: link down");
        }
        out.push(r);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> ResourceParams {
        ResourceParams {
            include: MEASURES.iter().map(|m| m.to_string()).collect(),
            cpu_warning: Some(json!(70)),
            cpu_critical: Some(json!(90)),
            cpu_sample: 0.1,
            cpu_max_age: 300.0,
            memory_warning: Some(json!(80)),
            memory_critical: Some(json!(95)),
            swap_warning: None,
            swap_critical: None,
            load_warning: None,
            load_critical: None,
            disks: vec!["/".into()],
            disk_warning: Some(json!(85)),
            disk_critical: Some(json!(95)),
            inode_warning: Some(json!(85)),
            inode_critical: Some(json!(95)),
            interfaces: vec!["eth0".into()],
            net_rate_warning: Some(json!("1M")),
            net_rate_critical: None,
            net_errors_warning: Some(json!(0)),
            net_errors_critical: None,
        }
    }

    fn compile(p: ResourceParams) -> Result<ResourceCheck, String> {
        let mut problems = Problems::default();
        let c = ResourceCheck::compile(p, "resources", &mut problems);
        if problems.is_empty() {
            Ok(c)
        } else {
            Err(problems.0.join("; "))
        }
    }

    #[test]
    fn bad_input_is_named() {
        let got = compile(ResourceParams {
            disks: vec!["var/lib".into()],
            interfaces: vec!["eth 0".into()],
            disk_warning: Some(json!("90:80")),
            net_rate_critical: Some(json!("fast")),
            ..params()
        });
        assert_eq!(
            got.map(|_| ()),
            Err("resources.disks[0]: 'var/lib' is not an absolute path; \
                 resources.interfaces[0]: 'eth 0' is not an interface name; \
                 resources.disk_warning: invalid range '90:80': start 90 is greater than end 80; \
                 resources.net_rate_critical: invalid size 'fast': 'fast' does not start with a number"
                .to_string())
        );
    }

    #[test]
    fn include_selects_measures() {
        let c = compile(ResourceParams {
            include: vec!["memory".into()],
            ..params()
        })
        .expect("valid");
        assert!(c.cpu.is_none() && c.memory.is_some() && c.disks.is_empty() && c.interfaces.is_none());
    }

    fn usage(used_percent: u32, inodes: Option<u32>) -> DiskUsage {
        DiskUsage {
            size_total: Some(4 << 20),
            size_used: Some(u64::from(used_percent) * (4 << 20) / 100),
            size_available: Some(u64::from(100 - used_percent) * (4 << 20) / 100),
            used_percent: Some(used_percent),
            inodes_total: inodes.map(|_| 1000),
            inodes_used: inodes.map(|p| u64::from(p) * 10),
            inodes_free: inodes.map(|p| 1000 - u64::from(p) * 10),
            inodes_used_percent: inodes,
        }
    }

    #[test]
    fn disks_by_df_percent() {
        let c = compile(params()).expect("valid");
        let show = |u: Result<DiskUsage, String>| -> Vec<String> {
            judge_disk(&c, std::path::Path::new("/srv"), u, Duration::ZERO)
                .iter()
                .map(|r| format!("{}: {}", r.status, r.message))
                .collect()
        };
        assert_eq!(
            show(Ok(usage(50, Some(10)))),
            [
                "ok: disk /srv is 50% (2 MiB used, 2 MiB available of 4 MiB)",
                "ok: inodes /srv is 10%"
            ]
        );
        assert_eq!(
            show(Ok(usage(92, None))),
            ["warning: disk /srv is 92% (warning: above 85) (3.68 MiB used, 327.68 KiB available of 4 MiB)"]
        );
        assert_eq!(
            show(Ok(usage(97, Some(99))))[1],
            "critical: inodes /srv is 99% (critical: above 95)"
        );
        assert_eq!(
            show(Err("statvfs: ENOENT: No such file or directory".into())),
            ["unknown: disk /srv: statvfs: ENOENT: No such file or directory"]
        );
    }

    fn iface(name: &str, rx: u64, tx: u64, errors: u64, state: &str) -> Interface {
        Interface {
            name: name.into(),
            rx_bytes: rx,
            tx_bytes: tx,
            rx_errors: errors,
            operstate: Some(state.into()),
            ..Interface::default()
        }
    }

    #[test]
    fn network_rates_between_two_readings() {
        let c = compile(params()).expect("valid");
        let before = [iface("lo", 0, 0, 0, "unknown"), iface("eth0", 0, 0, 0, "up")];
        let after = [iface("lo", 9, 9, 0, "unknown"), iface("eth0", 4 << 20, 1024, 3, "up")];
        let got: Vec<String> = judge_network(&c, &[], &before, &after, Duration::from_secs(2), Duration::ZERO)
            .iter()
            .map(|r| format!("{}: {} [{}]", r.status, r.message, r.unit.as_deref().unwrap_or("")))
            .collect();
        assert_eq!(
            got,
            [
                "warning: net eth0 rx 2 MiB/s (warning: above 1 MiB/s) [bytes/s]",
                "ok: net eth0 tx 512 B/s [bytes/s]",
                "warning: net eth0 errors 1.5/s (warning: above 0) [errors/s]",
            ]
        );
        let down = [iface("eth0", 0, 0, 0, "down")];
        let named = judge_network(
            &c,
            &["eth0".into(), "eth9".into()],
            &down,
            &down,
            Duration::from_secs(1),
            Duration::ZERO,
        );
        let got: Vec<String> = named.iter().map(|r| format!("{}: {}", r.status, r.message)).collect();
        assert_eq!(got[2], "critical: net eth0: link down");
        assert_eq!(got[3], "unknown: net eth9: no such interface");
    }
}
