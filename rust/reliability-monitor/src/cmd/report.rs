//! `report`: per service over a window, the figures of `reliability_core::incident::stats`
//! against `reliability_metrics.sla_target`, and the seed's KPIs; `report --compliance`:
//! what the audit trail, the incident logs and the maintenance records say about a period,
//! for auditors.
//!
//! The seed's KPIs: MTTR under 5 minutes (met while no outage has ended: nothing took
//! longer), and a failure rate under 0.1 %, the failure rate being the share of the
//! window spent in an outage (100 % minus the availability).

use super::{columns, label, nagios_line, percent, secs, Ctx, Rendered};
use reliability_core::audit::VerifyReport;
use reliability_core::check::Status;
use reliability_core::incident::{self, Outage, Stats};
use reliability_core::maintenance::AdHoc;
use reliability_core::timestamp::rfc3339;
use serde::Serialize;
use serde_json::json;
use std::collections::BTreeMap;
use std::fmt::Write as _;

/// The seed's KPI: mean time to recovery under five minutes.
pub const MTTR_KPI_S: f64 = 300.0;
/// The seed's KPI: failure rate under 0.1 %.
pub const FAILURE_RATE_KPI_PERCENT: f64 = 0.1;

/// One service's figures over the window.
#[derive(Clone, Debug, Serialize)]
pub struct ServiceReport {
    pub service: String,
    #[serde(flatten)]
    pub stats: Stats,
    /// Availability at or above the target.
    pub sla_met: bool,
    /// Percent of the window in an outage.
    pub failure_rate_percent: f64,
    pub kpi_mttr_met: bool,
    pub kpi_failure_rate_met: bool,
}

impl ServiceReport {
    fn new(service: &str, stats: Stats) -> ServiceReport {
        let failure_rate_percent = 100.0 - stats.availability_percent;
        ServiceReport {
            service: service.to_string(),
            sla_met: stats.availability_percent >= stats.error_budget.sla_target,
            failure_rate_percent,
            kpi_mttr_met: stats.mttr_s.is_none_or(|m| m < MTTR_KPI_S),
            kpi_failure_rate_met: failure_rate_percent < FAILURE_RATE_KPI_PERCENT,
            stats,
        }
    }

    fn status(&self) -> Status {
        if !self.sla_met {
            Status::Critical
        } else if !(self.kpi_mttr_met && self.kpi_failure_rate_met) {
            Status::Warning
        } else {
            Status::Ok
        }
    }
}

/// The figures of every service (or only `only`) over the `window_ms` ending at `to_ms`.
pub fn services(ctx: &Ctx, only: Option<&str>, to_ms: u64, window_ms: u64) -> (Vec<ServiceReport>, Vec<String>) {
    let (events, problems) = ctx.events_since(to_ms.saturating_sub(window_ms));
    let reports = events
        .iter()
        .filter(|(service, _)| only.is_none_or(|o| o == service.as_str()))
        .map(|(service, events)| {
            let outages = incident::outages(events, service);
            ServiceReport::new(service, incident::stats(&outages, to_ms, window_ms, ctx.sla_target()))
        })
        .collect();
    (reports, problems)
}

fn met(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "NOT MET"
    }
}

