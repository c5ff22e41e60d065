//! `backup_retention` as Ansible runs it, on real directories of dated backups (files and
//! whole trees, modification times set by the test): age and count policies and their
//! combination, the last verified-good backup kept however old (recorded by the real
//! `backup_verify` over a manifest the real `backup_manifest` wrote), check mode that deletes
//! nothing, the diff, links never followed, and bad input named.

// The helpers too: a test that cannot set itself up should fail loudly.
#![allow(clippy::unwrap_used)]

#[path = "support/module.rs"]
mod module;
use module::{failed, run, strs};

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

const RETENTION: &str = env!("CARGO_BIN_EXE_backup_retention");
const MANIFEST: &str = env!("CARGO_BIN_EXE_backup_manifest");
const VERIFY: &str = env!("CARGO_BIN_EXE_backup_verify");

fn names(list: &Value) -> Vec<String> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_string())
        .collect()
}

/// `name -> reason` of a `kept` or `deleted` list.
fn reasons(list: &Value) -> BTreeMap<String, String> {
    list.as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["name"].as_str().unwrap().to_string(),
                e["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Sets the modification time of a file or directory (not following a link) to
/// `days` days and an hour ago: whole-day ages are never on a boundary.
fn age(path: &Path, days: u64) {
    let when = SystemTime::now() - Duration::from_secs(days * 86_400 + 3600);
    std::fs::File::open(path).unwrap().set_modified(when).unwrap();
}

/// Everything under `root` (links not followed) as `relative path -> size or link target`,
/// to prove that nothing moved.
fn snapshot(root: &Path) -> BTreeMap<String, String> {
    fn go(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let meta = std::fs::symlink_metadata(&p).unwrap();
            if meta.file_type().is_symlink() {
                out.insert(rel, format!("-> {}", std::fs::read_link(&p).unwrap().display()));
            } else if meta.is_dir() {
                out.insert(rel.clone(), "dir".into());
                go(root, &p, out);
            } else {
                out.insert(rel, meta.len().to_string());
            }
        }
    }
    let mut out = BTreeMap::new();
    go(root, root, &mut out);
    out
}

/// The names directly in `dir`, sorted.
fn ls(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    v.sort();
    v
}

/// Ten backups `db-00` .. `db-09`, `db-NN` being NN days old: even ones are files of
/// (NN + 1) * 100 bytes, odd ones directories with two files (one in a subdirectory).
/// Plus `notes.txt`, older than all, which the pattern does not match.
fn ten_backups(root: &Path) {
    std::fs::create_dir_all(root).unwrap();
    for n in 0..10u64 {
        let p = root.join(format!("db-{n:02}"));
        if n % 2 == 0 {
            std::fs::write(&p, vec![b'x'; (n as usize + 1) * 100]).unwrap();
        } else {
            std::fs::create_dir_all(p.join("sub")).unwrap();
            std::fs::write(p.join("dump.sql"), vec![b'y'; 1000]).unwrap();
            std::fs::write(p.join("sub/extra"), b"12345").unwrap();
            age(&p.join("sub"), n);
        }
        age(&p, n);
    }
    std::fs::write(root.join("notes.txt"), b"not a backup").unwrap();
    age(&root.join("notes.txt"), 365);
}

fn backup_bytes(n: u64) -> u64 {
    if n % 2 == 0 {
        (n + 1) * 100
    } else {
        1005
    }
}

fn db(range: std::ops::Range<u64>) -> Vec<String> {
    range.map(|n| format!("db-{n:02}")).collect()
}

#[test]
fn keep_days_and_keep_last_alone_and_combined() {
    // (policy, backups left, reason of the newest deleted one)
    let cases: &[(Value, std::ops::Range<u64>, &str)] = &[
        (json!({"keep_last": 3}), 0..3, "beyond newest 3"),
        (json!({"keep_days": 5}), 0..5, "older than 5 days"),
        // Either keeps: 7 by count beats 5 days by age, and the other way round.
        (
            json!({"keep_days": 5, "keep_last": 7}),
            0..7,
            "older than 5 days and beyond newest 7",
        ),
        (
            json!({"keep_days": 4, "keep_last": 2}),
            0..4,
            "older than 4 days and beyond newest 2",
        ),
        // Both at zero: min_keep (default 1) still keeps the newest.
        (
            json!({"keep_days": 0, "keep_last": 0}),
            0..1,
            "older than 0 days and beyond newest 0",
        ),
        (json!({"keep_days": 3, "min_keep": 6}), 0..6, "older than 3 days"),
    ];
    for (policy, left, first_reason) in cases {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("backups");
        ten_backups(&root);
        let mut args =
            json!({"path": root, "pattern": "db-*", "require_good": false, "state_dir": dir.path().join("state")});
        args.as_object_mut()
            .unwrap()
            .extend(policy.as_object().unwrap().clone());
        let r = run(RETENTION, &args);
        assert!(!failed(&r), "{policy}: {r}");
        assert_eq!(r["changed"], true, "{policy}");

        let mut expected = db(left.clone());
        expected.push("notes.txt".into());
        assert_eq!(ls(&root), expected, "{policy}: what is left on disk");
        assert_eq!(names(&r["kept"]), db(left.clone()), "{policy}");
        assert_eq!(names(&r["deleted"]), db(left.end..10), "{policy}");
        let deleted = &r["deleted"][0];
        assert_eq!(deleted["reason"], *first_reason, "{policy}");
        let n = left.end;
        assert_eq!(deleted["bytes"], backup_bytes(n), "{policy}");
        assert_eq!(deleted["kind"], if n % 2 == 0 { "file" } else { "directory" });
        assert_eq!(
            r["bytes_freed"],
            (left.end..10).map(backup_bytes).sum::<u64>(),
            "{policy}"
        );
        assert_eq!(r["good"], Value::Null);
        assert!(
            r["msg"]
                .as_str()
                .unwrap()
                .starts_with(&format!("deleted {} of 10 backups matching 'db-*'", 10 - left.end)),
            "{}",
            r["msg"]
        );
    }
}

#[test]
fn min_keep_reason_and_idempotence() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("backups");
    ten_backups(&root);
    let args = json!({"path": root, "pattern": "db-*", "keep_days": 1, "min_keep": 2, "require_good": false,
                      "state_dir": dir.path().join("state")});
    let r = run(RETENTION, &args);
    assert!(!failed(&r), "{r}");
    let kept = reasons(&r["kept"]);
    assert_eq!(kept["db-00"], "younger than 1 day");
    assert_eq!(kept["db-01"], "within newest 2 (min_keep)");
    assert_eq!(kept.len(), 2);
    let again = run(RETENTION, &args);
    assert_eq!(again["changed"], false, "{again}");
    assert_eq!(names(&again["deleted"]), Vec::<String>::new());
    assert_eq!(again["bytes_freed"], 0);
}

