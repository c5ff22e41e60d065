//! HTTP and HTTPS probes.
//!
//! `health_check` asks "what does this URL answer, how fast, and when does its certificate
//! expire?". [`probe_http`] sends one GET or HEAD and returns what it saw as plain data
//! ([`HttpProbe`]): the status, the time to the response headers and to the end of the
//! body, the start of the body, and the server certificate's subject, issuer and validity.
//! Judging any of it (is 500 a failure? are 5 days left too few?) is `reliability-core`'s
//! business. Nothing here panics; every failure is an `error` string naming what failed.
//!
//! HTTP/1.1 is spoken by `http/wire.rs`: a probe asks one question per connection, so it needs
//! no pool, no keep-alive and no pipelining, and a general client's machinery for them was
//! most of a probe's CPU (the daemon probes every few seconds). The response head is
//! parsed by `httparse`; every read is bounded in bytes and by the request's deadline.
//! TLS is `rustls` with the `ring` provider. The probe sees the peer's certificate, and
//! Mozilla's bundled roots stay out of the binary: trust comes from the host's own CA
//! bundle ([`SYSTEM_CA_BUNDLES`]), as it does for curl and the host's package manager, plus
//! the request's `ca_file`. The verifier (`RecordingVerifier`) records the leaf
//! certificate before it delegates to webpki, so an expired or untrusted certificate is
//! still reported, next to the error; with `validate_certs: false` it records and accepts.
//!
//! One timeout bounds everything: resolving, connecting, the TLS handshake, reading the
//! response, and every redirect. Redirects are followed only when asked (up to
//! [`MAX_REDIRECTS`]) so that a target that is not an http or https URL (`file://`) is
//! refused by name and the request's headers (often credentials) go to the URL's own
//! origin only.
//! Connections go straight to the server: proxy environment variables are ignored, since
//! a probe measures the service, not a proxy.
//!
//! [`send`] is the same exchange with a request body (POST or PUT): the alert channels
//! deliver through it with the same trust, limits and timeout. A redirect is never followed
//! with a body: its status is the answer.

use reliability_core::quote::quote;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore};
use std::borrow::Cow;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};
use wire::Failure;
use x509_cert::der::Decode;

mod wire;

/// Where distributions keep their bundle of trusted CA certificates, in the order tried
/// (Debian/Ubuntu, Fedora/RHEL, openSUSE, Alpine). `SSL_CERT_FILE` goes before them all.
pub const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// Longer timeouts are cut to this.
const LONGEST_TIMEOUT: Duration = Duration::from_secs(24 * 3600);

/// Sent as `User-Agent` unless the request has its own.
const USER_AGENT: &str = concat!("hx.reliability/", env!("CARGO_PKG_VERSION"));

/// Redirects followed when `follow_redirects` is set.
pub const MAX_REDIRECTS: u32 = 10;

/// The request methods a probe may use: neither changes anything on the server.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum HttpMethod {
    #[default]
    Get,
    Head,
}

/// The methods of [`send`]: requests that carry a body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyMethod {
    Post,
    Put,
}

/// One HTTP(S) probe to make. [`HttpRequest::new`] gives the defaults.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpRequest {
    /// An `http://` or `https://` URL.
    pub url: String,
    pub method: HttpMethod,
    /// Bounds the whole exchange: resolve, connect, handshake, headers and body.
    pub timeout: Duration,
    /// Extra request headers, sent as given.
    pub headers: Vec<(String, String)>,
    /// A PEM file of CA certificates trusted in addition to the system's.
    pub ca_file: Option<PathBuf>,
    /// Verify the server's certificate chain and name. When false, the certificate is still
    /// reported in [`HttpProbe::tls`].
    pub validate_certs: bool,
    pub follow_redirects: bool,
    /// At most this much of the body is read and returned; 0 reads none of it.
    pub max_body_bytes: usize,
}

impl HttpRequest {
    /// A GET of `url` with a 10 s timeout, certificates verified, no redirects followed,
    /// and up to 64 KiB of the body returned.
    pub fn new(url: impl Into<String>) -> Self {
        HttpRequest {
            url: url.into(),
            method: HttpMethod::Get,
            timeout: Duration::from_secs(10),
            headers: Vec::new(),
            ca_file: None,
            validate_certs: true,
            follow_redirects: false,
            max_body_bytes: 64 * 1024,
        }
    }
}

