//! The `circuit_breaker` binary as Ansible runs it, on a state directory of the test's own:
//! the breaker's life (open, refuse, half-open, close), check mode and diff, bad input, and
//! the store under pressure: parallel runs of the binary, and a writer killed with SIGKILL
//! at random moments hundreds of times. The state machine's own cases are table tests in
//! `reliability-core/src/breaker.rs`.

use nix::sys::signal::Signal;
use serde_json::{json, Value};
use std::fs;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const BIN: &str = env!("CARGO_BIN_EXE_circuit_breaker");

struct Run {
    code: i32,
    result: Value,
}

impl Run {
    fn ok(self) -> Value {
        assert_eq!(self.code, 0, "{}", self.result);
        assert!(self.result.get("failed").is_none(), "{}", self.result);
        self.result
    }

    fn failed(self, msg: &str) -> Value {
        assert_eq!(self.code, 1, "{}", self.result);
        assert_eq!(self.result["failed"], json!(true), "{}", self.result);
        assert_eq!(self.result["changed"], json!(false));
        let got = self.result["msg"].as_str().unwrap_or_default();
        assert!(got.contains(msg), "msg {got:?} should contain {msg:?}");
        self.result
    }
}

/// One run of the module with `args`; the args file goes in `dir`.
fn run_in(dir: &Path, args: &Value) -> Run {
    let file = tempfile::NamedTempFile::new_in(dir).expect("args file");
    fs::write(file.path(), args.to_string()).expect("write args");
    let out = Command::new(BIN).arg(file.path()).output().expect("run module");
    let stdout = String::from_utf8(out.stdout).expect("UTF-8");
    assert_eq!(stdout.lines().count(), 1, "one line of JSON: {stdout:?}");
    Run {
        code: out.status.code().unwrap_or(-1),
        result: serde_json::from_str(&stdout).expect("JSON"),
    }
}

/// A breaker in a state directory of its own.
struct Breaker {
    dir: tempfile::TempDir,
    name: &'static str,
}

