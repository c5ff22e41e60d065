//! `backup_manifest`: a `sha256sum`-compatible manifest of a file or a tree.
//!
//! The engine is `reliability_backup::manifest`; this file turns the module arguments into
//! a request and the report (or the error, with the entries it could not list or read) into
//! a result.

use ansible_module::{Failure, Module, Response};
use reliability_backup::manifest::{self, ManifestRequest};
use reliability_core::spec::Spec;
use serde_json::json;

/// The manifest schema, declared once in the engine.
pub fn spec() -> Spec {
    manifest::spec()
}

pub fn run(module: &mut Module) -> Result<Response, Failure> {
    let request = ManifestRequest::from_params(&module.params).map_err(|e| crate::invalid(module, e))?;
    let report = manifest::run(&request, module.check_mode()).map_err(|e| {
        let mut failure = Failure::new(e.msg);
        if !e.unlistable.is_empty() {
            failure = failure.field("unlistable", json!(e.unlistable));
        }
        if !e.unreadable.is_empty() {
            failure = failure.field("unreadable", json!(e.unreadable));
        }
        failure
    })?;
    crate::respond(module, &report)
}
