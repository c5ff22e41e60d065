//! The state store on a real filesystem: concurrent updates lose nothing, unusable files are
//! moved aside and named, nothing is written when nothing changed, check-mode reads create
//! nothing, locks time out with the path named, and JSON-lines logs survive torn lines.
//! (Writers killed with SIGKILL are in `reliability-modules/tests/circuit_breaker.rs`,
//! driving the real module binary.)

use nix::fcntl::{Flock, FlockArg};
use reliability_os::state::{append_jsonl, Record, StateError, Store};
use serde::{Deserialize, Serialize};
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

#[derive(Debug, Default, PartialEq, Serialize, Deserialize)]
struct Counter {
    n: u64,
}

impl Record for Counter {
    const KIND: &'static str = "test_counter";
    const VERSION: u32 = 1;
}

fn bump(store: &Store, name: &str) -> Result<Counter, StateError> {
    store.update(name, |c: Option<Counter>| {
        Ok(Counter {
            n: c.unwrap_or_default().n + 1,
        })
    })
}

#[test]
fn parallel_updates_lose_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Arc::new(Store::new(dir.path()));
    let started = Instant::now();
    let threads: Vec<_> = (0..20)
        .map(|_| {
            let store = Arc::clone(&store);
            thread::spawn(move || {
                for _ in 0..100 {
                    bump(&store, "shared").expect("update");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let elapsed = started.elapsed();
    assert_eq!(
        store.load::<Counter>("shared").expect("load"),
        Some(Counter { n: 2000 })
    );
    eprintln!("20 threads x 100 locked, fsynced updates: {elapsed:?}");
    // Only the state file and its lock file: no temporary file is left behind.
    let mut names: Vec<String> = fs::read_dir(dir.path().join("test_counter"))
        .expect("read_dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, ["shared.json", "shared.lock"]);
}

#[test]
fn the_file_is_readable_json_with_kind_and_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::new(dir.path());
    bump(&store, "web").expect("update");
    let path = store.path::<Counter>("web").expect("path");
    assert_eq!(path, dir.path().join("test_counter/web.json"));
    let text = fs::read_to_string(&path).expect("read");
    let value: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(value, serde_json::json!({"kind": "test_counter", "version": 1, "n": 1}));
    assert!(text.ends_with("}\n"), "{text:?}");
}

#[test]
fn nothing_is_written_when_nothing_changes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::new(dir.path());
    bump(&store, "web").expect("update");
    let path = store.path::<Counter>("web").expect("path");
    let before = fs::metadata(&path).expect("stat");
    let same = store
        .update("web", |c: Option<Counter>| Ok::<_, StateError>(c.unwrap_or_default()))
        .expect("update");
    assert_eq!(same, Counter { n: 1 });
    let after = fs::metadata(&path).expect("stat");
    // An atomic write is a new inode; the same inode means no write happened.
    assert_eq!((before.ino(), before.mtime_nsec()), (after.ino(), after.mtime_nsec()));
}

#[test]
fn load_creates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("not-yet");
    let store = Store::new(&root);
    assert_eq!(store.load::<Counter>("web").expect("load"), None);
    assert!(!root.exists(), "check mode must not create the state directory");
}

fn write_state(store: &Store, name: &str, text: &str) -> std::path::PathBuf {
    let path = store.path::<Counter>(name).expect("path");
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    fs::write(&path, text).expect("write");
    path
}

/// Every kind of unusable file: `load` names it and leaves it; `update` moves it aside
/// without calling the closure; the update after that starts afresh.
#[test]
fn unusable_files_are_moved_aside_and_named() {
    let cases = [
        (
            "{\"kind\": \"test_counter\", \"version\": 1, \"n\": 4",
            "not JSON: EOF while parsing an object at line 1 column 45",
        ),
        ("", "not JSON: EOF while parsing a value at line 1 column 0"),
        ("[1, 2]", "not a JSON object"),
        ("{\"n\": 4}", "it has no 'kind' (expected 'test_counter')"),
        (
            "{\"kind\": \"circuit_breaker\", \"version\": 1}",
            "its kind is \"circuit_breaker\", not 'test_counter'",
        ),
        (
            "{\"kind\": \"test_counter\", \"version\": 2, \"n\": 4}",
            "it is version 2; this code reads version 1",
        ),
        (
            "{\"kind\": \"test_counter\", \"version\": 1, \"n\": -4}",
            "not a valid test_counter state: invalid value: integer `-4`, expected u64",
        ),
    ];
    for (text, problem) in cases {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Store::new(dir.path());
        let path = write_state(&store, "web", text);

        let err = store.load::<Counter>("web").expect_err(text);
        assert_eq!(
            err.to_string(),
            format!("state file '{}' is unusable: {problem}", path.display())
        );
        assert_eq!(fs::read_to_string(&path).expect("still there"), text);

        let mut called = false;
        let err = store
            .update("web", |_: Option<Counter>| {
                called = true;
                Ok::<_, StateError>(Counter::default())
            })
            .expect_err(text);
        assert!(!called, "the closure must not see a corrupt file");
        let StateError::Corrupt {
            moved_to: Some(moved), ..
        } = &err
        else {
            panic!("expected Corrupt with moved_to: {err:?}")
        };
        assert_eq!(
            err.to_string(),
            format!(
                "state file '{}' is unusable: {problem}; moved aside to '{}'",
                path.display(),
                moved.display()
            )
        );
        let moved_name = moved.file_name().expect("name").to_string_lossy().into_owned();
        assert!(moved_name.starts_with("web.corrupt-20"), "{moved_name}");
        assert_eq!(fs::read_to_string(moved).expect("moved file"), text, "kept as it was");
        assert!(!path.exists());
        assert_eq!(bump(&store, "web").expect("fresh start"), Counter { n: 1 });
    }
}

#[test]
fn quarantine_moves_only_unusable_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::new(dir.path());
    assert_eq!(store.quarantine::<Counter>("web").expect("missing"), None);
    bump(&store, "web").expect("update");
    assert_eq!(store.quarantine::<Counter>("web").expect("fine"), None);
    let path = write_state(&store, "web", "garbage");
    let moved = store.quarantine::<Counter>("web").expect("corrupt").expect("moved");
    assert!(!path.exists() && moved.exists());
    // Two corruptions within the same millisecond do not overwrite each other.
    write_state(&store, "web", "garbage 2");
    let again = store.quarantine::<Counter>("web").expect("corrupt").expect("moved");
    assert_ne!(moved, again);
}

#[test]
fn a_torn_temporary_file_is_harmless() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::new(dir.path());
    bump(&store, "web").expect("update");
    // What a writer killed mid-write leaves: a partial temporary file.
    fs::write(dir.path().join("test_counter/.web.tmp"), "{\"kind\": \"test_cou").expect("write");
    assert_eq!(store.load::<Counter>("web").expect("load"), Some(Counter { n: 1 }));
    assert_eq!(bump(&store, "web").expect("update"), Counter { n: 2 });
    assert!(!dir.path().join("test_counter/.web.tmp").exists(), "renamed into place");
}

