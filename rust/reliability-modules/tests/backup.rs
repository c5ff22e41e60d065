//! `backup_manifest` and `backup_verify` as Ansible runs them, against real files and the
//! real GNU `sha256sum`: its manifests (escaped names included) verify with ours, ours verify
//! with `sha256sum -c`, and every kind of damage is reported once, by path.

// The helpers too: a test that cannot set itself up should fail loudly.
#![allow(clippy::unwrap_used)]

#[path = "support/module.rs"]
mod module;
use module::{failed, strs};

use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;

const MANIFEST: &str = env!("CARGO_BIN_EXE_backup_manifest");
const VERIFY: &str = env!("CARGO_BIN_EXE_backup_verify");

fn run(bin: &str, args: Value) -> Value {
    module::run(bin, &args)
}

const NEWLINE_NAME: &str = "new\nline.txt";
const BACKSLASH_NAME: &str = "back\\slash.txt";

/// A small backup tree, with the two names GNU escapes.
fn tree(root: &Path) {
    let files: &[(&str, &[u8])] = &[
        ("a.txt", b"alpha\n"),
        ("b.bin", &[0u8, 1, 2, 255]),
        ("empty", b""),
        ("sub/c.txt", b"gamma\n"),
        ("sub/deep/d.log", b"delta\n"),
        (NEWLINE_NAME, b"newline\n"),
        (BACKSLASH_NAME, b"backslash\n"),
        ("with space.txt", b"space\n"),
    ];
    for (name, content) in files {
        let p = root.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, content).unwrap();
    }
    // Three buffers and a bit, so streaming across reads is covered too.
    let big: Vec<u8> = (0..(3 * 128 * 1024 + 5)).map(|i| (i * 7 % 256) as u8).collect();
    std::fs::write(root.join("big.dat"), big).unwrap();
}

/// Runs GNU `sha256sum` over every file in `root` (from `root`), writing `out`.
fn gnu_manifest(root: &Path, out: &Path) {
    let mut files = Vec::new();
    for e in walk(root) {
        files.push(e);
    }
    let o = Command::new("sha256sum")
        .args(&files)
        .current_dir(root)
        .output()
        .unwrap();
    assert!(o.status.success(), "sha256sum: {}", String::from_utf8_lossy(&o.stderr));
    std::fs::write(out, o.stdout).unwrap();
}

fn walk(root: &Path) -> Vec<String> {
    fn go(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                go(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).unwrap().to_str().unwrap().to_string());
            }
        }
    }
    let mut out = Vec::new();
    go(root, root, &mut out);
    out.sort();
    out
}

#[test]
fn gnu_manifest_with_escaped_names_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    tree(&data);
    let sums = dir.path().join("SHA256SUMS");
    gnu_manifest(&data, &sums);
    let text = std::fs::read_to_string(&sums).unwrap();
    assert!(
        text.contains("\\n") && text.contains("\\\\"),
        "GNU wrote escaped lines: {text}"
    );
    assert!(text.lines().any(|l| l.starts_with('\\')), "{text}");

    let r = run(VERIFY, json!({"manifest": sums, "root": data, "report_extra": true}));
    assert!(!failed(&r), "{r}");
    let i = &r["checks"]["integrity"];
    assert_eq!(r["status"], "ok");
    assert_eq!(i["files"], 9);
    assert_eq!(i["ok"], 9);
    assert_eq!(i["bytes"], 3 * 128 * 1024 + 5 + 6 + 4 + 6 + 6 + 8 + 10 + 6);
    assert!(i["throughput_mbps"].as_f64().unwrap() >= 0.0);
    assert_eq!(r["changed"], false);
}

