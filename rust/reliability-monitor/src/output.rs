//! A report as people, programs and Nagios read it.

use crate::run::CheckType;
use reliability_checks::HealthReport;
use reliability_core::check::Status;
use serde_json::Value;

/// The worst status of a report: what the exit code and the Nagios line say.
pub fn worst(report: &HealthReport) -> Status {
    Status::worst(report.checks.iter().map(|c| c.status))
}

/// One line of text: control characters (a newline would end a plugin's status line)
/// become spaces.
pub fn one_line(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// The Nagios plugin output: one status line, perfdata after `|`
/// (<https://nagios-plugins.org/doc/guidelines.html#PLUGOUTPUT>).
pub fn nagios(kind: CheckType, report: &HealthReport) -> String {
    let status = worst(report).name().to_ascii_uppercase();
    let head = format!(
        "{} {status} - {}",
        kind.name().to_ascii_uppercase(),
        one_line(&report.msg).replace('|', "/")
    );
    if report.perfdata.is_empty() {
        format!("{head}\n")
    } else {
        format!("{head} | {}\n", one_line(&report.perfdata))
    }
}

/// The report as one JSON object: the engine's report with the type asked.
pub fn json(kind: CheckType, report: &HealthReport) -> String {
    let mut value = serde_json::to_value(report).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.insert("type".into(), kind.name().into());
    }
    format!("{}\n", serde_json::to_string_pretty(&value).unwrap_or_default())
}

/// A table for people: one row per check, then the verdict.
pub fn table(report: &HealthReport) -> String {
    let rows: Vec<Vec<String>> = report
        .checks
        .iter()
        .map(|c| vec![c.status.name().to_ascii_uppercase(), c.name.clone(), c.message.clone()])
        .collect();
    let mut out = columns(&["STATUS", "CHECK", "MESSAGE"], &rows);
    out.push_str(&format!("\n{} ({} ms)\n", one_line(&report.msg), report.duration_ms));
    out
}

/// Rows under a header, each cell on one line, columns padded to their widest cell (the
/// last one not padded, no trailing blanks).
pub fn columns(header: &[&str], rows: &[Vec<String>]) -> String {
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .filter_map(|r| r.get(i))
                .map(|c| one_line(c).chars().count())
                .chain(std::iter::once(header[i].chars().count()))
                .max()
                .unwrap_or(0)
        })
        .collect();
    let header: Vec<String> = header.iter().map(|h| (*h).to_string()).collect();
    let mut out = String::new();
    for row in std::iter::once(&header).chain(rows.iter()) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            let width = widths.get(i).copied().unwrap_or(0);
            line.push_str(&format!("{:<width$}  ", one_line(cell)));
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use reliability_core::check::{CheckResult, FailOn};
    use std::time::Duration;

    fn report() -> HealthReport {
        let ok = CheckResult::state("ssh", "port", Status::Ok, "port 22 open", Duration::ZERO);
        let mut bad = CheckResult::state("web|1", "port", Status::Critical, "closed\nnow", Duration::ZERO);
        bad.perfdata = "'web 1'=3ms".into();
        reliability_checks::report(vec![ok, bad], FailOn::Critical, Duration::from_millis(3))
    }

    #[test]
    fn nagios_is_one_line_with_perfdata() {
        assert_eq!(
            nagios(CheckType::Ports, &report()),
            "PORTS CRITICAL - unhealthy: 1 critical of 2 checks: closed now | 'web 1'=3ms\n"
        );
    }

    #[test]
    fn table_aligns_columns() {
        assert_eq!(
            table(&report()),
            "STATUS    CHECK  MESSAGE\nOK        ssh    port 22 open\nCRITICAL  web|1  closed now\n\n\
             unhealthy: 1 critical of 2 checks: closed now (3 ms)\n"
        );
    }
}
