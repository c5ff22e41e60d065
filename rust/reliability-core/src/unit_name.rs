//! systemd's unit-name grammar, checked before a name reaches `systemctl`.
//!
//! Unit names come from playbooks and config files and end up as an argument of
//! `systemctl`. They are run as argv lists (never through a shell) and after `--`, so this
//! check is not the only thing stopping injection. It lets through only what systemd itself
//! would accept, so a wrong name fails with a message that names it, not with whatever
//! `systemctl` makes of it.
//!
//! The rules are those of `unit_name_is_valid()` in systemd's `src/basic/unit-name.c`
//! (see also systemd.unit(5)):
//!
//! - at most 255 characters (`UNIT_NAME_MAX` is 256 with the terminating NUL);
//! - the part after the last `.` is a unit type: `service`, `socket`, `device`, `mount`,
//!   `automount`, `swap`, `target`, `path`, `timer`, `slice`, `scope`;
//! - before it only ASCII letters, digits and `:`, `-`, `_`, `.`, `\`, `@` (`\` because
//!   `systemd-escape` writes e.g. `\x2d`);
//! - a non-empty prefix before the first `@` (or before the type, without `@`);
//! - `foo@.service` is a template (empty instance), `foo@bar.service` an instance of it;
//!   an instance may hold further `@` (`foo@a@b.service`).
//!
//! Two decisions of ours on top:
//!
//! - A name with no unit type gets `.service` appended, as `systemctl` does for plain names
//!   (`nginx` is `nginx.service`; `foo.conf` is `foo.conf.service`). The normalised name is
//!   the one to report and use.
//! - A name starting with `-` is refused, although `-.mount` and `-.slice` (the root mount
//!   and slice) are valid systemd names: any command line that forgot `--` would read it as
//!   an option. Paths (`/var/lib`) and glob patterns (`ssh*`), which `systemctl` would turn
//!   into units or expand, are refused by the character rule; pass the escaped unit name
//!   (`systemd-escape --path --suffix=mount /var/lib` gives `var-lib.mount`).

use std::fmt;

/// The unit types, i.e. the valid suffixes without their dot.
pub const UNIT_TYPES: [&str; 11] = [
    "service",
    "socket",
    "device",
    "mount",
    "automount",
    "swap",
    "target",
    "path",
    "timer",
    "slice",
    "scope",
];

/// At most this many characters, as `UNIT_NAME_MAX - 1` in systemd.
pub const MAX_LEN: usize = 255;

/// A valid, normalised unit name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct UnitName {
    name: String,
    /// Byte index of the dot before the unit type.
    dot: usize,
    /// Byte index of the first `@`, if any.
    at: Option<usize>,
}

impl UnitName {
    /// The full name, e.g. `nginx.service`.
    pub fn as_str(&self) -> &str {
        &self.name
    }

    /// The part before `@` or, without one, before the unit type: `getty` in
    /// `getty@tty1.service`.
    pub fn prefix(&self) -> &str {
        &self.name[..self.at.unwrap_or(self.dot)]
    }

    /// The instance (`tty1` in `getty@tty1.service`); `Some("")` for a template; `None`
    /// when the name has no `@`.
    pub fn instance(&self) -> Option<&str> {
        self.at.map(|at| &self.name[at + 1..self.dot])
    }

    /// The unit type, without its dot: `service`, `timer`, ...
    pub fn unit_type(&self) -> &str {
        &self.name[self.dot + 1..]
    }

    /// Whether this is a template (`foo@.service`), which can be inspected but not started.
    pub fn is_template(&self) -> bool {
        self.instance() == Some("")
    }
}

impl fmt::Display for UnitName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl AsRef<str> for UnitName {
    fn as_ref(&self) -> &str {
        &self.name
    }
}

/// Why a name is not a unit name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    Empty,
    LeadingDash,
    /// The first character outside the allowed set.
    Char(char),
    /// The length of the normalised name, and whether `.service` was appended.
    TooLong {
        len: usize,
        appended: bool,
    },
    /// Nothing before the `@` or the unit type; holds what the prefix should precede.
    EmptyPrefix(String),
}

/// A rejected unit name: `invalid unit name 'nginx; reboot': ';' is not allowed in unit names`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid unit name {}: {problem}", crate::quote::quote(name))]
pub struct UnitNameError {
    /// The name as given.
    pub name: String,
    pub problem: Problem,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Empty => f.write_str("the name is empty"),
            Problem::LeadingDash => f.write_str("a name starting with '-' would be read as an option"),
            Problem::Char(c) => write!(f, "'{}' is not allowed in unit names", c.escape_debug()),
            Problem::TooLong { len, appended: false } => {
                write!(f, "{len} characters is longer than the {MAX_LEN} systemd allows")
            }
            Problem::TooLong { len, appended: true } => write!(
                f,
                "with '.service' appended it is {len} characters, longer than the {MAX_LEN} systemd allows"
            ),
            Problem::EmptyPrefix(before) => write!(f, "nothing before '{before}'"),
        }
    }
}

