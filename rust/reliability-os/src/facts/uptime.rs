//! `uptime`: how long the host has been up, and since when.

use super::{Host, ProcStat};
use serde::Serialize;

/// The `uptime` group.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Uptime {
    /// Seconds since boot (`/proc/uptime`), to the hundredth.
    pub seconds: f64,
    /// Boot time, seconds since the Unix epoch (`btime` of `/proc/stat`); null if
    /// unreadable.
    pub boot_time: Option<u64>,
}

/// Reads the first number of `/proc/uptime` (`821.56 1524.05`).
pub fn parse_uptime(text: &str) -> Result<f64, String> {
    text.split_ascii_whitespace()
        .next()
        .and_then(|f| f.parse().ok())
        .ok_or_else(|| format!("/proc/uptime: unexpected content '{}'", text.trim()))
}

pub(super) fn gather(host: &Host, stat: Option<&Result<ProcStat, String>>) -> Result<Uptime, String> {
    let seconds = parse_uptime(&host.read("/proc/uptime")?)?;
    let boot_time = stat.and_then(|s| s.as_ref().ok()).and_then(|s| s.btime);
    Ok(Uptime { seconds, boot_time })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uptime() {
        let check =
            |text: &str, expected: Result<f64, &str>| assert_eq!(parse_uptime(text), expected.map_err(str::to_string));
        // Captured on the development VM.
        check("821.56 1524.05\n", Ok(821.56));
        check("12345678.90 1.00\n", Ok(12345678.9));
        check("", Err("/proc/uptime: unexpected content ''"));
        check("soon\n", Err("/proc/uptime: unexpected content 'soon'"));
    }
}
