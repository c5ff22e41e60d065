//! `completeness`: is the backup all there, recent, and kept in enough places?
//!
//! Options sit in one dict, `completeness`:
//!
//! - `path`: the backup directory, the directory holding backups, or one backup file.
//! - `required`: relative paths or globs that must exist. An entry matches a file whose path
//!   it matches as a glob (`*` stays within one directory; `**` crosses them), or any file
//!   under it when it names a directory: a required directory must hold at least one file,
//!   since an empty directory is not a backup. Each missing entry is reported.
//! - `backup_files`: globs (as `required`'s) saying which files under `path` are backups
//!   (`"*/*.tar.zst"`), so that a manifest, a log or a lock file written after the backup is
//!   not taken for it. By default every regular file is. `min_files`, `min_size`, `max_age`
//!   and `copies` look only at these; `required` at every file.
//! - `min_files`, `min_size` (a size, `reliability_core::size`: `512M`, `1G`): the least
//!   number of backup files and total bytes under `path`.
//! - `max_age`: the recovery point objective: the newest backup file under `path` (by
//!   modification time) must be younger (`26h`, `1d`, seconds; `reliability_core::duration`).
//! - `copies`: other locations (directories) that should hold a copy of the newest backup,
//!   at the same relative path; `min_copies`: how many distinct locations, `path` included,
//!   must hold an identical copy (by default every location listed, plus `path`). Identical
//!   means the same size and the same SHA-256 (sizes are compared first, so a copy of the
//!   wrong size is never read). Distinct means on distinct filesystems (`st_dev` of the copy
//!   itself): another directory or a bind mount on the same disk is not a second location
//!   for the 3-2-1 rule, and a copy there counts once. Hosts are not told apart: a remote
//!   copy is checked where it is mounted (NFS, sshfs), or by running the check there.
//!
//! Symbolic links are not followed (a `latest` link is not a backup of its own). The OS
//! part (walk, `lstat`, hashing the copies) is `reliability_os::hashing`; [`judge`] is pure
//! and takes the time as a parameter, so every rule is tested with plain values.

use crate::{CheckReport, Context, RequestError};
use globset::{GlobBuilder, GlobMatcher};
use reliability_core::duration::{format_duration, parse_duration};
use reliability_core::size::{format_size, parse_size};
use reliability_core::spec::{Kind, Opt, Spec};
use reliability_core::timestamp;
use reliability_os::hashing::{self, Seen, WalkOptions};
use serde_json::{json, Map, Value};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The check's options: one dict, `completeness`.
pub fn options() -> Vec<Opt> {
    vec![Opt::dict("completeness").options(Spec::new(vec![
        Opt::path("path"),
        Opt::list("required", Kind::Str),
        Opt::int("min_files").range(0.0, 1e15),
        Opt::str("min_size"),
        Opt::str("max_age"),
        Opt::list("copies", Kind::Path),
        Opt::int("min_copies").range(1.0, 1000.0),
        Opt::list("backup_files", Kind::Str),
    ]))]
}

/// One `required` entry: the text as written and its glob.
#[derive(Clone, Debug)]
pub struct Required {
    pub text: String,
    dir: String,
    glob: GlobMatcher,
}

impl Required {
    pub fn new(text: &str) -> Result<Required, String> {
        let trimmed = text.trim().trim_start_matches("./").trim_end_matches('/');
        if trimmed.is_empty() || trimmed.starts_with('/') {
            return Err(format!("'{text}' must be a path or glob relative to 'path'"));
        }
        let glob = GlobBuilder::new(trimmed)
            .literal_separator(true)
            .build()
            .map_err(|e| format!("'{text}' is not a valid glob: {e}"))?;
        Ok(Required {
            text: text.to_string(),
            dir: format!("{trimmed}/"),
            glob: glob.compile_matcher(),
        })
    }

    fn matches(&self, file: &str) -> bool {
        self.glob.is_match(file) || file.starts_with(&self.dir)
    }
}

/// What the check demands.
#[derive(Clone, Debug, Default)]
pub struct Rules {
    pub required: Vec<Required>,
    pub min_files: Option<u64>,
    pub min_size: Option<u64>,
    /// Milliseconds, and the text the user wrote (for messages).
    pub max_age: Option<(u64, String)>,
    pub min_copies: Option<usize>,
    /// Which files are backups (`backup_files`); empty: every file.
    pub backup_files: Vec<Required>,
}

