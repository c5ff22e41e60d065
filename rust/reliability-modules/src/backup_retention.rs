//! `backup_retention`: deletes old backups by age and count, never the newest one that last
//! verified good.
//!
//! The engine is `reliability_backup::retention` (the one the daemon and the CLI run); this
//! file turns the module arguments into a request and the report into a result. A backup
//! that could not be deleted fails the task, which still says what went (`changed`).

use ansible_module::{Failure, Module, Response};
use reliability_backup::retention::{self, RetentionRequest};
use reliability_core::spec::Spec;
use reliability_os::clock::now_ms;

/// The retention schema, declared once in the engine.
pub fn spec() -> Spec {
    retention::spec()
}

pub fn run(module: &mut Module) -> Result<Response, Failure> {
    let request = RetentionRequest::from_params(&module.params).map_err(|e| crate::invalid(module, e))?;
    let report = retention::run(&request, now_ms(), module.check_mode()).map_err(|e| {
        let refused = !e.refused.is_empty();
        let failure = Failure::new(e.msg);
        if refused {
            failure.field("refused", e.refused)
        } else {
            failure
        }
    })?;
    crate::respond(module, &report)
}
