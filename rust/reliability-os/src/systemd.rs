//! systemd units through `systemctl`.
//!
//! Everything here runs `systemctl` with an argument vector (never a shell), with unit names
//! always after a `--` so that no name can be read as an option. Names are expected to be
//! validated already (`reliability_core::unit_name`); this module only measures and acts.
//!
//! Reading is one `systemctl show` for any number of units. Its output is one block of
//! `Key=Value` lines per unit, blocks separated by a blank line, in the order of the
//! arguments. The blocks are matched to the requested names by position, never by `Id=`:
//! `Id=` is the canonical name, so an alias (`sshd.service` for `ssh.service`) or a name
//! without a suffix (`cron` for `cron.service`) would not match.
//!
//! systemd marks "no value" in several ways, and [`parse_show`] turns all of them into `None`:
//! an empty value, `[not set]` (newer systemd, e.g. `MemoryCurrent=[not set]` when memory
//! accounting is off), the `u64::MAX` sentinel 18446744073709551615 (older systemd), and `0`
//! where zero cannot be a real value (`MainPID=0`, a monotonic timestamp of 0).
//!
//! The commands that change state ([`systemctl`], [`set_property_runtime`]) return what
//! `systemctl` said (exit code, stdout, stderr) rather than judging it: `is-active` exits 3
//! for an inactive unit, and the recovery logic that decides what a failure means lives in
//! the core. Only "could not ask systemd at all" is an error.

use crate::command::{self, CommandError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use serde::Serialize;

pub use crate::procs::cpu_percent;

/// The properties [`show_units`] asks for, in the order `systemctl show` is given them.
pub const SHOW_PROPERTIES: &[&str] = &[
    "Id",
    "LoadState",
    "ActiveState",
    "SubState",
    "UnitFileState",
    "MainPID",
    "NRestarts",
    "MemoryCurrent",
    "CPUUsageNSec",
    "TasksCurrent",
    "Requires",
    "BindsTo",
    "Result",
    "ExecMainStatus",
    "ActiveEnterTimestampMonotonic",
    "StateChangeTimestamp",
    "StateChangeTimestampMonotonic",
    "Description",
    "FragmentPath",
    "ControlGroup",
    "ExecStartPre",
    "ExecStartPost",
];

/// The actions [`systemctl`] accepts. Anything else is refused before systemctl runs.
pub const ACTIONS: &[&str] = &[
    "start",
    "stop",
    "restart",
    "try-restart",
    "reload",
    "reload-or-restart",
    "is-active",
    "is-failed",
    "reset-failed",
];

/// How long a read-only query (`show`, `set-property`) may take before it is killed.
pub const QUERY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long an action may take before systemctl is killed. systemd's own default start
/// timeout is 90 s, and a restart is a stop plus a start.
pub const ACTION_TIMEOUT: Duration = Duration::from_secs(180);

/// What systemctl prints when PID 1 is not systemd.
const NOT_BOOTED: &str = "has not been booted with systemd";

/// One unit as `systemctl show` describes it. Strings are systemd's own words
/// (`active`, `failed`, `not-found`, ...); `None` means systemd has no value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct UnitProps {
    /// The canonical unit name (may differ from the requested name: aliases, no suffix).
    pub id: String,
    /// `loaded`, `not-found`, `masked`, `bad-setting`, `error`, ...
    pub load_state: String,
    /// `active`, `inactive`, `failed`, `activating`, `deactivating`, `reloading`, ...
    pub active_state: String,
    /// `running`, `dead`, `failed`, `exited`, `auto-restart`, ...
    pub sub_state: String,
    /// `enabled`, `disabled`, `static`, `masked`, ...; `None` for not-found units.
    pub unit_file_state: Option<String>,
    /// `None` when the unit has no main process.
    pub main_pid: Option<u32>,
    /// Automatic restarts since the unit was last started by hand (services only).
    pub n_restarts: Option<u64>,
    /// Bytes of the unit's cgroup; `None` when memory accounting is off or it is not running.
    pub memory_current: Option<u64>,
    /// CPU time of the unit's cgroup in nanoseconds; see [`cpu_percent`] for a rate.
    pub cpu_usage_nsec: Option<u64>,
    pub tasks_current: Option<u64>,
    pub requires: Vec<String>,
    pub binds_to: Vec<String>,
    /// `success`, `exit-code`, `signal`, `core-dump`, `timeout`, `start-limit-hit`, ...
    pub result: Option<String>,
    /// Exit status (or signal number) of the last main process.
    pub exec_main_status: Option<i32>,
    /// CLOCK_MONOTONIC microseconds when the unit last became active.
    pub active_enter_timestamp_monotonic: Option<u64>,
    /// When the active state last changed, as systemctl prints it (`Mon 2026-11-23 10:00:00 UTC`).
    pub state_change_timestamp: Option<String>,
    /// CLOCK_MONOTONIC microseconds of the same moment.
    pub state_change_timestamp_monotonic: Option<u64>,
    pub description: Option<String>,
    /// The unit file; `None` for not-found units, `/dev/null` for masked ones.
    pub fragment_path: Option<String>,
    /// The unit's cgroup (`/system.slice/nginx.service`), relative to the cgroup root;
    /// `None` when it has none (not running). [`crate::procs::cgroup_pids`] lists its
    /// processes, which is how usage is measured where systemd has no accounting.
    pub control_group: Option<String>,
    /// The `ExecStartPre=` and `ExecStartPost=` commands of the last start, in order, with
    /// how each ended: when one of them failed the start, the main process never ran (or
    /// was stopped by systemd), and [`UnitProps::exec_main_status`] does not say why.
    pub start_commands: Vec<ExecCommand>,
}

