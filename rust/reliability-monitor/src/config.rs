//! The monitor's configuration, `/etc/reliability_monitor/config.yml`: read, validated
//! strictly, and turned into the engines' requests.
//!
//! The file is the seed's configuration: every YAML block of the specification
//! (`service_monitoring`, `health_checks`, `circuit_breaker`, ... `monitoring_integration`)
//! put together in one file is valid as written and means what the seed says. Beyond the
//! seed, each entry accepts the full schema of the engine that runs it:
//!
//! | config                                   | schema (never copied: the engine's own `Spec`)     |
//! |------------------------------------------|----------------------------------------------------|
//! | `health_checks.services[]`               | `health_check`'s `services`, plus the seed's `type`, `port`, `process`, and `http` (`health_check`'s HTTP entries, checks of the service) |
//! | `health_checks.{ports,http,processes}[]` | `health_check`'s entries of that kind               |
//! | `health_checks.resources`                | `health_check`'s `resources` (levels default to `thresholds`) |
//! | `health_checks.services[].recovery`      | `service_recovery` (`service` defaults to the entry's name) |
//! | `circuit_breaker`                        | the breaker options every recovery entry inherits    |
//! | `backup_verification.backups[]`          | `backup_verify` (`checks` default to `verification_types`) |
//! | `alerting`, `notifications`              | `reliability_alerts::config` (`AlertConfig::from_root`: channels, secrets, policy) |
//! | `maintenance_windows`                    | `reliability_core::maintenance` (`spec`, `compile` with the host's zones) |
//!
//! Every check entry also takes `interval`, `consecutive_failures` and
//! `consecutive_successes` (defaults in `service_monitoring`): what the daemon schedules
//! by and how many results in a row change a check's state. `service_monitoring` also
//! has the daemon's `max_concurrent_checks`, `state_dir` and `listen` (`port: 0` picks a
//! free port, which the daemon logs).
//!
//! The seed's names are accepted beside the engines': the strategies `restart_service`,
//! `reload_configuration`, `failover_to_backup`, `manual_intervention_required`, and the
//! verification types `file_integrity`, `backup_completeness`.
//!
//! Validation is strict and complete: each piece (a section, one entry of a list) is
//! validated on its own, so one bad entry does not hide the problems of the others, and
//! every problem names its full path and the bad value. A piece that passes the schema is
//! then compiled by its engine (unit names, URLs, regexes, ladders), whose problems are
//! re-rooted at the same path. Sections no command acts on yet are accepted and listed in
//! [`Config::unused`].

use crate::problems::Problems;
use reliability_alerts::config::Context;
use reliability_alerts::AlertConfig;
use reliability_checks::HealthRequest;
use reliability_core::breaker;
use reliability_core::maintenance::{self, MaintenanceConfig};
use reliability_core::recovery::Strategy;
use reliability_core::size::parse_size;
use reliability_core::spec::{Env, Kind, Opt, Spec};
use reliability_os::small_file::{self, Follow};
use reliability_os::state;
use reliability_os::zones::SystemZones;
use reliability_recovery::RecoveryRequest;
use serde::Deserialize;
use serde_json::{json, Map, Value};
use std::fmt;
use std::io::Read;
use std::net::IpAddr;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Where the configuration is read from unless `--config` says otherwise.
pub const DEFAULT_PATH: &str = "/etc/reliability_monitor/config.yml";

/// Every top-level section, in the seed's order.
pub const SECTIONS: [&str; 15] = [
    "service_monitoring",
    "health_checks",
    "circuit_breaker",
    "performance_monitoring",
    "thresholds",
    "error_handling",
    "alerting",
    "notifications",
    "maintenance_windows",
    "security",
    "reliability_metrics",
    "backup_verification",
    "container_support",
    "service_mesh",
    "monitoring_integration",
];

/// The sections the commands of this version act on (`check`, `daemon`, `report`); the others
/// are validated and reported as accepted, not used.
const USED: [&str; 11] = [
    "service_monitoring",
    "health_checks",
    "circuit_breaker",
    "error_handling",
    "thresholds",
    "performance_monitoring",
    "backup_verification",
    "alerting",
    "notifications",
    "maintenance_windows",
    // `report` and `status` judge availability against its `sla_target`.
    "reliability_metrics",
];

/// Keys of a check entry that belong to the monitor, not to the engine.
const SCHEDULE_KEYS: [&str; 3] = ["interval", "consecutive_failures", "consecutive_successes"];

/// The seed's strategy names and the engine's they stand for.
const SEED_STRATEGIES: [(&str, &str); 4] = [
    ("restart_service", "restart"),
    ("reload_configuration", "reload"),
    ("failover_to_backup", "failover"),
    ("manual_intervention_required", "manual"),
];

/// The seed's verification types and the engine's checks they stand for.
const SEED_VERIFICATIONS: [(&str, &str); 2] =
    [("file_integrity", "integrity"), ("backup_completeness", "completeness")];

/// `performance_monitoring.metrics` and the `resources` measure each one reads.
const METRICS: [(&str, Option<&str>); 5] = [
    ("cpu_usage", Some("cpu")),
    ("memory_usage", Some("memory")),
    ("disk_usage", Some("disk")),
    ("network_io", Some("network")),
    // The latency of the port and HTTP checks.
    ("response_time", None),
];

/// The `thresholds` keys, which are also the `resources` levels they set.
const THRESHOLDS: [(&str, f64); 6] = [
    ("cpu_warning", 70.0),
    ("cpu_critical", 90.0),
    ("memory_warning", 80.0),
    ("memory_critical", 95.0),
    ("disk_warning", 85.0),
    ("disk_critical", 95.0),
];

