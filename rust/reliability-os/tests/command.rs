//! `command`: output kept within bounds, and nothing a command starts outliving it.

use reliability_os::command::{self, CommandOutput, OutputLimit};
use std::path::Path;
use std::time::{Duration, Instant};

fn sh(script: &str, timeout: Duration) -> Result<CommandOutput, command::CommandError> {
    command::run_in(Path::new("/bin/sh"), &["-c".into(), script.into()], &[], None, timeout)
}

/// The process's peak resident set so far (`VmHWM`), in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

fn bound() -> usize {
    OutputLimit::COMMAND.head + OutputLimit::COMMAND.tail + 100
}

#[test]
fn a_flood_of_output_costs_a_bounded_head_and_tail() {
    let before = peak_rss_kib();
    let started = Instant::now();
    let out = sh("yes | head -c 300000000", Duration::from_secs(60)).expect("runs");
    let grown_mib = (peak_rss_kib().saturating_sub(before)) / 1024;
    assert!(grown_mib < 64, "peak RSS grew by {grown_mib} MiB");
    assert!(started.elapsed() < Duration::from_secs(30), "{:?}", started.elapsed());
    assert!(out.stdout.len() <= bound(), "{} bytes kept", out.stdout.len());
    assert!(out.stdout.starts_with("y\ny\n"));
    let dropped = 300_000_000 - OutputLimit::COMMAND.head - OutputLimit::COMMAND.tail;
    assert!(
        out.stdout.contains(&format!("\n[... {dropped} bytes left out ...]\n")),
        "{}",
        &out.stdout[OutputLimit::COMMAND.head - 10..OutputLimit::COMMAND.head + 60]
    );
}

#[test]
fn a_command_that_never_stops_printing_is_ended_by_its_timeout_in_bounded_memory() {
    let before = peak_rss_kib();
    let started = Instant::now();
    let err = sh("yes", Duration::from_millis(1500)).expect_err("times out");
    assert!(matches!(err, command::CommandError::Timeout { .. }), "{err}");
    assert!(started.elapsed() < Duration::from_secs(6), "{:?}", started.elapsed());
    let grown_mib = (peak_rss_kib().saturating_sub(before)) / 1024;
    assert!(grown_mib < 64, "peak RSS grew by {grown_mib} MiB");
}

#[test]
fn head_and_tail_of_each_stream_are_kept_with_the_count_left_out() {
    let out = sh(
        "echo START; head -c 1000000 /dev/zero | tr '\\0' x; echo; echo END; \
         echo ERR-START >&2; head -c 500000 /dev/zero | tr '\\0' e >&2; echo ERR-END >&2",
        Duration::from_secs(30),
    )
    .expect("runs");
    assert!(out.stdout.starts_with("START\nxxx"), "{}", &out.stdout[..20]);
    assert!(out.stdout.ends_with("xxx\nEND\n"));
    let kept = OutputLimit::COMMAND.head + OutputLimit::COMMAND.tail;
    let total = "START\n".len() + 1_000_000 + "\nEND\n".len();
    assert!(out
        .stdout
        .contains(&format!("[... {} bytes left out ...]", total - kept)));
    assert!(out.stdout.len() <= bound());
    assert!(out.stderr.starts_with("ERR-START\neee"));
    assert!(out.stderr.ends_with("eeeERR-END\n"));
    assert!(out.stderr.len() <= bound());
}

#[test]
fn short_output_is_kept_whole() {
    let out = sh("echo out; echo err >&2", Duration::from_secs(10)).expect("runs");
    assert_eq!((out.stdout.as_str(), out.stderr.as_str()), ("out\n", "err\n"));
}

#[test]
fn both_pipes_are_read_at_once() {
    // 1 MB to stderr before anything on stdout: a reader that drained stdout first would
    // leave the program blocked on a full stderr pipe.
    let out = sh("head -c 1000000 /dev/zero >&2; echo done", Duration::from_secs(20)).expect("runs");
    assert_eq!(out.stdout, "done\n");
}

/// The state letter of `/proc/<pid>/stat`, or `None` when the process is gone.
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat.rsplit_once(") ").and_then(|(_, rest)| rest.chars().next())
}

#[test]
fn what_a_command_leaves_behind_is_killed_when_it_returns() {
    let started = Instant::now();
    let out = sh("sleep 30 & echo $!", Duration::from_secs(20)).expect("runs");
    // Nothing waited for the pipes the grandchild held.
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    let pid: u32 = out.stdout.trim().parse().expect("a pid");
    // SIGKILL has been sent; give its new parent a moment to reap it.
    let deadline = Instant::now() + Duration::from_secs(2);
    while matches!(proc_state(pid), Some(s) if s != 'Z') && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let state = proc_state(pid);
    assert!(
        matches!(state, None | Some('Z')),
        "sleep {pid} left behind is still alive (state {state:?})"
    );
}
