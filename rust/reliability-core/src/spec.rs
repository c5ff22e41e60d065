//! Option specs: each module declares its options once, here is how they are read.
//!
//! Ansible applies no argument spec to a binary module (see shared FACTS): YAML task
//! arguments keep their YAML types, ad-hoc `-a 'k=v'` arguments all arrive as strings. So
//! the coercion and validation that `AnsibleModule` does for Python modules happens here,
//! with the same rules (booleans `yes/no/true/false/on/off/1/0`, comma lists, JSON or
//! `k=v` dicts) and error messages that name the option path and the bad value.
//!
//! The same declarations serve three readers: the module protocol (module arguments), the
//! monitor's config loader (the same check schema in YAML) and the test that compares them
//! with the sidecar docs (`to_argument_spec`). Nothing here does I/O; the one piece of the
//! environment that a `path` option needs, the home directory, is passed in.

use crate::quote::{quote, shorten};
use serde_json::{Map, Value};
use std::collections::BTreeSet;
use std::fmt;

/// The longest string an option takes unless it declares its own bound
/// ([`Opt::max_len`]): a path (`PATH_MAX`), a pattern, a name, one argument of a command.
pub const MAX_LEN: usize = 4096;
/// The most elements of a list, or entries of a dict, an option takes unless it declares
/// its own bound ([`Opt::max_items`]); also the most keys of one set of arguments.
pub const MAX_ITEMS: usize = 1024;
/// The most problems one [`SpecError`] lists; the rest are counted.
pub const MAX_PROBLEMS: usize = 20;
/// Keys longer than this get no "did you mean" (the edit distance is quadratic).
const MAX_SUGGESTED_KEY: usize = 64;

/// The type of an option, as named in Ansible's argument specs and docs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Str,
    Int,
    Float,
    Bool,
    Path,
    List,
    Dict,
    Raw,
}

impl Kind {
    /// The name used in `DOCUMENTATION` and `argument_spec`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Str => "str",
            Kind::Int => "int",
            Kind::Float => "float",
            Kind::Bool => "bool",
            Kind::Path => "path",
            Kind::List => "list",
            Kind::Dict => "dict",
            Kind::Raw => "raw",
        }
    }
}

/// One declared option.
#[derive(Clone, Debug)]
pub struct Opt {
    pub name: &'static str,
    pub kind: Kind,
    /// Element type of a `list`.
    pub elements: Option<Kind>,
    pub required: bool,
    pub default: Option<Value>,
    pub choices: Vec<Value>,
    pub aliases: &'static [&'static str],
    pub no_log: bool,
    /// Inclusive numeric bounds for `int` and `float` options (and list elements).
    pub range: Option<(f64, f64)>,
    /// Sub-options of a `dict`, or of each element of a `list` of `dict`s.
    pub options: Option<Box<Spec>>,
    /// The spec of a `dict` that another engine validates later (service_recovery's
    /// `health` is a health_check request): not applied here, but its `no_log` options are
    /// secrets of this spec too, so a secret is declared once, where its option is.
    pub embeds: Option<Box<Spec>>,
    /// The longest string value, in bytes (of the option, of each list element, of each
    /// value of a dict without sub-options): [`MAX_LEN`] unless declared.
    pub max_len: usize,
    /// The most elements of a list or entries of a dict: [`MAX_ITEMS`] unless declared.
    pub max_items: usize,
}

impl Opt {
    fn new(name: &'static str, kind: Kind) -> Opt {
        Opt {
            name,
            kind,
            elements: None,
            required: false,
            default: None,
            choices: Vec::new(),
            aliases: &[],
            no_log: false,
            range: None,
            options: None,
            embeds: None,
            max_len: MAX_LEN,
            max_items: MAX_ITEMS,
        }
    }
    pub fn str(name: &'static str) -> Opt {
        Opt::new(name, Kind::Str)
    }
    pub fn int(name: &'static str) -> Opt {
        Opt::new(name, Kind::Int)
    }
    pub fn float(name: &'static str) -> Opt {
        Opt::new(name, Kind::Float)
    }
    pub fn bool(name: &'static str) -> Opt {
        Opt::new(name, Kind::Bool)
    }
    pub fn path(name: &'static str) -> Opt {
        Opt::new(name, Kind::Path)
    }
    pub fn raw(name: &'static str) -> Opt {
        Opt::new(name, Kind::Raw)
    }
    pub fn list(name: &'static str, elements: Kind) -> Opt {
        Opt {
            elements: Some(elements),
            ..Opt::new(name, Kind::List)
        }
    }
    pub fn dict(name: &'static str) -> Opt {
        Opt::new(name, Kind::Dict)
    }
    pub fn required(mut self) -> Opt {
        self.required = true;
        self
    }
    pub fn default(mut self, value: impl Into<Value>) -> Opt {
        self.default = Some(value.into());
        self
    }
    pub fn choices<T: Into<Value> + Clone>(mut self, choices: &[T]) -> Opt {
        self.choices = choices.iter().cloned().map(Into::into).collect();
        self
    }
    pub fn aliases(mut self, aliases: &'static [&'static str]) -> Opt {
        self.aliases = aliases;
        self
    }
    pub fn no_log(mut self) -> Opt {
        self.no_log = true;
        self
    }
    pub fn range(mut self, min: f64, max: f64) -> Opt {
        self.range = Some((min, max));
        self
    }
    pub fn options(mut self, spec: Spec) -> Opt {
        self.options = Some(Box::new(spec));
        self
    }
    pub fn max_len(mut self, bytes: usize) -> Opt {
        self.max_len = bytes;
        self
    }
    pub fn max_items(mut self, items: usize) -> Opt {
        self.max_items = items;
        self
    }
    /// See [`Opt::embeds`](struct@Opt#structfield.embeds).
    pub fn embeds(mut self, spec: Spec) -> Opt {
        self.embeds = Some(Box::new(spec));
        self
    }
    /// The spec of what this option holds, for finding its secrets: its sub-options, or
    /// the spec it embeds.
    pub fn nested(&self) -> Option<&Spec> {
        self.options.as_deref().or(self.embeds.as_deref())
    }
}

