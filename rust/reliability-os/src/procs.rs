//! Processes from `/proc`.
//!
//! The process table is read directly from `/proc/PID/{stat,status,cmdline,exe,fd}`: a few
//! small reads per process, no crate, and exactly the kernel's numbers. Processes come and go
//! while the table is read; one that vanishes half-way is left out rather than reported half
//! (or as an error), because it no longer exists.
//!
//! The parsers are pure functions over text so they are tested on captured samples. The one
//! trap is `/proc/PID/stat`: its second field is the command name in parentheses, and that
//! name may itself contain spaces and parentheses (`(a) b (c)`), so the fields after it are
//! found from the LAST `)`.
//!
//! CPU use is a rate, so it needs two samples: [`sample_cpu`] reads utime+stime twice and
//! [`cpu_percent`] turns the difference into percent of one core, as `top` shows it.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::small_file::{self, Follow, SmallFileError};

/// The largest pidfile read (PostgreSQL's, the longest usual one, is under 200 bytes).
pub const MAX_PIDFILE_BYTES: u64 = 64 << 10;

/// One process, as `/proc` describes it at the moment it was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcInfo {
    pub pid: u32,
    pub ppid: u32,
    /// The kernel's command name (`comm`, at most 15 bytes), e.g. `sshd`.
    pub name: String,
    /// The executable; `None` for kernel threads or when not readable (another user's
    /// process without root). Ends in ` (deleted)` when the file was replaced since start.
    pub exe: Option<String>,
    /// The arguments, `argv[0]` first; empty for kernel threads and zombies.
    pub cmdline: Vec<String>,
    /// Real user id.
    pub uid: u32,
    /// Effective user id (the one permission checks use).
    pub euid: u32,
    /// Name of the effective user from `/etc/passwd`, as `ps` and `top` show it.
    pub user: Option<String>,
    /// `R` running, `S` sleeping, `D` disk sleep, `Z` zombie, `T` stopped, `I` idle, ...
    pub state: char,
    pub rss_bytes: u64,
    /// Virtual memory size in bytes.
    pub vsize: u64,
    pub threads: u32,
    /// When the process started, in clock ticks since boot (see [`clock_ticks_per_second`]).
    pub start_time_ticks: u64,
    /// CPU time in user mode, clock ticks.
    pub utime_ticks: u64,
    /// CPU time in kernel mode, clock ticks.
    pub stime_ticks: u64,
    /// Open file descriptors (see [`count_fds`]); `None` when they cannot be counted.
    pub open_fds: Option<u32>,
}

/// The fields of `/proc/PID/stat` that [`ProcInfo`] uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    pub pid: u32,
    pub comm: String,
    pub state: char,
    pub ppid: u32,
    pub utime: u64,
    pub stime: u64,
    pub num_threads: u32,
    pub start_time: u64,
    pub vsize: u64,
    pub rss_pages: u64,
    /// The kernel's `PF_*` flags of the task (field 9).
    pub flags: u64,
}

/// `PF_KTHREAD` (include/linux/sched.h): the task is a kernel thread.
const PF_KTHREAD: u64 = 0x0020_0000;

impl Stat {
    /// A kernel thread: no command line, no executable, nothing of it to read but `stat`.
    pub fn kernel_thread(&self) -> bool {
        self.flags & PF_KTHREAD != 0
    }
}

/// The fields of `/proc/PID/status` that [`ProcInfo`] uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status {
    /// Thread group id: equal to the pid for a process, different for one of its threads.
    pub tgid: u32,
    pub uid: u32,
    pub euid: u32,
    pub state: char,
}

