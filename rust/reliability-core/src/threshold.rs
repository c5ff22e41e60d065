//! Warning/critical levels, written in the Nagios plugin range syntax.
//!
//! Operators who know Nagios, Icinga or the monitoring-plugins already know this syntax
//! (<https://nagios-plugins.org/doc/guidelines.html#THRESHOLDFORMAT>), so the module, the
//! monitor and the CLI all read levels this way and mean exactly what `check_disk -w 10:`
//! means. A range is `[@]start:end`:
//!
//! | text     | alert when                          |
//! |----------|-------------------------------------|
//! | `10`     | value < 0 or value > 10             |
//! | `10:`    | value < 10                          |
//! | `~:10`   | value > 10                          |
//! | `10:20`  | value < 10 or value > 20            |
//! | `@10:20` | 10 <= value <= 20                   |
//! | `~:`     | never (`@~:`: always)               |
//!
//! Both ends are inclusive: the value 10 does not alert for `10`, and does alert for
//! `@10:20`. A start of 0 may be left out (`10` is `0:10`; `:10` is also `0:10`, as
//! monitoring-plugins reads it); an empty end is +infinity; `~` as the start is -infinity.
//!
//! Note the lower bound hidden in the short form: `10` alerts on a *negative* value too.
//! That is the Nagios meaning and it is kept, because it is what makes the short form right
//! for the usual "higher is worse" measures (percentages, load, latency, counts): they are
//! never negative, so `90` reads as "alert above 90", and a negative reading, which can only
//! be a measurement bug, is not silently called healthy. [`Levels::higher_is_worse`] builds
//! such levels from the numeric defaults (e.g. CPU warning 70, critical 90 is `70` and `90`).
//! To alert above a level and never below it, write `~:90`.
//!
//! A plain JSON number is read as that short form: `90` and `"90"` are the same range.
//!
//! Differences from monitoring-plugins' C parser, which reads numbers with `strtod` and
//! ignores what it cannot read: here every part must be a finite decimal number (so `abc`,
//! `10:x`, `inf` and `~5:10` are errors, not 0), and surrounding whitespace is ignored.

use serde_json::Value;
use std::fmt;

use crate::check::Status;

/// One Nagios range: the values that raise an alert.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Range {
    /// Inclusive; `-inf` for `~`.
    start: f64,
    /// Inclusive; `+inf` for an empty end.
    end: f64,
    /// `@`: alert when the value is inside `start..=end` instead of outside.
    inside: bool,
}

impl Range {
    /// Reads Nagios range text (`10`, `10:`, `~:10`, `10:20`, `@10:20`).
    pub fn parse(text: &str) -> Result<Range, ThresholdError> {
        let trimmed = text.trim();
        let (inside, body) = match trimmed.strip_prefix('@') {
            Some(rest) => (true, rest),
            None => (false, trimmed),
        };
        if body.is_empty() {
            return Err(ThresholdError::Empty { text: text.to_string() });
        }
        let number = |part: &str, which: Part| -> Result<f64, ThresholdError> {
            match part.parse::<f64>() {
                Ok(n) if n.is_finite() => Ok(n),
                _ => Err(ThresholdError::NotANumber {
                    text: text.to_string(),
                    part: which,
                    value: part.to_string(),
                }),
            }
        };
        let (start, end) = match body.split_once(':') {
            None => (0.0, number(body, Part::Whole)?),
            Some((start, end)) => {
                let start = match start {
                    "~" => f64::NEG_INFINITY,
                    "" => 0.0,
                    s => number(s, Part::Start)?,
                };
                let end = match end {
                    "" => f64::INFINITY,
                    e => number(e, Part::End)?,
                };
                (start, end)
            }
        };
        if start > end {
            return Err(ThresholdError::StartAfterEnd {
                text: text.to_string(),
                start: format_number(start),
                end: format_number(end),
            });
        }
        Ok(Range { start, end, inside })
    }

    /// The range a bare number stands for: `0:n`, so it alerts below 0 and above `n`.
    pub fn from_number(n: f64) -> Result<Range, ThresholdError> {
        let text = format_number(n);
        if !n.is_finite() {
            return Err(ThresholdError::NotANumber {
                value: text.clone(),
                text,
                part: Part::Whole,
            });
        }
        if n < 0.0 {
            return Err(ThresholdError::StartAfterEnd {
                text,
                start: "0".into(),
                end: format_number(n),
            });
        }
        Ok(Range {
            start: 0.0,
            end: n,
            inside: false,
        })
    }