/// What one probe saw. `error` is `None` exactly when a response was read in full (up to
/// `max_body_bytes`); a response with status 500 is no error here.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HttpProbe {
    /// The status of the (last, when redirects are followed) response.
    pub status: Option<u16>,
    /// Time from sending (resolve, connect and TLS handshake included; local set-up such as
    /// loading CA certificates excluded) to the complete response headers.
    pub latency: Option<Duration>,
    /// Time from sending until the body was read, or the probe gave up.
    pub total_time: Duration,
    /// The body's first `max_body_bytes`, as UTF-8 (invalid sequences replaced); `None` for
    /// HEAD, with `max_body_bytes` 0, or when no response came.
    pub body: Option<String>,
    /// The body was longer than `max_body_bytes`.
    pub body_truncated: bool,
    /// The server's certificate, for `https` URLs that got as far as one (also when it was
    /// rejected). With redirects followed: that of the last TLS handshake.
    pub tls: Option<TlsInfo>,
    pub error: Option<String>,
}

/// The server's (leaf) certificate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsInfo {
    /// The subject as an RFC 4514 string, e.g. `CN=example.org`.
    pub subject: String,
    pub issuer: String,
    /// Start of validity, in seconds since the Unix epoch.
    pub not_before_unix: i64,
    /// End of validity, in seconds since the Unix epoch.
    pub not_after_unix: i64,
}

/// Makes the request and reports what came back. Never panics; failures are in `error`.
pub fn probe_http(request: &HttpRequest) -> HttpProbe {
    run(request, None)
}

/// Sends `body` to `request.url` with `method` (`request.method` is not used, nor
/// `follow_redirects`) and reports what came back, as [`probe_http`] does.
pub fn send(request: &HttpRequest, method: BodyMethod, body: &[u8]) -> HttpProbe {
    run(request, Some((method, body)))
}

fn run(request: &HttpRequest, body: Option<(BodyMethod, &[u8])>) -> HttpProbe {
    let mut probe = HttpProbe::default();
    let seen = Arc::new(Mutex::new(None));
    let mut trust = Trust {
        request,
        seen: &seen,
        config: None,
    };
    // The clock starts after the set-up (parsing the URL, loading CA certificates), so that
    // the times measure the server. An https URL needs TLS: set it up now, off the clock. A
    // plain http one needs it only if redirected to https, so a host without CA
    // certificates can still probe http.
    let prepared = Target::parse(&request.url).and_then(|target| {
        if target.https {
            trust.config()?;
        }
        Ok(target)
    });
    match prepared {
        Ok(target) => {
            let started = Instant::now();
            if let Err(error) = exchange(request, body, target, &mut trust, started, &mut probe) {
                probe.error = Some(error);
            }
            probe.total_time = started.elapsed();
        }
        Err(error) => probe.error = Some(error),
    }
    let leaf = seen.lock().unwrap_or_else(PoisonError::into_inner).take();
    if let Some(der) = leaf {
        match tls_info(&der) {
            Ok(info) => probe.tls = Some(info),
            Err(e) if probe.error.is_none() => {
                probe.error = Some(format!("cannot read the server's certificate: {e}"));
            }
            Err(_) => {}
        }
    }
    probe
}

/// The leaf certificate of the last TLS handshake, in DER.
type SeenCert = Arc<Mutex<Option<CertificateDer<'static>>>>;

/// The TLS set-up of one request, made on first use.
struct Trust<'a> {
    request: &'a HttpRequest,
    seen: &'a SeenCert,
    config: Option<Arc<ClientConfig>>,
}

impl Trust<'_> {
    fn config(&mut self) -> Result<Arc<ClientConfig>, String> {
        if let Some(config) = &self.config {
            return Ok(Arc::clone(config));
        }
        let config = tls_config(self.request.ca_file.as_deref(), self.request.validate_certs, self.seen)?;
        self.config = Some(Arc::clone(&config));
        Ok(config)
    }
}

