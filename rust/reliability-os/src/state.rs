//! State that outlives a run: circuit breakers now, failure counts and incidents later.
//!
//! One JSON file per named object, `<root>/<kind>/<name>.json` (the default root is
//! [`DEFAULT_DIR`]; a directory per kind keeps a breaker and a recovery record of the same
//! service apart). Module runs in parallel, cron jobs and the daemon all change these files,
//! and any of them may be killed at any moment, so [`Store::update`] is:
//!
//! 1. lock: `flock` on a sidecar `<name>.lock` (never deleted: deleting a lock file lets two
//!    processes hold "the" lock at once), waiting up to a timeout;
//! 2. read and check the file; apply the caller's change;
//! 3. write atomically: a temporary file in the same directory, `fsync`, `rename` over the
//!    old file, `fsync` of the directory (so the rename itself survives a power cut);
//! 4. unlock (when the lock guard drops, or when the process dies).
//!
//! A reader therefore sees the old file or the new one, never half of one, and no update is
//! lost between two writers. The temporary file is `.<name>.tmp`: names cannot start with a
//! `.`, so it is nobody's state, and the lock makes it one writer's at a time; a writer killed
//! mid-write leaves it behind for the next writer to truncate.
//!
//! A file that does not parse, or holds another `kind` or format `version`, is never silently
//! replaced: [`Store::update`] moves it aside to `<name>.corrupt-<UTC time>` and returns
//! [`StateError::Corrupt`] naming both paths and the parse error; the caller reports it and
//! decides whether to start afresh (the next update finds no file). [`Store::load`] (check
//! mode) moves nothing and creates nothing.
//!
//! [`append_jsonl`] is the same discipline for append-only logs (incidents): one JSON object
//! per line, appended under a lock with `O_APPEND`, then `fsync`ed; [`crate::journal`]
//! bounds such a log by rotating it.
//!
//! State files steer what runs as root (a closed breaker lets a restart through), so the
//! store trusts nothing another user could have put in its way:
//! - The state directory and its kind directories must be owned by root or by the
//!   effective user and writable by their owner only; every directory above them must be
//!   owned by root or the effective user and not writable by others unless sticky (`/tmp`),
//!   as OpenSSH's `StrictModes` and sudo decide. A symbolic link on the way must be owned by
//!   root or the effective user too, and the directory it leads to passes the same test.
//!   Otherwise [`StateError::UnsafeDir`] names the directory and why, before anything is
//!   read, created or written. (Only root, or the user running, can then change what is in
//!   them, so the paths checked stay the paths used.)
//! - State, lock and temporary files are opened with `O_NOFOLLOW` and `O_NONBLOCK` and must
//!   be regular files (`reliability_os::small_file`): a planted link is refused and named,
//!   its target untouched; a FIFO or device is refused at once instead of hanging the run;
//!   a state file larger than [`MAX_STATE_BYTES`] is refused without being read.
//! - What the store creates is private whatever the umask: directories 0700, files 0600.