/// `report [--service S] [--window W]`.
pub fn report(ctx: &Ctx, only: Option<&str>, window_ms: u64) -> Rendered {
    let (reports, problems) = services(ctx, only, ctx.now_ms, window_ms);
    let window = reliability_core::duration::format_duration(window_ms);
    let status = if !problems.is_empty() && reports.is_empty() {
        Status::Unknown
    } else {
        Status::worst(reports.iter().map(ServiceReport::status))
    };
    let rows: Vec<Vec<String>> = reports
        .iter()
        .map(|r| {
            let s = &r.stats;
            vec![
                r.service.clone(),
                format!("{:.3} %", s.availability_percent),
                format!("{} %", s.error_budget.sla_target),
                format!("{:.1} %", s.error_budget.left_percent),
                s.incidents.to_string(),
                secs(s.mttr_s),
                secs(s.mtbf_s),
                percent(s.recovery_success_rate),
                percent(s.escalation_rate),
                met(r.kpi_mttr_met).into(),
                met(r.kpi_failure_rate_met).into(),
            ]
        })
        .collect();
    let mut table = format!(
        "Reliability over the last {window} (until {}), SLA target {} %\n\n",
        rfc3339(ctx.now_ms),
        ctx.sla_target()
    );
    if rows.is_empty() {
        table.push_str("no service has a recovery configured or an incident recorded\n");
    } else {
        table.push_str(&columns(
            &[
                "SERVICE",
                "AVAILABILITY",
                "TARGET",
                "BUDGET LEFT",
                "OUTAGES",
                "MTTR",
                "MTBF",
                "RECOVERED",
                "ESCALATED",
                "KPI MTTR<5m",
                "KPI FAIL<0.1%",
            ],
            &rows,
        ));
    }
    for p in &problems {
        let _ = writeln!(table, "warning: {p}");
    }
    let missed: Vec<&str> = reports
        .iter()
        .filter(|r| r.status() != Status::Ok)
        .map(|r| r.service.as_str())
        .collect();
    let text = if reports.is_empty() {
        "no services".to_string()
    } else if missed.is_empty() {
        format!("{} service(s) within SLA and KPIs over {window}", reports.len())
    } else {
        format!("SLA or KPI missed over {window}: {}", missed.join(", "))
    };
    let perfdata: Vec<String> = reports
        .iter()
        .flat_map(|r| {
            let s = &r.stats;
            let mut p = vec![
                format!(
                    "{}={:.4}%;;{};0;100",
                    label(&format!("{} availability", r.service)),
                    s.availability_percent,
                    s.error_budget.sla_target
                ),
                format!(
                    "{}={:.1}%",
                    label(&format!("{} budget_left", r.service)),
                    s.error_budget.left_percent
                ),
                format!("{}={}", label(&format!("{} outages", r.service)), s.incidents),
            ];
            if let Some(m) = s.mttr_s {
                p.push(format!(
                    "{}={m:.1}s;{MTTR_KPI_S}",
                    label(&format!("{} mttr", r.service))
                ));
            }
            p
        })
        .collect();
    Rendered {
        json: json!({
            "window": window,
            "until": rfc3339(ctx.now_ms),
            "sla_target": ctx.sla_target(),
            "status": status.name(),
            "services": reports,
            "warnings": problems,
        }),
        table,
        nagios: nagios_line("REPORT", status, &text, &perfdata),
        status,
    }
}

/// How a compliance report is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ComplianceFormat {
    Table,
    Json,
    Markdown,
}

