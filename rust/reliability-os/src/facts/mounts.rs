//! `mounts`: the filesystems a person would call disks, with `df`'s numbers.
//!
//! The list comes from `/proc/self/mountinfo`, which (unlike `/proc/mounts`) carries the
//! device number and the root of each mount, so that bind mounts and stacked mounts can be
//! told apart. Three filters then leave roughly what `df` shows:
//!
//! 1. of several mounts on one mount point, only the last (the visible one) is kept;
//! 2. pseudo filesystems ([`PSEUDO_FILESYSTEMS`]) are skipped;
//! 3. one filesystem mounted in several places (bind mounts) is reported once, at the
//!    mount of its root, else at its shortest mount point; btrfs subvolumes share a device
//!    number but are separate filesystems to their users, so each is kept.
//!
//! Each is then measured with `statvfs(3)`; a mount reporting no blocks at all is dropped
//! (`df` hides those too). `statvfs` on a dead NFS server blocks for ever, so the calls run
//! on a few worker threads and a mount that has not answered within [`STATVFS_TIMEOUT`] is
//! reported with an error instead of hanging the module.

use super::Host;
use serde::Serialize;
use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

/// Filesystem types that are not storage: kernel interfaces, device and control
/// filesystems, automount triggers. `squashfs` is here too: snap and live images are
/// read-only and always 100% full, which says nothing about free space.
///
/// `tmpfs` and `overlay` are kept: tmpfs (`/run`, `/dev/shm`, `/tmp`) fills up like a
/// disk, and overlay is the root filesystem of a container.
pub const PSEUDO_FILESYSTEMS: &[&str] = &[
    "autofs",
    "binfmt_misc",
    "bpf",
    "cgroup",
    "cgroup2",
    "configfs",
    "debugfs",
    "devpts",
    "devtmpfs",
    "efivarfs",
    "fuse.gvfsd-fuse",
    "fuse.lxcfs",
    "fuse.portal",
    "fuse.snapfuse",
    "fusectl",
    "hugetlbfs",
    "mqueue",
    "nfsd",
    "nsfs",
    "proc",
    "pstore",
    "ramfs",
    "rootfs",
    "rpc_pipefs",
    "securityfs",
    "selinuxfs",
    "squashfs",
    "sysfs",
    "tracefs",
    "xenfs",
];

/// How long a mount's `statvfs` may take before it is reported as not answering.
pub const STATVFS_TIMEOUT: Duration = Duration::from_secs(5);

/// Threads measuring mounts: a hung mount holds one, the others carry on.
const STATVFS_WORKERS: usize = 4;

/// The `mounts` group.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Mounts {
    /// One entry per filesystem, in mount order.
    pub filesystems: Vec<Mount>,
}

/// One mounted filesystem.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Mount {
    /// What is mounted, as `mount` shows it (`/dev/sda1`, `server:/export`, `tmpfs`).
    pub device: String,
    /// Where it is mounted.
    pub mount_point: String,
    /// Filesystem type (`ext4`, `xfs`, `btrfs`, `tmpfs`, `overlay`, `nfs4`, ...).
    pub fstype: String,
    /// Mount options of this mount point (`rw,relatime`).
    pub options: String,
    /// Whether it is mounted read-only.
    pub read_only: bool,
    /// Space and inodes; every value is null if `error` is set.
    #[serde(flatten)]
    pub usage: DiskUsage,
    /// Why the filesystem could not be measured (e.g. `statvfs: EACCES: Permission
    /// denied`, a stale NFS handle, or no answer within 5 seconds); absent when it was.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Space and inode usage of a filesystem, computed as GNU `df` computes it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct DiskUsage {
    /// Size in bytes.
    pub size_total: Option<u64>,
    /// Bytes in use (size minus free).
    pub size_used: Option<u64>,
    /// Bytes available to unprivileged users (root may have more: the reserved blocks).
    pub size_available: Option<u64>,
    /// `size_used / (size_used + size_available)` as a whole percentage rounded up: the
    /// `Use%` of `df`.
    pub used_percent: Option<u32>,
    /// Inodes in the filesystem; null when it has no fixed inode count (btrfs, some
    /// network filesystems report 0).
    pub inodes_total: Option<u64>,
    /// Inodes in use; null as `inodes_total`.
    pub inodes_used: Option<u64>,
    /// Free inodes; null as `inodes_total`.
    pub inodes_free: Option<u64>,
    /// `inodes_used / inodes_total` as a whole percentage rounded up: the `IUse%` of
    /// `df -i`; null as `inodes_total`.
    pub inodes_used_percent: Option<u32>,
}

