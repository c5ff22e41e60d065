//! `services`: systemd units in the state they should be, not crash-looping, with their
//! dependencies up and their usage within levels.
//!
//! All units are read with one `systemctl show` ([`reliability_os::systemd::show_units`]);
//! the units they `Requires=`/`BindsTo=` with a second one when `dependencies` is asked
//! for. Unit names are validated before they reach `systemctl` (always after `--`).
//!
//! Usage comes from the unit's cgroup as systemd accounts it (`MemoryCurrent`,
//! `CPUUsageNSec`, `TasksCurrent`). Where systemd keeps no accounting (a cgroup v1 host,
//! a container: the properties read `[not set]`), it is measured from the unit's
//! processes instead: the pids in its `ControlGroup`'s `cgroup.procs` (else its main pid),
//! their summed RSS, threads and CPU ticks. The result says which in
//! `details.memory_source` (`cgroup` or `processes`); RSS counts shared pages once per
//! process, so it reads higher than the cgroup figure would.
//!
//! Judging ([`judge`]), the worst part wins:
//!
//! | seen                                     | expected running | expected stopped |
//! |------------------------------------------|------------------|------------------|
//! | not found                                | critical         | ok               |
//! | masked                                   | critical         | ok               |
//! | active                                   | ok               | critical         |
//! | activating, auto-restart (crash loop)    | critical         | critical         |
//! | activating (starting)                    | warning          | critical         |
//! | failed                                   | critical         | warning          |
//! | inactive                                 | critical         | ok               |
//!
//! plus: `enabled` expected and not (warning: it will not come back after a reboot), a
//! required dependency not active (critical), `NRestarts` above the restart levels
//! (warning above 0 by default: any automatic restart since the last start by hand is
//! worth a look), memory, CPU and task levels. A host without systemd gives unknown.

use reliability_core::check::{CheckResult, Perfdata, Status, Unit};
use reliability_core::quote::quote;
use reliability_core::size::format_size;
use reliability_core::spec::{Kind, Opt, Spec};
use reliability_core::threshold::{format_number, Levels};
use reliability_core::unit_name;
use reliability_os::procs::{cgroup_pids, read_process, sample_cpu};
use reliability_os::systemd::{sample_cpu_rates, show_units, systemd_running, UnitProps};
use serde::Deserialize;
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use crate::levels::{any, at, levels, size_levels, Problems};

/// The `services` option: a list of checks.
pub fn option() -> Opt {
    Opt::list("services", Kind::Dict).options(Spec::new(vec![
        Opt::str("name").required().aliases(&["unit"]),
        Opt::str("state")
            .choices(&["running", "stopped", "any"])
            .default("running"),
        Opt::bool("enabled"),
        Opt::bool("dependencies").default(false),
        Opt::raw("restarts_warning").default(0),
        Opt::raw("restarts_critical"),
        Opt::raw("memory_warning"),
        Opt::raw("memory_critical"),
        Opt::raw("cpu_warning"),
        Opt::raw("cpu_critical"),
        Opt::raw("tasks_warning"),
        Opt::raw("tasks_critical"),
    ]))
}

/// One `services` entry as the spec validated it.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceParams {
    pub name: String,
    pub state: String,
    pub enabled: Option<bool>,
    pub dependencies: bool,
    pub restarts_warning: Option<Value>,
    pub restarts_critical: Option<Value>,
    pub memory_warning: Option<Value>,
    pub memory_critical: Option<Value>,
    pub cpu_warning: Option<Value>,
    pub cpu_critical: Option<Value>,
    pub tasks_warning: Option<Value>,
    pub tasks_critical: Option<Value>,
}

/// The state a unit is expected in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    Running,
    Stopped,
    Any,
}

