//! TCP connect probes, many at once.
//!
//! `health_check` asks "does something accept connections on host:port, and how fast?" for
//! tens or hundreds of endpoints in one task. A probe is a plain TCP handshake: connect,
//! note the time, close; no byte is sent. What a probe measures is returned as plain data
//! ([`TcpProbe`]); whether it is healthy is decided by `reliability-core`.
//!
//! The wall time of [`probe_tcp`] is that of the slowest single probe, not the sum, and it
//! costs one thread however many targets there are:
//!
//! 1. Names are resolved first, each distinct name once, by at most [`MAX_RESOLVERS`]
//!    threads calling getaddrinfo(3) (through `ToSocketAddrs`). getaddrinfo cannot be
//!    cancelled, so a name still unresolved when its targets' time is up is reported as
//!    timed out and its thread is left to finish on its own; the caller never waits for it.
//!    IP literals (`127.0.0.1`, `::1`, `[::1]`) skip this step.
//! 2. Every connect is a non-blocking socket; all of them are multiplexed with poll(2) in
//!    the calling thread. A connect is done when its socket turns writable, and `SO_ERROR`
//!    says whether it succeeded. Its latency runs from just before connect(2) to just after
//!    the poll(2) that reported it, so a busy batch does not inflate it.
//! 3. A target with several addresses tries them in order within its one timeout (no
//!    happy eyeballs: a health check wants to know that the first address works).
//!
//! Each socket is a file descriptor. When more targets are asked for than `RLIMIT_NOFILE`
//! leaves room for, the soft limit is raised towards the hard limit, and if that is still
//! too little, targets wait for a free slot: the window slides, it is not a fixed batch.
//!
//! Sockets are opened in the calling thread's network namespace, which is what lets the
//! tests probe listeners inside namespaces of their own.

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::resource::{getrlimit, setrlimit, Resource};
use nix::sys::socket::{
    connect, getsockopt, socket, sockopt, AddressFamily, SockFlag, SockProtocol, SockType, SockaddrStorage,
};
use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, Ipv6Addr, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

/// At most this many threads resolve names at once.
pub const MAX_RESOLVERS: usize = 16;
/// At most this many connects are in flight at once, whatever the fd limit allows.
const MAX_IN_FLIGHT: usize = 4096;
/// File descriptors left for the rest of the process while probes run.
const FD_RESERVE: u64 = 64;

/// One endpoint to probe.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpTarget {
    /// A host name, an IPv4 address, or an IPv6 address with or without brackets.
    pub host: String,
    pub port: u16,
    /// The time allowed for resolving the name and completing the handshake.
    pub timeout: Duration,
}

/// What one probe saw. `open` is true exactly when `error` is `None`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpProbe {
    pub host: String,
    pub port: u16,
    /// The address that answered, or the last one tried; `None` if the name did not resolve.
    pub address: Option<SocketAddr>,
    /// The handshake completed.
    pub open: bool,
    /// Time from connect(2) to the completed handshake, when `open`.
    pub latency: Option<Duration>,
    /// Why the port is not open: "connection refused", "timed out after 1s",
    /// "cannot resolve 'x': ...".
    pub error: Option<String>,
    /// From the start of [`probe_tcp`] until this target's outcome was known (resolution
    /// included): a refused port is quick even when others in the batch time out.
    pub elapsed: Duration,
}

