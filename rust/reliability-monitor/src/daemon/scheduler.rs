//! The scheduler: the one thread that decides what runs when.
//!
//! - Each check entry runs at its own interval (its `interval`, else
//!   `service_monitoring.check_interval`), on a thread of its own (kept for the next run,
//!   [`super::workers`]); at most `max_concurrent_checks` run at once, the rest wait
//!   their turn, without waking the scheduler until a slot frees.
//! - Entries of ports and processes due together run as one batch (the engine's
//!   `run_batch`): every port in one poll loop, the process checks on one reading of the
//!   process table, on one thread and in one slot, each entry keeping its own results,
//!   deadline and state. With fifty single-port entries that is one run a cycle, not
//!   fifty hand-overs to threads. Process checks due together in separate runs still
//!   share one reading ([`super::engines::Tables`], handed the instant each was due).
//! - Each run has a deadline (its interval): a run still going then is recorded as a
//!   timed-out failure and no longer holds a slot; it is not started again until that
//!   thread ends, so one hung check is at most one thread and never delays another check
//!   or the endpoints. (Threads are therefore bounded by the slots plus the entries.)
//! - Results go through [`Debounce`]; a service with a `recovery` entry whose checks are
//!   confirmed failing is healed through the engine ([`super::heal`] decides when).
//! - After a change the [`View`] is rendered into a new [`Snapshot`] and swapped in once
//!   the runs going have ended (at most every [`PUBLISH_EVERY`], and within
//!   [`PUBLISH_WITHIN`] while runs go on): a hundred results a second are one rendering,
//!   not a hundred; the endpoints never wait for a check.
//!
//! The scheduler only sleeps in `recv_timeout` on its channel (at most [`TICK`]), so a
//! stop or reload is seen at once, and it stamps a heartbeat each turn, which `/alive`
//! and the watchdog read.

use super::alerting::{Alerting, Detail};
use super::debounce::{Debounce, State};
use super::engines::{self, Figures, Healed, Tables};
use super::heal::{Backoff, Decision, Healer};
use super::log::Logger;
use super::view::{CheckView, ServiceView, View};
use super::workers::Workers;
use super::{Event, Shared};
use crate::config::{CheckKind, Config, HealthEntry, RecoveryEntry};
use reliability_alerts::{Category, EventKind};
use reliability_core::audit::Outcome as AuditOutcome;
use reliability_core::cancel::Cancel;
use reliability_core::check::{CheckResult, Status};
use reliability_core::recovery::Outcome;
use reliability_os::clock::now_ms;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The longest the scheduler waits without stamping its heartbeat.
pub const TICK: Duration = Duration::from_millis(500);
/// How often the service figures are read back from the state files (breakers, incidents
/// changed by module runs too), and the last results saved.
const FIGURES_EVERY: Duration = Duration::from_secs(15);
/// The most often a new snapshot is rendered (results of many checks come together).
const PUBLISH_EVERY: Duration = Duration::from_millis(200);
/// The longest a result waits for its snapshot while other runs are still going: results
/// are rendered once the runs going have ended (once a cycle), or after this.
const PUBLISH_WITHIN: Duration = Duration::from_secs(1);
/// The longest wait between two recovery attempts of one service.
const BACKOFF_CAP: Duration = Duration::from_secs(300);
/// How long the scheduler gathers results after one arrives while other runs are going.
const COALESCE: Duration = Duration::from_millis(5);

/// What the scheduler thread is told.
pub enum Msg {
    /// The alert delivery thread's round.
    Delivered(super::deliver::Round),
    /// A check run of the job `id` ended.
    Done {
        id: u64,
        results: Vec<CheckResult>,
    },
    /// A recovery run of `service` ended.
    Healed {
        service: String,
        result: Result<Healed, String>,
    },
    Reload(Box<Config>),
    Stop(Sender<()>),
}

