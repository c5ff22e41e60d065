//! Walking a tree and hashing its files with SHA-256, fast.
//!
//! Hashing is bound by the CPU (the `sha2` crate uses SHA-NI when the CPU has it, about
//! 1.5 GB/s per core) and by copying pages out of the cache. So files are read in 128 KiB
//! chunks (bigger buffers were measured slower here: they cost more in the kernel copy
//! than they save in calls) by a fixed pool of threads, one per core by default, which take
//! files from one shared queue: a few huge files keep every core busy with one file each, and
//! tens of thousands of small ones cost no thread spawn apiece. Nothing here judges what it
//! finds: [`hash_files`] returns what each file hashed to, or why it could not be read.
//!
//! [`hash_files_until`] is the same pool with a deadline, for time-boxed verification: a
//! worker looks at the clock before it takes the next file from the queue and stops once the
//! deadline has passed; a file already started is finished. Because files are taken in
//! queue order and every taken file is finished, the files done are always a prefix of the
//! list, so a caller can resume at the first one not done. The first file is always taken,
//! so a deadline that passed before hashing began still makes progress. [`hash_files`]
//! passes no deadline and never reads the clock per file.
//!
//! A file is opened with [`open_regular`]: `O_NONBLOCK`, so a FIFO cannot block the open,
//! then `fstat` of the descriptor, so anything but a regular file (a FIFO, a device such as
//! `/dev/zero`, a socket, a directory) is reported by its kind before a byte is read. How
//! symbolic links are taken is the caller's choice ([`Links`]): a manifest's files may
//! use links only while they stay under the root (the path is resolved, the result must
//! lie under the resolved root, and the resolved path is opened with `O_NOFOLLOW`, so the
//! last component cannot be swapped for a link in between), or not at all.

use globset::{Glob, GlobSet, GlobSetBuilder};
/// What hashing one file gave: its digest, `Missing` or `Unreadable(why)`. The core's type,
/// so the verdict reads it as it is.
pub use reliability_core::manifest::Seen;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::fmt::Write as _;
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Read size: 128 KiB (see the module docs).
pub const BUFFER: usize = 128 * 1024;

/// How the paths given to [`hash_files`] may use symbolic links.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Links {
    /// Followed wherever they lead (paths a user named, a walk told to follow links).
    Follow,
    /// Followed while the file they lead to lies under the root; one that leads out of it
    /// is reported, not read.
    WithinRoot,
    /// Every path that goes through a symbolic link is reported, not read.
    Refuse,
}

/// What a file type is called in a report.
fn kind(ft: std::fs::FileType) -> &'static str {
    if ft.is_fifo() {
        "FIFO"
    } else if ft.is_char_device() {
        "character device"
    } else if ft.is_block_device() {
        "block device"
    } else if ft.is_socket() {
        "socket"
    } else if ft.is_dir() {
        "directory"
    } else if ft.is_symlink() {
        "symbolic link"
    } else {
        "file"
    }
}

/// Opens a file to read its data, refusing anything that is not a regular file without
/// reading (or blocking on) it: `O_NONBLOCK` for the open, then `fstat` of the descriptor.
/// `O_NOFOLLOW` too with `follow: false` (a link as the last component is then refused).
/// The error of a refusal reads `not a regular file: FIFO` (or the kind found).
pub fn open_regular(path: &Path, follow: bool) -> std::io::Result<File> {
    let mut flags = libc::O_NONBLOCK | libc::O_CLOEXEC;
    if !follow {
        flags |= libc::O_NOFOLLOW;
    }
    let file = match std::fs::OpenOptions::new().read(true).custom_flags(flags).open(path) {
        // O_NOFOLLOW on a link: ELOOP, which says nothing to a reader.
        Err(e) if !follow && e.raw_os_error() == Some(libc::ELOOP) => {
            return Err(std::io::Error::other("not a regular file: symbolic link"))
        }
        other => other?,
    };
    let ft = file.metadata()?.file_type();
    if !ft.is_file() {
        return Err(std::io::Error::other(format!("not a regular file: {}", kind(ft))));
    }
    Ok(file)
}

