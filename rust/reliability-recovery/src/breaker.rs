//! The persisted circuit breaker as an engine: the one piece of code that reads, changes
//! and writes a breaker's state file. The `circuit_breaker` module, the recovery engine
//! (which guards every step with a breaker) and the daemon all go through here.
//!
//! The state machine is [`reliability_core::breaker`]; the file, its lock and its atomic
//! writes are [`reliability_os::state`]. A caller passes its clock (read under the lock, so
//! results are dated in the order they land).
//!
//! Decisions:
//! - One behaviour on an unusable state file, everywhere: it is moved aside (in check mode:
//!   would be), a warning names both paths, and the breaker starts afresh (closed). A second
//!   unusable file in a row (another program writing it) is an error.
//! - `Query` only reads. The state it reports is the effective one: an open breaker whose
//!   recovery timeout is over is reported half-open (the file catches up at the next
//!   change, dated when it became due). It never reports `changed`, except when an unusable
//!   state file had to be moved aside.
//! - `record` feeds a call's result and goes with `state: query` only: a caller either
//!   reports a result or sets the state.
//! - Thresholds are not stored with the breaker: every caller passes its own.
//! - Creating the state file is a change (`closed` on a breaker that does not exist yet
//!   writes a closed one).

use reliability_core::breaker::{self, ms, Breaker, Command, Config, Decision, Outcome, State, Transition, WindowKind};
use reliability_core::request::{Report, RequestError};
use reliability_core::spec::{Opt, Spec};
use reliability_core::timestamp;
use reliability_os::state::{self, StateError, Store};
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::path::PathBuf;

/// The options of a breaker request (the `circuit_breaker` module's), declared once.
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

/// What a caller asks of one breaker, checked.
#[derive(Clone, Debug, PartialEq)]
pub struct BreakerRequest {
    pub name: String,
    pub command: Command,
    pub config: Config,
    pub state_dir: PathBuf,
}

