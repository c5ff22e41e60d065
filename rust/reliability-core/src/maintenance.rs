//! Maintenance windows: when is a host (or some of its services) in maintenance?
//!
//! Three kinds of window, one decision ([`active_at`]):
//!
//! - **weekly**: days of the week, a start and an end time of day, in an IANA time zone
//!   (the seed's default: Sunday 02:00-04:00 UTC). An end at or before the start means the
//!   window crosses midnight and ends on the next day (`Saturday 23:00-01:00` runs into
//!   Sunday);
//! - **one-off**: a start and an end instant (RFC 3339 in the config);
//! - **ad hoc**: a stored record with a reason, an actor, a start and an end, opened by
//!   `maintenance_window` or the CLI ([`AdHoc`]; `reliability_os::maintenance` keeps them).
//!
//! Weekly windows are wall-clock windows: "02:00-04:00 Europe/Berlin" means from the moment
//! the clocks in Berlin show 02:00 to the moment they show 04:00. Daylight saving makes that
//! shorter or longer than two hours, and the rule for a time the clocks skip or show twice
//! is RFC 5545's (and jiff's `compatible`): a skipped time is read as the same number of
//! minutes after the gap (on the last Sunday of March 02:00 does not exist in Berlin, so the
//! window opens at 03:00 CEST and lasts one hour), a repeated time as its first occurrence
//! (on the last Sunday of October 02:00 CEST to 04:00 CET lasts three hours).
//!
//! No I/O: time is unix milliseconds handed in, zones are [`TimeZone`] values handed in
//! (resolved by name through [`Zones`], which `reliability_os::zones` implements over
//! `/usr/share/zoneinfo`).

use crate::quote::quote;
use crate::spec::{Env, Kind, Opt, Spec};
use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

/// The record kind of an ad-hoc window in the state store.
pub const KIND: &str = "maintenance";
/// Its format version.
pub const VERSION: u32 = 1;

/// The seed's default window.
pub const DEFAULT_DAYS: &[&str] = &["Sunday"];
pub const DEFAULT_START: &str = "02:00";
pub const DEFAULT_END: &str = "04:00";
pub const DEFAULT_TIMEZONE: &str = "UTC";

/// Day names as the config spells them (a three-letter prefix and any case are accepted too).
const DAYS: [(&str, Weekday); 7] = [
    ("Monday", Weekday::Monday),
    ("Tuesday", Weekday::Tuesday),
    ("Wednesday", Weekday::Wednesday),
    ("Thursday", Weekday::Thursday),
    ("Friday", Weekday::Friday),
    ("Saturday", Weekday::Saturday),
    ("Sunday", Weekday::Sunday),
];

/// Where zones come from: an IANA name to its rules, or why not.
pub trait Zones {
    fn zone(&self, name: &str) -> Result<TimeZone, String>;
}

/// A window opened for a while, by someone, for a reason (kept in the state store, one
/// file per name).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AdHoc {
    pub name: String,
    pub reason: String,
    pub actor: String,
    pub start_ms: u64,
    pub end_ms: u64,
    /// The services it covers; empty: the whole host.
    #[serde(default)]
    pub services: Vec<String>,
}

/// A weekly window.
#[derive(Clone, Debug, PartialEq)]
pub struct Weekly {
    pub name: String,
    pub days: Vec<Weekday>,
    pub start: Time,
    pub end: Time,
    pub timezone: TimeZone,
}

/// One window of any kind.
#[derive(Clone, Debug, PartialEq)]
pub enum Window {
    Weekly(Weekly),
    OneOff { name: String, start_ms: u64, end_ms: u64 },
    AdHoc(AdHoc),
}

/// The window in force at an instant: which one, and the instants it opened and closes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ActiveWindow {
    pub name: String,
    /// `weekly`, `one_off` or `ad_hoc`.
    pub kind: &'static str,
    pub start_ms: u64,
    pub end_ms: u64,
    /// Services it covers; empty: the whole host.
    pub services: Vec<String>,
    /// An ad-hoc window's reason and actor.
    pub reason: Option<String>,
    pub actor: Option<String>,
}

/// The window in force at `now_ms`, if any. When several are, the one that closes last
/// (how long maintenance lasts is what a caller asks next), the first listed on a tie.
pub fn active_at(windows: &[Window], now_ms: u64) -> Option<ActiveWindow> {
    let mut best: Option<ActiveWindow> = None;
    for w in windows {
        let Some(found) = window_at(w, now_ms) else { continue };
        if best.as_ref().is_none_or(|b| found.end_ms > b.end_ms) {
            best = Some(found);
        }
    }
    best
}

