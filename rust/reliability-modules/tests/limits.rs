//! Huge option values against the real binaries: refused at the spec, in bounded memory
//! and output, never a panic, the value quoted by a prefix only.

#![allow(clippy::unwrap_used)]

#[path = "support/module.rs"]
mod module;
use module::{failed, msg, run};

use serde_json::{json, Value};

/// The largest peak resident set of any child process waited for so far, in MiB.
fn children_peak_rss_mib() -> i64 {
    use nix::sys::resource::{getrusage, UsageWho};
    getrusage(UsageWho::RUSAGE_CHILDREN).unwrap().max_rss() / 1024
}

fn refused(bin: &str, args: &Value, option: &str, len: usize) {
    let r = run(bin, args);
    assert!(failed(&r), "{bin}: {}", &r.to_string()[..300]);
    let text = r.to_string();
    assert!(text.len() < 4000, "{bin}: {} bytes of output", text.len());
    assert!(!text.contains("panic"), "{bin}: {text}");
    assert!(
        msg(&r).contains(&format!("{option}: '")) && msg(&r).contains(&format!("... ({len} bytes) is too long")),
        "{bin}: {}",
        msg(&r)
    );
}

#[test]
fn huge_globs_patterns_and_paths_are_refused_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let glob = "*".repeat(500_000);
    refused(
        env!("CARGO_BIN_EXE_backup_manifest"),
        &json!({"path": dir.path(), "dest": dir.path().join("m"), "exclude": [glob]}),
        "exclude[0]",
        500_000,
    );
    let pattern = "a*".repeat(1_500_000);
    refused(
        env!("CARGO_BIN_EXE_backup_retention"),
        &json!({"path": dir.path(), "pattern": pattern, "keep_last": 1}),
        "pattern",
        3_000_000,
    );
    let path = "/x".repeat(1_000_000);
    refused(
        env!("CARGO_BIN_EXE_backup_retention"),
        &json!({"path": path, "pattern": "*", "keep_last": 1}),
        "path",
        2_000_000,
    );
    let peak = children_peak_rss_mib();
    assert!(peak < 200, "a module process peaked at {peak} MiB");
}
