//! Each channel against a real receiver on loopback: a Slack-like and a webhook receiver
//! (std TcpListener threads), a real Alertmanager (Debian's prometheus-alertmanager), a
//! real SMTP server with STARTTLS and AUTH (aiosmtpd).
#![allow(clippy::unwrap_used)]

mod support;

use reliability_alerts::channels::signature;
use reliability_alerts::{AlertState, Outcome};
use reliability_os::http::{probe_http, HttpRequest};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::{alerts, available, config, free_port, Receiver};

const NOW: u64 = 1_800_000_100_000;

#[test]
fn slack_receives_text_and_a_colored_attachment() {
    let receiver = Receiver::start(|_| ("200 OK", "ok".into()));
    let url = format!("http://{}/services/T000/B000/SECRETTOKEN", receiver.addr);
    let c = config(&format!(
        "  slack: {{webhook_url: '{url}', channel: '#alerts', username: Reliability Monitor, icon_emoji: ':rotating_light:'}}\n"
    ));
    let alert = &alerts(1)[0];
    let channel = c.channel("slack").unwrap();
    channel.deliver(alert, NOW).unwrap();
    let seen = receiver.seen.lock().unwrap();
    let request = &seen.requests[0];
    assert_eq!(request.line, "POST /services/T000/B000/SECRETTOKEN HTTP/1.1");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("idempotency-key"), Some(alert.key.as_str()));
    let body = request.json();
    assert_eq!(body["text"], "[CRITICAL] recovery_failed: svc0 on web1");
    assert_eq!(body["channel"], "#alerts");
    assert_eq!(body["username"], "Reliability Monitor");
    assert_eq!(body["icon_emoji"], ":rotating_light:");
    let attachment = &body["attachments"][0];
    assert_eq!(attachment["color"], "#d50200");
    assert_eq!(attachment["text"], "self-healing of svc0 failed");
    assert_eq!(attachment["title_link"], "https://runbooks.example/recovery_failed");
    let field = |name: &str| {
        attachment["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["title"] == name)
            .map(|f| f["value"].as_str().unwrap().to_string())
    };
    assert_eq!(field("Category").as_deref(), Some("service_failure"));
    assert_eq!(field("Host").as_deref(), Some("web1"));
    assert_eq!(field("Check").as_deref(), Some("http"));
    assert_eq!(field("Value").as_deref(), Some("HTTP 503"));
    assert_eq!(field("Incident").as_deref(), Some("inc-0"));
    assert_eq!(
        field("Self-healing tried").as_deref(),
        Some("restart: failed, reload: failed")
    );
    assert_eq!(field("Idempotency key").as_deref(), Some(alert.key.as_str()));
}

#[test]
fn slack_errors_name_the_host_never_the_webhook_path() {
    let receiver = Receiver::start(|_| ("500 Internal Server Error", "boom".into()));
    let url = format!("http://{}/services/T000/B000/SECRETTOKEN", receiver.addr);
    let c = config(&format!("  slack: {{webhook_url: '{url}'}}\n"));
    let channel = c.channel("slack").unwrap();
    let err = channel.deliver(&alerts(1)[0], NOW).unwrap_err();
    assert_eq!(err.to_string(), "channel 'slack' (127.0.0.1): HTTP 500: boom");
    assert!(!err.permanent);
    // Nothing down: refused connection, still no path.
    drop(receiver);
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/services/T000/B000/SECRETTOKEN");
    let c = config(&format!("  slack: {{webhook_url: '{url}'}}\n"));
    let err = c.channel("slack").unwrap().deliver(&alerts(1)[0], NOW).unwrap_err();
    assert_eq!(err.to_string(), "channel 'slack' (127.0.0.1): connection refused");
    for text in [format!("{err}"), format!("{err:?}"), format!("{c:?}")] {
        assert!(!text.contains("SECRETTOKEN"), "{text}");
    }
}