#[test]
fn check_mode_deletes_nothing_lists_what_would_go_and_diff_shows_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("backups");
    ten_backups(&root);
    let before = snapshot(dir.path());
    let state_dir = dir.path().join("state");
    let args = json!({"path": root, "pattern": "db-*", "keep_last": 4, "require_good": false, "state_dir": state_dir});
    let mut check = args.clone();
    check["_ansible_check_mode"] = json!(true);
    check["_ansible_diff"] = json!(true);

    let predicted = run(RETENTION, &check);
    assert!(!failed(&predicted), "{predicted}");
    assert_eq!(predicted["changed"], true, "check mode predicts the change");
    assert_eq!(names(&predicted["deleted"]), db(4..10));
    assert_eq!(names(&predicted["kept"]), db(0..4));
    assert!(predicted["msg"].as_str().unwrap().starts_with("would delete 6 of 10"));
    assert_eq!(snapshot(dir.path()), before, "check mode deleted nothing");
    let all: String = db(0..10).iter().map(|n| format!("{n}\n")).collect();
    let kept: String = db(0..4).iter().map(|n| format!("{n}\n")).collect();
    assert_eq!(predicted["diff"]["before"], all);
    assert_eq!(predicted["diff"]["after"], kept);
    let header = format!("{}/db-*", root.canonicalize().unwrap().display());
    assert_eq!(predicted["diff"]["before_header"], header);

    // The real run does what check mode said, and reports the same diff.
    let mut real = args.clone();
    real["_ansible_diff"] = json!(true);
    let done = run(RETENTION, &real);
    assert!(!failed(&done), "{done}");
    assert_eq!(done["changed"], true);
    assert_eq!(done["deleted"], predicted["deleted"]);
    assert_eq!(done["bytes_freed"], predicted["bytes_freed"]);
    assert_eq!(done["diff"], predicted["diff"]);
    let mut left = db(0..4);
    left.push("notes.txt".into());
    assert_eq!(ls(&root), left);

    // The deletion run is one audit record; check mode appended none.
    let trail = || -> Vec<Value> {
        std::fs::read_to_string(state_dir.join("audit/audit.jsonl"))
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let records = trail();
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0]["action"], "backup_retention.delete");
    assert_eq!(records[0]["outcome"], "changed");
    assert_eq!(records[0]["target"], root.canonicalize().unwrap().display().to_string());
    assert_eq!(records[0]["details"]["deleted"], json!(db(4..10)));
    assert_eq!(records[0]["details"]["keep_last"], 4);

    // Nothing left to do: not changed, in check mode or not; the diff is empty.
    let predicted = run(RETENTION, &check);
    assert_eq!(predicted["changed"], false, "{predicted}");
    assert_eq!(predicted["diff"]["before"], predicted["diff"]["after"]);
    assert_eq!(run(RETENTION, &args)["changed"], false);
    assert_eq!(trail().len(), 1, "a run that deleted nothing appends nothing");
}