/// What a check kind is, as `check --type` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CheckKind {
    Services,
    Ports,
    Http,
    Processes,
    Resources,
}

/// How the daemon schedules a check and when its state changes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Schedule {
    pub interval: Duration,
    /// Failed results in a row before an ok check counts as failing.
    pub consecutive_failures: u32,
    /// Ok results in a row before a failing check counts as ok again.
    pub consecutive_successes: u32,
}

/// One health-check entry of the file, compiled by `reliability-checks`.
#[derive(Clone, Debug)]
pub struct HealthEntry {
    /// Where it is in the file: `health_checks.ports[2]`.
    pub path: String,
    /// The service (`health_checks.services[].name`) the check belongs to, if any: its
    /// unit, port and process checks.
    pub service: Option<String>,
    pub kind: CheckKind,
    pub schedule: Schedule,
    /// Shared with the runs of the entry: starting one copies nothing.
    pub request: Arc<HealthRequest>,
}

/// One recovery entry, compiled by `reliability-recovery`.
#[derive(Clone, Debug)]
pub struct RecoveryEntry {
    pub path: String,
    pub request: RecoveryRequest,
}

/// One backup to verify: options `reliability_backup::verify_spec` validated.
#[derive(Clone, Debug)]
pub struct BackupEntry {
    pub path: String,
    pub name: String,
    pub schedule: Schedule,
    pub params: Map<String, Value>,
}

/// The address the daemon's endpoints listen on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listen {
    pub address: IpAddr,
    pub port: u16,
    /// A bearer token the endpoints require, given inline or as a file.
    pub bearer_token: Option<String>,
    pub bearer_token_file: Option<PathBuf>,
}

/// `service_monitoring`: the daemon's loop.
#[derive(Clone, Debug)]
pub struct ServiceMonitoring {
    pub enabled: bool,
    pub defaults: Schedule,
    /// How many checks the daemon runs at once, at most.
    pub max_concurrent_checks: usize,
    pub state_dir: PathBuf,
    pub listen: Listen,
}

/// `error_handling`: where the daemon logs.
#[derive(Clone, Debug, Deserialize)]
pub struct ErrorHandling {
    pub enabled: bool,
    pub log_level: String,
    pub log_file: Option<PathBuf>,
    /// `max_log_size` in bytes.
    #[serde(skip)]
    pub max_log_bytes: u64,
    pub log_retention_days: u32,
}

/// A whole configuration, valid.
#[derive(Clone, Debug)]
pub struct Config {
    /// The top-level sections the file has.
    pub given: Vec<String>,
    /// Paths the file sets that no command acts on yet.
    pub unused: Vec<String>,
    pub service_monitoring: ServiceMonitoring,
    pub error_handling: ErrorHandling,
    /// `health_checks`: services, ports, http, processes, in file order, then resources.
    pub checks: Vec<HealthEntry>,
    /// `performance_monitoring`'s resource measures, if any.
    pub performance: Option<HealthEntry>,
    /// Whether `performance_monitoring` asks for response times (the ports' and URLs').
    pub response_time: bool,
    /// `performance_monitoring.metrics`, empty when it is disabled.
    pub metrics: Vec<String>,
    pub recoveries: Vec<RecoveryEntry>,
    pub backups: Vec<BackupEntry>,
    /// `alerting` and `notifications`, compiled by the alert engine (secrets read).
    pub alerts: AlertConfig,
    /// `maintenance_windows`, compiled by the maintenance engine.
    pub maintenance: MaintenanceConfig,
    /// Every section as validated, defaults filled in: what the sections without a typed
    /// form yet (security, reliability_metrics, ...) are read from.
    pub sections: Map<String, Value>,
}

