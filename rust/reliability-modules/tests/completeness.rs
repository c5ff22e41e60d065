//! `backup_verify` over time: time-boxed and sampled integrity runs that resume where they
//! stopped and cover every file exactly once per cycle (proved with inotify, from the files
//! the binary really opened, not from what it says), a damaged file found by the run that
//! reaches it and kept failing until repaired, check mode leaving the cursor alone, a
//! changed manifest restarting the cycle; and the `completeness` check over real files with
//! real modification times, copies on two tmpfs filesystems mounted by the test.

// The helpers too: a test that cannot set itself up should fail loudly.
#![allow(clippy::unwrap_used)]

#[path = "support/module.rs"]
mod module;
use module::{failed, strs};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

const VERIFY: &str = env!("CARGO_BIN_EXE_backup_verify");

fn run(args: &Value) -> Value {
    module::run(VERIFY, args)
}

/// A backup of `n` files of `size` bytes each (distinct contents) in `<dir>/data`, and its
/// manifest written by GNU `sha256sum` in `<dir>/SHA256SUMS` (outside the data, so opening
/// the manifest is not a data file opened). Returns the file names, sorted.
fn backup(dir: &Path, n: usize, size: usize) -> Vec<String> {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let names: Vec<String> = (0..n).map(|i| format!("f{i:03}.dat")).collect();
    for (i, name) in names.iter().enumerate() {
        let content: Vec<u8> = (0..size).map(|j| ((i * 31 + j * 7) % 251) as u8).collect();
        std::fs::write(data.join(name), content).unwrap();
    }
    write_manifest(dir, &names);
    names
}

fn write_manifest(dir: &Path, names: &[String]) {
    let o = Command::new("sha256sum")
        .args(names)
        .current_dir(dir.join("data"))
        .output()
        .unwrap();
    assert!(o.status.success(), "sha256sum: {}", String::from_utf8_lossy(&o.stderr));
    std::fs::write(dir.join("SHA256SUMS"), o.stdout).unwrap();
}

fn args(dir: &Path, extra: Value) -> Value {
    let mut a = json!({
        "manifest": dir.join("SHA256SUMS"),
        "root": dir.join("data"),
        "state_dir": dir.join("state"),
    });
    a.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    a
}

/// Watches a directory for files opened in it.
struct Opened(Inotify);

impl Opened {
    fn watch(dir: &Path) -> Opened {
        let ino = Inotify::init(InitFlags::IN_NONBLOCK).unwrap();
        ino.add_watch(dir, AddWatchFlags::IN_OPEN).unwrap();
        Opened(ino)
    }

    /// The names of the files opened since the last call, sorted: hashing threads open
    /// files in either order.
    fn take(&self) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            match self.0.read_events() {
                Ok(events) => out.extend(
                    events
                        .into_iter()
                        .filter(|e| !e.mask.contains(AddWatchFlags::IN_ISDIR))
                        .filter_map(|e| e.name.map(|n| n.to_string_lossy().into_owned())),
                ),
                Err(nix::errno::Errno::EAGAIN) => {
                    out.sort();
                    return out;
                }
                Err(e) => panic!("inotify: {e}"),
            }
        }
    }
}

fn integrity(r: &Value) -> &Value {
    &r["checks"]["integrity"]
}