/// The window in force at `now_ms` that covers `service` (a window without services
/// covers every service).
pub fn active_for(windows: &[Window], service: &str, now_ms: u64) -> Option<ActiveWindow> {
    let covering: Vec<Window> = windows
        .iter()
        .filter(|w| match w {
            Window::AdHoc(a) => a.services.is_empty() || a.services.iter().any(|s| s == service),
            _ => true,
        })
        .cloned()
        .collect();
    active_at(&covering, now_ms)
}

fn window_at(w: &Window, now_ms: u64) -> Option<ActiveWindow> {
    match w {
        Window::OneOff { name, start_ms, end_ms } => (*start_ms <= now_ms && now_ms < *end_ms).then(|| ActiveWindow {
            name: name.clone(),
            kind: "one_off",
            start_ms: *start_ms,
            end_ms: *end_ms,
            services: Vec::new(),
            reason: None,
            actor: None,
        }),
        Window::AdHoc(a) => (a.start_ms <= now_ms && now_ms < a.end_ms).then(|| ActiveWindow {
            name: a.name.clone(),
            kind: "ad_hoc",
            start_ms: a.start_ms,
            end_ms: a.end_ms,
            services: a.services.clone(),
            reason: Some(a.reason.clone()),
            actor: Some(a.actor.clone()),
        }),
        Window::Weekly(w) => weekly_at(w, now_ms).map(|(start_ms, end_ms)| ActiveWindow {
            name: w.name.clone(),
            kind: "weekly",
            start_ms,
            end_ms,
            services: Vec::new(),
            reason: None,
            actor: None,
        }),
    }
}

/// The occurrence of a weekly window that holds `now_ms`, as (start, end) instants.
fn weekly_at(w: &Weekly, now_ms: u64) -> Option<(u64, u64)> {
    let now = Timestamp::from_millisecond(i64::try_from(now_ms).ok()?).ok()?;
    let today = now.to_zoned_datetime(w.timezone.clone()).date();
    // An occurrence starts today or yesterday (a window crossing midnight); two days back
    // covers a start pushed past midnight by a gap.
    let mut day = today;
    for _ in 0..3 {
        if let Some(span) = occurrence(w, day) {
            if span.0 <= now_ms && now_ms < span.1 {
                return Some(span);
            }
        }
        day = day.yesterday().ok()?;
    }
    None
}

/// The occurrence starting on local date `day`, if the window runs that weekday.
fn occurrence(w: &Weekly, day: Date) -> Option<(u64, u64)> {
    if !w.days.contains(&day.weekday()) {
        return None;
    }
    let end_day = if w.end <= w.start { day.tomorrow().ok()? } else { day };
    let start = local(&w.timezone, day.to_datetime(w.start))?;
    let end = local(&w.timezone, end_day.to_datetime(w.end))?;
    Some((start, end))
}

/// A wall-clock time as unix milliseconds (skipped times after the gap, repeated ones at
/// their first occurrence).
fn local(tz: &TimeZone, at: DateTime) -> Option<u64> {
    let ts = tz.to_ambiguous_timestamp(at).compatible().ok()?;
    u64::try_from(ts.as_millisecond()).ok()
}

/// `HH:MM` (00:00-23:59).
pub fn parse_time_of_day(text: &str) -> Result<Time, String> {
    let bad = || format!("{} is not a time of day HH:MM (00:00-23:59)", quote(text));
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 || !h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let (h, m) = (h.parse::<i8>().map_err(|_| bad())?, m.parse::<i8>().map_err(|_| bad())?);
    Time::new(h, m, 0, 0).map_err(|_| bad())
}

/// `Sunday`, `sunday`, `Sun`.
pub fn parse_weekday(text: &str) -> Result<Weekday, String> {
    let lower = text.to_ascii_lowercase();
    DAYS.iter()
        .find(|(name, _)| {
            let n = name.to_ascii_lowercase();
            lower == n || (lower.len() == 3 && n.starts_with(&lower))
        })
        .map(|(_, d)| *d)
        .ok_or_else(|| {
            let names: Vec<&str> = DAYS.iter().map(|(n, _)| *n).collect();
            format!("{} is not a day of the week ({})", quote(text), names.join(", "))
        })
}