/// Where a URL sends a request.
struct Target {
    https: bool,
    /// As in the URL: `[::1]` keeps its brackets.
    host: String,
    port: u16,
    /// The `Host` field: host and port as written, without user info.
    authority: String,
    /// Path and query, `/` at least.
    path: String,
}

impl Target {
    /// The URL's target, or why it cannot be probed.
    fn parse(url: &str) -> Result<Self, String> {
        let uri: http::Uri = url.parse().map_err(|e| format!("invalid URL {}: {e}", quote(url)))?;
        let https = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("https") => true,
            Some(s) if s.eq_ignore_ascii_case("http") => false,
            _ => return Err(format!("invalid URL {}: the scheme must be http or https", quote(url))),
        };
        let (Some(authority), Some(host)) = (uri.authority(), uri.host().filter(|h| !h.is_empty())) else {
            return Err(format!("invalid URL {}: no host", quote(url)));
        };
        let authority = authority.as_str();
        let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
        // `http://h?q` asks for `/?q`: the request target's path is never empty.
        let path = match uri.path_and_query().map(|p| p.as_str()) {
            Some(p) if p.starts_with('/') => p.to_owned(),
            Some(p) => format!("/{p}"),
            None => "/".to_owned(),
        };
        Ok(Target {
            https,
            host: host.to_owned(),
            port: uri.port_u16().unwrap_or(if https { 443 } else { 80 }),
            authority: authority.to_owned(),
            path,
        })
    }

    /// Scheme, host and port, lowercased: where the request's headers may be sent.
    fn origin(&self) -> (bool, String, u16) {
        (self.https, self.host.to_ascii_lowercase(), self.port)
    }
}

fn exchange(
    request: &HttpRequest,
    body: Option<(BodyMethod, &[u8])>,
    mut target: Target,
    trust: &mut Trust<'_>,
    started: Instant,
    probe: &mut HttpProbe,
) -> Result<(), String> {
    // The whole exchange, redirects included, is within the timeout.
    let timeout = request.timeout.min(LONGEST_TIMEOUT);
    let deadline = started + timeout;
    let home = target.origin();
    let mut url = Cow::Borrowed(request.url.as_str());
    let mut redirects = 0;
    let method = match (body, request.method) {
        (Some((BodyMethod::Post, _)), _) => "POST",
        (Some((BodyMethod::Put, _)), _) => "PUT",
        (None, HttpMethod::Get) => "GET",
        (None, HttpMethod::Head) => "HEAD",
    };
    let describe = |failure: Failure, host: &str| describe(failure, request, host);
    let (mut response, head) = loop {
        // The user's headers (credentials, often) go to the URL's own origin only.
        let at_home = redirects == 0 || target.origin() == home;
        let headers: &[(String, String)] = if at_home { &request.headers } else { &[] };
        let head = wire::Request {
            method,
            target: &target.path,
            host: &target.authority,
            user_agent: USER_AGENT,
            headers,
            content_length: body.map(|(_, bytes)| bytes.len()),
        }
        .head()
        .map_err(|f| describe(f, &target.host))?;
        let mut stream = open(&target, trust, deadline).map_err(|f| describe(f, &target.host))?;
        // One write: a second small one would wait for the first one's ACK (Nagle).
        let sent = match body {
            Some((_, bytes)) if !bytes.is_empty() => stream.send(&[head.as_slice(), bytes].concat(), deadline),
            _ => stream.send(&head, deadline),
        };
        let mut response = wire::Response::new(stream, deadline);
        // A server may answer (and close) before it has read the whole request: its
        // answer counts, and the failed write is said only when there is none.
        let head = match response.head(method == "HEAD") {
            Ok(head) => head,
            Err(failure) => return Err(describe(sent.err().map_or(failure, Failure::Io), &target.host)),
        };
        let follow = request.follow_redirects && body.is_none() && (300..400).contains(&head.status);
        let Some(location) = head.location.as_deref().filter(|_| follow) else {
            break (response, head);
        };
        probe.status = Some(head.status);
        url = Cow::Owned(redirect_target(&url, location)?);
        if redirects == MAX_REDIRECTS {
            return Err(format!("more than {MAX_REDIRECTS} redirects"));
        }
        redirects += 1;
        target = Target::parse(&url)?;
    };
    probe.latency = Some(started.elapsed());
    probe.status = Some(head.status);
    if method == "HEAD" || request.max_body_bytes == 0 {
        return Ok(());
    }
    let (bytes, more, read) = response.body(head.framing, request.max_body_bytes);
    probe.body_truncated = more;
    probe.body = Some(String::from_utf8_lossy(&bytes).into_owned());
    read.map_err(|f| format!("reading the body: {}", describe(f, &target.host)))
}

