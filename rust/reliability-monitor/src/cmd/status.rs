//! `status`: what the host looks like now, without running a check: the daemon's last
//! results (`<state_dir>/monitor/last.json`, written every 15 s and at stop, with its age),
//! the breakers, the open incidents and the maintenance windows in force (the
//! configuration's and the ad-hoc ones), all read from
//! the state files the engines keep. With no daemon running the results shown are the last
//! it saved (their age says so); breakers, incidents and windows are current either way.
//!
//! Status: a failing check (in results younger than [`STALE_S`]), an open incident or an
//! open breaker is critical; a half-open breaker or results older than [`STALE_S`] (the
//! daemon is not running) a warning.

use super::{breaker, columns, nagios_line, Ctx, Rendered};
use reliability_core::check::Status;
use reliability_core::incident;
use reliability_core::maintenance::{active_at, ActiveWindow, Window};
use reliability_core::timestamp::rfc3339;
use reliability_os::small_file::{self, Follow};
use serde_json::{json, Value};
use std::fmt::Write as _;

/// Results older than this (four of the daemon's saves) mean no daemon is writing them.
pub const STALE_S: u64 = 60;
/// How far back open incidents are looked for: the recovery engine's stats window.
pub const INCIDENT_WINDOW_MS: u64 = 30 * 86_400_000;

/// The daemon's last results and their age in seconds; `None` when there are none.
fn last(ctx: &Ctx) -> Result<Option<(Value, u64)>, String> {
    let path = ctx.state_dir.join("monitor").join("last.json");
    let Some(bytes) = small_file::read_if_exists(&path, reliability_os::state::MAX_STATE_BYTES, Follow::No)
        .map_err(|e| e.to_string())?
    else {
        return Ok(None);
    };
    let value: Value =
        serde_json::from_slice(&bytes).map_err(|e| format!("'{}' is not the daemon's JSON: {e}", path.display()))?;
    let modified = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as u64);
    Ok(Some((value, ctx.now_ms.saturating_sub(modified) / 1000)))
}

