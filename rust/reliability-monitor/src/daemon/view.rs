//! What the daemon knows after its last results, and the two ways it is served: the
//! `/health` JSON and the `/metrics` Prometheus text (exposition format 0.0.4). The
//! scheduler hands each new [`View`] over in a [`Snapshot`]; each body is rendered from
//! it once, by the first request that wants it (or the save of `last.json`), never again
//! for that snapshot. A cycle nobody asks about costs no rendering: with a scrape every
//! 15 s and a check cycle every second, that was most of the scheduler's CPU.

use super::debounce::State;
use super::engines::Figures;
use reliability_core::breaker::State as BreakerState;
use reliability_core::check::{CheckResult, Overall, Status};
use reliability_core::incident::Stats;
use reliability_core::maintenance::ActiveWindow;
use reliability_core::timestamp;
use serde::Serialize;
#[cfg(test)]
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::{Arc, OnceLock};

/// One check entry of the configuration and what its last run gave.
#[derive(Clone, Debug)]
pub struct CheckView {
    /// The entry's path in the file: `health_checks.ports[0]`.
    pub entry: String,
    pub service: Option<String>,
    pub state: State,
    /// Failed / ok results in a row.
    pub failures: u32,
    pub successes: u32,
    /// The last run did not finish within its deadline.
    pub timed_out: bool,
    /// When the last run ended (unix ms).
    pub last_run_ms: Option<u64>,
    /// Shared with the scheduler's record of the run: a snapshot copies no result.
    pub results: Arc<[CheckResult]>,
    pub runs: u64,
    pub timeouts: u64,
}

/// A service with a `recovery` entry.
#[derive(Clone, Debug)]
pub struct ServiceView {
    pub service: String,
    pub recovering: bool,
    pub attempts: u32,
    pub figures: Figures,
}

#[derive(Clone, Debug, Default)]
pub struct View {
    /// Every check has a result (or a timeout) of its first run.
    pub ready: bool,
    pub checks: Vec<CheckView>,
    pub services: Vec<ServiceView>,
    /// Alert delivery counters and the maintenance window in force.
    pub alerts: super::alerting::Stats,
    /// Unix ms of the last change.
    pub updated_ms: u64,
}

/// What the endpoints serve: the view of one moment, its bodies rendered on first use.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub ready: bool,
    pub health_code: u16,
    /// `STATUS=` text for systemd.
    pub status_line: String,
    view: View,
    health_body: OnceLock<Vec<u8>>,
    metrics_body: OnceLock<Vec<u8>>,
}

impl Snapshot {
    /// The `/health` JSON (also `last.json`).
    pub fn health_body(&self) -> &[u8] {
        self.health_body.get_or_init(|| {
            let mut body = serde_json::to_vec_pretty(&self.view.health()).unwrap_or_default();
            body.push(b'\n');
            body
        })
    }

    /// The `/metrics` text.
    pub fn metrics_body(&self) -> &[u8] {
        self.metrics_body.get_or_init(|| self.view.metrics().into_bytes())
    }
}

/// The `/health` document, borrowed from a [`View`] and serialized without a copy of it.
/// Fields are in alphabetical order, as they were when the document was a JSON value.
#[derive(Serialize)]
pub struct Health<'a> {
    alerts: AlertCounts<'a>,
    checks: Vec<HealthCheck<'a>>,
    maintenance: Maintenance<'a>,
    ready: bool,
    services: Vec<HealthService<'a>>,
    status: &'static str,
    updated: String,
}

#[derive(Serialize)]
struct AlertCounts<'a> {
    failed: &'a BTreeMap<String, u64>,
    queued: usize,
    sent: &'a BTreeMap<String, u64>,
}

#[derive(Serialize)]
struct Maintenance<'a> {
    active: bool,
    window: Option<&'a ActiveWindow>,
}

#[derive(Serialize)]
struct HealthCheck<'a> {
    consecutive_failures: u32,
    consecutive_successes: u32,
    entry: &'a str,
    last_run: Option<String>,
    results: &'a [CheckResult],
    runs: u64,
    service: Option<&'a str>,
    state: &'static str,
    timed_out: bool,
    timeouts: u64,
}

impl<'a> From<&'a CheckView> for HealthCheck<'a> {
    fn from(c: &'a CheckView) -> Self {
        HealthCheck {
            consecutive_failures: c.failures,
            consecutive_successes: c.successes,
            entry: &c.entry,
            last_run: c.last_run_ms.map(timestamp::rfc3339),
            results: &c.results,
            runs: c.runs,
            service: c.service.as_deref(),
            state: c.state.as_str(),
            timed_out: c.timed_out,
            timeouts: c.timeouts,
        }
    }
}

