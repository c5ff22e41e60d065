//! The self-healing engine of hx.reliability: one [`spec`], one [`run`], used by the
//! `service_recovery` module (and, later, the monitor daemon and the CLI).
//!
//! A run is:
//!
//! 1. Under the service's lock (`reliability_os::state`, one file per service), look: the
//!    unit and the optional `health` spec (the health_check schema, run by
//!    `reliability-checks`) decide whether the service is failing.
//! 2. Decide ([`reliability_core::recovery`]): healthy (perhaps resetting the failure count
//!    after the stable period), refused by the rate limit, or the ladder's step for the new
//!    failure count.
//! 3. Unless the step is manual, ask the circuit breaker (the same persisted breaker the
//!    `circuit_breaker` module feeds): while it is open nothing is attempted.
//! 4. Take the step ([`strategy`]): restart, reload (config test first), failover,
//!    scale resources; then wait, within the timeout, until the service (or its backup) is
//!    healthy again.
//! 5. Record: the outcome into the breaker, the new state, one incident line in the
//!    incident log, from which the per-service figures (MTTR, MTBF, availability, success
//!    and escalation rates) are computed.
//!
//! Decisions:
//! - The whole run holds the service's lock: twenty runs at once on one failing service
//!   take turns, and a run that waited finds the service the previous one recovered; no
//!   update of the failure count, the breaker or the log is lost.
//! - Runs refused by the breaker or the rate limit still count as failures: the next
//!   allowed attempt is a rung higher, which is what a service that keeps failing needs.
//! - A step whose strategy is not configured (failover without units or command) is not
//!   guessed at: the run fails, saying what is missing, and counts as a failed attempt.
//! - Check mode reads the state, looks at the service and says exactly which step it would
//!   take and why; it writes nothing and touches nothing.
//!
//! Architecture invariant: this crate prints nothing and knows nothing of Ansible.

mod scale;
pub mod strategy;

use reliability_checks::HealthRequest;
use reliability_core::breaker::{self, Breaker, Decision, Outcome};
use reliability_core::recovery::{self, Incident, Ladder, Plan, Policy, RateLimit, RecoveryState, Stats, Strategy};
use reliability_core::spec::{Env, Kind, Opt, Spec};
use reliability_core::{timestamp, unit_name};
use reliability_os::clock::now_ms;
use reliability_os::small_file::{self, Follow};
use reliability_os::state::{self, StateError, Store};
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The options of a recovery request, declared once.
pub fn spec() -> Spec {
    Spec::new(vec![
        Opt::str("service").required().aliases(&["name", "unit"]),
        // health_check's request, checked by `health_request`; its secrets (HTTP headers)
        // are declared there and masked here through `embeds`.
        Opt::dict("health").embeds(reliability_checks::spec()),
        Opt::list("escalation", Kind::Dict).options(Spec::new(vec![
            Opt::str("failures").required(),
            Opt::str("strategy").required().choices(&Strategy::NAMES),
        ])),
        Opt::float("timeout").default(60.0).range(0.0, 3600.0),
        Opt::dict("reload").options(Spec::new(vec![
            Opt::list("config_test", Kind::Str),
            Opt::str("command")
                .choices(&["reload", "reload-or-restart"])
                .default("reload-or-restart"),
        ])),
        Opt::dict("failover").options(Spec::new(vec![
            Opt::list("units", Kind::Str).default(json!([])),
            Opt::list("command", Kind::Str),
            Opt::bool("stop_primary").default(false),
            Opt::dict("health").embeds(reliability_checks::spec()),
        ])),
        Opt::dict("scale_resources").options(Spec::new(vec![
            Opt::list("properties", Kind::Str)
                .choices(&scale::PROPERTIES)
                .default(json!(["MemoryMax"])),
            Opt::float("factor").default(1.5).range(1.0, 100.0),
            Opt::dict("ceiling"),
            Opt::bool("restart").default(true),
        ])),
        Opt::str("runbook_url"),
        Opt::dict("rate_limit").options(
            Spec::new(vec![
                Opt::int("max_recoveries").range(1.0, 1_000_000.0),
                Opt::float("window").range(1.0, 31_536_000.0),
            ])
            .required_together(&["max_recoveries", "window"]),
        ),
        Opt::float("stable_period").default(600.0).range(0.0, 31_536_000.0),
        Opt::dict("breaker").options({
            let mut options = vec![Opt::bool("enabled").default(true), Opt::str("name")];
            options.extend(breaker::options());
            Spec::new(options)
        }),
        Opt::path("state_dir").default(state::DEFAULT_DIR),
        Opt::path("incident_log"),
        Opt::float("stats_window")
            .default(2_592_000.0)
            .range(1.0, 315_360_000.0),
        Opt::float("lock_timeout").default(600.0).range(0.0, 86_400.0),
    ])
}

