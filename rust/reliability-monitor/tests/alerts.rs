//! The real daemon's alerts, maintenance windows and audit trail, on loopback: a webhook
//! receiver (a std TcpListener thread) that verifies the HMAC signature and dedupes by
//! `Idempotency-Key`, ports the tests open and close, ad-hoc windows written as the
//! `maintenance_window` module writes them.

mod support;

#[path = "../../reliability-alerts/tests/support/mod.rs"]
mod receiver;

use receiver::{free_port, Receiver, Request};
use reliability_core::maintenance::AdHoc;
use reliability_os::clock::now_ms;
use reliability_os::state::{StateError, Store};
use serde_json::Value;
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::daemon::*;

const SECRET: &str = "hx-hmac-s3cret-do-not-log";

/// A receiver that takes only requests signed with [`SECRET`] (401 otherwise).
fn signed_receiver(listener: TcpListener) -> Receiver {
    Receiver::on(listener, |r: &Request| {
        let sig = r.header("x-hx-signature").unwrap_or_default().to_string();
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, SECRET.as_bytes());
        let hex = sig.strip_prefix("sha256=").unwrap_or_default();
        let bytes: Vec<u8> = (0..hex.len() / 2)
            .filter_map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
            .collect();
        match ring::hmac::verify(&key, &r.body, &bytes) {
            Ok(()) => ("200 OK", String::new()),
            Err(_) => ("401 Unauthorized", "bad signature".into()),
        }
    })
}

/// The alerting sections: a webhook to `port`, signed, alerting on a failed check.
fn alerting(port: u16) -> String {
    format!(
        "alerting:\n  channels: [webhook]\n  host: web1\n  alert_on: {{check_failure: true}}\n  \
         queue: {{retry_base: 200ms, retry_max: 1s}}\n\
         notifications:\n  webhook:\n    url: \"http://127.0.0.1:{port}/hook\"\n    secret: \"{SECRET}\"\n    timeout: 2s\n"
    )
}

fn bodies(r: &Receiver) -> Vec<Value> {
    r.seen
        .lock()
        .expect("lock")
        .requests
        .iter()
        .map(Request::json)
        .collect()
}

fn keys(r: &Receiver) -> usize {
    r.seen.lock().expect("lock").keys.len()
}

fn audit_records(state: &Path) -> Vec<Value> {
    std::fs::read_to_string(state.join("audit/audit.jsonl"))
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect()
}

#[test]
fn a_failing_port_alerts_once_then_resolves_when_it_is_back() {
    let hook = signed_receiver(TcpListener::bind("127.0.0.1:0").expect("bind"));
    let service = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = service.local_addr().expect("addr").port();
    let d = Daemon::start(&alerting(hook.addr.port()), &port_check(port), &[]);
    d.wait_ready();
    drop(service);
    wait(Duration::from_secs(10), "the firing alert", || keys(&hook) == 1);
    let firing = bodies(&hook)[0].clone();
    println!(
        "the webhook received:\n{}",
        serde_json::to_string_pretty(&firing).expect("json")
    );
    assert_eq!(firing["state"], "firing", "{firing}");
    assert_eq!(firing["name"], "service_down", "{firing}");
    assert_eq!(firing["service"], "web", "{firing}");
    assert_eq!(firing["host"], "web1", "{firing}");
    assert_eq!(firing["check"], "health_checks.ports[0]", "{firing}");
    // Still failing: no second notification (the repeat interval is hours).
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(keys(&hook), 1, "{:?}", bodies(&hook));
    let _back = TcpListener::bind(("127.0.0.1", port)).expect("rebind the service's port");
    wait(Duration::from_secs(10), "the resolved alert", || keys(&hook) == 2);
    let resolved = bodies(&hook)[1].clone();
    assert_eq!(resolved["state"], "resolved", "{resolved}");
    assert_eq!(resolved["incident"], firing["incident"], "{resolved}");
    assert_eq!(hook.seen.lock().expect("lock").duplicates(), 0);
    // Each delivery is a line of the audit trail, with the key the receiver got.
    let state = d.dir.path().join("state");
    let delivered = || -> Vec<String> {
        audit_records(&state)
            .iter()
            .filter(|r| r["action"] == "alert.delivered" && r["target"] == "webhook")
            .filter_map(|r| r["details"]["key"].as_str().map(String::from))
            .collect()
    };
    wait(Duration::from_secs(5), "the deliveries in the audit trail", || {
        delivered().len() == 2
    });
    assert_eq!(
        delivered(),
        hook.seen.lock().expect("lock").keys,
        "{:?}",
        audit_records(&state)
    );
    assert!(reliability_os::audit::verify(&state.join("audit")).expect("verify").ok);
    wait(Duration::from_secs(5), "the counters", || {
        let (_, m) = d.get("/metrics", None);
        m.contains("reliability_monitor_alerts_sent_total{channel=\"webhook\"} 2")
    });
    let (_, metrics) = d.get("/metrics", None);
    assert!(metrics.contains("reliability_monitor_alerts_queued 0"), "{metrics}");
    assert!(
        metrics.contains("reliability_monitor_maintenance_active 0"),
        "{metrics}"
    );
    promtool(&metrics);
    let (_, health) = d.get("/health", None);
    for text in [d.log(), metrics, health] {
        assert!(!text.contains(SECRET), "the secret leaked: {text}");
    }
}

