//! The real `reliability-monitor` binary, driven as cron, Nagios and people call it.

use serde_json::Value;
use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_reliability-monitor");

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// Runs the binary; exit code, stdout, stderr.
fn monitor(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(BIN).args(args).output().expect("the binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `text` with the first line's path (which differs between checkouts) written `CONFIG`.
fn filtered(text: &str, path: &Path) -> String {
    text.replacen(&path.display().to_string(), "CONFIG", 1)
}

/// A config file holding `text` in a temp dir of its own, mode 0600.
fn config(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("config.yml");
    fs::write(&path, text).expect("write config");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).expect("chmod");
    (dir, path)
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 path")
}

#[test]
fn seed_config_validates_and_lists_what_is_not_used() {
    let seed = fixture("seed.yml");
    let want = fs::read_to_string(fixture("seed.expected")).expect("golden");
    let (code, out, err) = monitor(&["validate-config", s(&seed)]);
    assert_eq!((code, err.as_str()), (0, ""), "{out}");
    assert_eq!(filtered(&out, &seed), want);
    // The seed's docs call it as a flag.
    let (code, flag_out, _) = monitor(&["--config", s(&seed), "--validate-config"]);
    assert_eq!((code, flag_out), (0, out));
}

#[test]
fn invalid_fixtures_list_every_problem_and_exit_78() {
    for name in ["keys", "values", "recovery", "notyaml", "alerts"] {
        let path = fixture(&format!("invalid/{name}.yml"));
        let want = fs::read_to_string(fixture(&format!("invalid/{name}.expected"))).expect("golden");
        let (code, out, err) = monitor(&["validate-config", s(&path)]);
        assert_eq!(code, 78, "{name}: {err}");
        assert_eq!(out, "", "{name}");
        assert_eq!(filtered(&err, &path), want, "{name}");
        // `check` refuses the same file with the same list.
        let (code, _, check_err) = monitor(&["--config", s(&path), "check", "--type", "ports"]);
        assert_eq!((code, check_err), (78, err), "{name}");
    }
}

#[test]
fn a_missing_file_is_a_config_error() {
    let (code, _, err) = monitor(&["validate-config", "/nonexistent/config.yml"]);
    assert_eq!(code, 78);
    assert!(
        err.starts_with(
            "/nonexistent/config.yml: 1 problem\n  cannot read the file: '/nonexistent/config.yml' does not exist"
        ),
        "{err}"
    );
}

#[test]
fn world_writable_config_is_refused() {
    let (_dir, path) = config(&fs::read_to_string(fixture("seed.yml")).expect("seed"));
    fs::set_permissions(&path, fs::Permissions::from_mode(0o666)).expect("chmod");
    let (code, _, err) = monitor(&["validate-config", s(&path)]);
    assert_eq!(code, 78);
    assert_eq!(
        filtered(&err, &path),
        "CONFIG: 1 problem\n  refused: the file is world-writable (mode 0666); run chmod o-w on it\n"
    );
    let (code, out, _) = monitor(&["--config", s(&path), "check", "--type", "resources", "--nagios"]);
    assert_eq!(code, 3, "a Nagios plugin that cannot run is UNKNOWN");
    assert!(out.starts_with("RESOURCES UNKNOWN - configuration "), "{out}");
}

#[test]
fn a_fifo_or_device_as_config_is_refused_at_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let fifo = dir.path().join("config.yml");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    for path in [fifo.as_path(), Path::new("/dev/zero")] {
        let started = std::time::Instant::now();
        let (code, _, err) = monitor(&["validate-config", s(path)]);
        assert_eq!(code, 78, "{err}");
        assert!(err.contains("not a regular file"), "{err}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(5),
            "{path:?} blocked"
        );
    }
}

#[test]
fn config_owned_by_another_user_is_refused() {
    if !nix::unistd::geteuid().is_root() {
        assert!(
            std::env::var("HX_REQUIRE_PRIVILEGED").as_deref() != Ok("1"),
            "HX_REQUIRE_PRIVILEGED=1 but not root: cannot chown"
        );
        eprintln!("skipped: chown to another user needs root");
        return;
    }
    let (_dir, path) = config("{}\n");
    nix::unistd::chown(&path, Some(nix::unistd::Uid::from_raw(4242)), None).expect("chown");
    let (code, _, err) = monitor(&["validate-config", s(&path)]);
    assert_eq!(code, 78);
    assert_eq!(
        filtered(&err, &path),
        "CONFIG: 1 problem\n  refused: the file is owned by uid 4242, neither root nor the monitor's user (uid 0)\n"
    );
}

/// A port with a listener and one without (bound, then closed), on 127.0.0.1.
fn ports() -> (TcpListener, u16, u16) {
    let open = TcpListener::bind("127.0.0.1:0").expect("bind");
    let closed = TcpListener::bind("127.0.0.1:0").expect("bind");
    let (o, c) = (
        open.local_addr().expect("addr").port(),
        closed.local_addr().expect("addr").port(),
    );
    drop(closed);
    (open, o, c)
}

