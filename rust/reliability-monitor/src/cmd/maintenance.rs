//! `maintenance start --for 2h --reason TEXT [--name N] [--services a,b]`,
//! `maintenance stop [--name N]`, `maintenance list`: ad-hoc windows with the records and
//! the decision of the `maintenance_window` module (`reliability_os::maintenance::apply`
//! over `reliability_core::maintenance::plan`), so either front end closes what the other
//! opened. Each change appends one audit record (`maintenance.open`, `.update`, `.close`).
//!
//! `stop` without `--name` closes every open window.

use super::{columns, nagios_line, Ctx, Rendered};
use reliability_core::audit::{Outcome, Record};
use reliability_core::check::Status;
use reliability_core::maintenance::{AdHoc, Ask};
use reliability_core::timestamp::rfc3339;
use reliability_os::maintenance::{self, MaintenanceError};
use serde_json::json;

/// The window's name when `start` is given none.
pub const DEFAULT_NAME: &str = "cli";

fn record(window: &AdHoc, action: &str, actor: &reliability_core::audit::Actor) -> Record {
    Record {
        front_end: "cli".into(),
        action: action.into(),
        target: window.name.clone(),
        reason: Some(window.reason.clone()),
        outcome: Outcome::Changed,
        actor: actor.clone(),
        config_digest: None,
        details: json!({"start": rfc3339(window.start_ms), "end": rfc3339(window.end_ms), "services": window.services}),
    }
}

/// Applies `ask` and records a change; the message.
fn change(ctx: &Ctx, ask: &Ask, actor: &reliability_core::audit::Actor) -> Result<(String, bool), String> {
    let plan = maintenance::apply(&ctx.store(), ask, ctx.now_ms, false).map_err(|e| match e {
        MaintenanceError::Plan(e) => e.to_string(),
        MaintenanceError::State(e) => e.to_string(),
    })?;
    let Some((window, how)) = &plan.next else {
        let msg = if ask.present {
            format!("maintenance window '{}' is open as asked", ask.name)
        } else {
            format!("maintenance window '{}' is not open", ask.name)
        };
        return Ok((msg, false));
    };
    reliability_os::audit::append(&ctx.audit_dir(), record(window, how.action(), actor)).map_err(|e| {
        format!(
            "maintenance window '{}' changed, but the audit trail in '{}' could not be appended: {e}",
            ask.name,
            ctx.audit_dir().display()
        )
    })?;
    let scope = if window.services.is_empty() {
        "the whole host".to_string()
    } else {
        format!("services {}", window.services.join(", "))
    };
    let msg = match how {
        reliability_core::maintenance::Change::Open => {
            format!(
                "maintenance window '{}' opened until {} ({scope})",
                ask.name,
                rfc3339(window.end_ms)
            )
        }
        reliability_core::maintenance::Change::Update => {
            format!(
                "maintenance window '{}' updated: until {} ({scope})",
                ask.name,
                rfc3339(window.end_ms)
            )
        }
        reliability_core::maintenance::Change::Close => format!("maintenance window '{}' closed", ask.name),
    };
    Ok((msg, true))
}

pub fn start(ctx: &Ctx, name: &str, for_ms: u64, reason: &str, services: Vec<String>) -> Result<String, String> {
    if for_ms == 0 {
        return Err("--for: a window must last longer than 0".into());
    }
    reliability_os::state::validate_name(name).map_err(|e| format!("--name: {e}"))?;
    let actor = reliability_os::audit::actor();
    let ask = Ask {
        name: name.to_string(),
        present: true,
        end_ms: Some(ctx.now_ms.saturating_add(for_ms)),
        end_is_instant: false,
        reason: reason.to_string(),
        services,
        actor: actor.who(),
    };
    change(ctx, &ask, &actor).map(|(msg, _)| msg)
}

pub fn stop(ctx: &Ctx, name: Option<&str>) -> Result<String, String> {
    let actor = reliability_os::audit::actor();
    let names: Vec<String> = match name {
        Some(n) => {
            reliability_os::state::validate_name(n).map_err(|e| format!("--name: {e}"))?;
            vec![n.to_string()]
        }
        None => {
            let (windows, errors) = maintenance::list(&ctx.store());
            if let Some(e) = errors.first() {
                return Err(e.to_string());
            }
            windows
                .into_iter()
                .filter(|w| w.start_ms <= ctx.now_ms && ctx.now_ms < w.end_ms)
                .map(|w| w.name)
                .collect()
        }
    };
    if names.is_empty() {
        return Ok("no maintenance window is open".into());
    }
    let mut msgs = Vec::new();
    for name in names {
        let ask = Ask {
            name,
            present: false,
            end_ms: None,
            end_is_instant: false,
            reason: String::new(),
            services: Vec::new(),
            actor: actor.who(),
        };
        msgs.push(change(ctx, &ask, &actor)?.0);
    }
    Ok(msgs.join("\n"))
}

/// Whether a window is open at `now`.
pub fn active(w: &AdHoc, now: u64) -> bool {
    w.start_ms <= now && now < w.end_ms
}

pub fn rows(windows: &[AdHoc], now: u64) -> Vec<Vec<String>> {
    windows
        .iter()
        .map(|w| {
            vec![
                w.name.clone(),
                if active(w, now) { "open" } else { "closed" }.into(),
                rfc3339(w.start_ms),
                rfc3339(w.end_ms),
                w.actor.clone(),
                if w.services.is_empty() {
                    "all".into()
                } else {
                    w.services.join(",")
                },
                w.reason.clone(),
            ]
        })
        .collect()
}

pub const HEADER: [&str; 7] = ["WINDOW", "STATE", "START", "END", "ACTOR", "SERVICES", "REASON"];

pub fn list(ctx: &Ctx) -> Rendered {
    let (windows, errors) = maintenance::list(&ctx.store());
    let problems: Vec<String> = errors.iter().map(ToString::to_string).collect();
    let open = windows.iter().filter(|w| active(w, ctx.now_ms)).count();
    let mut table = if windows.is_empty() {
        "no maintenance windows\n".to_string()
    } else {
        columns(&HEADER, &rows(&windows, ctx.now_ms))
    };
    for p in &problems {
        table.push_str(&format!("warning: {p}\n"));
    }
    let shown: Vec<serde_json::Value> = windows
        .iter()
        .map(|w| {
            json!({
                "name": w.name, "reason": w.reason, "actor": w.actor,
                "start": rfc3339(w.start_ms), "end": rfc3339(w.end_ms),
                "services": w.services, "active": active(w, ctx.now_ms),
            })
        })
        .collect();
    Rendered {
        json: json!({"windows": shown, "warnings": problems}),
        table,
        nagios: nagios_line(
            "MAINTENANCE",
            Status::Ok,
            &format!("{open} maintenance window(s) open"),
            &[format!("open={open}")],
        ),
        status: Status::Ok,
    }
}