/// How the failover step works.
#[derive(Clone, Debug, Default)]
pub struct Failover {
    pub units: Vec<String>,
    pub command: Option<Vec<String>>,
    pub stop_primary: bool,
    /// What decides that the backup serves: its units running and this spec passing.
    pub health: Option<HealthRequest>,
}

/// How the scale_resources step works.
#[derive(Clone, Debug)]
pub struct Scale {
    pub properties: Vec<String>,
    pub factor: f64,
    /// Per property, the highest value a step may set, as systemd reads it.
    pub ceiling: Vec<(String, String)>,
    pub restart: bool,
}

/// A checked request.
#[derive(Clone, Debug)]
pub struct RecoveryRequest {
    pub service: String,
    /// The unit and the user's health spec, as one health request.
    pub health: HealthRequest,
    pub policy: Policy,
    pub timeout: Duration,
    pub config_test: Option<Vec<String>>,
    pub reload_command: String,
    pub failover: Option<Failover>,
    pub scale: Option<Scale>,
    pub runbook_url: Option<String>,
    pub breaker: Option<(String, breaker::Config)>,
    pub state_dir: PathBuf,
    pub incident_log: PathBuf,
    pub stats_window_ms: u64,
    pub lock_timeout: Duration,
}

/// Why a request cannot run: every problem, each naming its option.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestError {
    pub problems: Vec<String>,
}

impl std::fmt::Display for RequestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.problems.join("; "))
    }
}

impl std::error::Error for RequestError {}

fn obj(v: Option<&Value>) -> Option<&Map<String, Value>> {
    v.and_then(Value::as_object)
}

fn strings(v: Option<&Value>) -> Option<Vec<String>> {
    v.and_then(Value::as_array)
        .map(|a| a.iter().filter_map(|s| s.as_str().map(str::to_string)).collect())
}

/// A health spec (health_check's schema) plus, first, the units that must be running.
fn health_request(
    units: &[String],
    spec: Option<&Map<String, Value>>,
    path: &str,
    env: &Env,
    problems: &mut Vec<String>,
) -> Option<HealthRequest> {
    let mut input = spec.cloned().unwrap_or_default();
    let mut services: Vec<Value> = input
        .get("services")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    for unit in units.iter().rev() {
        let named = |s: &Value| {
            s.get("name")
                .and_then(Value::as_str)
                .and_then(|n| unit_name::validate(n).ok())
                .is_some_and(|n| n.as_str() == unit)
        };
        if !services.iter().any(named) {
            services.insert(0, json!({"name": unit}));
        }
    }
    input.insert("services".into(), Value::Array(services));
    match HealthRequest::parse(&input, env) {
        Ok(r) => Some(r),
        Err(e) => {
            problems.extend(e.problems.iter().map(|p| format!("{path}.{p}")));
            None
        }
    }
}