/// Checks `name` against systemd's grammar and returns it normalised (`.service` appended
/// when it names no unit type).
pub fn validate(name: &str) -> Result<UnitName, UnitNameError> {
    let fail = |problem| UnitNameError {
        name: name.to_string(),
        problem,
    };
    if name.is_empty() {
        return Err(fail(Problem::Empty));
    }
    if name.starts_with('-') {
        return Err(fail(Problem::LeadingDash));
    }
    if let Some(c) = name
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || ":-_.\\@".contains(c)))
    {
        return Err(fail(Problem::Char(c)));
    }
    let has_type = name.rsplit_once('.').is_some_and(|(_, t)| UNIT_TYPES.contains(&t));
    let full = if has_type {
        name.to_string()
    } else {
        format!("{name}.service")
    };
    if full.len() > MAX_LEN {
        return Err(fail(Problem::TooLong {
            len: full.len(),
            appended: !has_type,
        }));
    }
    // Only ASCII is left, so byte indices are character indices.
    let dot = full.rfind('.').unwrap_or(0);
    let at = full[..dot].find('@');
    let prefix_end = at.unwrap_or(dot);
    if prefix_end == 0 {
        let before = if at.is_some() {
            "@".to_string()
        } else {
            full[dot..].to_string()
        };
        return Err(fail(Problem::EmptyPrefix(before)));
    }
    Ok(UnitName { name: full, dot, at })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `expected` is the normalised name, or the error.
    fn check(input: &str, expected: &str) {
        let got = match validate(input) {
            Ok(unit) => unit.to_string(),
            Err(e) => e.to_string(),
        };
        assert_eq!(got, expected, "unit name {input:?}");
    }

    #[test]
    fn a_long_bad_name_is_quoted_by_a_prefix() {
        // Found by the unit_name fuzz target: every control byte of the whole name was
        // escaped into the message (a 300-byte name gave 1.6 KB).
        for name in ["\x1f".repeat(300), format!("-\0{}", "\x15".repeat(300))] {
            let msg = validate(&name).expect_err("invalid").to_string();
            assert!(msg.len() < 400, "{} bytes: {msg}", msg.len());
            assert!(msg.contains(&format!("({} bytes)", name.len())), "{msg}");
        }
    }

    #[test]
    fn valid_names() {
        check("nginx.service", "nginx.service");
        check(
            "dbus-org.freedesktop.timedate1.service",
            "dbus-org.freedesktop.timedate1.service",
        );
        check("sys-devices-x.device", "sys-devices-x.device");
        check("var-lib-docker.mount", "var-lib-docker.mount");
        check("proc-sys-fs-binfmt_misc.automount", "proc-sys-fs-binfmt_misc.automount");
        check("dev-disk-by\\x2duuid-1234.swap", "dev-disk-by\\x2duuid-1234.swap");
        check("foo@.service", "foo@.service");
        check("foo@bar.service", "foo@bar.service");
        check("getty@tty1.service", "getty@tty1.service");
        check("foo@a@b.service", "foo@a@b.service");
        check("user@1000.service", "user@1000.service");
        check(
            "systemd-fsck@dev-disk-by\\x2dlabel-root.service",
            "systemd-fsck@dev-disk-by\\x2dlabel-root.service",
        );
        check("sshd.socket", "sshd.socket");
        check("multi-user.target", "multi-user.target");
        check("logrotate.timer", "logrotate.timer");
        check("systemd-ask-password-console.path", "systemd-ask-password-console.path");
        check("system.slice", "system.slice");
        check("session-1.scope", "session-1.scope");
        check("a:b_c.service", "a:b_c.service");
        check("X.service", "X.service");
    }

    #[test]
    fn plain_names_get_service_appended() {
        check("nginx", "nginx.service");
        check("foo.conf", "foo.conf.service");
        check("nginx.SERVICE", "nginx.SERVICE.service");
        check("foo.", "foo..service");
        check("foo@", "foo@.service");
        check("foo@bar", "foo@bar.service");
        check("1", "1.service");
    }

    #[test]
    fn injection_and_bad_characters() {
        check(
            "nginx; reboot",
            "invalid unit name 'nginx; reboot': ';' is not allowed in unit names",
        );
        check(
            "$(reboot)",
            "invalid unit name '$(reboot)': '$' is not allowed in unit names",
        );
        check(
            "`reboot`",
            "invalid unit name '`reboot`': '`' is not allowed in unit names",
        );
        check("a b", "invalid unit name 'a b': ' ' is not allowed in unit names");
        check("../x", "invalid unit name '../x': '/' is not allowed in unit names");
        check(
            "/var/lib",
            "invalid unit name '/var/lib': '/' is not allowed in unit names",
        );
        check(
            "nginx\nreboot",
            "invalid unit name 'nginx\\nreboot': '\\n' is not allowed in unit names",
        );
        check(
            "nginx\0",
            "invalid unit name 'nginx\\u{0}': '\\0' is not allowed in unit names",
        );
        check("a|b", "invalid unit name 'a|b': '|' is not allowed in unit names");
        check("a&&b", "invalid unit name 'a&&b': '&' is not allowed in unit names");
        check("a>b", "invalid unit name 'a>b': '>' is not allowed in unit names");
        check("ssh*", "invalid unit name 'ssh*': '*' is not allowed in unit names");
        check(
            "ssh?.service",
            "invalid unit name 'ssh?.service': '?' is not allowed in unit names",
        );
        check("a'b", "invalid unit name 'a'b': '\\'' is not allowed in unit names");
        check("a\"b", "invalid unit name 'a\"b': '\\\"' is not allowed in unit names");
        check(
            "nginx.service ",
            "invalid unit name 'nginx.service ': ' ' is not allowed in unit names",
        );
        check(
            "café.service",
            "invalid unit name 'café.service': 'é' is not allowed in unit names",
        );
        check(
            "foo#.service",
            "invalid unit name 'foo#.service': '#' is not allowed in unit names",
        );
    }

    #[test]
    fn leading_dash_empty_and_empty_prefix() {
        check(
            "-.mount",
            "invalid unit name '-.mount': a name starting with '-' would be read as an option",
        );
        check(
            "-.slice",
            "invalid unit name '-.slice': a name starting with '-' would be read as an option",
        );
        check(
            "--now",
            "invalid unit name '--now': a name starting with '-' would be read as an option",
        );
        check(
            "-",
            "invalid unit name '-': a name starting with '-' would be read as an option",
        );
        check("", "invalid unit name '': the name is empty");
        check(".service", "invalid unit name '.service': nothing before '.service'");
        check("@.service", "invalid unit name '@.service': nothing before '@'");
        check("@foo.service", "invalid unit name '@foo.service': nothing before '@'");
        check("@", "invalid unit name '@': nothing before '@'");
        // systemd's grammar allows dots in the prefix, even a lone one.
        check(".", "..service");
        // A dash inside a name is fine.
        check("a-.mount", "a-.mount");
    }

    #[test]
    fn length_limit() {
        let name = |len: usize, suffix: &str| format!("{}{suffix}", "a".repeat(len - suffix.len()));
        check(&name(255, ".service"), &name(255, ".service"));
        check(
            &name(256, ".service"),
            &format!(
                "invalid unit name '{}'... (256 bytes): 256 characters is longer than the 255 systemd allows",
                "a".repeat(100)
            ),
        );
        check(&"a".repeat(247), &name(255, ".service"));
        check(
            &"a".repeat(248),
            &format!(
            "invalid unit name '{}'... (248 bytes): with '.service' appended it is 256 characters, longer than the 255 systemd allows",
            "a".repeat(100)
        ),
        );
        check(
            &"a".repeat(256),
            &format!(
            "invalid unit name '{}'... (256 bytes): with '.service' appended it is 264 characters, longer than the 255 systemd allows",
            "a".repeat(100)
        ),
        );
    }

    #[test]
    fn parts() {
        for (input, prefix, instance, unit_type, template) in [
            ("nginx", "nginx", None, "service", false),
            ("getty@tty1.service", "getty", Some("tty1"), "service", false),
            ("foo@.service", "foo", Some(""), "service", true),
            ("foo@a@b.timer", "foo", Some("a@b"), "timer", false),
            (
                "dbus-org.freedesktop.timedate1.service",
                "dbus-org.freedesktop.timedate1",
                None,
                "service",
                false,
            ),
            ("foo.conf", "foo.conf", None, "service", false),
        ] {
            let unit = validate(input).expect("valid test name");
            assert_eq!(
                (unit.prefix(), unit.instance(), unit.unit_type(), unit.is_template()),
                (prefix, instance, unit_type, template),
                "{input}"
            );
            assert_eq!(unit.as_ref(), unit.as_str());
        }
    }

    #[test]
    fn error_fields() {
        let e = validate("a b").expect_err("invalid");
        assert_eq!((e.name.as_str(), &e.problem), ("a b", &Problem::Char(' ')));
    }
}