#[test]
fn our_manifest_verifies_with_sha256sum_c_and_is_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    tree(&data);
    // The manifest sits inside the tree it describes: it must not list itself.
    let dest = data.join("SHA256SUMS");
    // Spelt differently from the tree's path, the manifest is still recognised and left out.
    let args = json!({"path": data, "dest": data.join("sub/../SHA256SUMS"), "json": true, "threads": 3});
    let r = run(MANIFEST, args.clone());
    assert!(!failed(&r), "{r}");
    assert_eq!(r["changed"], true);
    assert_eq!(r["files"], 9);
    assert_eq!(strs(&r["added"]).len(), 9);
    let r = run(MANIFEST, args);
    assert_eq!((&r["changed"], &r["files"]), (&json!(false), &json!(9)), "{r}");

    let c = Command::new("sha256sum")
        .args(["-c", "--strict", "SHA256SUMS"])
        .current_dir(&data)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&c.stdout);
    assert!(
        c.status.success(),
        "sha256sum -c: {out}{}",
        String::from_utf8_lossy(&c.stderr)
    );
    assert_eq!(out.matches(": OK").count(), 9, "{out}");

    // Same text as GNU's for the same files, sorted.
    std::fs::remove_file(&dest).unwrap();
    std::fs::remove_file(data.join("SHA256SUMS.json")).unwrap();
    let gnu = dir.path().join("gnu");
    gnu_manifest(&data, &gnu);
    let r = run(MANIFEST, json!({"path": data, "dest": dest}));
    assert!(!failed(&r), "{r}");
    let ours = std::fs::read_to_string(&dest).unwrap();
    let mut gnu_lines: Vec<String> = std::fs::read_to_string(&gnu)
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    gnu_lines.sort_by_key(|a| unescaped(a));
    assert_eq!(ours, gnu_lines.iter().map(|l| format!("{l}\n")).collect::<String>());
}

/// The path of a GNU line, for sorting as we do.
fn unescaped(line: &str) -> String {
    let path = &line[line.find("  ").unwrap() + 2..];
    if line.starts_with('\\') {
        path.replace("\\n", "\n").replace("\\\\", "\\")
    } else {
        path.to_string()
    }
}

#[test]
fn manifest_is_idempotent_check_mode_writes_nothing_and_diff_lists_entries() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    tree(&data);
    let dest = dir.path().join("m.sha256");
    let args = json!({"path": data, "dest": dest, "json": true});

    let mut check = args.clone();
    check["_ansible_check_mode"] = json!(true);
    let r = run(MANIFEST, check.clone());
    assert!(!failed(&r), "{r}");
    assert_eq!(r["changed"], true, "check mode predicts the change");
    assert!(
        !dest.exists() && !dir.path().join("m.sha256.json").exists(),
        "check mode wrote nothing"
    );

    assert_eq!(run(MANIFEST, args.clone())["changed"], true);
    let json_doc: Value = serde_json::from_slice(&std::fs::read(dir.path().join("m.sha256.json")).unwrap()).unwrap();
    assert_eq!(json_doc["files"]["a.txt"]["size"], 6);
    assert!(json_doc["files"]["a.txt"]["mtime"].as_f64().unwrap() > 0.0);
    let r = run(MANIFEST, args.clone());
    assert_eq!(r["changed"], false, "{r}");
    assert!(strs(&r["added"]).is_empty() && strs(&r["modified"]).is_empty());

    // One file changed, one removed, one added.
    std::fs::write(data.join("a.txt"), b"ALPHA\n").unwrap();
    std::fs::remove_file(data.join("empty")).unwrap();
    std::fs::write(data.join("sub/new.txt"), b"new\n").unwrap();
    let before = std::fs::read(&dest).unwrap();
    check["_ansible_diff"] = json!(true);
    let r = run(MANIFEST, check);
    assert_eq!(r["changed"], true);
    assert_eq!(
        std::fs::read(&dest).unwrap(),
        before,
        "check mode left the manifest alone"
    );
    assert_eq!(strs(&r["added"]), ["sub/new.txt"]);
    assert_eq!(strs(&r["removed"]), ["empty"]);
    assert_eq!(strs(&r["modified"]), ["a.txt"]);
    let (b, a) = (
        r["diff"]["before"].as_str().unwrap(),
        r["diff"]["after"].as_str().unwrap(),
    );
    assert!(
        b.contains("  a.txt\n") && b.ends_with("  empty\n") && b.lines().count() == 2,
        "{b}"
    );
    assert!(
        a.contains("  a.txt\n") && a.contains("  sub/new.txt\n") && a.lines().count() == 2,
        "{a}"
    );
}