struct Job {
    /// Stable across reloads for the same entry path.
    id: u64,
    entry: HealthEntry,
    debounce: Debounce,
    next_due: Instant,
    /// Started at, and whether it already passed its deadline.
    running: Option<(Instant, bool)>,
    /// The run (slot) it is part of, while `running`.
    run: u64,
    /// When it ended (unix ms), its results (shared with the snapshots) and whether it
    /// timed out.
    last: Option<(u64, Arc<[CheckResult]>, bool)>,
    runs: u64,
    timeouts: u64,
}

struct Service {
    entry: RecoveryEntry,
    /// The name its alerts carry (its checks' service name).
    alert_name: String,
    /// A maintenance window holds its recovery back (said once per window).
    held: bool,
    /// `health_checks.services[i]`: the check entries at or under it are the service's.
    prefix: String,
    healer: Healer,
    backoff: Backoff,
    figures: Figures,
}

pub struct Scheduler {
    config: Config,
    next_id: u64,
    jobs: Vec<Job>,
    /// Runs still going of jobs a reload removed: id -> the run whose slot it still
    /// holds (`None`: past its deadline, the slot already freed).
    orphans: HashMap<u64, Option<u64>>,
    services: Vec<Service>,
    /// The runs going that hold a slot: run -> how many of its jobs still hold it (a
    /// batch's slot is freed once every job of it has its result or passed its deadline).
    slots: HashMap<u64, usize>,
    next_run: u64,
    /// Readings of the process table the process checks due together share.
    tables: Arc<Tables>,
    /// The threads check runs are made on, kept between runs.
    workers: Workers,
    tx: Sender<Msg>,
    rx: Receiver<Msg>,
    shared: Arc<Shared>,
    events: Sender<Event>,
    log: Arc<Logger>,
    epoch: Instant,
    rng: u64,
    figures_at: Instant,
    ready: bool,
    /// Something changed since the last snapshot.
    dirty: bool,
    published_at: Instant,
    /// Set at the stop: recoveries still running stop waiting at once.
    cancel: Cancel,
    /// Set at the stop: the alert delivery thread starts no more deliveries.
    stop: Arc<AtomicBool>,
    alerting: Alerting,
}

/// The service name alerts about a check entry carry: its service's, else the port
/// check's name (or port), else the entry's path.
fn alert_service(entry: &HealthEntry) -> String {
    entry
        .service
        .clone()
        .or_else(|| {
            entry
                .request
                .ports
                .first()
                .map(|p| p.label.clone().unwrap_or_else(|| format!("port {}", p.port)))
        })
        .unwrap_or_else(|| entry.path.clone())
}

/// `entry` belongs to the service at `prefix`.
fn under(entry: &str, prefix: &str) -> bool {
    entry
        .strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('.'))
}

/// A result that counts as a failure: critical or unknown (the engines' `fail_on: critical`).
fn failed(results: &[CheckResult]) -> bool {
    results.is_empty()
        || results
            .iter()
            .any(|r| matches!(r.status, Status::Critical | Status::Unknown))
}

impl Scheduler {
    pub fn new(
        config: Config,
        tx: Sender<Msg>,
        rx: Receiver<Msg>,
        shared: Arc<Shared>,
        events: Sender<Event>,
        log: Arc<Logger>,
    ) -> Scheduler {
        let seed = now_ms() ^ (u64::from(std::process::id()) << 32) ^ 0x9E37_79B9_7F4A_7C15;
        let stop = Arc::new(AtomicBool::new(false));
        let alerting = Alerting::start(&config, tx.clone(), stop.clone(), log.clone());
        let mut s = Scheduler {
            config: config.clone(),
            next_id: 0,
            orphans: HashMap::new(),
            jobs: Vec::new(),
            services: Vec::new(),
            slots: HashMap::new(),
            next_run: 0,
            tables: Arc::new(Tables::new()),
            workers: Workers::new("check"),
            tx,
            rx,
            shared,
            events,
            log,
            epoch: Instant::now(),
            rng: seed | 1,
            figures_at: Instant::now(),
            ready: false,
            dirty: true,
            published_at: Instant::now(),
            cancel: Cancel::new(),
            stop,
            alerting,
        };
        s.install(config);
        s
    }

