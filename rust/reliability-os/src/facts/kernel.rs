//! `kernel`: what the host runs, from `uname(2)` and `os-release(5)`.

use super::Host;
use serde::Serialize;

/// The `kernel` group.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Kernel {
    /// Kernel release (`uname -r`, e.g. `6.1.0-18-amd64`).
    pub release: String,
    /// Kernel build version (`uname -v`, e.g. `#1 SMP PREEMPT_DYNAMIC Debian 6.1.76-1`).
    pub version: String,
    /// Hardware architecture (`uname -m`: `x86_64`, `aarch64`, ...).
    pub machine: String,
    /// Host name (`uname -n`).
    pub hostname: String,
    /// The distribution, from `/etc/os-release` (or `/usr/lib/os-release`); null if
    /// neither is readable.
    pub os: Option<OsRelease>,
}

/// The identifying fields of `os-release(5)`; each null when the file does not set it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct OsRelease {
    /// `PRETTY_NAME`, e.g. `Debian GNU/Linux 12 (bookworm)`.
    pub pretty_name: Option<String>,
    /// `ID`, e.g. `debian`, `rhel`, `ubuntu`.
    pub id: Option<String>,
    /// `VERSION_ID`, e.g. `12`, `9.3`, `24.04`; unset on rolling releases.
    pub version_id: Option<String>,
}

/// Reads `os-release(5)`: `KEY=value` lines, values optionally quoted shell-style.
pub fn parse_os_release(text: &str) -> OsRelease {
    let mut os = OsRelease::default();
    for line in text.lines().map(str::trim).filter(|l| !l.starts_with('#')) {
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let slot = match key.trim() {
            "PRETTY_NAME" => &mut os.pretty_name,
            "ID" => &mut os.id,
            "VERSION_ID" => &mut os.version_id,
            _ => continue,
        };
        *slot = Some(unquote(value.trim()));
    }
    os
}

/// `"a \"b\""` -> `a "b"`, `'a b'` -> `a b`, `a` -> `a`.
fn unquote(value: &str) -> String {
    if let Some(inner) = value.strip_prefix('\'') {
        return inner.split('\'').next().unwrap_or_default().to_string();
    }
    let Some(inner) = value.strip_prefix('"') else {
        return value.to_string();
    };
    let mut out = String::new();
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => break,
            '\\' => out.extend(chars.next()),
            c => out.push(c),
        }
    }
    out
}

pub(super) fn gather(host: &Host) -> Result<Kernel, String> {
    let uts = nix::sys::utsname::uname().map_err(|e| format!("uname: {e}"))?;
    let text = |s: &std::ffi::OsStr| s.to_string_lossy().into_owned();
    let os = ["/etc/os-release", "/usr/lib/os-release"]
        .into_iter()
        .find_map(|p| host.read(p).ok())
        .map(|t| parse_os_release(&t));
    Ok(Kernel {
        release: text(uts.release()),
        version: text(uts.version()),
        machine: text(uts.machine()),
        hostname: text(uts.nodename()),
        os,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: [Option<&str>; 3]) {
        let os = parse_os_release(text);
        assert_eq!(
            [os.pretty_name.as_deref(), os.id.as_deref(), os.version_id.as_deref()],
            expected,
            "{text}"
        );
    }

    #[test]
    fn os_release() {
        // Captured on the development VM.
        check(
            r#"PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
HOME_URL="https://www.debian.org/"
"#,
            [Some("Debian GNU/Linux 12 (bookworm)"), Some("debian"), Some("12")],
        );
        // Rolling release: no VERSION_ID.
        check(
            "NAME=\"Arch Linux\"\nPRETTY_NAME=\"Arch Linux\"\nID=arch\nBUILD_ID=rolling\n",
            [Some("Arch Linux"), Some("arch"), None],
        );
        // Single quotes, escapes, comments, blank lines.
        check(
            "# comment\n\nPRETTY_NAME='My OS 1'\nID=\"my\\\"os\"\nVERSION_ID=1.2 \n",
            [Some("My OS 1"), Some("my\"os"), Some("1.2")],
        );
        check("", [None, None, None]);
    }
}
