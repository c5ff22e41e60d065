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

use super::view::Snapshot;
use super::Shared;
use std::io::{ErrorKind, IoSlice, Read, Write};
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
        let mut pause = Duration::from_millis(5);
        for stream in listener.incoming() {
            if self.stop.load(Ordering::SeqCst) {
                return;
            }
            let stream = match stream {
                Ok(s) => {
                    pause = Duration::from_millis(5);
                    s
                }
                Err(_) => {
                    // Out of descriptors or memory: accept fails at once, again and
                    // again; back off (up to 0.1 s) instead of spinning.
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(100));
                    continue;
                }
            };
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
        // The read timeout set on the socket: set again only when it changes (a request
        // begun and not yet whole), not once per request of a keep-alive connection.
        let mut read_timeout = None;
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
                // Nothing of a request yet: the whole time; else what is left of it.
                let wanted = if buf.is_empty() { timeout } else { left };
                if read_timeout != Some(wanted) && stream.set_read_timeout(Some(wanted)).is_ok() {
                    read_timeout = Some(wanted);
                }
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
            let (reply, close) = self.answer(&buf[..end]);
            buf.drain(..end);
            if reply.write_to(&mut stream).is_err() || close {
                let _ = stream.shutdown(Shutdown::Both);
                return;
            }
        }
    }

    /// The response to one request head, and whether to close afterwards.
    fn answer(&self, head: &[u8]) -> (Reply, bool) {
        let fail = |code, reason, text: &'static [u8]| {
            (
                Reply::whole(response(code, reason, "text/plain", text, false, true, &[])),
                true,
            )
        };
        let Ok(text) = std::str::from_utf8(head) else {
            return fail(400, "Bad Request", b"bad request\n");
        };
        let mut lines = text.split("\r\n");
        let request_line = lines.next().unwrap_or_default();
        let mut parts = request_line.split(' ');
        let (Some(method), Some(target), Some(version), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return fail(400, "Bad Request", b"bad request line\n");
        };
        if !matches!(version, "HTTP/1.1" | "HTTP/1.0") {
            return fail(505, "HTTP Version Not Supported", b"HTTP/1.0 or HTTP/1.1 only\n");
        }
        let mut close = version == "HTTP/1.0";
        let mut authorization = None;
        let mut body = false;
        for line in lines.filter(|l| !l.is_empty()) {
            let Some((name, value)) = line.split_once(':') else {
                return fail(400, "Bad Request", b"bad header line\n");
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
            let r = response(
                405,
                "Method Not Allowed",
                "text/plain",
                b"only GET and HEAD\n",
                false,
                true,
                &[("Allow", "GET, HEAD")],
            );
            return (Reply::whole(r), true);
        }
        if body {
            // Nothing here takes a body; not reading one means the connection cannot go on.
            return fail(400, "Bad Request", b"no request body allowed\n");
        }
        let path = target.split('?').next().unwrap_or_default();
        let small =
            |code, reason, body: &[u8]| Reply::whole(response(code, reason, "text/plain", body, head_only, close, &[]));
        let reply = match path {
            "/alive" | "/live" if self.shared.alive() => small(200, "OK", b"alive\n"),
            "/alive" | "/live" => small(503, "Service Unavailable", b"the scheduler is stuck\n"),
            "/health" | "/ready" | "/metrics" if !self.authorized(authorization) => Reply::whole(response(
                401,
                "Unauthorized",
                "text/plain",
                b"a bearer token is required\n",
                head_only,
                close,
                &[("WWW-Authenticate", "Bearer")],
            )),
            "/ready" if self.shared.snapshot().ready => small(200, "OK", b"ready\n"),
            "/ready" => small(503, "Service Unavailable", b"starting: the first checks are running\n"),
            "/health" | "/metrics" => {
                // The body stays in the shared snapshot (rendered there by the first
                // request that wants it): written from there, not copied.
                let snapshot = self.shared.snapshot();
                let (code, reason, ctype, len, metrics) = if path == "/metrics" {
                    let len = snapshot.metrics_body().len();
                    (200, "OK", "text/plain; version=0.0.4; charset=utf-8", len, true)
                } else if snapshot.health_code == 200 {
                    (200, "OK", "application/json", snapshot.health_body().len(), false)
                } else {
                    (
                        503,
                        "Service Unavailable",
                        "application/json",
                        snapshot.health_body().len(),
                        false,
                    )
                };
                Reply {
                    head: head_of(code, reason, ctype, len, close, &[]),
                    body: (!head_only).then_some((snapshot, metrics)),
                }
            }
            _ => small(404, "Not Found", b"not found\n"),
        };
        (reply, close)
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

/// A response: its head (and small body), and perhaps a body in a snapshot (`true`: the
/// metrics, `false`: the health JSON).
struct Reply {
    head: Vec<u8>,
    body: Option<(Arc<Snapshot>, bool)>,
}

impl Reply {
    fn whole(bytes: Vec<u8>) -> Reply {
        Reply {
            head: bytes,
            body: None,
        }
    }

    /// Writes head and body in one vectored write where the socket takes it.
    fn write_to(&self, stream: &mut TcpStream) -> std::io::Result<()> {
        let body: &[u8] = match &self.body {
            Some((s, true)) => s.metrics_body(),
            Some((s, false)) => s.health_body(),
            None => &[],
        };
        let (mut head, mut body) = (&self.head[..], body);
        while !head.is_empty() || !body.is_empty() {
            let n = stream.write_vectored(&[IoSlice::new(head), IoSlice::new(body)])?;
            if n == 0 {
                return Err(ErrorKind::WriteZero.into());
            }
            let from_head = n.min(head.len());
            head = &head[from_head..];
            body = &body[n - from_head..];
        }
        Ok(())
    }
}

fn head_of(code: u16, reason: &str, ctype: &str, len: usize, close: bool, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(192);
    let _ = write!(
        out,
        "HTTP/1.1 {code} {reason}\r\nContent-Type: {ctype}\r\nContent-Length: {len}\r\nCache-Control: no-store\r\n"
    );
    for (k, v) in extra {
        let _ = write!(out, "{k}: {v}\r\n");
    }
    out.extend_from_slice(if close { b"Connection: close\r\n\r\n" } else { b"\r\n" });
    out
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
    let mut out = head_of(code, reason, ctype, body.len(), close, extra);
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
