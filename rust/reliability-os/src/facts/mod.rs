//! Host facts, read straight from `/proc`, `/sys` and a few system calls.
//!
//! This is what `reliability_facts` returns under `ansible_facts.reliability`: no Python on
//! the target, no `sysinfo`, no shell. Each group of [`reliability_core::subset`] is gathered
//! by its own submodule, in two layers:
//!
//! - a pure parser over the text of one kernel file (`parse_meminfo`, `parse_proc_stat`,
//!   `parse_mountinfo`, `parse_net_dev`, ...), tested on text captured from real hosts;
//! - a thin reader that fetches the text and hands it to the parser.
//!
//! A group that cannot be read is reported as `{"error": "..."}` in place of its facts
//! ([`Gathered::Failed`]); the other groups are unaffected, and nothing here panics. The
//! structs are plain data: their `///` comments are the source of the module's RETURN docs.
//!
//! Every path is resolved under a root directory, `/` in production, so the tests can
//! point the readers at a fake `/proc` and check how missing or odd files are reported.

mod cpu;
mod kernel;
mod load;
mod memory;
mod mounts;
mod network;
mod systemd;
mod uptime;

pub use cpu::{parse_cpu_model, parse_proc_stat, Cpu, ProcStat};
pub use kernel::{parse_os_release, Kernel, OsRelease};
pub use load::{parse_loadavg, Load};
pub use memory::{parse_meminfo, Memory};
pub use mounts::{
    disk_usage, parse_mountinfo, select_mounts, DiskUsage, Mount, MountEntry, Mounts, PSEUDO_FILESYSTEMS,
    STATVFS_TIMEOUT,
};
pub use network::{parse_net_dev, Address, Interface, Network};
pub use systemd::{parse_systemctl_version, Systemd};
pub use uptime::{parse_uptime, Uptime};

use reliability_core::subset::{Group, Subset};
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Everything `reliability_facts` reports. A group that was not asked for is absent.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Facts {
    /// The groups that were gathered, after `gather_subset` was applied.
    pub gather_subset: Vec<Group>,
    /// Processor count, model and utilisation over the sample interval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpu: Option<Gathered<Cpu>>,
    /// Load averages and task counts from `/proc/loadavg`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub load: Option<Gathered<Load>>,
    /// Memory and swap from `/proc/meminfo`, in bytes.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory: Option<Gathered<Memory>>,
    /// Mounted filesystems with their space and inode usage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mounts: Option<Gathered<Mounts>>,
    /// Network interfaces with their counters and addresses.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub network: Option<Gathered<Network>>,
    /// Time since boot.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uptime: Option<Gathered<Uptime>>,
    /// Kernel, hostname and distribution.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kernel: Option<Gathered<Kernel>>,
    /// Whether systemd runs the host, and which version.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub systemd: Option<Gathered<Systemd>>,
}

/// One group's facts, or why they could not be read.
///
/// Serialized without a tag: the group's own keys, or a lone `error` key.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Gathered<T> {
    /// The group was read.
    Ok(T),
    /// The group could not be read; `error` says which file and why.
    Failed {
        /// What failed, naming the file, e.g. `cannot read /proc/meminfo: No such file or
        /// directory (os error 2)`.
        error: String,
    },
}

impl<T> Gathered<T> {
    /// The facts, if the group was read.
    pub fn ok(&self) -> Option<&T> {
        match self {
            Gathered::Ok(t) => Some(t),
            Gathered::Failed { .. } => None,
        }
    }

    /// Why the group could not be read, if it could not.
    pub fn error(&self) -> Option<&str> {
        match self {
            Gathered::Ok(_) => None,
            Gathered::Failed { error } => Some(error),
        }
    }
}

impl<T> From<Result<T, String>> for Gathered<T> {
    fn from(result: Result<T, String>) -> Gathered<T> {
        match result {
            Ok(t) => Gathered::Ok(t),
            Err(error) => Gathered::Failed { error },
        }
    }
}

/// Gathers the groups in `subset` from this host.
///
/// `cpu_sample` is how long CPU usage is measured over (two reads of `/proc/stat`); zero
/// skips the measurement and reports usage as null. The other groups are read while the
/// sample runs, so the call takes about `max(cpu_sample, time to read the rest)`. Mounts
/// whose `statvfs` does not answer within [`STATVFS_TIMEOUT`] (a hung network filesystem)
/// are reported with an error.
pub fn gather(subset: &Subset, cpu_sample: Duration) -> Facts {
    gather_at(&Host::live(), subset, cpu_sample)
}

