//! One run of the checks a `check --type` selects: the config's entries merged into one
//! request per engine, run once, and the results joined into one report.

use crate::config::{CheckKind, Config, HealthEntry};
use reliability_backup::{verify, Context, VerifyRequest};
use reliability_checks::HealthReport;
use reliability_core::check::{CheckResult, FailOn, Status};
use serde_json::Value;
use std::time::{Duration, Instant};

/// What `check --type` selects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum CheckType {
    /// `health_checks.services`: systemd units.
    Services,
    /// `health_checks.ports`, and the `port` of each service.
    Ports,
    /// `health_checks.http`.
    Http,
    /// `health_checks.processes`, and the `process` of each service.
    Processes,
    /// `health_checks.resources`, levels from `thresholds`.
    Resources,
    /// `performance_monitoring.metrics` (and, with `response_time`, the ports and URLs).
    Performance,
    /// `backup_verification.backups`.
    Backup,
    /// Everything but `performance` (whose measures the resources check takes).
    All,
}

impl CheckType {
    pub fn name(self) -> &'static str {
        match self {
            CheckType::Services => "services",
            CheckType::Ports => "ports",
            CheckType::Http => "http",
            CheckType::Processes => "processes",
            CheckType::Resources => "resources",
            CheckType::Performance => "performance",
            CheckType::Backup => "backup",
            CheckType::All => "all",
        }
    }

    fn health_kinds(self) -> &'static [CheckKind] {
        use CheckKind::*;
        match self {
            CheckType::Services => &[Services],
            CheckType::Ports => &[Ports],
            CheckType::Http => &[Http],
            CheckType::Processes => &[Processes],
            CheckType::Resources => &[Resources],
            CheckType::Performance | CheckType::Backup => &[],
            CheckType::All => &[Services, Ports, Http, Processes, Resources],
        }
    }
}

/// The health entries `kind` selects, in file order.
pub fn select(config: &Config, kind: CheckType) -> Vec<&HealthEntry> {
    let mut entries: Vec<&HealthEntry> = config
        .checks
        .iter()
        .filter(|e| kind.health_kinds().contains(&e.kind))
        .collect();
    if kind == CheckType::Performance {
        entries.extend(config.performance.iter());
        if config.response_time {
            entries.extend(
                config
                    .checks
                    .iter()
                    .filter(|e| matches!(e.kind, CheckKind::Ports | CheckKind::Http)),
            );
        }
    }
    entries
}

/// Where a long run is: `done` of `total` backups verified, `name` the one starting
/// (`None` once all are done).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Progress<'a> {
    pub done: usize,
    pub total: usize,
    pub name: Option<&'a str>,
}

/// Runs what `kind` selects once and reports. Nothing selected is one unknown result:
/// a plugin that checks nothing must not say OK.
pub fn run(config: &Config, kind: CheckType) -> HealthReport {
    run_with_progress(config, kind, &mut |_| {})
}

/// [`run`], telling `progress` before each backup verification and after the last (the
/// backups are the long part: hashing, extracting, restoring).
pub fn run_with_progress(config: &Config, kind: CheckType, progress: &mut dyn FnMut(Progress<'_>)) -> HealthReport {
    let started = Instant::now();
    let entries = select(config, kind);
    let mut checks = Vec::new();
    if !entries.is_empty() {
        checks = reliability_checks::run(&config.request(&entries)).checks;
    }
    if matches!(kind, CheckType::Backup | CheckType::All) {
        let total = config.backups.len();
        for (done, backup) in config.backups.iter().enumerate() {
            progress(Progress {
                done,
                total,
                name: Some(&backup.name),
            });
            checks.push(verify_one(&backup.name, &backup.params));
        }
        if total > 0 {
            progress(Progress {
                done: total,
                total,
                name: None,
            });
        }
    }
    if checks.is_empty() {
        checks.push(CheckResult::unknown(
            "config",
            "config",
            format!(
                "no {} checks: the configuration declares none (or their section is disabled)",
                kind.name()
            ),
            Duration::ZERO,
        ));
    }
    reliability_checks::report(checks, FailOn::Critical, started.elapsed())
}

/// One backup verified by `reliability_backup::verify`, as a check result.
fn verify_one(name: &str, params: &serde_json::Map<String, Value>) -> CheckResult {
    let started = Instant::now();
    let name = format!("backup {name}");
    let request = match VerifyRequest::from_params(params) {
        Ok(r) => r,
        Err(e) => return CheckResult::unknown(&name, "backup", format!("{name}: {e}"), started.elapsed()),
    };
    match verify(&request, &Context::default()) {
        Ok(report) => {
            let status = if report.failed { Status::Critical } else { Status::Ok };
            CheckResult::state(
                &name,
                "backup",
                status,
                format!("{name}: {}", report.msg),
                started.elapsed(),
            )
            .with_detail("checks", Value::Object(report.checks))
            .with_detail("warnings", report.warnings)
        }
        Err(e) => CheckResult::unknown(&name, "backup", format!("{name}: {e}"), started.elapsed()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reliability_core::spec::Env;

    #[test]
    fn progress_is_told_before_each_backup_and_at_the_end() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().display();
        let text = format!(
            "backup_verification:\n  backups:\n    - {{name: etc, backup: '{dir}/etc'}}\n    - {{name: www, backup: '{dir}/www'}}\n"
        );
        let config = crate::config::parse(&text, &Env { home: None }).expect("valid");
        let mut seen = Vec::new();
        let report = run_with_progress(&config, CheckType::Backup, &mut |p| {
            seen.push((p.done, p.total, p.name.map(str::to_string)));
        });
        assert_eq!(report.checks.len(), 2, "{report:?}");
        assert_eq!(
            seen,
            [
                (0, 2, Some("etc".to_string())),
                (1, 2, Some("www".to_string())),
                (2, 2, None)
            ]
        );
        let mut calls = 0;
        run_with_progress(&config, CheckType::Ports, &mut |_| calls += 1);
        assert_eq!(calls, 0, "no backups, no progress");
    }
}
