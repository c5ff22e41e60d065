//! `breaker list` and `breaker reset NAME`: the breakers of the state directory, through
//! the breaker engine (`reliability_recovery::breaker`: the same files, lock and handling
//! of an unusable file as the `circuit_breaker` module and every recovery step).
//!
//! Thresholds are not stored with a breaker: a breaker the configuration names (a
//! recovery's `breaker`) is judged with that recovery's, any other with the defaults.
//! A reset appends one audit record (`breaker.reset`, the actor: user and `SUDO_USER`).

use super::{columns, label, nagios_line, Ctx, Rendered};
use reliability_core::audit::{Outcome, Record};
use reliability_core::breaker::{Command, Config, State};
use reliability_core::check::Status;
use reliability_os::clock::now_ms;
use reliability_recovery::breaker::{self, BreakerReport, BreakerRequest};
use serde_json::json;

/// The thresholds the configuration gives breaker `name`, else the defaults.
fn config_of(ctx: &Ctx, name: &str) -> Config {
    ctx.config
        .iter()
        .flat_map(|c| &c.recoveries)
        .filter_map(|r| r.request.breaker.as_ref())
        .find(|(n, _)| n == name)
        .map(|(_, c)| c.clone())
        .unwrap_or_default()
}

fn request(ctx: &Ctx, name: &str, command: Command) -> BreakerRequest {
    BreakerRequest {
        name: name.to_string(),
        command,
        config: config_of(ctx, name),
        state_dir: ctx.state_dir.clone(),
    }
}

/// Every stored breaker, queried (read only); and what could not be read.
pub fn all(ctx: &Ctx) -> (Vec<BreakerReport>, Vec<String>) {
    let names = match ctx.store().names::<reliability_core::breaker::Breaker>() {
        Ok(names) => names,
        Err(e) => return (Vec::new(), vec![e.to_string()]),
    };
    let mut reports = Vec::new();
    let mut problems = Vec::new();
    for name in names {
        match breaker::run(&request(ctx, &name, Command::Query), &now_ms, false) {
            Ok(r) => {
                problems.extend(r.warnings.iter().cloned());
                reports.push(r);
            }
            Err(e) => problems.push(e.to_string()),
        }
    }
    (reports, problems)
}

/// A breaker's status: open is critical, half-open a warning.
pub fn status_of(state: State) -> Status {
    match state {
        State::Closed => Status::Ok,
        State::HalfOpen => Status::Warning,
        State::Open => Status::Critical,
    }
}

pub fn rows(reports: &[BreakerReport]) -> Vec<Vec<String>> {
    reports
        .iter()
        .map(|r| {
            vec![
                r.name.clone(),
                r.state.as_str().to_string(),
                r.since.clone(),
                r.counters.consecutive_failures.to_string(),
                format!("{}/{}", r.counters.failures, r.counters.calls),
                super::secs(r.time_until_half_open.map(f64::ceil)),
            ]
        })
        .collect()
}

pub const HEADER: [&str; 6] = [
    "BREAKER",
    "STATE",
    "SINCE",
    "FAILURES IN A ROW",
    "FAILED/CALLS",
    "HALF-OPEN IN",
];

pub fn list(ctx: &Ctx) -> Rendered {
    let (reports, problems) = all(ctx);
    let status = if reports.is_empty() && !problems.is_empty() {
        Status::Unknown
    } else {
        Status::worst(reports.iter().map(|r| status_of(r.state)))
    };
    let mut table = if reports.is_empty() {
        format!("no breakers in '{}'\n", ctx.state_dir.display())
    } else {
        columns(&HEADER, &rows(&reports))
    };
    for p in &problems {
        table.push_str(&format!("warning: {p}\n"));
    }
    let count = |s: State| reports.iter().filter(|r| r.state == s).count();
    let open: Vec<&str> = reports
        .iter()
        .filter(|r| r.state != State::Closed)
        .map(|r| r.name.as_str())
        .collect();
    let text = if open.is_empty() {
        format!("{} breaker(s), all closed", reports.len())
    } else {
        format!("{} breaker(s), not closed: {}", reports.len(), open.join(", "))
    };
    let mut perfdata = vec![
        format!("open={}", count(State::Open)),
        format!("half_open={}", count(State::HalfOpen)),
        format!("closed={}", count(State::Closed)),
    ];
    perfdata.extend(reports.iter().map(|r| {
        format!(
            "{}={}",
            label(&format!("{} failures", r.name)),
            r.counters.consecutive_failures
        )
    }));
    Rendered {
        json: json!({"breakers": reports, "warnings": problems, "status": status.name()}),
        table,
        nagios: nagios_line("BREAKERS", status, &text, &perfdata),
        status,
    }
}

/// Resets breaker `name` (closed, counters cleared) and records who did it. The exit
/// status is OK when it is closed afterwards.
pub fn reset(ctx: &Ctx, name: &str, reason: Option<&str>) -> Result<Rendered, String> {
    let report = breaker::run(&request(ctx, name, Command::Reset), &now_ms, false).map_err(|e| e.to_string())?;
    let record = Record {
        front_end: "cli".into(),
        action: "breaker.reset".into(),
        target: name.to_string(),
        reason: reason.map(str::to_string),
        outcome: if report.changed {
            Outcome::Changed
        } else {
            Outcome::Unchanged
        },
        actor: reliability_os::audit::actor(),
        config_digest: None,
        details: json!({"previous_state": report.previous_state.map(State::as_str), "state": report.state.as_str()}),
    };
    reliability_os::audit::append(&ctx.audit_dir(), record).map_err(|e| {
        format!(
            "{}; the audit trail in '{}' could not be appended: {e}",
            report.msg,
            ctx.audit_dir().display()
        )
    })?;
    let status = status_of(report.state);
    Ok(Rendered {
        table: format!("{}\n", report.msg),
        nagios: nagios_line("BREAKER", status, &report.msg, &[]),
        json: serde_json::to_value(&report).unwrap_or_default(),
        status,
    })
}