/// A dated backup directory with data and a manifest written by `backup_manifest`.
fn dated_backup(root: &Path, name: &str, days: u64) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(dir.join("data")).unwrap();
    std::fs::write(dir.join("data/orders.csv"), format!("orders of {name}\n")).unwrap();
    let r = run(
        MANIFEST,
        &json!({"path": dir.join("data"), "dest": dir.join("SHA256SUMS")}),
    );
    assert!(!failed(&r), "{r}");
    age(&dir.join("data"), days);
    age(&dir, days);
    dir
}

#[test]
fn the_newest_good_backup_is_old_and_kept_end_to_end() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("backups");
    let state_dir = tmp.path().join("state");
    // Nine nightly backups, 0 to 8 days old.
    let dirs: Vec<PathBuf> = (0..9)
        .map(|d| dated_backup(&root, &format!("2026-11-{:02}", 23 - d), d))
        .collect();
    let verify = |dir: &Path, check_mode: bool| {
        run(
            VERIFY,
            &json!({"manifest": dir.join("SHA256SUMS"), "root": dir.join("data"), "backup": dir,
                    "record_good": "nightly", "state_dir": state_dir, "_ansible_check_mode": check_mode}),
        )
    };
    let record_file = state_dir.join("backup_good/nightly.json");

    // Check mode predicts the record and writes nothing.
    let r = verify(&dirs[7], true);
    assert!(!failed(&r), "{r}");
    assert_eq!((&r["changed"], &r["good"]["recorded"]), (&json!(true), &json!(false)));
    assert!(!state_dir.exists(), "check mode wrote no state");

    // 7 days old verifies good: recorded, changed.
    let r = verify(&dirs[7], false);
    assert!(!failed(&r), "{r}");
    assert_eq!(r["changed"], true);
    assert_eq!(r["good"]["recorded"], true);
    assert_eq!(
        r["good"]["backup"],
        dirs[7].canonicalize().unwrap().display().to_string()
    );
    assert_eq!(r["good"]["state_file"], record_file.display().to_string());
    assert!(r["msg"].as_str().unwrap().contains("recorded '"), "{}", r["msg"]);
    let record: Value = serde_json::from_slice(&std::fs::read(&record_file).unwrap()).unwrap();
    assert_eq!(record["kind"], "backup_good");
    assert_eq!(record["set"], "nightly");
    assert_eq!(record["backup"], r["good"]["backup"]);
    assert_eq!(record["checks"], json!(["integrity"]));
    assert_eq!(record["verified_at"], r["good"]["verified_at"]);

    // Every newer backup is damaged: their verification fails and the record stays.
    for dir in &dirs[..7] {
        std::fs::write(dir.join("data/orders.csv"), b"flipped\n").unwrap();
        age(&dir.join("data"), 0);
        let r = verify(dir, false);
        assert!(failed(&r), "{r}");
        assert_eq!(r["changed"], false);
        assert_eq!(r["good"]["recorded"], false);
    }
    // Restore the ages the damage touched (writing into data/ changed data/, not the entry).
    for (d, dir) in dirs.iter().enumerate() {
        age(dir, d as u64);
    }
    let after: Value = serde_json::from_slice(&std::fs::read(&record_file).unwrap()).unwrap();
    assert_eq!(after, record, "a failing verification leaves the record as it was");

    // keep 3 days / 2 backups would delete the 7-day-old one; it is the newest good: kept.
    let args = json!({"path": root, "pattern": "2026-11-??", "keep_days": 3, "keep_last": 2,
                      "good": "nightly", "state_dir": state_dir});
    let r = run(RETENTION, &args);
    assert!(!failed(&r), "{r}");
    let kept = reasons(&r["kept"]);
    assert_eq!(
        kept,
        BTreeMap::from([
            ("2026-11-23".to_string(), "within newest 2".to_string()),
            ("2026-11-22".to_string(), "within newest 2".to_string()),
            ("2026-11-21".to_string(), "younger than 3 days".to_string()),
            ("2026-11-16".to_string(), "last verified good".to_string()),
        ])
    );
    assert_eq!(
        names(&r["deleted"]),
        ["2026-11-20", "2026-11-19", "2026-11-18", "2026-11-17", "2026-11-15"]
    );
    assert_eq!(r["good"]["protects"], "2026-11-16");
    assert_eq!(r["good"]["backup"], record["backup"]);
    assert!(r["msg"]
        .as_str()
        .unwrap()
        .ends_with("'2026-11-16' is the last backup that verified good"));
    assert_eq!(ls(&root), ["2026-11-16", "2026-11-21", "2026-11-22", "2026-11-23"]);
    // What is kept still verifies (retention deleted nothing inside it).
    let r = run(
        VERIFY,
        &json!({"manifest": dirs[7].join("SHA256SUMS"), "root": dirs[7].join("data")}),
    );
    assert!(!failed(&r), "{r}");

    // The record may name a path inside an entry (the verified root): the entry is protected.
    let r = run(
        VERIFY,
        &json!({"manifest": dirs[7].join("SHA256SUMS"), "root": dirs[7].join("data"),
                "record_good": "inner", "state_dir": state_dir}),
    );
    assert!(!failed(&r), "{r}");
    assert_eq!(
        r["good"]["backup"],
        format!("{}/data", record["backup"].as_str().unwrap())
    );
    let r = run(
        RETENTION,
        &json!({"path": root, "pattern": "2026-*", "keep_last": 1, "good": "inner", "state_dir": state_dir,
                "_ansible_check_mode": true}),
    );
    assert_eq!(reasons(&r["kept"])["2026-11-16"], "last verified good", "{r}");
}