/// One line of `/proc/self/mountinfo`, with the octal escapes (`\040` for a space) undone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MountEntry {
    pub mount_id: u32,
    pub parent_id: u32,
    pub major: u32,
    pub minor: u32,
    /// The directory of the filesystem that is mounted here: `/` unless a bind mount.
    pub root: String,
    pub mount_point: PathBuf,
    /// Per-mount options.
    pub options: String,
    pub fstype: String,
    pub source: String,
    /// Per-filesystem options.
    pub super_options: String,
}

/// Reads `/proc/self/mountinfo` (see proc(5)). Malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<MountEntry> {
    text.lines().filter_map(parse_mountinfo_line).collect()
}

fn parse_mountinfo_line(line: &str) -> Option<MountEntry> {
    let fields: Vec<&str> = line.split(' ').collect();
    // Optional fields (`shared:1 master:2`) run from the 7th field to a lone `-`.
    let dash = fields.iter().skip(6).position(|f| *f == "-")? + 6;
    let (major, minor) = fields.get(2)?.split_once(':')?;
    let text = |i: usize| {
        fields
            .get(i)
            .map(|f| String::from_utf8_lossy(&unescape(f)).into_owned())
    };
    Some(MountEntry {
        mount_id: fields.first()?.parse().ok()?,
        parent_id: fields.get(1)?.parse().ok()?,
        major: major.parse().ok()?,
        minor: minor.parse().ok()?,
        root: text(3)?,
        mount_point: PathBuf::from(OsString::from_vec(unescape(fields.get(4)?))),
        options: text(5)?,
        fstype: text(dash + 1)?,
        source: text(dash + 2)?,
        super_options: text(dash + 3).unwrap_or_default(),
    })
}

/// Undoes the kernel's escaping of space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> Vec<u8> {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal {
            Some(d) => {
                let value = d.iter().fold(0u32, |v, b| v * 8 + u32::from(b - b'0'));
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

/// The entries worth reporting, in mount order: see the module docs for the three rules.
pub fn select_mounts(entries: &[MountEntry]) -> Vec<&MountEntry> {
    let mut visible: HashMap<&Path, usize> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        visible.insert(&e.mount_point, i);
    }
    let mut chosen: HashMap<(u32, u32, &str), usize> = HashMap::new();
    for (i, e) in entries.iter().enumerate() {
        if visible.get(e.mount_point.as_path()) != Some(&i) || PSEUDO_FILESYSTEMS.contains(&e.fstype.as_str()) {
            continue;
        }
        let subvolume = match e.fstype.as_str() {
            "btrfs" => e
                .super_options
                .split(',')
                .find(|o| o.starts_with("subvolid="))
                .unwrap_or(""),
            _ => "",
        };
        // `/` always stands for its filesystem: in a container it is a bind mount of some
        // directory, and a file bound from the same device (nspawn's
        // /run/host/os-release) must not hide it.
        let rank = |e: &MountEntry| {
            (
                e.mount_point != Path::new("/"),
                e.root.len(),
                e.mount_point.as_os_str().len(),
            )
        };
        chosen
            .entry((e.major, e.minor, subvolume))
            .and_modify(|best| {
                if entries.get(*best).is_some_and(|b| rank(e) < rank(b)) {
                    *best = i;
                }
            })
            .or_insert(i);
    }
    let mut keep: Vec<usize> = chosen.into_values().collect();
    keep.sort_unstable();
    keep.into_iter().filter_map(|i| entries.get(i)).collect()
}

