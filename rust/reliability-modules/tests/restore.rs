//! `backup_verify` with `checks: [restore_test]` as Ansible runs it: archives written by GNU
//! tar (plain, gzip, zstd) restored and compared with a manifest written by GNU `sha256sum`
//! or with the live directory; a restore command (GNU tar itself, as argv); damage reported
//! by path; hostile and broken input failed with the reason, and no sandbox left behind.

// The helpers too: a test that cannot set itself up should fail loudly.
#![allow(clippy::unwrap_used)]

#[path = "support/module.rs"]
mod module;
use module::{failed, strs};

use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::Command;

const VERIFY: &str = env!("CARGO_BIN_EXE_backup_verify");

fn run(args: Value) -> Value {
    module::run(VERIFY, &args)
}

/// A test-owned place: `data/` the live tree, `SHA256SUMS` its manifest, `tmp/` where the
/// sandboxes go (so the test can see that none is left).
struct Scene {
    top: tempfile::TempDir,
}

impl Scene {
    fn new() -> Scene {
        let top = tempfile::tempdir().unwrap();
        let data = top.path().join("data");
        let files: Vec<(String, Vec<u8>)> = vec![
            ("a.txt".into(), b"alpha\n".to_vec()),
            ("empty".into(), Vec::new()),
            ("sub/c.txt".into(), b"gamma\n".to_vec()),
            (
                "sub/deep/d.bin".into(),
                (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect(),
            ),
            ("with space.txt".into(), b"space\n".to_vec()),
        ];
        for (name, content) in &files {
            let p = data.join(name);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, content).unwrap();
        }
        for i in 0..40 {
            std::fs::write(data.join(format!("sub/n{i:02}.txt")), format!("{i}\n")).unwrap();
        }
        std::fs::create_dir(top.path().join("tmp")).unwrap();
        let scene = Scene { top };
        scene.manifest();
        scene
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.top.path().join(rel)
    }

    /// GNU `sha256sum` over every file of `data/`, run there: `SHA256SUMS` beside it.
    fn manifest(&self) {
        let data = self.path("data");
        let mut files = Vec::new();
        let mut stack = vec![data.clone()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).unwrap() {
                let p = e.unwrap().path();
                if p.is_dir() {
                    stack.push(p);
                } else {
                    files.push(p.strip_prefix(&data).unwrap().to_str().unwrap().to_string());
                }
            }
        }
        files.sort();
        let o = Command::new("sha256sum")
            .args(&files)
            .current_dir(&data)
            .output()
            .unwrap();
        assert!(o.status.success());
        std::fs::write(self.path("SHA256SUMS"), o.stdout).unwrap();
    }

    /// GNU tar of `data/` (from inside it) with `flags`, e.g. `["-czf"]`.
    fn archive(&self, name: &str, flags: &[&str]) -> PathBuf {
        let out = self.path(name);
        let o = Command::new("tar")
            .args(flags)
            .arg(&out)
            .arg("-C")
            .arg(self.path("data"))
            .arg(".")
            .output()
            .unwrap();
        assert!(o.status.success(), "tar: {}", String::from_utf8_lossy(&o.stderr));
        out
    }

    fn args(&self, restore: Value) -> Value {
        let mut restore = restore;
        restore["tmpdir"] = json!(self.path("tmp"));
        json!({
            "checks": ["restore_test"],
            "manifest": self.path("SHA256SUMS"),
            "restore": restore,
        })
    }

    fn no_sandbox_left(&self) {
        let left: Vec<_> = std::fs::read_dir(self.path("tmp")).unwrap().collect();
        assert!(left.is_empty(), "sandboxes left: {left:?}");
    }
}

#[test]
fn good_archives_match_the_manifest() {
    let s = Scene::new();
    for (name, flags, format) in [
        ("b.tar", vec!["-cf"], "tar"),
        ("b.tar.gz", vec!["-czf"], "tar.gz"),
        ("b.tar.zst", vec!["--zstd", "-cf"], "tar.zst"),
    ] {
        let archive = s.archive(name, &flags);
        let r = run(s.args(json!({"archive": archive})));
        assert!(!failed(&r), "{name}: {r}");
        let t = &r["checks"]["restore_test"];
        assert_eq!(t["status"], "ok", "{name}");
        assert_eq!(t["format"], format);
        assert_eq!(t["method"], "archive");
        assert_eq!(t["compare"], "manifest");
        assert_eq!(
            (t["files"].as_u64(), t["compared"].as_u64(), t["ok"].as_u64()),
            (Some(45), Some(45), Some(45))
        );
        assert_eq!(t["bytes"], 6 + 6 + 300_000 + 6 + 10 * 2 + 30 * 3, "{name}");
        assert_eq!(t["sandbox_removed"], true);
        assert_eq!(t["error"], Value::Null);
        assert!(t["throughput_mbps"].as_f64().unwrap() > 0.0);
        assert_eq!(r["changed"], false);
        assert!(
            r["msg"]
                .as_str()
                .unwrap()
                .starts_with("restore_test ok: vs manifest: all 45 files match"),
            "{r}"
        );
    }
    s.no_sandbox_left();
}

