//! `processes`: are the expected processes running, how many, and how much do they use?
//!
//! A check selects processes by any combination of exact `name`, a `cmdline` regex, a
//! `pidfile` and a `user` (all given criteria must hold), from one reading of the process
//! table ([`reliability_os::procs::list_processes_with`]) shared by every check of the run,
//! which reads of each process only what the criteria look at; the processes selected are
//! then read whole. The module's own process is never counted, nor are zombies.
//!
//! A long-lived caller (the daemon, whose process checks are separate runs) shares one
//! reading among runs through [`Tables`]: a run due at T takes a reading begun at or after
//! T, so N process checks due together cost one reading of the table, not N, and no run
//! sees the table as it was before the run was due.
//!
//! - The count must lie within `min_count`..`max_count` (default at least one): critical
//!   otherwise. In perfdata this is the critical range `min:max`.
//! - Per-process levels (`cpu_*`, `rss_*`, `fds_*`) apply to each process; the worst one
//!   decides. Total levels (`total_cpu_*`, ...) apply to the sums.
//! - CPU is a rate: it is sampled over `sample_interval` only when a CPU level is set, and
//!   in percent of one core (two busy threads: 200), as `top` shows it.
//! - RSS levels are sizes (`512M`); see [`reliability_core::size`].

use reliability_core::check::{CheckResult, Perfdata, Status, Unit};
use reliability_core::size::format_size;
use reliability_core::spec::{Kind, Opt, Spec};
use reliability_core::threshold::{format_number, Levels, Range};
use reliability_os::procs::{list_processes_with, read_pidfile, read_processes, sample_cpu, Fields, ProcInfo};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::levels::{any, at, levels, size_levels, Problems};

/// The `processes` option: a list of checks.
pub fn option() -> Opt {
    Opt::list("processes", Kind::Dict).options(
        Spec::new(vec![
            Opt::str("name"),
            Opt::str("cmdline"),
            Opt::path("pidfile"),
            Opt::str("user"),
            Opt::int("min_count").default(1).range(0.0, 1e9),
            Opt::int("max_count").range(0.0, 1e9),
            Opt::raw("cpu_warning"),
            Opt::raw("cpu_critical"),
            Opt::raw("rss_warning"),
            Opt::raw("rss_critical"),
            Opt::raw("fds_warning"),
            Opt::raw("fds_critical"),
            Opt::raw("total_cpu_warning"),
            Opt::raw("total_cpu_critical"),
            Opt::raw("total_rss_warning"),
            Opt::raw("total_rss_critical"),
            Opt::raw("total_fds_warning"),
            Opt::raw("total_fds_critical"),
        ])
        .required_one_of(&["name", "cmdline", "pidfile", "user"]),
    )
}

/// One measure of the selected processes, for [`judge`].
struct Measure<'a> {
    name: &'static str,
    levels: &'a Each,
    unit: Option<Unit>,
    show: &'a dyn Fn(f64) -> String,
    /// Whether a process without a value makes the check unknown (when levels are set).
    missing_is_unknown: bool,
    values: Vec<(u32, Option<f64>)>,
}

/// One `processes` entry as the spec validated it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProcessParams {
    pub name: Option<String>,
    pub cmdline: Option<String>,
    pub pidfile: Option<PathBuf>,
    pub user: Option<String>,
    pub min_count: u64,
    pub max_count: Option<u64>,
    pub cpu_warning: Option<Value>,
    pub cpu_critical: Option<Value>,
    pub rss_warning: Option<Value>,
    pub rss_critical: Option<Value>,
    pub fds_warning: Option<Value>,
    pub fds_critical: Option<Value>,
    pub total_cpu_warning: Option<Value>,
    pub total_cpu_critical: Option<Value>,
    pub total_rss_warning: Option<Value>,
    pub total_rss_critical: Option<Value>,
    pub total_fds_warning: Option<Value>,
    pub total_fds_critical: Option<Value>,
}

/// Levels of one measure, per process and in total.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Each {
    pub each: Levels,
    pub total: Levels,
}

/// One process check, ready to run.
#[derive(Clone, Debug)]
pub struct ProcessCheck {
    pub name: String,
    pub process_name: Option<String>,
    pub cmdline: Option<CmdlinePattern>,
    pub pidfile: Option<PathBuf>,
    pub user: Option<String>,
    /// The allowed count as a Nagios range, `min:max`: outside it is critical.
    pub count: Levels,
    /// CPU in percent of one core.
    pub cpu: Each,
    /// Resident memory in bytes.
    pub rss: Each,
    /// Open file descriptors.
    pub fds: Each,
}

