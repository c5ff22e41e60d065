//! A recovery run: look, decide, act, record, all under the service's lock.

use reliability_checks::HealthRequest;
use reliability_core::breaker::{Breaker, Decision, Outcome as CallOutcome};
use reliability_core::cancel::RunContext;
use reliability_core::incident::{Attempt, Outage};
use reliability_core::recovery::{Outcome, Plan, RecoveryState, Strategy};
use reliability_core::timestamp;
use reliability_os::state::{StateError, Store};
use std::path::Path;
use std::time::Instant;

use crate::breaker::{self, seconds};
use crate::report::{BreakerChange, Look, RecoveryReport, RunError, StepOutcome};
use crate::request::{state_name, RecoveryRequest};
use crate::{incidents, strategy};

/// Runs a health request once.
pub fn look(request: &HealthRequest) -> Look {
    let report = reliability_checks::run(request);
    let problems = report
        .checks
        .iter()
        .filter(|c| c.status != reliability_core::check::Status::Ok)
        .map(|c| format!("{}: {}: {}", c.name, c.status, c.message))
        .collect();
    Look {
        healthy: !report.failed,
        summary: report.msg,
        problems,
    }
}

/// Runs the request: look, decide, act, record. In check mode only the first two. `ctx`
/// gives the time and can stop the waits of a step (the daemon's SIGTERM, a deadline).
pub fn run(request: &RecoveryRequest, ctx: &RunContext, check_mode: bool) -> Result<RecoveryReport, RunError> {
    // Without systemd a unit's state is unknown, which a health spec does not count as a
    // failure: say so instead of calling the service healthy.
    if !reliability_os::systemd::systemd_running() {
        return Err(RunError::Other(format!(
            "systemd is not running on this host (no /run/systemd/system): cannot look after {}",
            request.service
        )));
    }
    let store = Store::new(&request.state_dir).with_lock_timeout(request.lock_timeout);
    let name = state_name(&request.service);
    let mut warnings = Vec::new();
    if check_mode {
        let stored = match store.load::<RecoveryState>(&name) {
            Ok(s) => s.unwrap_or_default(),
            Err(e @ StateError::Corrupt { .. }) => {
                warnings.push(format!("{e}; it would be moved aside and the count started afresh"));
                RecoveryState::default()
            }
            Err(e) => return Err(e.into()),
        };
        let mut report = predict(request, ctx, &store, stored)?;
        report.warnings.extend(warnings);
        return Ok(report);
    }
    ensure_dir(&request.state_dir)?;
    let attempt = || {
        let mut report = None;
        store.update(&name, |current: Option<RecoveryState>| {
            let mut state = current.unwrap_or_default();
            let r = act(request, ctx, &store, &mut state)?;
            report = Some(r);
            Ok::<_, RunError>(state)
        })?;
        report.ok_or_else(|| RunError::Other("internal error: the run left no report".into()))
    };
    let mut report = match attempt() {
        Err(RunError::State(e @ StateError::Corrupt { moved_to: Some(_), .. })) => {
            warnings.push(format!("{e}; the failure count starts afresh"));
            attempt()?
        }
        other => other?,
    };
    report.warnings.splice(0..0, warnings);
    Ok(report)
}

/// A directory of the run (the state's, the incident log's), made as the state store makes
/// its own (0700).
pub(crate) fn ensure_dir(dir: &Path) -> Result<(), RunError> {
    reliability_os::state::ensure_dir(dir).map_err(|e| RunError::Other(e.to_string()))
}