use crate::small_file::{self, Follow, SmallFileError};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use reliability_core::{breaker, cpu_sample, maintenance, recovery, timestamp};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;
use std::ffi::OsString;
use std::fs::{self, DirBuilder, File, Metadata, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

/// Where state lives unless the caller says otherwise.
pub const DEFAULT_DIR: &str = "/var/lib/reliability_monitor";
/// How long [`Store::update`] waits for another process's lock.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(30);
/// The longest name, in bytes.
pub const MAX_NAME: usize = 128;
/// The largest state file read: records are a few KB; an integrity cursor with a long list
/// of failing files may reach megabytes.
pub const MAX_STATE_BYTES: u64 = 32 << 20;
/// How many symbolic links the state directory's path may go through (as the kernel's
/// `MAXSYMLINKS`).
const MAX_LINKS: usize = 40;

/// A kind of object the store keeps. Its file is the object's JSON with `kind` and `version`
/// set from here; a file with another kind or version is refused.
pub trait Record: Serialize + DeserializeOwned {
    const KIND: &'static str;
    const VERSION: u32;
}

impl Record for breaker::Breaker {
    const KIND: &'static str = breaker::KIND;
    const VERSION: u32 = breaker::VERSION;
}

impl Record for maintenance::AdHoc {
    const KIND: &'static str = maintenance::KIND;
    const VERSION: u32 = maintenance::VERSION;
}

impl Record for cpu_sample::Kept {
    const KIND: &'static str = cpu_sample::KIND;
    const VERSION: u32 = cpu_sample::VERSION;
}

impl Record for recovery::RecoveryState {
    const KIND: &'static str = recovery::KIND;
    const VERSION: u32 = recovery::VERSION;
}

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("invalid name '{name}': {reason}")]
    InvalidName { name: String, reason: String },
    #[error("cannot {action} '{}': {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error(
        "could not lock '{}' within {}: another process holds it",
        path.display(),
        timestamp::seconds(timeout.as_millis().try_into().unwrap_or(u64::MAX))
    )]
    LockTimeout { path: PathBuf, timeout: Duration },
    #[error("state file '{}' is unusable: {problem}{}", path.display(), moved(moved_to))]
    Corrupt {
        path: PathBuf,
        /// What is wrong with it: the parse error, or the kind or version found.
        problem: String,
        /// Where it is now; `None` when it was left in place (read-only access).
        moved_to: Option<PathBuf>,
    },
    #[error("cannot encode the state for '{}': {source}", path.display())]
    Encode { path: PathBuf, source: serde_json::Error },
    /// A state, lock or log file that is a link, a FIFO, a device or too large.
    #[error("{0}")]
    File(#[from] SmallFileError),
    #[error(
        "unsafe state directory '{}': '{}' {problem}; state directories and the directories above them must be owned by root or uid {euid}, and not writable by others (above the state directory: unless sticky)",
        dir.display(),
        path.display()
    )]
    UnsafeDir {
        /// The state directory as given.
        dir: PathBuf,
        /// The directory or link at fault.
        path: PathBuf,
        problem: String,
        euid: u32,
    },
}

fn moved(to: &Option<PathBuf>) -> String {
    to.as_ref()
        .map(|p| format!("; moved aside to '{}'", p.display()))
        .unwrap_or_default()
}

pub(crate) fn io_error<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> StateError + 'a {
    move |source| StateError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// A name is one path component of letters, digits and `_ . @ : -`, 1 to [`MAX_NAME`]
/// bytes, not starting with `.` (so never `..`, and never one of the store's own files).
pub fn validate_name(name: &str) -> Result<(), StateError> {
    let bad = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "_.@:-".contains(*c)));
    let reason = if name.is_empty() {
        "it is empty".to_string()
    } else if name.len() > MAX_NAME {
        format!("it is {} bytes long; at most {MAX_NAME} are allowed", name.len())
    } else if let Some(c) = bad {
        format!("{c:?} is not allowed; use letters, digits and _ . @ : -")
    } else if name.starts_with('.') {
        "it must not start with '.'".to_string()
    } else {
        return Ok(());
    };
    Err(StateError::InvalidName {
        name: name.escape_debug().to_string(),
        reason,
    })
}

/// Named objects under one root directory.
#[derive(Clone, Debug)]
pub struct Store {
    root: PathBuf,
    lock_timeout: Duration,
}

impl Store {
    pub fn new(root: impl Into<PathBuf>) -> Store {
        Store {
            root: root.into(),
            lock_timeout: DEFAULT_LOCK_TIMEOUT,
        }
    }

    pub fn with_lock_timeout(mut self, timeout: Duration) -> Store {
        self.lock_timeout = timeout;
        self
    }

    /// The directory holding every object of kind `T`.
    pub fn dir<T: Record>(&self) -> PathBuf {
        self.root.join(T::KIND)
    }

    /// The file of `name` (checked first).
    pub fn path<T: Record>(&self, name: &str) -> Result<PathBuf, StateError> {
        validate_name(name)?;
        Ok(self.dir::<T>().join(format!("{name}.json")))
    }

