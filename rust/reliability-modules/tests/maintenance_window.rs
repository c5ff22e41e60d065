//! `maintenance_window` as Ansible runs it: a window opened (changed), the same task again
//! (not changed), updated, closed and closed again; check mode that writes nothing, the
//! diff, the audit trail it appends (with the controller's side the action plugin sends),
//! parallel runs keeping one valid chain, and bad input named.

// The helpers too: a test that cannot set itself up should fail loudly.
#![allow(clippy::unwrap_used)]

#[path = "support/module.rs"]
mod module;
use module::{failed, msg, run};

use serde_json::{json, Value};
use std::path::Path;

const BIN: &str = env!("CARGO_BIN_EXE_maintenance_window");

fn args(state_dir: &Path, extra: Value) -> Value {
    let mut a = json!({"name": "deploy", "state_dir": state_dir.to_str().unwrap()});
    for (k, v) in extra.as_object().unwrap() {
        a[k] = v.clone();
    }
    a
}

/// The audit records, parsed, in order.
fn trail(state_dir: &Path) -> Vec<Value> {
    let path = state_dir.join("audit/audit.jsonl");
    match std::fs::read_to_string(&path) {
        Ok(text) => text.lines().map(|l| serde_json::from_str(l).unwrap()).collect(),
        Err(_) => Vec::new(),
    }
}

fn files_under(dir: &Path) -> Vec<String> {
    if !dir.exists() {
        return Vec::new();
    }
    walk(dir)
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p.display().to_string());
        }
    }
    out.sort();
    out
}

#[test]
fn open_then_unchanged_then_update_then_close() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let controller =
        json!({"controller_user": "alice", "playbook": "/srv/deploy.yml", "play": "web", "task": "open a window"});
    let open = args(
        dir,
        json!({"duration": "2h", "reason": "kernel update", "services": ["nginx"], "_hx_reliability_controller": controller}),
    );
    let r = run(BIN, &open);
    assert!(!failed(&r), "{r}");
    assert_eq!(r["changed"], json!(true), "{r}");
    assert_eq!(r["window"]["active"], json!(true));
    assert_eq!(r["window"]["actor"], json!("alice"));
    assert_eq!(r["window"]["services"], json!(["nginx"]));
    assert!(msg(&r).starts_with("maintenance window 'deploy' opened until "), "{r}");
    let end = r["window"]["end"].clone();
    assert!(dir.join("maintenance/deploy.json").is_file());

    // The same task again: nothing to do, the end not pushed back.
    let r = run(BIN, &open);
    assert_eq!(
        (r["changed"].clone(), r["window"]["end"].clone()),
        (json!(false), end.clone()),
        "{r}"
    );
    assert_eq!(msg(&r), "maintenance window 'deploy' is open as asked");

    // Another reason: updated in place.
    let r = run(
        BIN,
        &args(
            dir,
            json!({"duration": "2h", "reason": "kernel update, take 2", "services": ["nginx"]}),
        ),
    );
    assert_eq!(r["changed"], json!(true), "{r}");
    assert_eq!(r["window"]["end"], end);

    let close = args(dir, json!({"state": "absent"}));
    let r = run(BIN, &close);
    assert_eq!(r["changed"], json!(true), "{r}");
    assert_eq!(r["window"], Value::Null);
    assert_eq!(msg(&r), "maintenance window 'deploy' closed");
    let r = run(BIN, &close);
    assert_eq!(r["changed"], json!(false), "{r}");

    // One audit record per change, chained, with the actor's both sides.
    let records = trail(dir);
    let actions: Vec<&str> = records.iter().map(|r| r["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["maintenance.open", "maintenance.update", "maintenance.close"]);
    let first = &records[0];
    assert_eq!(first["seq"], json!(1));
    assert_eq!(first["target"], json!("deploy"));
    assert_eq!(first["reason"], json!("kernel update"));
    assert_eq!(first["outcome"], json!("changed"));
    assert_eq!(first["front_end"], json!("module"));
    assert_eq!(first["actor"]["controller_user"], json!("alice"));
    assert_eq!(first["actor"]["playbook"], json!("/srv/deploy.yml"));
    assert_eq!(first["actor"]["task"], json!("open a window"));
    assert!(first["actor"]["user"].as_str().is_some_and(|u| !u.is_empty()));
    assert_eq!(records[1]["actor"].get("controller_user"), None);
    let report = reliability_os::audit::verify(&dir.join("audit")).unwrap();
    assert!(report.ok && report.records == 3, "{report:?}");

    // Opened again after closing: a new window under the same name.
    let r = run(BIN, &open);
    assert_eq!(r["changed"], json!(true), "{r}");
    assert_eq!(trail(dir).len(), 4);
}

#[test]
fn check_mode_writes_nothing_and_predicts() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("state");
    let check = |extra: Value| {
        let mut a = args(&dir, extra);
        a["_ansible_check_mode"] = json!(true);
        a["_ansible_diff"] = json!(true);
        run(BIN, &a)
    };
    let r = check(json!({"end": "2999-01-01T00:00:00Z", "reason": "upgrade"}));
    assert_eq!(r["changed"], json!(true), "{r}");
    assert!(
        msg(&r).starts_with("maintenance window 'deploy' would be opened until 2999-01-01T00:00:00.000Z"),
        "{r}"
    );
    assert_eq!(r["diff"]["before"], json!(""));
    let after = r["diff"]["after"].as_str().unwrap();
    assert!(after.contains("reason: \"upgrade\"\n"), "{after}");
    assert!(after.contains("end: \"2999-01-01T00:00:00.000Z\"\n"), "{after}");
    assert!(after.contains("services: []\n"), "{after}");
    assert!(!dir.exists(), "check mode created {:?}", files_under(&dir));

    // Really open it, then check-mode close: predicted, nothing moved.
    let r = run(
        BIN,
        &args(&dir, json!({"end": "2999-01-01T00:00:00Z", "reason": "upgrade"})),
    );
    assert_eq!(r["changed"], json!(true), "{r}");
    let before = files_under(&dir);
    let stored = std::fs::read(dir.join("maintenance/deploy.json")).unwrap();
    let audit = std::fs::read(dir.join("audit/audit.jsonl")).unwrap();
    let r = check(json!({"state": "absent"}));
    assert_eq!(r["changed"], json!(true), "{r}");
    assert!(
        r["diff"]["before"].as_str().unwrap().contains("reason: \"upgrade\""),
        "{r}"
    );
    assert_eq!(r["diff"]["after"], json!(""));
    assert_eq!(msg(&r), "maintenance window 'deploy' would be closed");
    let r = check(json!({"end": "2999-06-01T00:00:00Z", "reason": "upgrade"}));
    assert_eq!(r["changed"], json!(true), "{r}");
    assert!(r["diff"]["after"].as_str().unwrap().contains("2999-06-01"), "{r}");
    assert_eq!(files_under(&dir), before);
    assert_eq!(std::fs::read(dir.join("maintenance/deploy.json")).unwrap(), stored);
    assert_eq!(std::fs::read(dir.join("audit/audit.jsonl")).unwrap(), audit);
}