#[test]
fn time_boxed_verification_resumes_and_covers_every_file_once_per_cycle() {
    let dir = tempfile::tempdir().unwrap();
    // 48 files of 1 MiB; a 5 ms box cuts a run after a few of them (10 MiB even at 2 GB/s).
    let names = backup(dir.path(), 48, 1 << 20);
    let opened = Opened::watch(&dir.path().join("data"));
    let a = args(dir.path(), json!({"max_duration": 0.005, "threads": 2}));
    let mut cycle: Vec<String> = Vec::new();
    let mut runs = 0;
    let mut cut = 0;
    let mut position = 0;
    loop {
        runs += 1;
        assert!(runs <= 200, "no full cycle after 200 runs; covered {}", cycle.len());
        let r = run(&a);
        assert!(!failed(&r), "{r}");
        let c = integrity(&r);
        let seen = opened.take();
        let verified = c["verified"].as_u64().unwrap() as usize;
        // What the binary opened is exactly the files it says it verified: the next ones
        // in path order from where the last run stopped.
        assert_eq!(seen, names[position..position + verified].to_vec(), "run {runs}: {c}");
        assert!(verified >= 1, "every run makes progress: {c}");
        assert_eq!(c["first"], json!(names[position]));
        assert_eq!(c["restarted"].is_null(), runs > 1, "{c}");
        cut += usize::from(c["time_box_cut"] == json!(true));
        cycle.extend(seen);
        position += verified;
        assert_eq!(c["position"], json!(position));
        assert_eq!(c["remaining"], json!(names.len() - position));
        if c["cycle_completed"] == json!(true) {
            assert_eq!(c["coverage_percent"], json!(100.0));
            assert_eq!(c["cycles_completed"], json!(1));
            assert!(c["last_cycle_completed"].as_str().unwrap().ends_with('Z'));
            break;
        }
        assert_eq!(c["cycles_completed"], json!(0));
    }
    // Every file exactly once in the cycle.
    let unique: BTreeSet<&String> = cycle.iter().collect();
    assert_eq!(cycle.len(), unique.len(), "a file twice in one cycle: {cycle:?}");
    assert_eq!(cycle, names);
    assert!(
        runs >= 3 && cut >= 2,
        "the box should cut most runs: {runs} runs, {cut} cut"
    );
    eprintln!("48 x 1 MiB with a 5 ms box: {runs} runs for one cycle, {cut} cut by the box");
    // The next run starts the next cycle at the first file.
    let r = run(&a);
    let c = integrity(&r);
    assert_eq!(c["first"], json!(names[0]), "{c}");
    assert_eq!(opened.take()[0], names[0]);
    assert_eq!(c["cycles_completed"], json!(1));
    assert!(c["restarted"].is_null());
}

#[test]
fn a_damaged_file_fails_the_run_that_reaches_it_and_every_run_until_repaired() {
    let dir = tempfile::tempdir().unwrap();
    let names = backup(dir.path(), 20, 4096);
    let damaged = dir.path().join("data").join(&names[12]);
    let good = std::fs::read(&damaged).unwrap();
    let mut bad = good.clone();
    bad[100] ^= 1;
    std::fs::write(&damaged, &bad).unwrap();
    let opened = Opened::watch(&dir.path().join("data"));
    let a = args(dir.path(), json!({"sample_percent": 25}));
    // Runs 1 and 2 cover f000-f009 and pass; run 3 covers f010-f014 and finds f012.
    for (start, fails) in [(0, false), (5, false), (10, true)] {
        let r = run(&a);
        let c = integrity(&r);
        assert_eq!(failed(&r), fails, "{r}");
        assert_eq!(opened.take(), names[start..start + 5].to_vec());
        assert_eq!(c["verified"], json!(5));
        if fails {
            assert_eq!(strs(&c["mismatched"]), [names[12].clone()]);
            assert_eq!(c["ok"], json!(4));
            assert!(
                r["msg"].as_str().unwrap().contains("1 mismatched ('f012.dat')"),
                "{}",
                r["msg"]
            );
        }
    }
    // Run 4 verifies f012 again first, then f015-f019: still failing.
    let r = run(&a);
    assert!(failed(&r), "{r}");
    let c = integrity(&r);
    assert_eq!(strs(&c["rechecked"]), [names[12].clone()]);
    assert_eq!(strs(&c["mismatched"]), [names[12].clone()]);
    let mut expected = vec![names[12].clone()];
    expected.extend(names[15..20].iter().cloned());
    assert_eq!(opened.take(), expected);
    assert_eq!(
        (c["verified"].clone(), c["cycle_completed"].clone()),
        (json!(5), json!(true))
    );
    // Repaired: the next run (a new cycle) verifies it once more, passes, and forgets it.
    std::fs::write(&damaged, &good).unwrap();
    let r = run(&a);
    assert!(!failed(&r), "{r}");
    assert_eq!(strs(&integrity(&r)["rechecked"]), [names[12].clone()]);
    let r = run(&a);
    assert!(strs(&integrity(&r)["rechecked"]).is_empty(), "{r}");
}