fn gather_at(host: &Host, subset: &Subset, cpu_sample: Duration) -> Facts {
    let want = |g: Group| subset.contains(g);
    // CPU count, load per core and boot time all come from /proc/stat: read it once. For
    // the CPU group this is also the first reading of the usage sample.
    let stat = (want(Group::Cpu) || want(Group::Load) || want(Group::Uptime))
        .then(|| host.read("/proc/stat").and_then(|text| parse_proc_stat(&text)));
    let sample_started = Instant::now();
    let stat = stat.as_ref();

    let mut facts = Facts {
        gather_subset: subset.groups().collect(),
        ..Facts::default()
    };
    if want(Group::Load) {
        facts.load = Some(load::gather(host, stat).into());
    }
    if want(Group::Memory) {
        facts.memory = Some(memory::gather(host).into());
    }
    if want(Group::Mounts) {
        facts.mounts = Some(mounts::gather(host).into());
    }
    if want(Group::Network) {
        facts.network = Some(network::gather(host).into());
    }
    if want(Group::Uptime) {
        facts.uptime = Some(uptime::gather(host, stat).into());
    }
    if want(Group::Kernel) {
        facts.kernel = Some(kernel::gather(host).into());
    }
    if want(Group::Systemd) {
        facts.systemd = Some(Gathered::Ok(systemd::gather(host)));
    }
    // Last, so that the sample interval overlaps the reads above.
    if let (true, Some(first)) = (want(Group::Cpu), stat) {
        facts.cpu = Some(cpu::gather(host, first, sample_started, cpu_sample).into());
    }
    facts
}

/// Where the readers find the machine: `/` in production, a fake tree in tests.
struct Host {
    root: PathBuf,
}

impl Host {
    fn live() -> Host {
        Host {
            root: PathBuf::from("/"),
        }
    }

    /// `path` (absolute, as the kernel documents it) under the root.
    fn path(&self, path: impl AsRef<Path>) -> PathBuf {
        let path = path.as_ref();
        self.root.join(path.strip_prefix("/").unwrap_or(path))
    }

    /// The whole file, or an error naming it.
    fn read(&self, path: &str) -> Result<String, String> {
        std::fs::read_to_string(self.path(path)).map_err(|e| format!("cannot read {path}: {e}"))
    }

    /// A one-line file (sysfs attributes, `/proc/1/comm`) without its newline; `None` if
    /// it is missing, unreadable or empty.
    fn read_line(&self, path: impl AsRef<Path>) -> Option<String> {
        let text = std::fs::read_to_string(self.path(path)).ok()?;
        let line = text.trim();
        (!line.is_empty()).then(|| line.to_string())
    }
}

/// `part` as a percentage of `whole`, to two decimals; `None` when `whole` is zero.
fn percent(part: f64, whole: f64) -> Option<f64> {
    (whole > 0.0).then(|| round2(part * 100.0 / whole))
}

