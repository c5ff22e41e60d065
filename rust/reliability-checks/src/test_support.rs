//! Helpers for this crate's tests.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

/// Starts `cmd` and returns once `/proc/PID/cmdline` shows `argv`.
///
/// `spawn` returns when the child's `execve` has replaced its memory, but the kernel sets the
/// new argument pointers a little later: a reading in between sees an empty command line. On
/// a loaded machine a test can land in that gap, so it waits here, for at most five seconds.
pub(crate) fn spawn_running(cmd: &mut Command, argv: &[&str]) -> Child {
    let mut child = cmd.spawn().expect("the child starts");
    let want: Vec<u8> = argv.iter().flat_map(|a| a.bytes().chain([0])).collect();
    let path = format!("/proc/{}/cmdline", child.id());
    let deadline = Instant::now() + Duration::from_secs(5);
    let shows = || std::fs::read(&path).is_ok_and(|seen| seen == want);
    while !shows() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    if !shows() {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{path} never showed {argv:?}");
    }
    child
}
