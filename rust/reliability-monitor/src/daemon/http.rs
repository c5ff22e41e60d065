//! The endpoints: a small HTTP/1.1 server on `std::net`, one thread per connection.
//!
//! Routes: `/health`, `/ready`, `/metrics` (bearer token, when configured) and `/alive`,
//! `/live` (never a token: a liveness probe must not depend on a secret). Every answer
//! is copied out of the latest [`super::view::Snapshot`] or the scheduler's heartbeat: a
//! request never runs a check and never waits for one.
//!
//! Limits: a request head of at most [`MAX_HEAD`] bytes (else 431); [`Limits::max_connections`]
//! connections, where a new connection beyond it closes the connection idle the longest
//! (one waiting for its next request) or, when none is idle, is answered 503 and closed;
//! each request must arrive within [`Limits::timeout`] (also the keep-alive idle time);
//! only GET and HEAD (else 405), no request bodies. Keep-alive is HTTP/1.1's default.

use super::Shared;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// The largest request head read.
pub const MAX_HEAD: usize = 8 * 1024;

#[derive(Clone, Copy, Debug)]
pub struct Limits {
    pub max_connections: usize,
    pub timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_connections: 64,
            timeout: Duration::from_secs(5),
        }
    }
}

struct Conn {
    id: u64,
    stream: TcpStream,
    /// Waiting for a request with nothing of it read yet.
    idle: Arc<AtomicBool>,
    since: Arc<Mutex<Instant>>,
}

/// What the server needs besides the snapshot.
pub struct Server {
    pub shared: Arc<Shared>,
    /// The bearer token; `None`: no token required.
    pub token: RwLock<Option<Vec<u8>>>,
    pub limits: Limits,
    pub stop: AtomicBool,
    conns: Mutex<Vec<Conn>>,
    next_id: AtomicU64,
}

impl Server {
    pub fn new(shared: Arc<Shared>, token: Option<Vec<u8>>, limits: Limits) -> Server {
        Server {
            shared,
            token: RwLock::new(token),
            limits,
            stop: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(0),
        }
    }

    /// Accepts until [`Server::stop`] is set (and a connection wakes the accept).
    pub fn serve(self: Arc<Self>, listener: TcpListener) {
        for stream in listener.incoming() {
            if self.stop.load(Ordering::SeqCst) {
                return;
            }
            let Ok(stream) = stream else { continue };
            let _ = stream.set_nodelay(true);
            if !self.admit() {
                let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
                let _ = (&stream).write_all(&response(
                    503,
                    "Service Unavailable",
                    "text/plain",
                    b"too many connections\n",
                    false,
                    true,
                    &[],
                ));
                let _ = stream.shutdown(Shutdown::Both);
                continue;
            }
            let id = self.next_id.fetch_add(1, Ordering::Relaxed);
            let idle = Arc::new(AtomicBool::new(true));
            let since = Arc::new(Mutex::new(Instant::now()));
            let Ok(clone) = stream.try_clone() else { continue };
            if let Ok(mut conns) = self.conns.lock() {
                conns.push(Conn {
                    id,
                    stream: clone,
                    idle: idle.clone(),
                    since: since.clone(),
                });
            }
            let server = self.clone();
            let spawned = std::thread::Builder::new()
                .name("http".into())
                .stack_size(128 * 1024)
                .spawn(move || {
                    server.connection(stream, &idle, &since);
                    if let Ok(mut conns) = server.conns.lock() {
                        conns.retain(|c| c.id != id);
                    }
                });
            if spawned.is_err() {
                if let Ok(mut conns) = self.conns.lock() {
                    conns.retain(|c| c.id != id);
                }
            }
        }
    }

    /// Room for one more connection: below the limit, or after closing the connection
    /// idle the longest.
    fn admit(&self) -> bool {
        let Ok(conns) = self.conns.lock() else { return false };
        if conns.len() < self.limits.max_connections {
            return true;
        }
        let oldest = conns
            .iter()
            .filter(|c| c.idle.load(Ordering::SeqCst))
            .min_by_key(|c| c.since.lock().map(|s| *s).unwrap_or_else(|_| Instant::now()));
        match oldest {
            Some(c) => {
                let _ = c.stream.shutdown(Shutdown::Both);
                true
            }
            None => false,
        }
    }

