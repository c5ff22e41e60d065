//! The state store on a real filesystem: concurrent updates lose nothing, unusable files are
//! moved aside and named, nothing is written when nothing changed, check-mode reads create
//! nothing, locks time out with the path named, and JSON-lines logs survive torn lines.
//! Nothing hostile is trusted: FIFOs, huge files and planted links in place of state or lock
//! files are refused at once and named, unsafe directories are refused, and what the store
//! creates is private.
//! (Writers killed with SIGKILL are in `reliability-modules/tests/circuit_breaker.rs`,
//! driving the real module binary.)

use nix::fcntl::{Flock, FlockArg};
use reliability_os::state::{append_jsonl, Record, StateError, Store};
use serde::{Deserialize, Serialize};
use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
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
    assert!(err.to_string().contains("missing/x.jsonl' does not exist"), "{err}");
}

/// Runs `f` on a thread and fails the test when it has not returned within `limit`: a
/// store that hangs on a FIFO must fail the test, not hang it.
fn within<T: Send + 'static>(limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("did not return within {limit:?}"))
}

fn mkfifo(path: &Path) {
    fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
}

/// `load` (check mode) and `update` on `name`, each within two seconds, as errors.
fn both_refuse(store: &Store, name: &'static str) -> [String; 2] {
    let s = store.clone();
    let loaded = within(Duration::from_secs(2), move || s.load::<Counter>(name).map(drop));
    let s = store.clone();
    let updated = within(Duration::from_secs(2), move || bump(&s, name).map(drop));
    [
        loaded.expect_err("load refuses").to_string(),
        updated.expect_err("update refuses").to_string(),
    ]
}

#[test]
fn a_fifo_state_file_is_refused_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::new(dir.path());
    let path = store.path::<Counter>("web").expect("path");
    mkfifo(&path);
    for err in both_refuse(&store, "web") {
        assert_eq!(err, format!("'{}' is a FIFO, not a regular file", path.display()));
    }
    assert!(fs::symlink_metadata(&path).expect("still there").file_type().is_fifo());
}

#[test]
fn a_fifo_lock_file_is_refused_at_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::new(dir.path());
    let lock = dir.path().join("test_counter/web.lock");
    mkfifo(&lock);
    for err in both_refuse(&store, "web") {
        assert_eq!(err, format!("'{}' is a FIFO, not a regular file", lock.display()));
    }
}

#[test]
fn a_huge_state_file_is_refused_unread() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::new(dir.path());
    let path = write_state(&store, "web", "");
    fs::File::options()
        .write(true)
        .open(&path)
        .expect("open")
        .set_len(2 << 30)
        .expect("sparse 2 GB");
    let started = Instant::now();
    for err in both_refuse(&store, "web") {
        assert_eq!(
            err,
            format!("'{}' is larger than 33554432 bytes (2147483648 bytes)", path.display())
        );
    }
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    assert_eq!(fs::metadata(&path).expect("left").len(), 2 << 30);
}

#[test]
fn planted_links_are_refused_and_their_targets_untouched() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::new(dir.path().join("state"));
    bump(&store, "seed").expect("the kind directory exists");
    let victim = dir.path().join("victim");
    fs::write(&victim, "precious\n").expect("write");
    // The state file.
    let path = store.path::<Counter>("web").expect("path");
    std::os::unix::fs::symlink(&victim, &path).expect("symlink");
    for err in both_refuse(&store, "web") {
        assert_eq!(
            err,
            format!("'{}' is a symbolic link, which is never followed here", path.display())
        );
    }
    assert_eq!(fs::read_to_string(&victim).expect("victim"), "precious\n");
    // The lock file, pointing at an existing file and at one that does not exist yet.
    let lock = dir.path().join("state/test_counter/db.lock");
    std::os::unix::fs::symlink(&victim, &lock).expect("symlink");
    let err = bump(&store, "db").expect_err("a linked lock");
    assert_eq!(
        err.to_string(),
        format!("'{}' is a symbolic link, which is never followed here", lock.display())
    );
    let lock = dir.path().join("state/test_counter/mq.lock");
    let absent = dir.path().join("created-through-a-link");
    std::os::unix::fs::symlink(&absent, &lock).expect("symlink");
    assert!(bump(&store, "mq").is_err());
    assert!(!absent.exists(), "nothing created through the link");
    assert_eq!(fs::read_to_string(&victim).expect("victim"), "precious\n");
    // The kind directory.
    let elsewhere = tempfile::tempdir().expect("tempdir");
    let other = Store::new(dir.path().join("other"));
    fs::create_dir(dir.path().join("other")).expect("mkdir");
    std::os::unix::fs::symlink(elsewhere.path(), dir.path().join("other/test_counter")).expect("symlink");
    let err = bump(&other, "web").expect_err("a linked kind directory");
    assert!(
        err.to_string().contains(&format!(
            "'{}' is a symbolic link, which is never followed inside a state directory",
            dir.path().join("other/test_counter").display()
        )),
        "{err}"
    );
    assert_eq!(fs::read_dir(elsewhere.path()).expect("ls").count(), 0);
}

