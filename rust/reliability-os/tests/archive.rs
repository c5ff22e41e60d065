//! `archive` against real archives: good ones written by GNU tar (plain, `-z`, `--zstd`,
//! and a zstd stream of two frames), and hostile or damaged ones crafted here header by
//! header. Every escape is refused with its member named, and each test proves that nothing
//! appeared outside the sandbox and that the sandbox itself is gone afterwards.

// A test that cannot set itself up should fail loudly.
#![allow(clippy::unwrap_used)]

use reliability_os::archive::{extract, ArchiveError, Extracted, Format, Limits, Sandbox};
use std::collections::BTreeSet;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use tar::EntryType;

const ROOMY: Limits = Limits {
    max_bytes: 1 << 30,
    max_files: 100_000,
};

/// Every path under `dir` (not following links) with its kind: the state to compare before
/// and after an extraction.
fn listing(dir: &Path) -> BTreeSet<String> {
    fn go(root: &Path, dir: &Path, out: &mut BTreeSet<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let kind = if m.file_type().is_symlink() {
                "link"
            } else if m.is_dir() {
                "dir"
            } else {
                "file"
            };
            out.insert(format!("{kind} {rel}"));
            if m.is_dir() {
                go(root, &p, out);
            }
        }
    }
    let mut out = BTreeSet::new();
    go(dir, dir, &mut out);
    out
}

/// A test-owned place: `<top>/input/` holds the archive, `<top>/box/` the sandboxes, so an
/// escape of one or two `..` lands in `box/` or `top/`, where the test looks for it.
struct Scene {
    top: tempfile::TempDir,
}

impl Scene {
    fn new() -> Scene {
        let top = tempfile::tempdir().unwrap();
        std::fs::create_dir(top.path().join("input")).unwrap();
        std::fs::create_dir(top.path().join("box")).unwrap();
        Scene { top }
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.top.path().join(rel)
    }

    /// Extracts `bytes` (written to `input/<name>`) in a fresh sandbox, asserts the sandbox
    /// is gone afterwards and that nothing outside it changed, and returns the outcome.
    fn attempt(&self, name: &str, bytes: &[u8], format: Option<Format>, limits: &Limits) -> Result<Extracted, String> {
        let archive = self.path("input").join(name);
        std::fs::write(&archive, bytes).unwrap();
        let before = listing(self.top.path());
        let sandbox = Sandbox::create(&self.path("box")).unwrap();
        let meta = std::fs::metadata(sandbox.path()).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o700, "the sandbox is private");
        let result = extract(&archive, format, sandbox.path(), limits).map_err(|e| e.to_string());
        drop(sandbox);
        assert_eq!(listing(self.top.path()), before, "nothing changed outside the sandbox");
        assert_eq!(listing(&self.path("box")), BTreeSet::new(), "the sandbox is gone");
        result
    }
}

/// One crafted member: raw name and link name bytes (anything goes, `..` and `/` too).
struct Member<'a> {
    name: &'a str,
    kind: EntryType,
    data: &'a [u8],
    link: &'a str,
}

fn file<'a>(name: &'a str, data: &'a [u8]) -> Member<'a> {
    Member {
        name,
        kind: EntryType::Regular,
        data,
        link: "",
    }
}

fn link<'a>(kind: EntryType, name: &'a str, target: &'a str) -> Member<'a> {
    Member {
        name,
        kind,
        data: b"",
        link: target,
    }
}

fn special(kind: EntryType, name: &str) -> Member<'_> {
    Member {
        name,
        kind,
        data: b"",
        link: "",
    }
}

