//! `service_recovery`: finds whether a systemd service is failing and, if it is, takes the
//! escalation ladder's next step, guarded by a circuit breaker and a rate limit.
//!
//! The engine is `reliability-recovery` (the same the monitor daemon runs); this file turns
//! the module arguments into a request and the report into a result. A run that found the
//! service failing and could not recover it (a failed step, a refusal, manual
//! intervention) fails the task; the result still carries the incident and the figures.

use ansible_module::{Failure, Module, Response};
use reliability_core::spec::{Env, Spec};
use reliability_os::clock::now_ms;
use reliability_recovery::{RecoveryRequest, RunContext};
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
    crate::respond(module, &report)
}
