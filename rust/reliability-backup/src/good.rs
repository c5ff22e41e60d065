//! "Last verified good": which backup of a set last passed verification, and when.
//!
//! `backup_retention` must never delete the backup a restore would fall back on, so
//! something has to remember which one that is. A verification request with
//! `record_good: <set>` writes, when every check it asked for passed, one small state record
//! per backup set: `<state_dir>/backup_good/<set>.json`, through `reliability_os::state`
//! (locked, atomic, an unusable file moved aside and reported, never overwritten unread).
//! A failing verification leaves the record as it was: the previous good backup stays the
//! protected one.
//!
//! Decisions:
//! - The backup the record names is the `backup` option (a file or a directory: an archive,
//!   a dump, a dated directory), else the root the manifest's paths are relative to (the
//!   `root` option or the manifest's directory: for `/srv/backup/2026-11-23/SHA256SUMS`,
//!   `/srv/backup/2026-11-23`). It must exist; it is stored resolved (absolute, links
//!   followed), so that retention recognises it however either side spells the path.
//! - Writing the record is a persistent change: the task reports `changed: true` (the record
//!   holds the verification time, so every passing run writes). Check mode writes nothing
//!   and predicts `changed: true` when every check passed.
//! - A request with no checks verifies nothing, so it cannot record anything good: refused.
//! - Everything about the record is checked before any check runs (set name, `state_dir`
//!   absolute, the backup exists), so a typo does not cost an hour of hashing first.

use crate::{integrity, str_param, Context, RequestError, VerifyReport};
use reliability_core::spec::Opt;
use reliability_core::timestamp;
use reliability_os::state::{self, Record, StateError, Store};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

/// The record of the backup of a set that last verified good.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Good {
    pub set: String,
    /// Absolute, resolved path of the backup.
    pub backup: String,
    /// When it passed, RFC 3339 UTC, and as unix milliseconds.
    pub verified_at: String,
    pub verified_at_ms: u64,
    /// The checks that passed.
    pub checks: Vec<String>,
}

impl Record for Good {
    const KIND: &'static str = "backup_good";
    const VERSION: u32 = 1;
}

const NO_BACKUP: &str =
    "record_good: say which backup verified good with 'backup' (or give 'manifest', whose root is taken)";

/// The options of the record (`state_dir` is shared, declared with [`crate::integrity::options`]).
pub fn options() -> Vec<Opt> {
    vec![Opt::str("record_good"), Opt::path("backup")]
}

/// A checked request to record the good backup.
#[derive(Clone, Debug)]
pub struct Request {
    set: String,
    backup: PathBuf,
    store: Store,
}

/// The `state_dir` option, which must be absolute.
pub fn state_dir(params: &Map<String, Value>) -> Result<PathBuf, RequestError> {
    let dir = PathBuf::from(str_param(params, "state_dir").unwrap_or(state::DEFAULT_DIR));
    if dir.is_absolute() {
        Ok(dir)
    } else {
        Err(RequestError(format!(
            "state_dir: '{}' is not an absolute path",
            dir.display()
        )))
    }
}

/// The record asked for, checked; `None` when `record_good` is not given.
pub fn request(params: &Map<String, Value>, asked: &[String]) -> Result<Option<Request>, RequestError> {
    let Some(set) = str_param(params, "record_good") else {
        if let Some(b) = str_param(params, "backup") {
            return Err(RequestError(format!(
                "backup: '{b}' is the backup to record as good: it needs record_good (the set's name)"
            )));
        }
        return Ok(None);
    };
    state::validate_name(set).map_err(|e| RequestError(format!("record_good: {e}")))?;
    if asked.is_empty() {
        return Err(RequestError(format!(
            "record_good: '{set}' would record a backup that no check verified; ask for at least one check"
        )));
    }
    let store = Store::new(state_dir(params)?);
    let given = match (str_param(params, "backup"), str_param(params, "manifest")) {
        (Some(b), _) => PathBuf::from(b),
        (None, Some(_)) => integrity::manifest_and_root(params, "record_good")?.1,
        (None, None) => return Err(RequestError(NO_BACKUP.to_string())),
    };
    let backup =
        std::fs::canonicalize(&given).map_err(|e| RequestError(format!("backup: '{}': {e}", given.display())))?;
    Ok(Some(Request {
        set: set.to_string(),
        backup,
        store,
    }))
}

/// After the checks: writes the record when every check passed (not in check mode), and
/// puts `good` (and `changed`) into the report.
pub fn record(
    request: &Request,
    asked: &[String],
    ctx: &Context,
    report: &mut VerifyReport,
) -> Result<(), RequestError> {
    let state_file = request
        .store
        .path::<Good>(&request.set)
        .map_err(|e| RequestError(e.to_string()))?;
    let mut good = json!({
        "set": request.set,
        "backup": request.backup.display().to_string(),
        "state_file": state_file.display().to_string(),
        "recorded": false,
    });
    if !report.failed {
        report.changed = true;
        if !ctx.check_mode {
            let now = reliability_os::clock::now_ms();
            let record = Good {
                set: request.set.clone(),
                backup: request.backup.display().to_string(),
                verified_at: timestamp::rfc3339(now),
                verified_at_ms: now,
                checks: asked.iter().fold(Vec::new(), |mut seen, c| {
                    if !seen.contains(c) {
                        seen.push(c.clone());
                    }
                    seen
                }),
            };
            let write = || {
                request
                    .store
                    .update(&request.set, |_: Option<Good>| Ok::<_, StateError>(record.clone()))
            };
            match write() {
                Err(e @ StateError::Corrupt { moved_to: Some(_), .. }) => {
                    report.warnings.push(format!("{e}; a new record is written"));
                    write()
                }
                other => other,
            }
            .map_err(|e| RequestError(e.to_string()))?;
            good["recorded"] = json!(true);
            good["verified_at"] = json!(record.verified_at);
        }
        let verb = if ctx.check_mode { "would record" } else { "recorded" };
        report.msg = format!(
            "{}; {verb} '{}' as the last good backup of set '{}'",
            report.msg,
            request.backup.display(),
            request.set
        );
    }
    report.good = Some(good);
    Ok(())
}

/// The record of `set` under `state_dir`, read only; `None` when there is none.
pub fn load(state_dir: &Path, set: &str) -> Result<Option<Good>, StateError> {
    Store::new(state_dir).load::<Good>(set)
}
