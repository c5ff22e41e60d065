//! Module arguments: any JSON object, handed to every module as Ansible would.
//!
//! For each module: its spec validates the object (never panicking), the run-free reading
//! of the validated options (`reliability_modules::check_options`) never panics, and the
//! whole protocol (`ansible_module::execute` with a body that echoes the options instead of
//! running the module) returns one object whose `changed`, `failed` and `msg` keep their
//! meaning whatever secrets are masked, and in which no `no_log` value appears.
#![no_main]

use ansible_module::{execute, Failure, Input, Module, Response};
use libfuzzer_sys::fuzz_target;
use reliability_core::spec::Env;
use reliability_modules::{check_options, MODULES};
use serde_json::Value;
use std::io::Write;
use std::sync::OnceLock;

/// Instead of the module's run: the options it would get, echoed.
fn echo(module: &mut Module) -> Result<Response, Failure> {
    Ok(Response::new()
        .msg("echo")
        .field("params", Value::Object(module.params.clone())))
}

/// One args file for the whole process, rewritten each run.
fn args_file() -> &'static tempfile::NamedTempFile {
    static FILE: OnceLock<tempfile::NamedTempFile> = OnceLock::new();
    FILE.get_or_init(|| tempfile::NamedTempFile::new().expect("a temporary args file"))
}

fuzz_target!(|data: &[u8]| {
    let Ok(Value::Object(mut args)) = serde_json::from_slice::<Value>(data) else { return };
    let env = Env {
        home: Some("/home/fuzz".into()),
    };
    let file = args_file();
    let path = file.path().to_string_lossy().into_owned();
    {
        let mut f = std::fs::File::create(file.path()).expect("rewrite the args file");
        f.write_all(data).expect("write the args file");
    }
    // The protocol takes Ansible's internal keys out before validating; so does this.
    args.retain(|k, _| !k.starts_with("_ansible_"));
    for (name, spec_fn) in MODULES {
        let spec = spec_fn();
        // Outside `execute`, which turns panics into failures: a panic here is a finding.
        if let Ok(params) = spec.validate(&args, &env) {
            let _ = check_options(name, &params, &env);
            let _ = spec.mask_no_log(&params);
            let secrets = spec.secrets(&params);
            let (result, ok) = execute(name, &spec, Input::File(path.clone()), echo);
            let obj = result.as_object().expect("the result is an object");
            assert!(ok, "{name}: validated options failed in the protocol: {result}");
            assert_eq!(obj.get("changed"), Some(&Value::Bool(false)), "{name}: 'changed' lost: {result}");
            assert_eq!(obj.get("msg").and_then(Value::as_str), Some("echo"), "{name}: 'msg' lost");
            assert!(!obj.contains_key("failed"), "{name}: a 'failed' key appeared: {result}");
            let text = result.to_string();
            for s in secrets.iter().filter(|s| s.len() >= 4) {
                assert!(!text.contains(s.as_str()), "{name}: secret {s:?} in the result");
            }
        } else {
            let (result, ok) = execute(name, &spec, Input::File(path.clone()), echo);
            assert!(!ok, "{name}: invalid options passed in the protocol");
            let msg = result["msg"].as_str().unwrap_or_default();
            assert!(!msg.starts_with("internal error"), "{name}: {msg}");
            assert_eq!(result["failed"], Value::Bool(true), "{name}: {result}");
        }
    }
});
