//! When the daemon runs a service's recovery: the pure decision, no clock and no I/O.
//!
//! - A service is healed only while its checks are confirmed failing (after
//!   `consecutive_failures`, see [`super::debounce`]), and only if it has a `recovery`.
//! - Never two recoveries of one service at once: while one runs, the answer is
//!   [`Decision::Busy`] (across processes, the engine's lock on the service's state file
//!   does the same for a module run).
//! - Between attempts, exponential backoff with full jitter (a uniform delay between 0 and
//!   `min(cap, base * 2^attempts)`), so that many services failing together (a shared
//!   dependency) do not restart in lockstep. After a run that recovered the service, the
//!   checks get one `base` to confirm it before another attempt.

use std::time::Duration;

/// What the scheduler should do about one service now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// The service is not failing: nothing to do.
    Idle,
    /// A recovery of it is running.
    Busy,
    /// Failing, but the backoff has `ms` left.
    Wait { ms: u64 },
    /// Run the recovery now.
    Start,
}

/// The recovery bookkeeping of one service (times are the daemon's monotonic ms).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Healer {
    /// Attempts in a row that did not recover the service.
    pub attempts: u32,
    pub running: bool,
    /// No attempt before this time.
    pub not_before: u64,
}

/// The backoff's bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub cap: Duration,
}

impl Backoff {
    /// Full jitter: `unit` (uniform in [0, 1)) of `min(cap, base * 2^attempts)`.
    pub fn delay_ms(&self, attempts: u32, unit: f64) -> u64 {
        let base = u64::try_from(self.base.as_millis()).unwrap_or(u64::MAX);
        let cap = u64::try_from(self.cap.as_millis()).unwrap_or(u64::MAX);
        let ceiling = base.saturating_mul(1u64 << attempts.min(32)).min(cap);
        (ceiling as f64 * unit.clamp(0.0, 1.0)) as u64
    }
}

impl Healer {
    pub fn decide(&self, failing: bool, now: u64) -> Decision {
        if self.running {
            Decision::Busy
        } else if !failing {
            Decision::Idle
        } else if now < self.not_before {
            Decision::Wait {
                ms: self.not_before - now,
            }
        } else {
            Decision::Start
        }
    }

    pub fn started(&mut self) {
        self.running = true;
    }

    /// A run ended at `now`; `healthy`: the service is healthy after it.
    pub fn finished(&mut self, healthy: bool, now: u64, backoff: &Backoff, unit: f64) {
        self.running = false;
        if healthy {
            self.attempts = 0;
            self.not_before = now.saturating_add(u64::try_from(backoff.base.as_millis()).unwrap_or(u64::MAX));
        } else {
            self.attempts = self.attempts.saturating_add(1);
            self.not_before = now.saturating_add(backoff.delay_ms(self.attempts, unit));
        }
    }

    /// The service's checks are ok again: the next outage starts from the first attempt.
    pub fn reset(&mut self) {
        self.attempts = 0;
        self.not_before = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Backoff = Backoff {
        base: Duration::from_secs(2),
        cap: Duration::from_secs(60),
    };

    #[test]
    fn full_jitter_stays_within_the_exponential_ceiling() {
        // (attempts, unit, delay)
        for (attempts, unit, want) in [
            (0, 0.999_999, 1_999),
            (1, 0.5, 2_000),
            (3, 1.0, 16_000),
            (3, 0.0, 0),
            (5, 1.0, 60_000),
            (40, 1.0, 60_000),
            (2, 7.0, 8_000),
        ] {
            assert_eq!(B.delay_ms(attempts, unit), want, "attempts {attempts} unit {unit}");
        }
    }

    /// The decision path the scheduler walks for one service, step by step.
    #[test]
    fn decision_path() {
        let mut h = Healer::default();
        assert_eq!(h.decide(false, 0), Decision::Idle);
        assert_eq!(h.decide(true, 0), Decision::Start);
        h.started();
        // Never two at once, failing or not.
        assert_eq!(h.decide(true, 1), Decision::Busy);
        assert_eq!(h.decide(false, 1), Decision::Busy);
        // The attempt failed at t=1000: wait a jittered 0.5 * min(60 s, 2 s * 2^1).
        h.finished(false, 1_000, &B, 0.5);
        assert_eq!(h.attempts, 1);
        assert_eq!(h.decide(true, 1_500), Decision::Wait { ms: 1_500 });
        assert_eq!(h.decide(true, 3_000), Decision::Start);
        h.started();
        h.finished(false, 3_000, &B, 1.0);
        assert_eq!(h.decide(true, 3_000), Decision::Wait { ms: 8_000 });
        // A run that recovered: the checks get one base interval to confirm it.
        h.started();
        h.finished(true, 11_000, &B, 1.0);
        assert_eq!((h.attempts, h.decide(true, 12_000)), (0, Decision::Wait { ms: 1_000 }));
        assert_eq!(h.decide(true, 13_000), Decision::Start);
        // Checks ok again: idle, and the next outage starts without backoff.
        h.reset();
        assert_eq!(h.decide(false, 13_000), Decision::Idle);
        assert_eq!(h.decide(true, 13_001), Decision::Start);
    }
}
