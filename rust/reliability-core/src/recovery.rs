//! The recovery escalation ladder and its bookkeeping, as pure functions.
//!
//! A failing service climbs a ladder: each time it is found failing its failure count goes
//! up by one, and the step whose range holds the new count says what to try. The seed's
//! ladder is 1-2 restart, 3-4 reload, 5-6 failover, 7 and beyond manual intervention.
//!
//! Decisions:
//! - Steps are ranges of failure counts (`"1-2"`, `"3"`, `"7-"`). They must start at 1,
//!   follow each other without a gap or an overlap, and only the last may be open-ended;
//!   a count beyond a closed last step is manual intervention. A ladder that breaks a rule is
//!   refused with the count at fault named, never guessed at.
//! - The count is reset when the service has been healthy for the stable period since its
//!   last successful recovery, with no failure since: the reset systemd's `Restart=` users ask
//!   for. It is judged when the service is next seen, healthy or failing, so a service that
//!   failed once a month starts again at the bottom of the ladder.
//! - At most `max` recovery attempts in a sliding `window`: further attempts are refused
//!   until the oldest leaves the window (systemd's `StartLimitBurst`, but for the whole
//!   ladder, and reported with the time until the next one is allowed).
//! - The state keeps the outage the service is in ([`crate::incident::Open`]); the outages
//!   and their figures are [`crate::incident`]'s.
//!
//! The clock is a parameter (`now`, unix milliseconds); nothing here does I/O.

use serde::{Deserialize, Serialize};
use std::fmt;

/// The `kind` of a service's recovery state file.
pub const KIND: &str = "service_recovery";
/// The state-file format this code reads and writes.
pub const VERSION: u32 = 1;
/// How many attempt times the state keeps (the rate limit never needs more).
pub const MAX_ATTEMPTS_KEPT: usize = 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    Restart,
    Reload,
    Failover,
    ScaleResources,
    Manual,
}

