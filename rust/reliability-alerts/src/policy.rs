//! When to alert: the policy, pure (no I/O, the clock a parameter).
//!
//! Operators drown in noise, so a failed check is not an alert. By default the policy
//! alerts when self-healing failed ([`EventKind::HealingFailed`]), when the escalation
//! ladder reached a configured level (a failover), or when one service needed more than N
//! recoveries in a window (it flaps). A failed check alerts only with
//! `alert_on.check_failure`.
//!
//! Alerts are grouped by (service, alert name). A group fires once per incident; more
//! triggers of the same incident only refresh what the group says, and while the group
//! fires it is repeated every `repeat_interval` ([`Policy::tick`]). When the incident
//! closes, a resolved notification follows (if the group was ever sent). With a
//! `group_wait`, a new group waits that long before its first notification, so that a
//! burst of triggers is one notification saying the latest.
//!
//! Maintenance is an input: an event in a maintenance window (with suppression on) opens
//! its group silently; when [`Policy::tick`] is told the window is over and the group still
//! fires, it is sent at once. A group that resolves unsent says nothing.
//!
//! The state ([`PolicyState`]) serializes, so the daemon can keep it across restarts.

use crate::alert::{idempotency_key, Alert, AlertName, AlertState, Category, Severity};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How the policy decides; built from `alerting` by [`crate::AlertConfig`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyConfig {
    /// The host alerts are about.
    pub host: String,
    pub severities: BTreeMap<AlertName, Severity>,
    pub on_check_failure: bool,
    pub on_healing_failed: bool,
    /// Alert when a recovery at this ladder level (1-based) or above was taken; `None`:
    /// never.
    pub ladder_level: Option<u32>,
    /// Alert when a service needs more than `.0` recoveries in `.1` ms.
    pub flapping: Option<(u32, u64)>,
    pub group_wait_ms: u64,
    pub repeat_interval_ms: u64,
    pub send_resolved: bool,
    /// Suppress alerts while the host is in maintenance (the seed's
    /// `maintenance_windows.suppress_alerts_during_maintenance`).
    pub suppress_in_maintenance: bool,
    /// A runbook URL template: `{service}`, `{alertname}`, `{host}` are replaced.
    pub runbook_url: Option<String>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            host: String::new(),
            severities: AlertName::DEFAULTS.into_iter().collect(),
            on_check_failure: false,
            on_healing_failed: true,
            ladder_level: Some(3),
            flapping: Some((3, 3_600_000)),
            group_wait_ms: 0,
            repeat_interval_ms: 4 * 3_600_000,
            send_resolved: true,
            suppress_in_maintenance: true,
            runbook_url: None,
        }
    }
}

/// What happened, as the daemon tells it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    pub service: String,
    pub check: Option<String>,
    pub value: Option<String>,
    pub category: Category,
    /// The incident the event belongs to (the daemon's id of the outage).
    pub incident: String,
    /// What self-healing tried so far, in order.
    pub tried: Vec<String>,
    /// One line for people; the policy writes one when empty.
    pub summary: String,
    /// The host is in a maintenance window now.
    pub in_maintenance: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// A check failed (after its `consecutive_failures`).
    CheckFailed,
    /// A recovery action at this ladder level (1-based) was taken.
    Recovery { level: u32, succeeded: bool },
    /// Self-healing gave up.
    HealingFailed,
    /// The incident is over: the service is healthy again.
    IncidentClosed,
}

/// One group's state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub service: String,
    pub name: AlertName,
    pub incident: String,
    /// The latest details (what a notification of the group says).
    pub category: Category,
    pub check: Option<String>,
    pub value: Option<String>,
    pub summary: String,
    pub tried: Vec<String>,
    pub starts_at_ms: u64,
    /// When it was last sent; `None`: not yet (waiting for `group_wait`, or suppressed).
    pub last_sent_ms: Option<u64>,
    /// The sequence number of the last notification sent.
    pub sequence: u32,
    /// Held back by a maintenance window.
    pub suppressed: bool,
}