/// One service check, ready to run.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceCheck {
    /// The validated, normalised unit name (`nginx` becomes `nginx.service`).
    pub unit: String,
    pub expect: Expect,
    /// `Some(true)`: must be enabled; `Some(false)`: must not be; `None`: not checked.
    pub enabled: Option<bool>,
    pub dependencies: bool,
    pub restarts: Levels,
    /// Bytes.
    pub memory: Levels,
    /// Percent of one core.
    pub cpu: Levels,
    pub tasks: Levels,
}

impl ServiceCheck {
    /// Validates what the spec cannot: the unit name, the levels.
    pub fn compile(p: ServiceParams, path: &str, problems: &mut Problems) -> ServiceCheck {
        let unit = match unit_name::validate(&p.name) {
            Ok(name) => name.to_string(),
            Err(e) => {
                problems.push(&at(path, "name"), e);
                p.name.clone()
            }
        };
        let expect = match p.state.as_str() {
            "stopped" => Expect::Stopped,
            "any" => Expect::Any,
            _ => Expect::Running,
        };
        ServiceCheck {
            unit,
            expect,
            enabled: p.enabled,
            dependencies: p.dependencies,
            restarts: levels(
                path,
                "restarts",
                p.restarts_warning.as_ref(),
                p.restarts_critical.as_ref(),
                problems,
            ),
            memory: size_levels(
                path,
                "memory",
                p.memory_warning.as_ref(),
                p.memory_critical.as_ref(),
                problems,
            ),
            cpu: levels(path, "cpu", p.cpu_warning.as_ref(), p.cpu_critical.as_ref(), problems),
            tasks: levels(
                path,
                "tasks",
                p.tasks_warning.as_ref(),
                p.tasks_critical.as_ref(),
                problems,
            ),
        }
    }
}

/// What a unit uses, from systemd's accounting or from its processes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Usage {
    pub memory_bytes: Option<u64>,
    /// `cgroup` (systemd's accounting) or `processes` (summed from the unit's processes).
    pub memory_source: Option<&'static str>,
    pub tasks: Option<u64>,
    /// Percent of one core over the sample; only measured when CPU levels are set.
    pub cpu_percent: Option<f64>,
    /// The processes measured, when measured from processes.
    pub pids: Vec<u32>,
    /// Why the processes could not be read.
    pub error: Option<String>,
}

/// Checks every unit; one result per check, in order.
pub fn run(checks: &[ServiceCheck], interval: Duration) -> Vec<CheckResult> {
    let started = Instant::now();
    let all_unknown = |why: &str| -> Vec<CheckResult> {
        checks
            .iter()
            .map(|c| CheckResult::unknown(&c.unit, "service", format!("{}: {why}", c.unit), started.elapsed()))
            .collect()
    };
    if checks.is_empty() {
        return Vec::new();
    }
    if !systemd_running() {
        return all_unknown("systemd is not running on this host (PID 1 is not systemd)");
    }
    let names: Vec<String> = checks.iter().map(|c| c.unit.clone()).collect();
    let units = match show_units(&names) {
        Ok(units) => units,
        Err(e) => return all_unknown(&e.to_string()),
    };

    let mut dep_names: Vec<String> = checks
        .iter()
        .zip(&units)
        .filter(|(c, _)| c.dependencies)
        .flat_map(|(_, u)| u.requires.iter().chain(&u.binds_to).cloned())
        .collect();
    dep_names.sort();
    dep_names.dedup();
    let deps: Result<HashMap<String, UnitProps>, String> = if dep_names.is_empty() {
        Ok(HashMap::new())
    } else {
        show_units(&dep_names)
            .map(|props| dep_names.iter().cloned().zip(props).collect())
            .map_err(|e| e.to_string())
    };

    let mut usages: Vec<Usage> = units.iter().map(measure).collect();
    sample_cpu_of(checks, &units, &mut usages, interval);
    let duration = started.elapsed();

    checks
        .iter()
        .zip(&units)
        .zip(&usages)
        .map(|((check, props), usage)| {
            let wanted: Vec<&String> = if check.dependencies {
                props.requires.iter().chain(&props.binds_to).collect()
            } else {
                Vec::new()
            };
            let dep_states: Result<Vec<(String, Option<&UnitProps>)>, String> = match &deps {
                Ok(map) => Ok(wanted.iter().map(|n| ((*n).clone(), map.get(*n))).collect()),
                Err(e) => Err(e.clone()),
            };
            judge(check, props, dep_states, usage, duration)
        })
        .collect()
}