#[test]
fn without_a_good_backup_require_good_deletes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("backups");
    let state_dir = tmp.path().join("state");
    ten_backups(&root);
    let before = snapshot(&root);
    let args = json!({"path": root, "pattern": "db-*", "keep_last": 1, "good": "nightly", "state_dir": state_dir});

    let r = run(RETENTION, &args);
    assert!(!failed(&r), "{r}");
    assert_eq!(r["changed"], false);
    assert_eq!(names(&r["deleted"]), Vec::<String>::new());
    assert!(reasons(&r["kept"])
        .values()
        .all(|v| v == "no backup is known good (require_good)"));
    assert!(
        r["warnings"][0]
            .as_str()
            .unwrap()
            .starts_with("no backup of set 'nightly' has verified good yet"),
        "{r}"
    );
    assert_eq!(snapshot(&root), before);

    // A record whose backup is not among the matched entries protects nothing: still nothing goes.
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::fs::write(elsewhere.join("f"), b"f").unwrap();
    let m = run(
        MANIFEST,
        &json!({"path": elsewhere, "dest": elsewhere.join("SHA256SUMS")}),
    );
    assert!(!failed(&m), "{m}");
    let v = run(
        VERIFY,
        &json!({"manifest": elsewhere.join("SHA256SUMS"), "record_good": "nightly", "state_dir": state_dir}),
    );
    assert_eq!(
        v["good"]["backup"],
        elsewhere.canonicalize().unwrap().display().to_string()
    );
    assert!(!failed(&v), "{v}");
    let r = run(RETENTION, &args);
    assert_eq!(r["changed"], false, "{r}");
    assert!(
        r["warnings"][0]
            .as_str()
            .unwrap()
            .contains("is not one of the backups matched here"),
        "{r}"
    );
    assert_eq!(r["good"]["protects"], Value::Null);
    assert_eq!(snapshot(&root), before);

    // require_good: false deletes by count alone.
    let mut loose = args.clone();
    loose["require_good"] = json!(false);
    let r = run(RETENTION, &loose);
    assert!(!failed(&r), "{r}");
    assert_eq!(names(&r["kept"]), ["db-00"]);
    assert_eq!(ls(&root), ["db-00", "notes.txt"]);
}

