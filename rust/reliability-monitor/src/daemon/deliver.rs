//! The delivery thread: owns the alert queue's [`Dispatcher`], queues what the scheduler
//! hands it, and delivers what is due.
//!
//! A delivery can take up to its channel's timeout, so it never runs on the scheduler's
//! thread (the checks, the heartbeat and the endpoints never wait for a receiver). The
//! thread waits on its channel at most [`TICK`], and a round stops starting deliveries
//! once the daemon's stop flag is set, so SIGTERM is not held up by a slow receiver;
//! an alert in flight at a stop (or a kill -9) stays in the on-disk queue and goes again
//! at the next start with the same idempotency key.

use super::log::Logger;
use super::scheduler::Msg;
use reliability_alerts::{Alert, AlertConfig, Dispatcher, Outcome, Queue};
use reliability_os::clock::now_ms;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::Duration;

/// The longest the thread waits before looking at the queue again.
const TICK: Duration = Duration::from_millis(500);
/// The longest one round keeps starting deliveries.
const BUDGET: Duration = Duration::from_secs(2);

/// What the delivery thread is told.
pub enum Job {
    Push(Vec<Alert>),
    Reconfigure(Box<AlertConfig>),
}

/// What one round did, for the scheduler's counters, log and audit trail.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Round {
    /// Per channel: deliveries confirmed, and failed (retried or given up).
    pub sent: BTreeMap<String, u64>,
    pub failed: BTreeMap<String, u64>,
    /// `(channel, idempotency key, why)` of alerts given up: refused for good by their
    /// channel, or dropped from a full queue.
    pub gave_up: Vec<(String, String, String)>,
    /// `(channel, idempotency key, host)` of alerts their channel confirmed.
    pub delivered: Vec<(String, String, String)>,
    /// Entries waiting in the queue after the round.
    pub queued: usize,
}

/// Opens the queue in `dir` and starts the thread; its sender, or why not.
pub fn spawn(
    config: &AlertConfig,
    dir: PathBuf,
    report: Sender<Msg>,
    stop: Arc<AtomicBool>,
    log: Arc<Logger>,
) -> Result<Sender<Job>, String> {
    let queue = Queue::open(&dir, config.queue.clone())
        .map_err(|e| format!("cannot open the alert queue '{}': {e}", dir.display()))?;
    let dispatcher = Dispatcher::new(config, queue).with_budget(BUDGET);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("alerts".into())
        .spawn(move || run(dispatcher, &rx, &report, &stop, &log))
        .map_err(|e| format!("cannot start the alert delivery thread: {e}"))?;
    Ok(tx)
}

fn run(mut dispatcher: Dispatcher, rx: &Receiver<Job>, report: &Sender<Msg>, stop: &AtomicBool, log: &Logger) {
    let mut queued = usize::MAX;
    let mut dropped: Vec<(String, String, String)> = Vec::new();
    loop {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        let mut job = match rx.recv_timeout(TICK) {
            Ok(j) => Some(j),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => return,
        };
        while let Some(j) = job {
            match j {
                Job::Push(alerts) => {
                    for alert in alerts {
                        match dispatcher.push(&alert, now_ms()) {
                            Ok(r) => {
                                for (channel, key) in r.dropped {
                                    log.warn(&format!(
                                        "alert queue full: dropped the oldest alert {key} of channel '{channel}'"
                                    ));
                                    dropped.push((channel, key, "dropped: the alert queue was full".into()));
                                }
                            }
                            Err(e) => log.error(&format!(
                                "cannot queue alert {} ({} {} for {}): {e}",
                                alert.key,
                                alert.name.as_str(),
                                alert.state.as_str(),
                                alert.service
                            )),
                        }
                    }
                }
                Job::Reconfigure(config) => dispatcher.reconfigure(&config),
            }
            job = rx.try_recv().ok();
        }
        let round = dispatcher.deliver_due(now_ms(), stop);
        let mut r = Round {
            queued: round.pending,
            gave_up: std::mem::take(&mut dropped),
            ..Round::default()
        };
        for d in &round.deliveries {
            match &d.outcome {
                Outcome::Delivered => {
                    *r.sent.entry(d.channel.clone()).or_default() += 1;
                    r.delivered.push((d.channel.clone(), d.key.clone(), d.target.clone()));
                    log.info(&format!(
                        "alert {} delivered through '{}' to {} in {} ms",
                        d.key,
                        d.channel,
                        d.target,
                        d.elapsed.as_millis()
                    ));
                }
                Outcome::Retry { at_ms, error } => {
                    *r.failed.entry(d.channel.clone()).or_default() += 1;
                    log.warn(&format!(
                        "alert {} not delivered: {error}; retried in {:.1} s",
                        d.key,
                        at_ms.saturating_sub(now_ms()) as f64 / 1000.0
                    ));
                }
                Outcome::Refused(error) => {
                    *r.failed.entry(d.channel.clone()).or_default() += 1;
                    log.error(&format!(
                        "alert {} refused for good: {error}; kept in the queue's dead/",
                        d.key
                    ));
                    r.gave_up.push((d.channel.clone(), d.key.clone(), error.to_string()));
                }
            }
        }
        for e in &round.errors {
            log.error(&format!("alert queue: {e}"));
        }
        if !round.deliveries.is_empty() || !r.gave_up.is_empty() || round.pending != queued {
            queued = round.pending;
            if report.send(Msg::Delivered(r)).is_err() {
                return;
            }
        }
    }
}