impl BreakerRequest {
    /// Reads options that [`spec`] validated and checks what it cannot.
    pub fn from_params(params: &Map<String, Value>) -> Result<BreakerRequest, RequestError> {
        let text = |k: &str| params.get(k).and_then(Value::as_str);
        let mut problems = Vec::new();
        let name = text("name").unwrap_or_default().to_string();
        if let Err(e) = state::validate_name(&name) {
            problems.push(format!("name: {e}"));
        }
        let state_dir = PathBuf::from(text("state_dir").unwrap_or(state::DEFAULT_DIR));
        if !state_dir.is_absolute() {
            problems.push(format!("state_dir: '{}' is not an absolute path", state_dir.display()));
        }
        let duration_ms = params.get("duration").and_then(Value::as_f64).map(ms);
        let command = match (text("state").unwrap_or("query"), text("record")) {
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
        let config = breaker::config_from_params(params, "").unwrap_or_else(|more| {
            problems.extend(more);
            Config::default()
        });
        RequestError::check(problems, || BreakerRequest {
            name,
            command,
            config,
            state_dir,
        })
    }
}

/// A breaker changed under its lock.
#[derive(Clone, Debug)]
pub struct Updated<T> {
    /// As stored before (`None`: no file, or an unusable one moved aside).
    pub before: Option<Breaker>,
    pub after: Breaker,
    /// What the change returned.
    pub out: T,
    /// When the change was made (unix ms, read under the lock).
    pub now: u64,
    /// The warning about an unusable file moved aside.
    pub moved_aside: Option<String>,
}

/// Apply `f` to breaker `name` under its lock and write it: the one way a breaker changes.
/// An unusable file is moved aside, reported in `moved_aside`, and the breaker starts
/// afresh.
pub fn update<T>(
    store: &Store,
    name: &str,
    clock: &dyn Fn() -> u64,
    mut f: impl FnMut(&mut Breaker, u64) -> T,
) -> Result<Updated<T>, StateError> {
    let mut attempt = || {
        let (mut before, mut out, mut now) = (None, None, 0);
        let after = store.update(name, |current: Option<Breaker>| {
            now = clock();
            before = current.clone();
            let mut b = current.unwrap_or_else(|| Breaker::new(now));
            out = Some(f(&mut b, now));
            Ok::<_, StateError>(b)
        })?;
        Ok::<_, StateError>((before, after, out, now))
    };
    let (result, moved_aside) = match attempt() {
        Err(e @ StateError::Corrupt { moved_to: Some(_), .. }) => {
            (attempt()?, Some(format!("{e}; the breaker starts afresh")))
        }
        other => (other?, None),
    };
    let (before, after, out, now) = result;
    let out = out.ok_or_else(|| StateError::Encode {
        path: store.dir::<Breaker>().join(name),
        source: serde::ser::Error::custom("the breaker update did not run"),
    })?;
    Ok(Updated {
        before,
        after,
        out,
        now,
        moved_aside,
    })
}

/// Breaker `name` as stored, read only (check mode, queries, a recovery's prediction). An
/// unusable file is moved aside unless `check_mode` (then it would be); either way the
/// warning says so and the breaker starts afresh.
pub fn load(store: &Store, name: &str, check_mode: bool) -> Result<(Option<Breaker>, Option<String>), StateError> {
    match store.load::<Breaker>(name) {
        Ok(b) => Ok((b, None)),
        Err(e @ StateError::Corrupt { .. }) if check_mode => Ok((
            None,
            Some(format!("{e}; it would be moved aside and the breaker started afresh")),
        )),
        Err(e @ StateError::Corrupt { .. }) => match store.quarantine::<Breaker>(name)? {
            Some(moved) => Ok((
                // Read again: another run may have written a fresh breaker meanwhile.
                store.load::<Breaker>(name)?,
                Some(format!(
                    "{e}; moved aside to '{}'; the breaker starts afresh",
                    moved.display()
                )),
            )),
            None => Ok((store.load::<Breaker>(name)?, None)),
        },
        Err(e) => Err(e),
    }
}

/// What a breaker request did, as every front end reports it.
#[derive(Clone, Debug, Serialize)]
pub struct BreakerReport {
    pub name: String,
    pub state: State,
    pub previous_state: Option<State>,
    pub allowed: bool,
    /// Seconds until a trial is allowed (every trial taken).
    pub retry_after: Option<f64>,
    pub time_until_half_open: Option<f64>,
    pub since: String,
    pub counters: breaker::Counters,
    pub transitions: Vec<Value>,
    pub config: Value,
    pub state_file: String,
    /// Stored state and counters before and after (before is after for a query).
    #[serde(skip)]
    pub diff: Value,
    pub changed: bool,
    pub msg: String,
    pub warnings: Vec<String>,
}

impl Report for BreakerReport {
    fn changed(&self) -> bool {
        self.changed
    }
    fn failed(&self) -> bool {
        false
    }
    fn msg(&self) -> &str {
        &self.msg
    }
    fn warnings(&self) -> &[String] {
        &self.warnings
    }
    fn diff(&self) -> Option<Value> {
        Some(self.diff.clone())
    }
}

/// Runs the request at the time `clock` gives. Check mode and `Query` run the command on a
/// copy of what is stored and write nothing (a query outside check mode moves an unusable
/// file aside).
pub fn run(request: &BreakerRequest, clock: &dyn Fn() -> u64, check_mode: bool) -> Result<BreakerReport, StateError> {
    let store = Store::new(&request.state_dir);
    let path = store.path::<Breaker>(&request.name)?;
    let (before, after, transitions, now, warning) = if check_mode || request.command == Command::Query {
        let (before, warning) = load(&store, &request.name, check_mode)?;
        let now = clock();
        let mut after = before.clone().unwrap_or_else(|| Breaker::new(now));
        let transitions = after.apply(request.command, now, &request.config);
        (before, after, transitions, now, warning)
    } else {
        let u = update(&store, &request.name, clock, |b, now| {
            b.apply(request.command, now, &request.config)
        })?;
        (u.before, u.after, u.out, u.now, u.moved_aside)
    };
    let changed = warning.is_some() || (request.command != Command::Query && before.as_ref() != Some(&after));
    let config = &request.config;
    let decision = after.clone().allow(now, config);
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
    let header = path.display().to_string();
    let diff_before = match (request.command, &before) {
        (Command::Query, _) => summary(&after, now, config),
        (_, Some(b)) => summary(b, now, config),
        (_, None) => json!({}),
    };
    Ok(BreakerReport {
        name: request.name.clone(),
        state: after.state,
        previous_state: before.as_ref().map(|b| b.state),
        allowed: decision == Decision::Allowed,
        retry_after: match decision {
            Decision::Allowed => None,
            Decision::Rejected { retry_after_ms } => Some(seconds(retry_after_ms)),
        },
        time_until_half_open: until_half_open,
        since: timestamp::rfc3339(after.since),
        counters: after.counters(now, config),
        transitions: after.transitions.iter().map(transition).collect(),
        config: config_json(config),
        state_file: header.clone(),
        diff: json!({
            "before": diff_before,
            "after": summary(&after, now, config),
            "before_header": header,
            "after_header": header,
        }),
        changed,
        msg,
        warnings: warning.into_iter().collect(),
    })
}

pub(crate) fn seconds(ms: u64) -> f64 {
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

/// State and counters: one side of a diff.
fn summary(b: &Breaker, now: u64, config: &Config) -> Value {
    json!({
        "state": b.state,
        "since": timestamp::rfc3339(b.since),
        "counters": b.counters(now, config),
    })
}

fn config_json(config: &Config) -> Value {
    let w = config.window.as_ref();
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
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(dir: &std::path::Path, command: Command) -> BreakerRequest {
        BreakerRequest {
            name: "web".into(),
            command,
            config: Config::default(),
            state_dir: dir.to_path_buf(),
        }
    }

    fn corrupt(dir: &std::path::Path) -> PathBuf {
        let path = Store::new(dir).path::<Breaker>("web").expect("path");
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(&path, "{ not json").expect("corrupt it");
        path
    }

    fn moved_aside(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir.join(breaker::KIND))
            .expect("list")
            .filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().starts_with("web.corrupt-"))
            })
            .count()
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

    #[test]
    fn an_unusable_file_is_moved_aside_the_same_way_for_every_command() {
        for (command, check_mode) in [
            (Command::Record(Outcome::failure()), false),
            (Command::Query, false),
            (Command::Reset, true),
        ] {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = corrupt(dir.path());
            let r = run(&request(dir.path(), command), &|| 1_000, check_mode).expect("run");
            assert!(r.changed, "{command:?}: moving aside is a change");
            assert_eq!(r.warnings.len(), 1, "{command:?}: {:?}", r.warnings);
            assert!(r.warnings[0].contains("is unusable"), "{}", r.warnings[0]);
            assert_eq!(r.state, State::Closed, "started afresh");
            if check_mode {
                assert!(r.warnings[0].contains("would be moved aside"), "{}", r.warnings[0]);
                assert_eq!(moved_aside(dir.path()), 0);
                assert_eq!(std::fs::read_to_string(&path).expect("left"), "{ not json");
            } else {
                assert!(r.warnings[0].contains("starts afresh"), "{}", r.warnings[0]);
                assert_eq!(moved_aside(dir.path()), 1);
            }
        }
    }

    #[test]
    fn update_moves_aside_then_applies() {
        let dir = tempfile::tempdir().expect("tempdir");
        corrupt(dir.path());
        let store = Store::new(dir.path());
        let u = update(&store, "web", &|| 5, |b, now| {
            b.record(Outcome::failure(), now, &Config::default())
        })
        .expect("update");
        assert!(u.moved_aside.is_some() && u.before.is_none());
        assert_eq!(u.after.consecutive_failures, 1);
        assert_eq!(store.load::<Breaker>("web").expect("load"), Some(u.after));
    }
}
