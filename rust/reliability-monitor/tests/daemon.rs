//! The real `reliability-monitor daemon`, in a temp dir, on loopback: its endpoints,
//! signals, systemd notifications and schedule, against listeners the tests open and close.

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_reliability-monitor");

/// A config of `checks` (YAML under `health_checks:`), 1 s interval, state in `dir`,
/// an ephemeral port, and only a memory check (with levels it cannot reach) among the
/// host's resources, so the verdict is the test's checks'.
fn config_text(dir: &Path, listen_extra: &str, checks: &str) -> String {
    format!(
        "service_monitoring:\n  check_interval: 1\n  consecutive_failures: 2\n  consecutive_successes: 1\n  \
         state_dir: {}\n  listen:\n    port: 0\n{listen_extra}\
         performance_monitoring:\n  enabled: false\n\
         health_checks:\n  resources:\n    include: [memory]\n    memory_warning: 100\n    memory_critical: 100\n{checks}",
        dir.join("state").display()
    )
}

struct Daemon {
    child: Child,
    dir: tempfile::TempDir,
    config: PathBuf,
    addr: SocketAddr,
    stderr: Arc<Mutex<String>>,
}

impl Daemon {
    fn start(listen_extra: &str, checks: &str, env: &[(&str, &str)]) -> Daemon {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("config.yml");
        write_config(&config, &config_text(dir.path(), listen_extra, checks));
        let mut child = Command::new(BIN)
            .args(["--config", config.to_str().expect("utf-8"), "daemon"])
            // No inherited NOTIFY_SOCKET, unless the test gives one.
            .env_remove("NOTIFY_SOCKET")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the daemon starts");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let pipe = child.stderr.take().expect("stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or_default().to_string();
                    let _ = tx.send(addr);
                }
                let mut s = sink.lock().expect("lock");
                s.push_str(&line);
                s.push('\n');
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|_| panic!("no listening line: {}", stderr.lock().expect("lock")));
        Daemon {
            child,
            dir,
            config,
            addr: addr.parse().expect("an address"),
            stderr,
        }
    }

    fn get(&self, path: &str, token: Option<&str>) -> (u16, String) {
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        request(
            self.addr,
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"),
        )
    }

    fn health(&self) -> (u16, Value) {
        let (code, body) = self.get("/health", None);
        (code, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    fn wait_ready(&self) {
        wait(Duration::from_secs(10), "ready", || self.get("/ready", None).0 == 200);
    }

    fn log(&self) -> String {
        self.stderr.lock().expect("lock").clone()
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok, "kill -{sig}");
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_config(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write config");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

/// Sends `raw` and reads the whole answer (the daemon closes after `Connection: close`).
fn request(addr: SocketAddr, raw: &str) -> (u16, String) {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    s.write_all(raw.as_bytes()).expect("send");
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

fn wait(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("not {what} within {limit:?}");
}

/// The entry at `path` in a /health body.
fn entry<'a>(health: &'a Value, path: &str) -> &'a Value {
    health["checks"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["entry"] == path))
        .unwrap_or_else(|| panic!("no {path} in {health}"))
}

fn port_check(port: u16) -> String {
    format!("  ports:\n    - {{name: web, port: {port}, timeout: 1}}\n")
}

fn promtool(body: &str) {
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        assert!(
            std::env::var("HX_REQUIRE_PRIVILEGED").as_deref() != Ok("1"),
            "promtool (Debian package prometheus) is missing and HX_REQUIRE_PRIVILEGED=1"
        );
        eprintln!("skipped promtool check: promtool (Debian package prometheus) is not installed");
        return;
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(body.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool");
    assert!(
        out.status.success(),
        "promtool: {}{}\n{body}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The value of the one sample of `metric` whose labels contain `labels`.
fn sample(body: &str, metric: &str, labels: &str) -> f64 {
    body.lines()
        .find(|l| l.starts_with(&format!("{metric}{{")) && l.contains(labels))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {metric} with {labels} in\n{body}"))
}

#[test]
fn a_port_check_fails_after_n_results_and_recovers() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let d = Daemon::start("", &port_check(port), &[]);
    d.wait_ready();
    let (code, health) = d.health();
    assert_eq!(code, 200, "{health}");
    assert_eq!(health["status"], "healthy");
    let web = entry(&health, "health_checks.ports[0]");
    assert_eq!(
        (web["state"].as_str(), web["results"][0]["status"].as_str()),
        (Some("ok"), Some("ok"))
    );

    let (code, metrics) = d.get("/metrics", None);
    assert_eq!(code, 200);
    promtool(&metrics);
    assert_eq!(
        sample(&metrics, "reliability_monitor_check_status", "check=\"web\""),
        0.0
    );
    assert_eq!(
        sample(
            &metrics,
            "reliability_monitor_check_failing",
            "entry=\"health_checks.ports[0]\""
        ),
        0.0
    );

    // Closed: unhealthy only after two failed results in a row.
    drop(listener);
    let mut seen = Value::Null;
    wait(Duration::from_secs(8), "unhealthy", || {
        let (code, h) = d.health();
        seen = h;
        code == 503
    });
    let web = entry(&seen, "health_checks.ports[0]");
    assert_eq!(web["state"], "failing", "{seen}");
    assert!(web["consecutive_failures"].as_u64() >= Some(2), "{seen}");
    assert_eq!(seen["status"], "unhealthy");
    let (_, metrics) = d.get("/metrics", None);
    promtool(&metrics);
    assert_eq!(
        sample(&metrics, "reliability_monitor_check_status", "check=\"web\""),
        2.0
    );
    assert_eq!(
        sample(
            &metrics,
            "reliability_monitor_check_failing",
            "entry=\"health_checks.ports[0]\""
        ),
        1.0
    );
    assert!(
        d.log()
            .contains("health_checks.ports[0]: failing after 2 failed results in a row"),
        "{}",
        d.log()
    );

    // Open again: healthy after one ok result.
    let _listener = TcpListener::bind(("127.0.0.1", port)).expect("bind again");
    wait(Duration::from_secs(8), "healthy again", || d.health().0 == 200);
    assert_eq!(entry(&d.health().1, "health_checks.ports[0]")["state"], "ok");
}

#[test]
fn the_bearer_token_guards_all_but_liveness() {
    let dir = tempfile::tempdir().expect("temp dir");
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cret-token\n").expect("token");
    let listen = format!("    bearer_token_file: {}\n", token_file.display());
    let d = Daemon::start(&listen, "", &[]);
    wait(Duration::from_secs(10), "ready", || {
        d.get("/ready", Some("s3cret-token")).0 == 200
    });
    for path in ["/health", "/ready", "/metrics"] {
        assert_eq!(d.get(path, None).0, 401, "{path} without a token");
        assert_eq!(d.get(path, Some("s3cret-tokeN")).0, 401, "{path} with a wrong token");
        assert_eq!(d.get(path, Some("s3cret-token")).0, 200, "{path} with the token");
    }
    for path in ["/alive", "/live"] {
        assert_eq!(d.get(path, None).0, 200, "{path}");
    }
    assert_eq!(d.get("/nothing", Some("s3cret-token")).0, 404);
}

#[test]
fn request_limits() {
    let d = Daemon::start("", "", &[]);
    d.wait_ready();
    let big = format!("GET /health HTTP/1.1\r\nX-Big: {}\r\n\r\n", "a".repeat(9000));
    assert_eq!(request(d.addr, &big).0, 431);
    assert_eq!(
        request(d.addr, "POST /health HTTP/1.1\r\nContent-Length: 0\r\n\r\n").0,
        405
    );
    assert_eq!(request(d.addr, "DELETE /metrics HTTP/1.1\r\n\r\n").0, 405);
    // Keep-alive: two requests on one connection.
    let mut s = TcpStream::connect(d.addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
    s.write_all(b"GET /alive HTTP/1.1\r\n\r\nGET /alive HTTP/1.1\r\nConnection: close\r\n\r\n")
        .expect("send");
    let mut both = String::new();
    let _ = s.read_to_string(&mut both);
    assert_eq!(both.matches("HTTP/1.1 200 OK").count(), 2, "{both}");
    // A hundred idle connections do not keep a new one out.
    let idle: Vec<TcpStream> = (0..100).map(|_| TcpStream::connect(d.addr).expect("connect")).collect();
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    assert_eq!(d.get("/alive", None).0, 200);
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    drop(idle);
    // HEAD: the headers of GET, no body.
    let (code, body) = request(d.addr, "HEAD /metrics HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_eq!((code, body.as_str()), (200, ""));
    // Connections in the middle of a request are not closed for a new one: beyond the
    // limit of 64, a new connection gets 503.
    std::thread::sleep(Duration::from_millis(300));
    let busy: Vec<TcpStream> = (0..64)
        .map(|_| {
            let mut s = TcpStream::connect(d.addr).expect("connect");
            s.write_all(b"GET /alive HTTP/1.1\r\n").expect("half a head");
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(d.get("/alive", None).0, 503);
    drop(busy);
    wait(Duration::from_secs(3), "room again", || d.get("/alive", None).0 == 200);
}

#[test]
fn sighup_with_a_broken_config_keeps_the_old_one() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let d = Daemon::start("", &port_check(port), &[]);
    d.wait_ready();
    write_config(
        &d.config,
        "health_checks:\n  ports:\n    - {name: web, prot: 80}\nthresholds:\n  cpu_warning: 101\n",
    );
    d.signal("HUP");
    // The refusal, then each problem on a line of its own.
    wait(Duration::from_secs(5), "the refusal and its problems logged", || {
        d.log().matches("ERROR reload: ").count() >= 3
    });
    let log = d.log();
    assert!(
        log.contains("health_checks.ports[0].prot: unknown key; did you mean 'port'?"),
        "{log}"
    );
    assert!(log.contains("thresholds.cpu_warning: 101"), "{log}");
    assert!(log.contains("reload refused: 3 problem(s)"), "{log}");
    std::thread::sleep(Duration::from_millis(1200));
    let (code, health) = d.health();
    assert_eq!(code, 200, "{health}");
    assert_eq!(entry(&health, "health_checks.ports[0]")["state"], "ok");
    // A valid one is taken.
    let second = format!("{}    - {{name: web2, port: {port}, timeout: 1}}\n", port_check(port));
    write_config(&d.config, &config_text(d.dir.path(), "", &second));
    d.signal("HUP");
    wait(Duration::from_secs(5), "the second check", || {
        let h = d.health().1;
        h["checks"].as_array().is_some_and(|a| {
            a.iter()
                .any(|c| c["entry"] == "health_checks.ports[1]" && c["state"] == "ok")
        })
    });
}

#[test]
fn sigterm_stops_within_a_second() {
    let mut d = Daemon::start("", "", &[]);
    d.wait_ready();
    let started = Instant::now();
    d.signal("TERM");
    loop {
        if let Some(status) = d.child.try_wait().expect("wait") {
            assert_eq!(status.code(), Some(0), "{}", d.log());
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(1), "still running after 1 s");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(d.log().contains("SIGTERM: stopping"));
    // The last results are kept for `status`.
    let last = std::fs::read_to_string(d.dir.path().join("state/monitor/last.json")).expect("last.json");
    assert!(last.contains("health_checks.resources"), "{last}");
}

#[test]
fn systemd_notifications() {
    let dir = tempfile::tempdir().expect("temp dir");
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let socket_env = socket_path.to_str().expect("utf-8");
    let _d = Daemon::start("", "", &[("NOTIFY_SOCKET", socket_env), ("WATCHDOG_USEC", "400000")]);
    let mut seen: Vec<String> = Vec::new();
    let mut buf = [0u8; 4096];
    let end = Instant::now() + Duration::from_secs(10);
    let has = |seen: &[String], p: &str| seen.iter().any(|m| m.lines().any(|l| l.starts_with(p)));
    while Instant::now() < end && !(has(&seen, "READY=1") && has(&seen, "STATUS=") && has(&seen, "WATCHDOG=1")) {
        if let Ok(n) = socket.recv(&mut buf) {
            seen.push(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    }
    assert!(has(&seen, "READY=1"), "{seen:?}");
    assert!(has(&seen, "WATCHDOG=1"), "{seen:?}");
    let status = seen.iter().find(|m| m.starts_with("STATUS=")).expect("a status");
    assert!(status.contains("checks") && !status.contains('\n'), "{status}");
    // The watchdog keeps coming at about half of WATCHDOG_USEC.
    let mut watchdogs = 0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(1) {
        if let Ok(n) = socket.recv(&mut buf) {
            watchdogs += usize::from(&buf[..n] == b"WATCHDOG=1");
        }
    }
    assert!((3..=7).contains(&watchdogs), "{watchdogs} watchdog messages in 1 s");
}

#[test]
fn a_hung_check_does_not_delay_a_fast_one() {
    // Accepts and never answers.
    let hung = TcpListener::bind("127.0.0.1:0").expect("bind");
    let hung_port = hung.local_addr().expect("addr").port();
    let held = Arc::new(Mutex::new(Vec::new()));
    let keep = held.clone();
    std::thread::spawn(move || {
        for s in hung.incoming().map_while(Result::ok) {
            keep.lock().expect("lock").push(s);
        }
    });
    let fast = TcpListener::bind("127.0.0.1:0").expect("bind");
    let fast_port = fast.local_addr().expect("addr").port();
    let checks = format!(
        "{}  http:\n    - {{name: stuck, url: 'http://127.0.0.1:{hung_port}/', timeout: 60, interval: 2}}\n",
        port_check(fast_port)
    );
    let d = Daemon::start("", &checks, &[]);
    let started = Instant::now();
    // The first cycle is done once the hung run passes its 2 s deadline.
    d.wait_ready();
    let ready_after = started.elapsed();
    assert!(ready_after < Duration::from_secs(4), "{ready_after:?}");
    std::thread::sleep(Duration::from_millis(3000));
    let asked = Instant::now();
    let (_, health) = d.health();
    assert!(
        asked.elapsed() < Duration::from_millis(500),
        "/health took {:?}",
        asked.elapsed()
    );
    let web = entry(&health, "health_checks.ports[0]");
    let stuck = entry(&health, "health_checks.http[0]");
    // About one run a second for the port check, hung or not.
    assert!(web["runs"].as_u64() >= Some(4), "{health}");
    assert_eq!(web["results"][0]["status"], "ok");
    assert_eq!(stuck["timed_out"], true, "{health}");
    let message = stuck["results"][0]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("no result within its deadline of 2.000 s"),
        "{message}"
    );
    // The hung run is never started twice: one connection so far.
    assert_eq!(held.lock().expect("lock").len(), 1, "{}", d.log());
    // Its later turns are skipped, not run: one run, one timeout, one warning.
    assert_eq!(
        (stuck["runs"].as_u64(), stuck["timeouts"].as_u64()),
        (Some(1), Some(1)),
        "{health}"
    );
    assert_eq!(
        d.log().matches("health_checks.http[0]: no result within").count(),
        1,
        "{}",
        d.log()
    );
}

#[test]
fn a_failing_service_is_handed_to_the_recovery_engine_with_backoff() {
    if Path::new("/run/systemd/system").exists() {
        eprintln!("skipped: this host runs systemd; the recovery of a real unit is tested on the test hosts");
        return;
    }
    // Without systemd the unit's state is unknown (a failure), and the engine refuses to
    // act: the daemon must hand the service over once confirmed failing, log the refusal
    // and wait (backoff) before the next attempt, one at a time.
    let checks = "  services:\n    - name: hx-daemon-test\n      recovery:\n        timeout: 1\n";
    let d = Daemon::start("", checks, &[]);
    d.wait_ready();
    wait(Duration::from_secs(10), "a second attempt", || {
        d.log().contains("(attempt 2)")
    });
    let log = d.log();
    assert!(
        log.contains("health_checks.services[0]: failing after 2 failed results in a row"),
        "{log}"
    );
    assert!(
        log.contains("hx-daemon-test.service: failing; running its recovery (attempt 1)"),
        "{log}"
    );
    assert!(
        log.contains("hx-daemon-test.service: recovery could not run: systemd is not running"),
        "{log}"
    );
    assert!(log.contains("next attempt in"), "{log}");
    // One at a time: every start is followed by its end before the next start.
    let events: Vec<&str> = log
        .lines()
        .filter_map(|l| {
            if l.contains("running its recovery") {
                Some("start")
            } else if l.contains("recovery could not run") {
                Some("end")
            } else {
                None
            }
        })
        .collect();
    for pair in events.chunks(2) {
        assert!(pair == ["start", "end"] || pair == ["start"], "{events:?}");
    }
    let (_, health) = d.health();
    assert_eq!(health["services"][0]["service"], "hx-daemon-test.service", "{health}");
    assert!(health["services"][0]["attempts"].as_u64() >= Some(1), "{health}");
}
