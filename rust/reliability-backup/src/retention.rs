//! Retention: deletes old backups by age and count, never the newest one that last
//! verified good. The engine `backup_retention` (and the daemon and the CLI) share:
//! [`RetentionRequest`] in, [`RetentionReport`] out.
//!
//! The backups are the entries of `path` whose names match `pattern` (files or whole
//! directories), listed by `reliability_os::prune` without following a link; which go and
//! why is `reliability_core::retention::plan`; which one verified good is the record
//! `backup_verify` writes with `record_good` ([`crate::good`]).
//!
//! Decisions:
//! - Both `keep_days` and `keep_last` may be given: a backup is deleted only when both let
//!   it go (keep if either keeps). At least one is required; `min_keep` (default 1) keeps
//!   the newest few whatever they say, so age alone never empties the directory.
//! - `require_good` (default true) makes the good record a precondition: without `good`
//!   the request is refused and says how to opt out; with `good` but no record, or a record
//!   whose backup is not (inside) one of the listed entries, nothing is deleted and a
//!   warning says why. An unreadable record is an error: what cannot be read protects
//!   nothing.
//! - The protected backup is the listed entry that is the recorded backup or holds it (a
//!   dated directory whose `SHA256SUMS` was verified with a `root` inside it).
//! - Deletion goes oldest first and carries on past an entry it cannot delete; the report
//!   then fails naming each such entry, and `changed` still says whether any went.
//! - Check mode lists what would go (same fields) and deletes nothing; the diff is the
//!   listing of matching entries before and after.
//! - Ages are modification times (a directory's own mtime); the time is a parameter.
//! - Some things are never taken for backups, and the whole run is refused, before anything
//!   is deleted, when they would be (`reliability_core::retention`): `path` a system directory
//!   (`/`, `/etc`, `/var`, ...; after resolving it, so `//etc/.` and links to `/etc` count)
//!   unless `allow_system_path`; a matched entry that is a manifest, a manifest's `.json`
//!   companion or a lock file; `path` inside `state_dir`, or a matched entry that is or
//!   holds it. A pattern that matches them is wider than the backups.
//! - A backup with anything mounted below it, or that is a mount point, is not deleted
//!   (`prune::remove`); it is reported in `errors` like any backup that could not go.

use crate::good;
use reliability_core::request::{Report, RequestError};
use reliability_core::retention::{self, Backup, Decision, Policy};
use reliability_core::size::format_size;
use reliability_core::spec::{Opt, Spec};
use reliability_core::timestamp;
use reliability_os::prune::{self, Entry};
use reliability_os::state;
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The options of a retention request, declared once.
pub fn spec() -> Spec {
    Spec::new(vec![
        Opt::path("path").required(),
        Opt::str("pattern").required(),
        Opt::int("keep_days").range(0.0, 36_500.0),
        Opt::int("keep_last").range(0.0, 1_000_000.0),
        Opt::int("min_keep").default(1).range(0.0, 1_000_000.0),
        Opt::str("good"),
        Opt::bool("require_good").default(true),
        Opt::path("state_dir").default(state::DEFAULT_DIR),
        Opt::bool("allow_system_path").default(false),
    ])
    .required_one_of(&["keep_days", "keep_last"])
}

/// A checked retention request.
#[derive(Clone, Debug, PartialEq)]
pub struct RetentionRequest {
    pub path: PathBuf,
    pub pattern: String,
    pub policy: Policy,
    /// The backup set whose last verified-good backup is protected.
    pub good: Option<String>,
    /// Where the good records are; never deleted from.
    pub state_dir: PathBuf,
    /// `path` may be a system directory.
    pub allow_system_path: bool,
}

