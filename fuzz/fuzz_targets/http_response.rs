//! The HTTP response reader: any bytes, served as a response from a loopback server to
//! `reliability_os::http::probe_http` (`http/wire.rs` frames and bounds, httparse parses
//! heads). Never panics; the body kept is at most `max_body_bytes`; a probe without an
//! error has a status; the probe ends within its timeout.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reliability_os::http::{probe_http, HttpRequest};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

const MAX_BODY: usize = 4096;
const TIMEOUT: Duration = Duration::from_secs(2);

/// The response the loopback server sends next, and its address.
struct Server {
    response: Arc<Mutex<Vec<u8>>>,
    url: String,
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(|| {
        let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback listener");
        let url = format!("http://{}/health", listener.local_addr().expect("its address"));
        let response = Arc::new(Mutex::new(Vec::new()));
        let serving = Arc::clone(&response);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
                // Read the request head, then answer with the bytes and close.
                let mut head = Vec::new();
                let mut buf = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
                    match stream.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let bytes = serving.lock().map(|r| r.clone()).unwrap_or_default();
                let _ = stream.write_all(&bytes);
                let _ = stream.shutdown(Shutdown::Both);
            }
        });
        Server { response, url }
    })
}

fuzz_target!(|data: &[u8]| {
    let server = server();
    *server.response.lock().expect("the response slot") = data.to_vec();
    let mut request = HttpRequest::new(server.url.clone());
    request.timeout = TIMEOUT;
    request.max_body_bytes = MAX_BODY;
    let started = Instant::now();
    let probe = probe_http(&request);
    let took = started.elapsed();
    assert!(took < TIMEOUT + Duration::from_secs(1), "the probe took {took:?}");
    if let Some(body) = &probe.body {
        assert!(body.chars().count() <= MAX_BODY, "a body of {} chars kept", body.chars().count());
    }
    if probe.error.is_none() {
        assert!(probe.status.is_some(), "no error and no status: {probe:?}");
    }
    if let Some(e) = &probe.error {
        assert!(e.len() <= 4096, "a {}-byte error message", e.len());
    }
});
