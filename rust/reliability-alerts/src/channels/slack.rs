//! Slack incoming webhooks: a JSON message with a colored attachment per alert.

use super::{DeliveryError, Post};
use crate::alert::{Alert, AlertState, Severity};
use crate::secret::Secret;
use reliability_os::http::BodyMethod;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct SlackChannel {
    /// The webhook URL: its path is the credential.
    pub url: Secret,
    pub host: String,
    /// `#alerts`; `None`: the webhook's own channel.
    pub channel: Option<String>,
    pub username: String,
    pub icon_emoji: Option<String>,
    pub ca_file: Option<PathBuf>,
    pub validate_certs: bool,
    pub timeout: Duration,
}

/// The attachment's color: red, amber, blue, and green for a resolution.
pub fn color(alert: &Alert) -> &'static str {
    match (alert.state, alert.severity) {
        (AlertState::Resolved, _) => "#2eb886",
        (_, Severity::Critical) => "#d50200",
        (_, Severity::Warning) => "#de9e31",
        (_, Severity::Info) => "#439fe0",
    }
}

impl SlackChannel {
    /// The message Slack receives.
    pub fn payload(&self, alert: &Alert) -> Value {
        let title = alert.title();
        let fields: Vec<Value> = alert
            .fields()
            .into_iter()
            .map(|(label, value)| {
                let short = !matches!(label, "Self-healing tried" | "Runbook" | "Idempotency key");
                json!({"title": label, "value": value, "short": short})
            })
            .collect();
        let mut message = json!({
            "text": title,
            "attachments": [{
                "fallback": title,
                "color": color(alert),
                "title": title,
                "title_link": alert.runbook_url,
                "text": alert.summary,
                "fields": fields,
                "footer": "hx.reliability",
                "ts": alert.ends_at_ms.unwrap_or(alert.starts_at_ms) / 1000,
            }],
        });
        if !self.username.is_empty() {
            message["username"] = json!(self.username);
        }
        if let Some(channel) = &self.channel {
            message["channel"] = json!(channel);
        }
        if let Some(icon) = &self.icon_emoji {
            message["icon_emoji"] = json!(icon);
        }
        message
    }

    pub(crate) fn deliver(&self, alert: &Alert) -> Result<(), DeliveryError> {
        Post {
            channel: "slack",
            target: &self.host,
            url: self.url.expose(),
            secret_url: Some(&self.url),
            method: BodyMethod::Post,
            headers: vec![
                ("Content-Type".into(), "application/json".into()),
                ("Idempotency-Key".into(), alert.key.clone()),
            ],
            body: self.payload(alert).to_string().into_bytes(),
            ca_file: self.ca_file.clone(),
            validate_certs: self.validate_certs,
            timeout: self.timeout,
        }
        .send()
    }
}
