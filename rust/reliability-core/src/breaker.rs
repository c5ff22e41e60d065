//! The circuit breaker: when to stop calling something that keeps failing, and when to try
//! it again.
//!
//! ```text
//!            failure_threshold consecutive failures,
//!            or a failure / slow-call rate over the sliding window
//!   CLOSED ---------------------------------------------------------> OPEN
//!     ^                                                             |   ^
//!     | success_threshold fast successes     recovery_timeout later |   | a failure, or
//!     |                                                             v   | half_open_max_calls
//!     +---------------------------------------------------------- HALF_OPEN  trials without
//!                                                                            enough successes
//! ```
//!
//! The seed semantics (5 consecutive failures open it, 60 s later it half-opens for 3 trial
//! calls, 2 successes close it, any failure reopens it) are the defaults of [`Config`]. Beyond
//! them, as Resilience4j offers, an optional sliding window (the last N calls, or the calls
//! of the last N seconds) opens the breaker when the failure rate or the slow-call rate
//! reaches a threshold, once the window holds a minimum number of calls. Both rules apply
//! together; `failure_threshold: 0` leaves only the window.
//!
//! Decisions the seed leaves open, made here:
//! - Every transition clears the per-state counters (consecutive failures, window, trials),
//!   as Resilience4j starts each state with fresh metrics; `totals` count on across states
//!   until [`Breaker::reset`].
//! - OPEN -> HALF_OPEN happens lazily, on the next look at the breaker, but is dated when it
//!   became due (`since + recovery_timeout`), so the history does not depend on when
//!   somebody looked.
//! - In HALF_OPEN a slow success (with slow-call detection on) is a trial that does not count
//!   towards `success_threshold`; when `half_open_max_calls` trials have reported without
//!   enough successes, the breaker reopens. So `half_open_max_calls` is the trial budget.
//! - A result recorded without asking [`Breaker::allow`] first (a playbook task feeding a
//!   result) still counts as a trial; a permit handed out by `allow` whose result never
//!   came (the caller died) is given back after `recovery_timeout`, so a breaker cannot be
//!   stuck in HALF_OPEN.
//! - Results recorded while OPEN go into `totals` and nothing else: the call should not have
//!   been made, and it says nothing about the recovery timeout.
//! - A call is slow when it took strictly longer than `slow_call_duration_threshold`.
//!   A rate reaches its threshold when it is equal or greater (as in Resilience4j).
//! - A count window needs at most `size` calls: `minimum_number_of_calls` above the size is
//!   read as the size (Resilience4j does the same).
//!
//! The clock is a parameter: `now` is unix milliseconds, given by the caller. Nothing here
//! reads the time, a file or the environment; the OS layer persists a [`Breaker`] as JSON.

use crate::spec::Opt;
use crate::timestamp;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::VecDeque;
use std::fmt;

/// The `kind` of a breaker's state file.
pub const KIND: &str = "circuit_breaker";
/// The state-file format this code reads and writes.
pub const VERSION: u32 = 1;
/// How many transitions a breaker remembers.
pub const HISTORY: usize = 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Closed,
    Open,
    HalfOpen,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Closed => "closed",
            State::Open => "open",
            State::HalfOpen => "half_open",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WindowKind {
    /// The last `size` calls.
    Count,
    /// The calls of the last `size` seconds (per-second buckets).
    Time,
}

/// The thresholds. Not stored with the breaker: every caller passes its own.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Config {
    /// Consecutive failures in CLOSED that open the breaker; 0 turns this rule off.
    pub failure_threshold: u32,
    /// How long the breaker stays OPEN before it lets trial calls through.
    pub recovery_timeout_ms: u64,
    /// Trial calls in HALF_OPEN: permits at once, and results before giving up.
    pub half_open_max_calls: u32,
    /// Fast successes in HALF_OPEN that close the breaker.
    pub success_threshold: u32,
    /// The rate rules; `None`: only consecutive failures count.
    pub window: Option<WindowConfig>,
}

impl Default for Config {
    /// The seed: 5 failures, 60 s, 3 trials, 2 successes, no window.
    fn default() -> Config {
        Config {
            failure_threshold: 5,
            recovery_timeout_ms: 60_000,
            half_open_max_calls: 3,
            success_threshold: 2,
            window: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WindowConfig {
    pub kind: WindowKind,
    /// Calls (count window) or seconds (time window).
    pub size: u32,
    /// Rates are judged only once the window holds this many calls.
    pub minimum_number_of_calls: u32,
    /// Percent of failed calls in the window that opens the breaker.
    pub failure_rate_threshold: f64,
    /// A call slower than this is slow; `None`: no slow-call rule.
    pub slow_call_duration_threshold_ms: Option<u64>,
    /// Percent of slow calls in the window that opens the breaker.
    pub slow_call_rate_threshold: f64,
}

impl WindowConfig {
    /// Resilience4j's defaults: 100 calls minimum, 50% failures, 100% slow calls, no slow rule.
    pub fn new(kind: WindowKind, size: u32) -> WindowConfig {
        WindowConfig {
            kind,
            size,
            minimum_number_of_calls: 100,
            failure_rate_threshold: 50.0,
            slow_call_duration_threshold_ms: None,
            slow_call_rate_threshold: 100.0,
        }
    }

    /// The calls needed before rates count: a count window never holds more than its size.
    fn minimum(&self) -> u64 {
        match self.kind {
            WindowKind::Count => self.minimum_number_of_calls.min(self.size).into(),
            WindowKind::Time => self.minimum_number_of_calls.into(),
        }
    }
}

/// A [`Config`] that cannot work, named by option.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ConfigError {
    #[error("{option} is 0; it must be at least 1")]
    Zero { option: &'static str },
    #[error(
        "success_threshold {success_threshold} is more than half_open_max_calls {half_open_max_calls}: \
         the trial calls could never close the breaker"
    )]
    SuccessAboveTrials {
        success_threshold: u32,
        half_open_max_calls: u32,
    },
    #[error(
        "failure_threshold 0 turns the consecutive-failure rule off and there is no sliding window: \
         nothing could open the breaker"
    )]
    NothingOpens,
    #[error("{option} is {value}; a rate must be above 0 and at most 100 (percent)")]
    Rate { option: &'static str, value: f64 },
}

