//! `restore_test`: restores a backup into a private sandbox and compares what came back
//! with its manifest or with the live directory it was made from.
//!
//! Two ways to restore, one comparison:
//!
//! - `restore.archive`: a tar, tar.gz or tar.zst archive, extracted by
//!   `reliability_os::archive` (format from its first bytes, every member checked before it
//!   is written, limits on bytes and entries). A refused member, a truncated archive or a
//!   limit fails the check with the member named.
//! - `restore.restore_command`: the user's own restore, an argv list (no shell) run in the
//!   sandbox, with `{dir}` in any argument replaced by the sandbox path and `HX_RESTORE_DIR`
//!   set; killed with its process group at `restore.timeout`. What it wrote is measured
//!   afterwards against the same limits (a command cannot be stopped mid-write, so these
//!   are checked, not enforced; what it does outside the sandbox is its own business).
//!
//! The sandbox is a directory of mode 0700 under `restore.tmpdir` (the system's temporary
//! directory by default), removed on success and failure alike; the report says whether the
//! removal worked, and a sandbox left behind fails the check. By default the limits are the
//! room left on that filesystem (bytes and inodes), so a restore test never fills a disk.
//!
//! The comparison (`restore.compare`) is with the top-level `manifest` (the default when one
//! is given) or with `restore.directory`. `restore.subdir` names the directory inside the
//! restore that corresponds to the manifest's root or the live directory (for archives made
//! with `tar -C /srv backup`). Listing is cheap, so missing and extra files are found over
//! every file; hashing is not, so with `restore.sample_percent` only a random sample of the
//! files on both sides is hashed: a different sample each run (or the one `sample_seed`
//! names), reported with its seed so a run can be repeated. The verdict is
//! `reliability_core::manifest::judge`, as for `integrity`: missing, mismatched, unreadable
//! and extra, each by path. Links in the restore are not followed and not compared.

use crate::integrity::{load_manifest, manifest_and_root, threads};
use crate::{str_param, CheckReport, Context, RequestError};
use reliability_core::manifest::{self, Manifest, Seen};
use reliability_core::size::parse_size;
use reliability_core::spec::{Kind, Opt, Spec};
use reliability_os::archive::{self, Extracted, Format, Limits, Sandbox};
use reliability_os::command::{self, CommandError, CommandOutput};
use reliability_os::hashing::{self, WalkOptions};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// The token replaced by the sandbox path in a restore command's arguments.
pub const DIR_TOKEN: &str = "{dir}";

/// What a command's output is cut to in the report (its end is kept: errors are last).
const OUTPUT_TAIL: usize = 4096;

/// The options of the check: one dict, `restore`.
pub fn options() -> Vec<Opt> {
    vec![Opt::dict("restore").default(Value::Null).options(
        Spec::new(vec![
            Opt::path("archive"),
            Opt::str("format")
                .choices(&["auto", "tar", "tar.gz", "tar.zst"])
                .default("auto"),
            Opt::list("restore_command", Kind::Str),
            Opt::float("timeout").default(3600.0).range(0.001, 604_800.0),
            Opt::raw("max_bytes"),
            Opt::int("max_files").range(1.0, 1e15),
            Opt::path("tmpdir"),
            Opt::str("subdir"),
            Opt::str("compare").choices(&["manifest", "directory", "none"]),
            Opt::path("directory"),
            Opt::float("sample_percent").default(100.0).range(0.01, 100.0),
            Opt::int("sample_seed").range(0.0, 9_007_199_254_740_991.0),
        ])
        .mutually_exclusive(&["archive", "restore_command"])
        .required_one_of(&["archive", "restore_command"])
        .required_if("compare", "directory", &["directory"]),
    )]
}

/// How the restore is made.
enum Method {
    Archive { path: PathBuf, format: Option<Format> },
    Command { argv: Vec<String>, timeout: Duration },
}

/// What the restore is compared with.
enum Reference {
    /// The manifest, and the files the collection keeps beside it in the backup (the
    /// manifest itself and its companion, relative to its root): not extra in a restore.
    Manifest(PathBuf, Manifest, Vec<String>),
    Directory(PathBuf),
    Nothing,
}

impl Reference {
    fn name(&self) -> &'static str {
        match self {
            Reference::Manifest(..) => "manifest",
            Reference::Directory(_) => "directory",
            Reference::Nothing => "none",
        }
    }
}