    /// Takes a (new) configuration: entries at the same path keep their state, counters
    /// and running run; new ones run at once. A service keeps its recovery bookkeeping,
    /// so a reload never lets a second recovery of it start beside a running one.
    fn install(&mut self, config: Config) {
        let now = Instant::now();
        let mut old: HashMap<String, Job> = self.jobs.drain(..).map(|j| (j.entry.path.clone(), j)).collect();
        let mut entries: Vec<HealthEntry> = config.checks.clone();
        entries.extend(config.performance.clone());
        self.jobs = entries
            .into_iter()
            .map(|entry| match old.remove(&entry.path) {
                Some(j) => Job {
                    next_due: now.min(j.next_due),
                    entry,
                    ..j
                },
                None => Job {
                    id: {
                        self.next_id += 1;
                        self.next_id
                    },
                    entry,
                    debounce: Debounce::default(),
                    next_due: now,
                    running: None,
                    run: 0,
                    last: None,
                    runs: 0,
                    timeouts: 0,
                },
            })
            .collect();
        for (_, j) in old {
            if let Some((_, timed_out)) = j.running {
                self.orphans.insert(j.id, (!timed_out).then_some(j.run));
            }
        }
        let mut old_services: HashMap<String, Service> = self
            .services
            .drain(..)
            .map(|s| (s.entry.request.service.clone(), s))
            .collect();
        let defaults = config.service_monitoring.defaults;
        self.services = config
            .recoveries
            .iter()
            .map(|r| {
                let prefix = r.path.strip_suffix(".recovery").unwrap_or(&r.path).to_string();
                let interval = self
                    .jobs
                    .iter()
                    .filter(|j| under(&j.entry.path, &prefix))
                    .map(|j| j.entry.schedule.interval)
                    .min()
                    .unwrap_or(defaults.interval);
                let backoff = Backoff {
                    base: interval,
                    cap: BACKOFF_CAP.max(interval),
                };
                let kept = old_services.remove(&r.request.service);
                let alert_name = self
                    .jobs
                    .iter()
                    .find(|j| under(&j.entry.path, &prefix))
                    .map_or_else(|| r.request.service.clone(), |j| alert_service(&j.entry));
                Service {
                    alert_name,
                    held: kept.as_ref().is_some_and(|k| k.held),
                    figures: engines::figures(&r.request, now_ms()),
                    healer: kept.map(|k| k.healer).unwrap_or_default(),
                    entry: r.clone(),
                    prefix,
                    backoff,
                }
            })
            .collect();
        self.ready = self.ready && self.jobs.iter().all(|j| j.last.is_some());
        self.config = config;
        self.dirty = true;
    }

    fn ms(&self, at: Instant) -> u64 {
        u64::try_from(at.duration_since(self.epoch).as_millis()).unwrap_or(u64::MAX)
    }

