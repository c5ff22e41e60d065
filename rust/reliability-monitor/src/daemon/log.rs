//! The daemon's log: one line per event on stderr (which journald takes under systemd,
//! with the line's priority from an `sd-daemon(3)` `<N>` prefix), and, when
//! `error_handling.log_file` is set, the same line in that file. The file is rotated when
//! it would pass `max_log_size` (renamed to `<file>.<UTC time>`), and rotated files older
//! than `log_retention_days` are deleted (through `reliability_os::prune`, which never
//! follows a link).

use crate::config::ErrorHandling;
use reliability_core::timestamp;
use reliability_os::clock::now_ms;
use reliability_os::prune;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Debug,
    Info,
    Warning,
    Error,
    Critical,
}

impl Level {
    /// `error_handling.log_level`'s names (the schema allows no others).
    pub fn parse(name: &str) -> Level {
        match name {
            "DEBUG" => Level::Debug,
            "WARNING" => Level::Warning,
            "ERROR" => Level::Error,
            "CRITICAL" => Level::Critical,
            _ => Level::Info,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Level::Debug => "DEBUG",
            Level::Info => "INFO",
            Level::Warning => "WARNING",
            Level::Error => "ERROR",
            Level::Critical => "CRITICAL",
        }
    }

    /// The syslog priority journald reads from a `<N>` prefix.
    fn priority(self) -> u8 {
        match self {
            Level::Debug => 7,
            Level::Info => 6,
            Level::Warning => 4,
            Level::Error => 3,
            Level::Critical => 2,
        }
    }
}

struct LogFile {
    path: PathBuf,
    file: File,
    size: u64,
    max: u64,
    retention_days: u32,
}

struct Inner {
    level: Level,
    file: Option<LogFile>,
    /// Whether stderr goes to journald (`$JOURNAL_STREAM` is set).
    journal: bool,
}

pub struct Logger {
    inner: Mutex<Inner>,
    /// Whether debug lines are written: asked once per check result, without the lock.
    debug: AtomicBool,
}

impl Logger {
    /// A logger to stderr only, at `level` (before the configuration is read).
    pub fn stderr(level: Level) -> Logger {
        Logger {
            inner: Mutex::new(Inner {
                level,
                file: None,
                journal: std::env::var_os("JOURNAL_STREAM").is_some(),
            }),
            debug: AtomicBool::new(level <= Level::Debug),
        }
    }

    /// Applies `error_handling`: level and file. A file that cannot be opened is said
    /// on stderr and left out; the daemon keeps logging to stderr.
    pub fn configure(&self, e: &ErrorHandling) {
        let file = e
            .log_file
            .as_ref()
            .map(|path| open(path, e.max_log_bytes, e.log_retention_days));
        let mut problem = None;
        if let Ok(mut inner) = self.inner.lock() {
            inner.level = Level::parse(&e.log_level);
            self.debug.store(inner.level <= Level::Debug, Ordering::Relaxed);
            inner.file = match file {
                Some(Ok(f)) => Some(f),
                Some(Err(p)) => {
                    problem = Some(p);
                    None
                }
                None => None,
            };
        }
        if let Some(p) = problem {
            self.log(Level::Error, &p);
        }
    }

    /// A debug line, its text made only when debug lines are written.
    pub fn debug_with(&self, msg: impl FnOnce() -> String) {
        if self.debug.load(Ordering::Relaxed) {
            self.log(Level::Debug, &msg());
        }
    }

    pub fn log(&self, level: Level, msg: &str) {
        let Ok(mut inner) = self.inner.lock() else { return };
        if level < inner.level {
            return;
        }
        let text: String = msg.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        let line = format!("{} {} {text}\n", timestamp::rfc3339(now_ms()), level.name());
        let shown = if inner.journal {
            format!("<{}>{} {text}\n", level.priority(), level.name())
        } else {
            line.clone()
        };
        let _ = std::io::stderr().write_all(shown.as_bytes());
        let mut failed = None;
        if let Some(f) = inner.file.as_mut() {
            if let Err(e) = f.write(line.as_bytes()) {
                failed = Some(format!("log file '{}': {e}; logging to stderr only", f.path.display()));
            }
        }
        if let Some(p) = failed {
            inner.file = None;
            let _ = writeln!(std::io::stderr(), "{} ERROR {p}", timestamp::rfc3339(now_ms()));
        }
    }

    pub fn info(&self, msg: &str) {
        self.log(Level::Info, msg);
    }
    pub fn warn(&self, msg: &str) {
        self.log(Level::Warning, msg);
    }
    pub fn error(&self, msg: &str) {
        self.log(Level::Error, msg);
    }
}