impl Strategy {
    pub const NAMES: [&'static str; 5] = ["restart", "reload", "failover", "scale_resources", "manual"];

    pub fn parse(name: &str) -> Option<Strategy> {
        Some(match name {
            "restart" => Strategy::Restart,
            "reload" => Strategy::Reload,
            "failover" => Strategy::Failover,
            "scale_resources" => Strategy::ScaleResources,
            "manual" => Strategy::Manual,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::Restart => "restart",
            Strategy::Reload => "reload",
            Strategy::Failover => "failover",
            Strategy::ScaleResources => "scale_resources",
            Strategy::Manual => "manual",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One rung: failure counts `from..=to` (`to: None`: and beyond) take `strategy`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Step {
    pub from: u32,
    pub to: Option<u32>,
    pub strategy: Strategy,
}

impl Step {
    fn contains(&self, count: u32) -> bool {
        count >= self.from && self.to.is_none_or(|to| count <= to)
    }

    pub fn range(&self) -> String {
        match self.to {
            Some(to) if to == self.from => to.to_string(),
            Some(to) => format!("{}-{to}", self.from),
            None => format!("{}-", self.from),
        }
    }
}

/// A checked ladder: ranges from 1 on, contiguous, only the last open-ended.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Ladder {
    pub steps: Vec<Step>,
}

/// Reads `"3"`, `"3-4"` or `"7-"`.
pub fn parse_range(text: &str) -> Result<(u32, Option<u32>), String> {
    let number = |s: &str| {
        s.trim()
            .parse::<u32>()
            .ok()
            .filter(|n| *n >= 1)
            .ok_or_else(|| format!("'{text}' is not a failure count range such as 1-2, 3 or 7-"))
    };
    match text.split_once('-') {
        None => number(text).map(|n| (n, Some(n))),
        Some((from, to)) if to.trim().is_empty() => number(from).map(|n| (n, None)),
        Some((from, to)) => {
            let (from, to) = (number(from)?, number(to)?);
            if to < from {
                return Err(format!("'{text}' ends before it starts"));
            }
            Ok((from, Some(to)))
        }
    }
}

impl Ladder {
    /// The seed's ladder.
    pub fn seed() -> Ladder {
        let step = |from, to, strategy| Step { from, to, strategy };
        Ladder {
            steps: vec![
                step(1, Some(2), Strategy::Restart),
                step(3, Some(4), Strategy::Reload),
                step(5, Some(6), Strategy::Failover),
                step(7, None, Strategy::Manual),
            ],
        }
    }

    /// Builds a ladder from `(range, strategy)` pairs as the user wrote them; every problem
    /// is returned, each naming the step (1-based) and the value at fault.
    pub fn new(items: &[(String, String)]) -> Result<Ladder, Vec<String>> {
        let mut problems = Vec::new();
        let mut steps = Vec::new();
        if items.is_empty() {
            problems.push("the ladder has no rungs".to_string());
        }
        for (i, (range, strategy)) in items.iter().enumerate() {
            let n = i + 1;
            let strategy = match Strategy::parse(strategy) {
                Some(s) => Some(s),
                None => {
                    problems.push(format!(
                        "rung {n}: unknown strategy '{strategy}'; use one of {}",
                        Strategy::NAMES.join(", ")
                    ));
                    None
                }
            };
            match (parse_range(range), strategy) {
                (Ok((from, to)), Some(strategy)) => steps.push((n, Step { from, to, strategy })),
                (Err(e), _) => problems.push(format!("rung {n}: failures: {e}")),
                (Ok(_), None) => {}
            }
        }
        if problems.is_empty() {
            let mut next = 1u32;
            for (i, (n, step)) in steps.iter().enumerate() {
                if step.from > next {
                    let gap = if step.from - 1 == next {
                        next.to_string()
                    } else {
                        format!("{next}-{}", step.from - 1)
                    };
                    problems.push(format!(
                        "rung {n} (failures {}): failure count {gap} has no rung (a gap)",
                        step.range()
                    ));
                } else if step.from < next {
                    problems.push(format!(
                        "rung {n} (failures {}): failure count {} is already in rung {} (an overlap)",
                        step.range(),
                        step.from,
                        n - 1
                    ));
                }
                match step.to {
                    None if i + 1 < steps.len() => {
                        problems.push(format!(
                            "rung {n} (failures {}): only the last rung may be open-ended",
                            step.range()
                        ));
                        break;
                    }
                    None => {}
                    Some(to) => next = to.saturating_add(1),
                }
            }
        }
        if problems.is_empty() {
            Ok(Ladder {
                steps: steps.into_iter().map(|(_, s)| s).collect(),
            })
        } else {
            Err(problems)
        }
    }

    /// Where a failure count stands, in the words every message uses: the count the options
    /// and the README's table speak in, and the rung of the ladder (what the report's
    /// `level` holds): `failure 3, rung 2 of 4: reload`. Beyond a closed last rung:
    /// `failure 9, past the last of 4 rungs: manual`.
    pub fn position(&self, count: u32) -> String {
        let rungs = self.steps.len();
        match self.step_for(count) {
            (level, strategy) if level <= rungs => format!("failure {count}, rung {level} of {rungs}: {strategy}"),
            (_, strategy) => format!("failure {count}, past the last of {rungs} rungs: {strategy}"),
        }
    }

    /// The step for a failure count: its 1-based level and strategy. Beyond a closed last
    /// step: manual, one level above the last.
    pub fn step_for(&self, count: u32) -> (usize, Strategy) {
        match self.steps.iter().position(|s| s.contains(count)) {
            Some(i) => (i + 1, self.steps[i].strategy),
            None => (self.steps.len() + 1, Strategy::Manual),
        }
    }
}

/// What is remembered about one service between runs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryState {
    /// Consecutive failures found since the last reset.
    pub failure_count: u32,
    /// When a run last found the service failing.
    pub last_failure_at: Option<u64>,
    /// When a recovery last made it healthy.
    pub last_recovered_at: Option<u64>,
    /// When the failure count was last reset.
    pub last_reset_at: Option<u64>,
    /// Start times of recovery attempts (newest last), for the rate limit.
    pub attempts: Vec<u64>,
    /// Runs that found the service failing, ever.
    pub failures_total: u64,
    /// Recoveries that worked, ever.
    pub recoveries_total: u64,
    /// The outage the service is in: opened by the first failing run, closed by the run
    /// that sees it healthy again.
    #[serde(default)]
    pub open: Option<crate::incident::Open>,
}

/// How a run ended: what the report and the incident log say.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Found healthy; nothing to do.
    Healthy,
    /// A step made the service healthy again.
    Recovered,
    /// The failover step made the backup serve.
    FailedOver,
    /// The step was taken (or could not be) and the service is still failing.
    StillFailing,
    /// The circuit breaker refused the step.
    RefusedByBreaker,
    /// The rate limit refused the step.
    RateLimited,
    /// The ladder reached manual intervention.
    ManualIntervention,
    /// Check mode: the step a run would take.
    WouldAct,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Healthy => "healthy",
            Outcome::Recovered => "recovered",
            Outcome::FailedOver => "failed_over",
            Outcome::StillFailing => "still_failing",
            Outcome::RefusedByBreaker => "refused_by_breaker",
            Outcome::RateLimited => "rate_limited",
            Outcome::ManualIntervention => "manual_intervention",
            Outcome::WouldAct => "would_act",
        }
    }