/// Probes every target at once and returns one [`TcpProbe`] per target, in the same order.
pub fn probe_tcp(targets: &[TcpTarget]) -> Vec<TcpProbe> {
    let started = Instant::now();
    let resolved = resolve_all(targets);
    let mut probes: Vec<TcpProbe> = targets
        .iter()
        .map(|t| TcpProbe {
            host: t.host.clone(),
            port: t.port,
            address: None,
            open: false,
            latency: None,
            error: None,
            elapsed: Duration::ZERO,
        })
        .collect();
    let mut queue = VecDeque::new();
    for (index, (target, resolution)) in targets.iter().zip(resolved).enumerate() {
        match resolution {
            Ok(Resolved { addrs, took }) => queue.push_back(Pending {
                index,
                addrs: addrs.into_iter().map(|ip| SocketAddr::new(ip, target.port)).collect(),
                budget: target.timeout.saturating_sub(took),
            }),
            Err(error) => probes[index].error = Some(error),
        }
    }
    let mut done = vec![false; probes.len()];
    stamp(&mut probes, &mut done, started);
    let window = connect_window(queue.len());
    connect_all(queue, window, targets, &mut probes, &mut done, started);
    stamp(&mut probes, &mut done, started);
    probes
}

/// Sets `elapsed` on every probe whose outcome became known since the last call.
fn stamp(probes: &mut [TcpProbe], done: &mut [bool], started: Instant) {
    let now = started.elapsed();
    for (probe, done) in probes.iter_mut().zip(done.iter_mut()) {
        if !*done && (probe.open || probe.error.is_some()) {
            probe.elapsed = now;
            *done = true;
        }
    }
}

// ---- resolution ------------------------------------------------------------------------

struct Resolved {
    addrs: Vec<IpAddr>,
    /// How long the name took to resolve: it counts against the target's timeout.
    took: Duration,
}

/// The addresses of `host`, found as [`probe_tcp`] finds them (an IP literal is its own
/// address), waiting at most `timeout`; or "cannot resolve 'x': ...".
pub fn resolve(host: &str, timeout: Duration) -> Result<Vec<IpAddr>, String> {
    let target = TcpTarget {
        host: host.to_owned(),
        port: 0,
        timeout,
    };
    match resolve_all(std::slice::from_ref(&target)).into_iter().next() {
        Some(resolved) => resolved.map(|r| r.addrs),
        None => Err(format!("cannot resolve '{host}'")),
    }
}

/// The addresses of each target, or why there are none.
fn resolve_all(targets: &[TcpTarget]) -> Vec<Result<Resolved, String>> {
    let started = Instant::now();
    // Each distinct name is resolved once, and may wait as long as its most patient target.
    let mut names: Vec<&str> = Vec::new();
    let mut patience: HashMap<&str, Duration> = HashMap::new();
    for target in targets {
        if parse_ip_literal(&target.host).is_none() {
            let entry = patience.entry(target.host.as_str()).or_insert_with(|| {
                names.push(target.host.as_str());
                Duration::ZERO
            });
            *entry = (*entry).max(target.timeout);
        }
    }
    let answers = resolve_names(&names, &patience, started);
    targets
        .iter()
        .map(|target| {
            if let Some(ip) = parse_ip_literal(&target.host) {
                return Ok(Resolved {
                    addrs: vec![ip],
                    took: Duration::ZERO,
                });
            }
            match answers.get(target.host.as_str()) {
                Some((Ok(addrs), took)) if *took <= target.timeout => Ok(Resolved {
                    addrs: addrs.clone(),
                    took: *took,
                }),
                Some((Err(error), took)) if *took <= target.timeout => {
                    Err(format!("cannot resolve '{}': {error}", target.host))
                }
                _ => Err(format!(
                    "cannot resolve '{}': timed out after {:?}",
                    target.host, target.timeout
                )),
            }
        })
        .collect()
}

/// `127.0.0.1`, `::1` and `[::1]` name themselves and need no lookup.
fn parse_ip_literal(host: &str) -> Option<IpAddr> {
    if let Some(inner) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return inner.parse::<Ipv6Addr>().ok().map(IpAddr::V6);
    }
    host.parse().ok()
}

type Answer = (Result<Vec<IpAddr>, String>, Duration);

