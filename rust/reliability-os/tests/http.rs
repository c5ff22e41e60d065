//! `probe_http` against real servers on loopback, started by each test: plain HTTP with
//! chosen statuses, bodies and delays, and HTTPS with certificates made at test time.

// The helpers too: a test that cannot set itself up should fail loudly.
#![allow(clippy::unwrap_used)]

use reliability_os::http::{probe_http, HttpMethod, HttpProbe, HttpRequest};
use rustls::{ServerConfig, ServerConnection, StreamOwned};
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::sync::Arc;
use std::thread;
use std::time::Duration;
use test_support::{now_unix, read_head, TlsServer, DAY};

/// What a test server does with one request: wait, then send these bytes.
struct Reply {
    delay: Duration,
    bytes: Vec<u8>,
}

fn reply(status: &str, body: &str) -> Reply {
    let head = format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    Reply {
        delay: Duration::ZERO,
        bytes: [head.as_bytes(), body.as_bytes()].concat(),
    }
}

/// An HTTP server on 127.0.0.1 answering each request with `answer(request head)`, and
/// passing every request head it saw to the returned receiver.
fn http_server(answer: impl Fn(&str) -> Reply + Send + 'static) -> (SocketAddr, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen, heads) = mpsc::channel();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let head = read_head(&mut stream);
            let reply = answer(&head);
            let _ = seen.send(head);
            thread::sleep(reply.delay);
            let _ = stream.write_all(&reply.bytes);
        }
    });
    (addr, heads)
}

fn get(url: String) -> HttpRequest {
    HttpRequest {
        timeout: Duration::from_secs(5),
        ..HttpRequest::new(url)
    }
}

fn assert_ok(probe: &HttpProbe, status: u16) {
    assert_eq!(probe.error, None, "{probe:?}");
    assert_eq!(probe.status, Some(status), "{probe:?}");
    let latency = probe.latency.unwrap();
    assert!(latency <= probe.total_time, "{probe:?}");
}

#[test]
fn a_200_with_its_body() {
    let (addr, heads) = http_server(|_| reply("200 OK", "all good"));
    let probe = probe_http(&get(format!("http://{addr}/health")));
    assert_ok(&probe, 200);
    assert_eq!(probe.body.as_deref(), Some("all good"));
    assert!(!probe.body_truncated);
    assert_eq!(probe.tls, None);
    let head = heads.recv().unwrap();
    assert!(head.starts_with("GET /health HTTP/1.1\r\n"), "{head}");
    assert!(head.to_lowercase().contains("user-agent: hx.reliability/"), "{head}");
}

#[test]
fn a_500_is_reported_not_failed() {
    let (addr, _) = http_server(|_| reply("500 Internal Server Error", "db down"));
    let probe = probe_http(&get(format!("http://{addr}/")));
    assert_ok(&probe, 500);
    assert_eq!(probe.body.as_deref(), Some("db down"));
}

#[test]
fn a_long_body_is_cut_at_max_body_bytes() {
    let body = "é".repeat(1000); // 2000 bytes
    let (addr, _) = http_server(move |_| reply("200 OK", &body));
    let request = HttpRequest {
        max_body_bytes: 11,
        ..get(format!("http://{addr}/"))
    };
    let probe = probe_http(&request);
    assert_ok(&probe, 200);
    assert!(probe.body_truncated);
    // 11 bytes: five whole 'é' and half of one, replaced.
    assert_eq!(probe.body.as_deref(), Some("ééééé\u{fffd}"));

    let request = HttpRequest {
        max_body_bytes: 0,
        ..get(format!("http://{addr}/"))
    };
    let probe = probe_http(&request);
    assert_ok(&probe, 200);
    assert_eq!((probe.body, probe.body_truncated), (None, false));
}

#[test]
fn head_sends_head_and_reads_no_body() {
    let (addr, heads) = http_server(|_| Reply {
        delay: Duration::ZERO,
        bytes: b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n".to_vec(),
    });
    let request = HttpRequest {
        method: HttpMethod::Head,
        ..get(format!("http://{addr}/x"))
    };
    let probe = probe_http(&request);
    assert_ok(&probe, 204);
    assert_eq!(probe.body, None);
    assert!(heads.recv().unwrap().starts_with("HEAD /x HTTP/1.1\r\n"));
}

