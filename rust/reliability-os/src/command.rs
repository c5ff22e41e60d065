//! Running an external program: an argv list (never a shell), both streams captured within
//! a bound, and the whole process group killed when the program returns or the time is up.
//!
//! systemctl, a service's config test (`nginx -t`), a failover or restore command: every
//! program the project starts goes through [`run`] (tools the project reads the output
//! of) or [`run_argv`] / [`run_in`] (the user's commands).
//!
//! Decisions:
//! - Each stream keeps at most a head and a tail ([`OutputLimit`]): `yes` as a config test
//!   costs 128 KiB, not the host's memory. What was left out in between is counted and
//!   stated in the text, where it was left out.
//! - Both pipes are read at once, on a thread each, so a program that fills one while we
//!   wait on the other cannot deadlock.
//! - When the program returns, whatever it left behind in its process group (`sleep 30 &`)
//!   is killed before the program is reaped (so the group id cannot be reused in between):
//!   nothing a command starts outlives it, and nothing holds the pipes open.

use reliability_core::quote::quote;
use serde::Serialize;
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

/// What one run printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommandOutput {
    /// The full command, program first.
    pub argv: Vec<String>,
    /// `None` when the program was ended by a signal.
    pub exit_code: Option<i32>,
    /// At most the head and tail of the stream ([`OutputLimit`]), with a line saying how
    /// many bytes were left out between them.
    pub stdout: String,
    pub stderr: String,
    pub duration_ms: u64,
}

impl CommandOutput {
    pub fn success(&self) -> bool {
        self.exit_code == Some(0)
    }
}

/// How much of each stream is kept: the first `head` bytes and the last `tail` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputLimit {
    pub head: usize,
    pub tail: usize,
}

impl OutputLimit {
    /// A user's command (config test, failover, restore): its output is for a person to
    /// read in the result, and 64 KiB at each end shows how it started and how it ended.
    pub const COMMAND: OutputLimit = OutputLimit {
        head: 64 * 1024,
        tail: 64 * 1024,
    };
    /// A tool whose output the project parses (`systemctl show`, `psql` rows): room for
    /// any answer the project asks for, still a bound.
    pub const TOOL: OutputLimit = OutputLimit {
        head: 32 * 1024 * 1024,
        tail: 64 * 1024,
    };
}

/// The program could not be run to the end. A non-zero exit is not an error: it is in
/// [`CommandOutput::exit_code`], for the caller to judge.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("could not run {}: {source}", quote(program))]
    Spawn { program: String, source: std::io::Error },
    #[error("{} did not finish within {timeout:?} and was killed", quote(command))]
    Timeout { command: String, timeout: Duration },
}