/// Resolves `names` with up to [`MAX_RESOLVERS`] detached threads, waiting for each name no
/// longer than its patience. Names missing from the result timed out.
fn resolve_names<'a>(
    names: &[&'a str],
    patience: &HashMap<&str, Duration>,
    started: Instant,
) -> HashMap<&'a str, Answer> {
    let mut answers = HashMap::new();
    if names.is_empty() {
        return answers;
    }
    let shared: Arc<Vec<String>> = Arc::new(names.iter().map(|n| (*n).to_owned()).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let (sender, receiver) = mpsc::channel();
    let mut spawned = 0;
    for _ in 0..names.len().min(MAX_RESOLVERS) {
        let (shared, next, stop, sender) = (
            Arc::clone(&shared),
            Arc::clone(&next),
            Arc::clone(&stop),
            sender.clone(),
        );
        let worker = move || resolver_loop(&shared, &next, &stop, &sender, started);
        if std::thread::Builder::new()
            .name("tcp-resolve".into())
            .spawn(worker)
            .is_ok()
        {
            spawned += 1;
        }
    }
    if spawned == 0 {
        // No thread could be had: resolve here, one name after the other.
        resolver_loop(&shared, &next, &stop, &sender, started);
    }
    drop(sender);
    let give_up = after(started, patience.values().copied().max().unwrap_or(Duration::ZERO));
    while answers.len() < names.len() {
        let wait = give_up.saturating_duration_since(Instant::now());
        match receiver.recv_timeout(wait) {
            Ok((i, answer)) => {
                answers.insert(names[i], answer);
            }
            Err(_) => break,
        }
    }
    // Threads still inside getaddrinfo finish it, then take no further name.
    stop.store(true, Ordering::Relaxed);
    answers
}

fn resolver_loop(
    names: &[String],
    next: &AtomicUsize,
    stop: &AtomicBool,
    sender: &mpsc::Sender<(usize, Answer)>,
    started: Instant,
) {
    while !stop.load(Ordering::Relaxed) {
        let i = next.fetch_add(1, Ordering::Relaxed);
        let Some(name) = names.get(i) else { return };
        let result = lookup(name);
        if sender.send((i, (result, started.elapsed()))).is_err() {
            return;
        }
    }
}

fn lookup(name: &str) -> Result<Vec<IpAddr>, String> {
    if name.is_empty() {
        return Err("empty host name".into());
    }
    let mut addrs: Vec<IpAddr> = Vec::new();
    for addr in (name, 0).to_socket_addrs().map_err(|e| e.to_string())? {
        if !addrs.contains(&addr.ip()) {
            addrs.push(addr.ip());
        }
    }
    if addrs.is_empty() {
        return Err("no address found".into());
    }
    Ok(addrs)
}

// ---- file descriptor budget -------------------------------------------------------------