impl ProcessCheck {
    /// Validates what the spec cannot: the regex, the count bounds, the levels.
    pub fn compile(p: ProcessParams, path: &str, problems: &mut Problems) -> ProcessCheck {
        let cmdline = p.cmdline.as_deref().and_then(|re| match CmdlinePattern::new(re) {
            Ok(compiled) => Some(compiled),
            Err(e) => {
                problems.push(&at(path, "cmdline"), crate::http::invalid_regex(re, &e));
                None
            }
        });
        if let Some(user) = &p.user {
            if user.trim().is_empty() || user.contains(|c: char| c == ':' || c.is_whitespace()) {
                problems.push(&at(path, "user"), format!("'{user}' is not a user name or uid"));
            }
        }
        if let Some(name) = &p.name {
            if name.is_empty() {
                problems.push(&at(path, "name"), "an empty process name");
            }
        }
        let max = p.max_count.map(|m| m.to_string()).unwrap_or_default();
        let count = match Range::parse(&format!("{}:{max}", p.min_count)) {
            Ok(range) => Levels {
                warning: None,
                critical: Some(range),
            },
            Err(_) => {
                problems.push(
                    &at(path, "max_count"),
                    format!("{max} is less than min_count {}", p.min_count),
                );
                Levels::default()
            }
        };
        let mut label = Vec::new();
        if let Some(n) = &p.name {
            label.push(n.clone());
        }
        if let Some(c) = &p.cmdline {
            label.push(format!("cmdline~'{c}'"));
        }
        if let Some(f) = &p.pidfile {
            label.push(format!("pidfile {}", f.display()));
        }
        if let Some(u) = &p.user {
            label.push(format!("user {u}"));
        }
        let mut read = |name: &str, w: &Option<Value>, c: &Option<Value>, size: bool| {
            if size {
                size_levels(path, name, w.as_ref(), c.as_ref(), problems)
            } else {
                levels(path, name, w.as_ref(), c.as_ref(), problems)
            }
        };
        // In the order of the options, so that problems are reported in that order.
        let cpu = read("cpu", &p.cpu_warning, &p.cpu_critical, false);
        let rss = read("rss", &p.rss_warning, &p.rss_critical, true);
        let fds = read("fds", &p.fds_warning, &p.fds_critical, false);
        let total_cpu = read("total_cpu", &p.total_cpu_warning, &p.total_cpu_critical, false);
        let total_rss = read("total_rss", &p.total_rss_warning, &p.total_rss_critical, true);
        let total_fds = read("total_fds", &p.total_fds_warning, &p.total_fds_critical, false);
        ProcessCheck {
            name: format!("process {}", label.join(" ")),
            cpu: Each {
                each: cpu,
                total: total_cpu,
            },
            rss: Each {
                each: rss,
                total: total_rss,
            },
            fds: Each {
                each: fds,
                total: total_fds,
            },
            process_name: p.name,
            cmdline,
            pidfile: p.pidfile,
            user: p.user,
            count,
        }
    }

    fn wants_cpu(&self) -> bool {
        any(&self.cpu.each) || any(&self.cpu.total)
    }

    /// Whether `p` is one of this check's processes. `pidfile_pid` is the pid the
    /// pidfile names (when the check has one).
    pub fn matches(&self, p: &ProcInfo, pidfile_pid: Option<u32>) -> bool {
        let line = if self.cmdline.is_some() {
            p.cmdline.join(" ")
        } else {
            String::new()
        };
        self.matches_line(p, &line, pidfile_pid)
    }

    /// [`ProcessCheck::matches`], given the command line joined by spaces (joined once
    /// per reading of the table, not once per check: a compiler's is kilobytes long).
    pub fn matches_line(&self, p: &ProcInfo, line: &str, pidfile_pid: Option<u32>) -> bool {
        if matches!(p.state, 'Z' | 'X' | 'x') {
            return false;
        }
        if self.pidfile.is_some() && pidfile_pid != Some(p.pid) {
            return false;
        }
        if let Some(name) = &self.process_name {
            let base = |s: &str| Path::new(s.trim_end_matches(" (deleted)")).file_name() == Some(name.as_ref());
            let argv0 = p.cmdline.first().is_some_and(|a| base(a));
            if p.name != *name && !argv0 && !p.exe.as_deref().is_some_and(base) {
                return false;
            }
        }
        if let Some(pattern) = &self.cmdline {
            if !pattern.is_match(line) {
                return false;
            }
        }
        if let Some(user) = &self.user {
            let by_id = user.parse::<u32>().is_ok_and(|uid| uid == p.euid);
            if !by_id && p.user.as_deref() != Some(user) {
                return false;
            }
        }
        true
    }
}