/// Memory and tasks of a running unit: systemd's figures, else its processes'.
fn measure(props: &UnitProps) -> Usage {
    let mut usage = Usage::default();
    if props.memory_current.is_some() || props.tasks_current.is_some() {
        usage.memory_bytes = props.memory_current;
        usage.memory_source = props.memory_current.map(|_| "cgroup");
        usage.tasks = props.tasks_current;
        if props.memory_current.is_some() && props.tasks_current.is_some() {
            return usage;
        }
    }
    let pids = match (&props.control_group, props.main_pid) {
        (Some(cgroup), main) => match cgroup_pids(cgroup) {
            Ok(pids) => pids,
            Err(e) => {
                usage.error = Some(e.to_string());
                main.into_iter().collect()
            }
        },
        (None, Some(main)) => vec![main],
        (None, None) => return usage,
    };
    let procs: Vec<_> = pids.iter().filter_map(|pid| read_process(*pid).ok()).collect();
    if procs.is_empty() {
        return usage;
    }
    usage.pids = procs.iter().map(|p| p.pid).collect();
    if usage.memory_bytes.is_none() {
        usage.memory_bytes = Some(procs.iter().map(|p| p.rss_bytes).sum());
        usage.memory_source = Some("processes");
    }
    if usage.tasks.is_none() {
        usage.tasks = Some(procs.iter().map(|p| u64::from(p.threads)).sum());
    }
    usage
}

/// CPU rates for the checks with CPU levels: from systemd's `CPUUsageNSec` where it has
/// one, else from the processes' ticks. Both samples run at once, over `interval`.
fn sample_cpu_of(checks: &[ServiceCheck], units: &[UnitProps], usages: &mut [Usage], interval: Duration) {
    let wanted: Vec<usize> = (0..checks.len())
        .filter(|&i| any(&checks[i].cpu) && units[i].is_active())
        .collect();
    let by_cgroup: Vec<String> = wanted
        .iter()
        .filter(|&&i| units[i].cpu_usage_nsec.is_some())
        .map(|&i| checks[i].unit.clone())
        .collect();
    let by_pids: Vec<u32> = wanted
        .iter()
        .filter(|&&i| units[i].cpu_usage_nsec.is_none())
        .flat_map(|&i| usages[i].pids.clone())
        .collect();
    if by_cgroup.is_empty() && by_pids.is_empty() {
        return;
    }
    let (rates, ticks): (BTreeMap<String, Option<f64>>, HashMap<u32, f64>) = std::thread::scope(|scope| {
        let rates = scope.spawn(|| {
            if by_cgroup.is_empty() {
                BTreeMap::new()
            } else {
                sample_cpu_rates(&by_cgroup, interval).unwrap_or_default()
            }
        });
        let ticks = if by_pids.is_empty() {
            HashMap::new()
        } else {
            sample_cpu(&by_pids, interval)
        };
        (rates.join().unwrap_or_default(), ticks)
    });
    for &i in &wanted {
        let usage = &mut usages[i];
        usage.cpu_percent = match rates.get(&checks[i].unit) {
            Some(rate) => *rate,
            None if usage.pids.is_empty() => None,
            None => Some(usage.pids.iter().filter_map(|p| ticks.get(p)).sum()),
        }
        .map(|r| (r * 100.0).round() / 100.0);
    }
}

/// `is-enabled` states that mean the unit comes up at boot (or cannot be enabled at all,
/// like a static unit, which is then not a problem).
const ENABLED: &[&str] = &[
    "enabled",
    "enabled-runtime",
    "static",
    "indirect",
    "generated",
    "transient",
    "alias",
];