/// How many connects may be in flight at once for `wanted` targets. Raises the soft
/// `RLIMIT_NOFILE` (never above the hard limit) when `wanted` would not fit under it.
fn connect_window(wanted: usize) -> usize {
    let wanted = wanted.min(MAX_IN_FLIGHT);
    let in_use = open_fds();
    let Ok((mut soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return wanted.clamp(1, 256);
    };
    let needed = in_use + FD_RESERVE + wanted as u64;
    if needed > soft && hard > soft {
        let raised = needed.min(hard);
        if setrlimit(Resource::RLIMIT_NOFILE, raised, hard).is_ok() {
            soft = raised;
        }
    }
    let room = soft.saturating_sub(in_use + FD_RESERVE);
    usize::try_from(room).unwrap_or(usize::MAX).clamp(1, wanted.max(1))
}

/// File descriptors open in this process now (a guess when `/proc` is not mounted).
fn open_fds() -> u64 {
    crate::procs::count_fds(std::path::Path::new("/proc/self/fd")).map_or(FD_RESERVE, u64::from)
}

// ---- connecting -------------------------------------------------------------------------

struct Pending {
    index: usize,
    addrs: Vec<SocketAddr>,
    /// The target's timeout less the time its name took to resolve.
    budget: Duration,
}

struct InFlight {
    index: usize,
    addrs: Vec<SocketAddr>,
    /// Which of `addrs` the socket is connecting to.
    tried: usize,
    socket: OwnedFd,
    started: Instant,
    deadline: Instant,
}

enum Started {
    InProgress(OwnedFd, Instant),
    Connected(Duration),
    Failed(String),
}

fn connect_all(
    mut queue: VecDeque<Pending>,
    window: usize,
    targets: &[TcpTarget],
    probes: &mut [TcpProbe],
    done: &mut [bool],
    started: Instant,
) {
    let mut in_flight: Vec<InFlight> = Vec::with_capacity(window.min(queue.len()));
    loop {
        stamp(probes, done, started);
        // One connect is started per turn, and while more remain to be started the turn
        // only looks (poll with a zero timeout): a loopback handshake takes tens of
        // microseconds, and starting hundreds before looking would add that to its latency.
        if in_flight.len() < window {
            if let Some(p) = queue.pop_front() {
                let deadline = after(Instant::now(), p.budget);
                let timeout = targets[p.index].timeout;
                try_from(p.index, p.addrs, 0, (deadline, timeout), probes, &mut in_flight);
            }
        }
        if in_flight.is_empty() {
            if queue.is_empty() {
                return;
            }
            continue;
        }
        let more_to_start = !queue.is_empty() && in_flight.len() < window;
        let soonest = in_flight.iter().map(|f| f.deadline).min().unwrap_or_else(Instant::now);
        let until = if more_to_start { Instant::now() } else { soonest };
        let ready = match wait_writable(&in_flight, until) {
            Ok(ready) => ready,
            Err(Errno::EINTR) => continue,
            Err(errno) => {
                // poll(2) itself failed (EINVAL, ENOMEM): nothing more can be measured.
                let error = format!("poll(2) failed: {}", describe(errno));
                for f in in_flight.drain(..) {
                    let probe = &mut probes[f.index];
                    probe.address = f.addrs.get(f.tried).copied();
                    probe.error = Some(error.clone());
                }
                for p in queue.drain(..) {
                    probes[p.index].error = Some(error.clone());
                }
                return;
            }
        };
        let now = Instant::now();
        // Walk backwards so that swap_remove leaves the unvisited entries in place.
        for i in (0..in_flight.len()).rev() {
            if ready[i] {
                let f = in_flight.swap_remove(i);
                match getsockopt(&f.socket, sockopt::SocketError) {
                    Ok(0) => {
                        let probe = &mut probes[f.index];
                        probe.address = f.addrs.get(f.tried).copied();
                        probe.open = true;
                        probe.latency = Some(now.saturating_duration_since(f.started));
                    }
                    outcome => {
                        let error = match outcome {
                            Ok(code) => describe(Errno::from_raw(code)),
                            Err(errno) => describe(errno),
                        };
                        drop(f.socket);
                        if f.tried + 1 < f.addrs.len() && now < f.deadline {
                            let timeout = targets[f.index].timeout;
                            let limits = (f.deadline, timeout);
                            try_from(f.index, f.addrs, f.tried + 1, limits, probes, &mut in_flight);
                        } else {
                            probes[f.index].address = f.addrs.get(f.tried).copied();
                            probes[f.index].error = Some(error);
                        }
                    }
                }
            } else if now >= in_flight[i].deadline {
                let f = in_flight.swap_remove(i);
                let probe = &mut probes[f.index];
                probe.address = f.addrs.get(f.tried).copied();
                probe.error = Some(format!("timed out after {:?}", targets[f.index].timeout));
            }
        }
    }
}

/// Starts connecting target `index` to `addrs[first..]`, moving on to the next address
/// while one fails at once, and records the outcome or parks the socket in `in_flight`.
/// `limits` is the target's deadline and the timeout it was computed from.
fn try_from(
    index: usize,
    addrs: Vec<SocketAddr>,
    first: usize,
    (deadline, timeout): (Instant, Duration),
    probes: &mut [TcpProbe],
    in_flight: &mut Vec<InFlight>,
) {
    let mut last_error = String::from("no address to connect to");
    for (tried, addr) in addrs.iter().enumerate().skip(first) {
        probes[index].address = Some(*addr);
        if Instant::now() >= deadline {
            last_error = format!("timed out after {timeout:?}");
            break;
        }
        match start_connect(*addr) {
            Started::InProgress(socket, started) => {
                in_flight.push(InFlight {
                    index,
                    addrs,
                    tried,
                    socket,
                    started,
                    deadline,
                });
                return;
            }
            Started::Connected(latency) => {
                let probe = &mut probes[index];
                probe.open = true;
                probe.latency = Some(latency);
                return;
            }
            Started::Failed(error) => last_error = error,
        }
    }
    probes[index].error = Some(last_error);
}

fn start_connect(addr: SocketAddr) -> Started {
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let flags = SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC;
    let socket = match socket(family, SockType::Stream, flags, SockProtocol::Tcp) {
        Ok(socket) => socket,
        Err(errno) => return Started::Failed(format!("cannot open a socket: {}", describe(errno))),
    };
    let started = Instant::now();
    match connect(socket.as_raw_fd(), &SockaddrStorage::from(addr)) {
        Ok(()) => Started::Connected(started.elapsed()),
        Err(Errno::EINPROGRESS) => Started::InProgress(socket, started),
        Err(errno) => Started::Failed(describe(errno)),
    }
}

/// Polls every in-flight socket for writability until `deadline`; `true` where done.
fn wait_writable(in_flight: &[InFlight], deadline: Instant) -> Result<Vec<bool>, Errno> {
    let mut fds: Vec<PollFd<'_>> = in_flight
        .iter()
        .map(|f| PollFd::new(f.socket.as_fd(), PollFlags::POLLOUT))
        .collect();
    // Round up, so that a deadline 0.3 ms away does not turn into a busy loop.
    let wait = deadline.saturating_duration_since(Instant::now());
    let millis = wait.as_micros().div_ceil(1000);
    let timeout = PollTimeout::try_from(millis).unwrap_or(PollTimeout::MAX);
    poll(&mut fds, timeout)?;
    let done = PollFlags::POLLOUT | PollFlags::POLLERR | PollFlags::POLLHUP;
    Ok(fds
        .iter()
        .map(|fd| fd.revents().is_some_and(|r| r.intersects(done)))
        .collect())
}

/// `start + timeout`, or a year from `start` for a timeout too large to add.
fn after(start: Instant, timeout: Duration) -> Instant {
    let year = Duration::from_secs(365 * 24 * 3600);
    start.checked_add(timeout).unwrap_or(start + year)
}

/// The words an operator expects for the common failures, the C library's otherwise.
fn describe(errno: Errno) -> String {
    match errno {
        Errno::ECONNREFUSED => "connection refused".into(),
        Errno::EHOSTUNREACH => "host unreachable".into(),
        Errno::ENETUNREACH => "network unreachable".into(),
        Errno::ETIMEDOUT => "timed out by the kernel".into(),
        Errno::ECONNRESET => "connection reset".into(),
        Errno::EADDRNOTAVAIL => "address not available".into(),
        other => other.desc().to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_literals_need_no_lookup() {
        let v6: IpAddr = "::1".parse().unwrap();
        assert_eq!(parse_ip_literal("127.0.0.1"), Some("127.0.0.1".parse().unwrap()));
        assert_eq!(parse_ip_literal("::1"), Some(v6));
        assert_eq!(parse_ip_literal("[::1]"), Some(v6));
        assert_eq!(parse_ip_literal("[127.0.0.1]"), None);
        assert_eq!(parse_ip_literal("localhost"), None);
    }

    #[test]
    fn errors_read_as_words() {
        assert_eq!(describe(Errno::ECONNREFUSED), "connection refused");
        assert_eq!(describe(Errno::EACCES), "permission denied");
    }
}
