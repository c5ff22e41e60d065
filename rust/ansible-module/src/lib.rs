//! The Ansible binary-module protocol, and the only crate that knows it.
//!
//! Ansible copies a binary module to the target unchanged and runs it as
//! `AnsiballZ_<name> <dir>/args`, where the args file holds one JSON object: the task's
//! arguments plus internal `_ansible_*` keys. The module must print exactly one JSON object
//! on stdout. Everything about that contract lives here:
//!
//! - reading the args (from the file named by `argv[1]`, or stdin when there is no
//!   argument), splitting off the `_ansible_*` keys into [`Internal`];
//! - validating the arguments against the module's [`Spec`] (rules in `reliability-core`);
//! - printing one result object, with `invocation.module_args` masked and every `no_log`
//!   value scrubbed from the whole result;
//! - turning a panic into `failed: true` with a message instead of a raw rc 101.
//!
//! Architecture invariant: nothing else in the workspace writes to stdout in a module run;
//! logs go to stderr through [`Module::log`].

use reliability_core::spec::{Env, Spec, NO_LOG_PLACEHOLDER};
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::panic::{self, AssertUnwindSafe};
use std::process::ExitCode;

/// The `_ansible_*` keys a module cares about. Others are accepted and ignored.
#[derive(Clone, Debug, Default)]
pub struct Internal {
    pub check_mode: bool,
    pub diff: bool,
    pub no_log: bool,
    pub verbosity: u64,
    pub version: Option<String>,
    pub module_name: Option<String>,
    /// Per-task temporary directory; `None` when becoming an unprivileged user.
    pub tmpdir: Option<String>,
    /// As configured, tilde not expanded.
    pub remote_tmp: Option<String>,
    /// What the collection's action plugin says of the controller side (user, playbook,
    /// play, task), from [`CONTROLLER_KEY`]: Ansible passes none of it to a module. Only
    /// string values are kept, each cut to [`MAX_CONTROLLER_VALUE`] bytes.
    pub controller: Map<String, Value>,
}

/// The key under which `plugins/plugin_utils/binary_module.py` sends the controller's
/// side of a run (for the audit trail). Stripped like the `_ansible_*` keys.
pub const CONTROLLER_KEY: &str = "_hx_reliability_controller";
/// The longest controller value kept, in bytes.
pub const MAX_CONTROLLER_VALUE: usize = 256;

impl Internal {
    fn from_args(args: &mut Map<String, Value>) -> Internal {
        let keys: Vec<String> = args.keys().filter(|k| k.starts_with("_ansible_")).cloned().collect();
        let mut internal = Internal::default();
        if let Some(Value::Object(controller)) = args.remove(CONTROLLER_KEY) {
            for (k, v) in controller.into_iter().take(16) {
                if let Value::String(mut text) = v {
                    let mut cut = text.len().min(MAX_CONTROLLER_VALUE);
                    while !text.is_char_boundary(cut) {
                        cut -= 1;
                    }
                    text.truncate(cut);
                    internal.controller.insert(k, Value::String(text));
                }
            }
        }
        for key in keys {
            let Some(value) = args.remove(&key) else { continue };
            let flag = || reliability_core::spec::to_bool(&value).unwrap_or(false);
            let text = || value.as_str().map(String::from);
            match key.as_str() {
                "_ansible_check_mode" => internal.check_mode = flag(),
                "_ansible_diff" => internal.diff = flag(),
                "_ansible_no_log" => internal.no_log = flag(),
                "_ansible_verbosity" => internal.verbosity = value.as_u64().unwrap_or(0),
                "_ansible_version" => internal.version = text(),
                "_ansible_module_name" => internal.module_name = text(),
                "_ansible_tmpdir" => internal.tmpdir = text(),
                "_ansible_remote_tmp" => internal.remote_tmp = text(),
                _ => {}
            }
        }
        internal
    }
}

/// What a module's body works with: validated parameters and the task's internal settings.
pub struct Module {
    pub name: &'static str,
    pub params: Map<String, Value>,
    pub internal: Internal,
    warnings: Vec<String>,
    deprecations: Vec<Value>,
}

impl Module {
    pub fn check_mode(&self) -> bool {
        self.internal.check_mode
    }
    pub fn diff_mode(&self) -> bool {
        self.internal.diff
    }

    /// A `warnings` entry of the result, shown by Ansible after the task.
    pub fn warn(&mut self, msg: impl Into<String>) {
        self.warnings.push(msg.into());
    }

    pub fn deprecate(&mut self, msg: impl Into<String>, version: &str) {
        self.deprecations
            .push(serde_json::json!({"msg": msg.into(), "version": version}));
    }