/// Which files of a tree to take.
#[derive(Clone, Debug, Default)]
pub struct WalkOptions {
    /// Globs over the path relative to the root; empty means every file.
    pub include: Vec<String>,
    /// Globs over the relative path; a matching directory is not entered.
    pub exclude: Vec<String>,
    /// Follow symbolic links (loops are reported); otherwise links are skipped and counted.
    pub follow_symlinks: bool,
    /// Absolute paths never to list (the manifest being written, its companion).
    pub skip: Vec<PathBuf>,
}

/// The files found under a root.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Walked {
    /// Relative paths with `/` separators, sorted.
    pub files: Vec<String>,
    /// Symbolic links passed over because links are not followed.
    pub symlinks_skipped: usize,
    /// (path, reason) for what could not be listed.
    pub errors: Vec<(String, String)>,
}

fn globset(what: &str, globs: &[String]) -> Result<GlobSet, String> {
    let mut b = GlobSetBuilder::new();
    for g in globs {
        b.add(Glob::new(g).map_err(|e| format!("{what}: '{g}' is not a valid glob: {e}"))?);
    }
    b.build().map_err(|e| format!("{what}: {e}"))
}

fn relative(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let s = rel.to_str()?;
    (!s.is_empty()).then(|| s.to_string())
}

/// Compiles the include and exclude globs as [`walk`] does, without walking: the
/// run-free check of `backup_manifest`'s options.
pub fn check_globs(opts: &WalkOptions) -> Result<(), String> {
    globset("include", &opts.include)?;
    globset("exclude", &opts.exclude).map(drop)
}

/// Lists the regular files under `root` (a directory), relative to it.
pub fn walk(root: &Path, opts: &WalkOptions) -> Result<Walked, String> {
    let include = globset("include", &opts.include)?;
    let exclude = globset("exclude", &opts.exclude)?;
    let mut out = Walked::default();
    let walker = walkdir::WalkDir::new(root)
        .follow_links(opts.follow_symlinks)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| match relative(root, e.path()) {
            Some(rel) => !exclude.is_match(&rel),
            None => true,
        });
    for entry in walker {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                let path = e
                    .path()
                    .and_then(|p| relative(root, p))
                    .unwrap_or_else(|| root.display().to_string());
                out.errors.push((path, e.to_string()));
                continue;
            }
        };
        let ft = entry.file_type();
        if ft.is_symlink() {
            out.symlinks_skipped += 1;
            continue;
        }
        if !ft.is_file() || opts.skip.iter().any(|s| s == entry.path()) {
            continue;
        }
        let Some(rel) = relative(root, entry.path()) else {
            out.errors.push((
                entry.path().display().to_string(),
                "the path is not UTF-8 text".to_string(),
            ));
            continue;
        };
        if include.is_empty() || include.is_match(&rel) {
            out.files.push(rel);
        }
    }
    out.files.sort();
    Ok(out)
}

/// One file's result.
#[derive(Clone, Debug)]
pub struct FileHash {
    /// As given (relative to the root).
    pub path: String,
    /// Bytes hashed.
    pub size: u64,
    /// Modification time, seconds since the epoch (with nanoseconds), when known.
    pub mtime: Option<f64>,
    pub outcome: Seen,
}

/// Every file's result, in the order given, and the totals.
#[derive(Clone, Debug)]
pub struct HashRun {
    /// One per path given, in that order; with a deadline, only the prefix that was done.
    pub files: Vec<FileHash>,
    pub bytes: u64,
    pub threads: usize,
    pub duration: Duration,
}

impl HashRun {
    /// Decimal megabytes per second over the wall-clock duration.
    pub fn throughput_mbps(&self) -> f64 {
        let secs = self.duration.as_secs_f64();
        if secs > 0.0 {
            self.bytes as f64 / 1e6 / secs
        } else {
            0.0
        }
    }
}

/// Default thread count: one per available core.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map(usize::from).unwrap_or(1)
}

/// Lowercase hex SHA-256 of bytes in memory (a manifest's content, to key state to it).
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// Hashes `root/<path>` for every path, with `threads` workers sharing one queue, taking
/// symbolic links as `links` says. An absolute path replaces the root (`Path::join`), so
/// files of several trees can share a run (with [`Links::Follow`]).
pub fn hash_files(root: &Path, paths: &[String], threads: usize, links: Links) -> HashRun {
    hash_pool(root, paths, threads, links, None)
}

