//! `circuit_breaker`: a persisted circuit breaker that any task can query, feed or set.
//!
//! The state machine is `reliability_core::breaker`; the file, its lock and its atomic
//! writes are `reliability_os::state`. This file reads the options into a breaker
//! [`Config`] and a [`Command`], runs the command under the store's lock (or, in check mode
//! and for `state: query`, on a copy of what is stored, writing nothing) and reports.
//!
//! Decisions:
//! - `state: query` only reads. The state it reports is the effective one: an open breaker
//!   whose recovery timeout is over is reported half-open (the file catches up at the next
//!   change, dated when it became due). It never reports `changed`, except when an unusable
//!   state file had to be moved aside.
//! - `record` feeds a call's result and goes with `state: query` only: a task either reports
//!   a result or sets the state.
//! - Thresholds are not stored with the breaker: every task passes its own (give the same
//!   ones everywhere, for example with `module_defaults`).
//! - Creating the state file is a change (`state: closed` on a breaker that does not exist
//!   yet writes a closed one).

use ansible_module::{Failure, Module, Response};
use reliability_core::breaker::{self, ms, Breaker, Command, Config, Decision, Outcome, State, Transition, WindowKind};
use reliability_core::spec::{Opt, Spec};
use reliability_core::timestamp;
use reliability_os::clock::now_ms;
use reliability_os::state::{self, StateError, Store};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

pub fn spec() -> Spec {
    let mut options = vec![
        Opt::str("name").required(),
        Opt::str("state")
            .choices(&["query", "closed", "open", "reset"])
            .default("query"),
        Opt::str("record").choices(&["success", "failure"]),
        Opt::float("duration").range(0.0, 31_536_000.0),
        Opt::path("state_dir").default(state::DEFAULT_DIR),
    ];
    options.extend(breaker::options());
    Spec::new(options)
}

/// What the task asks, checked.
struct Request {
    name: String,
    command: Command,
    config: Config,
    state_dir: PathBuf,
}

impl Request {
    fn from_params(params: &Map<String, Value>) -> Result<Request, Vec<String>> {
        let str = |name: &str| params.get(name).and_then(Value::as_str);
        let mut problems = Vec::new();
        let name = str("name").unwrap_or_default().to_string();
        if let Err(e) = state::validate_name(&name) {
            problems.push(format!("name: {e}"));
        }
        let state_dir = PathBuf::from(str("state_dir").unwrap_or(state::DEFAULT_DIR));
        if !state_dir.is_absolute() {
            problems.push(format!("state_dir: '{}' is not an absolute path", state_dir.display()));
        }

        let duration_ms = params.get("duration").and_then(Value::as_f64).map(ms);
        let command = match (str("state").unwrap_or("query"), str("record")) {
            (_, None) if duration_ms.is_some() => {
                problems.push("duration is the duration of a recorded call: it needs record".into());
                Command::Query
            }
            ("query", None) => Command::Query,
            ("query", Some(result)) => {
                let outcome = if result == "failure" {
                    Outcome::failure()
                } else {
                    Outcome::success()
                };
                Command::Record(Outcome { duration_ms, ..outcome })
            }
            (state, Some(_)) => {
                problems.push(format!(
                    "record cannot be combined with state '{state}': record a result (state query) or set the state, in separate tasks"
                ));
                Command::Query
            }
            ("closed", None) => Command::Force(State::Closed),
            ("open", None) => Command::Force(State::Open),
            (_, None) => Command::Reset,
        };

        let config = match breaker::config_from_params(params, "") {
            Ok(config) => config,
            Err(more) => {
                problems.extend(more);
                Config::default()
            }
        };
        if problems.is_empty() {
            Ok(Request {
                name,
                command,
                config,
                state_dir,
            })
        } else {
            Err(problems)
        }
    }
}

/// Reads options that [`spec`] validated and checks what it cannot (the breaker's name,
/// the thresholds), touching nothing: the run-free half of the module, for the fuzz targets.
pub fn check_options(params: &Map<String, Value>) -> Result<(), Vec<String>> {
    Request::from_params(params).map(drop)
}

