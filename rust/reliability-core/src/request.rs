//! What every engine returns when a request cannot run: all of its problems at once, each
//! naming the option (by its path) and the value at fault. The module, the daemon's
//! config loader and the CLI show the same list. [`Report`] is what every engine's report
//! says besides its own fields.

use std::fmt;

/// Why a request cannot run: every problem, each naming its option.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RequestError {
    pub problems: Vec<String>,
}

impl RequestError {
    pub fn new(problems: Vec<String>) -> RequestError {
        RequestError { problems }
    }

    /// `Ok(value)` when no problem was found.
    pub fn check<T>(problems: Vec<String>, value: impl FnOnce() -> T) -> Result<T, RequestError> {
        if problems.is_empty() {
            Ok(value())
        } else {
            Err(RequestError { problems })
        }
    }
}

impl fmt::Display for RequestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.problems.join("; "))
    }
}

impl std::error::Error for RequestError {}

/// What every engine's report says besides its own fields: the parts a front end turns
/// into its verdict (a module's `changed`, `failed`, `msg` and warnings; the daemon's log
/// line).
pub trait Report {
    fn changed(&self) -> bool;
    fn failed(&self) -> bool;
    fn msg(&self) -> &str;
    fn warnings(&self) -> &[String];
    /// Before and after, for a front end that shows differences (Ansible's `--diff`).
    fn diff(&self) -> Option<serde_json::Value> {
        None
    }
}

impl From<crate::spec::SpecError> for RequestError {
    fn from(e: crate::spec::SpecError) -> RequestError {
        RequestError {
            problems: e.errors.iter().map(ToString::to_string).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_problem_is_shown() {
        let e = RequestError::new(vec![
            "name: it is empty".into(),
            "state_dir: 'x' is not absolute".into(),
        ]);
        assert_eq!(e.to_string(), "name: it is empty; state_dir: 'x' is not absolute");
        assert_eq!(RequestError::check(Vec::new(), || 1), Ok(1));
        assert_eq!(
            RequestError::check(vec!["a".into()], || 1),
            Err(RequestError::new(vec!["a".into()]))
        );
    }
}