/// The numbers `statvfs(3)` returns that `df` uses.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counts {
    fragment_size: u64,
    blocks: u64,
    blocks_free: u64,
    blocks_available: u64,
    files: u64,
    files_free: u64,
}

impl DiskUsage {
    fn from_counts(c: &Counts) -> DiskUsage {
        let used = c.blocks.saturating_sub(c.blocks_free);
        let bytes = |blocks: u64| blocks.saturating_mul(c.fragment_size);
        let inodes_used = c.files.saturating_sub(c.files_free);
        let has_inodes = c.files > 0;
        DiskUsage {
            size_total: Some(bytes(c.blocks)),
            size_used: Some(bytes(used)),
            size_available: Some(bytes(c.blocks_available)),
            used_percent: df_percent(used, c.blocks_available),
            inodes_total: has_inodes.then_some(c.files),
            inodes_used: has_inodes.then_some(inodes_used),
            inodes_free: has_inodes.then_some(c.files_free),
            inodes_used_percent: if has_inodes {
                df_percent(inodes_used, c.files_free)
            } else {
                None
            },
        }
    }
}

/// `used / (used + available)` in whole percent, rounded up, as GNU `df` does; `None` when
/// both are zero (`df` prints `-`).
fn df_percent(used: u64, available: u64) -> Option<u32> {
    let whole = u128::from(used) + u128::from(available);
    (whole > 0).then(|| u32::try_from((u128::from(used) * 100).div_ceil(whole)).unwrap_or(100))
}

#[allow(clippy::useless_conversion)] // the C types are narrower on 32-bit targets
fn statvfs(path: &Path) -> Result<Counts, String> {
    let s = nix::sys::statvfs::statvfs(path).map_err(|e| format!("statvfs: {e}"))?;
    Ok(Counts {
        fragment_size: u64::from(s.fragment_size()),
        blocks: u64::from(s.blocks()),
        blocks_free: u64::from(s.blocks_free()),
        blocks_available: u64::from(s.blocks_available()),
        files: u64::from(s.files()),
        files_free: u64::from(s.files_free()),
    })
}

/// `measure` applied to every path on up to `workers` threads, in order; a path not done
/// when `timeout` has passed gets an error. Threads stuck in a call are left behind: they
/// end when the call returns, or with the process.
fn measure_all(
    paths: Vec<PathBuf>,
    measure: fn(&Path) -> Result<Counts, String>,
    workers: usize,
    timeout: Duration,
) -> Vec<Result<Counts, String>> {
    let deadline = Instant::now() + timeout;
    let count = paths.len();
    let paths = Arc::new(paths);
    let next = Arc::new(AtomicUsize::new(0));
    let (tx, rx) = mpsc::channel();
    let mut started = 0;
    for _ in 0..workers.min(count) {
        let (paths, next, tx) = (Arc::clone(&paths), Arc::clone(&next), tx.clone());
        let worker = move || loop {
            let i = next.fetch_add(1, Ordering::Relaxed);
            let Some(path) = paths.get(i) else { break };
            if tx.send((i, measure(path))).is_err() {
                break;
            }
        };
        if thread::Builder::new()
            .name("statvfs".into())
            .stack_size(128 * 1024)
            .spawn(worker)
            .is_ok()
        {
            started += 1;
        }
    }
    drop(tx);
    if started == 0 {
        // No thread to spare: measure here, without the safety of a timeout.
        return paths.iter().map(|p| measure(p)).collect();
    }
    let mut results: Vec<Option<Result<Counts, String>>> = vec![None; count];
    let mut done = 0;
    while done < count {
        let Ok((i, result)) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) else {
            break;
        };
        if let Some(slot) = results.get_mut(i) {
            *slot = Some(result);
            done += 1;
        }
    }
    // Whatever is left is not started any more.
    next.store(count, Ordering::Relaxed);
    let late = format!(
        "statvfs: no answer within {}s (hung network filesystem?)",
        timeout.as_secs_f64()
    );
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(late.clone())))
        .collect()
}

