//! The systemd notification protocol (`sd_notify(3)`), without a crate: one datagram per
//! message to the unix socket named by `$NOTIFY_SOCKET` (a path, or `@name` in the
//! abstract namespace). Without the variable every message is dropped: the daemon runs
//! the same under `Type=notify`, `Type=simple` or a terminal.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
}

impl Notifier {
    /// The socket `$NOTIFY_SOCKET` names; `Err` says why it cannot be used.
    pub fn from_env() -> Result<Notifier, String> {
        let Some(name) = std::env::var_os("NOTIFY_SOCKET") else {
            return Ok(Notifier { target: None });
        };
        let name = name.to_string_lossy().into_owned();
        let addr = match name.strip_prefix('@') {
            Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name.as_bytes()),
            None => SocketAddr::from_pathname(&name),
        }
        .map_err(|e| format!("NOTIFY_SOCKET '{}': {e}", name.escape_debug()))?;
        let sock = UnixDatagram::unbound().map_err(|e| format!("NOTIFY_SOCKET: cannot make a socket: {e}"))?;
        Ok(Notifier {
            target: Some((sock, addr)),
        })
    }

    /// A notifier that drops every message.
    pub fn disabled() -> Notifier {
        Notifier { target: None }
    }

    /// Sends `state` (`READY=1`, `STATUS=...`); an error says why it was not delivered.
    pub fn send(&self, state: &str) -> Result<(), String> {
        match &self.target {
            None => Ok(()),
            Some((sock, addr)) => sock
                .send_to_addr(state.as_bytes(), addr)
                .map(drop)
                .map_err(|e| format!("cannot notify systemd ({state}): {e}")),
        }
    }
}

/// How often to send `WATCHDOG=1`: half of `$WATCHDOG_USEC` (as `sd_watchdog_enabled(3)`
/// advises), when the variable is set and `$WATCHDOG_PID`, if set, is this process.
pub fn watchdog_interval() -> Option<Duration> {
    let usec: u64 = std::env::var("WATCHDOG_USEC").ok()?.trim().parse().ok()?;
    if let Ok(pid) = std::env::var("WATCHDOG_PID") {
        if pid.trim().parse::<u32>().ok()? != std::process::id() {
            return None;
        }
    }
    (usec > 0).then(|| Duration::from_micros(usec / 2))
}

/// `RELOADING=1` with the time it started, as `sd_notify(3)` asks of a reload.
pub fn reloading() -> String {
    match nix::time::clock_gettime(nix::time::ClockId::CLOCK_MONOTONIC) {
        Ok(t) => {
            let usec = t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1_000;
            format!("RELOADING=1\nMONOTONIC_USEC={usec}")
        }
        Err(_) => "RELOADING=1".to_string(),
    }
}

/// `STATUS=` text: one line, at most 200 bytes (on a character boundary).
pub fn status(text: &str) -> String {
    let mut line: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if line.len() > 200 {
        let mut end = 200;
        while !line.is_char_boundary(end) {
            end -= 1;
        }
        line.truncate(end);
    }
    format!("STATUS={line}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_is_one_short_line() {
        assert_eq!(status("a\nb"), "STATUS=a b");
        assert_eq!(status(&"é".repeat(150)).len(), "STATUS=".len() + 200);
    }
}
