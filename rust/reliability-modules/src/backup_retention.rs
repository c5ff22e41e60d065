//! `backup_retention`: deletes old backups by age and count, never the newest one that last
//! verified good.
//!
//! The backups are the entries of `path` whose names match `pattern` (files or whole
//! directories), listed by `reliability_os::prune` without following a link; which go and
//! why is `reliability_core::retention::plan`; which one verified good is the record
//! `backup_verify` writes with `record_good` (`reliability_backup::good`). This file wires
//! the three together and reports.
//!
//! Decisions:
//! - Both `keep_days` and `keep_last` may be given: a backup is deleted only when both let
//!   it go (keep if either keeps). At least one is required; `min_keep` (default 1) keeps
//!   the newest few whatever they say, so age alone never empties the directory.
//! - `require_good` (default true) makes the good record a precondition: without `good`
//!   the task fails and says how to opt out; with `good` but no record, or a record whose
//!   backup is not (inside) one of the listed entries, nothing is deleted and a warning
//!   says why. An unreadable record fails the task: what cannot be read protects nothing.
//! - The protected backup is the listed entry that is the recorded backup or holds it (a
//!   dated directory whose `SHA256SUMS` was verified with a `root` inside it).
//! - Deletion goes oldest first and carries on past an entry it cannot delete; the task
//!   then fails naming each such entry, and `changed` still says whether any went.
//! - Check mode lists what would go (same fields) and deletes nothing; the diff is the
//!   listing of matching entries before and after.
//! - Ages are modification times (a directory's own mtime).
//! - Some things are never taken for backups, and the whole run is refused, before anything
//!   is deleted, when they would be (`reliability_core::retention`): `path` a system directory
//!   (`/`, `/etc`, `/var`, ...; after resolving it, so `//etc/.` and links to `/etc` count)
//!   unless `allow_system_path`; a matched entry that is a manifest, a manifest's `.json`
//!   companion or a lock file; `path` inside `state_dir`, or a matched entry that is or
//!   holds it. A pattern that matches them is wider than the backups.
//! - A backup with anything mounted below it, or that is a mount point, is not deleted
//!   (`prune::remove`); it is reported in `errors` like any backup that could not go.

use ansible_module::{Failure, Module, Response};
use reliability_backup::good;
use reliability_core::retention::{self, Backup, Decision, Policy};
use reliability_core::size::format_size;
use reliability_core::spec::{Opt, Spec};
use reliability_core::timestamp;
use reliability_os::clock::now_ms;
use reliability_os::prune::{self, Entry};
use reliability_os::state;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

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

