//! The daemon's alerts, maintenance windows and audit records, on the scheduler's thread.
//!
//! - Events (a service's checks confirmed failing or ok again, a recovery's outcome with
//!   its ladder level, self-healing giving up) go to the alert policy
//!   (`reliability_alerts::Policy`, pure); the alerts it calls for are handed to the
//!   delivery thread ([`super::deliver`]), which queues them on disk before anything else.
//! - An outage of a service is one incident id (`<service>@<unix ms it began>`) from the
//!   first confirmed failure to all its checks ok again; the id and the policy's state are
//!   kept in `<state_dir>/monitor/alerts.json`, so a restart (even after kill -9) goes on
//!   with the same groups and sends nothing twice.
//! - Maintenance: the configured windows (when `maintenance_windows.enabled`) and the
//!   ad-hoc ones stored in the state dir (`maintenance_window`, the CLI), read at most once
//!   a second. An event of a service a window covers is marked in maintenance (the policy
//!   holds it back when `suppress_alerts_during_maintenance`); the policy's tick is told
//!   whether any window is open, and sends what it held back once none is; a recovery
//!   waits while a window covers its service and `suppress_recovery` says so. A window
//!   opening or closing is logged and recorded in the audit trail.
//! - The audit trail (`<state_dir>/audit`, `reliability_os::audit`): each recovery
//!   started and its outcome, maintenance windows opening and closing, alerts a channel
//!   delivered or refused for good. Audit failures are logged, never fatal.

use super::deliver::{self, Job, Round};
use super::log::Logger;
use super::scheduler::Msg;
use crate::config::Config;
use reliability_alerts::{Alert, Category, Event, EventKind, Policy, PolicyState};
use reliability_core::audit::{Outcome as AuditOutcome, Record};
use reliability_core::maintenance::{self, ActiveWindow, MaintenanceConfig, Window};
use reliability_os::audit;
use reliability_os::state::Store;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::mpsc::Sender;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often the ad-hoc windows are read back from the state dir.
const WINDOWS_EVERY: Duration = Duration::from_secs(1);

/// One open outage of a service, as the alerts see it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incident {
    pub id: String,
    /// What self-healing tried in it, in order.
    pub tried: Vec<String>,
}

/// What `alerts.json` keeps across restarts.
#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
struct Saved {
    policy: PolicyState,
    incidents: BTreeMap<String, Incident>,
}

/// The counters and gauges `/metrics` shows.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub queued: usize,
    pub sent: BTreeMap<String, u64>,
    pub failed: BTreeMap<String, u64>,
    /// The window in force, if any.
    pub window: Option<ActiveWindow>,
}

pub struct Alerting {
    enabled: bool,
    policy: Policy,
    maintenance: MaintenanceConfig,
    store: Store,
    audit_dir: PathBuf,
    saved_path: PathBuf,
    saved: Vec<u8>,
    pub incidents: BTreeMap<String, Incident>,
    windows: Vec<Window>,
    windows_at: Option<Instant>,
    delivery: Option<Sender<Job>>,
    pub stats: Stats,
    log: Arc<Logger>,
}

