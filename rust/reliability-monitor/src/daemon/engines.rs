//! The daemon's one door to the engines: every call into `reliability_checks` and
//! `reliability_recovery` (and the state files they keep) is in this file, so the
//! engines' API can change in one place.
//!
//! The recovery engine is called exactly as the `service_recovery` module calls it: the
//! same request (from the same schema), the same state directory, files and locks. A
//! module run and the daemon acting on one service take turns on the service's lock and
//! lose no count; breakers, failure counts and incidents outlive the daemon (kill -9,
//! reboot) because they only ever live in those files.

use reliability_checks::HealthRequest;
use reliability_core::breaker::{Breaker, State as BreakerState};
use reliability_core::check::CheckResult;
use reliability_core::recovery::{self, Stats};
use reliability_os::state::Store;
use reliability_recovery::RecoveryRequest;
use std::collections::BTreeMap;

/// Runs one check entry's request once.
pub fn run_checks(request: &HealthRequest) -> Vec<CheckResult> {
    reliability_checks::run(request).checks
}

/// What one recovery run came to.
#[derive(Clone, Debug, PartialEq)]
pub struct Healed {
    /// The engine's outcome: `healthy`, `recovered`, `failed`, `refused`, `manual`.
    pub outcome: String,
    /// Whether the service is healthy after the run.
    pub healthy: bool,
    pub msg: String,
}

/// One recovery run of the service, through the engine (look, decide, act, record).
pub fn recover(request: &RecoveryRequest) -> Result<Healed, String> {
    let report = reliability_recovery::run(request, false).map_err(|e| e.to_string())?;
    Ok(Healed {
        healthy: matches!(report.outcome.as_str(), "healthy" | "recovered"),
        outcome: report.outcome,
        msg: report.msg,
    })
}

/// A service's figures, read back from the files the engine writes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Figures {
    /// MTTR, MTBF, availability over the request's stats window.
    pub stats: Option<Stats>,
    /// Recovery runs by outcome, over the whole incident log.
    pub recoveries: BTreeMap<String, u64>,
    /// Whether the latest incident has not recovered.
    pub open_incident: bool,
    /// The breaker's name and state, when the service has one and it has a file.
    pub breaker: Option<(String, BreakerState)>,
    /// What could not be read.
    pub problems: Vec<String>,
}

/// The figures of the service of `request` at `now_ms`.
pub fn figures(request: &RecoveryRequest, now_ms: u64) -> Figures {
    let mut f = Figures::default();
    match reliability_recovery::read_incidents(&request.incident_log, &request.service) {
        Ok((incidents, _bad_lines)) => {
            for i in &incidents {
                *f.recoveries.entry(i.outcome.clone()).or_default() += 1;
            }
            f.open_incident = incidents.last().is_some_and(|i| i.recovered_at.is_none());
            f.stats = Some(recovery::stats(&incidents, now_ms, request.stats_window_ms));
        }
        Err(e) => f.problems.push(e.to_string()),
    }
    if let Some((name, _)) = &request.breaker {
        match Store::new(&request.state_dir).load::<Breaker>(name) {
            Ok(Some(b)) => f.breaker = Some((name.clone(), b.state)),
            // No file yet: a breaker that never saw a call is closed.
            Ok(None) => f.breaker = Some((name.clone(), BreakerState::Closed)),
            Err(e) => f.problems.push(e.to_string()),
        }
    }
    f
}
