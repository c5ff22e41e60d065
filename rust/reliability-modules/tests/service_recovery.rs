//! The `service_recovery` binary as Ansible runs it: what its result may show.
//! (The engine is tested in `reliability-recovery`, the ladder on real units by the
//! Python integration tests.)

#![allow(clippy::unwrap_used)]

#[path = "support/module.rs"]
mod module;

use module::run;
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_service_recovery");
const MASK: &str = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER";

/// A health spec probing a closed local port with a credential in a header.
fn health(token: &str) -> Value {
    json!({"http": [{"url": "http://127.0.0.1:9/", "timeout": 0.5, "headers": {"Authorization": token}}]})
}

#[test]
fn header_values_of_embedded_health_specs_are_never_shown() {
    let (primary, backup) = ("Bearer primary-Cred-7731", "Bearer backup-Cred-5519");
    let dir = tempfile::tempdir().unwrap();
    let r = run(
        BIN,
        &json!({
            "service": "hx-absent-unit.service",
            "health": health(primary),
            "failover": {"units": ["hx-absent-backup.service"], "health": health(backup)},
            "state_dir": dir.path().join("state"),
            "_ansible_check_mode": true,
        }),
    );
    let text = r.to_string();
    for secret in [primary, backup, "primary-Cred-7731", "backup-Cred-5519"] {
        assert!(!text.contains(secret), "{secret} shown: {text}");
    }
    let args = &r["invocation"]["module_args"];
    assert_eq!(args["health"]["http"][0]["headers"], json!(MASK), "{text}");
    assert_eq!(args["failover"]["health"]["http"][0]["headers"], json!(MASK), "{text}");
    // What is not secret stays readable.
    assert_eq!(args["health"]["http"][0]["url"], json!("http://127.0.0.1:9/"), "{text}");
}

/// A test that needs systemd as PID 1 and root (it asks systemctl to restart a unit):
/// skipped with a reason elsewhere, unless `HX_REQUIRE_PRIVILEGED=1` makes that a failure.
fn on_systemd_as_root(test: &str) -> bool {
    // A machine without systemd as PID 1 (this project's build machines: the systemd hosts
    // are nspawn containers) cannot run it at all; that is not a privilege to require.
    if !std::path::Path::new("/run/systemd/system").is_dir() {
        eprintln!("SKIPPED {test}: needs systemd as PID 1 (tests/integration runs service_recovery on systemd hosts)");
        return false;
    }
    let root = nix::unistd::geteuid().is_root();
    if !root {
        assert!(
            std::env::var("HX_REQUIRE_PRIVILEGED").as_deref() != Ok("1"),
            "{test} needs root (HX_REQUIRE_PRIVILEGED=1)"
        );
        eprintln!("SKIPPED {test}: needs root");
    }
    root
}

/// The actions in the trail of `state_dir`.
fn audited(state_dir: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(state_dir.join("audit/audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_run_that_acted_is_audited_once_check_mode_never() {
    if !on_systemd_as_root("a_run_that_acted_is_audited_once_check_mode_never") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let state_dir = dir.path().join("state");
    let unit = format!("hx-audit-absent-{}.service", std::process::id());
    let args = |check: bool| {
        json!({
            "service": unit,
            "health": {"ports": [{"host": "127.0.0.1", "port": 9, "timeout": 0.3}]},
            "escalation": [{"strategy": "restart", "failures": 1}],
            "timeout": 2,
            "state_dir": state_dir,
            "_ansible_check_mode": check,
        })
    };
    run(BIN, &args(true));
    assert_eq!(audited(&state_dir), Vec::<Value>::new(), "check mode appends nothing");
    let r = run(BIN, &args(false));
    let records = audited(&state_dir);
    assert_eq!(records.len(), 1, "{r}");
    let rec = &records[0];
    assert_eq!(
        (&rec["action"], &rec["target"], &rec["outcome"], &rec["front_end"]),
        (
            &json!("service_recovery.restart"),
            &json!(unit),
            &json!("failed"),
            &json!("module")
        ),
        "{rec}"
    );
    assert_eq!(
        (
            &rec["details"]["level"],
            &rec["details"]["strategy"],
            &rec["details"]["outcome"]
        ),
        (&json!(1), &json!("restart"), &r["outcome"]),
        "{rec}"
    );
    assert!(reliability_os::audit::verify(&state_dir.join("audit")).unwrap().ok);
}
