//! The real `reliability-monitor` binary's state commands (`status`, `report`, `breaker`,
//! `incidents`, `maintenance`, `audit verify`, `completions`, `man`) on a state directory
//! prepared through the engines' own writers: breakers by `reliability_recovery::breaker`,
//! incident lines by the incident log's journal, audit records by
//! `reliability_os::audit::append`. Golden output in `tests/fixtures/state/`, times
//! filtered; `HX_UPDATE_GOLDEN=1` rewrites the files.

#![allow(clippy::unwrap_used)]

use reliability_core::audit::{Actor, Outcome as AuditOutcome, Record};
use reliability_core::breaker::{Command as BreakerCommand, Config as BreakerConfig};
use reliability_core::incident::{Attempt, Event};
use reliability_core::recovery::{Outcome, Strategy};
use reliability_os::clock::now_ms;
use reliability_recovery::breaker::{self, BreakerRequest};
use serde_json::{json, Value};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_reliability-monitor");
const MIN: u64 = 60_000;
const HOUR: u64 = 60 * MIN;

/// A state directory of its own, prepared at `now`.
struct Host {
    dir: tempfile::TempDir,
    now: u64,
}

impl Host {
    fn new() -> Host {
        Host {
            dir: tempfile::tempdir().unwrap(),
            now: now_ms(),
        }
    }