/// A `cmdline` regex, with what every line it matches must start with: most lines of a
/// process table are ruled out without running the regex (a kernel thread's empty line,
/// and any line without the literal a `^/usr/sbin/nginx` pattern starts with), which is
/// most of the table times most of the checks.
#[derive(Clone, Debug)]
pub struct CmdlinePattern {
    regex: regex_lite::Regex,
    /// Whether the regex matches an empty line (`^$`, `.*`), asked once.
    matches_empty: bool,
    /// A literal every match starts at the start of the line with; empty when there is none.
    prefix: String,
}

impl CmdlinePattern {
    pub fn new(pattern: &str) -> Result<CmdlinePattern, regex_lite::Error> {
        let regex = regex_lite::Regex::new(pattern)?;
        Ok(CmdlinePattern {
            matches_empty: regex.is_match(""),
            prefix: anchored_prefix(pattern),
            regex,
        })
    }

    pub fn is_match(&self, line: &str) -> bool {
        if line.is_empty() {
            return self.matches_empty;
        }
        line.starts_with(self.prefix.as_str()) && self.regex.is_match(line)
    }
}

/// The literal that every match of `pattern` starts with at the start of the line:
/// `^/usr/sbin/nginx -g` gives `/usr/sbin/nginx -g`. Empty unless the pattern starts with
/// `^` (no flags before it, so `^` is the start of the line) and has no `|` (which could
/// end the anchored branch); it stops at the first character that is not a literal, and
/// leaves out a character a `?`, `*` or `{` may repeat zero times.
fn anchored_prefix(pattern: &str) -> String {
    let Some(rest) = pattern.strip_prefix('^') else {
        return String::new();
    };
    if pattern.contains('|') {
        return String::new();
    }
    let mut prefix = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        let literal = match c {
            '\\' => match chars.next() {
                // An escaped metacharacter is itself; `\d`, `\b`, `\<`, `\x41`... are not.
                Some(e) if r"\.+*?()|[]{}^$#&-~".contains(e) => e,
                _ => break,
            },
            '.' | '+' | '*' | '?' | '(' | ')' | '[' | ']' | '{' | '}' | '^' | '$' => break,
            c => c,
        };
        match chars.peek() {
            // The character may be absent: it ends the prefix, left out.
            Some('?' | '*' | '{') => break,
            // Present at least once: it is the last of the prefix.
            Some('+') => {
                prefix.push(literal);
                break;
            }
            _ => prefix.push(literal),
        }
    }
    prefix
}

/// Readings of the process table shared by the runs of one long-lived caller (the
/// daemon). A run due at T is handed the last reading if it began at or after T and has
/// the parts the run's criteria look at; otherwise it reads the table and leaves its
/// reading for the runs after it. Runs take turns on the reading (one lock): N runs due
/// together read once; a reading that hangs in `/proc` holds up only process checks,
/// which would all have hung on it anyway.
#[derive(Debug, Default)]
pub struct Tables {
    last: Mutex<Option<Reading>>,
    reads: AtomicU64,
}

#[derive(Debug)]
struct Reading {
    at: Instant,
    fields: Fields,
    table: Arc<Table>,
}

/// One reading of the process table, with each process's command line joined.
#[derive(Debug)]
struct Table {
    procs: Vec<ProcInfo>,
    lines: Vec<String>,
}

impl Table {
    fn read(fields: Fields) -> Table {
        let procs = list_processes_with(fields);
        let lines = procs.iter().map(|p| p.cmdline.join(" ")).collect();
        Table { procs, lines }
    }
}

impl Tables {
    pub fn new() -> Tables {
        Tables::default()
    }

    /// A reading begun at or after `due` with at least `fields`.
    fn reading(&self, due: Instant, fields: Fields) -> Arc<Table> {
        let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
        // Parts a recent reading had are read again too, so that runs with different
        // criteria do not take turns reading the table.
        let fields = match last.as_ref() {
            Some(r) if r.at >= due && r.fields.covers(fields) => return Arc::clone(&r.table),
            Some(r) if r.at >= due => r.fields.union(fields),
            _ => fields,
        };
        let at = Instant::now();
        let table = Arc::new(Table::read(fields));
        self.reads.fetch_add(1, Ordering::Relaxed);
        *last = Some(Reading {
            at,
            fields,
            table: Arc::clone(&table),
        });
        table
    }

    /// How many times the table was read.
    pub fn reads(&self) -> u64 {
        self.reads.load(Ordering::Relaxed)
    }
}

