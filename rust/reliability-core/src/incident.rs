//! Incidents as the seed means them: one incident is one outage of one service, from the
//! run that first found it failing to the run that saw it healthy again, with every
//! recovery attempt inside it.
//!
//! The incident log is append-only JSON lines of [`Event`]s: `opened` (the first failing
//! run), `attempt` (every failing run: the step taken or refused, and what came of it) and
//! `closed` (the run that saw it healthy again). Every line carries the service and the
//! start of its outage, and `closed` carries the whole outage (start, end, attempts,
//! escalated), so an outage is rebuilt from the lines of the stats window alone, read
//! newest first: no line before the window is ever needed.
//!
//! Figures over a window ending at `now` (the seed's definitions):
//! - MTTR: the mean duration of the outages that ended;
//! - MTBF: the mean operating time between outages (end of one to start of the next);
//! - availability: the share of the window not spent in an outage (an open outage lasts
//!   until now); with an SLA target, the error budget left;
//! - recovery success rate: the share of outages that a recovery step closed;
//! - escalation rate: the share of outages that reached manual intervention.
//!
//! Decisions:
//! - An outage that reached manual intervention stays open until a run sees the service
//!   healthy again (the person's fix): its duration is the downtime people saw, and the
//!   runs that keep finding it failing meanwhile are attempts of that one outage, not new
//!   outages.
//! - Refusals (breaker, rate limit) are attempts too: they are part of the outage.
//!
//! Pure: the clock is a parameter, nothing here reads a file.

use crate::recovery::{Outcome, Strategy};
use serde::{Deserialize, Serialize};

/// One line of the incident log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A run found the service failing with no outage open.
    Opened {
        service: String,
        started_at: u64,
        /// Why it was found failing.
        reason: String,
    },
    /// A failing run: the step it took (or was refused) and what came of it.
    Attempt(Attempt),
    /// A run saw the service healthy again: the whole outage.
    Closed {
        service: String,
        started_at: u64,
        ended_at: u64,
        attempts: u32,
        /// Manual intervention was reached.
        escalated: bool,
        /// A recovery step (not a person, not the service itself) ended it.
        by_automation: bool,
    },
}

/// One failing run inside an outage.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub service: String,
    /// The start of the outage this attempt belongs to.
    pub started_at: u64,
    /// When the run found the service failing (unix ms).
    pub at: u64,
    /// Its number in the outage, from 1.
    pub attempt: u32,
    pub failure_count: u32,
    pub level: usize,
    pub strategy: Strategy,
    pub outcome: Outcome,
    /// When the step made it healthy again.
    pub recovered_at: Option<u64>,
    /// Why it was found failing.
    pub reason: String,
    /// What was done and what it said.
    pub detail: String,
}

impl Event {
    pub fn service(&self) -> &str {
        match self {
            Event::Opened { service, .. } | Event::Closed { service, .. } => service,
            Event::Attempt(a) => &a.service,
        }
    }

    /// When the line was written (the run's time).
    pub fn at(&self) -> u64 {
        match self {
            Event::Opened { started_at, .. } => *started_at,
            Event::Attempt(a) => a.at,
            Event::Closed { ended_at, .. } => *ended_at,
        }
    }
}

/// The outage a service is in, as its recovery state keeps it between runs.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Open {
    pub started_at: u64,
    pub attempts: u32,
    pub escalated: bool,
}

impl Open {
    /// The `closed` line of this outage, ended at `now`.
    pub fn close(&self, service: &str, now: u64, by_automation: bool) -> Event {
        Event::Closed {
            service: service.to_string(),
            started_at: self.started_at,
            ended_at: now,
            attempts: self.attempts,
            escalated: self.escalated,
            by_automation,
        }
    }
}

/// One outage rebuilt from the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Outage {
    pub started_at: u64,
    /// `None`: still open.
    pub ended_at: Option<u64>,
    pub attempts: u32,
    pub escalated: bool,
    pub by_automation: bool,
}

