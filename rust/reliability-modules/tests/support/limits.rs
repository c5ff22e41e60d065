//! Running a module binary under watch: how long it ran, its peak memory, how much it
//! printed, whether it wrote where it should not, and whether a secret shows in what it
//! printed.
//!
//! Peak memory is the kernel's high-water mark of the child's resident set (`VmHWM` in
//! `/proc/<pid>/status`, sampled every 5 ms; it only grows, so at most the last 5 ms are
//! missed). Not `ru_maxrss` from `wait4`: Linux carries the parent's high-water mark over
//! fork and exec, so a child of a 250 MB test process "peaks" at 250 MB however small it is.
//!
//! [`run_bounded`] never lets a hostile case hurt the machine: the child runs in a process
//! group of its own, which is killed when the wall time, a resident-memory ceiling (sampled
//! from `/proc`) or the output ceiling is passed; the outcome says which. The case then
//! asserts [`Bounded::within`], which names every bound that was broken.

// Each test file uses a part of this.
#![allow(dead_code)]

use nix::sys::signal::{killpg, Signal};
use nix::unistd::Pid;
use serde_json::Value;
use std::io::Read;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a module run may take.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub wall: Duration,
    /// Peak resident set, in KiB.
    pub rss_kib: u64,
    /// Bytes of stdout and, separately, of stderr.
    pub output_bytes: usize,
}

/// The bounds of issue 9: 10 s, 200 MB, 1 MB of output.
pub const LIMITS: Limits = Limits {
    wall: Duration::from_secs(10),
    rss_kib: 200 * 1024,
    output_bytes: 1024 * 1024,
};

/// What a bounded run saw.
#[derive(Debug)]
pub struct Bounded {
    /// The result object, when stdout was one JSON object.
    pub result: Option<Value>,
    pub stdout: String,
    pub stderr: String,
    /// Total bytes printed on stdout (also past the ceiling, which are dropped).
    pub stdout_bytes: usize,
    pub stderr_bytes: usize,
    pub wall: Duration,
    /// Peak resident set of the child (`VmHWM`), KiB.
    pub max_rss_kib: u64,
    /// Why the harness killed the child, if it did.
    pub killed: Option<String>,
    /// Exit code, or 128 + signal.
    pub code: i32,
    /// Processes still in the module's process group when it exited (killed by the harness
    /// then): children a command left behind.
    pub left_behind: Vec<u32>,
    /// Entries that appeared outside the sandbox in the places modules write by default.
    pub written_outside: Vec<PathBuf>,
    limits: Limits,
}

impl Bounded {
    /// Every bound this run broke, one line each; empty when it stayed within.
    pub fn broken(&self, secrets: &[&str]) -> Vec<String> {
        let l = self.limits;
        let mut out = Vec::new();
        if let Some(why) = &self.killed {
            out.push(format!("killed by the harness: {why}"));
        }
        if self.wall > l.wall {
            out.push(format!("ran {:?} (limit {:?})", self.wall, l.wall));
        }
        if self.max_rss_kib > l.rss_kib {
            out.push(format!("peak RSS {} KiB (limit {} KiB)", self.max_rss_kib, l.rss_kib));
        }
        if self.stdout_bytes > l.output_bytes || self.stderr_bytes > l.output_bytes {
            out.push(format!(
                "printed {} + {} bytes (limit {} each)",
                self.stdout_bytes, self.stderr_bytes, l.output_bytes
            ));
        }
        if !self.left_behind.is_empty() {
            out.push(format!("left processes behind: {:?}", self.left_behind));
        }
        if !self.written_outside.is_empty() {
            out.push(format!("wrote outside the sandbox: {:?}", self.written_outside));
        }
        if self.result.is_none() {
            out.push(format!("no JSON result (exit {}): {:.300}", self.code, self.stdout));
        }
        for s in secrets {
            if self.stdout.contains(s) || self.stderr.contains(s) {
                out.push(format!("the secret {s:?} is in the output"));
            }
        }
        out
    }

    /// Panics, naming each broken bound, unless the run stayed within them all.
    pub fn within(&self, case: &str, secrets: &[&str]) -> &Value {
        let broken = self.broken(secrets);
        assert!(broken.is_empty(), "{case}: {}", broken.join("; "));
        self.result.as_ref().expect("within() checked the result")
    }

    /// The result's `msg`, or "" when there is none.
    pub fn msg(&self) -> &str {
        self.result.as_ref().and_then(|r| r["msg"].as_str()).unwrap_or_default()
    }

    pub fn failed(&self) -> bool {
        self.result.as_ref().is_some_and(|r| r["failed"] == Value::Bool(true))
    }
}