/// Everything the policy remembers.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PolicyState {
    /// By `service/alertname`.
    pub groups: BTreeMap<String, Group>,
    /// Recovery times (unix ms) per service, within the flapping window.
    pub recoveries: BTreeMap<String, Vec<u64>>,
}

/// The policy and what it remembers.
#[derive(Clone, Debug)]
pub struct Policy {
    config: PolicyConfig,
    state: PolicyState,
}

fn group_key(service: &str, name: AlertName) -> String {
    format!("{service}/{name}")
}

impl Policy {
    pub fn new(config: PolicyConfig) -> Policy {
        Policy::with_state(config, PolicyState::default())
    }

    pub fn with_state(config: PolicyConfig, state: PolicyState) -> Policy {
        Policy { config, state }
    }

    pub fn state(&self) -> &PolicyState {
        &self.state
    }

    /// The notifications `event` calls for at `now` (unix ms).
    pub fn decide(&mut self, event: &Event, now: u64) -> Vec<Alert> {
        let mut out = Vec::new();
        match event.kind {
            EventKind::CheckFailed => {
                if self.config.on_check_failure {
                    let name = match event.category {
                        Category::PerformanceDegradation => AlertName::PerformanceDegraded,
                        _ => AlertName::ServiceDown,
                    };
                    self.trigger(name, event, now, &mut out);
                }
            }
            EventKind::Recovery { level, .. } => {
                if let Some((most, window)) = self.config.flapping {
                    let times = self.state.recoveries.entry(event.service.clone()).or_default();
                    times.push(now);
                    times.retain(|&t| t.saturating_add(window) > now);
                    if times.len() > most as usize {
                        self.trigger(AlertName::ServiceFlapping, event, now, &mut out);
                    }
                }
                if self.config.ladder_level.is_some_and(|l| level >= l) {
                    self.trigger(AlertName::RecoveryEscalated, event, now, &mut out);
                }
            }
            EventKind::HealingFailed => {
                if self.config.on_healing_failed {
                    self.trigger(AlertName::RecoveryFailed, event, now, &mut out);
                }
            }
            EventKind::IncidentClosed => {
                // Flapping is about the service, not one incident: it resolves in `tick`.
                let closing: Vec<String> = self
                    .state
                    .groups
                    .iter()
                    .filter(|(_, g)| {
                        g.service == event.service
                            && g.incident == event.incident
                            && g.name != AlertName::ServiceFlapping
                    })
                    .map(|(k, _)| k.clone())
                    .collect();
                for key in closing {
                    if let Some(group) = self.state.groups.remove(&key) {
                        self.resolve(group, now, &mut out);
                    }
                }
            }
        }
        out
    }

