//! `health_check`: services, ports, HTTP, processes and host resources against
//! warning/critical levels, in one task.
//!
//! The checks are `reliability-checks`' (the same engine the monitor daemon and the CLI
//! run); this file only turns the module arguments into a request and the report into a
//! result. Nothing changes on the host, so check mode runs the same checks and `changed`
//! is always false; the one file a run writes, the host's CPU reading kept for the next
//! run (a cache, not configuration), is left alone in check mode. `fail_on` decides
//! `failed`; a failed result still carries every check.

use ansible_module::{Failure, Module, Response};
use reliability_checks::HealthRequest;
use reliability_core::spec::Spec;

/// The check schema, declared once in the engine.
pub fn spec() -> Spec {
    reliability_checks::spec()
}

pub fn run(module: &mut Module) -> Result<Response, Failure> {
    let mut request = HealthRequest::from_params(&module.params).map_err(|e| crate::invalid(module, e))?;
    // Check mode reads the kept CPU reading but writes nothing, as the state store's
    // readers do in check mode.
    request.keep_state = !module.check_mode();
    crate::respond(module, &reliability_checks::run(&request))
}
