//! `integrity`: every file a manifest lists (ours, or one GNU `sha256sum` wrote, escaped
//! names included) is hashed in parallel and compared; missing, mismatched, unreadable
//! and, on request, extra files are reported once each, by path.
//!
//! Only regular files are read, and only under the root: a listed FIFO or device is
//! reported by its kind, and a file reached through a symbolic link that leads out of the
//! root (or, with `refuse_symlinks`, through any link) is reported instead of read, so a
//! backup made of links to live files does not pass. The manifest and its companion, when
//! they lie in the tree, are not extra files (`reliability_core::manifest::own_files`, the
//! rule `restore_test` uses too).
//!
//! Reading and hashing are `reliability_os::hashing`; parsing and the verdict are
//! `reliability_core::manifest`. Without `max_duration` and `sample_percent` nothing is
//! written and the run is exactly the full verification (no state, no clock per file).
//!
//! ## Time-boxed and sampled verification
//!
//! A backup of many terabytes cannot be hashed every night, but it can be hashed over a
//! week. With `max_duration` (seconds) and/or `sample_percent` a run verifies a window of
//! the manifest and a *cursor* remembers where the next run starts:
//!
//! - The manifest's entries are taken in path order (the manifest's own sorted order), so
//!   the order is stable from run to run. A *cycle* is one pass over all of them.
//! - A run starts at the stored position and takes files until the sample quota
//!   (`ceil(files * sample_percent / 100)`, at least one) is used or the time box is over:
//!   `reliability_os::hashing::hash_files_until` stops starting files at the deadline, and
//!   the files it finished are always a prefix of the window, so the new position is the old
//!   one plus the files done. At least one file is verified per run, so a time box shorter
//!   than one file still makes progress.
//! - A run never goes past the end of a cycle: the run that reaches the end completes the
//!   cycle (`cycles_completed` goes up, its time is recorded) and the next run starts the
//!   next cycle at the first file. So within a cycle every file is verified exactly once,
//!   and the result can say "100% covered" when it is.
//! - The cursor is a state record (`<state_dir>/integrity_cursor/<cursor>.json`, written
//!   by `reliability_os::state::Store` under its lock, atomically). It is keyed to the
//!   SHA-256 of the manifest's bytes: when the manifest changes, the cycle restarts at the
//!   first file and the result says so (`restarted`). Its default name is the manifest's
//!   file name and a hash of the manifest and root paths, so two copies verified against one
//!   manifest keep two cursors.
//! - The record lock is held for the whole run: two runs on one cursor at once would verify
//!   the same window twice, so the second waits (and fails after the lock timeout, saying
//!   another process holds it).
//! - Files whose last verification failed are kept in the cursor and verified again first on
//!   every run until they pass: a damaged file must not turn the next night green just
//!   because the cursor moved past it. They do not count towards the cycle.
//! - In check mode the cursor is read, the same window verified, and nothing written.

use crate::{str_param, CheckReport, Context, RequestError};
use reliability_core::manifest::{self, Integrity, Manifest, Seen};
use reliability_core::spec::Opt;
use reliability_core::timestamp;
use reliability_os::clock::now_ms;
use reliability_os::hashing::{self, HashRun, Links, WalkOptions};
use reliability_os::state::{self, Record, StateError, Store};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The options of the check (`manifest` and `root` are shared with the restore checks).
pub fn options() -> Vec<Opt> {
    vec![
        Opt::path("manifest"),
        Opt::path("root"),
        Opt::bool("report_extra").default(false),
        Opt::bool("refuse_symlinks").default(false),
        Opt::int("threads").range(1.0, 1024.0),
        Opt::float("max_duration").range(0.0, 1e9),
        Opt::float("sample_percent").range(0.0, 100.0),
        Opt::str("cursor"),
        Opt::path("state_dir").default(state::DEFAULT_DIR),
    ]
}

/// The `threads` option, or one per core.
pub fn threads(params: &Map<String, Value>) -> usize {
    params
        .get("threads")
        .and_then(Value::as_u64)
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or_else(hashing::default_threads)
}