    /// What time alone calls for at `now`: groups whose `group_wait` is over, groups held
    /// by a maintenance window that ended (`in_maintenance` false), repeats of firing
    /// groups, and the resolution of flapping that stopped.
    pub fn tick(&mut self, now: u64, in_maintenance: bool) -> Vec<Alert> {
        let mut out = Vec::new();
        // Flapping that stopped resolves (all of it, when a reload turned flapping off).
        let limit = self.config.flapping;
        match limit {
            Some((_, window)) => {
                for times in self.state.recoveries.values_mut() {
                    times.retain(|&t| t.saturating_add(window) > now);
                }
                self.state.recoveries.retain(|_, t| !t.is_empty());
            }
            None => self.state.recoveries.clear(),
        }
        let calm: Vec<String> = self
            .state
            .groups
            .iter()
            .filter(|(_, g)| g.name == AlertName::ServiceFlapping)
            .filter(|(_, g)| {
                let count = self.state.recoveries.get(&g.service).map_or(0, Vec::len);
                limit.is_none_or(|(most, _)| count <= most as usize)
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in calm {
            if let Some(group) = self.state.groups.remove(&key) {
                self.resolve(group, now, &mut out);
            }
        }
        let quiet = in_maintenance && self.config.suppress_in_maintenance;
        let keys: Vec<String> = self.state.groups.keys().cloned().collect();
        for key in keys {
            let Some(group) = self.state.groups.get_mut(&key) else {
                continue;
            };
            let due = match group.last_sent_ms {
                None if group.suppressed => !quiet,
                None => group.starts_at_ms.saturating_add(self.config.group_wait_ms) <= now && !quiet,
                Some(last) => last.saturating_add(self.config.repeat_interval_ms) <= now && !quiet,
            };
            if due {
                if group.last_sent_ms.is_some() {
                    group.sequence += 1;
                }
                group.suppressed = false;
                group.last_sent_ms = Some(now);
                let alert = self.alert(&key, AlertState::Firing, None);
                out.extend(alert);
            }
        }
        out
    }

    fn trigger(&mut self, name: AlertName, event: &Event, now: u64, out: &mut Vec<Alert>) {
        let key = group_key(&event.service, name);
        let summary = if event.summary.is_empty() {
            default_summary(name, event)
        } else {
            event.summary.clone()
        };
        let quiet = event.in_maintenance && self.config.suppress_in_maintenance;
        // Flapping is one group per service, whichever incident it shows.
        let same = |g: &Group| g.incident == event.incident || name == AlertName::ServiceFlapping;
        match self.state.groups.get_mut(&key) {
            Some(group) if same(group) => {
                // The same incident: refresh what the group says; `tick` repeats it.
                group.category = event.category;
                group.check.clone_from(&event.check);
                group.value.clone_from(&event.value);
                group.summary = summary;
                group.tried.clone_from(&event.tried);
                return;
            }
            Some(_) => {
                // A new incident of a group whose old one never closed: the old is over.
                if let Some(old) = self.state.groups.remove(&key) {
                    self.resolve(old, now, out);
                }
            }
            None => {}
        }
        let group = Group {
            service: event.service.clone(),
            name,
            incident: event.incident.clone(),
            category: event.category,
            check: event.check.clone(),
            value: event.value.clone(),
            summary,
            tried: event.tried.clone(),
            starts_at_ms: now,
            last_sent_ms: None,
            sequence: 0,
            suppressed: quiet,
        };
        self.state.groups.insert(key.clone(), group);
        if !quiet && self.config.group_wait_ms == 0 {
            if let Some(group) = self.state.groups.get_mut(&key) {
                group.last_sent_ms = Some(now);
            }
            out.extend(self.alert(&key, AlertState::Firing, None));
        }
    }

    fn resolve(&mut self, group: Group, now: u64, out: &mut Vec<Alert>) {
        if group.last_sent_ms.is_none() || !self.config.send_resolved {
            return;
        }
        let key = group_key(&group.service, group.name);
        self.state.groups.insert(key.clone(), group);
        out.extend(self.alert(&key, AlertState::Resolved, Some(now)));
        self.state.groups.remove(&key);
    }

    fn alert(&self, key: &str, state: AlertState, ends_at_ms: Option<u64>) -> Option<Alert> {
        let g = self.state.groups.get(key)?;
        let runbook_url = self.config.runbook_url.as_ref().map(|t| {
            t.replace("{service}", &g.service)
                .replace("{alertname}", g.name.as_str())
                .replace("{host}", &self.config.host)
        });
        let severity = self
            .config
            .severities
            .get(&g.name)
            .copied()
            .unwrap_or(Severity::Warning);
        Some(Alert {
            key: idempotency_key(&g.service, g.name, &g.incident, state, g.sequence),
            name: g.name,
            state,
            severity,
            category: g.category,
            host: self.config.host.clone(),
            service: g.service.clone(),
            check: g.check.clone(),
            value: g.value.clone(),
            incident: g.incident.clone(),
            summary: match state {
                AlertState::Firing => g.summary.clone(),
                AlertState::Resolved => format!("resolved: {}", g.summary),
            },
            runbook_url,
            tried: g.tried.clone(),
            sequence: g.sequence,
            starts_at_ms: g.starts_at_ms,
            ends_at_ms,
        })
    }
}

fn default_summary(name: AlertName, event: &Event) -> String {
    let service = &event.service;
    match (name, event.kind) {
        (AlertName::RecoveryFailed, _) => format!("self-healing of {service} failed"),
        (AlertName::RecoveryEscalated, EventKind::Recovery { level, succeeded }) => format!(
            "recovery of {service} reached level {level} ({})",
            if succeeded { "it worked" } else { "it failed" }
        ),
        (AlertName::ServiceFlapping, _) => format!("{service} keeps failing and recovering"),
        (AlertName::PerformanceDegraded, _) => format!("{service} is degraded"),
        _ => format!("{service} is down"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;

    fn event(kind: EventKind, service: &str, incident: &str) -> Event {
        Event {
            kind,
            service: service.into(),
            check: Some("http".into()),
            value: Some("connection refused".into()),
            category: Category::ServiceFailure,
            incident: incident.into(),
            tried: vec!["restart: failed".into()],
            summary: String::new(),
            in_maintenance: false,
        }
    }

    /// One step of a table: at `at` minutes, this happens (`Some(event)`) or the clock
    /// ticks (`None`, with the maintenance flag); the alerts expected as
    /// `name state sequence`.
    type Step = (u64, Option<Event>, bool, &'static [&'static str]);

    fn check(config: PolicyConfig, steps: Vec<Step>) {
        let mut policy = Policy::new(PolicyConfig {
            host: "web1".into(),
            ..config
        });
        for (i, (at, event, maintenance, expected)) in steps.into_iter().enumerate() {
            let now = 1_000_000_000 + at * MIN;
            let alerts = match &event {
                Some(e) => policy.decide(e, now),
                None => policy.tick(now, maintenance),
            };
            let got: Vec<String> = alerts
                .iter()
                .map(|a| format!("{}/{} {} {}", a.service, a.name, a.state.as_str(), a.sequence))
                .collect();
            assert_eq!(got, expected, "step {i} at {at} min: {event:?}");
            // The state survives a restart of the daemon.
            let saved = serde_json::to_string(policy.state()).expect("serialize");
            let state = serde_json::from_str(&saved).expect("deserialize");
            policy = Policy::with_state(policy.config.clone(), state);
        }
    }

    fn ev(kind: EventKind) -> Option<Event> {
        Some(event(kind, "nginx", "i1"))
    }

    const FAILED: EventKind = EventKind::HealingFailed;
    const CLOSED: EventKind = EventKind::IncidentClosed;
    const fn rec(level: u32) -> EventKind {
        EventKind::Recovery {
            level,
            succeeded: false,
        }
    }

    #[test]
    fn failed_checks_alone_do_not_alert_by_default() {
        check(
            PolicyConfig::default(),
            vec![
                (0, ev(EventKind::CheckFailed), false, &[]),
                (1, ev(rec(1)), false, &[]),
                (2, ev(rec(2)), false, &[]),
                (3, ev(CLOSED), false, &[]),
            ],
        );
        check(
            PolicyConfig {
                on_check_failure: true,
                ..PolicyConfig::default()
            },
            vec![
                (0, ev(EventKind::CheckFailed), false, &["nginx/service_down firing 0"]),
                (1, ev(EventKind::CheckFailed), false, &[]),
                (3, ev(CLOSED), false, &["nginx/service_down resolved 0"]),
            ],
        );
    }

    #[test]
    fn healing_failed_alerts_once_repeats_and_resolves() {
        check(
            PolicyConfig::default(),
            vec![
                (0, ev(FAILED), false, &["nginx/recovery_failed firing 0"]),
                // Deduplicated: the same incident again.
                (5, ev(FAILED), false, &[]),
                (60, None, false, &[]),
                (240, None, false, &["nginx/recovery_failed firing 1"]),
                (300, None, false, &[]),
                (480, None, false, &["nginx/recovery_failed firing 2"]),
                (500, ev(CLOSED), false, &["nginx/recovery_failed resolved 2"]),
                (501, ev(CLOSED), false, &[]),
                // A new incident fires anew.
                (
                    600,
                    Some(event(FAILED, "nginx", "i2")),
                    false,
                    &["nginx/recovery_failed firing 0"],
                ),
                // Another incident's closing does not resolve it.
                (601, Some(event(CLOSED, "nginx", "i1")), false, &[]),
                (602, Some(event(CLOSED, "db", "i2")), false, &[]),
            ],
        );
        check(
            PolicyConfig {
                send_resolved: false,
                on_healing_failed: false,
                on_check_failure: true,
                ..PolicyConfig::default()
            },
            vec![
                (0, ev(FAILED), false, &[]),
                (0, ev(EventKind::CheckFailed), false, &["nginx/service_down firing 0"]),
                (5, ev(CLOSED), false, &[]),
            ],
        );
    }

    #[test]
    fn a_new_incident_of_a_firing_group_resolves_the_old_one_first() {
        check(
            PolicyConfig::default(),
            vec![
                (0, ev(FAILED), false, &["nginx/recovery_failed firing 0"]),
                (
                    5,
                    Some(event(FAILED, "nginx", "i2")),
                    false,
                    &["nginx/recovery_failed resolved 0", "nginx/recovery_failed firing 0"],
                ),
                // The old incident's closing is old news; the new one's resolves.
                (6, ev(CLOSED), false, &[]),
                (
                    7,
                    Some(event(CLOSED, "nginx", "i2")),
                    false,
                    &["nginx/recovery_failed resolved 0"],
                ),
            ],
        );
    }

    #[test]
    fn the_ladder_level_alerts() {
        check(
            PolicyConfig {
                flapping: None,
                ..PolicyConfig::default()
            },
            vec![
                (0, ev(rec(1)), false, &[]),
                (1, ev(rec(2)), false, &[]),
                (2, ev(rec(3)), false, &["nginx/recovery_escalated firing 0"]),
                (3, ev(rec(3)), false, &[]),
                (4, ev(FAILED), false, &["nginx/recovery_failed firing 0"]),
                (
                    9,
                    ev(CLOSED),
                    false,
                    &[
                        "nginx/recovery_escalated resolved 0",
                        "nginx/recovery_failed resolved 0",
                    ],
                ),
            ],
        );
        check(
            PolicyConfig {
                ladder_level: None,
                flapping: None,
                ..PolicyConfig::default()
            },
            vec![(0, ev(rec(9)), false, &[])],
        );
    }

    #[test]
    fn flapping_is_more_recoveries_than_allowed_in_the_window() {
        let succeeded = |at: &str| {
            Some(event(
                EventKind::Recovery {
                    level: 1,
                    succeeded: true,
                },
                "nginx",
                at,
            ))
        };
        check(
            PolicyConfig {
                flapping: Some((3, 60 * MIN)),
                ..PolicyConfig::default()
            },
            vec![
                (0, succeeded("a"), false, &[]),
                (10, Some(event(CLOSED, "nginx", "a")), false, &[]),
                (20, succeeded("b"), false, &[]),
                (30, succeeded("c"), false, &[]),
                // The fourth within the hour.
                (40, succeeded("d"), false, &["nginx/service_flapping firing 0"]),
                // Its incident closing does not end the flapping; a fifth is the same group.
                (41, Some(event(CLOSED, "nginx", "d")), false, &[]),
                (45, succeeded("e"), false, &[]),
                (50, None, false, &[]),
                // By 90 min only d and e are within the hour: calm again.
                (90, None, false, &["nginx/service_flapping resolved 0"]),
                // Recoveries of other services count apart.
                (91, Some(event(rec(1), "db", "x")), false, &[]),
            ],
        );
    }

    #[test]
    fn flapping_turned_off_by_a_reload_resolves() {
        let mut policy = Policy::new(PolicyConfig {
            flapping: Some((1, 60 * MIN)),
            ..PolicyConfig::default()
        });
        let recovered = |incident: &str| {
            event(
                EventKind::Recovery {
                    level: 1,
                    succeeded: true,
                },
                "nginx",
                incident,
            )
        };
        assert!(policy.decide(&recovered("a"), 0).is_empty());
        assert_eq!(policy.decide(&recovered("b"), MIN)[0].name, AlertName::ServiceFlapping);
        let state = policy.state().clone();
        let mut reloaded = Policy::with_state(
            PolicyConfig {
                flapping: None,
                ..PolicyConfig::default()
            },
            state,
        );
        let resolved = reloaded.tick(2 * MIN, false);
        assert_eq!(resolved.len(), 1);
        assert_eq!(
            (resolved[0].name, resolved[0].state),
            (AlertName::ServiceFlapping, AlertState::Resolved)
        );
        assert!(reloaded.state().recoveries.is_empty());
    }

    #[test]
    fn group_wait_batches_into_one_notification() {
        check(
            PolicyConfig {
                group_wait_ms: 2 * MIN,
                ..PolicyConfig::default()
            },
            vec![
                (0, ev(FAILED), false, &[]),
                (1, ev(FAILED), false, &[]),
                (1, None, false, &[]),
                (2, None, false, &["nginx/recovery_failed firing 0"]),
                (3, ev(CLOSED), false, &["nginx/recovery_failed resolved 0"]),
                // Resolved while waiting: nothing to say at all.
                (10, ev(FAILED), false, &[]),
                (11, ev(CLOSED), false, &[]),
                (20, None, false, &[]),
            ],
        );
    }

    #[test]
    fn maintenance_holds_alerts_until_it_ends() {
        let quiet = |kind| {
            Some(Event {
                in_maintenance: true,
                ..event(kind, "nginx", "i1")
            })
        };
        check(
            PolicyConfig::default(),
            vec![
                (0, quiet(FAILED), false, &[]),
                (10, None, true, &[]),
                // The window ended and the service still fails: at once.
                (30, None, false, &["nginx/recovery_failed firing 0"]),
                (31, ev(CLOSED), false, &["nginx/recovery_failed resolved 0"]),
                // Failed and healed inside the window: nothing.
                (
                    40,
                    Some(Event {
                        in_maintenance: true,
                        ..event(FAILED, "nginx", "i2")
                    }),
                    false,
                    &[],
                ),
                (41, Some(event(CLOSED, "nginx", "i2")), false, &[]),
                (90, None, false, &[]),
            ],
        );
        check(
            PolicyConfig {
                suppress_in_maintenance: false,
                ..PolicyConfig::default()
            },
            vec![(0, quiet(FAILED), false, &["nginx/recovery_failed firing 0"])],
        );
        // Repeats wait for the window's end too.
        check(
            PolicyConfig::default(),
            vec![
                (0, ev(FAILED), false, &["nginx/recovery_failed firing 0"]),
                (240, None, true, &[]),
                (250, None, false, &["nginx/recovery_failed firing 1"]),
            ],
        );
    }

    #[test]
    fn an_alert_carries_everything_the_operator_needs() {
        let mut policy = Policy::new(PolicyConfig {
            host: "web1".into(),
            runbook_url: Some("https://wiki/runbooks/{alertname}?s={service}&h={host}".into()),
            ..PolicyConfig::default()
        });
        let alerts = policy.decide(&event(FAILED, "nginx", "i1"), 1_000);
        let a = &alerts[0];
        assert_eq!(a.severity, Severity::Critical);
        assert_eq!(a.category, Category::ServiceFailure);
        assert_eq!(
            a.runbook_url.as_deref(),
            Some("https://wiki/runbooks/recovery_failed?s=nginx&h=web1")
        );
        assert_eq!(a.summary, "self-healing of nginx failed");
        assert_eq!(a.tried, ["restart: failed"]);
        assert_eq!((a.starts_at_ms, a.ends_at_ms), (1_000, None));
        assert_eq!(
            a.key,
            idempotency_key("nginx", AlertName::RecoveryFailed, "i1", AlertState::Firing, 0)
        );
        let resolved = policy.decide(&event(CLOSED, "nginx", "i1"), 5_000);
        assert_eq!(resolved[0].ends_at_ms, Some(5_000));
        assert_ne!(resolved[0].key, a.key);
    }
}