/// Why a configuration cannot be used: every problem, each naming its path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub problems: Vec<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.problems.len();
        write!(
            f,
            "{}: {n} problem{}",
            self.file.display(),
            if n == 1 { "" } else { "s" }
        )?;
        for p in &self.problems {
            write!(f, "\n  {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Reads, checks the ownership of, and validates the file at `path`.
/// The largest configuration file read (a config is a few KiB; a huge one is a mistake).
pub const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

pub fn load(path: &Path, env: &Env) -> Result<Config, ConfigError> {
    let fail = |problems: Vec<String>| ConfigError {
        file: path.to_path_buf(),
        problems,
    };
    // The file that is judged is the file that is read: one descriptor, opened without
    // blocking on a FIFO or device, its owner and mode taken from that descriptor.
    let file = small_file::open(std::fs::OpenOptions::new().read(true), path, Follow::Yes)
        .map_err(|e| fail(vec![format!("cannot read the file: {e}")]))?;
    let meta = file
        .metadata()
        .map_err(|e| fail(vec![format!("cannot read the file: {e}")]))?;
    let mut problems = Problems(ownership(meta.mode(), meta.uid(), nix::unistd::geteuid().as_raw()));
    if meta.len() > MAX_CONFIG_BYTES {
        problems.0.push(format!(
            "refused: the file holds {} bytes, more than a configuration's {MAX_CONFIG_BYTES}",
            meta.len()
        ));
        return Err(fail(problems.0));
    }
    let mut text = String::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| fail(vec![format!("cannot read the file: {e}")]))?;
    match parse(&text, env) {
        Ok(config) if problems.is_empty() => Ok(config),
        Ok(_) => Err(fail(problems.0)),
        Err(more) => {
            problems.0.extend(more.0);
            Err(fail(problems.0))
        }
    }
}

/// Whether a file with `mode`, owned by `uid`, may configure a monitor running as `euid`:
/// nobody but root and the monitor's own user may be able to change what it runs.
pub fn ownership(mode: u32, uid: u32, euid: u32) -> Vec<String> {
    let mut problems = Vec::new();
    if mode & 0o002 != 0 {
        problems.push(format!(
            "refused: the file is world-writable (mode {:04o}); run chmod o-w on it",
            mode & 0o7777
        ));
    }
    if uid != 0 && uid != euid {
        problems.push(format!(
            "refused: the file is owned by uid {uid}, neither root nor the monitor's user (uid {euid})"
        ));
    }
    problems
}

/// Validates the text of a configuration file.
pub fn parse(text: &str, env: &Env) -> Result<Config, Problems> {
    let mut problems = Problems::default();
    let doc: Value = match serde_yaml_ng::from_str(text) {
        Ok(v) => v,
        Err(e) => {
            problems.push("", format!("not valid YAML: {e}"));
            return Err(problems);
        }
    };
    let root = match doc {
        Value::Object(map) => map,
        Value::Null => Map::new(),
        other => {
            problems.push(
                "",
                format!("the file must be a mapping of sections, not {}", type_name(&other)),
            );
            return Err(problems);
        }
    };
    Builder {
        root: &root,
        env,
        problems,
        unused: Vec::new(),
    }
    .build()
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// The schedule keys every check entry takes.
fn schedule_options() -> Vec<Opt> {
    vec![
        Opt::float("interval").range(1.0, 86_400.0),
        Opt::int("consecutive_failures").range(1.0, 1000.0),
        Opt::int("consecutive_successes").range(1.0, 1000.0),
    ]
}

/// One kind's entry schema in `reliability_checks::spec()`.
fn check_entry(kind: &str) -> Spec {
    reliability_checks::spec()
        .get(kind)
        .and_then(|o| o.options.clone())
        .map(|s| *s)
        .unwrap_or_default()
}

/// `spec` with more options.
fn with(mut spec: Spec, extra: Vec<Opt>) -> Spec {
    spec.options.extend(extra);
    spec
}

/// The option `name` of `spec`, to adjust (an engine's schema, read by a monitor that
/// also speaks the seed's names).
fn opt_mut<'a>(spec: &'a mut Spec, name: &str) -> Option<&'a mut Opt> {
    spec.options.iter_mut().find(|o| o.name == name)
}

/// `service_recovery`'s schema, with `service` implied by the entry and the seed's
/// strategy names accepted beside the engine's.
fn recovery_entry() -> Spec {
    let mut spec = reliability_recovery::spec();
    if let Some(service) = opt_mut(&mut spec, "service") {
        service.required = false;
    }
    if let Some(strategy) = opt_mut(&mut spec, "escalation")
        .and_then(|o| o.options.as_deref_mut())
        .and_then(|s| opt_mut(s, "strategy"))
    {
        strategy.choices = SEED_STRATEGIES
            .iter()
            .map(|(seed, _)| *seed)
            .chain(Strategy::NAMES)
            .map(Value::from)
            .collect();
    }
    spec
}

/// The names `checks` and `verification_types` accept: the seed's and the engine's.
fn verification_names() -> Vec<&'static str> {
    SEED_VERIFICATIONS
        .iter()
        .map(|(seed, _)| *seed)
        .chain(reliability_backup::CHECKS.iter().copied())
        .collect()
}

/// `backup_verify`'s schema, with `checks` defaulting to the section's
/// `verification_types`, plus a name and the schedule.
fn backup_entry() -> Spec {
    let mut spec = reliability_backup::verify_spec();
    if let Some(checks) = opt_mut(&mut spec, "checks") {
        checks.default = None;
        checks.choices = verification_names().into_iter().map(Value::from).collect();
    }
    let mut extra = vec![Opt::str("name")];
    extra.extend(schedule_options());
    with(spec, extra)
}