#[derive(Debug, thiserror::Error)]
pub enum ProcError {
    #[error("pidfile {path} does not exist")]
    PidfileMissing { path: PathBuf },
    /// Not a regular file, too large for a pidfile, or unreadable.
    #[error("unusable pidfile: {source}")]
    PidfileUnreadable { path: PathBuf, source: SmallFileError },
    /// The content is not quoted: the path may name any file (`/etc/shadow`).
    #[error("pidfile {path} does not hold a pid on its first line")]
    NotAPid { path: PathBuf },
    #[error("pid {pid} from {path} is not running")]
    PidNotRunning { pid: u32, path: PathBuf },
    #[error("no process with pid {pid}")]
    NoSuchProcess { pid: u32 },
    #[error("cannot read {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("cannot parse {path}: '{content}'")]
    Unparsable { path: PathBuf, content: String },
}

/// What a reading of the process table reads of each process besides `stat` (pid, name,
/// parent, state, memory, threads, start time and CPU counters are always read). A part
/// not read is left empty in [`ProcInfo`]: no `cmdline`, no `exe`, uids 0 and no `user`,
/// no `open_fds`. Each part costs about as much as `stat` itself (`/proc/PID/fd` more,
/// with many descriptors), so a reading that only selects processes skips what the
/// selection does not look at and reads the chosen few for the rest ([`read_processes`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fields {
    pub cmdline: bool,
    pub exe: bool,
    /// `status` (real and effective uid) and the user name of the effective uid.
    pub owner: bool,
    pub fds: bool,
}

impl Fields {
    pub const ALL: Fields = Fields {
        cmdline: true,
        exe: true,
        owner: true,
        fds: true,
    };
    pub const STAT: Fields = Fields {
        cmdline: false,
        exe: false,
        owner: false,
        fds: false,
    };

    /// Every part either reads.
    #[must_use]
    pub fn union(self, other: Fields) -> Fields {
        Fields {
            cmdline: self.cmdline || other.cmdline,
            exe: self.exe || other.exe,
            owner: self.owner || other.owner,
            fds: self.fds || other.fds,
        }
    }

    /// Whether a reading of `self` has every part `other` asks for.
    pub fn covers(self, other: Fields) -> bool {
        self.union(other) == self
    }
}

/// Every process on the host, ordered by pid. Processes that end while being read are
/// left out.
pub fn list_processes() -> Vec<ProcInfo> {
    list_processes_with(Fields::ALL)
}

/// Every process on the host with the parts `fields` names, ordered by pid.
pub fn list_processes_with(fields: Fields) -> Vec<ProcInfo> {
    let users = if fields.owner { read_users() } else { Arc::default() };
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut procs: Vec<ProcInfo> = dir
        .filter_map(Result::ok)
        .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| read_process_with(pid, &users, fields).ok())
        .collect();
    procs.sort_by_key(|p| p.pid);
    procs
}

/// One process by pid.
pub fn read_process(pid: u32) -> Result<ProcInfo, ProcError> {
    read_process_with(pid, &read_users(), Fields::ALL)
}

/// The processes `pids` names, read with `fields` (`/etc/passwd` once, when the owner is
/// asked for), in the given order; those that ended are left out.
pub fn read_processes(pids: &[u32], fields: Fields) -> Vec<ProcInfo> {
    if pids.is_empty() {
        return Vec::new();
    }
    let users = if fields.owner { read_users() } else { Arc::default() };
    pids.iter()
        .filter_map(|&pid| read_process_with(pid, &users, fields).ok())
        .collect()
}