/// A connection to `target`, in TLS for https.
fn open(target: &Target, trust: &mut Trust<'_>, deadline: Instant) -> Result<wire::Stream, Failure> {
    let left = deadline.saturating_duration_since(Instant::now());
    let addrs: Vec<SocketAddr> = crate::net::resolve(&target.host, left)
        .map_err(Failure::Request)?
        .into_iter()
        .map(|ip| SocketAddr::new(ip, target.port))
        .collect();
    let tcp = wire::connect(&addrs, deadline)?;
    if !target.https {
        return Ok(wire::Stream::Plain(tcp));
    }
    let bare = target.host.trim_start_matches('[').trim_end_matches(']');
    let name = ServerName::try_from(bare.to_owned())
        .map_err(|e| Failure::Request(format!("{} cannot name a TLS server: {e}", quote(&target.host))))?;
    let config = trust.config().map_err(Failure::Request)?;
    let conn = ClientConnection::new(config, name).map_err(|e| Failure::Io(io::Error::other(e)))?;
    Ok(wire::handshake(conn, tcp, deadline)?)
}

/// Where a redirect from `from` to `location` (absolute, or relative as RFC 3986 allows)
/// leads, or why it is not followed: only http and https URLs are.
fn redirect_target(from: &str, location: &str) -> Result<String, String> {
    let refused = || {
        format!(
            "redirect to {} not followed: only http and https URLs are followed",
            quote(location)
        )
    };
    let scheme_end = location.find(':').filter(|&i| {
        i > 0
            && location[..i]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
    });
    if let Some(i) = scheme_end {
        let scheme = &location[..i];
        if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") {
            return Ok(location.to_string());
        }
        return Err(refused());
    }
    let base: http::Uri = from.parse().map_err(|_| refused())?;
    let (Some(scheme), Some(authority)) = (base.scheme_str(), base.authority()) else {
        return Err(refused());
    };
    let path = base.path();
    Ok(if location.starts_with("//") {
        format!("{scheme}:{location}")
    } else if location.starts_with('/') {
        format!("{scheme}://{authority}{location}")
    } else if location.starts_with('?') {
        format!("{scheme}://{authority}{path}{location}")
    } else {
        let dir = path.rsplit_once('/').map_or("", |(dir, _)| dir);
        format!("{scheme}://{authority}{dir}/{location}")
    })
}

/// An operator's reading of a failed exchange.
fn describe(failure: Failure, request: &HttpRequest, host: &str) -> String {
    use std::io::ErrorKind;
    let e = match failure {
        Failure::Request(said) => return said,
        Failure::Response(what) => return format!("invalid HTTP response: {what}"),
        Failure::Io(e) => e,
    };
    let tls = e.get_ref().and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match (tls, e.kind()) {
        (Some(tls), _) => format!("TLS handshake with {} failed: {tls}", quote(host)),
        (None, ErrorKind::ConnectionRefused) => "connection refused".into(),
        (None, ErrorKind::ConnectionReset) => "connection reset".into(),
        (None, ErrorKind::TimedOut | ErrorKind::WouldBlock) => {
            format!("timed out after {:?}", request.timeout)
        }
        (None, ErrorKind::UnexpectedEof) => "the server closed the connection".into(),
        (None, _) => e.to_string(),
    }
}

