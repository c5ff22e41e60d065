//! The hx.reliability modules: each is a `spec()` (its options, declared once) and a
//! `run()` (its body), and nothing else.
//!
//! A module binary under `src/bin/` is one line that hands both to
//! [`ansible_module::main`]. Measuring and deciding happen in `reliability-os` and
//! `reliability-core`, which the monitor daemon and the CLI call too.

pub mod backup_manifest;
pub mod backup_retention;
pub mod backup_verify;
pub mod circuit_breaker;
pub mod facts;
pub mod health_check;
pub mod service_recovery;

use reliability_core::spec::{Env, Spec};
use serde_json::{Map, Value};

/// A module's option declarations.
pub type SpecFn = fn() -> Spec;

/// Every module: name and option spec. The sidecar-docs test walks this list.
pub const MODULES: &[(&str, SpecFn)] = &[
    ("reliability_facts", facts::spec),
    ("health_check", health_check::spec),
    ("backup_manifest", backup_manifest::spec),
    ("backup_verify", backup_verify::spec),
    ("backup_retention", backup_retention::spec),
    ("circuit_breaker", circuit_breaker::spec),
    ("service_recovery", service_recovery::spec),
];

/// Reads options that `name`'s [`Spec`] already validated into the module's request, as
/// its `run()` would, and checks what the spec cannot, without opening, writing or running
/// anything: the run-free half of every module. The fuzz targets feed it arbitrary JSON.
/// Options that only a run can judge (a manifest's content, a path that must exist) are
/// left to the run.
pub fn check_options(name: &str, params: &Map<String, Value>, env: &Env) -> Result<(), String> {
    let strs = |key: &str| -> Vec<String> {
        params
            .get(key)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    };
    match name {
        "reliability_facts" => Ok(()),
        "health_check" => reliability_checks::HealthRequest::from_params(params)
            .map(drop)
            .map_err(|e| e.to_string()),
        "service_recovery" => reliability_recovery::RecoveryRequest::from_params(params, env)
            .map(drop)
            .map_err(|e| e.to_string()),
        "backup_verify" => reliability_backup::validate(params).map_err(|e| e.to_string()),
        "circuit_breaker" => circuit_breaker::check_options(params).map_err(|p| p.join("; ")),
        "backup_manifest" => reliability_os::hashing::check_globs(&reliability_os::hashing::WalkOptions {
            include: strs("include"),
            exclude: strs("exclude"),
            ..Default::default()
        }),
        "backup_retention" => {
            let pattern = params.get("pattern").and_then(Value::as_str).unwrap_or_default();
            reliability_os::prune::name_glob(pattern).map(drop)?;
            match params.get("good").and_then(Value::as_str) {
                Some(set) => reliability_os::state::validate_name(set).map_err(|e| format!("good: {e}")),
                None => Ok(()),
            }
        }
        other => Err(format!("unknown module '{other}'")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Validates `args` with the module's spec, then checks them without running.
    fn check(name: &str, args: Value) -> Result<(), String> {
        let spec = MODULES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, s)| s())
            .ok_or_else(|| format!("no module {name}"))?;
        let env = Env::default();
        let Value::Object(args) = args else {
            panic!("args must be an object")
        };
        let params = spec.validate(&args, &env).map_err(|e| e.to_string())?;
        check_options(name, &params, &env)
    }

    #[test]
    fn check_options_names_what_only_the_request_can_judge() {
        let bad = [
            ("circuit_breaker", json!({"name": "../escape"}), "name"),
            (
                "backup_retention",
                json!({"path": "/b", "pattern": "a/b", "keep_last": 2}),
                "pattern",
            ),
            (
                "backup_manifest",
                json!({"path": "/b", "dest": "/m", "include": ["a[" ]}),
                "include",
            ),
            (
                "backup_verify",
                json!({"checks": ["completeness"], "completeness": {"path": "/b", "max_age": "soon"}}),
                "max_age",
            ),
            (
                "backup_verify",
                json!({"checks": ["integrity"], "manifest": "/m",
                       "postgresql": {"dump": "/d", "queries": [{"sql": "select 1", "matches": "("}]}}),
                "postgresql.queries[0].matches",
            ),
            ("health_check", json!({"services": [{"name": "bad name!"}]}), "bad name"),
            (
                "service_recovery",
                json!({"service": "nginx", "escalation": [{"failures": "1", "strategy": "explode"}]}),
                "explode",
            ),
        ];
        for (module, args, named) in bad {
            let err = check(module, args).expect_err(module);
            assert!(err.contains(named), "{module}: {err}");
        }
    }

    #[test]
    fn check_options_accepts_good_requests_without_touching_anything() {
        let good = [
            (
                "circuit_breaker",
                json!({"name": "api", "state_dir": "/nonexistent/state"}),
            ),
            (
                "backup_retention",
                json!({"path": "/nonexistent", "pattern": "db-*", "keep_last": 2}),
            ),
            (
                "backup_manifest",
                json!({"path": "/nonexistent", "dest": "/m", "include": ["**/*.sql"]}),
            ),
            (
                "backup_verify",
                json!({"checks": ["integrity"], "manifest": "/nonexistent/SHA256SUMS"}),
            ),
            ("health_check", json!({"services": [{"name": "nginx.service"}]})),
            ("reliability_facts", json!({})),
        ];
        for (module, args) in good {
            assert_eq!(check(module, args), Ok(()), "{module}");
        }
    }
}