#[test]
fn a_maintenance_window_holds_alerts_and_a_service_still_failing_alerts_when_it_ends() {
    let hook = signed_receiver(TcpListener::bind("127.0.0.1:0").expect("bind"));
    let port = free_port();
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let state = dir.path().join("state");
    let start = now_ms();
    let end = start + 7_000;
    Store::new(&state)
        .update::<AdHoc, StateError, _>("deploy", |_| {
            Ok(AdHoc {
                name: "deploy".into(),
                reason: "kernel update".into(),
                actor: "alice".into(),
                start_ms: start - 1_000,
                end_ms: end,
                services: Vec::new(),
            })
        })
        .expect("open the window");
    write_config(
        &dir.path().join("config.yml"),
        &config_text(dir.path(), &alerting(hook.addr.port()), &port_check(port)),
    );
    let d = Daemon::run(dir.clone(), &[]);
    d.wait_ready();
    wait(Duration::from_secs(5), "the window's notice", || {
        d.log().contains("maintenance window 'deploy' (ad_hoc) started")
    });
    let (_, metrics) = d.get("/metrics", None);
    assert!(
        metrics.contains("reliability_monitor_maintenance_active 1"),
        "{metrics}"
    );
    wait(Duration::from_secs(10), "the check failing", || {
        entry(&d.health().1, "health_checks.ports[0]")["state"] == "failing"
    });
    // Failing inside the window: nothing is sent while it lasts.
    while now_ms() + 300 < end {
        assert_eq!(keys(&hook), 0, "sent inside the window: {:?}", bodies(&hook));
        std::thread::sleep(Duration::from_millis(100));
    }
    wait(Duration::from_secs(10), "the alert after the window", || {
        keys(&hook) == 1
    });
    let late = now_ms().saturating_sub(end);
    assert!(late < 3_000, "sent {late} ms after the window ended");
    assert_eq!(bodies(&hook)[0]["state"], "firing");
    assert!(
        d.log().contains("maintenance window 'deploy' (ad_hoc) ended"),
        "{}",
        d.log()
    );
    let actions: Vec<String> = audit_records(&state)
        .iter()
        .map(|r| {
            format!(
                "{} {}",
                r["action"].as_str().unwrap_or(""),
                r["target"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert!(actions.contains(&"maintenance.start deploy".to_string()), "{actions:?}");
    assert!(actions.contains(&"maintenance.end deploy".to_string()), "{actions:?}");
    let report = reliability_os::audit::verify(&state.join("audit")).expect("verify");
    assert!(report.ok, "{report:?}");
}

#[test]
fn kill_9_with_an_alert_queued_then_restart_delivers_it_once() {
    let hook_port = free_port();
    let port = free_port();
    let d = Daemon::start(&alerting(hook_port), &port_check(port), &[]);
    d.wait_ready();
    // The receiver is down: the alert waits in the queue.
    wait(Duration::from_secs(10), "a failed delivery", || {
        d.log().contains("not delivered")
    });
    let dir = d.dir.clone();
    drop(d); // SIGKILL
    let queued = std::fs::read_dir(dir.path().join("state/alert_queue"))
        .expect("the queue dir")
        .count();
    assert!(queued > 0, "nothing left in the queue");
    let hook = signed_receiver(TcpListener::bind(("127.0.0.1", hook_port)).expect("bind the receiver"));
    let d = Daemon::run(dir, &[]);
    wait(Duration::from_secs(15), "the queued alert", || keys(&hook) == 1);
    // The check is still failing after the restart: the same incident, nothing new.
    std::thread::sleep(Duration::from_secs(4));
    let seen = hook.seen.lock().expect("lock");
    assert_eq!(seen.requests.len(), 1, "{:?}\n{}", seen.keys, d.log());
    assert_eq!(seen.duplicates(), 0);
}

#[test]
fn alert_test_reports_delivery_in_its_exit_code() {
    let hook = signed_receiver(TcpListener::bind("127.0.0.1:0").expect("bind"));
    let dir = tempfile::tempdir().expect("temp dir");
    let config = dir.path().join("config.yml");
    let run = |text: &str, channel: &str| {
        write_config(&config, text);
        let out = Command::new(BIN)
            .args([
                "--config",
                config.to_str().expect("utf-8"),
                "alert",
                "test",
                "--channel",
                channel,
            ])
            .output()
            .expect("runs");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, out, err) = run(&alerting(hook.addr.port()), "webhook");
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.starts_with("delivered: test alert "), "{out}");
    assert!(out.contains("through 'webhook' to 127.0.0.1"), "{out}");
    assert_eq!(keys(&hook), 1);
    assert_eq!(bodies(&hook)[0]["name"], "test");
    // Nobody listening: exit 1 and the reason, the secret and URL path never shown.
    let (code, out, err) = run(&alerting(free_port()), "webhook");
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.starts_with("not delivered: test alert "), "{err}");
    for text in [&out, &err] {
        assert!(!text.contains(SECRET) && !text.contains("/hook"), "{text}");
    }
    // A channel that is not configured: a configuration error.
    let (code, _, err) = run(&alerting(hook.addr.port()), "slack");
    assert_eq!(code, 78, "{err}");
    assert!(
        err.contains("no channel 'slack' is configured (configured: webhook)"),
        "{err}"
    );
}

#[test]
fn a_reload_is_audited_with_the_config_digest_and_the_sections_that_changed() {
    let port = free_port();
    let d = Daemon::start("", &port_check(port), &[]);
    d.wait_ready();
    let text = config_text(d.dir.path(), &alerting(free_port()), &port_check(port));
    write_config(&d.config, &text);
    d.signal("HUP");
    let state = d.dir.path().join("state");
    let started = Instant::now();
    let reload = loop {
        if let Some(r) = audit_records(&state)
            .into_iter()
            .find(|r| r["action"] == "config.reload")
        {
            break r;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no reload record: {}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(
        reload["config_digest"],
        reliability_core::audit::config_digest(text.as_bytes()),
        "{reload}"
    );
    assert_eq!(reload["outcome"], "changed");
    assert_eq!(reload["front_end"], "daemon");
    assert_eq!(
        reload["details"]["changed_sections"],
        serde_json::json!(["alerting", "notifications"]),
        "{reload}"
    );
    assert!(!reload.to_string().contains(SECRET), "{reload}");
    let report = reliability_os::audit::verify(&state.join("audit")).expect("verify");
    assert!(report.ok && report.records >= 1, "{report:?}");
}

#[test]
fn a_window_holds_a_recovery_back_and_the_recovery_is_audited_after_it() {
    let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
    let state = dir.path().join("state");
    let end = now_ms() + 5_000;
    Store::new(&state)
        .update::<AdHoc, StateError, _>("patching", |_| {
            Ok(AdHoc {
                name: "patching".into(),
                reason: "kernel update".into(),
                actor: "alice".into(),
                start_ms: now_ms() - 1_000,
                end_ms: end,
                // The unit's name: the config names the service without `.service`.
                services: vec!["hx-daemon-test.service".into()],
            })
        })
        .expect("open the window");
    let checks = "  services:\n    - name: hx-daemon-test\n      recovery:\n        timeout: 1\n";
    let extra = "maintenance_windows:\n  suppress_recovery: true\n";
    write_config(&dir.path().join("config.yml"), &config_text(dir.path(), extra, checks));
    let d = Daemon::run(dir.clone(), &[]);
    wait(Duration::from_secs(10), "the recovery held", || {
        d.log().contains(
            "hx-daemon-test.service: failing; its recovery waits for the end of maintenance window 'patching'",
        )
    });
    assert!(!d.log().contains("running its recovery"), "{}", d.log());
    let (_, metrics) = d.get("/metrics", None);
    assert!(
        metrics.contains("reliability_monitor_maintenance_active 1"),
        "{metrics}"
    );
    wait(Duration::from_secs(10), "the recovery after the window", || {
        d.log().contains("running its recovery (attempt 1)")
    });
    assert!(now_ms() >= end, "the recovery ran inside the window: {}", d.log());
    let started = Instant::now();
    loop {
        let actions: Vec<String> = audit_records(&state)
            .iter()
            .map(|r| r["action"].as_str().unwrap_or_default().to_string())
            .collect();
        if actions.iter().any(|a| a == "recovery.outcome") {
            assert!(actions.contains(&"recovery.start".to_string()), "{actions:?}");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "{actions:?}\n{}", d.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    let report = reliability_os::audit::verify(&state.join("audit")).expect("verify");
    assert!(report.ok, "{report:?}");
}

#[test]
fn an_alert_the_receiver_refuses_for_good_is_given_up_and_audited() {
    let hook = Receiver::start(|_: &Request| ("400 Bad Request", "no".into()));
    let port = free_port();
    let d = Daemon::start(&alerting(hook.addr.port()), &port_check(port), &[]);
    let state = d.dir.path().join("state");
    let started = Instant::now();
    let give_up = loop {
        if let Some(r) = audit_records(&state)
            .into_iter()
            .find(|r| r["action"] == "alert.give_up")
        {
            break r;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "no give-up record: {}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(give_up["target"], "webhook", "{give_up}");
    assert_eq!(give_up["outcome"], "failed", "{give_up}");
    assert!(give_up["details"]["key"].is_string(), "{give_up}");
    assert!(!give_up.to_string().contains(SECRET) && !give_up.to_string().contains("/hook"));
    wait(Duration::from_secs(5), "the failure counted", || {
        let (_, m) = d.get("/metrics", None);
        m.contains("reliability_monitor_alerts_failed_total{channel=\"webhook\"} 1")
    });
}
