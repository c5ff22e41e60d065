//! The audit trail on disk: one per host, appended by every front end, verified by the CLI.
//!
//! Layout of the trail directory (default [`DEFAULT_DIR`], mode 0700):
//!
//! - `audit.jsonl`: the current file, one [`Entry`](reliability_core::audit::Entry) per
//!   line, mode 0600;
//! - `audit-<first seq, 20 digits>.jsonl`: older files, renamed from `audit.jsonl` when it
//!   would grow past the size limit (the names sort in trail order);
//! - `head.json`: `seq` and digest of the last record, so removing the last lines shows;
//! - `.lock`: the `flock` every appender takes.
//!
//! An append ([`Trail::append`]) holds the lock from reading the head to writing the new
//! one: it finds the head, rotates if due, writes the line with `O_APPEND` and `fsync`s it,
//! then replaces `head.json` (atomically). Appenders in threads or processes take turns, so
//! the chain stays one chain. A writer killed after its line but before the head leaves a
//! head one record behind; the next appender sees that the file's last line chains to the
//! head and carries on from the line. Any other disagreement is left for [`verify`] to
//! report: the appender chains to the recorded head, never over a removal.
//!
//! The hash chain and the judgement are `reliability_core::audit`; this file is the I/O.

use crate::small_file::{self, Follow, SmallFileError};
use crate::state::{self, StateError};
use nix::fcntl::FlockArg;
use reliability_core::audit::{self as core, Verifier, MAX_LINE};
/// The record a front end gives, and what an append and a verification return.
pub use reliability_core::audit::{Actor, BadLine, Entry, Head, Outcome, Record, VerifyReport};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The trail of this host unless told otherwise.
pub const DEFAULT_DIR: &str = "/var/lib/reliability_monitor/audit";
/// The directory of the trail under a state directory (modules take `state_dir`).
pub const SUBDIR: &str = "audit";
/// The current file.
pub const CURRENT: &str = "audit.jsonl";
pub const HEAD: &str = "head.json";
const LOCK: &str = ".lock";
/// The size past which the current file is rotated.
pub const DEFAULT_MAX_BYTES: u64 = 10 * 1024 * 1024;
/// The largest trail file read (a rotation size raised later leaves larger files).
pub const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;
/// The largest `head.json` read.
const MAX_HEAD_BYTES: u64 = 4096;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error(transparent)]
    State(#[from] StateError),
    #[error(transparent)]
    Record(#[from] core::AuditError),
    #[error(transparent)]
    File(#[from] SmallFileError),
    #[error("cannot {action} '{}': {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

fn io_error<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> AuditError + 'a {
    move |source| AuditError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// One trail directory.
#[derive(Clone, Debug)]
pub struct Trail {
    dir: PathBuf,
    max_bytes: u64,
    lock_timeout: Duration,
}

/// Append `record` to the trail in `dir` (default rotation size); the new head.
pub fn append(dir: &Path, record: Record) -> Result<Head, AuditError> {
    Trail::new(dir).append(record)
}

/// The records of the trail in `dir` dated in `[from_ms, to_ms)` ([`Trail::entries_between`]).
pub fn entries_between(dir: &Path, from_ms: u64, to_ms: u64) -> Result<(Vec<Entry>, usize), AuditError> {
    Trail::new(dir).entries_between(from_ms, to_ms)
}

/// Verify the trail in `dir`.
pub fn verify(dir: &Path) -> Result<VerifyReport, AuditError> {
    Trail::new(dir).verify()
}

/// Who runs this process: the user of the effective uid and `SUDO_USER`. The controller's
/// part (Ansible runs) is the caller's to add.
pub fn actor() -> Actor {
    let uid = nix::unistd::geteuid();
    let user = nix::unistd::User::from_uid(uid)
        .ok()
        .flatten()
        .map_or_else(|| format!("uid:{uid}"), |u| u.name);
    Actor {
        user,
        uid: uid.as_raw(),
        sudo_user: std::env::var("SUDO_USER").ok().filter(|s| !s.is_empty()),
        ..Actor::default()
    }
}

impl Trail {
    pub fn new(dir: impl Into<PathBuf>) -> Trail {
        Trail {
            dir: dir.into(),
            max_bytes: DEFAULT_MAX_BYTES,
            lock_timeout: state::DEFAULT_LOCK_TIMEOUT,
        }
    }

    pub fn with_max_bytes(mut self, bytes: u64) -> Trail {
        self.max_bytes = bytes;
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Append one record under the trail's lock; the new head.
    pub fn append(&self, record: Record) -> Result<Head, AuditError> {
        self.ensure_dir()?;
        let lock_path = self.dir.join(LOCK);
        let lock = small_file::open(
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600),
            &lock_path,
            Follow::No,
        )?;
        let _lock = state::flock(lock, FlockArg::LockExclusiveNonblock, &lock_path, self.lock_timeout)?;

        let current = self.dir.join(CURRENT);
        let head = self.head()?;
        let (mut line, new_head) = core::next_line(&head, record, crate::clock::now_ms())?;
        let size = match fs::symlink_metadata(&current) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(io_error("stat", &current)(e)),
        };
        if size > 0 && size + line.len() as u64 > self.max_bytes {
            self.rotate(&current)?;
        }
        let existed = current.exists();
        let mut file = small_file::open(
            OpenOptions::new().read(true).append(true).create(true).mode(0o600),
            &current,
            Follow::No,
        )?;
        let len = file.metadata().map_err(io_error("stat", &current))?.len();
        if len > 0 {
            let mut last = [0u8];
            file.read_exact_at(&mut last, len - 1)
                .map_err(io_error("read", &current))?;
            if last[0] != b'\n' {
                // A writer died mid-line: the fragment stays (verify reports it), the new
                // record starts on a line of its own.
                line.insert(0, b'\n');
            }
        }
        file.write_all(&line).map_err(io_error("append to", &current))?;
        file.sync_data().map_err(io_error("fsync", &current))?;
        if !existed {
            state::sync_dir(&self.dir)?;
        }
        let head_bytes = serde_json::to_vec(&new_head).map_err(|e| core::AuditError::Encode(e.to_string()))?;
        state::write_atomic_private(&self.dir.join(HEAD), &head_bytes)?;
        Ok(new_head)
    }

    /// A shared hold on the trail's lock, so that a reader never sees an append half done
    /// (its line written, the head not yet). None when no append ever made the lock file
    /// (nothing to wait for); a lock file that cannot be opened (a reader without write
    /// access) is read without it.
    fn read_lock(&self) -> Result<Option<nix::fcntl::Flock<fs::File>>, AuditError> {
        let lock_path = self.dir.join(LOCK);
        let lock = match small_file::open(OpenOptions::new().read(true), &lock_path, Follow::No) {
            Ok(f) => f,
            Err(_) => return Ok(None),
        };
        Ok(Some(state::flock(
            lock,
            FlockArg::LockSharedNonblock,
            &lock_path,
            self.lock_timeout,
        )?))
    }

    /// Check the whole trail, oldest file first, one file in memory at a time, under a
    /// shared hold on the lock (appends wait; a verify never reports one half done).
    pub fn verify(&self) -> Result<VerifyReport, AuditError> {
        let _lock = self.read_lock()?;
        let mut verifier = Verifier::default();
        for path in self.files()? {
            let bytes = small_file::read(&path, MAX_FILE_BYTES, Follow::No)?;
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            if !verifier.file(&name, &bytes) {
                break;
            }
        }
        Ok(verifier.finish(self.recorded_head()?.as_ref()))
    }

    /// The records dated from `from_ms` up to (not including) `to_ms`, oldest first, and
    /// how many lines were not records. One file in memory at a time; the chain is not
    /// judged here ([`Trail::verify`] does).
    pub fn entries_between(&self, from_ms: u64, to_ms: u64) -> Result<(Vec<Entry>, usize), AuditError> {
        let (mut entries, mut bad) = (Vec::new(), 0);
        for path in self.files()? {
            let bytes = small_file::read(&path, MAX_FILE_BYTES, Follow::No)?;
            for line in bytes.split(|b| *b == b'\n').filter(|l| !l.is_empty()) {
                let Ok(entry) = serde_json::from_slice::<Entry>(line) else {
                    bad += 1;
                    continue;
                };
                match reliability_core::maintenance::parse_instant(&entry.time) {
                    Ok(t) if (from_ms..to_ms).contains(&t) => entries.push(entry),
                    Ok(_) => {}
                    Err(_) => bad += 1,
                }
            }
        }
        Ok((entries, bad))
    }

    /// The trail's files in order: rotated ones by name, then the current one.
    pub fn files(&self) -> Result<Vec<PathBuf>, AuditError> {
        let mut rotated = Vec::new();
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error("list", &self.dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io_error("list", &self.dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("audit-") && name.ends_with(".jsonl") {
                rotated.push(entry.path());
            }
        }
        rotated.sort();
        let current = self.dir.join(CURRENT);
        if current.exists() {
            rotated.push(current);
        }
        Ok(rotated)
    }

    fn recorded_head(&self) -> Result<Option<Head>, AuditError> {
        let path = self.dir.join(HEAD);
        let bytes = small_file::read_if_exists(&path, MAX_HEAD_BYTES, Follow::No)?;
        Ok(bytes.and_then(|b| serde_json::from_slice(&b).ok()))
    }

    /// What the next record chains to: the recorded head, unless the last line written
    /// is the one after it (a writer killed before it replaced the head).
    fn head(&self) -> Result<Head, AuditError> {
        let last = self.last_line()?;
        let recorded = self.recorded_head()?;
        let from_line = last.as_ref().and_then(|l| {
            let entry: Entry = serde_json::from_slice(l).ok()?;
            Some((entry, core::digest(l)))
        });
        Ok(match (recorded, from_line) {
            (Some(head), Some((entry, digest))) if entry.seq == head.seq + 1 && entry.prev == head.digest => {
                Head { seq: entry.seq, digest }
            }
            (Some(head), _) => head,
            (None, Some((entry, digest))) => Head { seq: entry.seq, digest },
            (None, None) => Head::empty(),
        })
    }

    /// The last complete line of the newest non-empty file.
    fn last_line(&self) -> Result<Option<Vec<u8>>, AuditError> {
        for path in self.files()?.iter().rev() {
            if let Some(line) = last_complete_line(path)? {
                return Ok(Some(line));
            }
        }
        Ok(None)
    }

    /// `audit.jsonl` -> `audit-<first seq>.jsonl`.
    fn rotate(&self, current: &Path) -> Result<(), AuditError> {
        let file = small_file::open(OpenOptions::new().read(true), current, Follow::No)?;
        let mut buf = vec![0u8; MAX_LINE + 1];
        let n = read_at_most(&file, &mut buf, 0).map_err(io_error("read", current))?;
        let first_seq = buf[..n]
            .split(|b| *b == b'\n')
            .next()
            .and_then(|l| serde_json::from_slice::<Entry>(l).ok())
            .map_or(0, |e| e.seq);
        let mut target = self.dir.join(format!("audit-{first_seq:020}.jsonl"));
        let mut k = 1;
        while target.exists() {
            k += 1;
            target = self.dir.join(format!("audit-{first_seq:020}-{k}.jsonl"));
        }
        fs::rename(current, &target).map_err(io_error("rotate", current))?;
        state::sync_dir(&self.dir)?;
        Ok(())
    }

    /// The directory, and any missing above it, made 0700 (`state::ensure_dir`).
    fn ensure_dir(&self) -> Result<(), AuditError> {
        Ok(state::ensure_dir(&self.dir)?)
    }
}

fn read_at_most(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

/// The last newline-terminated line of a file (a torn fragment after it is skipped),
/// reading at most its last `2 * MAX_LINE` bytes.
fn last_complete_line(path: &Path) -> Result<Option<Vec<u8>>, AuditError> {
    let (buf, skipped) = match small_file::read_tail(path, 2 * MAX_LINE as u64, Follow::No) {
        Ok(read) => read,
        Err(e) if e.is_missing() => return Ok(None),
        Err(e) => return Err(e.into()),
    };
    let Some(end) = buf.iter().rposition(|b| *b == b'\n') else {
        return Ok(None);
    };
    let body = &buf[..end];
    let start = body.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    if start == 0 && skipped > 0 {
        // The line is longer than what was read: not one of ours.
        return Ok(None);
    }
    Ok(Some(body[start..].to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::os::unix::fs::PermissionsExt;

    fn record(target: &str) -> Record {
        Record {
            front_end: "cli".into(),
            action: "maintenance.open".into(),
            target: target.into(),
            reason: Some("kernel update".into()),
            outcome: Outcome::Changed,
            actor: actor(),
            config_digest: None,
            details: json!({"n": target}),
        }
    }

    fn mode(p: &Path) -> u32 {
        fs::metadata(p).expect("stat").permissions().mode() & 0o777
    }

    #[test]
    fn appends_chain_and_modes() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("audit");
        for i in 0..3 {
            let head = append(&dir, record(&format!("w{i}"))).expect("append");
            assert_eq!(head.seq, i + 1);
        }
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(CURRENT)), 0o600);
        assert_eq!(mode(&dir.join(HEAD)), 0o600);
        assert_eq!(mode(&dir.join(".lock")), 0o600);
        let r = verify(&dir).expect("verify");
        assert!(r.ok && r.records == 3, "{r:?}");
        let a = actor();
        assert!(!a.user.is_empty());
    }

    #[test]
    fn rotation_keeps_the_chain() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let trail = Trail::new(tmp.path()).with_max_bytes(1200);
        for i in 0..20 {
            trail.append(record(&format!("w{i}"))).expect("append");
        }
        let files = trail.files().expect("files");
        assert!(files.len() >= 5, "{files:?}");
        for f in &files {
            assert!(fs::metadata(f).expect("stat").len() <= 1200, "{f:?}");
        }
        let r = trail.verify().expect("verify");
        assert!(r.ok, "{r:?}");
        assert_eq!((r.records, r.head.seq, r.files), (20, 20, files.len()));
        // Tampering in a rotated file is found there.
        let second = &files[1];
        let text = fs::read_to_string(second).expect("read").replacen("w", "W", 1);
        fs::write(second, text).expect("write");
        let bad = trail.verify().expect("verify");
        let first_bad = bad.first_bad.expect("bad");
        assert_eq!(
            (first_bad.file.as_str(), first_bad.line),
            (second.file_name().and_then(|n| n.to_str()).expect("name"), 1)
        );
    }

    #[test]
    fn threads_append_one_chain() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let workers: Vec<_> = (0..4)
            .map(|t| {
                let dir = dir.clone();
                std::thread::spawn(move || {
                    let trail = Trail::new(dir).with_max_bytes(4000);
                    for i in 0..25 {
                        trail.append(record(&format!("t{t}-{i}"))).expect("append");
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().expect("thread");
        }
        let r = verify(&dir).expect("verify");
        assert!(r.ok, "{r:?}");
        assert_eq!(r.records, 100);
    }

    #[test]
    fn a_verify_during_appends_never_sees_one_half_done() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        Trail::new(&dir).append(record("first")).expect("append");
        let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let (dir, done) = (dir.clone(), done.clone());
            std::thread::spawn(move || {
                let trail = Trail::new(dir);
                let appended = (0..200).try_for_each(|i| trail.append(record(&format!("w{i}"))).map(drop));
                done.store(true, std::sync::atomic::Ordering::SeqCst);
                appended
            })
        };
        let mut verified = 0;
        while !done.load(std::sync::atomic::Ordering::SeqCst) {
            let r = verify(&dir).expect("verify");
            assert!(r.ok, "a verify during appends: {r:?}");
            verified += 1;
            // A reader that let go of the lock for no time at all would starve the writer.
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        writer.join().expect("writer").expect("append");
        assert!(verified > 0);
        assert_eq!(verify(&dir).expect("verify").records, 201);
    }

    #[test]
    fn a_planted_link_is_refused_and_its_target_untouched() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("audit");
        append(&dir, record("a")).expect("append");
        let victim = tmp.path().join("victim");
        fs::write(&victim, b"keep\n").expect("write");
        fs::remove_file(dir.join(CURRENT)).expect("remove");
        std::os::unix::fs::symlink(&victim, dir.join(CURRENT)).expect("symlink");
        let err = append(&dir, record("b")).expect_err("refused");
        assert!(err.to_string().contains("symbolic link"), "{err}");
        assert_eq!(fs::read(&victim).expect("read"), b"keep\n");
        assert!(verify(&dir).is_err());
    }

    #[test]
    fn a_torn_line_and_a_stale_head() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        append(dir, record("a")).expect("append");
        let before = fs::read(dir.join(HEAD)).expect("head");
        append(dir, record("b")).expect("append");
        // A writer killed between its line and the head: the next append carries on.
        fs::write(dir.join(HEAD), &before).expect("stale head");
        append(dir, record("c")).expect("append");
        let r = verify(dir).expect("verify");
        assert!(r.ok && r.records == 3, "{r:?}");
        // A writer killed mid-line: the fragment is reported, the trail goes on after it.
        let mut f = OpenOptions::new().append(true).open(dir.join(CURRENT)).expect("open");
        f.write_all(b"{\"seq\":4,\"ti").expect("torn");
        drop(f);
        append(dir, record("d")).expect("append");
        let r = verify(dir).expect("verify");
        let bad = r.first_bad.expect("bad");
        assert_eq!((bad.file.as_str(), bad.line), (CURRENT, 4), "{}", bad.problem);
    }
}