impl Breaker {
    fn new(name: &'static str) -> Breaker {
        Breaker {
            dir: tempfile::tempdir().expect("tempdir"),
            name,
        }
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn file(&self) -> PathBuf {
        self.state_dir().join(format!("circuit_breaker/{}.json", self.name))
    }

    /// Run with `extra` merged into `name` and `state_dir`.
    fn run(&self, extra: Value) -> Run {
        let mut args = json!({"name": self.name, "state_dir": self.state_dir()});
        if let (Some(a), Value::Object(e)) = (args.as_object_mut(), extra) {
            a.extend(e);
        }
        run_in(self.dir.path(), &args)
    }
}

fn counters(r: &Value) -> (u64, u64, u64) {
    let c = &r["counters"];
    let n = |k: &str| c[k].as_u64().unwrap_or_else(|| panic!("counters.{k}: {r}"));
    (n("calls"), n("failures"), n("consecutive_failures"))
}

#[test]
fn opens_refuses_half_opens_and_closes() {
    let b = Breaker::new("web");
    let cfg = json!({"failure_threshold": 3, "recovery_timeout": 1});
    let with = |extra: Value| {
        let mut args = cfg.clone();
        args.as_object_mut()
            .expect("object")
            .extend(extra.as_object().cloned().unwrap_or_default());
        args
    };

    let r = b.run(with(json!({}))).ok();
    assert_eq!(
        (r["state"].clone(), r["allowed"].clone(), r["changed"].clone()),
        (json!("closed"), json!(true), json!(false))
    );
    assert!(
        r["previous_state"].is_null() && !b.file().exists(),
        "a query creates nothing: {r}"
    );

    for i in 1..=2 {
        let r = b.run(with(json!({"record": "failure"}))).ok();
        assert_eq!(
            (r["state"].as_str(), r["changed"].as_bool()),
            (Some("closed"), Some(true))
        );
        assert_eq!(counters(&r), (i, i, i));
    }
    // Exactly at the threshold.
    let r = b.run(with(json!({"record": "failure"}))).ok();
    assert_eq!(
        (r["state"].as_str(), r["previous_state"].as_str()),
        (Some("open"), Some("closed"))
    );
    assert_eq!(r["allowed"], json!(false));
    assert_eq!(r["transitions"][0]["cause"], json!("consecutive_failures"));
    assert_eq!(
        r["transitions"][0]["reason"],
        json!("3 consecutive failures (failure_threshold 3)")
    );
    let opened_at = r["since"].as_str().expect("since").to_string();
    assert!(
        r["msg"]
            .as_str()
            .unwrap_or_default()
            .contains("is open (was closed): 3 consecutive failures"),
        "{r}"
    );

    // Refused while open; a query says how long until half-open and changes nothing.
    let stored = fs::read(b.file()).expect("state file");
    let r = b.run(with(json!({}))).ok();
    assert_eq!(
        (r["state"].as_str(), r["allowed"].as_bool(), r["changed"].as_bool()),
        (Some("open"), Some(false), Some(false))
    );
    let wait = r["time_until_half_open"].as_f64().expect("time_until_half_open");
    assert!(wait > 0.0 && wait <= 1.0, "{r}");
    assert_eq!(r["retry_after"].as_f64(), Some(wait));
    assert_eq!(fs::read(b.file()).expect("state file"), stored);

    thread::sleep(Duration::from_secs_f64(wait + 0.05));
    let r = b.run(with(json!({}))).ok();
    assert_eq!(
        (r["state"].as_str(), r["allowed"].as_bool(), r["changed"].as_bool()),
        (Some("half_open"), Some(true), Some(false))
    );
    assert!(r["time_until_half_open"].is_null());
    assert_eq!(
        fs::read(b.file()).expect("state file"),
        stored,
        "a query writes nothing"
    );

    let r = b.run(with(json!({"record": "success"}))).ok();
    assert_eq!(
        (r["state"].as_str(), r["previous_state"].as_str()),
        (Some("half_open"), Some("open"))
    );
    assert_eq!(r["counters"]["half_open_successes"], json!(1));
    let r = b.run(with(json!({"record": "success"}))).ok();
    assert_eq!(
        (r["state"].as_str(), r["allowed"].as_bool()),
        (Some("closed"), Some(true))
    );
    let path: Vec<(&str, &str, &str)> = r["transitions"]
        .as_array()
        .expect("transitions")
        .iter()
        .map(|t| {
            (
                t["from"].as_str().unwrap_or("?"),
                t["to"].as_str().unwrap_or("?"),
                t["cause"].as_str().unwrap_or("?"),
            )
        })
        .collect();
    assert_eq!(
        path,
        [
            ("closed", "open", "consecutive_failures"),
            ("open", "half_open", "recovery_timeout"),
            ("half_open", "closed", "trials_succeeded")
        ]
    );
    // The half-open transition is dated when the timeout ended, not when it was seen.
    let at = |i: usize| rfc3339_ms(r["transitions"][i]["at"].as_str().expect("at"));
    assert_eq!(at(1) - at(0), 1000, "{}", r["transitions"]);
    assert_eq!(r["transitions"][0]["at"].as_str(), Some(opened_at.as_str()));
    assert_eq!(counters(&r), (5, 3, 0));
}

/// Milliseconds of the day from `...THH:MM:SS.mmmZ` (enough to subtract two times in a test).
fn rfc3339_ms(text: &str) -> u64 {
    let time = &text[11..23];
    let n = |r: std::ops::Range<usize>| time[r].parse::<u64>().expect("digits");
    ((n(0..2) * 60 + n(3..5)) * 60 + n(6..8)) * 1000 + n(9..12)
}

#[test]
fn a_failed_trial_reopens() {
    let b = Breaker::new("db@primary:5432");
    let cfg = json!({"failure_threshold": 1, "recovery_timeout": 0.2});
    let mut args = cfg.clone();
    args["record"] = json!("failure");
    assert_eq!(b.run(args.clone()).ok()["state"], json!("open"));
    thread::sleep(Duration::from_millis(250));
    let r = b.run(args).ok();
    assert_eq!(
        (r["state"].as_str(), r["previous_state"].as_str()),
        (Some("open"), Some("open"))
    );
    let causes: Vec<&Value> = r["transitions"]
        .as_array()
        .expect("list")
        .iter()
        .map(|t| &t["cause"])
        .collect();
    assert_eq!(
        causes,
        [
            &json!("consecutive_failures"),
            &json!("recovery_timeout"),
            &json!("trial_failed")
        ]
    );
}

#[test]
fn set_states_are_idempotent() {
    let b = Breaker::new("api");
    for (state, first_changed) in [
        ("closed", true),
        ("closed", false),
        ("open", true),
        ("open", false),
        ("reset", true),
        ("reset", false),
    ] {
        let r = b.run(json!({"state": state})).ok();
        assert_eq!(r["changed"], json!(first_changed), "state {state}: {r}");
        let expected = if state == "open" { "open" } else { "closed" };
        assert_eq!(r["state"], json!(expected));
    }
    // reset clears the totals too; closed keeps them.
    for _ in 0..2 {
        b.run(json!({"record": "failure"})).ok();
    }
    assert_eq!(counters(&b.run(json!({"state": "closed"})).ok()), (2, 2, 2));
    let r = b.run(json!({"state": "reset"})).ok();
    assert_eq!((counters(&r), r["changed"].clone()), ((0, 0, 0), json!(true)));
}

#[test]
fn check_mode_predicts_and_writes_nothing() {
    let b = Breaker::new("web");
    for _ in 0..4 {
        b.run(json!({"record": "failure"})).ok();
    }
    let before = fs::read(b.file()).expect("state file");
    let mtime = fs::metadata(b.file()).and_then(|m| m.modified()).expect("mtime");

    let r = b
        .run(json!({"record": "failure", "_ansible_check_mode": true, "_ansible_diff": true}))
        .ok();
    assert_eq!(
        (r["changed"].as_bool(), r["state"].as_str()),
        (Some(true), Some("open")),
        "{r}"
    );
    assert_eq!(r["diff"]["before"]["state"], json!("closed"));
    assert_eq!(r["diff"]["after"]["state"], json!("open"));
    assert_eq!(r["diff"]["before"]["counters"]["failures"], json!(4));
    assert_eq!(r["diff"]["after"]["counters"]["failures"], json!(5));
    assert_eq!(r["diff"]["before_header"], json!(b.file().display().to_string()));
    for state in ["open", "reset"] {
        let r = b.run(json!({"state": state, "_ansible_check_mode": true})).ok();
        assert_eq!(r["changed"], json!(true), "{state}: {r}");
    }
    let r = b.run(json!({"state": "closed", "_ansible_check_mode": true})).ok();
    assert_eq!(r["changed"], json!(false), "already closed: {r}");

    assert_eq!(fs::read(b.file()).expect("state file"), before);
    assert_eq!(fs::metadata(b.file()).and_then(|m| m.modified()).expect("mtime"), mtime);

    // On a breaker that does not exist, check mode creates no directory either.
    let fresh = Breaker::new("new");
    let r = fresh.run(json!({"state": "open", "_ansible_check_mode": true})).ok();
    assert_eq!(
        (r["changed"].as_bool(), r["state"].as_str()),
        (Some(true), Some("open"))
    );
    assert!(!fresh.state_dir().exists());
}

#[test]
fn diff_of_a_real_change() {
    let b = Breaker::new("web");
    let r = b.run(json!({"state": "open", "_ansible_diff": true})).ok();
    assert_eq!(r["diff"]["before"], json!({}), "the breaker did not exist: {r}");
    assert_eq!(r["diff"]["after"]["state"], json!("open"));
    let r = b.run(json!({"_ansible_diff": true})).ok();
    assert_eq!(r["diff"]["before"], r["diff"]["after"], "a query changes nothing");
    assert!(b.run(json!({})).ok().get("diff").is_none(), "no diff unless asked");
}

#[test]
fn windows_and_slow_calls() {
    let b = Breaker::new("search");
    let cfg = json!({"failure_threshold": 0, "sliding_window_type": "count", "sliding_window_size": 4,
                     "minimum_number_of_calls": 4, "failure_rate_threshold": 100,
                     "slow_call_duration_threshold": 0.5, "slow_call_rate_threshold": 75});
    let call = |record: &str, duration: f64| {
        let mut args = cfg.clone();
        args["record"] = json!(record);
        args["duration"] = json!(duration);
        b.run(args).ok()
    };
    call("success", 0.5);
    call("success", 0.6);
    call("failure", 0.9);
    let r = call("success", 0.7);
    assert_eq!(r["state"], json!("open"), "{r}");
    assert_eq!(
        r["counters"]["window_calls"],
        json!(0),
        "a transition starts a new window"
    );
    assert_eq!(r["counters"]["slow_calls"], json!(3));
    assert_eq!(
        r["transitions"][0]["reason"],
        json!("slow-call rate 75% (calls over 0.5 s) of the last 4 calls reached slow_call_rate_threshold 75%")
    );
    assert_eq!(r["config"]["sliding_window_type"], json!("count"));
    assert_eq!(r["config"]["slow_call_duration_threshold"], json!(0.5));
}

#[test]
fn adhoc_strings_are_coerced() {
    // `ansible -a 'name=web record=failure failure_threshold=1 duration=0.5'` sends strings.
    let b = Breaker::new("web");
    let r = b
        .run(json!({"record": "failure", "failure_threshold": "1", "recovery_timeout": "30", "duration": "0.5"}))
        .ok();
    assert_eq!(r["state"], json!("open"));
    assert_eq!(r["invocation"]["module_args"]["failure_threshold"], json!(1));
    assert_eq!(r["config"]["recovery_timeout"], json!(30.0));
}

#[test]
fn bad_input_is_named() {
    let b = Breaker::new("web");
    let cases = [
        (json!({"state": "half_open"}), "state: 'half_open' is not one of 'query', 'closed', 'open', 'reset'"),
        (json!({"record": "maybe"}), "record: 'maybe' is not one of 'success', 'failure'"),
        (json!({"failure_threshold": -1}), "failure_threshold: -1 is out of range 0-1000000"),
        (json!({"recovery_timeout": -5}), "recovery_timeout: -5 is out of range 0-31536000"),
        (json!({"half_open_max_calls": 0}), "half_open_max_calls: 0 is out of range 1-1000000"),
        (json!({"failure_rate_threshold": 150, "sliding_window_type": "count"}), "failure_rate_threshold: 150 is out of range 0-100"),
        (json!({"failure_threshold": "many"}), "failure_threshold: 'many' is not a valid int"),
        (json!({"state": "open", "record": "failure"}), "record cannot be combined with state 'open'"),
        (json!({"duration": 2}), "duration is the duration of a recorded call: it needs record"),
        (
            json!({"failure_rate_threshold": 20, "sliding_window_size": 5}),
            "sliding_window_size, failure_rate_threshold only apply to a sliding window: set sliding_window_type to count or time",
        ),
        (
            json!({"sliding_window_type": "time", "slow_call_rate_threshold": 50}),
            "slow_call_rate_threshold needs slow_call_duration_threshold",
        ),
        (
            json!({"success_threshold": 4}),
            "success_threshold 4 is more than half_open_max_calls 3: the trial calls could never close the breaker",
        ),
        (json!({"failure_threshold": 0}), "failure_threshold 0 turns the consecutive-failure rule off"),
        (
            json!({"sliding_window_type": "count", "failure_rate_threshold": 0}),
            "failure_rate_threshold is 0; a rate must be above 0 and at most 100 (percent)",
        ),
        (json!({"state_dir": "relative/dir"}), "state_dir: 'relative/dir' is not an absolute path"),
        (json!({"stat": "open"}), "unknown option 'stat'; did you mean 'state'?"),
    ];
    for (args, msg) in cases {
        b.run(args).failed(msg);
    }
    // A name that would leave the state directory.
    let r = run_in(
        b.dir.path(),
        &json!({"name": "../etc/passwd", "state": "open", "state_dir": b.state_dir()}),
    );
    r.failed("name: invalid name '../etc/passwd': '/' is not allowed");
    run_in(b.dir.path(), &json!({"name": ".hidden", "state_dir": b.state_dir()}))
        .failed("name: invalid name '.hidden'");
    run_in(b.dir.path(), &json!({"state_dir": b.state_dir()})).failed("name: missing required option");
    assert!(!b.state_dir().exists(), "bad input writes nothing");
    // Every problem at once.
    let r = b
        .run(json!({"record": "failure", "state": "reset", "duration": 1, "success_threshold": 9}))
        .failed("; ");
    assert_eq!(r["problems"].as_array().map(Vec::len), Some(2), "{r}");
}

#[test]
fn an_unusable_state_file_is_moved_aside_and_reported() {
    let b = Breaker::new("web");
    b.run(json!({"record": "failure"})).ok();
    fs::write(
        b.file(),
        "{\"kind\": \"circuit_breaker\", \"version\": 1, \"state\": \"ajar\"",
    )
    .expect("corrupt it");

    // Check mode: a warning, a prediction from scratch, the file left alone.
    let r = b.run(json!({"record": "failure", "_ansible_check_mode": true})).ok();
    let warning = r["warnings"][0].as_str().unwrap_or_default().to_string();
    assert!(
        warning.contains(&format!(
            "state file '{}' is unusable: not JSON: EOF",
            b.file().display()
        )),
        "{r}"
    );
    assert!(
        warning.ends_with("it would be moved aside and the breaker started afresh"),
        "{warning}"
    );
    assert_eq!(counters(&r), (1, 1, 1));
    assert!(b.file().exists());

    let r = b.run(json!({"record": "failure"})).ok();
    let warning = r["warnings"][0].as_str().unwrap_or_default();
    assert!(
        warning.contains("; moved aside to '") && warning.ends_with("the breaker starts afresh"),
        "{r}"
    );
    assert_eq!((counters(&r), r["changed"].clone()), ((1, 1, 1), json!(true)));
    let aside: Vec<String> = fs::read_dir(b.file().parent().expect("dir"))
        .expect("ls")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.starts_with("web.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");

    // A foreign file: a query moves it aside too, and says so.
    fs::write(b.file(), "{\"kind\": \"service_recovery\", \"version\": 1}").expect("foreign");
    let r = b.run(json!({})).ok();
    assert_eq!(r["changed"], json!(true));
    assert!(
        r["warnings"][0]
            .as_str()
            .unwrap_or_default()
            .contains("its kind is \"service_recovery\", not 'circuit_breaker'"),
        "{r}"
    );
    assert!(!b.file().exists());
}

#[test]
fn parallel_runs_lose_no_update() {
    let b = Breaker::new("shared");
    let args = json!({"name": "shared", "state_dir": b.state_dir(), "record": "failure"});
    let started = Instant::now();
    let threads: Vec<_> = (0..20)
        .map(|_| {
            let (dir, args) = (b.dir.path().to_path_buf(), args.clone());
            thread::spawn(move || {
                for _ in 0..10 {
                    run_in(&dir, &args).ok();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let elapsed = started.elapsed();
    let r = b.run(json!({})).ok();
    assert_eq!(r["counters"]["failures"], json!(200), "{r}");
    assert_eq!(r["state"], json!("open"));
    eprintln!("20 parallel writers x 10 runs of the binary: {elapsed:?}");
}

/// A small xorshift generator: the test needs varied delays, not good randomness.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// The state file must parse as a breaker whenever it exists; returns its failure count.
fn failures_on_disk(path: &Path) -> Option<u64> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
        Err(e) => panic!("{}: {e}", path.display()),
    };
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("torn state file ({e}): {text:?}"));
    assert_eq!(
        (v["kind"].as_str(), v["version"].as_u64()),
        (Some("circuit_breaker"), Some(1)),
        "{text}"
    );
    Some(
        v["totals"]["failures"]
            .as_u64()
            .unwrap_or_else(|| panic!("no totals.failures: {text}")),
    )
}

#[test]
fn sigkill_at_random_moments_loses_no_acknowledged_update() {
    let b = Breaker::new("torture");
    let args_file = b.dir.path().join("args");
    fs::write(
        &args_file,
        json!({"name": "torture", "state_dir": b.state_dir(), "record": "failure"}).to_string(),
    )
    .expect("args");
    let spawn = || {
        Command::new(BIN)
            .arg(&args_file)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn")
    };

    // How long one run takes here, so that the kills land anywhere in it.
    let calibration = Instant::now();
    for _ in 0..10 {
        assert!(spawn().wait_with_output().expect("wait").status.success());
    }
    let mut acknowledged: u64 = 10;
    let run_us = (calibration.elapsed().as_micros() / 10).max(100) as u64;

    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1;
    let mut rng = Rng(seed);
    let tmp = b.state_dir().join("circuit_breaker/.torture.tmp");
    let (mut kills, mut runs, mut mid_write) = (0u64, 0u64, 0u64);
    let started = Instant::now();
    while kills < 500 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "too slow: {kills} kills in 60 s"
        );
        let tmp_before = tmp.exists();
        let mut child = spawn();
        thread::sleep(Duration::from_micros(rng.below(run_us * 3 / 2)));
        let _ = child.kill(); // SIGKILL; a no-op when the run is already over
        let out = child.wait_with_output().expect("wait");
        runs += 1;
        if out.status.signal() == Some(Signal::SIGKILL as i32) {
            kills += 1;
            // Killed between creating the temporary file and renaming it into place (a
            // lower bound: a temporary file left by an earlier kill hides a new one).
            mid_write += u64::from(!tmp_before && tmp.exists());
        }
        // Acknowledged: the module printed its whole result (it may still have been killed
        // after that, before exiting).
        if let Ok(result) = serde_json::from_slice::<Value>(&out.stdout) {
            assert!(result.get("failed").is_none(), "{result}");
            acknowledged += 1;
        }
        failures_on_disk(&b.file());
    }
    let elapsed = started.elapsed();
    let count = failures_on_disk(&b.file()).expect("the state file exists");
    eprintln!(
        "SIGKILL loop: {runs} runs, {kills} killed ({mid_write} mid-write), {acknowledged} acknowledged, {count} on disk, {elapsed:?} (one run ~{run_us} us, seed {seed})"
    );
    assert!(
        acknowledged <= count && count <= acknowledged + kills,
        "acknowledged {acknowledged}, on disk {count}, kills {kills} (seed {seed})"
    );
    assert!(
        mid_write > 0,
        "no kill landed while a state file was being written (seed {seed})"
    );
    // The store is still usable afterwards.
    let r = b.run(json!({"record": "failure"})).ok();
    assert_eq!(r["counters"]["failures"], json!(count + 1));
    assert!(r.get("warnings").is_none(), "{r}");
}

/// One run of the module with `args` through `sh`, with umask `umask`, killed (and the test
/// failed) if it has not ended within 10 seconds: a state file that hangs the module must
/// fail the test, not hang it.
fn run_bounded(dir: &Path, args: &Value, umask: &str) -> (Run, Duration) {
    let file = dir.join(format!("args-{}", std::process::id()));
    fs::write(&file, args.to_string()).expect("write args");
    let started = Instant::now();
    let mut child = Command::new("sh")
        .args(["-c", "umask \"$1\" && exec \"$2\" \"$3\"", "sh", umask, BIN])
        .arg(&file)
        .stdout(Stdio::piped())
        .spawn()
        .expect("run module");
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > Duration::from_secs(10) {
            child.kill().expect("kill");
            child.wait().expect("reap");
            panic!("circuit_breaker did not end within 10 s: {args}");
        }
        thread::sleep(Duration::from_millis(20));
    }
    let elapsed = started.elapsed();
    let out = child.wait_with_output().expect("output");
    let stdout = String::from_utf8(out.stdout).expect("UTF-8");
    assert_eq!(stdout.lines().count(), 1, "one line of JSON: {stdout:?}");
    let run = Run {
        code: out.status.code().unwrap_or(-1),
        result: serde_json::from_str(&stdout).expect("JSON"),
    };
    (run, elapsed)
}