/// What one run did to the breaker.
struct Run {
    /// As stored before (`None`: no file).
    before: Option<Breaker>,
    /// As stored after, or as it would be (check mode), or as it is now (query).
    after: Breaker,
    /// The transitions this run caused (or would cause, or found due).
    transitions: Vec<Transition>,
    now: u64,
    /// An unusable state file moved aside (or that would be, in check mode).
    moved_aside: bool,
}

pub fn run(module: &mut Module) -> Result<Response, Failure> {
    let request = Request::from_params(&module.params).map_err(|problems| {
        Failure::new(format!(
            "invalid arguments for circuit_breaker: {}",
            problems.join("; ")
        ))
        .field("problems", problems)
    })?;
    let store = Store::new(&request.state_dir);
    let path = store.path::<Breaker>(&request.name)?;
    let read_only = module.check_mode() || request.command == Command::Query;
    let run = if read_only {
        predict(module, &store, &request)?
    } else {
        change(module, &store, &request)?
    };
    let changed = run.moved_aside || (request.command != Command::Query && run.before.as_ref() != Some(&run.after));
    Ok(report(module, &request, &run, &path, changed))
}

/// Check mode and queries: the command on a copy of what is stored; nothing is written,
/// except that a query (not in check mode) moves an unusable file aside.
fn predict(module: &mut Module, store: &Store, request: &Request) -> Result<Run, Failure> {
    let (before, moved_aside) = match store.load::<Breaker>(&request.name) {
        Ok(before) => (before, false),
        Err(e @ StateError::Corrupt { .. }) if module.check_mode() => {
            module.warn(format!("{e}; it would be moved aside and the breaker started afresh"));
            (None, true)
        }
        Err(e @ StateError::Corrupt { .. }) => match store.quarantine::<Breaker>(&request.name)? {
            Some(moved) => {
                module.warn(format!(
                    "{e}; moved aside to '{}'; the breaker starts afresh",
                    moved.display()
                ));
                // Read again: another run may have written a fresh breaker meanwhile.
                (store.load::<Breaker>(&request.name)?, true)
            }
            None => (store.load::<Breaker>(&request.name)?, false),
        },
        Err(e) => return Err(e.into()),
    };
    let now = now_ms();
    let mut after = before.clone().unwrap_or_else(|| Breaker::new(now));
    let transitions = after.apply(request.command, now, &request.config);
    Ok(Run {
        before,
        after,
        transitions,
        now,
        moved_aside,
    })
}

/// The command under the lock: read, apply, write atomically. An unusable state file is
/// moved aside by the store and reported here; the breaker then starts afresh.
fn change(module: &mut Module, store: &Store, request: &Request) -> Result<Run, Failure> {
    match attempt(store, request) {
        Err(e @ StateError::Corrupt { moved_to: Some(_), .. }) => {
            module.warn(format!("{e}; the breaker starts afresh"));
            // A second unusable file in a row (another program writing it) is an error.
            let run = attempt(store, request)?;
            Ok(Run {
                moved_aside: true,
                ..run
            })
        }
        other => Ok(other?),
    }
}

fn attempt(store: &Store, request: &Request) -> Result<Run, StateError> {
    let (mut before, mut transitions, mut now) = (None, Vec::new(), 0);
    let after = store.update(&request.name, |current: Option<Breaker>| {
        // The clock is read under the lock, so results are dated in the order they land.
        now = now_ms();
        before = current.clone();
        let mut breaker = current.unwrap_or_else(|| Breaker::new(now));
        transitions = breaker.apply(request.command, now, &request.config);
        Ok::<_, StateError>(breaker)
    })?;
    Ok(Run {
        before,
        after,
        transitions,
        now,
        moved_aside: false,
    })
}

fn seconds(ms: u64) -> f64 {
    ms as f64 / 1000.0
}

fn transition(t: &Transition) -> Value {
    json!({
        "from": t.from,
        "to": t.to,
        "at": timestamp::rfc3339(t.at),
        "cause": t.cause,
        "reason": t.reason,
    })
}

/// State and counters: the `diff` of a run.
fn summary(b: &Breaker, now: u64, config: &Config) -> Value {
    json!({
        "state": b.state,
        "since": timestamp::rfc3339(b.since),
        "counters": b.counters(now, config),
    })
}