    /// A diagnostic line on stderr, shown with `-vvv`; never on stdout.
    pub fn log(&self, msg: &str) {
        let _ = writeln!(std::io::stderr(), "{}: {msg}", self.name);
    }

    pub fn str(&self, name: &str) -> Option<&str> {
        self.params.get(name).and_then(Value::as_str)
    }
    pub fn bool(&self, name: &str) -> bool {
        self.params.get(name).and_then(Value::as_bool).unwrap_or(false)
    }
    pub fn int(&self, name: &str) -> Option<i64> {
        self.params.get(name).and_then(Value::as_i64)
    }
    pub fn float(&self, name: &str) -> Option<f64> {
        self.params.get(name).and_then(Value::as_f64)
    }
    pub fn list_of_str(&self, name: &str) -> Vec<String> {
        match self.params.get(name) {
            Some(Value::Array(items)) => items.iter().filter_map(|v| v.as_str().map(String::from)).collect(),
            _ => Vec::new(),
        }
    }
}

/// The result object of a module run, built up by the body.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Response {
    pub changed: bool,
    pub msg: Option<String>,
    pub fields: Map<String, Value>,
}

impl Response {
    pub fn new() -> Response {
        Response::default()
    }
    pub fn changed(mut self, changed: bool) -> Response {
        self.changed = changed;
        self
    }
    pub fn msg(mut self, msg: impl Into<String>) -> Response {
        self.msg = Some(msg.into());
        self
    }
    pub fn field(mut self, key: &str, value: impl Into<Value>) -> Response {
        self.fields.insert(key.to_string(), value.into());
        self
    }
    /// `ansible_facts`: merged into the host's facts by the controller.
    pub fn facts(self, facts: Value) -> Response {
        self.field("ansible_facts", facts)
    }
    /// A `diff` with `before` and `after` (strings or data), shown with `--diff`.
    pub fn diff(self, before: impl Into<Value>, after: impl Into<Value>) -> Response {
        self.field(
            "diff",
            serde_json::json!({"before": before.into(), "after": after.into()}),
        )
    }
}

/// A module failure: `failed: true`, `msg`, and any fields that help explain it.
#[derive(Clone, Debug, PartialEq)]
pub struct Failure {
    pub msg: String,
    pub fields: Map<String, Value>,
}

impl Failure {
    pub fn new(msg: impl Into<String>) -> Failure {
        Failure {
            msg: msg.into(),
            fields: Map::new(),
        }
    }
    pub fn field(mut self, key: &str, value: impl Into<Value>) -> Failure {
        self.fields.insert(key.to_string(), value.into());
        self
    }
}

impl<E: std::error::Error> From<E> for Failure {
    fn from(err: E) -> Failure {
        Failure::new(err.to_string())
    }
}

/// Where the module reads its arguments from.
pub enum Input {
    /// The path in `argv[1]`, as Ansible runs binary modules.
    File(String),
    /// No argument: the same JSON object on stdin.
    Stdin,
}

impl Input {
    pub fn from_args() -> Input {
        match std::env::args().nth(1) {
            Some(path) => Input::File(path),
            None => Input::Stdin,
        }
    }
}

/// Run a module: the whole `main` of every module binary.
///
/// ```text
/// fn main() -> std::process::ExitCode {
///     ansible_module::main("reliability_facts", reliability_modules::facts::spec(), reliability_modules::facts::run)
/// }
/// ```
pub fn main(name: &'static str, spec: Spec, body: fn(&mut Module) -> Result<Response, Failure>) -> ExitCode {
    let (result, ok) = execute(name, &spec, Input::from_args(), body);
    let mut out = std::io::stdout().lock();
    // If stdout is gone there is nobody to tell; the exit code still says it.
    let _ = writeln!(out, "{result}");
    let _ = out.flush();
    if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

thread_local! {
    /// The message of the last panic on this thread, for the failure result.
    static LAST_PANIC: std::cell::RefCell<Option<String>> = const { std::cell::RefCell::new(None) };
    /// Whether this thread is running a module body (other panics keep the default hook).
    static IN_MODULE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Once per process: panics record their message for [`execute`] instead of printing it.
/// The default hook's stderr text would show up in Ansible next to our clean failure. The
/// hook is global but the slot is per thread, so concurrent runs (tests) keep their own.
fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            if !IN_MODULE.with(std::cell::Cell::get) {
                return default(info);
            }
            let payload = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".to_string());
            let location = info
                .location()
                .map(|l| format!(" at {}:{}", l.file(), l.line()))
                .unwrap_or_default();
            LAST_PANIC.with(|p| *p.borrow_mut() = Some(format!("{payload}{location}")));
        }));
    });
}