/// A FIFO in place of the state file or its lock file: refused at once, by path, in check
/// mode (a read) and in a real run (an update) alike, and left where it was.
#[test]
fn a_fifo_state_or_lock_file_fails_at_once_naming_it() {
    for planted in ["json", "lock"] {
        let b = Breaker::new("web");
        let fifo = b.state_dir().join(format!("circuit_breaker/web.{planted}"));
        fs::create_dir_all(fifo.parent().expect("parent")).expect("mkdir");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
        for extra in [
            json!({"_ansible_check_mode": true, "record": "failure"}),
            json!({}),
            json!({"record": "failure"}),
        ] {
            let mut args = json!({"name": b.name, "state_dir": b.state_dir()});
            args.as_object_mut()
                .expect("object")
                .extend(extra.as_object().cloned().unwrap_or_default());
            let (run, elapsed) = run_bounded(b.dir.path(), &args, "022");
            run.failed(&format!("'{}' is a FIFO, not a regular file", fifo.display()));
            assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
        }
        let kind = fs::symlink_metadata(&fifo).expect("still there").file_type();
        assert!(std::os::unix::fs::FileTypeExt::is_fifo(&kind));
    }
}

/// What the module creates is private whatever the umask: directories 0700, files 0600.
#[test]
fn state_is_created_private_under_any_umask() {
    use std::os::unix::fs::MetadataExt;
    for umask in ["022", "000"] {
        let b = Breaker::new("web");
        let args = json!({"name": b.name, "state_dir": b.state_dir(), "record": "failure"});
        run_bounded(b.dir.path(), &args, umask).0.ok();
        let mode = |p: &Path| fs::symlink_metadata(p).expect("stat").mode() & 0o7777;
        let kind_dir = b.state_dir().join("circuit_breaker");
        assert_eq!([mode(&b.state_dir()), mode(&kind_dir)], [0o700, 0o700], "umask {umask}");
        assert_eq!(
            [mode(&b.file()), mode(&kind_dir.join("web.lock"))],
            [0o600, 0o600],
            "umask {umask}"
        );
    }
}