/// The schema of a section (entries of lists are validated one by one, see [`Builder`]).
fn section(name: &str) -> Spec {
    let url = |name| Opt::str(name);
    match name {
        "service_monitoring" => Spec::new(vec![
            Opt::bool("enabled").default(true),
            Opt::float("check_interval").default(30.0).range(1.0, 86_400.0),
            Opt::int("consecutive_failures").default(3).range(1.0, 1000.0),
            Opt::int("consecutive_successes").default(1).range(1.0, 1000.0),
            Opt::int("max_concurrent_checks").default(8).range(1.0, 256.0),
            Opt::path("state_dir").default(state::DEFAULT_DIR),
            Opt::dict("listen").options(
                Spec::new(vec![
                    Opt::str("address").default("127.0.0.1"),
                    // 0: any free port (the daemon logs the one it got).
                    Opt::int("port").default(9189).range(0.0, 65535.0),
                    Opt::str("bearer_token").no_log(),
                    Opt::path("bearer_token_file"),
                ])
                .mutually_exclusive(&["bearer_token", "bearer_token_file"]),
            ),
        ]),
        "health_checks" => Spec::new(vec![
            Opt::bool("enabled").default(true),
            Opt::list("services", Kind::Dict),
            Opt::list("ports", Kind::Dict),
            Opt::list("http", Kind::Dict),
            Opt::list("processes", Kind::Dict),
            Opt::dict("resources"),
        ]),
        "circuit_breaker" => {
            let mut options = vec![Opt::bool("enabled").default(true)];
            options.extend(breaker::options());
            Spec::new(options)
        }
        "performance_monitoring" => Spec::new(vec![
            Opt::bool("enabled").default(true),
            Opt::list("metrics", Kind::Str)
                .choices(&METRICS.map(|(m, _)| m))
                .default(json!(METRICS.map(|(m, _)| m))),
        ]),
        "thresholds" => Spec::new(
            THRESHOLDS
                .iter()
                .map(|(k, d)| Opt::float(k).default(*d).range(0.0, 100.0))
                .collect(),
        ),
        "error_handling" => Spec::new(vec![
            Opt::bool("enabled").default(true),
            Opt::str("log_level")
                .choices(&["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"])
                .default("INFO"),
            Opt::path("log_file"),
            Opt::str("max_log_size").default("100MB"),
            Opt::int("log_retention_days").default(30).range(0.0, 36_500.0),
        ]),
        // The alert engine's and the maintenance engine's own schemas, never copied.
        "alerting" => reliability_alerts::config::alerting_spec(),
        "notifications" => reliability_alerts::config::notifications_spec(),
        "maintenance_windows" => maintenance::spec(),
        "security" => Spec::new(vec![
            Opt::bool("encrypt_logs").default(false),
            Opt::bool("secure_communications").default(true),
            Opt::bool("audit_trail").default(true),
            Opt::bool("access_control").default(true),
        ]),
        "reliability_metrics" => Spec::new(vec![
            Opt::bool("track_uptime").default(true),
            Opt::bool("track_mttr").default(true),
            Opt::bool("track_mtbf").default(true),
            Opt::bool("track_availability").default(true),
            Opt::float("sla_target").default(99.9).range(0.0, 100.0),
        ]),
        "backup_verification" => Spec::new(vec![
            Opt::bool("enabled").default(true),
            Opt::list("verification_types", Kind::Str)
                .choices(&verification_names())
                .default(json!(["file_integrity"])),
            Opt::list("backups", Kind::Dict),
        ]),
        "container_support" => Spec::new(vec![
            Opt::bool("enabled").default(false),
            Opt::str("orchestrator")
                .choices(&["docker", "kubernetes", "podman"])
                .default("docker"),
            Opt::str("health_check_endpoint").default("/health"),
            Opt::str("readiness_probe_endpoint").default("/ready"),
            Opt::str("liveness_probe_endpoint").default("/alive"),
        ]),
        "service_mesh" => Spec::new(vec![
            Opt::bool("enabled").default(false),
            Opt::str("type")
                .choices(&["istio", "linkerd", "consul"])
                .default("istio"),
            Opt::str("metrics_endpoint").default("/metrics"),
            Opt::bool("tracing_enabled").default(false),
        ]),
        "monitoring_integration" => {
            let integration = |name: &'static str, extra: Opt| {
                Opt::dict(name).options(Spec::new(vec![
                    Opt::bool("enabled").default(false),
                    url("endpoint"),
                    extra,
                ]))
            };
            Spec::new(vec![
                integration("prometheus", url("push_gateway")),
                integration("grafana", Opt::str("dashboard_id")),
                integration("elasticsearch", Opt::str("index_pattern")),
            ])
        }
        _ => Spec::default(),
    }
}

/// The walk over one file: each piece validated, compiled and recorded.
struct Builder<'a> {
    root: &'a Map<String, Value>,
    env: &'a Env,
    problems: Problems,
    unused: Vec<String>,
}

fn str_of<'v>(map: &'v Map<String, Value>, key: &str) -> Option<&'v str> {
    map.get(key).and_then(Value::as_str)
}

fn u32_of(map: &Map<String, Value>, key: &str) -> Option<u32> {
    map.get(key).and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok())
}