/// Check mode: what a run would do, from what is stored and what the service looks like.
fn predict(
    request: &RecoveryRequest,
    ctx: &RunContext,
    store: &Store,
    state: RecoveryState,
) -> Result<RecoveryReport, RunError> {
    let now = ctx.now_ms_at(Instant::now());
    let health = look(&request.health);
    let plan = state.plan(health.healthy, now, &request.policy);
    let mut warnings = Vec::new();
    let breaker = match &request.breaker {
        Some((bname, config)) => {
            let (stored, warning) = breaker::load(store, bname, true)?;
            warnings.extend(warning);
            let mut b = stored.unwrap_or_else(|| Breaker::new(now));
            let before = b.state.as_str().to_string();
            let allowed = b.allow(now, config) == Decision::Allowed;
            Some(BreakerChange {
                name: bname.clone(),
                before: before.clone(),
                after: before,
                allowed,
                time_until_half_open: b.time_until_half_open(now, config).map(seconds),
            })
        }
        None => None,
    };
    let mut after = state.clone();
    after.apply(&plan, false, false, now);
    let (failing, outcome, level, strategy, msg) = match &plan {
        Plan::Healthy { reset } => (
            false,
            Outcome::Healthy,
            None,
            None,
            format!(
                "{} is healthy{}{}",
                request.service,
                if *reset { "; its failure count would be reset (stable period over)" } else { "" },
                if state.open.is_some() { "; its open incident would be closed" } else { "" }
            ),
        ),
        Plan::RateLimited {
            failure_count,
            attempts_in_window,
            retry_after_ms,
        } => (
            true,
            Outcome::RateLimited,
            None,
            None,
            format!(
                "{} is failing ({}); would refuse: rate limit ({attempts_in_window} recoveries in the window), next in {}; failure {failure_count}",
                request.service,
                health.summary,
                timestamp::seconds(*retry_after_ms)
            ),
        ),
        Plan::Act {
            failure_count,
            level,
            strategy,
            ..
        } => {
            let refused = breaker.as_ref().is_some_and(|b| !b.allowed) && *strategy != Strategy::Manual;
            (
                true,
                if refused { Outcome::RefusedByBreaker } else { Outcome::WouldAct },
                Some(*level),
                Some(*strategy),
                if refused {
                    format!(
                        "{} is failing ({}); would refuse: circuit breaker is {}",
                        request.service,
                        health.summary,
                        breaker.as_ref().map_or("", |b| b.before.as_str())
                    )
                } else {
                    format!(
                        "{} is failing ({}); would act ({})",
                        request.service,
                        health.summary,
                        request.policy.ladder.position(*failure_count)
                    )
                },
            )
        }
    };
    let changed = failing || after != state || state.open.is_some();
    let mut report = RecoveryReport::new(&request.service, health, state.failure_count);
    report.failing = failing;
    report.outcome = outcome;
    report.level = level;
    report.strategy = strategy;
    report.failure_count.after = after.failure_count;
    report.failure_count.reset = matches!(plan, Plan::Healthy { reset: true } | Plan::Act { reset: true, .. });
    report.breaker = breaker;
    report.changed = changed;
    report.msg = msg;
    report.warnings = warnings;
    Ok(report)
}