fn open(path: &Path, max: u64, retention_days: u32) -> Result<LogFile, String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("cannot create '{}': {e}", dir.display()))?;
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o640)
        .open(path)
        .map_err(|e| format!("cannot open log file '{}': {e}", path.display()))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let f = LogFile {
        path: path.to_path_buf(),
        file,
        size,
        max,
        retention_days,
    };
    f.prune();
    Ok(f)
}

impl LogFile {
    fn write(&mut self, line: &[u8]) -> std::io::Result<()> {
        if self.size > 0 && self.size + line.len() as u64 > self.max {
            self.rotate()?;
        }
        self.file.write_all(line)?;
        self.size += line.len() as u64;
        Ok(())
    }

    /// `<file>` becomes `<file>.<UTC time>`; a new `<file>` is started; old ones go.
    fn rotate(&mut self) -> std::io::Result<()> {
        let stamp = timestamp::compact(now_ms());
        let mut rotated = PathBuf::from(format!("{}.{stamp}", self.path.display()));
        // Two rotations within one millisecond must not overwrite each other.
        let mut n = 1;
        while rotated.exists() {
            rotated = PathBuf::from(format!("{}.{stamp}-{n}", self.path.display()));
            n += 1;
        }
        std::fs::rename(&self.path, &rotated)?;
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o640)
            .open(&self.path)?;
        self.size = 0;
        self.prune();
        Ok(())
    }

    /// Deletes rotated files last written more than `retention_days` ago.
    fn prune(&self) {
        let (Some(dir), Some(name)) = (self.path.parent(), self.path.file_name()) else {
            return;
        };
        let pattern = format!("{}.*", glob_escape(&name.to_string_lossy()));
        let Ok(listing) = prune::list(dir, &pattern) else {
            return;
        };
        let horizon = now_ms().saturating_sub(u64::from(self.retention_days) * 86_400_000);
        for entry in listing.entries.iter().filter(|e| e.mtime_ms < horizon) {
            let _ = prune::remove(entry);
        }
    }
}

/// `name` with glob metacharacters escaped, matching itself only.
fn glob_escape(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '*' | '?' | '[' | ']' | '{' | '}' | '\\' => format!("[{c}]"),
            c => c.to_string(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rotates_at_the_size_limit_and_prunes_old_files() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("monitor.log");
        // A rotated file from long ago, and another file that is not ours.
        let old = dir.path().join("monitor.log.20000101T000000.000Z");
        std::fs::write(&old, "old\n").expect("write");
        let ancient = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(946_684_800);
        File::options()
            .write(true)
            .open(&old)
            .and_then(|f| f.set_modified(ancient))
            .expect("mtime");
        std::fs::write(dir.path().join("other.log"), "x").expect("write");
        let logger = Logger::stderr(Level::Info);
        logger.configure(&ErrorHandling {
            enabled: true,
            log_level: "INFO".into(),
            log_file: Some(path.clone()),
            max_log_bytes: 200,
            log_retention_days: 1,
        });
        assert!(!old.exists(), "a rotated file past the retention is deleted");
        logger.debug_with(|| "below the level: not written".into());
        for i in 0..6 {
            logger.info(&format!("event {i} {}", "x".repeat(40)));
        }
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert!(names.len() >= 4, "{names:?}");
        assert!(names.contains(&"other.log".to_string()));
        for n in &names {
            let len = std::fs::metadata(dir.path().join(n)).expect("stat").len();
            assert!(len <= 200, "{n} is {len} bytes");
        }
        let current = std::fs::read_to_string(&path).expect("read");
        assert!(
            current.contains("event 5") && !current.contains("below the level"),
            "{current}"
        );
    }

    /// A debug line's text is made only when debug lines are written, and the level of
    /// a reloaded configuration counts at once.
    #[test]
    fn debug_text_is_made_only_at_the_debug_level() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("monitor.log");
        let logger = Logger::stderr(Level::Info);
        let handling = |level: &str| ErrorHandling {
            enabled: true,
            log_level: level.into(),
            log_file: Some(path.clone()),
            max_log_bytes: 1 << 20,
            log_retention_days: 1,
        };
        logger.configure(&handling("INFO"));
        logger.debug_with(|| panic!("made at INFO"));
        logger.configure(&handling("DEBUG"));
        logger.debug_with(|| "made at DEBUG".into());
        let written = std::fs::read_to_string(&path).expect("read");
        assert!(written.contains("DEBUG made at DEBUG"), "{written}");
    }
}