fn chmod(path: &Path, mode: u32) {
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).expect("chmod");
}

#[test]
fn directories_others_can_write_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("state");
    fs::create_dir(&root).expect("mkdir");
    let store = Store::new(&root);
    let unsafe_msg = |path: &Path, problem: &str| {
        format!(
            "unsafe state directory '{}': '{}' {problem}; state directories and the directories above them must be owned by root or uid {}, and not writable by others (above the state directory: unless sticky)",
            root.display(),
            path.display(),
            nix::unistd::geteuid()
        )
    };
    for (mode, problem) in [
        (0o777, "is writable by everyone (mode 0777)"),
        (0o1777, "is writable by everyone (mode 1777)"),
        (0o770, "is writable by its group (mode 0770)"),
    ] {
        chmod(&root, mode);
        for err in both_refuse(&store, "web") {
            assert_eq!(err, unsafe_msg(&root, problem));
        }
        assert_eq!(fs::read_dir(&root).expect("ls").count(), 0, "nothing created");
    }
    chmod(&root, 0o700);
    bump(&store, "web").expect("a private directory is fine");
    // A kind directory.
    chmod(&root.join("test_counter"), 0o757);
    assert_eq!(
        bump(&store, "web").expect_err("kind").to_string(),
        unsafe_msg(&root.join("test_counter"), "is writable by everyone (mode 0757)")
    );
    chmod(&root.join("test_counter"), 0o700);
    // An ancestor: sticky (like /tmp) is fine, otherwise not.
    chmod(dir.path(), 0o1777);
    bump(&store, "web").expect("a sticky ancestor is fine");
    chmod(dir.path(), 0o777);
    assert_eq!(
        bump(&store, "web").expect_err("ancestor").to_string(),
        unsafe_msg(dir.path(), "is writable by everyone (mode 0777)")
    );
    // Reached through a link: the directory it leads to is checked.
    chmod(dir.path(), 0o700);
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&root, &link).expect("symlink");
    chmod(&root, 0o777);
    let through = Store::new(&link);
    let err = bump(&through, "web").expect_err("through a link");
    assert!(
        err.to_string()
            .contains(&format!("'{}' is writable by everyone", root.display())),
        "{err}"
    );
    chmod(&root, 0o700);
    assert_eq!(bump(&through, "web").expect("fine").n, 3);
}

/// A test that needs root: skipped with a reason when not root, unless
/// `HX_REQUIRE_PRIVILEGED=1` makes that a failure.
fn privileged(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    assert!(
        std::env::var("HX_REQUIRE_PRIVILEGED").as_deref() != Ok("1"),
        "{test} needs root (HX_REQUIRE_PRIVILEGED=1)"
    );
    eprintln!("SKIPPED {test}: needs root to chown");
    false
}

#[test]
fn directories_and_links_of_another_user_are_refused() {
    if !privileged("directories_and_links_of_another_user_are_refused") {
        return;
    }
    let nobody = nix::unistd::Uid::from_raw(65534);
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("state");
    fs::create_dir(&root).expect("mkdir");
    nix::unistd::chown(&root, Some(nobody), None).expect("chown");
    let store = Store::new(&root);
    for err in both_refuse(&store, "web") {
        assert!(
            err.starts_with(&format!(
                "unsafe state directory '{0}': '{0}' is owned by uid 65534;",
                root.display()
            )),
            "{err}"
        );
    }
    nix::unistd::chown(&root, Some(nix::unistd::geteuid()), None).expect("chown back");
    // A link on the way that another user owns (and so could point elsewhere).
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&root, &link).expect("symlink");
    nix::unistd::fchownat(
        nix::fcntl::AT_FDCWD,
        &link,
        Some(nobody),
        None,
        nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
    )
    .expect("lchown");
    let err = bump(&Store::new(&link), "web").expect_err("a foreign link");
    assert!(
        err.to_string()
            .contains(&format!("'{}' is a symbolic link owned by uid 65534", link.display())),
        "{err}"
    );
    bump(&store, "web").expect("the directory itself is fine again");
}

#[test]
fn what_the_store_creates_is_private() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("a/b");
    let store = Store::new(&root);
    bump(&store, "web").expect("update");
    let mode = |p: &Path| fs::symlink_metadata(p).expect("stat").mode() & 0o7777;
    for d in [dir.path().join("a"), root.clone(), root.join("test_counter")] {
        assert_eq!(mode(&d), 0o700, "{}", d.display());
    }
    for f in ["web.json", "web.lock"] {
        assert_eq!(mode(&root.join("test_counter").join(f)), 0o600, "{f}");
    }
    let log = root.join("incidents.jsonl");
    append_jsonl(&log, &1).expect("append");
    assert_eq!(mode(&log), 0o600);
}
