//! `maintenance_window`: opens and closes an ad-hoc maintenance window on a host, so a
//! deployment playbook can keep the monitor from alerting on (and, where configured,
//! recovering) what it is about to restart: like an Icinga downtime or an Alertmanager
//! silence, kept on the host itself.
//!
//! A window is a record of kind `maintenance` in the state store (`AdHoc`:
//! name, reason, actor, start, end, services), for the monitor to read through
//! `reliability_os::maintenance` (the daemon reads them once a second); whether it is in force
//! is `reliability_core::maintenance::active_at`.
//!
//! Decisions:
//! - `state: present` with no open window of that name opens one now, until `end` or for
//!   `duration`. With an open window, only what differs is changed: `reason`, `services`,
//!   and the end when `end` is given. A `duration` does not push an open window's end back
//!   (re-running the play is not a change); give `end` to move it.
//! - `state: absent` closes an open window: its end becomes now (the record stays, as an
//!   expired silence does). No open window: nothing to do.
//! - A window whose end has passed is closed; `present` opens a new one under its name.
//! - Each change appends one record to the audit trail (`maintenance.open`,
//!   `maintenance.update`, `maintenance.close`). Check mode reads the record, writes nothing
//!   and appends nothing; the diff is the window before and after.

use crate::audit;
use ansible_module::{Failure, Module, Response};
use reliability_core::duration::parse_duration;
use reliability_core::maintenance::{parse_instant, AdHoc, Ask, PlanError};
use reliability_core::spec::{Kind, Opt, Spec};
use reliability_core::timestamp::rfc3339;
use reliability_os::audit::Outcome;
use reliability_os::clock::now_ms;
use reliability_os::maintenance::{self, MaintenanceError};
use reliability_os::state::{self, Store};
use serde_json::{json, Value};

pub fn spec() -> Spec {
    Spec::new(vec![
        Opt::str("name").required().max_len(state::MAX_NAME),
        Opt::str("state").choices(&["present", "absent"]).default("present"),
        Opt::str("duration").max_len(64),
        Opt::str("end").max_len(64),
        Opt::str("reason").max_len(1024),
        Opt::list("services", Kind::Str).default(json!([])).max_items(256),
        Opt::path("state_dir").default(state::DEFAULT_DIR),
    ])
    .mutually_exclusive(&["duration", "end"])
    .required_if("state", "present", &["reason"])
}

/// A window as the result and the diff show it; `null` for none.
fn shown(w: Option<&AdHoc>, now: u64) -> Value {
    match w {
        None => Value::Null,
        Some(w) => json!({
            "name": w.name,
            "reason": w.reason,
            "actor": w.actor,
            "start": rfc3339(w.start_ms),
            "end": rfc3339(w.end_ms),
            "services": w.services,
            "active": w.start_ms <= now && now < w.end_ms,
        }),
    }
}

/// The diff text of a window: one `key: value` line each, nothing for none.
fn diff_text(w: &Value) -> String {
    let Some(map) = w.as_object() else {
        return String::new();
    };
    ["name", "reason", "actor", "start", "end", "services", "active"]
        .iter()
        .filter_map(|k| map.get(*k).map(|v| format!("{k}: {v}\n")))
        .collect()
}

/// When a new window opened at `now` ends, from `duration` or `end`.
fn end_of(module: &Module, now: u64) -> Result<Option<u64>, Failure> {
    if let Some(d) = module.str("duration") {
        let ms = parse_duration(d).map_err(|e| Failure::new(format!("duration: {e}")))?;
        if ms == 0 {
            return Err(Failure::new("duration: a window must last longer than 0"));
        }
        return Ok(Some(now.saturating_add(ms)));
    }
    module
        .str("end")
        .map(|e| parse_instant(e).map_err(|msg| Failure::new(format!("end: {msg}"))))
        .transpose()
}

pub fn run(module: &mut Module) -> Result<Response, Failure> {
    let name = module.str("name").unwrap_or_default().to_string();
    state::validate_name(&name).map_err(|e| Failure::new(format!("name: {e}")))?;
    let store = Store::new(module.str("state_dir").unwrap_or(state::DEFAULT_DIR));
    let present = module.str("state") != Some("absent");
    let now = now_ms();
    let ask = Ask {
        name: name.clone(),
        present,
        end_ms: if present { end_of(module, now)? } else { None },
        end_is_instant: module.str("end").is_some(),
        reason: module.str("reason").unwrap_or_default().to_string(),
        services: module.list_of_str("services"),
        actor: audit::who(&audit::actor(module)),
    };
    let plan = maintenance::apply(&store, &ask, now, module.check_mode()).map_err(|e| match e {
        MaintenanceError::State(e) => Failure::from(e),
        MaintenanceError::Plan(PlanError::NoEnd) => {
            Failure::new("state is present but neither duration nor end is given: say how long the window lasts")
        }
        MaintenanceError::Plan(e) => Failure::new(e.to_string()),
    })?;
    let open = plan.open.as_ref();
    let action = plan.next.as_ref().map_or("", |(_, change)| change.action());
    let next = plan.next.as_ref().map(|(w, _)| w);

    let changed = next.is_some();
    let before = shown(open, now);
    let after = match next {
        Some(w) if w.end_ms > now => shown(Some(w), now),
        Some(_) => Value::Null,
        None => before.clone(),
    };
    if let Some(w) = next.filter(|_| !module.check_mode()) {
        audit::append(
            module,
            action,
            &name,
            Some(&w.reason),
            Outcome::Changed,
            json!({"start": rfc3339(w.start_ms), "end": rfc3339(w.end_ms), "services": w.services}),
        )
        .map_err(|f| f.field("changed", true))?;
    }
    let would = if module.check_mode() { "would be " } else { "" };
    let msg = match (action, next) {
        ("maintenance.open", Some(w)) => format!(
            "maintenance window '{name}' {would}opened until {} ({})",
            rfc3339(w.end_ms),
            scope(&w.services)
        ),
        ("maintenance.update", Some(w)) => format!(
            "maintenance window '{name}' {would}updated: until {} ({})",
            rfc3339(w.end_ms),
            scope(&w.services)
        ),
        ("maintenance.close", _) => format!("maintenance window '{name}' {would}closed"),
        _ if present => format!("maintenance window '{name}' is open as asked"),
        _ => format!("maintenance window '{name}' is not open"),
    };
    let mut response = Response::new().changed(changed).msg(msg).field("window", after.clone());
    if module.diff_mode() {
        let header = format!("maintenance window {name}");
        response = response.field(
            "diff",
            json!({
                "before": diff_text(&before),
                "after": diff_text(&after),
                "before_header": header,
                "after_header": header,
            }),
        );
    }
    Ok(response)
}

fn scope(services: &[String]) -> String {
    if services.is_empty() {
        "the whole host".to_string()
    } else {
        format!("services {}", services.join(", "))
    }
}