/// A world-writable state directory is refused, named, before anything is written in it.
#[test]
fn an_unsafe_state_dir_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let b = Breaker::new("web");
    fs::create_dir(b.state_dir()).expect("mkdir");
    fs::set_permissions(b.state_dir(), fs::Permissions::from_mode(0o777)).expect("chmod");
    for extra in [json!({"_ansible_check_mode": true}), json!({"record": "failure"})] {
        let mut args = json!({"name": b.name, "state_dir": b.state_dir()});
        args.as_object_mut()
            .expect("object")
            .extend(extra.as_object().cloned().unwrap_or_default());
        let (run, _) = run_bounded(b.dir.path(), &args, "022");
        run.failed(&format!(
            "unsafe state directory '{0}': '{0}' is writable by everyone (mode 0777)",
            b.state_dir().display()
        ));
    }
    assert_eq!(fs::read_dir(b.state_dir()).expect("ls").count(), 0);
}

/// A 2 GB (sparse) state file is refused unread, by path, in check mode and in a run.
#[test]
fn a_huge_state_file_fails_at_once_naming_it() {
    let b = Breaker::new("web");
    fs::create_dir_all(b.file().parent().expect("parent")).expect("mkdir");
    fs::File::create(b.file())
        .expect("create")
        .set_len(2 << 30)
        .expect("sparse");
    for extra in [json!({"_ansible_check_mode": true}), json!({"record": "failure"})] {
        let mut args = json!({"name": b.name, "state_dir": b.state_dir()});
        args.as_object_mut()
            .expect("object")
            .extend(extra.as_object().cloned().unwrap_or_default());
        let (run, elapsed) = run_bounded(b.dir.path(), &args, "022");
        run.failed(&format!(
            "'{}' is larger than 33554432 bytes (2147483648 bytes)",
            b.file().display()
        ));
        assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    }
    assert_eq!(fs::metadata(b.file()).expect("left").len(), 2 << 30);
}

