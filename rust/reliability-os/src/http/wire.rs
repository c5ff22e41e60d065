//! HTTP/1.1 on the wire: one request on a fresh connection, one response read back.
//!
//! A probe asks one question per connection, so this is the protocol a probe needs and
//! nothing more: the request says `Connection: close` (unless the caller sets its own),
//! there is no pool, no keep-alive and no request pipelining. The response is read into one buffer: its head is parsed by
//! `httparse`, its body framed as RFC 9112 section 6.3 says (no body for HEAD, 1xx, 204
//! and 304; chunked; Content-Length; or up to the end of the connection).
//!
//! Everything read is bounded: the head to [`MAX_RESPONSE_HEAD`] bytes and [`MAX_HEADERS`]
//! fields, a chunk-size line to [`MAX_CHUNK_LINE`] bytes, interim (1xx) responses to
//! [`MAX_INTERIM`], the body to what the caller keeps plus one byte (to tell that there was
//! more), and every read and write to what is left of one deadline.

use reliability_core::quote::quote;
use rustls::{ClientConnection, StreamOwned};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// The response head's limit: the limits common servers put on heads themselves (nginx's
/// and Apache's 8 KiB a line), with room.
const MAX_RESPONSE_HEAD: usize = 15 * 1024;
/// The request head's limit.
const MAX_REQUEST_HEAD: usize = 8 * 1024;
/// Header fields in a response head.
const MAX_HEADERS: usize = 128;
/// A chunk-size line, extensions included.
const MAX_CHUNK_LINE: usize = 4096;
/// Interim responses (`100 Continue`, `103 Early Hints`) skipped before the final one.
const MAX_INTERIM: usize = 8;
/// The read buffer starts at this (a health endpoint's whole answer, as a rule) and doubles
/// up to [`MAX_BUFFER`] when a head needs it. 16 KiB from the start cost a probe as much
/// as its parsing: an allocation of that size is not cached per thread, and its pages were
/// given back to the kernel and faulted in again.
const FIRST_BUFFER: usize = 4 * 1024;
/// Room for the largest head accepted and a little more.
const MAX_BUFFER: usize = 16 * 1024;

/// Why an exchange failed, before it is put into words for an operator.
#[derive(Debug)]
pub(super) enum Failure {
    /// The connection: refused, reset, closed early, timed out, or TLS.
    Io(io::Error),
    /// The server's answer is not HTTP/1.1 as this reader accepts it.
    Response(String),
    /// Already said in full: the request cannot be sent as asked, or its host cannot be
    /// resolved or named.
    Request(String),
}

impl From<io::Error> for Failure {
    fn from(e: io::Error) -> Self {
        Failure::Io(e)
    }
}

/// The connection, plain or in TLS.
pub(super) enum Stream {
    Plain(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

/// Gives the socket's next reads and writes what is left until `deadline`; past it, a
/// timeout. A zero timeout means "none" to a socket: below a millisecond, the time is up.
fn arm(tcp: &TcpStream, deadline: Instant, read: bool, write: bool) -> io::Result<()> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left < Duration::from_millis(1) {
        return Err(io::ErrorKind::TimedOut.into());
    }
    if read {
        tcp.set_read_timeout(Some(left))?;
    }
    if write {
        tcp.set_write_timeout(Some(left))?;
    }
    Ok(())
}

impl Stream {
    /// Arms the socket for a read (`write` false) or a write. TLS may write while it reads
    /// and the reverse: both directions get the time.
    fn arm(&self, deadline: Instant, write: bool) -> io::Result<()> {
        match self {
            Stream::Plain(tcp) => arm(tcp, deadline, !write, write),
            Stream::Tls(tls) => arm(&tls.sock, deadline, true, true),
        }
    }

    fn read(&mut self, buf: &mut [u8], deadline: Instant) -> io::Result<usize> {
        loop {
            // Armed again after a signal: a socket with a timeout is never restarted.
            self.arm(deadline, false)?;
            let read = match self {
                Stream::Plain(tcp) => tcp.read(buf),
                Stream::Tls(tls) => match tls.read(buf) {
                    // A server that closes without close_notify has still said all it said:
                    // the framing tells whether the response was cut.
                    Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(0),
                    other => other,
                },
            };
            match read {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                other => return other,
            }
        }
    }

