//! `health_check`: services, ports, HTTP, processes and host resources against
//! warning/critical levels, in one task.
//!
//! The checks are `reliability-checks`' (the same engine the monitor daemon and the CLI
//! run); this file only turns the module arguments into a request and the report into a
//! result. Nothing changes on the host, so check mode runs the same checks and `changed`
//! is always false. `fail_on` decides `failed`; a failed result still carries every check.

use ansible_module::{Failure, Module, Response};
use reliability_checks::HealthRequest;
use reliability_core::spec::Spec;

/// The check schema, declared once in the engine.
pub fn spec() -> Spec {
    reliability_checks::spec()
}

pub fn run(module: &mut Module) -> Result<Response, Failure> {
    let request = HealthRequest::from_params(&module.params).map_err(|e| crate::invalid(module, e))?;
    crate::respond(module, &reliability_checks::run(&request))
}
