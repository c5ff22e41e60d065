//! The durable queue: alerts wait on disk until their channel confirmed delivery.
//!
//! Layout, under the state directory (0700, files 0600):
//!
//! ```text
//! <dir>/.lock                      flock: one process delivers from a queue at a time
//! <dir>/<channel>/<key>.json       one alert for one channel: the alert, attempts, next try
//! <dir>/dead/<channel>/<key>.json  refused for good (HTTP 400, a recipient refused)
//! ```
//!
//! An entry is written atomically (`reliability_os::state::write_atomic_private`: a
//! temporary file, fsync, rename, fsync of the directory) before anything is sent, and
//! removed only after the channel confirmed delivery. So a `kill -9` at any point loses nothing: an entry
//! half-written is a temporary file the next [`Queue::open`] removes (its alert was never
//! confirmed queued to the caller), and a delivery in flight is sent again after the
//! restart, with the same idempotency key, which the receiver uses to drop the copy.
//!
//! Failed deliveries are retried with exponential backoff and full jitter
//! ([`backoff_ms`]). The queue is bounded: beyond `max_alerts` entries for one channel the
//! oldest are dropped, and counted in the log and in [`PushReport::dropped`].

use crate::alert::Alert;
use crate::config::QueueConfig;
use nix::fcntl::{Flock, FlockArg};
use reliability_os::small_file::{self, Follow};
use reliability_os::state::{self, write_atomic_private};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The format of an entry file.
pub const VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error("alert queue: cannot {action} '{}': {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("alert queue '{}' is in use by another process", .0.display())]
    Locked(PathBuf),
    #[error("alert queue: {0}")]
    State(#[from] reliability_os::state::StateError),
    /// A channel name or key that cannot be a file name (letters, digits, `_`, `-`).
    #[error("alert queue: invalid name {}", reliability_core::quote::quote(.0))]
    InvalidName(String),
}

fn io_error<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> QueueError + 'a {
    move |source| QueueError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// One alert waiting for one channel.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub version: u32,
    pub channel: String,
    pub alert: Alert,
    /// Failed attempts so far.
    pub attempts: u32,
    pub enqueued_ms: u64,
    /// The order of pushes into this queue: alerts pushed in the same millisecond keep the
    /// order they were pushed in (entries written before it existed read as 0).
    #[serde(default)]
    pub seq: u64,
    /// Not before this (unix ms).
    pub next_attempt_ms: u64,
    pub last_error: Option<String>,
}

/// What [`Queue::push`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PushReport {
    /// Entries written (one per channel).
    pub queued: usize,
    /// Channels that had this alert (same key) queued already.
    pub already_queued: usize,
    /// `(channel, key)` of entries dropped to keep within `max_alerts`, oldest first.
    pub dropped: Vec<(String, String)>,
}

/// The delay before retry number `attempts` (1 after the first failure): a uniformly
/// random point (`unit` in [0, 1)) in `[0, min(max, base * 2^(attempts-1))]` ("full
/// jitter": retries of many alerts spread out instead of hitting a receiver that just
/// came back all at once).
pub fn backoff_ms(attempts: u32, base_ms: u64, max_ms: u64, unit: f64) -> u64 {
    let doubling = 1u64.checked_shl(attempts.saturating_sub(1)).unwrap_or(u64::MAX);
    let ceiling = base_ms.saturating_mul(doubling).min(max_ms);
    (ceiling as f64 * unit.clamp(0.0, 1.0)) as u64
}

/// The queue directory, locked by this process.
#[derive(Debug)]
pub struct Queue {
    dir: PathBuf,
    config: QueueConfig,
    entries: BTreeMap<(String, String), Entry>,
    dropped_total: u64,
    /// The `seq` of the next push: one more than any entry's on disk.
    next_seq: u64,
    _lock: Flock<File>,
}

/// The directory, made (0700) if missing, and made 0700 if it was not.
fn private_dir(path: &Path) -> Result<(), QueueError> {
    state::ensure_dir(path)?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o700)).map_err(io_error("chmod", path))
}

/// The largest entry file read: an alert is a few KB.
const MAX_ENTRY_BYTES: u64 = 1 << 20;

fn sync_dir(path: &Path) -> Result<(), QueueError> {
    File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(io_error("fsync", path))
}

/// Channel names and keys become file names: letters, digits, `_` and `-` only.
fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