/// How a manifest's files may use symbolic links: while they stay under the root, or
/// (`refuse_symlinks`) not at all.
fn links(params: &Map<String, Value>) -> Links {
    if params.get("refuse_symlinks").and_then(Value::as_bool).unwrap_or(false) {
        Links::Refuse
    } else {
        Links::WithinRoot
    }
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

/// The manifest file named by the options, and the root its paths are relative to
/// (`root`, or the manifest's directory).
pub fn manifest_and_root(params: &Map<String, Value>, check: &str) -> Result<(PathBuf, PathBuf), RequestError> {
    let manifest_path = str_param(params, "manifest")
        .map(PathBuf::from)
        .ok_or_else(|| RequestError(format!("the {check} check needs 'manifest'")))?;
    let root = match str_param(params, "root") {
        Some(r) => absolute(Path::new(r)),
        None => absolute(&manifest_path)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/")),
    };
    Ok((manifest_path, root))
}

/// Reads and parses a manifest file, naming it in any error.
pub fn load_manifest(path: &Path) -> Result<Manifest, RequestError> {
    read_manifest(path).map(|(_, m)| m)
}

/// The manifest's bytes (to key a cursor to them) and the manifest.
fn read_manifest(path: &Path) -> Result<(Vec<u8>, Manifest), RequestError> {
    let cannot = |e: std::io::Error| RequestError(format!("cannot read manifest '{}': {e}", path.display()));
    let mut text = Vec::new();
    hashing::open_regular(path, true)
        .and_then(|mut f| std::io::Read::read_to_end(&mut f, &mut text))
        .map_err(cannot)?;
    let manifest = Manifest::parse(&text).map_err(|e| RequestError(format!("'{}': {e}", path.display())))?;
    Ok((text, manifest))
}

/// Checks the time-box options (`max_duration`, `sample_percent`, `cursor`, `state_dir`),
/// whether or not the check runs.
pub fn validate(params: &Map<String, Value>) -> Result<(), RequestError> {
    Window::from_params(params).map(|_| ())
}

/// What a time-boxed or sampled run was asked for; `None` from [`Window::from_params`]
/// means a full verification.
#[derive(Clone, Debug)]
struct Window {
    max_duration: Option<Duration>,
    sample_percent: Option<f64>,
    cursor: Option<String>,
    state_dir: PathBuf,
}

impl Window {
    fn from_params(params: &Map<String, Value>) -> Result<Option<Window>, RequestError> {
        let max = params.get("max_duration").and_then(Value::as_f64);
        let percent = params.get("sample_percent").and_then(Value::as_f64);
        let cursor = str_param(params, "cursor").map(str::to_string);
        if max.is_none() && percent.is_none() {
            return match cursor {
                Some(c) => Err(RequestError(format!(
                    "cursor: '{c}' is only used with max_duration or sample_percent"
                ))),
                None => Ok(None),
            };
        }
        let max_duration = match max {
            None => None,
            Some(s) => Some(
                Duration::try_from_secs_f64(s)
                    .ok()
                    .filter(|d| !d.is_zero())
                    .ok_or_else(|| RequestError(format!("max_duration: {s} must be more than 0 seconds")))?,
            ),
        };
        if let Some(p) = percent.filter(|p| !(*p > 0.0 && *p <= 100.0)) {
            return Err(RequestError(format!(
                "sample_percent: {p} must be more than 0 and at most 100"
            )));
        }
        if let Some(c) = &cursor {
            state::validate_name(c).map_err(|e| RequestError(format!("cursor: {e}")))?;
        }
        let state_dir = PathBuf::from(str_param(params, "state_dir").unwrap_or(state::DEFAULT_DIR));
        if !state_dir.is_absolute() {
            return Err(RequestError(format!(
                "state_dir: '{}' is not an absolute path",
                state_dir.display()
            )));
        }
        Ok(Some(Window {
            max_duration,
            sample_percent: percent,
            cursor,
            state_dir,
        }))
    }
}

/// Where a time-boxed verification is in its cycle over one manifest (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Cursor {
    /// The manifest and root it walks, for people reading the file.
    pub manifest: String,
    pub root: String,
    /// SHA-256 of the manifest's bytes: another manifest means another cycle.
    pub manifest_sha256: String,
    /// Files in that manifest.
    pub files: usize,
    /// Index, in path order, of the next file to verify; `files` once the cycle is done.
    pub position: usize,
    /// Full cycles completed with this cursor.
    pub cycles_completed: u64,
    /// Unix milliseconds: when the current cycle started, when the last one completed.
    pub cycle_started_ms: Option<u64>,
    pub last_cycle_completed_ms: Option<u64>,
    /// Files whose last verification failed, verified again first until they pass.
    pub failing: Vec<String>,
}