    /// The names of the objects of kind `T` stored, sorted (files `<name>.json`; hidden
    /// and temporary files left out). No directory yet: none.
    pub fn names<T: Record>(&self) -> Result<Vec<String>, StateError> {
        let dir = self.dir::<T>();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(source) => {
                return Err(StateError::Io {
                    action: "list",
                    path: dir,
                    source,
                })
            }
        };
        let mut names: Vec<String> = entries
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().to_string_lossy().into_owned();
                name.strip_suffix(".json")
                    .filter(|stem| !stem.starts_with('.') && validate_name(stem).is_ok())
                    .map(str::to_string)
            })
            .collect();
        names.sort();
        Ok(names)
    }

    /// The object as stored, `None` when there is none. Read-only: takes a shared lock
    /// when the lock file exists, creates nothing, and leaves an unusable file in place
    /// (the error says so).
    pub fn load<T: Record>(&self, name: &str) -> Result<Option<T>, StateError> {
        let path = self.path::<T>(name)?;
        if !self.secure(T::KIND, false)? {
            return Ok(None);
        }
        let lock_path = self.dir::<T>().join(format!("{name}.lock"));
        let _lock = match small_file::open(OpenOptions::new().read(true), &lock_path, Follow::No) {
            Ok(file) => Some(flock(
                file,
                FlockArg::LockSharedNonblock,
                &lock_path,
                self.lock_timeout,
            )?),
            Err(e) if e.is_missing() => None,
            Err(e) => return Err(e.into()),
        };
        match read(&path)? {
            None => Ok(None),
            Some(bytes) => decode::<T>(&bytes).map(Some).map_err(|problem| StateError::Corrupt {
                path,
                problem,
                moved_to: None,
            }),
        }
    }

    /// Lock, read, `apply`, write atomically, unlock. `apply` gets the stored object (or
    /// `None`) and returns the new one; when its file content would not change, nothing
    /// is written. An unusable file is moved aside and reported as
    /// [`StateError::Corrupt`] without calling `apply`.
    pub fn update<T, E, F>(&self, name: &str, apply: F) -> Result<T, E>
    where
        T: Record,
        E: From<StateError>,
        F: FnOnce(Option<T>) -> Result<T, E>,
    {
        let path = self.path::<T>(name)?;
        let dir = self.dir::<T>();
        self.secure(T::KIND, true)?;
        let _lock = self.lock(&dir, name)?;
        let old = read(&path)?;
        let current = match &old {
            None => None,
            Some(bytes) => match decode::<T>(bytes) {
                Ok(value) => Some(value),
                Err(problem) => {
                    let moved_to = Some(move_aside(&dir, name, &path)?);
                    return Err(StateError::Corrupt {
                        path,
                        problem,
                        moved_to,
                    }
                    .into());
                }
            },
        };
        let next = apply(current)?;
        let bytes = encode(&next, &path)?;
        if old.as_deref() != Some(bytes.as_slice()) {
            write_via(&dir.join(format!(".{name}.tmp")), &path, &bytes, PRIVATE)?;
        }
        Ok(next)
    }

    /// Move an unusable file of `name` aside (under the lock); returns where it went, or
    /// `None` when the file is missing or fine. For a caller that only reads otherwise.
    pub fn quarantine<T: Record>(&self, name: &str) -> Result<Option<PathBuf>, StateError> {
        let path = self.path::<T>(name)?;
        let dir = self.dir::<T>();
        if !self.secure(T::KIND, false)? || fs::symlink_metadata(&path).is_err() {
            return Ok(None);
        }
        let _lock = self.lock(&dir, name)?;
        match read(&path)? {
            Some(bytes) if decode::<T>(&bytes).is_err() => Ok(Some(move_aside(&dir, name, &path)?)),
            _ => Ok(None),
        }
    }

    /// The exclusive lock of `name` in `dir` (which [`Store::secure`] checked), creating
    /// the lock file as needed.
    fn lock(&self, dir: &Path, name: &str) -> Result<Flock<File>, StateError> {
        let lock_path = dir.join(format!("{name}.lock"));
        let file = small_file::open(
            OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600),
            &lock_path,
            Follow::No,
        )?;
        flock(file, FlockArg::LockExclusiveNonblock, &lock_path, self.lock_timeout)
    }

    /// `<root>/<kind>`, for state kept in files of its own rather than records (the alert
    /// queue): checked and created exactly as the store's own directories are (0700,
    /// safe owners and modes up to the root, no link), so its owner alone writes there.
    pub fn private_dir(&self, kind: &str) -> Result<PathBuf, StateError> {
        validate_name(kind)?;
        self.secure(kind, true)?;
        Ok(self.root.join(kind))
    }

    /// Checks the state directory and the directory of `kind` in it (see the module docs);
    /// with `create`, makes what is missing (0700). Returns whether the kind's directory
    /// exists.
    fn secure(&self, kind: &str, create: bool) -> Result<bool, StateError> {
        let euid = nix::unistd::geteuid().as_raw();
        let unsafe_dir = |path: &Path, problem: String| StateError::UnsafeDir {
            dir: self.root.clone(),
            path: path.to_path_buf(),
            problem,
            euid,
        };
        let root = match resolve_checked(&self.root, euid, &unsafe_dir)? {
            Some(root) => root,
            None if create => {
                ensure_dir(&self.root)?;
                resolve_checked(&self.root, euid, &unsafe_dir)?
                    .ok_or_else(|| io_error("create directory", &self.root)(io::Error::from(io::ErrorKind::NotFound)))?
            }
            None => return Ok(false),
        };
        let kind_dir = root.join(kind);
        let meta = match fs::symlink_metadata(&kind_dir) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound && create => {
                ensure_dir(&kind_dir)?;
                fs::symlink_metadata(&kind_dir).map_err(io_error("stat", &kind_dir))?
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
            Err(e) => return Err(io_error("stat", &kind_dir)(e)),
        };
        if meta.file_type().is_symlink() {
            return Err(unsafe_dir(
                &kind_dir,
                "is a symbolic link, which is never followed inside a state directory".to_string(),
            ));
        }
        match dir_problem(&meta, true, euid) {
            Some(problem) => Err(unsafe_dir(&kind_dir, problem)),
            None => Ok(true),
        }
    }
}

