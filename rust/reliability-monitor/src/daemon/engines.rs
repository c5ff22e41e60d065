//! The daemon's one door to the engines: every call into `reliability_checks` and
//! `reliability_recovery` (and the state files they keep) is in this file, so the
//! engines' API can change in one place.
//!
//! The recovery engine is called exactly as the `service_recovery` module calls it: the
//! same request (from the same schema), the same state directory, files and locks. A
//! module run and the daemon acting on one service take turns on the service's lock and
//! lose no count; breakers, failure counts and incidents outlive the daemon (kill -9,
//! reboot) because they only ever live in those files.

pub use reliability_checks::processes::Tables;
use reliability_checks::{HealthRequest, Shared};
use reliability_core::breaker::State as BreakerState;
use reliability_core::cancel::{Cancel, RunContext};
use reliability_core::check::CheckResult;
use reliability_core::incident::{Event, Stats};
use reliability_core::recovery::Outcome;
use reliability_os::clock::now_ms;
use reliability_os::state::Store;
use reliability_recovery::RecoveryRequest;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

/// Runs check entries' requests once, together: entries of ports and processes as one
/// batch (one poll loop, one reading of the process table), any other alone; each gets
/// its own results, in order. `due` is when the run was due: a process check takes a
/// reading of the process table in `tables` begun at or after it, so the process checks
/// due together read the table once.
pub fn run_checks(requests: &[Arc<HealthRequest>], tables: &Tables, due: Instant) -> Vec<Vec<CheckResult>> {
    let requests: Vec<&HealthRequest> = requests.iter().map(|r| &**r).collect();
    reliability_checks::run_batch(&requests, Some(Shared { tables, due }))
}

/// What one recovery run came to.
#[derive(Clone, Debug, PartialEq)]
pub struct Healed {
    pub outcome: Outcome,
    /// Whether the service is served after the run (healthy, recovered or failed over).
    pub healthy: bool,
    pub msg: String,
    /// The ladder level (1-based) and strategy of the step taken, if one was.
    pub level: Option<usize>,
    pub strategy: Option<String>,
    /// Whether the run changed anything.
    pub changed: bool,
}

/// One recovery run of the service, through the engine (look, decide, act, record). The
/// daemon's `cancel` stops the engine's waits at once when the daemon stops.
pub fn recover(request: &RecoveryRequest, cancel: &Cancel) -> Result<Healed, String> {
    let ctx = RunContext::at(now_ms(), Instant::now()).with_cancel(cancel.clone());
    let report = reliability_recovery::run(request, &ctx, false).map_err(|e| e.to_string())?;
    Ok(Healed {
        healthy: matches!(
            report.outcome,
            Outcome::Healthy | Outcome::Recovered | Outcome::FailedOver
        ),
        outcome: report.outcome,
        msg: report.msg,
        level: report.level,
        strategy: report.strategy.map(|s| s.to_string()),
        changed: report.changed,
    })
}

/// A service's figures, read back from the files the engine writes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Figures {
    /// Outages, MTTR, MTBF, availability and error budget over the request's stats window.
    pub stats: Option<Stats>,
    /// Recovery attempts inside the stats window, by outcome.
    pub recoveries: BTreeMap<String, u64>,
    /// Whether an outage of the service is open.
    pub open_incident: bool,
    /// The breaker's name and state, when the service has one and it has a file.
    pub breaker: Option<(String, BreakerState)>,
    /// What could not be read.
    pub problems: Vec<String>,
}

/// The figures of the service of `request` at `now_ms`, from the stats window of its
/// incident log only (never the whole history).
pub fn figures(request: &RecoveryRequest, now_ms: u64) -> Figures {
    let mut f = Figures::default();
    match reliability_recovery::incidents::figures(request, now_ms) {
        Ok((stats, _history, warning)) => {
            f.open_incident = stats.open > 0;
            f.stats = Some(stats);
            f.problems.extend(warning);
        }
        Err(e) => f.problems.push(e.to_string()),
    }
    let since = now_ms.saturating_sub(request.stats_window_ms);
    match reliability_recovery::incidents::read_since(&request.incident_log, since) {
        Ok((events, _)) => {
            for event in &events {
                if let Event::Attempt(a) = event {
                    if a.service == request.service {
                        *f.recoveries.entry(a.outcome.as_str().to_string()).or_default() += 1;
                    }
                }
            }
        }
        Err(e) => f.problems.push(e.to_string()),
    }
    if let Some((name, _)) = &request.breaker {
        match reliability_recovery::breaker::load(&Store::new(&request.state_dir), name, true) {
            Ok((Some(b), _)) => f.breaker = Some((name.clone(), b.state)),
            // No file yet: a breaker that never saw a call is closed.
            Ok((None, _)) => f.breaker = Some((name.clone(), BreakerState::Closed)),
            Err(e) => f.problems.push(e.to_string()),
        }
    }
    f
}