impl Record for Cursor {
    const KIND: &'static str = "integrity_cursor";
    const VERSION: u32 = 1;
}

/// The cursor a run starts from, and why a cycle was restarted (`None` when the stored
/// cursor simply goes on). A finished cycle starts the next one at the first file.
pub fn resume(stored: Option<Cursor>, digest: &str, files: usize, now_ms: u64) -> (Cursor, Option<String>) {
    let fresh = |old: Cursor| Cursor {
        manifest_sha256: digest.to_string(),
        files,
        position: 0,
        cycle_started_ms: Some(now_ms),
        ..old
    };
    match stored {
        None => (
            fresh(Cursor::default()),
            Some("no cursor yet: a new cycle starts at the first file".to_string()),
        ),
        Some(old) if old.manifest_sha256 != digest => {
            let why = format!(
                "the manifest changed (sha256 {} was {}): the cycle restarts at the first file",
                short(digest),
                short(&old.manifest_sha256)
            );
            (fresh(old), Some(why))
        }
        Some(old) if old.position >= old.files || old.files != files => (fresh(old), None),
        Some(old) => (old, None),
    }
}

fn short(digest: &str) -> &str {
    digest.get(..12).unwrap_or(digest)
}

/// Files a run may take from its cycle: `ceil(files * percent / 100)`, at least one.
pub fn quota(files: usize, sample_percent: Option<f64>) -> usize {
    match sample_percent {
        None => files,
        Some(p) => ((files as f64 * p / 100.0).ceil() as usize).max(1).min(files),
    }
}

/// The cursor after a run that verified `done` files of its cycle from `cursor.position`;
/// `failing` are the files that failed now or were failing and not verified again. Says
/// whether the run completed the cycle.
pub fn advance(cursor: Cursor, done: usize, failing: Vec<String>, now_ms: u64) -> (Cursor, bool) {
    let position = (cursor.position + done).min(cursor.files);
    let completed = done > 0 && position == cursor.files;
    let next = Cursor {
        position,
        cycles_completed: cursor.cycles_completed + u64::from(completed),
        last_cycle_completed_ms: if completed {
            Some(now_ms)
        } else {
            cursor.last_cycle_completed_ms
        },
        failing,
        ..cursor
    };
    (next, completed)
}

/// The cursor's name unless given: the manifest's file name (made a valid state name) and
/// 16 hex digits of SHA-256 over the absolute manifest and root paths.
pub fn default_cursor_name(manifest_path: &Path, root: &Path) -> String {
    let manifest_path = absolute(manifest_path);
    let mut key = manifest_path.as_os_str().as_encoded_bytes().to_vec();
    key.push(0);
    key.extend_from_slice(root.as_os_str().as_encoded_bytes());
    let base: String = manifest_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.@:-".contains(c) {
                c
            } else {
                '_'
            }
        })
        .take(100)
        .collect();
    let base = base.trim_start_matches('.');
    let digest = hashing::sha256_hex(&key);
    let hash = short(&digest);
    if base.is_empty() {
        format!("manifest-{hash}")
    } else {
        format!("{base}-{hash}")
    }
}

/// Files under the root that the manifest does not list, when asked (`report_extra`).
fn present_files(
    params: &Map<String, Value>,
    manifest_path: &Path,
    root: &Path,
    warnings: &mut Vec<String>,
) -> Result<Option<Vec<String>>, RequestError> {
    if !params.get("report_extra").and_then(Value::as_bool).unwrap_or(false) {
        return Ok(None);
    }
    let walked = hashing::walk(root, &WalkOptions::default()).map_err(RequestError)?;
    if let Some((p, e)) = walked.errors.first() {
        warnings.push(format!("cannot list '{p}' under '{}': {e}", root.display()));
    }
    let own = manifest::own_files(&absolute(manifest_path), root);
    Ok(Some(walked.files.into_iter().filter(|f| !own.contains(f)).collect()))
}

fn seen(run: &HashRun) -> BTreeMap<String, Seen> {
    run.files.iter().map(|f| (f.path.clone(), f.outcome.clone())).collect()
}