/// One control command of a unit (`ExecStartPre=`, `ExecStartPost=`) as `systemctl show`
/// prints it: `{ path=/bin/sh ; argv[]=/bin/sh -c exit 4 ; ignore_errors=no ; start_time=[...]
/// ; stop_time=[...] ; pid=62 ; code=exited ; status=4 }`, one line per command.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ExecCommand {
    /// The property it was listed under: `ExecStartPre` or `ExecStartPost`.
    pub kind: String,
    /// The command line as systemd shows it (arguments joined by spaces).
    pub argv: String,
    /// Prefixed with `-` in the unit: its failure does not fail the start.
    pub ignore_errors: bool,
    /// `exited`, `killed`, `dumped`; `None` when it has not run in the last start.
    pub code: Option<String>,
    /// The exit status (`exited`) or signal number (`killed`, `dumped`).
    pub status: Option<i32>,
    /// The signal's name when it was killed (`KILL` for `status=9/KILL`).
    pub signal: Option<String>,
}

impl UnitProps {
    /// False when systemd knows no unit of that name (`LoadState=not-found`).
    pub fn exists(&self) -> bool {
        self.load_state != "not-found"
    }

    pub fn is_masked(&self) -> bool {
        self.load_state == "masked" || self.unit_file_state.as_deref() == Some("masked")
    }

    pub fn is_active(&self) -> bool {
        self.active_state == "active"
    }
}

pub use crate::command::CommandOutput;

#[derive(Debug, thiserror::Error)]
pub enum SystemdError {
    #[error("systemctl was not found (looked in $PATH, /usr/bin, /bin, /usr/sbin, /sbin)")]
    NotInstalled,
    #[error("systemd is not running on this host (PID 1 is not systemd)")]
    NotRunning { stderr: String },
    #[error("cannot reach systemd over D-Bus: {}", first_line(stderr))]
    NoBus { stderr: String },
    #[error("could not run '{program}': {source}")]
    Spawn { program: String, source: std::io::Error },
    #[error("'{command}' did not finish within {timeout:?} and was killed")]
    Timeout { command: String, timeout: Duration },
    #[error("'{command}' failed with exit code {code}: {stderr}", code = fmt_code(*.exit_code))]
    Failed {
        command: String,
        exit_code: Option<i32>,
        stderr: String,
    },
    /// `stdout` is kept for debugging but left out of the message: it can be long.
    #[error("'systemctl show' described {got} units for {wanted} names")]
    Mismatch { wanted: usize, got: usize, stdout: String },
    #[error("unsupported systemctl action '{0}'; expected one of: {list}", list = ACTIONS.join(", "))]
    UnsupportedAction(String),
    #[error(
        "invalid unit property '{0}': a property is Name=value, the name without '=' or spaces, the value on one line"
    )]
    InvalidProperty(String),
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or_default()
}