/// A set of options plus the constraints between them (one level of nesting).
#[derive(Clone, Debug, Default)]
pub struct Spec {
    pub options: Vec<Opt>,
    pub mutually_exclusive: Vec<Vec<&'static str>>,
    pub required_one_of: Vec<Vec<&'static str>>,
    pub required_together: Vec<Vec<&'static str>>,
    /// `(option, value, requirements)`: when `option == value`, all of `requirements` are needed.
    pub required_if: Vec<(&'static str, Value, Vec<&'static str>)>,
}

impl Spec {
    pub fn new(options: Vec<Opt>) -> Spec {
        Spec {
            options,
            ..Spec::default()
        }
    }
    pub fn mutually_exclusive(mut self, names: &[&'static str]) -> Spec {
        self.mutually_exclusive.push(names.to_vec());
        self
    }
    pub fn required_one_of(mut self, names: &[&'static str]) -> Spec {
        self.required_one_of.push(names.to_vec());
        self
    }
    pub fn required_together(mut self, names: &[&'static str]) -> Spec {
        self.required_together.push(names.to_vec());
        self
    }
    pub fn required_if(mut self, option: &'static str, value: impl Into<Value>, requirements: &[&'static str]) -> Spec {
        self.required_if.push((option, value.into(), requirements.to_vec()));
        self
    }

    pub fn get(&self, name: &str) -> Option<&Opt> {
        self.options.iter().find(|o| o.name == name)
    }

    /// Coerce and validate `input` (the module arguments without `_ansible_*` keys).
    ///
    /// Returns every option of the spec: given values coerced to their declared type,
    /// absent ones set to their default or `null`. Aliases are resolved to the option name.
    pub fn validate(&self, input: &Map<String, Value>, env: &Env) -> Result<Map<String, Value>, SpecError> {
        let mut errors = Vec::new();
        let out = if input.len() > MAX_ITEMS {
            errors.push(too_many("", input.len(), MAX_ITEMS));
            Map::new()
        } else {
            self.validate_at("", input, env, &mut errors)
        };
        if errors.len() > MAX_PROBLEMS {
            let more = errors.len() - MAX_PROBLEMS;
            errors.truncate(MAX_PROBLEMS);
            errors.push(Problem::new("", ProblemKind::More(more)));
        }
        if errors.is_empty() {
            Ok(out)
        } else {
            Err(SpecError { errors })
        }
    }

    fn validate_at(
        &self,
        prefix: &str,
        input: &Map<String, Value>,
        env: &Env,
        errors: &mut Vec<Problem>,
    ) -> Map<String, Value> {
        // Resolve names and aliases first, so that unknown keys are reported together.
        let mut given: Map<String, Value> = Map::new();
        for (key, value) in input {
            let Some(opt) = self
                .options
                .iter()
                .find(|o| o.name == key || o.aliases.contains(&key.as_str()))
            else {
                errors.push(Problem::new(
                    prefix,
                    ProblemKind::Unknown {
                        key: key.clone(),
                        suggestion: self.closest(key),
                        valid: self.names(),
                    },
                ));
                continue;
            };
            if given.contains_key(opt.name) {
                errors.push(Problem::new(&join(prefix, opt.name), ProblemKind::GivenTwice));
                continue;
            }
            // `null` means "not given", as a YAML `key:` with no value reads.
            if !value.is_null() {
                given.insert(opt.name.to_string(), value.clone());
            }
        }

        for group in &self.mutually_exclusive {
            let present: Vec<&str> = group.iter().copied().filter(|n| given.contains_key(*n)).collect();
            if present.len() > 1 {
                errors.push(Problem::new(prefix, ProblemKind::MutuallyExclusive(owned(&present))));
            }
        }
        for group in &self.required_one_of {
            if !group.iter().any(|n| given.contains_key(*n)) {
                errors.push(Problem::new(prefix, ProblemKind::RequiredOneOf(owned(group))));
            }
        }
        for group in &self.required_together {
            let present = group.iter().filter(|n| given.contains_key(**n)).count();
            if present > 0 && present < group.len() {
                errors.push(Problem::new(prefix, ProblemKind::RequiredTogether(owned(group))));
            }
        }

        let mut out = Map::new();
        for opt in &self.options {
            let path = join(prefix, opt.name);
            let value = match given.get(opt.name) {
                Some(v) => match coerce(opt, v, &path, env, errors) {
                    Some(v) => v,
                    None => continue,
                },
                None if opt.required => {
                    errors.push(Problem::new(&path, ProblemKind::Missing));
                    continue;
                }
                None => match (&opt.default, &opt.options, opt.kind) {
                    (Some(d), _, _) => d.clone(),
                    // A dict with sub-options gets its sub-defaults, as AnsibleModule does
                    // only when asked (apply_defaults); we always do: simpler to read.
                    (None, Some(sub), Kind::Dict) => Value::Object(sub.validate_at(&path, &Map::new(), env, errors)),
                    _ => Value::Null,
                },
            };
            out.insert(opt.name.to_string(), value);
        }

        for (option, expected, requirements) in &self.required_if {
            if out.get(*option) == Some(expected) {
                let missing: Vec<&str> = requirements
                    .iter()
                    .copied()
                    .filter(|n| out.get(*n).is_none_or(Value::is_null))
                    .collect();
                if !missing.is_empty() {
                    errors.push(Problem::new(
                        prefix,
                        ProblemKind::RequiredIf {
                            option: option.to_string(),
                            value: expected.clone(),
                            missing: owned(&missing),
                        },
                    ));
                }
            }
        }
        out
    }

    fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .options
            .iter()
            .flat_map(|o| std::iter::once(o.name).chain(o.aliases.iter().copied()))
            .map(String::from)
            .collect();
        names.sort();
        names
    }

    fn closest(&self, key: &str) -> Option<String> {
        if key.len() > MAX_SUGGESTED_KEY {
            return None;
        }
        self.names()
            .into_iter()
            .map(|n| (edit_distance(key, &n), n))
            .filter(|(d, n)| *d <= 2.max(n.len() / 3))
            .min_by_key(|(d, _)| *d)
            .map(|(_, n)| n)
    }

    /// The values of every `no_log` option present in `params` (already validated), as
    /// strings: what must never appear in a result.
    pub fn secrets(&self, params: &Map<String, Value>) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        self.collect_secrets(params, &mut out);
        out
    }

