//! What a recovery run reports: the same [`RecoveryReport`] for the module (one JSON
//! result), the daemon (log line, metrics) and the CLI.

use reliability_core::incident::{Attempt, Outage, Stats};
use reliability_core::recovery::{Outcome, Strategy};
use reliability_core::request::Report;
use reliability_os::state::StateError;
use serde::Serialize;
use serde_json::{json, Map, Value};

/// What the service looked like.
#[derive(Clone, Debug, Serialize)]
pub struct Look {
    pub healthy: bool,
    /// The health report's one line.
    pub summary: String,
    /// The checks that were not ok: `name: status: message`.
    pub problems: Vec<String>,
}

/// What the step did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct StepOutcome {
    /// The service (or its backup) is healthy again.
    pub recovered: bool,
    /// An action was started (false when nothing could be tried).
    pub attempted: bool,
    /// One line: what was done and what came of it.
    pub detail: String,
    /// Every command run, with its output.
    pub commands: Vec<Value>,
    /// Properties changed by scale_resources: name -> [before, after].
    pub properties: Map<String, Value>,
    /// Milliseconds from the start of the action to healthy again.
    pub took_ms: Option<u64>,
}

/// The outcome of a run.
#[derive(Clone, Debug, Serialize)]
pub struct RecoveryReport {
    pub service: String,
    pub failing: bool,
    pub outcome: Outcome,
    pub level: Option<usize>,
    pub strategy: Option<Strategy>,
    /// Whether the recovery worked (`None`: nothing was attempted).
    pub success: Option<bool>,
    /// From the run finding the failure to the service healthy again.
    pub time_to_recover_ms: Option<u64>,
    pub failure_count: FailureCounts,
    pub breaker: Option<BreakerChange>,
    pub health: Look,
    pub step: Option<StepOutcome>,
    /// The outage this run found the service in (or closed).
    pub incident: Option<Outage>,
    /// The attempt this run appended to the incident log.
    pub attempt: Option<Attempt>,
    /// The service's last 10 attempts in the stats window, newest first.
    pub history: Vec<Attempt>,
    pub stats: Option<Stats>,
    pub changed: bool,
    pub failed: bool,
    pub msg: String,
    pub warnings: Vec<String>,
}

impl RecoveryReport {
    /// What a run found before deciding: nothing decided or done yet.
    pub(crate) fn new(service: &str, health: Look, failure_count: u32) -> RecoveryReport {
        RecoveryReport {
            service: service.to_string(),
            failing: !health.healthy,
            outcome: Outcome::Healthy,
            level: None,
            strategy: None,
            success: None,
            time_to_recover_ms: None,
            failure_count: FailureCounts {
                before: failure_count,
                after: failure_count,
                reset: false,
            },
            breaker: None,
            health,
            step: None,
            incident: None,
            attempt: None,
            history: Vec::new(),
            stats: None,
            changed: false,
            failed: false,
            msg: String::new(),
            warnings: Vec::new(),
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct FailureCounts {
    pub before: u32,
    pub after: u32,
    pub reset: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct BreakerChange {
    pub name: String,
    pub before: String,
    pub after: String,
    pub allowed: bool,
    pub time_until_half_open: Option<f64>,
}

/// Why a run could not be carried out at all (as opposed to a failing recovery).
#[derive(Debug)]
pub enum RunError {
    State(StateError),
    Other(String),
}

impl Report for RecoveryReport {
    fn changed(&self) -> bool {
        self.changed
    }
    fn failed(&self) -> bool {
        self.failed
    }
    fn msg(&self) -> &str {
        &self.msg
    }
    fn warnings(&self) -> &[String] {
        &self.warnings
    }
    /// Failure count and breaker state, before and after.
    fn diff(&self) -> Option<Value> {
        let side = |count: u32, breaker: Option<&str>| {
            let mut m = Map::new();
            m.insert("failure_count".into(), json!(count));
            if let Some(b) = breaker {
                m.insert("breaker".into(), json!(b));
            }
            Value::Object(m)
        };
        let b = self.breaker.as_ref();
        Some(json!({
            "before": side(self.failure_count.before, b.map(|b| b.before.as_str())),
            "after": side(self.failure_count.after, b.map(|b| b.after.as_str())),
            "before_header": format!("{} (recovery state)", self.service),
            "after_header": format!("{} (recovery state)", self.service),
        }))
    }
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::State(e) => e.fmt(f),
            RunError::Other(s) => f.write_str(s),
        }
    }
}

impl From<StateError> for RunError {
    fn from(e: StateError) -> RunError {
        RunError::State(e)
    }
}
