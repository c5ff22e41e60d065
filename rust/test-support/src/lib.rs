//! What the tests of several crates need and must not each write again: an HTTPS server
//! with a certificate made at test time, a thread in a network namespace of its own with
//! an nftables rule that drops SYNs (a host that never answers), reading a request head.
//!
//! Test code: a helper that cannot set itself up panics, so the test fails loudly.
#![allow(clippy::unwrap_used)]

use rcgen::{CertificateParams, DnType, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::ServerConfig;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{SystemTime, UNIX_EPOCH};

pub const DAY: i64 = 24 * 3600;

/// Under this variable set to `1` (`.ci/run` sets it; CI runs as root with `::1` on
/// loopback), a test that cannot run here fails instead of skipping.
pub const REQUIRE_PRIVILEGED: &str = "HX_REQUIRE_PRIVILEGED";

/// For a test that cannot run on this machine (not root, no `::1`, no tmpfs mount, a
/// missing tool): prints `SKIPPED: why` so the caller can return, or, under
/// `HX_REQUIRE_PRIVILEGED=1`, panics so the test fails rather than pass without running.
pub fn skip(why: &str) {
    if must_run(std::env::var(REQUIRE_PRIVILEGED).ok().as_deref()) {
        panic!("{REQUIRE_PRIVILEGED}=1, but this test cannot run here: {why}");
    }
    eprintln!("SKIPPED: {why}");
}

/// Whether the value of [`REQUIRE_PRIVILEGED`] forbids skipping.
fn must_run(value: Option<&str>) -> bool {
    value.is_some_and(|v| v.trim() == "1")
}

pub fn now_unix() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs() as i64
}

/// Reads one request head (request line and headers) from `stream`.
pub fn read_head(stream: impl Read) -> String {
    let mut reader = BufReader::new(stream);
    let mut head = String::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            return head;
        }
        head.push_str(&line);
    }
}

/// An HTTPS server started by [`https_server`].
pub struct TlsServer {
    pub addr: SocketAddr,
    pub cert_pem: String,
    /// When its certificate expires (unix seconds).
    pub not_after: i64,
}

/// An HTTPS server on 127.0.0.1 with a self-signed certificate for `127.0.0.1` and
/// `localhost` (organisation "hx, reliability", common name "hx-reliability test"), valid
/// from two days ago for `valid_for` seconds more (negative: expired). Each connection is
/// handed to `serve` on a thread of its own.
pub fn https_server(valid_for: i64, serve: fn(Arc<ServerConfig>, TcpStream)) -> TlsServer {
    https_server_with(valid_for, false, serve)
}

/// [`https_server`], its certificate marked as a CA's (`CA:TRUE`) when `ca` is set, as
/// `openssl req -x509` makes them by default.
pub fn https_server_with(valid_for: i64, ca: bool, serve: fn(Arc<ServerConfig>, TcpStream)) -> TlsServer {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()]).unwrap();
    if ca {
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    }
    params
        .distinguished_name
        .push(DnType::OrganizationName, "hx, reliability");
    params
        .distinguished_name
        .push(DnType::CommonName, "hx-reliability test");
    let not_after = now_unix() + valid_for;
    params.not_before = time::OffsetDateTime::from_unix_timestamp(now_unix() - 2 * DAY).unwrap();
    params.not_after = time::OffsetDateTime::from_unix_timestamp(not_after).unwrap();
    let cert = params.self_signed(&key).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![CertificateDer::from(cert.der().to_vec())], key_der)
        .unwrap();
    let config = Arc::new(config);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let config = Arc::clone(&config);
            thread::spawn(move || serve(config, stream));
        }
    });
    TlsServer {
        addr,
        cert_pem: cert.pem(),
        not_after,
    }
}

/// A port nothing listens on, which [`drop_syns_to`] makes a host that never answers.
pub const DROPPED: u16 = 9;

/// An `nft -f` script that silently drops SYNs to `port`: a host that never answers.
pub fn drop_syns_to(port: u16) -> String {
    format!(
        "table inet blackhole {{
           chain input {{
             type filter hook input priority 0; policy accept;
             tcp dport {port} tcp flags syn drop
           }}
         }}"
    )
}

/// Why [`in_private_netns`] could not run its function.
#[derive(Debug)]
pub enum NetnsError {
    /// Only root may make a network namespace.
    NotRoot,
    /// Root, yet no namespace (or `ip`/`nft` failed): the reason.
    Failed(String),
}

/// Runs `f` on a thread that has its own network namespace, with `lo` up and `nft_rules`
/// (an `nft -f` script) loaded; children it starts live there too. The namespace goes away
/// with the thread. Each caller decides whether a missing namespace skips or fails it.
pub fn in_private_netns<R: Send + 'static>(
    nft_rules: String,
    f: impl FnOnce() -> R + Send + 'static,
) -> Result<R, NetnsError> {
    if !nix::unistd::Uid::effective().is_root() {
        return Err(NetnsError::NotRoot);
    }
    let handle = thread::spawn(move || -> Result<R, String> {
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| format!("unshare: {e}"))?;
        // Children inherit this thread's namespace: `ip` and `nft` configure it.
        run(Command::new("ip").args(["link", "set", "lo", "up"]), None)?;
        run(Command::new("nft").args(["-f", "-"]), Some(&nft_rules))?;
        Ok(f())
    });
    handle.join().unwrap().map_err(NetnsError::Failed)
}

fn run(cmd: &mut Command, stdin: Option<&str>) -> Result<(), String> {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{cmd:?}: {e}"))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes()).map_err(|e| e.to_string())?;
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr).trim()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skipping_is_refused_only_when_required() {
        assert!(must_run(Some("1")));
        assert!(!must_run(None));
        assert!(!must_run(Some("0")));
        assert!(!must_run(Some("")));
    }

    #[test]
    fn a_required_skip_fails_the_test() {
        // What `skip` does with the variable set, without touching this process's env.
        let required = std::panic::catch_unwind(|| {
            if must_run(Some("1")) {
                panic!("required");
            }
        });
        assert!(required.is_err());
    }
}