/// A tar stream written block by block: the tar crate's `Header` for the layout, the
/// names poked in raw, since its setters (rightly) refuse `..` and absolute paths.
fn craft(members: &[Member]) -> Vec<u8> {
    let mut out = Vec::new();
    for m in members {
        let mut h = tar::Header::new_gnu();
        {
            let old = h.as_old_mut();
            old.name[..m.name.len()].copy_from_slice(m.name.as_bytes());
            old.linkname[..m.link.len()].copy_from_slice(m.link.as_bytes());
        }
        h.set_entry_type(m.kind);
        h.set_size(m.data.len() as u64);
        h.set_mode(if m.kind == EntryType::Directory { 0o755 } else { 0o644 });
        h.set_mtime(1_700_000_000);
        h.set_cksum();
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(m.data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// Compresses with the real `zstd` binary.
fn zstd(bytes: &[u8]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    std::fs::write(&input, bytes).unwrap();
    let out = Command::new("zstd").args(["-q", "-c"]).arg(&input).output().unwrap();
    assert!(out.status.success(), "zstd: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

fn refused(scene: &Scene, name: &str, members: &[Member]) -> String {
    scene.attempt(name, &craft(members), None, &ROOMY).unwrap_err()
}

#[test]
fn path_escapes_are_refused_by_name() {
    let s = Scene::new();
    let abs = s.path("abs-target");
    let abs_name = abs.display().to_string();
    let cases: Vec<(Vec<Member>, String)> = vec![
        (
            vec![file("ok.txt", b"fine"), file("../x", b"evil")],
            "member '../x': path leaves the sandbox".into(),
        ),
        (
            vec![file("a/../../x", b"evil")],
            "member 'a/../../x': path leaves the sandbox".into(),
        ),
        (
            vec![file("../../etc/passwd", b"evil")],
            "member '../../etc/passwd': path leaves the sandbox".into(),
        ),
        (
            vec![file(&abs_name, b"evil")],
            format!("member '{abs_name}': absolute path"),
        ),
    ];
    for (i, (members, want)) in cases.into_iter().enumerate() {
        assert_eq!(refused(&s, &format!("{i}.tar"), &members), want);
    }
    assert!(!s.path("box/x").exists() && !s.path("x").exists() && !abs.exists());
}

#[test]
fn symlink_escapes_are_refused_by_name() {
    let s = Scene::new();
    let victim = s.path("victim");
    std::fs::create_dir(&victim).unwrap();
    let victim_name = victim.display().to_string();
    let probe = "/etc/hx-restore-test-probe";
    let cases: Vec<(Vec<Member>, String)> = vec![
        // The classic pair: a link out, then a file through it. The link is refused first.
        (
            vec![
                link(EntryType::Symlink, "etc", "/etc"),
                file("etc/hx-restore-test-probe", b"evil"),
            ],
            "member 'etc': symbolic link to '/etc' leaves the sandbox".into(),
        ),
        (
            vec![
                link(EntryType::Symlink, "link", &victim_name),
                file("link/passwd", b"evil"),
            ],
            format!("member 'link': symbolic link to '{victim_name}' leaves the sandbox"),
        ),
        (
            vec![link(EntryType::Symlink, "up", "../../outside")],
            "member 'up': symbolic link to '../../outside' leaves the sandbox".into(),
        ),
        // A link that stays inside is fine, but no member may be written through it.
        (
            vec![
                special(EntryType::Directory, "sub"),
                link(EntryType::Symlink, "in", "sub"),
                file("in/passwd", b"evil"),
            ],
            "member 'in/passwd': its parent 'in' is a symbolic link".into(),
        ),
        // Chained: `dot` is the top itself, so `dot/..` is outside.
        (
            vec![
                link(EntryType::Symlink, "dot", "."),
                link(EntryType::Symlink, "out", "dot/../victim"),
            ],
            "member 'out': symbolic link to 'dot/../victim' leaves the sandbox".into(),
        ),
        // `..` out of a name that is nothing yet: a later member could make it a link.
        (
            vec![
                link(EntryType::Symlink, "later-out", "later/../../victim"),
                link(EntryType::Symlink, "later", "."),
            ],
            "member 'later-out': symbolic link to 'later/../../victim' steps out of 'later', which is not a \
             directory extracted before it"
                .into(),
        ),
        // A link replaced by another after something was resolved through it.
        (
            vec![
                special(EntryType::Directory, "d"),
                link(EntryType::Symlink, "l", "d"),
                link(EntryType::Symlink, "l", "."),
            ],
            "member 'l': already extracted as a symbolic link".into(),
        ),
    ];
    for (i, (members, want)) in cases.into_iter().enumerate() {
        assert_eq!(refused(&s, &format!("{i}.tar"), &members), want);
    }
    assert!(!Path::new(probe).exists());
    assert_eq!(listing(&victim), BTreeSet::new(), "nothing was written through a link");
    assert!(!s.path("outside").exists());
}

#[test]
fn hardlinks_and_special_files_are_refused_by_name() {
    let s = Scene::new();
    let cases: Vec<(Vec<Member>, &str)> = vec![
        (
            vec![link(EntryType::Link, "pw", "/etc/passwd")],
            "member 'pw': hard link to '/etc/passwd': absolute path",
        ),
        (
            vec![link(EntryType::Link, "x", "../x")],
            "member 'x': hard link to '../x': path leaves the sandbox",
        ),
        (
            vec![link(EntryType::Link, "early", "later.txt"), file("later.txt", b"x")],
            "member 'early': hard link to 'later.txt', which is not a file extracted before it",
        ),
        (
            vec![special(EntryType::Directory, "d"), link(EntryType::Link, "dl", "d")],
            "member 'dl': hard link to 'd', which is not a file extracted before it",
        ),
        (
            vec![special(EntryType::Char, "null")],
            "member 'null': character device",
        ),
        (vec![special(EntryType::Block, "sda")], "member 'sda': block device"),
        (
            vec![special(EntryType::Fifo, "pipe")],
            "member 'pipe': FIFO (named pipe)",
        ),
    ];
    for (i, (members, want)) in cases.into_iter().enumerate() {
        assert_eq!(refused(&s, &format!("{i}.tar"), &members), want);
    }
}

#[test]
fn refusals_hold_in_compressed_archives_too() {
    let s = Scene::new();
    let evil = craft(&[file("ok", b"ok"), file("../x", b"evil")]);
    let want = "member '../x': path leaves the sandbox";
    assert_eq!(s.attempt("e.tar.gz", &gzip(&evil), None, &ROOMY).unwrap_err(), want);
    assert_eq!(s.attempt("e.tar.zst", &zstd(&evil), None, &ROOMY).unwrap_err(), want);
    assert!(!s.path("box/x").exists());
}

#[test]
fn limits_are_checked_before_writing() {
    let s = Scene::new();
    let tar = craft(&[file("a", &[1; 600]), file("b", &[2; 600]), file("c", &[3; 10])]);
    let err = s
        .attempt(
            "big.tar",
            &tar,
            None,
            &Limits {
                max_bytes: 1000,
                max_files: 100,
            },
        )
        .unwrap_err();
    assert_eq!(
        err,
        "member 'b': its 600 bytes would bring the restore to 1200 bytes, over max_bytes (1000)"
    );
    let err = s
        .attempt(
            "many.tar",
            &tar,
            None,
            &Limits {
                max_bytes: 1 << 20,
                max_files: 2,
            },
        )
        .unwrap_err();
    assert_eq!(
        err,
        "member 'c': the restore would hold more than max_files (2) files, directories and links"
    );
    // Implicit parent directories count too.
    let nested = craft(&[file("d1/d2/f", b"x")]);
    let err = s
        .attempt(
            "nested.tar",
            &nested,
            None,
            &Limits {
                max_bytes: 1 << 20,
                max_files: 2,
            },
        )
        .unwrap_err();
    assert!(
        err.starts_with("member 'd1/d2/f': the restore would hold more than max_files (2)"),
        "{err}"
    );
    // Exactly at the limits is fine.
    let ok = s
        .attempt(
            "exact.tar",
            &tar,
            None,
            &Limits {
                max_bytes: 1210,
                max_files: 3,
            },
        )
        .unwrap();
    assert_eq!((ok.files, ok.bytes), (3, 1210));
}

/// A tree with what real backups hold: nested directories, an empty file, a long name (GNU
/// long-name headers), a UTF-8 name, an executable, a setuid file, an inner relative
/// symbolic link, a hard link, an empty directory.
fn source_tree(root: &Path) {
    let long = format!("{}/{}.txt", "d".repeat(80), "n".repeat(120));
    let files: Vec<(String, Vec<u8>)> = vec![
        ("a.txt".into(), b"alpha\n".to_vec()),
        ("empty".into(), Vec::new()),
        (
            "sub/deep/c.bin".into(),
            (0..70_000u32).map(|i| (i * 31 % 251) as u8).collect(),
        ),
        (long, b"long\n".to_vec()),
        ("caf\u{e9}/\u{1f600}.txt".into(), b"utf8\n".to_vec()),
        ("run.sh".into(), b"#!/bin/sh\n".to_vec()),
        ("suid".into(), b"s\n".to_vec()),
    ];
    for (name, content) in &files {
        let p = root.join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
    }
    std::fs::set_permissions(root.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::set_permissions(root.join("suid"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    std::os::unix::fs::symlink("sub/deep/c.bin", root.join("to-c")).unwrap();
    std::os::unix::fs::symlink("../a.txt", root.join("sub/up")).unwrap();
    std::fs::hard_link(root.join("a.txt"), root.join("sub/hard.txt")).unwrap();
    std::fs::create_dir(root.join("void")).unwrap();
}

fn gnu_tar(args: &[&str], src: &Path, out: &Path) {
    let o = Command::new("tar")
        .args(args)
        .arg(out)
        .arg("-C")
        .arg(src)
        .arg(".")
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "tar {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Every file's content, every link's target and every directory, by relative path.
fn contents(root: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in listing(root) {
        let (kind, rel) = line.split_once(' ').unwrap();
        let p = root.join(rel);
        out.insert(match kind {
            "file" => format!("{rel} = {:?}", std::fs::read(&p).unwrap()),
            "link" => format!("{rel} -> {}", std::fs::read_link(&p).unwrap().display()),
            _ => format!("{rel}/"),
        });
    }
    out
}

#[test]
fn gnu_tar_archives_restore_exactly() {
    let s = Scene::new();
    let src = s.path("src");
    source_tree(&src);
    let want = contents(&src);
    let made: Vec<(&str, Vec<&str>, Format)> = vec![
        ("b.tar", vec!["-cf"], Format::Tar),
        ("b.tgz", vec!["-czf"], Format::TarGz),
        ("b.tzst", vec!["--zstd", "-cf"], Format::TarZst),
        // PAX headers for the long and the UTF-8 names.
        ("b.pax.tar", vec!["--format=pax", "-cf"], Format::Tar),
        // Named as something else: the format comes from the bytes.
        ("b.tar.gz", vec!["--zstd", "-cf"], Format::TarZst),
    ];
    for (name, args, format) in made {
        let archive = s.path("input").join(name);
        gnu_tar(&args, &src, &archive);
        let sandbox = Sandbox::create(&s.path("box")).unwrap();
        let got = extract(&archive, None, sandbox.path(), &ROOMY).unwrap();
        assert_eq!(got.format, format.name(), "{name}");
        assert_eq!(contents(sandbox.path()), want, "{name}");
        assert_eq!(
            (got.files, got.hardlinks, got.symlinks, got.directories),
            (8, 1, 2, 5),
            "{name}: {got:?}"
        );
        assert_eq!(got.bytes, 6 + 70_000 + 5 + 5 + 10 + 2, "{name}");
        let root = sandbox.path();
        let mode = |p: &str| std::fs::metadata(root.join(p)).unwrap().permissions().mode() & 0o7777;
        assert_eq!(mode("run.sh"), 0o755, "{name}");
        assert_eq!(mode("suid"), 0o755, "{name}: no setuid bit restored");
        let ino = |p: &str| std::fs::metadata(root.join(p)).unwrap().ino();
        assert_eq!(ino("a.txt"), ino("sub/hard.txt"), "{name}: a real hard link");
        let mtime = |r: &Path| std::fs::metadata(r.join("sub/deep/c.bin")).unwrap().mtime();
        assert_eq!(mtime(root), mtime(&src), "{name}");
        // Asked for by its right name, it extracts too.
        let again = Sandbox::create(&s.path("box")).unwrap();
        extract(&archive, Some(format), again.path(), &ROOMY).unwrap();
        again.remove().unwrap();
        sandbox.remove().unwrap();
    }
    assert_eq!(listing(&s.path("box")), BTreeSet::new());
}

#[test]
fn a_zstd_stream_of_several_frames_restores() {
    let s = Scene::new();
    let src = s.path("src");
    source_tree(&src);
    let plain = s.path("input/p.tar");
    gnu_tar(&["-cf"], &src, &plain);
    let bytes = std::fs::read(&plain).unwrap();
    // Two frames split mid-block, as `zstd` writes when appended to (`cat a.zst b.zst`).
    let (a, b) = bytes.split_at(bytes.len() / 2 + 77);
    let mut two = zstd(a);
    two.extend(zstd(b));
    let got = s.attempt("two.tar.zst", &two, None, &ROOMY).unwrap();
    assert_eq!(got.files, 8);
    // And a gzip of two members (`pigz`, `cat a.gz b.gz`).
    let mut two = gzip(a);
    two.extend(gzip(b));
    assert_eq!(s.attempt("two.tar.gz", &two, None, &ROOMY).unwrap().files, 8);
}

/// Compresses with the real `zstd` binary reading a pipe, so the frame keeps the window
/// `--long=LOG` asks for (a file's known size would shrink it).
fn zstd_window(bytes: &[u8], log: u32) -> Vec<u8> {
    use std::process::Stdio;
    let mut child = Command::new("zstd")
        .args(["-q", "-c", &format!("--long={log}"), "--memory=2048MB"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let input = bytes.to_vec();
    let feeder = std::thread::spawn(move || stdin.write_all(&input).unwrap());
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    assert!(out.status.success(), "zstd: {}", String::from_utf8_lossy(&out.stderr));
    // The window descriptor (after the magic and the frame header descriptor): exponent
    // 10 + its top five bits.
    assert_eq!(
        u32::from(out.stdout[5] >> 3) + 10,
        log,
        "zstd kept --long={log}'s window"
    );
    out.stdout
}

#[test]
fn a_zstd_window_over_128_mib_is_refused_and_zstd_s_largest_default_restores() {
    // The decoder's memory is bounded by the window a frame asks for: up to 2^27 (what
    // `zstd -d` and GNU tar accept without --memory), never more, whatever the header says.
    let s = Scene::new();
    let src = s.path("src");
    source_tree(&src);
    let plain = s.path("input/p.tar");
    gnu_tar(&["-cf"], &src, &plain);
    let tar = std::fs::read(&plain).unwrap();
    let got = s.attempt("w27.tar.zst", &zstd_window(&tar, 27), None, &ROOMY).unwrap();
    assert_eq!(got.files, 8);
    let err = s
        .attempt("w28.tar.zst", &zstd_window(&tar, 28), None, &ROOMY)
        .unwrap_err();
    assert!(
        err.contains("the tar.zst stream is damaged: a zstd frame asks for a window over 128 MiB"),
        "{err}"
    );
}

#[test]
fn damaged_and_foreign_input_is_named() {
    let s = Scene::new();
    let src = s.path("src");
    source_tree(&src);
    let tar_path = s.path("input/good.tar");
    gnu_tar(&["-cf"], &src, &tar_path);
    let tar = std::fs::read(&tar_path).unwrap();
    let gz = gzip(&tar);
    let zst = zstd(&tar);
    let check = |name: &str, bytes: &[u8], format: Option<Format>, want: &str| {
        let err = s.attempt(name, bytes, format, &ROOMY).unwrap_err();
        let path = s.path("input").join(name).display().to_string();
        let want = want.replace("{path}", &path);
        assert!(err.starts_with(&want), "{name}: got {err:?}, want {want:?}...");
        assert!(!err.contains(char::REPLACEMENT_CHARACTER), "{name}: printable: {err:?}");
    };
    check("empty.tar", b"", None, "'{path}' is empty, not an archive");
    check(
        "text.tar",
        b"hello, this is text\n",
        None,
        "'{path}' is not a tar, tar.gz or tar.zst archive (it starts with 'hello, t')",
    );
    let noise: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    check(
        "noise.tar",
        &noise,
        None,
        "'{path}' is not a tar, tar.gz or tar.zst archive (it starts with bytes ",
    );
    check(
        "wrong.tar",
        &gz,
        Some(Format::Tar),
        "'{path}' was given as tar, but its first bytes are those of tar.gz",
    );
    check(
        "wrong.tar.gz",
        &zst,
        Some(Format::TarGz),
        "'{path}' was given as tar.gz, but its first bytes are those of tar.zst",
    );
    // Compressed, but not a tar inside.
    check(
        "notar.tar.gz",
        &gzip(&noise),
        None,
        "'{path}' is truncated or corrupt: it holds no tar archive (its first header: ",
    );
    // Cut inside a member's data, and exactly at a header boundary.
    check(
        "cut.tar",
        &tar[..tar.len() / 2],
        None,
        "'{path}' is truncated or corrupt: member '",
    );
    check(
        "cut-at-block.tar",
        &tar[..1536],
        None,
        "'{path}' is truncated or corrupt: the tar stream ends after member '",
    );
    // Where compressed damage shows depends on the bytes (the tree's mtimes change them):
    // the layer that broke is what must be named.
    let damaged = |name: &str, bytes: &[u8], layer: &str| {
        let err = s.attempt(name, bytes, None, &ROOMY).unwrap_err();
        let path = s.path("input").join(name).display().to_string();
        assert!(
            err.starts_with(&format!("'{path}' is truncated or corrupt: "))
                && err.contains(&format!("the {layer} stream is damaged: ")),
            "{name}: {err}"
        );
    };
    damaged("cut.tar.gz", &gz[..gz.len() / 2], "tar.gz");
    damaged("cut-trailer.tar.gz", &gz[..gz.len() - 4], "tar.gz");
    damaged("cut.tar.zst", &zst[..zst.len() / 2], "tar.zst");
    damaged("cut-end.tar.zst", &zst[..zst.len() - 3], "tar.zst");
    for (name, mut bytes, layer) in [
        ("flipped.tar.gz", gz.clone(), "tar.gz"),
        ("flipped.tar.zst", zst.clone(), "tar.zst"),
    ] {
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0x55;
        damaged(name, &bytes, layer);
    }
    // A directory, and a file that does not exist.
    let err = extract(&src, None, &s.path("box"), &ROOMY).unwrap_err();
    assert!(matches!(err, ArchiveError::Open { .. }), "{err}");
    let err = extract(&s.path("nope.tar"), None, &s.path("box"), &ROOMY).unwrap_err();
    assert!(err.to_string().starts_with("cannot read '"), "{err}");
}

#[test]
fn the_sandbox_is_removed_even_when_made_read_only() {
    let parent = tempfile::tempdir().unwrap();
    let sandbox = Sandbox::create(parent.path()).unwrap();
    let ro = sandbox.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::write(ro.join("f"), b"x").unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o500)).unwrap();
    let measured = sandbox.measure().unwrap();
    assert_eq!((measured.files, measured.directories, measured.bytes), (1, 1, 1));
    sandbox.remove().unwrap();
    assert_eq!(listing(parent.path()), BTreeSet::new());
}

/// One header block of type `kind` whose size field says `size`, whatever follows it.
fn header(kind: u8, name: &str, size: u64) -> Vec<u8> {
    let mut h = tar::Header::new_gnu();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.set_entry_type(EntryType::new(kind));
    h.set_size(size);
    h.set_mode(0o644);
    h.set_mtime(1_700_000_000);
    h.set_cksum();
    h.as_bytes().to_vec()
}

/// `header` with `body` after it, padded to a block.
fn extension(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = header(kind, "././@LongLink", body.len() as u64);
    out.extend_from_slice(body);
    out.resize(out.len().div_ceil(512) * 512, 0);
    out
}

/// Runs a hostile archive, asserting it fails quickly with a short message.
fn hostile(s: &Scene, name: &str, bytes: &[u8], limits: &Limits) -> String {
    let started = std::time::Instant::now();
    let err = s.attempt(name, bytes, None, limits).unwrap_err();
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "{name}: {:?}",
        started.elapsed()
    );
    assert!(
        err.len() < 600,
        "{name}: a message of {} bytes: {:.300}",
        err.len(),
        err
    );
    err
}

#[test]
fn extension_headers_are_capped_before_they_are_read() {
    let s = Scene::new();
    // A PAX header whose body is 16 MiB (of zeros, so a gzip of a few KiB): it used to be
    // read whole into memory and then ignored. Its size field alone refuses it now.
    for kind in [b'x', b'g'] {
        let mut tar = extension(kind, &vec![0u8; 16 << 20]);
        tar.extend(craft(&[file("a", b"a")]));
        let err = hostile(&s, "pax.tar.gz", &gzip(&tar), &ROOMY);
        assert!(
            err.contains(&format!(
                "PAX header ('{}') of 16777216 bytes, over the 65536-byte cap",
                kind as char
            )),
            "{err}"
        );
    }
    // A size field of 8 GiB with nothing behind it: refused by the field, not by reading.
    let mut tar = header(b'x', "pax", 8 << 30);
    tar.extend_from_slice(&[0u8; 1024]);
    let err = hostile(&s, "huge-pax.tar", &tar, &ROOMY);
    assert!(err.contains("of 8589934592 bytes, over the 65536-byte cap"), "{err}");
    // GNU long names and long link names: at most 4096 bytes (PATH_MAX).
    for kind in [b'L', b'K'] {
        let mut tar = extension(kind, &vec![b'a'; 100_000]);
        tar.extend(craft(&[file("a", b"a")]));
        let err = hostile(&s, "long.tar", &tar, &ROOMY);
        assert!(err.contains("over the 4096-byte cap"), "{err}");
    }
    // The guard follows the layout as the crate does: a PAX `size` record overrides the
    // header's, so the header after that member is still seen (and its cap still holds).
    let mut tar = extension(b'x', b"10 size=5\n");
    tar.extend(header(b'0', "p", 0));
    tar.extend_from_slice(b"hello");
    tar.resize(tar.len().div_ceil(512) * 512, 0);
    let mut ok = tar.clone();
    ok.extend_from_slice(&[0u8; 1024]);
    assert_eq!(s.attempt("pax-size.tar", &ok, None, &ROOMY).unwrap().bytes, 5);
    tar.extend(header(b'x', "pax", 8 << 30));
    tar.extend_from_slice(&[0u8; 1024]);
    let err = hostile(&s, "pax-size-then-huge.tar", &tar, &ROOMY);
    assert!(
        err.contains("after member 'p': a PAX header ('x') of 8589934592 bytes"),
        "{err}"
    );
    // A long name of PATH_MAX still restores.
    let name = format!("{}/{}", "d".repeat(200), "f".repeat(200));
    let mut tar = extension(b'L', format!("{name}\0").as_bytes());
    tar.extend(craft(&[file("x", b"content")]));
    assert_eq!(s.attempt("ok-long.tar", &tar, None, &ROOMY).unwrap().files, 1);
}

#[test]
fn names_in_messages_are_escaped_and_cut_short() {
    let s = Scene::new();
    // A long name of NUL bytes: the message shows a short, escaped prefix of it.
    let mut tar = extension(b'L', &[0u8; 4000]);
    tar.extend(craft(&[file("a", b"a")]));
    let err = hostile(&s, "nul.tar", &tar, &ROOMY);
    assert!(err.starts_with("member '\\x00\\x00"), "{err}");
    assert!(err.contains("(3999 bytes)"), "{err}");
    // Control characters and invalid UTF-8 in a refused name are escaped too.
    let mut tar = header(b'3', "dev\x1b[31m\\", 0);
    tar[4] = 0xff;
    tar.extend_from_slice(&[0u8; 1024]);
    let mut h = tar::Header::from_byte_slice(&tar[..512]).clone();
    h.set_cksum();
    tar[..512].copy_from_slice(h.as_bytes());
    let err = hostile(&s, "ctl.tar", &tar, &ROOMY);
    assert_eq!(err, "member 'dev\\x1b\\xff31m\\\\': character device");
}

#[test]
fn every_byte_of_the_archive_counts_against_the_limits() {
    let s = Scene::new();
    let limits = Limits {
        max_bytes: 1 << 20,
        max_files: 10,
    };
    // A directory member carrying 64 MiB of data nobody writes: it used to be read and
    // skipped, as long as it took, whatever max_bytes said.
    let mut tar = header(b'5', "d/", 64 << 20);
    tar.resize(512 + (64 << 20), 0);
    tar.extend_from_slice(&[0u8; 1024]);
    let err = hostile(&s, "dir-data.tar.gz", &gzip(&tar), &limits);
    assert!(err.contains("more than 1079296 bytes"), "{err}");
    assert!(err.contains("max_bytes (1048576)"), "{err}");
    // Thousands of empty global headers: no content, but still bytes to read.
    let mut tar = Vec::new();
    for _ in 0..10_000 {
        tar.extend(header(b'g', "g", 0));
    }
    tar.extend_from_slice(&[0u8; 1024]);
    let err = hostile(&s, "globals.tar.zst", &zstd(&tar), &limits);
    assert!(err.contains("max_files (10)"), "{err}");
}

#[test]
fn a_fifo_or_a_device_is_refused_not_read() {
    let s = Scene::new();
    let fifo = s.path("input/fifo.tar");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let boxed = s.path("box");
    for (path, kind) in [(fifo, "FIFO"), (PathBuf::from("/dev/zero"), "character device")] {
        // On a thread: an open that blocks fails the test instead of hanging it.
        let (tx, rx) = std::sync::mpsc::channel();
        let (p, b) = (path.clone(), boxed.clone());
        std::thread::spawn(move || {
            let _ = tx.send(extract(&p, None, &b, &ROOMY).map_err(|e| e.to_string()));
        });
        let got = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("extract blocked");
        assert_eq!(
            got.unwrap_err(),
            format!("cannot read '{}': not a regular file: {kind}", path.display())
        );
    }
}