fn tls_info(der: &[u8]) -> Result<TlsInfo, String> {
    let cert = x509_cert::Certificate::from_der(der).map_err(|e| e.to_string())?;
    let tbs = cert.tbs_certificate();
    let unix = |t: x509_cert::time::Time| i64::try_from(t.to_unix_duration().as_secs()).unwrap_or(i64::MAX);
    Ok(TlsInfo {
        subject: rfc4514(tbs.subject()),
        issuer: rfc4514(tbs.issuer()),
        not_before_unix: unix(tbs.validity().not_before),
        not_after_unix: unix(tbs.validity().not_after),
    })
}

/// Short names of the attributes that certificate names use, for [`rfc4514`]. x509-cert's
/// own `Display` looks names up in const-oid's database of every OID it knows, which
/// costs ~200 KB of binary; these few cover what servers' certificates carry.
const ATTRIBUTE_NAMES: &[(&str, &str)] = &[
    ("2.5.4.3", "CN"),
    ("2.5.4.5", "serialNumber"),
    ("2.5.4.6", "C"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.9", "STREET"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("0.9.2342.19200300.100.1.1", "UID"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("1.2.840.113549.1.9.1", "emailAddress"),
];

/// A distinguished name as RFC 4514 writes it: last RDN first, `CN=example.org,O=Example`.
/// An attribute of another type, or whose value is not a string, is `<oid>=#<hex DER>`.
fn rfc4514(name: &x509_cert::name::Name) -> String {
    use std::fmt::Write;
    use x509_cert::der::asn1::{Ia5StringRef, PrintableStringRef, TeletexStringRef, Utf8StringRef};
    use x509_cert::der::{Encode, Tag, Tagged};
    let mut out = String::new();
    let rdns: Vec<_> = name.as_ref().iter().collect();
    for (i, rdn) in rdns.into_iter().rev().enumerate() {
        for (j, atv) in rdn.iter().enumerate() {
            out.push_str(match (i, j) {
                (0, 0) => "",
                (_, 0) => ",",
                _ => "+",
            });
            let value = &atv.value;
            let text = match value.tag() {
                Tag::Utf8String => Utf8StringRef::try_from(value).ok().map(|s| s.as_str()),
                Tag::PrintableString => PrintableStringRef::try_from(value).ok().map(|s| s.as_str()),
                Tag::Ia5String => Ia5StringRef::try_from(value).ok().map(|s| s.as_str()),
                Tag::TeletexString => TeletexStringRef::try_from(value).ok().map(|s| s.as_str()),
                _ => None,
            };
            let oid = atv.oid.to_string();
            let key = ATTRIBUTE_NAMES.iter().find(|(dotted, _)| *dotted == oid);
            match (key, text) {
                (Some((_, key)), Some(text)) => {
                    out.push_str(key);
                    out.push('=');
                    escape_rfc4514(text, &mut out);
                }
                _ => {
                    let _ = write!(out, "{oid}=#");
                    for byte in value.to_der().unwrap_or_default() {
                        let _ = write!(out, "{byte:02x}");
                    }
                }
            }
        }
    }
    out
}

fn escape_rfc4514(value: &str, out: &mut String) {
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '\x00'..='\x1f' | '\x7f' => out.push_str(&format!("\\{:02x}", c as u8)),
            _ => out.push(c),
        }
    }
}

// ---- trust --------------------------------------------------------------------------------