pub fn run(params: &Map<String, Value>, ctx: &Context) -> Result<CheckReport, RequestError> {
    let started = Instant::now();
    let (manifest_path, root) = manifest_and_root(params, "integrity")?;
    if !root.is_dir() {
        return Err(RequestError(format!("root '{}' is not a directory", root.display())));
    }
    let (bytes, manifest) = read_manifest(&manifest_path)?;
    let window = Window::from_params(params)?;
    let mut warnings = Vec::new();
    let present = present_files(params, &manifest_path, &root, &mut warnings)?;
    let Some(window) = window else {
        let paths: Vec<String> = manifest.entries.keys().cloned().collect();
        let run = hashing::hash_files(&root, &paths, threads(params), links(params));
        let verdict = manifest::judge(&manifest, &seen(&run), present.as_deref());
        return Ok(report(&manifest, &run, &verdict, Map::new(), String::new(), warnings));
    };
    windowed(
        params,
        ctx,
        started,
        &manifest_path,
        &root,
        &bytes,
        &manifest,
        &window,
        present,
        warnings,
    )
}

/// What one windowed run did, for the report.
struct Outcome {
    run: HashRun,
    verdict: Integrity,
    cursor: Cursor,
    restarted: Option<String>,
    done: usize,
    rechecked: Vec<String>,
    cut: bool,
    cycle_completed: bool,
    first: Option<String>,
    last: Option<String>,
}