impl RecoveryRequest {
    /// Reads options that [`spec`] validated and checks what it cannot: the unit name,
    /// the ladder, the health specs, the ceilings.
    pub fn from_params(params: &Map<String, Value>, env: &Env) -> Result<RecoveryRequest, RequestError> {
        let mut problems = Vec::new();
        let raw = params.get("service").and_then(Value::as_str).unwrap_or_default();
        let service = match unit_name::validate(raw) {
            Ok(u) => u.as_str().to_string(),
            Err(e) => {
                problems.push(format!("service: {e}"));
                raw.to_string()
            }
        };
        let health = health_request(
            std::slice::from_ref(&service),
            obj(params.get("health")),
            "health",
            env,
            &mut problems,
        );

        let ladder = match params.get("escalation").and_then(Value::as_array) {
            None => Ladder::seed(),
            Some(steps) => {
                let items: Vec<(String, String)> = steps
                    .iter()
                    .map(|s| {
                        let field = |k| s.get(k).and_then(Value::as_str).unwrap_or_default().to_string();
                        (field("failures"), field("strategy"))
                    })
                    .collect();
                Ladder::new(&items).unwrap_or_else(|e| {
                    problems.extend(e.into_iter().map(|p| format!("escalation: {p}")));
                    Ladder::seed()
                })
            }
        };
        let seconds = |key: &str| params.get(key).and_then(Value::as_f64);
        // Absent dicts arrive filled with their sub-defaults: a rate limit is on when its
        // numbers are given.
        let rate_limit = obj(params.get("rate_limit")).and_then(|r| {
            Some(RateLimit {
                max: u32::try_from(r.get("max_recoveries")?.as_u64()?).unwrap_or(u32::MAX),
                window_ms: breaker::ms(r.get("window")?.as_f64()?),
            })
        });
        let stable_period_ms = seconds("stable_period").map(breaker::ms).filter(|ms| *ms > 0);

        let reload = obj(params.get("reload"));
        let config_test = reload.and_then(|r| strings(r.get("config_test")));
        if config_test.as_ref().is_some_and(|c| c.is_empty() || c[0].is_empty()) {
            problems.push("reload.config_test: the command is empty".into());
        }
        let reload_command = reload
            .and_then(|r| r.get("command"))
            .and_then(Value::as_str)
            .unwrap_or("reload-or-restart")
            .to_string();

        let failover = obj(params.get("failover")).and_then(|f| {
            let mut units = Vec::new();
            for (i, u) in strings(f.get("units")).unwrap_or_default().iter().enumerate() {
                match unit_name::validate(u) {
                    Ok(n) => units.push(n.as_str().to_string()),
                    Err(e) => problems.push(format!("failover.units[{i}]: {e}")),
                }
            }
            let command = strings(f.get("command"));
            if command.as_ref().is_some_and(|c| c.is_empty() || c[0].is_empty()) {
                problems.push("failover.command: the command is empty".into());
            }
            if units.is_empty() && command.is_none() {
                // Not configured (the dict arrives with its defaults when absent).
                return None;
            }
            let health = if units.is_empty() && obj(f.get("health")).is_none() {
                None
            } else {
                health_request(&units, obj(f.get("health")), "failover.health", env, &mut problems)
            };
            Some(Failover {
                units,
                command,
                stop_primary: f.get("stop_primary").and_then(Value::as_bool).unwrap_or(false),
                health,
            })
        });

        let scale = obj(params.get("scale_resources")).and_then(|s| {
            // Not configured without a ceiling (the dict arrives with its defaults when absent).
            obj(s.get("ceiling"))?;
            let properties = strings(s.get("properties")).unwrap_or_else(|| vec!["MemoryMax".into()]);
            let mut ceiling = Vec::new();
            for (key, value) in obj(s.get("ceiling")).into_iter().flatten() {
                let text = match value {
                    Value::String(t) => t.clone(),
                    Value::Number(n) => n.to_string(),
                    other => other.to_string(),
                };
                match scale::parse_ceiling(key, &text) {
                    Ok(()) => ceiling.push((key.clone(), text)),
                    Err(e) => problems.push(format!("scale_resources.ceiling.{key}: {e}")),
                }
            }
            for p in &properties {
                if !ceiling.iter().any(|(k, _)| k == p) {
                    problems.push(format!(
                        "scale_resources.ceiling: no ceiling for {p}; every scaled property needs one"
                    ));
                }
            }
            Some(Scale {
                properties,
                factor: s.get("factor").and_then(Value::as_f64).unwrap_or(1.5),
                ceiling,
                restart: s.get("restart").and_then(Value::as_bool).unwrap_or(true),
            })
        });
        // A ladder the user wrote must not name a strategy it gives no means to.
        if params.get("escalation").is_some_and(|v| !v.is_null()) {
            let uses = |s: Strategy| ladder.steps.iter().any(|step| step.strategy == s);
            if uses(Strategy::Failover) && failover.is_none() {
                problems.push("escalation uses failover, which needs failover.units or failover.command".into());
            }
            if uses(Strategy::ScaleResources) && scale.is_none() {
                problems.push("escalation uses scale_resources, which needs scale_resources.ceiling".into());
            }
        }

        let breaker = match obj(params.get("breaker")) {
            Some(b) if b.get("enabled").and_then(Value::as_bool) == Some(false) => None,
            b => {
                let empty = Map::new();
                let b = b.unwrap_or(&empty);
                let name = b
                    .get("name")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .unwrap_or_else(|| format!("service_recovery-{}", state_name(&service)));
                if let Err(e) = state::validate_name(&name) {
                    problems.push(format!("breaker.name: {e}"));
                }
                // Options left out of the dict take the seed's values.
                let config = breaker::config_from_params(b, "breaker.").unwrap_or_else(|e| {
                    problems.extend(e);
                    breaker::Config::default()
                });
                Some((name, config))
            }
        };
        let state_dir = PathBuf::from(
            params
                .get("state_dir")
                .and_then(Value::as_str)
                .unwrap_or(state::DEFAULT_DIR),
        );
        if !state_dir.is_absolute() {
            problems.push(format!("state_dir: '{}' is not an absolute path", state_dir.display()));
        }
        let incident_log = params
            .get("incident_log")
            .and_then(Value::as_str)
            .map_or_else(|| state_dir.join("incidents.jsonl"), PathBuf::from);

        match (problems.is_empty(), health) {
            (true, Some(health)) => Ok(RecoveryRequest {
                service,
                health,
                policy: Policy {
                    ladder,
                    rate_limit,
                    stable_period_ms,
                },
                timeout: Duration::from_secs_f64(seconds("timeout").unwrap_or(60.0)),
                config_test,
                reload_command,
                failover,
                scale,
                runbook_url: params.get("runbook_url").and_then(Value::as_str).map(str::to_string),
                breaker,
                state_dir,
                incident_log,
                stats_window_ms: seconds("stats_window").map_or(2_592_000_000, breaker::ms),
                lock_timeout: Duration::from_secs_f64(seconds("lock_timeout").unwrap_or(600.0)),
            }),
            _ => Err(RequestError { problems }),
        }
    }