impl RetentionRequest {
    /// Reads options that [`spec`] validated and checks what it cannot.
    pub fn from_params(params: &Map<String, Value>) -> Result<RetentionRequest, RequestError> {
        let text = |k: &str| params.get(k).and_then(Value::as_str);
        let int = |k: &str| params.get(k).and_then(Value::as_i64);
        let count = |k: &str| int(k).map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        let require_good = params.get("require_good").and_then(Value::as_bool).unwrap_or(true);
        let mut problems = Vec::new();
        let good = text("good").map(str::to_string);
        match &good {
            None if require_good => problems.push(
                "require_good is true but good (the backup set whose last verified-good backup is protected) is not given; give good, or set require_good: false to delete by age and count alone".into(),
            ),
            Some(set) => {
                if let Err(e) = state::validate_name(set) {
                    problems.push(format!("good: {e}"));
                }
            }
            None => {}
        }
        let state_dir = good::state_dir(params).unwrap_or_else(|e| {
            problems.push(e.to_string());
            PathBuf::new()
        });
        RequestError::check(problems, || RetentionRequest {
            path: PathBuf::from(text("path").unwrap_or_default()),
            pattern: text("pattern").unwrap_or_default().to_string(),
            policy: Policy {
                keep_days: int("keep_days").map(|n| u64::try_from(n).unwrap_or(0)),
                keep_last: count("keep_last"),
                min_keep: count("min_keep").unwrap_or(1),
                require_good,
            },
            good,
            state_dir,
            allow_system_path: params
                .get("allow_system_path")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }
}

/// One backup in `kept` / `deleted`.
#[derive(Clone, Debug, Serialize)]
pub struct Listed {
    pub name: String,
    pub kind: Option<prune::EntryKind>,
    pub mtime: String,
    pub bytes: u64,
    pub reason: String,
}

/// What a retention run did (or would do, in check mode).
#[derive(Clone, Debug, Serialize)]
pub struct RetentionReport {
    pub path: String,
    pub deleted: Vec<Listed>,
    pub kept: Vec<Listed>,
    pub skipped: Vec<prune::Skipped>,
    pub bytes_freed: u64,
    /// The good record and the entry it protects (`null` without `good`).
    pub good: Value,
    /// Entries that could not be deleted: name and error.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<Value>,
    pub changed: bool,
    pub failed: bool,
    pub msg: String,
    pub warnings: Vec<String>,
    #[serde(skip)]
    pub diff: Value,
}

impl Report for RetentionReport {
    fn changed(&self) -> bool {
        self.changed
    }
    fn failed(&self) -> bool {
        self.failed
    }
    fn msg(&self) -> &str {
        &self.msg
    }
    fn warnings(&self) -> &[String] {
        &self.warnings
    }
    fn diff(&self) -> Option<Value> {
        Some(self.diff.clone())
    }
}

/// Why a retention run deleted nothing at all: a message, and the matched entries this
/// collection keeps that made the pattern too wide.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetentionError {
    pub msg: String,
    pub refused: Vec<String>,
}

impl From<String> for RetentionError {
    fn from(msg: String) -> RetentionError {
        RetentionError {
            msg,
            refused: Vec::new(),
        }
    }
}

impl std::fmt::Display for RetentionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for RetentionError {}

/// Refused when `root` is in the state directory, or a matched entry is a file this
/// collection keeps or holds the state directory: see the module docs.
fn refuse_own_files(request: &RetentionRequest, root: &Path, entries: &[Entry]) -> Result<(), RetentionError> {
    let given = &request.state_dir;
    let state_dir = std::fs::canonicalize(given).unwrap_or_else(|_| given.clone());
    if root.starts_with(&state_dir) {
        return Err(format!(
            "path: '{}' is inside the state directory '{}', whose files are never deleted",
            root.display(),
            state_dir.display()
        )
        .into());
    }
    let refused: Vec<String> = entries
        .iter()
        .filter_map(|e| {
            let why = retention::own_file(&e.name).map(str::to_string).or_else(|| {
                retention::holds_state(&e.path, &state_dir)
                    .then(|| format!("the state directory '{}' or holds it", state_dir.display()))
            })?;
            let name: String = e.name.chars().take(100).collect();
            Some(format!("'{}' is {why}", name.escape_debug()))
        })
        .collect();
    if refused.is_empty() {
        return Ok(());
    }
    Err(RetentionError {
        msg: format!(
            "pattern: '{}' matches {} entr{} that this collection keeps and never deletes ({}{}); nothing is deleted: make the pattern match only the backups",
            request.pattern.chars().take(100).collect::<String>().escape_debug(),
            refused.len(),
            if refused.len() == 1 { "y" } else { "ies" },
            refused.iter().take(3).cloned().collect::<Vec<_>>().join(", "),
            if refused.len() > 3 { ", ..." } else { "" },
        ),
        refused,
    })
}

/// The good record of the set, and the entry it protects. Warnings say why none does.
fn protected(
    request: &RetentionRequest,
    entries: &[Entry],
    warnings: &mut Vec<String>,
) -> Result<(Value, Option<String>), String> {
    let Some(set) = &request.good else {
        return Ok((Value::Null, None));
    };
    let record = good::load(&request.state_dir, set)
        .map_err(|e| format!("the good record of set '{set}' cannot be read, so nothing is deleted: {e}"))?;
    let unprotected = if request.policy.require_good {
        "nothing is deleted (require_good)"
    } else {
        "no backup is protected"
    };
    let Some(record) = record else {
        warnings.push(format!(
            "no backup of set '{set}' has verified good yet (backup_verify with record_good: {set} records one): {unprotected}"
        ));
        return Ok((
            json!({"set": set, "backup": null, "verified_at": null, "protects": null}),
            None,
        ));
    };
    let backup = Path::new(&record.backup);
    let holder = entries
        .iter()
        .find(|e| backup == e.path || backup.starts_with(&e.path))
        .map(|e| e.name.clone());
    if holder.is_none() {
        warnings.push(format!(
            "the last good backup of set '{set}', '{}', is not one of the backups matched here: {unprotected}",
            record.backup
        ));
    }
    Ok((
        json!({"set": set, "backup": record.backup, "verified_at": record.verified_at, "protects": holder}),
        holder,
    ))
}

fn describe(d: &Decision, entry: Option<&Entry>) -> Listed {
    Listed {
        name: d.name.clone(),
        kind: entry.map(|e| e.kind),
        mtime: timestamp::rfc3339(d.time_ms),
        bytes: entry.map_or(0, |e| e.bytes),
        reason: d.reason.clone(),
    }
}

fn listing(names: &[&str]) -> String {
    names.iter().map(|n| format!("{n}\n")).collect()
}

/// Runs the request at `now_ms`; in check mode nothing is deleted. `Err` when nothing was
/// deleted because the backups cannot be listed, the good record cannot be read, or the
/// path or the pattern reach what is never deleted.
pub fn run(request: &RetentionRequest, now_ms: u64, check_mode: bool) -> Result<RetentionReport, RetentionError> {
    let root = prune::resolve(&request.path)?;
    if retention::system_dir(&root) && !request.allow_system_path {
        return Err(format!(
            "path: '{}' is the system directory '{}'; nothing is deleted there unless allow_system_path is true: give the directory that holds the backups",
            request.path.display(),
            root.display()
        )
        .into());
    }
    let found = prune::list(&root, &request.pattern)?;
    refuse_own_files(request, &found.root, &found.entries)?;
    let mut warnings = Vec::new();
    let (good_field, holder) = protected(request, &found.entries, &mut warnings)?;
    let backups: Vec<Backup> = found
        .entries
        .iter()
        .map(|e| Backup {
            name: e.name.clone(),
            time_ms: e.mtime_ms,
            good: holder.as_deref() == Some(e.name.as_str()),
        })
        .collect();
    let plan = retention::plan(&backups, &request.policy, now_ms);
    let by_name: BTreeMap<&str, &Entry> = found.entries.iter().map(|e| (e.name.as_str(), e)).collect();
    let entry = |d: &Decision| by_name.get(d.name.as_str()).copied();

    // Oldest first: a run cut short has removed the oldest.
    let mut deleted = Vec::new();
    let mut errors = Vec::new();
    for d in plan.deleted().collect::<Vec<_>>().into_iter().rev() {
        let result = match entry(d) {
            Some(e) if check_mode => prune::check_one_filesystem(e),
            Some(e) => prune::remove(e),
            None => Err(format!("'{}' was not listed", d.name)),
        };
        match result {
            Ok(()) => deleted.push(d),
            Err(error) => errors.push(json!({"name": d.name, "error": error})),
        }
    }
    deleted.reverse();
    let gone: Vec<&str> = deleted.iter().map(|d| d.name.as_str()).collect();
    let bytes_freed: u64 = deleted.iter().filter_map(|d| entry(d)).map(|e| e.bytes).sum();
    let kept: Vec<Listed> = plan
        .decisions
        .iter()
        .filter(|d| !gone.contains(&d.name.as_str()))
        .map(|d| describe(d, entry(d)))
        .collect();
    let verb = if check_mode { "would delete" } else { "deleted" };
    let mut msg = format!(
        "{verb} {} of {} backups matching '{}' in '{}' ({} freed), kept {}",
        deleted.len(),
        plan.decisions.len(),
        request.pattern,
        found.root.display(),
        format_size(bytes_freed as f64),
        kept.len()
    );
    if let Some(name) = &plan.protected {
        msg.push_str(&format!("; '{name}' is the last backup that verified good"));
    }
    if let Some(first) = errors.first() {
        msg = format!(
            "{} backup(s) could not be deleted, first: {}; {msg}",
            errors.len(),
            first["error"].as_str().unwrap_or_default()
        );
    }
    let mut before: Vec<&str> = plan.decisions.iter().map(|d| d.name.as_str()).collect();
    before.sort_unstable();
    let after: Vec<&str> = before.iter().copied().filter(|n| !gone.contains(n)).collect();
    let header = found.root.join(&request.pattern).display().to_string();
    Ok(RetentionReport {
        path: found.root.display().to_string(),
        deleted: deleted.iter().map(|d| describe(d, entry(d))).collect(),
        kept,
        skipped: found.skipped,
        bytes_freed,
        good: good_field,
        failed: !errors.is_empty(),
        errors,
        changed: !deleted.is_empty(),
        msg,
        warnings,
        diff: json!({
            "before": listing(&before),
            "after": listing(&after),
            "before_header": header,
            "after_header": header,
        }),
    })
}