/// The parts of each process that `checks`' criteria look at.
fn fields_for(checks: &[ProcessCheck]) -> Fields {
    checks.iter().fold(Fields::STAT, |f, c| {
        f.union(Fields {
            cmdline: c.cmdline.is_some() || c.process_name.is_some(),
            exe: c.process_name.is_some(),
            owner: c.user.is_some(),
            fds: false,
        })
    })
}

/// Runs every check against one reading of the process table.
pub fn run(checks: &[ProcessCheck], interval: Duration) -> Vec<CheckResult> {
    run_shared(checks, interval, None)
}

/// Runs every check against one reading of the process table: `shared`'s, when it has
/// one begun at or after its instant (when the run was due), else a new one.
pub fn run_shared(checks: &[ProcessCheck], interval: Duration, shared: Option<(&Tables, Instant)>) -> Vec<CheckResult> {
    let started = Instant::now();
    let me = std::process::id();
    let fields = fields_for(checks);
    let table = match shared {
        Some((tables, due)) => tables.reading(due, fields),
        None => Arc::new(Table::read(fields)),
    };
    let chosen: Vec<(Vec<u32>, Option<String>)> = checks
        .iter()
        .map(|check| {
            let (pid, error) = match &check.pidfile {
                Some(path) => match read_pidfile(path) {
                    Ok(pid) => (Some(pid), None),
                    Err(e) => (None, Some(e.to_string())),
                },
                None => (None, None),
            };
            let pids = match (&check.pidfile, pid) {
                (Some(_), None) => Vec::new(),
                _ => table
                    .procs
                    .iter()
                    .zip(&table.lines)
                    .filter(|(p, line)| p.pid != me && check.matches_line(p, line, pid))
                    .map(|(p, _)| p.pid)
                    .collect(),
            };
            (pids, error)
        })
        .collect();
    // The chosen processes read for what a result tells of them (owner, descriptors: the
    // command line and executable were read for the selection if it needed them, and no
    // result shows them); one that ended since the reading, or whose pid now belongs to
    // another process, is left out.
    let mut wanted: Vec<u32> = chosen.iter().flat_map(|(pids, _)| pids.iter().copied()).collect();
    wanted.sort_unstable();
    wanted.dedup();
    let started_at: HashMap<u32, u64> = table.procs.iter().map(|p| (p.pid, p.start_time_ticks)).collect();
    let described = Fields {
        cmdline: false,
        exe: false,
        owner: true,
        fds: true,
    };
    let whole: HashMap<u32, ProcInfo> = read_processes(&wanted, described)
        .into_iter()
        .filter(|p| started_at.get(&p.pid) == Some(&p.start_time_ticks))
        .map(|p| (p.pid, p))
        .collect();
    let selected: Vec<(Vec<&ProcInfo>, Option<String>)> = chosen
        .into_iter()
        .map(|(pids, error)| (pids.iter().filter_map(|pid| whole.get(pid)).collect(), error))
        .collect();
    let mut sampled: Vec<u32> = checks
        .iter()
        .zip(&selected)
        .filter(|(c, _)| c.wants_cpu())
        .flat_map(|(_, (procs, _))| procs.iter().map(|p| p.pid))
        .collect();
    sampled.sort_unstable();
    sampled.dedup();
    let cpu = if sampled.is_empty() {
        None
    } else {
        Some(sample_cpu(&sampled, interval))
    };
    let duration = started.elapsed();
    checks
        .iter()
        .zip(&selected)
        .map(|(check, (procs, error))| {
            let cpu = cpu.as_ref().filter(|_| check.wants_cpu());
            judge(check, procs, cpu, error.as_deref(), duration)
        })
        .collect()
}

