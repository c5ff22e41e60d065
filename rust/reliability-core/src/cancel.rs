//! How a caller stops a run: a cancel flag and a deadline, passed in a [`RunContext`] with
//! the time the run starts at. A module run never cancels; the daemon sets the flag on
//! SIGTERM or gives a check cycle a deadline, and an engine that waits (between attempts,
//! for a service to come back) looks at both instead of sleeping blind.
//!
//! The core reads no clock: [`RunContext::stopped`] is told the current instant.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A flag shared between the caller and the runs it started.
#[derive(Clone, Debug, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    pub fn new() -> Cancel {
        Cancel::default()
    }

    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// What a run is given besides its request: when it starts, and when it must stop.
#[derive(Clone, Debug)]
pub struct RunContext {
    /// The wall-clock time of the start (unix ms).
    pub now_ms: u64,
    /// The same moment on the monotonic clock: later times of the run are `now_ms` plus
    /// the time elapsed since, so they never go backwards.
    pub started: Instant,
    /// No new wait or action starts after this instant.
    pub deadline: Option<Instant>,
    pub cancel: Cancel,
}

/// Why a run stopped early.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stop {
    Cancelled,
    DeadlinePassed,
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stop::Cancelled => "cancelled",
            Stop::DeadlinePassed => "deadline passed",
        })
    }
}

impl RunContext {
    /// A run that starts at `now_ms` (wall clock) = `started` (monotonic) and is never
    /// stopped (a module run).
    pub fn at(now_ms: u64, started: Instant) -> RunContext {
        RunContext {
            now_ms,
            started,
            deadline: None,
            cancel: Cancel::new(),
        }
    }

    pub fn with_deadline(mut self, deadline: Instant) -> RunContext {
        self.deadline = Some(deadline);
        self
    }

    pub fn with_cancel(mut self, cancel: Cancel) -> RunContext {
        self.cancel = cancel;
        self
    }

    /// The wall-clock time (unix ms) at instant `now` of this run.
    pub fn now_ms_at(&self, now: Instant) -> u64 {
        let elapsed = now.saturating_duration_since(self.started).as_millis();
        self.now_ms.saturating_add(u64::try_from(elapsed).unwrap_or(u64::MAX))
    }

    /// Whether the run must stop, at instant `now`.
    pub fn stopped(&self, now: Instant) -> Option<Stop> {
        if self.cancel.is_cancelled() {
            Some(Stop::Cancelled)
        } else if self.deadline.is_some_and(|d| now >= d) {
            Some(Stop::DeadlinePassed)
        } else {
            None
        }
    }

    /// How long a wait of `wanted` may last from `now`: cut at the deadline.
    pub fn wait_for(&self, wanted: Duration, now: Instant) -> Duration {
        match self.deadline {
            Some(d) => wanted.min(d.saturating_duration_since(now)),
            None => wanted,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cancel_and_deadline_stop_a_run() {
        let t0 = Instant::now();
        let ctx = RunContext::at(1_000, t0).with_deadline(t0 + Duration::from_secs(2));
        assert_eq!(ctx.stopped(t0), None);
        assert_eq!(ctx.wait_for(Duration::from_secs(5), t0), Duration::from_secs(2));
        assert_eq!(ctx.wait_for(Duration::from_secs(1), t0), Duration::from_secs(1));
        assert_eq!(ctx.stopped(t0 + Duration::from_secs(2)), Some(Stop::DeadlinePassed));
        let flag = Cancel::new();
        assert_eq!(ctx.now_ms_at(t0 + Duration::from_millis(1_500)), 2_500);
        let ctx = RunContext::at(1_000, t0).with_cancel(flag.clone());
        assert_eq!(ctx.stopped(t0), None);
        flag.cancel();
        assert_eq!(ctx.stopped(t0), Some(Stop::Cancelled));
    }
}