#[test]
fn request_headers_are_sent() {
    let (addr, heads) = http_server(|_| reply("200 OK", ""));
    let headers = vec![
        ("X-Probe".into(), "hx".into()),
        ("Authorization".into(), "Bearer t".into()),
    ];
    let probe = probe_http(&HttpRequest {
        headers,
        ..get(format!("http://{addr}/"))
    });
    assert_ok(&probe, 200);
    let head = heads.recv().unwrap().to_lowercase();
    assert!(
        head.contains("x-probe: hx\r\n") && head.contains("authorization: bearer t\r\n"),
        "{head}"
    );

    let headers = vec![("Bad Name".into(), "x".into())];
    let probe = probe_http(&HttpRequest {
        headers,
        ..get(format!("http://{addr}/"))
    });
    assert!(probe.error.unwrap().starts_with("invalid request: "));
}

#[test]
fn a_server_slower_than_the_timeout_times_out() {
    let (addr, _) = http_server(|_| Reply {
        delay: Duration::from_secs(3),
        ..reply("200 OK", "late")
    });
    let request = HttpRequest {
        timeout: Duration::from_millis(500),
        ..get(format!("http://{addr}/"))
    };
    let probe = probe_http(&request);
    assert_eq!(probe.error.as_deref(), Some("timed out after 500ms"), "{probe:?}");
    assert_eq!((probe.status, probe.latency), (None, None));
    assert!(probe.total_time >= Duration::from_millis(500), "{probe:?}");
    assert!(probe.total_time < Duration::from_millis(2500), "{probe:?}");
}

/// The headers come at once, the body 400 ms later: `latency` is the first, `total_time`
/// the second.
#[test]
fn latency_is_time_to_headers_and_total_time_includes_the_body() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        read_head(&mut stream);
        stream
            .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n")
            .unwrap();
        thread::sleep(Duration::from_millis(400));
        stream.write_all(b"done").unwrap();
    });
    let probe = probe_http(&get(format!("http://{addr}/")));
    assert_ok(&probe, 200);
    assert_eq!(probe.body.as_deref(), Some("done"));
    assert!(probe.latency.unwrap() < Duration::from_millis(300), "{probe:?}");
    assert!(probe.total_time >= Duration::from_millis(400), "{probe:?}");
}

#[test]
fn a_closed_port_is_refused() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let probe = probe_http(&get(format!("http://127.0.0.1:{port}/")));
    assert_eq!(probe.error.as_deref(), Some("connection refused"), "{probe:?}");
    assert_eq!(probe.status, None);
}

#[test]
fn ipv6_loopback_in_brackets() {
    let Ok(listener) = TcpListener::bind("[::1]:0") else {
        test_support::skip("cannot listen on [::1]; ::1 is not configured");
        return;
    };
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        let (mut stream, _) = listener.accept().unwrap();
        read_head(&mut stream);
        stream.write_all(&reply("200 OK", "v6").bytes).unwrap();
    });
    let probe = probe_http(&get(format!("http://[::1]:{port}/")));
    assert_ok(&probe, 200);
    assert_eq!(probe.body.as_deref(), Some("v6"));
}

#[test]
fn urls_that_cannot_be_probed_say_which() {
    for (url, error) in [
        (
            "ftp://127.0.0.1/",
            "invalid URL 'ftp://127.0.0.1/': the scheme must be http or https",
        ),
        (
            "127.0.0.1:80",
            "invalid URL '127.0.0.1:80': the scheme must be http or https",
        ),
        ("http:///path", "invalid URL 'http:///path': invalid format"),
        ("", "invalid URL '': empty string"),
    ] {
        let probe = probe_http(&get(url.into()));
        assert_eq!(probe.error.as_deref(), Some(error));
        assert_eq!(probe.status, None);
    }
}

