//! The hx.reliability modules: each is a `spec()` (its options, declared once) and a
//! `run()` (its body), and nothing else.
//!
//! A module binary under `src/bin/` is one line that hands both to
//! [`ansible_module::main`]. A module file only converts: params to its engine's typed
//! request, the engine's report to a result ([`respond`], the one conversion). Measuring,
//! deciding and acting happen in the engines, which the monitor daemon and the CLI call
//! too.

pub mod backup_manifest;
pub mod backup_retention;
pub mod backup_verify;
pub mod circuit_breaker;
pub mod facts;
pub mod health_check;
pub mod service_recovery;

use ansible_module::{Failure, Module, Response};
use reliability_core::request::{Report, RequestError};
use reliability_core::spec::Spec;
use serde::Serialize;
use serde_json::Value;

/// A module's option declarations.
pub type SpecFn = fn() -> Spec;

/// Every module: name and option spec. The sidecar-docs test walks this list.
pub const MODULES: &[(&str, SpecFn)] = &[
    ("reliability_facts", facts::spec),
    ("health_check", health_check::spec),
    ("backup_manifest", backup_manifest::spec),
    ("backup_verify", backup_verify::spec),
    ("backup_retention", backup_retention::spec),
    ("circuit_breaker", circuit_breaker::spec),
    ("service_recovery", service_recovery::spec),
];

/// The one conversion of an engine's report into a module result: its fields become the
/// result's, `changed`/`failed`/`msg` the protocol's, its warnings Ansible warnings, its
/// diff the result's `diff` in diff mode. A failed report fails the task with every field.
pub fn respond<R: Serialize + Report>(module: &mut Module, report: &R) -> Result<Response, Failure> {
    for w in report.warnings() {
        module.warn(w.clone());
    }
    let mut fields = match serde_json::to_value(report) {
        Ok(Value::Object(m)) => m,
        Ok(_) => return Err(Failure::new("internal error: the report did not encode as an object")),
        Err(e) => return Err(Failure::new(format!("internal error: cannot encode the report: {e}"))),
    };
    // The protocol's own keys.
    for key in ["failed", "msg", "changed", "warnings", "diff"] {
        fields.remove(key);
    }
    if module.diff_mode() {
        if let Some(diff) = report.diff() {
            fields.insert("diff".into(), diff);
        }
    }
    let msg = report.msg().to_string();
    if report.failed() {
        // A run can fail after changing something (a backup deleted before another could
        // not be): say so.
        fields.insert("changed".into(), Value::Bool(report.changed()));
        return Err(Failure { msg, fields });
    }
    Ok(Response {
        changed: report.changed(),
        msg: Some(msg),
        fields,
    })
}

/// The failure of a request that cannot run: every problem, in `msg` and `problems`.
pub fn invalid(module: &Module, e: RequestError) -> Failure {
    Failure::new(format!("invalid arguments for {}: {e}", module.name)).field("problems", e.problems)
}