    /// The service is serving again (itself or its backup).
    pub fn recovered(self) -> bool {
        matches!(self, Outcome::Recovered | Outcome::FailedOver)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// At most `max` attempts in `window_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct RateLimit {
    pub max: u32,
    pub window_ms: u64,
}

/// The policy a run applies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    pub ladder: Ladder,
    pub rate_limit: Option<RateLimit>,
    /// Healthy this long after a recovery resets the failure count; `None`: never.
    pub stable_period_ms: Option<u64>,
}

/// What a run should do, given what it found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Nothing: the service is healthy. `reset`: its failure count goes back to 0.
    Healthy { reset: bool },
    /// Failing, but the rate limit refuses another attempt for `retry_after_ms`.
    RateLimited {
        failure_count: u32,
        attempts_in_window: u32,
        retry_after_ms: u64,
    },
    /// Failing: take `strategy`, level `level`, for failure number `failure_count`.
    Act {
        failure_count: u32,
        level: usize,
        strategy: Strategy,
        /// The count was reset first (stable period over since the last recovery).
        reset: bool,
    },
}

impl RecoveryState {
    /// Whether the stable period since the last recovery is over, with no failure since.
    pub fn stable(&self, now: u64, policy: &Policy) -> bool {
        match (policy.stable_period_ms, self.last_recovered_at) {
            (Some(period), Some(recovered)) => {
                self.failure_count > 0
                    && self.last_failure_at.is_none_or(|f| f <= recovered)
                    && now.saturating_sub(recovered) >= period
            }
            _ => false,
        }
    }

    /// Attempts inside the rate-limit window ending at `now`.
    fn attempts_in(&self, now: u64, limit: &RateLimit) -> Vec<u64> {
        self.attempts
            .iter()
            .copied()
            .filter(|t| now.saturating_sub(*t) < limit.window_ms)
            .collect()
    }

    /// What to do now. Pure: [`RecoveryState::apply`] records the decision.
    pub fn plan(&self, healthy: bool, now: u64, policy: &Policy) -> Plan {
        let reset = self.stable(now, policy);
        if healthy {
            return Plan::Healthy { reset };
        }
        let failure_count = if reset { 1 } else { self.failure_count.saturating_add(1) };
        if let Some(limit) = &policy.rate_limit {
            let recent = self.attempts_in(now, limit);
            if recent.len() >= limit.max as usize {
                // The attempt that must leave the window before another is allowed.
                let oldest = recent[recent.len() - limit.max as usize];
                return Plan::RateLimited {
                    failure_count,
                    attempts_in_window: u32::try_from(recent.len()).unwrap_or(u32::MAX),
                    retry_after_ms: (oldest + limit.window_ms).saturating_sub(now),
                };
            }
        }
        let (level, strategy) = policy.ladder.step_for(failure_count);
        Plan::Act {
            failure_count,
            level,
            strategy,
            reset,
        }
    }