#[allow(clippy::too_many_arguments)]
fn windowed(
    params: &Map<String, Value>,
    ctx: &Context,
    started: Instant,
    manifest_path: &Path,
    root: &Path,
    bytes: &[u8],
    manifest: &Manifest,
    window: &Window,
    present: Option<Vec<String>>,
    mut warnings: Vec<String>,
) -> Result<CheckReport, RequestError> {
    let digest = hashing::sha256_hex(bytes);
    let name = window
        .cursor
        .clone()
        .unwrap_or_else(|| default_cursor_name(manifest_path, root));
    let store = Store::new(&window.state_dir);
    let cursor_file = store
        .path::<Cursor>(&name)
        .map_err(|e| RequestError(format!("cursor: {e}")))?;
    let order: Vec<&String> = manifest.entries.keys().collect();
    let deadline = window.max_duration.and_then(|d| started.checked_add(d));
    let threads = threads(params);
    let mut outcome: Option<Outcome> = None;
    // One run from a stored cursor; returns the cursor to store.
    let mut step = |stored: Option<Cursor>, why: Option<String>| -> Cursor {
        let now = now_ms();
        let (mut cursor, restarted) = resume(stored, &digest, order.len(), now);
        cursor.manifest = absolute(manifest_path).display().to_string();
        cursor.root = root.display().to_string();
        let start = cursor.position;
        let end = (start + quota(order.len(), window.sample_percent)).min(order.len());
        let slice: Vec<String> = order
            .get(start..end)
            .unwrap_or_default()
            .iter()
            .map(|p| (*p).clone())
            .collect();
        let in_slice: BTreeSet<&String> = slice.iter().collect();
        let rechecks: Vec<String> = cursor
            .failing
            .iter()
            .filter(|p| manifest.entries.contains_key(*p) && !in_slice.contains(p))
            .cloned()
            .collect();
        let mut paths = rechecks.clone();
        paths.extend(slice.iter().cloned());
        let run = match deadline {
            Some(d) => hashing::hash_files_until(root, &paths, threads, links(params), d),
            None => hashing::hash_files(root, &paths, threads, links(params)),
        };
        let cut = run.files.len() < paths.len();
        let seen = seen(&run);
        let checked = Manifest {
            entries: manifest
                .entries
                .iter()
                .filter(|(p, _)| seen.contains_key(*p))
                .map(|(p, d)| (p.clone(), d.clone()))
                .collect(),
        };
        let mut verdict = manifest::judge(&checked, &seen, None);
        if let Some(present) = &present {
            verdict.extra = manifest::extra(manifest, present);
        }
        let bad: BTreeSet<&String> = verdict
            .missing
            .iter()
            .chain(&verdict.mismatched)
            .chain(verdict.unreadable.iter().map(|(p, _)| p))
            .collect();
        let failing: Vec<String> = cursor
            .failing
            .iter()
            .filter(|p| manifest.entries.contains_key(*p) && !seen.contains_key(*p))
            .chain(bad)
            .cloned()
            .collect::<BTreeSet<String>>()
            .into_iter()
            .collect();
        let done = run.files.len().saturating_sub(rechecks.len());
        let rechecked: Vec<String> = rechecks.into_iter().filter(|p| seen.contains_key(p)).collect();
        let (next, cycle_completed) = advance(cursor, done, failing, now);
        let done_paths = slice.get(..done).unwrap_or_default();
        outcome = Some(Outcome {
            run,
            verdict,
            cursor: next.clone(),
            restarted: why.or(restarted),
            done,
            rechecked,
            cut,
            cycle_completed,
            first: done_paths.first().cloned(),
            last: done_paths.last().cloned(),
        });
        next
    };
    if ctx.check_mode {
        let stored = match store.load::<Cursor>(&name) {
            Ok(c) => c,
            Err(e @ StateError::Corrupt { .. }) => {
                warnings.push(format!("{e}; check mode: a new cycle would start"));
                None
            }
            Err(e) => return Err(RequestError(format!("cursor: {e}"))),
        };
        step(stored, None);
    } else {
        match store.update(&name, |stored| Ok::<_, StateError>(step(stored, None))) {
            Ok(_) => {}
            Err(e @ StateError::Corrupt { .. }) => {
                warnings.push(e.to_string());
                let why = Some("the cursor file was unusable (moved aside): a new cycle starts".to_string());
                store
                    .update(&name, |_| Ok::<_, StateError>(step(None, why)))
                    .map_err(|e| RequestError(format!("cursor: {e}")))?;
            }
            Err(e) => return Err(RequestError(format!("cursor: {e}"))),
        }
    }
    let Some(o) = outcome else {
        return Err(RequestError(format!(
            "cursor: '{}' was not updated",
            cursor_file.display()
        )));
    };
    let c = &o.cursor;
    let coverage = if c.files == 0 {
        100.0
    } else {
        (c.position as f64 * 1000.0 / c.files as f64).round() / 10.0
    };
    let extra = json!({
        "verified": o.done,
        "rechecked": o.rechecked,
        "first": o.first,
        "last": o.last,
        "position": c.position,
        "remaining": c.files - c.position,
        "coverage_percent": coverage,
        "cycles_completed": c.cycles_completed,
        "cycle_completed": o.cycle_completed,
        "last_cycle_completed": c.last_cycle_completed_ms.map(timestamp::rfc3339),
        "time_box_cut": o.cut,
        "restarted": o.restarted,
        "cursor": name,
        "cursor_file": cursor_file.display().to_string(),
        "cursor_written": !ctx.check_mode,
    });
    let mut note = format!(
        "; {} of the cycle this run{}, {coverage}% covered, {} to go, {} cycles completed{}",
        o.done,
        if o.rechecked.is_empty() {
            String::new()
        } else {
            format!(" (and {} failing before, re-verified)", o.rechecked.len())
        },
        c.files - c.position,
        c.cycles_completed,
        if o.cut { "; the time box cut the run" } else { "" }
    );
    if let Some(why) = &o.restarted {
        note.push_str(&format!("; {why}"));
    }
    let Value::Object(extra) = extra else {
        return Err(RequestError("internal: the report is not an object".to_string()));
    };
    Ok(report(manifest, &o.run, &o.verdict, extra, note, warnings))
}

