//! `service_recovery`: finds whether a systemd service is failing and, if it is, takes the
//! escalation ladder's next step, guarded by a circuit breaker and a rate limit.
//!
//! The engine is `reliability-recovery` (the same the monitor daemon runs); this file turns
//! the module arguments into a request and the report into a result. A run that found the
//! service failing and could not recover it (a failed step, a refusal, manual
//! intervention) fails the task; the result still carries the incident and the figures.
//!
//! A run that acted (took a step of the ladder, or reached manual intervention) appends
//! one audit record `service_recovery.<strategy>`: the level, the strategy and the
//! outcome. Healthy runs, refusals and check mode append nothing.

use crate::audit;
use ansible_module::{Failure, Module, Response};
use reliability_core::recovery::Strategy;
use reliability_core::spec::{Env, Spec};
use reliability_os::clock::now_ms;
use reliability_recovery::{Outcome, RecoveryRequest, RunContext};
use serde_json::json;
use std::time::Instant;

/// The recovery schema, declared once in the engine.
pub fn spec() -> Spec {
    reliability_recovery::spec()
}

pub fn run(module: &mut Module) -> Result<Response, Failure> {
    let env = Env {
        home: std::env::var("HOME").ok(),
    };
    let request = RecoveryRequest::from_params(&module.params, &env).map_err(|e| crate::invalid(module, e))?;
    let ctx = RunContext::at(now_ms(), Instant::now());
    let report =
        reliability_recovery::run(&request, &ctx, module.check_mode()).map_err(|e| Failure::new(e.to_string()))?;
    let acted = report.step.is_some() || report.outcome == Outcome::ManualIntervention;
    if acted && !module.check_mode() {
        let strategy = report.strategy.map_or("none", Strategy::as_str);
        audit::append(
            module,
            &format!("service_recovery.{strategy}"),
            &report.service,
            Some(&report.msg),
            match report.outcome {
                Outcome::Recovered | Outcome::FailedOver => audit::Outcome::Changed,
                _ => audit::Outcome::Failed,
            },
            json!({
                "level": report.level,
                "strategy": strategy,
                "outcome": report.outcome.as_str(),
                "detail": report.step.as_ref().map(|s| s.detail.as_str()),
                "attempt": report.attempt.as_ref().map(|a| a.attempt),
            }),
        )
        .map_err(|f| f.field("changed", report.changed))?;
    }
    crate::respond(module, &report)
}