/// The default state directory's entries: a module told to keep state in its sandbox
/// must not add any.
fn state_snapshot() -> Vec<PathBuf> {
    let state = Path::new("/var/lib/reliability_monitor");
    let mut seen: Vec<PathBuf> = match std::fs::read_dir(state) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(_) if state.exists() => vec![state.to_path_buf()],
        Err(_) => Vec::new(),
    };
    seen.sort();
    seen
}

/// Restore sandboxes of process `pid` left in the system temp dir (`hx-restore-<pid>-*`):
/// the module was given `TMPDIR` in its sandbox. Other tests on the machine use the same
/// temp dir, hence the pid in the name.
fn stray_sandboxes(pid: u32) -> Vec<PathBuf> {
    let prefix = format!("hx-restore-{pid}-");
    std::fs::read_dir(std::env::temp_dir())
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .map(|e| e.path())
                .collect()
        })
        .unwrap_or_default()
}

/// Reads a pipe in a thread: keeps the first `keep` bytes, counts them all.
fn drain(mut pipe: impl Read + Send + 'static, keep: usize) -> std::thread::JoinHandle<(Vec<u8>, usize)> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut total = 0usize;
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    total += n;
                    let room = keep.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
            }
        }
        (kept, total)
    })
}

/// The processes whose process group is `pgid`, from /proc.
fn group_members(pgid: u32) -> Vec<u32> {
    let Ok(rd) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    rd.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            // `pid (comm) state ppid pgrp ...`: comm may hold spaces, so split after ')'.
            std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                .is_some_and(|stat| {
                    stat.rsplit_once(')')
                        .and_then(|(_, rest)| rest.split_whitespace().nth(2).map(|g| g == pgid.to_string()))
                        .unwrap_or(false)
                })
        })
        .collect()
}

/// The high-water mark of `pid`'s resident set in KiB, from /proc (0 when it is gone).
fn rss_peak(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

/// Runs module binary `bin` as Ansible does (the args in a file named on the command line),
/// with its working directory, `HOME` and `TMPDIR` in `sandbox`, under `limits`.
pub fn run_bounded(bin: &str, args: &Value, sandbox: &Path, limits: Limits) -> Bounded {
    let args_path = sandbox.join("args.json");
    std::fs::write(&args_path, args.to_string()).expect("write the args file");
    let tmp = sandbox.join("tmp");
    std::fs::create_dir_all(&tmp).expect("the sandbox's tmp");
    let before = state_snapshot();
    let started = Instant::now();
    let mut child = Command::new(bin)
        .arg(&args_path)
        .current_dir(sandbox)
        .env("HOME", sandbox)
        .env("TMPDIR", &tmp)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .expect("start the module");
    let pid = child.id();
    let group = Pid::from_raw(i32::try_from(pid).expect("a pid"));
    let out = drain(child.stdout.take().expect("stdout"), limits.output_bytes + 1);
    let err = drain(child.stderr.take().expect("stderr"), limits.output_bytes + 1);
    // A hard ceiling far enough above the limit that the peak is still measured.
    let rss_ceiling = limits.rss_kib.saturating_mul(2);
    let wall_ceiling = limits.wall * 3 / 2;
    let mut killed = None;
    let mut peak = 0;
    let exit = loop {
        if let Some(exit) = child.try_wait().expect("wait for the module") {
            break exit;
        }
        peak = peak.max(rss_peak(pid));
        let why = if started.elapsed() > wall_ceiling {
            Some(format!("still running after {wall_ceiling:?}"))
        } else if peak > rss_ceiling {
            Some(format!("resident memory reached {peak} KiB"))
        } else {
            None
        };
        if let Some(why) = why {
            killed.get_or_insert(why);
            let _ = killpg(group, Signal::SIGKILL);
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let wall = started.elapsed();
    let left_behind = group_members(pid);
    // Whatever the module left in its group goes now, so that the pipes close.
    let _ = killpg(group, Signal::SIGKILL);
    let (stdout, stdout_bytes) = out.join().expect("the stdout reader");
    let (stderr, stderr_bytes) = err.join().expect("the stderr reader");
    let mut written_outside: Vec<PathBuf> = state_snapshot().into_iter().filter(|p| !before.contains(p)).collect();
    written_outside.extend(stray_sandboxes(pid));
    let code = exit.code().unwrap_or_else(|| 128 + exit.signal().unwrap_or(0));
    let stdout = String::from_utf8_lossy(&stdout).into_owned();
    let result = match stdout.trim_end().lines().collect::<Vec<_>>().as_slice() {
        [one] => serde_json::from_str::<Value>(one).ok().filter(Value::is_object),
        _ => None,
    };
    Bounded {
        result,
        stdout,
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
        stdout_bytes,
        stderr_bytes,
        wall,
        max_rss_kib: peak,
        killed,
        code,
        left_behind,
        written_outside,
        limits,
    }
}
