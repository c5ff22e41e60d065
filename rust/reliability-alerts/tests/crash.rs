//! `kill -9` of a process delivering alerts, then a restart: every alert is delivered and
//! none twice at a receiver that dedupes by idempotency key.
//!
//! A test of its own (harness = false) because it runs itself as the child: `crash
//! --child QUEUE URL [push FROM TO]` opens the queue, optionally queues alerts (printing
//! `queued <key>` once each is durable), and delivers until the queue is empty. The parent
//! kills children with SIGKILL while a delivery is in flight (the receiver got the request
//! and holds its answer) and at an arbitrary moment while alerts are being queued.
#![allow(clippy::unwrap_used, clippy::print_stdout)]

mod support;

use reliability_alerts::{AlertConfig, Dispatcher, Queue};
use reliability_os::clock::now_ms;
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

fn config(url: &str) -> AlertConfig {
    AlertConfig::from_yaml(&format!(
        "alerting: {{host: web1, queue: {{retry_base: 20ms, retry_max: 100ms}}}}\nnotifications:\n  webhook: {{url: '{url}'}}\n"
    ))
    .unwrap()
}

fn child(args: &[String]) {
    let (dir, url) = (&args[0], &args[1]);
    let c = config(url);
    // The killed child's lock goes with it; open as soon as the kernel has let it go.
    let started = Instant::now();
    let queue = loop {
        match Queue::open(dir, c.queue.clone()) {
            Ok(q) => break q,
            Err(e) if started.elapsed() > Duration::from_secs(10) => panic!("{e}"),
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    };
    let mut dispatcher = Dispatcher::new(&c, queue);
    if args.get(2).map(String::as_str) == Some("push") {
        let (from, to) = (args[3].parse().unwrap(), args[4].parse().unwrap());
        for alert in support::alerts_range(from..to) {
            dispatcher.push(&alert, now_ms()).unwrap();
            println!("queued {}", alert.key);
            std::io::stdout().flush().unwrap();
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let cancel = AtomicBool::new(false);
    while !dispatcher.queue().is_empty() {
        dispatcher.deliver_due(now_ms(), &cancel);
        std::thread::sleep(Duration::from_millis(5));
    }
    println!("done");
}

/// The receiver: records every request's key (the wire), dedupes, and, at request number
/// `kill_at`, tells the parent and holds its answer until the child is dead.
struct Receiver {
    wire: Arc<Mutex<Vec<String>>>,
    kill_at: Arc<AtomicUsize>,
    killed: mpsc::Receiver<()>,
    dead: mpsc::Sender<()>,
    url: String,
}

fn receiver() -> Receiver {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/alerts", listener.local_addr().unwrap());
    let wire = Arc::new(Mutex::new(Vec::new()));
    let kill_at = Arc::new(AtomicUsize::new(0));
    let (kill_tx, killed) = mpsc::channel();
    let (dead, dead_rx) = mpsc::channel::<()>();
    let (w, k) = (Arc::clone(&wire), Arc::clone(&kill_at));
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let Some(request) = support::read_request(&mut stream) else {
                continue;
            };
            let key = request.header("idempotency-key").unwrap().to_string();
            let n = {
                let mut wire = w.lock().unwrap();
                wire.push(key);
                wire.len()
            };
            if n == k.load(Ordering::SeqCst) {
                // Processed, but the answer never reaches the sender.
                kill_tx.send(()).unwrap();
                dead_rx.recv().unwrap();
                continue;
            }
            support::respond(&mut stream, "200 OK", "");
        }
    });
    Receiver {
        wire,
        kill_at,
        killed,
        dead,
        url,
    }
}

fn spawn(args: &[&str]) -> std::process::Child {
    Command::new(std::env::current_exe().unwrap())
        .arg("--child")
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap()
}

fn parent() {
    let dir = tempfile::tempdir().unwrap();
    let queue_dir = dir.path().join("queue");
    let q = queue_dir.to_str().unwrap().to_string();
    let r = receiver();
    let c = config(&r.url);
    let first = support::alerts_range(0..30);
    {
        let mut dispatcher = Dispatcher::new(&c, Queue::open(&queue_dir, c.queue.clone()).unwrap());
        for alert in &first {
            dispatcher.push(alert, now_ms()).unwrap();
        }
    }
    let mut kills = 0;
    // Killed while the receiver holds the answer to its 4th, then its 15th request.
    for kill_at in [4, 15] {
        r.kill_at.store(kill_at, Ordering::SeqCst);
        let mut child = spawn(&[&q, &r.url]);
        r.killed
            .recv_timeout(Duration::from_secs(30))
            .expect("the child reached the receiver");
        child.kill().unwrap();
        child.wait().unwrap();
        r.dead.send(()).unwrap();
        kills += 1;
    }
    r.kill_at.store(0, Ordering::SeqCst);
    // Killed at an arbitrary moment while queueing 20 more (10 ms apart).
    let mut child = spawn(&[&q, &r.url, "push", "30", "50"]);
    let lines = BufReader::new(child.stdout.take().unwrap());
    let reader = std::thread::spawn(move || lines.lines().map_while(Result::ok).collect::<Vec<String>>());
    std::thread::sleep(Duration::from_millis(120));
    child.kill().unwrap();
    child.wait().unwrap();
    kills += 1;
    // Every line the child wrote before it died (the pipe ends with it).
    let confirmed: Vec<String> = reader
        .join()
        .unwrap()
        .iter()
        .filter_map(|l| l.strip_prefix("queued ").map(String::from))
        .collect();
    assert!(
        !confirmed.is_empty() && confirmed.len() < 20,
        "killed mid-queueing: {confirmed:?}"
    );
    // The restart, to the end.
    let out = spawn(&[&q, &r.url]).wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "done");

    let all: BTreeSet<String> = support::alerts_range(0..50).into_iter().map(|a| a.key).collect();
    let expected: BTreeSet<String> = first.iter().map(|a| a.key.clone()).chain(confirmed).collect();
    let wire = r.wire.lock().unwrap().clone();
    let mut copies: BTreeMap<&String, usize> = BTreeMap::new();
    for key in &wire {
        *copies.entry(key).or_default() += 1;
    }
    let delivered: BTreeSet<String> = copies.keys().map(|k| (*k).clone()).collect();
    let lost: Vec<&String> = expected.difference(&delivered).collect();
    let resent = wire.len() - delivered.len();
    assert!(lost.is_empty(), "lost: {lost:?}");
    assert!(delivered.is_subset(&all), "a key nobody queued");
    // Each kill in flight makes exactly one copy, which the receiver drops by its key.
    assert_eq!(resent, 2, "{copies:?}");
    assert!(Queue::open(&queue_dir, c.queue.clone()).unwrap().is_empty());
    println!(
        "crash test: {kills} kill -9 (2 in flight, 1 while queueing); alerts sent {} (confirmed queued), \
         delivered {} (unique keys; an alert queued but not yet confirmed when killed is delivered too), \
         copies dropped by key {resent}, duplicates after dedupe 0, lost {}",
        expected.len(),
        delivered.len(),
        lost.len()
    );
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--child") {
        child(&args[2..]);
        return;
    }
    if args.iter().any(|a| a == "--list") {
        println!("kill_9_then_restart: test");
        return;
    }
    // `cargo test -- FILTER` passes its filter here: run unless it names another test.
    if args
        .iter()
        .skip(1)
        .any(|a| !a.starts_with('-') && !"kill_9_then_restart".contains(a.as_str()))
    {
        return;
    }
    parent();
    println!("test kill_9_then_restart ... ok");
}