/// [`hash_files`], but no file is started after `deadline` (the first always is): the
/// result holds the files done, which are the first `files.len()` of `paths`.
pub fn hash_files_until(root: &Path, paths: &[String], threads: usize, links: Links, deadline: Instant) -> HashRun {
    hash_pool(root, paths, threads, links, Some(deadline))
}

fn hash_pool(root: &Path, paths: &[String], threads: usize, links: Links, deadline: Option<Instant>) -> HashRun {
    let started = Instant::now();
    // Links are judged against the root as it really is (itself possibly reached by a link).
    let resolved_root = match links {
        Links::Follow => root.to_path_buf(),
        _ => std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf()),
    };
    let place = Place {
        root: &resolved_root,
        links,
    };
    let threads = threads.clamp(1, paths.len().max(1));
    let next = AtomicUsize::new(0);
    let slots: Vec<Mutex<Option<FileHash>>> = paths.iter().map(|_| Mutex::new(None)).collect();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let mut buf = vec![0u8; BUFFER];
                loop {
                    // Look at the clock before taking a file, never after: a file taken is a
                    // file done, which keeps the done files a prefix of the queue.
                    if deadline.is_some_and(|d| Instant::now() >= d) && next.load(Ordering::Relaxed) > 0 {
                        break;
                    }
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(path) = paths.get(i) else { break };
                    let result = hash_one(&place, path, &mut buf);
                    if let Some(slot) = slots.get(i) {
                        if let Ok(mut slot) = slot.lock() {
                            *slot = Some(result);
                        }
                    }
                }
            });
        }
    });
    let taken = next.into_inner().min(paths.len());
    let files: Vec<FileHash> = slots
        .into_iter()
        .zip(paths)
        .take(taken)
        .map(|(slot, path)| {
            slot.into_inner().ok().flatten().unwrap_or_else(|| FileHash {
                path: path.clone(),
                size: 0,
                mtime: None,
                outcome: Seen::Unreadable("the hashing thread stopped".to_string()),
            })
        })
        .collect();
    let bytes = files.iter().map(|f| f.size).sum();
    HashRun {
        files,
        bytes,
        threads,
        duration: started.elapsed(),
    }
}

/// What `stat` says of a file that matters to a backup check (links are not followed).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileStat {
    pub size: u64,
    /// Modification time, unix milliseconds (negative before 1970).
    pub mtime_ms: i64,
    /// The filesystem holding it (`st_dev`): two files with different devices are on
    /// different filesystems.
    pub dev: u64,
    pub is_dir: bool,
}

/// `lstat` of one path, or why not (`None` when it does not exist).
pub fn stat(path: &Path) -> Result<Option<FileStat>, String> {
    match std::fs::symlink_metadata(path) {
        Ok(m) => Ok(Some(FileStat {
            size: m.size(),
            mtime_ms: m
                .mtime()
                .saturating_mul(1000)
                .saturating_add(m.mtime_nsec() / 1_000_000),
            dev: m.dev(),
            is_dir: m.is_dir(),
        })),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e.to_string()),
    }
}

/// Where the files of one run are, and how links are taken.
struct Place<'a> {
    /// The root, resolved unless links are followed anywhere.
    root: &'a Path,
    links: Links,
}

impl Place<'_> {
    /// Opens `path` under the root as `links` allows.
    fn open(&self, path: &str) -> std::io::Result<File> {
        let full = self.root.join(path);
        if self.links == Links::Follow {
            return open_regular(&full, true);
        }
        let resolved = std::fs::canonicalize(&full)?;
        if resolved != full {
            if self.links == Links::Refuse {
                return Err(std::io::Error::other(format!(
                    "reached through a symbolic link (to '{}'), and links are refused",
                    resolved.display()
                )));
            }
            if !resolved.starts_with(self.root) {
                return Err(std::io::Error::other(format!(
                    "a symbolic link leads out of the root, to '{}'",
                    resolved.display()
                )));
            }
        }
        open_regular(&resolved, false)
    }
}