impl Alerting {
    /// Reads back the saved state and starts the delivery thread (the daemon runs
    /// without alerts, saying so, when the queue cannot be opened).
    pub fn start(config: &Config, report: Sender<Msg>, stop: Arc<AtomicBool>, log: Arc<Logger>) -> Alerting {
        let state_dir = &config.service_monitoring.state_dir;
        let store = Store::new(state_dir);
        let saved_path = state_dir.join("monitor").join("alerts.json");
        let saved: Saved = match std::fs::read(&saved_path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                log.warn(&format!(
                    "cannot read '{}': {e}; alert groups start afresh",
                    saved_path.display()
                ));
                Saved::default()
            }),
            Err(_) => Saved::default(),
        };
        let delivery = store
            .private_dir("alert_queue")
            .map_err(|e| format!("cannot use the alert queue's directory: {e}"))
            .and_then(|dir| deliver::spawn(&config.alerts, dir, report, stop, log.clone()));
        let delivery = match delivery {
            Ok(tx) => Some(tx),
            Err(e) => {
                log.error(&format!("{e}; alerts are not sent"));
                None
            }
        };
        Alerting {
            enabled: config.alerts.enabled,
            policy: Policy::with_state(config.alerts.policy.clone(), saved.policy),
            maintenance: config.maintenance.clone(),
            audit_dir: state_dir.join(audit::SUBDIR),
            store,
            saved_path,
            saved: Vec::new(),
            incidents: saved.incidents,
            windows: Vec::new(),
            windows_at: None,
            delivery,
            stats: Stats::default(),
            log,
        }
    }

    /// A reload: the new policy keeps what the old one remembered.
    pub fn reconfigure(&mut self, config: &Config) {
        self.enabled = config.alerts.enabled;
        self.policy = Policy::with_state(config.alerts.policy.clone(), self.policy.state().clone());
        self.maintenance = config.maintenance.clone();
        self.windows_at = None;
        if let Some(tx) = &self.delivery {
            let _ = tx.send(Job::Reconfigure(Box::new(config.alerts.clone())));
        }
    }

    /// Appends a record to the audit trail; a failure is logged.
    pub fn audit(&self, action: &str, target: &str, outcome: AuditOutcome, reason: Option<String>, details: Value) {
        let record = Record {
            front_end: "daemon".into(),
            action: action.into(),
            target: target.into(),
            reason,
            outcome,
            actor: audit::actor(),
            config_digest: None,
            details,
        };
        if let Err(e) = audit::append(&self.audit_dir, record) {
            self.log.error(&format!("cannot append to the audit trail: {e}"));
        }
    }

    /// Whether a window covers `service` now: by its name, with or without `.service`
    /// (a window may name the unit, the config the service, or the other way round).
    pub fn covered(&self, service: &str, now_ms: u64) -> Option<ActiveWindow> {
        let bare = service.strip_suffix(".service").unwrap_or(service);
        [bare.to_string(), format!("{bare}.service")]
            .iter()
            .find_map(|name| maintenance::active_for(&self.windows, name, now_ms))
    }

    /// Whether a recovery of `service` waits now (a window covers it and suppresses it).
    pub fn recovery_held(&self, service: &str, now_ms: u64) -> Option<ActiveWindow> {
        let bare = service.strip_suffix(".service").unwrap_or(service);
        let suppress = self.maintenance.suppress_recovery(service) || self.maintenance.suppress_recovery(bare);
        if !suppress {
            return None;
        }
        self.covered(service, now_ms)
    }

    /// Tells the policy about `kind` for `service` and queues what it calls for.
    pub fn event(&mut self, kind: EventKind, service: &str, detail: Detail, now_ms: u64) {
        let Some(incident) = self.incidents.get(service).cloned() else {
            return;
        };
        if !self.enabled {
            return;
        }
        let event = Event {
            kind,
            service: service.to_string(),
            check: detail.check,
            value: detail.value,
            category: detail.category,
            incident: incident.id,
            tried: incident.tried,
            summary: detail.summary,
            in_maintenance: self.covered(service, now_ms).is_some(),
        };
        let alerts = self.policy.decide(&event, now_ms);
        self.send(alerts);
    }

    /// An outage of `service` begins (its checks confirmed failing): the incident id.
    pub fn open(&mut self, service: &str, now_ms: u64) {
        self.incidents.entry(service.to_string()).or_insert_with(|| Incident {
            id: format!("{service}@{now_ms}"),
            tried: Vec::new(),
        });
    }

    /// The outage of `service` is over: the policy resolves its groups.
    pub fn close(&mut self, service: &str, now_ms: u64) {
        if !self.incidents.contains_key(service) {
            return;
        }
        self.event(EventKind::IncidentClosed, service, Detail::default(), now_ms);
        self.incidents.remove(service);
    }

    /// Something self-healing tried in the open outage of `service`.
    pub fn tried(&mut self, service: &str, what: String) {
        if let Some(i) = self.incidents.get_mut(service) {
            i.tried.push(what);
        }
    }

    fn send(&mut self, alerts: Vec<Alert>) {
        if alerts.is_empty() {
            return;
        }
        for a in &alerts {
            self.log.info(&format!(
                "alert {} {} for {} ({}): queued",
                a.name.as_str(),
                a.state.as_str(),
                a.service,
                a.key
            ));
        }
        match &self.delivery {
            Some(tx) => {
                let _ = tx.send(Job::Push(alerts));
            }
            None => self.log.warn("alert not queued: the alert queue is not open"),
        }
    }

    /// Once a turn: maintenance windows read back and their changes told, the policy's
    /// tick, and the state saved when it changed. Whether anything changed.
    pub fn tick(&mut self, now: Instant, now_ms: u64) -> bool {
        let mut changed = false;
        if self.windows_at.is_none_or(|at| now.duration_since(at) >= WINDOWS_EVERY) {
            self.windows_at = Some(now);
            let configured: &[Window] = if self.maintenance.enabled {
                &self.maintenance.windows
            } else {
                &[]
            };
            let (windows, errors) = reliability_os::maintenance::windows(&self.store, configured);
            for e in errors {
                self.log.warn(&format!("maintenance window skipped: {e}"));
            }
            self.windows = windows;
            let window = maintenance::active_at(&self.windows, now_ms);
            let before = self.stats.window.as_ref().map(|w| (w.name.clone(), w.kind));
            let after = window.as_ref().map(|w| (w.name.clone(), w.kind));
            if before != after {
                if let Some(old) = self.stats.window.take() {
                    self.window_notice(&old, false);
                }
                if let Some(new) = &window {
                    self.window_notice(new, true);
                }
                self.stats.window = window;
                changed = true;
            }
        }
        if self.enabled {
            let alerts = self.policy.tick(now_ms, self.stats.window.is_some());
            self.send(alerts);
        }
        self.save();
        changed
    }

    fn window_notice(&self, w: &ActiveWindow, opened: bool) {
        let scope = if w.services.is_empty() {
            "the whole host".to_string()
        } else {
            w.services.join(", ")
        };
        let reason = w.reason.clone();
        if opened {
            self.log.info(&format!(
                "maintenance window '{}' ({}) started, until {}, covering {scope}{}",
                w.name,
                w.kind,
                reliability_core::timestamp::rfc3339(w.end_ms),
                reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default()
            ));
        } else {
            self.log
                .info(&format!("maintenance window '{}' ({}) ended", w.name, w.kind));
        }
        self.audit(
            if opened { "maintenance.start" } else { "maintenance.end" },
            &w.name,
            AuditOutcome::Changed,
            reason,
            json!({
                "kind": w.kind,
                "start": reliability_core::timestamp::rfc3339(w.start_ms),
                "end": reliability_core::timestamp::rfc3339(w.end_ms),
                "services": w.services,
                "window_actor": w.actor,
            }),
        );
    }

    /// The delivery thread's round: counters, and deliveries and give-ups in the audit
    /// trail (the idempotency key the receiver got).
    pub fn delivered(&mut self, round: Round) {
        self.stats.queued = round.queued;
        for (channel, n) in round.sent {
            *self.stats.sent.entry(channel).or_default() += n;
        }
        for (channel, n) in round.failed {
            *self.stats.failed.entry(channel).or_default() += n;
        }
        for (channel, key, to) in round.delivered {
            self.audit(
                "alert.delivered",
                &channel,
                AuditOutcome::Changed,
                None,
                json!({ "key": key, "to": to }),
            );
        }
        for (channel, key, why) in round.gave_up {
            self.audit(
                "alert.give_up",
                &channel,
                AuditOutcome::Failed,
                Some(why),
                json!({ "key": key }),
            );
        }
    }

    /// `alerts.json`, when it changed (written atomically, 0600: it names services).
    fn save(&mut self) {
        let saved = Saved {
            policy: self.policy.state().clone(),
            incidents: self.incidents.clone(),
        };
        let Ok(bytes) = serde_json::to_vec(&saved) else { return };
        if bytes == self.saved {
            return;
        }
        let result = self
            .saved_path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .map_err(|e| e.to_string())
            .and_then(|()| {
                reliability_os::state::write_atomic_private(&self.saved_path, &bytes).map_err(|e| e.to_string())
            });
        match result {
            Ok(()) => self.saved = bytes,
            Err(e) => self.log.warn(&format!(
                "cannot save the alert state to '{}': {e}",
                self.saved_path.display()
            )),
        }
    }
}

/// What an event says beyond its kind.
#[derive(Clone, Debug)]
pub struct Detail {
    pub check: Option<String>,
    pub value: Option<String>,
    pub category: Category,
    pub summary: String,
}

impl Default for Detail {
    fn default() -> Self {
        Detail {
            check: None,
            value: None,
            category: Category::ServiceFailure,
            summary: String::new(),
        }
    }
}