    fn connection(&self, mut stream: TcpStream, idle: &AtomicBool, since: &Mutex<Instant>) {
        let timeout = self.limits.timeout;
        let _ = stream.set_write_timeout(Some(timeout));
        let mut buf: Vec<u8> = Vec::with_capacity(1024);
        let mut chunk = [0u8; 4096];
        loop {
            // One request head: within the time limit, within the size limit.
            let started = Instant::now();
            if let Ok(mut s) = since.lock() {
                *s = started;
            }
            idle.store(buf.is_empty(), Ordering::SeqCst);
            let end = loop {
                if let Some(end) = find_head_end(&buf) {
                    break end;
                }
                if buf.len() > MAX_HEAD {
                    let _ = stream.write_all(&response(
                        431,
                        "Request Header Fields Too Large",
                        "text/plain",
                        b"request head too large\n",
                        false,
                        true,
                        &[],
                    ));
                    return;
                }
                let left = timeout.saturating_sub(started.elapsed());
                if left.is_zero() || self.stop.load(Ordering::SeqCst) {
                    if !buf.is_empty() {
                        let _ = stream.write_all(&response(
                            408,
                            "Request Timeout",
                            "text/plain",
                            b"request timeout\n",
                            false,
                            true,
                            &[],
                        ));
                    }
                    return;
                }
                let _ = stream.set_read_timeout(Some(left));
                match stream.read(&mut chunk) {
                    Ok(0) => return,
                    Ok(n) => {
                        idle.store(false, Ordering::SeqCst);
                        buf.extend_from_slice(&chunk[..n]);
                    }
                    Err(e)
                        if matches!(
                            e.kind(),
                            ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                        ) => {}
                    Err(_) => return,
                }
            };
            if end > MAX_HEAD {
                let _ = stream.write_all(&response(
                    431,
                    "Request Header Fields Too Large",
                    "text/plain",
                    b"request head too large\n",
                    false,
                    true,
                    &[],
                ));
                return;
            }
            let (bytes, close) = self.answer(&buf[..end]);
            buf.drain(..end);
            if stream.write_all(&bytes).is_err() || close {
                let _ = stream.shutdown(Shutdown::Both);
                return;
            }
        }
    }

