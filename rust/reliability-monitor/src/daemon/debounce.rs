//! When a check's state changes: only after `consecutive_failures` failed results in a row
//! (ok -> failing) or `consecutive_successes` ok results in a row (failing -> ok), so one
//! lost packet does not page anyone and one lucky answer does not end an outage.
//!
//! A pure state machine: results in, transitions out; no clock, no I/O.

use crate::config::Schedule;
use serde::Serialize;

/// The confirmed state of one check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// No result yet.
    Pending,
    Ok,
    Failing,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Ok => "ok",
            State::Failing => "failing",
        }
    }
}

/// One check's state and the results in a row that lead away from it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Debounce {
    pub state: State,
    /// Failed results in a row (reset by an ok one).
    pub failures: u32,
    /// Ok results in a row (reset by a failed one).
    pub successes: u32,
}

impl Default for Debounce {
    fn default() -> Debounce {
        Debounce {
            state: State::Pending,
            failures: 0,
            successes: 0,
        }
    }
}

impl Debounce {
    /// Takes one result; the new state when it changed. A check with no state yet is ok
    /// at its first ok result (there is nothing to flap from), failing only after as many
    /// failures as an ok check needs.
    pub fn observe(&mut self, ok: bool, schedule: &Schedule) -> Option<State> {
        if ok {
            self.successes = self.successes.saturating_add(1);
            self.failures = 0;
        } else {
            self.failures = self.failures.saturating_add(1);
            self.successes = 0;
        }
        let next = match self.state {
            State::Pending if ok => State::Ok,
            State::Failing if ok && self.successes >= schedule.consecutive_successes.max(1) => State::Ok,
            State::Pending | State::Ok if !ok && self.failures >= schedule.consecutive_failures.max(1) => {
                State::Failing
            }
            same => same,
        };
        (next != self.state).then(|| {
            self.state = next;
            next
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Feeds `results` (`+` ok, `-` failed) to a fresh machine with N failures / M
    /// successes; the state after each result, as letters: `p` pending, `o` ok, `F` failing.
    fn check(failures: u32, successes: u32, results: &str, expected: &str) {
        let schedule = Schedule {
            interval: Duration::from_secs(1),
            consecutive_failures: failures,
            consecutive_successes: successes,
        };
        let mut d = Debounce::default();
        let seen: String = results
            .chars()
            .map(|c| {
                d.observe(c == '+', &schedule);
                match d.state {
                    State::Pending => 'p',
                    State::Ok => 'o',
                    State::Failing => 'F',
                }
            })
            .collect();
        assert_eq!(seen, expected, "N={failures} M={successes} results {results}");
    }

    #[test]
    fn table() {
        // N failures in a row before failing; M successes in a row before ok again.
        check(1, 1, "+-+", "oFo");
        check(3, 1, "+--+---", "ooooooF");
        check(3, 1, "+---+", "oooFo");
        check(3, 2, "+---+-+++", "oooFFFFoo");
        // Alternating results never flap.
        check(2, 2, "+-+-+-+-", "oooooooo");
        check(2, 2, "--+-+-+-++", "pFFFFFFFFo");
        // A check that starts failing is failing after N, not at once.
        check(3, 1, "--", "pp");
        check(3, 1, "---", "ppF");
        // Zero would mean "never": treated as one.
        check(0, 0, "-+", "Fo");
    }

    #[test]
    fn transitions_are_reported_once() {
        let s = Schedule {
            interval: Duration::from_secs(1),
            consecutive_failures: 2,
            consecutive_successes: 1,
        };
        let mut d = Debounce::default();
        assert_eq!(d.observe(true, &s), Some(State::Ok));
        assert_eq!(d.observe(true, &s), None);
        assert_eq!(d.observe(false, &s), None);
        assert_eq!(d.observe(false, &s), Some(State::Failing));
        assert_eq!(d.observe(false, &s), None);
        assert_eq!(d.observe(true, &s), Some(State::Ok));
    }
}
