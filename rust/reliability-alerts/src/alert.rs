//! What an alert is: the one record every channel renders in its own way.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::fmt;

/// How urgent an alert is. The seed names WARNING and CRITICAL; INFO is for test alerts
/// and for operators who want a kind of alert on record without paging anyone.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub const NAMES: [&'static str; 3] = ["INFO", "WARNING", "CRITICAL"];

    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "INFO",
            Severity::Warning => "WARNING",
            Severity::Critical => "CRITICAL",
        }
    }

    pub fn parse(name: &str) -> Option<Severity> {
        Some(match name {
            "INFO" => Severity::Info,
            "WARNING" => Severity::Warning,
            "CRITICAL" => Severity::Critical,
            _ => return None,
        })
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The seed's error categories, sent as a label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    ServiceFailure,
    PerformanceDegradation,
    ConfigurationError,
    NetworkIssue,
    SecurityViolation,
}

impl Category {
    pub fn as_str(self) -> &'static str {
        match self {
            Category::ServiceFailure => "service_failure",
            Category::PerformanceDegradation => "performance_degradation",
            Category::ConfigurationError => "configuration_error",
            Category::NetworkIssue => "network_issue",
            Category::SecurityViolation => "security_violation",
        }
    }
}

/// The kinds of alert (Alertmanager's `alertname`). The first three are the seed's
/// `alerting.thresholds` keys; all five take a severity there.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertName {
    /// A service (or a check on it) is failing.
    ServiceDown,
    /// A resource or latency check is over its threshold.
    PerformanceDegraded,
    /// Self-healing gave up: the ladder ran out, the breaker opened, or manual
    /// intervention is required.
    RecoveryFailed,
    /// The escalation ladder reached the configured level (a failover, say).
    RecoveryEscalated,
    /// More recoveries of one service in a window than allowed.
    ServiceFlapping,
    /// `reliability-monitor alert test`.
    Test,
}

impl AlertName {
    /// Every name that takes a severity in `alerting.thresholds`, with its default.
    pub const DEFAULTS: [(AlertName, Severity); 5] = [
        (AlertName::ServiceDown, Severity::Critical),
        (AlertName::PerformanceDegraded, Severity::Warning),
        (AlertName::RecoveryFailed, Severity::Critical),
        (AlertName::RecoveryEscalated, Severity::Warning),
        (AlertName::ServiceFlapping, Severity::Warning),
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AlertName::ServiceDown => "service_down",
            AlertName::PerformanceDegraded => "performance_degraded",
            AlertName::RecoveryFailed => "recovery_failed",
            AlertName::RecoveryEscalated => "recovery_escalated",
            AlertName::ServiceFlapping => "service_flapping",
            AlertName::Test => "test",
        }
    }
}

impl fmt::Display for AlertName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertState {
    Firing,
    Resolved,
}

impl AlertState {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        }
    }
}

/// One notification to deliver. Serialized as it is, this is the generic webhook's body
/// and the queue's record.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// The idempotency key ([`idempotency_key`]): the same alert sent twice (a delivery
    /// that was in flight when the daemon was killed) carries the same key, and receivers
    /// drop the second copy.
    pub key: String,
    pub name: AlertName,
    pub state: AlertState,
    pub severity: Severity,
    pub category: Category,
    pub host: String,
    pub service: String,
    pub check: Option<String>,
    /// The value the check saw (`92.5%`, `connection refused`).
    pub value: Option<String>,
    pub incident: String,
    /// One line for people.
    pub summary: String,
    pub runbook_url: Option<String>,
    /// What self-healing already tried, in order (`restart: failed`).
    pub tried: Vec<String>,
    /// 0 for the first notification of a group's incident, then one more per repeat.
    pub sequence: u32,
    /// When the group started firing, unix ms.
    pub starts_at_ms: u64,
    /// When it was resolved, unix ms.
    pub ends_at_ms: Option<u64>,
}

impl Alert {
    /// `[CRITICAL] recovery_failed: nginx on web1` (`RESOLVED` for a resolution).
    pub fn title(&self) -> String {
        let tag = match self.state {
            AlertState::Firing => self.severity.as_str(),
            AlertState::Resolved => "RESOLVED",
        };
        format!("[{tag}] {}: {} on {}", self.name, self.service, self.host)
    }

    /// The alert's fields as `(label, value)` lines, for channels that show text.
    pub fn fields(&self) -> Vec<(&'static str, String)> {
        let mut out = vec![
            ("Severity", self.severity.to_string()),
            ("State", self.state.as_str().to_string()),
            ("Category", self.category.as_str().to_string()),
            ("Host", self.host.clone()),
            ("Service", self.service.clone()),
        ];
        if let Some(check) = &self.check {
            out.push(("Check", check.clone()));
        }
        if let Some(value) = &self.value {
            out.push(("Value", value.clone()));
        }
        out.push(("Incident", self.incident.clone()));
        if !self.tried.is_empty() {
            out.push(("Self-healing tried", self.tried.join(", ")));
        }
        if let Some(url) = &self.runbook_url {
            out.push(("Runbook", url.clone()));
        }
        out.push(("Since", reliability_core::timestamp::rfc3339(self.starts_at_ms)));
        if let Some(end) = self.ends_at_ms {
            out.push(("Resolved at", reliability_core::timestamp::rfc3339(end)));
        }
        out.push(("Idempotency key", self.key.clone()));
        out
    }

    /// The alert as plain text: the summary, then one `Label: value` line per field.
    pub fn text(&self) -> String {
        let mut out = format!("{}\n\n", self.summary);
        for (label, value) in self.fields() {
            out.push_str(&format!("{label}: {value}\n"));
        }
        out
    }
}

/// The idempotency key of one notification: the SHA-256 (first 128 bits, hex) of its
/// group (service and alert name), its incident, its state and its sequence number. Two
/// notifications share a key exactly when they say the same thing.
pub fn idempotency_key(service: &str, name: AlertName, incident: &str, state: AlertState, sequence: u32) -> String {
    let mut hash = Sha256::new();
    for part in [service, name.as_str(), incident, state.as_str(), &sequence.to_string()] {
        // Lengths first, so that ("ab", "c") and ("a", "bc") differ.
        hash.update((part.len() as u64).to_be_bytes());
        hash.update(part.as_bytes());
    }
    hash.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_differ_by_every_part_and_are_stable() {
        let k = |s, n, i, st, q| idempotency_key(s, n, i, st, q);
        let base = k("nginx", AlertName::RecoveryFailed, "i1", AlertState::Firing, 0);
        assert_eq!(base.len(), 32);
        assert_eq!(base, k("nginx", AlertName::RecoveryFailed, "i1", AlertState::Firing, 0));
        for other in [
            k("nginx2", AlertName::RecoveryFailed, "i1", AlertState::Firing, 0),
            k("nginx", AlertName::ServiceDown, "i1", AlertState::Firing, 0),
            k("nginx", AlertName::RecoveryFailed, "i2", AlertState::Firing, 0),
            k("nginx", AlertName::RecoveryFailed, "i1", AlertState::Resolved, 0),
            k("nginx", AlertName::RecoveryFailed, "i1", AlertState::Firing, 1),
            k("nginxi", AlertName::RecoveryFailed, "1", AlertState::Firing, 0),
        ] {
            assert_ne!(base, other);
        }
        // Pinned: a key that changed between versions would resend everything queued.
        assert_eq!(
            k("web", AlertName::ServiceDown, "inc-1", AlertState::Firing, 0),
            "30dc0de5d6090bf54f130e681b670cf3"
        );
    }
}
