//! The real `reliability-monitor daemon`, in a temp dir, on loopback: its endpoints,
//! signals, systemd notifications and schedule, against listeners the tests open and close.

mod support;

use serde_json::Value;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::daemon::*;
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

/// Twenty process checks due each second read the process table once a second, not
/// twenty times (counted in the daemon's read syscalls against the processes there are).
#[test]
fn process_checks_due_together_read_the_process_table_once() {
    use std::os::unix::process::CommandExt;
    let tag = format!("hx-table-{}", std::process::id());
    let mut sleeper = std::process::Command::new("sleep")
        .arg0(&tag)
        .arg("120")
        .spawn()
        .expect("sleep starts");
    let checks: String = std::iter::once("  processes:\n".to_string())
        .chain((0..20).map(|_| format!("    - {{cmdline: '^{tag} '}}\n")))
        .collect();
    let d = Daemon::start("", &checks, &[]);
    d.wait_ready();
    std::thread::sleep(Duration::from_millis(1500));
    let pid = d.child.id();
    let runs = |h: &Value| entry(h, "health_checks.processes[0]")["runs"].as_u64().unwrap_or(0);
    let (_, before) = d.health();
    let reads_before = read_syscalls(pid);
    std::thread::sleep(Duration::from_secs(4));
    let reads = read_syscalls(pid) - reads_before;
    let (_, after) = d.health();
    let cycles = runs(&after) - runs(&before);
    let processes = std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_str().is_some_and(|n| n.parse::<u32>().is_ok()))
        .count() as u64;
    for i in 0..20 {
        let e = entry(&after, &format!("health_checks.processes[{i}]"));
        assert_eq!(e["results"][0]["status"], "ok", "{e}");
    }
    assert!(cycles >= 3, "{cycles} cycles in 4 s: {after}");
    // One reading is two reads each of `stat` and `cmdline` per process; each check then
    // reads its own process whole. Twenty readings would be over 120 per process.
    let per_cycle = reads / cycles;
    assert!(
        per_cycle <= 12 * processes + 1000,
        "{per_cycle} read syscalls per cycle with {processes} processes on the host"
    );
    let _ = sleeper.kill();
    let _ = sleeper.wait();
}

/// Entries due while every slot is taken wait for a run to end without spinning: the
/// daemon stays idle between results (a busy wait burns a core until the slot frees).
#[test]
fn a_check_waiting_for_a_slot_costs_no_cpu() {
    // Answers each request after 600 ms: with one slot, the other entries wait for it
    // most of every second.
    let slow = TcpListener::bind("127.0.0.1:0").expect("bind");
    let slow_port = slow.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for mut s in slow.incoming().map_while(Result::ok) {
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                let mut head = Vec::new();
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                std::thread::sleep(Duration::from_millis(600));
                let _ = s.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
            });
        }
    });
    let fast = TcpListener::bind("127.0.0.1:0").expect("bind");
    let fast_port = fast.local_addr().expect("addr").port();
    let checks = format!(
        "{}  http:\n    - {{name: slow, url: 'http://127.0.0.1:{slow_port}/', timeout: 5}}\n",
        port_check(fast_port)
    );
    let d = Daemon::start("  max_concurrent_checks: 1\n", &checks, &[]);
    d.wait_ready();
    std::thread::sleep(Duration::from_secs(1));
    let pid = d.child.id();
    let runs = |h: &Value, path: &str| entry(h, path)["runs"].as_u64().unwrap_or(0);
    let (_, before) = d.health();
    let ticks_before = cpu_ticks(pid);
    std::thread::sleep(Duration::from_secs(3));
    let ticks = cpu_ticks(pid) - ticks_before;
    let (_, after) = d.health();
    // Every entry still gets its turn each second.
    for path in [
        "health_checks.ports[0]",
        "health_checks.http[0]",
        "health_checks.resources",
    ] {
        let n = runs(&after, path) - runs(&before, path);
        assert!(n >= 2, "{path}: {n} runs in 3 s: {after}");
    }
    let hz = 100; // USER_HZ on Linux
    assert!(
        ticks * 1000 / hz <= 150,
        "{} ms of CPU in 3 s while checks waited for the slot",
        ticks * 1000 / hz
    );
}

