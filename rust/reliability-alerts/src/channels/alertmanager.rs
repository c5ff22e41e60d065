//! Prometheus Alertmanager, through its v2 API: `POST /api/v2/alerts`.
//!
//! Labels identify an alert in Alertmanager, so they hold what stays the same from firing
//! to resolution (alert name, severity, category, host, service, incident); the
//! idempotency key, which differs, is an annotation. A resolution is the same labels with
//! `endsAt` set to when it resolved. A firing alert's `endsAt` is when Alertmanager may
//! consider it resolved if it hears nothing more: twice the repeat interval and five
//! minutes, so a daemon that died does not leave an alert firing for ever.

use super::{DeliveryError, Post};
use crate::alert::{Alert, AlertState};
use crate::secret::Secret;
use reliability_core::timestamp::rfc3339;
use reliability_os::http::BodyMethod;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct AlertmanagerChannel {
    /// The base URL (`http://127.0.0.1:9093`), without a trailing slash.
    pub url: String,
    pub host: String,
    pub generator_url: Option<String>,
    pub token: Option<Secret>,
    pub ca_file: Option<PathBuf>,
    pub validate_certs: bool,
    pub timeout: Duration,
    /// How long a firing alert is valid without being sent again.
    pub firing_ttl_ms: u64,
}

impl AlertmanagerChannel {
    /// The body of `POST /api/v2/alerts` at `now`.
    pub fn payload(&self, alert: &Alert, now: u64) -> Value {
        let mut labels = json!({
            "alertname": alert.name.as_str(),
            "severity": alert.severity.as_str().to_ascii_lowercase(),
            "category": alert.category.as_str(),
            "host": alert.host,
            "service": alert.service,
            "incident": alert.incident,
        });
        if let Some(check) = &alert.check {
            labels["check"] = json!(check);
        }
        let mut annotations = json!({
            "summary": alert.summary,
            "description": alert.text(),
            "idempotency_key": alert.key,
            "sequence": alert.sequence.to_string(),
        });
        if let Some(value) = &alert.value {
            annotations["value"] = json!(value);
        }
        if let Some(url) = &alert.runbook_url {
            annotations["runbook_url"] = json!(url);
        }
        if !alert.tried.is_empty() {
            annotations["self_healing_tried"] = json!(alert.tried.join(", "));
        }
        let ends = match (alert.state, alert.ends_at_ms) {
            (AlertState::Resolved, Some(end)) => end,
            (AlertState::Resolved, None) => now,
            (AlertState::Firing, _) => now.saturating_add(self.firing_ttl_ms),
        };
        let mut item = json!({
            "labels": labels,
            "annotations": annotations,
            "startsAt": rfc3339(alert.starts_at_ms),
            "endsAt": rfc3339(ends.max(alert.starts_at_ms)),
        });
        if let Some(g) = &self.generator_url {
            item["generatorURL"] = json!(g);
        }
        json!([item])
    }

    pub(crate) fn deliver(&self, alert: &Alert, now: u64) -> Result<(), DeliveryError> {
        let mut headers: Vec<(String, String)> = vec![
            ("Content-Type".into(), "application/json".into()),
            ("Idempotency-Key".into(), alert.key.clone()),
        ];
        if let Some(token) = &self.token {
            headers.push(("Authorization".into(), format!("Bearer {}", token.expose())));
        }
        Post {
            channel: "alertmanager",
            target: &self.host,
            url: &format!("{}/api/v2/alerts", self.url),
            secret_url: None,
            method: BodyMethod::Post,
            headers,
            body: self.payload(alert, now).to_string().into_bytes(),
            ca_file: self.ca_file.clone(),
            validate_certs: self.validate_certs,
            timeout: self.timeout,
        }
        .send()
    }
}