/// `map` without `keys` and without the keys whose value is null (not given).
fn without(map: &Map<String, Value>, keys: &[&str]) -> Map<String, Value> {
    map.iter()
        .filter(|(k, v)| !keys.contains(&k.as_str()) && !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

impl Builder<'_> {
    fn build(mut self) -> Result<Config, Problems> {
        // Top level: the section names, then each section on its own.
        let names = Spec::new(SECTIONS.iter().map(|s| Opt::raw(s)).collect());
        self.problems.validate(&names, self.root, "", self.env);
        let mut sections = Map::new();
        for name in SECTIONS {
            let raw = match self.root.get(name) {
                None | Some(Value::Null) => Map::new(),
                Some(Value::Object(map)) => map.clone(),
                Some(other) => {
                    self.problems
                        .push(name, format!("{} is not a mapping of options", show(other)));
                    continue;
                }
            };
            if let Some(valid) = self.problems.validate(&section(name), &raw, name, self.env) {
                sections.insert(name.to_string(), Value::Object(valid));
            }
        }
        let given: Vec<String> = SECTIONS
            .iter()
            .filter(|s| self.root.contains_key(**s))
            .map(|s| s.to_string())
            .collect();
        for name in &given {
            if !USED.contains(&name.as_str()) {
                self.unused.push(name.clone());
            }
        }
        // A section that failed its schema is read with its defaults, so the pieces that
        // depend on it (the checks on `thresholds`) are still validated and reported.
        let env = self.env;
        let section = |name: &str| {
            sections
                .get(name)
                .and_then(Value::as_object)
                .cloned()
                .or_else(|| self::section(name).validate(&Map::new(), env).ok())
        };

        let monitoring = section("service_monitoring").map(|s| self.service_monitoring(&s));
        let thresholds = section("thresholds");
        if let Some(t) = &thresholds {
            self.thresholds(t);
        }
        let error_handling = section("error_handling").and_then(|s| self.error_handling(&s));
        // Alerts: only once both sections passed their schemas (their problems are
        // already listed); the alert engine then judges what a schema cannot (addresses,
        // URLs, secret files and variables), each problem at its path.
        let alerts = match (sections.get("alerting"), sections.get("notifications")) {
            (Some(_), Some(_)) => self.alerts(),
            _ => None,
        };
        let maintenance = section("maintenance_windows").and_then(|s| self.maintenance(&s));
        for (name, keys) in [
            (
                "container_support",
                &[
                    "health_check_endpoint",
                    "readiness_probe_endpoint",
                    "liveness_probe_endpoint",
                ][..],
            ),
            ("service_mesh", &["metrics_endpoint"][..]),
        ] {
            if let Some(s) = section(name) {
                for key in keys {
                    if let Some(v) = str_of(&s, key).filter(|v| !v.starts_with('/')) {
                        self.problems.push(
                            &format!("{name}.{key}"),
                            format!("'{v}' must be a path starting with '/'"),
                        );
                    }
                }
            }
        }
        if let Some(s) = section("monitoring_integration") {
            for (tool, sub) in &s {
                for key in ["endpoint", "push_gateway"] {
                    if let Some(v) = sub.get(key).and_then(Value::as_str) {
                        self.url(&format!("monitoring_integration.{tool}.{key}"), v);
                    }
                }
            }
        }

        let (Some(monitoring), Some(error_handling), Some(thresholds)) = (monitoring, error_handling, thresholds)
        else {
            return Err(self.problems);
        };
        let health = section("health_checks").unwrap_or_default();
        let enabled = |s: &Map<String, Value>| s.get("enabled").and_then(Value::as_bool).unwrap_or(true);
        let mut checks = Vec::new();
        let mut recoveries = Vec::new();
        if enabled(&health) {
            self.health_checks(&health, &thresholds, &monitoring, &mut checks, &mut recoveries);
        }
        let performance_section = section("performance_monitoring").unwrap_or_default();
        let (performance, response_time) = if enabled(&performance_section) {
            self.performance(&performance_section, &thresholds, &monitoring)
        } else {
            (None, false)
        };
        let metrics: Vec<String> = match enabled(&performance_section) {
            true => performance_section
                .get("metrics")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            false => Vec::new(),
        };
        let backup_section = section("backup_verification").unwrap_or_default();
        let backups = if enabled(&backup_section) {
            self.backups(&backup_section, &monitoring)
        } else {
            Vec::new()
        };

        let (Some(alerts), Some(maintenance)) = (alerts, maintenance) else {
            return Err(self.problems);
        };
        if !self.problems.is_empty() {
            return Err(self.problems);
        }
        Ok(Config {
            alerts,
            maintenance,
            given,
            unused: self.unused,
            service_monitoring: monitoring,
            error_handling,
            checks,
            performance,
            response_time,
            metrics,
            recoveries,
            backups,
            sections,
        })
    }

    fn service_monitoring(&mut self, s: &Map<String, Value>) -> ServiceMonitoring {
        let listen = s.get("listen").and_then(Value::as_object).cloned().unwrap_or_default();
        let address_text = str_of(&listen, "address").unwrap_or("127.0.0.1");
        let address = address_text.parse::<IpAddr>().unwrap_or_else(|_| {
            self.problems.push(
                "service_monitoring.listen.address",
                format!("'{address_text}' is not an IP address"),
            );
            IpAddr::from([127, 0, 0, 1])
        });
        let bearer_token_file = str_of(&listen, "bearer_token_file").map(PathBuf::from);
        if let Some(p) = bearer_token_file.as_ref().filter(|p| !p.is_absolute()) {
            self.problems.push(
                "service_monitoring.listen.bearer_token_file",
                format!("'{}' is not an absolute path", p.display()),
            );
        }
        if str_of(&listen, "bearer_token").is_some_and(str::is_empty) {
            self.problems
                .push("service_monitoring.listen.bearer_token", "the token is empty");
        }
        ServiceMonitoring {
            enabled: s.get("enabled").and_then(Value::as_bool).unwrap_or(true),
            max_concurrent_checks: s
                .get("max_concurrent_checks")
                .and_then(Value::as_u64)
                .and_then(|n| usize::try_from(n).ok())
                .unwrap_or(8),
            defaults: Schedule {
                interval: Duration::from_secs_f64(s.get("check_interval").and_then(Value::as_f64).unwrap_or(30.0)),
                consecutive_failures: u32_of(s, "consecutive_failures").unwrap_or(3),
                consecutive_successes: u32_of(s, "consecutive_successes").unwrap_or(1),
            },
            state_dir: PathBuf::from(str_of(s, "state_dir").unwrap_or(state::DEFAULT_DIR)),
            listen: Listen {
                address,
                port: listen
                    .get("port")
                    .and_then(Value::as_u64)
                    .and_then(|p| u16::try_from(p).ok())
                    .unwrap_or(9189),
                bearer_token: str_of(&listen, "bearer_token").map(str::to_string),
                bearer_token_file,
            },
        }
    }

    fn thresholds(&mut self, t: &Map<String, Value>) {
        for pair in THRESHOLDS.chunks(2) {
            let (w, c) = (pair[0].0, pair[1].0);
            if let (Some(wv), Some(cv)) = (t.get(w).and_then(Value::as_f64), t.get(c).and_then(Value::as_f64)) {
                if wv > cv {
                    self.problems.push(
                        &format!("thresholds.{w}"),
                        format!("{wv} is above {c} ({cv}); a warning level must not exceed the critical one"),
                    );
                }
            }
        }
    }

    fn error_handling(&mut self, s: &Map<String, Value>) -> Option<ErrorHandling> {
        let mut e: ErrorHandling = serde_json::from_value(Value::Object(without(s, &["max_log_size"]))).ok()?;
        let size = str_of(s, "max_log_size").unwrap_or("100MB");
        match parse_size(size) {
            Ok(bytes) => e.max_log_bytes = bytes,
            Err(err) => self.problems.push("error_handling.max_log_size", err),
        }
        Some(e)
    }

    fn alerts(&mut self) -> Option<AlertConfig> {
        let process = Context::process();
        let ctx = Context {
            env: self.env.clone(),
            var: process.var,
            hostname: process.hostname,
        };
        match AlertConfig::from_root(self.root, &ctx) {
            Ok(a) => Some(a),
            Err(e) => {
                for p in &e.0 {
                    self.problems.push(&p.path, &p.message);
                }
                None
            }
        }
    }

    /// `maintenance_windows`, validated by its schema, compiled by the maintenance engine
    /// (times, days, zones from the host's tz database, instants).
    fn maintenance(&mut self, valid: &Map<String, Value>) -> Option<MaintenanceConfig> {
        match maintenance::compile(valid, &SystemZones) {
            Ok(m) => Some(m),
            Err(lines) => {
                self.problems.engine(&lines, "", "maintenance_windows");
                None
            }
        }
    }

    fn url(&mut self, path: &str, url: &str) {
        let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"));
        if !rest.is_some_and(|r| !r.is_empty() && !r.starts_with('/')) {
            self.problems.push(path, format!("'{url}' is not an http or https URL"));
        }
    }

    /// The schedule of an entry: its own keys, else the section's defaults.
    fn schedule(&mut self, entry: &Map<String, Value>, monitoring: &ServiceMonitoring) -> Schedule {
        let d = monitoring.defaults;
        Schedule {
            interval: entry
                .get("interval")
                .and_then(Value::as_f64)
                .map_or(d.interval, Duration::from_secs_f64),
            consecutive_failures: u32_of(entry, "consecutive_failures").unwrap_or(d.consecutive_failures),
            consecutive_successes: u32_of(entry, "consecutive_successes").unwrap_or(d.consecutive_successes),
        }
    }

    /// A health request of one check: `{kind: [entry]}` (or `{resources: entry}`),
    /// compiled by the engine, its problems rooted at `path`.
    fn health(&mut self, kind: &str, entry: Map<String, Value>, path: &str) -> Option<HealthRequest> {
        let (input, engine_path) = if kind == "resources" {
            (json!({ kind: entry }), "resources".to_string())
        } else {
            (json!({ kind: [entry] }), format!("{kind}[0]"))
        };
        let input = input.as_object().cloned().unwrap_or_default();
        match HealthRequest::parse(&input, self.env) {
            Ok(r) => Some(r),
            Err(e) => {
                self.problems.engine(&e.problems, &engine_path, path);
                None
            }
        }
    }

    fn health_checks(
        &mut self,
        section: &Map<String, Value>,
        thresholds: &Map<String, Value>,
        monitoring: &ServiceMonitoring,
        checks: &mut Vec<HealthEntry>,
        recoveries: &mut Vec<RecoveryEntry>,
    ) {
        let services_spec = with(
            check_entry("services"),
            [
                vec![
                    Opt::str("type").choices(&["systemd"]).default("systemd"),
                    Opt::int("port").range(1.0, 65535.0),
                    Opt::str("process"),
                    // HTTP checks of the service itself: a hung process whose port still
                    // accepts is failing for its recovery, which a port check cannot see.
                    Opt::list("http", Kind::Dict).options(check_entry("http")),
                    Opt::dict("recovery"),
                ],
                schedule_options(),
            ]
            .concat(),
        );
        let items = |key: &str| -> Vec<Map<String, Value>> {
            section
                .get(key)
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|v| v.as_object().cloned().unwrap_or_default())
                .collect()
        };
        let mut derived = Vec::new();
        for (i, raw) in items("services").iter().enumerate() {
            let path = format!("health_checks.services[{i}]");
            let Some(v) = self.problems.validate(&services_spec, raw, &path, self.env) else {
                continue;
            };
            let schedule = self.schedule(&v, monitoring);
            let name = str_of(&v, "name").unwrap_or_default().to_string();
            let unit = without(
                &v,
                &[&["type", "port", "process", "http", "recovery"][..], &SCHEDULE_KEYS[..]].concat(),
            );
            if let Some(request) = self.health("services", unit, &path) {
                checks.push(HealthEntry {
                    service: Some(name.clone()),
                    path: path.clone(),
                    kind: CheckKind::Services,
                    schedule,
                    request: Arc::new(request),
                });
            }
            // The seed's `port` and `process` of a service: a port and a process check.
            let mut health = Map::new();
            if let Some(port) = v.get("port").and_then(Value::as_u64) {
                let port_check = json!({"name": format!("{name}:{port}"), "port": port});
                health.insert("ports".into(), json!([port_check]));
                let entry = port_check.as_object().cloned().unwrap_or_default();
                if let Some(request) = self.health("ports", entry, &format!("{path}.port")) {
                    derived.push(HealthEntry {
                        service: Some(name.clone()),
                        path: format!("{path}.port"),
                        kind: CheckKind::Ports,
                        schedule,
                        request: Arc::new(request),
                    });
                }
            }
            if let Some(process) = str_of(&v, "process") {
                let process_check = json!({ "name": process });
                health.insert("processes".into(), json!([process_check]));
                let entry = process_check.as_object().cloned().unwrap_or_default();
                if let Some(request) = self.health("processes", entry, &format!("{path}.process")) {
                    derived.push(HealthEntry {
                        service: Some(name.clone()),
                        path: format!("{path}.process"),
                        kind: CheckKind::Processes,
                        schedule,
                        request: Arc::new(request),
                    });
                }
            }
            // Its `http` entries: HTTP checks of the service, in its recovery's health too.
            let http: Vec<Value> = raw.get("http").and_then(Value::as_array).cloned().unwrap_or_default();
            for (j, check) in http.iter().enumerate() {
                let entry = check.as_object().cloned().unwrap_or_default();
                let check_path = format!("{path}.http[{j}]");
                if let Some(request) = self.health("http", entry, &check_path) {
                    derived.push(HealthEntry {
                        service: Some(name.clone()),
                        path: check_path,
                        kind: CheckKind::Http,
                        schedule,
                        request: Arc::new(request),
                    });
                }
            }
            if !http.is_empty() {
                health.insert("http".into(), Value::Array(http));
            }
            if let Some(recovery) = raw.get("recovery").and_then(Value::as_object) {
                let path = format!("{path}.recovery");
                if let Some(request) = self.recovery(recovery, &name, health, &path, monitoring) {
                    recoveries.push(RecoveryEntry { path, request });
                }
            }
        }
        checks.append(&mut derived);
        for (key, kind) in [
            ("ports", CheckKind::Ports),
            ("http", CheckKind::Http),
            ("processes", CheckKind::Processes),
        ] {
            let spec = with(check_entry(key), schedule_options());
            for (i, raw) in items(key).iter().enumerate() {
                let path = format!("health_checks.{key}[{i}]");
                let Some(v) = self.problems.validate(&spec, raw, &path, self.env) else {
                    continue;
                };
                let schedule = self.schedule(&v, monitoring);
                if let Some(request) = self.health(key, without(raw, &SCHEDULE_KEYS), &path) {
                    checks.push(HealthEntry {
                        service: None,
                        path,
                        kind,
                        schedule,
                        request: Arc::new(request),
                    });
                }
            }
        }
        // Resources: `health_checks.resources`, its levels defaulting to `thresholds`.
        let path = "health_checks.resources";
        let raw = section
            .get("resources")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        let spec = with(check_entry("resources"), schedule_options());
        if let Some(v) = self.problems.validate(&spec, &raw, path, self.env) {
            let schedule = self.schedule(&v, monitoring);
            let mut entry = without(&raw, &SCHEDULE_KEYS);
            for (key, _) in THRESHOLDS {
                if let (false, Some(level)) = (entry.contains_key(key), thresholds.get(key)) {
                    entry.insert(key.into(), level.clone());
                }
            }
            if let Some(request) = self.health("resources", entry, path) {
                checks.push(HealthEntry {
                    service: None,
                    path: path.into(),
                    kind: CheckKind::Resources,
                    schedule,
                    request: Arc::new(request),
                });
            }
        }
    }

    fn recovery(
        &mut self,
        raw: &Map<String, Value>,
        name: &str,
        health: Map<String, Value>,
        path: &str,
        monitoring: &ServiceMonitoring,
    ) -> Option<RecoveryRequest> {
        self.problems.validate(&recovery_entry(), raw, path, self.env)?;
        let mut input = without(raw, &[]);
        input.entry("service").or_insert_with(|| json!(name));
        if !health.is_empty() {
            input.entry("health").or_insert(Value::Object(health));
        }
        if let Some(Value::Array(steps)) = input.get_mut("escalation") {
            for step in steps.iter_mut().filter_map(Value::as_object_mut) {
                if let Some(Value::String(s)) = step.get_mut("strategy") {
                    if let Some((_, engine)) = SEED_STRATEGIES.iter().find(|(seed, _)| seed == s) {
                        *s = engine.to_string();
                    }
                }
            }
        }
        // The global `circuit_breaker` is every entry's breaker unless it says otherwise.
        if let Some(global) = self.root.get("circuit_breaker").and_then(Value::as_object) {
            let own = input
                .get("breaker")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default();
            let mut merged = without(global, &[]);
            merged.extend(without(&own, &[]));
            input.insert("breaker".into(), Value::Object(merged));
        }
        if self.given_in("service_monitoring", "state_dir") {
            input
                .entry("state_dir")
                .or_insert_with(|| json!(monitoring.state_dir.display().to_string()));
        }
        match RecoveryRequest::parse(&input, self.env) {
            Ok(r) => Some(r),
            Err(e) => {
                self.problems.engine(&e.problems, "", path);
                None
            }
        }
    }

    fn given_in(&self, section: &str, key: &str) -> bool {
        self.root
            .get(section)
            .and_then(|s| s.get(key))
            .is_some_and(|v| !v.is_null())
    }

    fn performance(
        &mut self,
        section: &Map<String, Value>,
        thresholds: &Map<String, Value>,
        monitoring: &ServiceMonitoring,
    ) -> (Option<HealthEntry>, bool) {
        let metrics: Vec<&str> = section
            .get("metrics")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let include: Vec<&str> = METRICS
            .iter()
            .filter(|(m, _)| metrics.contains(m))
            .filter_map(|(_, measure)| *measure)
            .collect();
        let response_time = metrics.contains(&"response_time");
        if include.is_empty() {
            return (None, response_time);
        }
        let mut entry = Map::new();
        entry.insert("include".into(), json!(include));
        for (key, _) in THRESHOLDS {
            if let Some(level) = thresholds.get(key) {
                entry.insert(key.into(), level.clone());
            }
        }
        let path = "performance_monitoring";
        let request = self.health("resources", entry, path).map(|request| HealthEntry {
            service: None,
            path: path.into(),
            kind: CheckKind::Resources,
            schedule: monitoring.defaults,
            request: Arc::new(request),
        });
        (request, response_time)
    }

    fn backups(&mut self, section: &Map<String, Value>, monitoring: &ServiceMonitoring) -> Vec<BackupEntry> {
        let default_checks = section.get("verification_types").cloned().unwrap_or(json!([]));
        let spec = backup_entry();
        let mut out = Vec::new();
        for (i, item) in section
            .get("backups")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let path = format!("backup_verification.backups[{i}]");
            let raw = item.as_object().cloned().unwrap_or_default();
            let Some(v) = self.problems.validate(&spec, &raw, &path, self.env) else {
                continue;
            };
            let schedule = self.schedule(&v, monitoring);
            let name = str_of(&v, "name").map_or_else(|| format!("backups[{i}]"), str::to_string);
            let mut input = without(&raw, &[&["name"][..], &SCHEDULE_KEYS[..]].concat());
            let checks: Vec<Value> = input
                .get("checks")
                .unwrap_or(&default_checks)
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|c| {
                    let engine = SEED_VERIFICATIONS
                        .iter()
                        .find(|(seed, _)| *seed == c)
                        .map_or(c, |(_, e)| e);
                    json!(engine)
                })
                .collect();
            input.insert("checks".into(), Value::Array(checks));
            if self.given_in("service_monitoring", "state_dir") {
                input
                    .entry("state_dir")
                    .or_insert_with(|| json!(monitoring.state_dir.display().to_string()));
            }
            if let Some(params) = self
                .problems
                .validate(&reliability_backup::verify_spec(), &input, &path, self.env)
            {
                out.push(BackupEntry {
                    path,
                    name,
                    schedule,
                    params,
                });
            }
        }
        out
    }
}