#[test]
fn a_changed_file_is_mismatched_by_path_and_extra_and_missing_too() {
    let s = Scene::new();
    // The backup is taken after the live tree moved on from its manifest.
    std::fs::write(s.path("data/sub/c.txt"), b"GAMMA\n").unwrap();
    std::fs::remove_file(s.path("data/with space.txt")).unwrap();
    std::fs::write(s.path("data/stray.tmp"), b"stray\n").unwrap();
    let archive = s.archive("b.tar.zst", &["--zstd", "-cf"]);
    let r = run(s.args(json!({"archive": archive})));
    assert!(failed(&r), "{r}");
    let t = &r["checks"]["restore_test"];
    assert_eq!(t["status"], "failed");
    assert_eq!(strs(&t["mismatched"]), ["sub/c.txt"]);
    assert_eq!(strs(&t["missing"]), ["with space.txt"]);
    assert_eq!(strs(&t["extra"]), ["stray.tmp"]);
    assert_eq!(t["ok"], 43);
    assert_eq!(t["sandbox_removed"], true);
    assert!(
        r["msg"]
            .as_str()
            .unwrap()
            .contains("1 missing ('with space.txt'), 1 mismatched ('sub/c.txt'), 1 extra ('stray.tmp')"),
        "{r}"
    );
    s.no_sandbox_left();
}

#[test]
fn compared_with_the_live_directory_and_sampled() {
    let s = Scene::new();
    let archive = s.archive("b.tar.gz", &["-czf"]);
    // Same as live: ok, without any manifest.
    let args = json!({
        "checks": ["restore_test"],
        "restore": {"archive": archive, "directory": s.path("data"), "tmpdir": s.path("tmp")},
    });
    let r = run(args.clone());
    assert!(!failed(&r), "{r}");
    let t = &r["checks"]["restore_test"];
    assert_eq!(
        (t["compare"].as_str(), t["compared"].as_u64()),
        (Some("directory"), Some(45))
    );
    // The live tree changes after the backup: one file differs, one is new, one is gone.
    std::fs::write(s.path("data/a.txt"), b"ALPHA\n").unwrap();
    std::fs::write(s.path("data/new.txt"), b"new\n").unwrap();
    std::fs::remove_file(s.path("data/empty")).unwrap();
    let r = run(args.clone());
    assert!(failed(&r), "{r}");
    let t = &r["checks"]["restore_test"];
    assert_eq!(strs(&t["mismatched"]), ["a.txt"]);
    assert_eq!(strs(&t["missing"]), ["new.txt"]);
    assert_eq!(strs(&t["extra"]), ["empty"]);
    // A 10% sample hashes 5 of the 44 files on both sides (missing and extra are still
    // found by listing); one seed always picks the same ones.
    let mut sampled = args.clone();
    sampled["restore"]["sample_percent"] = json!(10);
    sampled["restore"]["sample_seed"] = json!(42);
    let a = run(sampled.clone());
    let t = &a["checks"]["restore_test"];
    assert_eq!(t["compared"], 5, "{a}");
    assert_eq!(t["sample_seed"], 42);
    assert_eq!(strs(&t["missing"]), ["new.txt"]);
    assert_eq!(strs(&t["extra"]), ["empty"]);
    let b = run(sampled);
    assert_eq!(a["checks"]["restore_test"]["ok"], b["checks"]["restore_test"]["ok"]);
    assert_eq!(
        a["checks"]["restore_test"]["mismatched"],
        b["checks"]["restore_test"]["mismatched"]
    );
    // Without a seed, runs draw different samples and say which.
    let mut unseeded = args;
    unseeded["restore"]["sample_percent"] = json!(10);
    let c = run(unseeded);
    assert!(c["checks"]["restore_test"]["sample_seed"].is_u64(), "{c}");
    s.no_sandbox_left();
}

