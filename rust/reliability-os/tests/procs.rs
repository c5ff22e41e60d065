//! `procs` against real processes: children started here, found again through `/proc`.
//!
//! Every child is held by a [`Children`] guard that kills and reaps it on drop, so a failed
//! assertion does not leave sleepers or busy loops behind.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use reliability_os::procs::{self, ProcError};

/// Children killed and reaped when the test ends, whether it passed or not.
#[derive(Default)]
struct Children(Vec<Child>);

impl Children {
    fn spawn(&mut self, cmd: &mut Command) -> u32 {
        // Copying an executable and running it at once can fail with ETXTBSY when another
        // test thread forks while the copy's write descriptor is still open; retry briefly.
        let mut attempts = 0;
        let child = loop {
            match cmd.stdin(Stdio::null()).stdout(Stdio::null()).spawn() {
                Err(e) if e.raw_os_error() == Some(libc::ETXTBSY) && attempts < 50 => {
                    attempts += 1;
                    thread::sleep(Duration::from_millis(20));
                }
                other => break other.expect("spawn child"),
            }
        };
        let pid = child.id();
        self.0.push(child);
        pid
    }
}

impl Drop for Children {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A copy of `sleep` whose name is unique to this test run, so that its `comm` is too.
/// `comm` keeps 15 bytes, so the name stays short.
fn unique_sleep(dir: &Path, tag: &str) -> PathBuf {
    let name = format!("rlos{}{tag}", std::process::id());
    assert!(name.len() <= 15, "{name} would be truncated in comm");
    let path = dir.join(name);
    let sleep = ["/bin/sleep", "/usr/bin/sleep"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("sleep binary");
    fs::copy(sleep, &path).expect("copy sleep");
    path
}

#[test]
fn finds_a_child_by_name_and_cmdline() {
    let dir = tempfile::tempdir().expect("tempdir");
    let exe = unique_sleep(dir.path(), "a");
    let name = exe.file_name().and_then(|n| n.to_str()).expect("name").to_owned();
    let arg = format!("1000.{}", std::process::id());
    let mut children = Children::default();
    let pid = children.spawn(Command::new(&exe).arg(&arg));

    let found: Vec<_> = procs::list_processes().into_iter().filter(|p| p.name == name).collect();
    assert_eq!(found.len(), 1, "{found:#?}");
    let p = &found[0];
    assert_eq!(p.pid, pid);
    assert_eq!(p.ppid, std::process::id());
    assert_eq!(p.cmdline, [exe.display().to_string(), arg.clone()]);
    assert_eq!(p.exe.as_deref(), Some(exe.to_str().expect("utf-8 path")));
    assert!(matches!(p.state, 'S' | 'R'), "state {}", p.state);
    assert!(p.rss_bytes > 0, "rss {}", p.rss_bytes);
    assert!(p.vsize >= p.rss_bytes, "vsize {} rss {}", p.vsize, p.rss_bytes);
    assert!(p.open_fds.is_some_and(|n| n >= 3), "fds {:?}", p.open_fds);
    assert_eq!(p.threads, 1);
    assert!(p.start_time_ticks > 0);

    let me = nix::unistd::getuid().as_raw();
    assert_eq!((p.uid, p.euid), (me, me));
    let passwd = fs::read_to_string("/etc/passwd").unwrap_or_default();
    let expected_user = procs::parse_passwd(&passwd).get(&me).cloned();
    assert_eq!(p.user, expected_user);

    // The same process read on its own, and found by its argument.
    let single = procs::read_process(pid).expect("read_process");
    assert_eq!((single.name.as_str(), &single.cmdline), (name.as_str(), &p.cmdline));
    let by_arg = procs::list_processes()
        .into_iter()
        .filter(|p| p.cmdline.get(1) == Some(&arg))
        .count();
    assert_eq!(by_arg, 1);
}

#[test]
fn listing_is_sorted_and_contains_init_and_us() {
    let all = procs::list_processes();
    assert!(all.windows(2).all(|w| w[0].pid < w[1].pid));
    assert!(all.iter().any(|p| p.pid == 1));
    let me = all.iter().find(|p| p.pid == std::process::id()).expect("self");
    assert!(me.threads >= 1 && me.rss_bytes > 0);
}

#[test]
fn listing_tolerates_processes_that_come_and_go() {
    let mut children = Children::default();
    let churn = children.spawn(Command::new("/bin/sh").args(["-c", "while :; do /bin/true; /bin/true & wait; done"]));
    for _ in 0..20 {
        let all = procs::list_processes();
        assert!(all.iter().any(|p| p.pid == churn));
    }
}

#[test]
fn a_busy_loop_uses_most_of_a_core() {
    let mut children = Children::default();
    // This machine is shared with other builds (load above the core count is common), and
    // with autogroup scheduling `nice` only counts inside a session. So the loop gets a
    // session of its own and raises that session's priority; without CAP_SYS_NICE or
    // autogroup the write fails quietly and the loop runs at normal priority.
    let busy = children.spawn(Command::new("setsid").args([
        "/bin/sh",
        "-c",
        "echo -10 2>/dev/null >/proc/self/autogroup; while :; do :; done",
    ]));
    let idle = children.spawn(Command::new("sleep").arg("1000.5"));
    let gone = u32::MAX; // no such pid

    // And three chances to show.
    let mut last = Default::default();
    for _ in 0..3 {
        let rates = procs::sample_cpu(&[busy, idle, gone], Duration::from_millis(500));
        let busy_pct = rates.get(&busy).copied().unwrap_or(0.0);
        let idle_pct = rates.get(&idle).copied();
        assert!(!rates.contains_key(&gone));
        assert!(idle_pct.is_some_and(|p| p < 5.0), "idle sleep at {idle_pct:?}%");
        if busy_pct > 50.0 {
            assert!(busy_pct < 110.0, "one thread cannot use {busy_pct}% of a core");
            return;
        }
        last = rates;
    }
    let load = fs::read_to_string("/proc/loadavg").unwrap_or_default();
    panic!("busy loop never above 50% of a core: {last:?}; loadavg {load}");
}

#[test]
fn pidfile_of_a_running_process() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut children = Children::default();
    let pid = children.spawn(Command::new("sleep").arg("1000.25"));
    let path = dir.path().join("good.pid");
    fs::write(&path, format!("{pid}\n")).expect("write");
    assert_eq!(procs::read_pidfile(&path).ok(), Some(pid));
    // Extra lines after the pid (PostgreSQL's postmaster.pid) are ignored.
    fs::write(&path, format!("{pid}\n/var/lib/data\n5432\n")).expect("write");
    assert_eq!(procs::read_pidfile(&path).ok(), Some(pid));
}

#[test]
fn pidfile_errors_name_the_problem() {
    let dir = tempfile::tempdir().expect("tempdir");
    let message = |name: &str, content: Option<&str>| {
        let path = dir.path().join(name);
        if let Some(content) = content {
            fs::write(&path, content).expect("write");
        }
        let err = procs::read_pidfile(&path).expect_err("should fail");
        // Paths vary per run: show them as PATH.
        err.to_string().replace(&path.display().to_string(), "PATH")
    };
    assert_eq!(message("missing.pid", None), "pidfile PATH does not exist");
    let not_a_pid = "pidfile PATH does not hold a pid on its first line";
    assert_eq!(message("abc.pid", Some("abc\n")), not_a_pid);
    assert_eq!(message("empty.pid", Some("")), not_a_pid);
    assert_eq!(message("neg.pid", Some("-1")), not_a_pid);
    // The path may name any file: its content is never quoted.
    assert_eq!(
        message("shadow", Some("root:$y$j9T$secret-hash:19000:0:99999:7:::\n")),
        not_a_pid
    );

    // A process that has exited and been reaped.
    let mut child = Command::new("/bin/true").spawn().expect("spawn");
    let dead = child.id();
    child.wait().expect("wait");
    assert_eq!(
        message("stale.pid", Some(&format!("{dead}\n"))),
        format!("pid {dead} from PATH is not running")
    );

    let err = procs::read_pidfile(dir.path()).expect_err("a directory");
    assert!(matches!(err, ProcError::PidfileUnreadable { .. }), "{err:?}");
}

/// A FIFO would block the read until a writer came, `/dev/zero` would never end, a huge
/// file would be read whole: each is refused at once, by path.
#[test]
fn special_and_huge_pidfiles_are_refused_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("fifo.pid");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    let huge = dir.path().join("huge.pid");
    fs::File::create(&huge)
        .expect("create")
        .set_len(2 << 30)
        .expect("sparse");
    let zero_link = dir.path().join("zero.pid");
    std::os::unix::fs::symlink("/dev/zero", &zero_link).expect("symlink");
    for (path, says) in [
        (
            fifo.clone(),
            format!("unusable pidfile: '{}' is a FIFO, not a regular file", fifo.display()),
        ),
        (
            PathBuf::from("/dev/zero"),
            "unusable pidfile: '/dev/zero' is a character device, not a regular file".to_string(),
        ),
        (
            zero_link.clone(),
            format!(
                "unusable pidfile: '{}' is a character device, not a regular file",
                zero_link.display()
            ),
        ),
        (
            huge.clone(),
            format!(
                "unusable pidfile: '{}' is larger than 65536 bytes (2147483648 bytes)",
                huge.display()
            ),
        ),
    ] {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(procs::read_pidfile(&path).map_err(|e| e.to_string()));
        });
        let got = rx
            .recv_timeout(Duration::from_secs(2))
            .unwrap_or_else(|_| panic!("reading {says:?} did not return within 2 s"));
        assert_eq!(got, Err(says));
    }
}