/// Everything `main` does except printing: returns the result object and whether it succeeded.
pub fn execute(
    name: &'static str,
    spec: &Spec,
    input: Input,
    body: fn(&mut Module) -> Result<Response, Failure>,
) -> (Value, bool) {
    install_panic_hook();
    LAST_PANIC.with(|p| p.borrow_mut().take());

    let mut secrets = BTreeSet::new();
    IN_MODULE.with(|f| f.set(true));
    let outcome = panic::catch_unwind(AssertUnwindSafe(|| run_body(name, spec, input, body, &mut secrets)));
    IN_MODULE.with(|f| f.set(false));
    let (mut result, ok) = match outcome {
        Ok(r) => r,
        Err(_) => {
            let detail = LAST_PANIC.with(|p| p.borrow_mut().take()).unwrap_or_default();
            let mut m = Map::new();
            m.insert("failed".into(), true.into());
            m.insert(
                "msg".into(),
                format!("internal error in module {name} (this is a bug, please report it): panic: {detail}").into(),
            );
            (m, false)
        }
    };
    result.entry("changed").or_insert(false.into());
    let mut value = Value::Object(result);
    scrub(&mut value, &secrets);
    (value, ok)
}

fn run_body(
    name: &'static str,
    spec: &Spec,
    input: Input,
    body: fn(&mut Module) -> Result<Response, Failure>,
    secrets: &mut BTreeSet<String>,
) -> (Map<String, Value>, bool) {
    let mut args = match read_args(&input) {
        Ok(args) => args,
        Err(msg) => return (failed(msg, Map::new()), false),
    };
    let internal = Internal::from_args(&mut args);
    let env = Env {
        home: std::env::var("HOME").ok(),
    };
    let params = match spec.validate(&args, &env) {
        Ok(p) => p,
        Err(e) => {
            // Raw arguments may hold secrets under their declared name or an alias:
            // collect what we can recognise before reporting.
            secrets.extend(raw_secrets(spec, &args));
            let mut m = failed(format!("invalid arguments for {name}: {e}"), Map::new());
            m.insert(
                "problems".into(),
                e.errors.iter().map(|p| Value::String(p.to_string())).collect(),
            );
            return (m, false);
        }
    };
    secrets.extend(spec.secrets(&params));
    let invocation = serde_json::json!({"module_args": spec.mask_no_log(&params)});
    let mut module = Module {
        name,
        params,
        internal,
        warnings: Vec::new(),
        deprecations: Vec::new(),
    };
    let (mut map, ok) = match body(&mut module) {
        Ok(r) => {
            let mut m = r.fields;
            m.insert("changed".into(), r.changed.into());
            if let Some(msg) = r.msg {
                m.insert("msg".into(), msg.into());
            }
            (m, true)
        }
        Err(f) => (failed(f.msg, f.fields), false),
    };
    map.insert("invocation".into(), invocation);
    if !module.warnings.is_empty() {
        map.insert(
            "warnings".into(),
            module.warnings.into_iter().map(Value::String).collect(),
        );
    }
    if !module.deprecations.is_empty() {
        map.insert("deprecations".into(), Value::Array(module.deprecations));
    }
    (map, ok)
}

fn failed(msg: String, fields: Map<String, Value>) -> Map<String, Value> {
    let mut m = fields;
    m.insert("failed".into(), true.into());
    m.insert("msg".into(), msg.into());
    m
}

/// The largest args file read: far above any task's arguments (every string option is
/// bounded by its spec, 4096 bytes unless declared), and small enough that parsing it
/// cannot take the host's memory.
pub const MAX_ARGS_BYTES: u64 = 4 * 1024 * 1024;

fn read_args(input: &Input) -> Result<Map<String, Value>, String> {
    let (text, from) = match input {
        Input::File(path) => {
            let from = format!("args file {}", reliability_core::quote::quote(path));
            let file = std::fs::File::open(path).map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => format!("{from} does not exist"),
                _ => format!("cannot read {from}: {e}"),
            })?;
            (read_bounded(file, &from)?, from)
        }
        Input::Stdin => {
            let from = "arguments on stdin".to_string();
            (read_bounded(std::io::stdin(), &from)?, from)
        }
    };
    let text = String::from_utf8(text).map_err(|e| format!("{from} is not UTF-8 text: {e}"))?;
    if text.trim().is_empty() {
        return Err(format!("{from} is empty; expected a JSON object"));
    }
    match serde_json::from_str::<Value>(&text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(other) => Err(format!("{from} holds JSON {}, expected an object", json_kind(&other))),
        Err(e) => Err(format!("{from} is not valid JSON: {e}")),
    }
}

