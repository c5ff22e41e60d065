//! A generic webhook: the alert as JSON, optionally signed with HMAC-SHA256.

use super::{DeliveryError, Post};
use crate::alert::Alert;
use crate::secret::Secret;
use reliability_os::http::BodyMethod;
use std::path::PathBuf;
use std::time::Duration;

/// The header carrying `sha256=<hex of HMAC-SHA256(secret, body)>`.
pub const SIGNATURE_HEADER: &str = "X-Hx-Signature";

#[derive(Clone, Debug)]
pub struct WebhookChannel {
    pub url: Secret,
    pub host: String,
    pub method: BodyMethod,
    /// Extra headers, as configured (often credentials).
    pub headers: Vec<(String, Secret)>,
    /// Sent as `Authorization: Bearer <token>`.
    pub token: Option<Secret>,
    /// The HMAC key of [`SIGNATURE_HEADER`].
    pub hmac_key: Option<Secret>,
    pub ca_file: Option<PathBuf>,
    pub validate_certs: bool,
    pub timeout: Duration,
}

/// `sha256=<hex>` of `body` under `key`.
pub fn signature(key: &[u8], body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, key);
    let tag = ring::hmac::sign(&key, body);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

impl WebhookChannel {
    pub(crate) fn deliver(&self, alert: &Alert) -> Result<(), DeliveryError> {
        let body = serde_json::to_vec(alert).map_err(|e| DeliveryError {
            channel: "webhook",
            target: self.host.clone(),
            reason: format!("cannot encode the alert: {e}"),
            permanent: true,
        })?;
        let mut headers: Vec<(String, String)> = vec![
            ("Content-Type".into(), "application/json".into()),
            ("Idempotency-Key".into(), alert.key.clone()),
        ];
        if let Some(token) = &self.token {
            headers.push(("Authorization".into(), format!("Bearer {}", token.expose())));
        }
        if let Some(key) = &self.hmac_key {
            headers.push((SIGNATURE_HEADER.into(), signature(key.expose().as_bytes(), &body)));
        }
        headers.extend(self.headers.iter().map(|(k, v)| (k.clone(), v.expose().to_string())));
        Post {
            channel: "webhook",
            target: &self.host,
            url: self.url.expose(),
            secret_url: Some(&self.url),
            method: self.method,
            headers,
            body,
            ca_file: self.ca_file.clone(),
            validate_certs: self.validate_certs,
            timeout: self.timeout,
        }
        .send()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn signature_is_rfc_4231_hmac_sha256() {
        // RFC 4231, test case 2.
        assert_eq!(
            super::signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
