//! `health_check`: services, ports, HTTP, processes and host resources against
//! warning/critical levels, in one task.
//!
//! The checks are `reliability-checks`' (the same engine the monitor daemon and the CLI
//! run); this file only turns the module arguments into a request and the report into a
//! result. Nothing changes on the host, so check mode runs the same checks and `changed`
//! is always false; the one file a run writes, the host's CPU reading kept for the next
//! run (a cache, not configuration), is left alone in check mode. `fail_on` decides `failed`; a failed result still carries every check.

use ansible_module::{Failure, Module, Response};
use reliability_checks::HealthRequest;
use reliability_core::spec::Spec;
use serde_json::Value;

/// The check schema, declared once in the engine.
pub fn spec() -> Spec {
    reliability_checks::spec()
}

pub fn run(module: &mut Module) -> Result<Response, Failure> {
    let mut request = HealthRequest::from_params(&module.params)
        .map_err(|e| Failure::new(format!("invalid arguments for health_check: {e}")).field("problems", e.problems))?;
    // Check mode reads the kept CPU reading but writes nothing, as the state store's
    // readers do in check mode.
    request.keep_state = !module.check_mode();
    let report = reliability_checks::run(&request);
    for w in &report.warnings {
        module.warn(w.clone());
    }
    let Value::Object(mut fields) =
        serde_json::to_value(&report).map_err(|e| Failure::new(format!("cannot encode the report: {e}")))?
    else {
        return Err(Failure::new("the report did not encode as an object"));
    };
    // `failed` and `msg` are the protocol's to set.
    fields.remove("failed");
    fields.remove("msg");
    fields.remove("warnings");
    if report.failed {
        Err(Failure {
            msg: report.msg,
            fields,
        })
    } else {
        Ok(Response {
            changed: false,
            msg: Some(report.msg),
            fields,
        })
    }
}