/// The threshold options of a breaker, as every front end declares them (the
/// `circuit_breaker` module at its top level, `service_recovery` under `breaker`).
pub fn options() -> Vec<Opt> {
    vec![
        Opt::int("failure_threshold").default(5).range(0.0, 1_000_000.0),
        Opt::float("recovery_timeout").default(60.0).range(0.0, 31_536_000.0),
        Opt::int("half_open_max_calls").default(3).range(1.0, 1_000_000.0),
        Opt::int("success_threshold").default(2).range(1.0, 1_000_000.0),
        Opt::str("sliding_window_type")
            .choices(&["none", "count", "time"])
            .default("none"),
        Opt::int("sliding_window_size").range(1.0, 3600.0),
        Opt::int("minimum_number_of_calls").range(1.0, 1_000_000.0),
        Opt::float("failure_rate_threshold").range(0.0, 100.0),
        Opt::float("slow_call_duration_threshold").range(0.0, 31_536_000.0),
        Opt::float("slow_call_rate_threshold").range(0.0, 100.0),
    ]
}

/// The window options: only meaningful with a sliding window.
const WINDOW_OPTIONS: [&str; 5] = [
    "sliding_window_size",
    "minimum_number_of_calls",
    "failure_rate_threshold",
    "slow_call_duration_threshold",
    "slow_call_rate_threshold",
];

/// Seconds (an option) to milliseconds (the core).
pub fn ms(seconds: f64) -> u64 {
    (seconds * 1000.0).round() as u64
}

/// Reads the [`options`] (validated by their spec) into a [`Config`]; every problem the
/// spec cannot see is returned, each prefixed with `prefix` (e.g. `"breaker."`).
pub fn config_from_params(params: &Map<String, Value>, prefix: &str) -> Result<Config, Vec<String>> {
    let mut problems = Vec::new();
    let given = |key: &str| params.get(key).filter(|v| !v.is_null());
    let float = |key: &str| given(key).and_then(Value::as_f64);
    let count = |key: &str| {
        given(key)
            .and_then(Value::as_u64)
            .map(|n| u32::try_from(n).unwrap_or(u32::MAX))
    };
    let window_kind = match given("sliding_window_type").and_then(Value::as_str) {
        Some("count") => Some(WindowKind::Count),
        Some("time") => Some(WindowKind::Time),
        _ => None,
    };
    let window = match window_kind {
        None => {
            let set: Vec<String> = WINDOW_OPTIONS
                .iter()
                .filter(|k| given(k).is_some())
                .map(|k| format!("{prefix}{k}"))
                .collect();
            if !set.is_empty() {
                problems.push(format!(
                    "{} only apply to a sliding window: set {prefix}sliding_window_type to count or time",
                    set.join(", ")
                ));
            }
            None
        }
        Some(kind) => {
            let mut w = WindowConfig::new(kind, count("sliding_window_size").unwrap_or(100));
            if let Some(n) = count("minimum_number_of_calls") {
                w.minimum_number_of_calls = n;
            }
            if let Some(rate) = float("failure_rate_threshold") {
                w.failure_rate_threshold = rate;
            }
            w.slow_call_duration_threshold_ms = float("slow_call_duration_threshold").map(ms);
            match float("slow_call_rate_threshold") {
                Some(_) if w.slow_call_duration_threshold_ms.is_none() => problems.push(format!(
                    "{prefix}slow_call_rate_threshold needs {prefix}slow_call_duration_threshold, which says what a slow call is"
                )),
                Some(rate) => w.slow_call_rate_threshold = rate,
                None => {}
            }
            Some(w)
        }
    };
    let config = Config {
        failure_threshold: count("failure_threshold").unwrap_or(5),
        recovery_timeout_ms: float("recovery_timeout").map_or(60_000, ms),
        half_open_max_calls: count("half_open_max_calls").unwrap_or(3),
        success_threshold: count("success_threshold").unwrap_or(2),
        window,
    };
    if let Err(e) = config.validate() {
        problems.push(format!("{prefix}{e}"));
    }
    if problems.is_empty() {
        Ok(config)
    } else {
        Err(problems)
    }
}

impl Config {
    pub fn validate(&self) -> Result<(), ConfigError> {
        let zero = |option| Err(ConfigError::Zero { option });
        if self.half_open_max_calls == 0 {
            return zero("half_open_max_calls");
        }
        if self.success_threshold == 0 {
            return zero("success_threshold");
        }
        if self.success_threshold > self.half_open_max_calls {
            return Err(ConfigError::SuccessAboveTrials {
                success_threshold: self.success_threshold,
                half_open_max_calls: self.half_open_max_calls,
            });
        }
        let Some(w) = &self.window else {
            return if self.failure_threshold == 0 {
                Err(ConfigError::NothingOpens)
            } else {
                Ok(())
            };
        };
        if w.size == 0 {
            return zero("sliding_window_size");
        }
        if w.minimum_number_of_calls == 0 {
            return zero("minimum_number_of_calls");
        }
        for (option, value) in [
            ("failure_rate_threshold", w.failure_rate_threshold),
            ("slow_call_rate_threshold", w.slow_call_rate_threshold),
        ] {
            if !(value > 0.0 && value <= 100.0) {
                return Err(ConfigError::Rate { option, value });
            }
        }
        Ok(())
    }
}