/// A validated request.
struct Request {
    method: Method,
    reference: Reference,
    tmpdir: PathBuf,
    max_bytes: Option<u64>,
    max_files: Option<u64>,
    subdir: Option<String>,
    sample_percent: f64,
    sample_seed: u64,
    threads: usize,
}

fn sub_str<'a>(opts: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    opts.get(name).and_then(Value::as_str)
}

/// `max_bytes`: a number of bytes or a size such as `10G`.
fn max_bytes(value: Option<&Value>) -> Result<Option<u64>, RequestError> {
    let bad = |why: String| RequestError(format!("restore.max_bytes: {why}"));
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_u64()
            .map(Some)
            .ok_or_else(|| bad(format!("{n} is not a whole number of bytes"))),
        Some(Value::String(s)) => parse_size(s).map(Some).map_err(|e| bad(e.to_string())),
        Some(other) => Err(bad(format!("{other} is not a size (e.g. 1048576, '512M' or '10G')"))),
    }
}

/// Whether the task asked for an archive or command restore (`restore.archive` or
/// `restore.restore_command` set; the dict itself always arrives, filled with defaults).
pub fn requested(params: &Map<String, Value>) -> bool {
    params.get("restore").and_then(Value::as_object).is_some_and(|o| {
        ["archive", "restore_command"]
            .iter()
            .any(|k| o.get(*k).is_some_and(|v| !v.is_null()))
    })
}

/// Checks the values of `restore` that can be checked without reading anything, whether or
/// not the check runs: a bad option is an error even in a task that does not use it. A run
/// starts with it, so what it checked is taken as valid there.
pub fn validate(params: &Map<String, Value>) -> Result<(), RequestError> {
    let Some(opts) = params.get("restore").and_then(Value::as_object) else {
        return Ok(());
    };
    max_bytes(opts.get("max_bytes"))?;
    if let Some(argv) = opts.get("restore_command").and_then(Value::as_array) {
        if argv.first().and_then(Value::as_str).is_none_or(str::is_empty) {
            return Err(RequestError(
                "restore.restore_command: the first element must name the program to run".into(),
            ));
        }
    }
    if let Some(s) = sub_str(opts, "subdir").filter(|s| !s.is_empty()) {
        manifest::normalise(s).map_err(|e| RequestError(format!("restore.subdir: {e}")))?;
    }
    Ok(())
}

impl Request {
    fn from_params(params: &Map<String, Value>) -> Result<Request, RequestError> {
        validate(params)?;
        let opts = params.get("restore").and_then(Value::as_object).ok_or_else(|| {
            RequestError("the restore_test check needs 'restore' (with an 'archive' or a 'restore_command') or 'postgresql' (with a 'dump')".into())
        })?;
        let method = match (
            sub_str(opts, "archive"),
            opts.get("restore_command").and_then(Value::as_array),
        ) {
            (Some(path), _) => Method::Archive {
                path: PathBuf::from(path),
                format: sub_str(opts, "format").and_then(Format::from_name),
            },
            (None, Some(argv)) => {
                let argv: Vec<String> = argv.iter().filter_map(|a| a.as_str().map(str::to_string)).collect();
                let timeout = opts.get("timeout").and_then(Value::as_f64).unwrap_or(3600.0);
                Method::Command {
                    argv,
                    timeout: Duration::from_secs_f64(timeout),
                }
            }
            (None, None) => return Err(RequestError("restore: give 'archive' or 'restore_command'".into())),
        };
        let manifest_path = str_param(params, "manifest").map(PathBuf::from);
        let directory = sub_str(opts, "directory").map(PathBuf::from);
        let compare = match sub_str(opts, "compare") {
            Some(c) => c,
            None if manifest_path.is_some() => "manifest",
            None if directory.is_some() => "directory",
            None => "none",
        };
        let reference = match compare {
            "manifest" => {
                let path = manifest_path
                    .ok_or_else(|| RequestError("restore.compare is 'manifest', but no 'manifest' is given".into()))?;
                let manifest = load_manifest(&path)?;
                let (_, root) = manifest_and_root(params, "restore_test")?;
                let own = manifest::own_files(&std::path::absolute(&path).unwrap_or_else(|_| path.clone()), &root);
                Reference::Manifest(path, manifest, own)
            }
            "directory" => {
                let dir = directory.ok_or_else(|| {
                    RequestError("restore.compare is 'directory', but no 'restore.directory' is given".into())
                })?;
                if !dir.is_dir() {
                    return Err(RequestError(format!(
                        "restore.directory: '{}' is not a directory",
                        dir.display()
                    )));
                }
                Reference::Directory(dir)
            }
            _ => Reference::Nothing,
        };
        let tmpdir = sub_str(opts, "tmpdir")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        if !tmpdir.is_dir() {
            return Err(RequestError(format!(
                "restore.tmpdir: '{}' is not a directory",
                tmpdir.display()
            )));
        }
        let subdir = sub_str(opts, "subdir")
            .filter(|s| !s.is_empty())
            .and_then(|s| manifest::normalise(s).ok());
        let sample_seed = match opts.get("sample_seed").and_then(Value::as_u64) {
            Some(seed) => seed,
            None => SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| u64::try_from(d.as_nanos() % (1 << 53)).unwrap_or(0))
                .unwrap_or(0),
        };
        Ok(Request {
            method,
            reference,
            tmpdir,
            max_bytes: max_bytes(opts.get("max_bytes"))?,
            max_files: opts.get("max_files").and_then(Value::as_u64),
            subdir,
            sample_percent: opts.get("sample_percent").and_then(Value::as_f64).unwrap_or(100.0),
            sample_seed,
            threads: threads(params),
        })
    }

    /// The limits asked for, or the room left where the sandbox lives.
    fn limits(&self) -> Limits {
        let (free_bytes, free_inodes) = archive::free_space(&self.tmpdir).unwrap_or((u64::MAX, u64::MAX));
        Limits {
            max_bytes: self.max_bytes.unwrap_or(free_bytes),
            max_files: self.max_files.unwrap_or(free_inodes),
        }
    }
}