    pub(super) fn send(&mut self, bytes: &[u8], deadline: Instant) -> io::Result<()> {
        self.arm(deadline, true)?;
        match self {
            Stream::Plain(tcp) => tcp.write_all(bytes),
            Stream::Tls(tls) => {
                tls.write_all(bytes)?;
                tls.flush()
            }
        }
    }
}

/// Connects to the first of `addrs` that accepts, within `deadline`; the last error if
/// none does.
pub(super) fn connect(addrs: &[SocketAddr], deadline: Instant) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address to connect to");
    for addr in addrs {
        let left = deadline.saturating_duration_since(Instant::now());
        if left < Duration::from_millis(1) {
            return Err(io::ErrorKind::TimedOut.into());
        }
        match TcpStream::connect_timeout(addr, left) {
            Ok(tcp) => return Ok(tcp),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// Completes the TLS handshake on `tcp` within `deadline`.
pub(super) fn handshake(mut conn: ClientConnection, mut tcp: TcpStream, deadline: Instant) -> io::Result<Stream> {
    while conn.is_handshaking() {
        arm(&tcp, deadline, true, true)?;
        match conn.complete_io(&mut tcp) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            done => drop(done?),
        }
    }
    Ok(Stream::Tls(Box::new(StreamOwned::new(conn, tcp))))
}

/// A request head to send.
pub(super) struct Request<'a> {
    pub method: &'a str,
    /// The path and query, `/` at least.
    pub target: &'a str,
    /// The `Host` field: the URL's host and port as written, without user info.
    pub host: &'a str,
    pub user_agent: &'a str,
    /// The caller's own fields; each replaces a default of the same name.
    pub headers: &'a [(String, String)],
    /// For a request with a body: its length.
    pub content_length: Option<usize>,
}

impl Request<'_> {
    /// The head in bytes, or why it cannot be sent: a field name that is not a token, a
    /// value with CR, LF or NUL, a framing field the caller set, a head over
    /// [`MAX_REQUEST_HEAD`].
    pub(super) fn head(&self) -> Result<Vec<u8>, Failure> {
        let invalid = |what: String| Failure::Request(format!("invalid request: {what}"));
        let mut head = Vec::with_capacity(256);
        for part in [self.method, " ", self.target, " HTTP/1.1\r\n"] {
            head.extend_from_slice(part.as_bytes());
        }
        let mut field = |name: &str, value: &str| {
            for part in [name, ": ", value, "\r\n"] {
                head.extend_from_slice(part.as_bytes());
            }
        };
        let given = |name: &str| self.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name));
        for (name, default) in [
            ("Host", self.host),
            ("User-Agent", self.user_agent),
            ("Accept", "*/*"),
            ("Connection", "close"),
        ] {
            if !given(name) {
                field(name, default);
            }
        }
        for (name, value) in self.headers {
            if name.eq_ignore_ascii_case("content-length") || name.eq_ignore_ascii_case("transfer-encoding") {
                return Err(invalid(format!("the header {} is the probe's to set", quote(name))));
            }
            http::HeaderName::from_bytes(name.as_bytes()).map_err(|e| invalid(format!("{e}: {}", quote(name))))?;
            http::HeaderValue::from_str(value).map_err(|e| invalid(format!("{e} in the header {}", quote(name))))?;
            field(name, value);
        }
        if let Some(length) = self.content_length {
            field("Content-Length", &length.to_string());
        }
        head.extend_from_slice(b"\r\n");
        if head.len() > MAX_REQUEST_HEAD {
            return Err(Failure::Request(format!(
                "the request head is larger than {MAX_REQUEST_HEAD} bytes: shorten its headers"
            )));
        }
        Ok(head)
    }
}

/// How the body of a response ends (RFC 9112, section 6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Framing {
    /// No body: HEAD, 1xx, 204, 304.
    Empty,
    Length(u64),
    Chunked,
    /// At the end of the connection.
    UntilClose,
}

/// A final response head.
#[derive(Debug)]
pub(super) struct Head {
    pub status: u16,
    pub location: Option<String>,
    pub framing: Framing,
}