    /// Records a plan and, for an attempt, its outcome (`recovered`), at `now`.
    /// `attempted`: an action was started (false for manual, or a breaker refusal).
    pub fn apply(&mut self, plan: &Plan, attempted: bool, recovered: bool, now: u64) {
        match plan {
            Plan::Healthy { reset } => {
                if *reset {
                    self.failure_count = 0;
                    self.last_reset_at = Some(now);
                }
            }
            Plan::RateLimited { failure_count, .. } | Plan::Act { failure_count, .. } => {
                if matches!(plan, Plan::Act { reset: true, .. }) {
                    self.last_reset_at = Some(now);
                }
                self.failure_count = *failure_count;
                self.last_failure_at = Some(now);
                self.failures_total += 1;
                if attempted {
                    self.attempts.push(now);
                    let excess = self.attempts.len().saturating_sub(MAX_ATTEMPTS_KEPT);
                    self.attempts.drain(..excess);
                }
                if recovered {
                    self.last_recovered_at = Some(now);
                    self.recoveries_total += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ladder(items: &[(&str, &str)]) -> Result<Ladder, Vec<String>> {
        Ladder::new(
            &items
                .iter()
                .map(|(r, s)| (r.to_string(), s.to_string()))
                .collect::<Vec<_>>(),
        )
    }

    fn policy() -> Policy {
        Policy {
            ladder: Ladder::seed(),
            rate_limit: None,
            stable_period_ms: Some(600_000),
        }
    }

    #[test]
    fn seed_ladder_steps() {
        let l = Ladder::seed();
        let table = [
            (1, 1, Strategy::Restart),
            (2, 1, Strategy::Restart),
            (3, 2, Strategy::Reload),
            (4, 2, Strategy::Reload),
            (5, 3, Strategy::Failover),
            (6, 3, Strategy::Failover),
            (7, 4, Strategy::Manual),
            (1000, 4, Strategy::Manual),
        ];
        for (count, level, strategy) in table {
            assert_eq!(l.step_for(count), (level, strategy), "count {count}");
        }
        let written = ladder(&[
            ("1-2", "restart"),
            ("3-4", "reload"),
            ("5-6", "failover"),
            ("7-", "manual"),
        ]);
        assert_eq!(written, Ok(l));
    }

    #[test]
    fn beyond_a_closed_last_step_is_manual() {
        let l = ladder(&[("1", "restart"), ("2-3", "reload")]).unwrap();
        assert_eq!(l.step_for(3), (2, Strategy::Reload));
        assert_eq!(l.step_for(4), (3, Strategy::Manual));
    }

    #[test]
    fn positions_name_the_failure_and_the_rung() {
        let seed = Ladder::seed();
        assert_eq!(seed.position(1), "failure 1, rung 1 of 4: restart");
        assert_eq!(seed.position(3), "failure 3, rung 2 of 4: reload");
        assert_eq!(seed.position(12), "failure 12, rung 4 of 4: manual");
        let closed = ladder(&[("1", "restart"), ("2-3", "reload")]).unwrap();
        assert_eq!(closed.position(4), "failure 4, past the last of 2 rungs: manual");
    }

    #[test]
    fn bad_ladders_are_named() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "the ladder has no rungs"),
            (
                &[("1-2", "restart"), ("4-", "manual")],
                "rung 2 (failures 4-): failure count 3 has no rung (a gap)",
            ),
            (
                &[("2-3", "restart")],
                "rung 1 (failures 2-3): failure count 1 has no rung (a gap)",
            ),
            (
                &[("1-3", "restart"), ("6", "manual")],
                "rung 2 (failures 6): failure count 4-5 has no rung (a gap)",
            ),
            (
                &[("1-3", "restart"), ("3-4", "reload")],
                "rung 2 (failures 3-4): failure count 3 is already in rung 1 (an overlap)",
            ),
            (
                &[("1-", "restart"), ("3", "manual")],
                "rung 1 (failures 1-): only the last rung may be open-ended",
            ),
            (
                &[("1", "reboot")],
                "rung 1: unknown strategy 'reboot'; use one of restart, reload",
            ),
            (
                &[("0-2", "restart")],
                "rung 1: failures: '0-2' is not a failure count range",
            ),
            (&[("3-1", "restart")], "rung 1: failures: '3-1' ends before it starts"),
            (
                &[("x", "restart")],
                "rung 1: failures: 'x' is not a failure count range",
            ),
        ];
        for (items, expected) in cases {
            let problems = ladder(items).unwrap_err();
            assert!(
                problems.iter().any(|p| p.starts_with(expected)),
                "{items:?}: {problems:?} lacks {expected:?}"
            );
        }
    }

    #[test]
    fn failing_runs_climb_the_ladder() {
        let p = policy();
        let mut s = RecoveryState::default();
        let mut seen = Vec::new();
        for n in 0..8u64 {
            let plan = s.plan(false, 1000 + n, &p);
            let Plan::Act {
                strategy,
                failure_count,
                ..
            } = plan
            else {
                panic!("{plan:?}")
            };
            seen.push((failure_count, strategy));
            s.apply(&plan, true, false, 1000 + n);
        }
        use Strategy::*;
        assert_eq!(
            seen.iter().map(|x| x.1).collect::<Vec<_>>(),
            [Restart, Restart, Reload, Reload, Failover, Failover, Manual, Manual]
        );
        assert_eq!(s.failure_count, 8);
        assert_eq!(s.failures_total, 8);
    }

    #[test]
    fn stable_period_resets_the_count() {
        let p = policy();
        let mut s = RecoveryState::default();
        let plan = s.plan(false, 0, &p);
        s.apply(&plan, true, true, 0);
        assert_eq!(s.failure_count, 1);
        // Healthy, but not for long enough: nothing.
        assert_eq!(s.plan(true, 599_999, &p), Plan::Healthy { reset: false });
        // The boundary: exactly the stable period.
        let plan = s.plan(true, 600_000, &p);
        assert_eq!(plan, Plan::Healthy { reset: true });
        s.apply(&plan, false, false, 600_000);
        assert_eq!(s.failure_count, 0);
        assert_eq!(s.plan(true, 700_000, &p), Plan::Healthy { reset: false });
    }

    #[test]
    fn a_failure_after_the_stable_period_starts_at_the_bottom() {
        let p = policy();
        let mut s = RecoveryState::default();
        for t in [0, 1, 2] {
            let plan = s.plan(false, t, &p);
            s.apply(&plan, true, t == 2, t);
        }
        assert_eq!(s.failure_count, 3);
        // Soon after: the ladder goes on.
        assert!(matches!(
            s.plan(false, 100, &p),
            Plan::Act {
                failure_count: 4,
                reset: false,
                ..
            }
        ));
        // Long after the recovery with no failure since: back to step 1.
        let plan = s.plan(false, 2 + 600_000, &p);
        assert_eq!(
            plan,
            Plan::Act {
                failure_count: 1,
                level: 1,
                strategy: Strategy::Restart,
                reset: true
            }
        );
    }

    #[test]
    fn no_reset_when_the_last_recovery_failed_or_never_happened() {
        let p = policy();
        let mut s = RecoveryState::default();
        let plan = s.plan(false, 0, &p);
        s.apply(&plan, true, false, 0);
        assert_eq!(s.plan(true, 10_000_000, &p), Plan::Healthy { reset: false });
        let no_period = Policy {
            stable_period_ms: None,
            ..policy()
        };
        s.last_recovered_at = Some(1);
        assert_eq!(s.plan(true, 10_000_000, &no_period), Plan::Healthy { reset: false });
    }

    #[test]
    fn rate_limit_refuses_then_allows_when_the_oldest_leaves() {
        let p = Policy {
            rate_limit: Some(RateLimit {
                max: 3,
                window_ms: 1000,
            }),
            ..policy()
        };
        let mut s = RecoveryState::default();
        for t in [0, 100, 200] {
            let plan = s.plan(false, t, &p);
            assert!(matches!(plan, Plan::Act { .. }), "{t}: {plan:?}");
            s.apply(&plan, true, false, t);
        }
        let plan = s.plan(false, 300, &p);
        assert_eq!(
            plan,
            Plan::RateLimited {
                failure_count: 4,
                attempts_in_window: 3,
                retry_after_ms: 700
            }
        );
        s.apply(&plan, false, false, 300);
        // The refused run still counts as a failure, not as an attempt.
        assert_eq!((s.failure_count, s.attempts.len()), (4, 3));
        // 999 ms after the first attempt it is still inside; at 1000 it has left.
        assert!(matches!(
            s.plan(false, 999, &p),
            Plan::RateLimited { retry_after_ms: 1, .. }
        ));
        assert!(matches!(s.plan(false, 1000, &p), Plan::Act { failure_count: 5, .. }));
    }
}
