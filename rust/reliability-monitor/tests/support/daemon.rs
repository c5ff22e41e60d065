//! What the daemon tests share: the real binary started on a config in a temp dir, and
//! small HTTP helpers.
#![allow(dead_code)]

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
pub const BIN: &str = env!("CARGO_BIN_EXE_reliability-monitor");

/// A config of `checks` (YAML under `health_checks:`), 1 s interval, state in `dir`,
/// an ephemeral port, and only a memory check (with levels it cannot reach) among the
/// host's resources, so the verdict is the test's checks'.
pub fn config_text(dir: &Path, listen_extra: &str, checks: &str) -> String {
    format!(
        "service_monitoring:\n  check_interval: 1\n  consecutive_failures: 2\n  consecutive_successes: 1\n  \
         state_dir: {}\n  listen:\n    port: 0\n{listen_extra}\
         performance_monitoring:\n  enabled: false\n\
         health_checks:\n  resources:\n    include: [memory]\n    memory_warning: 100\n    memory_critical: 100\n{checks}",
        dir.join("state").display()
    )
}

pub struct Daemon {
    pub child: Child,
    pub dir: Arc<tempfile::TempDir>,
    pub config: PathBuf,
    pub addr: SocketAddr,
    pub stderr: Arc<Mutex<String>>,
}

impl Daemon {
    pub fn start(listen_extra: &str, checks: &str, env: &[(&str, &str)]) -> Daemon {
        let dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        let config = dir.path().join("config.yml");
        write_config(&config, &config_text(dir.path(), listen_extra, checks));
        Daemon::run(dir, env)
    }

    /// Starts the daemon on the config and state already in `dir` (a restart).
    pub fn run(dir: Arc<tempfile::TempDir>, env: &[(&str, &str)]) -> Daemon {
        let config = dir.path().join("config.yml");
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

    pub fn get(&self, path: &str, token: Option<&str>) -> (u16, String) {
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        request(
            self.addr,
            &format!("GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n"),
        )
    }

    pub fn health(&self) -> (u16, Value) {
        let (code, body) = self.get("/health", None);
        (code, serde_json::from_str(&body).unwrap_or(Value::Null))
    }

    pub fn wait_ready(&self) {
        wait(Duration::from_secs(10), "ready", || self.get("/ready", None).0 == 200);
    }

    pub fn log(&self) -> String {
        self.stderr.lock().expect("lock").clone()
    }

    pub fn signal(&self, sig: &str) {
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

pub fn write_config(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write config");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
}

/// Sends `raw` and reads the whole answer (the daemon closes after `Connection: close`).
pub fn request(addr: SocketAddr, raw: &str) -> (u16, String) {
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

pub fn wait(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
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
pub fn entry<'a>(health: &'a Value, path: &str) -> &'a Value {
    health["checks"]
        .as_array()
        .and_then(|a| a.iter().find(|c| c["entry"] == path))
        .unwrap_or_else(|| panic!("no {path} in {health}"))
}

pub fn port_check(port: u16) -> String {
    format!("  ports:\n    - {{name: web, port: {port}, timeout: 1}}\n")
}

pub fn promtool(body: &str) {
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
pub fn sample(body: &str, metric: &str, labels: &str) -> f64 {
    body.lines()
        .find(|l| l.starts_with(&format!("{metric}{{")) && l.contains(labels))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {metric} with {labels} in\n{body}"))
}

/// CPU time (user + system) the process `pid` has used so far, in clock ticks.
pub fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let after = &stat[stat.rfind(')').expect("comm") + 2..];
    let fields: Vec<u64> = after.split(' ').map(|f| f.parse().unwrap_or(0)).collect();
    // utime and stime are fields 14 and 15 of proc_pid_stat(5); `after` starts at field 3.
    fields[11] + fields[12]
}

/// Read syscalls the process `pid` has made so far (`syscr` of /proc/PID/io).
pub fn read_syscalls(pid: u32) -> u64 {
    let io = std::fs::read_to_string(format!("/proc/{pid}/io")).expect("/proc/PID/io");
    io.lines()
        .find_map(|l| l.strip_prefix("syscr:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("syscr")
}