/// Where `name` runs from: itself when it has a `/`, else the first executable file of
/// that name in `PATH` (then `/usr/bin`, `/bin`, `/usr/sbin`, `/sbin`, which a minimal
/// `PATH` over SSH may lack).
pub fn which(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        let p = PathBuf::from(name);
        return p.is_file().then_some(p);
    }
    if name.is_empty() {
        return None;
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/bin", "/bin", "/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Runs a user's argv list (`["nginx", "-t"]`): the program is looked up with [`which`],
/// its output kept within [`OutputLimit::COMMAND`].
pub fn run_argv(argv: &[String], timeout: Duration) -> Result<CommandOutput, CommandError> {
    let Some((name, args)) = argv.split_first() else {
        return Err(CommandError::Spawn {
            program: String::new(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, "the command is empty"),
        });
    };
    let program = which(name).ok_or_else(|| CommandError::Spawn {
        program: name.clone(),
        source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such program in PATH"),
    })?;
    run_limited(&program, args, &[], None, timeout, OutputLimit::COMMAND)
}

/// Run a tool (`program args`) with `env` added, stdin closed, its output kept within
/// [`OutputLimit::TOOL`]; kill it (and anything it started: it runs in its own process
/// group) once `timeout` has passed.
pub fn run(
    program: &Path,
    args: &[String],
    env: &[(&str, &str)],
    timeout: Duration,
) -> Result<CommandOutput, CommandError> {
    run_limited(program, args, env, None, timeout, OutputLimit::TOOL)
}

/// A user's command, in the working directory `cwd` when one is given (a restore command
/// runs in its sandbox): [`run`] with [`OutputLimit::COMMAND`].
pub fn run_in(
    program: &Path,
    args: &[String],
    env: &[(&str, &str)],
    cwd: Option<&Path>,
    timeout: Duration,
) -> Result<CommandOutput, CommandError> {
    run_limited(program, args, env, cwd, timeout, OutputLimit::COMMAND)
}

/// Writes a program's stdin (on a thread of its own, while the program runs).
pub type Feeder = Box<dyn FnOnce(&mut dyn Write) -> std::io::Result<()> + Send>;

/// [`run`] with `feed` writing the program's stdin; stdin is closed when `feed` returns.
/// Also returns what `feed` returned: a program that stops reading early (it failed) makes
/// the write fail with `BrokenPipe`, which is not `feed`'s error and reads as `Ok`; any other
/// error (`feed` refused what it was to write) is the caller's to report. On such an error
/// the program's process group is killed at once, so it does not read the cut input as
/// complete.
pub fn run_fed(
    program: &Path,
    args: &[String],
    env: &[(&str, &str)],
    feed: Feeder,
    timeout: Duration,
) -> Result<(CommandOutput, std::io::Result<()>), CommandError> {
    run_inner(program, args, env, None, timeout, OutputLimit::TOOL, Some(feed))
}

/// The one way a program is run; the functions above choose the limit.
pub fn run_limited(
    program: &Path,
    args: &[String],
    env: &[(&str, &str)],
    cwd: Option<&Path>,
    timeout: Duration,
    limit: OutputLimit,
) -> Result<CommandOutput, CommandError> {
    run_inner(program, args, env, cwd, timeout, limit, None).map(|(out, _)| out)
}

/// What the watcher threads of a run report.
enum Event {
    /// The program exited (not reaped yet).
    Exited(nix::Result<()>),
    /// The feeder failed: the program must not read its stdin's end as complete.
    FeedFailed,
}

fn run_inner(
    program: &Path,
    args: &[String],
    env: &[(&str, &str)],
    cwd: Option<&Path>,
    timeout: Duration,
    limit: OutputLimit,
    feed: Option<Feeder>,
) -> Result<(CommandOutput, std::io::Result<()>), CommandError> {
    use std::os::unix::process::CommandExt;

    let mut argv = vec![program.display().to_string()];
    argv.extend(args.iter().cloned());
    let spawn_error = |source| CommandError::Spawn {
        program: argv[0].clone(),
        source,
    };
    let started = Instant::now();
    let mut command = Command::new(program);
    if let Some(dir) = cwd {
        command.current_dir(dir);
    }
    let mut child = command
        .args(args)
        .envs(env.iter().copied())
        .stdin(if feed.is_some() { Stdio::piped() } else { Stdio::null() })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(spawn_error)?;
    let stdout = Capture::start(child.stdout.take(), limit);
    let stderr = Capture::start(child.stderr.take(), limit);
    let pid = child.id();
    let (events_tx, events) = mpsc::channel::<Event>();
    let fed = match (feed, child.stdin.take()) {
        (Some(feed), Some(mut stdin)) => {
            let (tx, rx) = mpsc::channel();
            let events_tx = events_tx.clone();
            thread::spawn(move || {
                let result = match feed(&mut stdin).and_then(|()| stdin.flush()) {
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                    Err(e) => {
                        // Killed by the waiting thread, which knows the pid is not reaped.
                        let _ = events_tx.send(Event::FeedFailed);
                        Err(e)
                    }
                    Ok(()) => Ok(()),
                };
                drop(stdin);
                let _ = tx.send(result);
            });
            Some(rx)
        }
        _ => None,
    };
    // Wait for the exit without reaping (WNOWAIT): until it is reaped, the program's pid
    // (the group id) cannot be given to another process, so the group kill below can only
    // reach what the program left behind.
    thread::spawn(move || {
        let _ = events_tx.send(Event::Exited(wait_for_exit(pid)));
    });
    let deadline = started + timeout;
    let exited = loop {
        match events.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
            Ok(Event::FeedFailed) => kill_group(pid),
            Ok(Event::Exited(result)) => break Ok(result),
            Err(e) => break Err(e),
        }
    };
    kill_group(pid);
    let status = child.wait().map_err(spawn_error)?;
    if exited.is_err() {
        return Err(CommandError::Timeout {
            command: argv.join(" "),
            timeout,
        });
    }
    // The pipes close once the group is dead; a process that left the group (setsid) and
    // holds them open is not waited for: what was read so far is the output.
    let deadline = Instant::now() + Duration::from_secs(2);
    let fed = match fed {
        // The program has exited: its stdin is closed, so the writer ends promptly.
        Some(rx) => rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .unwrap_or(Ok(())),
        None => Ok(()),
    };
    Ok((
        CommandOutput {
            argv,
            exit_code: status.code(),
            stdout: stdout.finish(deadline),
            stderr: stderr.finish(deadline),
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        },
        fed,
    ))
}

fn wait_for_exit(pid: u32) -> nix::Result<()> {
    use nix::sys::wait::{waitid, Id, WaitPidFlag};
    use nix::unistd::Pid;
    let pid = Pid::from_raw(i32::try_from(pid).map_err(|_| nix::errno::Errno::EINVAL)?);
    loop {
        match waitid(Id::Pid(pid), WaitPidFlag::WEXITED | WaitPidFlag::WNOWAIT) {
            Err(nix::errno::Errno::EINTR) => continue,
            other => return other.map(drop),
        }
    }
}

/// One stream being read on its own thread into a bounded head and tail.
struct Capture {
    kept: Arc<Mutex<Kept>>,
    done: mpsc::Receiver<()>,
}

#[derive(Default)]
struct Kept {
    head: Vec<u8>,
    tail: VecDeque<u8>,
    /// Bytes that fell out of the tail: neither in `head` nor in `tail`.
    dropped: u64,
}

