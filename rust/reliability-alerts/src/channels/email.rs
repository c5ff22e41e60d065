//! Email over SMTP (lettre): STARTTLS or implicit TLS, AUTH PLAIN or LOGIN, several
//! recipients, one message per alert whose Message-ID is the alert's idempotency key.
//!
//! TLS is rustls with the certificates `reliability_os::http` trusts (the host's CA bundle)
//! and the channel's `ca_file`; no bundled roots.

use super::DeliveryError;
use crate::alert::Alert;
use crate::secret::Secret;
use lettre::message::header::ContentType;
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, CertificateStore, Tls, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use lettre::{Message, SmtpTransport, Transport};
use reliability_os::http;
use std::path::PathBuf;
use std::time::Duration;

/// How the SMTP connection is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpTls {
    /// STARTTLS, required: no mail is sent in clear.
    Starttls,
    /// STARTTLS when the server offers it (the default without credentials).
    Opportunistic,
    /// TLS from the first byte (port 465).
    Smtps,
    /// Plain text: a relay on localhost.
    None,
}

#[derive(Clone, Debug)]
pub struct EmailChannel {
    pub server: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub ca_file: Option<PathBuf>,
    pub validate_certs: bool,
    pub username: Option<String>,
    pub password: Option<Secret>,
    /// `plain` or `login`; `None`: what the server offers.
    pub mechanism: Option<String>,
    pub from: String,
    pub to: Vec<String>,
    pub subject_prefix: String,
    pub timeout: Duration,
}

impl EmailChannel {
    fn error(&self, reason: String, permanent: bool) -> DeliveryError {
        DeliveryError {
            channel: "email",
            target: format!("{}:{}", self.server, self.port),
            reason,
            permanent,
        }
    }

    /// The message sent for `alert`.
    pub fn message(&self, alert: &Alert) -> Result<Message, DeliveryError> {
        let mailbox = |a: &str| {
            a.parse::<Mailbox>()
                .map_err(|e| self.error(format!("invalid address '{a}': {e}"), true))
        };
        let subject = format!("{} {}", self.subject_prefix, alert.title());
        let mut builder = Message::builder()
            .from(mailbox(&self.from)?)
            .subject(subject.trim())
            .message_id(Some(format!("<{}@hx.reliability>", alert.key)))
            .header(ContentType::TEXT_PLAIN);
        for to in &self.to {
            builder = builder.to(mailbox(to)?);
        }
        builder
            .body(alert.text())
            .map_err(|e| self.error(format!("cannot build the message: {e}"), true))
    }

    fn tls_parameters(&self) -> Result<TlsParameters, DeliveryError> {
        let mut builder = TlsParameters::builder(self.server.clone())
            .certificate_store(CertificateStore::None)
            .dangerous_accept_invalid_certs(!self.validate_certs);
        let mut certs = http::system_ca_certificates();
        if let Some(path) = &self.ca_file {
            certs.extend(http::read_pem_certs(path).map_err(|e| self.error(format!("ca_file: {e}"), false))?);
        }
        for der in certs {
            if let Ok(cert) = Certificate::from_der(der.to_vec()) {
                builder = builder.add_root_certificate(cert);
            }
        }
        builder
            .build_rustls()
            .map_err(|e| self.error(format!("cannot set up TLS: {e}"), false))
    }

    pub(crate) fn deliver(&self, alert: &Alert) -> Result<(), DeliveryError> {
        let message = self.message(alert)?;
        let tls = match self.tls {
            SmtpTls::None => Tls::None,
            SmtpTls::Starttls => Tls::Required(self.tls_parameters()?),
            SmtpTls::Opportunistic => Tls::Opportunistic(self.tls_parameters()?),
            SmtpTls::Smtps => Tls::Wrapper(self.tls_parameters()?),
        };
        let hello = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "localhost".into());
        let mut transport = SmtpTransport::builder_dangerous(&self.server)
            .port(self.port)
            .tls(tls)
            .timeout(Some(self.timeout))
            .hello_name(ClientId::Domain(hello));
        if let (Some(user), Some(password)) = (&self.username, &self.password) {
            transport = transport.credentials(Credentials::new(user.clone(), password.expose().to_string()));
            match self.mechanism.as_deref() {
                Some("plain") => transport = transport.authentication(vec![Mechanism::Plain]),
                Some("login") => transport = transport.authentication(vec![Mechanism::Login]),
                _ => {}
            }
        }
        match transport.build().send(&message) {
            Ok(_) => Ok(()),
            Err(e) => {
                let mut reason = e.to_string();
                if let Some(password) = &self.password {
                    reason = password.scrub(&reason);
                }
                // A 5xx answer (a recipient refused) will not change by itself; a 4xx, a
                // timeout, a refused connection may, and so may refused credentials, which
                // the operator fixes with a reload while the alert waits.
                let auth = e
                    .status()
                    .is_some_and(|c| ["530", "534", "535"].contains(&c.to_string().as_str()));
                Err(self.error(reason, e.is_permanent() && !auth))
            }
        }
    }
}