#[test]
fn check_ports_json_and_nagios() {
    let (_listener, open, closed) = ports();
    let (_dir, path) = config(&format!(
        "health_checks:\n  ports:\n    - {{name: web, port: {open}, timeout: 2}}\n    - {{name: db, port: {closed}, timeout: 2}}\n"
    ));
    let (code, out, err) = monitor(&["--config", s(&path), "check", "--type", "ports", "--json"]);
    assert_eq!(code, 2, "{out}{err}");
    let report: Value = serde_json::from_str(&out).expect("one JSON object");
    assert_eq!(report["type"], "ports");
    assert_eq!(report["status"], "unhealthy");
    let statuses: Vec<(&str, &str)> = report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| (c["name"].as_str().unwrap_or(""), c["status"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(statuses, [("web", "ok"), ("db", "critical")]);

    // The seed's spelling of the option, as a Nagios plugin.
    let (code, out, _) = monitor(&["--config", s(&path), "check", "--check-type", "ports", "--nagios"]);
    assert_eq!(code, 2);
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(
        out.starts_with("PORTS CRITICAL - unhealthy: 1 critical of 2 checks: "),
        "{out}"
    );
    assert!(out.contains(" | web="), "perfdata of the open port: {out}");

    let (_dir2, path) = config(&format!(
        "health_checks:\n  services:\n    - {{name: web, type: systemd, port: {open}}}\n"
    ));
    let (code, out, _) = monitor(&["--config", s(&path), "check", "--type", "ports", "--nagios"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.starts_with("PORTS OK - healthy: 1 check ok | web:"), "{out}");
}

#[test]
fn check_processes_and_resources_on_this_host() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pidfile = dir.path().join("me.pid");
    fs::write(&pidfile, format!("{}\n", std::process::id())).expect("pidfile");
    let (_d, path) = config(&format!(
        "health_checks:\n  processes:\n    - pidfile: {}\n",
        pidfile.display()
    ));
    let (code, out, err) = monitor(&["--config", s(&path), "check", "--type", "processes", "--json"]);
    assert_eq!(code, 0, "{out}{err}");
    let report: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(report["counts"]["ok"], 1, "{out}");

    let (_d2, path) = config("health_checks:\n  processes:\n    - name: no-such-process-m1\n");
    let (code, out, _) = monitor(&["--config", s(&path), "check", "--type", "processes", "--nagios"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.starts_with("PROCESSES CRITICAL - "), "{out}");

    // Resources with the levels of `thresholds`: the table names every measure, and the
    // exit code is the worst status's.
    let (_d3, path) = config("thresholds:\n  disk_warning: 99.5\n  disk_critical: 100\n");
    let (code, out, _) = monitor(&["--config", s(&path), "check", "--type", "resources"]);
    assert!(out.starts_with("STATUS "), "{out}");
    for name in ["cpu", "memory", "disk /"] {
        assert!(
            out.lines().any(|l| l.split("  ").any(|c| c.trim() == name)),
            "{name}: {out}"
        );
    }
    let (json_code, json_out, _) = monitor(&["--config", s(&path), "check", "--type", "resources", "--json"]);
    let report: Value = serde_json::from_str(&json_out).expect("JSON");
    let disk = report["checks"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == "disk /"))
        .expect("a disk / check");
    assert_eq!(disk["critical"], "100", "the level comes from thresholds: {disk}");
    let worst = |r: &Value| {
        let c = &r["counts"];
        if c["critical"] != 0 {
            2
        } else if c["unknown"] != 0 {
            3
        } else if c["warning"] != 0 {
            1
        } else {
            0
        }
    };
    assert_eq!(json_code, worst(&report), "{json_out}");
    assert!((0..=3).contains(&code));
}

#[test]
fn nothing_to_check_is_unknown_and_bad_arguments_are_usage_errors() {
    let (_d, path) = config("health_checks:\n  enabled: false\n");
    let (code, out, _) = monitor(&["--config", s(&path), "check", "--type", "http", "--nagios"]);
    assert_eq!(code, 3);
    assert!(
        out.starts_with("HTTP UNKNOWN - degraded: 1 unknown of 1 check: no http checks"),
        "{out}"
    );
    let (code, _, err) = monitor(&["check", "--type", "bogus"]);
    assert_eq!(code, 64, "{err}");
    assert!(err.contains("invalid value 'bogus'"), "{err}");
    let (code, _, _) = monitor(&["check", "--json", "--nagios"]);
    assert_eq!(code, 64);
    let (code, _, _) = monitor(&[]);
    assert_eq!(code, 64);
    let (code, out, _) = monitor(&["--help"]);
    assert_eq!(code, 0);
    assert!(out.contains("validate-config") && out.contains("check"), "{out}");
}

#[test]
fn a_backup_check_shows_progress_on_a_terminal_only() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let (_dir, path) = config(&format!(
        "backup_verification:\n  backups:\n    - {{name: etc-nightly, backup: '{}/etc'}}\n",
        tmp.path().display()
    ));
    // Piped: stderr stays empty (cron and Nagios read nothing but the report).
    let (_, out, err) = monitor(&["--config", s(&path), "check", "--type", "backup"]);
    assert_eq!(err, "", "{out}");
    // On a terminal (script(1) gives the command a pty): the backup being verified.
    let Ok(script) = Command::new("script")
        .args([
            "-qec",
            &format!("{BIN} --config {} check --type backup", s(&path)),
            "/dev/null",
        ])
        .output()
    else {
        eprintln!("SKIPPED the terminal half: script(1) is not installed");
        return;
    };
    let text = String::from_utf8_lossy(&script.stdout);
    assert!(text.contains("verifying backup 1/1: etc-nightly"), "{text}");
}