#[test]
fn a_restore_command_restores_into_the_sandbox() {
    let s = Scene::new();
    let archive = s.archive("b.tar", &["-cf"]);
    let archive = archive.to_str().unwrap();
    let r = run(s.args(json!({"restore_command": ["tar", "-xf", archive, "-C", "{dir}"]})));
    assert!(!failed(&r), "{r}");
    let t = &r["checks"]["restore_test"];
    assert_eq!(t["method"], "command");
    assert_eq!((t["files"].as_u64(), t["ok"].as_u64()), (Some(45), Some(45)));
    assert_eq!(t["command"]["exit_code"], 0);
    let argv = strs(&t["command"]["argv"]);
    assert!(argv[4].contains("hx-restore-"), "{{dir}} replaced: {argv:?}");
    // cwd and HX_RESTORE_DIR are the sandbox too: a command that restores into `.` and
    // records the variable beside the files.
    let r = run(s.args(json!({
        "restore_command": ["sh", "-c", "tar -xf \"$0\" && [ \"$PWD\" = \"$HX_RESTORE_DIR\" ] && echo restored", archive],
        "compare": "manifest",
    })));
    assert!(!failed(&r), "{r}");
    assert_eq!(r["checks"]["restore_test"]["command"]["stdout"], "restored\n");
    // The restore lives in a sub-directory of what the command wrote.
    let r = run(s.args(json!({
        "restore_command": ["sh", "-c", "mkdir inner && tar -xf \"$0\" -C inner", archive],
        "subdir": "inner",
    })));
    assert!(!failed(&r), "{r}");
    assert_eq!(r["checks"]["restore_test"]["ok"], 45);
    s.no_sandbox_left();
}

#[test]
fn a_failing_restore_command_is_reported_with_its_output() {
    let s = Scene::new();
    let missing = s.path("nope.tar");
    let r = run(s.args(json!({"restore_command": ["tar", "-xf", missing, "-C", "{dir}"]})));
    assert!(failed(&r), "{r}");
    let t = &r["checks"]["restore_test"];
    assert_eq!(t["status"], "failed");
    assert_eq!(t["command"]["exit_code"], 2);
    assert!(t["command"]["stderr"].as_str().unwrap().contains("Cannot open"), "{t}");
    let msg = r["msg"].as_str().unwrap();
    assert!(
        msg.starts_with("restore_test failed: the restore command exited with code 2: ") && msg.contains("tar: "),
        "{msg}"
    );
    assert_eq!(t["sandbox_removed"], true);
    // Killed at its timeout, with whatever it started.
    let r = run(s.args(json!({"restore_command": ["sh", "-c", "sleep 30 & sleep 30"], "timeout": 0.5})));
    assert!(failed(&r), "{r}");
    assert!(
        r["msg"]
            .as_str()
            .unwrap()
            .starts_with("restore_test failed: the restore command did not finish within 500ms and was killed"),
        "{r}"
    );
    // A program that does not exist.
    let r = run(s.args(json!({"restore_command": ["/nonexistent/restore"]})));
    assert!(
        r["msg"]
            .as_str()
            .unwrap()
            .contains("could not run '/nonexistent/restore'"),
        "{r}"
    );
    // Over the limits, measured after the command.
    let archive = s.archive("b.tar", &["-cf"]);
    let r = run(s.args(json!({
        "restore_command": ["tar", "-xf", archive, "-C", "{dir}"],
        "max_bytes": "100K",
    })));
    assert!(
        r["msg"]
            .as_str()
            .unwrap()
            .starts_with("restore_test failed: the restore command wrote 300128 bytes, over max_bytes (102400)"),
        "{r}"
    );
    s.no_sandbox_left();
}

/// A tar with one member named `name`, written raw (GNU tar will not write `..`).
fn evil_tar(name: &str) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_size(5);
    h.set_mode(0o644);
    h.set_cksum();
    let mut out = h.as_bytes().to_vec();
    out.extend_from_slice(b"evil\n");
    out.resize(512 * 2, 0);
    out.extend_from_slice(&[0; 1024]);
    out
}