/// The good record of the set, and the entry it protects. Warnings say why none does.
fn protected(module: &mut Module, entries: &[Entry]) -> Result<(Value, Option<String>), Failure> {
    let Some(set) = module.str("good").map(str::to_string) else {
        return Ok((Value::Null, None));
    };
    state::validate_name(&set).map_err(|e| Failure::new(format!("good: {e}")))?;
    let dir = good::state_dir(&module.params).map_err(|e| Failure::new(e.to_string()))?;
    let record = good::load(&dir, &set).map_err(|e| {
        Failure::new(format!(
            "the good record of set '{set}' cannot be read, so nothing is deleted: {e}"
        ))
    })?;
    let unprotected = if module.bool("require_good") {
        "nothing is deleted (require_good)"
    } else {
        "no backup is protected"
    };
    let Some(record) = record else {
        module.warn(format!(
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
        module.warn(format!(
            "the last good backup of set '{set}', '{}', is not one of the backups matched here: {unprotected}",
            record.backup
        ));
    }
    Ok((
        json!({"set": set, "backup": record.backup, "verified_at": record.verified_at, "protects": holder}),
        holder,
    ))
}

/// Fails when `root` is in the state directory, or a matched entry is a file this
/// collection keeps or holds the state directory: see the module docs.
fn refuse_own_files(module: &Module, root: &Path, entries: &[Entry], pattern: &str) -> Result<(), Failure> {
    let given = Path::new(module.str("state_dir").unwrap_or(state::DEFAULT_DIR));
    let state_dir = std::fs::canonicalize(given).unwrap_or_else(|_| given.to_path_buf());
    if root.starts_with(&state_dir) {
        return Err(Failure::new(format!(
            "path: '{}' is inside the state directory '{}', whose files are never deleted",
            root.display(),
            state_dir.display()
        )));
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
    Err(Failure::new(format!(
        "pattern: '{}' matches {} entr{} that this collection keeps and never deletes ({}{}); nothing is deleted: make the pattern match only the backups",
        pattern.chars().take(100).collect::<String>().escape_debug(),
        refused.len(),
        if refused.len() == 1 { "y" } else { "ies" },
        refused.iter().take(3).cloned().collect::<Vec<_>>().join(", "),
        if refused.len() > 3 { ", ..." } else { "" },
    ))
    .field("refused", refused))
}

/// One line of `kept` / `deleted`.
fn describe(d: &Decision, entry: Option<&Entry>) -> Value {
    json!({
        "name": d.name,
        "kind": entry.map(|e| e.kind),
        "mtime": timestamp::rfc3339(d.time_ms),
        "bytes": entry.map_or(0, |e| e.bytes),
        "reason": d.reason,
    })
}

fn listing(names: &[&str]) -> String {
    names.iter().map(|n| format!("{n}\n")).collect()
}

pub fn run(module: &mut Module) -> Result<Response, Failure> {
    if module.str("good").is_none() && module.bool("require_good") {
        return Err(Failure::new(
            "require_good is true but good (the backup set whose last verified-good backup is protected) is not given; give good, or set require_good: false to delete by age and count alone",
        ));
    }
    let path = module.str("path").unwrap_or_default().to_string();
    let pattern = module.str("pattern").unwrap_or_default().to_string();
    let root = prune::resolve(Path::new(&path)).map_err(Failure::new)?;
    if retention::system_dir(&root) && !module.bool("allow_system_path") {
        return Err(Failure::new(format!(
            "path: '{path}' is the system directory '{}'; nothing is deleted there unless allow_system_path is true: give the directory that holds the backups",
            root.display()
        )));
    }
    let found = prune::list(&root, &pattern).map_err(Failure::new)?;
    refuse_own_files(module, &found.root, &found.entries, &pattern)?;
    let (good_field, holder) = protected(module, &found.entries)?;
    let count = |key: &str| module.int(key).map(|n| usize::try_from(n).unwrap_or(usize::MAX));
    let policy = Policy {
        keep_days: module.int("keep_days").map(|n| u64::try_from(n).unwrap_or(0)),
        keep_last: count("keep_last"),
        min_keep: count("min_keep").unwrap_or(1),
        require_good: module.bool("require_good"),
    };
    let backups: Vec<Backup> = found
        .entries
        .iter()
        .map(|e| Backup {
            name: e.name.clone(),
            time_ms: e.mtime_ms,
            good: holder.as_deref() == Some(e.name.as_str()),
        })
        .collect();
    let plan = retention::plan(&backups, &policy, now_ms());
    let by_name: BTreeMap<&str, &Entry> = found.entries.iter().map(|e| (e.name.as_str(), e)).collect();
    let entry = |d: &Decision| by_name.get(d.name.as_str()).copied();

    // Oldest first: a run cut short has removed the oldest.
    let check_mode = module.check_mode();
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
    let kept: Vec<Value> = plan
        .decisions
        .iter()
        .filter(|d| !gone.contains(&d.name.as_str()))
        .map(|d| describe(d, entry(d)))
        .collect();
    let changed = !deleted.is_empty();
    let verb = if check_mode { "would delete" } else { "deleted" };
    let mut msg = format!(
        "{verb} {} of {} backups matching '{pattern}' in '{}' ({} freed), kept {}",
        deleted.len(),
        plan.decisions.len(),
        found.root.display(),
        format_size(bytes_freed as f64),
        kept.len()
    );
    if let Some(name) = &plan.protected {
        msg.push_str(&format!("; '{name}' is the last backup that verified good"));
    }
    let fields = [
        ("path", json!(found.root.display().to_string())),
        (
            "deleted",
            json!(deleted.iter().map(|d| describe(d, entry(d))).collect::<Vec<_>>()),
        ),
        ("kept", json!(kept)),
        ("skipped", json!(found.skipped)),
        ("bytes_freed", json!(bytes_freed)),
        ("good", good_field),
    ];
    if !errors.is_empty() {
        let first = errors[0]["error"].as_str().unwrap_or_default().to_string();
        let mut failure = Failure::new(format!(
            "{} backup(s) could not be deleted, first: {first}; {msg}",
            errors.len()
        ))
        .field("changed", changed)
        .field("errors", errors);
        for (k, v) in fields {
            failure = failure.field(k, v);
        }
        return Err(failure);
    }
    let mut response = Response::new().changed(changed).msg(msg);
    for (k, v) in fields {
        response = response.field(k, v);
    }
    if module.diff_mode() {
        let mut before: Vec<&str> = plan.decisions.iter().map(|d| d.name.as_str()).collect();
        before.sort_unstable();
        let after: Vec<&str> = before.iter().copied().filter(|n| !gone.contains(n)).collect();
        let header = found.root.join(&pattern).display().to_string();
        response = response.field(
            "diff",
            json!({
                "before": listing(&before),
                "after": listing(&after),
                "before_header": header,
                "after_header": header,
            }),
        );
    }
    Ok(response)
}