    fn collect_secrets(&self, params: &Map<String, Value>, out: &mut BTreeSet<String>) {
        for opt in &self.options {
            let Some(value) = params.get(opt.name) else { continue };
            if opt.no_log {
                leaf_strings(value, out);
            } else if let Some(sub) = opt.nested() {
                match value {
                    Value::Object(map) => sub.collect_secrets(map, out),
                    Value::Array(items) => {
                        for item in items {
                            if let Value::Object(map) = item {
                                sub.collect_secrets(map, out);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
    }

    /// `params` with every `no_log` option replaced, for `invocation.module_args`.
    pub fn mask_no_log(&self, params: &Map<String, Value>) -> Map<String, Value> {
        let mut out = params.clone();
        for opt in &self.options {
            let Some(value) = out.get_mut(opt.name) else { continue };
            if value.is_null() {
                continue;
            }
            if opt.no_log {
                *value = Value::String(NO_LOG_PLACEHOLDER.to_string());
            } else if let Some(sub) = opt.nested() {
                match value {
                    Value::Object(map) => *map = sub.mask_no_log(map),
                    Value::Array(items) => {
                        for item in items {
                            if let Value::Object(map) = item {
                                *map = sub.mask_no_log(map);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        out
    }

    /// The spec in the shape of Ansible's `argument_spec` (and of `DOCUMENTATION.options`).
    pub fn to_argument_spec(&self) -> Value {
        let mut out = Map::new();
        for opt in &self.options {
            let mut o = Map::new();
            o.insert("type".into(), opt.kind.name().into());
            if let Some(e) = opt.elements {
                o.insert("elements".into(), e.name().into());
            }
            o.insert("required".into(), opt.required.into());
            if let Some(d) = &opt.default {
                o.insert("default".into(), d.clone());
            }
            if !opt.choices.is_empty() {
                o.insert("choices".into(), Value::Array(opt.choices.clone()));
            }
            if !opt.aliases.is_empty() {
                o.insert("aliases".into(), opt.aliases.iter().map(|a| Value::from(*a)).collect());
            }
            if opt.no_log {
                o.insert("no_log".into(), true.into());
            }
            if let Some(sub) = &opt.options {
                o.insert("options".into(), sub.to_argument_spec());
            }
            out.insert(opt.name.to_string(), Value::Object(o));
        }
        Value::Object(out)
    }
}

/// What a module prints in place of a `no_log` value, the same text as `AnsibleModule`.
pub const NO_LOG_PLACEHOLDER: &str = "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER";

/// The only piece of the environment option coercion needs: `~` in `path` options.
#[derive(Clone, Debug, Default)]
pub struct Env {
    pub home: Option<String>,
}

/// Every problem found in one set of arguments (all are reported, not just the first).
#[derive(Clone, Debug, PartialEq)]
pub struct SpecError {
    pub errors: Vec<Problem>,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.errors.iter().map(ToString::to_string).collect();
        f.write_str(&parts.join("; "))
    }
}

impl std::error::Error for SpecError {}

/// One problem, at an option path such as `ports[2].port`.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    pub path: String,
    pub kind: ProblemKind,
}

impl Problem {
    fn new(path: &str, kind: ProblemKind) -> Problem {
        Problem {
            path: path.to_string(),
            kind,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum ProblemKind {
    Unknown {
        key: String,
        suggestion: Option<String>,
        valid: Vec<String>,
    },
    GivenTwice,
    Missing,
    WrongType {
        expected: &'static str,
        value: Value,
        detail: Option<String>,
    },
    NotInChoices {
        value: Value,
        choices: Vec<Value>,
    },
    OutOfRange {
        value: Value,
        min: f64,
        max: f64,
    },
    MutuallyExclusive(Vec<String>),
    RequiredOneOf(Vec<String>),
    RequiredTogether(Vec<String>),
    RequiredIf {
        option: String,
        value: Value,
        missing: Vec<String>,
    },
    /// A string longer than its option takes: `shown` is its quoted prefix.
    TooLong {
        shown: String,
        len: usize,
        max: usize,
    },
    /// A list with more elements, or a dict with more entries, than its option takes.
    TooMany {
        count: usize,
        max: usize,
    },
    /// Problems left out of the list (there were more than [`MAX_PROBLEMS`]).
    More(usize),
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = |f: &mut fmt::Formatter<'_>| {
            if self.path.is_empty() {
                Ok(())
            } else {
                write!(f, "{}: ", self.path)
            }
        };
        at(f)?;
        match &self.kind {
            ProblemKind::Unknown { key, suggestion, valid } => {
                write!(f, "unknown option {}", quote(key))?;
                if let Some(s) = suggestion {
                    write!(f, "; did you mean '{s}'?")?;
                }
                write!(f, " (valid options: {})", valid.join(", "))
            }
            ProblemKind::GivenTwice => write!(f, "given twice (by its name and an alias)"),
            ProblemKind::Missing => write!(f, "missing required option"),
            ProblemKind::WrongType {
                expected,
                value,
                detail,
            } => {
                write!(f, "{} is not a valid {expected}", show(value))?;
                if let Some(d) = detail {
                    write!(f, " ({d})")?;
                }
                Ok(())
            }
            ProblemKind::NotInChoices { value, choices } => {
                let choices: Vec<String> = choices.iter().map(show).collect();
                write!(f, "{} is not one of {}", show(value), choices.join(", "))
            }
            ProblemKind::OutOfRange { value, min, max } => {
                write!(f, "{} is out of range {}-{}", show(value), num(*min), num(*max))
            }
            ProblemKind::MutuallyExclusive(names) => {
                write!(f, "options are mutually exclusive: {}", names.join(", "))
            }
            ProblemKind::RequiredOneOf(names) => {
                write!(f, "one of these options is required: {}", names.join(", "))
            }
            ProblemKind::RequiredTogether(names) => {
                write!(f, "these options must be given together: {}", names.join(", "))
            }
            ProblemKind::TooLong { shown, len, max } => {
                write!(f, "{shown} is too long: {len} bytes, at most {max} allowed")
            }
            ProblemKind::TooMany { count, max } => {
                write!(f, "too many items: {count}, at most {max} allowed")
            }
            ProblemKind::More(n) => write!(f, "and {n} more problems"),
            ProblemKind::RequiredIf { option, value, missing } => {
                write!(
                    f,
                    "{option} is {} but these options are missing: {}",
                    show(value),
                    missing.join(", ")
                )
            }
        }
    }
}

/// A value as it appears in a message: strings in single quotes, the rest as JSON.
fn show(value: &Value) -> String {
    match value {
        Value::String(s) => quote(s),
        // A float option given as `60` reads back as 60.0: say 60, as the user wrote it.
        Value::Number(n) if n.is_f64() => n.as_f64().map(num).unwrap_or_else(|| n.to_string()),
        other => shorten(&other.to_string()),
    }
}

fn num(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

fn owned(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn leaf_strings(value: &Value, out: &mut BTreeSet<String>) {
    match value {
        Value::Null => {}
        Value::String(s) => {
            if !s.is_empty() {
                out.insert(s.clone());
            }
        }
        Value::Array(items) => items.iter().for_each(|v| leaf_strings(v, out)),
        Value::Object(map) => map.values().for_each(|v| leaf_strings(v, out)),
        other => {
            out.insert(other.to_string());
        }
    }
}

/// Coerce one given value; on failure push the problem and return `None`.
fn coerce(opt: &Opt, value: &Value, path: &str, env: &Env, errors: &mut Vec<Problem>) -> Option<Value> {
    let coerced = match opt.kind {
        Kind::List => {
            if let Some(count) = list_len(value).filter(|n| *n > opt.max_items) {
                errors.push(too_many(path, count, opt.max_items));
                return None;
            }
            let items = match to_list(value) {
                Ok(items) => items,
                Err(()) => {
                    errors.push(wrong_type(path, "list", value, None));
                    return None;
                }
            };
            let elements = opt.elements.unwrap_or(Kind::Raw);
            let mut out = Vec::with_capacity(items.len());
            let before = errors.len();
            for (i, item) in items.iter().enumerate() {
                let item_path = format!("{path}[{i}]");
                let Some(v) = coerce_scalar(elements, item, &item_path, env, errors) else {
                    continue;
                };
                let v = match (&opt.options, v) {
                    (Some(_), Value::Object(map)) if map.len() > opt.max_items => {
                        errors.push(too_many(&item_path, map.len(), opt.max_items));
                        continue;
                    }
                    (Some(sub), Value::Object(map)) => Value::Object(sub.validate_at(&item_path, &map, env, errors)),
                    (_, v) => v,
                };
                if check_value(opt, &v, &item_path, errors) {
                    out.push(v);
                }
            }
            if errors.len() > before {
                return None;
            }
            return Some(Value::Array(out));
        }
        kind => coerce_scalar(kind, value, path, env, errors)?,
    };
    let coerced = match (&opt.options, coerced) {
        (Some(_), Value::Object(map)) if map.len() > opt.max_items => {
            errors.push(too_many(path, map.len(), opt.max_items));
            return None;
        }
        (Some(sub), Value::Object(map)) => {
            let before = errors.len();
            let v = sub.validate_at(path, &map, env, errors);
            if errors.len() > before {
                return None;
            }
            Value::Object(v)
        }
        (_, v) => v,
    };
    check_value(opt, &coerced, path, errors).then_some(coerced)
}

/// Length, choices and range of one (scalar or element) value.
fn check_value(opt: &Opt, value: &Value, path: &str, errors: &mut Vec<Problem>) -> bool {
    if !check_size(opt, value, path, errors) {
        return false;
    }
    if !opt.choices.is_empty() && !opt.choices.contains(value) {
        errors.push(Problem::new(
            path,
            ProblemKind::NotInChoices {
                value: value.clone(),
                choices: opt.choices.clone(),
            },
        ));
        return false;
    }
    if let (Some((min, max)), Some(n)) = (opt.range, value.as_f64()) {
        if n < min || n > max {
            errors.push(Problem::new(
                path,
                ProblemKind::OutOfRange {
                    value: value.clone(),
                    min,
                    max,
                },
            ));
            return false;
        }
    }
    true
}

/// A string within `opt.max_len`; a dict without sub-options within `opt.max_items`
/// entries, each string value within `opt.max_len`.
fn check_size(opt: &Opt, value: &Value, path: &str, errors: &mut Vec<Problem>) -> bool {
    let too_long = |s: &str| s.len() > opt.max_len;
    let long = |at: &str, s: &str| {
        Problem::new(
            at,
            ProblemKind::TooLong {
                shown: quote(s),
                len: s.len(),
                max: opt.max_len,
            },
        )
    };
    match value {
        Value::String(s) if too_long(s) => {
            errors.push(long(path, s));
            false
        }
        Value::Object(map) if opt.options.is_none() => {
            if map.len() > opt.max_items {
                errors.push(too_many(path, map.len(), opt.max_items));
                return false;
            }
            let before = errors.len();
            for (key, v) in map {
                if let Value::String(s) = v {
                    if too_long(s) {
                        errors.push(long(&format!("{path}.{}", shorten(key)), s));
                    }
                }
            }
            errors.len() == before
        }
        _ => true,
    }
}

fn too_many(path: &str, count: usize, max: usize) -> Problem {
    Problem::new(path, ProblemKind::TooMany { count, max })
}

/// How many elements `value` makes as a list, counted without making them (a string of a
/// million commas must not become a million strings first); `None` when it takes parsing.
fn list_len(value: &Value) -> Option<usize> {
    match value {
        Value::Array(items) => Some(items.len()),
        Value::String(s) if s.trim().is_empty() || s.trim_start().starts_with('[') => None,
        Value::String(s) => Some(s.bytes().filter(|b| *b == b',').count() + 1),
        _ => None,
    }
}

fn wrong_type(path: &str, expected: &'static str, value: &Value, detail: Option<String>) -> Problem {
    Problem::new(
        path,
        ProblemKind::WrongType {
            expected,
            value: value.clone(),
            detail,
        },
    )
}

fn coerce_scalar(kind: Kind, value: &Value, path: &str, env: &Env, errors: &mut Vec<Problem>) -> Option<Value> {
    let result = match kind {
        Kind::Raw => Ok(value.clone()),
        Kind::Str => to_str(value).map(Value::String),
        Kind::Path => to_str(value).map(|s| Value::String(expand_home(&s, env))),
        Kind::Int => to_int(value).map(Value::from),
        Kind::Float => to_float(value).and_then(|f| serde_json::Number::from_f64(f).map(Value::Number).ok_or(None)),
        Kind::Bool => to_bool(value).map(Value::Bool),
        Kind::Dict => to_dict(value).map(Value::Object),
        Kind::List => to_list(value).map(Value::Array).map_err(|()| None),
    };
    match result {
        Ok(v) => Some(v),
        Err(detail) => {
            errors.push(wrong_type(path, kind.name(), value, detail));
            None
        }
    }
}

type Coerced<T> = Result<T, Option<String>>;

fn to_str(value: &Value) -> Coerced<String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(if *b { "True" } else { "False" }.to_string()),
        _ => Err(None),
    }
}

fn to_int(value: &Value) -> Coerced<i64> {
    match value {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(i)
            } else {
                match n.as_f64() {
                    Some(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
                    _ => Err(Some("not a whole number".into())),
                }
            }
        }
        Value::String(s) => {
            let t = s.trim();
            t.parse::<i64>().or_else(|_| match t.parse::<f64>() {
                Ok(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Ok(f as i64),
                _ => Err(None),
            })
        }
        _ => Err(None),
    }
}

fn to_float(value: &Value) -> Coerced<f64> {
    let f = match value {
        Value::Number(n) => n.as_f64().ok_or(None)?,
        Value::String(s) => s.trim().parse::<f64>().map_err(|_| None)?,
        _ => return Err(None),
    };
    if f.is_finite() {
        Ok(f)
    } else {
        Err(Some("not a finite number".into()))
    }
}

/// Ansible's boolean spellings (`module_utils.parsing.convert_bool`).
pub fn to_bool(value: &Value) -> Coerced<bool> {
    match value {
        Value::Bool(b) => Ok(*b),
        Value::Number(n) if n.as_f64() == Some(1.0) => Ok(true),
        Value::Number(n) if n.as_f64() == Some(0.0) => Ok(false),
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "y" | "yes" | "on" | "1" | "true" | "t" | "1.0" => Ok(true),
            "n" | "no" | "off" | "0" | "false" | "f" | "0.0" => Ok(false),
            _ => Err(Some("use yes/no, true/false, on/off or 1/0".into())),
        },
        _ => Err(None),
    }
}

fn to_list(value: &Value) -> Result<Vec<Value>, ()> {
    match value {
        Value::Array(items) => Ok(items.clone()),
        // `-a 'subset=a,b'`: a comma list. An empty string is an empty list.
        Value::String(s) if s.trim().is_empty() => Ok(Vec::new()),
        Value::String(s) if s.trim_start().starts_with('[') => match serde_json::from_str(s) {
            Ok(Value::Array(items)) => Ok(items),
            _ => Err(()),
        },
        Value::String(s) => Ok(s.split(',').map(|p| Value::String(p.trim().to_string())).collect()),
        Value::Number(_) | Value::Bool(_) => Ok(vec![value.clone()]),
        _ => Err(()),
    }
}

fn to_dict(value: &Value) -> Coerced<Map<String, Value>> {
    match value {
        Value::Object(map) => Ok(map.clone()),
        Value::String(s) if s.trim_start().starts_with('{') => match serde_json::from_str(s) {
            Ok(Value::Object(map)) => Ok(map),
            Ok(_) => Err(Some("JSON text is not an object".into())),
            Err(e) => Err(Some(format!("invalid JSON: {e}"))),
        },
        Value::String(s) => parse_kv(s),
        _ => Err(None),
    }
}

/// `k1=v1, k2=v2` or `k1=v1 k2=v2`, as `check_type_dict` reads it (quotes protect separators).
fn parse_kv(s: &str) -> Coerced<Map<String, Value>> {
    let mut fields = Vec::new();
    let mut current = String::new();
    let mut open_quote: Option<char> = None;
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            current.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if let Some(q) = open_quote {
            if c == q {
                open_quote = None;
            } else {
                current.push(c);
            }
        } else if c == '"' || c == '\'' {
            open_quote = Some(c);
        } else if c == ',' || c == ' ' {
            if !current.is_empty() {
                fields.push(std::mem::take(&mut current));
            }
        } else {
            current.push(c);
        }
    }
    if open_quote.is_some() {
        return Err(Some("unbalanced quote".into()));
    }
    if !current.is_empty() {
        fields.push(current);
    }
    let mut map = Map::new();
    for field in fields {
        let Some((k, v)) = field.split_once('=') else {
            return Err(Some(format!("{} is not key=value", quote(&field))));
        };
        map.insert(k.trim().to_string(), Value::String(v.trim().to_string()));
    }
    Ok(map)
}

fn expand_home(path: &str, env: &Env) -> String {
    match (path.strip_prefix('~'), &env.home) {
        (Some(rest), Some(home)) if rest.is_empty() || rest.starts_with('/') => format!("{home}{rest}"),
        _ => path.to_string(),
    }
}

/// Levenshtein distance, for "did you mean" suggestions.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn spec() -> Spec {
        Spec::new(vec![
            Opt::str("name").required().aliases(&["unit"]),
            Opt::int("timeout").default(5).range(1.0, 3600.0),
            Opt::bool("enabled").default(true),
            Opt::float("ratio"),
            Opt::path("dir").default("/var/lib/x"),
            Opt::str("state").choices(&["started", "stopped"]).default("started"),
            Opt::list("subset", Kind::Str).default(json!(["all"])),
            Opt::dict("labels"),
            Opt::str("password").no_log(),
            Opt::list("ports", Kind::Dict).options(Spec::new(vec![
                Opt::str("host").default("127.0.0.1"),
                Opt::int("port").required().range(1.0, 65535.0),
                Opt::str("token").no_log(),
            ])),
            Opt::str("a"),
            Opt::str("b"),
        ])
        .mutually_exclusive(&["a", "b"])
    }

    /// Validate `input` and compare either the listed output fields or the error text.
    fn check(input: Value, expected: Result<Value, &str>) {
        let env = Env {
            home: Some("/root".into()),
        };
        let Value::Object(map) = input else {
            panic!("test input must be an object")
        };
        match (spec().validate(&map, &env), expected) {
            (Ok(out), Ok(Value::Object(want))) => {
                for (k, v) in want {
                    assert_eq!(out.get(&k), Some(&v), "field {k} of {out:?}");
                }
            }
            (Err(e), Err(want)) => assert_eq!(e.to_string(), want),
            (got, want) => panic!("got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn defaults_and_aliases() {
        check(
            json!({"unit": "nginx"}),
            Ok(
                json!({"name": "nginx", "timeout": 5, "enabled": true, "state": "started",
                      "subset": ["all"], "labels": null, "dir": "/var/lib/x"}),
            ),
        );
        check(json!({"name": "x", "timeout": null}), Ok(json!({"timeout": 5})));
    }

    #[test]
    fn adhoc_strings_are_coerced() {
        check(
            json!({"name": "x", "timeout": "30", "enabled": "no", "ratio": "0.5", "subset": "cpu, !mounts",
                   "labels": "team=sre env='prod east'", "dir": "~/state"}),
            Ok(
                json!({"timeout": 30, "enabled": false, "ratio": 0.5, "subset": ["cpu", "!mounts"],
                      "labels": {"team": "sre", "env": "prod east"}, "dir": "/root/state"}),
            ),
        );
        for (text, want) in [
            ("yes", true),
            ("On", true),
            ("1", true),
            ("true", true),
            ("off", false),
            ("0", false),
            ("False", false),
        ] {
            check(json!({"name": "x", "enabled": text}), Ok(json!({"enabled": want})));
        }
        check(
            json!({"name": "x", "labels": "{\"a\": 1}"}),
            Ok(json!({"labels": {"a": 1}})),
        );
        check(
            json!({"name": "x", "subset": "[\"a\",\"b\"]"}),
            Ok(json!({"subset": ["a", "b"]})),
        );
        check(json!({"name": 12}), Ok(json!({"name": "12"})));
        check(json!({"name": "x", "timeout": 7.0}), Ok(json!({"timeout": 7})));
    }

    #[test]
    fn bad_input_names_option_and_value() {
        check(json!({"name": "x", "timout": 3}),
            Err("unknown option 'timout'; did you mean 'timeout'? (valid options: a, b, dir, enabled, labels, name, password, ports, ratio, state, subset, timeout, unit)"));
        check(json!({}), Err("name: missing required option"));
        check(
            json!({"name": "x", "timeout": "soon"}),
            Err("timeout: 'soon' is not a valid int"),
        );
        check(
            json!({"name": "x", "timeout": 2.5}),
            Err("timeout: 2.5 is not a valid int (not a whole number)"),
        );
        check(
            json!({"name": "x", "timeout": 0}),
            Err("timeout: 0 is out of range 1-3600"),
        );
        check(
            json!({"name": "x", "enabled": "maybe"}),
            Err("enabled: 'maybe' is not a valid bool (use yes/no, true/false, on/off or 1/0)"),
        );
        check(
            json!({"name": "x", "state": "running"}),
            Err("state: 'running' is not one of 'started', 'stopped'"),
        );
        check(
            json!({"name": "x", "a": "1", "b": "2"}),
            Err("options are mutually exclusive: a, b"),
        );
        check(json!({"name": ["x"]}), Err("name: [\"x\"] is not a valid str"));
        check(
            json!({"name": "x", "labels": "novalue"}),
            Err("labels: 'novalue' is not a valid dict ('novalue' is not key=value)"),
        );
        check(
            json!({"name": "x", "unit": "y"}),
            Err("name: given twice (by its name and an alias)"),
        );
        check(
            json!({"name": "x", "ratio": "NaN"}),
            Err("ratio: 'NaN' is not a valid float (not a finite number)"),
        );
    }

    #[test]
    fn an_embedded_spec_carries_its_secrets() {
        let inner = Spec::new(vec![
            Opt::list("http", Kind::Dict).options(Spec::new(vec![Opt::str("url"), Opt::dict("headers").no_log()]))
        ]);
        let outer = Spec::new(vec![
            Opt::dict("health").embeds(inner.clone()),
            Opt::dict("failover").options(Spec::new(vec![Opt::dict("health").embeds(inner)])),
        ]);
        let health = json!({"http": [{"url": "http://h/", "headers": {"Authorization": "Bearer x1"}}]});
        let params = outer
            .validate(
                &obj(json!({"health": health, "failover": {"health": health}})),
                &Env::default(),
            )
            .expect("valid");
        assert_eq!(outer.secrets(&params), BTreeSet::from(["Bearer x1".to_string()]));
        let masked = Value::Object(outer.mask_no_log(&params));
        assert_eq!(masked["health"]["http"][0]["headers"], json!(NO_LOG_PLACEHOLDER));
        assert_eq!(
            masked["failover"]["health"]["http"][0]["headers"],
            json!(NO_LOG_PLACEHOLDER)
        );
        assert_eq!(masked["health"]["http"][0]["url"], json!("http://h/"));
        // Embedding validates nothing: the embedding engine does, later.
        assert!(outer
            .validate(&obj(json!({"health": {"anything": 1}})), &Env::default())
            .is_ok());
    }

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("an object")
    }

    #[test]
    fn huge_values_are_refused_at_the_boundary_and_quoted_by_a_prefix() {
        let huge = "*".repeat(500_000);
        let prefix = "*".repeat(crate::quote::SHOWN);
        let long =
            |at: &str| format!("{at}: '{prefix}'... (500000 bytes) is too long: 500000 bytes, at most 4096 allowed");
        check(json!({"name": huge}), Err(&long("name")));
        check(json!({"name": "x", "dir": huge}), Err(&long("dir")));
        check(json!({"name": "x", "subset": ["a", huge]}), Err(&long("subset[1]")));
        check(json!({"name": "x", "labels": {"k": huge}}), Err(&long("labels.k")));
        check(
            json!({"name": "x", "ports": [{"port": 1, "host": huge}]}),
            Err(&long("ports[0].host")),
        );
        // Not in the choices, or of the wrong type: the value is still quoted by its prefix.
        let err = spec().validate(&obj(json!({"name": "x", "state": "s".repeat(4000)})), &Env::default());
        let msg = err.expect_err("not a choice").to_string();
        assert!(
            msg.len() < 300 && msg.contains("... (4000 bytes) is not one of"),
            "{msg}"
        );
        let err = spec().validate(&obj(json!({"name": "x", "ratio": [huge]})), &Env::default());
        let msg = err.expect_err("not a float").to_string();
        assert!(
            msg.len() < 300 && msg.ends_with("... (500004 bytes) is not a valid float"),
            "{msg}"
        );
        // An unknown key of any length is named by a prefix, with no "did you mean".
        let err = spec().validate(&obj(json!({"name": "x", huge.clone(): 1})), &Env::default());
        let msg = err.expect_err("unknown").to_string();
        assert!(
            msg.starts_with(&format!("unknown option '{prefix}'... (500000 bytes) (valid")),
            "{msg}"
        );
        // A declared bound replaces the default.
        let bounded = Spec::new(vec![
            Opt::str("sql").max_len(65_536),
            Opt::list("l", Kind::Str).max_items(2),
        ]);
        let ok = bounded.validate(&obj(json!({"sql": "s".repeat(60_000)})), &Env::default());
        assert!(ok.is_ok());
        let err = bounded.validate(&obj(json!({"l": "a,b,c"})), &Env::default());
        assert_eq!(
            err.expect_err("three").to_string(),
            "l: too many items: 3, at most 2 allowed"
        );
    }

    #[test]
    fn huge_lists_and_dicts_are_refused_before_they_are_built() {
        let commas = ",".repeat(2_000_000);
        check(
            json!({"name": "x", "subset": commas}),
            Err("subset: too many items: 2000001, at most 1024 allowed"),
        );
        let many: Map<String, Value> = (0..5000).map(|i| (format!("k{i}"), json!(1))).collect();
        check(
            json!({"name": "x", "labels": many.clone()}),
            Err("labels: too many items: 5000, at most 1024 allowed"),
        );
        check(
            json!({"name": "x", "ports": [Value::Object(many.clone())]}),
            Err("ports[0]: too many items: 5000, at most 1024 allowed"),
        );
        check(Value::Object(many), Err("too many items: 5000, at most 1024 allowed"));
        // At most MAX_PROBLEMS problems are listed, the rest counted.
        let unknown: Map<String, Value> = (0..100).map(|i| (format!("k{i}"), json!(1))).collect();
        let mut input = unknown;
        input.insert("name".into(), json!("x"));
        let err = spec().validate(&input, &Env::default()).expect_err("unknown keys");
        assert_eq!(err.errors.len(), MAX_PROBLEMS + 1);
        assert_eq!(err.errors[MAX_PROBLEMS].to_string(), "and 80 more problems");
    }

    #[test]
    fn nested_options_have_paths() {
        check(
            json!({"name": "x", "ports": [{"port": 80}, {"port": "443", "host": "::1"}]}),
            Ok(
                json!({"ports": [{"host": "127.0.0.1", "port": 80, "token": null}, {"host": "::1", "port": 443, "token": null}]}),
            ),
        );
        check(
            json!({"name": "x", "ports": [{"port": 1}, {"port": 2}, {"port": 70000}]}),
            Err("ports[2].port: 70000 is out of range 1-65535"),
        );
        check(json!({"name": "x", "ports": [{"prot": 1}]}),
            Err("ports[0]: unknown option 'prot'; did you mean 'port'? (valid options: host, port, token); ports[0].port: missing required option"));
        check(
            json!({"name": "x", "ports": ["web"]}),
            Err("ports[0]: 'web' is not a valid dict ('web' is not key=value)"),
        );
    }

    #[test]
    fn every_problem_is_reported() {
        check(json!({"timeout": "x", "bogus": 1}),
            Err("unknown option 'bogus' (valid options: a, b, dir, enabled, labels, name, password, ports, ratio, state, subset, timeout, unit); name: missing required option; timeout: 'x' is not a valid int"));
    }

    #[test]
    fn secrets_are_collected_and_masked() {
        let env = Env::default();
        let s = spec();
        let input = json!({"name": "x", "password": "hunter2", "ports": [{"port": 1, "token": "t0ken"}]});
        let out = s.validate(input.as_object().expect("object"), &env).expect("valid");
        let secrets: Vec<String> = s.secrets(&out).into_iter().collect();
        assert_eq!(secrets, ["hunter2", "t0ken"]);
        let masked = Value::Object(s.mask_no_log(&out)).to_string();
        assert!(!masked.contains("hunter2") && !masked.contains("t0ken"), "{masked}");
        assert_eq!(masked.matches(NO_LOG_PLACEHOLDER).count(), 2);
    }

    #[test]
    fn required_one_of_together_and_if() {
        let s = Spec::new(vec![
            Opt::str("x"),
            Opt::str("y"),
            Opt::str("mode").default("a"),
            Opt::str("z"),
        ])
        .required_one_of(&["x", "y"])
        .required_together(&["x", "z"])
        .required_if("mode", "b", &["z"]);
        let env = Env::default();
        let run = |v: Value| {
            s.validate(v.as_object().expect("object"), &env)
                .map_err(|e| e.to_string())
        };
        assert_eq!(run(json!({})).unwrap_err(), "one of these options is required: x, y");
        assert_eq!(
            run(json!({"x": "1"})).unwrap_err(),
            "these options must be given together: x, z"
        );
        assert_eq!(
            run(json!({"y": "1", "mode": "b"})).unwrap_err(),
            "mode is 'b' but these options are missing: z"
        );
        assert!(run(json!({"y": "1"})).is_ok());
    }

    #[test]
    fn argument_spec_shape() {
        let spec = Spec::new(vec![
            Opt::str("state").choices(&["a", "b"]).default("a"),
            Opt::str("pw").no_log(),
        ]);
        assert_eq!(
            spec.to_argument_spec(),
            json!({"state": {"type": "str", "required": false, "default": "a", "choices": ["a", "b"]},
                   "pw": {"type": "str", "required": false, "no_log": true}})
        );
    }
}