/// How a call ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallResult {
    Success,
    Failure,
}

/// One call's result, and how long it took when known.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    pub result: CallResult,
    pub duration_ms: Option<u64>,
}

impl Outcome {
    pub fn success() -> Outcome {
        Outcome {
            result: CallResult::Success,
            duration_ms: None,
        }
    }
    pub fn failure() -> Outcome {
        Outcome {
            result: CallResult::Failure,
            duration_ms: None,
        }
    }
    pub fn took(self, ms: u64) -> Outcome {
        Outcome {
            duration_ms: Some(ms),
            ..self
        }
    }
    fn failed(&self) -> bool {
        self.result == CallResult::Failure
    }
    fn slow(&self, config: &Config) -> bool {
        let limit = config.window.as_ref().and_then(|w| w.slow_call_duration_threshold_ms);
        matches!((self.duration_ms, limit), (Some(took), Some(limit)) if took > limit)
    }
}

/// What [`Breaker::allow`] says about a call now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    Allowed,
    /// Not now; ask again after this many milliseconds.
    Rejected {
        retry_after_ms: u64,
    },
}

/// Why a transition happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    ConsecutiveFailures,
    FailureRate,
    SlowCallRate,
    RecoveryTimeout,
    TrialFailed,
    TrialsExhausted,
    TrialsSucceeded,
    Forced,
    Reset,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    pub from: State,
    pub to: State,
    /// Unix milliseconds.
    pub at: u64,
    pub cause: Cause,
    /// For people: the numbers behind the cause.
    pub reason: String,
}

/// What a caller asks of a breaker: one entry point for the module (check mode runs the
/// same command on a copy), the daemon and `service_recovery`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Command {
    /// Only let time pass (OPEN may become HALF_OPEN).
    Query,
    Record(Outcome),
    Force(State),
    Reset,
}

/// Trial-call bookkeeping of HALF_OPEN.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trials {
    /// Permits handed out by `allow` (or implied by results).
    pub permitted: u32,
    /// Results recorded.
    pub results: u32,
    /// Fast successes among them.
    pub successes: u32,
    pub last_permit_at: Option<u64>,
}

/// The calls in one second (time window) or one call (count window).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    /// Unix seconds.
    pub second: u64,
    pub calls: u32,
    pub failures: u32,
    pub slow: u32,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// The kind the buckets were collected for; another kind in the config clears them.
    pub kind: Option<WindowKind>,
    pub buckets: VecDeque<Bucket>,
}

/// Every result recorded since the breaker was created or last reset.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Totals {
    pub calls: u64,
    pub successes: u64,
    pub failures: u64,
    pub slow_calls: u64,
}

/// A breaker's whole state: what the state file holds.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Breaker {
    pub version: u32,
    pub state: State,
    /// When the current state began (unix milliseconds).
    pub since: u64,
    pub consecutive_failures: u32,
    pub trials: Trials,
    pub window: Window,
    pub totals: Totals,
    pub last_call_at: Option<u64>,
    /// The last [`HISTORY`] transitions, oldest first.
    pub transitions: VecDeque<Transition>,
}

/// The numbers of a breaker now, for results and diffs.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Counters {
    pub consecutive_failures: u32,
    pub half_open_calls: u32,
    pub half_open_successes: u32,
    pub half_open_permits: u32,
    pub window_calls: u64,
    pub window_failures: u64,
    pub window_slow_calls: u64,
    /// Percent of failed calls in the window; `None` without a window or calls.
    pub failure_rate: Option<f64>,
    pub slow_call_rate: Option<f64>,
    pub calls: u64,
    pub successes: u64,
    pub failures: u64,
    pub slow_calls: u64,
}

impl Breaker {
    /// A CLOSED breaker with no history, created at `now`.
    pub fn new(now: u64) -> Breaker {
        Breaker {
            version: VERSION,
            state: State::Closed,
            since: now,
            consecutive_failures: 0,
            trials: Trials::default(),
            window: Window::default(),
            totals: Totals::default(),
            last_call_at: None,
            transitions: VecDeque::new(),
        }
    }

    /// Run one [`Command`]; returns the transitions it caused, oldest first.
    pub fn apply(&mut self, command: Command, now: u64, config: &Config) -> Vec<Transition> {
        match command {
            Command::Query => self.tick(now, config),
            Command::Record(outcome) => self.record(outcome, now, config),
            Command::Force(state) => self.force(state, now, config),
            Command::Reset => self.reset(now, config),
        }
    }

    /// Let time pass: an OPEN breaker whose recovery timeout is over becomes HALF_OPEN.
    pub fn tick(&mut self, now: u64, config: &Config) -> Vec<Transition> {
        if self.state != State::Open {
            return Vec::new();
        }
        let due = self.since.saturating_add(config.recovery_timeout_ms);
        if now < due {
            return Vec::new();
        }
        let reason = format!(
            "recovery_timeout {} elapsed",
            timestamp::seconds(config.recovery_timeout_ms)
        );
        vec![self.transition(State::HalfOpen, due, Cause::RecoveryTimeout, reason)]
    }