fn hash_one(place: &Place, path: &str, buf: &mut [u8]) -> FileHash {
    let mut out = FileHash {
        path: path.to_string(),
        size: 0,
        mtime: None,
        outcome: Seen::Missing,
    };
    let mut file = match place.open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return out,
        Err(e) => {
            out.outcome = Seen::Unreadable(e.to_string());
            return out;
        }
    };
    match file.metadata() {
        Ok(m) => out.mtime = Some(m.mtime() as f64 + m.mtime_nsec() as f64 / 1e9),
        Err(e) => {
            out.outcome = Seen::Unreadable(e.to_string());
            return out;
        }
    }
    let mut hasher = Sha256::new();
    loop {
        match file.read(buf) {
            Ok(0) => break,
            Ok(n) => {
                hasher.update(&buf[..n]);
                out.size += n as u64;
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => {
                out.outcome = Seen::Unreadable(e.to_string());
                return out;
            }
        }
    }
    out.outcome = Seen::Digest(hex(&hasher.finalize()));
    out
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
    const ABC: &str = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn hashes_known_vectors_across_buffer_boundaries() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("empty"), b"").unwrap();
        std::fs::write(dir.path().join("abc"), b"abc").unwrap();
        // Three buffers and a bit: the digest must equal hashing it in one go.
        let big: Vec<u8> = (0..BUFFER * 3 + 17).map(|i| (i % 251) as u8).collect();
        std::fs::write(dir.path().join("big"), &big).unwrap();
        let want_big = hex(&Sha256::digest(&big));
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        let paths: Vec<String> = ["empty", "abc", "big", "nope", "sub"].map(String::from).to_vec();
        for threads in [1, 2, 8] {
            let run = hash_files(dir.path(), &paths, threads, Links::WithinRoot);
            let got: Vec<&Seen> = run.files.iter().map(|f| &f.outcome).collect();
            assert_eq!(
                got,
                [
                    &Seen::Digest(EMPTY.into()),
                    &Seen::Digest(ABC.into()),
                    &Seen::Digest(want_big.clone()),
                    &Seen::Missing,
                    &Seen::Unreadable("not a regular file: directory".into()),
                ]
            );
            assert_eq!(run.bytes, 3 + big.len() as u64);
            assert!(run.threads <= threads);
        }
    }

    #[test]
    fn special_files_and_links_out_of_the_root_are_reported_not_read() {
        let top = tempfile::tempdir().unwrap();
        let top = std::fs::canonicalize(top.path()).unwrap();
        let root = top.join("root");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/abc"), b"abc").unwrap();
        std::fs::write(top.join("outside"), b"abc").unwrap();
        let made = std::process::Command::new("mkfifo")
            .arg(root.join("fifo"))
            .status()
            .unwrap();
        assert!(made.success());
        let link = |target: &str, name: &str| std::os::unix::fs::symlink(target, root.join(name)).unwrap();
        link("sub/abc", "in");
        link("sub", "dir-in");
        link("../outside", "out");
        link("/dev/null", "null");
        link("nothing", "dangling");
        let paths: Vec<String> = ["fifo", "in", "dir-in/abc", "out", "null", "dangling", "sub"]
            .map(String::from)
            .to_vec();
        let outcomes = |links: Links| -> Vec<Seen> {
            hash_files(&root, &paths, 2, links)
                .files
                .into_iter()
                .map(|f| f.outcome)
                .collect()
        };
        let bad = |s: String| Seen::Unreadable(s);
        let abc = Seen::Digest(ABC.into());
        let out_of_root = |to: &str| bad(format!("a symbolic link leads out of the root, to '{to}'"));
        let refused = |to: &Path| {
            bad(format!(
                "reached through a symbolic link (to '{}'), and links are refused",
                to.display()
            ))
        };
        assert_eq!(
            outcomes(Links::WithinRoot),
            [
                bad("not a regular file: FIFO".into()),
                abc.clone(),
                abc.clone(),
                out_of_root(&top.join("outside").display().to_string()),
                out_of_root("/dev/null"),
                Seen::Missing,
                bad("not a regular file: directory".into()),
            ]
        );
        assert_eq!(
            outcomes(Links::Follow),
            [
                bad("not a regular file: FIFO".into()),
                abc.clone(),
                abc.clone(),
                abc.clone(),
                bad("not a regular file: character device".into()),
                Seen::Missing,
                bad("not a regular file: directory".into()),
            ]
        );
        let refuse = outcomes(Links::Refuse);
        assert_eq!(refuse[1], refused(&root.join("sub/abc")));
        assert_eq!(refuse[2], refused(&root.join("sub/abc")));
        assert_eq!(refuse[3], refused(&top.join("outside")));
        // open_regular without following: a link as the last component is refused by kind.
        let err = open_regular(&root.join("in"), false).unwrap_err();
        assert_eq!(err.to_string(), "not a regular file: symbolic link");
    }

    #[test]
    fn deadline_stops_taking_files_and_done_files_are_a_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<String> = (0..50).map(|i| format!("f{i:02}")).collect();
        for p in &paths {
            std::fs::write(dir.path().join(p), p).unwrap();
        }
        // A deadline already past: the first file is still done, and nothing after it
        // with one thread.
        let past = Instant::now();
        let run = hash_files_until(dir.path(), &paths, 1, Links::Follow, past);
        assert_eq!(run.files.len(), 1);
        assert_eq!(run.files[0].path, "f00");
        // With two threads at most one more may have been taken before the other looked.
        let run = hash_files_until(dir.path(), &paths, 2, Links::Follow, past);
        assert!((1..=2).contains(&run.files.len()), "{}", run.files.len());
        // A far deadline: everything, in order, with the digests hash_files gives.
        let far = Instant::now() + Duration::from_secs(600);
        let until = hash_files_until(dir.path(), &paths, 2, Links::Follow, far);
        let full = hash_files(dir.path(), &paths, 2, Links::Follow);
        let digests = |r: &HashRun| {
            r.files
                .iter()
                .map(|f| (f.path.clone(), f.outcome.clone()))
                .collect::<Vec<_>>()
        };
        assert_eq!(digests(&until), digests(&full));
        assert_eq!(until.files.len(), 50);
        assert_eq!(sha256_hex(b"abc"), ABC);
    }

    #[test]
    fn stat_reports_size_mtime_and_device() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"12345").unwrap();
        let when = std::time::UNIX_EPOCH + Duration::from_millis(1_795_428_900_123);
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(when)
            .unwrap();
        let st = stat(&p).unwrap().unwrap();
        assert_eq!((st.size, st.mtime_ms, st.is_dir), (5, 1_795_428_900_123, false));
        assert_eq!(st.dev, stat(dir.path()).unwrap().unwrap().dev);
        assert!(stat(dir.path()).unwrap().unwrap().is_dir);
        assert_eq!(stat(&dir.path().join("nope")), Ok(None));
    }

    #[test]
    fn walk_filters_and_skips_links() {
        let dir = tempfile::tempdir().unwrap();
        let r = dir.path();
        for p in ["a.txt", "b.log", "sub/c.txt", "sub/d.log", "cache/e.txt"] {
            let full = r.join(p);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, p).unwrap();
        }
        std::os::unix::fs::symlink(r.join("a.txt"), r.join("link")).unwrap();
        let all = walk(r, &WalkOptions::default()).unwrap();
        assert_eq!(all.files, ["a.txt", "b.log", "cache/e.txt", "sub/c.txt", "sub/d.log"]);
        assert_eq!(all.symlinks_skipped, 1);
        let opts = WalkOptions {
            include: vec!["*.txt".into()],
            exclude: vec!["cache".into()],
            skip: vec![r.join("a.txt")],
            ..Default::default()
        };
        assert_eq!(walk(r, &opts).unwrap().files, ["sub/c.txt"]);
        let follow = WalkOptions {
            follow_symlinks: true,
            ..Default::default()
        };
        assert!(walk(r, &follow).unwrap().files.contains(&"link".to_string()));
        let bad = WalkOptions {
            include: vec!["a[".into()],
            ..Default::default()
        };
        assert!(walk(r, &bad)
            .unwrap_err()
            .starts_with("include: 'a[' is not a valid glob"));
    }
}