    /// Validates `input` against [`spec`], then reads it (the daemon's and the CLI's way in).
    pub fn parse(input: &Map<String, Value>, env: &Env) -> Result<RecoveryRequest, RequestError> {
        let params = spec().validate(input, env).map_err(|e| RequestError {
            problems: e.errors.iter().map(ToString::to_string).collect(),
        })?;
        RecoveryRequest::from_params(&params, env)
    }
}

/// A unit name as a state-file name: systemd's `\` escapes become `_`.
fn state_name(unit: &str) -> String {
    unit.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.@:-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// What the service looked like.
#[derive(Clone, Debug, Serialize)]
pub struct Look {
    pub healthy: bool,
    /// The health report's one line.
    pub summary: String,
    /// The checks that were not ok: `name: status: message`.
    pub problems: Vec<String>,
}

/// Runs a health request once.
pub fn look(request: &HealthRequest) -> Look {
    let report = reliability_checks::run(request);
    let problems = report
        .checks
        .iter()
        .filter(|c| c.status != reliability_core::check::Status::Ok)
        .map(|c| format!("{}: {}: {}", c.name, c.status, c.message))
        .collect();
    Look {
        healthy: !report.failed,
        summary: report.msg,
        problems,
    }
}

/// What the step did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StepOutcome {
    /// The service (or its backup) is healthy again.
    pub recovered: bool,
    /// An action was started (false when nothing could be tried).
    pub attempted: bool,
    /// One line: what was done and what came of it.
    pub detail: String,
    /// Every command run, with its output.
    pub commands: Vec<Value>,
    /// Properties changed by scale_resources: name -> [before, after].
    pub properties: Map<String, Value>,
    /// Milliseconds from the start of the action to healthy again.
    pub took_ms: Option<u64>,
}

/// The outcome of a run.
#[derive(Clone, Debug, Serialize)]
pub struct RecoveryReport {
    pub service: String,
    pub failing: bool,
    /// `healthy`, `recovered`, `failed`, `refused` or `manual`.
    pub outcome: String,
    pub level: Option<usize>,
    pub strategy: Option<Strategy>,
    /// Whether the recovery worked (`None`: nothing was attempted).
    pub success: Option<bool>,
    /// From the run finding the failure to the service healthy again.
    pub time_to_recover_ms: Option<u64>,
    pub failure_count: FailureCounts,
    pub breaker: Option<BreakerChange>,
    pub health: Look,
    pub step: Option<StepOutcome>,
    pub incident: Option<Incident>,
    pub history: Vec<Incident>,
    pub stats: Option<Stats>,
    pub changed: bool,
    pub failed: bool,
    pub msg: String,
    pub warnings: Vec<String>,
}

