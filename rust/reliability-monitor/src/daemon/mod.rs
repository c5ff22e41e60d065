//! `reliability-monitor daemon`: the checks on their schedules, self-healing through the
//! recovery engine, the endpoints, and systemd's notification protocol.
//!
//! Threads and what they own:
//!
//! | thread      | does                                                          |
//! |-------------|---------------------------------------------------------------|
//! | main        | the event loop: signals, reload, `READY=1`/`STATUS=`/`WATCHDOG=1`, stop |
//! | `signals`   | `sigwait` for SIGHUP/SIGTERM/SIGINT, turned into [`Event`]s      |
//! | scheduler   | [`scheduler`]: starts checks and recoveries, renders the snapshot |
//! | `check`, `recovery` | one engine call each ([`engines`])                    |
//! | `http`      | [`http`]: accept, and one thread per connection                |
//!
//! Invariants: only this module has a loop, signals and a listener; endpoints never run
//! checks (they copy the last [`view::Snapshot`]); every engine call is in [`engines`];
//! nothing sleeps except on a channel with a timeout, so a stop is seen within
//! [`scheduler::TICK`]; the watchdog is fed only while the scheduler's heartbeat is fresh.

mod alerting;
mod debounce;
mod deliver;
mod engines;
mod heal;
mod http;
mod log;
mod notify;
mod scheduler;
mod signals;
mod view;
mod workers;

use crate::config::{self, Config};
use reliability_core::spec::Env;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

pub use log::{Level, Logger};

/// sysexits.h: an operating-system error (the port cannot be bound, no threads).
pub const EX_OSERR: i32 = 71;

/// What the main loop reacts to: a closed set.
#[derive(Debug)]
pub enum Event {
    /// SIGHUP: read the configuration again.
    Reload,
    /// SIGTERM or SIGINT: stop.
    Stop(&'static str),
    /// The scheduler swapped in a snapshot whose readiness or status line changed.
    Published,
}

/// What the scheduler publishes and the endpoints and main loop read.
pub struct Shared {
    snapshot: RwLock<Arc<view::Snapshot>>,
    /// The scheduler's last turn, ms since `epoch`.
    heartbeat: AtomicU64,
    epoch: Instant,
}

/// The scheduler counts as stuck when its heartbeat is older than this.
const STUCK: Duration = Duration::from_secs(5);

impl Shared {
    fn new() -> Shared {
        Shared {
            // Not ready: 503 until the first results.
            snapshot: RwLock::new(Arc::new(view::View::default().snapshot())),
            heartbeat: AtomicU64::new(0),
            epoch: Instant::now(),
        }
    }