#[test]
fn links_are_never_followed_out_of_path() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    std::fs::create_dir(&outside).unwrap();
    std::fs::write(outside.join("precious"), b"keep me").unwrap();
    let root = tmp.path().join("backups");
    std::fs::create_dir(&root).unwrap();
    // An old backup directory holding links out of it (to a file and to a directory).
    let old = root.join("db-old");
    std::fs::create_dir(&old).unwrap();
    std::fs::write(old.join("dump"), b"0123456789").unwrap();
    std::os::unix::fs::symlink(outside.join("precious"), old.join("file-link")).unwrap();
    std::os::unix::fs::symlink(&outside, old.join("dir-link")).unwrap();
    age(&old, 30);
    // A matching link at the top, to the outside directory.
    std::os::unix::fs::symlink(&outside, root.join("db-link")).unwrap();
    std::fs::write(root.join("db-new"), b"new").unwrap();
    // `path` itself through a link: resolved, allowed.
    let via = tmp.path().join("via");
    std::os::unix::fs::symlink(&root, &via).unwrap();
    let outside_before = snapshot(&outside);

    let r = run(
        RETENTION,
        &json!({"path": via, "pattern": "db-*", "keep_last": 0, "min_keep": 0, "require_good": false,
                "state_dir": tmp.path().join("state")}),
    );
    assert!(!failed(&r), "{r}");
    assert_eq!(r["path"], root.canonicalize().unwrap().display().to_string());
    assert_eq!(names(&r["deleted"]), ["db-new", "db-old"]);
    assert_eq!(r["deleted"][1]["bytes"], 10, "links inside are not counted: {r}");
    assert_eq!(r["skipped"][0]["name"], "db-link");
    assert!(r["skipped"][0]["reason"]
        .as_str()
        .unwrap()
        .ends_with("never followed nor deleted"));
    assert_eq!(ls(&root), ["db-link"]);
    assert_eq!(snapshot(&outside), outside_before, "nothing outside path was touched");
}

