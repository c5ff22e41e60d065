//! The `health_check` binary as Ansible runs it, against real things on this machine:
//! listeners that accept, refuse, accept late or never answer (an nftables rule in a
//! network namespace of the test's own), HTTP and HTTPS servers started by the test,
//! processes started by the test under unique names, the host's resources and a small
//! tmpfs filled past 90%. The engine's pure verdicts are unit-tested in
//! `reliability-checks`; here every probe is real.
//!
//! Tests that need root (network namespaces, mounting a tmpfs) say so and pass without it.

// The helpers too: a test that cannot set itself up should fail loudly.
#![allow(clippy::unwrap_used)]

use nix::sys::socket::{bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType, SockaddrIn};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use serde_json::{json, Value};
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};
use test_support::{drop_syns_to, read_head, NetnsError, DAY, DROPPED};

const BIN: &str = env!("CARGO_BIN_EXE_health_check");

// ---- running the module -------------------------------------------------------------------

struct Run {
    code: i32,
    result: Value,
    elapsed: Duration,
}

impl Run {
    /// The check called `name`; fails the test with the whole result if there is none.
    fn check(&self, name: &str) -> &Value {
        let checks = self.result["checks"]
            .as_array()
            .unwrap_or_else(|| panic!("no checks: {}", self.result));
        checks.iter().find(|c| c["name"] == name).unwrap_or_else(|| {
            let names: Vec<&Value> = checks.iter().map(|c| &c["name"]).collect();
            panic!("no check {name:?} among {names:?}: {}", self.result)
        })
    }

    /// `status: message` of the check called `name`.
    fn verdict(&self, name: &str) -> String {
        let c = self.check(name);
        format!(
            "{}: {}",
            c["status"].as_str().unwrap_or("?"),
            c["message"].as_str().unwrap_or("?")
        )
    }

    fn status(&self, name: &str) -> &str {
        self.check(name)["status"].as_str().unwrap_or("?")
    }

    fn msg(&self) -> &str {
        self.result["msg"].as_str().unwrap_or_default()
    }
}

/// Runs the binary as Ansible does, with `args` in a file; `fail_on: never` unless given,
/// so that every test sees every check; a state directory of its own unless given, so that
/// no test reads or writes the host's.
fn run(mut args: Value) -> Run {
    if args.get("fail_on").is_none() {
        args["fail_on"] = json!("never");
    }
    let state = tempfile::tempdir().unwrap();
    if args.get("state_dir").is_none() {
        args["state_dir"] = json!(state.path().join("state"));
    }
    run_exact(&args, Command::new(BIN))
}

fn run_exact(args: &Value, mut command: Command) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("args");
    std::fs::write(&path, args.to_string()).unwrap();
    let started = Instant::now();
    let out = command.arg(&path).output().unwrap();
    let elapsed = started.elapsed();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "stdout must be one line: {stdout:?}");
    let result: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(result["changed"], json!(false), "{result}");
    Run {
        code: out.status.code().unwrap_or(-1),
        result,
        elapsed,
    }
}

fn is_root() -> bool {
    nix::unistd::Uid::effective().is_root()
}

// ---- listeners ------------------------------------------------------------------------------

/// A listener on 127.0.0.1 that accepts and closes every connection.
fn open_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        for stream in listener.incoming() {
            drop(stream);
        }
    });
    port
}

/// A port on 127.0.0.1 that nothing listens on (it was free a moment ago).
fn closed_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A listener whose accept queue is full: the next SYN is dropped and the client sends it
/// again after the kernel's initial retransmission timeout of 1 s, when the listener has
/// made room. A connect latency of about a second, on loopback, without netem.
fn slow_port() -> u16 {
    let fd = socket(AddressFamily::Inet, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).unwrap();
    bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::new(127, 0, 0, 1, 0)).unwrap();
    listen(&fd, Backlog::new(0).unwrap()).unwrap();
    let listener = TcpListener::from(fd);
    let addr = listener.local_addr().unwrap();
    let queued = TcpStream::connect(addr).unwrap();
    thread::spawn(move || {
        thread::sleep(Duration::from_millis(300));
        let _keep = queued;
        let _first = listener.accept();
        let _second = listener.accept();
        thread::sleep(Duration::from_secs(30));
    });
    addr.port()
}

// ---- HTTP and HTTPS servers -----------------------------------------------------------------

fn response(status: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// An HTTP server on 127.0.0.1 that waits `delay`, then answers every request the same.
fn http_server(status: &'static str, body: &'static str, delay: Duration) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            thread::spawn(move || {
                read_head(&mut stream);
                thread::sleep(delay);
                let _ = stream.write_all(&response(status, body));
            });
        }
    });
    format!("http://{addr}/health")
}

/// An HTTPS server with a self-signed certificate for 127.0.0.1 valid for `valid_for`
/// seconds more; returns its URL and the certificate in PEM.
fn https_server(valid_for: i64) -> (String, String) {
    let server = test_support::https_server(valid_for, serve_secure);
    (format!("https://{}/", server.addr), server.cert_pem)
}

/// Answers one request with 200 "secure".
fn serve_secure(config: Arc<ServerConfig>, stream: TcpStream) {
    let Ok(conn) = ServerConnection::new(config) else {
        return;
    };
    let mut tls = StreamOwned::new(conn, stream);
    if read_head(&mut tls).is_empty() {
        return;
    }
    let _ = tls.write_all(&response("200 OK", "secure"));
    tls.conn.send_close_notify();
    let _ = tls.flush();
}

// ---- processes --------------------------------------------------------------------------------