#[derive(Serialize)]
struct HealthService<'a> {
    attempts: u32,
    breaker: Option<Breaker<'a>>,
    open_incident: bool,
    recoveries: &'a BTreeMap<String, u64>,
    recovering: bool,
    service: &'a str,
    stats: Option<&'a Stats>,
}

#[derive(Serialize)]
struct Breaker<'a> {
    name: &'a str,
    state: &'static str,
}

impl<'a> From<&'a ServiceView> for HealthService<'a> {
    fn from(s: &'a ServiceView) -> Self {
        HealthService {
            attempts: s.attempts,
            breaker: s.figures.breaker.as_ref().map(|(name, state)| Breaker {
                name,
                state: state.as_str(),
            }),
            open_incident: s.figures.open_incident,
            recoveries: &s.figures.recoveries,
            recovering: s.recovering,
            service: &s.service,
            stats: s.figures.stats.as_ref(),
        }
    }
}

impl View {
    /// Unhealthy when a check is confirmed failing; degraded when a last result is not
    /// ok (a warning, or a failure not yet confirmed); else healthy.
    pub fn overall(&self) -> Overall {
        if self.checks.iter().any(|c| c.state == State::Failing) {
            Overall::Unhealthy
        } else if self
            .checks
            .iter()
            .any(|c| c.timed_out || c.results.iter().any(|r| r.status != Status::Ok))
        {
            Overall::Degraded
        } else {
            Overall::Healthy
        }
    }

    pub fn snapshot(self) -> Snapshot {
        let overall = self.overall();
        let health_code = if !self.ready || overall == Overall::Unhealthy {
            503
        } else {
            200
        };
        Snapshot {
            ready: self.ready,
            health_code,
            status_line: self.status_line(),
            view: self,
            health_body: OnceLock::new(),
            metrics_body: OnceLock::new(),
        }
    }