impl Kept {
    fn push(&mut self, mut bytes: &[u8], limit: OutputLimit) {
        let room = limit.head.saturating_sub(self.head.len());
        let (to_head, rest) = bytes.split_at(room.min(bytes.len()));
        self.head.extend_from_slice(to_head);
        bytes = rest;
        if bytes.len() > limit.tail {
            let skip = bytes.len() - limit.tail;
            self.dropped += self.tail.len() as u64 + skip as u64;
            self.tail.clear();
            bytes = &bytes[skip..];
        }
        let overflow = (self.tail.len() + bytes.len()).saturating_sub(limit.tail);
        self.tail.drain(..overflow);
        self.dropped += overflow as u64;
        self.tail.extend(bytes);
    }

    fn text(&self) -> String {
        let mut out = String::from_utf8_lossy(&self.head).into_owned();
        if self.dropped > 0 {
            out.push_str(&format!("\n[... {} bytes left out ...]\n", self.dropped));
        }
        let (a, b) = self.tail.as_slices();
        out.push_str(&String::from_utf8_lossy(&[a, b].concat()));
        out
    }
}

impl Capture {
    fn start<R: Read + Send + 'static>(stream: Option<R>, limit: OutputLimit) -> Capture {
        let kept = Arc::new(Mutex::new(Kept::default()));
        let (done_tx, done) = mpsc::channel();
        let shared = Arc::clone(&kept);
        thread::spawn(move || {
            if let Some(mut s) = stream {
                let mut buf = vec![0u8; 64 * 1024];
                loop {
                    match s.read(&mut buf) {
                        Ok(0) => break,
                        Ok(n) => match shared.lock() {
                            Ok(mut k) => k.push(&buf[..n], limit),
                            Err(_) => break,
                        },
                        Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                        Err(_) => break,
                    }
                }
            }
            let _ = done_tx.send(());
        });
        Capture { kept, done }
    }

    /// The text read by the end of the stream, or by `deadline` if it stays open.
    fn finish(self, deadline: Instant) -> String {
        let _ = self
            .done
            .recv_timeout(deadline.saturating_duration_since(Instant::now()));
        self.kept.lock().map(|k| k.text()).unwrap_or_default()
    }
}

fn kill_group(pid: u32) {
    use nix::sys::signal::{killpg, Signal};
    use nix::unistd::Pid;
    if let Ok(pid) = i32::try_from(pid) {
        let _ = killpg(Pid::from_raw(pid), Signal::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str, timeout: Duration) -> Result<CommandOutput, CommandError> {
        run(
            Path::new("/bin/sh"),
            &["-c".into(), script.into()],
            &[("HX_PROBE", "1")],
            timeout,
        )
    }

    #[test]
    fn a_feeder_writes_stdin_and_its_error_kills_the_program() {
        let feed: Feeder = Box::new(|w| w.write_all(b"one\ntwo\n"));
        let (out, fed) = run_fed(Path::new("/bin/cat"), &[], &[], feed, Duration::from_secs(10)).expect("runs");
        assert_eq!(
            (out.stdout.as_str(), out.success(), fed.is_ok()),
            ("one\ntwo\n", true, true)
        );
        let feed: Feeder = Box::new(|w| {
            w.write_all(b"partial\n")?;
            w.flush()?;
            Err(std::io::Error::other("refused"))
        });
        let script = "cat >/dev/null; echo read-to-the-end".to_string();
        let (out, fed) = run_fed(
            Path::new("/bin/sh"),
            &["-c".into(), script],
            &[],
            feed,
            Duration::from_secs(10),
        )
        .expect("runs");
        assert_eq!(fed.map_err(|e| e.to_string()), Err("refused".to_string()));
        assert!(!out.success() && !out.stdout.contains("read-to-the-end"), "{out:?}");
    }

    #[test]
    fn captures_streams_exit_code_and_env() {
        let out = sh("echo out $HX_PROBE; echo err >&2; exit 3", Duration::from_secs(10)).expect("runs");
        assert_eq!(
            (out.stdout.as_str(), out.stderr.as_str(), out.exit_code),
            ("out 1\n", "err\n", Some(3))
        );
        assert!(!out.success());
    }

    #[test]
    fn timeout_kills_the_whole_group() {
        let started = Instant::now();
        let err = sh("sleep 30 & sleep 30", Duration::from_millis(300)).expect_err("times out");
        assert!(matches!(err, CommandError::Timeout { .. }), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn runs_in_the_given_directory() {
        let dir = std::env::temp_dir().canonicalize().expect("temp dir");
        let out = run_in(Path::new("pwd"), &[], &[], Some(&dir), Duration::from_secs(10)).expect("runs");
        assert_eq!(out.stdout.trim_end(), dir.display().to_string());
    }

    #[test]
    fn a_missing_program_is_named() {
        let err = run(Path::new("/nonexistent/prog"), &[], &[], Duration::from_secs(1)).expect_err("fails");
        assert!(
            err.to_string().starts_with("could not run '/nonexistent/prog'"),
            "{err}"
        );
    }
}
