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
