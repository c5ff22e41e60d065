//! The durable queue and the delivery rounds against a receiver on loopback that is down,
//! failing, or refusing; short backoff settings so that each test takes seconds.
#![allow(clippy::unwrap_used)]

mod support;

use reliability_alerts::queue::Entry;
use reliability_alerts::{Dispatcher, Outcome, Queue, QueueConfig, QueueError};
use reliability_os::clock::now_ms;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{alerts, config, free_port, Receiver};

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Runs delivery rounds until the queue is empty (or 30 s), as the daemon's tick does.
fn drain(dispatcher: &mut Dispatcher, on_round: impl Fn(Instant)) -> (usize, usize) {
    let cancel = AtomicBool::new(false);
    let started = Instant::now();
    let (mut retries, mut rounds) = (0, 0);
    while !dispatcher.queue().is_empty() {
        assert!(started.elapsed() < Duration::from_secs(30), "the queue did not drain");
        on_round(started);
        let report = dispatcher.deliver_due(now_ms(), &cancel);
        retries += report
            .deliveries
            .iter()
            .filter(|d| matches!(d.outcome, Outcome::Retry { .. }))
            .count();
        rounds += 1;
        std::thread::sleep(Duration::from_millis(20));
    }
    (retries, rounds)
}

#[test]
fn a_receiver_down_for_a_while_then_up_gets_every_alert_exactly_once() {
    let port = free_port();
    let c = config(&format!("  webhook: {{url: 'http://127.0.0.1:{port}/alerts'}}\n"));
    let dir = tempfile::tempdir().unwrap();
    let queue = Queue::open(dir.path().join("queue"), c.queue.clone()).unwrap();
    let mut dispatcher = Dispatcher::new(&c, queue);
    let sent = alerts(20);
    for alert in &sent {
        assert_eq!(dispatcher.push(alert, now_ms()).unwrap().queued, 1);
    }
    // Down (connection refused) for 1.5 s, then up.
    let receiver = std::sync::Mutex::new(None);
    let (retries, rounds) = drain(&mut dispatcher, |started| {
        let mut r = receiver.lock().unwrap();
        if r.is_none() && started.elapsed() > Duration::from_millis(1500) {
            let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
            *r = Some(Receiver::on(listener, |_| ("200 OK", String::new())));
        }
    });
    let receiver = receiver.into_inner().unwrap().unwrap();
    let seen = receiver.seen.lock().unwrap();
    let keys: Vec<String> = sent.iter().map(|a| a.key.clone()).collect();
    assert_eq!(seen.keys, keys, "every alert, oldest first");
    assert_eq!(seen.duplicates(), 0);
    assert!(retries >= 1, "the receiver was down: retries expected");
    // The channel backed off as a whole: not one attempt per waiting alert per round.
    assert!(
        retries < sent.len(),
        "{retries} failed attempts for {} alerts",
        sent.len()
    );
    eprintln!(
        "down-then-up: sent {}, delivered {}, duplicates {}, lost {}; {retries} failed attempts in {rounds} rounds",
        sent.len(),
        seen.keys.len(),
        seen.duplicates(),
        sent.len() - seen.keys.len()
    );
}

#[test]
fn a_failing_receiver_is_retried_and_a_refusing_one_is_set_aside() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    // 503 for the first five requests, then 200.
    let receiver = Receiver::start(move |_| {
        if counter.fetch_add(1, Ordering::SeqCst) < 5 {
            ("503 Service Unavailable", "later".into())
        } else {
            ("200 OK", String::new())
        }
    });
    let c = config(&format!("  webhook: {{url: 'http://{}/alerts'}}\n", receiver.addr));
    let dir = tempfile::tempdir().unwrap();
    let mut dispatcher = Dispatcher::new(&c, Queue::open(dir.path(), c.queue.clone()).unwrap());
    let sent = alerts(3);
    for alert in &sent {
        dispatcher.push(alert, now_ms()).unwrap();
    }
    let (retries, _) = drain(&mut dispatcher, |_| {});
    assert_eq!(retries, 5);
    assert_eq!(receiver.seen.lock().unwrap().keys.len(), 3);

    // HTTP 400: the request itself is wrong; retrying cannot help. Kept in dead/.
    let refusing = Receiver::start(|_| ("400 Bad Request", "no".into()));
    let c = config(&format!("  webhook: {{url: 'http://{}/alerts'}}\n", refusing.addr));
    let dir = tempfile::tempdir().unwrap();
    let mut dispatcher = Dispatcher::new(&c, Queue::open(dir.path(), c.queue.clone()).unwrap());
    dispatcher.push(&sent[0], now_ms()).unwrap();
    let report = dispatcher.deliver_due(now_ms(), &AtomicBool::new(false));
    assert!(matches!(&report.deliveries[0].outcome, Outcome::Refused(e) if e.reason == "HTTP 400: no"));
    assert_eq!(report.pending, 0);
    let dead = dir.path().join("dead/webhook").join(format!("{}.json", sent[0].key));
    let entry: Entry = serde_json::from_slice(&std::fs::read(&dead).unwrap()).unwrap();
    assert_eq!(entry.alert, sent[0]);
    assert_eq!(
        entry.last_error.as_deref(),
        Some("channel 'webhook' (127.0.0.1): HTTP 400: no")
    );
}