    fn status_name(&self) -> &'static str {
        if !self.ready {
            return "starting";
        }
        match self.overall() {
            Overall::Healthy => "healthy",
            Overall::Degraded => "degraded",
            Overall::Unhealthy => "unhealthy",
        }
    }

    pub fn status_line(&self) -> String {
        let failing = self.checks.iter().filter(|c| c.state == State::Failing).count();
        let recovering = self.services.iter().filter(|s| s.recovering).count();
        let mut line = format!(
            "{}: {} checks, {failing} failing",
            self.status_name(),
            self.checks.len()
        );
        if recovering > 0 {
            let _ = write!(line, ", {recovering} recovering");
        }
        line
    }

    /// The `/health` document.
    pub fn health(&self) -> Health<'_> {
        Health {
            alerts: AlertCounts {
                failed: &self.alerts.failed,
                queued: self.alerts.queued,
                sent: &self.alerts.sent,
            },
            checks: self.checks.iter().map(HealthCheck::from).collect(),
            maintenance: Maintenance {
                active: self.alerts.window.is_some(),
                window: self.alerts.window.as_ref(),
            },
            ready: self.ready,
            services: self.services.iter().map(HealthService::from).collect(),
            status: self.status_name(),
            updated: timestamp::rfc3339(self.updated_ms),
        }
    }

    /// [`View::health`] as a JSON value.
    #[cfg(test)]
    pub fn health_json(&self) -> Value {
        serde_json::to_value(self.health()).unwrap_or_default()
    }

    /// The Prometheus text exposition format 0.0.4.
    pub fn metrics(&self) -> String {
        let mut m = Metrics::default();
        m.family(
            "reliability_monitor_ready",
            "gauge",
            "1 once every check has a first result.",
        );
        m.sample("reliability_monitor_ready", &[], f64::from(u8::from(self.ready)));

        let result_labels = |c: &CheckView, r: &CheckResult| {
            vec![
                ("entry", c.entry.clone()),
                ("check", r.name.clone()),
                ("kind", r.kind.clone()),
                ("service", c.service.clone().unwrap_or_default()),
            ]
        };
        m.family(
            "reliability_monitor_check_status",
            "gauge",
            "Last result of a check: 0 ok, 1 warning, 2 critical, 3 unknown.",
        );
        for c in &self.checks {
            for r in c.results.iter() {
                let v = f64::from(r.status.exit_code());
                m.sample("reliability_monitor_check_status", &result_labels(c, r), v);
            }
        }
        m.family(
            "reliability_monitor_check_value",
            "gauge",
            "The value a check measured, in the unit of its unit label.",
        );
        for c in &self.checks {
            for r in c.results.iter() {
                if let Some(v) = r.value.filter(|v| v.is_finite()) {
                    let mut labels = result_labels(c, r);
                    labels.push(("unit", r.unit.clone().unwrap_or_default()));
                    m.sample("reliability_monitor_check_value", &labels, v);
                }
            }
        }
        m.family(
            "reliability_monitor_check_latency_seconds",
            "gauge",
            "How long the last run of a check took.",
        );
        for c in &self.checks {
            for r in c.results.iter() {
                m.sample(
                    "reliability_monitor_check_latency_seconds",
                    &result_labels(c, r),
                    // Microseconds are what the engines measure; no float noise past them.
                    (r.duration_ms * 1000.0).round() / 1e6,
                );
            }
        }
        let entry_labels = |c: &CheckView| {
            vec![
                ("entry", c.entry.clone()),
                ("service", c.service.clone().unwrap_or_default()),
            ]
        };
        m.family(
            "reliability_monitor_check_failing",
            "gauge",
            "1 when a check entry is confirmed failing (after consecutive_failures).",
        );
        for c in &self.checks {
            let v = f64::from(u8::from(c.state == State::Failing));
            m.sample("reliability_monitor_check_failing", &entry_labels(c), v);
        }
        m.family(
            "reliability_monitor_check_runs_total",
            "counter",
            "Runs of a check entry since the daemon started.",
        );
        for c in &self.checks {
            m.sample("reliability_monitor_check_runs_total", &entry_labels(c), c.runs as f64);
        }
        m.family(
            "reliability_monitor_check_timeouts_total",
            "counter",
            "Runs of a check entry that did not finish within their deadline.",
        );
        for c in &self.checks {
            m.sample(
                "reliability_monitor_check_timeouts_total",
                &entry_labels(c),
                c.timeouts as f64,
            );
        }

        m.family(
            "reliability_monitor_breaker_state",
            "gauge",
            "Circuit breaker state: 0 closed, 1 half-open, 2 open.",
        );
        for s in &self.services {
            if let Some((name, state)) = &s.figures.breaker {
                let v = match state {
                    BreakerState::Closed => 0.0,
                    BreakerState::HalfOpen => 1.0,
                    BreakerState::Open => 2.0,
                };
                let labels = [("breaker", name.clone()), ("service", s.service.clone())];
                m.sample("reliability_monitor_breaker_state", &labels, v);
            }
        }
        let service = |s: &ServiceView| vec![("service", s.service.clone())];
        type Stat = fn(&reliability_core::incident::Stats) -> Option<f64>;
        let stats: [(&str, &str, Stat); 3] = [
            (
                "reliability_monitor_service_availability_ratio",
                "Share of the stats window the service was not in an incident.",
                |st| Some(st.availability_percent / 100.0),
            ),
            (
                "reliability_monitor_service_mttr_seconds",
                "Mean time to recover over the stats window.",
                |st| st.mttr_s,
            ),
            (
                "reliability_monitor_service_mtbf_seconds",
                "Mean time between failures over the stats window.",
                |st| st.mtbf_s,
            ),
        ];
        for (name, help, get) in stats {
            m.family(name, "gauge", help);
            for s in &self.services {
                if let Some(v) = s.figures.stats.as_ref().and_then(get) {
                    m.sample(name, &service(s), v);
                }
            }
        }
        m.family(
            "reliability_monitor_service_open_incident",
            "gauge",
            "1 while an outage of the service is open.",
        );
        for s in &self.services {
            let v = f64::from(u8::from(s.figures.open_incident));
            m.sample("reliability_monitor_service_open_incident", &service(s), v);
        }
        m.family(
            "reliability_monitor_recovery_attempts",
            "gauge",
            "Recovery attempts inside the stats window, by outcome (from the incident log).",
        );
        for s in &self.services {
            for (outcome, n) in &s.figures.recoveries {
                let labels = [("service", s.service.clone()), ("outcome", outcome.clone())];
                m.sample("reliability_monitor_recovery_attempts", &labels, *n as f64);
            }
        }
        m.family(
            "reliability_monitor_maintenance_active",
            "gauge",
            "1 while a maintenance window is in force (configured or ad hoc).",
        );
        let active = f64::from(u8::from(self.alerts.window.is_some()));
        m.sample("reliability_monitor_maintenance_active", &[], active);
        m.family(
            "reliability_monitor_alerts_queued",
            "gauge",
            "Alert deliveries waiting in the on-disk queue (one per alert and channel).",
        );
        m.sample("reliability_monitor_alerts_queued", &[], self.alerts.queued as f64);
        m.family(
            "reliability_monitor_alerts_sent_total",
            "counter",
            "Alerts a channel confirmed, since the daemon started.",
        );
        for (channel, n) in &self.alerts.sent {
            m.sample(
                "reliability_monitor_alerts_sent_total",
                &[("channel", channel.clone())],
                *n as f64,
            );
        }
        m.family(
            "reliability_monitor_alerts_failed_total",
            "counter",
            "Alert deliveries that failed (retried or refused), since the daemon started.",
        );
        for (channel, n) in &self.alerts.failed {
            m.sample(
                "reliability_monitor_alerts_failed_total",
                &[("channel", channel.clone())],
                *n as f64,
            );
        }
        m.out
    }
}