    pub fn snapshot(&self) -> Arc<view::Snapshot> {
        match self.snapshot.read() {
            Ok(s) => s.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn swap(&self, snapshot: view::Snapshot) {
        let new = Arc::new(snapshot);
        match self.snapshot.write() {
            Ok(mut s) => *s = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
    }

    /// Stamps a turn of the scheduler.
    fn beat(&self) {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.heartbeat.store(now, Ordering::SeqCst);
    }

    /// Whether the scheduler turned within [`STUCK`].
    pub fn alive(&self) -> bool {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.heartbeat.load(Ordering::SeqCst);
        now.saturating_sub(last) < u64::try_from(STUCK.as_millis()).unwrap_or(u64::MAX)
    }
}

/// The bearer token the configuration gives, inline or from its file (trimmed).
fn bearer_token(config: &Config) -> Result<Option<Vec<u8>>, String> {
    let listen = &config.service_monitoring.listen;
    if let Some(t) = &listen.bearer_token {
        return Ok(Some(t.as_bytes().to_vec()));
    }
    let Some(path) = &listen.bearer_token_file else {
        return Ok(None);
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "service_monitoring.listen.bearer_token_file: cannot read '{}': {e}",
            path.display()
        )
    })?;
    let t = text.trim();
    if t.is_empty() {
        return Err(format!(
            "service_monitoring.listen.bearer_token_file: '{}' is empty",
            path.display()
        ));
    }
    Ok(Some(t.as_bytes().to_vec()))
}

/// Runs the daemon until SIGTERM or SIGINT; the exit code.
pub fn run(path: &Path, env: &Env) -> i32 {
    let log = Arc::new(Logger::stderr(Level::Info));
    // Before any thread: every thread inherits the blocked mask.
    if let Err(e) = signals::block() {
        log.error(&e);
        return EX_OSERR;
    }
    let config = match config::load(path, env) {
        Ok(c) => c,
        Err(e) => {
            log.error(&format!("cannot start: {e}"));
            return crate::cli::EX_CONFIG;
        }
    };
    log.configure(&config.error_handling);
    let token = match bearer_token(&config) {
        Ok(t) => t,
        Err(e) => {
            log.error(&format!("cannot start: {e}"));
            return crate::cli::EX_CONFIG;
        }
    };
    let listen = &config.service_monitoring.listen;
    let listener = match TcpListener::bind((listen.address, listen.port)) {
        Ok(l) => l,
        Err(e) => {
            log.error(&format!("cannot listen on {}:{}: {e}", listen.address, listen.port));
            return EX_OSERR;
        }
    };
    let bound = match listener.local_addr() {
        Ok(a) => a,
        Err(e) => {
            log.error(&format!("cannot read the listening address: {e}"));
            return EX_OSERR;
        }
    };
    let notifier = match notify::Notifier::from_env() {
        Ok(n) => n,
        Err(e) => {
            log.warn(&format!("{e}; not notifying systemd"));
            notify::Notifier::disabled()
        }
    };
    let (events_tx, events) = mpsc::channel::<Event>();
    let shared = Arc::new(Shared::new());
    shared.beat();
    let server = Arc::new(http::Server::new(shared.clone(), token, http::Limits::default()));
    let (sched_tx, sched_rx) = mpsc::channel();
    let scheduler = scheduler::Scheduler::new(
        config.clone(),
        sched_tx.clone(),
        sched_rx,
        shared.clone(),
        events_tx.clone(),
        log.clone(),
    );
    let started = signals::spawn(events_tx.clone())
        .and_then(|()| {
            std::thread::Builder::new()
                .name("scheduler".into())
                .spawn(move || scheduler.run())
                .map(drop)
        })
        .and_then(|()| {
            let server = server.clone();
            std::thread::Builder::new()
                .name("http-accept".into())
                .spawn(move || server.serve(listener))
                .map(drop)
        });
    if let Err(e) = started {
        log.error(&format!("cannot start a thread: {e}"));
        return EX_OSERR;
    }
    log.info(&format!(
        "listening on http://{bound} ({} checks, {} recoveries; config {})",
        config.checks.len() + usize::from(config.performance.is_some()),
        config.recoveries.len(),
        path.display()
    ));

    let watchdog = notify::watchdog_interval();
    let mut next_watchdog = Instant::now();
    let mut ready_sent = false;
    let mut status_sent = String::new();
    let mut current = config;
    let notify = |msg: &str| {
        if let Err(e) = notifier.send(msg) {
            log.warn(&e);
        }
    };
    loop {
        let now = Instant::now();
        if let Some(every) = watchdog {
            if now >= next_watchdog {
                // Fed from this loop only while the scheduler turns: a stuck scheduler
                // lets systemd's watchdog restart the daemon.
                if shared.alive() {
                    notify("WATCHDOG=1");
                } else {
                    log.error("the scheduler has not turned for 5 s; not feeding the watchdog");
                }
                next_watchdog = now + every;
            }
        }
        let wait = match watchdog {
            Some(_) => next_watchdog.saturating_duration_since(now).min(Duration::from_secs(1)),
            None => Duration::from_secs(1),
        };
        let event = match events.recv_timeout(wait) {
            Ok(e) => Some(e),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => Some(Event::Stop("no more events")),
        };
        match event {
            Some(Event::Stop(why)) => {
                log.info(&format!("{why}: stopping"));
                notify("STOPPING=1");
                server.stop.store(true, Ordering::SeqCst);
                // Wake the accept so the listener closes.
                let _ = TcpStream::connect_timeout(&wake_address(bound), Duration::from_millis(200));
                let (done_tx, done) = mpsc::channel();
                if sched_tx.send(scheduler::Msg::Stop(done_tx)).is_ok() {
                    let _ = done.recv_timeout(Duration::from_millis(500));
                }
                log.info("stopped");
                return 0;
            }
            Some(Event::Reload) => {
                notify(&notify::reloading());
                match config::load(path, env) {
                    Ok(new) => {
                        log.configure(&new.error_handling);
                        match bearer_token(&new) {
                            Ok(t) => {
                                if let Ok(mut slot) = server.token.write() {
                                    *slot = t;
                                }
                            }
                            Err(e) => log.error(&format!("reload: {e}; the old token stays")),
                        }
                        if new.service_monitoring.listen.address != current.service_monitoring.listen.address
                            || new.service_monitoring.listen.port != current.service_monitoring.listen.port
                        {
                            log.warn("reload: service_monitoring.listen changed; it applies at the next start");
                        }
                        audit_reload(path, &current, Some(&new), &log);
                        let _ = sched_tx.send(scheduler::Msg::Reload(Box::new(new.clone())));
                        current = new;
                    }
                    Err(e) => {
                        log.error(&format!(
                            "reload refused: {} problem(s) in '{}'; the running configuration stays",
                            e.problems.len(),
                            e.file.display()
                        ));
                        for p in &e.problems {
                            log.error(&format!("reload: {}: {p}", e.file.display()));
                        }
                        audit_reload(path, &current, None, &log);
                    }
                }
                notify(&format!("READY=1\n{}", notify::status(&shared.snapshot().status_line)));
            }
            Some(Event::Published) | None => {}
        }
        let snapshot = shared.snapshot();
        if snapshot.ready && !ready_sent {
            notify("READY=1");
            ready_sent = true;
            log.info(&format!("ready: {}", snapshot.status_line));
        }
        if snapshot.status_line != status_sent {
            notify(&notify::status(&snapshot.status_line));
            status_sent.clone_from(&snapshot.status_line);
        }
    }
}

/// The audit record of a reload: the new file's digest and the top-level sections that
/// changed (their names only: a section may hold secrets); `new` is `None` when the file
/// was refused and the running configuration stays.
fn audit_reload(path: &Path, current: &Config, new: Option<&Config>, log: &Logger) {
    use reliability_core::audit::{config_digest, Outcome, Record};
    let digest = std::fs::read(path).ok().map(|bytes| config_digest(&bytes));
    let (outcome, reason, details) = match new {
        Some(new) => {
            let changed: Vec<&str> = config::SECTIONS
                .iter()
                .copied()
                .filter(|s| current.sections.get(*s) != new.sections.get(*s))
                .collect();
            let outcome = if changed.is_empty() {
                Outcome::Unchanged
            } else {
                Outcome::Changed
            };
            (outcome, None, serde_json::json!({ "changed_sections": changed }))
        }
        None => (
            Outcome::Failed,
            Some("the new file is invalid; the running configuration stays".to_string()),
            serde_json::Value::Null,
        ),
    };
    let record = Record {
        front_end: "daemon".into(),
        action: "config.reload".into(),
        target: path.display().to_string(),
        reason,
        outcome,
        actor: reliability_os::audit::actor(),
        config_digest: digest,
        details,
    };
    let dir = new
        .unwrap_or(current)
        .service_monitoring
        .state_dir
        .join(reliability_os::audit::SUBDIR);
    if let Err(e) = reliability_os::audit::append(&dir, record) {
        log.error(&format!("cannot append the reload to the audit trail: {e}"));
    }
}

/// Where to connect to wake our own accept: the bound address, or loopback for a
/// wildcard one.
fn wake_address(bound: SocketAddr) -> SocketAddr {
    let mut a = bound;
    if a.ip().is_unspecified() {
        a.set_ip(match a {
            SocketAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            SocketAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alive_only_while_the_scheduler_beats() {
        let mut shared = Shared::new();
        // A scheduler that last turned 10 s ago.
        shared.epoch = Instant::now().checked_sub(Duration::from_secs(10)).expect("uptime");
        shared.heartbeat.store(0, Ordering::SeqCst);
        assert!(!shared.alive());
        shared.beat();
        assert!(shared.alive());
    }
}
