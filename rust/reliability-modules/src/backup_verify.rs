//! `backup_verify`: proves a backup is what its manifest says, is complete and fresh, and
//! restores.
//!
//! The checks are `reliability-backup`'s (the engine the daemon and the CLI share); this
//! file turns the module arguments into a request and the report into a result. A failing
//! check fails the task; the result still carries every check under `checks`.
//!
//! `changed` is true only when the run records (or, in check mode, would record) the
//! backup as its set's last verified good one (`record_good`): checks themselves write
//! nothing a user would call a change.

use ansible_module::{Failure, Module, Response};
use reliability_backup::Context;
use reliability_core::spec::Spec;
use serde_json::Value;

/// The verification schema, declared once in the engine.
pub fn spec() -> Spec {
    reliability_backup::verify_spec()
}

pub fn run(module: &mut Module) -> Result<Response, Failure> {
    let ctx = Context {
        check_mode: module.check_mode(),
    };
    let report = reliability_backup::verify(&module.params, &ctx).map_err(|e| Failure::new(e.to_string()))?;
    for w in report.warnings {
        module.warn(w);
    }
    let status = if report.failed { "failed" } else { "ok" };
    let checks = Value::Object(report.checks);
    if report.failed {
        let mut failure = Failure::new(report.msg).field("status", status).field("checks", checks);
        if let Some(good) = report.good {
            failure = failure.field("good", good);
        }
        return Err(failure);
    }
    let mut response = Response::new()
        .changed(report.changed)
        .msg(report.msg)
        .field("status", status)
        .field("checks", checks);
    if let Some(good) = report.good {
        response = response.field("good", good);
    }
    Ok(response)
}