#[test]
fn check_mode_reads_the_cursor_and_leaves_it_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let names = backup(dir.path(), 10, 1000);
    let a = args(dir.path(), json!({"sample_percent": 30, "cursor": "nightly"}));
    let file = dir.path().join("state/integrity_cursor/nightly.json");
    // Check mode with no cursor: verifies the first window, writes nothing at all.
    let mut check = a.clone();
    check["_ansible_check_mode"] = json!(true);
    let r = run(&check);
    assert!(!failed(&r), "{r}");
    assert_eq!(integrity(&r)["cursor_written"], json!(false));
    assert!(!dir.path().join("state").exists(), "check mode created state");
    let r = run(&a);
    assert_eq!(integrity(&r)["position"], json!(3));
    assert_eq!(integrity(&r)["cursor_file"], json!(file));
    let before = std::fs::read(&file).unwrap();
    // Check mode goes on from the cursor (f003-f005), twice, without moving it.
    for _ in 0..2 {
        let r = run(&check);
        let c = integrity(&r);
        assert_eq!(c["first"], json!(names[3]), "{c}");
        assert_eq!(c["position"], json!(6));
        assert_eq!(std::fs::read(&file).unwrap(), before);
    }
    let r = run(&a);
    assert_eq!(integrity(&r)["first"], json!(names[3]));
    assert_ne!(std::fs::read(&file).unwrap(), before);
}

#[test]
fn a_changed_manifest_restarts_the_cycle() {
    let dir = tempfile::tempdir().unwrap();
    let mut names = backup(dir.path(), 10, 1000);
    let a = args(dir.path(), json!({"sample_percent": 50}));
    run(&a);
    let r = run(&a);
    assert_eq!(integrity(&r)["cycle_completed"], json!(true));
    let r = run(&a);
    assert_eq!(integrity(&r)["position"], json!(5));
    // A new file in the backup, a new manifest: the cycle starts again at the first file.
    std::fs::write(dir.path().join("data/a-new.dat"), b"new").unwrap();
    names.insert(0, "a-new.dat".to_string());
    write_manifest(dir.path(), &names);
    let r = run(&a);
    assert!(!failed(&r), "{r}");
    let c = integrity(&r);
    assert!(
        c["restarted"]
            .as_str()
            .unwrap()
            .starts_with("the manifest changed (sha256 "),
        "{c}"
    );
    assert!(r["msg"]
        .as_str()
        .unwrap()
        .contains("the cycle restarts at the first file"));
    assert_eq!(
        (c["first"].clone(), c["position"].clone()),
        (json!("a-new.dat"), json!(6))
    );
    assert_eq!(
        (c["files"].clone(), c["cycles_completed"].clone()),
        (json!(11), json!(1))
    );
}