/// The verdict on the processes a check selected. `cpu` holds the sampled CPU of each pid
/// when the check has CPU levels; `pidfile_error` says why the pidfile named no process.
pub fn judge(
    check: &ProcessCheck,
    procs: &[&ProcInfo],
    cpu: Option<&HashMap<u32, f64>>,
    pidfile_error: Option<&str>,
    duration: Duration,
) -> CheckResult {
    let count = procs.len() as f64;
    let mut statuses = vec![check.count.evaluate(count)];
    let mut problems = Vec::new();
    let mut perfdata = vec![Perfdata::new(check.name.clone(), count, Some(Unit::Count))
        .with_levels(&check.count)
        .with_bounds(Some(0.0), None)];
    let pids: Vec<String> = procs.iter().map(|p| p.pid.to_string()).collect();
    let mut said = match check.count.explain(count) {
        Some(why) => {
            problems.push(format!("{count} processes ({why})"));
            Vec::new()
        }
        None if procs.is_empty() => vec!["no processes".to_string()],
        None => vec![format!("{count} processes (pids {})", pids.join(", "))],
    };
    if let Some(error) = pidfile_error {
        problems.push(error.to_string());
    }

    let cpu_of = |p: &ProcInfo| cpu.and_then(|c| c.get(&p.pid)).map(|v| (v * 100.0).round() / 100.0);
    let percent = |v: f64| format!("{}%", format_number(v));
    let measures = [
        Measure {
            name: "cpu",
            levels: &check.cpu,
            unit: Some(Unit::Percent),
            show: &percent,
            // A process that ended during the sample has no rate, and is no problem.
            missing_is_unknown: false,
            values: procs.iter().map(|p| (p.pid, cpu_of(p))).collect(),
        },
        Measure {
            name: "rss",
            levels: &check.rss,
            unit: Some(Unit::Bytes),
            show: &format_size,
            missing_is_unknown: true,
            values: procs.iter().map(|p| (p.pid, Some(p.rss_bytes as f64))).collect(),
        },
        Measure {
            name: "fds",
            levels: &check.fds,
            unit: None,
            show: &format_number,
            missing_is_unknown: true,
            values: procs.iter().map(|p| (p.pid, p.open_fds.map(f64::from))).collect(),
        },
    ];
    let mut totals = serde_json::Map::new();
    for m in &measures {
        if any(&m.levels.each) {
            for (pid, value) in &m.values {
                match value {
                    Some(v) => {
                        statuses.push(m.levels.each.evaluate(*v));
                        if let Some(why) = m.levels.each.explain_with(*v, m.show) {
                            problems.push(format!("pid {pid} {} {} ({why})", m.name, (m.show)(*v)));
                        }
                    }
                    None if m.missing_is_unknown => {
                        statuses.push(Status::Unknown);
                        problems.push(format!("pid {pid} {}: cannot be read", m.name));
                    }
                    None => {}
                }
            }
        }
        let known: Vec<f64> = m.values.iter().filter_map(|(_, v)| *v).collect();
        if known.is_empty() {
            continue;
        }
        let total = (known.iter().sum::<f64>() * 100.0).round() / 100.0;
        totals.insert(format!("total_{}", m.name), json!(total));
        if any(&m.levels.total) {
            statuses.push(m.levels.total.evaluate(total));
            match m.levels.total.explain_with(total, m.show) {
                Some(why) => problems.push(format!("total {} {} ({why})", m.name, (m.show)(total))),
                None => said.push(format!("total {} {}", m.name, (m.show)(total))),
            }
        } else if m.name == "rss" {
            said.push(format!("total rss {}", (m.show)(total)));
        }
        perfdata.push(Perfdata::new(format!("{} {}", check.name, m.name), total, m.unit).with_levels(&m.levels.total));
    }

    let status = Status::worst(statuses);
    let mut result =
        CheckResult::measured_bare(&check.name, "process", count, Some(Unit::Count), &check.count, duration);
    result.status = status;
    result.perfdata = Perfdata::join(&perfdata);
    let all: Vec<String> = problems.into_iter().chain(said).collect();
    result.message = format!("{}: {}", check.name, all.join(", "));
    let d = &mut result.details;
    d.insert("count".into(), procs.len().into());
    d.insert("pids".into(), procs.iter().map(|p| p.pid).collect::<Vec<_>>().into());
    d.insert(
        "processes".into(),
        procs
            .iter()
            .map(|p| {
                json!({
                    "pid": p.pid,
                    "name": p.name,
                    "user": p.user,
                    "rss_bytes": p.rss_bytes,
                    "open_fds": p.open_fds,
                    "cpu_percent": cpu_of(p),
                })
            })
            .collect::<Vec<_>>()
            .into(),
    );
    for (k, v) in totals {
        d.insert(k, v);
    }
    d.insert("count_range".into(), check.count.critical.map(|r| r.to_string()).into());
    if let Some(error) = pidfile_error {
        d.insert("pidfile_error".into(), error.into());
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> ProcessParams {
        ProcessParams {
            name: Some("web".into()),
            cmdline: None,
            pidfile: None,
            user: None,
            min_count: 1,
            max_count: None,
            cpu_warning: None,
            cpu_critical: None,
            rss_warning: None,
            rss_critical: None,
            fds_warning: None,
            fds_critical: None,
            total_cpu_warning: None,
            total_cpu_critical: None,
            total_rss_warning: None,
            total_rss_critical: None,
            total_fds_warning: None,
            total_fds_critical: None,
        }
    }

    fn compile(p: ProcessParams) -> Result<ProcessCheck, String> {
        let mut problems = Problems::default();
        let c = ProcessCheck::compile(p, "processes[0]", &mut problems);
        if problems.is_empty() {
            Ok(c)
        } else {
            Err(problems.0.join("; "))
        }
    }

    fn proc(pid: u32, name: &str, cmdline: &[&str], user: &str, rss: u64, fds: u32) -> ProcInfo {
        ProcInfo {
            pid,
            ppid: 1,
            name: name.into(),
            exe: Some(format!("/usr/bin/{name}")),
            cmdline: cmdline.iter().map(|s| s.to_string()).collect(),
            uid: 33,
            euid: 33,
            user: Some(user.into()),
            state: 'S',
            rss_bytes: rss,
            vsize: 0,
            threads: 1,
            start_time_ticks: 1,
            utime_ticks: 0,
            stime_ticks: 0,
            open_fds: Some(fds),
        }
    }

    #[test]
    fn bad_input_is_named() {
        let fails = |p: ProcessParams, expected: &str| assert_eq!(compile(p).map(|_| ()), Err(expected.to_string()));
        fails(
            ProcessParams {
                cmdline: Some("(".into()),
                ..params()
            },
            "processes[0].cmdline: invalid regex '(': found open group without closing ')'",
        );
        fails(
            ProcessParams {
                min_count: 3,
                max_count: Some(2),
                ..params()
            },
            "processes[0].max_count: 2 is less than min_count 3",
        );
        fails(
            ProcessParams {
                user: Some("a b".into()),
                ..params()
            },
            "processes[0].user: 'a b' is not a user name or uid",
        );
        fails(
            ProcessParams {
                rss_warning: Some(json!("lots")),
                total_cpu_critical: Some(json!("9:1")),
                ..params()
            },
            "processes[0].rss_warning: invalid size 'lots': 'lots' does not start with a number; \
             processes[0].total_cpu_critical: invalid range '9:1': start 9 is greater than end 1",
        );
    }

    #[test]
    fn a_cmdline_pattern_knows_the_literal_its_matches_start_with() {
        for (pattern, prefix) in [
            ("^/usr/sbin/nginx -g", "/usr/sbin/nginx -g"),
            ("^hx-bench-proc-3 ", "hx-bench-proc-3 "),
            (r"^/opt/app\.d/run\b", "/opt/app.d/run"),
            (r"^java .*-jar", "java "),
            ("^ab?c", "a"),
            ("^ab*", "a"),
            ("^ab{0,2}", "a"),
            ("^ab+c", "ab"),
            ("^(?i)nginx", ""),
            ("^nginx|apache", ""),
            ("nginx", ""),
            (r"^\<x", ""),
            (r"^\d+", ""),
            ("^$", ""),
            ("^é-x", "é-x"),
        ] {
            assert_eq!(anchored_prefix(pattern), prefix, "{pattern}");
        }
    }

    #[test]
    fn a_cmdline_pattern_matches_exactly_what_its_regex_matches() {
        let lines = [
            "",
            "/usr/sbin/nginx -g daemon off;",
            "/usr/sbin/nginx",
            "hx-bench-proc-3 30",
            "hx-bench-proc-30 30",
            "java -Xmx1g -jar app.jar",
            "ac",
            "abbbc",
            "NGINX: master",
            "apache2 -k start",
            "/opt/app.d/run --x",
            "/opt/appxd/run",
        ];
        let patterns = [
            "^/usr/sbin/nginx -g",
            "^hx-bench-proc-3 ",
            r"^/opt/app\.d/run\b",
            "^java .*-jar",
            "^ab?c",
            "^ab+c",
            "^(?i)nginx",
            "^nginx|apache",
            "nginx",
            "^$",
            ".*",
            "^",
        ];
        for pattern in patterns {
            let regex = regex_lite::Regex::new(pattern).expect("regex");
            let compiled = CmdlinePattern::new(pattern).expect("pattern");
            for line in lines {
                assert_eq!(compiled.is_match(line), regex.is_match(line), "{pattern} on {line:?}");
            }
        }
    }

    #[test]
    fn matching_by_name_cmdline_user_and_pidfile() {
        let web = proc(
            10,
            "gunicorn",
            &["/usr/bin/python3", "/srv/app/bin/web", "--workers=2"],
            "www-data",
            1,
            1,
        );
        let renamed = proc(11, "sleep", &["web-worker", "1000"], "root", 1, 1);
        let zombie = ProcInfo {
            state: 'Z',
            ..proc(12, "web", &[], "www-data", 0, 0)
        };
        let m =
            |p: ProcessParams, who: &ProcInfo, pidfile: Option<u32>| compile(p).expect("valid").matches(who, pidfile);
        let by_name = |n: &str| ProcessParams {
            name: Some(n.into()),
            ..params()
        };
        assert!(m(by_name("gunicorn"), &web, None));
        assert!(m(by_name("python3"), &web, None), "argv[0]'s base name");
        assert!(!m(by_name("gunicor"), &web, None), "exact, not a prefix");
        assert!(m(by_name("web-worker"), &renamed, None));
        assert!(!m(by_name("web"), &zombie, None), "zombies are not running");
        let by_cmdline = ProcessParams {
            name: None,
            cmdline: Some(r"app/bin/web\b.*--workers".into()),
            ..params()
        };
        assert!(m(by_cmdline.clone(), &web, None));
        assert!(!m(by_cmdline, &renamed, None));
        let by_user = |u: &str| ProcessParams {
            name: None,
            user: Some(u.into()),
            ..params()
        };
        assert!(m(by_user("www-data"), &web, None));
        assert!(m(by_user("33"), &web, None));
        assert!(!m(by_user("root"), &web, None));
        let by_pidfile = ProcessParams {
            pidfile: Some("/run/web.pid".into()),
            ..by_name("gunicorn")
        };
        assert!(m(by_pidfile.clone(), &web, Some(10)));
        assert!(!m(by_pidfile.clone(), &web, Some(11)));
        assert!(!m(by_pidfile, &web, None));
    }

    /// `expected` is `status: message`.
    fn judged(p: ProcessParams, procs: &[ProcInfo], cpu: &[(u32, f64)], expected: &str) {
        let check = compile(p).expect("valid");
        let refs: Vec<&ProcInfo> = procs.iter().collect();
        let cpu: HashMap<u32, f64> = cpu.iter().copied().collect();
        let r = judge(
            &check,
            &refs,
            Some(&cpu).filter(|c| !c.is_empty()),
            None,
            Duration::ZERO,
        );
        assert_eq!(format!("{}: {}", r.status, r.message), expected);
    }

    #[test]
    fn counts_and_levels() {
        let two = [
            proc(10, "web", &["web"], "u", 64 << 20, 10),
            proc(11, "web", &["web"], "u", 16 << 20, 900),
        ];
        judged(
            params(),
            &two,
            &[],
            "ok: process web: 2 processes (pids 10, 11), total rss 80 MiB",
        );
        judged(
            params(),
            &[],
            &[],
            "critical: process web: 0 processes (critical: below 1)",
        );
        judged(
            ProcessParams {
                min_count: 0,
                max_count: Some(0),
                ..params()
            },
            &[],
            &[],
            "ok: process web: no processes",
        );
        judged(
            ProcessParams {
                max_count: Some(1),
                ..params()
            },
            &two,
            &[],
            "critical: process web: 2 processes (critical: above 1), total rss 80 MiB",
        );
        judged(
            ProcessParams {
                rss_warning: Some(json!("32M")),
                fds_critical: Some(json!(512)),
                ..params()
            },
            &two,
            &[],
            "critical: process web: pid 10 rss 64 MiB (warning: above 32 MiB), pid 11 fds 900 (critical: above 512), \
             2 processes (pids 10, 11), total rss 80 MiB",
        );
        judged(
            ProcessParams { total_rss_critical: Some(json!("64M")), cpu_warning: Some(json!(50)), total_cpu_critical: Some(json!(150)), ..params() },
            &two,
            &[(10, 95.5), (11, 60.0)],
            "critical: process web: pid 10 cpu 95.5% (warning: above 50%), pid 11 cpu 60% (warning: above 50%), \
             total cpu 155.5% (critical: above 150%), total rss 80 MiB (critical: above 64 MiB), 2 processes (pids 10, 11)",
        );
    }

    #[test]
    fn perfdata_and_details() {
        let check = compile(ProcessParams {
            max_count: Some(4),
            ..params()
        })
        .expect("valid");
        let p = proc(10, "web", &["web"], "u", 4096, 3);
        let r = judge(&check, &[&p], None, None, Duration::ZERO);
        assert_eq!(
            r.perfdata,
            "'process web'=1;;1:4;0 'process web rss'=4096B 'process web fds'=3"
        );
        assert_eq!(r.details["pids"], json!([10]));
        assert_eq!(r.details["count_range"], json!("1:4"));
        assert_eq!((r.value, r.unit.as_deref()), (Some(1.0), Some("count")));
        let r = judge(
            &check,
            &[],
            None,
            Some("pidfile /run/web.pid does not exist"),
            Duration::ZERO,
        );
        assert_eq!(
            r.message,
            "process web: 0 processes (critical: below 1), pidfile /run/web.pid does not exist"
        );
    }

    /// The daemon's process checks are separate runs: those due together must share one
    /// reading of the table, and a run due after a reading must not be handed it.
    #[test]
    fn runs_due_together_share_one_reading_of_the_table() {
        let mut child =
            crate::test_support::spawn_running(std::process::Command::new("sleep").arg("30"), &["sleep", "30"]);
        let pid = child.id();
        let check = |p: ProcessParams| compile(p).expect("valid");
        let by_cmdline = check(ProcessParams {
            name: None,
            cmdline: Some("^sleep 30$".into()),
            ..params()
        });
        let tables = Tables::new();
        let due = Instant::now();
        let results: Vec<CheckResult> = std::thread::scope(|scope| {
            let runs: Vec<_> = (0..8)
                .map(|_| {
                    scope.spawn(|| run_shared(std::slice::from_ref(&by_cmdline), Duration::ZERO, Some((&tables, due))))
                })
                .collect();
            runs.into_iter().flat_map(|r| r.join().expect("no panic")).collect()
        });
        assert_eq!(tables.reads(), 1, "eight runs due together, one reading");
        for r in &results {
            assert!(
                r.details["pids"].as_array().is_some_and(|p| p.contains(&json!(pid))),
                "{r:?}"
            );
            // The selected process is read whole: its descriptors and owner too.
            let me = &r.details["processes"][0];
            assert!(me["open_fds"].is_u64() && me["user"].is_string(), "{me}");
        }
        // A run due after the reading reads the table again.
        run_shared(
            std::slice::from_ref(&by_cmdline),
            Duration::ZERO,
            Some((&tables, Instant::now())),
        );
        assert_eq!(tables.reads(), 2);
        // A run due before it takes it, unless it needs parts the reading skipped.
        run_shared(std::slice::from_ref(&by_cmdline), Duration::ZERO, Some((&tables, due)));
        assert_eq!(tables.reads(), 2);
        let by_user = check(ProcessParams {
            name: None,
            user: Some("root".into()),
            ..params()
        });
        run_shared(std::slice::from_ref(&by_user), Duration::ZERO, Some((&tables, due)));
        assert_eq!(tables.reads(), 3, "the owner was not read");
        let _ = child.kill();
        let _ = child.wait();
    }

    /// What a reading skips does not change a verdict: each criterion selects the same
    /// processes from a reading of only the parts it looks at as from a whole one.
    #[test]
    fn readings_of_some_parts_select_what_whole_readings_select() {
        use std::os::unix::process::CommandExt;
        let tag = format!("hx-parts-{}", std::process::id());
        let mut children: Vec<_> = (0..2)
            .map(|_| {
                crate::test_support::spawn_running(
                    std::process::Command::new("sleep").arg0(&tag).arg("30"),
                    &[&tag, "30"],
                )
            })
            .collect();
        let ours: Vec<u32> = children.iter().map(std::process::Child::id).collect();
        let uid = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| reliability_os::procs::parse_status(&s))
            .map(|s| s.euid)
            .expect("own uid");
        let checks: Vec<ProcessCheck> = [
            ProcessParams {
                name: Some("sleep".into()),
                ..params()
            },
            ProcessParams {
                name: None,
                cmdline: Some(format!("^{tag} 30$")),
                ..params()
            },
            ProcessParams {
                name: None,
                user: Some(uid.to_string()),
                ..params()
            },
            ProcessParams {
                name: Some("sleep".into()),
                cmdline: Some("^nothing-like-this$".into()),
                min_count: 0,
                ..params()
            },
        ]
        .into_iter()
        .map(|p| compile(p).expect("valid"))
        .collect();
        let whole = reliability_os::procs::list_processes();
        let picked = |check: &ProcessCheck, table: &[ProcInfo]| -> Vec<u32> {
            table
                .iter()
                .filter(|p| ours.contains(&p.pid) && check.matches(p, None))
                .map(|p| p.pid)
                .collect()
        };
        for (i, check) in checks.iter().enumerate() {
            let some = list_processes_with(fields_for(std::slice::from_ref(check)));
            let want = if i == 3 { Vec::new() } else { ours.clone() };
            assert_eq!(picked(check, &some), want, "{} from the parts it reads", check.name);
            assert_eq!(picked(check, &whole), want, "{} from a whole reading", check.name);
        }
        for child in &mut children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