fn read_process_with(pid: u32, users: &HashMap<u32, String>, fields: Fields) -> Result<ProcInfo, ProcError> {
    let dir = PathBuf::from(format!("/proc/{pid}"));
    let stat = read_stat(pid)?;
    let status = if fields.owner {
        let status_path = dir.join("status");
        let status_text = read_proc_file(pid, &status_path)?;
        Some(parse_status(&status_text).ok_or_else(|| unparsable(&status_path, &status_text))?)
    } else {
        None
    };
    // A kernel thread's `cmdline` is empty and `exe` unreadable: not asked for (most of a
    // host's processes are kernel threads: two opens each saved per reading of the table).
    let cmdline = if fields.cmdline && !stat.kernel_thread() {
        read_all(&dir.join("cmdline"))
            .map(|bytes| parse_cmdline(&bytes))
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    let exe = if fields.exe && !stat.kernel_thread() {
        fs::read_link(dir.join("exe"))
            .ok()
            .map(|p| p.to_string_lossy().into_owned())
    } else {
        None
    };
    let open_fds = if fields.fds { count_fds(&dir.join("fd")) } else { None };
    Ok(ProcInfo {
        pid,
        ppid: stat.ppid,
        name: stat.comm,
        exe,
        cmdline,
        uid: status.map_or(0, |s| s.uid),
        euid: status.map_or(0, |s| s.euid),
        user: status.and_then(|s| users.get(&s.euid).cloned()),
        state: stat.state,
        rss_bytes: stat.rss_pages.saturating_mul(page_size()),
        vsize: stat.vsize,
        threads: stat.num_threads,
        start_time_ticks: stat.start_time,
        utime_ticks: stat.utime,
        stime_ticks: stat.stime,
        open_fds,
    })
}

fn read_stat(pid: u32) -> Result<Stat, ProcError> {
    let path = PathBuf::from(format!("/proc/{pid}/stat"));
    // One read into a buffer on the stack: `stat` is one line of a few hundred bytes, which
    // the kernel makes whole for a read with room for it (no second read to see the end,
    // no allocation: this is read for every process of every reading of the table). A
    // line that fills the buffer is read again, whole.
    let mut buf = [0u8; 2048];
    let read = fs::File::open(&path).and_then(|mut f| loop {
        match f.read(&mut buf) {
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            other => return other,
        }
    });
    let text: Cow<'_, str> = match read {
        Ok(n) if n < buf.len() => Cow::Borrowed(
            std::str::from_utf8(&buf[..n])
                .map_err(|e| proc_error(pid, &path, std::io::Error::new(ErrorKind::InvalidData, e)))?,
        ),
        Ok(_) => Cow::Owned(read_proc_file(pid, &path)?),
        Err(source) => return Err(proc_error(pid, &path, source)),
    };
    parse_stat(&text).ok_or_else(|| unparsable(&path, &text))
}

