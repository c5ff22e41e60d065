//! `circuit_breaker`: a persisted circuit breaker that any task can query, feed or set.
//!
//! The engine is `reliability_recovery::breaker` (the one the recovery engine guards its
//! steps with, and the daemon reports); this file turns the module arguments into a
//! [`BreakerRequest`] and the report into a result. Check mode runs the command on a copy
//! of what is stored and writes nothing.
//!
//! Each change of a breaker's state by a task (a recorded result that opens or closes it,
//! a forced state, a reset) appends one audit record `circuit_breaker.<state>` (or
//! `circuit_breaker.reset`); a recorded result that leaves the state as it was appends
//! nothing, and check mode never appends.

use crate::audit;
use ansible_module::{Failure, Module, Response};
use reliability_core::breaker::{Command, State};
use reliability_core::spec::Spec;
use reliability_os::audit::Outcome;
use reliability_os::clock::now_ms;
use reliability_recovery::breaker::{self, BreakerRequest};
use serde_json::{json, Map, Value};

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
    let state_changed = report.previous_state.unwrap_or(State::Closed) != report.state;
    let set = matches!(request.command, Command::Reset | Command::Force(_));
    if report.changed && !module.check_mode() && (state_changed || set) {
        let action = match request.command {
            Command::Reset => "circuit_breaker.reset".to_string(),
            _ => format!("circuit_breaker.{}", report.state.as_str()),
        };
        audit::append(
            module,
            &action,
            &request.name,
            Some(&report.msg),
            Outcome::Changed,
            json!({
                "previous_state": report.previous_state.map(State::as_str),
                "state": report.state.as_str(),
                "consecutive_failures": report.counters.consecutive_failures,
            }),
        )
        .map_err(|f| f.field("changed", true))?;
    }
    crate::respond(module, &report)
}
