//! Reading the `<measure>_warning` / `<measure>_critical` options of a check, and the
//! problems found while reading a request.
//!
//! Three readings, one per kind of measure:
//!
//! - [`levels`]: plain numbers and Nagios ranges (`90`, `"~:90"`, `"@10:20"`); a number
//!   alerts above it (percentages, latency, counts);
//! - [`size_levels`]: the same with sizes (`512M`, `"~:1G"`), for memory;
//! - [`floor_levels`]: a number alerts *below* it (`30` is `30:`), for what runs out:
//!   days left on a certificate, as `check_http -C 30,7` reads its numbers.
//!
//! Every error is pushed to [`Problems`] with the option's full path
//! (`http[1].latency_warning: invalid range '20:10': ...`), so a request reports all of
//! its problems at once.

use reliability_core::size::size_level;
use reliability_core::threshold::{Levels, Range, ThresholdError};
use serde_json::Value;
use std::fmt;

/// Everything wrong with a request, each naming the option path and the bad value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Problems(pub Vec<String>);

impl Problems {
    pub(crate) fn push(&mut self, path: &str, message: impl fmt::Display) {
        self.0.push(format!("{path}: {message}"));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// `ports[2]` and `timeout` make `ports[2].timeout`.
pub(crate) fn at(prefix: &str, name: &str) -> String {
    format!("{prefix}.{name}")
}

/// The levels of measure `name` (options `<name>_warning`, `<name>_critical`) under `prefix`.
pub(crate) fn levels(
    prefix: &str,
    name: &str,
    warning: Option<&Value>,
    critical: Option<&Value>,
    problems: &mut Problems,
) -> Levels {
    read(prefix, name, warning, critical, problems, |v| {
        Levels::parse(Some(v), None).map(|l| l.warning).map_err(|e| match e {
            ThresholdError::InLevel { error, .. } => error.to_string(),
            other => other.to_string(),
        })
    })
}

/// Levels whose bounds may be sizes (`512M`); numbers are bytes.
pub(crate) fn size_levels(
    prefix: &str,
    name: &str,
    warning: Option<&Value>,
    critical: Option<&Value>,
    problems: &mut Problems,
) -> Levels {
    read(prefix, name, warning, critical, problems, |v| {
        size_level(Some(v)).map_err(|e| e.to_string())
    })
}

/// Levels of a measure that alerts when it runs low: a number `n` is the range `n:`;
/// strings are Nagios ranges as written.
pub(crate) fn floor_levels(
    prefix: &str,
    name: &str,
    warning: Option<&Value>,
    critical: Option<&Value>,
    problems: &mut Problems,
) -> Levels {
    read(prefix, name, warning, critical, problems, |v| match v {
        Value::Number(n) => match n.as_f64() {
            Some(f) if f.is_finite() => Range::parse(&format!("{f}:")).map(Some).map_err(|e| e.to_string()),
            _ => Err(format!("invalid range {n}: not a finite number")),
        },
        other => Levels::parse(Some(other), None)
            .map(|l| l.warning)
            .map_err(|e| match e {
                ThresholdError::InLevel { error, .. } => error.to_string(),
                other => other.to_string(),
            }),
    })
}

fn read(
    prefix: &str,
    name: &str,
    warning: Option<&Value>,
    critical: Option<&Value>,
    problems: &mut Problems,
    parse: impl Fn(&Value) -> Result<Option<Range>, String>,
) -> Levels {
    let mut one = |level: &str, value: Option<&Value>| match value {
        None | Some(Value::Null) => None,
        Some(v) => match parse(v) {
            Ok(range) => range,
            Err(e) => {
                problems.push(&at(prefix, &format!("{name}_{level}")), e);
                None
            }
        },
    };
    Levels {
        warning: one("warning", warning),
        critical: one("critical", critical),
    }
}

/// Whether any level is set.
pub(crate) fn any(levels: &Levels) -> bool {
    levels.warning.is_some() || levels.critical.is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Reads `(warning, critical)` with `read` and shows the ranges or the problems.
    fn check(
        read: fn(&str, &str, Option<&Value>, Option<&Value>, &mut Problems) -> Levels,
        warning: Value,
        critical: Value,
        expected: &str,
    ) {
        let mut problems = Problems::default();
        let l = read("x[1]", "m", Some(&warning), Some(&critical), &mut problems);
        let got = if problems.is_empty() {
            let show = |r: Option<Range>| r.map_or("-".to_string(), |r| r.to_string());
            format!("{} {}", show(l.warning), show(l.critical))
        } else {
            problems.0.join("; ")
        };
        assert_eq!(got, expected, "w={warning} c={critical}");
    }

    #[test]
    fn plain_levels() {
        check(levels, json!(70), json!("90"), "70 90");
        check(levels, json!("~:5"), json!(null), "~:5 -");
        check(levels, json!(""), json!("@1:2"), "- @1:2");
        check(
            levels,
            json!("20:10"),
            json!("x"),
            "x[1].m_warning: invalid range '20:10': start 20 is greater than end 10; \
             x[1].m_critical: invalid range 'x': 'x' is not a number",
        );
        check(
            levels,
            json!([1]),
            json!(null),
            "x[1].m_warning: invalid range [1]: expected a number or a string such as '10', '10:', '~:10', '10:20' or '@10:20'",
        );
    }

    #[test]
    fn size_and_floor_levels() {
        check(size_levels, json!("512M"), json!(1024), "536870912 1024");
        check(
            size_levels,
            json!("12Q"),
            json!(null),
            "x[1].m_warning: invalid size '12Q': unknown unit 'Q' (use B, K, M, G, T, P or E; binary, so K is 1024 bytes)",
        );
        check(floor_levels, json!(30), json!(7.5), "30: 7.5:");
        check(floor_levels, json!("~:10"), json!("@0:1"), "~:10 @1");
        check(floor_levels, json!(-3), json!(null), "-3: -");
        check(
            floor_levels,
            json!("soon"),
            json!(null),
            "x[1].m_warning: invalid range 'soon': 'soon' is not a number",
        );
    }
}