#[test]
fn bad_time_box_options_are_named() {
    let dir = tempfile::tempdir().unwrap();
    backup(dir.path(), 1, 10);
    for (extra, msg) in [
        (
            json!({"sample_percent": 0}),
            "sample_percent: 0 must be more than 0 and at most 100",
        ),
        (
            json!({"max_duration": 0}),
            "max_duration: 0 must be more than 0 seconds",
        ),
        (
            json!({"cursor": "x"}),
            "cursor: 'x' is only used with max_duration or sample_percent",
        ),
        (
            json!({"sample_percent": 10, "cursor": "../x"}),
            "cursor: invalid name '../x': '/' is not allowed; use letters, digits and _ . @ : -",
        ),
        (
            json!({"sample_percent": 10, "state_dir": "rel"}),
            "state_dir: 'rel' is not an absolute path",
        ),
    ] {
        let r = run(&args(dir.path(), extra.clone()));
        assert!(failed(&r), "{extra}: {r}");
        assert_eq!(r["msg"], json!(msg), "{extra}");
    }
    let r = run(&args(dir.path(), json!({"sample_percent": 101})));
    assert!(r["msg"].as_str().unwrap().contains("sample_percent"), "{r}");
}

// ---- completeness ----

const HOUR: Duration = Duration::from_secs(3600);

/// Writes `size` bytes to `root/rel`, modified `age` ago.
fn put(root: &Path, rel: &str, size: usize, age: Duration) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    let content: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
    std::fs::write(&p, content).unwrap();
    let f = std::fs::File::options().write(true).open(&p).unwrap();
    f.set_modified(SystemTime::now() - age).unwrap();
}

fn completeness(opts: Value) -> Value {
    run(&json!({"checks": ["completeness"], "completeness": opts}))
}

#[test]
fn completeness_passes_and_names_each_failure() {
    let dir = tempfile::tempdir().unwrap();
    let b = dir.path().join("backups");
    put(&b, "db-2026-11-20.tar.zst", 600_000, HOUR * 74);
    put(
        &b,
        "db-2026-11-22.tar.zst",
        600_000,
        HOUR * 26 + Duration::from_secs(600),
    );
    put(&b, "etc/passwd", 2000, HOUR * 30);
    let path = b.display().to_string();
    let ok = json!({"path": path, "required": ["db-*.tar.zst", "etc"], "min_files": 3, "min_size": "1M",
                    "max_age": "27h"});
    let r = completeness(ok.clone());
    assert!(!failed(&r), "{r}");
    let c = &r["checks"]["completeness"];
    assert_eq!((c["files"].clone(), c["bytes"].clone()), (json!(3), json!(1_202_000)));
    assert_eq!(c["newest"]["path"], json!("db-2026-11-22.tar.zst"));
    assert_eq!(c["newest"]["age"], json!("1d 2h"));
    assert!(c["failures"].as_array().unwrap().is_empty());

    let with = |k: &str, v: Value| {
        let mut o = ok.clone();
        o[k] = v;
        completeness(o)
    };
    for (r, failure) in [
        (
            with("required", json!(["db-*.tar.zst", "globals.sql", "var/"])),
            vec![
                "required 'globals.sql' is missing: no file matches",
                "required 'var/' is missing: no file matches",
            ],
        ),
        (with("min_files", json!(4)), vec!["3 files, fewer than min_files 4"]),
        (
            with("min_size", json!("2M")),
            vec!["1.15 MiB in total, less than min_size 2 MiB"],
        ),
        (
            with("max_age", json!("26h")),
            vec!["newest backup 'db-2026-11-22.tar.zst' is 1d 2h old, over max_age 26h"],
        ),
        (
            with("path", json!(dir.path().join("nope"))),
            vec![format!("path '{}' does not exist", dir.path().join("nope").display()).leak() as &str],
        ),
    ] {
        assert!(failed(&r), "{r}");
        let c = &r["checks"]["completeness"];
        assert_eq!(strs(&c["failures"]), failure, "{r}");
        assert!(r["msg"].as_str().unwrap().starts_with("completeness failed: "));
    }
    // Only the old backup left: three days old, and an empty directory fails max_age too.
    std::fs::remove_file(b.join("db-2026-11-22.tar.zst")).unwrap();
    std::fs::remove_file(b.join("etc/passwd")).unwrap();
    let r = completeness(json!({"path": path, "max_age": "26h"}));
    assert_eq!(
        strs(&r["checks"]["completeness"]["failures"]),
        ["newest backup 'db-2026-11-20.tar.zst' is 3d 2h old, over max_age 26h"]
    );
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let r = completeness(json!({"path": empty, "max_age": 3600, "min_files": 1}));
    assert_eq!(
        strs(&r["checks"]["completeness"]["failures"]),
        [
            "0 files, fewer than min_files 1",
            "no backup file at all, so none is newer than max_age 3600"
        ]
    );
    // Bad values are named with their option.
    let r = completeness(json!({"path": path, "max_age": "1 fortnight"}));
    assert_eq!(
        r["msg"],
        json!(
            "completeness.max_age: invalid duration '1 fortnight': unknown unit 'fortnight' (use ms, s, m, h, d or w)"
        )
    );
    let r = completeness(json!({"min_files": 1}));
    assert!(r["msg"].as_str().unwrap().contains("completeness.path"), "{r}");
}