fn fmt_code(code: Option<i32>) -> String {
    code.map_or_else(|| "none (killed by a signal)".to_owned(), |c| c.to_string())
}

/// True when PID 1 is systemd (the same test as `sd_booted(3)`).
pub fn systemd_running() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// Properties of each named unit, in the order of `names`, from one `systemctl show`.
/// Unknown units are not an error: they come back with `load_state == "not-found"`.
pub fn show_units(names: &[String]) -> Result<Vec<UnitProps>, SystemdError> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let mut args = vec![
        "show".to_owned(),
        "--no-pager".to_owned(),
        format!("--property={}", SHOW_PROPERTIES.join(",")),
        "--".to_owned(),
    ];
    args.extend(names.iter().cloned());
    let out = run_systemctl(&args, QUERY_TIMEOUT)?;
    if !out.success() {
        // Not the whole argv: the property list would bury the names.
        return Err(SystemdError::Failed {
            command: format!("systemctl show -- {}", names.join(" ")),
            exit_code: out.exit_code,
            stderr: out.stderr.trim().to_owned(),
        });
    }
    let units = parse_show(&out.stdout);
    if units.len() != names.len() {
        return Err(SystemdError::Mismatch {
            wanted: names.len(),
            got: units.len(),
            stdout: out.stdout,
        });
    }
    Ok(units)
}

/// CPU use of each unit's cgroup over `interval`, in percent of one core (200 = two cores
/// busy), keyed by the requested name. `None` when systemd has no CPU figure for the unit
/// (CPU accounting off, unit not running) in either sample; 0 when the unit restarted in
/// between (its counter starts again).
pub fn sample_cpu_rates(names: &[String], interval: Duration) -> Result<BTreeMap<String, Option<f64>>, SystemdError> {
    let before = show_units(names)?;
    let t0 = Instant::now();
    thread::sleep(interval);
    let after = show_units(names)?;
    let elapsed = t0.elapsed();
    Ok(names
        .iter()
        .zip(before.iter().zip(after.iter()))
        .map(|(name, (b, a))| {
            let rate = match (b.cpu_usage_nsec, a.cpu_usage_nsec) {
                (Some(b), Some(a)) => Some(cpu_percent(b, a, elapsed)),
                _ => None,
            };
            (name.clone(), rate)
        })
        .collect())
}

/// `systemctl --version`: the version number and the full version (`252`, `252.22-1~deb12u1`).
pub fn version() -> Result<(u32, String), SystemdError> {
    let out = run_systemctl(&["--version".to_owned()], QUERY_TIMEOUT)?;
    crate::facts::parse_systemctl_version(&out.stdout).ok_or_else(|| SystemdError::Failed {
        command: out.argv.join(" "),
        exit_code: out.exit_code,
        stderr: format!("unexpected output: {}", first_line(&out.stdout)),
    })
}

/// `systemctl <action> -- <unit>` with [`ACTION_TIMEOUT`].
pub fn systemctl(action: &str, unit: &str) -> Result<CommandOutput, SystemdError> {
    systemctl_with_timeout(action, unit, ACTION_TIMEOUT)
}

/// `systemctl <action> -- <unit>`; a non-zero exit is returned, not an error, because its
/// meaning depends on the action (`is-active` exits 3 for an inactive unit).
pub fn systemctl_with_timeout(action: &str, unit: &str, timeout: Duration) -> Result<CommandOutput, SystemdError> {
    if !ACTIONS.contains(&action) {
        return Err(SystemdError::UnsupportedAction(action.to_owned()));
    }
    let args = [
        action.to_owned(),
        "--no-ask-password".to_owned(),
        "--".to_owned(),
        unit.to_owned(),
    ];
    run_systemctl(&args, timeout)
}

