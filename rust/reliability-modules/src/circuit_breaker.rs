//! `circuit_breaker`: a persisted circuit breaker that any task can query, feed or set.
//!
//! The engine is `reliability_recovery::breaker` (the one the recovery engine guards its
//! steps with, and the daemon reports); this file turns the module arguments into a
//! [`BreakerRequest`] and the report into a result. Check mode runs the command on a copy
//! of what is stored and writes nothing.

use ansible_module::{Failure, Module, Response};
use reliability_core::spec::Spec;
use reliability_os::clock::now_ms;
use reliability_recovery::breaker::{self, BreakerRequest};
use serde_json::{Map, Value};

/// The breaker schema, declared once in the engine.
pub fn spec() -> Spec {
    breaker::spec()
}

/// Reads options that [`spec`] validated and checks what it cannot (the breaker's name,
/// the thresholds), touching nothing: the run-free half of the module, for the fuzz targets.
pub fn check_options(params: &Map<String, Value>) -> Result<(), Vec<String>> {
    BreakerRequest::from_params(params).map(drop).map_err(|e| e.problems)
}

pub fn run(module: &mut Module) -> Result<Response, Failure> {
    let request = BreakerRequest::from_params(&module.params).map_err(|e| crate::invalid(module, e))?;
    let report = breaker::run(&request, &now_ms, module.check_mode())?;
    crate::respond(module, &report)
}