/// A manifest (or a log) written after the archive is the newest file under `path`; by
/// default it is taken for the newest backup, and `copies` must hold it. `backup_files`
/// says which files are the backup: the archive's age and copies are judged, the
/// manifest is still found by `required`.
#[test]
fn backup_files_say_which_files_are_the_backup() {
    let dir = tempfile::tempdir().unwrap();
    let (b, usb) = (dir.path().join("backup"), dir.path().join("usb"));
    put(&b, "2026-11-22/home.tar.zst", 5000, HOUR * 30);
    put(&b, "2026-11-23/home.tar.zst", 4000, HOUR * 2);
    put(&b, "2026-11-23/home.sha256", 90, HOUR);
    put(&b, "2026-11-23/backup.log", 20, Duration::from_secs(60));
    std::fs::create_dir_all(usb.join("2026-11-23")).unwrap();
    std::fs::copy(b.join("2026-11-23/home.tar.zst"), usb.join("2026-11-23/home.tar.zst")).unwrap();
    // One filesystem here (a tmpfs each needs root): min_copies 1, the copy's status read.
    let opts = json!({"path": b, "required": ["*/home.sha256"], "max_age": "3h", "min_files": 2,
                      "copies": [usb], "min_copies": 1});

    // Without it: the log is "the newest backup", the copy must hold the log, and the
    // manifest and the log count as backup files.
    let r = completeness(opts.clone());
    let c = &r["checks"]["completeness"];
    assert_eq!(c["newest"]["path"], "2026-11-23/backup.log", "{r}");
    assert_eq!(c["copies"][0]["status"], "missing", "{r}");
    assert_eq!(c["files"], 4, "{r}");

    let mut with = opts.clone();
    with["backup_files"] = json!(["*/*.tar.zst"]);
    let r = completeness(with.clone());
    assert!(!failed(&r), "{r}");
    let c = &r["checks"]["completeness"];
    assert_eq!(c["newest"]["path"], "2026-11-23/home.tar.zst", "{r}");
    assert_eq!((c["files"].clone(), c["bytes"].clone()), (json!(2), json!(9000)), "{r}");
    assert_eq!(c["copies"][0]["status"], "identical", "{r}");

    // No file is a backup: named with the globs.
    with["backup_files"] = json!(["*/*.tar.gz"]);
    let r = completeness(with.clone());
    assert_eq!(
        strs(&r["checks"]["completeness"]["failures"]),
        [
            "0 files, fewer than min_files 2",
            "no file matches backup_files ('*/*.tar.gz'), so none is newer than max_age 3h",
            "newest backup '(none)' is held in 0 distinct locations, fewer than min_copies 1",
        ],
        "{r}"
    );
    with["backup_files"] = json!(["/abs/*.tar"]);
    let r = completeness(with);
    assert_eq!(
        r["msg"], "completeness.backup_files[0]: '/abs/*.tar' must be a path or glob relative to 'path'",
        "{r}"
    );
}