/// A value in a message: strings quoted, the rest as JSON.
fn show(v: &Value) -> String {
    match v {
        Value::String(s) => format!("'{s}'"),
        other => other.to_string(),
    }
}

impl Config {
    /// The health checks of `kinds`, merged into one request for one run.
    pub fn request(&self, entries: &[&HealthEntry]) -> HealthRequest {
        let mut merged = HealthRequest {
            services: Vec::new(),
            ports: Vec::new(),
            http: Vec::new(),
            processes: Vec::new(),
            resources: None,
            fail_on: reliability_core::check::FailOn::Critical,
            sample_interval: Duration::from_millis(500),
            // The daemon keeps the host's CPU reading where module runs find it.
            state_dir: Some(self.service_monitoring.state_dir.clone()),
            keep_state: true,
        };
        for e in entries {
            let r = &e.request;
            merged.services.extend(r.services.iter().cloned());
            merged.ports.extend(r.ports.iter().cloned());
            merged.http.extend(r.http.iter().cloned());
            merged.processes.extend(r.processes.iter().cloned());
            if merged.resources.is_none() {
                merged.resources.clone_from(&r.resources);
            }
            merged.sample_interval = merged.sample_interval.max(r.sample_interval);
        }
        merged
    }

    /// How many entries of `kind` the file declares.
    pub fn count(&self, kind: CheckKind) -> usize {
        self.checks.iter().filter(|c| c.kind == kind).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ownership_rules() {
        assert!(ownership(0o100644, 0, 1000).is_empty());
        assert!(ownership(0o100600, 1000, 1000).is_empty());
        assert_eq!(
            ownership(0o100666, 0, 0),
            ["refused: the file is world-writable (mode 0666); run chmod o-w on it"]
        );
        assert_eq!(
            ownership(0o100644, 1001, 1000),
            ["refused: the file is owned by uid 1001, neither root nor the monitor's user (uid 1000)"]
        );
    }

    fn problems(text: &str) -> Vec<String> {
        match parse(text, &Env::default()) {
            Ok(_) => Vec::new(),
            Err(p) => p.0,
        }
    }

    #[test]
    fn empty_file_is_valid_with_defaults() {
        let c = parse("", &Env::default()).expect("valid");
        assert_eq!(c.service_monitoring.defaults.consecutive_failures, 3);
        assert_eq!(c.service_monitoring.listen.port, 9189);
        assert_eq!(c.count(CheckKind::Resources), 1);
        assert!(c.given.is_empty() && c.unused.is_empty());
    }

    #[test]
    fn not_a_mapping() {
        assert_eq!(
            problems("- a\n"),
            ["the file must be a mapping of sections, not a list"]
        );
        assert_eq!(
            problems("health_checks: yes\n"),
            ["health_checks: 'yes' is not a mapping of options"]
        );
        assert!(problems("a: [\n")[0].starts_with("not valid YAML: "));
    }

    #[test]
    fn seed_names_translate() {
        let c = parse(
            "health_checks:\n  services:\n    - name: nginx\n      recovery:\n        escalation:\n          - {failures: '1-2', strategy: restart_service}\n          - {failures: '3-', strategy: manual_intervention_required}\n",
            &Env::default(),
        )
        .expect("valid");
        let ladder = &c.recoveries[0].request.policy.ladder;
        assert_eq!(ladder.steps.len(), 2);
        assert_eq!(ladder.steps[0].strategy, Strategy::Restart);
        assert_eq!(ladder.steps[1].strategy, Strategy::Manual);
    }

    #[test]
    fn service_http_checks_belong_to_the_service_and_its_recovery() {
        let c = parse(
            "health_checks:\n  services:\n    - name: web\n      port: 8080\n      http:\n        - {url: 'http://127.0.0.1:8080/', timeout: 1}\n      recovery: {}\n",
            &Env::default(),
        )
        .expect("valid");
        let http: Vec<&HealthEntry> = c.checks.iter().filter(|e| e.kind == CheckKind::Http).collect();
        assert_eq!(http.len(), 1);
        assert_eq!(http[0].path, "health_checks.services[0].http[0]");
        assert_eq!(http[0].service.as_deref(), Some("web"));
        let health = &c.recoveries[0].request.health;
        assert_eq!(health.http.len(), 1);
        assert_eq!(health.ports.len(), 1);
        assert_eq!(
            problems("health_checks:\n  services:\n    - name: web\n      http:\n        - {url: 'htp://x'}\n"),
            ["health_checks.services[0].http[0].url: 'htp://x' is not an http or https URL"]
        );
    }
}