    /// A uniform number in [0, 1) (xorshift64*: jitter needs spread, not secrecy).
    fn unit(&mut self) -> f64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let x = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (x >> 11) as f64 / (1u64 << 53) as f64
    }

    /// The loop; returns when told to stop.
    pub fn run(mut self) {
        self.publish(false);
        loop {
            let now = Instant::now();
            self.shared.beat();
            self.start_due(now);
            self.expire(now);
            self.heal(now);
            if self.alerting.tick(now, now_ms()) {
                self.dirty = true;
            }
            if now.duration_since(self.figures_at) >= FIGURES_EVERY {
                self.refresh_figures();
                self.publish(true);
                // A recent copy for `status` even after kill -9.
                self.save();
            }
            self.publish(false);
            let wait = self.next_wake(Instant::now());
            let mut msg = match self.rx.recv_timeout(wait) {
                Ok(m) => Some(m),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => return,
            };
            // While runs are going, the next results are a moment away: gather them for
            // COALESCE after the first instead of being woken by each (a wake-up from
            // another thread costs both threads more than handling a result).
            if msg.is_some() && !self.slots.is_empty() {
                std::thread::sleep(COALESCE);
            }
            // Take every message waiting before rendering once.
            while let Some(m) = msg {
                if let Some(done) = self.handle(m) {
                    let _ = done.send(());
                    return;
                }
                msg = self.rx.try_recv().ok();
            }
        }
    }

    /// Handles one message; `Some` when it was the stop.
    fn handle(&mut self, msg: Msg) -> Option<Sender<()>> {
        match msg {
            Msg::Delivered(round) => {
                self.alerting.delivered(round);
                self.dirty = true;
            }
            Msg::Done { id, results } => self.done(id, results),
            Msg::Healed { service, result } => self.healed(&service, result),
            Msg::Reload(config) => {
                self.alerting.reconfigure(&config);
                self.install(*config);
                self.log.info(&format!(
                    "configuration reloaded: {} checks, {} recoveries",
                    self.jobs.len(),
                    self.services.len()
                ));
            }
            Msg::Stop(done) => {
                self.cancel.cancel();
                self.stop.store(true, Ordering::SeqCst);
                self.publish(true);
                self.save();
                return Some(done);
            }
        }
        None
    }

    fn next_wake(&self, now: Instant) -> Duration {
        let mut at = now + TICK;
        if self.dirty {
            at = at.min(self.published_at + self.publish_gap());
        }
        // With every slot taken, a due entry waits for a run to end (a message) or to pass
        // its deadline, not for its own time: waking for it would spin until a slot frees.
        let slot_free = self.slots.len() < self.config.service_monitoring.max_concurrent_checks.max(1);
        for j in &self.jobs {
            match j.running {
                Some((started, false)) => at = at.min(started + j.entry.schedule.interval),
                Some(_) => {}
                None if slot_free => at = at.min(j.next_due),
                None => {}
            }
        }
        let now_ms = self.ms(now);
        for s in &self.services {
            if let Decision::Wait { ms } = s.healer.decide(self.failing(&s.prefix), now_ms) {
                at = at.min(now + Duration::from_millis(ms));
            }
        }
        at.saturating_duration_since(now)
    }

    fn start_due(&mut self, now: Instant) {
        let slots = self.config.service_monitoring.max_concurrent_checks.max(1);
        // The most overdue first.
        let mut due: Vec<usize> = (0..self.jobs.len()).filter(|i| self.jobs[*i].next_due <= now).collect();
        due.sort_by_key(|i| self.jobs[*i].next_due);
        // The runs to start: one job each, or the jobs of one batch key together.
        let mut starting: Vec<Vec<usize>> = Vec::new();
        let mut batches: HashMap<reliability_checks::BatchKey, usize> = HashMap::new();
        for index in due {
            let job = &mut self.jobs[index];
            let interval = job.entry.schedule.interval;
            if job.running.is_some() {
                // Still going (perhaps past its deadline): this turn is skipped.
                job.next_due = now + interval;
                // Said once at the deadline (warning); each skipped turn only in debug.
                self.log.debug_with(|| {
                    format!(
                        "{}: the previous run is still going; this turn is skipped",
                        job.entry.path
                    )
                });
                continue;
            }
            let key = job.entry.request.batch_key();
            match key.and_then(|k| batches.get(&k)) {
                Some(&run) => starting[run].push(index),
                None if self.slots.len() + starting.len() >= slots => continue,
                None => {
                    if let Some(k) = key {
                        batches.insert(k, starting.len());
                    }
                    starting.push(vec![index]);
                }
            }
        }
        for members in starting {
            self.start(members, now);
        }
    }

    /// Starts one run (one slot, one thread) of the jobs `members`.
    fn start(&mut self, members: Vec<usize>, now: Instant) {
        let run = self.next_run;
        self.next_run += 1;
        let mut due = None;
        for &index in &members {
            let job = &mut self.jobs[index];
            let interval = job.entry.schedule.interval;
            job.running = Some((now, false));
            job.run = run;
            // A reading of the process table begun at or after every member was due.
            due = due.max(Some(job.next_due));
            // Fixed rate while on time; after a late start, one interval from now.
            job.next_due = (job.next_due + interval).max(now);
            if job.next_due <= now {
                job.next_due = now + interval;
            }
        }
        self.slots.insert(run, members.len());
        let due = due.unwrap_or(now);
        let requests: Vec<_> = members
            .iter()
            .map(|&i| Arc::clone(&self.jobs[i].entry.request))
            .collect();
        let ids: Vec<u64> = members.iter().map(|&i| self.jobs[i].id).collect();
        let tx = self.tx.clone();
        let tables = Arc::clone(&self.tables);
        let spawned = self.workers.run(
            move || engines::run_checks(&requests, &tables, due),
            move |results| {
                for (id, results) in ids.into_iter().zip(results) {
                    let _ = tx.send(Msg::Done { id, results });
                }
            },
        );
        if let Err(e) = spawned {
            self.slots.remove(&run);
            for index in members {
                let job = &mut self.jobs[index];
                job.running = None;
                let path = job.entry.path.clone();
                let result =
                    CheckResult::unknown(&path, "daemon", format!("cannot start a thread: {e}"), Duration::ZERO);
                self.record(index, vec![result], false);
            }
        }
    }

    /// One job of `run` has its result or passed its deadline: the run's slot is freed
    /// once none of its jobs holds it.
    fn release(&mut self, run: u64) {
        if let Some(holding) = self.slots.get_mut(&run) {
            *holding = holding.saturating_sub(1);
            if *holding == 0 {
                self.slots.remove(&run);
            }
        }
    }

    /// Runs past their deadline become timed-out failures and free their slot.
    fn expire(&mut self, now: Instant) {
        for index in 0..self.jobs.len() {
            let job = &mut self.jobs[index];
            let Some((started, false)) = job.running else { continue };
            let deadline = job.entry.schedule.interval;
            if now.duration_since(started) < deadline {
                continue;
            }
            job.running = Some((started, true));
            job.timeouts += 1;
            let run = job.run;
            self.release(run);
            let path = self.jobs[index].entry.path.clone();
            let msg = format!(
                "{path}: no result within its deadline of {:.3} s (the interval); counted as a failure",
                deadline.as_secs_f64()
            );
            self.log.warn(&msg);
            let result = CheckResult::unknown(&path, "timeout", msg, now.duration_since(started));
            self.record(index, vec![result], true);
        }
    }

    fn done(&mut self, id: u64, results: Vec<CheckResult>) {
        let Some(index) = self.jobs.iter().position(|j| j.id == id) else {
            // Its entry was removed by a reload: only the slot matters.
            if let Some(Some(run)) = self.orphans.remove(&id) {
                self.release(run);
            }
            return;
        };
        let job = &mut self.jobs[index];
        let Some((_, timed_out)) = job.running.take() else {
            return;
        };
        if timed_out {
            // Its slot was freed and its timeout recorded at the deadline.
            self.log
                .info(&format!("{}: the run that timed out has ended", job.entry.path));
            return;
        }
        let run = job.run;
        self.release(run);
        self.record(index, results, false);
    }

    fn record(&mut self, index: usize, results: Vec<CheckResult>, timed_out: bool) {
        let ok = !timed_out && !failed(&results);
        self.dirty = true;
        let job = &mut self.jobs[index];
        job.runs += 1;
        let schedule = job.entry.schedule;
        let before = job.debounce.state;
        if let Some(state) = job.debounce.observe(ok, &schedule) {
            let what = results
                .iter()
                .filter(|r| r.status != Status::Ok)
                .map(|r| r.message.as_str())
                .collect::<Vec<_>>()
                .join("; ");
            match state {
                State::Failing => self.log.error(&format!(
                    "{}: failing after {} failed results in a row: {what}",
                    job.entry.path, job.debounce.failures
                )),
                State::Ok if before == State::Failing => self.log.info(&format!(
                    "{}: ok again after {} ok results in a row",
                    job.entry.path, job.debounce.successes
                )),
                _ => self.log.debug_with(|| format!("{}: ok", job.entry.path)),
            }
        }
        // What the alert policy hears, only when the state changed (not every result).
        let change = (job.debounce.state != before).then(|| {
            let detail = Detail {
                check: Some(job.entry.path.clone()),
                value: results
                    .iter()
                    .find(|r| r.status != Status::Ok)
                    .map(|r| r.message.clone()),
                category: match job.entry.kind {
                    CheckKind::Resources => Category::PerformanceDegradation,
                    _ => Category::ServiceFailure,
                },
                summary: String::new(),
            };
            (alert_service(&job.entry), detail)
        });
        job.last = Some((now_ms(), results.into(), timed_out));
        if let Some((service, detail)) = change {
            self.outage(&service, detail);
        }
        if !self.ready && self.jobs.iter().all(|j| j.last.is_some()) {
            self.ready = true;
            self.log.info(&format!("first cycle done: {} checks", self.jobs.len()));
        }
    }

    /// After a check of `service` changed state: an outage opens when one of its checks
    /// is confirmed failing (the policy hears of each), and closes once all are ok.
    fn outage(&mut self, service: &str, detail: Detail) {
        let mine = || self.jobs.iter().filter(|j| alert_service(&j.entry) == service);
        let failing = mine().any(|j| j.debounce.state == State::Failing);
        let all_ok = mine().all(|j| j.debounce.state == State::Ok);
        let now = now_ms();
        if failing {
            self.alerting.open(service, now);
            self.alerting.event(EventKind::CheckFailed, service, detail, now);
        } else if all_ok {
            self.alerting.close(service, now);
        }
    }

    fn failing(&self, prefix: &str) -> bool {
        self.jobs
            .iter()
            .any(|j| under(&j.entry.path, prefix) && j.debounce.state == State::Failing)
    }

    fn heal(&mut self, now: Instant) {
        let now_ms = self.ms(now);
        for index in 0..self.services.len() {
            let failing = self.failing(&self.services[index].prefix);
            let service = &mut self.services[index];
            match service.healer.decide(failing, now_ms) {
                Decision::Idle => {
                    if service.healer.attempts > 0 {
                        service.healer.reset();
                    }
                }
                Decision::Busy | Decision::Wait { .. } => {}
                Decision::Start => {
                    let name = service.entry.request.service.clone();
                    if let Some(w) = self.alerting.recovery_held(&name, reliability_os::clock::now_ms()) {
                        if !service.held {
                            service.held = true;
                            self.log.warn(&format!(
                                "{name}: failing; its recovery waits for the end of maintenance window '{}'",
                                w.name
                            ));
                        }
                        continue;
                    }
                    service.held = false;
                    self.dirty = true;
                    service.healer.started();
                    let request = service.entry.request.clone();
                    let attempt = service.healer.attempts + 1;
                    self.log.warn(&format!(
                        "{name}: failing; running its recovery (attempt {})",
                        service.healer.attempts + 1
                    ));
                    self.alerting.audit(
                        "recovery.start",
                        &name,
                        AuditOutcome::Unchanged,
                        Some("its checks are confirmed failing".into()),
                        serde_json::json!({ "attempt": attempt }),
                    );
                    let tx = self.tx.clone();
                    let cancel = self.cancel.clone();
                    let spawned = std::thread::Builder::new().name("recovery".into()).spawn(move || {
                        let result = engines::recover(&request, &cancel);
                        let _ = tx.send(Msg::Healed {
                            service: request.service.clone(),
                            result,
                        });
                    });
                    if let Err(e) = spawned {
                        let unit = self.unit();
                        let service = &mut self.services[index];
                        service.healer.finished(false, now_ms, &service.backoff, unit);
                        self.log.error(&format!("{name}: cannot start the recovery: {e}"));
                    }
                }
            }
        }
    }

    fn healed(&mut self, name: &str, result: Result<Healed, String>) {
        let Some(index) = self.services.iter().position(|s| s.entry.request.service == name) else {
            return;
        };
        let now = self.ms(Instant::now());
        let unit = self.unit();
        let Some(service) = self.services.get_mut(index) else {
            return;
        };
        let name = service.entry.request.service.clone();
        let healthy = match &result {
            Ok(h) => h.healthy,
            Err(_) => false,
        };
        service.healer.finished(healthy, now, &service.backoff, unit);
        let wait = service.healer.not_before.saturating_sub(now);
        let alert_name = service.alert_name.clone();
        let attempt = service.healer.attempts;
        let at = now_ms();
        // What self-healing tried, what the policy hears, and the audit record.
        let (tried, kind, audit_outcome, details) = match &result {
            Ok(h) => {
                let step = match (&h.strategy, h.level) {
                    (Some(s), Some(l)) => format!("{s} (level {l}): {}", h.outcome),
                    _ => h.outcome.to_string(),
                };
                let kind = match (h.outcome, h.level) {
                    (Outcome::ManualIntervention | Outcome::RefusedByBreaker | Outcome::RateLimited, _) => {
                        Some(EventKind::HealingFailed)
                    }
                    (_, Some(level)) => Some(EventKind::Recovery {
                        level: u32::try_from(level).unwrap_or(u32::MAX),
                        succeeded: healthy,
                    }),
                    _ => None,
                };
                let outcome = match (healthy, h.changed) {
                    (false, _) => AuditOutcome::Failed,
                    (true, true) => AuditOutcome::Changed,
                    (true, false) => AuditOutcome::Unchanged,
                };
                let details = serde_json::json!({
                    "outcome": h.outcome.as_str(),
                    "level": h.level,
                    "strategy": h.strategy,
                    "attempts_failed_in_a_row": attempt,
                });
                (step, kind, outcome, details)
            }
            Err(e) => (
                format!("could not run: {e}"),
                Some(EventKind::HealingFailed),
                AuditOutcome::Failed,
                serde_json::json!({ "error": e, "attempts_failed_in_a_row": attempt }),
            ),
        };
        self.alerting
            .audit("recovery.outcome", &name, audit_outcome, None, details);
        self.alerting.open(&alert_name, at);
        self.alerting.tried(&alert_name, tried);
        if let Some(kind) = kind {
            self.alerting.event(kind, &alert_name, Detail::default(), at);
        }
        if healthy {
            // Failing checks keep the outage open; ok ones close it as they confirm.
            if !self.failing(&self.services[index].prefix) {
                self.alerting.close(&alert_name, at);
            }
        }
        let Some(service) = self.services.get_mut(index) else {
            return;
        };
        match result {
            Ok(h) if healthy => self.log.info(&format!("{name}: recovery {}: {}", h.outcome, h.msg)),
            Ok(h) => self.log.error(&format!(
                "{name}: recovery {}: {}; next attempt in {:.1} s at the earliest",
                h.outcome,
                h.msg,
                wait as f64 / 1000.0
            )),
            Err(e) => self.log.error(&format!(
                "{name}: recovery could not run: {e}; next attempt in {:.1} s at the earliest",
                wait as f64 / 1000.0
            )),
        }
        service.figures = engines::figures(&service.entry.request, now_ms());
    }

    fn refresh_figures(&mut self) {
        self.figures_at = Instant::now();
        self.dirty = true;
        let now = now_ms();
        for s in &mut self.services {
            s.figures = engines::figures(&s.entry.request, now);
            for p in &s.figures.problems {
                self.log.warn(&format!("{}: {p}", s.entry.request.service));
            }
        }
    }

    fn view(&self) -> View {
        View {
            ready: self.ready,
            checks: self
                .jobs
                .iter()
                .map(|j| CheckView {
                    entry: j.entry.path.clone(),
                    service: j.entry.service.clone(),
                    state: j.debounce.state,
                    failures: j.debounce.failures,
                    successes: j.debounce.successes,
                    timed_out: j.last.as_ref().is_some_and(|l| l.2),
                    last_run_ms: j.last.as_ref().map(|l| l.0),
                    results: j.last.as_ref().map_or_else(|| Arc::from([]), |l| Arc::clone(&l.1)),
                    runs: j.runs,
                    timeouts: j.timeouts,
                })
                .collect(),
            services: self
                .services
                .iter()
                .map(|s| ServiceView {
                    service: s.entry.request.service.clone(),
                    recovering: s.healer.running,
                    attempts: s.healer.attempts,
                    figures: s.figures.clone(),
                })
                .collect(),
            alerts: self.alerting.stats.clone(),
            updated_ms: now_ms(),
        }
    }

    /// How long after the last snapshot the next may be rendered: results that come
    /// together (a cycle of a hundred checks) are rendered together, once no run is
    /// going; while runs go on, at most every [`PUBLISH_WITHIN`].
    fn publish_gap(&self) -> Duration {
        if self.slots.is_empty() {
            PUBLISH_EVERY
        } else {
            PUBLISH_WITHIN
        }
    }

    fn publish(&mut self, force: bool) {
        let now = Instant::now();
        // The first ready snapshot is wanted at once; the rest wait for the runs going.
        let ready_news = self.ready && !self.shared.snapshot().ready;
        if !self.dirty || (!force && !ready_news && now < self.published_at + self.publish_gap()) {
            return;
        }
        self.dirty = false;
        self.published_at = now;
        let view = self.view();
        let snapshot = view.snapshot();
        let first = snapshot.ready && !self.shared.snapshot().ready;
        let changed = self.shared.snapshot().status_line != snapshot.status_line;
        self.shared.swap(snapshot);
        if first || changed {
            let _ = self.events.send(Event::Published);
        }
    }

    /// `state_dir/monitor/last.json`: the last results, for `status` after the daemon.
    fn save(&self) {
        let path = self
            .config
            .service_monitoring
            .state_dir
            .join("monitor")
            .join("last.json");
        let snapshot = self.shared.snapshot();
        let body = snapshot.health_body();
        let result = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .map_err(|e| e.to_string())
            .and_then(|()| reliability_os::state::write_atomic(&path, body).map_err(|e| e.to_string()));
        if let Err(e) = result {
            self.log
                .warn(&format!("cannot save the last results to '{}': {e}", path.display()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_owns_its_own_entries_only() {
        let p = "health_checks.services[1]";
        for (entry, owned) in [
            ("health_checks.services[1]", true),
            ("health_checks.services[1].port", true),
            ("health_checks.services[1].process", true),
            ("health_checks.services[10]", false),
            ("health_checks.services[10].port", false),
            ("health_checks.ports[1]", false),
        ] {
            assert_eq!(under(entry, p), owned, "{entry}");
        }
    }

    #[test]
    fn critical_and_unknown_are_failures() {
        let r = |s| CheckResult::state("x", "port", s, "m", Duration::ZERO);
        assert!(!failed(&[r(Status::Ok), r(Status::Warning)]));
        assert!(failed(&[r(Status::Ok), r(Status::Critical)]));
        assert!(failed(&[r(Status::Unknown)]));
        assert!(failed(&[]), "a run without results says nothing good");
    }
}