/// What makes a directory unsafe to hold state (or lead to it), `None` when nothing does.
/// `strict` for the state directory itself and the kind directories in it.
fn dir_problem(meta: &Metadata, strict: bool, euid: u32) -> Option<String> {
    let mode = meta.mode() & 0o7777;
    if !meta.is_dir() {
        return Some("is not a directory".to_string());
    }
    if meta.uid() != 0 && meta.uid() != euid {
        return Some(format!("is owned by uid {}", meta.uid()));
    }
    let sticky = mode & 0o1000 != 0;
    if mode & 0o022 != 0 && (strict || !sticky) {
        let who = if mode & 0o002 != 0 { "everyone" } else { "its group" };
        return Some(format!("is writable by {who} (mode {mode:04o})"));
    }
    None
}

/// A step of a path being resolved.
enum Step {
    Up,
    Name(OsString),
}

fn steps(path: &Path) -> Vec<Step> {
    // Reversed: the next step is popped from the end.
    path.components()
        .rev()
        .filter_map(|c| match c {
            Component::ParentDir => Some(Step::Up),
            Component::Normal(n) => Some(Step::Name(n.to_owned())),
            Component::RootDir | Component::CurDir | Component::Prefix(_) => None,
        })
        .collect()
}

/// Resolves `dir` one component at a time as the kernel would, checking every directory
/// it passes through ([`dir_problem`]: `dir` itself strictly, the others as ancestors) and
/// every link's owner. `None` when a component does not exist yet (what exists is checked).
fn resolve_checked(
    dir: &Path,
    euid: u32,
    unsafe_dir: &dyn Fn(&Path, String) -> StateError,
) -> Result<Option<PathBuf>, StateError> {
    let absolute = if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        std::env::current_dir().map_err(io_error("resolve", dir))?.join(dir)
    };
    let mut current = PathBuf::from("/");
    let root_meta = fs::metadata(&current).map_err(io_error("stat", &current))?;
    if let Some(problem) = dir_problem(&root_meta, false, euid) {
        return Err(unsafe_dir(&current, problem));
    }
    let mut pending = steps(&absolute);
    let mut links = 0;
    while let Some(step) = pending.pop() {
        let name = match step {
            Step::Up => {
                current.pop();
                continue;
            }
            Step::Name(name) => name,
        };
        let next = current.join(&name);
        let meta = match fs::symlink_metadata(&next) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error("stat", &next)(e)),
        };
        if meta.file_type().is_symlink() {
            if meta.uid() != 0 && meta.uid() != euid {
                return Err(unsafe_dir(
                    &next,
                    format!("is a symbolic link owned by uid {}", meta.uid()),
                ));
            }
            links += 1;
            if links > MAX_LINKS {
                return Err(unsafe_dir(
                    &next,
                    format!("leads through more than {MAX_LINKS} symbolic links"),
                ));
            }
            let target = fs::read_link(&next).map_err(io_error("read link", &next))?;
            if target.is_absolute() {
                current = PathBuf::from("/");
            }
            pending.extend(steps(&target));
            continue;
        }
        if let Some(problem) = dir_problem(&meta, pending.is_empty(), euid) {
            return Err(unsafe_dir(&next, problem));
        }
        current = next;
    }
    Ok(Some(current))
}

