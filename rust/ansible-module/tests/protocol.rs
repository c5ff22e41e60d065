//! The protocol end to end, in process: real args files on disk in, the result object out.
//! (The module binaries are driven as processes in `reliability-modules/tests`.)

use ansible_module::{execute, Failure, Input, Module, Response};
use reliability_core::spec::{Opt, Spec};
use serde_json::{json, Value};

fn spec() -> Spec {
    Spec::new(vec![
        Opt::str("name").required(),
        Opt::str("state").choices(&["present", "absent"]).default("present"),
        Opt::int("count").default(1).range(0.0, 10.0),
        Opt::str("api_token").no_log().aliases(&["token"]),
        Opt::dict("db").options(Spec::new(vec![
            Opt::str("host").default("localhost"),
            Opt::str("password").no_log(),
        ])),
        Opt::str("src"),
        Opt::str("content"),
        Opt::bool("boom").default(false),
    ])
    .mutually_exclusive(&["src", "content"])
}

/// The body of the test module: echoes what it saw, leaks secrets on purpose, can panic.
fn body(m: &mut Module) -> Result<Response, Failure> {
    if m.bool("boom") {
        let v: Vec<u8> = Vec::new();
        let _ = v[3];
    }
    let token = m.str("api_token").unwrap_or_default().to_string();
    if m.str("name") == Some("fail") {
        return Err(Failure::new(format!("could not log in with {token}"))
            .field("attempts", 3)
            .field("mismatched", 2));
    }
    m.warn(format!("token in a warning: {token}"));
    let would_change = m.str("state") == Some("absent");
    Ok(Response::new()
        .changed(would_change)
        .msg(format!("check_mode={} diff={}", m.check_mode(), m.diff_mode()))
        .field("echo", Value::Object(m.params.clone()))
        .field("tmpdir", m.internal.tmpdir.clone()))
}

fn run_with(args: &str) -> (Value, bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("args");
    std::fs::write(&path, args).expect("write args");
    execute("probe", &spec(), Input::File(path.to_string_lossy().into_owned()), body)
}

fn run(args: Value) -> (Value, bool) {
    run_with(&args.to_string())
}

fn msg(v: &Value) -> &str {
    v["msg"].as_str().unwrap_or_default()
}

#[test]
fn success_has_real_booleans_and_invocation() {
    let (out, ok) = run(
        json!({"name": "x", "count": "3", "_ansible_check_mode": true, "_ansible_diff": "yes",
                               "_ansible_tmpdir": "/tmp/t", "_ansible_version": "2.19.4", "_ansible_future": 1}),
    );
    assert!(ok);
    assert_eq!(out["changed"], json!(false));
    assert_eq!(msg(&out), "check_mode=true diff=true");
    assert_eq!(out["tmpdir"], json!("/tmp/t"));
    assert_eq!(out["echo"]["count"], json!(3));
    assert!(out.get("failed").is_none());
    assert_eq!(out["invocation"]["module_args"]["name"], json!("x"));
    assert!(out["invocation"]["module_args"].get("_ansible_check_mode").is_none());
}

#[test]
fn bad_args_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("nope").to_string_lossy().into_owned();
    let (out, ok) = execute("probe", &spec(), Input::File(missing.clone()), body);
    assert!(!ok);
    assert_eq!(out["failed"], json!(true));
    assert_eq!(msg(&out), format!("args file '{missing}' does not exist"));

    let as_dir = dir.path().to_string_lossy().into_owned();
    let (out, _) = execute("probe", &spec(), Input::File(as_dir.clone()), body);
    assert!(
        msg(&out).starts_with(&format!("cannot read args file '{as_dir}'")),
        "{out}"
    );

    let cases = [
        ("", "is empty; expected a JSON object"),
        ("{\"name\": ", "is not valid JSON: EOF while parsing"),
        ("[1, 2]", "holds JSON an array, expected an object"),
        ("\"name=x\"", "holds JSON a string, expected an object"),
    ];
    for (text, want) in cases {
        let (out, ok) = run_with(text);
        assert!(!ok && out["failed"] == json!(true));
        assert!(msg(&out).contains(want), "{text:?}: {out}");
        assert_eq!(out["changed"], json!(false));
    }
    let (out, _) = run_with("\u{0}\u{0}");
    assert!(msg(&out).contains("is not valid JSON"), "{out}");
}

#[test]
fn an_args_file_larger_than_the_bound_is_not_read() {
    let big = json!({"name": "x", "content": "c".repeat(5 * 1024 * 1024)}).to_string();
    let (out, ok) = run_with(&big);
    assert!(!ok);
    assert!(
        msg(&out).starts_with("args file '")
            && msg(&out).ends_with("' is larger than 4 MiB; no task's arguments are that large"),
        "{}",
        msg(&out)
    );
    assert!(
        out.to_string().len() < 1000,
        "{} bytes of output",
        out.to_string().len()
    );
}

#[test]
fn a_huge_option_value_is_refused_and_quoted_by_a_prefix_only() {
    let huge = "n".repeat(500_000);
    for args in [
        json!({"name": huge}),
        json!({"name": "x", "content": huge}),
        json!({"name": "x", huge.clone(): 1}),
    ] {
        let (out, ok) = run(args);
        assert!(!ok);
        let text = out.to_string();
        assert!(text.len() < 2000, "{} bytes of output: {}", text.len(), &text[..300]);
        assert!(msg(&out).contains("... (500000 bytes)"), "{}", msg(&out));
    }
}