/// An RFC 3339 instant (`2026-12-24T22:00:00+01:00`, `...Z`) as unix milliseconds.
pub fn parse_instant(text: &str) -> Result<u64, String> {
    let ts: Timestamp = text.parse().map_err(|e| {
        format!(
            "{} is not an RFC 3339 time with an offset (2026-12-24T22:00:00Z): {e}",
            quote(text)
        )
    })?;
    u64::try_from(ts.as_millisecond()).map_err(|_| format!("{} is before 1970", quote(text)))
}

/// The configuration of the `maintenance_windows` section, compiled.
#[derive(Clone, Debug, PartialEq)]
pub struct MaintenanceConfig {
    pub enabled: bool,
    /// `default_window` first, then `windows` in order.
    pub windows: Vec<Window>,
    pub suppress_alerts: bool,
    /// Recovery suppressed inside a window unless a service says otherwise.
    pub suppress_recovery: bool,
    /// Per service: `suppress_recovery` overriding the section's.
    pub services: Vec<(String, bool)>,
}

impl MaintenanceConfig {
    /// Whether a recovery of `service` waits while a window covers it.
    pub fn suppress_recovery(&self, service: &str) -> bool {
        self.services
            .iter()
            .find(|(name, _)| name == service)
            .map_or(self.suppress_recovery, |(_, s)| *s)
    }
}

fn weekly_spec() -> Vec<Opt> {
    vec![
        Opt::list("days", Kind::Str).max_items(7),
        Opt::str("start_time").max_len(5),
        Opt::str("end_time").max_len(5),
        Opt::str("timezone").max_len(64),
    ]
}

/// The schema of the `maintenance_windows` section (the seed's keys, plus `windows`,
/// `suppress_recovery` and `services`).
pub fn spec() -> Spec {
    let mut window = vec![
        Opt::str("name").required().max_len(128),
        Opt::str("start").max_len(64),
        Opt::str("end").max_len(64),
    ];
    window.extend(weekly_spec());
    Spec::new(vec![
        Opt::bool("enabled").default(false),
        Opt::dict("default_window")
            .default(Value::Null)
            .options(Spec::new(weekly_spec())),
        Opt::list("windows", Kind::Dict)
            .default(json!([]))
            .options(Spec::new(window)),
        Opt::bool("suppress_alerts_during_maintenance").default(true),
        Opt::bool("suppress_recovery").default(false),
        Opt::list("services", Kind::Dict)
            .default(json!([]))
            .options(Spec::new(vec![
                Opt::str("name").required().max_len(256),
                Opt::bool("suppress_recovery").required(),
            ])),
    ])
}