/// The check's report: the figures every run has, then `extra` (the cursor's, when
/// windowed); `note` ends the message.
fn report(
    manifest: &Manifest,
    run: &HashRun,
    verdict: &Integrity,
    extra: Map<String, Value>,
    note: String,
    warnings: Vec<String>,
) -> CheckReport {
    let failed = verdict.failed();
    let status = if failed { "failed" } else { "ok" };
    let fields = json!({
        "files": manifest.entries.len(),
        "ok": verdict.ok,
        "bytes": run.bytes,
        "threads": run.threads,
        "duration": run.duration.as_secs_f64(),
        "throughput_mbps": run.throughput_mbps(),
        "missing": verdict.missing,
        "mismatched": verdict.mismatched,
        "unreadable": verdict.unreadable.iter().map(|(p, e)| json!({"path": p, "error": e})).collect::<Vec<Value>>(),
        "extra": verdict.extra,
    });
    let msg = format!(
        "integrity {status}: {} ({} files, {} bytes in {:.2}s, {:.0} MB/s){note}",
        verdict.summary(),
        run.files.len(),
        run.bytes,
        run.duration.as_secs_f64(),
        run.throughput_mbps()
    );
    let mut fields = match fields {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    fields.extend(extra);
    CheckReport {
        failed,
        msg,
        fields,
        warnings,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const D1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
    const D2: &str = "2222222222222222222222222222222222222222222222222222222222222222";

    #[test]
    fn quotas_round_up_and_take_at_least_one() {
        assert_eq!(quota(100, None), 100);
        assert_eq!(quota(100, Some(100.0)), 100);
        assert_eq!(quota(100, Some(15.0)), 15);
        assert_eq!(quota(7, Some(15.0)), 2);
        assert_eq!(quota(1000, Some(0.01)), 1);
        assert_eq!(quota(0, Some(50.0)), 0);
    }

    /// Runs cycles of `files` with a fixed number done per run; returns (start, done) per run.
    #[test]
    fn a_cycle_covers_every_file_once_then_wraps() {
        let mut stored: Option<Cursor> = None;
        let mut covered = Vec::new();
        let mut completions = Vec::new();
        for run in 0..7u64 {
            let (cursor, why) = resume(stored.take(), D1, 10, run);
            assert_eq!(why.is_some(), run == 0, "run {run}: {why:?}");
            let start = cursor.position;
            let done = 3.min(10 - start);
            covered.extend(start..start + done);
            let (next, completed) = advance(cursor, done, vec![], run);
            if completed {
                completions.push(run);
            }
            stored = Some(next);
        }
        // Runs 0-3 cover 0..10 (3+3+3+1), runs 4-6 the next cycle's first 9.
        assert_eq!(covered, (0..10).chain(0..9).collect::<Vec<_>>());
        assert_eq!(completions, [3]);
        let c = stored.unwrap();
        assert_eq!(
            (c.position, c.cycles_completed, c.last_cycle_completed_ms),
            (9, 1, Some(3))
        );
        assert_eq!(c.cycle_started_ms, Some(4));
    }

    #[test]
    fn a_changed_manifest_restarts_the_cycle_and_keeps_the_history() {
        let old = Cursor {
            manifest_sha256: D1.into(),
            files: 10,
            position: 6,
            cycles_completed: 2,
            last_cycle_completed_ms: Some(5),
            failing: vec!["x".into()],
            ..Cursor::default()
        };
        let (c, why) = resume(Some(old.clone()), D2, 12, 9);
        assert_eq!(
            why.as_deref(),
            Some("the manifest changed (sha256 222222222222 was 111111111111): the cycle restarts at the first file")
        );
        assert_eq!((c.position, c.files, c.cycles_completed), (0, 12, 2));
        assert_eq!(c.failing, ["x"]);
        assert_eq!(c.manifest_sha256, D2);
        // The same manifest goes on where it was.
        let (same, why) = resume(Some(old), D1, 10, 9);
        assert_eq!((same.position, why), (6, None));
    }

    #[test]
    fn an_empty_manifest_never_completes_a_cycle() {
        let (c, _) = resume(None, D1, 0, 1);
        let (c, completed) = advance(c, 0, vec![], 2);
        assert!(!completed);
        assert_eq!((c.position, c.cycles_completed), (0, 0));
    }

    #[test]
    fn default_cursor_names_are_valid_and_distinct_per_root() {
        let a = default_cursor_name(Path::new("/srv/b/SHA256 SUMS"), Path::new("/srv/b"));
        let b = default_cursor_name(Path::new("/srv/b/SHA256 SUMS"), Path::new("/mnt/offsite"));
        assert!(a.starts_with("SHA256_SUMS-"), "{a}");
        assert_ne!(a, b);
        let hidden = default_cursor_name(Path::new("/srv/.sums"), Path::new("/srv"));
        assert!(hidden.starts_with("sums-"), "{hidden}");
        for n in [a, b, hidden] {
            assert!(state::validate_name(&n).is_ok(), "{n}");
        }
    }
}