#[test]
fn redirects_are_reported_unless_asked_to_follow() {
    let (addr, _) = http_server(|head| {
        if head.starts_with("GET /old ") {
            Reply {
                delay: Duration::ZERO,
                bytes: b"HTTP/1.1 301 Moved Permanently\r\nLocation: /new\r\nContent-Length: 0\r\n\r\n".to_vec(),
            }
        } else {
            reply("200 OK", "new place")
        }
    });
    let probe = probe_http(&get(format!("http://{addr}/old")));
    assert_ok(&probe, 301);
    let request = HttpRequest {
        follow_redirects: true,
        ..get(format!("http://{addr}/old"))
    };
    let probe = probe_http(&request);
    assert_ok(&probe, 200);
    assert_eq!(probe.body.as_deref(), Some("new place"));
}

#[test]
fn headers_follow_redirects_within_the_origin_only() {
    let (elsewhere, elsewhere_heads) = http_server(|_| reply("200 OK", "elsewhere"));
    let (addr, heads) = http_server(move |head| {
        let to = if head.starts_with("GET /start ") {
            "/same".to_string()
        } else if head.starts_with("GET /same ") {
            format!("http://{elsewhere}/other")
        } else {
            return reply("404 Not Found", "");
        };
        Reply {
            delay: Duration::ZERO,
            bytes: format!("HTTP/1.1 302 Found\r\nLocation: {to}\r\nContent-Length: 0\r\n\r\n").into_bytes(),
        }
    });
    let probe = probe_http(&HttpRequest {
        follow_redirects: true,
        headers: vec![("Authorization".into(), "Bearer t".into())],
        ..get(format!("http://{addr}/start"))
    });
    assert_ok(&probe, 200);
    assert_eq!(probe.body.as_deref(), Some("elsewhere"));
    for _ in 0..2 {
        let head = heads.recv().unwrap().to_lowercase();
        assert!(head.contains("authorization: bearer t\r\n"), "{head}");
    }
    let head = elsewhere_heads.recv().unwrap().to_lowercase();
    assert!(
        head.starts_with("get /other ") && !head.contains("authorization"),
        "{head}"
    );
}

#[test]
fn a_redirect_to_another_scheme_is_refused_and_named() {
    for location in ["file:///etc/passwd", "ftp://127.0.0.1/x", "gopher://127.0.0.1/"] {
        let (addr, _) = http_server(move |_| Reply {
            delay: Duration::ZERO,
            bytes: format!("HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\r\n").into_bytes(),
        });
        let probe = probe_http(&HttpRequest {
            follow_redirects: true,
            ..get(format!("http://{addr}/"))
        });
        assert_eq!(
            probe.error,
            Some(format!(
                "redirect to '{location}' not followed: only http and https URLs are followed"
            )),
            "{probe:?}"
        );
        assert_eq!(probe.status, Some(302));
    }
}

// ---- HTTPS -------------------------------------------------------------------------------

fn https_server(valid_for: i64) -> TlsServer {
    test_support::https_server(valid_for, serve_tls)
}

#[test]
fn a_self_signed_ca_certificate_in_ca_file_is_trusted_as_the_server_certificate() {
    // What `curl --cacert` accepts: the server's own certificate, self-signed with
    // CA:TRUE, as the trust anchor.
    let server = test_support::https_server_with(5 * DAY, true, serve_tls);
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &server.cert_pem).unwrap();
    let request = |host: &str| HttpRequest {
        ca_file: Some(ca_file.clone()),
        ..get(format!("https://{host}:{}/", server.addr.port()))
    };
    let probe = probe_http(&request("127.0.0.1"));
    assert_ok(&probe, 200);
    assert_eq!(probe.body.as_deref(), Some("secure"));
    assert_eq!(probe.tls.as_ref().map(|t| t.not_after_unix), Some(server.not_after));
    // (Its names are still checked: unit test `a_pinned_certificate_is_for_its_names_only`.)
    // And not once expired.
    let expired = test_support::https_server_with(-DAY, true, serve_tls);
    std::fs::write(&ca_file, &expired.cert_pem).unwrap();
    let probe = probe_http(&HttpRequest {
        ca_file: Some(ca_file.clone()),
        ..get(format!("https://127.0.0.1:{}/", expired.addr.port()))
    });
    let error = probe.error.unwrap_or_default();
    assert!(error.contains("Expired"), "{error}");
}