#[test]
fn webhook_sends_the_alert_signed_with_hmac_sha256() {
    let receiver = Receiver::start(|r| {
        // The receiver's side of the contract: verify the signature over the raw body.
        let expected = signature(b"s3cret-key", &r.body);
        match r.header("x-hx-signature") {
            Some(got) if got == expected => ("202 Accepted", String::new()),
            _ => ("401 Unauthorized", "bad signature".into()),
        }
    });
    std::env::set_var("HX_TEST_WEBHOOK_TOKEN", "tok-123");
    let c = config(&format!(
        "  webhook: {{url: 'http://{}/hooks/alerts', method: PUT, secret: s3cret-key, token_env: HX_TEST_WEBHOOK_TOKEN, headers: {{X-Team: ops}}}}\n",
        receiver.addr
    ));
    let channel = c.channel("webhook").unwrap();
    let all = alerts(2);
    channel.deliver(&all[0], NOW).unwrap();
    let seen = receiver.seen.lock().unwrap();
    let request = &seen.requests[0];
    assert_eq!(request.line, "PUT /hooks/alerts HTTP/1.1");
    assert_eq!(request.header("authorization"), Some("Bearer tok-123"));
    assert_eq!(request.header("x-team"), Some("ops"));
    assert_eq!(request.header("idempotency-key"), Some(all[0].key.as_str()));
    let body: reliability_alerts::Alert = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(body, all[0]);
    drop(seen);

    // A wrong key is refused by the receiver: 401 is permanent, not retried.
    let c = config(&format!(
        "  webhook: {{url: 'http://{}/hooks/alerts', secret: other-key}}\n",
        receiver.addr
    ));
    let err = c.channel("webhook").unwrap().deliver(&all[1], NOW).unwrap_err();
    assert_eq!(
        err.to_string(),
        "channel 'webhook' (127.0.0.1): HTTP 401: bad signature"
    );
    assert!(err.permanent);
}

