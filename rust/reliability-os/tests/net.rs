//! `probe_tcp` against real sockets: listeners on loopback, closed ports, a listener whose
//! queue is full, and ports whose SYNs an nftables rule drops inside a network namespace
//! the test makes for itself (root only; without root those tests say why and pass).
//!
//! Every address used is loopback, either the host's or that of a private namespace.

// The helpers too: a test that cannot set itself up should fail loudly.
#![allow(clippy::unwrap_used)]

use nix::sys::socket::{bind, listen, socket, AddressFamily, Backlog, SockFlag, SockType, SockaddrIn};
use reliability_os::net::{probe_tcp, TcpProbe, TcpTarget};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};
use test_support::{drop_syns_to, NetnsError, DROPPED};

fn target(host: &str, port: u16, timeout: Duration) -> TcpTarget {
    TcpTarget {
        host: host.into(),
        port,
        timeout,
    }
}

/// A port on 127.0.0.1 that nothing listens on (it was free a moment ago).
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

fn assert_open(probe: &TcpProbe, address: SocketAddr) {
    assert!(probe.open, "{probe:?}");
    assert_eq!(probe.error, None);
    assert_eq!(probe.address, Some(address));
    let latency = probe.latency.unwrap();
    assert!(
        latency < Duration::from_millis(500),
        "loopback connect took {latency:?}"
    );
}

#[test]
fn open_ports_on_loopback_answer_over_ipv4_and_ipv6() {
    let v4 = TcpListener::bind("127.0.0.1:0").unwrap();
    let v4_addr = v4.local_addr().unwrap();
    let mut targets = vec![
        target("127.0.0.1", v4_addr.port(), Duration::from_secs(2)),
        // A name: resolved by getaddrinfo from /etc/hosts, whichever addresses it lists
        // are tried in order until 127.0.0.1 answers.
        target("localhost", v4_addr.port(), Duration::from_secs(2)),
    ];
    let v6 = TcpListener::bind("[::1]:0");
    match &v6 {
        Ok(listener) => {
            let port = listener.local_addr().unwrap().port();
            targets.push(target("::1", port, Duration::from_secs(2)));
            targets.push(target("[::1]", port, Duration::from_secs(2)));
        }
        Err(e) => test_support::skip(&format!(
            "the IPv6 part: cannot listen on [::1] ({e}); ::1 is not configured"
        )),
    }
    let probes = probe_tcp(&targets);
    assert_eq!(probes.len(), targets.len());
    assert_open(&probes[0], v4_addr);
    assert_eq!(probes[0].host, "127.0.0.1");
    assert_eq!(probes[0].port, v4_addr.port());
    assert_open(&probes[1], v4_addr);
    if let Ok(listener) = &v6 {
        let v6_addr = listener.local_addr().unwrap();
        assert_open(&probes[2], v6_addr);
        assert_open(&probes[3], v6_addr);
        assert_eq!(probes[3].host, "[::1]");
    }
}

#[test]
fn closed_port_is_refused_at_once() {
    let port = closed_port();
    let started = Instant::now();
    let probes = probe_tcp(&[target("127.0.0.1", port, Duration::from_secs(5))]);
    assert!(started.elapsed() < Duration::from_secs(1));
    assert!(probes[0].elapsed < Duration::from_secs(1), "{:?}", probes[0].elapsed);
    let expected = TcpProbe {
        host: "127.0.0.1".into(),
        port,
        address: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, port))),
        open: false,
        latency: None,
        error: Some("connection refused".into()),
        elapsed: probes[0].elapsed,
    };
    assert_eq!(probes, vec![expected]);
}

#[test]
fn no_targets_no_probes_and_an_empty_name_is_an_error() {
    assert_eq!(probe_tcp(&[]), vec![]);
    let probes = probe_tcp(&[target("", 80, Duration::from_secs(1))]);
    assert_eq!(probes[0].error.as_deref(), Some("cannot resolve '': empty host name"));
    assert_eq!(probes[0].address, None);
    assert!(!probes[0].open);
}

/// A listener whose accept queue is full drops new SYNs; the client sends its SYN again
/// after the kernel's initial retransmission timeout of 1 s, and by then the listener has
/// made room. This is how a slow-to-accept service looks from outside, and it makes a
/// connect latency large enough to measure on loopback without netem (which this kernel
/// may lack).
#[test]
fn a_listener_with_a_full_queue_answers_late_and_the_latency_shows_it() {
    let fd = socket(AddressFamily::Inet, SockType::Stream, SockFlag::SOCK_CLOEXEC, None).unwrap();
    bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::new(127, 0, 0, 1, 0)).unwrap();
    // A backlog of 0 holds one finished handshake; the next SYN is dropped.
    listen(&fd, Backlog::new(0).unwrap()).unwrap();
    let listener = TcpListener::from(fd);
    let addr = listener.local_addr().unwrap();
    let _queued = TcpStream::connect(addr).unwrap();
    let acceptor = thread::spawn(move || {
        thread::sleep(Duration::from_millis(300));
        let first = listener.accept().unwrap();
        let second = listener.accept().unwrap();
        (first, second)
    });
    let probes = probe_tcp(&[target("127.0.0.1", addr.port(), Duration::from_secs(5))]);
    assert!(probes[0].open, "{:?}", probes[0]);
    let latency = probes[0].latency.unwrap();
    assert!(
        latency >= Duration::from_millis(900) && latency < Duration::from_millis(3500),
        "expected one SYN retransmission (~1 s), measured {latency:?}"
    );
    drop(acceptor.join().unwrap());
}