impl Rules {
    /// Whether the file at `path` (relative to `path`) is a backup.
    fn is_backup(&self, path: &str) -> bool {
        self.backup_files.is_empty() || self.backup_files.iter().any(|g| g.matches(path))
    }

    /// The backup files, as indices into `files`.
    fn backups<'a>(&'a self, files: &'a [FileSeen]) -> impl Iterator<Item = (usize, &'a FileSeen)> + 'a {
        files.iter().enumerate().filter(|(_, f)| self.is_backup(&f.path))
    }
}

/// A regular file under `path`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileSeen {
    pub path: String,
    pub size: u64,
    pub mtime_ms: i64,
}

/// What one copy location holds of the newest backup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CopySeen {
    /// Same size and SHA-256, on filesystem `dev`.
    Identical {
        dev: u64,
    },
    Missing,
    /// Present but not the same (what differs).
    Differs(String),
    Unreadable(String),
}

/// One copy location: where it was looked for and what was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Copy {
    pub location: String,
    pub file: String,
    pub seen: CopySeen,
}

/// What the OS layer found under `path`.
#[derive(Clone, Debug, Default)]
pub struct Observed {
    /// Regular files, relative paths.
    pub files: Vec<FileSeen>,
    /// The filesystem of the newest backup file.
    pub newest_dev: Option<u64>,
    pub copies: Vec<Copy>,
}

/// The verdict: the figures and every failure, each a sentence.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Verdict {
    pub files: usize,
    pub bytes: u64,
    /// Index into `Observed::files` of the newest, and its age in milliseconds.
    pub newest: Option<(usize, u64)>,
    pub required_missing: Vec<String>,
    /// Distinct filesystems holding the newest backup (its own included).
    pub locations: usize,
    /// For each copy: does it add a location not counted before?
    pub distinct: Vec<bool>,
    pub failures: Vec<String>,
}

/// The newest backup file: latest modification time, then the greater path (so the
/// choice is the same on every run).
fn newest(files: &[FileSeen], rules: &Rules) -> Option<usize> {
    rules
        .backups(files)
        .max_by(|(_, a), (_, b)| a.mtime_ms.cmp(&b.mtime_ms).then_with(|| a.path.cmp(&b.path)))
        .map(|(i, _)| i)
}