/// Processes started by a test, killed when it ends.
struct Procs(Vec<Child>);

impl Procs {
    fn start(&mut self, command: &mut Command) -> u32 {
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let pid = child.id();
        self.0.push(child);
        pid
    }
}

impl Drop for Procs {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A copy of `sleep` called `name` (at most 15 bytes: the kernel's command name).
fn renamed_sleep(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::copy("/bin/sleep", &path).unwrap();
    path
}

/// A name no other process on this machine has.
fn unique(prefix: &str) -> String {
    format!("{prefix}{}", std::process::id() % 100_000)
}

/// Waits until `pid` has exec'd (its command name is no longer the test binary's).
fn wait_exec(pid: u32, name: &str) {
    for _ in 0..200 {
        if std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == name) {
            return;
        }
        thread::sleep(Duration::from_millis(10));
    }
    panic!("process {pid} never became {name}");
}

// ---- ports ------------------------------------------------------------------------------------

#[test]
fn ports_open_closed_slow_and_unresolvable() {
    let (open, closed, slow) = (open_port(), closed_port(), slow_port());
    let r = run(json!({"ports": [
        {"port": open, "latency_warning": 500, "latency_critical": 3000},
        {"name": "db", "port": closed, "timeout": 2},
        {"name": "slow", "port": slow, "latency_warning": 500, "latency_critical": 3000},
        {"name": "must be closed", "port": closed, "state": "closed"},
        {"name": "must be closed but is open", "port": open, "state": "closed"},
        {"name": "by name", "host": "localhost", "port": open},
        {"name": "nowhere", "host": "no-such-host.invalid", "port": 80, "timeout": 2},
    ]}));
    assert_eq!(r.code, 0, "{}", r.result);
    let open_name = format!("127.0.0.1:{open}");
    let v = r.verdict(&open_name);
    assert!(v.starts_with(&format!("ok: port {open_name} open in ")), "{v}");
    assert_eq!(r.check(&open_name)["unit"], "ms");
    assert_eq!(r.check(&open_name)["warning"], "500");
    assert!(r.check(&open_name)["perfdata"]
        .as_str()
        .unwrap()
        .ends_with("ms;500;3000"));
    assert_eq!(
        r.verdict("db"),
        format!("critical: port 127.0.0.1:{closed} closed: connection refused")
    );
    let slow_check = r.check("slow");
    assert_eq!(slow_check["status"], "warning", "{slow_check}");
    let latency = slow_check["value"].as_f64().unwrap();
    assert!(
        (900.0..3000.0).contains(&latency),
        "one SYN retransmission, about 1 s: {latency} ms"
    );
    assert_eq!(
        r.verdict("must be closed"),
        format!("ok: port 127.0.0.1:{closed} closed (connection refused)")
    );
    assert_eq!(
        r.verdict("must be closed but is open"),
        format!("critical: port 127.0.0.1:{open} open, expected closed")
    );
    assert_eq!(r.status("by name"), "ok", "{}", r.check("by name"));
    assert_eq!(r.status("nowhere"), "unknown");
    assert_eq!(r.result["status"], "unhealthy");
    assert_eq!(
        r.result["counts"],
        json!({"ok": 3, "warning": 1, "critical": 2, "unknown": 1})
    );
}

#[test]
fn ports_over_ipv6_and_many_hosts_per_check() {
    let v4 = open_port();
    let Ok(v6) = TcpListener::bind("[::1]:0") else {
        test_support::skip("::1 is not configured");
        return;
    };
    let v6_port = v6.local_addr().unwrap().port();
    thread::spawn(move || {
        for s in v6.incoming() {
            drop(s);
        }
    });
    let r = run(json!({"ports": [
        {"port": v6_port, "host": "::1"},
        {"name": "both", "hosts": ["127.0.0.1", "[::1]"], "port": v4},
    ]}));
    assert_eq!(r.status(&format!("[::1]:{v6_port}")), "ok");
    assert_eq!(r.status(&format!("both 127.0.0.1:{v4}")), "ok");
    // Nothing listens on [::1] at the IPv4 listener's port.
    assert_eq!(
        r.verdict(&format!("both [::1]:{v4}")),
        format!("critical: port [::1]:{v4} closed: connection refused")
    );
}

/// [`test_support::in_private_netns`]; `None` (after saying why) without root.
fn in_private_netns<R: Send + 'static>(nft_rules: String, f: impl FnOnce() -> R + Send + 'static) -> Option<R> {
    match test_support::in_private_netns(nft_rules, f) {
        Ok(r) => Some(r),
        Err(NetnsError::NotRoot) => {
            test_support::skip("needs root to make a network namespace");
            None
        }
        // Root, yet no namespace: something is broken here, say so loudly.
        Err(NetnsError::Failed(why)) => panic!("cannot make a private network namespace: {why}"),
    }
}

#[test]
fn two_hundred_ports_half_unanswered_take_about_one_timeout() {
    let outcome = in_private_netns(drop_syns_to(DROPPED), || {
        let open = open_port();
        let ports: Vec<Value> = (0..200)
            .map(|i| json!({"port": if i % 2 == 0 { open } else { DROPPED }, "timeout": 1, "name": format!("p{i}")}))
            .collect();
        (run(json!({"ports": ports})), open)
    });
    let Some((r, open)) = outcome else { return };
    assert!(r.elapsed < Duration::from_secs(10), "200 checks took {:?}", r.elapsed);
    assert!(
        r.elapsed >= Duration::from_secs(1),
        "the dropped ones wait their timeout: {:?}",
        r.elapsed
    );
    assert_eq!(
        r.result["counts"],
        json!({"ok": 100, "warning": 0, "critical": 100, "unknown": 0})
    );
    assert!(r
        .verdict("p0")
        .starts_with(&format!("ok: port 127.0.0.1:{open} open in ")));
    assert_eq!(r.verdict("p1"), "critical: port 127.0.0.1:9 closed: timed out after 1s");
    let duration = r.result["duration_ms"].as_f64().unwrap();
    assert!(duration < 10_000.0, "{duration}");
    eprintln!(
        "200 port checks (100 dropped, 1 s timeout): {:?} wall, {duration} ms in the module",
        r.elapsed
    );
}