/// Port and process entries due together are one run per kind (a batch), on one thread
/// and in one slot, each entry keeping its own result. Twenty ports that never answer
/// (a listener whose backlog is full drops the handshake) take their 0.4 s timeout
/// together: with two slots, one run per entry would take four seconds a cycle.
#[test]
fn ports_and_processes_due_together_run_as_one_batch_each() {
    use std::os::unix::process::CommandExt;
    let tag = format!("hx-batch-{}", std::process::id());
    let mut sleeper = std::process::Command::new("sleep")
        .arg0(&tag)
        .arg("120")
        .spawn()
        .expect("sleep starts");
    let open = TcpListener::bind("127.0.0.1:0").expect("bind");
    let open_port = open.local_addr().expect("addr").port();
    // Accepted and closed: forty handshakes a second would fill a backlog never taken.
    std::thread::spawn(move || for _ in open.incoming() {});
    let closed_port = {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let full = TcpListener::bind("127.0.0.1:0").expect("bind");
    let full_addr = full.local_addr().expect("addr");
    let mut queued = Vec::new();
    loop {
        match TcpStream::connect_timeout(&full_addr, Duration::from_millis(200)) {
            Ok(s) => queued.push(s),
            Err(_) => break,
        }
        assert!(queued.len() < 100_000, "the backlog never filled");
    }
    let mut checks = String::from("  ports:\n");
    for i in 0..40 {
        let port = if i == 7 { closed_port } else { open_port };
        checks.push_str(&format!("    - {{name: p{i}, port: {port}, timeout: 1}}\n"));
    }
    for i in 40..60 {
        checks.push_str(&format!(
            "    - {{name: p{i}, port: {}, timeout: 0.4}}\n",
            full_addr.port()
        ));
    }
    checks.push_str("  processes:\n");
    for i in 0..20 {
        let cmdline = if i == 3 {
            "^no such process$".to_string()
        } else {
            format!("^{tag} ")
        };
        checks.push_str(&format!("    - {{cmdline: '{cmdline}'}}\n"));
    }
    let d = Daemon::start("  max_concurrent_checks: 2\n", &checks, &[]);
    d.wait_ready();
    std::thread::sleep(Duration::from_millis(1500));
    let runs = |h: &Value, path: &str| entry(h, path)["runs"].as_u64().unwrap_or(0);
    let (_, before) = d.health();
    std::thread::sleep(Duration::from_secs(3));
    let (_, after) = d.health();
    for i in 0..60 {
        let path = format!("health_checks.ports[{i}]");
        let e = entry(&after, &path);
        let n = runs(&after, &path) - runs(&before, &path);
        assert!(n >= 2, "{path}: {n} runs in 3 s: {e}");
        let want = if i == 7 || i >= 40 { "critical" } else { "ok" };
        assert_eq!(e["results"][0]["status"], want, "{path}: {e}");
        assert_eq!(e["results"][0]["name"], format!("p{i}"), "{path}: {e}");
        assert_eq!(e["timeouts"], 0, "{path}: {e}");
    }
    for i in 0..20 {
        let path = format!("health_checks.processes[{i}]");
        let e = entry(&after, &path);
        assert!(runs(&after, &path) - runs(&before, &path) >= 2, "{path}: {e}");
        let want = if i == 3 { "critical" } else { "ok" };
        assert_eq!(e["results"][0]["status"], want, "{path}: {e}");
    }
    drop(queued);
    let _ = sleeper.kill();
    let _ = sleeper.wait();
}

/// A request head must be whole within 5 s of its first byte being awaited: one trickled a
/// byte at a time is answered 408 and closed, however steadily it trickles; a keep-alive
/// connection idle that long is closed; requests that come in time are served.
#[test]
fn a_request_trickled_past_the_time_limit_is_answered_408() {
    let d = Daemon::start("", "", &[]);
    d.wait_ready();
    let mut slow = TcpStream::connect(d.addr).expect("connect");
    slow.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let started = Instant::now();
    for byte in b"GET /metrics HTTP/1.1\r\nX-Slow: ".iter().cycle() {
        if slow.write_all(&[*byte]).is_err() || started.elapsed() > Duration::from_secs(8) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut answer = String::new();
    let _ = slow.read_to_string(&mut answer);
    let took = started.elapsed();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?} after {took:?}");
    assert!(
        took >= Duration::from_millis(4800) && took < Duration::from_secs(8),
        "{took:?}"
    );
    // Keep-alive: served, then closed once idle for the limit.
    let mut idle = TcpStream::connect(d.addr).expect("connect");
    idle.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    idle.write_all(b"GET /alive HTTP/1.1\r\n\r\n").expect("send");
    let started = Instant::now();
    let mut all = Vec::new();
    let _ = idle.read_to_end(&mut all);
    let took = started.elapsed();
    let text = String::from_utf8_lossy(&all);
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(
        took >= Duration::from_millis(4800) && took < Duration::from_secs(7),
        "closed after {took:?}"
    );
}
