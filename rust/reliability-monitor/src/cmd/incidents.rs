//! `incidents [--service S] [--window W]`: the outages of the window, each with the
//! recovery attempts inside it, rebuilt from the incident logs by
//! `reliability_core::incident::outages` (one outage = one incident, as the report counts).

use super::{columns, nagios_line, secs, Ctx, Rendered};
use reliability_core::check::Status;
use reliability_core::incident::{self, Attempt, Event, Outage};
use reliability_core::timestamp::rfc3339;
use serde_json::{json, Value};

/// The attempt lines of `service` inside outage `o`.
fn attempts_of<'a>(events: &'a [Event], service: &'a str, o: &'a Outage) -> impl Iterator<Item = &'a Attempt> {
    events.iter().filter_map(move |e| match e {
        Event::Attempt(a) if a.service == service && a.started_at == o.started_at => Some(a),
        _ => None,
    })
}

pub fn incidents(ctx: &Ctx, only: Option<&str>, window_ms: u64) -> Rendered {
    let since = ctx.now_ms.saturating_sub(window_ms);
    let (events, problems) = ctx.events_since(since);
    let mut list: Vec<Value> = Vec::new();
    let mut rows = Vec::new();
    let mut open = 0;
    for (service, events) in events.iter().filter(|(s, _)| only.is_none_or(|o| o == s.as_str())) {
        for o in incident::outages(events, service) {
            let attempts: Vec<&Attempt> = attempts_of(events, service, &o).collect();
            let duration_s = o.ended_at.unwrap_or(ctx.now_ms).saturating_sub(o.started_at) as f64 / 1000.0;
            open += usize::from(o.ended_at.is_none());
            let state = match (o.ended_at, o.escalated, o.by_automation) {
                (None, true, _) => "open, manual intervention",
                (None, false, _) => "open",
                (Some(_), _, true) => "recovered",
                (Some(_), true, false) => "closed after manual intervention",
                (Some(_), false, false) => "closed",
            };
            rows.push(vec![
                service.clone(),
                rfc3339(o.started_at),
                o.ended_at.map_or_else(|| "-".into(), rfc3339),
                secs(Some(duration_s)),
                state.to_string(),
                o.attempts.to_string(),
            ]);
            for a in &attempts {
                rows.push(vec![
                    String::new(),
                    format!("  #{} {}", a.attempt, rfc3339(a.at)),
                    String::new(),
                    String::new(),
                    format!(
                        "{} (level {}): {}: {}",
                        a.strategy.as_str(),
                        a.level,
                        a.outcome.as_str(),
                        a.detail
                    ),
                    String::new(),
                ]);
            }
            list.push(json!({
                "service": service,
                "started": rfc3339(o.started_at),
                "ended": o.ended_at.map(rfc3339),
                "duration_s": duration_s,
                "state": state,
                "escalated": o.escalated,
                "by_automation": o.by_automation,
                "attempts": attempts,
            }));
        }
    }
    let window = reliability_core::duration::format_duration(window_ms);
    let mut table = format!("Incidents over the last {window} (until {})\n\n", rfc3339(ctx.now_ms));
    if rows.is_empty() {
        table.push_str("no incidents\n");
    } else {
        table.push_str(&columns(
            &["SERVICE", "STARTED", "ENDED", "DURATION", "STATE", "ATTEMPTS"],
            &rows,
        ));
    }
    for p in &problems {
        table.push_str(&format!("warning: {p}\n"));
    }
    let status = if open > 0 { Status::Critical } else { Status::Ok };
    let text = format!("{} incident(s) over {window}, {open} open", list.len());
    let perfdata = vec![format!("incidents={}", list.len()), format!("open={open}")];
    Rendered {
        json: json!({"window": window, "until": rfc3339(ctx.now_ms), "incidents": list, "warnings": problems}),
        table,
        nagios: nagios_line("INCIDENTS", status, &text, &perfdata),
        status,
    }
}