#[test]
fn bad_names_touch_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::new(dir.path().join("state"));
    for name in ["../etc/passwd", "a/b", ".hidden", "", "web.json\0"] {
        let err = bump(&store, name).expect_err(name);
        assert!(matches!(err, StateError::InvalidName { .. }), "{err:?}");
        assert!(store.load::<Counter>(name).is_err());
    }
    assert!(!dir.path().join("state").exists());
}

#[test]
fn a_held_lock_times_out_naming_the_lock_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::new(dir.path()).with_lock_timeout(Duration::from_millis(200));
    bump(&store, "web").expect("update");
    let lock_path = dir.path().join("test_counter/web.lock");
    let held = Flock::lock(fs::File::open(&lock_path).expect("open"), FlockArg::LockExclusive).expect("lock");
    let started = Instant::now();
    let err = bump(&store, "web").expect_err("locked");
    let waited = started.elapsed();
    assert_eq!(
        err.to_string(),
        format!(
            "could not lock '{}' within 0.2 s: another process holds it",
            lock_path.display()
        )
    );
    assert!(
        waited >= Duration::from_millis(200) && waited < Duration::from_secs(2),
        "{waited:?}"
    );
    // Readers wait for a writer too.
    assert!(matches!(
        store.load::<Counter>("web"),
        Err(StateError::LockTimeout { .. })
    ));
    drop(held);
    assert_eq!(bump(&store, "web").expect("update"), Counter { n: 2 });
}

#[test]
fn a_lock_is_released_when_its_holder_dies() {
    // flock belongs to the open file: a killed process cannot leave a stale lock.
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::new(dir.path()).with_lock_timeout(Duration::from_secs(5));
    bump(&store, "web").expect("update");
    let lock_path = dir.path().join("test_counter/web.lock");
    // `-F`: flock(1) execs the command itself, so the lock dies with the process killed.
    let mut holder = std::process::Command::new("flock")
        .arg("-F")
        .arg(&lock_path)
        .args(["sleep", "60"])
        .spawn()
        .expect("flock(1) from util-linux");
    thread::sleep(Duration::from_millis(200));
    let blocked = Store::new(dir.path()).with_lock_timeout(Duration::from_millis(50));
    assert!(matches!(bump(&blocked, "web"), Err(StateError::LockTimeout { .. })));
    holder.kill().expect("kill");
    holder.wait().expect("wait");
    assert_eq!(bump(&store, "web").expect("update"), Counter { n: 2 });
}

fn lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path)
        .expect("read")
        .lines()
        .map(String::from)
        .collect()
}

#[test]
fn jsonl_appends_from_threads_are_whole_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Arc::new(dir.path().join("incidents.jsonl"));
    let threads: Vec<_> = (0..10)
        .map(|t| {
            let log = Arc::clone(&log);
            thread::spawn(move || {
                for i in 0..50 {
                    append_jsonl(&log, &serde_json::json!({"thread": t, "i": i, "pad": "x".repeat(500)}))
                        .expect("append");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    let all = lines(&log);
    assert_eq!(all.len(), 500);
    for line in &all {
        let v: serde_json::Value = serde_json::from_str(line).expect("each line is one object");
        assert!(v["thread"].is_u64());
    }
}

#[test]
fn jsonl_a_torn_last_line_stays_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("incidents.jsonl");
    append_jsonl(&log, &serde_json::json!({"n": 1})).expect("append");
    // A writer killed mid-line.
    let mut text = fs::read_to_string(&log).expect("read");
    text.push_str("{\"n\": 2, \"unfini");
    fs::write(&log, text).expect("write");
    append_jsonl(&log, &serde_json::json!({"n": 3})).expect("append");
    assert_eq!(lines(&log), ["{\"n\":1}", "{\"n\": 2, \"unfini", "{\"n\":3}"]);
    let err = append_jsonl(&dir.path().join("missing/x.jsonl"), &1).expect_err("no directory");
    assert!(err.to_string().starts_with("cannot open '"), "{err}");
}