/// The outages of `service` in `events` (any order), oldest first.
pub fn outages(events: &[Event], service: &str) -> Vec<Outage> {
    let mut out: Vec<Outage> = Vec::new();
    fn find(out: &mut Vec<Outage>, started_at: u64) -> usize {
        match out.iter().position(|o| o.started_at == started_at) {
            Some(i) => i,
            None => {
                out.push(Outage {
                    started_at,
                    ended_at: None,
                    attempts: 0,
                    escalated: false,
                    by_automation: false,
                });
                out.len() - 1
            }
        }
    }
    for e in events.iter().filter(|e| e.service() == service) {
        match e {
            Event::Opened { started_at, .. } => {
                find(&mut out, *started_at);
            }
            Event::Attempt(a) => {
                let i = find(&mut out, a.started_at);
                let o = &mut out[i];
                o.attempts = o.attempts.max(a.attempt);
                o.escalated |= a.outcome == Outcome::ManualIntervention;
            }
            Event::Closed {
                started_at,
                ended_at,
                attempts,
                escalated,
                by_automation,
                ..
            } => {
                let i = find(&mut out, *started_at);
                let o = &mut out[i];
                o.ended_at = Some(*ended_at);
                o.attempts = o.attempts.max(*attempts);
                o.escalated |= *escalated;
                o.by_automation = *by_automation;
            }
        }
    }
    out.sort_by_key(|o| o.started_at);
    out
}

/// The error budget of an availability target over the window.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Budget {
    /// The target, percent (the seed's `sla_target`, e.g. 99.9).
    pub sla_target: f64,
    /// Downtime the target allows in the window, seconds.
    pub allowed_downtime_s: f64,
    /// What is left of it (negative: overspent), seconds.
    pub left_s: f64,
    /// What is left, percent of the allowed downtime (negative: overspent).
    pub left_percent: f64,
}

/// Per-service figures over a window.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Stats {
    pub window_s: f64,
    /// Outages that overlap the window (open ones too).
    pub incidents: usize,
    /// Of those, still open.
    pub open: usize,
    /// Closed by a recovery step.
    pub recovered: usize,
    /// That reached manual intervention.
    pub escalated: usize,
    /// Recovery attempts inside those outages.
    pub attempts: u32,
    /// Mean outage duration of the closed ones, seconds.
    pub mttr_s: Option<f64>,
    /// Mean operating time between consecutive outages, seconds.
    pub mtbf_s: Option<f64>,
    /// Seconds of the window spent in an outage.
    pub downtime_s: f64,
    /// Percent of the window not spent in an outage.
    pub availability_percent: f64,
    /// Percent of the outages closed by a recovery step.
    pub recovery_success_rate: Option<f64>,
    /// Percent of the outages that reached manual intervention.
    pub escalation_rate: Option<f64>,
    pub error_budget: Budget,
}