#[test]
fn the_queue_is_private_durable_locked_and_cleans_up_after_a_killed_writer() {
    let dir = tempfile::tempdir().unwrap();
    // Where the daemon keeps it: a directory of the state store, checked as the store's.
    let root = reliability_os::state::Store::new(dir.path().join("state"))
        .private_dir("alert_queue")
        .unwrap();
    let sent = alerts(2);
    {
        let mut queue = Queue::open(&root, QueueConfig::default()).unwrap();
        let report = queue.push(&sent[0], &["email", "slack"], 1000).unwrap();
        assert_eq!((report.queued, report.already_queued), (2, 0));
        // The daemon re-deciding the same alert after a restart queues nothing twice.
        let report = queue.push(&sent[0], &["email", "slack"], 2000).unwrap();
        assert_eq!((report.queued, report.already_queued), (0, 2));
        assert!(matches!(
            Queue::open(&root, QueueConfig::default()),
            Err(QueueError::Locked(_))
        ));
        assert_eq!(mode(&root), 0o700);
        assert_eq!(mode(&root.join("email")), 0o700);
        assert_eq!(mode(&root.join("email").join(format!("{}.json", sent[0].key))), 0o600);
    }
    // What a writer killed mid-write leaves, and a file that is no entry.
    std::fs::write(root.join("email/.x.json.123.tmp"), "{").unwrap();
    std::fs::write(root.join("email/garbage.json"), "not json").unwrap();
    let queue = Queue::open(&root, QueueConfig::default()).unwrap();
    assert_eq!(
        queue.pending().into_iter().collect::<Vec<_>>(),
        [("email".into(), 1), ("slack".into(), 1)]
    );
    assert_eq!(queue.due("email", 1000)[0].alert, sent[0]);
    assert!(!root.join("email/.x.json.123.tmp").exists());
    assert!(root.join("email/garbage.json.corrupt").exists());
}

#[test]
fn a_full_queue_drops_the_oldest_and_counts_them() {
    let dir = tempfile::tempdir().unwrap();
    let config = QueueConfig {
        max_alerts: 3,
        ..QueueConfig::default()
    };
    let mut queue = Queue::open(dir.path(), config).unwrap();
    let sent = alerts(5);
    let mut dropped = Vec::new();
    for (i, alert) in sent.iter().enumerate() {
        dropped.extend(queue.push(alert, &["webhook"], 1000 + i as u64).unwrap().dropped);
    }
    let oldest: Vec<(String, String)> = sent[..2].iter().map(|a| ("webhook".into(), a.key.clone())).collect();
    assert_eq!(dropped, oldest);
    assert_eq!(queue.dropped_total(), 2);
    let left: Vec<String> = queue
        .due("webhook", u64::MAX)
        .into_iter()
        .map(|e| e.alert.key)
        .collect();
    let newest: Vec<String> = sent[2..].iter().map(|a| a.key.clone()).collect();
    assert_eq!(left, newest);
    assert_eq!(std::fs::read_dir(dir.path().join("webhook")).unwrap().count(), 3);
}

#[test]
fn a_cancelled_round_delivers_nothing_and_says_so() {
    let receiver = Receiver::start(|_| ("200 OK", String::new()));
    let c = config(&format!("  webhook: {{url: 'http://{}/alerts'}}\n", receiver.addr));
    let dir = tempfile::tempdir().unwrap();
    let mut dispatcher = Dispatcher::new(&c, Queue::open(dir.path(), c.queue.clone()).unwrap());
    dispatcher.push(&alerts(1)[0], now_ms()).unwrap();
    let report = dispatcher.deliver_due(now_ms(), &AtomicBool::new(true));
    assert!(report.interrupted);
    assert_eq!((report.deliveries.len(), report.pending), (0, 1));
    let report = dispatcher.deliver_due(now_ms(), &AtomicBool::new(false));
    assert_eq!((report.delivered(), report.pending), (1, 0));
}
