//! Running a built module binary the way Ansible does, for the tests of every module:
//! the arguments in a JSON file named on the command line, exactly one JSON object back.

// Each test file uses a part of this.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::process::Command;

/// Runs module binary `bin` with `args` in a file; returns its one JSON object, after
/// checking that it printed exactly one line and that its exit code agrees with `failed`.
pub fn run(bin: &str, args: &Value) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("args");
    std::fs::write(&path, args.to_string()).unwrap();
    let out = Command::new(bin).arg(&path).output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "one line of stdout: {stdout:?}");
    let result: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        out.status.success(),
        result["failed"] != json!(true),
        "exit code and failed agree: {result}"
    );
    result
}

pub fn failed(r: &Value) -> bool {
    r["failed"] == json!(true)
}

pub fn msg(r: &Value) -> &str {
    r["msg"].as_str().unwrap_or_else(|| panic!("no msg: {r}"))
}

/// A JSON list of strings.
pub fn strs(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}