#[test]
fn bad_input_is_named_and_deletes_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("backups");
    ten_backups(&root);
    let state_dir = tmp.path().join("state");
    let a_file = root.join("notes.txt");
    let before = snapshot(tmp.path());
    let base = json!({"path": root, "pattern": "db-*", "keep_last": 1, "require_good": false, "state_dir": state_dir});
    let with = |extra: Value| {
        let mut a = base.clone();
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                a.as_object_mut().unwrap().remove(k);
            } else {
                a[k] = v.clone();
            }
        }
        a
    };
    let cases: Vec<(Value, String)> = vec![
        (with(json!({"keep_days": -1})), "keep_days: -1 is out of range".into()),
        (with(json!({"keep_last": -3})), "keep_last: -3 is out of range".into()),
        (with(json!({"min_keep": -1})), "min_keep: -1 is out of range".into()),
        (with(json!({"keep_last": "many"})), "keep_last".into()),
        (
            with(json!({"pattern": "db-["})),
            "pattern: 'db-[' is not a valid glob".into(),
        ),
        (with(json!({"pattern": "../*"})), "pattern: '../*' has a '/'".into()),
        (with(json!({"pattern": ""})), "pattern: it is empty".into()),
        (
            with(json!({"path": a_file})),
            format!("path '{}' is not a directory", a_file.display()),
        ),
        (
            with(json!({"path": tmp.path().join("nope")})),
            format!("path '{}'", tmp.path().join("nope").display()),
        ),
        (
            with(json!({"keep_last": null})),
            "one of these options is required: keep_days, keep_last".into(),
        ),
        (
            with(json!({"require_good": null})),
            "require_good is true but good".into(),
        ),
        (with(json!({"good": "../etc"})), "good: invalid name '../etc'".into()),
        (
            with(json!({"good": "nightly", "state_dir": "rel/state"})),
            "state_dir: 'rel/state' is not an absolute path".into(),
        ),
    ];
    for (args, msg) in &cases {
        let r = run(RETENTION, args);
        assert!(failed(&r), "{args}: {r}");
        assert_eq!(r["changed"], false, "{args}");
        assert!(
            r["msg"].as_str().unwrap().contains(msg.as_str()),
            "{args}: {} lacks {msg}",
            r["msg"]
        );
    }

    // An unreadable good record protects nothing: fail, delete nothing, leave it in place.
    let record = state_dir.join("backup_good/nightly.json");
    std::fs::create_dir_all(record.parent().unwrap()).unwrap();
    std::fs::write(&record, b"{not json").unwrap();
    let r = run(
        RETENTION,
        &with(json!({"good": "nightly", "state_dir": state_dir, "require_good": true})),
    );
    assert!(failed(&r), "{r}");
    assert!(r["msg"]
        .as_str()
        .unwrap()
        .starts_with("the good record of set 'nightly' cannot be read, so nothing is deleted"));
    assert_eq!(std::fs::read(&record).unwrap(), b"{not json");
    std::fs::remove_dir_all(&state_dir).unwrap();
    assert_eq!(snapshot(tmp.path()), before, "no bad input deleted anything");

    // backup_verify's record options.
    let manifest = tmp.path().join("SHA256SUMS");
    std::fs::write(&manifest, b"").unwrap();
    let cases = [
        (
            json!({"record_good": "a/b"}),
            "record_good: invalid name 'a/b'".to_string(),
        ),
        (
            json!({"record_good": "x", "backup": tmp.path().join("gone")}),
            format!("backup: '{}'", tmp.path().join("gone").display()),
        ),
        (json!({"backup": root}), "it needs record_good".to_string()),
        (
            json!({"record_good": "x", "state_dir": "state"}),
            "state_dir: 'state' is not an absolute path".to_string(),
        ),
        (
            json!({"record_good": "x", "manifest": null}),
            "say which backup verified good".to_string(),
        ),
        (
            json!({"record_good": "x", "checks": []}),
            "would record a backup that no check verified".to_string(),
        ),
    ];
    for (extra, msg) in cases {
        let mut args = json!({"manifest": manifest, "state_dir": state_dir});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                args.as_object_mut().unwrap().remove(k);
            } else {
                args[k] = v.clone();
            }
        }
        let r = run(VERIFY, &args);
        assert!(failed(&r), "{args}: {r}");
        assert!(
            r["msg"].as_str().unwrap().contains(&msg),
            "{args}: {} lacks {msg}",
            r["msg"]
        );
    }
    assert!(!state_dir.exists(), "no bad request wrote state");
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
    eprintln!("SKIPPED {test}: needs root to mount");
    false
}

/// Runs `backup_retention` with `args` in a mount namespace of its own (`unshare -m`,
/// private propagation), after the shell lines `before` and followed by `after`: the mounts
/// made there end with the namespace, whatever happens, and never show on the host.
fn run_in_namespace(dir: &Path, before: &str, args: &Value, after: &str) -> Value {
    let file = dir.join("args.json");
    std::fs::write(&file, args.to_string()).unwrap();
    let script = format!("set -e\n{before}\n\"$0\" \"$1\" || true\n{after}\n");
    let out = std::process::Command::new("unshare")
        .args(["-m", "--propagation", "private", "sh", "-c", &script, RETENTION])
        .arg(&file)
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success() && stdout.lines().count() == 1,
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap()
}