    /// Whether `value` raises an alert. NaN never does (nothing can be said about it:
    /// [`Levels::evaluate`] makes it [`Status::Unknown`]).
    pub fn alerts(&self, value: f64) -> bool {
        self.violation(value).is_some()
    }

    /// The inclusive start; `-inf` for `~`.
    pub fn start(&self) -> f64 {
        self.start
    }

    /// The inclusive end; `+inf` when open.
    pub fn end(&self) -> f64 {
        self.end
    }

    /// Whether the range alerts inside (`@`) rather than outside its bounds.
    pub fn is_inside(&self) -> bool {
        self.inside
    }

    /// Why `value` alerts, if it does.
    pub(crate) fn violation(&self, value: f64) -> Option<Violation> {
        if value.is_nan() {
            return None;
        }
        let within = self.start <= value && value <= self.end;
        match (self.inside, within) {
            (true, true) => Some(Violation::Inside(*self)),
            (false, false) if value < self.start => Some(Violation::Below(self.start)),
            (false, false) => Some(Violation::Above(self.end)),
            _ => None,
        }
    }
}

impl std::str::FromStr for Range {
    type Err = ThresholdError;
    fn from_str(s: &str) -> Result<Range, ThresholdError> {
        Range::parse(s)
    }
}

/// The canonical Nagios text, as written into perfdata: `10`, `10:`, `~:10`, `10:20`,
/// `@10:20`, `~:`. Numbers have no trailing zeros (`10.50` is written `10.5`).
impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.inside {
            f.write_str("@")?;
        }
        let end = if self.end == f64::INFINITY {
            String::new()
        } else {
            format_number(self.end)
        };
        if self.start == 0.0 && !end.is_empty() {
            return f.write_str(&end);
        }
        let start = if self.start == f64::NEG_INFINITY {
            "~".to_string()
        } else {
            format_number(self.start)
        };
        write!(f, "{start}:{end}")
    }
}

/// Why a value alerts, for messages: the bound it crossed, or the `@` range it fell into.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Violation {
    Below(f64),
    Above(f64),
    Inside(Range),
}

impl Violation {
    /// The crossed bound in words, each number written by `show` (e.g. as a size).
    pub(crate) fn describe(&self, show: impl Fn(f64) -> String) -> String {
        match *self {
            Violation::Below(start) => format!("below {}", show(start)),
            Violation::Above(end) => format!("above {}", show(end)),
            Violation::Inside(r) => match (r.start == f64::NEG_INFINITY, r.end == f64::INFINITY) {
                (true, true) => "any value".to_string(),
                (true, false) => format!("at most {}", show(r.end)),
                (false, true) => format!("at least {}", show(r.start)),
                (false, false) => format!("between {} and {}", show(r.start), show(r.end)),
            },
        }
    }
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe(format_number))
    }
}

/// The warning and critical ranges of one measurement. Either may be absent.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Levels {
    pub warning: Option<Range>,
    pub critical: Option<Range>,
}

impl Levels {
    /// Reads the `warning` and `critical` options: each a JSON number (`90`, the short form
    /// `0:90`), a range string (`"~:90"`, `"@10:20"`), or absent. `null` and `""` mean no
    /// level, so `warning=` in ad-hoc `k=v` arguments switches a default level off. An error
    /// says which level was wrong.
    pub fn parse(warning: Option<&Value>, critical: Option<&Value>) -> Result<Levels, ThresholdError> {
        Ok(Levels {
            warning: level("warning", warning)?,
            critical: level("critical", critical)?,
        })
    }

    /// Levels for a measure where higher is worse and which is never negative (percentages,
    /// load, latency, counts): the Nagios short forms `warning` and `critical`, which alert
    /// above the number (and, as Nagios does, below 0). This is how numeric defaults such as
    /// CPU warning 70, critical 90 become ranges; they show up as `70` and `90` in perfdata.
    pub fn higher_is_worse(warning: f64, critical: f64) -> Result<Levels, ThresholdError> {
        Ok(Levels {
            warning: Some(Range::from_number(warning)?),
            critical: Some(Range::from_number(critical)?),
        })
    }