/// The section validated by [`spec`] and compiled; every problem as `path: message`,
/// the path relative to the section (`default_window.timezone`, `windows[1].end`), as the
/// engines report theirs (the monitor roots them at `maintenance_windows`).
pub fn validate(section: &Map<String, Value>, env: &Env, zones: &dyn Zones) -> Result<MaintenanceConfig, Vec<String>> {
    let valid = spec()
        .validate(section, env)
        .map_err(|e| e.errors.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    compile(&valid, zones)
}

/// A section [`spec`] validated, turned into windows: times, days, zones and instants
/// checked, each problem at its path.
pub fn compile(valid: &Map<String, Value>, zones: &dyn Zones) -> Result<MaintenanceConfig, Vec<String>> {
    let mut problems = Vec::new();
    let mut windows = Vec::new();
    let text = |m: &Map<String, Value>, k: &str| m.get(k).and_then(Value::as_str).map(str::to_string);
    let default = valid.get("default_window").and_then(Value::as_object);
    if let Some(d) = default {
        if let Some(w) = weekly(d, "default", "default_window", zones, &mut problems) {
            windows.push(Window::Weekly(w));
        }
    }
    let list = valid
        .get("windows")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut names: Vec<String> = Vec::new();
    for (i, w) in list.iter().enumerate() {
        let path = format!("windows[{i}]");
        let Some(w) = w.as_object() else { continue };
        let name = text(w, "name").unwrap_or_default();
        if names.contains(&name) {
            problems.push(format!("{path}.name: {} names another window too", quote(&name)));
        }
        names.push(name.clone());
        let has = |keys: &[&str]| keys.iter().any(|k| w.get(*k).is_some_and(|v| !v.is_null()));
        let (one_off, weekly_keys) = (
            has(&["start", "end"]),
            has(&["days", "start_time", "end_time", "timezone"]),
        );
        if one_off && weekly_keys {
            problems.push(format!(
                "{path}: start/end (a one-off window) and days/start_time/end_time/timezone (a weekly one) cannot be mixed"
            ));
        } else if one_off {
            let instant = |key: &str, problems: &mut Vec<String>| match text(w, key) {
                None => {
                    problems.push(format!("{path}.{key}: missing required option"));
                    None
                }
                Some(t) => parse_instant(&t)
                    .map_err(|e| problems.push(format!("{path}.{key}: {e}")))
                    .ok(),
            };
            let (start, end) = (instant("start", &mut problems), instant("end", &mut problems));
            if let (Some(start_ms), Some(end_ms)) = (start, end) {
                if end_ms <= start_ms {
                    problems.push(format!("{path}.end: it is not after start"));
                } else {
                    windows.push(Window::OneOff { name, start_ms, end_ms });
                }
            }
        } else if let Some(weekly) = weekly(w, &name, &path, zones, &mut problems) {
            windows.push(Window::Weekly(weekly));
        }
    }
    let mut services = Vec::new();
    for (i, s) in valid
        .get("services")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let Some(s) = s.as_object() else { continue };
        let name = text(s, "name").unwrap_or_default();
        if services.iter().any(|(n, _)| n == &name) {
            problems.push(format!("services[{i}].name: {} is listed twice", quote(&name)));
        }
        services.push((
            name,
            s.get("suppress_recovery").and_then(Value::as_bool).unwrap_or(false),
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    let flag = |k: &str, d: bool| valid.get(k).and_then(Value::as_bool).unwrap_or(d);
    Ok(MaintenanceConfig {
        enabled: flag("enabled", false),
        windows,
        suppress_alerts: flag("suppress_alerts_during_maintenance", true),
        suppress_recovery: flag("suppress_recovery", false),
        services,
    })
}

/// A weekly window from its keys (the seed's defaults for those missing).
fn weekly(
    m: &Map<String, Value>,
    name: &str,
    path: &str,
    zones: &dyn Zones,
    problems: &mut Vec<String>,
) -> Option<Weekly> {
    let before = problems.len();
    let text = |k: &str, default: &str| m.get(k).and_then(Value::as_str).unwrap_or(default).to_string();
    let mut time = |k: &str, default: &str| {
        parse_time_of_day(&text(k, default))
            .map_err(|e| problems.push(format!("{path}.{k}: {e}")))
            .ok()
    };
    let (start, end) = (time("start_time", DEFAULT_START), time("end_time", DEFAULT_END));
    let days: Vec<String> = match m.get("days").and_then(Value::as_array) {
        Some(list) => list.iter().filter_map(|d| d.as_str().map(str::to_string)).collect(),
        None => DEFAULT_DAYS.iter().map(|d| d.to_string()).collect(),
    };
    if days.is_empty() {
        problems.push(format!("{path}.days: a weekly window needs at least one day"));
    }
    let mut parsed = Vec::new();
    for (i, d) in days.iter().enumerate() {
        match parse_weekday(d) {
            Ok(day) if !parsed.contains(&day) => parsed.push(day),
            Ok(_) => problems.push(format!("{path}.days[{i}]: {} is listed twice", quote(d))),
            Err(e) => problems.push(format!("{path}.days[{i}]: {e}")),
        }
    }
    if let (Some(s), Some(e)) = (start, end) {
        if s == e {
            problems.push(format!(
                "{path}.end_time: it equals start_time; a window has a length (an end before the start crosses midnight)"
            ));
        }
    }
    let zone_name = text("timezone", DEFAULT_TIMEZONE);
    let timezone = zones
        .zone(&zone_name)
        .map_err(|e| {
            problems.push(format!(
                "{path}.timezone: {} is not a known IANA time zone (UTC, Europe/Berlin): {e}",
                quote(&zone_name)
            ))
        })
        .ok();
    if problems.len() > before {
        return None;
    }
    Some(Weekly {
        name: name.to_string(),
        days: parsed,
        start: start?,
        end: end?,
        timezone: timezone?,
    })
}

/// What a front end asks of an ad-hoc window (`maintenance_window`'s options, the CLI's
/// `maintenance start` and `stop`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Ask {
    pub name: String,
    /// Open (or keep open) the window; `false` closes it.
    pub present: bool,
    /// The end asked for, from a duration or an instant.
    pub end_ms: Option<u64>,
    /// The end was given as an instant: it moves an open window's end (a duration does not,
    /// so re-running a play changes nothing).
    pub end_is_instant: bool,
    pub reason: String,
    pub services: Vec<String>,
    /// Who opens it (recorded in a new window only).
    pub actor: String,
}

/// How a window changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    Open,
    Update,
    Close,
}

impl Change {
    /// The action's name in the audit trail.
    pub fn action(self) -> &'static str {
        match self {
            Change::Open => "maintenance.open",
            Change::Update => "maintenance.update",
            Change::Close => "maintenance.close",
        }
    }
}

