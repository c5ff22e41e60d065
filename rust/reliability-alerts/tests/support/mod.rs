//! What the alert tests share: an HTTP receiver on loopback that records what it got and
//! dedupes by idempotency key, sample alerts, and skipping when a real receiver is missing.
#![allow(dead_code, clippy::unwrap_used)]

use reliability_alerts::policy::{Event, EventKind, Policy, PolicyConfig};
use reliability_alerts::{Alert, Category};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;

/// One request a [`Receiver`] got.
#[derive(Clone, Debug)]
pub struct Request {
    pub line: String,
    /// Header names lowercased.
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// Reads one request: the head byte by byte (a buffered reader would swallow the body),
/// then `Content-Length` bytes of body.
pub fn read_request(stream: &mut TcpStream) -> Option<Request> {
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut byte = [0];
        if stream.read(&mut byte).ok()? == 0 {
            return None;
        }
        head.push(byte[0]);
    }
    let head = String::from_utf8(head).ok()?;
    let mut lines = head.split("\r\n");
    let line = lines.next()?.to_string();
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let length: usize = headers.get("content-length").and_then(|n| n.parse().ok()).unwrap_or(0);
    let mut body = vec![0; length];
    stream.read_exact(&mut body).ok()?;
    Some(Request { line, headers, body })
}

pub fn respond(stream: &mut TcpStream, status: &str, body: &str) {
    let _ = write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
}

/// What a [`Receiver`] saw: every request, and the idempotency keys in the order first
/// seen with how often each came.
#[derive(Debug, Default)]
pub struct Seen {
    pub requests: Vec<Request>,
    pub keys: Vec<String>,
    pub copies: BTreeMap<String, usize>,
}

impl Seen {
    /// Requests beyond the first of their key: copies a deduping receiver dropped.
    pub fn duplicates(&self) -> usize {
        self.copies.values().map(|n| n - 1).sum()
    }
}

/// An HTTP receiver on 127.0.0.1 that answers every request with `answer(request)`
/// (a status line and a body) and records it.
pub struct Receiver {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Seen>>,
}

impl Receiver {
    pub fn start(answer: impl Fn(&Request) -> (&'static str, String) + Send + Sync + 'static) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        Receiver::on(listener, answer)
    }

    pub fn on(
        listener: TcpListener,
        answer: impl Fn(&Request) -> (&'static str, String) + Send + Sync + 'static,
    ) -> Receiver {
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let record = Arc::clone(&seen);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let Some(request) = read_request(&mut stream) else {
                    continue;
                };
                let (status, body) = answer(&request);
                if status.starts_with('2') {
                    let mut seen = record.lock().unwrap();
                    if let Some(key) = request.header("idempotency-key").map(String::from) {
                        let n = seen.copies.entry(key.clone()).or_insert(0);
                        *n += 1;
                        if *n == 1 {
                            seen.keys.push(key);
                        }
                    }
                    seen.requests.push(request);
                }
                respond(&mut stream, status, &body);
            }
        });
        Receiver { addr, seen }
    }
}

/// `count` distinct firing alerts from the real policy, one incident each.
pub fn alerts(count: usize) -> Vec<Alert> {
    alerts_range(0..count)
}

/// The alerts of services `svc<i>` for `i` in `range`: the same keys every time.
pub fn alerts_range(range: std::ops::Range<usize>) -> Vec<Alert> {
    let mut policy = Policy::new(PolicyConfig {
        host: "web1".into(),
        runbook_url: Some("https://runbooks.example/{alertname}".into()),
        ..PolicyConfig::default()
    });
    range
        .flat_map(|i| {
            let event = Event {
                kind: EventKind::HealingFailed,
                service: format!("svc{i}"),
                check: Some("http".into()),
                value: Some("HTTP 503".into()),
                category: Category::ServiceFailure,
                incident: format!("inc-{i}"),
                tried: vec!["restart: failed".into(), "reload: failed".into()],
                summary: String::new(),
                in_maintenance: false,
            };
            policy.decide(&event, 1_800_000_000_000 + i as u64)
        })
        .collect()
}

/// A real receiver this test needs is missing: fail under `HX_REQUIRE_PRIVILEGED=1` (CI
/// installs them all), else say why the test is skipped. Returns whether to go on.
pub fn available(what: &str, present: bool) -> bool {
    if present {
        return true;
    }
    if std::env::var("HX_REQUIRE_PRIVILEGED").as_deref() == Ok("1") {
        panic!("{what} is missing and HX_REQUIRE_PRIVILEGED=1");
    }
    eprintln!("SKIPPED: {what} is missing (install it, see tools/apt-packages.txt and requirements/dev.txt)");
    false
}

/// A port free right now on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The configuration of `channels` as YAML under `notifications`, every channel listed.
pub fn config(notifications: &str) -> reliability_alerts::AlertConfig {
    reliability_alerts::AlertConfig::from_yaml(&format!(
        "alerting:\n  host: web1\n  queue: {{retry_base: 50ms, retry_max: 400ms}}\nnotifications:\n{notifications}"
    ))
    .unwrap()
}