    /// May a call be made now? In HALF_OPEN a yes hands out one of the trial permits.
    pub fn allow(&mut self, now: u64, config: &Config) -> Decision {
        self.tick(now, config);
        match self.state {
            State::Closed => Decision::Allowed,
            State::Open => Decision::Rejected {
                retry_after_ms: self.time_until_half_open(now, config).unwrap_or(0),
            },
            State::HalfOpen => {
                let trials = &mut self.trials;
                if trials.permitted >= config.half_open_max_calls {
                    // Permits whose result never came back are given up after a recovery
                    // timeout, so a dead caller cannot hold the breaker half-open forever.
                    let stale_at = trials
                        .last_permit_at
                        .map_or(0, |t| t.saturating_add(config.recovery_timeout_ms));
                    if now < stale_at {
                        return Decision::Rejected {
                            retry_after_ms: stale_at - now,
                        };
                    }
                    trials.permitted = trials.results;
                }
                trials.permitted += 1;
                trials.last_permit_at = Some(now);
                Decision::Allowed
            }
        }
    }

    /// Record one call's outcome; returns the transitions it caused.
    pub fn record(&mut self, outcome: Outcome, now: u64, config: &Config) -> Vec<Transition> {
        let mut out = self.tick(now, config);
        let (failed, slow) = (outcome.failed(), outcome.slow(config));
        self.totals.calls += 1;
        if failed {
            self.totals.failures += 1;
        } else {
            self.totals.successes += 1;
        }
        if slow {
            self.totals.slow_calls += 1;
        }
        self.last_call_at = Some(now);
        match self.state {
            State::Open => {}
            State::Closed => {
                if failed {
                    self.consecutive_failures = self.consecutive_failures.saturating_add(1);
                } else {
                    self.consecutive_failures = 0;
                }
                self.add_to_window(now, failed, slow, config);
                if let Some((cause, reason)) = self.opening_rule(now, config) {
                    out.push(self.transition(State::Open, now, cause, reason));
                }
            }
            State::HalfOpen => {
                let trials = &mut self.trials;
                trials.results += 1;
                trials.permitted = trials.permitted.max(trials.results);
                if !failed && !slow {
                    trials.successes += 1;
                }
                let (results, successes) = (trials.results, trials.successes);
                if failed {
                    let reason = "a trial call failed in half_open".to_string();
                    out.push(self.transition(State::Open, now, Cause::TrialFailed, reason));
                } else if successes >= config.success_threshold {
                    let reason = format!(
                        "{successes} trial calls succeeded (success_threshold {})",
                        config.success_threshold
                    );
                    out.push(self.transition(State::Closed, now, Cause::TrialsSucceeded, reason));
                } else if results >= config.half_open_max_calls {
                    let reason = format!(
                        "{results} trial calls gave {successes} fast successes (success_threshold {})",
                        config.success_threshold
                    );
                    out.push(self.transition(State::Open, now, Cause::TrialsExhausted, reason));
                }
            }
        }
        out
    }

    /// Put the breaker in `state` now, unless it is already there (after letting time pass).
    pub fn force(&mut self, state: State, now: u64, config: &Config) -> Vec<Transition> {
        let mut out = self.tick(now, config);
        if self.state != state {
            out.push(self.transition(state, now, Cause::Forced, format!("forced {state}")));
        }
        out
    }

    /// CLOSED with every counter cleared, `totals` included; the history is kept.
    pub fn reset(&mut self, now: u64, config: &Config) -> Vec<Transition> {
        let mut out = self.tick(now, config);
        if self.state != State::Closed {
            let reason = "reset: closed with counters cleared".to_string();
            out.push(self.transition(State::Closed, now, Cause::Reset, reason));
        }
        self.consecutive_failures = 0;
        self.trials = Trials::default();
        self.window.buckets.clear();
        self.totals = Totals::default();
        self.last_call_at = None;
        out
    }

    /// Milliseconds until an OPEN breaker half-opens (0 when that is due); `None` unless OPEN.
    pub fn time_until_half_open(&self, now: u64, config: &Config) -> Option<u64> {
        (self.state == State::Open).then(|| {
            self.since
                .saturating_add(config.recovery_timeout_ms)
                .saturating_sub(now)
        })
    }

    /// The breaker's numbers at `now` (calls that have left a time window are not counted).
    pub fn counters(&self, now: u64, config: &Config) -> Counters {
        let (calls, failures, slow) = self.window_sums(now, config);
        let rate = |part: u64| (config.window.is_some() && calls > 0).then(|| percent(part, calls));
        Counters {
            consecutive_failures: self.consecutive_failures,
            half_open_calls: self.trials.results,
            half_open_successes: self.trials.successes,
            half_open_permits: self.trials.permitted,
            window_calls: calls,
            window_failures: failures,
            window_slow_calls: slow,
            failure_rate: rate(failures),
            slow_call_rate: rate(slow),
            calls: self.totals.calls,
            successes: self.totals.successes,
            failures: self.totals.failures,
            slow_calls: self.totals.slow_calls,
        }
    }

    fn transition(&mut self, to: State, at: u64, cause: Cause, reason: String) -> Transition {
        let t = Transition {
            from: self.state,
            to,
            at,
            cause,
            reason,
        };
        self.state = to;
        self.since = at;
        self.consecutive_failures = 0;
        self.trials = Trials::default();
        self.window.buckets.clear();
        self.transitions.push_back(t.clone());
        while self.transitions.len() > HISTORY {
            self.transitions.pop_front();
        }
        t
    }