/// The run under the service's lock.
fn act(
    request: &RecoveryRequest,
    ctx: &RunContext,
    store: &Store,
    state: &mut RecoveryState,
) -> Result<RecoveryReport, RunError> {
    let clock = || ctx.now_ms_at(Instant::now());
    let health = look(&request.health);
    // Recovery time runs from the moment the run knows the service is failing.
    let detected = clock();
    let started = Instant::now();
    let plan = state.plan(health.healthy, detected, &request.policy);
    let mut report = RecoveryReport::new(&request.service, health, state.failure_count);
    report.failure_count.reset = matches!(plan, Plan::Healthy { reset: true } | Plan::Act { reset: true, .. });
    let reason = report.health.problems.join("; ");
    let (level, strategy, failure_count) = match plan {
        Plan::Healthy { reset } => {
            state.apply(&plan, false, false, detected);
            report.failure_count.after = state.failure_count;
            report.changed = reset;
            let mut closed = "";
            if let Some(open) = state.open.take() {
                // Healthy again without a step of ours: a person (or the service) fixed it.
                incidents::append(request, &open.close(&request.service, detected, false))?;
                report.incident = Some(Outage {
                    started_at: open.started_at,
                    ended_at: Some(detected),
                    attempts: open.attempts,
                    escalated: open.escalated,
                    by_automation: false,
                });
                report.changed = true;
                closed = "; its incident is closed";
                with_figures(request, &mut report, detected)?;
            }
            report.msg = format!(
                "{} is healthy{}{closed}",
                request.service,
                if reset {
                    "; failure count reset after the stable period"
                } else {
                    ""
                }
            );
            return Ok(report);
        }
        Plan::RateLimited {
            failure_count,
            attempts_in_window,
            retry_after_ms,
        } => {
            state.apply(&plan, false, false, detected);
            let detail = format!(
                "rate limit: {attempts_in_window} recoveries in the last {}; next allowed in {}",
                timestamp::seconds(request.policy.rate_limit.map_or(0, |r| r.window_ms)),
                timestamp::seconds(retry_after_ms)
            );
            let msg = format!(
                "{} is failing ({reason}); recovery refused by the {detail}",
                request.service
            );
            let end = Ending::new(failure_count, 0, Strategy::Manual, Outcome::RateLimited, detail, msg);
            return finish(request, ctx, state, report, detected, &reason, end);
        }
        Plan::Act {
            failure_count,
            level,
            strategy,
            ..
        } => (level, strategy, failure_count),
    };
    report.level = Some(level);
    report.strategy = Some(strategy);
    if strategy == Strategy::Manual {
        state.apply(&plan, false, false, detected);
        let detail = match &request.runbook_url {
            Some(url) => format!("manual intervention required: see {url}"),
            None => "manual intervention required".to_string(),
        };
        let msg = format!(
            "{}: {detail} ({}; {reason})",
            request.service,
            request.policy.ladder.position(failure_count)
        );
        let end = Ending::new(failure_count, level, strategy, Outcome::ManualIntervention, detail, msg);
        return finish(request, ctx, state, report, detected, &reason, end);
    }

    // The breaker guards every action.
    if let Some((bname, config)) = &request.breaker {
        let u = breaker::update(store, bname, &clock, |b, now| {
            (b.allow(now, config), b.time_until_half_open(now, config))
        })?;
        report.warnings.extend(u.moved_aside);
        let (decision, until) = u.out;
        let allowed = decision == Decision::Allowed;
        report.breaker = Some(BreakerChange {
            name: bname.clone(),
            before: u.before.map_or(u.after.state, |b| b.state).as_str().to_string(),
            after: u.after.state.as_str().to_string(),
            allowed,
            time_until_half_open: until.map(seconds),
        });
        if !allowed {
            state.apply(&plan, false, false, detected);
            let why = match (decision, until) {
                (_, Some(ms)) => format!(
                    "circuit breaker '{bname}' is {}: recovery refused; half-open in {}",
                    u.after.state,
                    timestamp::seconds(ms)
                ),
                (Decision::Rejected { retry_after_ms }, None) => format!(
                    "circuit breaker '{bname}' is {}: every trial is taken; retry in {}",
                    u.after.state,
                    timestamp::seconds(retry_after_ms)
                ),
                (Decision::Allowed, None) => format!("circuit breaker '{bname}' refused"),
            };
            let msg = format!("{} is failing ({reason}); {why}", request.service);
            let end = Ending::new(failure_count, level, strategy, Outcome::RefusedByBreaker, why, msg);
            return finish(request, ctx, state, report, detected, &reason, end);
        }
    }

    let step = strategy::take(strategy, request, ctx);
    let recovered_at = step.recovered.then(clock);
    // The failure and the attempt date from `detected`; the recovery from when it was verified.
    state.apply(&plan, step.attempted, step.recovered, detected);
    if recovered_at.is_some() {
        state.last_recovered_at = recovered_at;
    }
    report.time_to_recover_ms = step
        .recovered
        .then(|| started.elapsed().as_millis().try_into().unwrap_or(u64::MAX));
    report.success = Some(step.recovered);
    if let Some((bname, config)) = &request.breaker {
        let took = started.elapsed().as_millis().try_into().unwrap_or(u64::MAX);
        let outcome = if step.recovered {
            CallOutcome::success()
        } else {
            CallOutcome::failure()
        }
        .took(took);
        let u = breaker::update(store, bname, &clock, |b, now| b.record(outcome, now, config))?;
        report.warnings.extend(u.moved_aside);
        if let Some(change) = report.breaker.as_mut() {
            change.after = u.after.state.as_str().to_string();
            change.time_until_half_open = u.after.time_until_half_open(u.now, config).map(seconds);
        }
    }
    let outcome = match (step.recovered, strategy) {
        (true, Strategy::Failover) => Outcome::FailedOver,
        (true, _) => Outcome::Recovered,
        (false, _) => Outcome::StillFailing,
    };
    let msg = if step.recovered {
        format!(
            "{} was failing ({reason}); recovered in {} ({})",
            request.service,
            timestamp::seconds(report.time_to_recover_ms.unwrap_or(0)),
            request.policy.ladder.position(failure_count)
        )
    } else {
        format!(
            "{} is failing ({reason}); not recovered ({}): {}",
            request.service,
            request.policy.ladder.position(failure_count),
            step.detail
        )
    };
    let end = Ending {
        failure_count,
        level,
        strategy,
        outcome,
        detail: step.detail.clone(),
        recovered_at,
        step: Some(step),
        msg,
    };
    finish(request, ctx, state, report, detected, &reason, end)
}

