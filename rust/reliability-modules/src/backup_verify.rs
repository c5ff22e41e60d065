//! `backup_verify`: proves a backup is what its manifest says, is complete and fresh, and
//! restores.
//!
//! The checks are `reliability-backup`'s (the engine the daemon and the CLI share); this
//! file turns the module arguments into a [`VerifyRequest`] and the report into a result. A
//! failing check fails the task; the result still carries every check under `checks`.
//!
//! `changed` is true only when the run records (or, in check mode, would record) the
//! backup as its set's last verified good one (`record_good`): checks themselves write
//! nothing a user would call a change.

use ansible_module::{Failure, Module, Response};
use reliability_backup::{Context, VerifyRequest};
use reliability_core::spec::Spec;

/// The verification schema, declared once in the engine.
pub fn spec() -> Spec {
    reliability_backup::verify_spec()
}

pub fn run(module: &mut Module) -> Result<Response, Failure> {
    // Bad input reads as the engine words it (no "invalid arguments" prefix): the backup
    // tests and users match these messages.
    let request = VerifyRequest::from_params(&module.params).map_err(|e| Failure::new(e.to_string()))?;
    let ctx = Context {
        check_mode: module.check_mode(),
    };
    let report = reliability_backup::verify(&request, &ctx).map_err(|e| Failure::new(e.to_string()))?;
    crate::respond(module, &report)
}
