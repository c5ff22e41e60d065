//! `systemd`: is the host run by systemd, and which version.
//!
//! `running` is systemd's own test (`sd_booted(3)`: `/run/systemd/system` exists);
//! `pid1_is_systemd` looks at PID 1 itself. They differ in containers that run systemd
//! without owning the boot, or that have `/run/systemd` bind-mounted from the host.
//!
//! The version is asked of `systemctl --version` (an argv, no shell), and only when
//! systemd is running: it is the one fact that costs a process.

use super::Host;
use serde::Serialize;
use std::path::Path;

/// The `systemd` group.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Systemd {
    /// Whether systemd manages this host: `/run/systemd/system` exists.
    pub running: bool,
    /// Command name of PID 1 (`systemd`, `init`, `tini`, ...); null if unreadable.
    pub pid1: Option<String>,
    /// Whether PID 1 is the systemd binary (by its executable when readable, else its
    /// name).
    pub pid1_is_systemd: bool,
    /// systemd's version number (`252`); null when not running or `systemctl` failed.
    pub version: Option<u32>,
    /// The full version (`252.22-1~deb12u1`); null as `version`.
    pub version_full: Option<String>,
}

/// Reads the first line of `systemctl --version`: `systemd 252 (252.22-1~deb12u1)`, or on
/// old releases `systemd 219`. Returns the number and the full version.
pub fn parse_systemctl_version(text: &str) -> Option<(u32, String)> {
    let line = text.lines().next()?;
    let rest = line.trim().strip_prefix("systemd ")?;
    let (number, full) = match rest.split_once(' ') {
        Some((number, full)) => (number, full.trim().trim_start_matches('(').trim_end_matches(')')),
        None => (rest, rest),
    };
    let digits: String = number.chars().take_while(char::is_ascii_digit).collect();
    Some((digits.parse().ok()?, full.to_string()))
}

pub(super) fn gather(host: &Host) -> Systemd {
    let running = host.path("/run/systemd/system").is_dir();
    let pid1 = host.read_line("/proc/1/comm");
    // /proc/1/exe needs privileges; the name is the fallback.
    let pid1_is_systemd = match std::fs::read_link(host.path("/proc/1/exe")) {
        Ok(exe) => exe.file_name() == Some(Path::new("systemd").as_os_str()),
        Err(_) => pid1.as_deref() == Some("systemd"),
    };
    let (version, version_full) = match running.then(systemctl_version).flatten() {
        Some((number, full)) => (Some(number), Some(full)),
        None => (None, None),
    };
    Systemd {
        running,
        pid1,
        pid1_is_systemd,
        version,
        version_full,
    }
}

fn systemctl_version() -> Option<(u32, String)> {
    crate::systemd::version().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemctl_version_line() {
        let check = |text: &str, expected: Option<(u32, &str)>| {
            assert_eq!(
                parse_systemctl_version(text),
                expected.map(|(n, f)| (n, f.to_string())),
                "{text}"
            );
        };
        check(
            "systemd 252 (252.22-1~deb12u1)\n+PAM +AUDIT +SELINUX +APPARMOR\n",
            Some((252, "252.22-1~deb12u1")),
        );
        check(
            "systemd 255 (255.4-1ubuntu8.4)\n+PAM\n",
            Some((255, "255.4-1ubuntu8.4")),
        );
        check("systemd 219\n+PAM +AUDIT\n", Some((219, "219")));
        check("systemd 256~rc3 (256~rc3-1)\n", Some((256, "256~rc3-1")));
        check("System has not been booted with systemd\n", None);
        check("systemd x (y)\n", None);
        check("", None);
    }
}