/// What [`plan`] decided: the window open before (if any) and, when something changes,
/// the record to store and how it changed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    pub open: Option<AdHoc>,
    pub next: Option<(AdHoc, Change)>,
}

/// Why an ask cannot be planned.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("the window is to be open but neither a duration nor an end is given: say how long it lasts")]
    NoEnd,
    #[error("end: {} is not in the future (now is {})", quote(&crate::timestamp::rfc3339(*end_ms)), crate::timestamp::rfc3339(*now_ms))]
    EndPassed { end_ms: u64, now_ms: u64 },
}

/// The one decision how an ad-hoc window changes, for the module and the CLI alike:
/// - present, no open window: open one now until the end asked (an end is needed);
/// - present, an open window: change only what differs (reason, services, and the end when
///   it is given as an instant);
/// - absent, an open window: close it (its end becomes now; the record stays);
/// - absent, none open: nothing. A window whose end has passed is not open.
pub fn plan(current: Option<&AdHoc>, ask: &Ask, now_ms: u64) -> Result<Plan, PlanError> {
    let open = current.filter(|w| w.start_ms <= now_ms && now_ms < w.end_ms).cloned();
    if !ask.present {
        let next = open.as_ref().map(|w| {
            (
                AdHoc {
                    end_ms: now_ms,
                    ..w.clone()
                },
                Change::Close,
            )
        });
        return Ok(Plan { open, next });
    }
    if let Some(end) = ask.end_ms.filter(|e| *e <= now_ms) {
        return Err(PlanError::EndPassed { end_ms: end, now_ms });
    }
    let next = match &open {
        Some(w) => {
            let wanted = AdHoc {
                reason: ask.reason.clone(),
                services: ask.services.clone(),
                end_ms: match ask.end_ms {
                    Some(end) if ask.end_is_instant => end,
                    _ => w.end_ms,
                },
                ..w.clone()
            };
            (&wanted != w).then_some((wanted, Change::Update))
        }
        None => {
            let end_ms = ask.end_ms.ok_or(PlanError::NoEnd)?;
            Some((
                AdHoc {
                    name: ask.name.clone(),
                    reason: ask.reason.clone(),
                    actor: ask.actor.clone(),
                    start_ms: now_ms,
                    end_ms,
                    services: ask.services.clone(),
                },
                Change::Open,
            ))
        }
    };
    Ok(Plan { open, next })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bundled tz database (dev-dependency feature), the same on every machine.
    struct Bundled;
    impl Zones for Bundled {
        fn zone(&self, name: &str) -> Result<TimeZone, String> {
            jiff::tz::db().get(name).map_err(|e| e.to_string())
        }
    }

    fn ms(text: &str) -> u64 {
        parse_instant(text).expect("test instant")
    }

    fn week(days: &[&str], start: &str, end: &str, tz: &str) -> Window {
        Window::Weekly(Weekly {
            name: "w".into(),
            days: days.iter().map(|d| parse_weekday(d).expect("day")).collect(),
            start: parse_time_of_day(start).expect("start"),
            end: parse_time_of_day(end).expect("end"),
            timezone: Bundled.zone(tz).expect("zone"),
        })
    }

    /// (window, instant, expected (start, end) of the active occurrence or None).
    type Case<'a> = (Window, &'a str, Option<(&'a str, &'a str)>);

    fn table(cases: &[Case<'_>]) {
        for (w, at, expected) in cases {
            let got = active_at(std::slice::from_ref(w), ms(at)).map(|a| (a.start_ms, a.end_ms));
            let want = expected.map(|(s, e)| (ms(s), ms(e)));
            assert_eq!(got, want, "at {at} in {w:?}");
        }
    }

    #[test]
    fn seed_default_sunday_utc() {
        let w = || week(&["Sunday"], "02:00", "04:00", "UTC");
        let occ = Some(("2026-12-06T02:00:00Z", "2026-12-06T04:00:00Z"));
        table(&[
            (w(), "2026-12-06T01:59:59.999Z", None),
            (w(), "2026-12-06T02:00:00Z", occ),
            (w(), "2026-12-06T03:59:59.999Z", occ),
            (w(), "2026-12-06T04:00:00Z", None),
            (w(), "2026-12-07T02:30:00Z", None), // Monday
            (w(), "2026-12-05T02:30:00Z", None), // Saturday
        ]);
    }

    #[test]
    fn across_midnight_runs_into_the_next_day() {
        let w = || week(&["Saturday"], "23:00", "01:00", "UTC");
        let occ = Some(("2026-12-05T23:00:00Z", "2026-12-06T01:00:00Z"));
        table(&[
            (w(), "2026-12-05T22:59:00Z", None),
            (w(), "2026-12-05T23:30:00Z", occ),
            (w(), "2026-12-06T00:59:00Z", occ), // Sunday morning, Saturday's window
            (w(), "2026-12-06T01:00:00Z", None),
            (w(), "2026-12-06T23:30:00Z", None), // Sunday night: not a window day
        ]);
    }

    #[test]
    fn berlin_spring_forward_hour_does_not_exist() {
        // 2026-03-29: clocks go 02:00 CET -> 03:00 CEST. 02:00 is skipped: the window opens
        // at 03:00 CEST (01:00Z) and closes at 04:00 CEST (02:00Z): one hour.
        let w = || week(&["Sunday"], "02:00", "04:00", "Europe/Berlin");
        let occ = Some(("2026-03-29T01:00:00Z", "2026-03-29T02:00:00Z"));
        table(&[
            (w(), "2026-03-29T00:59:59Z", None),
            (w(), "2026-03-29T01:00:00Z", occ),
            (w(), "2026-03-29T01:59:59Z", occ),
            (w(), "2026-03-29T02:00:00Z", None),
            // The Sunday before, plain CET: 02:00-04:00 local is 01:00Z-03:00Z.
            (
                w(),
                "2026-03-22T02:30:00Z",
                Some(("2026-03-22T01:00:00Z", "2026-03-22T03:00:00Z")),
            ),
            // The Sunday after, plain CEST: 00:00Z-02:00Z.
            (
                w(),
                "2026-04-05T00:00:00Z",
                Some(("2026-04-05T00:00:00Z", "2026-04-05T02:00:00Z")),
            ),
        ]);
    }

    #[test]
    fn berlin_fall_back_hour_repeats() {
        // 2026-10-25: clocks go 03:00 CEST -> 02:00 CET; 02:00-03:00 happens twice. The
        // window opens at the first 02:00 (CEST, 00:00Z) and closes at 04:00 CET (03:00Z).
        let w = || week(&["Sunday"], "02:00", "04:00", "Europe/Berlin");
        let occ = Some(("2026-10-25T00:00:00Z", "2026-10-25T03:00:00Z"));
        table(&[
            (w(), "2026-10-24T23:59:59Z", None),
            (w(), "2026-10-25T00:00:00Z", occ), // 02:00 CEST
            (w(), "2026-10-25T01:30:00Z", occ), // 02:30 CET, the second time round
            (w(), "2026-10-25T02:59:59Z", occ),
            (w(), "2026-10-25T03:00:00Z", None),
        ]);
    }

    #[test]
    fn new_york_across_midnight_and_dst() {
        // Saturday 22:00 to Sunday 03:00 New York time. 2026-03-08 02:00 EST -> 03:00 EDT.
        let w = || week(&["Saturday"], "22:00", "03:00", "America/New_York");
        table(&[
            // Plain EST: 22:00 EST = 03:00Z, 03:00 EST = 08:00Z.
            (
                w(),
                "2026-03-01T03:00:00Z",
                Some(("2026-03-01T03:00:00Z", "2026-03-01T08:00:00Z")),
            ),
            (w(), "2026-03-01T02:59:00Z", None),
            (w(), "2026-02-28T03:00:00Z", None), // Friday 22:00 EST
            // Across spring forward: 22:00 EST (03:00Z) to 03:00 EDT (07:00Z): four hours.
            (
                w(),
                "2026-03-08T06:30:00Z",
                Some(("2026-03-08T03:00:00Z", "2026-03-08T07:00:00Z")),
            ),
            (w(), "2026-03-08T07:00:00Z", None),
            // Across fall back (2026-11-01 02:00 EDT -> 01:00 EST): 22:00 EDT (02:00Z) to
            // 03:00 EST (08:00Z): six hours.
            (
                w(),
                "2026-11-01T07:59:00Z",
                Some(("2026-11-01T02:00:00Z", "2026-11-01T08:00:00Z")),
            ),
        ]);
    }

    #[test]
    fn one_off_and_ad_hoc_and_the_longest_wins() {
        let one_off = Window::OneOff {
            name: "upgrade".into(),
            start_ms: ms("2026-12-24T20:00:00Z"),
            end_ms: ms("2026-12-24T23:00:00Z"),
        };
        let ad_hoc = Window::AdHoc(AdHoc {
            name: "kernel".into(),
            reason: "kernel update".into(),
            actor: "alice".into(),
            start_ms: ms("2026-12-24T21:00:00Z"),
            end_ms: ms("2026-12-25T01:00:00Z"),
            services: vec!["nginx".into()],
        });
        let both = [one_off.clone(), ad_hoc.clone()];
        let at = |t: &str| active_at(&both, ms(t)).map(|a| (a.name, a.kind));
        assert_eq!(at("2026-12-24T19:59:59Z"), None);
        assert_eq!(at("2026-12-24T20:30:00Z"), Some(("upgrade".into(), "one_off")));
        assert_eq!(at("2026-12-24T22:00:00Z"), Some(("kernel".into(), "ad_hoc")));
        assert_eq!(at("2026-12-25T01:00:00Z"), None);
        let a = active_at(&both, ms("2026-12-24T22:00:00Z")).expect("active");
        assert_eq!(
            (a.reason.as_deref(), a.actor.as_deref()),
            (Some("kernel update"), Some("alice"))
        );
        // The ad-hoc window covers nginx only.
        let t = ms("2026-12-24T23:30:00Z");
        assert_eq!(active_for(&both, "nginx", t).map(|a| a.name), Some("kernel".into()));
        assert_eq!(active_for(&both, "postgresql", t), None);
    }

    fn section(yaml: Value) -> Result<MaintenanceConfig, Vec<String>> {
        validate(yaml.as_object().expect("object"), &Env::default(), &Bundled)
    }

    #[test]
    fn the_seed_section_is_valid_as_written() {
        let c = section(json!({
            "enabled": true,
            "default_window": {"start_time": "02:00", "end_time": "04:00", "timezone": "UTC", "days": ["Sunday"]},
            "suppress_alerts_during_maintenance": true,
        }))
        .expect("valid");
        assert!(c.enabled && c.suppress_alerts && !c.suppress_recovery);
        assert_eq!(
            c.windows,
            vec![Window::Weekly(Weekly {
                name: "default".into(),
                ..weekly_default()
            })]
        );
        // Missing keys take the seed's defaults.
        let d = section(json!({"default_window": {}})).expect("valid");
        assert_eq!(d.windows, c.windows);
    }

    fn weekly_default() -> Weekly {
        Weekly {
            name: "default".into(),
            days: vec![Weekday::Sunday],
            start: Time::constant(2, 0, 0, 0),
            end: Time::constant(4, 0, 0, 0),
            timezone: Bundled.zone("UTC").expect("utc"),
        }
    }

    #[test]
    fn per_service_suppress_recovery() {
        let c = section(json!({
            "suppress_recovery": true,
            "services": [{"name": "postgresql", "suppress_recovery": false}],
            "windows": [
                {"name": "xmas", "start": "2026-12-24T18:00:00+01:00", "end": "2026-12-26T00:00:00+01:00"},
                {"name": "nightly", "days": ["mon", "Tue"], "start_time": "23:30", "end_time": "00:30", "timezone": "America/New_York"},
            ],
        }))
        .expect("valid");
        assert!(c.suppress_recovery("nginx"));
        assert!(!c.suppress_recovery("postgresql"));
        assert_eq!(c.windows.len(), 2);
        assert_eq!(
            c.windows[0],
            Window::OneOff {
                name: "xmas".into(),
                start_ms: ms("2026-12-24T17:00:00Z"),
                end_ms: ms("2026-12-25T23:00:00Z")
            }
        );
    }

    #[test]
    fn problems_are_named_by_path() {
        let cases: &[(Value, &[&str])] = &[
            (
                json!({"default_window": {"start_time": "2:00", "end_time": "24:00", "days": ["Sunday", "Funday", "sun"]}}),
                &[
                    "default_window.start_time: '2:00' is not a time of day HH:MM (00:00-23:59)",
                    "default_window.end_time: '24:00' is not a time of day HH:MM (00:00-23:59)",
                    "default_window.days[1]: 'Funday' is not a day of the week (Monday, Tuesday, Wednesday, Thursday, Friday, Saturday, Sunday)",
                    "default_window.days[2]: 'sun' is listed twice",
                ],
            ),
            (
                json!({"windows": [
                    {"name": "a", "start": "2026-12-24", "end": "2026-12-24T10:00:00Z"},
                    {"name": "a", "start": "2026-12-24T10:00:00Z", "end": "2026-12-24T09:00:00Z"},
                    {"name": "b", "start": "2026-12-24T10:00:00Z", "days": ["Sunday"]},
                    {"name": "c", "end": "2026-12-24T10:00:00Z"},
                    {"name": "d", "start_time": "01:00", "end_time": "01:00", "days": []},
                ]}),
                &[
                    "windows[1].name: 'a' names another window too",
                    "windows[1].end: it is not after start",
                    "windows[2]: start/end (a one-off window) and days/start_time/end_time/timezone (a weekly one) cannot be mixed",
                    "windows[3].start: missing required option",
                    "windows[4].days: a weekly window needs at least one day",
                    "windows[4].end_time: it equals start_time; a window has a length (an end before the start crosses midnight)",
                ],
            ),
            (
                json!({"services": [{"name": "x", "suppress_recovery": true}, {"name": "x", "suppress_recovery": false}]}),
                &["services[1].name: 'x' is listed twice"],
            ),
        ];
        for (input, expected) in cases {
            let got = section(input.clone()).expect_err("invalid");
            // windows[0].start's message comes from jiff: check its head only.
            let got: Vec<String> = got
                .into_iter()
                .filter(|p| !p.starts_with("windows[0].start:"))
                .collect();
            assert_eq!(got, *expected, "{input}");
        }
        let got = section(json!({"windows": [{"name": "a", "start": "2026-12-24", "end": "2026-12-24T10:00:00Z"}]}))
            .expect_err("invalid");
        assert!(
            got[0].starts_with("windows[0].start: '2026-12-24' is not an RFC 3339 time"),
            "{got:?}"
        );
        let tz = section(json!({"default_window": {"timezone": "Mars/Olympus"}})).expect_err("invalid");
        assert!(
            tz[0].starts_with("default_window.timezone: 'Mars/Olympus' is not a known IANA time zone"),
            "{tz:?}"
        );
        let shape = section(json!({"windows": [{"start": "x"}], "suppress_alerts": 1})).expect_err("invalid");
        assert!(shape.iter().any(|p| p.contains("suppress_alerts")), "{shape:?}");
        assert!(shape.iter().any(|p| p.starts_with("windows[0].name")), "{shape:?}");
    }

    fn ask(present: bool, end_ms: Option<u64>, instant: bool) -> Ask {
        Ask {
            name: "deploy".into(),
            present,
            end_ms,
            end_is_instant: instant,
            reason: "r".into(),
            services: Vec::new(),
            actor: "alice".into(),
        }
    }

    #[test]
    fn plan_opens_updates_and_closes() {
        let opened = plan(None, &ask(true, Some(2_000), false), 1_000).expect("plan");
        let (w, change) = opened.next.expect("opens");
        assert_eq!(
            (change, w.start_ms, w.end_ms, w.actor.as_str()),
            (Change::Open, 1_000, 2_000, "alice")
        );
        // A duration again does not push the end back; an instant does.
        assert_eq!(
            plan(Some(&w), &ask(true, Some(2_500), false), 1_500)
                .expect("plan")
                .next,
            None
        );
        let moved = plan(Some(&w), &ask(true, Some(3_000), true), 1_500).expect("plan");
        assert_eq!(moved.next.map(|(w, c)| (w.end_ms, c)), Some((3_000, Change::Update)));
        let closed = plan(Some(&w), &ask(false, None, false), 1_500).expect("plan");
        assert_eq!(closed.next.map(|(w, c)| (w.end_ms, c)), Some((1_500, Change::Close)));
        // Past its end the window is closed already: nothing to close, and present opens anew.
        assert_eq!(
            plan(Some(&w), &ask(false, None, false), 2_000).expect("plan").next,
            None
        );
        let reopened = plan(Some(&w), &ask(true, Some(9_000), false), 2_000).expect("plan");
        assert_eq!(reopened.next.map(|(w, c)| (w.start_ms, c)), Some((2_000, Change::Open)));
    }

    #[test]
    fn plan_refuses_what_it_cannot_do() {
        assert_eq!(plan(None, &ask(true, None, false), 1_000), Err(PlanError::NoEnd));
        assert_eq!(
            plan(None, &ask(true, Some(1_000), true), 1_000),
            Err(PlanError::EndPassed {
                end_ms: 1_000,
                now_ms: 1_000
            })
        );
    }
}