/// A bind mount (same filesystem, same st_dev), a tmpfs inside an expired backup, and an
/// expired backup that is itself a mount point: none is deleted, each is named, the
/// mounted contents survive; the plain expired backup beside them goes.
#[test]
fn mounts_inside_backups_are_never_crossed() {
    if !privileged("mounts_inside_backups_are_never_crossed") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("backups");
    let outside = tmp.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("precious"), b"keep me").unwrap();
    for (name, days, mount_dir) in [
        ("db-bind", 30, Some("mnt")),
        ("db-usb", 29, Some("usb")),
        ("db-mp", 28, None),
        ("db-plain", 27, None),
        ("db-new", 0, None),
    ] {
        let p = root.join(name);
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(p.join("dump"), b"0123456789").unwrap();
        if let Some(m) = mount_dir {
            std::fs::create_dir(p.join(m)).unwrap();
        }
        age(&p, days);
    }
    let q = |p: PathBuf| format!("'{}'", p.display());
    let before = [
        format!("mount --bind {} {}", q(outside.clone()), q(root.join("db-bind/mnt"))),
        format!("mount -t tmpfs hx-usb {}", q(root.join("db-usb/usb"))),
        format!("echo data > {}", q(root.join("db-usb/usb/on-usb"))),
        format!("mount -t tmpfs hx-mp {}", q(root.join("db-mp"))),
        format!("echo data > {}", q(root.join("db-mp/on-mp"))),
        // The mounted tmpfs's own time, aged like the others.
        format!(
            "touch -d @{} {}",
            (SystemTime::now() - Duration::from_secs(28 * 86_400))
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap()
                .as_secs(),
            q(root.join("db-mp"))
        ),
    ]
    .join("\n");
    let after = format!(
        "ls {} {} > {} 2>&1 || true",
        q(root.join("db-usb/usb")),
        q(root.join("db-mp")),
        q(tmp.path().join("after"))
    );
    let state_dir = tmp.path().join("state");
    let args = json!({"path": root, "pattern": "db-*", "keep_last": 1, "require_good": false, "state_dir": state_dir});
    for check_mode in [true, false] {
        let mut args = args.clone();
        args["_ansible_check_mode"] = json!(check_mode);
        let r = run_in_namespace(tmp.path(), &before, &args, &after);
        assert!(failed(&r), "{r}");
        assert_eq!(names(&r["deleted"]), ["db-plain"], "{r}");
        let errors: BTreeMap<String, String> = r["errors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| (e["name"].as_str().unwrap().into(), e["error"].as_str().unwrap().into()))
            .collect();
        let refused = |name: &str, why: String| {
            format!(
                "not deleting '{}': {why}; nothing of it was deleted",
                root.join(name).display()
            )
        };
        assert_eq!(
            errors,
            BTreeMap::from([
                (
                    "db-bind".to_string(),
                    refused(
                        "db-bind",
                        format!(
                            "'{}' is mounted inside it (unmount it first)",
                            root.join("db-bind/mnt").display()
                        )
                    )
                ),
                (
                    "db-mp".to_string(),
                    refused(
                        "db-mp",
                        "it is a mount point (another filesystem than its directory)".into()
                    )
                ),
                (
                    "db-usb".to_string(),
                    refused(
                        "db-usb",
                        format!(
                            "'{}' is mounted inside it (unmount it first)",
                            root.join("db-usb/usb").display()
                        )
                    )
                ),
            ]),
            "{r}"
        );
        assert!(
            r["msg"]
                .as_str()
                .unwrap()
                .starts_with("3 backup(s) could not be deleted, first: not deleting '"),
            "{r}"
        );
        // What was mounted survives, and so does everything of the refused backups.
        assert_eq!(std::fs::read(outside.join("precious")).unwrap(), b"keep me");
        let after = std::fs::read_to_string(tmp.path().join("after")).unwrap();
        assert_eq!(
            after.matches("on-usb").count() + after.matches("on-mp").count(),
            2,
            "{after}"
        );
        for name in ["db-bind", "db-usb"] {
            assert_eq!(std::fs::read(root.join(name).join("dump")).unwrap(), b"0123456789");
        }
        assert_eq!(root.join("db-plain").exists(), check_mode);
        // The run that deleted one and failed on three is one audit record, outcome failed;
        // check mode appended none.
        let trail = std::fs::read_to_string(state_dir.join("audit/audit.jsonl")).unwrap_or_default();
        let records: Vec<Value> = trail.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(records.len(), usize::from(!check_mode), "{trail}");
        if let Some(record) = records.first() {
            assert_eq!(record["outcome"], "failed");
            assert_eq!(record["details"]["deleted"], json!(["db-plain"]));
            assert_eq!(record["details"]["errors"].as_array().unwrap().len(), 3);
        }
    }
    assert_eq!(ls(&root), ["db-bind", "db-mp", "db-new", "db-usb"]);
}