/// The bytes of a `/proc` file: opened and read to its end, nothing else. (`fs::read`
/// asks the file's size first, which `/proc` files do not have: a system call per file
/// for nothing, a few thousand per reading of the table.)
fn read_all(path: &Path) -> std::io::Result<Vec<u8>> {
    let mut file = fs::File::open(path)?;
    let mut bytes = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match file.read(&mut chunk) {
            Ok(0) => return Ok(bytes),
            Ok(n) => bytes.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The descriptors open in a `/proc/PID/fd` (or `/proc/self/fd`) directory; `None` when it
/// cannot be read. Since Linux 6.2 the directory's size is that count: one `stat`, where
/// reading the directory costs a system call per few hundred descriptors and an entry
/// each. A size of 0 (an older kernel, or no descriptor) is checked by reading it; read
/// so, `/proc/self/fd` counts one more: the descriptor reading it.
pub fn count_fds(path: &Path) -> Option<u32> {
    if let Ok(meta) = fs::metadata(path) {
        if meta.len() > 0 {
            return Some(u32::try_from(meta.len()).unwrap_or(u32::MAX));
        }
    }
    fs::read_dir(path)
        .ok()
        .map(|d| u32::try_from(d.count()).unwrap_or(u32::MAX))
}

/// Read a file under `/proc/PID`; "gone" (ENOENT, ESRCH) means the process ended.
fn read_proc_file(pid: u32, path: &Path) -> Result<String, ProcError> {
    read_all(path)
        .and_then(|bytes| String::from_utf8(bytes).map_err(|e| std::io::Error::new(ErrorKind::InvalidData, e)))
        .map_err(|source| proc_error(pid, path, source))
}

/// An error reading `path` of process `pid`: "gone" when the process ended.
fn proc_error(pid: u32, path: &Path, source: std::io::Error) -> ProcError {
    if source.kind() == ErrorKind::NotFound || source.raw_os_error() == Some(libc::ESRCH) {
        ProcError::NoSuchProcess { pid }
    } else {
        ProcError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

fn unparsable(path: &Path, content: &str) -> ProcError {
    ProcError::Unparsable {
        path: path.to_owned(),
        content: shorten(content),
    }
}

/// The pid in a pidfile. Errors say which of the three usual things is wrong: no file, not a
/// number, or no such process (a stale pidfile); and refuse, at once, a path that is no
/// regular file (a FIFO would hang the read, `/dev/zero` never end) or a file larger than
/// [`MAX_PIDFILE_BYTES`]. A link is followed (`/run/x.pid` may be one). No error quotes the
/// file: the path may name any file (`/etc/shadow`) and this code may run as root.
pub fn read_pidfile(path: impl AsRef<Path>) -> Result<u32, ProcError> {
    let path = path.as_ref();
    let bytes = small_file::read(path, MAX_PIDFILE_BYTES, Follow::Yes).map_err(|source| {
        if source.is_missing() {
            ProcError::PidfileMissing { path: path.to_owned() }
        } else {
            ProcError::PidfileUnreadable {
                path: path.to_owned(),
                source,
            }
        }
    })?;
    let text = String::from_utf8_lossy(&bytes);
    let pid = parse_pid(&text).ok_or_else(|| ProcError::NotAPid { path: path.to_owned() })?;
    if !pid_running(pid) {
        return Err(ProcError::PidNotRunning {
            pid,
            path: path.to_owned(),
        });
    }
    Ok(pid)
}

/// The pid on the first line of a pidfile (some, like PostgreSQL's, carry more lines).
pub fn parse_pid(text: &str) -> Option<u32> {
    let first = text.lines().next()?.trim();
    if !first.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    first.parse().ok().filter(|&pid| pid > 0)
}

/// True when `pid` is a live process: not a zombie, and not merely one thread of another
/// process (`/proc/TID` exists for threads too).
pub fn pid_running(pid: u32) -> bool {
    fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|text| parse_status(&text))
        .is_some_and(|s| s.tgid == pid && !matches!(s.state, 'Z' | 'X' | 'x'))
}

/// Where the cgroup hierarchy that holds every process is mounted, in the order tried: the
/// cgroup v2 tree of a hybrid host, systemd's own named v1 hierarchy, the unified v2 root.
pub const CGROUP_ROOTS: &[&str] = &["/sys/fs/cgroup/unified", "/sys/fs/cgroup/systemd", "/sys/fs/cgroup"];

/// The processes in cgroup `path` (as systemd's `ControlGroup=` names it, e.g.
/// `/system.slice/nginx.service`), sub-cgroups included, ordered by pid. This is how a
/// unit's usage is measured when systemd keeps no accounting (cgroup v1 hosts, containers):
/// from the processes themselves.
pub fn cgroup_pids(path: &str) -> Result<Vec<u32>, ProcError> {
    let relative = path.trim_start_matches('/');
    let mut last = None;
    for root in CGROUP_ROOTS {
        let dir = Path::new(root).join(relative);
        if !dir.join("cgroup.procs").is_file() {
            continue;
        }
        let mut pids = Vec::new();
        match collect_cgroup_pids(&dir, &mut pids) {
            Ok(()) => {
                pids.sort_unstable();
                pids.dedup();
                return Ok(pids);
            }
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| ProcError::Io {
        path: PathBuf::from(path),
        source: std::io::Error::new(
            ErrorKind::NotFound,
            format!("no cgroup.procs for it under {}", CGROUP_ROOTS.join(", ")),
        ),
    }))
}

fn collect_cgroup_pids(dir: &Path, pids: &mut Vec<u32>) -> Result<(), ProcError> {
    let procs = dir.join("cgroup.procs");
    let text = fs::read_to_string(&procs).map_err(|source| ProcError::Io {
        path: procs.clone(),
        source,
    })?;
    pids.extend(parse_cgroup_procs(&text));
    // Sub-cgroups (a service's own delegated tree) belong to the unit too. A cgroup that
    // disappears while being walked simply has no processes any more.
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.filter_map(Result::ok) {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                let _ = collect_cgroup_pids(&entry.path(), pids);
            }
        }
    }
    Ok(())
}

/// The pids in a `cgroup.procs` file: one per line.
pub fn parse_cgroup_procs(text: &str) -> Vec<u32> {
    text.lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// CPU use of each process over `interval`, in percent of one core (a process with two busy
/// threads shows 200), as `top` shows it. Processes that end during the interval, or whose
/// pid was reused by a new process, are left out.
pub fn sample_cpu(pids: &[u32], interval: Duration) -> HashMap<u32, f64> {
    let sample = |pids: &[u32]| -> HashMap<u32, (u64, u64)> {
        pids.iter()
            .filter_map(|&pid| {
                let s = read_stat(pid).ok()?;
                Some((pid, (s.start_time, s.utime.saturating_add(s.stime))))
            })
            .collect()
    };
    let before = sample(pids);
    let t0 = Instant::now();
    thread::sleep(interval);
    let after = sample(pids);
    let elapsed = t0.elapsed();
    let hz = clock_ticks_per_second();
    before
        .into_iter()
        .filter_map(|(pid, (start, ticks_before))| {
            let &(start_after, ticks_after) = after.get(&pid)?;
            (start == start_after).then(|| {
                let nsec = |ticks| ticks_to_nsec(ticks, hz);
                (pid, cpu_percent(nsec(ticks_before), nsec(ticks_after), elapsed))
            })
        })
        .collect()
}

/// CPU time used between two readings of a cumulative counter, in percent of one core over
/// `elapsed`. A counter that went backwards (the process or unit was restarted) counts as 0.
pub fn cpu_percent(nsec_before: u64, nsec_after: u64, elapsed: Duration) -> f64 {
    let elapsed = elapsed.as_nanos();
    if elapsed == 0 {
        return 0.0;
    }
    nsec_after.saturating_sub(nsec_before) as f64 / elapsed as f64 * 100.0
}

/// Clock ticks (jiffies as user space sees them) to nanoseconds.
pub fn ticks_to_nsec(ticks: u64, ticks_per_second: u64) -> u64 {
    let nsec = u128::from(ticks) * 1_000_000_000 / u128::from(ticks_per_second.max(1));
    u64::try_from(nsec).unwrap_or(u64::MAX)
}

/// `sysconf(_SC_CLK_TCK)`: the unit of the tick counts in `/proc/PID/stat`; 100 if unknown.
pub fn clock_ticks_per_second() -> u64 {
    sysconf_or(nix::unistd::SysconfVar::CLK_TCK, 100)
}

fn page_size() -> u64 {
    sysconf_or(nix::unistd::SysconfVar::PAGE_SIZE, 4096)
}

fn sysconf_or(var: nix::unistd::SysconfVar, default: u64) -> u64 {
    match nix::unistd::sysconf(var) {
        Ok(Some(v)) if v > 0 => u64::try_from(v).unwrap_or(default),
        _ => default,
    }
}

/// Parse `/proc/PID/stat`. The command name is everything between the first `(` and the
/// LAST `)`, because it may contain both.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    if close < open {
        return None;
    }
    let pid = text[..open].trim().parse().ok()?;
    let comm = text[open + 1..close].to_owned();
    // Field 3 (state) is rest[0]; field N of proc_pid_stat(5) is rest[N - 3]. Only fields
    // up to 24 are used: the rest of the line (52 fields) is not split.
    let mut rest = [""; 22];
    let mut fields = text[close + 1..].split_ascii_whitespace();
    for slot in &mut rest {
        *slot = fields.next()?;
    }
    let field = |n: usize| rest.get(n - 3).copied();
    let num = |n: usize| field(n)?.parse::<u64>().ok();
    let mut state_chars = field(3)?.chars();
    let state = state_chars.next()?;
    Some(Stat {
        pid,
        comm,
        state,
        ppid: field(4)?.parse().ok()?,
        utime: num(14)?,
        stime: num(15)?,
        num_threads: field(20)?.parse().ok()?,
        start_time: num(22)?,
        vsize: num(23)?,
        rss_pages: num(24)?,
        flags: num(9)?,
    })
}