#[test]
fn include_exclude_and_single_file() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    tree(&data);
    std::os::unix::fs::symlink(data.join("a.txt"), data.join("link.txt")).unwrap();
    let dest = dir.path().join("m");
    let r = run(
        MANIFEST,
        json!({"path": data, "dest": dest, "include": ["*.txt"], "exclude": ["sub/deep"]}),
    );
    assert!(!failed(&r), "{r}");
    assert_eq!(r["symlinks_skipped"], 1);
    assert_eq!(
        strs(&r["added"]),
        ["a.txt", BACKSLASH_NAME, NEWLINE_NAME, "sub/c.txt", "with space.txt"]
    );
    let r = run(
        MANIFEST,
        json!({"path": data, "dest": dest, "include": ["link.txt"], "follow_symlinks": true}),
    );
    assert_eq!(strs(&r["added"]), ["link.txt"], "{r}");

    let single = dir.path().join("one");
    let r = run(MANIFEST, json!({"path": data.join("big.dat"), "dest": single}));
    assert!(!failed(&r), "{r}");
    let text = std::fs::read_to_string(&single).unwrap();
    assert!(text.ends_with("  big.dat\n") && text.lines().count() == 1, "{text}");
    let r = run(VERIFY, json!({"manifest": single, "root": data}));
    assert!(!failed(&r), "{r}");

    let r = run(MANIFEST, json!({"path": data, "dest": dest, "include": ["a["]}));
    assert!(failed(&r));
    assert!(
        r["msg"].as_str().unwrap().contains("include: 'a[' is not a valid glob"),
        "{r}"
    );
    let r = run(MANIFEST, json!({"path": dir.path().join("nope"), "dest": dest}));
    assert!(failed(&r) && r["msg"].as_str().unwrap().starts_with("path '"), "{r}");
}

#[test]
fn each_kind_of_damage_is_reported_once_by_path() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    tree(&data);
    let sums = data.join("SHA256SUMS");
    gnu_manifest(&data, &sums);

    // One flipped byte, one truncated file, one missing file, one extra file.
    let mut big = std::fs::read(data.join("big.dat")).unwrap();
    big[200_000] ^= 0x01;
    std::fs::write(data.join("big.dat"), &big).unwrap();
    std::fs::write(data.join("sub/c.txt"), b"gam").unwrap();
    std::fs::remove_file(data.join(NEWLINE_NAME)).unwrap();
    std::fs::write(data.join("sub/stray"), b"?").unwrap();

    let r = run(VERIFY, json!({"manifest": sums, "report_extra": true, "threads": 2}));
    assert!(failed(&r), "{r}");
    assert_eq!(r["status"], "failed");
    let i = &r["checks"]["integrity"];
    assert_eq!(strs(&i["mismatched"]), ["big.dat", "sub/c.txt"]);
    assert_eq!(strs(&i["missing"]), [NEWLINE_NAME]);
    assert_eq!(strs(&i["extra"]), ["sub/stray"]);
    assert_eq!(i["unreadable"], json!([]));
    assert_eq!(i["ok"], 6);
    let msg = r["msg"].as_str().unwrap();
    assert!(
        msg.starts_with("integrity failed: 1 missing ('new\\nline.txt'), 2 mismatched ('big.dat', 'sub/c.txt'), 1 extra ('sub/stray')"),
        "{msg}"
    );
    // Each path once in the whole result.
    let all: Vec<String> = ["missing", "mismatched", "extra"]
        .iter()
        .flat_map(|k| strs(&i[*k]))
        .collect();
    let mut dedup = all.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(all.len(), dedup.len());

    // Without report_extra, the stray file is not reported.
    let r = run(VERIFY, json!({"manifest": sums}));
    assert_eq!(r["checks"]["integrity"]["extra"], json!([]));
}