/// More targets than the soft `RLIMIT_NOFILE` allows: run in a child process whose
/// limits `prlimit` lowers, so the rest of this test binary keeps its own.
#[test]
fn more_targets_than_file_descriptors_are_probed_in_a_sliding_window() {
    const CHILD: &str = "HX_NET_TEST_FD_CHILD";
    if std::env::var_os(CHILD).is_some() {
        return fd_limited_child();
    }
    if Command::new("prlimit").arg("--version").output().is_err() {
        test_support::skip("prlimit (util-linux) is not installed");
        return;
    }
    let exe = std::env::current_exe().unwrap();
    let out = Command::new("prlimit")
        .arg("--nofile=160:160")
        .arg(exe)
        .args([
            "--exact",
            "more_targets_than_file_descriptors_are_probed_in_a_sliding_window",
        ])
        .args(["--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "child failed:\n{stdout}\n{stderr}");
    assert!(stdout.contains("1 passed"), "child ran no test:\n{stdout}\n{stderr}");
}

fn fd_limited_child() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Accept and close as fast as connections come, so the queue never fills.
    thread::spawn(move || {
        for stream in listener.incoming() {
            drop(stream);
        }
    });
    let targets: Vec<TcpTarget> = (0..600)
        .map(|_| target("127.0.0.1", port, Duration::from_secs(5)))
        .collect();
    let probes = probe_tcp(&targets);
    let open = probes.iter().filter(|p| p.open).count();
    let errors: Vec<_> = probes.iter().filter_map(|p| p.error.as_deref()).take(3).collect();
    assert_eq!(open, 600, "first errors: {errors:?}");
}

// ---- inside a network namespace of the test's own ----------------------------------------

/// [`test_support::in_private_netns`]; `None` (after saying why) when that cannot be had:
/// not root, no `ip`/`nft`, no namespaces.
fn in_private_netns<R: Send + 'static>(nft_rules: String, f: impl FnOnce() -> R + Send + 'static) -> Option<R> {
    match test_support::in_private_netns(nft_rules, f) {
        Ok(r) => Some(r),
        Err(NetnsError::NotRoot) => {
            test_support::skip("needs root to make a network namespace");
            None
        }
        Err(NetnsError::Failed(why)) => {
            test_support::skip(&format!("no private network namespace: {why}"));
            None
        }
    }
}

#[test]
fn a_port_that_never_answers_times_out_after_its_timeout() {
    let outcome = in_private_netns(drop_syns_to(DROPPED), || {
        let started = Instant::now();
        let probes = probe_tcp(&[target("127.0.0.1", DROPPED, Duration::from_secs(1))]);
        (probes, started.elapsed())
    });
    let Some((probes, elapsed)) = outcome else {
        return;
    };
    let expected = TcpProbe {
        host: "127.0.0.1".into(),
        port: DROPPED,
        address: Some(SocketAddr::from((Ipv4Addr::LOCALHOST, DROPPED))),
        open: false,
        latency: None,
        error: Some("timed out after 1s".into()),
        elapsed: probes[0].elapsed,
    };
    assert!(probes[0].elapsed >= Duration::from_secs(1), "{:?}", probes[0].elapsed);
    assert_eq!(probes, vec![expected]);
    assert!(
        elapsed >= Duration::from_secs(1) && elapsed < Duration::from_secs(3),
        "{elapsed:?}"
    );
}

#[test]
fn two_hundred_probes_half_of_them_unanswered_take_one_timeout_not_a_hundred() {
    let outcome = in_private_netns(drop_syns_to(DROPPED), || {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let open_port = listener.local_addr().unwrap().port();
        thread::spawn(move || {
            for stream in listener.incoming() {
                drop(stream);
            }
        });
        let targets: Vec<TcpTarget> = (0..200)
            .map(|i| {
                let port = if i % 2 == 0 { open_port } else { DROPPED };
                target("127.0.0.1", port, Duration::from_secs(1))
            })
            .collect();
        let started = Instant::now();
        let probes = probe_tcp(&targets);
        (probes, started.elapsed(), open_port)
    });
    let Some((probes, elapsed, open_port)) = outcome else {
        return;
    };
    assert!(elapsed < Duration::from_secs(5), "200 probes took {elapsed:?}");
    assert_eq!(probes.len(), 200);
    for (i, probe) in probes.iter().enumerate() {
        if i % 2 == 0 {
            assert_eq!(probe.port, open_port);
            assert!(probe.open, "{probe:?}");
        } else {
            assert_eq!(probe.port, DROPPED);
            assert_eq!(probe.error.as_deref(), Some("timed out after 1s"));
        }
    }
}

/// A name that is not in /etc/hosts: in a namespace with nothing but `lo`, the DNS query
/// cannot leave the machine and getaddrinfo fails at once.
#[test]
fn a_name_that_does_not_resolve_is_reported_with_the_name() {
    let Some(probes) = in_private_netns(String::new(), || {
        probe_tcp(&[target("no-such-host.invalid", 80, Duration::from_secs(2))])
    }) else {
        return;
    };
    let error = probes[0].error.clone().unwrap();
    assert!(error.starts_with("cannot resolve 'no-such-host.invalid': "), "{error}");
    assert_eq!(probes[0].address, None);
}

#[test]
fn an_endless_timeout_does_not_overflow() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let probes = probe_tcp(&[target("127.0.0.1", port, Duration::MAX)]);
    assert!(probes[0].open, "{:?}", probes[0]);
}