/// The files of a sample: `ceil(n * percent / 100)` of `paths` (at least one when there are
/// any), chosen by a hash of each path mixed with `seed`, so one seed always picks the same
/// files and another seed others. Sorted by path.
pub fn sample(paths: &[String], percent: f64, seed: u64) -> Vec<String> {
    if percent >= 100.0 {
        return paths.to_vec();
    }
    let want = ((paths.len() as f64 * percent / 100.0).ceil() as usize).clamp(paths.len().min(1), paths.len());
    let mut scored: Vec<(u64, &String)> = paths.iter().map(|p| (mix(fnv1a(p.as_bytes()) ^ seed), p)).collect();
    scored.sort();
    let mut out: Vec<String> = scored.into_iter().take(want).map(|(_, p)| p.clone()).collect();
    out.sort();
    out
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// splitmix64's finaliser: every input bit moves every output bit.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The comparison's outcome.
#[derive(Default)]
struct Comparison {
    verdict: manifest::Integrity,
    compared: usize,
    bytes_hashed: u64,
    duration: Duration,
}

/// Judges the restore against a reference: `listed` is every file it has, `digests` the
/// digests of those to compare (at least the sampled ones and those the restore lacks).
/// `sampled` files are hashed; every listed file absent from the restore is missing and
/// every restored file the reference does not list is extra.
fn judge_restore(
    listed: &BTreeSet<&String>,
    digests: &BTreeMap<String, String>,
    sampled: &[String],
    restore_root: &Path,
    restored: &[String],
    threads: usize,
) -> (manifest::Integrity, hashing::HashRun) {
    let restored_set: BTreeSet<&String> = restored.iter().collect();
    let sampled_set: BTreeSet<&String> = sampled.iter().collect();
    let to_hash: Vec<String> = sampled.iter().filter(|p| digests.contains_key(*p)).cloned().collect();
    let run = hashing::hash_files(restore_root, &to_hash, threads, hashing::Links::WithinRoot);
    let seen: BTreeMap<String, Seen> = run.files.iter().map(|f| (f.path.clone(), f.outcome.clone())).collect();
    let judged = Manifest {
        entries: digests
            .iter()
            .filter(|(p, _)| sampled_set.contains(p) || !restored_set.contains(p))
            .map(|(p, d)| (p.clone(), d.clone()))
            .collect(),
    };
    let present: Vec<String> = restored
        .iter()
        .filter(|p| sampled_set.contains(p) || !listed.contains(p))
        .cloned()
        .collect();
    (manifest::judge(&judged, &seen, Some(&present)), run)
}

fn list(root: &Path, warnings: &mut Vec<String>) -> Result<Vec<String>, String> {
    let walked = hashing::walk(root, &WalkOptions::default())?;
    for (p, e) in walked.errors.iter().take(5) {
        warnings.push(format!("cannot list '{p}' under '{}': {e}", root.display()));
    }
    Ok(walked.files)
}

fn both(a: &[String], b: &[String]) -> Vec<String> {
    let b: BTreeSet<&String> = b.iter().collect();
    a.iter().filter(|p| b.contains(p)).cloned().collect()
}

/// Compares the restore under `restore_root` with the request's reference.
fn compare(req: &Request, restore_root: &Path, warnings: &mut Vec<String>) -> Result<Comparison, String> {
    let started = Instant::now();
    if !restore_root.is_dir() {
        return Err(format!(
            "the restore has no directory '{}'",
            req.subdir.as_deref().unwrap_or(".")
        ));
    }
    let restored = list(restore_root, warnings)?;
    let (verdict, run, live_unreadable) = match &req.reference {
        Reference::Nothing => return Ok(Comparison::default()),
        Reference::Manifest(_, m, own) => {
            let restored: Vec<String> = restored
                .into_iter()
                .filter(|p| m.entries.contains_key(p) || !own.contains(p))
                .collect();
            let listed: Vec<String> = m.entries.keys().cloned().collect();
            let sampled = sample(&both(&listed, &restored), req.sample_percent, req.sample_seed);
            let listed: BTreeSet<&String> = m.entries.keys().collect();
            let (verdict, run) = judge_restore(&listed, &m.entries, &sampled, restore_root, &restored, req.threads);
            (verdict, run, Vec::new())
        }
        Reference::Directory(live_root) => {
            let live = list(live_root, warnings)?;
            let sampled = sample(&both(&live, &restored), req.sample_percent, req.sample_seed);
            let restored_set: BTreeSet<&String> = restored.iter().collect();
            let sampled_set: BTreeSet<&String> = sampled.iter().collect();
            // The live side's digests, for the sample and for what the restore lacks.
            let wanted: Vec<String> = live
                .iter()
                .filter(|p| sampled_set.contains(p) || !restored_set.contains(p))
                .cloned()
                .collect();
            let live_run = hashing::hash_files(live_root, &wanted, req.threads, hashing::Links::WithinRoot);
            let mut reference = BTreeMap::new();
            let mut unreadable = Vec::new();
            for f in live_run.files {
                match f.outcome {
                    Seen::Digest(d) => {
                        reference.insert(f.path, d);
                    }
                    Seen::Unreadable(why) => unreadable.push((f.path, format!("in the live directory: {why}"))),
                    // Gone from the live directory since it was listed: nothing to compare.
                    Seen::Missing => {}
                }
            }
            let skip: BTreeSet<&String> = unreadable.iter().map(|(p, _)| p).collect();
            let sampled: Vec<String> = sampled.iter().filter(|p| !skip.contains(p)).cloned().collect();
            let restored: Vec<String> = restored.iter().filter(|p| !skip.contains(p)).cloned().collect();
            let listed: BTreeSet<&String> = live.iter().filter(|p| !skip.contains(p)).collect();
            let (verdict, run) = judge_restore(&listed, &reference, &sampled, restore_root, &restored, req.threads);
            (verdict, run, unreadable)
        }
    };
    let mut verdict = verdict;
    verdict.unreadable.extend(live_unreadable);
    verdict.unreadable.sort();
    Ok(Comparison {
        compared: run.files.len(),
        bytes_hashed: run.bytes,
        verdict,
        duration: started.elapsed(),
    })
}

/// The last `OUTPUT_TAIL` bytes of a command's output (on a character boundary).
fn tail(text: &str) -> String {
    if text.len() <= OUTPUT_TAIL {
        return text.to_string();
    }
    let mut start = text.len() - OUTPUT_TAIL;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("...{}", &text[start..])
}

fn command_json(out: &CommandOutput) -> Value {
    json!({
        "argv": out.argv,
        "exit_code": out.exit_code,
        "stdout": tail(&out.stdout),
        "stderr": tail(&out.stderr),
        "duration": out.duration_ms as f64 / 1000.0,
    })
}

/// Runs the user's restore command in the sandbox, then measures what it wrote.
fn run_command(
    argv: &[String],
    timeout: Duration,
    sandbox: &Sandbox,
    limits: &Limits,
    fields: &mut Map<String, Value>,
) -> Result<Extracted, String> {
    let started = Instant::now();
    let dir = sandbox.path();
    let shown = dir.display().to_string();
    let argv: Vec<String> = argv.iter().map(|a| a.replace(DIR_TOKEN, &shown)).collect();
    let (program, args) = argv.split_first().ok_or("the restore command is empty")?;
    let program = command::which(program).ok_or_else(|| {
        let why = if program.contains('/') {
            "no such file"
        } else {
            "no such program in PATH"
        };
        format!("could not run '{program}': {why}")
    })?;
    let out =
        command::run_in(&program, args, &[("HX_RESTORE_DIR", &shown)], Some(dir), timeout).map_err(|e| match e {
            CommandError::Timeout { timeout, .. } => {
                format!("the restore command did not finish within {timeout:?} and was killed")
            }
            other => other.to_string(),
        })?;
    fields.insert("command".into(), command_json(&out));
    if !out.success() {
        let why = match out.exit_code {
            Some(code) => format!("exited with code {code}"),
            None => "was killed by a signal".to_string(),
        };
        let last = out
            .stderr
            .lines()
            .chain(out.stdout.lines())
            .rfind(|l| !l.trim().is_empty())
            .map(|l| format!(": {}", l.trim()))
            .unwrap_or_default();
        return Err(format!("the restore command {why}{last}"));
    }
    let sandbox_tally = sandbox.measure()?;
    if sandbox_tally.bytes > limits.max_bytes {
        return Err(format!(
            "the restore command wrote {} bytes, over max_bytes ({})",
            sandbox_tally.bytes, limits.max_bytes
        ));
    }
    let entries = sandbox_tally.files + sandbox_tally.directories + sandbox_tally.symlinks;
    if entries > limits.max_files {
        return Err(format!(
            "the restore command wrote {entries} files, directories and links, over max_files ({})",
            limits.max_files
        ));
    }
    Ok(Extracted {
        duration: started.elapsed(),
        ..sandbox_tally
    })
}

pub fn run(params: &Map<String, Value>, _ctx: &Context) -> Result<CheckReport, RequestError> {
    let started = Instant::now();
    let req = Request::from_params(params)?;
    let limits = req.limits();
    let sandbox = Sandbox::create(&req.tmpdir)
        .map_err(|e| RequestError(format!("cannot create a sandbox under '{}': {e}", req.tmpdir.display())))?;
    let mut warnings = Vec::new();
    let mut fields = Map::new();
    let (method, source) = match &req.method {
        Method::Archive { path, .. } => ("archive", path.display().to_string()),
        Method::Command { argv, .. } => ("command", argv.join(" ")),
    };
    fields.insert("method".into(), json!(method));
    fields.insert("source".into(), json!(source));

    // What was written is counted on failure too: a restore that fails after 100 files says so.
    let mut tally = Extracted::default();
    let restored: Result<(), String> = match &req.method {
        Method::Archive { path, format } => {
            archive::extract_counted(path, *format, sandbox.path(), &limits, &mut tally).map_err(|e| e.to_string())
        }
        Method::Command { argv, timeout } => match run_command(argv, *timeout, &sandbox, &limits, &mut fields) {
            Ok(written) => {
                tally = written;
                Ok(())
            }
            Err(e) => {
                if let Ok(written) = sandbox.measure() {
                    tally = written;
                }
                Err(e)
            }
        },
    };
    let restore_root = match &req.subdir {
        Some(sub) => sandbox.path().join(sub),
        None => sandbox.path().to_path_buf(),
    };
    let compared = match &restored {
        Ok(_) => Some(compare(&req, &restore_root, &mut warnings)),
        Err(_) => None,
    };
    let removal = sandbox.remove();

    let restore_secs = tally.duration.as_secs_f64();
    let comparison = match &compared {
        Some(Ok(c)) => Some(c),
        _ => None,
    };
    let verdict = comparison.map(|c| c.verdict.clone()).unwrap_or_default();
    let sampled = req.sample_percent < 100.0 && !matches!(req.reference, Reference::Nothing);
    let mut error = match (&restored, &compared) {
        (Err(e), _) => Some(e.clone()),
        (_, Some(Err(e))) => Some(e.clone()),
        _ => None,
    };
    if let Err(e) = &removal {
        let e = format!("the sandbox could not be removed: {e}");
        error = Some(match error {
            Some(first) => format!("{first}; {e}"),
            None => e,
        });
    }
    let failed = error.is_some() || verdict.failed();
    fields.extend(
        json!({
            "format": tally.format,
            "reference": match &req.reference {
                Reference::Manifest(p, ..) | Reference::Directory(p) => json!(p.display().to_string()),
                Reference::Nothing => Value::Null,
            },
            "compare": req.reference.name(),
            "files": tally.files,
            "directories": tally.directories,
            "symlinks": tally.symlinks,
            "bytes": tally.bytes,
            "restore_duration": restore_secs,
            "throughput_mbps": if restore_secs > 0.0 { tally.bytes as f64 / 1e6 / restore_secs } else { 0.0 },
            "compared": comparison.map_or(0, |c| c.compared),
            "compared_bytes": comparison.map_or(0, |c| c.bytes_hashed),
            "compare_duration": comparison.map_or(0.0, |c| c.duration.as_secs_f64()),
            "sample_percent": req.sample_percent,
            "sample_seed": if sampled { json!(req.sample_seed) } else { Value::Null },
            "ok": verdict.ok,
            "missing": verdict.missing,
            "mismatched": verdict.mismatched,
            "unreadable": verdict.unreadable.iter().map(|(p, e)| json!({"path": p, "error": e})).collect::<Vec<Value>>(),
            "extra": verdict.extra,
            "error": error,
            "sandbox_removed": removal.is_ok(),
            "duration": started.elapsed().as_secs_f64(),
        })
        .as_object()
        .cloned()
        .unwrap_or_default(),
    );
    if !fields.contains_key("command") {
        fields.insert("command".into(), Value::Null);
    }
    let status = if failed { "failed" } else { "ok" };
    let what = match (&error, &req.reference) {
        (Some(e), _) => e.clone(),
        (None, Reference::Nothing) => "restored, not compared".to_string(),
        (None, r) => {
            let of = if sampled {
                format!(" (a {}% sample, seed {})", req.sample_percent, req.sample_seed)
            } else {
                String::new()
            };
            format!("vs {}{of}: {}", r.name(), verdict.summary())
        }
    };
    let msg = format!(
        "restore_test {status}: {what} ({} files, {} bytes restored in {restore_secs:.2}s)",
        tally.files, tally.bytes
    );
    Ok(CheckReport {
        failed,
        msg,
        fields,
        warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn paths(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("dir/file-{i:05}")).collect()
    }

    #[test]
    fn samples_are_sized_seeded_and_sorted() {
        let all = paths(1000);
        assert_eq!(sample(&all, 100.0, 1), all);
        let a = sample(&all, 10.0, 1);
        assert_eq!(a.len(), 100);
        assert!(a.windows(2).all(|w| w[0] < w[1]), "sorted, no duplicates");
        assert_eq!(sample(&all, 10.0, 1), a, "one seed, one sample");
        let b = sample(&all, 10.0, 2);
        assert_eq!(b.len(), 100);
        let overlap = a.iter().filter(|p| b.contains(p)).count();
        assert!(overlap < 40, "another seed, mostly other files ({overlap} shared)");
        assert_eq!(sample(&all, 0.01, 7).len(), 1, "at least one");
        assert_eq!(sample(&paths(3), 50.0, 7).len(), 2, "rounded up");
        assert!(sample(&[], 50.0, 7).is_empty());
        // Over many seeds every file gets its turn.
        let mut seen = BTreeSet::new();
        for seed in 0..200 {
            seen.extend(sample(&paths(50), 10.0, seed));
        }
        assert_eq!(seen.len(), 50);
    }

    #[test]
    fn max_bytes_takes_numbers_and_sizes() {
        assert_eq!(max_bytes(Some(&json!(1024))), Ok(Some(1024)));
        assert_eq!(max_bytes(Some(&json!("10G"))), Ok(Some(10 << 30)));
        assert_eq!(max_bytes(None), Ok(None));
        assert_eq!(
            max_bytes(Some(&json!("10Q"))).map_err(|e| e.0),
            Err(
                "restore.max_bytes: invalid size '10Q': unknown unit 'Q' (use B, K, M, G, T, P or E; binary, so K \
                 is 1024 bytes)"
                    .to_string()
            )
        );
        assert_eq!(
            max_bytes(Some(&json!(-1))).map_err(|e| e.0),
            Err("restore.max_bytes: -1 is not a whole number of bytes".to_string())
        );
        assert_eq!(
            max_bytes(Some(&json!([1]))).map_err(|e| e.0),
            Err("restore.max_bytes: [1] is not a size (e.g. 1048576, '512M' or '10G')".to_string())
        );
    }
}