/// `systemctl set-property --runtime -- <unit> K=V...`: changes that end at the next boot
/// (e.g. `("CPUQuota", "50%")`, `("MemoryMax", "512M")`).
pub fn set_property_runtime(unit: &str, properties: &[(&str, &str)]) -> Result<CommandOutput, SystemdError> {
    let mut args = vec![
        "set-property".to_owned(),
        "--runtime".to_owned(),
        "--no-ask-password".to_owned(),
        "--".to_owned(),
        unit.to_owned(),
    ];
    for (key, value) in properties {
        let bad_key = key.is_empty() || key.contains(|c: char| c == '=' || c.is_whitespace());
        if bad_key || value.contains(['\n', '\r']) {
            return Err(SystemdError::InvalidProperty(format!("{key}={value}")));
        }
        args.push(format!("{key}={value}"));
    }
    run_systemctl(&args, QUERY_TIMEOUT)
}

/// `systemctl show --property=A,B -- <unit>`: the named properties as systemd prints them
/// (e.g. `MemoryMax` -> `536870912` or `infinity`, `CPUQuotaPerSecUSec` -> `500ms`).
pub fn show_properties(unit: &str, properties: &[&str]) -> Result<BTreeMap<String, String>, SystemdError> {
    let args = vec![
        "show".to_owned(),
        "--no-pager".to_owned(),
        format!("--property={}", properties.join(",")),
        "--".to_owned(),
        unit.to_owned(),
    ];
    let out = run_systemctl(&args, QUERY_TIMEOUT)?;
    if !out.success() {
        return Err(SystemdError::Failed {
            command: format!("systemctl show -- {unit}"),
            exit_code: out.exit_code,
            stderr: out.stderr.trim().to_owned(),
        });
    }
    Ok(out
        .stdout
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect())
}

/// Parse `systemctl show` output: one [`UnitProps`] per blank-line-separated block, in order.
/// Unknown keys are ignored and missing ones stay empty, so older and newer systemd both parse.
pub fn parse_show(text: &str) -> Vec<UnitProps> {
    let mut units = Vec::new();
    let mut current: Option<UnitProps> = None;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() {
            units.extend(current.take());
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        set_property(current.get_or_insert_with(UnitProps::default), key, value);
    }
    units.extend(current);
    units
}

fn set_property(unit: &mut UnitProps, key: &str, value: &str) {
    match key {
        "Id" => unit.id = value.to_owned(),
        "LoadState" => unit.load_state = value.to_owned(),
        "ActiveState" => unit.active_state = value.to_owned(),
        "SubState" => unit.sub_state = value.to_owned(),
        "UnitFileState" => unit.unit_file_state = text_value(value),
        "MainPID" => unit.main_pid = number(value).filter(|&p: &u32| p != 0),
        "NRestarts" => unit.n_restarts = number(value),
        "MemoryCurrent" => unit.memory_current = number(value),
        "CPUUsageNSec" => unit.cpu_usage_nsec = number(value),
        "TasksCurrent" => unit.tasks_current = number(value),
        "Requires" => unit.requires = list(value),
        "BindsTo" => unit.binds_to = list(value),
        "Result" => unit.result = text_value(value),
        "ExecMainStatus" => unit.exec_main_status = number(value),
        "ActiveEnterTimestampMonotonic" => {
            unit.active_enter_timestamp_monotonic = number(value).filter(|&t: &u64| t != 0);
        }
        "StateChangeTimestamp" => unit.state_change_timestamp = text_value(value),
        "StateChangeTimestampMonotonic" => {
            unit.state_change_timestamp_monotonic = number(value).filter(|&t: &u64| t != 0);
        }
        "Description" => unit.description = text_value(value),
        "FragmentPath" => unit.fragment_path = text_value(value),
        "ControlGroup" => unit.control_group = text_value(value),
        "ExecStartPre" | "ExecStartPost" => unit.start_commands.extend(parse_exec_command(key, value)),
        _ => {}
    }
}