    /// The response to one request head, and whether to close afterwards.
    fn answer(&self, head: &[u8]) -> (Vec<u8>, bool) {
        let Ok(text) = std::str::from_utf8(head) else {
            return (
                response(400, "Bad Request", "text/plain", b"bad request\n", false, true, &[]),
                true,
            );
        };
        let mut lines = text.split("\r\n");
        let request_line = lines.next().unwrap_or_default();
        let mut parts = request_line.split(' ');
        let (Some(method), Some(target), Some(version), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return (
                response(
                    400,
                    "Bad Request",
                    "text/plain",
                    b"bad request line\n",
                    false,
                    true,
                    &[],
                ),
                true,
            );
        };
        if !matches!(version, "HTTP/1.1" | "HTTP/1.0") {
            return (
                response(
                    505,
                    "HTTP Version Not Supported",
                    "text/plain",
                    b"HTTP/1.0 or HTTP/1.1 only\n",
                    false,
                    true,
                    &[],
                ),
                true,
            );
        }
        let mut close = version == "HTTP/1.0";
        let mut authorization = None;
        let mut body = false;
        for line in lines.filter(|l| !l.is_empty()) {
            let Some((name, value)) = line.split_once(':') else {
                return (
                    response(400, "Bad Request", "text/plain", b"bad header line\n", false, true, &[]),
                    true,
                );
            };
            let value = value.trim();
            if name.eq_ignore_ascii_case("connection") {
                if value.eq_ignore_ascii_case("close") {
                    close = true;
                } else if value.eq_ignore_ascii_case("keep-alive") {
                    close = false;
                }
            } else if name.eq_ignore_ascii_case("authorization") {
                authorization = Some(value);
            } else if name.eq_ignore_ascii_case("transfer-encoding")
                || (name.eq_ignore_ascii_case("content-length") && value != "0")
            {
                body = true;
            }
        }
        let head_only = method == "HEAD";
        if method != "GET" && !head_only {
            return (
                response(
                    405,
                    "Method Not Allowed",
                    "text/plain",
                    b"only GET and HEAD\n",
                    false,
                    true,
                    &[("Allow", "GET, HEAD")],
                ),
                true,
            );
        }
        if body {
            // Nothing here takes a body; not reading one means the connection cannot go on.
            return (
                response(
                    400,
                    "Bad Request",
                    "text/plain",
                    b"no request body allowed\n",
                    false,
                    true,
                    &[],
                ),
                true,
            );
        }
        let path = target.split('?').next().unwrap_or_default();
        let respond = |code, reason, ctype, body: &[u8]| response(code, reason, ctype, body, head_only, close, &[]);
        let bytes = match path {
            "/alive" | "/live" => {
                if self.shared.alive() {
                    respond(200, "OK", "text/plain", b"alive\n")
                } else {
                    respond(503, "Service Unavailable", "text/plain", b"the scheduler is stuck\n")
                }
            }
            "/health" | "/ready" | "/metrics" => {
                if !self.authorized(authorization) {
                    return (
                        response(
                            401,
                            "Unauthorized",
                            "text/plain",
                            b"a bearer token is required\n",
                            head_only,
                            close,
                            &[("WWW-Authenticate", "Bearer")],
                        ),
                        close,
                    );
                }
                let snapshot = self.shared.snapshot();
                match path {
                    "/health" => {
                        let (code, reason) = if snapshot.health_code == 200 {
                            (200, "OK")
                        } else {
                            (503, "Service Unavailable")
                        };
                        respond(code, reason, "application/json", &snapshot.health_body)
                    }
                    "/ready" if snapshot.ready => respond(200, "OK", "text/plain", b"ready\n"),
                    "/ready" => respond(
                        503,
                        "Service Unavailable",
                        "text/plain",
                        b"starting: the first checks are running\n",
                    ),
                    _ => respond(
                        200,
                        "OK",
                        "text/plain; version=0.0.4; charset=utf-8",
                        &snapshot.metrics_body,
                    ),
                }
            }
            _ => respond(404, "Not Found", "text/plain", b"not found\n"),
        };
        (bytes, close)
    }

    fn authorized(&self, header: Option<&str>) -> bool {
        let Ok(token) = self.token.read() else { return false };
        let Some(token) = token.as_ref() else { return true };
        let Some(given) = header.and_then(|h| {
            let (scheme, value) = h.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then_some(value.trim())
        }) else {
            return false;
        };
        constant_time_eq(given.as_bytes(), token)
    }
}

/// Equal bytes, in a time that depends on the lengths only (not on where they differ).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut diff = u8::from(a.len() != b.len());
    for i in 0..a.len().max(b.len()) {
        diff |= a.get(i).copied().unwrap_or(0) ^ b.get(i).copied().unwrap_or(0xff);
    }
    diff == 0
}

/// The index just past the blank line ending the head, if it is there.
fn find_head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4)
}

fn response(
    code: u16,
    reason: &str,
    ctype: &str,
    body: &[u8],
    head_only: bool,
    close: bool,
    extra: &[(&str, &str)],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(160 + if head_only { 0 } else { body.len() });
    let _ = write!(
        out,
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n",
        body.len()
    );
    for (k, v) in extra {
        let _ = write!(out, "{k}: {v}\r\n");
    }
    out.extend_from_slice(if close { b"Connection: close\r\n\r\n" } else { b"\r\n" });
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"secret", b"secret"));
        assert!(!constant_time_eq(b"secret", b"secreT"));
        assert!(!constant_time_eq(b"secret", b"secret1"));
        assert!(!constant_time_eq(b"", b"x"));
        assert!(constant_time_eq(b"", b""));
    }

    #[test]
    fn head_end() {
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n\r\nGET"), Some(18));
        assert_eq!(find_head_end(b"GET / HTTP/1.1\r\n"), None);
    }
}