#[derive(Default)]
struct Metrics {
    out: String,
}

impl Metrics {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, String)], value: f64) {
        self.out.push_str(name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {}", number(value));
    }
}

/// A label value as the format writes it: `\`, `"` and newline escaped.
pub fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// HELP text: `\` and newline escaped.
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }

    fn view(state: State, status: Status) -> View {
        let mut r = CheckResult::state("web \"1\"", "port", status, "m", Duration::from_millis(3));
        r.value = Some(1.5);
        View {
            ready: true,
            checks: vec![CheckView {
                entry: "health_checks.ports[0]".into(),
                service: None,
                state,
                failures: 0,
                successes: 1,
                timed_out: false,
                last_run_ms: Some(0),
                results: Arc::from([r]),
                runs: 2,
                timeouts: 0,
            }],
            services: Vec::new(),
            alerts: Default::default(),
            updated_ms: 0,
        }
    }

    #[test]
    fn alert_and_maintenance_metrics() {
        let mut v = view(State::Ok, Status::Ok);
        let text = v.metrics();
        assert!(text.contains("reliability_monitor_maintenance_active 0\n"), "{text}");
        assert!(text.contains("reliability_monitor_alerts_queued 0\n"), "{text}");
        assert!(
            text.contains("# TYPE reliability_monitor_alerts_sent_total counter\n"),
            "{text}"
        );
        v.alerts.queued = 3;
        v.alerts.sent.insert("webhook".into(), 2);
        v.alerts.failed.insert("email".into(), 1);
        v.alerts.window = Some(reliability_core::maintenance::ActiveWindow {
            name: "deploy".into(),
            kind: "ad_hoc",
            start_ms: 0,
            end_ms: 1,
            services: Vec::new(),
            reason: Some("kernel".into()),
            actor: Some("alice".into()),
        });
        let text = v.metrics();
        for line in [
            "reliability_monitor_maintenance_active 1\n",
            "reliability_monitor_alerts_queued 3\n",
            "reliability_monitor_alerts_sent_total{channel=\"webhook\"} 2\n",
            "reliability_monitor_alerts_failed_total{channel=\"email\"} 1\n",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
        let health = v.health_json();
        assert_eq!(health["maintenance"]["active"], true);
        assert_eq!(health["maintenance"]["window"]["name"], "deploy");
        assert_eq!(health["alerts"]["queued"], 3);
    }

    #[test]
    fn health_codes_follow_the_confirmed_state() {
        // (state, last status, code, status)
        for (state, status, code, name) in [
            (State::Ok, Status::Ok, 200, "healthy"),
            (State::Ok, Status::Critical, 200, "degraded"),
            (State::Ok, Status::Warning, 200, "degraded"),
            (State::Failing, Status::Critical, 503, "unhealthy"),
        ] {
            let v = view(state, status);
            let name_of_view = v.status_name();
            let s = v.snapshot();
            assert_eq!((s.health_code, name_of_view), (code, name), "{state:?} {status:?}");
            assert!(s.status_line.starts_with(name), "{}", s.status_line);
        }
        let mut v = view(State::Ok, Status::Ok);
        v.ready = false;
        assert_eq!(v.snapshot().health_code, 503);
    }

    /// A snapshot renders nothing until a body is asked for, then each body once.
    #[test]
    fn bodies_are_rendered_on_first_use_once() {
        let s = view(State::Ok, Status::Warning).snapshot();
        assert!(s.health_body.get().is_none() && s.metrics_body.get().is_none());
        let metrics = s.metrics_body().as_ptr();
        assert!(s.health_body.get().is_none(), "only the body asked for");
        assert_eq!(s.metrics_body().as_ptr(), metrics, "rendered once");
        assert!(std::str::from_utf8(s.health_body()).is_ok_and(|b| b.contains("\"status\": \"degraded\"")));
    }

    #[test]
    fn metrics_lines() {
        let text = view(State::Ok, Status::Warning).metrics();
        assert!(text.contains(
            "reliability_monitor_check_status{entry=\"health_checks.ports[0]\",check=\"web \\\"1\\\"\",kind=\"port\",service=\"\"} 1\n"
        ), "{text}");
        assert!(text.contains("# TYPE reliability_monitor_check_runs_total counter\n"));
        assert!(text.contains("reliability_monitor_check_latency_seconds{"));
        assert!(text.contains(",unit=\"\"} 1.5\n"), "{text}");
    }
}