/// `flock` that gives up after `timeout`. Non-blocking attempts with a growing pause
/// (1 to 20 ms): a blocking `flock` cannot be given a deadline without signals.
pub(crate) fn flock(mut file: File, arg: FlockArg, path: &Path, timeout: Duration) -> Result<Flock<File>, StateError> {
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(1);
    loop {
        match Flock::lock(file, arg) {
            Ok(locked) => return Ok(locked),
            Err((f, Errno::EINTR)) => file = f,
            Err((f, e)) if e == Errno::EWOULDBLOCK => {
                let now = Instant::now();
                if now >= deadline {
                    return Err(StateError::LockTimeout {
                        path: path.to_path_buf(),
                        timeout,
                    });
                }
                std::thread::sleep(pause.min(deadline - now));
                pause = (pause * 2).min(Duration::from_millis(20));
                file = f;
            }
            Err((_, e)) => return Err(io_error("lock", path)(io::Error::from(e))),
        }
    }
}

fn read(path: &Path) -> Result<Option<Vec<u8>>, StateError> {
    Ok(small_file::read_if_exists(path, MAX_STATE_BYTES, Follow::No)?)
}

/// The object in a file, or what is wrong with the file.
fn decode<T: Record>(bytes: &[u8]) -> Result<T, String> {
    let value: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let Value::Object(map) = value else {
        return Err("not a JSON object".to_string());
    };
    match map.get("kind") {
        Some(Value::String(kind)) if kind == T::KIND => {}
        Some(other) => return Err(format!("its kind is {other}, not '{}'", T::KIND)),
        None => return Err(format!("it has no 'kind' (expected '{}')", T::KIND)),
    }
    match map.get("version").and_then(Value::as_u64) {
        Some(v) if v == u64::from(T::VERSION) => {}
        Some(v) => return Err(format!("it is version {v}; this code reads version {}", T::VERSION)),
        None => return Err(format!("it has no numeric 'version' (expected {})", T::VERSION)),
    }
    serde_json::from_value(Value::Object(map)).map_err(|e| format!("not a valid {} state: {e}", T::KIND))
}