impl Queue {
    /// Opens (creating) the queue in `dir` and loads what waits there. The daemon passes
    /// `reliability_os::state::Store::new(state_dir).private_dir("alert_queue")?`, which
    /// checks the directory and those above it as the state store checks its own, so that
    /// no other user can plant or read an entry. Leftover temporary
    /// files of a killed writer are removed; an entry that does not parse is moved aside
    /// to `<key>.json.corrupt` (and logged), never deleted.
    pub fn open(dir: impl Into<PathBuf>, config: QueueConfig) -> Result<Queue, QueueError> {
        let dir = dir.into();
        private_dir(&dir)?;
        let lock_path = dir.join(".lock");
        let file = small_file::open(
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600),
            &lock_path,
            Follow::No,
        )
        .map_err(|e| QueueError::State(e.into()))?;
        let lock = Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|_| QueueError::Locked(dir.clone()))?;
        let mut queue = Queue {
            dir,
            config,
            entries: BTreeMap::new(),
            dropped_total: 0,
            next_seq: 0,
            _lock: lock,
        };
        queue.load()?;
        Ok(queue)
    }

    fn load(&mut self) -> Result<(), QueueError> {
        let listing = fs::read_dir(&self.dir).map_err(io_error("list", &self.dir))?;
        for channel_dir in listing.flatten() {
            let name = channel_dir.file_name().to_string_lossy().into_owned();
            if name == "dead" || !valid_name(&name) || !channel_dir.path().is_dir() {
                continue;
            }
            let path = channel_dir.path();
            let files = fs::read_dir(&path).map_err(io_error("list", &path))?;
            for file in files.flatten() {
                let file_name = file.file_name().to_string_lossy().into_owned();
                let path = file.path();
                if file_name.starts_with('.') && file_name.ends_with(".tmp") {
                    let _ = fs::remove_file(&path);
                    continue;
                }
                let Some(key) = file_name.strip_suffix(".json") else {
                    continue;
                };
                let parsed = small_file::read(&path, MAX_ENTRY_BYTES, Follow::No)
                    .map_err(|e| e.to_string())
                    .and_then(|b| serde_json::from_slice::<Entry>(&b).map_err(|e| e.to_string()))
                    .and_then(|e| {
                        if e.version == VERSION && e.channel == name && e.alert.key == key {
                            Ok(e)
                        } else {
                            Err(format!("not an entry of version {VERSION} for '{name}/{key}'"))
                        }
                    });
                match parsed {
                    Ok(entry) => {
                        self.next_seq = self.next_seq.max(entry.seq + 1);
                        self.entries.insert((name.clone(), key.to_string()), entry);
                    }
                    Err(problem) => {
                        let aside = path.with_extension("json.corrupt");
                        let _ = fs::rename(&path, &aside);
                        log(&format!(
                            "alert queue: '{}' is unusable ({problem}); moved aside to '{}'",
                            path.display(),
                            aside.display()
                        ));
                    }
                }
            }
        }
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, channel: &str, key: &str) -> PathBuf {
        self.dir.join(channel).join(format!("{key}.json"))
    }

    fn write(&self, entry: &Entry) -> Result<(), QueueError> {
        let dir = self.dir.join(&entry.channel);
        private_dir(&dir)?;
        let path = self.path(&entry.channel, &entry.alert.key);
        let bytes = serde_json::to_vec_pretty(entry).map_err(|e| QueueError::Io {
            action: "encode",
            path: path.clone(),
            source: io::Error::other(e),
        })?;
        write_atomic_private(&path, &bytes)?;
        Ok(())
    }

    /// Queues `alert` for each of `channels` at `now`, durably: when this returns `Ok`,
    /// the alert survives a crash. An alert already queued for a channel (same key) is
    /// not queued twice.
    pub fn push(&mut self, alert: &Alert, channels: &[&str], now: u64) -> Result<PushReport, QueueError> {
        let mut report = PushReport::default();
        if !valid_name(&alert.key) {
            return Err(QueueError::InvalidName(alert.key.clone()));
        }
        for &channel in channels {
            if !valid_name(channel) {
                return Err(QueueError::InvalidName(channel.to_string()));
            }
            let id = (channel.to_string(), alert.key.clone());
            if self.entries.contains_key(&id) {
                report.already_queued += 1;
                continue;
            }
            let entry = Entry {
                version: VERSION,
                channel: channel.to_string(),
                alert: alert.clone(),
                attempts: 0,
                enqueued_ms: now,
                seq: self.next_seq,
                next_attempt_ms: now,
                last_error: None,
            };
            self.write(&entry)?;
            self.next_seq += 1;
            self.entries.insert(id, entry);
            report.queued += 1;
            report.dropped.extend(self.bound(channel)?);
        }
        if !report.dropped.is_empty() {
            self.dropped_total += report.dropped.len() as u64;
            log(&format!(
                "alert queue full ({} per channel): dropped the {} oldest alert(s), {} since start: {}",
                self.config.max_alerts,
                report.dropped.len(),
                self.dropped_total,
                report
                    .dropped
                    .iter()
                    .map(|(c, k)| format!("{c}/{k}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        Ok(report)
    }

    /// Drops the oldest entries of `channel` beyond `max_alerts`.
    fn bound(&mut self, channel: &str) -> Result<Vec<(String, String)>, QueueError> {
        let mut mine: Vec<(u64, u64, String)> = self
            .entries
            .iter()
            .filter(|((c, _), _)| c == channel)
            .map(|((_, k), e)| (e.enqueued_ms, e.seq, k.clone()))
            .collect();
        let excess = mine.len().saturating_sub(self.config.max_alerts);
        if excess == 0 {
            return Ok(Vec::new());
        }
        mine.sort();
        let mut dropped = Vec::new();
        for (_, _, key) in mine.into_iter().take(excess) {
            self.remove(channel, &key)?;
            dropped.push((channel.to_string(), key));
        }
        Ok(dropped)
    }

    fn remove(&mut self, channel: &str, key: &str) -> Result<(), QueueError> {
        let path = self.path(channel, key);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_error("remove", &path)(e)),
        }
        sync_dir(&self.dir.join(channel))?;
        self.entries.remove(&(channel.to_string(), key.to_string()));
        Ok(())
    }

    /// The entries of `channel` due at `now`, oldest first.
    pub fn due(&self, channel: &str, now: u64) -> Vec<Entry> {
        let mut due: Vec<Entry> = self
            .entries
            .iter()
            .filter(|((c, _), e)| c == channel && e.next_attempt_ms <= now)
            .map(|(_, e)| e.clone())
            .collect();
        due.sort_by(|a, b| (a.enqueued_ms, a.seq, &a.alert.key).cmp(&(b.enqueued_ms, b.seq, &b.alert.key)));
        due
    }

    /// A delivery to `channel` failed and its retry is not due yet at `now`: the channel
    /// backs off as a whole (its receiver is likely down), so that alerts never tried do
    /// not hit it one per round, and the oldest goes first when it is back.
    pub fn backing_off(&self, channel: &str, now: u64) -> bool {
        self.entries
            .iter()
            .any(|((c, _), e)| c == channel && e.attempts > 0 && e.next_attempt_ms > now)
    }

    /// The channel confirmed delivery: the entry goes.
    pub fn ack(&mut self, channel: &str, key: &str) -> Result<(), QueueError> {
        self.remove(channel, key)
    }

    /// A delivery failed and will be retried after [`backoff_ms`]; returns when.
    pub fn retry(&mut self, channel: &str, key: &str, error: &str, now: u64) -> Result<u64, QueueError> {
        let id = (channel.to_string(), key.to_string());
        let Some(mut entry) = self.entries.get(&id).cloned() else {
            return Ok(now);
        };
        entry.attempts = entry.attempts.saturating_add(1);
        let delay = backoff_ms(
            entry.attempts,
            self.config.retry_base_ms,
            self.config.retry_max_ms,
            fastrand::f64(),
        );
        entry.next_attempt_ms = now.saturating_add(delay);
        entry.last_error = Some(error.to_string());
        self.write(&entry)?;
        let next = entry.next_attempt_ms;
        self.entries.insert(id, entry);
        Ok(next)
    }

    /// The channel refused the entry for good: it moves to `dead/<channel>/`, kept for
    /// the operator, never retried.
    pub fn bury(&mut self, channel: &str, key: &str, error: &str) -> Result<(), QueueError> {
        let id = (channel.to_string(), key.to_string());
        let Some(mut entry) = self.entries.get(&id).cloned() else {
            return Ok(());
        };
        entry.attempts = entry.attempts.saturating_add(1);
        entry.last_error = Some(error.to_string());
        let dead = self.dir.join("dead");
        private_dir(&dead)?;
        let dir = dead.join(channel);
        private_dir(&dir)?;
        let path = dir.join(format!("{key}.json"));
        let bytes = serde_json::to_vec_pretty(&entry).map_err(|e| QueueError::Io {
            action: "encode",
            path: path.clone(),
            source: io::Error::other(e),
        })?;
        write_atomic_private(&path, &bytes)?;
        self.remove(channel, key)
    }

    /// Entries waiting, per channel.
    pub fn pending(&self) -> BTreeMap<String, usize> {
        let mut out = BTreeMap::new();
        for (channel, _) in self.entries.keys() {
            *out.entry(channel.clone()).or_insert(0) += 1;
        }
        out
    }

    /// Every entry waiting.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// When something of `channel` is due next: while it backs off
    /// ([`Queue::backing_off`]), when that ends; else its earliest entry's next attempt.
    pub fn next_due_ms(&self, channel: &str) -> Option<u64> {
        let mine = || {
            self.entries
                .iter()
                .filter(move |((c, _), _)| c == channel)
                .map(|(_, e)| e)
        };
        let blocked = mine().filter(|e| e.attempts > 0).map(|e| e.next_attempt_ms).max();
        let earliest = mine().map(|e| e.next_attempt_ms).min()?;
        Some(blocked.map_or(earliest, |b| b.max(earliest)))
    }

    /// Entries dropped by the bound since this queue was opened.
    pub fn dropped_total(&self) -> u64 {
        self.dropped_total
    }
}

/// The queue's log line, on stderr (the daemon's journal): a dropped or unreadable alert
/// is never silent.
pub(crate) fn log(line: &str) {
    eprintln!("reliability-alerts: {line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(key: &str) -> Alert {
        use crate::alert::{AlertName, AlertState, Category, Severity};
        Alert {
            key: key.into(),
            name: AlertName::RecoveryFailed,
            state: AlertState::Firing,
            severity: Severity::Critical,
            category: Category::ServiceFailure,
            host: "h".into(),
            service: "s".into(),
            check: None,
            value: None,
            incident: "i".into(),
            summary: "s".into(),
            runbook_url: None,
            tried: Vec::new(),
            sequence: 0,
            starts_at_ms: 0,
            ends_at_ms: None,
        }
    }

    #[test]
    fn a_channel_backs_off_until_its_failed_entry_is_due() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = QueueConfig {
            retry_base_ms: 10_000,
            retry_max_ms: 10_000,
            ..QueueConfig::default()
        };
        let mut q = Queue::open(dir.path(), config).expect("open");
        q.push(&alert("a"), &["slack", "email"], 100).expect("push");
        q.push(&alert("b"), &["slack"], 200).expect("push");
        assert_eq!((q.next_due_ms("slack"), q.next_due_ms("email")), (Some(100), Some(100)));
        assert!(!q.backing_off("slack", 1000));
        let at = q.retry("slack", "a", "down", 1000).expect("retry");
        assert!((1000..=11_000).contains(&at), "{at}");
        assert!(q.backing_off("slack", at.saturating_sub(1)) || at == 1000);
        assert!(!q.backing_off("slack", at));
        // "b" was never tried, yet waits with the channel; "email" is not held up.
        assert_eq!(q.next_due_ms("slack"), Some(at.max(200)));
        assert_eq!(q.next_due_ms("email"), Some(100));
        assert!(!q.backing_off("email", 1000));
        assert_eq!(q.next_due_ms("webhook"), None);
        assert!(matches!(
            q.push(&alert("../x"), &["slack"], 1),
            Err(QueueError::InvalidName(_))
        ));
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_with_full_jitter() {
        let table = [
            // attempts, unit, expected
            (1, 0.999_999, 999),
            (2, 0.999_999, 1999),
            (3, 0.5, 2000),
            (9, 0.999_999, 255_999),
            (10, 0.999_999, 299_999),
            (64, 0.999_999, 299_999),
            (u32::MAX, 0.5, 150_000),
            (5, 0.0, 0),
        ];
        for (attempts, unit, expected) in table {
            assert_eq!(
                backoff_ms(attempts, 1000, 300_000, unit),
                expected,
                "attempt {attempts}"
            );
        }
    }
}