impl RecoveryReport {
    /// What a run found before deciding: nothing decided or done yet.
    fn new(service: &str, health: Look, failure_count: u32) -> RecoveryReport {
        RecoveryReport {
            service: service.to_string(),
            failing: !health.healthy,
            outcome: "healthy".into(),
            level: None,
            strategy: None,
            success: None,
            time_to_recover_ms: None,
            failure_count: FailureCounts {
                before: failure_count,
                after: failure_count,
                reset: false,
            },
            breaker: None,
            health,
            step: None,
            incident: None,
            history: Vec::new(),
            stats: None,
            changed: false,
            failed: false,
            msg: String::new(),
            warnings: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct FailureCounts {
    pub before: u32,
    pub after: u32,
    pub reset: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct BreakerChange {
    pub name: String,
    pub before: String,
    pub after: String,
    pub allowed: bool,
    pub time_until_half_open: Option<f64>,
}

/// Why a run could not be carried out at all (as opposed to a failing recovery).
#[derive(Debug)]
pub enum RunError {
    State(StateError),
    Other(String),
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::State(e) => e.fmt(f),
            RunError::Other(s) => f.write_str(s),
        }
    }
}

impl From<StateError> for RunError {
    fn from(e: StateError) -> RunError {
        RunError::State(e)
    }
}

/// Runs the request: look, decide, act, record. In check mode only the first two.
pub fn run(request: &RecoveryRequest, check_mode: bool) -> Result<RecoveryReport, RunError> {
    // Without systemd a unit's state is unknown, which a health spec does not count as a
    // failure: say so instead of calling the service healthy.
    if !reliability_os::systemd::systemd_running() {
        return Err(RunError::Other(format!(
            "systemd is not running on this host (no /run/systemd/system): cannot look after {}",
            request.service
        )));
    }
    let store = Store::new(&request.state_dir).with_lock_timeout(request.lock_timeout);
    let name = state_name(&request.service);
    let mut warnings = Vec::new();
    if check_mode {
        let stored = match store.load::<RecoveryState>(&name) {
            Ok(s) => s.unwrap_or_default(),
            Err(e @ StateError::Corrupt { .. }) => {
                warnings.push(format!("{e}; it would be moved aside and the count started afresh"));
                RecoveryState::default()
            }
            Err(e) => return Err(e.into()),
        };
        let mut report = predict(request, &store, stored)?;
        report.warnings.extend(warnings);
        return Ok(report);
    }
    ensure_dir(&request.state_dir)?;
    let attempt = || {
        let mut report = None;
        store.update(&name, |current: Option<RecoveryState>| {
            let mut state = current.unwrap_or_default();
            let r = act(request, &store, &mut state)?;
            report = Some(r);
            Ok::<_, RunError>(state)
        })?;
        report.ok_or_else(|| RunError::Other("internal error: the run left no report".into()))
    };
    let mut report = match attempt() {
        Err(RunError::State(e @ StateError::Corrupt { moved_to: Some(_), .. })) => {
            warnings.push(format!("{e}; the failure count starts afresh"));
            attempt()?
        }
        other => other?,
    };
    report.warnings.extend(warnings);
    Ok(report)
}

/// The incident log's directory, made as the state store makes its own (0700).
fn ensure_dir(dir: &Path) -> Result<(), RunError> {
    state::ensure_dir(dir).map_err(|e| RunError::Other(e.to_string()))
}

/// Check mode: what a run would do, from what is stored and what the service looks like.
fn predict(request: &RecoveryRequest, store: &Store, state: RecoveryState) -> Result<RecoveryReport, RunError> {
    let now = now_ms();
    let health = look(&request.health);
    let plan = state.plan(health.healthy, now, &request.policy);
    let breaker = match &request.breaker {
        Some((bname, config)) => {
            let stored = store.load::<Breaker>(bname).ok().flatten();
            let mut b = stored.unwrap_or_else(|| Breaker::new(now));
            let before = b.state.as_str().to_string();
            let allowed = b.allow(now, config) == Decision::Allowed;
            Some(BreakerChange {
                name: bname.clone(),
                before: before.clone(),
                after: before,
                allowed,
                time_until_half_open: b.time_until_half_open(now, config).map(|ms| ms as f64 / 1000.0),
            })
        }
        None => None,
    };
    let mut after = state.clone();
    after.apply(&plan, false, false, now);
    let (failing, outcome, level, strategy, msg) = match &plan {
        Plan::Healthy { reset } => (
            false,
            "healthy",
            None,
            None,
            format!(
                "{} is healthy{}",
                request.service,
                if *reset { "; its failure count would be reset (stable period over)" } else { "" }
            ),
        ),
        Plan::RateLimited {
            failure_count,
            attempts_in_window,
            retry_after_ms,
        } => (
            true,
            "refused",
            None,
            None,
            format!(
                "{} is failing ({}); would refuse: rate limit ({attempts_in_window} recoveries in the window), next in {}; failure {failure_count}",
                request.service,
                health.summary,
                timestamp::seconds(*retry_after_ms)
            ),
        ),
        Plan::Act {
            failure_count,
            level,
            strategy,
            ..
        } => {
            let refused = breaker.as_ref().is_some_and(|b| !b.allowed) && *strategy != Strategy::Manual;
            (
                true,
                if refused { "refused" } else { "would_act" },
                Some(*level),
                Some(*strategy),
                if refused {
                    format!(
                        "{} is failing ({}); would refuse: circuit breaker is {}",
                        request.service,
                        health.summary,
                        breaker.as_ref().map_or("", |b| b.before.as_str())
                    )
                } else {
                    format!(
                        "{} is failing ({}); would take step {level} ({strategy}) for failure {failure_count}",
                        request.service, health.summary
                    )
                },
            )
        }
    };
    let changed = failing || after != state;
    let mut report = RecoveryReport::new(&request.service, health, state.failure_count);
    report.failing = failing;
    report.outcome = outcome.into();
    report.level = level;
    report.strategy = strategy;
    report.failure_count.after = after.failure_count;
    report.failure_count.reset = matches!(plan, Plan::Healthy { reset: true } | Plan::Act { reset: true, .. });
    report.breaker = breaker;
    report.changed = changed;
    report.msg = msg;
    Ok(report)
}

/// The breaker under its own lock: apply `f` and persist.
fn with_breaker<T>(
    store: &Store,
    name: &str,
    f: impl FnOnce(&mut Breaker, u64) -> T,
) -> Result<(String, Breaker, T), RunError> {
    let mut out = None;
    let mut before = String::new();
    let apply = |current: Option<Breaker>| {
        let now = now_ms();
        let mut b = current.unwrap_or_else(|| Breaker::new(now));
        before = b.state.as_str().to_string();
        out = Some(f(&mut b, now));
        Ok::<_, StateError>(b)
    };
    let after = match store.update(name, apply) {
        Err(StateError::Corrupt { moved_to: Some(_), .. }) => {
            return Err(RunError::Other(format!(
                "the state file of breaker '{name}' was unusable and has been moved aside; run again"
            )))
        }
        other => other?,
    };
    let out = out.ok_or_else(|| RunError::Other("internal error: breaker update did not run".into()))?;
    Ok((before, after, out))
}

/// The run under the service's lock.
fn act(request: &RecoveryRequest, store: &Store, state: &mut RecoveryState) -> Result<RecoveryReport, RunError> {
    let health = look(&request.health);
    // Recovery time runs from the moment the run knows the service is failing.
    let detected = now_ms();
    let started = Instant::now();
    let plan = state.plan(health.healthy, detected, &request.policy);
    let mut report = RecoveryReport::new(&request.service, health, state.failure_count);
    report.failure_count.reset = matches!(plan, Plan::Healthy { reset: true } | Plan::Act { reset: true, .. });
    let reason = report.health.problems.join("; ");
    let (level, strategy, failure_count) = match plan {
        Plan::Healthy { reset } => {
            state.apply(&plan, false, false, detected);
            report.failure_count.after = state.failure_count;
            report.changed = reset;
            report.msg = format!(
                "{} is healthy{}",
                request.service,
                if reset {
                    "; failure count reset after the stable period"
                } else {
                    ""
                }
            );
            return Ok(report);
        }
        Plan::RateLimited {
            failure_count,
            attempts_in_window,
            retry_after_ms,
        } => {
            state.apply(&plan, false, false, detected);
            let detail = format!(
                "rate limit: {attempts_in_window} recoveries in the last {}; next allowed in {}",
                timestamp::seconds(request.policy.rate_limit.map_or(0, |r| r.window_ms)),
                timestamp::seconds(retry_after_ms)
            );
            let msg = format!(
                "{} is failing ({reason}); recovery refused by the {detail}",
                request.service
            );
            let end = Ending::new(failure_count, 0, Strategy::Manual, "refused", detail, msg);
            return finish(request, state, report, detected, &reason, end);
        }
        Plan::Act {
            failure_count,
            level,
            strategy,
            ..
        } => (level, strategy, failure_count),
    };
    report.level = Some(level);
    report.strategy = Some(strategy);
    if strategy == Strategy::Manual {
        state.apply(&plan, false, false, detected);
        let detail = match &request.runbook_url {
            Some(url) => format!("manual intervention required: see {url}"),
            None => "manual intervention required".to_string(),
        };
        let msg = format!(
            "{}: {detail} (failure {failure_count}, step {level}: {reason})",
            request.service
        );
        let end = Ending::new(failure_count, level, strategy, "manual", detail, msg);
        return finish(request, state, report, detected, &reason, end);
    }

    // The breaker guards every action.
    if let Some((bname, config)) = &request.breaker {
        let (before, after, (decision, until)) = with_breaker(store, bname, |b, now| {
            (b.allow(now, config), b.time_until_half_open(now, config))
        })?;
        let allowed = decision == Decision::Allowed;
        report.breaker = Some(BreakerChange {
            name: bname.clone(),
            before,
            after: after.state.as_str().to_string(),
            allowed,
            time_until_half_open: until.map(|ms| ms as f64 / 1000.0),
        });
        if !allowed {
            state.apply(&plan, false, false, detected);
            let why = match (decision, until) {
                (_, Some(ms)) => format!(
                    "circuit breaker '{bname}' is {}: recovery refused; half-open in {}",
                    after.state,
                    timestamp::seconds(ms)
                ),
                (Decision::Rejected { retry_after_ms }, None) => format!(
                    "circuit breaker '{bname}' is {}: every trial is taken; retry in {}",
                    after.state,
                    timestamp::seconds(retry_after_ms)
                ),
                (Decision::Allowed, None) => format!("circuit breaker '{bname}' refused"),
            };
            let msg = format!("{} is failing ({reason}); {why}", request.service);
            let end = Ending::new(failure_count, level, strategy, "refused", why, msg);
            return finish(request, state, report, detected, &reason, end);
        }
    }

    let step = strategy::take(strategy, request);
    let recovered_at = step.recovered.then(now_ms);
    // The failure and the attempt date from `detected`; the recovery from when it was verified.
    state.apply(&plan, step.attempted, step.recovered, detected);
    if recovered_at.is_some() {
        state.last_recovered_at = recovered_at;
    }
    report.time_to_recover_ms = step
        .recovered
        .then(|| started.elapsed().as_millis().try_into().unwrap_or(u64::MAX));
    report.success = Some(step.recovered);
    if let Some((bname, config)) = &request.breaker {
        let took = started.elapsed().as_millis().try_into().unwrap_or(u64::MAX);
        let outcome = if step.recovered {
            Outcome::success()
        } else {
            Outcome::failure()
        }
        .took(took);
        let (_, after, _) = with_breaker(store, bname, |b, now| b.record(outcome, now, config))?;
        if let Some(change) = report.breaker.as_mut() {
            change.after = after.state.as_str().to_string();
            change.time_until_half_open = after
                .time_until_half_open(now_ms(), config)
                .map(|ms| ms as f64 / 1000.0);
        }
    }
    let outcome = if step.recovered { "recovered" } else { "failed" };
    let msg = if step.recovered {
        format!(
            "{} was failing ({reason}); step {level} ({strategy}) recovered it in {}",
            request.service,
            timestamp::seconds(report.time_to_recover_ms.unwrap_or(0))
        )
    } else {
        format!(
            "{} is failing ({reason}); step {level} ({strategy}) did not recover it: {}",
            request.service, step.detail
        )
    };
    let end = Ending {
        failure_count,
        level,
        strategy,
        outcome,
        detail: step.detail.clone(),
        recovered_at,
        step: Some(step),
        msg,
    };
    finish(request, state, report, detected, &reason, end)
}

/// How a run that found the service failing ended: what goes into its incident and report.
struct Ending {
    failure_count: u32,
    level: usize,
    strategy: Strategy,
    /// `recovered`, `failed`, `refused` or `manual`.
    outcome: &'static str,
    detail: String,
    recovered_at: Option<u64>,
    step: Option<StepOutcome>,
    msg: String,
}

impl Ending {
    /// An ending with no recovery and no step taken.
    fn new(
        failure_count: u32,
        level: usize,
        strategy: Strategy,
        outcome: &'static str,
        detail: String,
        msg: String,
    ) -> Ending {
        Ending {
            failure_count,
            level,
            strategy,
            outcome,
            detail,
            recovered_at: None,
            step: None,
            msg,
        }
    }
}

/// Appends the incident (found failing at `detected`, for `reason`), computes the figures,
/// completes the report.
fn finish(
    request: &RecoveryRequest,
    state: &RecoveryState,
    mut report: RecoveryReport,
    detected: u64,
    reason: &str,
    end: Ending,
) -> Result<RecoveryReport, RunError> {
    let incident = Incident {
        service: request.service.clone(),
        detected_at: detected,
        recovered_at: end.recovered_at,
        failure_count: end.failure_count,
        level: end.level,
        strategy: end.strategy,
        outcome: end.outcome.into(),
        reason: reason.into(),
        detail: end.detail,
    };
    if let Some(dir) = request.incident_log.parent() {
        ensure_dir(dir)?;
    }
    state::append_jsonl(&request.incident_log, &incident)?;
    let (history, bad_lines) = read_incidents(&request.incident_log, &request.service)?;
    if bad_lines > 0 {
        report.warnings.push(format!(
            "{bad_lines} line(s) of '{}' are not incidents and were skipped",
            request.incident_log.display()
        ));
    }
    let now = now_ms();
    report.stats = Some(recovery::stats(&history, now, request.stats_window_ms));
    report.history = history.iter().rev().take(10).cloned().collect();
    report.failure_count.after = state.failure_count;
    report.incident = Some(incident);
    report.failed = end.outcome != "recovered";
    report.changed = true;
    report.outcome = end.outcome.into();
    report.step = end.step;
    report.msg = end.msg;
    Ok(report)
}

/// How much of the end of the incident log is read: tens of thousands of incidents, while
/// the figures look at a window of days.
pub const MAX_INCIDENT_LOG_TAIL: u64 = 16 << 20;

/// The incidents of `service` in the log (oldest first; of a log over
/// [`MAX_INCIDENT_LOG_TAIL`], from its end only), and how many lines were unreadable (a torn
/// last line of a killed writer, or lines that are not ours). A link, FIFO or device in
/// place of the log is an error, never read.
pub fn read_incidents(log: &Path, service: &str) -> Result<(Vec<Incident>, usize), RunError> {
    let (bytes, skipped) = match small_file::read_tail(log, MAX_INCIDENT_LOG_TAIL, Follow::No) {
        Ok(read) => read,
        Err(e) if e.is_missing() => return Ok((Vec::new(), 0)),
        Err(e) => return Err(RunError::Other(e.to_string())),
    };
    // A tail starts inside a line: the first whole line comes after the first newline.
    let whole = if skipped > 0 {
        bytes
            .iter()
            .position(|&b| b == b'\n')
            .map_or(&bytes[..0], |i| &bytes[i + 1..])
    } else {
        &bytes[..]
    };
    let text = String::from_utf8_lossy(whole);
    let mut bad = 0;
    let mut out = Vec::new();
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<Incident>(line) {
            Ok(i) if i.service == service => out.push(i),
            Ok(_) => {}
            Err(_) => bad += 1,
        }
    }
    Ok((out, bad))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A log of 2 GB (sparse) is read from its end only, fast; a FIFO is refused at once.
    #[test]
    fn incidents_come_from_the_end_of_a_huge_log_and_never_from_a_fifo() {
        use std::io::Write;
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("incidents.jsonl");
        let file = std::fs::File::create(&log).unwrap();
        file.set_len(2 << 30).unwrap();
        let mut file = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        let line = |n: u64| {
            format!(
                "{{\"service\":\"web\",\"detected_at\":{n},\"recovered_at\":null,\"failure_count\":1,\"level\":0,\"strategy\":\"restart\",\"outcome\":\"failed\",\"reason\":\"down\",\"detail\":\"\"}}\n"
            )
        };
        file.write_all(format!("\n{}{}", line(1), line(2)).as_bytes()).unwrap();
        let started = std::time::Instant::now();
        let (incidents, bad) = read_incidents(&log, "web").unwrap();
        assert_eq!(incidents.iter().map(|i| i.detected_at).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(bad, 0);
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );

        let fifo = dir.path().join("fifo.jsonl");
        std::process::Command::new("mkfifo").arg(&fifo).status().unwrap();
        let err = read_incidents(&fifo, "web").unwrap_err().to_string();
        assert!(err.contains("is a FIFO, not a regular file"), "{err}");
    }

    fn request(input: Value) -> Result<RecoveryRequest, RequestError> {
        let Value::Object(map) = input else { panic!() };
        RecoveryRequest::parse(&map, &Env::default())
    }

    fn problems(input: Value) -> String {
        request(input).unwrap_err().problems.join("\n")
    }

    #[test]
    fn defaults_are_the_seed() {
        let r = request(json!({"service": "nginx"})).unwrap();
        assert_eq!(r.service, "nginx.service");
        assert_eq!(r.policy.ladder, Ladder::seed());
        assert_eq!(r.policy.stable_period_ms, Some(600_000));
        let (name, config) = r.breaker.unwrap();
        assert_eq!(name, "service_recovery-nginx.service");
        assert_eq!(config, breaker::Config::default());
        assert_eq!(r.incident_log, Path::new(state::DEFAULT_DIR).join("incidents.jsonl"));
        // The unit itself is always checked.
        assert_eq!(r.health.services.len(), 1);
    }

    #[test]
    fn injection_and_bad_ladders_are_refused() {
        let p = problems(json!({"service": "nginx; reboot"}));
        assert!(p.contains("service: ") && p.contains("nginx; reboot"), "{p}");
        let p = problems(json!({"service": "a", "escalation": [
            {"failures": "1-2", "strategy": "restart"}, {"failures": "4-", "strategy": "manual"}]}));
        assert!(
            p.contains("escalation: step 2 (4-): failure count 3 has no step (a gap)"),
            "{p}"
        );
        let p = problems(json!({"service": "a", "escalation": [
            {"failures": "1-3", "strategy": "restart"}, {"failures": "2-", "strategy": "manual"}]}));
        assert!(p.contains("failure count 2 is already in step 1 (an overlap)"), "{p}");
        let p = problems(json!({"service": "a", "escalation": [{"failures": "1-", "strategy": "reboot"}]}));
        assert!(p.contains("escalation[0].strategy") && p.contains("reboot"), "{p}");
        let p = problems(json!({"service": "a", "failover": {"units": ["b; rm -rf /"]}}));
        assert!(p.contains("failover.units[0]: "), "{p}");
        let p = problems(json!({"service": "a", "escalation": [{"failures": "1-", "strategy": "failover"}]}));
        assert!(
            p.contains("escalation uses failover, which needs failover.units or failover.command"),
            "{p}"
        );
        let p = problems(json!({"service": "a", "rate_limit": {"max_recoveries": 3}}));
        assert!(p.contains("rate_limit") && p.contains("window"), "{p}");
        let p = problems(json!({"service": "a", "scale_resources": {"ceiling": {"MemoryMax": "lots"}}}));
        assert!(p.contains("scale_resources.ceiling.MemoryMax: "), "{p}");
        let p = problems(json!({"service": "a", "health": {"ports": [{"port": 70000}]}}));
        assert!(p.contains("70000"), "{p}");
        let p = problems(json!({"service": "a", "breaker": {"success_threshold": 0}}));
        assert!(p.contains("breaker.success_threshold"), "{p}");
    }
}
