//! The incident log of the recovery engine: which lines a run appends, and the figures it
//! reads back. What an incident is, and the figures, are [`reliability_core::incident`]'s;
//! the bounded log is [`reliability_os::journal`]'s. The module and the daemon write the
//! same log through here, under the same lock.

use reliability_core::incident::{self, Attempt, Event, Open, Outage, Stats};
use reliability_core::recovery::Outcome;
use reliability_os::journal::{self, Rotation};
use std::path::Path;

use crate::report::RunError;
use crate::request::RecoveryRequest;

/// How the incident log is bounded: 1 MiB per file, the log and 5 rotated files.
pub const ROTATION: Rotation = Rotation {
    max_bytes: 1 << 20,
    keep: 5,
};

/// Appends one line to the request's incident log (creating its directory).
pub fn append(request: &RecoveryRequest, event: &Event) -> Result<(), RunError> {
    if let Some(dir) = request.incident_log.parent() {
        crate::run::ensure_dir(dir)?;
    }
    journal::append(&request.incident_log, event, Some(ROTATION))?;
    Ok(())
}

/// The lines of the log since `since` (oldest first) and how many were unreadable.
pub fn read_since(log: &Path, since: u64) -> Result<(Vec<Event>, usize), RunError> {
    Ok(journal::read_since(log, ROTATION.keep, since, Event::at)?)
}

/// What a failing run adds to the log.
#[derive(Clone, Debug, PartialEq)]
pub struct Recorded {
    /// The lines to append, in order: `opened` for a new outage, the attempt, `closed` when
    /// its step recovered the service.
    pub events: Vec<Event>,
    pub attempt: Attempt,
    /// The outage after this attempt.
    pub outage: Outage,
}

/// A failing run's attempt `line`: it joins the open outage (or opens one), and closes it
/// when its step recovered the service.
pub fn attempt(open: &mut Option<Open>, mut line: Attempt, reason: &str) -> Recorded {
    let mut events = Vec::new();
    let o = open.get_or_insert_with(|| {
        events.push(Event::Opened {
            service: line.service.clone(),
            started_at: line.at,
            reason: reason.to_string(),
        });
        Open {
            started_at: line.at,
            attempts: 0,
            escalated: false,
        }
    });
    o.attempts += 1;
    o.escalated |= line.outcome == Outcome::ManualIntervention;
    line.started_at = o.started_at;
    line.attempt = o.attempts;
    let ended_at = line.outcome.recovered().then_some(line.recovered_at).flatten();
    let outage = Outage {
        started_at: o.started_at,
        ended_at,
        attempts: o.attempts,
        escalated: o.escalated,
        by_automation: ended_at.is_some(),
    };
    events.push(Event::Attempt(line.clone()));
    if let Some(end) = ended_at {
        events.push(o.close(&line.service, end, true));
        *open = None;
    }
    Recorded {
        events,
        attempt: line,
        outage,
    }
}

/// The service's figures over the request's window ending at `now`, its last 10 attempts
/// (newest first), and a warning for unreadable lines.
pub fn figures(request: &RecoveryRequest, now: u64) -> Result<(Stats, Vec<Attempt>, Option<String>), RunError> {
    let since = now.saturating_sub(request.stats_window_ms);
    let (events, bad) = read_since(&request.incident_log, since)?;
    let outages = incident::outages(&events, &request.service);
    let stats = incident::stats(&outages, now, request.stats_window_ms, request.sla_target);
    let history = events
        .iter()
        .rev()
        .filter_map(|e| match e {
            Event::Attempt(a) if a.service == request.service => Some(a.clone()),
            _ => None,
        })
        .take(10)
        .collect();
    let warning = (bad > 0).then(|| {
        format!(
            "{bad} line(s) of '{}' are not incident events and were skipped",
            request.incident_log.display()
        )
    });
    Ok((stats, history, warning))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reliability_core::recovery::Strategy;

    fn line(at: u64, outcome: Outcome, recovered_at: Option<u64>) -> Attempt {
        Attempt {
            service: "a.service".into(),
            started_at: 0,
            at,
            attempt: 0,
            failure_count: 1,
            level: 1,
            strategy: Strategy::Restart,
            outcome,
            recovered_at,
            reason: "down".into(),
            detail: String::new(),
        }
    }

    /// The engine's own path: four failing runs of one outage, the last recovering it,
    /// appended to a real log and read back. Before outages, the same four runs were four
    /// incidents with an MTBF of 2 s.
    #[test]
    fn four_runs_of_one_outage_read_back_as_one_incident() {
        let dir = tempfile::tempdir().expect("tempdir");
        let input = serde_json::json!({"service": "a", "state_dir": dir.path(), "stats_window": 3600});
        let serde_json::Value::Object(map) = input else {
            unreachable!()
        };
        let request = RecoveryRequest::parse(&map, &reliability_core::spec::Env::default()).expect("request");
        let t0 = 1_800_000_000_000u64;
        // A line of another service, and an outage before the window, are not counted.
        append(
            &request,
            &Event::Opened {
                service: "b.service".into(),
                started_at: t0,
                reason: String::new(),
            },
        )
        .expect("append");
        let mut open = None;
        let old = attempt(
            &mut open,
            line(t0 - 7_200_000, Outcome::Recovered, Some(t0 - 7_199_000)),
            "down",
        );
        for e in &old.events {
            append(&request, e).expect("append");
        }
        for (k, at) in [0u64, 2_000, 4_000, 6_000].into_iter().enumerate() {
            let (outcome, recovered) = if k == 3 {
                (Outcome::Recovered, Some(t0 + 7_000))
            } else {
                (Outcome::StillFailing, None)
            };
            for e in attempt(&mut open, line(t0 + at, outcome, recovered), "down").events {
                append(&request, &e).expect("append");
            }
        }
        let (stats, history, warning) = figures(&request, t0 + 60_000).expect("figures");
        assert_eq!(warning, None);
        assert_eq!(
            (stats.incidents, stats.attempts, stats.recovered),
            (1, 4, 1),
            "{stats:?}"
        );
        assert_eq!((stats.mttr_s, stats.mtbf_s), (Some(7.0), None));
        assert_eq!(history.iter().map(|a| a.attempt).collect::<Vec<_>>(), [4, 3, 2, 1]);
    }

    #[test]
    fn runs_of_one_outage_share_it_and_a_recovery_closes_it() {
        let mut open = None;
        let first = attempt(&mut open, line(10, Outcome::StillFailing, None), "down");
        assert!(matches!(
            &first.events[..],
            [Event::Opened { started_at: 10, .. }, Event::Attempt(_)]
        ));
        assert_eq!(first.outage.ended_at, None);
        let second = attempt(&mut open, line(20, Outcome::ManualIntervention, None), "down");
        let [Event::Attempt(a)] = &second.events[..] else {
            panic!("{second:?}")
        };
        assert_eq!((a.started_at, a.attempt), (10, 2));
        let third = attempt(&mut open, line(30, Outcome::Recovered, Some(35)), "down");
        assert!(open.is_none());
        assert_eq!(
            third.outage,
            Outage {
                started_at: 10,
                ended_at: Some(35),
                attempts: 3,
                escalated: true,
                by_automation: true
            }
        );
        let third = third.events;
        let Some(Event::Closed {
            started_at: 10,
            ended_at: 35,
            attempts: 3,
            escalated: true,
            by_automation: true,
            ..
        }) = third.last()
        else {
            panic!("{third:?}")
        };
    }
}