/// A response being read: the connection and what has been read from it but not used.
pub(super) struct Response {
    stream: Stream,
    deadline: Instant,
    buf: Vec<u8>,
    /// `buf[pos..end]` is read and not used yet.
    pos: usize,
    end: usize,
}

impl Response {
    pub(super) fn new(stream: Stream, deadline: Instant) -> Self {
        Response {
            stream,
            deadline,
            buf: vec![0; FIRST_BUFFER],
            pos: 0,
            end: 0,
        }
    }

    /// Reads more into the buffer; 0 at the end of the connection.
    fn fill(&mut self) -> io::Result<usize> {
        if self.pos == self.end {
            (self.pos, self.end) = (0, 0);
        } else if self.end == self.buf.len() {
            self.buf.copy_within(self.pos..self.end, 0);
            (self.pos, self.end) = (0, self.end - self.pos);
        }
        if self.end == self.buf.len() {
            if self.buf.len() >= MAX_BUFFER {
                // Only a head can fill the whole buffer, and it is bounded below that.
                return Err(io::Error::other("the read buffer is full"));
            }
            self.buf.resize((self.buf.len() * 2).min(MAX_BUFFER), 0);
        }
        let n = self.stream.read(&mut self.buf[self.end..], self.deadline)?;
        self.end += n;
        Ok(n)
    }

    /// The final response head, after any interim (1xx) ones. `head_request`: the request
    /// was HEAD, so the response has no body whatever its fields say.
    pub(super) fn head(&mut self, head_request: bool) -> Result<Head, Failure> {
        let mut interim = 0;
        loop {
            let mut fields = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut parsed = httparse::Response::new(&mut fields);
            match parsed.parse(&self.buf[self.pos..self.end]) {
                Ok(httparse::Status::Complete(len)) => {
                    let status = parsed.code.unwrap_or(0);
                    let head = read_fields(status, parsed.headers, head_request)?;
                    self.pos += len;
                    if (100..200).contains(&status) && status != 101 {
                        interim += 1;
                        if interim > MAX_INTERIM {
                            return Err(Failure::Response(format!(
                                "more than {MAX_INTERIM} interim (1xx) responses"
                            )));
                        }
                        continue;
                    }
                    return Ok(head);
                }
                Ok(httparse::Status::Partial) => {}
                Err(e) => return Err(Failure::Response(e.to_string())),
            }
            if self.end - self.pos > MAX_RESPONSE_HEAD {
                return Err(Failure::Response(format!(
                    "its head is larger than {MAX_RESPONSE_HEAD} bytes"
                )));
            }
            if self.fill()? == 0 {
                return Err(Failure::Io(io::ErrorKind::UnexpectedEof.into()));
            }
        }
    }

    /// Up to `keep` bytes of the body, and whether there was more. On an error, what was
    /// read before it is returned with it.
    pub(super) fn body(&mut self, framing: Framing, keep: usize) -> (Vec<u8>, bool, Result<(), Failure>) {
        let mut body = Vec::new();
        // One byte past what is kept tells that there was more.
        let want = keep.saturating_add(1);
        let result = match framing {
            Framing::Empty => Ok(()),
            Framing::Length(len) => {
                let len = usize::try_from(len).unwrap_or(usize::MAX).min(want);
                self.take(&mut body, len, true)
            }
            Framing::UntilClose => self.take(&mut body, want, false),
            Framing::Chunked => self.chunks(&mut body, want),
        };
        let more = body.len() > keep;
        body.truncate(keep);
        (body, more, result)
    }

    /// Appends `len` more bytes to `out`; at the end of the connection, an error if
    /// `exact`, the end otherwise.
    fn take(&mut self, out: &mut Vec<u8>, len: usize, exact: bool) -> Result<(), Failure> {
        let goal = out.len().saturating_add(len);
        while out.len() < goal {
            if self.pos == self.end && self.fill()? == 0 {
                return if exact {
                    Err(Failure::Io(io::ErrorKind::UnexpectedEof.into()))
                } else {
                    Ok(())
                };
            }
            let n = (self.end - self.pos).min(goal - out.len());
            out.extend_from_slice(&self.buf[self.pos..self.pos + n]);
            self.pos += n;
        }
        Ok(())
    }