fn serve_tls(config: Arc<ServerConfig>, stream: TcpStream) {
    let Ok(conn) = ServerConnection::new(config) else {
        return;
    };
    let mut tls = StreamOwned::new(conn, stream);
    // A client that rejects the certificate ends the handshake: nothing to answer.
    let head = read_head(&mut tls);
    if head.is_empty() {
        return;
    }
    let _ = tls.write_all(&reply("200 OK", "secure").bytes);
    tls.conn.send_close_notify();
    let _ = tls.flush();
}

#[test]
fn https_with_a_self_signed_certificate_that_expires_in_five_days() {
    let server = https_server(5 * DAY);
    let url = format!("https://127.0.0.1:{}/", server.addr.port());

    // Not trusted: the system's CAs never signed it. The certificate is reported anyway.
    let probe = probe_http(&get(url.clone()));
    let error = probe.error.clone().unwrap();
    assert!(
        error.contains("certificate") && error.contains("UnknownIssuer"),
        "{error}"
    );
    assert_eq!(probe.status, None);
    assert_eq!(probe.tls.as_ref().map(|t| t.not_after_unix), Some(server.not_after));

    // Trusted through ca_file.
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &server.cert_pem).unwrap();
    let request = HttpRequest {
        ca_file: Some(ca_file),
        ..get(url.clone())
    };
    let probe = probe_http(&request);
    assert_ok(&probe, 200);
    assert_eq!(probe.body.as_deref(), Some("secure"));
    let tls = probe.tls.unwrap();
    let left = tls.not_after_unix - now_unix();
    assert!(left > 5 * DAY - 60 && left <= 5 * DAY, "not_after is {left} s away");
    assert!(tls.not_before_unix < now_unix());
    // RFC 4514, as `openssl x509 -noout -subject -nameopt RFC2253` prints this certificate:
    // the last RDN first, the comma in a value escaped.
    assert_eq!(tls.subject, "O=hx\\, reliability,CN=hx-reliability test");
    assert_eq!(tls.issuer, tls.subject);

    // Not verified at all, and still reported.
    let request = HttpRequest {
        validate_certs: false,
        ..get(url)
    };
    let probe = probe_http(&request);
    assert_ok(&probe, 200);
    assert_eq!(probe.tls.map(|t| t.not_after_unix), Some(server.not_after));
}

#[test]
fn an_expired_certificate_fails_verification_and_shows_when_it_expired() {
    let server = https_server(-DAY);
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, &server.cert_pem).unwrap();
    let url = format!("https://localhost:{}/", server.addr.port());
    let probe = probe_http(&HttpRequest {
        ca_file: Some(ca_file),
        ..get(url)
    });
    let error = probe.error.unwrap();
    assert!(error.contains("certificate") && error.contains("xpired"), "{error}");
    assert_eq!(probe.tls.map(|t| t.not_after_unix), Some(server.not_after));
}

#[test]
fn a_ca_file_that_cannot_be_used_is_an_error() {
    let server = https_server(DAY);
    let url = format!("https://127.0.0.1:{}/", server.addr.port());
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.pem");
    let probe = probe_http(&HttpRequest {
        ca_file: Some(missing.clone()),
        ..get(url.clone())
    });
    let error = probe.error.unwrap();
    assert!(
        error == format!("ca_file: '{}' does not exist", missing.display()),
        "{error}"
    );

    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "no certificate here\n").unwrap();
    let probe = probe_http(&HttpRequest {
        ca_file: Some(empty.clone()),
        ..get(url)
    });
    assert_eq!(
        probe.error,
        Some(format!("ca_file '{}' holds no PEM certificate", empty.display()))
    );
}