/// Parse the `Tgid:`, `Uid:` and `State:` lines of `/proc/PID/status`.
pub fn parse_status(text: &str) -> Option<Status> {
    let (mut tgid, mut uids, mut state) = (None, None, None);
    for line in text.lines() {
        let Some((key, value)) = line.split_once(':') else {
            continue;
        };
        match key {
            "Tgid" => tgid = value.trim().parse().ok(),
            // Real, effective, saved, filesystem.
            "Uid" => {
                let mut ids = value.split_whitespace().map(str::parse::<u32>);
                if let (Some(Ok(uid)), Some(Ok(euid))) = (ids.next(), ids.next()) {
                    uids = Some((uid, euid));
                }
            }
            "State" => state = value.trim().chars().next(),
            _ => {}
        }
    }
    let (uid, euid) = uids?;
    Some(Status {
        tgid: tgid?,
        uid,
        euid,
        state: state?,
    })
}

/// Split `/proc/PID/cmdline` (NUL-separated, NUL-terminated) into arguments. A process that
/// rewrote its title (`setproctitle`) may leave one argument with spaces; it is kept as is.
pub fn parse_cmdline(bytes: &[u8]) -> Vec<String> {
    let bytes = bytes.strip_suffix(b"\0").unwrap_or(bytes);
    if bytes.is_empty() {
        return Vec::new();
    }
    bytes
        .split(|&b| b == 0)
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect()
}