    /// The next line, without its CRLF (a bare LF ends it too).
    fn line(&mut self) -> Result<Vec<u8>, Failure> {
        loop {
            if let Some(i) = self.buf[self.pos..self.end].iter().position(|&b| b == b'\n') {
                let mut line = self.buf[self.pos..self.pos + i].to_vec();
                self.pos += i + 1;
                if line.last() == Some(&b'\r') {
                    line.pop();
                }
                return Ok(line);
            }
            if self.end - self.pos > MAX_CHUNK_LINE {
                return Err(Failure::Response(format!(
                    "a chunk-size line is longer than {MAX_CHUNK_LINE} bytes"
                )));
            }
            if self.fill()? == 0 {
                return Err(Failure::Io(io::ErrorKind::UnexpectedEof.into()));
            }
        }
    }

    /// A chunked body, up to `want` bytes of it.
    fn chunks(&mut self, out: &mut Vec<u8>, want: usize) -> Result<(), Failure> {
        while out.len() < want {
            let line = self.line()?;
            let size = chunk_size(&line)?;
            if size == 0 {
                // The trailer section is not read: the connection closes.
                return Ok(());
            }
            let take = usize::try_from(size).unwrap_or(usize::MAX).min(want - out.len());
            self.take(out, take, true)?;
            if (take as u64) < size {
                return Ok(());
            }
            if !self.line()?.is_empty() {
                return Err(Failure::Response("a chunk is longer than its size says".into()));
            }
        }
        Ok(())
    }
}

/// The size of a chunk from its size line (`1a;name=value`).
fn chunk_size(line: &[u8]) -> Result<u64, Failure> {
    let digits = line.split(|&b| b == b';').next().unwrap_or_default();
    let digits = std::str::from_utf8(digits)
        .unwrap_or_default()
        .trim_matches([' ', '\t']);
    let valid = !digits.is_empty() && digits.len() <= 16 && digits.bytes().all(|b| b.is_ascii_hexdigit());
    match u64::from_str_radix(digits, 16) {
        Ok(size) if valid => Ok(size),
        _ => Err(Failure::Response(format!(
            "invalid chunk size {}",
            quote(&String::from_utf8_lossy(&line[..line.len().min(40)]))
        ))),
    }
}

/// What the fields of a head say about its body and where it redirects.
fn read_fields(status: u16, fields: &[httparse::Header<'_>], head_request: bool) -> Result<Head, Failure> {
    let mut length: Option<u64> = None;
    let mut chunked = None;
    let mut location = None;
    for field in fields {
        if field.name.eq_ignore_ascii_case("content-length") {
            // A list of equal values (`5, 5`) is one length; anything else is refused.
            for value in field.value.split(|&b| b == b',') {
                let text = std::str::from_utf8(value).unwrap_or_default().trim_matches([' ', '\t']);
                let parsed = text
                    .parse::<u64>()
                    .ok()
                    .filter(|_| text.bytes().all(|b| b.is_ascii_digit()));
                match (parsed, length) {
                    (Some(n), None) => length = Some(n),
                    (Some(n), Some(m)) if n == m => {}
                    _ => {
                        return Err(Failure::Response(format!(
                            "invalid Content-Length {}",
                            quote(&String::from_utf8_lossy(field.value))
                        )))
                    }
                }
            }
        } else if field.name.eq_ignore_ascii_case("transfer-encoding") {
            // Chunked when it is the last coding applied.
            let last = field.value.rsplit(|&b| b == b',').next().unwrap_or_default();
            let last = String::from_utf8_lossy(last);
            chunked = Some(last.trim_matches([' ', '\t']).eq_ignore_ascii_case("chunked"));
        } else if field.name.eq_ignore_ascii_case("location") {
            location = Some(String::from_utf8_lossy(field.value).into_owned());
        }
    }
    let framing = if head_request || (100..200).contains(&status) || status == 204 || status == 304 {
        Framing::Empty
    } else {
        match (chunked, length) {
            (Some(true), _) => Framing::Chunked,
            (Some(false), _) => Framing::UntilClose,
            (None, Some(n)) => Framing::Length(n),
            (None, None) => Framing::UntilClose,
        }
    };
    Ok(Head {
        status,
        location,
        framing,
    })
}