#[test]
fn hostile_and_broken_archives_fail_with_the_reason() {
    let s = Scene::new();
    let evil = s.path("evil.tar");
    std::fs::write(&evil, evil_tar("../../escaped")).unwrap();
    let r = run(s.args(json!({"archive": evil})));
    assert!(failed(&r), "{r}");
    let t = &r["checks"]["restore_test"];
    assert_eq!(t["error"], "member '../../escaped': path leaves the sandbox");
    assert_eq!(t["sandbox_removed"], true);
    assert!(!s.path("escaped").exists() && !s.path("tmp/escaped").exists());

    let good = std::fs::read(s.archive("b.tar.gz", &["-czf"])).unwrap();
    let cut = s.path("cut.tar.gz");
    std::fs::write(&cut, &good[..good.len() / 2]).unwrap();
    let r = run(s.args(json!({"archive": cut})));
    let error = r["checks"]["restore_test"]["error"].as_str().unwrap().to_string();
    assert!(
        error.starts_with(&format!("'{}' is truncated or corrupt: ", cut.display())) && error.contains("tar.gz stream"),
        "{error}"
    );
    let text = s.path("notes.tar");
    std::fs::write(&text, "just some notes\n").unwrap();
    let r = run(s.args(json!({"archive": text})));
    assert_eq!(
        r["checks"]["restore_test"]["error"],
        format!(
            "'{}' is not a tar, tar.gz or tar.zst archive (it starts with 'just som')",
            text.display()
        )
    );
    let r = run(s.args(json!({"archive": s.path("b.tar.gz"), "format": "tar.zst"})));
    assert_eq!(
        r["checks"]["restore_test"]["error"],
        format!(
            "'{}' was given as tar.zst, but its first bytes are those of tar.gz",
            s.path("b.tar.gz").display()
        )
    );
    let r = run(s.args(json!({"archive": s.path("b.tar.gz"), "max_files": 10})));
    assert!(
        r["checks"]["restore_test"]["error"]
            .as_str()
            .unwrap()
            .ends_with("the restore would hold more than max_files (10) files, directories and links"),
        "{r}"
    );
    s.no_sandbox_left();
}

#[test]
fn bad_requests_name_the_bad_value() {
    let s = Scene::new();
    let archive = s.archive("b.tar", &["-cf"]);
    let check = |args: Value, want: &str| {
        let r = run(args);
        assert!(failed(&r), "{r}");
        let msg = r["msg"].as_str().unwrap();
        assert!(msg.contains(want), "got {msg:?}, want {want:?}");
    };
    check(
        json!({"checks": ["restore_test"]}),
        "the restore_test check needs 'restore' (with an 'archive' or a 'restore_command') or 'postgresql' (with a 'dump')",
    );
    check(
        json!({"checks": ["restore_test"], "restore": {"archive": archive, "restore_command": ["true"]}}),
        "restore: options are mutually exclusive: archive, restore_command",
    );
    check(
        json!({"checks": ["restore_test"], "restore": {"archive": archive, "format": "zip"}}),
        "restore.format",
    );
    check(
        s.args(json!({"archive": archive, "max_bytes": "12Q"})),
        "restore.max_bytes: invalid size '12Q'",
    );
    check(s.args(json!({"archive": archive, "max_files": 0})), "restore.max_files");
    check(
        s.args(json!({"archive": archive, "sample_percent": 0})),
        "restore.sample_percent",
    );
    check(
        s.args(json!({"archive": archive, "subdir": "../up"})),
        "restore.subdir: path '../up' has a '..' component",
    );
    check(
        s.args(json!({"restore_command": [""]})),
        "restore.restore_command: the first element must name the program",
    );
    check(
        json!({"checks": ["restore_test"], "restore": {"archive": archive, "tmpdir": s.path("nowhere")}}),
        &format!("restore.tmpdir: '{}' is not a directory", s.path("nowhere").display()),
    );
    check(
        json!({"checks": ["restore_test"], "restore": {"archive": archive, "compare": "manifest"}}),
        "restore.compare is 'manifest', but no 'manifest' is given",
    );
    check(
        json!({"checks": ["restore_test"], "restore": {"archive": archive, "compare": "directory"}}),
        "restore: compare is 'directory' but these options are missing: directory",
    );
    check(
        json!({"checks": ["restore_test"], "restore": {"archive": archive, "directory": s.path("nowhere")}}),
        "restore.directory: '",
    );
    std::fs::write(s.path("SHA256SUMS"), "not a manifest line\n").unwrap();
    check(s.args(json!({"archive": archive})), "manifest line 1");
    s.no_sandbox_left();
}

#[test]
fn a_subdir_that_is_not_there_fails_the_comparison() {
    let s = Scene::new();
    let archive = s.archive("b.tar", &["-cf"]);
    let r = run(s.args(json!({"archive": archive, "subdir": "srv/backup"})));
    assert!(failed(&r), "{r}");
    assert_eq!(
        r["checks"]["restore_test"]["error"],
        "the restore has no directory 'srv/backup'"
    );
    s.no_sandbox_left();
}