    /// The status of `value`: critical if the critical range alerts, else warning if the
    /// warning range alerts, else ok (critical wins, as in monitoring-plugins' `get_status`).
    /// A value that is not a finite number (NaN, infinity) cannot be judged and is unknown.
    pub fn evaluate(&self, value: f64) -> Status {
        if !value.is_finite() {
            return Status::Unknown;
        }
        if self.critical.is_some_and(|r| r.alerts(value)) {
            Status::Critical
        } else if self.warning.is_some_and(|r| r.alerts(value)) {
            Status::Warning
        } else {
            Status::Ok
        }
    }

    /// Why `value` gets the status [`Levels::evaluate`] gives it, for messages:
    /// `critical: above 90`, `warning: below 10`; `None` when it is ok or cannot be judged.
    pub fn explain(&self, value: f64) -> Option<String> {
        self.explain_with(value, format_number)
    }

    /// [`Levels::explain`] with the bound written by `show`: `critical: above 32 MiB`.
    pub fn explain_with(&self, value: f64, show: impl Fn(f64) -> String) -> Option<String> {
        let status = self.evaluate(value);
        let crossed = match status {
            Status::Critical => self.critical.and_then(|r| r.violation(value)),
            Status::Warning => self.warning.and_then(|r| r.violation(value)),
            _ => None,
        };
        crossed.map(|why| format!("{status}: {}", why.describe(show)))
    }
}

fn level(name: &'static str, value: Option<&Value>) -> Result<Option<Range>, ThresholdError> {
    let in_level = |error| ThresholdError::InLevel {
        level: name,
        error: Box::new(error),
    };
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => Range::parse(s).map(Some).map_err(in_level),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(f) => Range::from_number(f).map(Some).map_err(in_level),
            None => Err(in_level(ThresholdError::NotARange { value: n.to_string() })),
        },
        Some(other) => Err(in_level(ThresholdError::NotARange {
            value: other.to_string(),
        })),
    }
}

/// Which part of a range text failed to read as a number.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Part {
    /// Before the `:`.
    Start,
    /// After the `:`.
    End,
    /// The whole text (no `:`), the end of the short form.
    Whole,
}

/// A range that cannot be read. Each message names the text as given.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ThresholdError {
    #[error("invalid range '{text}': empty (expected e.g. '10', '10:', '~:10', '10:20' or '@10:20')")]
    Empty { text: String },
    #[error("invalid range '{text}': {}'{value}' is not a number", part_prefix(*.part))]
    NotANumber { text: String, part: Part, value: String },
    #[error("invalid range '{text}': start {start} is greater than end {end}")]
    StartAfterEnd { text: String, start: String, end: String },
    /// A JSON value that is neither a number nor a string (`value` is its JSON text).
    #[error("invalid range {value}: expected a number or a string such as '10', '10:', '~:10', '10:20' or '@10:20'")]
    NotARange { value: String },
    /// The error of one of the two levels read by [`Levels::parse`].
    #[error("{level}: {error}")]
    InLevel {
        level: &'static str,
        error: Box<ThresholdError>,
    },
}

fn part_prefix(part: Part) -> &'static str {
    match part {
        Part::Start => "start ",
        Part::End => "end ",
        Part::Whole => "",
    }
}