/// A tmpfs mounted for a test, unmounted when dropped.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount() -> Result<Tmpfs, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let o = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=16m", "tmpfs"])
            .arg(dir.path())
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !o.status.success() {
            return Err(format!("mount: {}", String::from_utf8_lossy(&o.stderr).trim()));
        }
        Ok(Tmpfs(dir))
    }

    fn path(&self) -> PathBuf {
        self.0.path().to_path_buf()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

#[test]
fn copies_count_once_per_filesystem() {
    let (a, b) = match (Tmpfs::mount(), Tmpfs::mount()) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => {
            test_support::skip(&format!("copies_count_once_per_filesystem: cannot mount a tmpfs ({e})"));
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let primary = dir.path().join("backups");
    let same_disk = dir.path().join("copy-on-same-disk");
    put(&primary, "old.tar", 5000, HOUR * 48);
    put(&primary, "db/new.tar", 300_000, HOUR);
    for loc in [a.path(), b.path(), same_disk.clone()] {
        put(&loc, "db/new.tar", 300_000, HOUR);
    }
    let opts = |copies: Vec<PathBuf>, min: u64| json!({"path": primary, "copies": copies, "min_copies": min});
    let r = completeness(opts(vec![a.path(), same_disk.clone(), b.path()], 3));
    assert!(!failed(&r), "{r}");
    let c = &r["checks"]["completeness"];
    assert_eq!(c["locations"], json!(3));
    let distinct: Vec<Value> = c["copies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["distinct"].clone())
        .collect();
    assert_eq!(distinct, [json!(true), json!(false), json!(true)]);
    assert!(c["copies"]
        .as_array()
        .unwrap()
        .iter()
        .all(|c| c["status"] == json!("identical")));
    assert_eq!(c["bytes_hashed"], json!(4 * 300_000));
    // Without the second tmpfs, the same-disk copy does not make a third location.
    let r = completeness(opts(vec![a.path(), same_disk.clone()], 3));
    assert!(failed(&r), "{r}");
    assert_eq!(
        strs(&r["checks"]["completeness"]["failures"]),
        [format!(
            "newest backup 'db/new.tar' is held in 2 distinct locations, fewer than min_copies 3 ('{}' is identical but on a filesystem already counted)",
            same_disk.join("db/new.tar").display()
        )]
    );
    // One byte changed on b (same size), a copy missing on a: each named.
    let on_b = b.path().join("db/new.tar");
    let mut bytes = std::fs::read(&on_b).unwrap();
    bytes[1000] ^= 0xff;
    std::fs::write(&on_b, bytes).unwrap();
    std::fs::remove_file(a.path().join("db/new.tar")).unwrap();
    let r = completeness(json!({"path": primary, "copies": [a.path(), b.path()]}));
    assert!(failed(&r), "{r}");
    let c = &r["checks"]["completeness"];
    assert_eq!(
        strs(&c["failures"]),
        [format!(
            "newest backup 'db/new.tar' is held in 1 distinct location, fewer than min_copies 3 ('{}' is missing; '{}' differs: same size, different SHA-256)",
            a.path().join("db/new.tar").display(),
            on_b.display()
        )]
    );
    let statuses: Vec<Value> = c["copies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["status"].clone())
        .collect();
    assert_eq!(statuses, [json!("missing"), json!("differs")]);
}

#[test]
fn a_fifo_as_the_backup_is_reported_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("db.tar");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let copy = dir.path().join("copy");
    put(&copy, "db.tar", 0, HOUR);
    let (tx, rx) = std::sync::mpsc::channel();
    let opts = json!({"path": fifo, "copies": [copy]});
    std::thread::spawn(move || {
        let _ = tx.send(completeness(opts));
    });
    let r = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("backup_verify did not finish within 20 s");
    assert!(failed(&r), "{r}");
    assert_eq!(
        r["msg"],
        format!(
            "completeness failed: cannot read '{}': not a regular file: FIFO",
            fifo.display()
        ),
        "{r}"
    );
}