/// Rounded to two decimals: the kernel's inputs are not more precise than that.
fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn fake_host() -> (tempfile::TempDir, Host) {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let host = Host {
            root: dir.path().to_path_buf(),
        };
        (dir, host)
    }

    fn write(host: &Host, path: &str, text: &str) {
        let path = host.path(path);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).unwrap_or_else(|e| panic!("mkdir {}: {e}", parent.display()));
        }
        fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }

    #[test]
    fn an_empty_root_gives_an_error_per_group_not_a_panic() {
        let (_dir, host) = fake_host();
        let facts = gather_at(&host, &Subset::all(), Duration::from_millis(10));
        let json = serde_json::to_value(&facts).unwrap_or_default();
        for (group, error) in [
            ("cpu", "cannot read /proc/stat: No such file or directory (os error 2)"),
            (
                "load",
                "cannot read /proc/loadavg: No such file or directory (os error 2)",
            ),
            (
                "memory",
                "cannot read /proc/meminfo: No such file or directory (os error 2)",
            ),
            (
                "mounts",
                "cannot read /proc/self/mountinfo: No such file or directory (os error 2)",
            ),
            (
                "network",
                "cannot read /proc/net/dev: No such file or directory (os error 2)",
            ),
            (
                "uptime",
                "cannot read /proc/uptime: No such file or directory (os error 2)",
            ),
        ] {
            assert_eq!(json[group], serde_json::json!({ "error": error }), "{group}");
        }
        // uname(2) needs no file; systemd is simply not running in an empty tree.
        assert!(facts.kernel.as_ref().and_then(Gathered::ok).is_some());
        assert_eq!(json["systemd"]["running"], false);
        assert_eq!(json["systemd"]["version"], serde_json::Value::Null);
    }

    #[test]
    fn groups_not_asked_for_are_absent() {
        let (_dir, host) = fake_host();
        let subset = reliability_core::subset::parse(&["!all".to_string(), "!min".to_string(), "memory".to_string()])
            .unwrap_or_else(|e| panic!("{e}"));
        let json = serde_json::to_value(gather_at(&host, &subset, Duration::ZERO)).unwrap_or_default();
        let keys: Vec<&str> = json
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        assert_eq!(keys, ["gather_subset", "memory"]);
        assert_eq!(json["gather_subset"], serde_json::json!(["memory"]));
    }

    #[test]
    fn a_fake_proc_is_read_through_the_parsers() {
        let (_dir, host) = fake_host();
        write(
            &host,
            "/proc/stat",
            "cpu  10 0 10 80 0 0 0 0 0 0\ncpu0 10 0 10 80 0 0 0 0 0 0\nbtime 1700000000\n",
        );
        write(&host, "/proc/loadavg", "0.50 0.25 0.10 2/100 1234\n");
        write(&host, "/proc/uptime", "100.25 150.00\n");
        write(
            &host,
            "/proc/net/dev",
            &format!(
                "{}  test0: 1 2 3 4 0 0 0 0 5 6 7 8 0 0 0 0\n",
                network::tests::NET_DEV_HEADER
            ),
        );
        write(&host, "/sys/class/net/test0/mtu", "9000\n");
        write(
            &host,
            "/proc/self/mountinfo",
            "30 1 0:99 / /nonexistent/reliability\\040test rw - ext4 /dev/fake rw\n",
        );
        let facts = gather_at(&host, &Subset::all(), Duration::ZERO);
        let json = serde_json::to_value(&facts).unwrap_or_default();
        assert_eq!(json["cpu"]["count"], 1);
        assert_eq!(json["cpu"]["usage_percent"], serde_json::Value::Null);
        assert_eq!(json["load"]["load1_per_core"], 0.5);
        assert_eq!(
            json["uptime"],
            serde_json::json!({ "seconds": 100.25, "boot_time": 1_700_000_000 })
        );
        assert_eq!(json["network"]["interfaces"][0]["name"], "test0");
        assert_eq!(json["network"]["interfaces"][0]["mtu"], 9000);
        assert_eq!(json["network"]["interfaces"][0]["operstate"], serde_json::Value::Null);
        // A statvfs failure stays on its own entry.
        let mount = &json["mounts"]["filesystems"][0];
        assert_eq!(mount["mount_point"], "/nonexistent/reliability test");
        assert_eq!(mount["error"], "statvfs: ENOENT: No such file or directory");
        assert_eq!(mount["size_total"], serde_json::Value::Null);
    }

    #[test]
    fn this_host() {
        let started = Instant::now();
        let facts = gather(&Subset::all(), Duration::ZERO);
        let elapsed = started.elapsed();
        for group in Group::ALL {
            let json = serde_json::to_value(&facts).unwrap_or_default();
            assert!(
                json[group.name()].get("error").is_none(),
                "{group}: {}",
                json[group.name()]
            );
        }
        let memory = facts
            .memory
            .as_ref()
            .and_then(Gathered::ok)
            .map(|m| m.total)
            .unwrap_or(0);
        assert!(memory > 0);
        let root = facts
            .mounts
            .as_ref()
            .and_then(Gathered::ok)
            .map(|m| m.filesystems.iter().any(|f| f.mount_point == "/"));
        assert_eq!(root, Some(true));
        assert!(elapsed < Duration::from_secs(2), "gather took {elapsed:?}");
    }
}