/// The verdict on one unit. `deps` are the units it requires or binds to, with their
/// properties (`None`: systemd returned nothing for the name), or why they could not be read.
pub fn judge(
    check: &ServiceCheck,
    props: &UnitProps,
    deps: Result<Vec<(String, Option<&UnitProps>)>, String>,
    usage: &Usage,
    duration: Duration,
) -> CheckResult {
    let mut verdict = Verdict::default();
    let state = format!("{} ({})", props.active_state, props.sub_state);
    let running = props.is_active() || props.active_state == "reloading";
    match (props.load_state.as_str(), check.expect) {
        ("not-found", Expect::Running) => verdict.add(Status::Critical, "unit not found".into()),
        ("not-found", _) => verdict.add(Status::Ok, "unit not found".into()),
        ("masked", Expect::Running) => verdict.add(Status::Critical, "masked".into()),
        ("masked", _) => verdict.add(Status::Ok, "masked".into()),
        ("loaded", _) => {
            let (status, text) = match (props.active_state.as_str(), check.expect) {
                (_, Expect::Any) => (Status::Ok, state.clone()),
                ("active" | "reloading", Expect::Running) => (Status::Ok, state.clone()),
                ("active" | "reloading" | "deactivating", Expect::Stopped) => {
                    (Status::Critical, format!("{state}, expected stopped"))
                }
                ("activating", _) if props.sub_state == "auto-restart" => (
                    Status::Critical,
                    format!("crash-looping: {state} after {}", last_exit(props)),
                ),
                ("activating", Expect::Running) => (Status::Warning, format!("{state}, not yet running")),
                ("activating", Expect::Stopped) => (Status::Critical, format!("{state}, expected stopped")),
                ("failed", Expect::Running) => (Status::Critical, format!("{state}: {}", last_exit(props))),
                ("failed", Expect::Stopped) => (Status::Warning, format!("{state}: {}", last_exit(props))),
                (_, Expect::Stopped) => (Status::Ok, state.clone()),
                (_, Expect::Running) => (Status::Critical, format!("{state}, expected running")),
            };
            verdict.add(status, text);
        }
        (load, _) => verdict.add(Status::Critical, format!("cannot be loaded (LoadState={load})")),
    }

    if let Some(want) = check.enabled {
        let file_state = props.unit_file_state.as_deref().unwrap_or("unknown");
        let enabled = ENABLED.contains(&file_state);
        match (want, enabled) {
            (true, false) => verdict.add(
                Status::Warning,
                format!("not enabled ({file_state}): it will not start at boot"),
            ),
            (false, true) if file_state.starts_with("enabled") => {
                verdict.add(Status::Warning, format!("{file_state}, expected disabled"))
            }
            _ => verdict.said.push(file_state.to_string()),
        }
    }

    let mut perfdata = Vec::new();
    if let Some(n) = props.n_restarts.filter(|_| props.exists()) {
        let n = n as f64;
        let status = check.restarts.evaluate(n);
        let why = check.restarts.explain(n).map(|w| format!(" ({w})")).unwrap_or_default();
        if n > 0.0 || status != Status::Ok {
            verdict.add(status, format!("{n} automatic restarts{why}"));
        }
        perfdata
            .push(Perfdata::new(format!("{} restarts", check.unit), n, Some(Unit::Count)).with_levels(&check.restarts));
    }

    let mut dep_details = Vec::new();
    match deps {
        Ok(deps) => {
            for (name, dep) in deps {
                let (ok, text) = match dep {
                    Some(d) if !d.exists() => (false, format!("requires {name}, which does not exist")),
                    Some(d) if d.is_active() => (true, String::new()),
                    Some(d) => (
                        false,
                        format!("requires {name}, which is {} ({})", d.active_state, d.sub_state),
                    ),
                    None => (false, format!("requires {name}, which systemd did not describe")),
                };
                if !ok {
                    verdict.add(Status::Critical, text);
                }
                dep_details.push(json!({
                    "name": name,
                    "load_state": dep.map(|d| d.load_state.clone()),
                    "active_state": dep.map(|d| d.active_state.clone()),
                    "sub_state": dep.map(|d| d.sub_state.clone()),
                    "ok": ok,
                }));
            }
        }
        Err(e) => verdict.add(Status::Unknown, format!("cannot read its dependencies: {e}")),
    }

    if running {
        let percent: fn(f64) -> String = |v| format!("{}%", format_number(v));
        let measures: [Measure<'_>; 3] = [
            (
                "memory",
                &check.memory,
                usage.memory_bytes.map(|b| b as f64),
                format_size,
                Some(Unit::Bytes),
            ),
            ("cpu", &check.cpu, usage.cpu_percent, percent, Some(Unit::Percent)),
            (
                "tasks",
                &check.tasks,
                usage.tasks.map(|t| t as f64),
                format_number,
                Some(Unit::Count),
            ),
        ];
        for (name, levels, value, show, unit) in measures {
            match value {
                Some(v) => {
                    let status = levels.evaluate(v);
                    let why = levels
                        .explain_with(v, show)
                        .map(|w| format!(" ({w})"))
                        .unwrap_or_default();
                    verdict.add(status, format!("{name} {}{why}", show(v)));
                    perfdata.push(Perfdata::new(format!("{} {name}", check.unit), v, unit).with_levels(levels));
                }
                None if any(levels) => {
                    let why = usage
                        .error
                        .as_deref()
                        .unwrap_or("systemd has no figure and no process was found");
                    verdict.add(Status::Unknown, format!("{name} cannot be measured: {why}"));
                }
                None => {}
            }
        }
    }

    let status = Status::worst(verdict.statuses.iter().copied());
    let mut result = match usage.memory_bytes.filter(|_| running) {
        Some(b) => CheckResult::measured(
            &check.unit,
            "service",
            b as f64,
            Some(Unit::Bytes),
            &check.memory,
            duration,
        ),
        None => CheckResult::state(&check.unit, "service", status, "", duration),
    };
    result.status = status;
    result.perfdata = Perfdata::join(&perfdata);
    let all: Vec<String> = verdict.problems.into_iter().chain(verdict.said).collect();
    result.message = format!("{}: {}", check.unit, all.join(", "));
    let expected = match check.expect {
        Expect::Running => "running",
        Expect::Stopped => "stopped",
        Expect::Any => "any",
    };
    let d = &mut result.details;
    d.insert("unit".into(), props.id.clone().into());
    d.insert("expected_state".into(), expected.into());
    d.insert("load_state".into(), props.load_state.clone().into());
    d.insert("active_state".into(), props.active_state.clone().into());
    d.insert("sub_state".into(), props.sub_state.clone().into());
    d.insert("unit_file_state".into(), props.unit_file_state.clone().into());
    d.insert("main_pid".into(), props.main_pid.into());
    d.insert("n_restarts".into(), props.n_restarts.into());
    d.insert("result".into(), props.result.clone().into());
    d.insert("exec_main_status".into(), props.exec_main_status.into());
    d.insert("memory_bytes".into(), usage.memory_bytes.filter(|_| running).into());
    d.insert("memory_source".into(), usage.memory_source.filter(|_| running).into());
    d.insert("tasks".into(), usage.tasks.filter(|_| running).into());
    d.insert("cpu_percent".into(), usage.cpu_percent.into());
    if check.dependencies {
        d.insert("dependencies".into(), dep_details.into());
    }
    result
}