// ---- HTTP ------------------------------------------------------------------------------------

#[test]
fn http_statuses_bodies_and_latency() {
    let ok = http_server("200 OK", r#"{"status": "ok", "db": "up"}"#, Duration::ZERO);
    let broken = http_server("500 Internal Server Error", "db down", Duration::ZERO);
    let slow = http_server("200 OK", "ok", Duration::from_millis(400));
    let bad_body = http_server("200 OK", r#"{"status": "degraded", "db": "down"}"#, Duration::ZERO);
    let closed = format!("http://127.0.0.1:{}/", closed_port());
    let r = run(json!({"http": [
        {"name": "ok", "url": ok, "body_contains": "\"status\": \"ok\"", "body_regex": "\"db\":\\s*\"up\""},
        {"name": "500", "url": broken},
        {"name": "500 expected", "url": broken, "status_codes": [500, 503]},
        {"name": "slow", "url": slow, "latency_warning": 200, "latency_critical": 5000},
        {"name": "too slow", "url": slow, "timeout": 0.2},
        {"name": "bad body", "url": bad_body, "body_contains": "\"status\": \"ok\""},
        {"name": "head", "url": ok, "method": "HEAD"},
        {"name": "refused", "url": closed},
    ]}));
    assert!(
        r.verdict("ok").starts_with(&format!("ok: GET {ok}: 200, in ")),
        "{}",
        r.verdict("ok")
    );
    assert_eq!(r.check("ok")["details"]["status_code"], 200);
    assert!(
        r.verdict("500")
            .starts_with(&format!("critical: GET {broken}: status 500, expected 200, in ")),
        "{}",
        r.verdict("500")
    );
    assert_eq!(r.status("500 expected"), "ok");
    let slow_check = r.check("slow");
    assert_eq!(slow_check["status"], "warning", "{slow_check}");
    assert!(slow_check["value"].as_f64().unwrap() >= 400.0, "{slow_check}");
    assert!(
        slow_check["message"]
            .as_str()
            .unwrap()
            .ends_with("ms (warning: above 200)"),
        "{slow_check}"
    );
    assert_eq!(
        r.verdict("too slow"),
        format!("critical: GET {slow}: timed out after 200ms")
    );
    assert!(
        r.verdict("bad body").starts_with(&format!(
            "critical: GET {bad_body}: body does not contain '\"status\": \"ok\"', 200"
        )),
        "{}",
        r.verdict("bad body")
    );
    assert_eq!(r.status("head"), "ok");
    assert_eq!(
        r.verdict("refused"),
        format!("critical: GET {closed}: connection refused")
    );
    // Eight URLs, two of them waiting 400 ms: together, not one after the other.
    assert!(r.elapsed < Duration::from_millis(2500), "{:?}", r.elapsed);
}

/// A `ca_file` that is `/dev/zero` (never ends) or a FIFO (never opens) is refused at once,
/// by path: the run ends, in bounded memory, with the check critical.
#[test]
fn a_special_ca_file_is_refused_at_once() {
    let (url, _) = https_server(5 * DAY);
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("ca.fifo");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let args = json!({"fail_on": "never", "http": [
        {"name": "zero", "url": url, "ca_file": "/dev/zero", "timeout": 5},
        {"name": "fifo", "url": url, "ca_file": fifo, "timeout": 5},
    ]});
    let path = dir.path().join("args");
    std::fs::write(&path, args.to_string()).unwrap();
    let started = Instant::now();
    let mut child = Command::new(BIN)
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(10) {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("health_check did not end within 10 s");
        }
        thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let r = Run {
        code: out.status.code().unwrap_or(-1),
        result: serde_json::from_slice(&out.stdout).unwrap(),
        elapsed: started.elapsed(),
    };
    assert_eq!(
        r.verdict("zero"),
        format!("critical: GET {url}: ca_file: '/dev/zero' is a character device, not a regular file")
    );
    assert_eq!(
        r.verdict("fifo"),
        format!(
            "critical: GET {url}: ca_file: '{}' is a FIFO, not a regular file",
            fifo.display()
        )
    );
    assert!(r.elapsed < Duration::from_secs(3), "{:?}", r.elapsed);
}

#[test]
fn https_self_signed_near_expiry_with_ca_file() {
    let (url, pem) = https_server(5 * DAY);
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, pem).unwrap();
    let r = run(json!({"http": [
        {"name": "trusted", "url": url, "ca_file": ca_file, "body_contains": "secure"},
        {"name": "relaxed levels", "url": url, "ca_file": ca_file, "tls_expiry_critical": 3},
        {"name": "untrusted", "url": url},
        {"name": "unverified", "url": url, "validate_certs": false},
    ]}));
    let trusted = r.check("trusted");
    assert_eq!(trusted["status"], "critical", "{trusted}");
    let message = trusted["message"].as_str().unwrap();
    assert!(
        message.starts_with(&format!(
            "GET {url}: certificate expires in 4.99 days (critical: below 7), 200, in "
        )) || message.starts_with(&format!(
            "GET {url}: certificate expires in 5 days (critical: below 7), 200, in "
        )),
        "{message}"
    );
    let days = trusted["details"]["tls"]["days_left"].as_f64().unwrap();
    assert!((4.9..=5.0).contains(&days), "{days}");
    assert!(
        trusted["perfdata"].as_str().unwrap().contains("tls_days'=5;30:;7:")
            || trusted["perfdata"].as_str().unwrap().contains("tls_days'=4.99;30:;7:"),
        "{trusted}"
    );
    assert_eq!(r.status("relaxed levels"), "warning", "{}", r.check("relaxed levels"));
    let untrusted = r.check("untrusted");
    assert_eq!(untrusted["status"], "critical");
    assert!(
        untrusted["message"].as_str().unwrap().contains("UnknownIssuer"),
        "{untrusted}"
    );
    assert!(
        untrusted["details"]["tls"]["days_left"].as_f64().unwrap() < 5.01,
        "the certificate is reported anyway"
    );
    assert_eq!(
        r.status("unverified"),
        "critical",
        "verification off, expiry still judged"
    );
}

// ---- processes --------------------------------------------------------------------------------

#[test]
fn processes_by_name_cmdline_pidfile_and_user() {
    let dir = tempfile::tempdir().unwrap();
    let mut procs = Procs(Vec::new());
    let name = unique("hcsl");
    let exe = renamed_sleep(dir.path(), &name);
    let a = procs.start(Command::new(&exe).arg("1000"));
    let b = procs.start(Command::new(&exe).arg("1000"));
    // A unique command line; and one of them runs as nobody.
    let token = format!("999{}.5", std::process::id());
    let c = procs.start(Command::new("/bin/sleep").arg(&token));
    let d = procs.start(Command::new("/bin/sleep").arg(&token).uid(65534).gid(65534));
    for pid in [a, b] {
        wait_exec(pid, &name);
    }
    for pid in [c, d] {
        wait_exec(pid, "sleep");
    }
    let pidfile = dir.path().join("app.pid");
    std::fs::write(&pidfile, format!("{a}\n")).unwrap();
    let stale = dir.path().join("stale.pid");
    std::fs::write(&stale, "999999999\n").unwrap();
    let cmdline = format!("^/bin/sleep {}$", token.replace('.', "\\."));
    let r = run(json!({"processes": [
        {"name": name},
        {"name": name, "min_count": 3},
        {"name": name, "max_count": 1},
        {"cmdline": cmdline},
        {"cmdline": cmdline, "user": "nobody"},
        {"cmdline": cmdline, "user": "65534", "min_count": 0, "max_count": 0},
        {"pidfile": pidfile},
        {"pidfile": stale},
        {"name": "no-such-proc-hc", "min_count": 0, "max_count": 0},
    ]}));
    let by_name = format!("process {name}");
    let mut pids = [a, b];
    pids.sort_unstable();
    assert!(
        r.verdict(&by_name).starts_with(&format!(
            "ok: {by_name}: 2 processes (pids {}, {}), total rss ",
            pids[0], pids[1]
        )),
        "{}",
        r.verdict(&by_name)
    );
    assert_eq!(r.check(&by_name)["value"], 2.0);
    assert_eq!(r.check(&by_name)["details"]["pids"], json!(pids));
    let checks = r.result["checks"].as_array().unwrap();
    let verdicts: Vec<String> = checks
        .iter()
        .map(|c| format!("{}: {}", c["status"].as_str().unwrap(), c["message"].as_str().unwrap()))
        .collect();
    assert!(
        verdicts[1].starts_with(&format!("critical: {by_name}: 2 processes (critical: below 3)")),
        "{}",
        verdicts[1]
    );
    assert!(
        verdicts[2].starts_with(&format!("critical: {by_name}: 2 processes (critical: above 1)")),
        "{}",
        verdicts[2]
    );
    assert!(
        verdicts[3].starts_with(&format!("ok: process cmdline~'{cmdline}': 2 processes")),
        "{}",
        verdicts[3]
    );
    assert!(
        verdicts[4].starts_with(&format!(
            "ok: process cmdline~'{cmdline}' user nobody: 1 processes (pids {d})"
        )),
        "{}",
        verdicts[4]
    );
    assert!(
        verdicts[5].starts_with(&format!(
            "critical: process cmdline~'{cmdline}' user 65534: 1 processes (critical: above 0)"
        )),
        "{}",
        verdicts[5]
    );
    assert!(
        verdicts[6].starts_with(&format!(
            "ok: process pidfile {}: 1 processes (pids {a})",
            pidfile.display()
        )),
        "{}",
        verdicts[6]
    );
    assert_eq!(
        verdicts[7],
        format!(
            "critical: process pidfile {s}: 0 processes (critical: below 1), pid 999999999 from {s} is not running",
            s = stale.display()
        )
    );
    assert_eq!(verdicts[8], "ok: process no-such-proc-hc: no processes");
}

#[test]
fn process_usage_levels() {
    let mut procs = Procs(Vec::new());
    // 64 MiB resident, one busy core, and a sleep holding seven file descriptors.
    let tag = unique("hc");
    let hog = procs.start(Command::new("/usr/bin/python3").args([
        "-c",
        &format!(
            "import time; x = bytearray(64 << 20); x[::4096] = b'1' * len(x[::4096]); time.sleep(1000) # {tag}-hog"
        ),
    ]));
    let busy = procs.start(Command::new("/bin/sh").args(["-c", &format!("while :; do :; done # {tag}-busy")]));
    let fds = procs.start(Command::new("/bin/sh").args([
        "-c",
        &format!(
            "exec 3</dev/null 4</dev/null 5</dev/null 6</dev/null; exec /bin/sleep 1000.{}",
            std::process::id()
        ),
    ]));
    wait_exec(fds, "sleep");
    // Let the hog touch its pages.
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::read_to_string(format!("/proc/{hog}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0)
        < 60 << 10
    {
        assert!(Instant::now() < deadline, "python never grew");
        thread::sleep(Duration::from_millis(50));
    }
    // What the busy loop gets depends on how loaded the machine is: measure it first and
    // judge the module against a third of that, not against a fixed share of a core.
    let observed = cpu_share(busy, Duration::from_millis(500));
    let threshold = (observed / 3.0).max(0.5);
    let r = run(json!({"sample_interval": 0.5, "processes": [
        {"cmdline": format!("{tag}-hog"), "rss_critical": "32M"},
        {"cmdline": format!("{tag}-hog"), "rss_critical": "1G", "total_rss_warning": "32M"},
        {"cmdline": format!("{tag}-busy"), "cpu_warning": threshold},
        {"cmdline": format!("sleep 1000\\.{}$", std::process::id()), "fds_critical": 5, "total_fds_warning": 100},
    ]}));
    let checks = r.result["checks"].as_array().unwrap();
    let verdict = |i: usize| {
        format!(
            "{}: {}",
            checks[i]["status"].as_str().unwrap(),
            checks[i]["message"].as_str().unwrap()
        )
    };
    assert!(
        verdict(0).starts_with(&format!("critical: process cmdline~'{tag}-hog': pid {hog} rss ")),
        "{}",
        verdict(0)
    );
    assert!(verdict(0).contains("MiB (critical: above 32 MiB)"), "{}", verdict(0));
    assert!(verdict(1).starts_with("warning: "), "{}", verdict(1));
    assert!(verdict(1).contains("(warning: above 32 MiB)"), "{}", verdict(1));
    let cpu = checks[2]["details"]["processes"][0]["cpu_percent"].as_f64().unwrap();
    assert_eq!(checks[2]["details"]["pids"], json!([busy]));
    assert!(
        cpu > threshold,
        "a busy loop that used {observed:.1}% of a core just before is seen at {cpu}%"
    );
    assert!(
        verdict(2).starts_with(&format!("warning: process cmdline~'{tag}-busy': pid {busy} cpu ")),
        "{}",
        verdict(2)
    );
    // Seven at least: stdio and 3-6 (more if the test runner leaked some of its own).
    assert!(
        checks[3]["details"]["processes"][0]["open_fds"].as_u64().unwrap() >= 7,
        "{}",
        checks[3]
    );
    assert!(
        verdict(3).starts_with(&format!(
            "critical: process cmdline~'sleep 1000\\.{}$': pid {fds} fds ",
            std::process::id()
        )),
        "{}",
        verdict(3)
    );
    assert!(verdict(3).contains("(critical: above 5)"), "{}", verdict(3));
}

/// Percent of one core `pid` used over `window`, from its utime + stime in /proc.
fn cpu_share(pid: u32, window: Duration) -> f64 {
    let ticks = || -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
        let rest = &stat[stat.rfind(')').expect("comm") + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        fields[11].parse::<u64>().expect("utime") + fields[12].parse::<u64>().expect("stime")
    };
    let before = ticks();
    let started = Instant::now();
    thread::sleep(window);
    let used = ticks() - before;
    // USER_HZ is 100 on Linux.
    used as f64 / 100.0 / started.elapsed().as_secs_f64() * 100.0
}

// ---- resources ---------------------------------------------------------------------------------

#[test]
fn resources_that_must_pass_and_must_fail() {
    let pass = run(json!({"resources": {
        "include": ["cpu", "memory", "swap", "load", "disk", "network"],
        "cpu_warning": 100.5, "cpu_critical": "~:", "memory_warning": 100, "memory_critical": 100,
        "disks": ["/", "/tmp"], "disk_warning": 100, "disk_critical": 100, "interfaces": ["lo"],
    }, "sample_interval": 0.2}));
    assert_eq!(pass.code, 0, "{}", pass.result);
    assert_eq!(pass.result["status"], "healthy", "{}", pass.result);
    for name in [
        "cpu",
        "memory",
        "swap",
        "load",
        "disk /",
        "disk /tmp",
        "net lo rx",
        "net lo tx",
        "net lo errors",
    ] {
        assert_eq!(pass.status(name), "ok", "{name}: {}", pass.check(name));
    }
    // A fresh state directory: no kept reading, so a `cpu_sample` (0.1 s) sample.
    let cpu = &pass.check("cpu")["details"];
    let sampled = cpu["window_s"].as_f64().unwrap();
    assert!((0.1..0.4).contains(&sampled), "{sampled}");
    assert_eq!(cpu["source"], "sampled");
    assert_eq!(pass.check("net lo rx")["unit"], "bytes/s");

    let fail = run(
        json!({"resources": {"include": ["memory", "disk"], "memory_critical": 0, "disk_warning": "@0:100"}, "fail_on": "critical"}),
    );
    assert_eq!(fail.code, 1, "{}", fail.result);
    assert_eq!(fail.result["failed"], true);
    let memory = fail.verdict("memory");
    assert!(
        memory.starts_with("critical: memory is ") && memory.contains("% (critical: above 0) ("),
        "{memory}"
    );
    assert!(
        fail.verdict("disk /").starts_with("warning: disk / is "),
        "{}",
        fail.verdict("disk /")
    );
    assert!(
        fail.msg()
            .starts_with("unhealthy: 1 critical, 1 warning of 3 checks: memory is "),
        "{}",
        fail.msg()
    );
    // The failed task still carries every check.
    assert_eq!(fail.result["checks"].as_array().map(Vec::len), Some(3));
}

/// A 4 MiB tmpfs filled past 90%: the disk check reads `df`'s percentage.
#[test]
fn a_small_tmpfs_filled_past_ninety_percent() {
    if !is_root() {
        test_support::skip("needs root to mount a tmpfs");
        return;
    }
    struct Mounted(PathBuf);
    impl Drop for Mounted {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let status = Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            "size=4m,nr_inodes=64",
            "hc-test",
            dir.path().to_str().unwrap(),
        ])
        .status()
        .unwrap();
    assert!(status.success(), "mount tmpfs: {status}");
    let mount = Mounted(dir.path().to_path_buf());
    std::fs::write(mount.0.join("fill"), vec![1u8; 3800 * 1024]).unwrap();
    for i in 0..58 {
        std::fs::write(mount.0.join(format!("f{i}")), b"").unwrap();
    }
    let df = Command::new("df")
        .args(["--output=pcent,ipcent"])
        .arg(&mount.0)
        .output()
        .unwrap();
    let df = String::from_utf8_lossy(&df.stdout)
        .lines()
        .nth(1)
        .unwrap_or_default()
        .to_string();
    let r = run(
        json!({"resources": {"include": ["disk"], "disks": [mount.0], "disk_warning": 85, "disk_critical": 90, "inode_warning": 80}}),
    );
    let path = mount.0.display().to_string();
    let disk = r.check(&format!("disk {path}"));
    let inodes = r.check(&format!("inodes {path}"));
    let df: Vec<f64> = df
        .split_whitespace()
        .filter_map(|f| f.trim_end_matches('%').parse().ok())
        .collect();
    assert_eq!(df.len(), 2, "df --output=pcent,ipcent");
    assert_eq!(disk["value"].as_f64(), Some(df[0]), "module {disk} vs df {df:?}");
    assert_eq!(inodes["value"].as_f64(), Some(df[1]), "module {inodes} vs df {df:?}");
    assert!(df[0] > 90.0, "{df:?}");
    assert_eq!(disk["status"], "critical", "{disk}");
    assert!(
        disk["message"].as_str().unwrap().contains("% (critical: above 90) ("),
        "{disk}"
    );
    assert_eq!(inodes["status"], "warning", "{inodes}");
    drop(mount);
}

// ---- services on a host without systemd -----------------------------------------------------------

#[test]
fn services_without_systemd_are_unknown_not_a_crash() {
    if Path::new("/run/systemd/system").is_dir() {
        eprintln!("SKIPPED: this host runs systemd (the systemd cases run on the nspawn test hosts)");
        return;
    }
    let r = run(
        json!({"services": [{"name": "ssh"}, {"unit": "cron.service", "state": "stopped"}], "fail_on": "critical"}),
    );
    assert_eq!(r.code, 1);
    assert_eq!(
        r.verdict("ssh.service"),
        "unknown: ssh.service: systemd is not running on this host (PID 1 is not systemd)"
    );
    assert_eq!(r.status("cron.service"), "unknown");
    assert_eq!(r.result["status"], "degraded");
    assert_eq!(
        r.result["failed"], true,
        "a gate does not pass on what it could not verify"
    );
}

// ---- the module contract --------------------------------------------------------------------------

#[test]
fn fail_on_decides_failed_and_every_check_is_returned() {
    let (open, closed) = (open_port(), closed_port());
    let ports = json!([{"port": open, "latency_warning": "@0:"}, {"port": closed, "state": "closed"}]);
    let gate = |fail_on: &str| run(json!({"ports": ports, "fail_on": fail_on}));
    let r = gate("critical");
    assert_eq!((r.code, r.result.get("failed")), (0, None), "{}", r.result);
    assert_eq!(r.result["status"], "degraded");
    assert!(
        r.msg().starts_with(&format!(
            "degraded: 1 warning of 2 checks: port 127.0.0.1:{open} open in "
        )),
        "{}",
        r.msg()
    );
    let r = gate("warning");
    assert_eq!((r.code, &r.result["failed"]), (1, &json!(true)), "{}", r.result);
    assert_eq!(r.result["checks"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        r.result["counts"],
        json!({"ok": 1, "warning": 1, "critical": 0, "unknown": 0})
    );
    let r = gate("never");
    assert_eq!((r.code, r.result.get("failed")), (0, None));
    let all_ok = run(json!({"ports": [{"port": open}], "fail_on": "warning"}));
    assert_eq!(all_ok.msg(), "healthy: 1 check ok");
    assert!(all_ok.result["perfdata"]
        .as_str()
        .unwrap()
        .starts_with(&format!("127.0.0.1:{open}=")));
}

#[test]
fn check_mode_runs_the_same_read_only_checks() {
    let open = open_port();
    let r = run(json!({"ports": [{"port": open}], "_ansible_check_mode": true, "_ansible_diff": true}));
    assert_eq!(r.code, 0);
    assert_eq!(r.result["status"], "healthy");
    assert_eq!(r.result["invocation"]["module_args"]["ports"][0]["port"], open);
}

// ---- the kept CPU reading ------------------------------------------------------------------

/// Only the CPU, in `state`, with `extra` options.
fn cpu_run(state: &Path, extra: Value) -> Run {
    let mut args = json!({"resources": {"include": ["cpu"]}, "state_dir": state});
    for (k, v) in extra.as_object().unwrap() {
        if k == "resources" {
            for (rk, rv) in v.as_object().unwrap() {
                args["resources"][rk] = rv.clone();
            }
        } else {
            args[k] = v.clone();
        }
    }
    run(args)
}

fn warnings(r: &Run) -> Vec<String> {
    r.result["warnings"]
        .as_array()
        .map(|w| w.iter().filter_map(|s| s.as_str().map(String::from)).collect())
        .unwrap_or_default()
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::symlink_metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn cpu_busy_from_the_previous_run_within_its_window() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let first = cpu_run(&state, json!({}));
    let cpu = &first.check("cpu")["details"];
    assert_eq!(cpu["source"], "sampled", "{}", first.result);
    assert_eq!(cpu["sampled_because"], "none");
    let window = cpu["window_s"].as_f64().unwrap();
    assert!((0.1..0.4).contains(&window), "{window}");
    assert!(warnings(&first).is_empty(), "{}", first.result);
    let kept = state.join("cpu_sample/host.json");
    assert_eq!(mode(&kept), 0o600);
    assert_eq!(mode(&state.join("cpu_sample")), 0o700);

    let pause = Duration::from_millis(1200);
    thread::sleep(pause);
    let second = cpu_run(&state, json!({}));
    let cpu = &second.check("cpu")["details"];
    assert_eq!(cpu["source"], "previous_sample", "{}", second.result);
    // The window is the time between the two runs' readings: the pause and a run's worth.
    let window = cpu["window_s"].as_f64().unwrap();
    assert!((1.2..3.0).contains(&window), "{window}");
    assert!(
        cpu["usage"].is_null() && second.check("cpu")["value"].is_number(),
        "{}",
        second.result
    );
    // No wait: the run took less than the fresh sample it no longer needs.
    assert!(
        second.elapsed < first.elapsed + Duration::from_millis(500),
        "{:?}",
        second.elapsed
    );

    // Older than cpu_max_age: sampled afresh.
    thread::sleep(Duration::from_millis(600));
    let stale = cpu_run(&state, json!({"resources": {"cpu_max_age": 0.5}}));
    assert_eq!(
        stale.check("cpu")["details"]["sampled_because"],
        "too_old",
        "{}",
        stale.result
    );
    // Reuse turned off.
    let off = cpu_run(&state, json!({"resources": {"cpu_max_age": 0}}));
    assert_eq!(
        off.check("cpu")["details"]["sampled_because"],
        "disabled",
        "{}",
        off.result
    );
}

#[test]
fn a_reading_of_another_boot_is_not_used() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    cpu_run(&state, json!({}));
    let kept = state.join("cpu_sample/host.json");
    let mut record: Value = serde_json::from_slice(&std::fs::read(&kept).unwrap()).unwrap();
    for reading in record["readings"].as_array_mut().unwrap() {
        reading["boot_id"] = json!("00000000-0000-0000-0000-000000000000");
    }
    std::fs::write(&kept, record.to_string()).unwrap();
    thread::sleep(Duration::from_millis(200));
    let r = cpu_run(&state, json!({}));
    assert_eq!(
        r.check("cpu")["details"]["sampled_because"],
        "other_boot",
        "{}",
        r.result
    );
    assert!(warnings(&r).is_empty(), "{}", r.result);
}

#[test]
fn check_mode_reads_the_kept_reading_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let checked = cpu_run(&state, json!({"_ansible_check_mode": true}));
    assert_eq!(
        checked.check("cpu")["details"]["source"],
        "sampled",
        "{}",
        checked.result
    );
    assert!(!state.exists(), "check mode created {}", state.display());

    cpu_run(&state, json!({}));
    let kept = state.join("cpu_sample/host.json");
    let before = std::fs::read(&kept).unwrap();
    thread::sleep(Duration::from_millis(300));
    let checked = cpu_run(&state, json!({"_ansible_check_mode": true}));
    assert_eq!(
        checked.check("cpu")["details"]["source"],
        "previous_sample",
        "{}",
        checked.result
    );
    assert_eq!(
        std::fs::read(&kept).unwrap(),
        before,
        "check mode rewrote the kept reading"
    );

    // An unusable file is reported and left where it is.
    std::fs::write(&kept, "{not json").unwrap();
    let checked = cpu_run(&state, json!({"_ansible_check_mode": true}));
    assert_eq!(checked.check("cpu")["details"]["source"], "sampled");
    let w = warnings(&checked).join("\n");
    assert!(w.contains("is unusable: not JSON") && !w.contains("moved aside"), "{w}");
    assert_eq!(std::fs::read(&kept).unwrap(), b"{not json");
}

#[test]
fn an_unusable_kept_reading_is_moved_aside_and_a_fifo_or_link_refused() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    cpu_run(&state, json!({}));
    let kept = state.join("cpu_sample/host.json");

    std::fs::write(&kept, "{not json").unwrap();
    let r = cpu_run(&state, json!({}));
    assert_eq!(r.check("cpu")["details"]["source"], "sampled");
    let w = warnings(&r).join("\n");
    assert!(
        w.contains("is unusable: not JSON") && w.contains("moved aside to"),
        "{w}"
    );
    let aside = std::fs::read_dir(state.join("cpu_sample"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("host.corrupt-"))
        .count();
    assert_eq!(aside, 1);
    // The next run starts afresh and keeps its reading.
    let r = cpu_run(&state, json!({}));
    assert!(warnings(&r).is_empty(), "{}", r.result);
    assert!(kept.is_file());

    // A FIFO: refused at once, not waited on.
    std::fs::remove_file(&kept).unwrap();
    nix::unistd::mkfifo(&kept, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
    let r = cpu_run(&state, json!({}));
    assert!(r.elapsed < Duration::from_secs(3), "{:?}", r.elapsed);
    assert_eq!(r.check("cpu")["details"]["source"], "sampled");
    let w = warnings(&r).join("\n");
    assert!(w.contains("FIFO") && w.contains("host.json"), "{w}");

    // A planted link: refused, its target untouched.
    std::fs::remove_file(&kept).unwrap();
    let target = dir.path().join("target");
    std::fs::write(&target, "keep me").unwrap();
    std::os::unix::fs::symlink(&target, &kept).unwrap();
    let r = cpu_run(&state, json!({}));
    assert_eq!(r.check("cpu")["details"]["source"], "sampled");
    let w = warnings(&r).join("\n");
    assert!(w.contains("link") && w.contains("host.json"), "{w}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
    assert!(std::fs::symlink_metadata(&kept).unwrap().file_type().is_symlink());
}

#[test]
fn no_arguments_check_the_host_resources() {
    let r = run_exact(&json!({}), Command::new(BIN));
    let names: Vec<&str> = r.result["checks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| c["name"].as_str())
        .collect();
    assert_eq!(&names[..5], ["cpu", "memory", "swap", "load", "disk /"], "{}", r.result);
    assert_eq!(r.check("cpu")["warning"], "70");
    assert_eq!(r.check("memory")["critical"], "95");
    assert_eq!(r.check("disk /")["warning"], "85");
}

#[test]
fn kinds_run_at_the_same_time() {
    let slow = http_server("200 OK", "ok", Duration::from_millis(800));
    let slow_port = slow_port();
    let r = run(json!({
        "http": [{"url": slow}],
        "ports": [{"port": slow_port}],
        "resources": {"include": ["cpu"]},
        "processes": [{"name": "no-such-proc-hc", "min_count": 0, "cpu_warning": 1}],
        "sample_interval": 0.8,
    }));
    // 0.8 s of HTTP, ~1 s of connect, 0.8 s of CPU sample: one after the other, 2.6 s.
    assert!(r.elapsed < Duration::from_millis(2200), "{:?}: {}", r.elapsed, r.result);
    assert_eq!(r.result["checks"].as_array().map(Vec::len), Some(4));
}

#[test]
fn bad_input_names_the_check_field_and_value() {
    for (args, expected) in [
        (
            json!({"ports": [{"port": 1}, {"port": 2}, {"port": 70000}]}),
            "ports[2].port: 70000 is out of range 1-65535",
        ),
        (
            json!({"ports": [{"port": 22, "prot": "tcp"}]}),
            "ports[0]: unknown option 'prot'; did you mean 'port'?",
        ),
        (
            json!({"ports": [{"port": 22, "latency_warning": "20:10"}]}),
            "ports[0].latency_warning: invalid range '20:10': start 20 is greater than end 10",
        ),
        (
            json!({"http": [{"url": "http://x/"}, {"url": "htp://x"}]}),
            "http[1].url: 'htp://x' is not an http or https URL",
        ),
        (
            json!({"http": [{"url": "http://exa mple/"}]}),
            "http[0].url: 'http://exa mple/' is not a valid URL",
        ),
        (
            json!({"http": [{"url": "http://x/", "body_regex": "(["}]}),
            "http[0].body_regex: invalid regex '([': ",
        ),
        (
            json!({"processes": [{"cmdline": "("}]}),
            "processes[0].cmdline: invalid regex '(': ",
        ),
        (
            json!({"processes": [{"min_count": 1}]}),
            "processes[0]: one of these options is required: name, cmdline, pidfile, user",
        ),
        (
            json!({"services": [{"name": "nginx;reboot"}]}),
            "services[0].name: invalid unit name 'nginx;reboot': ';' is not allowed in unit names",
        ),
        (
            json!({"services": [{"name": "-.mount"}]}),
            "services[0].name: invalid unit name '-.mount': a name starting with '-' would be read as an option",
        ),
        (
            json!({"services": [{"name": "a", "memory_critical": "12Q"}]}),
            "services[0].memory_critical: invalid size '12Q': unknown unit 'Q'",
        ),
        (
            json!({"resources": {"disk_warning": "x"}}),
            "resources.disk_warning: invalid range 'x': 'x' is not a number",
        ),
        (
            json!({"resources": {"colour": "x"}}),
            "resources: unknown option 'colour'",
        ),
        (
            json!({"fail_on": "sometimes"}),
            "fail_on: 'sometimes' is not one of 'critical', 'warning', 'never'",
        ),
    ] {
        let r = run_exact(&args, Command::new(BIN));
        assert_eq!((r.code, &r.result["failed"]), (1, &json!(true)), "{args}: {}", r.result);
        let msg = r.msg();
        assert!(msg.starts_with("invalid arguments for health_check: "), "{msg}");
        assert!(
            msg.contains(expected),
            "{args}:\n  msg {msg:?}\n  should contain {expected:?}"
        );
        assert!(
            r.result["problems"].as_array().is_some_and(|p| !p.is_empty()),
            "{}",
            r.result
        );
        assert!(r.result.get("checks").is_none(), "nothing ran: {}", r.result);
    }
}

#[test]
fn header_values_stay_out_of_the_result() {
    let ok = http_server("200 OK", "fine", Duration::ZERO);
    let r = run(json!({"http": [{"url": ok, "headers": {"Authorization": "Bearer s3cr3t-t0ken"}}]}));
    assert_eq!(r.status(&ok), "ok");
    let text = r.result.to_string();
    assert!(!text.contains("s3cr3t-t0ken"), "{text}");
}
