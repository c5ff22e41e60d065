//! `service_recovery`: finds whether a systemd service is failing and, if it is, takes the
//! escalation ladder's next step, guarded by a circuit breaker and a rate limit.
//!
//! The engine is `reliability-recovery` (the same the monitor daemon runs); this file turns
//! the module arguments into a request and the report into a result. A run that found the
//! service failing and could not recover it (a failed step, a refusal, manual
//! intervention) fails the task; the result still carries the incident and the history.

use ansible_module::{Failure, Module, Response};
use reliability_core::spec::{Env, Spec};
use reliability_recovery::{RecoveryReport, RecoveryRequest};
use serde_json::{json, Map, Value};

/// The recovery schema, declared once in the engine.
pub fn spec() -> Spec {
    reliability_recovery::spec()
}

pub fn run(module: &mut Module) -> Result<Response, Failure> {
    let env = Env {
        home: std::env::var("HOME").ok(),
    };
    let request = RecoveryRequest::from_params(&module.params, &env).map_err(|e| {
        Failure::new(format!("invalid arguments for service_recovery: {e}")).field("problems", e.problems)
    })?;
    let report = reliability_recovery::run(&request, module.check_mode()).map_err(|e| Failure::new(e.to_string()))?;
    for w in &report.warnings {
        module.warn(w.clone());
    }
    let diff = module.diff_mode().then(|| diff(&report));
    let mut fields = match serde_json::to_value(&report) {
        Ok(Value::Object(m)) => m,
        _ => return Err(Failure::new("internal error: the report did not encode as an object")),
    };
    // The protocol's own keys.
    for key in ["failed", "msg", "changed", "warnings"] {
        fields.remove(key);
    }
    if let Some(d) = diff {
        fields.insert("diff".into(), d);
    }
    if report.failed {
        return Err(Failure {
            msg: report.msg,
            fields,
        });
    }
    Ok(Response {
        changed: report.changed,
        msg: Some(report.msg),
        fields,
    })
}

/// Failure count and breaker state, before and after.
fn diff(report: &RecoveryReport) -> Value {
    let side = |count: u32, breaker: Option<&str>| {
        let mut m = Map::new();
        m.insert("failure_count".into(), json!(count));
        if let Some(b) = breaker {
            m.insert("breaker".into(), json!(b));
        }
        Value::Object(m)
    };
    let b = report.breaker.as_ref();
    json!({
        "before": side(report.failure_count.before, b.map(|b| b.before.as_str())),
        "after": side(report.failure_count.after, b.map(|b| b.after.as_str())),
        "before_header": format!("{} (recovery state)", report.service),
        "after_header": format!("{} (recovery state)", report.service),
    })
}