/// One `{ path=... ; argv[]=... ; ignore_errors=... ; ... ; code=... ; status=... }` value.
/// The argv may hold ` ; ` itself, so it runs to the last ` ; ignore_errors=`; the fields
/// after it are systemd's own. `None` for anything else (an empty value: no command).
pub fn parse_exec_command(kind: &str, value: &str) -> Option<ExecCommand> {
    let inner = value.trim().strip_prefix('{')?.strip_suffix('}')?.trim();
    let argv_at = inner.find(" ; argv[]=")? + " ; argv[]=".len();
    let (argv, rest) = match inner[argv_at..].rfind(" ; ignore_errors=") {
        Some(end) => (&inner[argv_at..argv_at + end], &inner[argv_at + end + 3..]),
        None => (&inner[argv_at..], ""),
    };
    let mut command = ExecCommand {
        kind: kind.to_owned(),
        argv: argv.to_owned(),
        ..ExecCommand::default()
    };
    for field in rest.split(" ; ") {
        match field.split_once('=') {
            Some(("ignore_errors", v)) => command.ignore_errors = v == "yes",
            Some(("code", v)) => command.code = text_value(v).filter(|c| c != "(null)"),
            Some(("status", v)) => {
                let (number, signal) = v.split_once('/').unwrap_or((v, ""));
                command.status = number.parse().ok();
                command.signal = text_value(signal).filter(|s| s.parse::<i32>().is_err());
            }
            _ => {}
        }
    }
    Some(command)
}

fn text_value(value: &str) -> Option<String> {
    match value {
        "" | "[not set]" | "n/a" => None,
        v => Some(v.to_owned()),
    }
}

/// A number, or `None` for `[not set]`, an empty value and the `u64::MAX` "no value"
/// sentinel (older systemd prints `MemoryCurrent=18446744073709551615`).
fn number<T: std::str::FromStr>(value: &str) -> Option<T> {
    if value == "18446744073709551615" {
        return None;
    }
    value.parse().ok()
}

fn list(value: &str) -> Vec<String> {
    value.split_whitespace().map(str::to_owned).collect()
}

/// Where systemctl is. Modules may run with a short `$PATH`, so the usual places are tried too.
fn find_systemctl() -> Option<PathBuf> {
    command::which("systemctl")
}

fn run_systemctl(args: &[String], timeout: Duration) -> Result<CommandOutput, SystemdError> {
    let program = find_systemctl().ok_or(SystemdError::NotInstalled)?;
    // Untranslated messages and plain timestamps; no pager, colours or password prompts.
    let env = [("LC_ALL", "C"), ("SYSTEMD_PAGER", ""), ("SYSTEMD_COLORS", "0")];
    match command::run(&program, args, &env, timeout) {
        Ok(out) => classify(out),
        Err(CommandError::Spawn { program, source }) => Err(SystemdError::Spawn { program, source }),
        Err(CommandError::Timeout { command, timeout }) => Err(SystemdError::Timeout { command, timeout }),
    }
}