/// The globs as the user wrote them, quoted (escaped, a long one cut) and joined.
fn globs_text(globs: &[Required]) -> String {
    globs
        .iter()
        .map(|g| reliability_core::quote::quote(&g.text))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Judges what was found against the rules, at `now_ms`.
pub fn judge(observed: &Observed, rules: &Rules, now_ms: u64) -> Verdict {
    let mut v = Verdict {
        files: rules.backups(&observed.files).count(),
        bytes: rules.backups(&observed.files).map(|(_, f)| f.size).sum(),
        ..Verdict::default()
    };
    for r in &rules.required {
        if !observed.files.iter().any(|f| r.matches(&f.path)) {
            v.required_missing.push(r.text.clone());
            v.failures
                .push(format!("required '{}' is missing: no file matches", r.text));
        }
    }
    if let Some(min) = rules.min_files.filter(|m| (v.files as u64) < *m) {
        v.failures
            .push(format!("{} files, fewer than min_files {min}", v.files));
    }
    if let Some(min) = rules.min_size.filter(|m| v.bytes < *m) {
        v.failures.push(format!(
            "{} in total, less than min_size {}",
            format_size(v.bytes as f64),
            format_size(min as f64)
        ));
    }
    let newest_index = newest(&observed.files, rules);
    if let Some(i) = newest_index {
        let mtime = u64::try_from(observed.files[i].mtime_ms).unwrap_or(0);
        v.newest = Some((i, now_ms.saturating_sub(mtime)));
    }
    if let Some((max_ms, text)) = &rules.max_age {
        match (v.newest, newest_index) {
            (Some((i, age)), _) if age > *max_ms => v.failures.push(format!(
                "newest backup '{}' is {} old, over max_age {text}",
                observed.files[i].path,
                format_duration(age)
            )),
            (None, _) if rules.backup_files.is_empty() => v
                .failures
                .push(format!("no backup file at all, so none is newer than max_age {text}")),
            (None, _) => v.failures.push(format!(
                "no file matches backup_files ({}), so none is newer than max_age {text}",
                globs_text(&rules.backup_files)
            )),
            _ => {}
        }
    }
    let mut devs: BTreeSet<u64> = observed.newest_dev.into_iter().collect();
    for c in &observed.copies {
        v.distinct.push(match c.seen {
            CopySeen::Identical { dev } => devs.insert(dev),
            _ => false,
        });
    }
    v.locations = devs.len();
    if let Some(min) = rules.min_copies.filter(|m| v.locations < *m) {
        let newest_name = newest_index.map_or("(none)", |i| observed.files[i].path.as_str());
        let why: Vec<String> = observed
            .copies
            .iter()
            .zip(&v.distinct)
            .filter_map(|(c, distinct)| match &c.seen {
                CopySeen::Identical { .. } if *distinct => None,
                CopySeen::Identical { .. } => {
                    Some(format!("'{}' is identical but on a filesystem already counted", c.file))
                }
                CopySeen::Missing => Some(format!("'{}' is missing", c.file)),
                CopySeen::Differs(what) => Some(format!("'{}' differs: {what}", c.file)),
                CopySeen::Unreadable(e) => Some(format!("'{}' is unreadable: {e}", c.file)),
            })
            .collect();
        let why = if why.is_empty() {
            String::new()
        } else {
            format!(" ({})", why.join("; "))
        };
        v.failures.push(format!(
            "newest backup '{newest_name}' is held in {} distinct location{}, fewer than min_copies {min}{why}",
            v.locations,
            if v.locations == 1 { "" } else { "s" }
        ));
    }
    v
}

/// Checks the values of `completeness` (globs, sizes, durations, copies), whether or not
/// the check runs; `path` is needed only by a run.
pub fn validate(params: &Map<String, Value>) -> Result<(), RequestError> {
    match params.get("completeness").and_then(Value::as_object) {
        Some(opts) => rules(opts).map(|_| ()),
        None => Ok(()),
    }
}

/// The options, checked: (path, copies, rules). Bad values are named with their option.
fn request(params: &Map<String, Value>) -> Result<(PathBuf, Vec<PathBuf>, Rules), RequestError> {
    let opts = params
        .get("completeness")
        .and_then(Value::as_object)
        .ok_or_else(|| RequestError("the completeness check needs 'completeness.path'".to_string()))?;
    let (copies, rules) = rules(opts)?;
    let path = opts
        .get("path")
        .and_then(Value::as_str)
        .map(PathBuf::from)
        .ok_or_else(|| RequestError("the completeness check needs 'completeness.path'".to_string()))?;
    Ok((path, copies, rules))
}

/// The copies and rules of the options.
fn rules(opts: &Map<String, Value>) -> Result<(Vec<PathBuf>, Rules), RequestError> {
    let bad = |msg: String| RequestError(format!("completeness.{msg}"));
    let strs = |name: &str| -> Vec<String> {
        opts.get(name)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
            .unwrap_or_default()
    };
    let text = |name: &str| opts.get(name).and_then(Value::as_str).map(str::to_string);
    let mut rules = Rules::default();
    for (i, r) in strs("required").iter().enumerate() {
        rules
            .required
            .push(Required::new(r).map_err(|e| bad(format!("required[{i}]: {e}")))?);
    }
    for (i, r) in strs("backup_files").iter().enumerate() {
        rules
            .backup_files
            .push(Required::new(r).map_err(|e| bad(format!("backup_files[{i}]: {e}")))?);
    }
    rules.min_files = opts.get("min_files").and_then(Value::as_u64);
    if let Some(s) = text("min_size") {
        rules.min_size = Some(parse_size(&s).map_err(|e| bad(format!("min_size: {e}")))?);
    }
    if let Some(s) = text("max_age") {
        let ms = parse_duration(&s).map_err(|e| bad(format!("max_age: {e}")))?;
        rules.max_age = Some((ms, s));
    }
    let copies: Vec<PathBuf> = strs("copies").into_iter().map(PathBuf::from).collect();
    let min_copies = opts
        .get("min_copies")
        .and_then(Value::as_u64)
        .and_then(|n| usize::try_from(n).ok());
    rules.min_copies = match (min_copies, copies.len()) {
        (Some(n), 0) if n > 1 => {
            return Err(bad(format!(
                "min_copies: {n} needs 'copies', the other locations that hold the backup"
            )))
        }
        (Some(n), _) => Some(n),
        (None, 0) => None,
        (None, k) => Some(k + 1),
    };
    Ok((copies, rules))
}

/// Reads what is under `path` (a directory or one file): the files, and the copies of
/// the newest one.
fn observe(
    path: &Path,
    copies: &[PathBuf],
    rules: &Rules,
    threads: usize,
    warnings: &mut Vec<String>,
) -> Result<(Observed, u64), String> {
    let (root, files) = match hashing::stat(path)? {
        None => return Err(format!("path '{}' does not exist", path.display())),
        Some(st) if st.is_dir => {
            let walked = hashing::walk(path, &WalkOptions::default())?;
            for (p, e) in walked.errors.iter().take(5) {
                warnings.push(format!(
                    "completeness: cannot list '{p}' under '{}': {e}",
                    path.display()
                ));
            }
            (path.to_path_buf(), walked.files)
        }
        Some(_) => {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            (path.parent().map(Path::to_path_buf).unwrap_or_default(), vec![name])
        }
    };
    let mut observed = Observed::default();
    for f in files {
        match hashing::stat(&root.join(&f)) {
            Ok(Some(st)) => observed.files.push(FileSeen {
                path: f,
                size: st.size,
                mtime_ms: st.mtime_ms,
            }),
            Ok(None) => {}
            Err(e) => warnings.push(format!("completeness: cannot stat '{f}': {e}")),
        }
    }
    let Some(i) = newest(&observed.files, rules).filter(|_| !copies.is_empty()) else {
        return Ok((observed, 0));
    };
    let newest = observed.files[i].clone();
    let primary = root.join(&newest.path);
    let st = hashing::stat(&primary)?.ok_or_else(|| format!("'{}' vanished", primary.display()))?;
    observed.newest_dev = Some(st.dev);
    // Hash the backup and every copy of the same size in one run (absolute paths).
    let mut to_hash = vec![primary.display().to_string()];
    let mut pending = Vec::new();
    for location in copies {
        let file = location.join(&newest.path);
        let shown = file.display().to_string();
        let seen = match hashing::stat(&file) {
            Ok(None) => CopySeen::Missing,
            Err(e) => CopySeen::Unreadable(e),
            Ok(Some(c)) if c.is_dir => CopySeen::Differs("it is a directory".to_string()),
            Ok(Some(c)) if c.size != newest.size => {
                CopySeen::Differs(format!("{} bytes, the backup has {}", c.size, newest.size))
            }
            Ok(Some(c)) => {
                to_hash.push(shown.clone());
                pending.push(c.dev);
                CopySeen::Identical { dev: c.dev }
            }
        };
        observed.copies.push(Copy {
            location: location.display().to_string(),
            file: shown,
            seen,
        });
    }
    if pending.is_empty() {
        return Ok((observed, 0));
    }
    let run = hashing::hash_files(Path::new("/"), &to_hash, threads, hashing::Links::Follow);
    let outcome = |p: &str| run.files.iter().find(|f| f.path == p).map(|f| f.outcome.clone());
    let want = match outcome(&to_hash[0]) {
        Some(Seen::Digest(d)) => d,
        Some(Seen::Unreadable(e)) => return Err(format!("cannot read '{}': {e}", primary.display())),
        _ => return Err(format!("'{}' vanished", primary.display())),
    };
    for c in &mut observed.copies {
        if matches!(c.seen, CopySeen::Identical { .. }) {
            match outcome(&c.file) {
                Some(Seen::Digest(d)) if d == want => {}
                Some(Seen::Digest(_)) => c.seen = CopySeen::Differs("same size, different SHA-256".to_string()),
                Some(Seen::Unreadable(e)) => c.seen = CopySeen::Unreadable(e),
                _ => c.seen = CopySeen::Missing,
            }
        }
    }
    Ok((observed, run.bytes))
}

pub fn run(params: &Map<String, Value>, _ctx: &Context) -> Result<CheckReport, RequestError> {
    let (path, copies, rules) = request(params)?;
    let now = reliability_os::clock::now_ms();
    let mut warnings = Vec::new();
    let shown = path.display().to_string();
    let (observed, hashed) = match observe(&path, &copies, &rules, crate::integrity::threads(params), &mut warnings) {
        Ok(o) => o,
        Err(e) => {
            let mut fields = Map::new();
            fields.insert("path".into(), json!(shown));
            fields.insert("failures".into(), json!([e.clone()]));
            return Ok(CheckReport {
                failed: true,
                msg: format!("completeness failed: {e}"),
                fields,
                warnings,
            });
        }
    };
    let v = judge(&observed, &rules, now);
    let newest = v.newest.map(|(i, age)| {
        let f = &observed.files[i];
        json!({
            "path": f.path,
            "size": f.size,
            "mtime": timestamp::rfc3339(u64::try_from(f.mtime_ms).unwrap_or(0)),
            "age_seconds": age as f64 / 1000.0,
            "age": format_duration(age),
        })
    });
    let copies_out: Vec<Value> = observed
        .copies
        .iter()
        .zip(&v.distinct)
        .map(|(c, distinct)| {
            let (status, detail, dev) = match &c.seen {
                CopySeen::Identical { dev } => ("identical", None, Some(*dev)),
                CopySeen::Missing => ("missing", None, None),
                CopySeen::Differs(d) => ("differs", Some(d.clone()), None),
                CopySeen::Unreadable(e) => ("unreadable", Some(e.clone()), None),
            };
            json!({"location": c.location, "path": c.file, "status": status, "detail": detail,
                   "device": dev, "distinct": distinct})
        })
        .collect();
    let failed = !v.failures.is_empty();
    let summary = match v.newest {
        Some((i, age)) => format!(
            "{} files, {}, newest '{}' {} old",
            v.files,
            format_size(v.bytes as f64),
            observed.files[i].path,
            format_duration(age)
        ),
        None => format!("{} files", v.files),
    };
    let msg = if failed {
        format!("completeness failed: {}", v.failures.join("; "))
    } else if rules.min_copies.is_some() {
        format!("completeness ok: {summary}, in {} distinct locations", v.locations)
    } else {
        format!("completeness ok: {summary}")
    };
    let fields = json!({
        "path": shown,
        "files": v.files,
        "bytes": v.bytes,
        "newest": newest,
        "required_missing": v.required_missing,
        "copies": copies_out,
        "locations": v.locations,
        "bytes_hashed": hashed,
        "failures": v.failures,
    });
    Ok(CheckReport {
        failed,
        msg,
        fields: match fields {
            Value::Object(m) => m,
            _ => Map::new(),
        },
        warnings,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const NOW: u64 = 1_795_428_900_000; // 2026-11-23T10:15:00Z
    const HOUR: i64 = 3_600_000;

    fn file(path: &str, size: u64, hours_ago: i64) -> FileSeen {
        FileSeen {
            path: path.into(),
            size,
            mtime_ms: NOW as i64 - hours_ago * HOUR,
        }
    }

    fn tree() -> Observed {
        Observed {
            files: vec![
                file("db/orders.dump", 3000, 5),
                file("etc.tar.zst", 1000, 30),
                file("db-2026-11-20.tar.zst", 5000, 74),
            ],
            ..Observed::default()
        }
    }

    fn rules(required: &[&str]) -> Rules {
        Rules {
            required: required.iter().map(|r| Required::new(r).unwrap()).collect(),
            ..Rules::default()
        }
    }

    /// Judges `observed` with `rules`; `expected` is the failures.
    fn check(observed: &Observed, rules: &Rules, expected: &[&str]) -> Verdict {
        let v = judge(observed, rules, NOW);
        assert_eq!(v.failures, expected);
        v
    }

    #[test]
    fn a_complete_backup_passes() {
        let mut r = rules(&["db/*.dump", "db", "etc.tar.zst", "./db/"]);
        r.min_files = Some(3);
        r.min_size = Some(9000);
        r.max_age = Some((6 * HOUR as u64, "6h".into()));
        let v = check(&tree(), &r, &[]);
        assert_eq!((v.files, v.bytes), (3, 9000));
        assert_eq!(v.newest, Some((0, 5 * HOUR as u64)));
    }

    #[test]
    fn each_missing_required_entry_is_named() {
        check(
            &tree(),
            &rules(&["*.dump", "db/*.sql", "var", "etc.tar.zst", "**/orders.dump"]),
            &[
                // `*` stays in one directory, so it does not reach db/orders.dump.
                "required '*.dump' is missing: no file matches",
                "required 'db/*.sql' is missing: no file matches",
                "required 'var' is missing: no file matches",
            ],
        );
        assert!(Required::new("a[").unwrap_err().starts_with("'a[' is not a valid glob"));
        assert_eq!(
            Required::new("/etc").unwrap_err(),
            "'/etc' must be a path or glob relative to 'path'"
        );
    }

    #[test]
    fn counts_sizes_and_age() {
        let mut r = Rules {
            min_files: Some(4),
            min_size: Some(1 << 20),
            ..Rules::default()
        };
        check(
            &tree(),
            &r,
            &[
                "3 files, fewer than min_files 4",
                "8.79 KiB in total, less than min_size 1 MiB",
            ],
        );
        r = Rules {
            max_age: Some((4 * HOUR as u64, "4h".into())),
            ..Rules::default()
        };
        check(
            &tree(),
            &r,
            &["newest backup 'db/orders.dump' is 5h old, over max_age 4h"],
        );
        let old = Observed {
            files: vec![file("db-2026-11-20.tar.zst", 1, 74)],
            ..Observed::default()
        };
        r.max_age = Some((26 * HOUR as u64, "26h".into()));
        check(
            &old,
            &r,
            &["newest backup 'db-2026-11-20.tar.zst' is 3d 2h old, over max_age 26h"],
        );
        check(
            &Observed::default(),
            &r,
            &["no backup file at all, so none is newer than max_age 26h"],
        );
        // A file dated in the future is 0 old, not a wrap-around.
        let future = Observed {
            files: vec![file("x", 1, -2)],
            ..Observed::default()
        };
        assert_eq!(check(&future, &r, &[]).newest, Some((0, 0)));
    }

    #[test]
    fn copies_count_once_per_filesystem() {
        let copy = |loc: &str, seen: CopySeen| Copy {
            location: loc.into(),
            file: format!("{loc}/db/orders.dump"),
            seen,
        };
        let mut o = tree();
        o.newest_dev = Some(1);
        o.copies = vec![
            copy("/mnt/a", CopySeen::Identical { dev: 2 }),
            copy("/srv/same-disk", CopySeen::Identical { dev: 1 }),
            copy("/mnt/b", CopySeen::Missing),
            copy("/mnt/c", CopySeen::Differs("same size, different SHA-256".into())),
            copy("/mnt/d", CopySeen::Identical { dev: 2 }),
        ];
        let r = Rules {
            min_copies: Some(3),
            ..Rules::default()
        };
        let v = check(
            &o,
            &r,
            &[
                "newest backup 'db/orders.dump' is held in 2 distinct locations, fewer than min_copies 3 (\
               '/srv/same-disk/db/orders.dump' is identical but on a filesystem already counted; \
               '/mnt/b/db/orders.dump' is missing; \
               '/mnt/c/db/orders.dump' differs: same size, different SHA-256; \
               '/mnt/d/db/orders.dump' is identical but on a filesystem already counted)",
            ],
        );
        assert_eq!(v.distinct, [true, false, false, false, false]);
        o.copies[2].seen = CopySeen::Identical { dev: 3 };
        let v = check(&o, &r, &[]);
        assert_eq!(v.locations, 3);
    }

    fn request_error(opts: Value) -> String {
        let mut params = Map::new();
        params.insert("completeness".into(), opts);
        request(&params).unwrap_err().0
    }

    #[test]
    fn bad_options_are_named() {
        assert_eq!(
            request_error(json!({"path": "/b", "max_age": "3y"})),
            "completeness.max_age: invalid duration '3y': unknown unit 'y' (use ms, s, m, h, d or w)"
        );
        assert_eq!(
            request_error(json!({"path": "/b", "min_size": "12Q"})),
            "completeness.min_size: invalid size '12Q': unknown unit 'Q' (use B, K, M, G, T, P or E; binary, so K is 1024 bytes)"
        );
        assert!(request_error(json!({"path": "/b", "required": ["ok", "a["]}))
            .starts_with("completeness.required[1]: 'a[' is not a valid glob"));
        assert_eq!(
            request_error(json!({"path": "/b", "min_copies": 2})),
            "completeness.min_copies: 2 needs 'copies', the other locations that hold the backup"
        );
        let mut params = Map::new();
        params.insert("completeness".into(), json!({"path": "/b", "copies": ["/x", "/y"]}));
        assert_eq!(request(&params).unwrap().2.min_copies, Some(3));
    }
}