    fn state(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// Runs the binary on this state directory (and no configuration file); exit code,
    /// stdout, stderr.
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let absent = self.dir.path().join("absent.yml");
        let out = Command::new(BIN)
            .arg("--config")
            .arg(&absent)
            .arg("--state-dir")
            .arg(self.state())
            .args(args)
            .env_remove("SUDO_USER")
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn breaker(&self, name: &str, command: BreakerCommand) {
        let request = BreakerRequest {
            name: name.into(),
            command,
            config: BreakerConfig::default(),
            state_dir: self.state(),
        };
        let at = self.now - 10_000;
        breaker::run(&request, &|| at, false).unwrap();
    }

    fn incidents(&self, events: &[Event]) {
        let log = self.state().join(reliability_recovery::request::INCIDENT_LOG);
        fs::create_dir_all(self.state()).unwrap();
        for e in events {
            reliability_os::journal::append(&log, e, Some(reliability_recovery::incidents::ROTATION)).unwrap();
        }
    }

    fn audit(&self, action: &str, target: &str, user: &str) {
        let record = Record {
            front_end: "module".into(),
            action: action.into(),
            target: target.into(),
            reason: None,
            outcome: AuditOutcome::Changed,
            actor: Actor {
                user: "root".into(),
                uid: 0,
                sudo_user: Some(user.into()),
                ..Actor::default()
            },
            config_digest: None,
            details: Value::Null,
        };
        reliability_os::audit::append(&self.state().join("audit"), record).unwrap();
    }

    /// Two outages of web.service (one recovered by a restart in 4 minutes, one escalated
    /// to manual intervention and fixed after 10), and an open one of db.service, an hour
    /// old; breaker `db` open, `web` closed; two audit records.
    fn prepared() -> Host {
        let h = Host::new();
        let n = h.now;
        let attempt = |service: &str, started_at: u64, at: u64, n: u32, strategy, outcome, recovered_at| {
            Event::Attempt(Attempt {
                service: service.into(),
                started_at,
                at,
                attempt: n,
                failure_count: n,
                level: n as usize,
                strategy,
                outcome,
                recovered_at,
                reason: "port 80 closed".into(),
                detail: format!("{} {}", strategy.as_str(), outcome.as_str()),
            })
        };
        let (a, b, c) = (n - 3 * HOUR, n - 2 * HOUR, n - HOUR);
        h.incidents(&[
            Event::Opened {
                service: "web.service".into(),
                started_at: a,
                reason: "port 80 closed".into(),
            },
            attempt(
                "web.service",
                a,
                a,
                1,
                Strategy::Restart,
                Outcome::Recovered,
                Some(a + 4 * MIN),
            ),
            Event::Closed {
                service: "web.service".into(),
                started_at: a,
                ended_at: a + 4 * MIN,
                attempts: 1,
                escalated: false,
                by_automation: true,
            },
            Event::Opened {
                service: "web.service".into(),
                started_at: b,
                reason: "port 80 closed".into(),
            },
            attempt("web.service", b, b, 1, Strategy::Restart, Outcome::StillFailing, None),
            attempt(
                "web.service",
                b,
                b + MIN,
                2,
                Strategy::Manual,
                Outcome::ManualIntervention,
                None,
            ),
            Event::Closed {
                service: "web.service".into(),
                started_at: b,
                ended_at: b + 10 * MIN,
                attempts: 2,
                escalated: true,
                by_automation: false,
            },
            Event::Opened {
                service: "db.service".into(),
                started_at: c,
                reason: "port 5432 closed".into(),
            },
            attempt("db.service", c, c, 1, Strategy::Restart, Outcome::StillFailing, None),
        ]);
        h.breaker("db", BreakerCommand::Force(reliability_core::breaker::State::Open));
        h.breaker("web", BreakerCommand::Force(reliability_core::breaker::State::Closed));
        h.audit("service_recovery.restart", "web.service", "alice");
        h.audit("circuit_breaker.open", "db", "bob");
        h
    }
}

/// `text` with every RFC 3339 time written `TIME` and the state directory `STATE`.
fn filtered(text: &str, state: &Path) -> String {
    let text = text.replace(&state.display().to_string(), "STATE");
    let bytes = text.as_bytes();
    let shape = b"dddd-dd-ddTdd:dd:dd.dddZ";
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        let matches = bytes.len() - i >= shape.len()
            && shape.iter().zip(&bytes[i..]).all(|(s, b)| match s {
                b'd' => b.is_ascii_digit(),
                s => s == b,
            });
        if matches {
            out.push_str("TIME");
            i += shape.len();
        } else {
            let c = text[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// `text` with a breaker's time until half-open (the last cell of its row, `49s`) written
/// `Ns`.
fn no_countdown(text: &str) -> String {
    text.lines()
        .map(|l| match l.rsplit_once("  ") {
            Some((head, last)) if last.ends_with('s') && last[..last.len() - 1].chars().all(|c| c.is_ascii_digit()) => {
                format!("{head}  Ns\n")
            }
            _ => format!("{l}\n"),
        })
        .collect()
}

/// `got` against `tests/fixtures/state/<name>`.
fn golden(name: &str, got: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/state")
        .join(name);
    if std::env::var_os("HX_UPDATE_GOLDEN").is_some() {
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(&path, got).unwrap();
    }
    let want = fs::read_to_string(&path).unwrap_or_default();
    assert_eq!(got, want, "{name} differs from its golden file");
}

#[test]
fn report_gives_sla_budget_mttr_mtbf_rates_and_kpis() {
    let h = Host::prepared();
    let (code, out, err) = h.run(&["report"]);
    assert_eq!((code, err.as_str()), (2, ""), "db.service missed its SLA: {out}");
    golden("report.txt", &filtered(&out, &h.state()));

    let (code, out, _) = h.run(&["report", "--service", "web.service", "--json"]);
    assert_eq!(code, 1, "web.service: SLA met, MTTR KPI not: {out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let web = &v["services"][0];
    assert_eq!(v["services"].as_array().map(Vec::len), Some(1));
    assert_eq!(web["service"], json!("web.service"));
    assert_eq!(
        (web["incidents"].clone(), web["escalated"].clone()),
        (json!(2), json!(1))
    );
    assert_eq!(web["mttr_s"], json!(420.0), "(4 + 10) / 2 minutes");
    assert_eq!(
        web["mtbf_s"],
        json!(56.0 * 60.0),
        "from the first end to the second start"
    );
    assert_eq!(web["recovery_success_rate"], json!(50.0));
    assert_eq!(web["escalation_rate"], json!(50.0));
    let left = web["error_budget"]["left_s"].as_f64().unwrap();
    assert!((left - (2592.0 - 840.0)).abs() < 1e-6, "{left}");
    assert_eq!(
        (
            web["sla_met"].clone(),
            web["kpi_mttr_met"].clone(),
            web["kpi_failure_rate_met"].clone()
        ),
        (json!(true), json!(false), json!(true))
    );

    let (code, out, _) = h.run(&["report", "--nagios"]);
    assert_eq!(code, 2);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.starts_with("REPORT CRITICAL - SLA or KPI missed over 30d: db.service, web.service | "),
        "{out}"
    );
    assert!(out.contains("'web.service availability'=99.9676%;;99.9;0;100"), "{out}");
}

#[test]
fn incidents_list_outages_with_their_attempts() {
    let h = Host::prepared();
    let (code, out, err) = h.run(&["incidents"]);
    assert_eq!((code, err.as_str()), (2, ""), "one outage is open: {out}");
    golden("incidents.txt", &filtered(&out, &h.state()));
    let (code, out, _) = h.run(&["incidents", "--service", "web.service", "--window", "150m", "--json"]);
    assert_eq!(code, 0, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let list = v["incidents"].as_array().unwrap();
    assert_eq!(list.len(), 1, "the window leaves the first outage out: {out}");
    assert_eq!(list[0]["state"], json!("closed after manual intervention"));
    assert_eq!(list[0]["attempts"].as_array().map(Vec::len), Some(2));
    let (code, out, _) = h.run(&["incidents", "--nagios"]);
    assert_eq!(
        (code, out.as_str()),
        (
            2,
            "INCIDENTS CRITICAL - 3 incident(s) over 30d, 1 open | incidents=3 open=1\n"
        )
    );
}

#[test]
fn breakers_are_listed_and_reset_through_the_engine_with_an_audit_record() {
    let h = Host::prepared();
    let (code, out, err) = h.run(&["breaker", "list"]);
    assert_eq!((code, err.as_str()), (2, ""), "db is open: {out}");
    golden("breaker-list.txt", &no_countdown(&filtered(&out, &h.state())));
    let (code, out, _) = h.run(&["breaker", "list", "--nagios"]);
    assert_eq!(
        (code, out.as_str()),
        (
            2,
            "BREAKERS CRITICAL - 2 breaker(s), not closed: db | open=1 half_open=0 closed=1 'db failures'=0 'web failures'=0\n"
        )
    );

    let (code, out, err) = h.run(&["breaker", "reset", "db", "--reason", "db fixed by hand"]);
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
    assert!(out.starts_with("breaker 'db' is closed (was open)"), "{out}");
    // The engine's file says so, as the module reads it.
    let request = BreakerRequest {
        name: "db".into(),
        command: BreakerCommand::Query,
        config: BreakerConfig::default(),
        state_dir: h.state(),
    };
    let report = breaker::run(&request, &now_ms, true).unwrap();
    assert_eq!(report.state, reliability_core::breaker::State::Closed);
    assert_eq!(h.run(&["breaker", "list", "--nagios"]).0, 0);

    let trail = fs::read_to_string(h.state().join("audit/audit.jsonl")).unwrap();
    let last: Value = serde_json::from_str(trail.lines().last().unwrap()).unwrap();
    assert_eq!(
        (
            &last["front_end"],
            &last["action"],
            &last["target"],
            &last["reason"],
            &last["outcome"]
        ),
        (
            &json!("cli"),
            &json!("breaker.reset"),
            &json!("db"),
            &json!("db fixed by hand"),
            &json!("changed")
        )
    );
    assert_eq!(last["details"]["previous_state"], json!("open"));
    assert!(last["actor"]["user"].as_str().is_some_and(|u| !u.is_empty()), "{last}");
}

#[test]
fn status_shows_breakers_open_incidents_maintenance_and_the_daemons_results() {
    let h = Host::prepared();
    let (code, out, err) = h.run(&["status"]);
    assert_eq!((code, err.as_str()), (2, ""), "{out}");
    golden("status.txt", &no_countdown(&filtered(&out, &h.state())));

    // The daemon's last results, as it writes them, fresh.
    let monitor = h.state().join("monitor");
    fs::create_dir_all(&monitor).unwrap();
    let health = json!({"status": "degraded", "ready": true, "updated": "2026-12-04T10:00:00.000Z",
        "checks": [{"entry": "health_checks.ports[0]", "state": "failing", "last_run": "2026-12-04T10:00:00.000Z",
                    "results": [{"message": "port 5432 closed"}]},
                   {"entry": "health_checks.ports[1]", "state": "ok", "last_run": "2026-12-04T10:00:00.000Z",
                    "results": [{"message": "port 80 open"}]}],
        "services": []});
    fs::write(monitor.join("last.json"), serde_json::to_vec_pretty(&health).unwrap()).unwrap();
    h.run(&[
        "maintenance",
        "start",
        "--for",
        "2h",
        "--reason",
        "kernel update",
        "--name",
        "kernel",
    ]);
    let (code, out, _) = h.run(&["status", "--nagios"]);
    assert_eq!(code, 2, "{out}");
    let (line, perf) = out.trim_end().split_once(" | ").unwrap();
    assert_eq!(
        line,
        "STATUS CRITICAL - 2 checks, 1 failing, breakers not closed: db, 1 open incident(s), in maintenance: kernel"
    );
    assert!(perf.starts_with("results_age=0s;60 checks=2 failing=1"), "{perf}");
    let (_, out, _) = h.run(&["status", "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["daemon"]["fresh"], json!(true));
    assert_eq!(v["open_incidents"][0]["service"], json!("db.service"));
    assert_eq!(v["maintenance"][0]["name"], json!("kernel"));

    // Results the daemon stopped writing are a warning, and say so.
    let old = std::time::SystemTime::now() - std::time::Duration::from_secs(600);
    fs::File::options()
        .write(true)
        .open(monitor.join("last.json"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    let (_, out, _) = h.run(&["status"]);
    assert!(
        out.starts_with("Checks: degraded from the daemon, 600 s old (the daemon is not running)\n"),
        "{out}"
    );
}

#[test]
fn an_empty_host_is_ok() {
    let h = Host::new();
    let (code, out, _) = h.run(&["status", "--nagios"]);
    assert_eq!(
        (code, out.as_str()),
        (
            0,
            "STATUS OK - no checks, breakers or incidents to report | checks=0 failing=0 breakers_not_closed=0 open_incidents=0 maintenance=0\n"
        )
    );
    assert_eq!(
        h.run(&["breaker", "list"]).1,
        format!("no breakers in '{}'\n", h.state().display())
    );
}

#[test]
fn maintenance_round_trip_is_what_the_module_reads() {
    let h = Host::new();
    let (code, out, err) = h.run(&[
        "maintenance",
        "start",
        "--for",
        "2h",
        "--reason",
        "kernel update",
        "--services",
        "web.service,db.service",
    ]);
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(
        filtered(&out, &h.state()),
        "maintenance window 'cli' opened until TIME (services web.service, db.service)\n"
    );
    // The module's reader (reliability_os::maintenance) sees it open, with the actor.
    let store = reliability_os::state::Store::new(h.state());
    let (windows, errors) = reliability_os::maintenance::windows(&store, &[]);
    assert!(errors.is_empty(), "{errors:?}");
    let now = now_ms();
    let active = reliability_core::maintenance::active_at(&windows, now).expect("in force");
    assert_eq!(
        (active.name.as_str(), active.reason.as_deref()),
        ("cli", Some("kernel update"))
    );
    assert!(active.end_ms > now + 119 * MIN && active.end_ms <= now + 120 * MIN);
    assert!(active.actor.is_some_and(|a| !a.is_empty()));
    // Started again: the window is open as asked, no second record.
    let (_, out, _) = h.run(&[
        "maintenance",
        "start",
        "--for",
        "2h",
        "--reason",
        "kernel update",
        "--services",
        "web.service,db.service",
    ]);
    assert_eq!(out, "maintenance window 'cli' is open as asked\n");

    let (code, out, _) = h.run(&["maintenance", "list", "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((code, v["windows"][0]["active"].clone()), (0, json!(true)));

    let (code, out, _) = h.run(&["maintenance", "stop"]);
    assert_eq!((code, out.as_str()), (0, "maintenance window 'cli' closed\n"));
    let (windows, _) = reliability_os::maintenance::windows(&store, &[]);
    assert_eq!(reliability_core::maintenance::active_at(&windows, now_ms()), None);
    assert_eq!(h.run(&["maintenance", "stop"]).1, "no maintenance window is open\n");

    let trail = fs::read_to_string(h.state().join("audit/audit.jsonl")).unwrap();
    let actions: Vec<String> = trail
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["action"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(actions, ["maintenance.open", "maintenance.close"]);
    assert_eq!(h.run(&["audit", "verify"]).0, 0);
}

#[test]
fn audit_verify_names_an_edited_line_and_exits_2() {
    let h = Host::prepared();
    h.audit("maintenance.open", "deploy", "carol");
    let (code, out, err) = h.run(&["audit", "verify"]);
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(
        filtered(&out, &h.state()),
        "audit trail 'STATE/audit' intact: 3 records in 1 file(s)\n"
    );
    // Someone makes bob's record say mallory.
    let path = h.state().join("audit/audit.jsonl");
    let text = fs::read_to_string(&path).unwrap();
    fs::write(&path, text.replacen("\"bob\"", "\"mallory\"", 1)).unwrap();
    let (code, out, _) = h.run(&["audit", "verify"]);
    assert_eq!(code, 2, "{out}");
    golden("audit-verify-tampered.txt", &filtered(&out, &h.state()));
    assert!(out.contains("audit.jsonl line 2: "), "bob's line is named: {out}");
    let (code, out, _) = h.run(&["audit", "verify", "--nagios"]);
    assert_eq!(code, 2);
    assert!(out.starts_with("AUDIT CRITICAL - audit trail"), "{out}");
    let (code, out, _) = h.run(&["audit", "verify", "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((code, v["verify"]["first_bad"]["line"].clone()), (2, json!(2)));
    // --dir names another trail.
    let (code, out, _) = h.run(&["audit", "verify", "--dir", "/nonexistent/trail"]);
    assert_eq!(code, 0, "an absent trail is an empty one: {out}");
}

#[test]
fn compliance_report_for_auditors() {
    let h = Host::prepared();
    h.run(&[
        "maintenance",
        "start",
        "--for",
        "1h",
        "--reason",
        "kernel update",
        "--name",
        "kernel",
    ]);
    h.run(&["maintenance", "stop", "--name", "kernel"]);
    let from = reliability_core::timestamp::rfc3339(h.now - 30 * 24 * HOUR);
    let to = reliability_core::timestamp::rfc3339(now_ms() + 1);
    let (code, out, err) = h.run(&[
        "report",
        "--compliance",
        "--from",
        &from,
        "--to",
        &to,
        "--format",
        "markdown",
    ]);
    assert_eq!((code, err.as_str()), (1, ""), "db.service missed its SLA: {out}");
    // The CLI's own records carry the user running the test: shown as USER.
    let user = reliability_os::audit::actor().who();
    golden(
        "compliance.md",
        &filtered(&out, &h.state()).replace(&format!("| {user} |"), "| USER |"),
    );
    let (_, out, _) = h.run(&["report", "--compliance", "--from", &from, "--to", &to, "--json"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["chain"]["ok"], json!(true));
    assert_eq!(v["manual_interventions"][0]["service"], json!("web.service"));
    assert_eq!(v["maintenance_windows"][0]["name"], json!("kernel"));
    // A tampered trail makes the report critical.
    let path = h.state().join("audit/audit.jsonl");
    let text = fs::read_to_string(&path).unwrap();
    fs::write(&path, text.replacen("\"alice\"", "\"eve\"", 1)).unwrap();
    let (code, out, _) = h.run(&["report", "--compliance", "--from", &from, "--to", &to]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("Audit chain: NOT VERIFIED: audit.jsonl:1: "), "{out}");
}

#[test]
fn completions_and_the_man_page_render_from_the_clap_definition() {
    let h = Host::new();
    for (shell, marker) in [
        ("bash", "complete -F"),
        ("zsh", "#compdef reliability-monitor"),
        ("fish", "complete -c reliability-monitor"),
    ] {
        let (code, out, err) = h.run(&["completions", shell]);
        assert_eq!((code, err.as_str()), (0, ""), "{shell}");
        assert!(out.contains(marker), "{shell}: {out}");
        for sub in ["status", "report", "breaker", "maintenance", "audit"] {
            assert!(out.contains(sub), "{shell} completes {sub}");
        }
    }
    let (code, out, _) = h.run(&["man"]);
    assert_eq!(code, 0);
    assert!(out.contains(".TH reliability-monitor"), "{out}");
    assert!(out.contains("maintenance"), "{out}");
}

#[test]
fn status_shows_the_configurations_windows_in_force_too() {
    let h = Host::new();
    let config = h.dir.path().join("config.yml");
    let (start, end) = (
        reliability_core::timestamp::rfc3339(h.now - HOUR),
        reliability_core::timestamp::rfc3339(h.now + HOUR),
    );
    fs::write(
        &config,
        format!(
            "service_monitoring:\n  state_dir: {}\nmaintenance_windows:\n  enabled: true\n  windows:\n    - {{name: migration, start: '{start}', end: '{end}'}}\n",
            h.state().display()
        ),
    )
    .unwrap();
    fs::set_permissions(&config, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let out = Command::new(BIN)
        .args(["--config", config.to_str().unwrap(), "status", "--json"])
        .output()
        .unwrap();
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "{v}");
    assert_eq!(
        (&v["maintenance"][0]["name"], &v["maintenance"][0]["kind"]),
        (&json!("migration"), &json!("one_off")),
        "{v}"
    );
}
