//! `backup_retention`: deletes old backups by age and count, never the newest one that last
//! verified good.
//!
//! The engine is `reliability_backup::retention` (the one the daemon and the CLI run); this
//! file turns the module arguments into a request and the report into a result. A backup
//! that could not be deleted fails the task, which still says what went (`changed`).
//! A run that deleted or tried to delete appends one record (`backup_retention.delete`,
//! outcome `changed` or `failed`, the names deleted and the errors) to the audit trail
//! under `state_dir`; a run with nothing to delete, and check mode, append nothing.

use crate::audit;
use ansible_module::{Failure, Module, Response};
use reliability_backup::retention::{self, RetentionRequest};
use reliability_core::spec::Spec;
use reliability_os::audit::Outcome;
use reliability_os::clock::now_ms;
use serde_json::json;

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
    if !module.check_mode() && (!report.deleted.is_empty() || !report.errors.is_empty()) {
        let outcome = if report.errors.is_empty() {
            Outcome::Changed
        } else {
            Outcome::Failed
        };
        let details = json!({
            "pattern": module.str("pattern"),
            "deleted": report.deleted.iter().map(|d| d.name.as_str()).collect::<Vec<_>>(),
            "bytes_freed": report.bytes_freed,
            "errors": report.errors,
            "keep_days": module.int("keep_days"),
            "keep_last": module.int("keep_last"),
            "min_keep": module.int("min_keep"),
        });
        audit::append(module, "backup_retention.delete", &report.path, None, outcome, details)
            .map_err(|f| f.field("changed", report.changed))?;
    }
    crate::respond(module, &report)
}