    /// The rule that opens a CLOSED breaker now, if any: consecutive failures first, then
    /// the failure rate, then the slow-call rate.
    fn opening_rule(&self, now: u64, config: &Config) -> Option<(Cause, String)> {
        let threshold = config.failure_threshold;
        if threshold > 0 && self.consecutive_failures >= threshold {
            let n = self.consecutive_failures;
            return Some((
                Cause::ConsecutiveFailures,
                format!("{n} consecutive failures (failure_threshold {threshold})"),
            ));
        }
        let w = config.window.as_ref()?;
        let (calls, failures, slow) = self.window_sums(now, config);
        if calls == 0 || calls < w.minimum() {
            return None;
        }
        let over = match w.kind {
            WindowKind::Count => format!("of the last {calls} calls"),
            WindowKind::Time => format!("of {calls} calls in the last {} s", w.size),
        };
        if reaches(failures, calls, w.failure_rate_threshold) {
            return Some((
                Cause::FailureRate,
                format!(
                    "failure rate {}% {over} reached failure_rate_threshold {}%",
                    show(percent(failures, calls)),
                    show(w.failure_rate_threshold)
                ),
            ));
        }
        let limit = w.slow_call_duration_threshold_ms?;
        if reaches(slow, calls, w.slow_call_rate_threshold) {
            return Some((
                Cause::SlowCallRate,
                format!(
                    "slow-call rate {}% (calls over {}) {over} reached slow_call_rate_threshold {}%",
                    show(percent(slow, calls)),
                    timestamp::seconds(limit),
                    show(w.slow_call_rate_threshold)
                ),
            ));
        }
        None
    }

    fn add_to_window(&mut self, now: u64, failed: bool, slow: bool, config: &Config) {
        let Some(w) = &config.window else {
            self.window = Window::default();
            return;
        };
        if self.window.kind != Some(w.kind) {
            self.window = Window {
                kind: Some(w.kind),
                buckets: VecDeque::new(),
            };
        }
        let second = now / 1000;
        let buckets = &mut self.window.buckets;
        let bucket = match w.kind {
            WindowKind::Count => None,
            WindowKind::Time => buckets.iter_mut().rev().find(|b| b.second == second),
        };
        let bucket = match bucket {
            Some(b) => b,
            None => {
                buckets.push_back(Bucket {
                    second,
                    calls: 0,
                    failures: 0,
                    slow: 0,
                });
                match buckets.back_mut() {
                    Some(b) => b,
                    None => return,
                }
            }
        };
        bucket.calls += 1;
        bucket.failures += u32::from(failed);
        bucket.slow += u32::from(slow);
        match w.kind {
            WindowKind::Count => {
                while buckets.len() > w.size as usize {
                    buckets.pop_front();
                }
            }
            WindowKind::Time => buckets.retain(|b| in_time_window(b, now, w.size)),
        }
    }

    /// Calls, failures and slow calls in the window as the config sees it at `now`.
    fn window_sums(&self, now: u64, config: &Config) -> (u64, u64, u64) {
        let Some(w) = &config.window else { return (0, 0, 0) };
        if self.window.kind != Some(w.kind) {
            return (0, 0, 0);
        }
        let buckets = &self.window.buckets;
        // A count window shrunk since the buckets were written counts only its newest calls.
        let skip = match w.kind {
            WindowKind::Count => buckets.len().saturating_sub(w.size as usize),
            WindowKind::Time => 0,
        };
        buckets
            .iter()
            .skip(skip)
            .filter(|b| w.kind == WindowKind::Count || in_time_window(b, now, w.size))
            .fold((0, 0, 0), |(c, f, s), b| {
                (c + u64::from(b.calls), f + u64::from(b.failures), s + u64::from(b.slow))
            })
    }
}

/// A bucket of second `b.second` is in a window of `size` seconds at `now` for `size`
/// seconds: from `b.second` to `b.second + size - 1`. Buckets from the future (the clock
/// was set back) are kept for as long, so a small step back loses nothing.
fn in_time_window(b: &Bucket, now: u64, size: u32) -> bool {
    let now_s = now / 1000;
    let size = u64::from(size);
    b.second + size > now_s && b.second < now_s + size
}

/// `part / whole` reaches `threshold` percent, without rounding: `part * 100 >= t * whole`.
fn reaches(part: u64, whole: u64, threshold: f64) -> bool {
    part as f64 * 100.0 >= threshold * whole as f64
}

/// Percent, rounded to two decimals.
fn percent(part: u64, whole: u64) -> f64 {
    (part as f64 * 10_000.0 / whole as f64).round() / 100.0
}