/// Pretty JSON with `kind` and `version`, and a final newline: state files are read by
/// people too.
fn encode<T: Record>(value: &T, path: &Path) -> Result<Vec<u8>, StateError> {
    let encode_error = |source| StateError::Encode {
        path: path.to_path_buf(),
        source,
    };
    let mut map = match serde_json::to_value(value).map_err(encode_error)? {
        Value::Object(map) => map,
        other => {
            let mut map = serde_json::Map::new();
            map.insert("value".into(), other);
            map
        }
    };
    map.insert("kind".into(), T::KIND.into());
    map.insert("version".into(), T::VERSION.into());
    let mut bytes = serde_json::to_vec_pretty(&Value::Object(map)).map_err(encode_error)?;
    bytes.push(b'\n');
    Ok(bytes)
}

/// Replace `path` with `bytes` atomically: a temporary file in the same directory (no
/// symlink followed), written and fsynced, renamed over the target, then the directory
/// fsynced. Readers see the old file or the new one, never a part; a crash leaves at most
/// a stray `.<name>.<pid>.tmp`. Every file the project writes goes through here.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    write_atomic_as(path, bytes, SHARED)
}

/// [`write_atomic`] for a file only its owner may read: 0600 whatever the umask, from its
/// creation (the alert queue's entries, the audit trail's head).
pub fn write_atomic_private(path: &Path, bytes: &[u8]) -> Result<(), StateError> {
    write_atomic_as(path, bytes, PRIVATE)
}

fn write_atomic_as(path: &Path, bytes: &[u8], mode: FileMode) -> Result<(), StateError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Some(name) = path.file_name() else {
        return Err(io_error("write", path)(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the path names no file",
        )));
    };
    // Unlocked writers to one path must not share a temporary file: the pid keeps them apart.
    let tmp = dir.join(format!(".{}.{}.tmp", name.to_string_lossy(), std::process::id()));
    write_via(&tmp, path, bytes, mode)
}

/// The mode of a file [`write_via`] makes: `Some` is set exactly, whatever the umask.
type FileMode = (u32, Option<u32>);
/// State files: the owner's alone.
const PRIVATE: FileMode = (0o600, Some(0o600));
/// Manifests (through [`write_atomic`]): for others to read, as the umask allows.
const SHARED: FileMode = (0o644, None);

/// [`write_atomic`] through a given temporary file. The store passes `.<name>.tmp`: it
/// writes under the record's lock, and a fixed name means a killed writer leaves one stray
/// file, not one per pid.
fn write_via(tmp: &Path, path: &Path, bytes: &[u8], (mode, exact): FileMode) -> Result<(), StateError> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let written = (|| {
        let mut file = small_file::open(
            OpenOptions::new().write(true).create(true).truncate(true).mode(mode),
            tmp,
            Follow::No,
        )?;
        if let Some(exact) = exact {
            file.set_permissions(Permissions::from_mode(exact))
                .map_err(io_error("chmod", tmp))?;
        }
        file.write_all(bytes).map_err(io_error("write", tmp))?;
        file.sync_all().map_err(io_error("fsync", tmp))?;
        drop(file);
        fs::rename(tmp, path).map_err(io_error("rename into place", path))
    })();
    if written.is_err() {
        let _ = fs::remove_file(tmp);
    }
    written?;
    sync_dir(dir)
}

/// `<name>.corrupt-<UTC time>` beside it (`-2`, `-3`... if that exists already).
fn move_aside(dir: &Path, name: &str, path: &Path) -> Result<PathBuf, StateError> {
    let now = crate::clock::now_ms();
    let stem = format!("{name}.corrupt-{}", timestamp::compact(now));
    let mut target = dir.join(&stem);
    let mut n = 1;
    while fs::symlink_metadata(&target).is_ok() {
        n += 1;
        target = dir.join(format!("{stem}-{n}"));
    }
    fs::rename(path, &target).map_err(io_error("move aside", path))?;
    sync_dir(dir)?;
    Ok(target)
}