/// The venv's Python with aiosmtpd: `$HX_PYTHON`, the workspace's `.venv`, `python3`.
fn python_with_aiosmtpd() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let candidates = std::env::var_os("HX_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain([root.join(".venv/bin/python3"), PathBuf::from("python3")]);
    candidates.into_iter().find(|p| {
        Command::new(p)
            .args(["-c", "import aiosmtpd"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// aiosmtpd on `port` with STARTTLS required and AUTH (user `alerts`, password
/// `pa55word`), writing each message it accepts as JSON into `spool`.
struct Smtp {
    child: Child,
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn smtp_server(python: &Path, dir: &Path, port: u16) -> (Smtp, PathBuf) {
    let (cert, key) = test_support::certificate_pem();
    std::fs::write(dir.join("cert.pem"), &cert).unwrap();
    std::fs::write(dir.join("key.pem"), key).unwrap();
    let spool = dir.join("spool");
    std::fs::create_dir(&spool).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/smtp_receiver.py");
    let mut child = Command::new(python)
        .arg(script)
        .arg(port.to_string())
        .arg(dir.join("cert.pem"))
        .arg(dir.join("key.pem"))
        .arg(&spool)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        // aiosmtpd's own deprecation notices; read it when the server does not start.
        .stderr(std::fs::File::create(dir.join("smtp.log")).unwrap())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "ready", "aiosmtpd did not start");
    (Smtp { child }, dir.join("cert.pem"))
}

fn spooled(spool: &Path) -> Vec<serde_json::Value> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(spool)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
        .collect()
}

#[test]
fn email_goes_through_starttls_and_auth_to_every_recipient() {
    let Some(python) = python_with_aiosmtpd() else {
        available("aiosmtpd (Python)", false);
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let (_server, ca_file) = smtp_server(&python, dir.path(), port);
    let spool = dir.path().join("spool");
    std::fs::write(dir.path().join("password"), "pa55word\n").unwrap();
    let email = |mechanism: &str, password: &str| {
        config(&format!(
            "  email: {{smtp_server: 127.0.0.1, smtp_port: {port}, tls: starttls, ca_file: '{}', \
             username: alerts, {password}, auth_mechanism: {mechanism}, \
             from_address: 'Reliability <monitor@example.com>', \
             to_addresses: [ops@example.com, 'On Call <oncall@example.com>']}}\n",
            ca_file.display()
        ))
    };
    let all = alerts(2);
    for (i, mechanism) in ["plain", "login"].iter().enumerate() {
        let password = format!("password_file: '{}'", dir.path().join("password").display());
        let c = email(mechanism, &password);
        c.channel("email").unwrap().deliver(&all[i], NOW).unwrap();
    }
    let messages = spooled(&spool);
    assert_eq!(messages.len(), 2, "{messages:?}");
    for (i, (message, mechanism)) in messages.iter().zip(["PLAIN", "LOGIN"]).enumerate() {
        assert_eq!(message["mail_from"], "monitor@example.com");
        assert_eq!(
            message["rcpt_tos"],
            serde_json::json!(["ops@example.com", "oncall@example.com"])
        );
        assert_eq!(message["tls"], true, "STARTTLS was used");
        assert_eq!(message["auth"], mechanism);
        let data = message["data"].as_str().unwrap();
        let alert = &all[i];
        assert!(
            data.contains(&format!(
                "Subject: [hx.reliability] [CRITICAL] recovery_failed: svc{i} on web1"
            )),
            "{data}"
        );
        assert!(
            data.contains(&format!("Message-ID: <{}@hx.reliability>", alert.key)),
            "{data}"
        );
        for line in [
            "Severity: CRITICAL".to_string(),
            "Category: service_failure".into(),
            "Host: web1".into(),
            format!("Service: svc{i}"),
            "Check: http".into(),
            "Value: HTTP 503".into(),
            format!("Incident: inc-{i}"),
            "Self-healing tried: restart: failed, reload: failed".into(),
            "Runbook: https://runbooks.example/recovery_failed".into(),
        ] {
            assert!(data.contains(&line), "{line} not in {data}");
        }
    }

    // A wrong password: refused, retried (an operator fixes it with a reload), and the
    // password is in no message.
    let c = email("plain", "password: wrong-pa55");
    let err = c.channel("email").unwrap().deliver(&all[0], NOW).unwrap_err();
    assert!(err.reason.contains("535"), "{err}");
    assert!(!err.permanent, "{err}");
    assert!(
        err.to_string()
            .starts_with(&format!("channel 'email' (127.0.0.1:{port}): ")),
        "{err}"
    );
    for text in [err.to_string(), format!("{err:?}"), format!("{c:?}")] {
        assert!(!text.contains("wrong-pa55"), "{text}");
    }
    assert_eq!(spooled(&spool).len(), 2);

    // The test alert of `reliability-monitor alert test --channel email`.
    let password = format!("password_file: '{}'", dir.path().join("password").display());
    let report = email("plain", &password).send_test("email", NOW).unwrap();
    assert_eq!(report.outcome, Outcome::Delivered);
    assert_eq!(report.target, format!("127.0.0.1:{port}"));
    let data = spooled(&spool)[2]["data"].as_str().unwrap().to_string();
    assert!(data.contains("[INFO] test: alert-test on web1"), "{data}");
}

/// Debian's Alertmanager on a free loopback port with its own storage, stopped on drop.
struct Alertmanager {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn alertmanager() -> Option<Alertmanager> {
    let binary = ["/usr/bin/prometheus-alertmanager", "/usr/bin/alertmanager"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    if !available("prometheus-alertmanager (Debian package)", binary.is_some()) {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("alertmanager.yml");
    std::fs::write(
        &config,
        "route:\n  receiver: blackhole\nreceivers:\n  - name: blackhole\n",
    )
    .unwrap();
    let port = free_port();
    let child = Command::new(binary?)
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.path={}", dir.path().join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--cluster.listen-address=")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let am = Alertmanager { child, url, _dir: dir };
    let started = Instant::now();
    while probe_http(&HttpRequest::new(format!("{}/-/ready", am.url))).status != Some(200) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "alertmanager did not get ready"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(am)
}

fn amtool(am: &Alertmanager, incident: &str) -> serde_json::Value {
    let out = Command::new("amtool")
        .args(["alert", "query", "-o", "json"])
        .arg(format!("--alertmanager.url={}", am.url))
        .arg(format!("incident={incident}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn api_alerts(am: &Alertmanager) -> serde_json::Value {
    let probe = probe_http(&HttpRequest::new(format!("{}/api/v2/alerts", am.url)));
    assert_eq!(probe.status, Some(200), "{probe:?}");
    serde_json::from_str(probe.body.as_deref().unwrap()).unwrap()
}

#[test]
fn alertmanager_shows_the_alert_then_its_resolution() {
    let Some(am) = alertmanager() else { return };
    let c = config(&format!(
        "  alertmanager: {{url: '{}', generator_url: 'http://web1:9100/status'}}\n",
        am.url
    ));
    let channel = c.channel("alertmanager").unwrap();
    let mut policy = reliability_alerts::Policy::new(c.policy.clone());
    let event = |kind| reliability_alerts::Event {
        kind,
        service: "nginx".into(),
        check: Some("http".into()),
        value: Some("HTTP 503".into()),
        category: reliability_alerts::Category::ServiceFailure,
        incident: "inc-am-1".into(),
        tried: vec!["restart: failed".into()],
        summary: String::new(),
        in_maintenance: false,
    };
    let now = reliability_os::clock::now_ms();
    let firing = policy.decide(&event(reliability_alerts::EventKind::HealingFailed), now);
    channel.deliver(&firing[0], now).unwrap();

    let found = amtool(&am, "inc-am-1");
    let alert = &found.as_array().unwrap()[0];
    assert_eq!(alert["labels"]["alertname"], "recovery_failed");
    assert_eq!(alert["labels"]["severity"], "critical");
    assert_eq!(alert["labels"]["category"], "service_failure");
    assert_eq!(alert["labels"]["service"], "nginx");
    assert_eq!(alert["labels"]["host"], "web1");
    assert_eq!(alert["labels"]["check"], "http");
    assert_eq!(alert["annotations"]["idempotency_key"], firing[0].key.as_str());
    assert_eq!(alert["annotations"]["value"], "HTTP 503");
    assert_eq!(alert["annotations"]["self_healing_tried"], "restart: failed");
    assert_eq!(alert["generatorURL"], "http://web1:9100/status");
    assert_eq!(alert["status"]["state"], "active");

    std::thread::sleep(Duration::from_millis(20));
    let later = reliability_os::clock::now_ms();
    let resolved = policy.decide(&event(reliability_alerts::EventKind::IncidentClosed), later);
    assert_eq!(resolved[0].state, AlertState::Resolved);
    channel.deliver(&resolved[0], later).unwrap();
    // Alertmanager took it as a resolution (its own count), and no longer lists it.
    let metrics = probe_http(&HttpRequest {
        max_body_bytes: 4 << 20,
        ..HttpRequest::new(format!("{}/metrics", am.url))
    });
    let metrics = metrics.body.unwrap_or_default();
    for line in [
        r#"alertmanager_alerts_received_total{status="firing",version="v2"} 1"#,
        r#"alertmanager_alerts_received_total{status="resolved",version="v2"} 1"#,
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} not in /metrics");
    }
    let listed = api_alerts(&am);
    assert!(
        !listed
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["labels"]["incident"] == "inc-am-1"),
        "{listed}"
    );
    assert_eq!(amtool(&am, "inc-am-1"), serde_json::json!([]));
}

#[test]
fn a_test_alert_reports_where_it_went() {
    let receiver = Receiver::start(|_| ("200 OK", String::new()));
    let c = config(&format!("  webhook: {{url: 'http://{}/x'}}\n", receiver.addr));
    let report = c.send_test("webhook", NOW).unwrap();
    assert_eq!(report.outcome, Outcome::Delivered);
    assert_eq!(report.channel, "webhook");
    assert_eq!(receiver.seen.lock().unwrap().keys, std::slice::from_ref(&report.key));
    let err = c.send_test("pager", NOW).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no channel 'pager' is configured (configured: webhook)"
    );
}
