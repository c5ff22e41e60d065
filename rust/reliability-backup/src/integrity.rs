//! `integrity`: every file a manifest lists (ours, or one GNU `sha256sum` wrote, escaped
//! names included) is hashed in parallel and compared; missing, mismatched, unreadable
//! and, on request, extra files are reported once each, by path.
//!
//! Reading and hashing are `reliability_os::hashing`; parsing and the verdict are
//! `reliability_core::manifest`. Nothing is written.

use crate::{str_param, CheckReport, Context, RequestError};
use reliability_core::manifest::{self, Manifest, Seen};
use reliability_core::spec::Opt;
use reliability_os::hashing::{self, WalkOptions};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The options of the check (`manifest` and `root` are shared with the restore checks).
pub fn options() -> Vec<Opt> {
    vec![
        Opt::path("manifest"),
        Opt::path("root"),
        Opt::bool("report_extra").default(false),
        Opt::int("threads").range(1.0, 1024.0),
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
    let text =
        std::fs::read(path).map_err(|e| RequestError(format!("cannot read manifest '{}': {e}", path.display())))?;
    Manifest::parse(&text).map_err(|e| RequestError(format!("'{}': {e}", path.display())))
}

pub fn run(params: &Map<String, Value>, _ctx: &Context) -> Result<CheckReport, RequestError> {
    let (manifest_path, root) = manifest_and_root(params, "integrity")?;
    if !root.is_dir() {
        return Err(RequestError(format!("root '{}' is not a directory", root.display())));
    }
    let manifest = load_manifest(&manifest_path)?;
    let mut warnings = Vec::new();

    let paths: Vec<String> = manifest.entries.keys().cloned().collect();
    let run = hashing::hash_files(&root, &paths, threads(params));
    let seen: BTreeMap<String, Seen> = run.files.iter().map(|f| (f.path.clone(), f.outcome.clone())).collect();
    let present = if params.get("report_extra").and_then(Value::as_bool).unwrap_or(false) {
        let mut companion = absolute(&manifest_path).into_os_string();
        companion.push(".json");
        let opts = WalkOptions {
            skip: vec![absolute(&manifest_path), PathBuf::from(companion)],
            ..WalkOptions::default()
        };
        let walked = hashing::walk(&root, &opts).map_err(RequestError)?;
        if let Some((p, e)) = walked.errors.first() {
            warnings.push(format!("cannot list '{p}' under '{}': {e}", root.display()));
        }
        Some(walked.files)
    } else {
        None
    };
    let verdict = manifest::judge(&manifest, &seen, present.as_deref());
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
        "integrity {status}: {} ({} files, {} bytes in {:.2}s, {:.0} MB/s)",
        verdict.summary(),
        manifest.entries.len(),
        run.bytes,
        run.duration.as_secs_f64(),
        run.throughput_mbps()
    );
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