/// `mkdir -p`, each directory made 0700 whatever the umask, and `fsync` of the parent of
/// each. (What exists is left as it is.)
pub fn ensure_dir(dir: &Path) -> Result<(), StateError> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(path) = at.filter(|p| !p.as_os_str().is_empty() && fs::symlink_metadata(p).is_err()) {
        missing.push(path);
        at = path.parent();
    }
    for path in missing.into_iter().rev() {
        match DirBuilder::new().mode(0o700).create(path) {
            Ok(()) => fs::set_permissions(path, Permissions::from_mode(0o700)).map_err(io_error("chmod", path))?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_error("create directory", path)(e)),
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            sync_dir(parent)?;
        }
    }
    Ok(())
}

pub(crate) fn sync_dir(dir: &Path) -> Result<(), StateError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error("fsync directory", dir))
}

/// Append `value` as one JSON line to `path` (created 0600 when missing; its directory must
/// exist; a link, FIFO or device is refused): under an exclusive `flock` on the log itself, with `O_APPEND`, then `fsync`.
/// When a writer was killed mid-line, the next line starts on a line of its own, so one
/// torn line never spoils another.
pub fn append_jsonl(path: &Path, value: &impl Serialize) -> Result<(), StateError> {
    crate::journal::append(path, value, None)
}

/// The exclusive lock of an append-only log, waiting up to [`DEFAULT_LOCK_TIMEOUT`].
pub(crate) fn flock_exclusive(file: File, path: &Path) -> Result<Flock<File>, StateError> {
    flock(file, FlockArg::LockExclusiveNonblock, path, DEFAULT_LOCK_TIMEOUT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_atomic_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("m.sha256");
        write_atomic(&p, b"one").expect("first write");
        write_atomic(&p, b"two").expect("second write");
        assert_eq!(std::fs::read(&p).expect("read"), b"two");
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 1);
        let err = write_atomic(&dir.path().join("no/such/m"), b"x").expect_err("no directory");
        assert!(err.to_string().contains("no/such"), "{err}");
    }

    #[test]
    fn a_private_dir_is_made_and_checked_as_the_stores_own() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("state");
        let store = Store::new(&root);
        let queue = store.private_dir("alert_queue").expect("made");
        assert_eq!(queue, root.join("alert_queue"));
        let mode = std::fs::metadata(&queue).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        std::fs::set_permissions(&queue, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let err = store.private_dir("alert_queue").expect_err("world-writable");
        assert!(matches!(err, StateError::UnsafeDir { .. }), "{err}");
        assert!(store.private_dir("../x").is_err());
    }

    #[test]
    fn write_atomic_private_is_the_owners_alone_from_the_start() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("entry.json");
        write_atomic(&p, b"shared").expect("write");
        let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
        assert_ne!(mode(&p) & 0o044, 0, "write_atomic stays readable by others");
        write_atomic_private(&p, b"private").expect("write");
        assert_eq!(mode(&p), 0o600);
        assert_eq!(std::fs::read(&p).expect("read"), b"private");
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 1);
    }

    #[test]
    fn names() {
        for ok in ["web", "nginx.service", "db@primary:5432", "a-b_c", &"x".repeat(128)] {
            assert!(validate_name(ok).is_ok(), "{ok}");
        }
        let check = |name: &str, msg: &str| {
            assert_eq!(validate_name(name).map_err(|e| e.to_string()), Err(msg.to_string()));
        };
        check("", "invalid name '': it is empty");
        check(
            "../etc/passwd",
            "invalid name '../etc/passwd': '/' is not allowed; use letters, digits and _ . @ : -",
        );
        check("..", "invalid name '..': it must not start with '.'");
        check(".web", "invalid name '.web': it must not start with '.'");
        check(
            "a b",
            "invalid name 'a b': ' ' is not allowed; use letters, digits and _ . @ : -",
        );
        check(
            "a\nb",
            "invalid name 'a\\nb': '\\n' is not allowed; use letters, digits and _ . @ : -",
        );
        check(
            &"x".repeat(129),
            &format!(
                "invalid name '{}': it is 129 bytes long; at most 128 are allowed",
                "x".repeat(129)
            ),
        );
    }
}