fn report(module: &Module, request: &Request, run: &Run, path: &Path, changed: bool) -> Response {
    let Run {
        before,
        after,
        transitions,
        now,
        ..
    } = run;
    let (config, now) = (&request.config, *now);
    let mut probe = after.clone();
    let decision = probe.allow(now, config);
    let retry_after = match decision {
        Decision::Allowed => None,
        Decision::Rejected { retry_after_ms } => Some(seconds(retry_after_ms)),
    };
    let until_half_open = after.time_until_half_open(now, config).map(seconds);
    let mut msg = format!("breaker '{}' is {}", request.name, after.state);
    if let Some(previous) = before.as_ref().map(|b| b.state).filter(|s| *s != after.state) {
        msg = format!("{msg} (was {previous})");
    }
    if let Some(last) = transitions.last() {
        msg = format!("{msg}: {}", last.reason);
    }
    match (decision, until_half_open) {
        (Decision::Allowed, _) => msg.push_str("; calls are allowed"),
        (Decision::Rejected { .. }, Some(s)) => msg.push_str(&format!("; calls are refused, half-open in {s} s")),
        (Decision::Rejected { retry_after_ms }, None) => msg.push_str(&format!(
            "; every trial call is taken, retry in {} s",
            seconds(retry_after_ms)
        )),
    }
    let w = config.window.as_ref();
    let mut response = Response::new()
        .changed(changed)
        .msg(msg)
        .field("name", request.name.as_str())
        .field("state", after.state.as_str())
        .field("previous_state", before.as_ref().map(|b| b.state.as_str()))
        .field("allowed", decision == Decision::Allowed)
        .field("retry_after", retry_after)
        .field("time_until_half_open", until_half_open)
        .field("since", timestamp::rfc3339(after.since))
        .field("counters", json!(after.counters(now, config)))
        .field("transitions", after.transitions.iter().map(transition).collect::<Vec<_>>())
        .field(
            "config",
            json!({
                "failure_threshold": config.failure_threshold,
                "recovery_timeout": seconds(config.recovery_timeout_ms),
                "half_open_max_calls": config.half_open_max_calls,
                "success_threshold": config.success_threshold,
                "sliding_window_type": w.map_or("none", |w| match w.kind {
                    WindowKind::Count => "count",
                    WindowKind::Time => "time",
                }),
                "sliding_window_size": w.map(|w| w.size),
                "minimum_number_of_calls": w.map(|w| w.minimum_number_of_calls),
                "failure_rate_threshold": w.map(|w| w.failure_rate_threshold),
                "slow_call_duration_threshold": w.and_then(|w| w.slow_call_duration_threshold_ms).map(seconds),
                "slow_call_rate_threshold": w.filter(|w| w.slow_call_duration_threshold_ms.is_some()).map(|w| w.slow_call_rate_threshold),
            }),
        )
        .field("state_file", path.display().to_string());
    if module.diff_mode() {
        // A query reports the effective state and changes nothing: before is after.
        let before = match (request.command, before) {
            (Command::Query, _) => summary(after, now, config),
            (_, Some(b)) => summary(b, now, config),
            (_, None) => json!({}),
        };
        let header = path.display().to_string();
        response = response.field(
            "diff",
            json!({
                "before": before,
                "after": summary(after, now, config),
                "before_header": header,
                "after_header": header,
            }),
        );
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_seconds_to_milliseconds() {
        assert_eq!(ms(60.0), 60_000);
        assert_eq!(ms(0.25), 250);
        assert_eq!(ms(1.0004), 1000);
    }

    #[test]
    fn spec_defaults_are_the_seed() {
        let spec = spec().to_argument_spec();
        let seed = Config::default();
        assert_eq!(spec["failure_threshold"]["default"], json!(seed.failure_threshold));
        assert_eq!(spec["half_open_max_calls"]["default"], json!(seed.half_open_max_calls));
        assert_eq!(spec["success_threshold"]["default"], json!(seed.success_threshold));
        assert_eq!(
            spec["recovery_timeout"]["default"],
            json!(seconds(seed.recovery_timeout_ms))
        );
    }
}
