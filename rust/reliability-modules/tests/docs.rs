//! The sidecar docs cannot drift from the option declarations: for every module, the
//! options in `plugins/modules/<name>.yml` have the names, types, defaults, choices,
//! required flags, aliases and sub-options that `spec()` declares.

use reliability_modules::MODULES;
use serde_json::{Map, Value};
use std::path::PathBuf;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn doc_options(module: &str) -> Map<String, Value> {
    let path = repo().join(format!("plugins/modules/{module}.yml"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let doc: Value = serde_yaml_ng::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(
        doc["DOCUMENTATION"]["module"],
        Value::from(module),
        "{}: DOCUMENTATION.module",
        path.display()
    );
    for key in ["EXAMPLES", "RETURN"] {
        assert!(doc.get(key).is_some(), "{}: no {key}", path.display());
    }
    doc["DOCUMENTATION"]["options"].as_object().cloned().unwrap_or_default()
}

/// Numbers compare by value: YAML `0` and Rust `0.0` are the same default.
fn same(a: Option<&Value>, b: Option<&Value>) -> bool {
    match (a, b) {
        (Some(Value::Number(x)), Some(Value::Number(y))) => x.as_f64() == y.as_f64(),
        (Some(Value::Array(x)), Some(Value::Array(y))) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(Some(p), Some(q)))
        }
        (a, b) => a.filter(|v| !v.is_null()) == b.filter(|v| !v.is_null()),
    }
}

fn compare(at: &str, spec: &Map<String, Value>, docs: &Map<String, Value>, problems: &mut Vec<String>) {
    let mut spec_names: Vec<&String> = spec.keys().collect();
    let mut doc_names: Vec<&String> = docs.keys().collect();
    spec_names.sort();
    doc_names.sort();
    if spec_names != doc_names {
        problems.push(format!("{at}: options differ: code {spec_names:?}, docs {doc_names:?}"));
    }
    for (name, s) in spec {
        let Some(d) = docs.get(name) else { continue };
        let path = format!("{at}.{name}");
        let doc_type = d.get("type").cloned().unwrap_or_else(|| Value::from("str"));
        if s["type"] != doc_type {
            problems.push(format!("{path}: type is {} in code, {doc_type} in docs", s["type"]));
        }
        let doc_required = d.get("required").cloned().unwrap_or(Value::Bool(false));
        if s["required"] != doc_required {
            problems.push(format!(
                "{path}: required is {} in code, {doc_required} in docs",
                s["required"]
            ));
        }
        // `no_log` is not a documentation key (validate-modules refuses it): secrecy is
        // said in the description and enforced by the protocol's own tests.
        for key in ["default", "choices", "elements", "aliases"] {
            let (code, doc) = (s.get(key), d.get(key));
            if !same(code, doc) {
                problems.push(format!("{path}: {key} is {code:?} in code, {doc:?} in docs"));
            }
        }
        match (
            s.get("options").and_then(Value::as_object),
            d.get("suboptions").and_then(Value::as_object),
        ) {
            (Some(so), Some(ds)) => compare(&path, so, ds, problems),
            (None, None) => {}
            (so, ds) => problems.push(format!(
                "{path}: sub-options in code: {}, in docs: {}",
                so.is_some(),
                ds.is_some()
            )),
        }
    }
}

#[test]
fn sidecar_docs_match_declarations() {
    let mut problems = Vec::new();
    for (name, spec) in MODULES {
        let spec = spec().to_argument_spec();
        let spec = spec.as_object().cloned().unwrap_or_default();
        compare(name, &spec, &doc_options(name), &mut problems);
    }
    assert!(
        problems.is_empty(),
        "sidecar docs drifted from spec():\n{}",
        problems.join("\n")
    );
}

#[test]
fn every_module_has_binary_stub_and_action() {
    for (name, _) in MODULES {
        for path in [
            format!("plugins/modules/{name}.py"),
            format!("plugins/action/{name}.py"),
            format!("rust/reliability-modules/src/bin/{name}.rs"),
        ] {
            assert!(repo().join(&path).is_file(), "{path} is missing");
        }
    }
}

#[test]
fn the_comparison_catches_drift() {
    // A deliberately wrong doc must produce one problem per difference.
    let spec = serde_json::json!({"a": {"type": "int", "required": false, "default": 5}, "b": {"type": "str", "required": true}});
    let docs = serde_json::json!({"a": {"type": "int", "default": 6}, "b": {"type": "str"}, "c": {"type": "bool"}});
    let mut problems = Vec::new();
    compare("m", spec.as_object().unwrap(), docs.as_object().unwrap(), &mut problems);
    assert_eq!(problems.len(), 3, "{problems:#?}");
}