#[test]
fn bad_input_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let cases = [
        (
            json!({"duration": "2h"}),
            "invalid arguments for maintenance_window: state is 'present' but these options are missing: reason",
        ),
        (
            json!({"reason": "r"}),
            "state is present but neither duration nor end is given",
        ),
        (
            json!({"reason": "r", "duration": "2h", "end": "2999-01-01T00:00:00Z"}),
            "mutually exclusive",
        ),
        (json!({"reason": "r", "duration": "2 fortnights"}), "duration: "),
        (
            json!({"reason": "r", "end": "2000-01-01T00:00:00Z"}),
            "end: '2000-01-01T00:00:00.000Z' is not in the future",
        ),
        (
            json!({"reason": "r", "end": "tomorrow"}),
            "end: 'tomorrow' is not an RFC 3339 time",
        ),
        (
            json!({"reason": "r", "duration": "1h", "name": "../x"}),
            "name: invalid name '../x'",
        ),
    ];
    for (extra, says) in cases {
        let r = run(BIN, &args(dir, extra.clone()));
        assert!(failed(&r), "{extra}: {r}");
        assert!(msg(&r).contains(says), "{extra}: {}", msg(&r));
    }
    assert!(files_under(dir).is_empty(), "{:?}", files_under(dir));
}

#[test]
fn parallel_runs_keep_one_chain() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let children: Vec<_> = (0..8)
        .map(|i| {
            let a = args(
                &dir,
                json!({"name": format!("w{i}"), "duration": "1h", "reason": format!("host {i}")}),
            );
            let file = dir.join(format!("args{i}"));
            std::fs::write(&file, a.to_string()).unwrap();
            std::process::Command::new(BIN)
                .arg(&file)
                .stdout(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let r: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(r["changed"], json!(true), "{r}");
    }
    let report = reliability_os::audit::verify(&dir.join("audit")).unwrap();
    assert!(report.ok, "{report:?}");
    assert_eq!(report.records, 8);
    let mut seqs: Vec<u64> = trail(&dir).iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    seqs.dedup();
    assert_eq!(seqs, (1..=8).collect::<Vec<_>>());
}
