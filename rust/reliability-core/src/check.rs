//! Check results: a status per check, the overall verdict, and Nagios perfdata.
//!
//! Every front end reports checks the same way: the `health_check` module returns a list of
//! [`CheckResult`]s and a [`Summary`], the monitor daemon serves them, the CLI prints them.
//! The vocabulary is the Nagios plugin one that operators of Nagios, Icinga, Monit and Goss
//! already read: four statuses with exit codes 0-3, levels in range syntax (see
//! [`crate::threshold`]) and perfdata in the plugin guidelines' format.
//!
//! # Policy
//!
//! *Worst status* ([`Status`]'s order): critical > unknown > warning > ok. This is Icinga 2's
//! order (`Checkable::GetSeverity`: critical 128, unknown 64, warning 32), the one its problem
//! views sort by. An unknown means the check could not run or measure, so nothing says the
//! service is fine, and a monitor that loses its eyes should outrank a mere warning.
//! (monitoring-plugins' `max_state_alt` ranks warning above unknown; we do not follow it.)
//!
//! *Overall* ([`Overall`]), what is known about the host's health:
//!
//! | worst status       | overall     |
//! |--------------------|-------------|
//! | ok (or no checks)  | `healthy`   |
//! | warning or unknown | `degraded`  |
//! | critical           | `unhealthy` |
//!
//! Only a measured failure makes a host `unhealthy` (what a load balancer or an alert should
//! act on); a check that could not run is reported, not taken for an outage.
//!
//! *Failing a task* ([`FailOn`]) is a different question: did the verification pass? A gate
//! must not pass on what it could not verify, so `unknown` fails every gate but `never`:
//!
//! | fail_on    | ok | warning | unknown | critical |
//! |------------|----|---------|---------|----------|
//! | `critical` | -  | -       | fails   | fails    |
//! | `warning`  | -  | fails   | fails   | fails    |
//! | `never`    | -  | -       | -       | -        |
//!
//! Both gates are thresholds on the worst-status order above: `critical` fails at unknown
//! or worse, `warning` at warning or worse. So with `fail_on: critical` a run whose worst
//! status is unknown fails although its overall status reads `degraded`.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::cmp::Ordering;
use std::fmt;
use std::time::Duration;

use crate::threshold::{format_number, Levels, Range};

/// The result of one check, with the Nagios plugin exit codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    Warning,
    Critical,
    Unknown,
}

impl Status {
    /// Every status, in exit-code order.
    pub const ALL: [Status; 4] = [Status::Ok, Status::Warning, Status::Critical, Status::Unknown];

    /// The name used in JSON and messages: `ok`, `warning`, `critical`, `unknown`.
    pub fn name(self) -> &'static str {
        match self {
            Status::Ok => "ok",
            Status::Warning => "warning",
            Status::Critical => "critical",
            Status::Unknown => "unknown",
        }
    }

    /// The Nagios plugin exit code: 0, 1, 2, 3.
    pub fn exit_code(self) -> i32 {
        match self {
            Status::Ok => 0,
            Status::Warning => 1,
            Status::Critical => 2,
            Status::Unknown => 3,
        }
    }

    /// The status a Nagios plugin's exit code stands for. Codes outside 0-3 (a crash, a
    /// signal, a shell's 126/127) are unknown, as Nagios and Icinga read them.
    pub fn from_exit_code(code: i32) -> Status {
        match code {
            0 => Status::Ok,
            1 => Status::Warning,
            2 => Status::Critical,
            _ => Status::Unknown,
        }
    }

    /// The worst of `statuses` by the module-level order; ok when there are none.
    pub fn worst(statuses: impl IntoIterator<Item = Status>) -> Status {
        statuses.into_iter().max().unwrap_or(Status::Ok)
    }

    /// Rank in the worst-status order: ok < warning < unknown < critical.
    fn severity(self) -> u8 {
        match self {
            Status::Ok => 0,
            Status::Warning => 1,
            Status::Unknown => 2,
            Status::Critical => 3,
        }
    }
}

/// Orders by severity (ok < warning < unknown < critical), so `max` is the worst status.
impl Ord for Status {
    fn cmp(&self, other: &Status) -> Ordering {
        self.severity().cmp(&other.severity())
    }
}