/// At most [`MAX_ARGS_BYTES`] of `reader`; more is an error, not read.
fn read_bounded(reader: impl Read, from: &str) -> Result<Vec<u8>, String> {
    let mut buf = Vec::new();
    reader
        .take(MAX_ARGS_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| format!("cannot read {from}: {e}"))?;
    if buf.len() as u64 > MAX_ARGS_BYTES {
        return Err(format!(
            "{from} is larger than {} MiB; no task's arguments are that large",
            MAX_ARGS_BYTES / (1024 * 1024)
        ));
    }
    Ok(buf)
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// Best-effort secrets from arguments that failed validation: any value given under a
/// `no_log` option name or alias, at any depth.
fn raw_secrets(spec: &Spec, args: &Map<String, Value>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (key, value) in args {
        let Some(opt) = spec
            .options
            .iter()
            .find(|o| o.name == key || o.aliases.contains(&key.as_str()))
        else {
            continue;
        };
        let mut one = Map::new();
        one.insert(opt.name.to_string(), value.clone());
        if opt.no_log {
            let mut shaped = Spec::new(vec![opt.clone()]);
            shaped.options[0].kind = reliability_core::spec::Kind::Raw;
            out.extend(shaped.secrets(&one));
        } else if let (Some(sub), Value::Array(items)) = (opt.nested(), value) {
            for item in items {
                if let Value::Object(m) = item {
                    out.extend(raw_secrets(sub, m));
                }
            }
        } else if let (Some(sub), Value::Object(m)) = (opt.nested(), value) {
            out.extend(raw_secrets(sub, m));
        }
    }
    out
}

/// Secrets shorter than this are masked inside text only where they stand alone (not
/// next to a letter, digit or `_`): `a` or `ok` as a password must not turn every word
/// that holds the letter into asterisks. Longer ones are masked wherever they occur.
const MIN_SECRET_INSIDE_WORDS: usize = 4;

/// Mask every secret in the result's values, as `AnsibleModule.remove_values` does, and
/// never anything else:
///
/// - keys are never changed: a secret `a` must not rename `failed` or merge `mismatched`
///   with another key (it once turned a failed verification into SUCCESS);
/// - booleans and `null` are never changed: `failed` and `changed` keep their meaning;
/// - a string or number that is a secret becomes [`NO_LOG_PLACEHOLDER`];
/// - inside other strings each occurrence becomes `********` (short secrets: see
///   [`MIN_SECRET_INSIDE_WORDS`]).
fn scrub(value: &mut Value, secrets: &BTreeSet<String>) {
    if secrets.is_empty() {
        return;
    }
    // Longest first, so that a secret holding another is masked whole.
    let mut ordered: Vec<&str> = secrets.iter().map(String::as_str).filter(|s| !s.is_empty()).collect();
    ordered.sort_by_key(|s| std::cmp::Reverse(s.len()));
    scrub_value(value, &ordered);
}

fn scrub_value(value: &mut Value, secrets: &[&str]) {
    match value {
        Value::String(s) => {
            if secrets.contains(&s.as_str()) {
                *s = NO_LOG_PLACEHOLDER.to_string();
                return;
            }
            for secret in secrets {
                if s.contains(secret) {
                    *s = mask_in_text(s, secret);
                }
            }
        }
        Value::Number(n) => {
            if secrets.contains(&n.to_string().as_str()) {
                *value = Value::String(NO_LOG_PLACEHOLDER.to_string());
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|v| scrub_value(v, secrets)),
        Value::Object(map) => map.values_mut().for_each(|v| scrub_value(v, secrets)),
        Value::Bool(_) | Value::Null => {}
    }
}

/// `text` with the occurrences of `secret` replaced by `********`.
fn mask_in_text(text: &str, secret: &str) -> String {
    const MASK: &str = "********";
    if secret.len() >= MIN_SECRET_INSIDE_WORDS {
        return text.replace(secret, MASK);
    }
    let word = |c: Option<char>| c.is_some_and(|c| c.is_alphanumeric() || c == '_');
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    for (at, _) in text.match_indices(secret) {
        let end = at + secret.len();
        if at < copied || word(text[..at].chars().next_back()) || word(text[end..].chars().next()) {
            continue;
        }
        out.push_str(&text[copied..at]);
        out.push_str(MASK);
        copied = end;
    }
    out.push_str(&text[copied..]);
    out
}