/// A percentage as people write it: `50`, `33.33`.
fn show(p: f64) -> String {
    if p.fract() == 0.0 {
        format!("{}", p as u64)
    } else {
        format!("{p}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One step of a scenario, at a time in milliseconds.
    #[derive(Clone, Copy, Debug)]
    enum Ev {
        /// A failed call.
        F(u64),
        /// A successful call.
        S(u64),
        /// A successful call that took `ms`.
        Took(u64, u64),
        /// A failed call that took `ms`.
        FailTook(u64, u64),
        /// Ask for a permit.
        Allow(u64),
        Force(u64, State),
        Reset(u64),
        Query(u64),
    }
    use Ev::*;

    /// Run `events` on a new breaker (created at 0) and compare what each did, one entry
    /// per event separated by `, `: the state after it, or the transitions it caused as
    /// `to<cause@at>`; `allow` gives `allowed` or `rejected(ms)`.
    fn check(config: &Config, events: &[Ev], expected: &str) {
        let mut b = Breaker::new(0);
        let got: Vec<String> = events.iter().map(|ev| step(&mut b, config, *ev)).collect();
        assert_eq!(got.join(", "), expected, "events {events:?}");
        // Whatever happened, the state survives a round trip through its file format.
        let text = serde_json::to_string(&b).unwrap_or_default();
        assert_eq!(serde_json::from_str::<Breaker>(&text).ok(), Some(b));
    }

    fn step(b: &mut Breaker, config: &Config, ev: Ev) -> String {
        let command = match ev {
            F(t) => (Command::Record(Outcome::failure()), t),
            S(t) => (Command::Record(Outcome::success()), t),
            Took(t, ms) => (Command::Record(Outcome::success().took(ms)), t),
            FailTook(t, ms) => (Command::Record(Outcome::failure().took(ms)), t),
            Force(t, s) => (Command::Force(s), t),
            Reset(t) => (Command::Reset, t),
            Query(t) => (Command::Query, t),
            Allow(t) => {
                return match b.allow(t, config) {
                    Decision::Allowed => "allowed".into(),
                    Decision::Rejected { retry_after_ms } => format!("rejected({retry_after_ms})"),
                }
            }
        };
        let transitions = b.apply(command.0, command.1, config);
        if transitions.is_empty() {
            return b.state.to_string();
        }
        let parts: Vec<String> = transitions
            .iter()
            .map(|t| format!("{}<{}@{}>", t.to, cause(t.cause), t.at))
            .collect();
        parts.join(" ")
    }

    fn cause(c: Cause) -> String {
        serde_json::to_value(c)
            .ok()
            .and_then(|v| v.as_str().map(String::from))
            .unwrap_or_default()
    }

    fn seed() -> Config {
        Config::default()
    }

    fn with(f: impl FnOnce(&mut Config)) -> Config {
        let mut c = seed();
        f(&mut c);
        c
    }

    fn window(kind: WindowKind, size: u32, f: impl FnOnce(&mut WindowConfig)) -> Config {
        let mut w = WindowConfig::new(kind, size);
        f(&mut w);
        Config {
            failure_threshold: 0,
            window: Some(w),
            ..seed()
        }
    }

    #[test]
    fn seed_defaults() {
        let c = seed();
        assert_eq!(
            (
                c.failure_threshold,
                c.recovery_timeout_ms,
                c.half_open_max_calls,
                c.success_threshold
            ),
            (5, 60_000, 3, 2)
        );
        assert_eq!(c.window, None);
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn consecutive_failures_open_exactly_at_the_threshold() {
        let c = seed();
        check(&c, &[F(1), F(2), F(3), F(4)], "closed, closed, closed, closed");
        check(
            &c,
            &[F(1), F(2), F(3), F(4), F(5)],
            "closed, closed, closed, closed, open<consecutive_failures@5>",
        );
        // A success in between starts the count again.
        check(
            &c,
            &[F(1), F(2), F(3), F(4), S(5), F(6), F(7), F(8), F(9), F(10)],
            "closed, closed, closed, closed, closed, closed, closed, closed, closed, open<consecutive_failures@10>",
        );
        check(
            &with(|c| c.failure_threshold = 1),
            &[S(1), F(2)],
            "closed, open<consecutive_failures@2>",
        );
    }

    #[test]
    fn open_rejects_until_exactly_the_recovery_timeout() {
        let c = with(|c| c.failure_threshold = 1);
        check(
            &c,
            &[F(1000), Allow(1000), Allow(60_999), Allow(61_000)],
            "open<consecutive_failures@1000>, rejected(60000), rejected(1), allowed",
        );
        // Looking late still dates the half-open at the moment it became due.
        check(
            &c,
            &[F(1000), Query(60_999), Query(500_000), Query(600_000)],
            "open<consecutive_failures@1000>, open, half_open<recovery_timeout@61000>, half_open",
        );
        // Results recorded while open move nothing.
        check(
            &c,
            &[F(1000), F(2000), S(3000)],
            "open<consecutive_failures@1000>, open, open",
        );
    }

    #[test]
    fn half_open_trials() {
        let c = with(|c| c.failure_threshold = 1);
        let open = [F(0), Query(60_000)];
        let run = |rest: &[Ev], expected: &str| {
            let events: Vec<Ev> = open.iter().chain(rest).copied().collect();
            check(
                &c,
                &events,
                &format!("open<consecutive_failures@0>, half_open<recovery_timeout@60000>{expected}"),
            );
        };
        // success_threshold successes close it.
        run(&[S(60_001), S(60_002)], ", half_open, closed<trials_succeeded@60002>");
        // Any failure reopens it, and the timeout starts again from there.
        run(
            &[S(60_001), F(60_002), Allow(120_001), Allow(120_002)],
            ", half_open, open<trial_failed@60002>, rejected(1), allowed",
        );
        // half_open_max_calls permits at once; the fourth caller waits.
        run(
            &[Allow(60_001), Allow(60_002), Allow(60_003), Allow(60_004)],
            ", allowed, allowed, allowed, rejected(59999)",
        );
        // A permit whose result never came back is given back after the recovery timeout.
        run(
            &[
                Allow(60_001),
                Allow(60_002),
                Allow(60_003),
                S(60_010),
                Allow(120_002),
                Allow(120_003),
            ],
            ", allowed, allowed, allowed, half_open, rejected(1), allowed",
        );
        // Results count as trials even without a permit; the permits left shrink.
        run(
            &[S(60_001), Allow(60_002), Allow(60_003), Allow(60_004)],
            ", half_open, allowed, allowed, rejected(59999)",
        );
    }

    #[test]
    fn slow_trials_use_up_the_budget() {
        let c = Config {
            failure_threshold: 1,
            window: Some(WindowConfig {
                slow_call_duration_threshold_ms: Some(1000),
                ..WindowConfig::new(WindowKind::Count, 10)
            }),
            ..seed()
        };
        check(
            &c,
            &[F(0), Took(60_000, 1001), Took(60_001, 1000), Took(60_002, 1001)],
            "open<consecutive_failures@0>, half_open<recovery_timeout@60000>, half_open, \
             open<trials_exhausted@60002>",
        );
        check(
            &c,
            &[F(0), Took(60_000, 5000), S(60_001), S(60_002)],
            "open<consecutive_failures@0>, half_open<recovery_timeout@60000>, half_open, \
             closed<trials_succeeded@60002>",
        );
    }

    #[test]
    fn count_window_failure_rate() {
        // 50% of the last 4 calls, judged from the 4th call on.
        let c = window(WindowKind::Count, 4, |w| w.minimum_number_of_calls = 4);
        check(&c, &[F(1), F(2), F(3)], "closed, closed, closed");
        check(
            &c,
            &[S(1), S(2), F(3), F(4)],
            "closed, closed, closed, open<failure_rate@4>",
        );
        check(&c, &[S(1), S(2), S(3), F(4)], "closed, closed, closed, closed");
        // Rollover: the oldest call leaves as the fifth comes in (S S S F F: 2 of the last 4).
        check(
            &c,
            &[S(1), S(2), S(3), F(4), F(5)],
            "closed, closed, closed, closed, open<failure_rate@5>",
        );
        // A minimum above the size is read as the size.
        let c = window(WindowKind::Count, 2, |w| w.minimum_number_of_calls = 100);
        check(&c, &[S(1), F(2)], "closed, open<failure_rate@2>");
    }

    #[test]
    fn time_window_rollover() {
        // The calls of the last 10 seconds; a call at second 0 counts until 9.999 s.
        let c = window(WindowKind::Time, 10, |w| w.minimum_number_of_calls = 2);
        check(&c, &[F(0), F(9_999)], "closed, open<failure_rate@9999>");
        check(&c, &[F(0), F(10_000)], "closed, closed");
        // At 60%: F S F is 67% while the first call is in, 50% once it has left.
        let c60 = window(WindowKind::Time, 10, |w| {
            w.minimum_number_of_calls = 2;
            w.failure_rate_threshold = 60.0;
        });
        check(
            &c60,
            &[F(0), S(5_000), F(9_999)],
            "closed, closed, open<failure_rate@9999>",
        );
        check(
            &c60,
            &[F(0), S(5_000), F(10_000), F(11_000)],
            "closed, closed, closed, open<failure_rate@11000>",
        );
        // The reported numbers follow the clock, without any call.
        let mut b = Breaker::new(0);
        b.record(Outcome::success(), 2_000, &c);
        b.record(Outcome::success(), 2_500, &c);
        assert_eq!(b.window.buckets.len(), 1, "one bucket per second");
        assert_eq!(b.counters(11_999, &c).window_calls, 2);
        assert_eq!(b.counters(12_000, &c).window_calls, 0);
    }

    #[test]
    fn slow_call_rate() {
        let c = window(WindowKind::Count, 4, |w| {
            w.minimum_number_of_calls = 4;
            w.failure_rate_threshold = 100.0;
            w.slow_call_duration_threshold_ms = Some(500);
            w.slow_call_rate_threshold = 75.0;
        });
        // Exactly at the duration is not slow; over it is, success or failure.
        check(
            &c,
            &[Took(1, 500), Took(2, 501), FailTook(3, 900), Took(4, 501)],
            "closed, closed, closed, open<slow_call_rate@4>",
        );
        check(
            &c,
            &[Took(1, 500), Took(2, 500), Took(3, 501), Took(4, 501)],
            "closed, closed, closed, closed",
        );
        // Without a duration, a call is never slow.
        check(&c, &[S(1), S(2), S(3), S(4)], "closed, closed, closed, closed");
    }

    #[test]
    fn both_rules_at_once() {
        let c = Config {
            failure_threshold: 3,
            window: Some(WindowConfig {
                minimum_number_of_calls: 10,
                ..WindowConfig::new(WindowKind::Count, 10)
            }),
            ..seed()
        };
        check(&c, &[F(1), F(2), F(3)], "closed, closed, open<consecutive_failures@3>");
        let mixed = [S(1), F(2), S(3), F(4), S(5), F(6), S(7), F(8), S(9), F(10)];
        check(
            &c,
            &mixed,
            "closed, closed, closed, closed, closed, closed, closed, closed, closed, open<failure_rate@10>",
        );
    }

    #[test]
    fn force_and_reset() {
        let c = seed();
        check(
            &c,
            &[
                Force(5, State::Open),
                Force(6, State::Open),
                Allow(7),
                Force(8, State::Closed),
                Allow(9),
            ],
            "open<forced@5>, open, rejected(59998), closed<forced@8>, allowed",
        );
        // Forcing open after the timeout: it half-opened first, then is forced open again.
        check(
            &c,
            &[Force(0, State::Open), Force(60_000, State::Open)],
            "open<forced@0>, half_open<recovery_timeout@60000> open<forced@60000>",
        );
        check(&c, &[F(1), F(2), Reset(3), Reset(4)], "closed, closed, closed, closed");
        check(
            &c,
            &[Force(1, State::Open), Reset(2)],
            "open<forced@1>, closed<reset@2>",
        );

        let mut b = Breaker::new(0);
        for t in 1..=7 {
            b.record(Outcome::failure(), t, &c);
        }
        assert_eq!(b.totals.failures, 7);
        b.reset(8, &c);
        assert_eq!(
            (b.state, &b.totals, b.consecutive_failures),
            (State::Closed, &Totals::default(), 0)
        );
        assert_eq!(b.transitions.len(), 2, "history is kept: {:?}", b.transitions);
        let before = b.clone();
        b.reset(9, &c);
        assert_eq!(b, before, "a second reset changes nothing");
    }

    #[test]
    fn counters_and_totals() {
        let c = window(WindowKind::Count, 10, |w| {
            w.minimum_number_of_calls = 50;
            w.slow_call_duration_threshold_ms = Some(100);
        });
        let mut b = Breaker::new(0);
        b.record(Outcome::failure(), 1, &c);
        b.record(Outcome::success().took(150), 2, &c);
        b.record(Outcome::success(), 3, &c);
        let n = b.counters(4, &c);
        assert_eq!((n.calls, n.successes, n.failures, n.slow_calls), (3, 2, 1, 1));
        assert_eq!((n.window_calls, n.window_failures, n.window_slow_calls), (3, 1, 1));
        assert_eq!((n.failure_rate, n.slow_call_rate), (Some(33.33), Some(33.33)));
        assert_eq!(b.counters(4, &seed()).failure_rate, None, "no window, no rate");
    }

    #[test]
    fn history_is_bounded() {
        let c = with(|c| c.failure_threshold = 1);
        let mut b = Breaker::new(0);
        for i in 0..30 {
            b.force(State::Open, i * 2, &c);
            b.force(State::Closed, i * 2 + 1, &c);
        }
        assert_eq!(b.transitions.len(), HISTORY);
        assert_eq!(b.transitions.back().map(|t| t.at), Some(59));
        assert_eq!(b.transitions.front().map(|t| t.at), Some(40));
    }

    #[test]
    fn window_kind_change_starts_a_new_window() {
        let count = window(WindowKind::Count, 10, |w| w.minimum_number_of_calls = 3);
        let time = window(WindowKind::Time, 10, |w| w.minimum_number_of_calls = 3);
        let mut b = Breaker::new(0);
        b.record(Outcome::failure(), 1, &count);
        b.record(Outcome::failure(), 2, &count);
        assert_eq!(b.counters(3, &time).window_calls, 0);
        assert!(
            b.record(Outcome::failure(), 3, &time).is_empty(),
            "two old calls are not counted"
        );
        assert_eq!(b.counters(3, &time).window_calls, 1);
    }

    #[test]
    fn a_clock_set_back_does_no_harm() {
        let c = with(|c| c.failure_threshold = 1);
        let mut b = Breaker::new(0);
        b.record(Outcome::failure(), 100_000, &c);
        assert_eq!(
            b.allow(50_000, &c),
            Decision::Rejected {
                retry_after_ms: 110_000
            }
        );
        assert_eq!(b.time_until_half_open(50_000, &c), Some(110_000));
        assert_eq!(b.time_until_half_open(200_000, &c), Some(0));
    }

    #[test]
    fn bad_configs_are_named() {
        let check = |c: Config, msg: &str| {
            assert_eq!(c.validate().map_err(|e| e.to_string()), Err(msg.to_string()));
        };
        check(
            with(|c| c.success_threshold = 4),
            "success_threshold 4 is more than half_open_max_calls 3: the trial calls could never close the breaker",
        );
        check(
            with(|c| c.failure_threshold = 0),
            "failure_threshold 0 turns the consecutive-failure rule off and there is no sliding window: \
             nothing could open the breaker",
        );
        check(
            with(|c| c.half_open_max_calls = 0),
            "half_open_max_calls is 0; it must be at least 1",
        );
        check(
            window(WindowKind::Count, 10, |w| w.failure_rate_threshold = 0.0),
            "failure_rate_threshold is 0; a rate must be above 0 and at most 100 (percent)",
        );
        check(
            window(WindowKind::Time, 10, |w| w.slow_call_rate_threshold = 100.5),
            "slow_call_rate_threshold is 100.5; a rate must be above 0 and at most 100 (percent)",
        );
        check(
            window(WindowKind::Time, 0, |_| {}),
            "sliding_window_size is 0; it must be at least 1",
        );
        assert_eq!(window(WindowKind::Count, 1, |_| {}).validate(), Ok(()));
    }

    #[test]
    fn reasons_carry_the_numbers() {
        let c = window(WindowKind::Time, 60, |w| w.minimum_number_of_calls = 3);
        let mut b = Breaker::new(0);
        for t in [1, 2] {
            b.record(Outcome::failure(), t, &c);
        }
        let t = b.record(Outcome::success(), 3, &c);
        assert_eq!(
            t[0].reason,
            "failure rate 66.67% of 3 calls in the last 60 s reached failure_rate_threshold 50%"
        );
        let mut b = Breaker::new(0);
        for t in 1..=5 {
            b.record(Outcome::failure(), t, &seed());
        }
        assert_eq!(b.transitions[0].reason, "5 consecutive failures (failure_threshold 5)");
        assert_eq!(b.tick(60_005, &seed())[0].reason, "recovery_timeout 60 s elapsed");
    }
}