/// uid -> user name from `/etc/passwd` text. The first entry for a uid wins, as with
/// `getpwuid(3)`; comments, NIS `+`/`-` lines and malformed lines are skipped.
pub fn parse_passwd(text: &str) -> HashMap<u32, String> {
    let mut users = HashMap::new();
    for line in text.lines() {
        if line.starts_with(['#', '+', '-']) {
            continue;
        }
        let mut fields = line.split(':');
        let (Some(name), Some(_password), Some(uid)) = (fields.next(), fields.next(), fields.next()) else {
            continue;
        };
        if let (false, Ok(uid)) = (name.is_empty(), uid.parse::<u32>()) {
            users.entry(uid).or_insert_with(|| name.to_owned());
        }
    }
    users
}

/// Users from `/etc/passwd` only: a static musl binary has no NSS, so users that exist only
/// in LDAP or systemd-userdb (e.g. `DynamicUser=`) have no name here.
///
/// A long-lived caller (the daemon, every cycle) reads and parses the file again only when
/// it changed: the last reading is kept with the file's device, inode, size and mtime
/// (`useradd` and `vipw` replace the file, a new inode; an edit in place changes the mtime).
fn read_users() -> Arc<HashMap<u32, String>> {
    static LAST: Mutex<Option<(Stamp, Users)>> = Mutex::new(None);
    users_from(Path::new("/etc/passwd"), &LAST)
}

type Stamp = (u64, u64, u64, i64, i64);
type Users = Arc<HashMap<u32, String>>;

/// The users of the passwd file `path`: `last`'s when the file has not changed since.
fn users_from(path: &Path, last: &Mutex<Option<(Stamp, Users)>>) -> Users {
    let stamp = fs::metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino(), m.len(), m.mtime(), m.mtime_nsec()));
    let mut last = last.lock().unwrap_or_else(PoisonError::into_inner);
    if let (Some(stamp), Some((seen, users))) = (stamp, last.as_ref()) {
        if stamp == *seen {
            return Arc::clone(users);
        }
    }
    let users = Arc::new(
        fs::read_to_string(path)
            .map(|text| parse_passwd(&text))
            .unwrap_or_default(),
    );
    *last = stamp.map(|stamp| (stamp, Arc::clone(&users)));
    users
}

