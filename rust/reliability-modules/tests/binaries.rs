//! The module binaries as Ansible runs them: `<binary> <args file>`, one JSON object on
//! stdout, nothing else. (The protocol's own cases, secrets and panics included, are in
//! `ansible-module/tests/protocol.rs`; here the real executables are driven.)

use serde_json::{json, Value};
use std::io::Write;
use std::process::{Command, Stdio};

const FACTS: &str = env!("CARGO_BIN_EXE_reliability_facts");

struct Run {
    code: i32,
    result: Value,
    stderr: String,
}

fn parse(out: std::process::Output) -> Run {
    let stdout = String::from_utf8(out.stdout).expect("stdout is UTF-8");
    // Exactly one JSON object, on one line: Ansible parses the whole of stdout.
    assert_eq!(stdout.lines().count(), 1, "stdout must be one line: {stdout:?}");
    let result: Value = serde_json::from_str(&stdout).expect("stdout is JSON");
    assert!(result.is_object(), "{result}");
    Run {
        code: out.status.code().unwrap_or(-1),
        result,
        stderr: String::from_utf8_lossy(&out.stderr).into(),
    }
}

fn run_file(bin: &str, contents: &[u8]) -> Run {
    let dir = tempfile::tempdir().expect("tempdir");
    let args = dir.path().join("args");
    std::fs::write(&args, contents).expect("write args");
    parse(Command::new(bin).arg(&args).output().expect("run module"))
}

fn run(args: Value) -> Run {
    run_file(FACTS, args.to_string().as_bytes())
}

fn failed_with(r: &Run, msg: &str) {
    assert_eq!(r.result["failed"], json!(true), "{}", r.result);
    assert_eq!(r.result["changed"], json!(false));
    assert_eq!(r.code, 1);
    let got = r.result["msg"].as_str().unwrap_or_default();
    assert!(got.contains(msg), "msg {got:?} should contain {msg:?}");
}

#[test]
fn gathers_facts_with_real_booleans() {
    let r = run(json!({"gather_subset": ["memory", "systemd"], "cpu_sample_interval": 0,
                       "_ansible_check_mode": true, "_ansible_module_name": "reliability_facts"}));
    assert_eq!(r.code, 0, "{}", r.result);
    assert_eq!(r.result["changed"], json!(false));
    assert!(r.result.get("failed").is_none());
    let facts = &r.result["ansible_facts"]["reliability"];
    assert!(facts["memory"]["total"].as_u64().unwrap_or(0) > 0);
    assert!(facts["systemd"]["running"].is_boolean());
    assert!(facts.get("mounts").is_none());
    assert!(r.stderr.is_empty(), "nothing on stderr: {}", r.stderr);
}

#[test]
fn reads_stdin_when_no_argument_is_given() {
    let mut child = Command::new(FACTS)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(br#"{"gather_subset": "load", "cpu_sample_interval": "0"}"#)
        .expect("write");
    let r = parse(child.wait_with_output().expect("wait"));
    assert_eq!(r.code, 0, "{}", r.result);
    assert!(r.result["ansible_facts"]["reliability"]["load"]["load1"].is_number());
}

#[test]
fn bad_args_files() {
    let r = parse(Command::new(FACTS).arg("/nonexistent/args").output().expect("run"));
    failed_with(&r, "args file '/nonexistent/args' does not exist");
    let dir = tempfile::tempdir().expect("tempdir");
    let r = parse(Command::new(FACTS).arg(dir.path()).output().expect("run"));
    failed_with(&r, &format!("cannot read args file '{}'", dir.path().display()));
    failed_with(&run_file(FACTS, b""), "is empty; expected a JSON object");
    failed_with(&run_file(FACTS, b"gather_subset=all"), "is not valid JSON");
    failed_with(
        &run_file(FACTS, b"[\"all\"]"),
        "holds JSON an array, expected an object",
    );
    failed_with(&run_file(FACTS, &[0xff, 0xfe, 0x00]), "is not UTF-8 text");
}

#[test]
fn bad_options() {
    failed_with(
        &run(json!({"gather_subst": ["all"]})),
        "unknown option 'gather_subst'; did you mean 'gather_subset'?",
    );
    failed_with(
        &run(json!({"cpu_sample_interval": "soon"})),
        "cpu_sample_interval: 'soon' is not a valid float",
    );
    failed_with(
        &run(json!({"cpu_sample_interval": 60})),
        "cpu_sample_interval: 60 is out of range 0-10",
    );
    failed_with(
        &run(json!({"gather_subset": {"a": 1}})),
        "gather_subset: {\"a\":1} is not a valid list",
    );
    failed_with(
        &run(json!({"gather_subset": ["memroy"]})),
        "unknown subset 'memroy'; did you mean 'memory'?",
    );
    failed_with(
        &run(json!({"subset": "cpu", "gather_subset": "load"})),
        "gather_subset: given twice",
    );
    // Every problem is named, not just the first.
    let r = run(json!({"bogus": 1, "cpu_sample_interval": "x"}));
    assert_eq!(r.result["problems"].as_array().map(Vec::len), Some(2), "{}", r.result);
}

#[test]
fn adhoc_strings_are_coerced() {
    // `ansible -a 'gather_subset=memory,load cpu_sample_interval=0'` sends only strings.
    let r = run(json!({"gather_subset": "memory,load", "cpu_sample_interval": "0"}));
    assert_eq!(r.code, 0, "{}", r.result);
    assert_eq!(
        r.result["invocation"]["module_args"],
        json!({"gather_subset": ["memory", "load"], "cpu_sample_interval": 0.0})
    );
}