#[test]
fn bad_options_name_option_and_value() {
    let cases = [
        (json!({"name": "x", "stat": "present"}), "invalid arguments for probe: unknown option 'stat'; did you mean 'state'? (valid options: api_token, boom, content, count, db, name, src, state, token)"),
        (json!({"state": "present"}), "invalid arguments for probe: name: missing required option"),
        (json!({"name": "x", "state": "gone"}), "invalid arguments for probe: state: 'gone' is not one of 'present', 'absent'"),
        (json!({"name": "x", "count": "many"}), "invalid arguments for probe: count: 'many' is not a valid int"),
        (json!({"name": "x", "count": 11}), "invalid arguments for probe: count: 11 is out of range 0-10"),
        (json!({"name": "x", "src": "a", "content": "b"}), "invalid arguments for probe: options are mutually exclusive: src, content"),
        (json!({"name": "x", "db": {"hots": "h"}}), "invalid arguments for probe: db: unknown option 'hots'; did you mean 'host'? (valid options: host, password)"),
        (json!({"name": "x", "boom": "perhaps"}), "invalid arguments for probe: boom: 'perhaps' is not a valid bool (use yes/no, true/false, on/off or 1/0)"),
    ];
    for (args, want) in cases {
        let (out, ok) = run(args.clone());
        assert!(!ok, "{args}");
        assert_eq!(out["failed"], json!(true));
        assert_eq!(msg(&out), want);
        assert_eq!(out["problems"].as_array().map(Vec::len), Some(1));
    }
}

#[test]
fn secrets_never_appear() {
    let secret = "s3cr3t-Tok3n";
    let db_pw = "pg-pass-42";
    let (out, ok) = run(json!({"name": "x", "token": secret, "db": {"password": db_pw}}));
    assert!(ok);
    let text = out.to_string();
    assert!(!text.contains(secret) && !text.contains(db_pw), "{text}");
    assert_eq!(
        out["invocation"]["module_args"]["api_token"],
        json!("VALUE_SPECIFIED_IN_NO_LOG_PARAMETER")
    );
    assert_eq!(
        out["invocation"]["module_args"]["db"]["password"],
        json!("VALUE_SPECIFIED_IN_NO_LOG_PARAMETER")
    );
    assert_eq!(out["warnings"], json!(["token in a warning: ********"]));

    // In a failure message too, and when the arguments themselves are invalid.
    let (out, _) = run(json!({"name": "fail", "api_token": secret}));
    assert_eq!(msg(&out), "could not log in with ********");
    assert_eq!(out["attempts"], json!(3));
    let (out, _) = run(json!({"name": "x", "token": secret, "count": secret}));
    assert!(!out.to_string().contains(secret), "{out}");
}

#[test]
fn masking_changes_values_never_keys_or_the_outcome() {
    // One-letter and common-word secrets: each is in the name of a result key, and in
    // words of the message that are not the secret.
    for secret in ["a", "e", "ok", "true", "failed", "attempts"] {
        let (out, ok) = run(json!({"name": "fail", "api_token": secret}));
        assert!(!ok, "{secret}: {out}");
        let keys: Vec<&str> = out.as_object().expect("an object").keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            ["attempts", "changed", "failed", "invocation", "mismatched", "msg"],
            "{secret}: {out}"
        );
        assert_eq!(
            (&out["failed"], &out["changed"]),
            (&json!(true), &json!(false)),
            "{secret}"
        );
        assert_eq!(msg(&out), "could not log in with ********", "{secret}");
        assert_eq!(out["mismatched"], json!(2), "{secret}");
        assert_eq!(out["invocation"]["module_args"]["name"], json!("fail"), "{secret}");
    }
    // A number that is the secret is replaced too; booleans never are.
    let (out, _) = run(json!({"name": "fail", "api_token": "3"}));
    assert_eq!(out["attempts"], json!("VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"));
    assert_eq!((&out["failed"], &out["mismatched"]), (&json!(true), &json!(2)));
    // A value that is the secret is replaced whole, as AnsibleModule does.
    let (out, ok) = run(json!({"name": "ok", "token": "ok"}));
    assert!(ok);
    assert_eq!(out["echo"]["name"], json!("VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"));
    assert_eq!(out["warnings"], json!(["token in a warning: ********"]));
    assert_eq!(out["changed"], json!(false));
}

#[test]
fn panic_becomes_a_failure() {
    let (out, ok) = run(json!({"name": "x", "boom": true}));
    assert!(!ok);
    assert_eq!(out["failed"], json!(true));
    let m = msg(&out);
    assert!(
        m.starts_with("internal error in module probe (this is a bug, please report it): panic: index out of bounds"),
        "{m}"
    );
    assert!(m.contains("protocol.rs"), "{m}");
}

#[test]
fn check_mode_prediction_is_passed_through() {
    let (out, _) = run(json!({"name": "x", "state": "absent", "_ansible_check_mode": true}));
    assert_eq!(out["changed"], json!(true));
    assert_eq!(msg(&out), "check_mode=true diff=false");
}