#[test]
fn a_server_that_never_finishes_the_handshake_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        thread::sleep(Duration::from_secs(3));
        drop(stream);
    });
    let url = format!("https://127.0.0.1:{}/", addr.port());
    let probe = probe_http(&HttpRequest {
        timeout: Duration::from_millis(700),
        ..get(url)
    });
    assert_eq!(probe.error.as_deref(), Some("timed out after 700ms"), "{probe:?}");
    assert_eq!(probe.tls, None);
    assert!(probe.total_time < Duration::from_millis(2500), "{probe:?}");
}

#[test]
fn servers_that_misbehave_are_described() {
    let raw = |bytes: &'static [u8]| {
        http_server(move |_| Reply {
            delay: Duration::ZERO,
            bytes: bytes.to_vec(),
        })
        .0
    };

    let addr = raw(b"garbage\r\n\r\n");
    let probe = probe_http(&get(format!("http://{addr}/")));
    assert_eq!(
        probe.error.as_deref(),
        Some("invalid HTTP response: invalid HTTP version")
    );

    let addr = raw(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort");
    let probe = probe_http(&get(format!("http://{addr}/")));
    assert_eq!(probe.status, Some(200));
    assert_eq!(probe.body.as_deref(), Some("short"));
    assert_eq!(
        probe.error.as_deref(),
        Some("reading the body: the server closed the connection")
    );

    let addr = raw(b"HTTP/1.1 302 Found\r\nLocation: /\r\nContent-Length: 0\r\n\r\n");
    let probe = probe_http(&HttpRequest {
        follow_redirects: true,
        ..get(format!("http://{addr}/"))
    });
    assert_eq!(probe.error.as_deref(), Some("more than 10 redirects"));

    let addr = raw(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
    let probe = probe_http(&get(format!("https://{addr}/")));
    let error = probe.error.unwrap();
    assert!(error.starts_with("TLS handshake with '127.0.0.1' failed: "), "{error}");
}

/// Each way a body can end (RFC 9112, section 6.3), and each bound on what is read.
#[test]
fn bodies_are_framed_as_the_response_says_and_read_within_bounds() {
    let probe = |bytes: &str, keep: usize| {
        let bytes = bytes.as_bytes().to_vec();
        let (addr, _heads) = http_server(move |_| Reply {
            delay: Duration::ZERO,
            bytes: bytes.clone(),
        });
        probe_http(&HttpRequest {
            max_body_bytes: keep,
            ..get(format!("http://{addr}/"))
        })
    };
    let seen = |p: &HttpProbe| (p.status, p.body.clone(), p.body_truncated, p.error.clone());
    let ok = |status: u16, body: &str, truncated: bool| (Some(status), Some(body.to_string()), truncated, None);

    // Chunked, with an extension and a trailer; cut in a chunk; cut at a chunk's end.
    let chunked =
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n4;x=y\r\nWiki\r\n5\r\npedia\r\n0\r\nT: v\r\n\r\n";
    assert_eq!(seen(&probe(chunked, 100)), ok(200, "Wikipedia", false));
    assert_eq!(seen(&probe(chunked, 6)), ok(200, "Wikipe", true));
    assert_eq!(seen(&probe(chunked, 4)), ok(200, "Wiki", true));
    // Lines ended by a bare LF are read too.
    let bare = "HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n3\nabc\n0\n\n";
    assert_eq!(seen(&probe(bare, 100)), ok(200, "abc", false));
    // Until the connection closes: no length, or a coding other than chunked last.
    assert_eq!(
        seen(&probe("HTTP/1.1 200 OK\r\n\r\nto the end", 100)),
        ok(200, "to the end", false)
    );
    let other = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\nContent-Length: 2\r\n\r\n3\r\nabc";
    assert_eq!(seen(&probe(other, 100)), ok(200, "3\r\nabc", false));
    // No body for 204 and 304, whatever the fields say; equal lengths in a list are one.
    assert_eq!(
        seen(&probe("HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n", 100)),
        ok(204, "", false)
    );
    let listed = "HTTP/1.1 200 OK\r\nContent-Length: 3, 3\r\n\r\nabcdef";
    assert_eq!(seen(&probe(listed, 100)), ok(200, "abc", false));
    // Interim responses are skipped; a ninth one is too many.
    let interim = "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    assert_eq!(seen(&probe(interim, 100)), ok(200, "ok", false));
    let endless = "HTTP/1.1 100 Continue\r\n\r\n".repeat(9) + "HTTP/1.1 200 OK\r\n\r\n";
    let p = probe(&endless, 100);
    assert_eq!(
        p.error.as_deref(),
        Some("invalid HTTP response: more than 8 interim (1xx) responses")
    );
    assert_eq!(p.status, None);

    // What is refused, and named.
    let refused = |bytes: &str| probe(bytes, 100).error.unwrap_or_default();
    assert_eq!(
        refused("HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd"),
        "invalid HTTP response: invalid Content-Length '4'"
    );
    assert_eq!(
        refused("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"),
        "invalid HTTP response: invalid Content-Length '-1'"
    );
    assert_eq!(
        refused("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
        "reading the body: invalid HTTP response: invalid chunk size 'zz'"
    );
    assert_eq!(
        refused("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10000000000000000\r\n"),
        "reading the body: invalid HTTP response: invalid chunk size '10000000000000000'"
    );
    assert_eq!(
        refused("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n"),
        "reading the body: invalid HTTP response: a chunk is longer than its size says"
    );
    assert_eq!(
        refused(&format!(
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1;{}",
            "x".repeat(5000)
        )),
        "reading the body: invalid HTTP response: a chunk-size line is longer than 4096 bytes"
    );
    assert_eq!(
        refused("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"),
        "reading the body: the server closed the connection"
    );
    assert_eq!(
        refused(&format!("HTTP/1.1 200 OK\r\n{}\r\n", "A: b\r\n".repeat(129))),
        "invalid HTTP response: too many headers"
    );
    assert_eq!(refused("HTTP/1.1 200"), "the server closed the connection");
    assert_eq!(refused(""), "the server closed the connection");
}

/// The probe's own fields (Host, User-Agent, Accept, Connection) give way to the caller's;
/// the fields that frame a body are the probe's alone.
#[test]
fn the_callers_fields_replace_the_defaults_and_framing_fields_are_refused() {
    let (addr, heads) = http_server(|_| reply("200 OK", "ok"));
    let probe = probe_http(&HttpRequest {
        headers: vec![
            ("user-agent".into(), "mine/1".into()),
            ("Host".into(), "example.org".into()),
        ],
        ..get(format!("http://{addr}/a/b?c=d"))
    });
    assert_ok(&probe, 200);
    let head = heads.recv().unwrap();
    assert!(head.starts_with("GET /a/b?c=d HTTP/1.1\r\n"), "{head}");
    let lower = head.to_lowercase();
    assert_eq!(lower.matches("user-agent:").count(), 1, "{head}");
    assert_eq!(lower.matches("host:").count(), 1, "{head}");
    assert!(
        head.contains("user-agent: mine/1\r\n") && head.contains("Host: example.org\r\n"),
        "{head}"
    );
    assert!(
        head.contains("Connection: close\r\n") && head.contains("Accept: */*\r\n"),
        "{head}"
    );
    // A URL without a path asks for `/`.
    assert_ok(&probe_http(&get(format!("http://{addr}?q=1"))), 200);
    let head = heads.recv().unwrap();
    assert!(head.starts_with("GET /?q=1 HTTP/1.1\r\n"), "{head}");

    for (name, value, error) in [
        (
            "Content-Length",
            "0",
            "invalid request: the header 'Content-Length' is the probe's to set",
        ),
        (
            "X-A",
            "line\r\nInjected: yes",
            "invalid request: failed to parse header value in the header 'X-A'",
        ),
    ] {
        let probe = probe_http(&HttpRequest {
            headers: vec![(name.into(), value.into())],
            ..get(format!("http://{addr}/"))
        });
        assert_eq!(probe.error.as_deref(), Some(error));
    }
}

#[test]
fn an_endless_timeout_does_not_overflow() {
    let (addr, _) = http_server(|_| reply("200 OK", "ok"));
    let probe = probe_http(&HttpRequest {
        timeout: Duration::MAX,
        ..get(format!("http://{addr}/"))
    });
    assert_ok(&probe, 200);
}

#[test]
fn send_posts_and_puts_the_body_and_follows_no_redirect() {
    use reliability_os::http::{send, BodyMethod};
    use std::io::Read;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (seen, requests) = mpsc::channel();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            // Byte by byte: a buffered reader would swallow the body.
            let mut head = Vec::new();
            while !head.ends_with(b"\r\n\r\n") {
                let mut byte = [0];
                stream.read_exact(&mut byte).unwrap();
                head.push(byte[0]);
            }
            let head = String::from_utf8(head).unwrap();
            let length: usize = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_string)
                })
                .and_then(|n| n.trim().parse().ok())
                .unwrap_or(0);
            let mut body = vec![0; length];
            stream.read_exact(&mut body).unwrap();
            let _ = seen.send((head, String::from_utf8(body).unwrap()));
            let answer =
                "HTTP/1.1 302 Found\r\nLocation: /elsewhere\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";
            let _ = stream.write_all(answer.as_bytes());
        }
    });
    for (method, name) in [(BodyMethod::Post, "POST"), (BodyMethod::Put, "PUT")] {
        let request = HttpRequest {
            headers: vec![("X-Test".into(), "yes".into())],
            follow_redirects: true,
            ..get(format!("http://{addr}/hook"))
        };
        let probe = send(&request, method, br#"{"a":1}"#);
        assert_ok(&probe, 302);
        assert_eq!(probe.body.as_deref(), Some("ok"));
        let (head, body) = requests.recv().unwrap();
        assert!(head.starts_with(&format!("{name} /hook HTTP/1.1\r\n")), "{head}");
        assert!(head.to_lowercase().contains("x-test: yes"), "{head}");
        assert_eq!(body, r#"{"a":1}"#);
        assert!(requests.try_recv().is_err(), "the redirect was followed");
    }
}

/// The heads fit the buffers up to common servers' limits: a response head of 12 KiB is
/// read and a request header of 6 KiB sent; a response head past 15 KiB is an error that
/// says so.
#[test]
fn heads_up_to_the_buffers_limits_pass_and_larger_ones_are_an_error() {
    let big = "c".repeat(12 * 1024);
    let (addr, heads) = http_server(move |_| Reply {
        delay: Duration::ZERO,
        bytes: format!("HTTP/1.1 200 OK\r\nX-Big: {big}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
            .into_bytes(),
    });
    let token = "t".repeat(6 * 1024);
    let probe = probe_http(&HttpRequest {
        headers: vec![("Authorization".into(), format!("Bearer {token}"))],
        ..get(format!("http://{addr}/"))
    });
    assert_ok(&probe, 200);
    assert!(heads.recv().unwrap().contains(&token), "the 6 KiB header was sent");

    let huge = "h".repeat(20 * 1024);
    let (addr, _heads) = http_server(move |_| Reply {
        delay: Duration::ZERO,
        bytes: format!("HTTP/1.1 200 OK\r\nX-Huge: {huge}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            .into_bytes(),
    });
    let probe = probe_http(&get(format!("http://{addr}/")));
    let error = probe.error.unwrap_or_default();
    assert!(probe.status.is_none(), "{error}");
    assert_eq!(error, "invalid HTTP response: its head is larger than 15360 bytes");

    // A request head past 8 KiB is not sent: an error, no panic.
    let (addr, _heads) = http_server(|_| reply("200 OK", ""));
    let probe = probe_http(&HttpRequest {
        headers: vec![("Authorization".into(), "t".repeat(10 * 1024))],
        ..get(format!("http://{addr}/"))
    });
    assert_eq!(
        probe.error.as_deref(),
        Some("the request head is larger than 8192 bytes: shorten its headers")
    );
}
