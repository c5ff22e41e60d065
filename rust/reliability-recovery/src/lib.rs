//! The self-healing engine of hx.reliability: one [`spec`], one [`run`], used by the
//! `service_recovery` module (and, later, the monitor daemon and the CLI); and the
//! persisted circuit breaker ([`breaker`]) that the `circuit_breaker` module and every
//! recovery step share.
//!
//! Files by concern: [`request`] (options, checked request), [`run`] (look, decide, act),
//! [`report`] (what a run says), [`incidents`] (the outage log and its figures),
//! [`breaker`] (the breaker engine), [`strategy`] (the steps).
//!
//! A run is:
//!
//! 1. Under the service's lock (`reliability_os::state`, one file per service), look: the
//!    unit and the optional `health` spec (the health_check schema, run by
//!    `reliability-checks`) decide whether the service is failing.
//! 2. Decide ([`reliability_core::recovery`]): healthy (perhaps resetting the failure count
//!    after the stable period), refused by the rate limit, or the ladder's step for the new
//!    failure count.
//! 3. Unless the step is manual, ask the circuit breaker ([`breaker`], the same engine and
//!    file the `circuit_breaker` module uses): while it is open nothing is attempted.
//! 4. Take the step ([`strategy`]): restart, reload (config test first), failover,
//!    scale resources; then wait, within the timeout, until the service (or its backup) is
//!    healthy again.
//! 5. Record: the outcome into the breaker, the new state, and the run's lines in the
//!    incident log: the attempt, inside the service's one open outage (opened by the first
//!    failing run, closed by the run that sees it healthy again). The per-service figures
//!    (MTTR, MTBF, availability and error budget, success and escalation rates) are
//!    computed from the stats window of that log ([`reliability_core::incident`]).
//!
//! Decisions:
//! - The whole run holds the service's lock: twenty runs at once on one failing service
//!   take turns, and a run that waited finds the service the previous one recovered; no
//!   update of the failure count, the breaker or the log is lost.
//! - Runs refused by the breaker or the rate limit still count as failures: the next
//!   allowed attempt is a rung higher, which is what a service that keeps failing needs.
//! - A step whose strategy is not configured (failover without units or command) is not
//!   guessed at: the run fails, saying what is missing, and counts as a failed attempt.
//! - The time and the stop signal come in a [`RunContext`]: a step's waits end when the
//!   caller cancels or the deadline passes, not only at the request's timeout.
//! - Check mode reads the state, looks at the service and says exactly which step it would
//!   take and why; it writes nothing and touches nothing.
//!
//! Architecture invariant: this crate prints nothing and knows nothing of Ansible.

pub mod breaker;
pub mod incidents;
pub mod report;
pub mod request;
pub mod run;
mod scale;
pub mod strategy;

pub use reliability_core::cancel::RunContext;
pub use reliability_core::recovery::Outcome;
pub use report::{BreakerChange, FailureCounts, Look, RecoveryReport, RunError, StepOutcome};
pub use request::{spec, Failover, RecoveryRequest, RequestError, Scale};
pub use run::{look, run};