/// How a run that found the service failing ended: what goes into its incident and report.
struct Ending {
    failure_count: u32,
    level: usize,
    strategy: Strategy,
    outcome: Outcome,
    detail: String,
    recovered_at: Option<u64>,
    step: Option<StepOutcome>,
    msg: String,
}

impl Ending {
    /// An ending with no recovery and no step taken.
    fn new(
        failure_count: u32,
        level: usize,
        strategy: Strategy,
        outcome: Outcome,
        detail: String,
        msg: String,
    ) -> Ending {
        Ending {
            failure_count,
            level,
            strategy,
            outcome,
            detail,
            recovered_at: None,
            step: None,
            msg,
        }
    }
}

/// Records the attempt (found failing at `detected`, for `reason`) in the service's
/// outage and the incident log, computes the figures, completes the report.
fn finish(
    request: &RecoveryRequest,
    ctx: &RunContext,
    state: &mut RecoveryState,
    mut report: RecoveryReport,
    detected: u64,
    reason: &str,
    end: Ending,
) -> Result<RecoveryReport, RunError> {
    let line = Attempt {
        service: request.service.clone(),
        started_at: detected,
        at: detected,
        attempt: 0,
        failure_count: end.failure_count,
        level: end.level,
        strategy: end.strategy,
        outcome: end.outcome,
        recovered_at: end.recovered_at,
        reason: reason.into(),
        detail: end.detail,
    };
    let recorded = incidents::attempt(&mut state.open, line, reason);
    for event in &recorded.events {
        incidents::append(request, event)?;
    }
    report.incident = Some(recorded.outage);
    report.attempt = Some(recorded.attempt);
    with_figures(request, &mut report, ctx.now_ms_at(Instant::now()))?;
    report.failure_count.after = state.failure_count;
    report.failed = !end.outcome.recovered();
    report.changed = true;
    report.outcome = end.outcome;
    report.step = end.step;
    report.msg = end.msg;
    Ok(report)
}

/// The figures and the history, from the log.
fn with_figures(request: &RecoveryRequest, report: &mut RecoveryReport, now: u64) -> Result<(), RunError> {
    let (stats, history, warning) = incidents::figures(request, now)?;
    report.stats = Some(stats);
    report.history = history;
    report.warnings.extend(warning);
    Ok(())
}
