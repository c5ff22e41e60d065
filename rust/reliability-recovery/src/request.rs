//! What a recovery run is asked: the options ([`spec`], declared once) and the checked
//! request ([`RecoveryRequest`]) that the module, the daemon and the CLI build from them.

use reliability_checks::HealthRequest;
use reliability_core::breaker;
use reliability_core::recovery::{Ladder, Policy, RateLimit, Strategy};
pub use reliability_core::request::RequestError;
use reliability_core::spec::{Env, Kind, Opt, Spec};
use reliability_core::unit_name;
use reliability_os::state;
use serde_json::{json, Map, Value};
use std::path::PathBuf;
use std::time::Duration;

use crate::scale;

/// The incident log under the state directory unless `incident_log` says otherwise.
pub const INCIDENT_LOG: &str = "incidents.jsonl";

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
        Opt::float("sla_target").default(99.9).range(0.0, 100.0),
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
    /// The availability target, percent: the error budget is reported against it.
    pub sla_target: f64,
    pub lock_timeout: Duration,
}

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

        // The strategies the user's ladder names, valid or not: what it needs configured is
        // judged on what was written, never on the seed a refused ladder is replaced with.
        let mut named = Vec::new();
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
                named.extend(items.iter().filter_map(|(_, s)| Strategy::parse(s)));
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
        {
            let uses = |s: Strategy| named.contains(&s);
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
            .map_or_else(|| state_dir.join(INCIDENT_LOG), PathBuf::from);

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
                sla_target: seconds("sla_target").unwrap_or(99.9),
                lock_timeout: Duration::from_secs_f64(seconds("lock_timeout").unwrap_or(600.0)),
            }),
            _ => Err(RequestError { problems }),
        }
    }

    /// Validates `input` against [`spec`], then reads it (the daemon's and the CLI's way in).
    pub fn parse(input: &Map<String, Value>, env: &Env) -> Result<RecoveryRequest, RequestError> {
        let params = spec().validate(input, env).map_err(RequestError::from)?;
        RecoveryRequest::from_params(&params, env)
    }
}

/// A unit name as a state-file name: systemd's `\` escapes become `_`.
pub(crate) fn state_name(unit: &str) -> String {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

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
            p.contains("escalation: rung 2 (failures 4-): failure count 3 has no rung (a gap)"),
            "{p}"
        );
        let p = problems(json!({"service": "a", "escalation": [
            {"failures": "1-3", "strategy": "restart"}, {"failures": "2-", "strategy": "manual"}]}));
        assert!(p.contains("failure count 2 is already in rung 1 (an overlap)"), "{p}");
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
        // A ladder refused for its ranges names the real problem only (issue 14), yet what it
        // names still needs its means.
        let p = problems(json!({"service": "a", "escalation": [
            {"failures": "1-2", "strategy": "restart"}, {"failures": "4-", "strategy": "manual"}]}));
        assert_eq!(
            p,
            "escalation: rung 2 (failures 4-): failure count 3 has no rung (a gap)"
        );
        let p = problems(json!({"service": "a", "escalation": [
            {"failures": "1-3", "strategy": "restart"}, {"failures": "2-", "strategy": "manual"}]}));
        assert_eq!(
            p,
            "escalation: rung 2 (failures 2-): failure count 2 is already in rung 1 (an overlap)"
        );
        let p = problems(json!({"service": "a", "escalation": [
            {"failures": "1", "strategy": "failover"}, {"failures": "3-", "strategy": "manual"}]}));
        assert!(
            p.contains("(a gap)") && p.contains("escalation uses failover, which needs"),
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