impl PartialOrd for Status {
    fn partial_cmp(&self, other: &Status) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The verdict over all checks (see the table in the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Overall {
    Healthy,
    Degraded,
    Unhealthy,
}

impl Overall {
    /// Critical anywhere: unhealthy; else warning or unknown anywhere: degraded; else
    /// (including no checks at all) healthy.
    pub fn from_statuses(statuses: impl IntoIterator<Item = Status>) -> Overall {
        match Status::worst(statuses) {
            Status::Ok => Overall::Healthy,
            Status::Warning | Status::Unknown => Overall::Degraded,
            Status::Critical => Overall::Unhealthy,
        }
    }

    /// `healthy`, `degraded` or `unhealthy`.
    pub fn name(self) -> &'static str {
        match self {
            Overall::Healthy => "healthy",
            Overall::Degraded => "degraded",
            Overall::Unhealthy => "unhealthy",
        }
    }
}

impl fmt::Display for Overall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// When a run counts as failed (the `fail_on` option; table in the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FailOn {
    Critical,
    Warning,
    Never,
}

impl FailOn {
    /// Every choice, as the option declares them.
    pub const ALL: [FailOn; 3] = [FailOn::Critical, FailOn::Warning, FailOn::Never];

    /// `critical`, `warning` or `never`.
    pub fn name(self) -> &'static str {
        match self {
            FailOn::Critical => "critical",
            FailOn::Warning => "warning",
            FailOn::Never => "never",
        }
    }

    /// The choice called `name` (exact, lowercase), if any.
    pub fn from_name(name: &str) -> Option<FailOn> {
        FailOn::ALL.into_iter().find(|f| f.name() == name)
    }

    /// Whether a run with these statuses fails: `critical` on any critical or unknown,
    /// `warning` on anything but ok, `never` never.
    pub fn fails(&self, statuses: impl IntoIterator<Item = Status>) -> bool {
        let worst = Status::worst(statuses);
        match self {
            FailOn::Critical => worst >= Status::Unknown,
            FailOn::Warning => worst >= Status::Warning,
            FailOn::Never => false,
        }
    }
}

impl fmt::Display for FailOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a measured value counts: names in results, and the perfdata unit of measurement
/// of the Nagios guidelines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Unit {
    Seconds,
    Milliseconds,
    Percent,
    Bytes,
    /// A number of things (processes, users, load); no UOM.
    Count,
    /// A continuous counter that only grows (bytes sent); UOM `c`.
    Counter,
}

impl Unit {
    /// Every unit.
    pub const ALL: [Unit; 6] = [
        Unit::Seconds,
        Unit::Milliseconds,
        Unit::Percent,
        Unit::Bytes,
        Unit::Count,
        Unit::Counter,
    ];

    /// The name in results: `seconds`, `ms`, `percent`, `bytes`, `count`, `counter`.
    pub fn name(self) -> &'static str {
        match self {
            Unit::Seconds => "seconds",
            Unit::Milliseconds => "ms",
            Unit::Percent => "percent",
            Unit::Bytes => "bytes",
            Unit::Count => "count",
            Unit::Counter => "counter",
        }
    }

    /// The unit called `name`, if any.
    pub fn from_name(name: &str) -> Option<Unit> {
        Unit::ALL.into_iter().find(|u| u.name() == name)
    }

    /// The perfdata UOM: `s`, `ms`, `%`, `B`, none, `c`.
    pub fn uom(self) -> &'static str {
        match self {
            Unit::Seconds => "s",
            Unit::Milliseconds => "ms",
            Unit::Percent => "%",
            Unit::Bytes => "B",
            Unit::Count => "",
            Unit::Counter => "c",
        }
    }

    /// A value with its unit, for messages: `93.5%`, `0.25 s`, `12 ms`, `4096 B`, `7`.
    fn show(self, value: f64) -> String {
        let n = format_number(value);
        match self {
            Unit::Percent => format!("{n}%"),
            Unit::Count | Unit::Counter => n,
            _ => format!("{n} {}", self.uom()),
        }
    }
}