/// A number as Nagios tools read it: plain decimal digits, no exponent, no trailing zeros
/// (`10`, `0.5`, `-3.25`, `0.0000001`), and `0` for negative zero. Rust's shortest
/// round-trip formatting already has that shape; non-finite values print as Rust does
/// (`NaN`, `inf`) and callers keep them out of perfdata.
pub fn format_number(n: f64) -> String {
    /// Below 2^53 every whole f64 is exactly an i64, which prints the same digits as the
    /// f64 and several times faster (counts, bytes and whole milliseconds, most numbers of
    /// a daemon's cycle).
    const EXACT: f64 = 9_007_199_254_740_992.0;
    if n == 0.0 {
        "0".to_string()
    } else if n.fract() == 0.0 && n.abs() < EXACT {
        #[allow(clippy::cast_possible_truncation)] // Whole and within i64: exact.
        (n as i64).to_string()
    } else {
        n.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn numbers_print_as_rust_prints_them() {
        for n in [
            1.0,
            -1.0,
            10.0,
            0.5,
            -3.25,
            1e-7,
            123_456_789.0,
            4_294_967_296.0,
            9_007_199_254_740_991.0,
            9_007_199_254_740_992.0,
            1e16,
            1e300,
            -1e20,
            0.1 + 0.2,
            99.999,
            f64::MAX,
            f64::MIN_POSITIVE,
        ] {
            assert_eq!(format_number(n), n.to_string(), "{n:?}");
        }
        assert_eq!(format_number(-0.0), "0");
        assert_eq!(format_number(f64::NAN), "NaN");
        assert_eq!(format_number(f64::INFINITY), "inf");
    }

    /// `expected` is the canonical text the range displays as, or the error.
    fn check_parse(text: &str, expected: &str) {
        let got = match Range::parse(text) {
            Ok(range) => range.to_string(),
            Err(e) => e.to_string(),
        };
        assert_eq!(got, expected, "range {text:?}");
    }

    #[test]
    fn parse_and_display_canonical_text() {
        check_parse("10", "10");
        check_parse("0:10", "10");
        check_parse(":10", "10");
        check_parse("10:", "10:");
        check_parse("0:", "0:");
        check_parse("~:10", "~:10");
        check_parse("10:20", "10:20");
        check_parse("10:10", "10:10");
        check_parse("@10:20", "@10:20");
        check_parse("@10", "@10");
        check_parse("@~:10", "@~:10");
        check_parse("@10:", "@10:");
        check_parse("~:", "~:");
        check_parse("@~:", "@~:");
        check_parse("-10:-5", "-10:-5");
        check_parse("-5:", "-5:");
        check_parse("~:-5", "~:-5");
        check_parse("0", "0");
        check_parse("10.50", "10.5");
        check_parse("0.0000001", "0.0000001");
        check_parse("1e2", "100");
        check_parse("+5", "5");
        check_parse(".5", "0.5");
        check_parse("-0:0", "0");
        check_parse(" 90 ", "90");
    }

    #[test]
    fn parse_errors_name_the_text() {
        check_parse("20:10", "invalid range '20:10': start 20 is greater than end 10");
        check_parse("@20:10", "invalid range '@20:10': start 20 is greater than end 10");
        check_parse("-5", "invalid range '-5': start 0 is greater than end -5");
        check_parse("abc", "invalid range 'abc': 'abc' is not a number");
        check_parse("10:abc", "invalid range '10:abc': end 'abc' is not a number");
        check_parse("x:10", "invalid range 'x:10': start 'x' is not a number");
        check_parse("10:20:30", "invalid range '10:20:30': end '20:30' is not a number");
        check_parse("~5:10", "invalid range '~5:10': start '~5' is not a number");
        check_parse("10:~", "invalid range '10:~': end '~' is not a number");
        check_parse("~", "invalid range '~': '~' is not a number");
        check_parse("inf", "invalid range 'inf': 'inf' is not a number");
        check_parse("NaN:", "invalid range 'NaN:': start 'NaN' is not a number");
        check_parse("1 0", "invalid range '1 0': '1 0' is not a number");
        check_parse("10%", "invalid range '10%': '10%' is not a number");
        check_parse("@@10", "invalid range '@@10': '@10' is not a number");
        check_parse(
            "",
            "invalid range '': empty (expected e.g. '10', '10:', '~:10', '10:20' or '@10:20')",
        );
        check_parse(
            "@",
            "invalid range '@': empty (expected e.g. '10', '10:', '~:10', '10:20' or '@10:20')",
        );
    }

    /// `expected` lists, for each value, whether it alerts.
    fn check_alerts(range: &str, expected: &[(f64, bool)]) {
        let r = Range::parse(range).expect("test range is valid");
        for &(value, alerts) in expected {
            assert_eq!(r.alerts(value), alerts, "range {range} value {value}");
        }
    }

    #[test]
    fn alerts_follow_nagios_semantics_with_inclusive_ends() {
        // The table of the Nagios plugin guidelines, with the values on each edge.
        check_alerts(
            "10",
            &[(-0.1, true), (0.0, false), (5.0, false), (10.0, false), (10.1, true)],
        );
        check_alerts("10:", &[(9.9, true), (10.0, false), (1e300, false)]);
        check_alerts("~:10", &[(-1e300, false), (10.0, false), (10.01, true)]);
        check_alerts("10:20", &[(9.99, true), (10.0, false), (20.0, false), (20.5, true)]);
        check_alerts(
            "@10:20",
            &[(9.99, false), (10.0, true), (15.0, true), (20.0, true), (20.01, false)],
        );
        check_alerts("@10", &[(-1.0, false), (0.0, true), (10.0, true), (10.5, false)]);
        check_alerts("@~:10", &[(-1e300, true), (10.0, true), (10.5, false)]);
        check_alerts("~:", &[(-1e300, false), (0.0, false), (1e300, false)]);
        check_alerts("@~:", &[(-1e300, true), (0.0, true), (1e300, true)]);
        check_alerts("10:10", &[(9.9, true), (10.0, false), (10.1, true)]);
        check_alerts("0", &[(-0.0, false), (0.0, false), (0.001, true)]);
        check_alerts("-10:-5", &[(-11.0, true), (-10.0, false), (-5.0, false), (0.0, true)]);
        // Infinity is compared; NaN is never in or out of a range.
        check_alerts(
            "10",
            &[(f64::INFINITY, true), (f64::NEG_INFINITY, true), (f64::NAN, false)],
        );
        check_alerts("@~:", &[(f64::NAN, false)]);
    }

    #[test]
    fn from_number_is_the_short_form() {
        for (n, expected) in [
            (90.0, Ok("90")),
            (0.0, Ok("0")),
            (-0.0, Ok("0")),
            (2.5, Ok("2.5")),
            (-5.0, Err("invalid range '-5': start 0 is greater than end -5")),
            (f64::NAN, Err("invalid range 'NaN': 'NaN' is not a number")),
            (f64::INFINITY, Err("invalid range 'inf': 'inf' is not a number")),
        ] {
            let got = Range::from_number(n).map(|r| r.to_string()).map_err(|e| e.to_string());
            assert_eq!(got, expected.map(String::from).map_err(String::from), "number {n}");
            if let Ok(r) = Range::from_number(n) {
                assert_eq!(
                    Some(r),
                    Range::parse(&format_number(n)).ok(),
                    "from_number({n}) == parse"
                );
            }
        }
    }

    /// `expected` is the status for each value, or the error of [`Levels::parse`].
    fn check_levels(warning: Value, critical: Value, expected: Result<&[(f64, Status)], &str>) {
        let levels = Levels::parse(Some(&warning), Some(&critical));
        match (levels, expected) {
            (Ok(levels), Ok(table)) => {
                for &(value, status) in table {
                    assert_eq!(levels.evaluate(value), status, "w={warning} c={critical} value {value}");
                }
            }
            (Err(e), Err(want)) => assert_eq!(e.to_string(), want),
            (got, want) => panic!("w={warning} c={critical}: got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn levels_evaluate_critical_over_warning() {
        use Status::{Critical, Unknown, Warning};
        check_levels(
            json!(70),
            json!(90),
            Ok(&[
                (0.0, Status::Ok),
                (70.0, Status::Ok),
                (70.5, Warning),
                (90.0, Warning),
                (90.1, Critical),
                (-1.0, Critical),
            ]),
        );
        check_levels(
            json!("70"),
            json!("90.0"),
            Ok(&[(70.0, Status::Ok), (80.0, Warning), (95.0, Critical)]),
        );
        // Lower is worse: free space below 20% warns, below 10% is critical.
        check_levels(
            json!("20:"),
            json!("10:"),
            Ok(&[
                (50.0, Status::Ok),
                (20.0, Status::Ok),
                (15.0, Warning),
                (10.0, Warning),
                (9.0, Critical),
            ]),
        );
        check_levels(
            json!("@1:5"),
            json!("@~:0"),
            Ok(&[(0.0, Critical), (1.0, Warning), (5.0, Warning), (6.0, Status::Ok)]),
        );
        // Overlapping ranges: critical wins.
        check_levels(
            json!(10),
            json!(5),
            Ok(&[(3.0, Status::Ok), (7.0, Critical), (11.0, Critical)]),
        );
        // Non-finite values cannot be judged.
        check_levels(
            json!(70),
            json!(90),
            Ok(&[
                (f64::NAN, Unknown),
                (f64::INFINITY, Unknown),
                (f64::NEG_INFINITY, Unknown),
            ]),
        );
    }

    #[test]
    fn levels_may_be_absent() {
        use Status::{Critical, Unknown, Warning};
        check_levels(json!(null), json!(null), Ok(&[(-1e9, Status::Ok), (1e9, Status::Ok)]));
        check_levels(json!(""), json!(" "), Ok(&[(1e9, Status::Ok)]));
        check_levels(json!(null), json!(90), Ok(&[(95.0, Critical), (80.0, Status::Ok)]));
        check_levels(json!(70), json!(""), Ok(&[(95.0, Warning)]));
        assert_eq!(Levels::parse(None, None), Ok(Levels::default()));
        assert_eq!(Levels::default().evaluate(f64::NAN), Unknown);
    }

    #[test]
    fn levels_errors_name_the_level_and_value() {
        check_levels(
            json!("20:10"),
            json!(90),
            Err("warning: invalid range '20:10': start 20 is greater than end 10"),
        );
        check_levels(
            json!(70),
            json!("abc"),
            Err("critical: invalid range 'abc': 'abc' is not a number"),
        );
        check_levels(
            json!(-5),
            json!(90),
            Err("warning: invalid range '-5': start 0 is greater than end -5"),
        );
        check_levels(json!(70), json!(true), Err("critical: invalid range true: expected a number or a string such as '10', '10:', '~:10', '10:20' or '@10:20'"));
        check_levels(json!([70]), json!(90), Err("warning: invalid range [70]: expected a number or a string such as '10', '10:', '~:10', '10:20' or '@10:20'"));
        // Both wrong: the warning is reported first.
        check_levels(
            json!("x"),
            json!("y"),
            Err("warning: invalid range 'x': 'x' is not a number"),
        );
    }

    #[test]
    fn higher_is_worse_seeds() {
        let levels = Levels::higher_is_worse(70.0, 90.0).expect("valid seeds");
        assert_eq!(levels.warning.map(|r| r.to_string()).as_deref(), Some("70"));
        assert_eq!(levels.critical.map(|r| r.to_string()).as_deref(), Some("90"));
        assert_eq!(Some(levels), Levels::parse(Some(&json!(70)), Some(&json!(90))).ok());
        for (value, status) in [
            (69.9, Status::Ok),
            (70.0, Status::Ok),
            (85.0, Status::Warning),
            (90.01, Status::Critical),
        ] {
            assert_eq!(levels.evaluate(value), status, "value {value}");
        }
        assert_eq!(
            Levels::higher_is_worse(70.0, -1.0).map_err(|e| e.to_string()),
            Err("invalid range '-1': start 0 is greater than end -1".to_string())
        );
    }

    #[test]
    fn violations_describe_the_crossed_bound() {
        for (range, value, expected) in [
            ("90", 95.0, Some("above 90")),
            ("90", -1.0, Some("below 0")),
            ("10:", 5.5, Some("below 10")),
            ("~:10", 11.0, Some("above 10")),
            ("@10:20", 15.0, Some("between 10 and 20")),
            ("@~:5", 5.0, Some("at most 5")),
            ("@5:", 5.0, Some("at least 5")),
            ("@~:", 0.0, Some("any value")),
            ("90", 90.0, None),
        ] {
            let r = Range::parse(range).expect("test range is valid");
            assert_eq!(
                r.violation(value).map(|v| v.to_string()).as_deref(),
                expected,
                "{range} {value}"
            );
        }
    }

    #[test]
    fn explain_names_the_status_and_the_crossed_bound() {
        let levels = Levels::parse(Some(&json!("20:")), Some(&json!("10:"))).expect("valid");
        for (value, expected) in [
            (50.0, None),
            (15.0, Some("warning: below 20")),
            (5.0, Some("critical: below 10")),
            (f64::NAN, None),
        ] {
            assert_eq!(levels.explain(value).as_deref(), expected, "{value}");
        }
        let bytes = Levels::parse(Some(&json!("@1024:2048")), None).expect("valid");
        let kib = |n: f64| format!("{} KiB", n / 1024.0);
        assert_eq!(
            bytes.explain_with(1500.0, kib).as_deref(),
            Some("warning: between 1 KiB and 2 KiB")
        );
    }

    #[test]
    fn accessors_and_from_str() {
        let r: Range = "@~:10".parse().expect("valid");
        assert_eq!((r.start(), r.end(), r.is_inside()), (f64::NEG_INFINITY, 10.0, true));
        let r: Range = "10:".parse().expect("valid");
        assert_eq!((r.start(), r.end(), r.is_inside()), (10.0, f64::INFINITY, false));
    }

    #[test]
    fn numbers_have_no_trailing_zeros() {
        for (n, expected) in [
            (0.0, "0"),
            (-0.0, "0"),
            (10.0, "10"),
            (12.5, "12.5"),
            (-3.25, "-3.25"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e-7, "0.0000001"),
            (1e21, "1000000000000000000000"),
        ] {
            assert_eq!(format_number(n), expected);
        }
    }
}
