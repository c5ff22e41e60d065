//! `backup_verify`: proves a backup is what its manifest says.
//!
//! Today one check, `integrity`: every file a manifest lists (ours, or one GNU
//! `sha256sum` wrote, escaped names included) is hashed in parallel and compared; missing,
//! mismatched, unreadable and, on request, extra files are reported once each, by path.
//! Reading and hashing are `reliability_os::hashing`; parsing and the verdict are
//! `reliability_core::manifest`. The module only reads: check mode runs the same way.

use ansible_module::{Failure, Module, Response};
use reliability_core::manifest::{self, Manifest, Seen};
use reliability_core::spec::{Kind, Opt, Spec};
use reliability_os::hashing::{self, WalkOptions};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub fn spec() -> Spec {
    Spec::new(vec![
        Opt::list("checks", Kind::Str)
            .choices(&["integrity"])
            .default(json!(["integrity"])),
        Opt::path("manifest").required(),
        Opt::path("root"),
        Opt::bool("report_extra").default(false),
        Opt::int("threads").range(1.0, 1024.0),
    ])
}

pub fn run(module: &mut Module) -> Result<Response, Failure> {
    let manifest_path = PathBuf::from(module.str("manifest").unwrap_or_default());
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let root = match module.str("root") {
        Some(r) => absolute(Path::new(r)),
        None => absolute(&manifest_path)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/")),
    };
    if !root.is_dir() {
        return Err(Failure::new(format!("root '{}' is not a directory", root.display())));
    }
    let text = std::fs::read(&manifest_path)
        .map_err(|e| Failure::new(format!("cannot read manifest '{}': {e}", manifest_path.display())))?;
    let manifest = Manifest::parse(&text).map_err(|e| Failure::new(format!("'{}': {e}", manifest_path.display())))?;

    let paths: Vec<String> = manifest.entries.keys().cloned().collect();
    let run = hashing::hash_files(&root, &paths, crate::backup_manifest::threads(module));
    let seen: BTreeMap<String, Seen> = run.files.iter().map(|f| (f.path.clone(), f.outcome.clone())).collect();
    let present = if module.bool("report_extra") {
        let mut companion = absolute(&manifest_path).into_os_string();
        companion.push(".json");
        let opts = WalkOptions {
            skip: vec![absolute(&manifest_path), PathBuf::from(companion)],
            ..WalkOptions::default()
        };
        let walked = hashing::walk(&root, &opts).map_err(Failure::new)?;
        if let Some((p, e)) = walked.errors.first() {
            module.warn(format!("cannot list '{p}' under '{}': {e}", root.display()));
        }
        Some(walked.files)
    } else {
        None
    };
    let verdict = manifest::judge(&manifest, &seen, present.as_deref());
    let status = if verdict.failed() { "failed" } else { "ok" };
    let integrity = json!({
        "status": status,
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
    let checks = json!({ "integrity": integrity });
    if verdict.failed() {
        return Err(Failure::new(msg).field("status", status).field("checks", checks));
    }
    Ok(Response::new().msg(msg).field("status", status).field("checks", checks))
}