/// One perfdata item: `'label'=value[UOM];[warn];[crit];[min];[max]`
/// (<https://nagios-plugins.org/doc/guidelines.html#AEN200>).
///
/// The label is quoted when it holds whitespace, `=` or `'` (or is empty), and a `'` in it
/// is doubled. Control characters (a newline would end the plugin output line) become
/// spaces. A value that is not a finite number is written `U` ("could not be determined")
/// with no UOM. Numbers have no trailing zeros; trailing empty fields are dropped.
#[derive(Clone, Debug, PartialEq)]
pub struct Perfdata {
    pub label: String,
    pub value: f64,
    pub unit: Option<Unit>,
    pub warning: Option<Range>,
    pub critical: Option<Range>,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

impl Perfdata {
    /// An item with no levels and no bounds.
    pub fn new(label: impl Into<String>, value: f64, unit: Option<Unit>) -> Perfdata {
        Perfdata {
            label: label.into(),
            value,
            unit,
            warning: None,
            critical: None,
            min: None,
            max: None,
        }
    }

    /// The same item with the warning and critical ranges of `levels`.
    pub fn with_levels(self, levels: &Levels) -> Perfdata {
        Perfdata {
            warning: levels.warning,
            critical: levels.critical,
            ..self
        }
    }

    /// The same item with the smallest and largest possible values.
    pub fn with_bounds(self, min: Option<f64>, max: Option<f64>) -> Perfdata {
        Perfdata { min, max, ..self }
    }

    /// Items separated by spaces, as they follow the `|` of plugin output.
    pub fn join(items: &[Perfdata]) -> String {
        items.iter().map(Perfdata::to_string).collect::<Vec<_>>().join(" ")
    }
}

impl fmt::Display for Perfdata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let label: Cow<'_, str> = if self.label.contains(char::is_control) {
            Cow::Owned(
                self.label
                    .chars()
                    .map(|c| if c.is_control() { ' ' } else { c })
                    .collect(),
            )
        } else {
            Cow::Borrowed(&self.label)
        };
        if label.is_empty() || label.contains(|c: char| c.is_whitespace() || c == '=' || c == '\'') {
            write!(f, "'{}'=", label.replace('\'', "''"))?;
        } else {
            write!(f, "{label}=")?;
        }
        if self.value.is_finite() {
            write!(f, "{}{}", format_number(self.value), self.unit.map_or("", Unit::uom))?;
        } else {
            f.write_str("U")?;
        }
        let number = |n: Option<f64>| n.filter(|n| n.is_finite()).map(format_number).unwrap_or_default();
        let fields = [
            self.warning.map(|r| r.to_string()).unwrap_or_default(),
            self.critical.map(|r| r.to_string()).unwrap_or_default(),
            number(self.min),
            number(self.max),
        ];
        let used = fields.iter().rposition(|s| !s.is_empty()).map_or(0, |i| i + 1);
        for field in &fields[..used] {
            write!(f, ";{field}")?;
        }
        Ok(())
    }
}

/// The outcome of one check, as every front end reports it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    /// The check's name, unique within a run (`cpu`, `disk /`, `nginx`).
    pub name: String,
    /// What kind of check it is (`cpu`, `disk`, `systemd_unit`, `http`).
    pub kind: String,
    pub status: Status,
    /// The measured value; null for checks that measure no number, or could not measure.
    pub value: Option<f64>,
    /// The [`Unit`] name of `value`.
    pub unit: Option<String>,
    /// The warning range in canonical Nagios text.
    pub warning: Option<String>,
    /// The critical range in canonical Nagios text.
    pub critical: Option<String>,
    /// One line for people: what was seen and, if not ok, why.
    pub message: String,
    /// Nagios perfdata; empty for checks without a number.
    pub perfdata: String,
    /// How long the check took, in milliseconds (microsecond precision).
    pub duration_ms: f64,
    /// Kind-specific data, e.g. a unit's `ActiveState`.
    #[serde(default)]
    pub details: Map<String, Value>,
}