#[test]
fn unreadable_file_is_reported_once() {
    // A directory where a file should be cannot be read, even by root (permissions can).
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    tree(&data);
    let sums = dir.path().join("sums");
    gnu_manifest(&data, &sums);
    std::fs::remove_file(data.join("a.txt")).unwrap();
    std::fs::create_dir(data.join("a.txt")).unwrap();
    let r = run(VERIFY, json!({"manifest": sums, "root": data, "report_extra": true}));
    assert!(failed(&r), "{r}");
    let i = &r["checks"]["integrity"];
    assert_eq!(
        i["unreadable"],
        json!([{"path": "a.txt", "error": "not a regular file: directory"}]),
        "{r}"
    );
    assert_eq!(i["missing"], json!([]));
    assert_eq!(i["mismatched"], json!([]));
    assert_eq!(i["extra"], json!([]));
    assert!(r["msg"].as_str().unwrap().contains("1 unreadable ('a.txt')"), "{r}");
}

#[test]
fn bad_manifests_fail_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    tree(&data);
    let good = "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb";
    for (text, want) in [
        (
            format!("{good}  a.txt\n{good}  b.bin\nxyz  sub/c.txt\n"),
            "manifest line 3: expected 64 hex digits, found 'xyz'",
        ),
        (
            format!("{good}  a.txt\n{good}  ../outside\n"),
            "manifest line 2: path '../outside' has a '..' component and could escape its root",
        ),
        (
            format!("{good}  /etc/passwd\n"),
            "manifest line 1: path '/etc/passwd' is absolute",
        ),
    ] {
        let m = dir.path().join("bad");
        std::fs::write(&m, &text).unwrap();
        let r = run(VERIFY, json!({"manifest": m, "root": data}));
        assert!(failed(&r), "{r}");
        let msg = r["msg"].as_str().unwrap();
        assert!(msg.contains(want), "{msg} lacks {want}");
        assert!(r.get("checks").is_none(), "nothing was hashed: {r}");
    }
    for (args, want) in [
        (json!({"manifest": dir.path().join("none")}), "cannot read manifest '"),
        (
            json!({"manifest": dir.path().join("bad"), "checks": ["speed"]}),
            "'speed' is not one of 'integrity'",
        ),
        (
            json!({"manifest": dir.path().join("bad"), "root": data.join("a.txt")}),
            "is not a directory",
        ),
        (
            json!({"manifest": dir.path().join("bad"), "threads": 0}),
            "threads: 0 is out of range",
        ),
    ] {
        let r = run(VERIFY, args);
        assert!(failed(&r), "{r}");
        assert!(r["msg"].as_str().unwrap().contains(want), "{r} lacks {want}");
    }
}

/// `backup_verify` on a thread: a run that hangs fails the test after 20 s instead of
/// hanging it.
fn verify_bounded(args: Value) -> Value {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(run(VERIFY, args));
    });
    rx.recv_timeout(std::time::Duration::from_secs(20))
        .expect("backup_verify did not finish within 20 s")
}

/// GNU `sha256sum` of bytes.
fn sha256(bytes: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("sha256sum")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap()[..64].to_string()
}