/// What `report --compliance` says about a period.
#[derive(Clone, Debug, Serialize)]
pub struct Compliance {
    pub from: String,
    pub to: String,
    /// Records per action and actor, in the period.
    pub actions: Vec<ActionCount>,
    /// Outages that reached manual intervention.
    pub manual_interventions: Vec<Intervention>,
    pub sla: Vec<ServiceReport>,
    /// Ad-hoc maintenance windows open in the period.
    pub maintenance_windows: Vec<AdHoc>,
    /// The whole trail, verified.
    pub chain: Option<VerifyReport>,
    /// Lines of the trail that are not records, and anything that could not be read.
    pub problems: Vec<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ActionCount {
    pub action: String,
    pub actor: String,
    pub front_end: String,
    pub count: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct Intervention {
    pub service: String,
    pub started: String,
    pub ended: Option<String>,
    pub attempts: u32,
}

/// Gathers the compliance report for `[from_ms, to_ms)`.
pub fn compliance(ctx: &Ctx, from_ms: u64, to_ms: u64) -> Compliance {
    let mut problems = Vec::new();
    let dir = ctx.audit_dir();
    let mut counts: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    match reliability_os::audit::entries_between(&dir, from_ms, to_ms) {
        Ok((entries, bad)) => {
            for e in entries {
                let key = (
                    e.record.action.clone(),
                    e.record.actor.who(),
                    e.record.front_end.clone(),
                );
                *counts.entry(key).or_default() += 1;
            }
            if bad > 0 {
                problems.push(format!("{bad} line(s) of the trail are not records"));
            }
        }
        Err(e) => problems.push(e.to_string()),
    }
    let chain = match reliability_os::audit::verify(&dir) {
        Ok(r) => Some(r),
        Err(e) => {
            problems.push(e.to_string());
            None
        }
    };
    let window_ms = to_ms.saturating_sub(from_ms);
    let (sla, more) = services(ctx, None, to_ms, window_ms);
    problems.extend(more);
    let (events, _) = ctx.events_since(from_ms);
    let manual_interventions = events
        .iter()
        .flat_map(|(service, events)| {
            incident::outages(events, service)
                .into_iter()
                .filter(|o| o.escalated && o.started_at < to_ms)
                .map(|o: Outage| Intervention {
                    service: service.clone(),
                    started: rfc3339(o.started_at),
                    ended: o.ended_at.map(rfc3339),
                    attempts: o.attempts,
                })
                .collect::<Vec<_>>()
        })
        .collect();
    let (windows, errors) = reliability_os::maintenance::list(&ctx.store());
    problems.extend(errors.iter().map(ToString::to_string));
    let maintenance_windows = windows
        .into_iter()
        .filter(|w| w.start_ms < to_ms && w.end_ms > from_ms)
        .collect();
    Compliance {
        from: rfc3339(from_ms),
        to: rfc3339(to_ms),
        actions: counts
            .into_iter()
            .map(|((action, actor, front_end), count)| ActionCount {
                action,
                actor,
                front_end,
                count,
            })
            .collect(),
        manual_interventions,
        sla,
        maintenance_windows,
        chain,
        problems,
    }
}

/// One part of the compliance report: its title, column names and rows.
type Section = (&'static str, Vec<&'static str>, Vec<Vec<String>>);

impl Compliance {
    /// Critical when the trail does not verify, warning when a service missed its SLA.
    pub fn status(&self) -> Status {
        if !self.chain.as_ref().is_some_and(|c| c.ok) {
            Status::Critical
        } else if self.sla.iter().any(|s| !s.sla_met) {
            Status::Warning
        } else {
            Status::Ok
        }
    }

    fn chain_text(&self) -> String {
        match &self.chain {
            Some(c) if c.ok => format!("verified: {} records in {} file(s), intact", c.records, c.files),
            Some(c) => match &c.first_bad {
                Some(b) => format!(
                    "NOT VERIFIED: {}:{}: {} ({} records intact before it)",
                    b.file, b.line, b.problem, c.records
                ),
                None => "NOT VERIFIED".into(),
            },
            None => "NOT VERIFIED: the trail could not be read".into(),
        }
    }

    fn sections(&self) -> Vec<Section> {
        vec![
            (
                "Actions by kind and actor",
                vec!["ACTION", "ACTOR", "FRONT END", "COUNT"],
                self.actions
                    .iter()
                    .map(|a| {
                        vec![
                            a.action.clone(),
                            a.actor.clone(),
                            a.front_end.clone(),
                            a.count.to_string(),
                        ]
                    })
                    .collect(),
            ),
            (
                "Manual interventions",
                vec!["SERVICE", "STARTED", "ENDED", "ATTEMPTS"],
                self.manual_interventions
                    .iter()
                    .map(|i| {
                        vec![
                            i.service.clone(),
                            i.started.clone(),
                            i.ended.clone().unwrap_or_else(|| "open".into()),
                            i.attempts.to_string(),
                        ]
                    })
                    .collect(),
            ),
            (
                "SLA compliance",
                vec!["SERVICE", "AVAILABILITY", "TARGET", "DOWNTIME", "OUTAGES", "SLA"],
                self.sla
                    .iter()
                    .map(|s| {
                        vec![
                            s.service.clone(),
                            format!("{:.3} %", s.stats.availability_percent),
                            format!("{} %", s.stats.error_budget.sla_target),
                            secs(Some(s.stats.downtime_s)),
                            s.stats.incidents.to_string(),
                            met(s.sla_met).into(),
                        ]
                    })
                    .collect(),
            ),
            (
                "Maintenance windows taken",
                vec!["NAME", "START", "END", "ACTOR", "SERVICES", "REASON"],
                self.maintenance_windows
                    .iter()
                    .map(|w| {
                        vec![
                            w.name.clone(),
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
                    .collect(),
            ),
        ]
    }

    pub fn table(&self) -> String {
        let mut out = format!("Compliance report {} to {}\n", self.from, self.to);
        for (title, header, rows) in self.sections() {
            let _ = write!(out, "\n{title}\n");
            if rows.is_empty() {
                out.push_str("  none\n");
            } else {
                out.push_str(&columns(&header, &rows));
            }
        }
        let _ = write!(out, "\nAudit chain: {}\n", self.chain_text());
        for p in &self.problems {
            let _ = writeln!(out, "warning: {p}");
        }
        out
    }

    /// Markdown for auditors: a heading per section, a pipe table each.
    pub fn markdown(&self) -> String {
        let cell = |c: &str| super::one_line(c).replace('|', "\\|");
        let mut out = format!("# Compliance report\n\nPeriod: {} to {}\n", self.from, self.to);
        for (title, header, rows) in self.sections() {
            let _ = write!(out, "\n## {title}\n\n");
            if rows.is_empty() {
                out.push_str("None.\n");
                continue;
            }
            let titles: Vec<String> = header.iter().map(|h| cell(&h.to_lowercase())).collect();
            let _ = writeln!(out, "| {} |", titles.join(" | "));
            let _ = writeln!(out, "|{}|", vec!["---"; header.len()].join("|"));
            for row in rows {
                let row: Vec<String> = row.iter().map(|c| cell(c)).collect();
                let _ = writeln!(out, "| {} |", row.join(" | "));
            }
        }
        let _ = write!(out, "\n## Audit chain\n\n{}\n", cell(&self.chain_text()));
        if !self.problems.is_empty() {
            out.push_str("\n## Warnings\n\n");
            for p in &self.problems {
                let _ = writeln!(out, "- {}", cell(p));
            }
        }
        out
    }

    pub fn json(&self) -> String {
        let mut v = serde_json::to_value(self).unwrap_or_default();
        if let Some(map) = v.as_object_mut() {
            map.insert("status".into(), self.status().name().into());
        }
        format!("{}\n", serde_json::to_string_pretty(&v).unwrap_or_default())
    }
}