fn tls_config(ca_file: Option<&Path>, validate_certs: bool, seen: &SeenCert) -> Result<Arc<ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let (webpki, pinned) = if validate_certs {
        let (roots, pinned) = trusted_roots(ca_file)?;
        let verifier = WebPkiServerVerifier::builder_with_provider(roots, Arc::clone(&provider))
            .build()
            .map_err(|e| format!("cannot verify certificates: {e}"))?;
        (Some(verifier), pinned)
    } else {
        (None, Vec::new())
    };
    let verifier = RecordingVerifier {
        webpki,
        pinned,
        provider: Arc::clone(&provider),
        seen: Arc::clone(seen),
    };
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("cannot set up TLS: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The roots a request trusts: the system's CA bundle (the first of `$SSL_CERT_FILE`,
/// [`SYSTEM_CA_BUNDLES`] that can be read) and the certificates of `ca_file`, which are
/// also returned to be pinned. A `ca_file` that cannot be read, or holds no certificate, is
/// an error; so is ending up with no root at all.
///
/// Parsed once per process, not per request: the daemon probes every few seconds and would
/// otherwise re-read and re-parse the host's whole bundle each time. The system's roots are
/// read on first use (a changed bundle is seen by the next process); a `ca_file`'s store is
/// kept per path with the bytes it was made from, and made again when the file's bytes
/// change (the file is read each time, small and the user's own, so an edited `ca_file`
/// takes effect at once).
fn trusted_roots(ca_file: Option<&Path>) -> Result<(Arc<RootCertStore>, Vec<CertificateDer<'static>>), String> {
    let Some(path) = ca_file else {
        let roots = system_roots();
        if roots.is_empty() {
            return Err(format!(
                "no trusted CA certificate: none found in {} and no ca_file given",
                SYSTEM_CA_BUNDLES.join(", ")
            ));
        }
        return Ok((Arc::clone(roots), Vec::new()));
    };
    let shown = path.display();
    let bytes = crate::small_file::read(path, MAX_CA_BYTES, crate::small_file::Follow::Yes)
        .map_err(|e| format!("ca_file: {e}"))?;
    static BY_PATH: OnceLock<Mutex<HashMap<PathBuf, Arc<CaFileRoots>>>> = OnceLock::new();
    let cache = BY_PATH.get_or_init(Mutex::default);
    let cached = cache.lock().unwrap_or_else(PoisonError::into_inner).get(path).cloned();
    if let Some(entry) = cached.filter(|e| e.bytes == bytes) {
        return Ok((Arc::clone(&entry.roots), entry.pinned.clone()));
    }
    #[cfg(test)]
    tests::parsed(path);
    let certs = pem_certs(&bytes, path).map_err(|e| format!("ca_file: {e}"))?;
    if certs.is_empty() {
        return Err(format!("ca_file '{shown}' holds no PEM certificate"));
    }
    let mut roots = RootCertStore::clone(system_roots());
    for cert in &certs {
        roots
            .add(cert.clone())
            .map_err(|e| format!("ca_file '{shown}': unusable certificate: {e}"))?;
    }
    let entry = Arc::new(CaFileRoots {
        bytes,
        roots: Arc::new(roots),
        pinned: certs,
    });
    cache
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(path.to_path_buf(), Arc::clone(&entry));
    Ok((Arc::clone(&entry.roots), entry.pinned.clone()))
}

/// A `ca_file`'s trust as last made: from these bytes, the system's roots plus its
/// certificates, which are also pinned.
struct CaFileRoots {
    bytes: Vec<u8>,
    roots: Arc<RootCertStore>,
    pinned: Vec<CertificateDer<'static>>,
}

/// The system's roots, parsed on first use.
fn system_roots() -> &'static Arc<RootCertStore> {
    static SYSTEM: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    SYSTEM.get_or_init(|| {
        let mut roots = RootCertStore::empty();
        roots.add_parsable_certificates(system_ca_certificates());
        Arc::new(roots)
    })
}

/// The certificates of the system's CA bundle: the first of `$SSL_CERT_FILE`,
/// [`SYSTEM_CA_BUNDLES`] that can be read (none: empty), read once per process. Every TLS
/// client of the project trusts these (the alert channels' SMTP too), so that trust is
/// decided in one place.
pub fn system_ca_certificates() -> Vec<CertificateDer<'static>> {
    static SYSTEM: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    SYSTEM
        .get_or_init(|| {
            #[cfg(test)]
            tests::parsed(Path::new(""));
            let from_env = std::env::var_os("SSL_CERT_FILE").map(PathBuf::from);
            let candidates = from_env.into_iter().chain(SYSTEM_CA_BUNDLES.iter().map(PathBuf::from));
            candidates
                .into_iter()
                .find_map(|bundle| read_pem_certs(&bundle).ok())
                .unwrap_or_default()
        })
        .clone()
}

/// The largest CA bundle read (Debian's whole bundle is about 220 KB).
const MAX_CA_BYTES: u64 = 8 << 20;

/// The certificates in a PEM file; the error names the path. A FIFO, a device or a file
/// over `MAX_CA_BYTES` is refused at once (`small_file`), not read.
pub fn read_pem_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let pem = crate::small_file::read(path, MAX_CA_BYTES, crate::small_file::Follow::Yes).map_err(|e| e.to_string())?;
    pem_certs(&pem, path)
}

