//! Bounded append-only logs (the incident log): JSON lines appended under the log's lock
//! (the discipline of [`crate::state::append_jsonl`]), rotated by size into numbered files
//! (`incidents.jsonl`, `.1`, `.2`, ...; the oldest dropped), and read back newest first
//! only as far as a caller's window reaches.
//!
//! Rotation happens under the lock of the file being rotated: the writer that finds the
//! log full renames it to `.1` (after shifting the others) and starts again on a new file.
//! A writer that was waiting for the lock of the renamed file notices (its descriptor no
//! longer names the log's path) and starts again too, so no line lands in a rotated file
//! after its rotation and none is lost.

use crate::small_file::{self, Follow};
use crate::state::{flock_exclusive, io_error, sync_dir, StateError};
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// When a log is rotated and how many rotated files are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rotation {
    /// A line that would take the log past this size goes to a new file.
    pub max_bytes: u64,
    /// Rotated files kept (`.1` to `.keep`); older ones are deleted.
    pub keep: usize,
}

impl Default for Rotation {
    /// 1 MiB and 5 rotated files: some 20,000 incident lines in at most 6 MiB.
    fn default() -> Rotation {
        Rotation {
            max_bytes: 1 << 20,
            keep: 5,
        }
    }
}

/// The `n`th rotated file of `path` (`n` = 0: `path` itself).
pub fn rotated(path: &Path, n: usize) -> PathBuf {
    if n == 0 {
        return path.to_path_buf();
    }
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// How much of the end of each file of a log is read: tens of thousands of lines, while
/// figures look at a window of days.
pub const MAX_TAIL: u64 = 16 << 20;

/// Append `value` as one JSON line to `path` (created 0600 when missing; its directory must
/// exist; a link, FIFO or device is refused) under an exclusive `flock`, with `O_APPEND`, then `fsync`; with `rotation`, first
/// rotate a log the line would take past its size. A torn last line (a writer killed
/// mid-line) is ended before the new one, so it never spoils another.
pub fn append(path: &Path, value: &impl Serialize, rotation: Option<Rotation>) -> Result<(), StateError> {
    let mut line = serde_json::to_vec(value).map_err(|source| StateError::Encode {
        path: path.to_path_buf(),
        source,
    })?;
    line.push(b'\n');
    loop {
        let existed = fs::symlink_metadata(path).is_ok();
        let file = small_file::open(
            OpenOptions::new().read(true).append(true).create(true).mode(0o600),
            path,
            Follow::No,
        )?;
        let mut file = flock_exclusive(file, path)?;
        let meta = file.metadata().map_err(io_error("stat", path))?;
        // Rotated while this writer waited for the lock: start again on the new file.
        match fs::symlink_metadata(path) {
            Ok(now) if now.ino() == meta.ino() && now.dev() == meta.dev() => {}
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_error("stat", path)(e)),
        }
        let len = meta.len();
        if let Some(r) = rotation.filter(|r| len > 0 && len + line.len() as u64 > r.max_bytes) {
            rotate(path, r.keep)?;
            continue;
        }
        if len > 0 {
            let mut last = [0u8];
            file.read_exact_at(&mut last, len - 1).map_err(io_error("read", path))?;
            if last[0] != b'\n' {
                line.insert(0, b'\n');
            }
        }
        file.write_all(&line).map_err(io_error("append to", path))?;
        file.sync_data().map_err(io_error("fsync", path))?;
        if !existed {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                sync_dir(dir)?;
            }
        }
        return Ok(());
    }
}

/// Shift `.1..keep` up by one (dropping the last) and move the log to `.1`; the caller
/// holds the log's lock.
fn rotate(path: &Path, keep: usize) -> Result<(), StateError> {
    if keep == 0 {
        return fs::remove_file(path).map_err(io_error("remove", path));
    }
    for n in (1..keep).rev() {
        let (from, to) = (rotated(path, n), rotated(path, n + 1));
        match fs::rename(&from, &to) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(io_error("rename", &from)(e)),
            _ => {}
        }
    }
    fs::rename(path, rotated(path, 1)).map_err(io_error("rename", path))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        sync_dir(dir)?;
    }
    Ok(())
}

/// The lines of a log with `at(line) >= since`, oldest first, and how many lines were not
/// `T` (torn, or not ours). Files are read newest first; the first one that reaches back
/// before `since` is the last one read. Of a file over [`MAX_TAIL`] only its end is read; a
/// link, FIFO or device in place of a file is an error, never read.
pub fn read_since<T: DeserializeOwned>(
    path: &Path,
    keep: usize,
    since: u64,
    at: impl Fn(&T) -> u64,
) -> Result<(Vec<T>, usize), StateError> {
    let mut files: Vec<Vec<T>> = Vec::new();
    let mut bad = 0;
    for n in 0..=keep {
        let p = rotated(path, n);
        let (bytes, skipped) = match small_file::read_tail(&p, MAX_TAIL, Follow::No) {
            Ok(read) => read,
            Err(e) if e.is_missing() => break,
            Err(e) => return Err(e.into()),
        };
        // A tail starts inside a line: the first whole line comes after the first newline.
        let whole = match (skipped, bytes.iter().position(|&b| b == b'\n')) {
            (0, _) => &bytes[..],
            (_, Some(i)) => &bytes[i + 1..],
            (_, None) => &bytes[..0],
        };
        let text = String::from_utf8_lossy(whole);
        let mut lines = Vec::new();
        let mut reaches_back = false;
        for line in text.lines().filter(|l| !l.trim().is_empty()) {
            match serde_json::from_str::<T>(line) {
                Ok(v) if at(&v) >= since => lines.push(v),
                Ok(_) => reaches_back = true,
                Err(_) => bad += 1,
            }
        }
        files.push(lines);
        if reaches_back {
            break;
        }
    }
    Ok((files.into_iter().rev().flatten().collect(), bad))
}