/// A value short enough for an error message.
fn shorten(text: &str) -> String {
    const MAX: usize = 64;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}...", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_passwd_file_is_parsed_again_only_when_it_changed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("passwd");
        let last = Mutex::new(None);
        fs::write(&path, "root:x:0:0::/root:/bin/sh\n").expect("write");
        let first = users_from(&path, &last);
        assert_eq!(first.get(&0).map(String::as_str), Some("root"));
        assert!(
            Arc::ptr_eq(&first, &users_from(&path, &last)),
            "unchanged: the same reading"
        );
        // Replaced, as useradd does: a new inode.
        let next = dir.path().join("passwd+");
        fs::write(&next, "root:x:0:0::/root:/bin/sh\nweb:x:33:33::/var/www:/bin/false\n").expect("write");
        fs::rename(&next, &path).expect("rename");
        assert_eq!(users_from(&path, &last).get(&33).map(String::as_str), Some("web"));
        // Edited in place to the same size: the mtime tells.
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::write(&path, "root:x:0:0::/root:/bin/sh\nwww:x:33:33::/var/www:/bin/false\n").expect("write");
        assert_eq!(users_from(&path, &last).get(&33).map(String::as_str), Some("www"));
        fs::remove_file(&path).expect("remove");
        assert!(users_from(&path, &last).is_empty(), "no file, no users");
    }

    /// Captured from a copy of /bin/sleep named `a) b (c` (comm with spaces and parentheses).
    const STAT_TRICKY: &str = "28018 (a) b (c) S 28017 28014 9161 0 -1 4194304 130 0 0 0 0 0 0 0 \
        20 0 1 0 135073 2990080 380 18446744073709551615 94890818916352 94890818934281 \
        140737013789472 0 0 0 0 6 0 1 0 0 17 0 0 0 0 0 0 94890818948368 94890818949632 \
        94891475718144 140737013795551 140737013795573 140737013795573 140737013796843 0\n";

    #[test]
    fn stat_comm_is_read_to_the_last_parenthesis() {
        let s = parse_stat(STAT_TRICKY);
        assert_eq!(
            s,
            Some(Stat {
                pid: 28018,
                comm: "a) b (c".into(),
                state: 'S',
                ppid: 28017,
                utime: 0,
                stime: 0,
                num_threads: 1,
                start_time: 135073,
                vsize: 2990080,
                rss_pages: 380,
                flags: 4194304,
            })
        );
        assert!(!s.is_some_and(|s| s.kernel_thread()));
    }

    /// Captured from kthreadd: flags 0x208040 hold PF_KTHREAD.
    #[test]
    fn kernel_threads_are_told_by_their_flags() {
        let kthreadd = "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 7 0 0 20 0 1 0 3 0 0 \
            18446744073709551615 0 0 0 0 0 0 0 2147483647 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n";
        assert!(parse_stat(kthreadd).is_some_and(|s| s.kernel_thread()));
    }

    /// Reading a kernel thread's command line is skipped: what the table holds is what
    /// reading it gives (nothing), for every process of this host.
    #[test]
    fn a_reading_without_kernel_threads_command_lines_is_the_same() {
        let fields = Fields {
            cmdline: true,
            exe: false,
            owner: false,
            fds: false,
        };
        for p in list_processes_with(fields) {
            let Ok(stat) = read_stat(p.pid) else { continue };
            if stat.kernel_thread() {
                assert!(p.cmdline.is_empty(), "{}: {:?}", p.pid, p.cmdline);
                let read = read_all(Path::new(&format!("/proc/{}/cmdline", p.pid))).unwrap_or_default();
                assert!(read.is_empty(), "{}: a kernel thread with a command line", p.pid);
            }
        }
    }

    #[test]
    fn stat_that_is_cut_short_is_rejected() {
        assert_eq!(parse_stat("12 (x) S 1 2 3"), None);
        assert_eq!(parse_stat(""), None);
        assert_eq!(parse_stat("12 )x( S"), None);
    }

    #[test]
    fn status_gives_real_and_effective_uid() {
        let text = "Name:\tpasswd\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t77\nNgid:\t0\n\
                    Pid:\t77\nPPid:\t1\nUid:\t1000\t0\t0\t0\nGid:\t1000\t1000\t1000\t1000\n";
        assert_eq!(
            parse_status(text),
            Some(Status {
                tgid: 77,
                uid: 1000,
                euid: 0,
                state: 'S'
            })
        );
        assert_eq!(parse_status("Name:\tx\n"), None);
    }

    #[test]
    fn passwd_first_entry_wins_and_junk_is_skipped() {
        let text = "root:x:0:0:root:/root:/bin/bash\n# comment\n+nis::::::\n\
                    toor:x:0:0::/root:/bin/sh\nbroken\nwww-data:x:33:33::/var/www:/usr/sbin/nologin\n\
                    bad:x:notanumber:0::/:/bin/sh\n";
        let users = parse_passwd(text);
        assert_eq!(users.get(&0).map(String::as_str), Some("root"));
        assert_eq!(users.get(&33).map(String::as_str), Some("www-data"));
        assert_eq!(users.len(), 2);
    }

    #[test]
    fn cmdline_splits_on_nul() {
        assert_eq!(parse_cmdline(b"sleep\x001000\0"), ["sleep", "1000"]);
        assert_eq!(parse_cmdline(b"nginx: worker process"), ["nginx: worker process"]);
        assert_eq!(parse_cmdline(b"a\0\0b\0"), ["a", "", "b"]);
        assert!(parse_cmdline(b"").is_empty());
    }

    #[test]
    fn pid_text() {
        let check = |text: &str, want: Option<u32>| assert_eq!(parse_pid(text), want, "{text:?}");
        check("1234\n", Some(1234));
        check("  1234  \n", Some(1234));
        check("1234\n/var/lib/postgresql\n", Some(1234));
        check("abc", None);
        check("12a", None);
        check("-5", None);
        check("+5", None);
        check("0", None);
        check("", None);
        check("99999999999", None);
    }

    #[test]
    fn cgroup_procs_lines() {
        assert_eq!(parse_cgroup_procs("12\n345\n\n"), [12, 345]);
        assert!(parse_cgroup_procs("").is_empty());
    }

    #[test]
    fn the_root_cgroup_holds_this_process() {
        // Sub-cgroups are walked, so the root lists every process of the host.
        match cgroup_pids("/") {
            Ok(pids) => assert!(pids.contains(&std::process::id()), "{pids:?}"),
            Err(e) => assert!(
                CGROUP_ROOTS
                    .iter()
                    .all(|r| !Path::new(r).join("cgroup.procs").is_file()),
                "{e}"
            ),
        }
        let missing = cgroup_pids("/no/such.slice/x.service").map_err(|e| e.to_string());
        assert_eq!(
            missing,
            Err("cannot read /no/such.slice/x.service: no cgroup.procs for it under \
                 /sys/fs/cgroup/unified, /sys/fs/cgroup/systemd, /sys/fs/cgroup"
                .to_string())
        );
    }

    #[test]
    fn cpu_math() {
        let second = Duration::from_secs(1);
        assert_eq!(cpu_percent(0, 500_000_000, second), 50.0);
        assert_eq!(cpu_percent(0, 2_000_000_000, second), 200.0);
        assert_eq!(cpu_percent(5, 1, second), 0.0);
        assert_eq!(cpu_percent(0, 1, Duration::ZERO), 0.0);
        assert_eq!(ticks_to_nsec(250, 100), 2_500_000_000);
        assert_eq!(ticks_to_nsec(u64::MAX, 1), u64::MAX);
    }

    #[test]
    fn shorten_cuts_long_values() {
        assert_eq!(shorten("abc"), "abc");
        assert_eq!(shorten(&"x".repeat(100)).len(), 67);
    }
}
