//! The hx.reliability modules: each is a `spec()` (its options, declared once) and a
//! `run()` (its body), and nothing else.
//!
//! A module binary under `src/bin/` is one line that hands both to
//! [`ansible_module::main`]. Measuring and deciding happen in `reliability-os` and
//! `reliability-core`, which the monitor daemon and the CLI call too.

pub mod facts;

use reliability_core::spec::Spec;

/// Every module: name and option spec. The sidecar-docs test walks this list.
pub const MODULES: &[(&str, fn() -> Spec)] = &[("reliability_facts", facts::spec)];
