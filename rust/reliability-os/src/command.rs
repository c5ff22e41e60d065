//! Running an external program: an argv list (never a shell), both streams captured, and
//! the whole process group killed when the time is up.
//!
//! systemctl, a service's config test (`nginx -t`), a failover or restore command: every
//! program the project starts goes through [`run`].

use serde::Serialize;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// What one run printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommandOutput {
    /// The full command, program first.
    pub argv: Vec<String>,
    /// `None` when the program was ended by a signal.
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub duration_ms: u64,
}

impl CommandOutput {
    pub fn success(&self) -> bool {
        self.exit_code == Some(0)
    }
}

/// The program could not be run to the end. A non-zero exit is not an error: it is in
/// [`CommandOutput::exit_code`], for the caller to judge.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("could not run '{program}': {source}")]
    Spawn { program: String, source: std::io::Error },
    #[error("'{command}' did not finish within {timeout:?} and was killed")]
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

/// Runs a user's argv list (`["nginx", "-t"]`): the program is looked up with [`which`].
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
    run(&program, args, &[], timeout)
}

/// Run `program args` with `env` added, stdin closed; kill it (and anything it started: it
/// runs in its own process group) once `timeout` has passed.
pub fn run(
    program: &Path,
    args: &[String],
    env: &[(&str, &str)],
    timeout: Duration,
) -> Result<CommandOutput, CommandError> {
    run_in(program, args, env, None, timeout)
}

/// [`run`], in the working directory `cwd` when one is given (a restore command runs in
/// its sandbox).
pub fn run_in(
    program: &Path,
    args: &[String],
    env: &[(&str, &str)],
    cwd: Option<&Path>,
    timeout: Duration,
) -> Result<CommandOutput, CommandError> {
    run_full(program, args, env, cwd, None, timeout).map(|(out, _)| out)
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
    run_full(program, args, env, None, Some(feed), timeout)
}

fn run_full(
    program: &Path,
    args: &[String],
    env: &[(&str, &str)],
    cwd: Option<&Path>,
    feed: Option<Feeder>,
    timeout: Duration,
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
    let stdout = read_in_background(child.stdout.take());
    let stderr = read_in_background(child.stderr.take());
    let pid = child.id();
    let fed = match (feed, child.stdin.take()) {
        (Some(feed), Some(mut stdin)) => {
            let (tx, rx) = mpsc::channel();
            thread::spawn(move || {
                let result = match feed(&mut stdin).and_then(|()| stdin.flush()) {
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
                    Err(e) => {
                        kill_group(pid);
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
    let (done_tx, done_rx) = mpsc::channel::<std::io::Result<ExitStatus>>();
    thread::spawn(move || {
        let _ = done_tx.send(child.wait());
    });
    let status = match done_rx.recv_timeout(timeout) {
        Ok(status) => status.map_err(spawn_error)?,
        Err(_) => {
            kill_group(pid);
            // Reap it so no zombie is left behind; the group was SIGKILLed, so this is quick.
            let _ = done_rx.recv_timeout(Duration::from_secs(5));
            return Err(CommandError::Timeout {
                command: argv.join(" "),
                timeout,
            });
        }
    };
    // The streams close when the process exits, unless something it started keeps them open.
    let grace = Duration::from_secs(2);
    let fed = match fed {
        // The program has exited: its stdin is closed, so the writer ends promptly.
        Some(rx) => rx.recv_timeout(grace).unwrap_or(Ok(())),
        None => Ok(()),
    };
    Ok((
        CommandOutput {
            argv,
            exit_code: status.code(),
            stdout: stdout.recv_timeout(grace).unwrap_or_default(),
            stderr: stderr.recv_timeout(grace).unwrap_or_default(),
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        },
        fed,
    ))
}

fn read_in_background<R: Read + Send + 'static>(stream: Option<R>) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut s) = stream {
            let _ = s.read_to_end(&mut buf);
        }
        let _ = tx.send(String::from_utf8_lossy(&buf).into_owned());
    });
    rx
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
    fn captures_streams_exit_code_and_env() {
        let out = sh("echo out $HX_PROBE; echo err >&2; exit 3", Duration::from_secs(10)).expect("runs");
        assert_eq!(
            (out.stdout.as_str(), out.stderr.as_str(), out.exit_code),
            ("out 1\n", "err\n", Some(3))
        );
        assert!(!out.success());
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
