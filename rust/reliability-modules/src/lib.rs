//! The hx.reliability modules: each is a `spec()` (its options, declared once) and a
//! `run()` (its body), and nothing else.
//!
//! A module binary under `src/bin/` is one line that hands both to
//! [`ansible_module::main`]. Measuring and deciding happen in `reliability-os` and
//! `reliability-core`, which the monitor daemon and the CLI call too.

pub mod backup_manifest;
pub mod backup_retention;
pub mod backup_verify;
pub mod circuit_breaker;
pub mod facts;
pub mod health_check;
pub mod service_recovery;

use reliability_core::spec::Spec;

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