impl CheckResult {
    /// A numeric check judged by `levels`. The message says the value and, when it is not
    /// ok, which level it crossed: `cpu is 93.5% (critical: above 90)`. A value that is not
    /// a finite number is unknown: stored as null, written `U` in perfdata.
    pub fn measured(
        name: impl Into<String>,
        kind: impl Into<String>,
        value: f64,
        unit: Option<Unit>,
        levels: &Levels,
        duration: Duration,
    ) -> CheckResult {
        let mut result = CheckResult::measured_bare(name, kind, value, unit, levels, duration);
        let name = &result.name;
        result.perfdata = Perfdata::new(name.clone(), value, unit).with_levels(levels).to_string();
        result.message = if value.is_finite() {
            let shown = unit.map_or_else(|| format_number(value), |u| u.show(value));
            match levels.explain(value) {
                Some(why) => format!("{name} is {shown} ({why})"),
                None => format!("{name} is {shown}"),
            }
        } else {
            format!("{name}: the measured value {value} is not a finite number")
        };
        result
    }

    /// As [`measured`](Self::measured), for a caller that writes the message and the
    /// perfdata itself: both are left empty.
    pub fn measured_bare(
        name: impl Into<String>,
        kind: impl Into<String>,
        value: f64,
        unit: Option<Unit>,
        levels: &Levels,
        duration: Duration,
    ) -> CheckResult {
        CheckResult {
            name: name.into(),
            kind: kind.into(),
            status: levels.evaluate(value),
            value: value.is_finite().then_some(value),
            unit: unit.map(|u| u.name().to_string()),
            warning: levels.warning.map(|r| r.to_string()),
            critical: levels.critical.map(|r| r.to_string()),
            message: String::new(),
            perfdata: String::new(),
            duration_ms: millis(duration),
            details: Map::new(),
        }
    }

    /// A check that could not run or measure; `message` says why.
    pub fn unknown(
        name: impl Into<String>,
        kind: impl Into<String>,
        message: impl Into<String>,
        duration: Duration,
    ) -> CheckResult {
        CheckResult::state(name, kind, Status::Unknown, message, duration)
    }

    /// A check without a number (is the unit active? does the file exist?), whose status
    /// the caller decided.
    pub fn state(
        name: impl Into<String>,
        kind: impl Into<String>,
        status: Status,
        message: impl Into<String>,
        duration: Duration,
    ) -> CheckResult {
        CheckResult {
            name: name.into(),
            kind: kind.into(),
            status,
            value: None,
            unit: None,
            warning: None,
            critical: None,
            message: message.into(),
            perfdata: String::new(),
            duration_ms: millis(duration),
            details: Map::new(),
        }
    }

    /// The same result with `key` set in `details`.
    pub fn with_detail(mut self, key: impl Into<String>, value: impl Into<Value>) -> CheckResult {
        self.details.insert(key.into(), value.into());
        self
    }
}

/// The perfdata of all results that have any, separated by spaces.
pub fn join_perfdata(results: &[CheckResult]) -> String {
    results
        .iter()
        .map(|r| r.perfdata.as_str())
        .filter(|p| !p.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// How many checks ended in each status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub ok: usize,
    pub warning: usize,
    pub critical: usize,
    pub unknown: usize,
}

/// The verdict over a run of checks.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub status: Overall,
    pub counts: Counts,
    /// The sum of the checks' durations (not wall time, if they ran in parallel).
    pub total_duration_ms: f64,
}

impl Summary {
    /// Counts, overall status and total duration of `results`.
    pub fn of(results: &[CheckResult]) -> Summary {
        let mut counts = Counts::default();
        for r in results {
            match r.status {
                Status::Ok => counts.ok += 1,
                Status::Warning => counts.warning += 1,
                Status::Critical => counts.critical += 1,
                Status::Unknown => counts.unknown += 1,
            }
        }
        let total: f64 = results.iter().map(|r| r.duration_ms).sum();
        Summary {
            status: Overall::from_statuses(results.iter().map(|r| r.status)),
            counts,
            // Each duration is whole microseconds; keep the float sum from adding noise.
            total_duration_ms: (total * 1000.0).round() / 1000.0,
        }
    }
}

