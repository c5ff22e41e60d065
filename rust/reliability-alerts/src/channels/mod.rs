//! The channels: how an [`Alert`] reaches people and systems.
//!
//! Each channel renders the alert in its receiver's format and sends it once; retrying is
//! the queue's business ([`crate::queue`]). Every channel sends the alert's idempotency key
//! (the `Idempotency-Key` header over HTTP, a label-free annotation for Alertmanager, the
//! Message-ID of an email), so that a receiver can drop the second copy of a delivery that
//! was in flight when the daemon was killed.
//!
//! A [`DeliveryError`] names the channel and the host it sends to, never a URL's path or
//! query (a Slack webhook's path is its credential) and never a secret.

mod alertmanager;
mod email;
mod slack;
mod webhook;

pub use alertmanager::AlertmanagerChannel;
pub use email::{EmailChannel, SmtpTls};
pub use slack::SlackChannel;
pub use webhook::{signature, WebhookChannel, SIGNATURE_HEADER};

use crate::alert::Alert;
use crate::secret::Secret;
use reliability_os::http::{self, BodyMethod, HttpRequest};
use std::path::PathBuf;
use std::time::Duration;

/// One configured channel.
#[derive(Clone, Debug)]
pub enum Channel {
    Email(EmailChannel),
    Slack(SlackChannel),
    Webhook(WebhookChannel),
    Alertmanager(AlertmanagerChannel),
}

/// Why a delivery failed. `permanent`: sending the same thing again cannot succeed (an
/// address refused, HTTP 400), so the queue sets it aside instead of retrying.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("channel '{channel}' ({target}): {reason}")]
pub struct DeliveryError {
    pub channel: &'static str,
    /// The host (and port) the channel sends to.
    pub target: String,
    pub reason: String,
    pub permanent: bool,
}

impl Channel {
    /// The channel's name, as `alerting.channels` lists it.
    pub fn name(&self) -> &'static str {
        match self {
            Channel::Email(_) => "email",
            Channel::Slack(_) => "slack",
            Channel::Webhook(_) => "webhook",
            Channel::Alertmanager(_) => "alertmanager",
        }
    }

    /// Where it sends to, as messages show it: a host, never a URL's path.
    pub fn target(&self) -> String {
        match self {
            Channel::Email(c) => format!("{}:{}", c.server, c.port),
            Channel::Slack(c) => c.host.clone(),
            Channel::Webhook(c) => c.host.clone(),
            Channel::Alertmanager(c) => c.host.clone(),
        }
    }

    /// Sends `alert` once; `now` (unix ms) is when, for the receivers that want to know
    /// how long a firing alert stays valid.
    pub fn deliver(&self, alert: &Alert, now: u64) -> Result<(), DeliveryError> {
        match self {
            Channel::Email(c) => c.deliver(alert),
            Channel::Slack(c) => c.deliver(alert),
            Channel::Webhook(c) => c.deliver(alert),
            Channel::Alertmanager(c) => c.deliver(alert, now),
        }
    }
}

/// One HTTP delivery, shared by the HTTP channels.
pub(crate) struct Post<'a> {
    pub channel: &'static str,
    pub target: &'a str,
    pub url: &'a str,
    /// The URL is a secret: it is scrubbed from every message.
    pub secret_url: Option<&'a Secret>,
    pub method: BodyMethod,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub ca_file: Option<PathBuf>,
    pub validate_certs: bool,
    pub timeout: Duration,
}

impl Post<'_> {
    pub fn send(self) -> Result<(), DeliveryError> {
        let request = HttpRequest {
            method: http::HttpMethod::Get,
            timeout: self.timeout,
            headers: self.headers,
            ca_file: self.ca_file,
            validate_certs: self.validate_certs,
            follow_redirects: false,
            max_body_bytes: 512,
            ..HttpRequest::new(self.url)
        };
        let probe = http::send(&request, self.method, &self.body);
        let fail = |reason: String, permanent: bool| {
            let reason = match self.secret_url {
                Some(secret) => secret.scrub(&reason),
                None => reason,
            };
            Err(DeliveryError {
                channel: self.channel,
                target: self.target.to_string(),
                reason,
                permanent,
            })
        };
        if let Some(error) = probe.error {
            // A URL refused before sending is never going to work; anything else (refused,
            // reset, timed out, TLS) may be the receiver being down.
            let permanent = error.starts_with("invalid URL");
            return fail(error, permanent);
        }
        let status = probe.status.unwrap_or(0);
        if (200..300).contains(&status) {
            return Ok(());
        }
        let body = probe.body.unwrap_or_default();
        let body: String = body.chars().take(200).filter(|c| !c.is_control()).collect();
        // Retried: timeouts, rate limits and the server's own errors. Not: the request
        // itself is wrong (4xx), or it is sent somewhere else (3xx).
        let retry = matches!(status, 408 | 425 | 429) || status >= 500;
        fail(format!("HTTP {status}: {}", body.trim()), !retry)
    }
}
