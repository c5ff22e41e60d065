//! Problems found in a configuration, each naming its full path in the file.
//!
//! The engines' schemas (`reliability_core::spec::Spec`) report problems relative to the
//! value they validated (`port: 70000 is out of range 1-65535`, or an unknown key at the
//! path of its mapping). The config is validated piece by piece (a section, one entry of
//! a list), so every problem is re-rooted here at the piece's path in the file, and unknown
//! keys are said the way a config file's reader looks for them:
//! `health_checks.services[2].prot: unknown key; did you mean 'port'?`.

use reliability_core::spec::{Env, Problem, ProblemKind, Spec};
use serde_json::{Map, Value};

/// Every problem of one configuration, in the order found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Problems(pub Vec<String>);

impl Problems {
    pub fn push(&mut self, path: &str, message: impl std::fmt::Display) {
        if path.is_empty() {
            self.0.push(message.to_string());
        } else {
            self.0.push(format!("{path}: {message}"));
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Validates `input` against `spec` at `path`; the validated options, or `None` with
    /// every problem recorded.
    pub fn validate(
        &mut self,
        spec: &Spec,
        input: &Map<String, Value>,
        path: &str,
        env: &Env,
    ) -> Option<Map<String, Value>> {
        match spec.validate(input, env) {
            Ok(out) => Some(out),
            Err(e) => {
                for problem in &e.errors {
                    self.0.push(rooted(problem, path));
                }
                None
            }
        }
    }

    /// Problems an engine reported as text relative to `engine_path` (`ports[0]`, or `""`
    /// for the request itself), re-rooted at `path`.
    pub fn engine(&mut self, problems: &[String], engine_path: &str, path: &str) {
        for p in problems {
            let rest = if engine_path.is_empty() {
                Some(p.as_str())
            } else {
                p.strip_prefix(engine_path)
            };
            match rest {
                Some(rest) if rest.starts_with(['.', '[']) => self.0.push(format!("{path}{rest}")),
                Some(rest) if rest.starts_with(": ") => self.0.push(format!("{path}{rest}")),
                Some(rest) if engine_path.is_empty() => self.0.push(format!("{}{rest}", dot(path))),
                _ => self.0.push(format!("{path}: {p}")),
            }
        }
    }
}

/// `path.` for a non-empty path.
fn dot(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!("{path}.")
    }
}

/// `base` joined with a spec-relative path (`port`, `[2].port`, or empty).
pub fn join(base: &str, rel: &str) -> String {
    match (base.is_empty(), rel.is_empty()) {
        (true, _) => rel.to_string(),
        (false, true) => base.to_string(),
        (false, false) if rel.starts_with('[') => format!("{base}{rel}"),
        (false, false) => format!("{base}.{rel}"),
    }
}

/// One spec problem as a line of `validate-config`.
fn rooted(problem: &Problem, base: &str) -> String {
    let at = join(base, &problem.path);
    match &problem.kind {
        ProblemKind::Unknown { key, suggestion, valid } => {
            let at = join(&at, key);
            match suggestion {
                Some(s) => format!("{at}: unknown key; did you mean '{s}'?"),
                None => format!("{at}: unknown key (valid keys: {})", valid.join(", ")),
            }
        }
        kind => {
            let shown = Problem {
                path: at,
                kind: kind.clone(),
            };
            shown.to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reliability_core::spec::Opt;
    use serde_json::json;

    fn check(input: Value, expected: &[&str]) {
        let spec = Spec::new(vec![Opt::int("port").range(1.0, 65535.0), Opt::str("name")]);
        let mut problems = Problems::default();
        let map = input.as_object().cloned().unwrap_or_default();
        problems.validate(&spec, &map, "health_checks.services[2]", &Env::default());
        assert_eq!(problems.0, expected);
    }

    #[test]
    fn spec_problems_are_rooted() {
        check(
            json!({"prot": 80}),
            &["health_checks.services[2].prot: unknown key; did you mean 'port'?"],
        );
        check(
            json!({"zzzzzz": 1, "port": 0}),
            &[
                "health_checks.services[2].zzzzzz: unknown key (valid keys: name, port)",
                "health_checks.services[2].port: 0 is out of range 1-65535",
            ],
        );
    }

    #[test]
    fn engine_problems_are_rooted() {
        let mut p = Problems::default();
        p.engine(
            &[
                "ports[0].port: bad".into(),
                "ports[0]: options are mutually exclusive: host, hosts".into(),
                "something else".into(),
            ],
            "ports[0]",
            "health_checks.ports[4]",
        );
        p.engine(
            &["escalation: step 1: x".into()],
            "",
            "health_checks.services[0].recovery",
        );
        assert_eq!(
            p.0,
            [
                "health_checks.ports[4].port: bad",
                "health_checks.ports[4]: options are mutually exclusive: host, hosts",
                "health_checks.ports[4]: something else",
                "health_checks.services[0].recovery.escalation: step 1: x",
            ]
        );
    }
}