/// A usage measure of a unit: name, levels, value, how to show it, perfdata unit.
type Measure<'a> = (&'static str, &'a Levels, Option<f64>, fn(f64) -> String, Option<Unit>);

/// The parts of a verdict: statuses, and what to say, problems first.
#[derive(Default)]
struct Verdict {
    statuses: Vec<Status>,
    problems: Vec<String>,
    said: Vec<String>,
}

impl Verdict {
    fn add(&mut self, status: Status, text: String) {
        self.statuses.push(status);
        if status == Status::Ok {
            self.said.push(text);
        } else {
            self.problems.push(text);
        }
    }
}

/// How the last start ended: the control command that failed it (`ExecStartPre
/// '/bin/sh -c exit 4' exit status 4`), else the main process (`exit status 7`,
/// `signal 9`, `start-limit-hit`). A failed `ExecStartPre=` leaves `ExecMainStatus=0`
/// (the main process never ran), and after a failed `ExecStartPost=` the main process
/// was stopped by systemd: neither says why the unit failed.
fn last_exit(props: &UnitProps) -> String {
    let failed_command = props.start_commands.iter().find(|c| {
        !c.ignore_errors
            && match c.code.as_deref() {
                Some("exited") => c.status.is_some_and(|s| s != 0),
                Some(_) => true,
                None => false,
            }
    });
    if let Some(c) = failed_command {
        let how = match (c.code.as_deref(), c.status, c.signal.as_deref()) {
            (Some("exited"), Some(code), _) => format!("exit status {code}"),
            (_, Some(sig), Some(name)) => format!("signal {sig} ({name})"),
            (_, Some(sig), None) => format!("signal {sig}"),
            (code, None, _) => code.unwrap_or("failed").to_string(),
        };
        return format!("{} {} {how}", c.kind, quote(&c.argv));
    }
    match (props.result.as_deref(), props.exec_main_status) {
        (Some("exit-code"), Some(code)) => format!("exit status {code}"),
        (Some("signal" | "core-dump"), Some(sig)) => format!("signal {sig}"),
        (Some(result), _) => result.to_string(),
        (None, _) => "an unknown result".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(state: &str) -> ServiceCheck {
        let mut problems = Problems::default();
        let params = ServiceParams {
            name: "web".into(),
            state: state.into(),
            enabled: None,
            dependencies: false,
            restarts_warning: Some(json!(0)),
            restarts_critical: Some(json!(5)),
            memory_warning: None,
            memory_critical: None,
            cpu_warning: None,
            cpu_critical: None,
            tasks_warning: None,
            tasks_critical: None,
        };
        let c = ServiceCheck::compile(params, "services[0]", &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        c
    }

    fn unit(load: &str, active: &str, sub: &str) -> UnitProps {
        UnitProps {
            id: "web.service".into(),
            load_state: load.into(),
            active_state: active.into(),
            sub_state: sub.into(),
            unit_file_state: Some("enabled".into()),
            n_restarts: Some(0),
            result: Some("success".into()),
            exec_main_status: Some(0),
            ..UnitProps::default()
        }
    }

    /// `expected` is `status: message`.
    fn judged(check: &ServiceCheck, props: &UnitProps, usage: &Usage, expected: &str) {
        let r = judge(check, props, Ok(Vec::new()), usage, Duration::ZERO);
        assert_eq!(format!("{}: {}", r.status, r.message), expected);
    }

    #[test]
    fn states_against_expectations() {
        let none = Usage::default();
        let (running, stopped, any) = (check("running"), check("stopped"), check("any"));
        let active = unit("loaded", "active", "running");
        let inactive = unit("loaded", "inactive", "dead");
        let failed = UnitProps {
            result: Some("exit-code".into()),
            exec_main_status: Some(3),
            ..unit("loaded", "failed", "failed")
        };
        let looping = UnitProps {
            n_restarts: Some(4),
            result: Some("exit-code".into()),
            exec_main_status: Some(7),
            ..unit("loaded", "activating", "auto-restart")
        };
        let starting = unit("loaded", "activating", "start");
        let masked = UnitProps {
            unit_file_state: Some("masked".into()),
            ..unit("masked", "inactive", "dead")
        };
        let missing = UnitProps {
            unit_file_state: None,
            n_restarts: None,
            ..unit("not-found", "inactive", "dead")
        };
        let broken = unit("bad-setting", "inactive", "dead");

        judged(&running, &active, &none, "ok: web.service: active (running)");
        judged(
            &running,
            &inactive,
            &none,
            "critical: web.service: inactive (dead), expected running",
        );
        judged(
            &running,
            &failed,
            &none,
            "critical: web.service: failed (failed): exit status 3",
        );
        judged(
            &running,
            &looping,
            &none,
            "critical: web.service: crash-looping: activating (auto-restart) after exit status 7, 4 automatic restarts (warning: above 0)",
        );
        judged(
            &running,
            &starting,
            &none,
            "warning: web.service: activating (start), not yet running",
        );
        judged(&running, &masked, &none, "critical: web.service: masked");
        judged(&running, &missing, &none, "critical: web.service: unit not found");
        judged(
            &running,
            &broken,
            &none,
            "critical: web.service: cannot be loaded (LoadState=bad-setting)",
        );

        judged(&stopped, &inactive, &none, "ok: web.service: inactive (dead)");
        judged(
            &stopped,
            &active,
            &none,
            "critical: web.service: active (running), expected stopped",
        );
        judged(
            &stopped,
            &failed,
            &none,
            "warning: web.service: failed (failed): exit status 3",
        );
        judged(&stopped, &masked, &none, "ok: web.service: masked");
        judged(&stopped, &missing, &none, "ok: web.service: unit not found");
        judged(&any, &failed, &none, "ok: web.service: failed (failed)");

        let restarted = UnitProps {
            n_restarts: Some(6),
            ..active.clone()
        };
        judged(
            &running,
            &restarted,
            &none,
            "critical: web.service: 6 automatic restarts (critical: above 5), active (running)",
        );
    }

    /// A unit whose start failed in a control command (`ExecStartPre`, `ExecStartPost`):
    /// the main process never ran (`ExecMainStatus=0`) or was stopped by systemd
    /// afterwards (`signal 15`), so the failing command and its status are what to report.
    /// `systemctl show` output captured on systemd 252 (reliability-os's fixtures).
    #[test]
    fn failed_start_commands_are_reported_with_their_status() {
        let captured = |text: &str| {
            let mut units = reliability_os::systemd::parse_show(text);
            assert_eq!(units.len(), 1);
            units.remove(0)
        };
        let prefail = captured(include_str!("../../reliability-os/tests/fixtures/systemd/prefail.txt"));
        let postfail = captured(include_str!("../../reliability-os/tests/fixtures/systemd/postfail.txt"));
        let none = Usage::default();
        judged(
            &check("running"),
            &prefail,
            &none,
            "critical: web.service: failed (failed): ExecStartPre '/bin/sh -c exit 4' exit status 4",
        );
        // The ignored `ExecStartPre=-/bin/false` (status 1) is not the cause.
        judged(
            &check("running"),
            &postfail,
            &none,
            "critical: web.service: failed (failed): ExecStartPost '/bin/sh -c kill -9 $$$$' signal 9 (KILL)",
        );
    }

    #[test]
    fn enabled_and_dependencies() {
        let mut c = check("running");
        c.enabled = Some(true);
        let active = unit("loaded", "active", "running");
        let none = Usage::default();
        judged(&c, &active, &none, "ok: web.service: active (running), enabled");
        let disabled = UnitProps {
            unit_file_state: Some("disabled".into()),
            ..active.clone()
        };
        judged(
            &c,
            &disabled,
            &none,
            "warning: web.service: not enabled (disabled): it will not start at boot, active (running)",
        );
        c.enabled = Some(false);
        judged(
            &c,
            &active,
            &none,
            "warning: web.service: enabled, expected disabled, active (running)",
        );
        let static_unit = UnitProps {
            unit_file_state: Some("static".into()),
            ..active.clone()
        };
        judged(&c, &static_unit, &none, "ok: web.service: active (running), static");

        c.enabled = None;
        c.dependencies = true;
        let db = UnitProps {
            id: "db.service".into(),
            ..unit("loaded", "failed", "failed")
        };
        let slice = UnitProps {
            id: "system.slice".into(),
            ..unit("loaded", "active", "active")
        };
        let gone = UnitProps {
            id: "gone.service".into(),
            ..unit("not-found", "inactive", "dead")
        };
        let deps = vec![
            ("system.slice".to_string(), Some(&slice)),
            ("db.service".to_string(), Some(&db)),
            ("gone.service".to_string(), Some(&gone)),
        ];
        let r = judge(&c, &active, Ok(deps), &none, Duration::ZERO);
        assert_eq!(
            format!("{}: {}", r.status, r.message),
            "critical: web.service: requires db.service, which is failed (failed), requires gone.service, which does not exist, active (running)"
        );
        assert_eq!(
            r.details["dependencies"][1],
            json!({"name": "db.service", "load_state": "loaded", "active_state": "failed", "sub_state": "failed", "ok": false})
        );
        let r = judge(&c, &active, Err("systemctl timed out".into()), &none, Duration::ZERO);
        assert_eq!(
            format!("{}: {}", r.status, r.message),
            "unknown: web.service: cannot read its dependencies: systemctl timed out, active (running)"
        );
    }

    #[test]
    fn usage_levels_apply_to_running_units() {
        let mut c = check("running");
        c.memory.critical = reliability_core::size::parse_size_range("32M").ok();
        let active = unit("loaded", "active", "running");
        let big = Usage {
            memory_bytes: Some(64 << 20),
            memory_source: Some("processes"),
            tasks: Some(1),
            pids: vec![42],
            ..Usage::default()
        };
        judged(
            &c,
            &active,
            &big,
            "critical: web.service: memory 64 MiB (critical: above 32 MiB), active (running), tasks 1",
        );
        let small = Usage {
            memory_bytes: Some(1 << 20),
            memory_source: Some("cgroup"),
            ..Usage::default()
        };
        let r = judge(&c, &active, Ok(Vec::new()), &small, Duration::ZERO);
        assert_eq!(
            format!("{}: {}", r.status, r.message),
            "ok: web.service: active (running), memory 1 MiB"
        );
        assert_eq!(
            (r.value, r.details["memory_source"].clone()),
            (Some(1048576.0), json!("cgroup"))
        );
        assert_eq!(
            r.perfdata,
            "'web.service restarts'=0;0;5 'web.service memory'=1048576B;;33554432"
        );
        // Not running: usage is not judged, and a missing figure is no problem.
        judged(
            &c,
            &unit("loaded", "inactive", "dead"),
            &big,
            "critical: web.service: inactive (dead), expected running",
        );
        let unmeasured = Usage {
            error: Some("cannot read /sys/fs/cgroup/x".into()),
            ..Usage::default()
        };
        judged(
            &c,
            &active,
            &unmeasured,
            "unknown: web.service: memory cannot be measured: cannot read /sys/fs/cgroup/x, active (running)",
        );
    }

    #[test]
    fn bad_unit_names_are_named() {
        let mut problems = Problems::default();
        let params = ServiceParams {
            name: "web; reboot".into(),
            state: "running".into(),
            enabled: None,
            dependencies: false,
            restarts_warning: Some(json!("x")),
            restarts_critical: None,
            memory_warning: None,
            memory_critical: None,
            cpu_warning: None,
            cpu_critical: None,
            tasks_warning: None,
            tasks_critical: None,
        };
        ServiceCheck::compile(params, "services[3]", &mut problems);
        assert_eq!(
            problems.0,
            [
                "services[3].name: invalid unit name 'web; reboot': ';' is not allowed in unit names",
                "services[3].restarts_warning: invalid range 'x': 'x' is not a number",
            ]
        );
    }
}