/// The certificates in `pem`, read from `path`.
fn pem_certs(pem: &[u8], path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("cannot read '{}': {e}", path.display()))
}

/// Records the server's leaf certificate, then verifies it with webpki, or, when
/// `validate_certs` is off, accepts it. Handshake signatures are checked either way: they
/// prove the server holds the certificate's key.
///
/// A server certificate that is itself in `ca_file` is trusted as its own anchor, as
/// `curl --cacert` (OpenSSL with a partial chain) trusts it, even when webpki refuses it
/// (a self-signed certificate with `CA:TRUE`, as `openssl req -x509` makes them, is
/// `CaUsedAsEndEntity` to webpki); its names and validity period are still checked.
#[derive(Debug)]
struct RecordingVerifier {
    webpki: Option<Arc<WebPkiServerVerifier>>,
    pinned: Vec<CertificateDer<'static>>,
    provider: Arc<CryptoProvider>,
    seen: SeenCert,
}

impl ServerCertVerifier for RecordingVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.seen.lock().unwrap_or_else(PoisonError::into_inner) = Some(end_entity.clone().into_owned());
        let Some(webpki) = &self.webpki else {
            return Ok(ServerCertVerified::assertion());
        };
        match webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(_) if self.pinned.iter().any(|c| c.as_ref() == end_entity.as_ref()) => {
                verify_pinned(end_entity, server_name, now)
            }
            result => result,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// A server certificate found in `ca_file` itself: valid for `server_name` and at `now`.