/// Figures for `outages` (of one service) over the window of `window_ms` ending at `now`,
/// against an availability target of `sla_target` percent.
pub fn stats(outages: &[Outage], now: u64, window_ms: u64, sla_target: f64) -> Stats {
    let start = now.saturating_sub(window_ms);
    let mut inside: Vec<&Outage> = outages
        .iter()
        .filter(|o| o.started_at <= now && o.ended_at.is_none_or(|end| end >= start))
        .collect();
    inside.sort_by_key(|o| o.started_at);
    let closed: Vec<u64> = inside
        .iter()
        .filter_map(|o| o.ended_at.map(|end| end.saturating_sub(o.started_at)))
        .collect();
    let mean_s = |v: &[u64]| (!v.is_empty()).then(|| v.iter().sum::<u64>() as f64 / v.len() as f64 / 1000.0);
    let up: Vec<u64> = inside
        .windows(2)
        .map(|w| w[1].started_at.saturating_sub(w[0].ended_at.unwrap_or(w[1].started_at)))
        .collect();
    let down: u64 = inside
        .iter()
        .map(|o| {
            o.ended_at
                .unwrap_or(now)
                .min(now)
                .saturating_sub(o.started_at.max(start))
        })
        .sum();
    let count = |f: fn(&Outage) -> bool| inside.iter().filter(|o| f(o)).count();
    let recovered = count(|o| o.by_automation);
    let escalated = count(|o| o.escalated);
    let percent = |part: usize| (!inside.is_empty()).then(|| part as f64 * 100.0 / inside.len() as f64);
    let window_s = window_ms as f64 / 1000.0;
    let downtime_s = down as f64 / 1000.0;
    let allowed_downtime_s = window_s * (100.0 - sla_target) / 100.0;
    let left_s = allowed_downtime_s - downtime_s;
    Stats {
        window_s,
        incidents: inside.len(),
        open: inside.len() - closed.len(),
        recovered,
        escalated,
        attempts: inside.iter().map(|o| o.attempts).sum(),
        mttr_s: mean_s(&closed),
        mtbf_s: mean_s(&up),
        downtime_s,
        availability_percent: if window_ms == 0 {
            100.0
        } else {
            100.0 * (1.0 - down as f64 / window_ms as f64)
        },
        recovery_success_rate: percent(recovered),
        escalation_rate: percent(escalated),
        error_budget: Budget {
            sla_target,
            allowed_downtime_s,
            left_s,
            left_percent: if allowed_downtime_s > 0.0 {
                100.0 * left_s / allowed_downtime_s
            } else if downtime_s > 0.0 {
                -100.0
            } else {
                100.0
            },
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: &str = "a.service";

    /// The figures of the log `events` of service `S` over `window` ms ending at `now`,
    /// against 99.9 %.
    fn check(events: &[Event], now: u64, window: u64) -> Stats {
        stats(&outages(events, S), now, window, 99.9)
    }

    fn opened(at: u64) -> Event {
        Event::Opened {
            service: S.into(),
            started_at: at,
            reason: "down".into(),
        }
    }

    fn attempt(started_at: u64, at: u64, n: u32, outcome: Outcome) -> Event {
        Event::Attempt(Attempt {
            service: S.into(),
            started_at,
            at,
            attempt: n,
            failure_count: n,
            level: 1,
            strategy: Strategy::Restart,
            outcome,
            recovered_at: None,
            reason: "down".into(),
            detail: String::new(),
        })
    }

    fn closed(started_at: u64, ended_at: u64, attempts: u32, escalated: bool, by_automation: bool) -> Event {
        Event::Closed {
            service: S.into(),
            started_at,
            ended_at,
            attempts,
            escalated,
            by_automation,
        }
    }

    /// One outage of `n` attempts from `start`, the last recovering it at `end`.
    fn outage(start: u64, end: u64, n: u32) -> Vec<Event> {
        let mut v = vec![opened(start)];
        for k in 1..=n {
            let outcome = if k == n {
                Outcome::Recovered
            } else {
                Outcome::StillFailing
            };
            v.push(attempt(start, start + u64::from(k - 1) * 2_000, k, outcome));
        }
        v.push(closed(start, end, n, false, true));
        v
    }

    #[test]
    fn one_outage_of_four_attempts_is_one_incident() {
        // Restart, restart, reload fail; the fourth run's reload recovers it at 7 s. Before
        // outages, this counted four incidents with an MTBF of 2 s and an MTTR of 1 s.
        let s = check(&outage(0, 7_000, 4), 100_000, 100_000);
        assert_eq!((s.incidents, s.attempts, s.recovered, s.open), (1, 4, 1, 0), "{s:?}");
        assert_eq!(s.mtbf_s, None);
        assert_eq!(s.mttr_s, Some(7.0));
        assert_eq!(s.recovery_success_rate, Some(100.0));
        assert_eq!(s.escalation_rate, Some(0.0));
        assert!(
            (s.availability_percent - 93.0).abs() < 1e-9,
            "{}",
            s.availability_percent
        );
    }

    #[test]
    fn figures_over_a_window() {
        // Three outages: 0-7 s by automation, 20-30 s escalated and fixed by a person,
        // 50 s on, open; every line of another service is ignored.
        let mut events = outage(0, 7_000, 4);
        events.extend([
            opened(20_000),
            attempt(20_000, 20_000, 1, Outcome::StillFailing),
            attempt(20_000, 22_000, 2, Outcome::ManualIntervention),
            attempt(20_000, 24_000, 3, Outcome::ManualIntervention),
            closed(20_000, 30_000, 3, true, false),
            opened(50_000),
            attempt(50_000, 50_000, 1, Outcome::RefusedByBreaker),
            Event::Opened {
                service: "other.service".into(),
                started_at: 1,
                reason: String::new(),
            },
        ]);
        let s = check(&events, 60_000, 100_000);
        assert_eq!(
            (s.incidents, s.open, s.recovered, s.escalated, s.attempts),
            (3, 1, 1, 1, 8),
            "{s:?}"
        );
        // Closed outages last 7 and 10 s.
        assert_eq!(s.mttr_s, Some(8.5));
        // Up from 7 to 20 s and from 30 to 50 s.
        assert_eq!(s.mtbf_s, Some(16.5));
        // Down 7 + 10 + 10 (open until now) of 100 s.
        assert_eq!(s.downtime_s, 27.0);
        assert!((s.availability_percent - 73.0).abs() < 1e-9);
        assert!((s.recovery_success_rate.unwrap() - 100.0 / 3.0).abs() < 1e-9);
        assert!((s.escalation_rate.unwrap() - 100.0 / 3.0).abs() < 1e-9);
        // 99.9 % of 100 s allows 0.1 s: overspent by 26.9 s.
        assert!((s.error_budget.allowed_downtime_s - 0.1).abs() < 1e-9);
        assert!(s.error_budget.left_s < 0.0 && s.error_budget.left_percent < -100.0);
    }

    #[test]
    fn window_edges_empty_and_budget() {
        let s = check(&[], 10_000, 5_000);
        assert_eq!((s.incidents, s.mttr_s, s.mtbf_s), (0, None, None));
        assert_eq!(s.availability_percent, 100.0);
        assert_eq!((s.recovery_success_rate, s.escalation_rate), (None, None));
        assert_eq!(s.error_budget.left_percent, 100.0);
        // Ended before the window: out. Started before it, ended inside: its part inside.
        let mut events = outage(0, 1_000, 1);
        events.extend(outage(4_000, 6_000, 1));
        let s = check(&events, 10_000, 5_000);
        assert_eq!(s.incidents, 1);
        assert_eq!(s.downtime_s, 1.0);
        assert!((s.availability_percent - 80.0).abs() < 1e-9);
        // A day at 99.9 % allows 86.4 s; 8.64 s down leaves 90 % of it.
        let day = 86_400_000;
        let s = check(&outage(day - 8_640, day, 1), day, day);
        assert!((s.error_budget.allowed_downtime_s - 86.4).abs() < 1e-9);
        assert!(
            (s.error_budget.left_percent - 90.0).abs() < 1e-6,
            "{:?}",
            s.error_budget
        );
    }

    #[test]
    fn an_outage_rebuilt_from_its_closed_line_alone() {
        // The window starts after the opened and attempt lines: the closed line is enough.
        let o = outages(&[closed(1_000, 9_000, 5, true, false)], S);
        assert_eq!(
            o,
            [Outage {
                started_at: 1_000,
                ended_at: Some(9_000),
                attempts: 5,
                escalated: true,
                by_automation: false
            }]
        );
    }

    #[test]
    fn log_lines_round_trip() {
        let line = serde_json::to_string(&attempt(5, 6, 2, Outcome::FailedOver)).unwrap();
        assert!(
            line.starts_with(r#"{"event":"attempt","service":"a.service""#),
            "{line}"
        );
        assert!(line.contains(r#""outcome":"failed_over""#), "{line}");
        let back: Event = serde_json::from_str(&line).unwrap();
        assert_eq!(back, attempt(5, 6, 2, Outcome::FailedOver));
    }
}