#[test]
fn zombies_and_threads_are_not_running_processes() {
    // A child that has exited but not been reaped yet is a zombie.
    let mut children = Children::default();
    let zombie = children.spawn(&mut Command::new("/bin/true"));
    let deadline = Instant::now() + Duration::from_secs(10);
    while procs::read_process(zombie).map(|p| p.state).ok() != Some('Z') {
        assert!(Instant::now() < deadline, "child never became a zombie");
        thread::sleep(Duration::from_millis(10));
    }
    assert!(!procs::pid_running(zombie));
    assert!(procs::pid_running(std::process::id()));

    // /proc/TID exists for a thread, but a thread id is not a process.
    let (tx, rx) = std::sync::mpsc::channel();
    let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
    let worker = thread::spawn(move || {
        let link = fs::read_link("/proc/thread-self").expect("thread-self");
        let tid: u32 = link
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse().ok())
            .expect("tid");
        tx.send(tid).expect("send");
        let _ = stop_rx.recv();
    });
    let tid = rx.recv().expect("tid");
    assert_ne!(tid, std::process::id());
    assert!(Path::new(&format!("/proc/{tid}")).exists());
    assert!(!procs::pid_running(tid));
    stop_tx.send(()).expect("stop");
    worker.join().expect("join");
}

#[test]
fn a_missing_pid_is_a_typed_error() {
    let err = procs::read_process(u32::MAX).expect_err("no such pid");
    assert!(matches!(err, ProcError::NoSuchProcess { pid: u32::MAX }), "{err:?}");
}

#[test]
fn descriptors_are_counted_exactly() {
    // A shell that opens descriptors 3 to 9 on top of its three standard ones, then waits.
    let mut children = Children::default();
    let script =
        "exec 3</dev/null 4</dev/null 5</dev/null 6</dev/null 7</dev/null 8</dev/null 9</dev/null; exec sleep 30";
    let pid = children.spawn(Command::new("sh").args(["-c", script]).stderr(Stdio::null()));
    let dir = PathBuf::from(format!("/proc/{pid}/fd"));
    let until = Instant::now() + Duration::from_secs(5);
    while procs::read_process(pid).map(|p| p.name).ok().as_deref() != Some("sleep") && Instant::now() < until {
        thread::sleep(Duration::from_millis(10));
    }
    // And any the test harness left open to children (a jobserver's pipe).
    let listed = u32::try_from(fs::read_dir(&dir).expect("read fd").count()).expect("count");
    assert!(listed >= 10, "{listed}");
    assert_eq!(procs::count_fds(&dir), Some(listed));
    assert_eq!(procs::read_process(pid).expect("read").open_fds, Some(listed));
    assert_eq!(procs::count_fds(Path::new("/proc/999999999/fd")), None);
}