pub fn status(ctx: &Ctx) -> Rendered {
    let mut problems = Vec::new();
    let mut statuses = Vec::new();
    let mut table = String::new();
    let mut perfdata = Vec::new();
    let mut summary = Vec::new();

    // Checks, from the daemon's last results.
    let last = last(ctx).unwrap_or_else(|e| {
        problems.push(e);
        None
    });
    let checks: Vec<Value> = last
        .as_ref()
        .and_then(|(v, _)| v.get("checks"))
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let failing = checks
        .iter()
        .filter(|c| c.get("state").and_then(Value::as_str) == Some("failing"))
        .count();
    match &last {
        None => {
            table.push_str("Checks: no results (the daemon has not run here)\n");
        }
        Some((v, age)) => {
            let fresh = *age <= STALE_S;
            let _ = writeln!(
                table,
                "Checks: {} from the daemon, {age} s old{}",
                v.get("status").and_then(Value::as_str).unwrap_or("unknown"),
                if fresh { "" } else { " (the daemon is not running)" }
            );
            let rows: Vec<Vec<String>> = checks
                .iter()
                .map(|c| {
                    let text = |k: &str| c.get(k).and_then(Value::as_str).unwrap_or("-").to_string();
                    let message = c
                        .get("results")
                        .and_then(Value::as_array)
                        .map(|r| {
                            r.iter()
                                .filter_map(|r| r.get("message").and_then(Value::as_str))
                                .collect::<Vec<_>>()
                                .join("; ")
                        })
                        .unwrap_or_default();
                    vec![
                        text("state").to_ascii_uppercase(),
                        text("entry"),
                        text("last_run"),
                        message,
                    ]
                })
                .collect();
            if !rows.is_empty() {
                table.push_str(&columns(&["STATE", "CHECK", "LAST RUN", "MESSAGE"], &rows));
            }
            perfdata.push(format!("results_age={age}s;{STALE_S}"));
            if !fresh {
                statuses.push(Status::Warning);
                summary.push(format!("results {age} s old"));
            } else if failing > 0 {
                statuses.push(Status::Critical);
            }
            summary.push(format!("{} checks, {failing} failing", checks.len()));
        }
    }
    perfdata.push(format!("checks={}", checks.len()));
    perfdata.push(format!("failing={failing}"));

    // Breakers.
    let (breakers, more) = breaker::all(ctx);
    problems.extend(more);
    let not_closed: Vec<&str> = breakers
        .iter()
        .filter(|b| b.state != reliability_core::breaker::State::Closed)
        .map(|b| b.name.as_str())
        .collect();
    statuses.extend(breakers.iter().map(|b| breaker::status_of(b.state)));
    table.push_str("\nBreakers:");
    if breakers.is_empty() {
        table.push_str(" none\n");
    } else {
        table.push('\n');
        table.push_str(&columns(&breaker::HEADER, &breaker::rows(&breakers)));
    }
    if !not_closed.is_empty() {
        summary.push(format!("breakers not closed: {}", not_closed.join(", ")));
    }
    perfdata.push(format!("breakers_not_closed={}", not_closed.len()));

    // Open incidents.
    let (events, more) = ctx.events_since(ctx.now_ms.saturating_sub(INCIDENT_WINDOW_MS));
    problems.extend(more);
    let mut open = Vec::new();
    for (service, events) in &events {
        for o in incident::outages(events, service)
            .into_iter()
            .filter(|o| o.ended_at.is_none())
        {
            open.push(json!({
                "service": service,
                "started": rfc3339(o.started_at),
                "attempts": o.attempts,
                "escalated": o.escalated,
            }));
        }
    }
    table.push_str("\nOpen incidents:");
    if open.is_empty() {
        table.push_str(" none\n");
    } else {
        table.push('\n');
        let rows: Vec<Vec<String>> = open
            .iter()
            .map(|o| {
                vec![
                    o["service"].as_str().unwrap_or_default().to_string(),
                    o["started"].as_str().unwrap_or_default().to_string(),
                    o["attempts"].to_string(),
                    if o["escalated"] == json!(true) {
                        "manual intervention"
                    } else {
                        "recovering"
                    }
                    .to_string(),
                ]
            })
            .collect();
        table.push_str(&columns(&["SERVICE", "STARTED", "ATTEMPTS", "STATE"], &rows));
        statuses.push(Status::Critical);
        summary.push(format!("{} open incident(s)", open.len()));
    }
    perfdata.push(format!("open_incidents={}", open.len()));

    // Maintenance windows in force: the configuration's (when the section is enabled)
    // and the ad-hoc ones, as the daemon reads them.
    let configured: &[Window] = match &ctx.config {
        Some(c) if c.maintenance.enabled => &c.maintenance.windows,
        _ => &[],
    };
    let (windows, errors) = reliability_os::maintenance::windows(&ctx.store(), configured);
    problems.extend(errors.iter().map(ToString::to_string));
    let active: Vec<ActiveWindow> = windows
        .iter()
        .filter_map(|w| active_at(std::slice::from_ref(w), ctx.now_ms))
        .collect();
    table.push_str("\nMaintenance:");
    if active.is_empty() {
        table.push_str(" none in force\n");
    } else {
        table.push('\n');
        let rows: Vec<Vec<String>> = active
            .iter()
            .map(|w| {
                vec![
                    w.name.clone(),
                    w.kind.to_string(),
                    rfc3339(w.start_ms),
                    rfc3339(w.end_ms),
                    w.actor.clone().unwrap_or_else(|| "-".into()),
                    if w.services.is_empty() {
                        "all".into()
                    } else {
                        w.services.join(",")
                    },
                    w.reason.clone().unwrap_or_default(),
                ]
            })
            .collect();
        table.push_str(&columns(
            &["WINDOW", "KIND", "START", "END", "ACTOR", "SERVICES", "REASON"],
            &rows,
        ));
        summary.push(format!(
            "in maintenance: {}",
            active.iter().map(|w| w.name.as_str()).collect::<Vec<_>>().join(", ")
        ));
    }
    perfdata.push(format!("maintenance={}", active.len()));

    for p in &problems {
        let _ = writeln!(table, "warning: {p}");
    }
    let status = Status::worst(statuses.iter().copied());
    let text = if summary.is_empty() {
        "no checks, breakers or incidents to report".to_string()
    } else {
        summary.join(", ")
    };
    Rendered {
        json: json!({
            "status": status.name(),
            "daemon": last.as_ref().map(|(v, age)| json!({"age_s": age, "fresh": *age <= STALE_S, "health": v})),
            "breakers": breakers,
            "open_incidents": open,
            "maintenance": active.iter().map(|w| json!({
                "name": w.name, "kind": w.kind, "reason": w.reason, "actor": w.actor,
                "start": rfc3339(w.start_ms), "end": rfc3339(w.end_ms), "services": w.services,
            })).collect::<Vec<_>>(),
            "warnings": problems,
        }),
        table,
        nagios: nagios_line("STATUS", status, &text, &perfdata),
        status,
    }
}