#[test]
fn a_failed_restore_reports_what_it_wrote() {
    let s = Scene::new();
    // Stopped by max_files after 30 entries: the report counts them, not 0.
    let archive = s.archive("b.tar", &["-cf"]);
    let r = run(s.args(json!({"archive": archive, "max_files": 30})));
    assert!(failed(&r), "{r}");
    let t = &r["checks"]["restore_test"];
    let (files, dirs) = (t["files"].as_u64().unwrap(), t["directories"].as_u64().unwrap());
    assert_eq!(files + dirs, 30, "{t}");
    assert!(files >= 27, "{t}");
    let msg = r["msg"].as_str().unwrap();
    assert!(msg.contains(&format!("({files} files, ")), "{msg}");
    // A restore command that fails after writing two files.
    let r = run(s.args(json!({"restore_command": ["sh", "-c", "echo a > a; echo b > b; exit 3"]})));
    let t = &r["checks"]["restore_test"];
    assert_eq!((t["files"].as_u64(), t["bytes"].as_u64()), (Some(2), Some(4)), "{t}");
    assert!(r["msg"].as_str().unwrap().contains("(2 files, 4 bytes"), "{r}");
    s.no_sandbox_left();
}

#[test]
fn hostile_extension_headers_give_a_short_report() {
    let s = Scene::new();
    // A GNU long name of 4000 NUL bytes, then a PAX header claiming 1 GiB: the result
    // names the member by a short escaped prefix and the cap by its size.
    let mut tar = Vec::new();
    for (kind, body) in [(b'L', vec![0u8; 4000]), (b'0', b"x".to_vec())] {
        let mut h = tar::Header::new_gnu();
        h.as_old_mut().name[..4].copy_from_slice(b"name");
        h.set_entry_type(tar::EntryType::new(kind));
        h.set_size(body.len() as u64);
        h.set_cksum();
        tar.extend_from_slice(h.as_bytes());
        tar.extend_from_slice(&body);
        tar.resize(tar.len().div_ceil(512) * 512, 0);
    }
    tar.extend_from_slice(&[0; 1024]);
    let nul = s.path("nul.tar");
    std::fs::write(&nul, &tar).unwrap();
    let r = run(s.args(json!({"archive": nul})));
    assert!(failed(&r), "{r}");
    let text = r.to_string();
    assert!(text.len() < 4000, "{} bytes of output: {:.400}", text.len(), text);
    let error = r["checks"]["restore_test"]["error"].as_str().unwrap();
    assert!(
        error.starts_with("member '\\x00\\x00") && error.ends_with("(3999 bytes)': the name holds a NUL byte"),
        "{error}"
    );

    let mut h = tar::Header::new_ustar();
    h.set_path("pax").unwrap();
    h.set_entry_type(tar::EntryType::XHeader);
    h.set_size(1 << 30);
    h.set_cksum();
    let mut tar = h.as_bytes().to_vec();
    tar.resize(4 << 20, 0);
    let pax = s.path("pax.tar");
    std::fs::write(&pax, &tar).unwrap();
    let r = run(s.args(json!({"archive": pax})));
    assert_eq!(
        r["checks"]["restore_test"]["error"],
        format!(
            "'{}' at its first header: a PAX header ('x') of 1073741824 bytes, over the 65536-byte cap for extension headers",
            pax.display()
        )
    );
    s.no_sandbox_left();
}

#[test]
fn a_manifest_kept_in_the_backup_is_not_an_extra_file() {
    let s = Scene::new();
    // The documented layout: the manifest and its companion inside the backup.
    let inside = s.path("data/SHA256SUMS");
    std::fs::rename(s.path("SHA256SUMS"), &inside).unwrap();
    std::fs::write(s.path("data/SHA256SUMS.json"), "{}\n").unwrap();
    let archive = s.archive("b.tar.gz", &["-czf"]);
    let mut args = s.args(json!({"archive": archive}));
    args["manifest"] = json!(inside);
    let r = run(args);
    assert!(!failed(&r), "{r}");
    assert_eq!(r["checks"]["restore_test"]["extra"], json!([]));
    // The same rule as integrity with report_extra on the live tree.
    let r = run(json!({"checks": ["integrity"], "manifest": inside, "report_extra": true}));
    assert!(!failed(&r), "{r}");
    // Another file is still extra, in both.
    std::fs::write(s.path("data/stray"), "x").unwrap();
    let archive = s.archive("c.tar.gz", &["-czf"]);
    let mut args = s.args(json!({"archive": archive}));
    args["manifest"] = json!(inside);
    let r = run(args);
    assert_eq!(r["checks"]["restore_test"]["extra"], json!(["stray"]), "{r}");
    let r = run(json!({"checks": ["integrity"], "manifest": inside, "report_extra": true}));
    assert_eq!(r["checks"]["integrity"]["extra"], json!(["stray"]), "{r}");
    s.no_sandbox_left();
}