#[test]
fn links_out_of_the_root_and_special_files_are_reported_not_read() {
    let dir = tempfile::tempdir().unwrap();
    let top = std::fs::canonicalize(dir.path()).unwrap();
    let data = top.join("data");
    tree(&data);
    let sums = top.join("sums");
    gnu_manifest(&data, &sums);
    // A backup made of a link to a live file, with the live file's right digest; a link to
    // /dev/zero; a FIFO; a link that stays inside the backup.
    let live = top.join("live.conf");
    std::fs::write(&live, b"live data\n").unwrap();
    std::os::unix::fs::symlink(&live, data.join("live.conf")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", data.join("zero")).unwrap();
    assert!(Command::new("mkfifo")
        .arg(data.join("fifo"))
        .status()
        .unwrap()
        .success());
    std::os::unix::fs::symlink("sub/c.txt", data.join("inner")).unwrap();
    let mut text = std::fs::read_to_string(&sums).unwrap();
    for (name, content) in [
        ("live.conf", &b"live data\n"[..]),
        ("zero", b""),
        ("fifo", b""),
        ("inner", b"gamma\n"),
    ] {
        text.push_str(&format!("{}  {name}\n", sha256(content)));
    }
    std::fs::write(&sums, text).unwrap();

    let r = verify_bounded(json!({"manifest": sums, "root": data}));
    assert!(failed(&r), "{r}");
    let i = &r["checks"]["integrity"];
    assert_eq!(
        i["unreadable"],
        json!([
            {"path": "fifo", "error": "not a regular file: FIFO"},
            {"path": "live.conf", "error": format!("a symbolic link leads out of the root, to '{}'", live.display())},
            {"path": "zero", "error": "a symbolic link leads out of the root, to '/dev/zero'"},
        ]),
        "{r}"
    );
    assert_eq!(i["ok"], 10, "the link inside the root verifies: {r}");
    // Every link refused, when asked.
    let r = verify_bounded(json!({"manifest": sums, "root": data, "refuse_symlinks": true}));
    let unreadable: Vec<Value> = r["checks"]["integrity"]["unreadable"].as_array().unwrap().clone();
    assert_eq!(unreadable.len(), 4, "{r}");
    assert_eq!(
        unreadable[1],
        json!({"path": "inner", "error": format!("reached through a symbolic link (to '{}'), and links are refused", data.join("sub/c.txt").display())})
    );
    // A root that is itself a link is taken as what it leads to.
    let via = top.join("via");
    std::os::unix::fs::symlink(&data, &via).unwrap();
    let r = verify_bounded(json!({"manifest": sums, "root": via}));
    assert_eq!(r["checks"]["integrity"]["ok"], 10, "{r}");
}

#[test]
fn an_empty_check_list_and_options_of_checks_not_run_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    tree(&data);
    let sums = dir.path().join("sums");
    gnu_manifest(&data, &sums);
    let base = json!({"manifest": sums, "root": data});
    let with = |extra: Value| {
        let mut args = base.clone();
        args.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        run(VERIFY, args)
    };
    assert!(!failed(&with(json!({}))), "the base request passes");
    let r = with(json!({"checks": []}));
    assert!(failed(&r), "{r}");
    assert_eq!(
        r["msg"],
        "checks: the list is empty, so nothing would be verified; name at least one of integrity, completeness, restore_test"
    );
    // Options of checks that do not run are checked all the same.
    for (extra, want) in [
        (json!({"completeness": {"max_age": "soon"}}), "completeness.max_age: "),
        (json!({"completeness": {"min_size": "10Q"}}), "completeness.min_size: "),
        (
            json!({"restore": {"archive": "/x.tar", "max_bytes": "lots"}}),
            "restore.max_bytes: ",
        ),
        (
            json!({"restore": {"restore_command": [""]}}),
            "restore.restore_command: ",
        ),
        (
            json!({"checks": ["completeness"], "completeness": {"path": data}, "sample_percent": 0}),
            "sample_percent: ",
        ),
    ] {
        let r = with(extra.clone());
        assert!(failed(&r), "{extra}: {r}");
        assert!(r["msg"].as_str().unwrap().starts_with(want), "{extra}: {r}");
    }
}