fn verify_pinned(
    cert: &CertificateDer<'_>,
    server_name: &ServerName<'_>,
    now: UnixTime,
) -> Result<ServerCertVerified, rustls::Error> {
    use rustls::CertificateError;
    let parsed = rustls::server::ParsedCertificate::try_from(cert)?;
    rustls::client::verify_server_name(&parsed, server_name)?;
    let info = tls_info(cert.as_ref()).map_err(|_| rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
    let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    if now > info.not_after_unix {
        return Err(rustls::Error::InvalidCertificate(CertificateError::Expired));
    }
    if now < info.not_before_unix {
        return Err(rustls::Error::InvalidCertificate(CertificateError::NotValidYet));
    }
    Ok(ServerCertVerified::assertion())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    /// How often each trust source was parsed: a `ca_file` by its path, the system's bundle
    /// as the empty path.
    static PARSED: Mutex<Option<HashMap<PathBuf, usize>>> = Mutex::new(None);

    pub(super) fn parsed(source: &Path) {
        let mut counts = PARSED.lock().unwrap_or_else(PoisonError::into_inner);
        *counts
            .get_or_insert_with(HashMap::new)
            .entry(source.to_path_buf())
            .or_default() += 1;
    }

    fn times_parsed(source: &Path) -> usize {
        let counts = PARSED.lock().unwrap_or_else(PoisonError::into_inner);
        counts.as_ref().and_then(|c| c.get(source)).copied().unwrap_or(0)
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn probes_parse_their_trust_once_and_again_only_when_the_ca_file_changes() {
        fn serve(config: Arc<rustls::ServerConfig>, stream: std::net::TcpStream) {
            use std::io::Write;
            let Ok(conn) = rustls::ServerConnection::new(config) else {
                return;
            };
            let mut tls = rustls::StreamOwned::new(conn, stream);
            if !test_support::read_head(&mut tls).is_empty() {
                let _ = tls.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
                tls.conn.send_close_notify();
                let _ = tls.flush();
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("ca.pem");
        let probe = |server: &test_support::TlsServer| {
            probe_http(&HttpRequest {
                ca_file: Some(ca_file.clone()),
                ..HttpRequest::new(format!("https://127.0.0.1:{}/", server.addr.port()))
            })
        };
        let first = test_support::https_server_with(test_support::DAY, true, serve);
        std::fs::write(&ca_file, &first.cert_pem).unwrap();
        for _ in 0..3 {
            let p = probe(&first);
            assert_eq!((p.status, p.error.as_deref()), (Some(200), None), "{p:?}");
        }
        assert_eq!(times_parsed(&ca_file), 1);
        // And the system's bundle once per process, whoever asked first.
        system_ca_certificates();
        assert_eq!(times_parsed(Path::new("")), 1);
        // A ca_file rewritten in place is read anew: the old store would refuse this server.
        let second = test_support::https_server_with(test_support::DAY, true, serve);
        std::fs::write(&ca_file, &second.cert_pem).unwrap();
        let p = probe(&second);
        assert_eq!((p.status, p.error.as_deref()), (Some(200), None), "{p:?}");
        assert_eq!(times_parsed(&ca_file), 2);
    }

    #[test]
    #[allow(clippy::unwrap_used)]
    fn urls_become_a_request_target_and_a_host_field() {
        for (url, path, authority, host, port) in [
            ("http://h", "/", "h", "h", 80),
            ("http://h?x=1", "/?x=1", "h", "h", 80),
            ("https://h:8443/a/b?c=d", "/a/b?c=d", "h:8443", "h", 8443),
            // User info is not sent; the fragment stays with the client.
            ("http://user:pw@h:8/a?b#frag", "/a?b", "h:8", "h", 8),
            ("http://[::1]:9/x", "/x", "[::1]:9", "[::1]", 9),
        ] {
            let t = Target::parse(url).unwrap();
            assert_eq!(
                (t.path.as_str(), t.authority.as_str(), t.host.as_str(), t.port),
                (path, authority, host, port),
                "{url}"
            );
        }
    }

    #[test]
    fn urls_that_cannot_be_probed_are_named_in_the_error() {
        let host = |url: &str| Target::parse(url).map(|t| t.host);
        let check = |url: &str, expected: &str| assert_eq!(host(url), Err(expected.to_string()));
        check(
            "ftp://example.org/",
            "invalid URL 'ftp://example.org/': the scheme must be http or https",
        );
        check(
            "/just/a/path",
            "invalid URL '/just/a/path': the scheme must be http or https",
        );
        check("http://", "invalid URL 'http://': empty string");
        assert_eq!(host("HTTPS://[::1]:8443/x"), Ok("[::1]".into()));
    }

    #[test]
    fn a_pinned_certificate_is_for_its_names_only() {
        #[allow(clippy::unwrap_used)]
        let cert = {
            let server = test_support::https_server_with(test_support::DAY, true, |_, _| {});
            CertificateDer::from_pem_slice(server.cert_pem.as_bytes()).unwrap()
        };
        let now = UnixTime::now();
        let name = |n: &str| ServerName::try_from(n.to_string()).expect("a name");
        assert!(verify_pinned(&cert, &name("127.0.0.1"), now).is_ok());
        assert!(verify_pinned(&cert, &name("localhost"), now).is_ok());
        let err = verify_pinned(&cert, &name("example.org"), now).expect_err("not its name");
        assert!(format!("{err:?}").contains("NotValidForName"), "{err:?}");
        let later = UnixTime::since_unix_epoch(Duration::from_secs(4_000_000_000));
        let err = verify_pinned(&cert, &name("localhost"), later).expect_err("expired by then");
        assert!(format!("{err:?}").contains("Expired"), "{err:?}");
    }

    #[test]
    fn redirect_targets_are_resolved_and_other_schemes_refused() {
        let check = |location: &str, expected: Result<&str, &str>| {
            assert_eq!(
                redirect_target("http://h:8080/a/b?q", location),
                expected.map(String::from).map_err(String::from),
                "{location}"
            );
        };
        check("https://x/y", Ok("https://x/y"));
        check("//x/y", Ok("http://x/y"));
        check("/y", Ok("http://h:8080/y"));
        check("c", Ok("http://h:8080/a/c"));
        check("?r", Ok("http://h:8080/a/b?r"));
        check(
            "file:///etc/passwd",
            Err("redirect to 'file:///etc/passwd' not followed: only http and https URLs are followed"),
        );
        check(
            "javascript:alert(1)",
            Err("redirect to 'javascript:alert(1)' not followed: only http and https URLs are followed"),
        );
    }
}