/// `/` and other system directories, however spelt, are refused unless allowed.
#[test]
fn system_directories_are_refused_unless_allowed() {
    let tmp = tempfile::tempdir().unwrap();
    let link = tmp.path().join("to-var");
    std::os::unix::fs::symlink("/var", &link).unwrap();
    let args =
        |path: &str| json!({"path": path, "pattern": "hx-no-such-backup-*", "keep_last": 1, "require_good": false});
    for (path, resolved) in [
        ("/", "/"),
        ("//", "/"),
        ("/etc/", "/etc"),
        ("/usr/./", "/usr"),
        ("/var/../etc", "/etc"),
        ("/home", "/home"),
        (link.to_str().unwrap(), "/var"),
    ] {
        let r = run(RETENTION, &args(path));
        assert!(failed(&r), "{path}: {r}");
        assert_eq!(
            r["msg"],
            format!("path: '{path}' is the system directory '{resolved}'; nothing is deleted there unless allow_system_path is true: give the directory that holds the backups"),
        );
    }
    let mut allowed = args("/");
    allowed["allow_system_path"] = json!(true);
    let r = run(RETENTION, &allowed);
    assert!(!failed(&r), "{r}");
    assert_eq!(r["deleted"], json!([]));
}

/// Manifests, their companions, lock files and the state directory are never taken for
/// backups: a pattern matching one is refused before anything is deleted.
#[test]
fn patterns_matching_the_collections_own_files_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("backups");
    std::fs::create_dir_all(&root).unwrap();
    for name in [
        "db-1.tar.zst",
        "db-1.tar.zst.sha256",
        "db-1.tar.zst.sha256.json",
        "db-2.tar.zst",
        "db.lock",
        "SHA256SUMS",
    ] {
        std::fs::write(root.join(name), b"x").unwrap();
        age(&root.join(name), 30);
    }
    let state = root.join("state");
    std::fs::create_dir_all(state.join("backup_good")).unwrap();
    age(&state, 30);
    let before = snapshot(tmp.path());
    let base = json!({"path": root, "keep_last": 0, "min_keep": 0, "require_good": false, "state_dir": state});
    let refused = |pattern: &str, path: Option<&Path>| {
        let mut args = base.clone();
        args["pattern"] = json!(pattern);
        if let Some(p) = path {
            args["path"] = json!(p);
        }
        let r = run(RETENTION, &args);
        assert!(failed(&r), "{pattern}: {r}");
        assert_eq!(snapshot(tmp.path()), before, "{pattern}: nothing deleted");
        r
    };
    let r = refused("db-1*", None);
    assert_eq!(
        r["msg"],
        "pattern: 'db-1*' matches 2 entries that this collection keeps and never deletes ('db-1.tar.zst.sha256' is a checksum manifest, 'db-1.tar.zst.sha256.json' is a checksum manifest's .json companion); nothing is deleted: make the pattern match only the backups"
    );
    let r = refused("*", None);
    assert_eq!(
        strs(&r["refused"]),
        [
            "'SHA256SUMS' is a checksum manifest",
            "'db-1.tar.zst.sha256' is a checksum manifest",
            "'db-1.tar.zst.sha256.json' is a checksum manifest's .json companion",
            "'db.lock' is a lock file",
            &format!("'state' is the state directory '{}' or holds it", state.display()),
        ]
    );
    let r = refused("st*", None);
    assert!(
        r["msg"].as_str().unwrap().contains("'state' is the state directory"),
        "{r}"
    );
    let r = refused("*", Some(&state));
    assert_eq!(
        r["msg"],
        format!(
            "path: '{0}' is inside the state directory '{0}', whose files are never deleted",
            state.display()
        )
    );
    // The backups alone: fine.
    let mut args = base.clone();
    args["pattern"] = json!("db-*.tar.zst");
    let r = run(RETENTION, &args);
    assert!(!failed(&r), "{r}");
    assert_eq!(names(&r["deleted"]), ["db-2.tar.zst", "db-1.tar.zst"]);
}