/// Milliseconds with microsecond precision: 1.234567 s is 1234.567.
fn millis(d: Duration) -> f64 {
    d.as_micros() as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use Status::{Critical as C, Ok as O, Unknown as U, Warning as W};

    fn levels(warning: Value, critical: Value) -> Levels {
        Levels::parse(Some(&warning), Some(&critical)).expect("test levels are valid")
    }

    #[test]
    fn status_codes_names_and_serde() {
        for (status, code, name) in [(O, 0, "ok"), (W, 1, "warning"), (C, 2, "critical"), (U, 3, "unknown")] {
            assert_eq!(status.exit_code(), code);
            assert_eq!(Status::from_exit_code(code), status);
            assert_eq!(status.to_string(), name);
            assert_eq!(serde_json::to_value(status).ok(), Some(json!(name)));
            assert_eq!(serde_json::from_value::<Status>(json!(name)).ok(), Some(status));
        }
        for code in [-1, 4, 126, 127, 137, 255] {
            assert_eq!(Status::from_exit_code(code), U, "exit code {code}");
        }
        assert!(serde_json::from_value::<Status>(json!("OK")).is_err());
    }

    /// `expected` is the worst status, the overall verdict and which gates fail
    /// (`c` for fail_on=critical, `w` for fail_on=warning; `never` never fails).
    fn check_policy(statuses: &[Status], expected: (Status, Overall, &str)) {
        let got = (
            Status::worst(statuses.iter().copied()),
            Overall::from_statuses(statuses.iter().copied()),
            [(FailOn::Critical, "c"), (FailOn::Warning, "w"), (FailOn::Never, "n")]
                .into_iter()
                .filter(|(f, _)| f.fails(statuses.iter().copied()))
                .map(|(_, s)| s)
                .collect::<String>(),
        );
        assert_eq!(
            got,
            (expected.0, expected.1, expected.2.to_string()),
            "statuses {statuses:?}"
        );
    }

    #[test]
    fn worst_status_overall_and_fail_on() {
        use Overall::*;
        check_policy(&[], (O, Healthy, ""));
        check_policy(&[O], (O, Healthy, ""));
        check_policy(&[O, O], (O, Healthy, ""));
        check_policy(&[W], (W, Degraded, "w"));
        check_policy(&[O, W, O], (W, Degraded, "w"));
        check_policy(&[U], (U, Degraded, "cw"));
        check_policy(&[W, U], (U, Degraded, "cw"));
        check_policy(&[U, W], (U, Degraded, "cw"));
        check_policy(&[C], (C, Unhealthy, "cw"));
        check_policy(&[C, U, W, O], (C, Unhealthy, "cw"));
        check_policy(&[O, U, C], (C, Unhealthy, "cw"));
    }

    #[test]
    fn severity_order() {
        let mut all = Status::ALL.to_vec();
        all.sort();
        assert_eq!(all, [O, W, U, C]);
        assert!(C > U && U > W && W > O);
    }

    #[test]
    fn enum_names_and_serde() {
        for (overall, name) in [
            (Overall::Healthy, "healthy"),
            (Overall::Degraded, "degraded"),
            (Overall::Unhealthy, "unhealthy"),
        ] {
            assert_eq!(overall.to_string(), name);
            assert_eq!(serde_json::to_value(overall).ok(), Some(json!(name)));
        }
        for (fail_on, name) in [
            (FailOn::Critical, "critical"),
            (FailOn::Warning, "warning"),
            (FailOn::Never, "never"),
        ] {
            assert_eq!(FailOn::from_name(name), Some(fail_on));
            assert_eq!(fail_on.to_string(), name);
            assert_eq!(serde_json::from_value::<FailOn>(json!(name)).ok(), Some(fail_on));
        }
        assert_eq!(FailOn::from_name("Critical"), None);
        for unit in Unit::ALL {
            assert_eq!(Unit::from_name(unit.name()), Some(unit));
        }
        assert_eq!(Unit::from_name("%"), None);
    }

    fn check_perfdata(item: Perfdata, expected: &str) {
        assert_eq!(item.to_string(), expected, "{item:?}");
    }

    #[test]
    fn perfdata_units_and_numbers() {
        check_perfdata(Perfdata::new("cpu", 12.5, Some(Unit::Percent)), "cpu=12.5%");
        check_perfdata(Perfdata::new("rtt", 0.25, Some(Unit::Seconds)), "rtt=0.25s");
        check_perfdata(Perfdata::new("rtt", 12.0, Some(Unit::Milliseconds)), "rtt=12ms");
        check_perfdata(Perfdata::new("rss", 4096.0, Some(Unit::Bytes)), "rss=4096B");
        check_perfdata(Perfdata::new("procs", 7.0, Some(Unit::Count)), "procs=7");
        check_perfdata(Perfdata::new("load1", 0.52, None), "load1=0.52");
        check_perfdata(Perfdata::new("tx", 123456789.0, Some(Unit::Counter)), "tx=123456789c");
        check_perfdata(Perfdata::new("temp", -3.0, None), "temp=-3");
        check_perfdata(Perfdata::new("zero", -0.0, None), "zero=0");
        check_perfdata(Perfdata::new("tiny", 1e-7, Some(Unit::Seconds)), "tiny=0.0000001s");
        check_perfdata(Perfdata::new("x", 10.50, None), "x=10.5");
        check_perfdata(Perfdata::new("gone", f64::NAN, Some(Unit::Percent)), "gone=U");
        check_perfdata(Perfdata::new("gone", f64::INFINITY, None), "gone=U");
    }

    #[test]
    fn perfdata_fields_and_trailing_semicolons() {
        let cpu = Perfdata::new("cpu", 93.5, Some(Unit::Percent));
        check_perfdata(
            cpu.clone().with_levels(&levels(json!(70), json!(90))),
            "cpu=93.5%;70;90",
        );
        check_perfdata(cpu.clone().with_levels(&levels(json!(70), json!(null))), "cpu=93.5%;70");
        check_perfdata(
            cpu.clone().with_levels(&levels(json!(null), json!(90))),
            "cpu=93.5%;;90",
        );
        check_perfdata(cpu.clone().with_bounds(Some(0.0), Some(100.0)), "cpu=93.5%;;;0;100");
        check_perfdata(cpu.clone().with_bounds(None, Some(100.0)), "cpu=93.5%;;;;100");
        check_perfdata(cpu.clone().with_bounds(Some(0.0), None), "cpu=93.5%;;;0");
        check_perfdata(cpu.clone().with_bounds(Some(f64::NAN), None), "cpu=93.5%");
        check_perfdata(
            cpu.with_levels(&levels(json!("~:70.50"), json!("@10:20")))
                .with_bounds(Some(0.0), Some(100.0)),
            "cpu=93.5%;~:70.5;@10:20;0;100",
        );
        check_perfdata(
            Perfdata::new("free", f64::NAN, None).with_levels(&levels(json!("20:"), json!("10:"))),
            "free=U;20:;10:",
        );
    }

    #[test]
    fn perfdata_labels_are_quoted_when_needed() {
        let p = |label: &str| Perfdata::new(label, 1.0, None);
        check_perfdata(p("disk_/var"), "disk_/var=1");
        check_perfdata(p("nginx.service"), "nginx.service=1");
        check_perfdata(p("disk /var"), "'disk /var'=1");
        check_perfdata(p("a=b"), "'a=b'=1");
        check_perfdata(p("it's"), "'it''s'=1");
        check_perfdata(p("''"), "''''''=1");
        check_perfdata(p("tab\there"), "'tab here'=1");
        check_perfdata(p("line\nbreak"), "'line break'=1");
        check_perfdata(p("ünïcode"), "ünïcode=1");
        check_perfdata(p(""), "''=1");
    }

    #[test]
    fn perfdata_join() {
        let items = [
            Perfdata::new("a", 1.0, None),
            Perfdata::new("b c", 2.0, Some(Unit::Percent)),
        ];
        assert_eq!(Perfdata::join(&items), "a=1 'b c'=2%");
        assert_eq!(Perfdata::join(&[]), "");
    }

    /// `expected` holds the result fields to compare, as JSON.
    fn check_result(result: CheckResult, expected: Value) {
        let got = serde_json::to_value(&result).expect("serializable");
        let Value::Object(want) = expected else {
            panic!("expected must be an object")
        };
        for (k, v) in want {
            assert_eq!(got.get(&k), Some(&v), "field {k} of {got}");
        }
    }

    #[test]
    fn measured_results() {
        let ms = Duration::from_micros(1500);
        let cpu = levels(json!(70), json!(90));
        check_result(
            CheckResult::measured("cpu", "cpu", 12.5, Some(Unit::Percent), &cpu, ms),
            json!({"name": "cpu", "kind": "cpu", "status": "ok", "value": 12.5, "unit": "percent",
                   "warning": "70", "critical": "90", "message": "cpu is 12.5%",
                   "perfdata": "cpu=12.5%;70;90", "duration_ms": 1.5, "details": {}}),
        );
        check_result(
            CheckResult::measured("cpu", "cpu", 70.0, Some(Unit::Percent), &cpu, ms),
            json!({"status": "ok", "message": "cpu is 70%"}),
        );
        check_result(
            CheckResult::measured("cpu", "cpu", 75.0, Some(Unit::Percent), &cpu, ms),
            json!({"status": "warning", "message": "cpu is 75% (warning: above 70)"}),
        );
        check_result(
            CheckResult::measured("cpu", "cpu", 93.5, Some(Unit::Percent), &cpu, ms),
            json!({"status": "critical", "message": "cpu is 93.5% (critical: above 90)", "perfdata": "cpu=93.5%;70;90"}),
        );
        check_result(
            CheckResult::measured("cpu", "cpu", -1.0, Some(Unit::Percent), &cpu, ms),
            json!({"status": "critical", "message": "cpu is -1% (critical: below 0)"}),
        );
        check_result(
            CheckResult::measured(
                "disk /",
                "disk",
                15.0,
                Some(Unit::Percent),
                &levels(json!("20:"), json!("10:")),
                ms,
            ),
            json!({"status": "warning", "message": "disk / is 15% (warning: below 20)", "perfdata": "'disk /'=15%;20:;10:"}),
        );
        check_result(
            CheckResult::measured(
                "rtt",
                "http",
                0.25,
                Some(Unit::Seconds),
                &levels(json!(null), json!("@0.2:0.3")),
                ms,
            ),
            json!({"status": "critical", "message": "rtt is 0.25 s (critical: between 0.2 and 0.3)", "warning": null, "critical": "@0.2:0.3"}),
        );
        check_result(
            CheckResult::measured(
                "latency",
                "http",
                12.0,
                Some(Unit::Milliseconds),
                &Levels::default(),
                ms,
            ),
            json!({"status": "ok", "message": "latency is 12 ms", "perfdata": "latency=12ms", "warning": null, "critical": null}),
        );
        check_result(
            CheckResult::measured("load1", "load", 0.52, None, &levels(json!(4), json!(8)), ms),
            json!({"message": "load1 is 0.52", "unit": null, "perfdata": "load1=0.52;4;8"}),
        );
        check_result(
            CheckResult::measured("rss", "process", 4096.0, Some(Unit::Bytes), &Levels::default(), ms),
            json!({"message": "rss is 4096 B", "unit": "bytes"}),
        );
        check_result(
            CheckResult::measured(
                "procs",
                "process",
                3.0,
                Some(Unit::Count),
                &levels(json!("1:"), json!("1:")),
                ms,
            ),
            json!({"status": "ok", "message": "procs is 3", "unit": "count", "perfdata": "procs=3;1:;1:"}),
        );
    }

    #[test]
    fn measured_non_finite_is_unknown() {
        let cpu = levels(json!(70), json!(90));
        check_result(
            CheckResult::measured("cpu", "cpu", f64::NAN, Some(Unit::Percent), &cpu, Duration::ZERO),
            json!({"status": "unknown", "value": null, "message": "cpu: the measured value NaN is not a finite number",
                   "perfdata": "cpu=U;70;90", "duration_ms": 0.0}),
        );
        check_result(
            CheckResult::measured("cpu", "cpu", f64::INFINITY, Some(Unit::Percent), &cpu, Duration::ZERO),
            json!({"status": "unknown", "value": null, "message": "cpu: the measured value inf is not a finite number"}),
        );
    }

    #[test]
    fn state_and_unknown_results() {
        check_result(
            CheckResult::state(
                "nginx",
                "systemd_unit",
                W,
                "nginx.service is activating",
                Duration::from_millis(3),
            )
            .with_detail("ActiveState", "activating")
            .with_detail("NRestarts", 2),
            json!({"name": "nginx", "kind": "systemd_unit", "status": "warning", "value": null, "unit": null,
                   "warning": null, "critical": null, "message": "nginx.service is activating", "perfdata": "",
                   "duration_ms": 3.0, "details": {"ActiveState": "activating", "NRestarts": 2}}),
        );
        check_result(
            CheckResult::unknown("db", "tcp", "connect timed out after 5 s", Duration::from_secs(5)),
            json!({"status": "unknown", "message": "connect timed out after 5 s", "perfdata": "", "duration_ms": 5000.0}),
        );
    }

    #[test]
    fn durations_are_milliseconds_to_the_microsecond() {
        for (d, ms) in [
            (Duration::ZERO, 0.0),
            (Duration::from_nanos(999), 0.0),
            (Duration::from_micros(1), 0.001),
            (Duration::from_nanos(1_234_567_891), 1234.567),
            (Duration::from_secs(3600), 3_600_000.0),
        ] {
            assert_eq!(millis(d), ms, "{d:?}");
        }
    }

    #[test]
    fn results_round_trip_through_json() {
        let r = CheckResult::measured(
            "cpu",
            "cpu",
            93.5,
            Some(Unit::Percent),
            &levels(json!(70), json!(90)),
            Duration::from_millis(2),
        )
        .with_detail("cores", 4);
        let text = serde_json::to_string(&r).expect("serializable");
        assert_eq!(serde_json::from_str::<CheckResult>(&text).ok(), Some(r));
        // `details` may be left out by other writers.
        let minimal = json!({"name": "x", "kind": "k", "status": "ok", "value": null, "unit": null, "warning": null,
                             "critical": null, "message": "", "perfdata": "", "duration_ms": 0.0});
        assert!(serde_json::from_value::<CheckResult>(minimal).is_ok());
    }

    fn check_summary(results: &[CheckResult], expected: Value) {
        let summary = Summary::of(results);
        assert_eq!(serde_json::to_value(&summary).ok(), Some(expected), "{results:?}");
    }

    #[test]
    fn summaries() {
        let r = |status: Status, micros: u64| CheckResult::state("x", "k", status, "", Duration::from_micros(micros));
        check_summary(
            &[],
            json!({"status": "healthy", "counts": {"ok": 0, "warning": 0, "critical": 0, "unknown": 0}, "total_duration_ms": 0.0}),
        );
        check_summary(
            &[r(O, 100), r(O, 200)],
            json!({"status": "healthy", "counts": {"ok": 2, "warning": 0, "critical": 0, "unknown": 0}, "total_duration_ms": 0.3}),
        );
        check_summary(
            &[r(O, 1), r(W, 2), r(U, 3)],
            json!({"status": "degraded", "counts": {"ok": 1, "warning": 1, "critical": 0, "unknown": 1}, "total_duration_ms": 0.006}),
        );
        check_summary(
            &[r(C, 1_500_000), r(U, 1), r(C, 0)],
            json!({"status": "unhealthy", "counts": {"ok": 0, "warning": 0, "critical": 2, "unknown": 1}, "total_duration_ms": 1500.001}),
        );
    }

    #[test]
    fn join_perfdata_skips_results_without_numbers() {
        let l = levels(json!(70), json!(90));
        let results = [
            CheckResult::measured("cpu", "cpu", 5.0, Some(Unit::Percent), &l, Duration::ZERO),
            CheckResult::state("nginx", "systemd_unit", O, "active", Duration::ZERO),
            CheckResult::measured("mem used", "memory", 50.0, Some(Unit::Percent), &l, Duration::ZERO),
        ];
        assert_eq!(join_perfdata(&results), "cpu=5%;70;90 'mem used'=50%;70;90");
        assert_eq!(join_perfdata(&[]), "");
    }
}