/// The audit records of the breaker's state directory: (action, target, state after).
fn audit_records(b: &Breaker) -> Vec<(String, String, String)> {
    let Ok(text) = fs::read_to_string(b.state_dir().join("audit/audit.jsonl")) else {
        return Vec::new();
    };
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("a record");
            assert_eq!(v["front_end"], json!("module"), "{v}");
            assert!(v["actor"]["user"].as_str().is_some_and(|u| !u.is_empty()), "{v}");
            (
                v["action"].as_str().unwrap_or_default().to_string(),
                v["target"].as_str().unwrap_or_default().to_string(),
                v["details"]["state"].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect()
}

#[test]
fn each_state_change_by_a_task_is_audited_never_in_check_mode() {
    let b = Breaker::new("api");
    let rec = |a: &str, s: &str| (a.to_string(), "api".to_string(), s.to_string());
    // Failures that leave it closed are no state change; the fifth opens it.
    for _ in 0..4 {
        b.run(json!({"record": "failure"})).ok();
    }
    assert_eq!(audit_records(&b), vec![]);
    b.run(json!({"record": "failure"})).ok();
    assert_eq!(audit_records(&b), vec![rec("circuit_breaker.open", "open")]);
    // Check mode predicts changes and appends nothing.
    b.run(json!({"state": "reset", "_ansible_check_mode": true})).ok();
    b.run(json!({"state": "closed", "_ansible_check_mode": true})).ok();
    assert_eq!(audit_records(&b).len(), 1);
    // Set states: a change each, an idempotent repeat nothing.
    b.run(json!({"state": "closed"})).ok();
    b.run(json!({"state": "closed"})).ok();
    b.run(json!({"state": "reset"})).ok();
    b.run(json!({})).ok();
    assert_eq!(
        audit_records(&b),
        vec![
            rec("circuit_breaker.open", "open"),
            rec("circuit_breaker.closed", "closed"),
            rec("circuit_breaker.reset", "closed"),
        ]
    );
    let report = reliability_os::audit::verify(&b.state_dir().join("audit")).expect("verify");
    assert!(report.ok, "{report:?}");
}