/// Space and inodes of the filesystem holding each path, as `df PATH` reports them, in
/// order. A path that does not exist is an error naming it; a filesystem that does not
/// answer within [`STATVFS_TIMEOUT`] is an error too, and the others are unaffected.
pub fn disk_usage(paths: &[PathBuf]) -> Vec<Result<DiskUsage, String>> {
    measure_all(paths.to_vec(), statvfs, STATVFS_WORKERS, STATVFS_TIMEOUT)
        .into_iter()
        .map(|measured| measured.map(|c| DiskUsage::from_counts(&c)))
        .collect()
}

pub(super) fn gather(host: &Host) -> Result<Mounts, String> {
    let entries = parse_mountinfo(&host.read("/proc/self/mountinfo")?);
    let selected = select_mounts(&entries);
    let paths = selected.iter().map(|e| host.path(&e.mount_point)).collect();
    let measured = measure_all(paths, statvfs, STATVFS_WORKERS, STATVFS_TIMEOUT);
    let filesystems = selected
        .into_iter()
        .zip(measured)
        .filter_map(|(e, measured)| {
            let (usage, error) = match measured {
                Ok(c) if c.blocks == 0 => return None,
                Ok(c) => (DiskUsage::from_counts(&c), None),
                Err(error) => (DiskUsage::default(), Some(error)),
            };
            Some(Mount {
                device: e.source.clone(),
                mount_point: e.mount_point.to_string_lossy().into_owned(),
                fstype: e.fstype.clone(),
                options: e.options.clone(),
                read_only: e.options.split(',').any(|o| o == "ro"),
                usage,
                error,
            })
        })
        .collect();
    Ok(Mounts { filesystems })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Captured on the development VM (a Firecracker guest: no systemd, cgroup v1).
    const VM: &str = "\
22 27 0:21 / /proc rw,relatime - proc proc rw
23 27 0:22 / /sys rw,relatime - sysfs sysfs rw
24 27 0:6 / /dev rw,relatime - devtmpfs devtmpfs rw,size=12334432k,nr_inodes=3083608,mode=755
25 24 0:23 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=24683656k
26 24 0:24 / /dev/pts rw,relatime - devpts devpts rw,mode=600,ptmxmode=000
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard,resv_strict,resuid=65534,resgid=65534
28 27 0:25 / /mnt/sandboxing/model_tools_env/v1/python ro,nosuid,nodev,relatime - tmpfs model_tools_unavailable ro,size=4k,mode=755
29 26 0:26 / /dev/pts rw,relatime - devpts devpts rw,mode=600,ptmxmode=000
30 25 0:27 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=24683656k
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    /// A systemd host with btrfs subvolumes, a bind mount, a snap, a docker overlay, a path
    /// with a space and NFS; optional fields as systemd sets them (`shared:N`).
    const DESKTOP: &str = "\
21 1 0:19 /@ / rw,noatime shared:1 - btrfs /dev/nvme0n1p2 rw,ssd,space_cache=v2,subvolid=256,subvol=/@
22 21 0:19 /@home /home rw,noatime shared:2 - btrfs /dev/nvme0n1p2 rw,ssd,space_cache=v2,subvolid=257,subvol=/@home
23 21 0:20 / /proc rw,nosuid,nodev,noexec,relatime shared:5 - proc proc rw
24 21 259:1 / /boot/efi rw,relatime shared:3 - vfat /dev/nvme0n1p1 rw,fmask=0077,dmask=0077
25 21 0:25 / /run rw,nosuid,nodev,noexec,relatime shared:6 - tmpfs tmpfs rw,size=1620436k,mode=755
26 21 7:0 / /snap/core22/1380 ro,nodev,relatime shared:7 - squashfs /dev/loop0 ro,errors=continue
27 21 0:19 /@home/me/srv /srv/www rw,noatime shared:2 - btrfs /dev/nvme0n1p2 rw,ssd,space_cache=v2,subvolid=257,subvol=/@home
28 21 0:40 / /mnt/usb\\040disk rw,nosuid,nodev,relatime shared:8 - exfat /dev/sda1 rw,uid=1000
29 21 0:41 / /var/lib/docker/overlay2/abc/merged rw,relatime shared:9 - overlay overlay rw,lowerdir=/l,upperdir=/u,workdir=/w
30 21 0:42 / /net/home rw,relatime shared:10 - nfs4 fs1:/export/home rw,vers=4.2,rsize=1048576
31 25 0:43 / /run/user/1000 rw,nosuid,nodev,relatime shared:11 master:6 - tmpfs tmpfs rw,size=810216k,mode=700
";

    /// `expected`: one line per selected entry, `mount_point fstype source root`.
    fn check_selected(text: &str, expected: &[&str]) {
        let entries = parse_mountinfo(text);
        let got: Vec<String> = select_mounts(&entries)
            .iter()
            .map(|e| format!("{} {} {} {}", e.mount_point.display(), e.fstype, e.source, e.root))
            .collect();
        assert_eq!(got, expected);
    }

    #[test]
    fn selection_in_an_nspawn_container() {
        // Captured in a testhosts host: `/` is a bind of the ephemeral copy, and a file of
        // the same device is bound on /run/host/os-release.
        check_selected(
            "1092 1020 254:0 /var/cache/hx-reliability/testhosts/.#machine.abc / rw,relatime shared:1 - ext4 /dev/vda rw\n\
             1101 1092 254:0 /usr/lib/os-release /run/host/os-release ro,nosuid,nodev,noexec,relatime - ext4 /dev/vda rw\n\
             1102 1092 0:90 / /tmp rw,nosuid,nodev - tmpfs tmpfs rw,size=2468368k\n",
            &[
                "/ ext4 /dev/vda /var/cache/hx-reliability/testhosts/.#machine.abc",
                "/tmp tmpfs tmpfs /",
            ],
        );
    }

    #[test]
    fn selection_on_the_vm() {
        check_selected(
            VM,
            &[
                "/ ext4 /dev/vda /",
                "/mnt/sandboxing/model_tools_env/v1/python tmpfs model_tools_unavailable /",
                // The second /dev/shm hides the first.
                "/dev/shm tmpfs tmpfs /",
                "/sys/fs/cgroup tmpfs tmpfs /",
            ],
        );
    }

    #[test]
    fn selection_on_a_desktop() {
        check_selected(
            DESKTOP,
            &[
                "/ btrfs /dev/nvme0n1p2 /@",
                "/home btrfs /dev/nvme0n1p2 /@home",
                "/boot/efi vfat /dev/nvme0n1p1 /",
                "/run tmpfs tmpfs /",
                // /srv/www is a bind mount of a directory in /home: reported as /home.
                "/mnt/usb disk exfat /dev/sda1 /",
                "/var/lib/docker/overlay2/abc/merged overlay overlay /",
                "/net/home nfs4 fs1:/export/home /",
                "/run/user/1000 tmpfs tmpfs /",
            ],
        );
    }

    #[test]
    fn a_bind_mount_listed_first_yields_to_the_filesystem_root() {
        check_selected(
            "30 1 8:1 /data/www /srv rw - ext4 /dev/sdb1 rw\n31 1 8:1 / /data rw - ext4 /dev/sdb1 rw\n",
            &["/data ext4 /dev/sdb1 /"],
        );
    }

    #[test]
    fn mountinfo_fields_and_escapes() {
        let entries = parse_mountinfo(DESKTOP);
        let usb = entries.iter().find(|e| e.mount_id == 28);
        assert_eq!(
            usb,
            Some(&MountEntry {
                mount_id: 28,
                parent_id: 21,
                major: 0,
                minor: 40,
                root: "/".into(),
                mount_point: PathBuf::from("/mnt/usb disk"),
                options: "rw,nosuid,nodev,relatime".into(),
                fstype: "exfat".into(),
                source: "/dev/sda1".into(),
                super_options: "rw,uid=1000".into(),
            })
        );
        assert_eq!(unescape(r"a\040b\011c\012d\134e"), b"a b\tc\nd\\e");
        assert_eq!(unescape(r"trailing\04"), b"trailing\\04");
        assert_eq!(unescape(r"\777"), b"?");
        // Not a mountinfo line: no separator, too few fields, bad numbers.
        assert_eq!(parse_mountinfo("27 1 254:0 / / rw,relatime ext4 /dev/vda rw\n"), vec![]);
        assert_eq!(parse_mountinfo("27 1 254:0 / / - ext4\n"), vec![]);
        assert_eq!(parse_mountinfo("x 1 254:0 / / rw - ext4 /dev/vda rw\n"), vec![]);
        assert_eq!(parse_mountinfo(""), vec![]);
    }

    fn check_usage(counts: [u64; 6], expected: &str) {
        let [fragment_size, blocks, blocks_free, blocks_available, files, files_free] = counts;
        let c = Counts {
            fragment_size,
            blocks,
            blocks_free,
            blocks_available,
            files,
            files_free,
        };
        let got = serde_json::to_string(&DiskUsage::from_counts(&c)).unwrap_or_default();
        assert_eq!(got, expected, "{counts:?}");
    }

    #[test]
    fn usage_as_df_computes_it() {
        // The VM's root at the time `df -P` said: 264212084 1K-blocks, 12543404 used,
        // 82742484 available, 14%; and `df -i`: 16777216 inodes, 396325 used, 3%.
        check_usage(
            [4096, 66053021, 62917170, 20685621, 16777216, 16380891],
            r#"{"size_total":270553174016,"size_used":12844445696,"size_available":84728303616,"used_percent":14,"inodes_total":16777216,"inodes_used":396325,"inodes_free":16380891,"inodes_used_percent":3}"#,
        );
        // btrfs: no inode count.
        check_usage(
            [4096, 1000, 500, 400, 0, 0],
            r#"{"size_total":4096000,"size_used":2048000,"size_available":1638400,"used_percent":56,"inodes_total":null,"inodes_used":null,"inodes_free":null,"inodes_used_percent":null}"#,
        );
        // Full for users (reserved blocks left): 100%, like df.
        check_usage(
            [1024, 100, 5, 0, 10, 10],
            r#"{"size_total":102400,"size_used":97280,"size_available":0,"used_percent":100,"inodes_total":10,"inodes_used":0,"inodes_free":10,"inodes_used_percent":0}"#,
        );
        // Empty: df prints '-'.
        check_usage(
            [4096, 0, 0, 0, 0, 0],
            r#"{"size_total":0,"size_used":0,"size_available":0,"used_percent":null,"inodes_total":null,"inodes_used":null,"inodes_free":null,"inodes_used_percent":null}"#,
        );
    }

    fn slow_on_hung(path: &Path) -> Result<Counts, String> {
        if path.ends_with("hung") {
            thread::sleep(Duration::from_millis(500));
        }
        Ok(Counts {
            blocks: path.as_os_str().len() as u64,
            ..Counts::default()
        })
    }

    #[test]
    fn a_hung_mount_times_out_alone() {
        let paths: Vec<PathBuf> = ["/a", "/nfs/hung", "/bb", "/ccc", "/dddd", "/eeeee"]
            .iter()
            .map(PathBuf::from)
            .collect();
        let started = Instant::now();
        let got: Vec<Result<u64, String>> = measure_all(paths, slow_on_hung, 2, Duration::from_millis(100))
            .into_iter()
            .map(|r| r.map(|c| c.blocks))
            .collect();
        assert!(started.elapsed() < Duration::from_millis(400));
        let late = Err("statvfs: no answer within 0.1s (hung network filesystem?)".to_string());
        assert_eq!(got, [Ok(2), late, Ok(3), Ok(4), Ok(5), Ok(6)]);
    }

    #[test]
    fn disk_usage_of_paths_in_order() {
        let got = disk_usage(&[PathBuf::from("/"), PathBuf::from("/nonexistent/x")]);
        let root = got[0].as_ref().map(|u| u.used_percent.is_some());
        assert_eq!(root, Ok(true));
        assert_eq!(got[1], Err("statvfs: ENOENT: No such file or directory".to_string()));
    }
}