/// Turn "systemctl could not talk to systemd" into a typed error; everything else is the
/// caller's to judge.
fn classify(out: CommandOutput) -> Result<CommandOutput, SystemdError> {
    if out.success() {
        return Ok(out);
    }
    let stderr = out.stderr.trim();
    if stderr.contains(NOT_BOOTED) {
        return Err(SystemdError::NotRunning {
            stderr: stderr.to_owned(),
        });
    }
    if stderr.starts_with("Failed to connect to bus") {
        return Err(SystemdError::NoBus {
            stderr: stderr.to_owned(),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Real `systemctl show` output; see tests/fixtures/systemd/README.md for how it was made.
    fn fixture(name: &str) -> UnitProps {
        let text = match name {
            "active" => include_str!("../tests/fixtures/systemd/active.txt"),
            "busy" => include_str!("../tests/fixtures/systemd/busy.txt"),
            "crashloop" => include_str!("../tests/fixtures/systemd/crashloop.txt"),
            "enabled" => include_str!("../tests/fixtures/systemd/enabled.txt"),
            "failed" => include_str!("../tests/fixtures/systemd/failed.txt"),
            "masked" => include_str!("../tests/fixtures/systemd/masked.txt"),
            "missing" => include_str!("../tests/fixtures/systemd/missing.txt"),
            "oneshot" => include_str!("../tests/fixtures/systemd/oneshot.txt"),
            "startlimit" => include_str!("../tests/fixtures/systemd/startlimit.txt"),
            "stopped" => include_str!("../tests/fixtures/systemd/stopped.txt"),
            _ => panic!("no fixture {name}"),
        };
        let mut units = parse_show(text);
        assert_eq!(units.len(), 1, "{name}");
        units.remove(0)
    }

    /// The fields that tell the states apart, as one line per unit.
    fn summary(u: &UnitProps) -> String {
        let opt = |v: Option<&str>| v.unwrap_or("-").to_owned();
        let num = |v: Option<u64>| v.map_or("-".to_owned(), |n| n.to_string());
        format!(
            "{} {}/{}/{} file={} pid={} restarts={} result={} status={} entered={}",
            u.id,
            u.load_state,
            u.active_state,
            u.sub_state,
            opt(u.unit_file_state.as_deref()),
            num(u.main_pid.map(u64::from)),
            num(u.n_restarts),
            opt(u.result.as_deref()),
            u.exec_main_status.map_or("-".to_owned(), |n| n.to_string()),
            num(u.active_enter_timestamp_monotonic),
        )
    }

    #[test]
    fn captured_states() {
        let check = |name: &str, want: &str| assert_eq!(summary(&fixture(name)), want, "{name}");
        check(
            "active",
            "relos-active.service loaded/active/running file=indirect pid=41 restarts=0 \
             result=success status=0 entered=1457113668",
        );
        check(
            "enabled",
            "relos-enabled.service loaded/active/running file=enabled pid=30 restarts=0 \
             result=success status=0 entered=1448321108",
        );
        check(
            "oneshot",
            "relos-oneshot.service loaded/active/exited file=static pid=- restarts=0 \
             result=success status=0 entered=1457101078",
        );
        check(
            "stopped",
            "relos-stopped.service loaded/inactive/dead file=static pid=- restarts=0 \
             result=success status=0 entered=-",
        );
        check(
            "failed",
            "relos-failed.service loaded/failed/failed file=static pid=- restarts=0 \
             result=exit-code status=3 entered=1457099380",
        );
        check(
            "crashloop",
            "relos-crashloop.service loaded/activating/auto-restart file=static pid=- restarts=4 \
             result=exit-code status=7 entered=1466052678",
        );
        check(
            "startlimit",
            "relos-startlimit.service loaded/failed/failed file=static pid=- restarts=5 \
             result=exit-code status=9 entered=1458060758",
        );
        check(
            "masked",
            "relos-masked.service masked/inactive/dead file=masked pid=- restarts=0 \
             result=success status=0 entered=-",
        );
        check(
            "missing",
            "relos-missing.service not-found/inactive/dead file=- pid=- restarts=0 \
             result=success status=0 entered=-",
        );
    }

    /// A start failed by `ExecStartPre=` (the main process never ran: `ExecMainStatus=0`)
    /// and one failed by `ExecStartPost=` killed by a signal after an ignored failure.
    #[test]
    fn captured_start_commands() {
        let parse = |text: &str| parse_show(text).remove(0).start_commands;
        let command =
            |kind: &str, argv: &str, ignore: bool, code: &str, status: i32, signal: Option<&str>| ExecCommand {
                kind: kind.into(),
                argv: argv.into(),
                ignore_errors: ignore,
                code: Some(code.into()),
                status: Some(status),
                signal: signal.map(Into::into),
            };
        assert_eq!(
            parse(include_str!("../tests/fixtures/systemd/prefail.txt")),
            vec![
                command("ExecStartPre", "/bin/true", false, "exited", 0, None),
                command("ExecStartPre", "/bin/sh -c exit 4", false, "exited", 4, None),
            ]
        );
        assert_eq!(
            parse(include_str!("../tests/fixtures/systemd/postfail.txt")),
            vec![
                command("ExecStartPre", "/bin/false", true, "exited", 1, None),
                command(
                    "ExecStartPost",
                    "/bin/sh -c kill -9 $$$$",
                    false,
                    "killed",
                    9,
                    Some("KILL")
                ),
            ]
        );
        // Not run in the last start; an argv holding the separator; not a command at all.
        let not_run = parse_exec_command(
            "ExecStartPre",
            "{ path=/bin/a ; argv[]=/bin/a x ; ignore_errors=y ; ignore_errors=no ; start_time=[n/a] ; stop_time=[n/a] ; pid=0 ; code=(null) ; status=0/0 }",
        );
        assert_eq!(
            not_run,
            Some(ExecCommand {
                kind: "ExecStartPre".into(),
                argv: "/bin/a x ; ignore_errors=y".into(),
                status: Some(0),
                ..ExecCommand::default()
            })
        );
        assert_eq!(parse_exec_command("ExecStartPre", ""), None);
    }

    #[test]
    fn captured_active_unit_in_full() {
        assert_eq!(
            fixture("active"),
            UnitProps {
                id: "relos-active.service".into(),
                load_state: "loaded".into(),
                active_state: "active".into(),
                sub_state: "running".into(),
                unit_file_state: Some("indirect".into()),
                main_pid: Some(41),
                n_restarts: Some(0),
                // cgroup v1 build host: no accounting inside nspawn, so `[not set]`.
                memory_current: None,
                cpu_usage_nsec: None,
                tasks_current: None,
                requires: vec![
                    "sysinit.target".into(),
                    "relos-dep.service".into(),
                    "system.slice".into()
                ],
                binds_to: vec!["relos-oneshot.service".into()],
                result: Some("success".into()),
                exec_main_status: Some(0),
                active_enter_timestamp_monotonic: Some(1457113668),
                state_change_timestamp: Some("Mon 2026-11-23 09:03:53 UTC".into()),
                state_change_timestamp_monotonic: Some(1457113668),
                description: Some("reliability-os fixture: active service".into()),
                fragment_path: Some("/etc/systemd/system/relos-active.service".into()),
                // Not in the captured property list.
                control_group: None,
                start_commands: Vec::new(),
            }
        );
    }

    #[test]
    fn captured_missing_and_masked_units() {
        let missing = fixture("missing");
        assert!(!missing.exists() && !missing.is_masked() && !missing.is_active());
        assert_eq!((missing.fragment_path, missing.state_change_timestamp), (None, None));
        let masked = fixture("masked");
        assert!(masked.exists() && masked.is_masked() && !masked.is_active());
        assert_eq!(masked.requires, Vec::<String>::new());
        assert!(fixture("active").exists() && fixture("busy").is_active());
    }

    #[test]
    fn captured_multi_unit_output_keeps_argument_order() {
        let units = parse_show(include_str!("../tests/fixtures/systemd/many.txt"));
        let got: Vec<_> = units.iter().map(|u| format!("{} {}", u.id, u.load_state)).collect();
        assert_eq!(
            got,
            [
                "relos-active.service loaded",
                "relos-missing.service not-found",
                // Requested as relos-alias.service: an alias answers with the real name.
                "relos-active.service loaded",
                "relos-masked.service masked",
                "relos-failed.service loaded",
            ]
        );
    }

    #[test]
    fn accounting_numbers_parse() {
        // cgroup v2 hosts print numbers; the captured fixtures could not (see README).
        let u = &parse_show(
            "Id=a.service\nMemoryCurrent=1519616\nCPUUsageNSec=21930000\nTasksCurrent=1\n\
             NRestarts=12\nExecMainStatus=-1\n",
        )[0];
        assert_eq!(
            (u.memory_current, u.cpu_usage_nsec, u.tasks_current, u.n_restarts),
            (Some(1519616), Some(21930000), Some(1), Some(12))
        );
        assert_eq!(u.exec_main_status, Some(-1));
    }

    #[test]
    fn sentinels_and_not_set_are_none() {
        let units = parse_show(
            "Id=a.service\nLoadState=loaded\nMainPID=0\nMemoryCurrent=[not set]\n\
             CPUUsageNSec=18446744073709551615\nTasksCurrent=\nNRestarts=0\nUnitFileState=\n\
             ActiveEnterTimestampMonotonic=0\nStateChangeTimestamp=n/a\n",
        );
        assert_eq!(units.len(), 1);
        let u = &units[0];
        assert_eq!(u.main_pid, None);
        assert_eq!(u.memory_current, None);
        assert_eq!(u.cpu_usage_nsec, None);
        assert_eq!(u.tasks_current, None);
        assert_eq!(u.n_restarts, Some(0));
        assert_eq!(u.unit_file_state, None);
        assert_eq!(u.active_enter_timestamp_monotonic, None);
        assert_eq!(u.state_change_timestamp, None);
    }

    #[test]
    fn blocks_keep_argument_order_and_values_keep_equals_signs() {
        let units = parse_show(
            "Id=b.service\nDescription=x=y z\nRequires=c.socket  d.target\n\n\
             Id=a.service\nMemoryCurrent=4096\nControlGroup=/system.slice/a.service\n",
        );
        let ids: Vec<_> = units.iter().map(|u| u.id.as_str()).collect();
        assert_eq!(ids, ["b.service", "a.service"]);
        assert_eq!(units[0].description.as_deref(), Some("x=y z"));
        assert_eq!(units[0].requires, ["c.socket", "d.target"]);
        assert_eq!(units[1].memory_current, Some(4096));
        assert_eq!(units[1].control_group.as_deref(), Some("/system.slice/a.service"));
        assert_eq!(units[0].control_group, None);
    }

    #[test]
    fn extra_blank_lines_and_crlf_do_not_make_empty_units() {
        let units = parse_show("\n\nId=a.service\r\n\n\n\nId=b.service\n\n");
        assert_eq!(units.len(), 2);
        assert_eq!(units[0].id, "a.service");
    }

    #[test]
    fn not_booted_is_a_typed_error() {
        let out = CommandOutput {
            argv: vec!["systemctl".into()],
            exit_code: Some(1),
            stdout: String::new(),
            // Captured on this build machine, whose PID 1 is not systemd.
            stderr: "System has not been booted with systemd as init system (PID 1). Can't operate.\n\
                     Failed to connect to bus: Host is down\n"
                .into(),
            duration_ms: 1,
        };
        assert!(matches!(classify(out), Err(SystemdError::NotRunning { .. })));
    }

    #[test]
    fn non_zero_exit_is_returned_not_judged() {
        let out = CommandOutput {
            argv: vec!["systemctl".into(), "is-active".into()],
            exit_code: Some(3),
            stdout: "inactive\n".into(),
            stderr: String::new(),
            duration_ms: 1,
        };
        let out = classify(out).map(|o| o.exit_code);
        assert!(matches!(out, Ok(Some(3))));
    }

    #[test]
    fn bad_action_and_property_are_refused_before_running() {
        let err = systemctl("enable", "a.service").map(|_| ());
        assert_eq!(
            err.map_err(|e| e.to_string()),
            Err(format!(
                "unsupported systemctl action 'enable'; expected one of: {}",
                ACTIONS.join(", ")
            ))
        );
        let err = set_property_runtime("a.service", &[("CPU Quota", "5%")]).map(|_| ());
        assert!(matches!(err, Err(SystemdError::InvalidProperty(p)) if p == "CPU Quota=5%"));
    }
}
