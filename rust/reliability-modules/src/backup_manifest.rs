//! `backup_manifest`: a `sha256sum`-compatible manifest of a file or a tree.
//!
//! The tree is walked and hashed by `reliability_os::hashing`; the text is rendered by
//! `reliability_core::manifest`, so `sha256sum -c` verifies it and `backup_verify` reads
//! it. The manifest is replaced atomically, and only when its content would change.

use ansible_module::{Failure, Module, Response};
use reliability_core::manifest::Manifest;
use reliability_core::spec::{Kind, Opt, Spec};
use reliability_os::hashing::{self, Seen, WalkOptions};
use reliability_os::state;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

pub fn spec() -> Spec {
    Spec::new(vec![
        Opt::path("path").required(),
        Opt::path("dest").required(),
        Opt::list("include", Kind::Str).default(json!([])),
        Opt::list("exclude", Kind::Str).default(json!([])),
        Opt::bool("follow_symlinks").default(false),
        Opt::bool("json").default(false),
        Opt::int("threads").range(1.0, 1024.0),
    ])
}

/// The threads option, or one per core.
fn threads(module: &Module) -> usize {
    reliability_backup::integrity::threads(&module.params)
}

pub fn run(module: &mut Module) -> Result<Response, Failure> {
    let path = PathBuf::from(module.str("path").unwrap_or_default());
    let dest = PathBuf::from(module.str("dest").unwrap_or_default());
    let json_dest = reliability_core::manifest::companion(&dest);
    let meta = std::fs::metadata(&path).map_err(|e| Failure::new(format!("path '{}': {e}", path.display())))?;
    // Resolved (symlinks, `..`) so that the manifest is recognised and left out of the walk
    // however the two paths were spelt.
    let absolute = |p: &Path| match (p.parent().map(std::fs::canonicalize), p.file_name()) {
        (Some(Ok(dir)), Some(name)) => dir.join(name),
        _ => std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()),
    };

    // A directory is walked; a single file is listed by its name, relative to its directory.
    let (root, files, symlinks_skipped) = if meta.is_dir() {
        let opts = WalkOptions {
            include: module.list_of_str("include"),
            exclude: module.list_of_str("exclude"),
            follow_symlinks: module.bool("follow_symlinks"),
            skip: vec![absolute(&dest), absolute(&json_dest)],
        };
        let root = std::fs::canonicalize(&path).unwrap_or_else(|_| absolute(&path));
        let walked = hashing::walk(&root, &opts).map_err(Failure::new)?;
        if let Some((p, e)) = walked.errors.first() {
            return Err(
                Failure::new(format!("cannot list '{p}' under '{}': {e}", path.display())).field(
                    "unlistable",
                    json!(walked
                        .errors
                        .iter()
                        .map(|(p, e)| json!({"path": p, "error": e}))
                        .collect::<Vec<_>>()),
                ),
            );
        }
        (root, walked.files, walked.symlinks_skipped)
    } else if meta.is_file() {
        let full = absolute(&path);
        let name = full
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| Failure::new(format!("path '{}' has no UTF-8 file name", path.display())))?
            .to_string();
        let root = full
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/"));
        (root, vec![name], 0)
    } else {
        return Err(Failure::new(format!(
            "path '{}' is neither a regular file nor a directory",
            path.display()
        )));
    };

    let links = if module.bool("follow_symlinks") {
        hashing::Links::Follow
    } else {
        hashing::Links::WithinRoot
    };
    let run = hashing::hash_files(&root, &files, threads(module), links);
    let unreadable: Vec<Value> = run
        .files
        .iter()
        .filter_map(|f| match &f.outcome {
            Seen::Digest(_) => None,
            Seen::Missing => Some(json!({"path": f.path, "error": "vanished while the manifest was made"})),
            Seen::Unreadable(e) => Some(json!({"path": f.path, "error": e})),
        })
        .collect();
    if !unreadable.is_empty() {
        let first = &unreadable[0];
        return Err(Failure::new(format!(
            "{} file(s) could not be hashed, first '{}': {}",
            unreadable.len(),
            first["path"].as_str().unwrap_or_default(),
            first["error"].as_str().unwrap_or_default()
        ))
        .field("unreadable", unreadable));
    }
    let manifest = Manifest::from_entries(run.files.iter().filter_map(|f| match &f.outcome {
        Seen::Digest(d) => Some((f.path.clone(), d.clone())),
        _ => None,
    }))
    .map_err(|e| Failure::new(format!("under '{}': {e}", root.display())))?;
    let text = manifest.render();
    let companion_text = module.bool("json").then(|| {
        let entries: serde_json::Map<String, Value> = run
            .files
            .iter()
            .map(|f| {
                let digest = match &f.outcome {
                    Seen::Digest(d) => d.as_str(),
                    _ => "",
                };
                (
                    f.path.clone(),
                    json!({"sha256": digest, "size": f.size, "mtime": f.mtime}),
                )
            })
            .collect();
        let doc = json!({"algorithm": "sha256", "files": entries});
        let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
        s.push('\n');
        s
    });

    // What is there now decides `changed`; an unreadable old manifest is simply replaced.
    let old_text = std::fs::read(&dest).ok();
    let old = old_text
        .as_deref()
        .and_then(|t| Manifest::parse(t).ok())
        .unwrap_or_default();
    let diff = old.diff(&manifest);
    let manifest_changes = old_text.as_deref() != Some(text.as_bytes());
    let companion_changes = match &companion_text {
        Some(t) => std::fs::read(&json_dest).ok().as_deref() != Some(t.as_bytes()),
        None => false,
    };
    let changed = manifest_changes || companion_changes;
    if changed && !module.check_mode() {
        if manifest_changes {
            state::write_atomic(&dest, text.as_bytes()).map_err(|e| Failure::new(e.to_string()))?;
        }
        if let (true, Some(t)) = (companion_changes, &companion_text) {
            state::write_atomic(&json_dest, t.as_bytes()).map_err(|e| Failure::new(e.to_string()))?;
        }
    }

    let mut response = Response::new()
        .changed(changed)
        .msg(format!(
            "{} files, {} bytes: {} added, {} removed, {} changed",
            manifest.entries.len(),
            run.bytes,
            diff.added.len(),
            diff.removed.len(),
            diff.changed.len()
        ))
        .field("dest", dest.display().to_string())
        .field("root", root.display().to_string())
        .field("files", manifest.entries.len())
        .field("bytes", run.bytes)
        .field("symlinks_skipped", symlinks_skipped)
        .field("threads", run.threads)
        .field("duration", run.duration.as_secs_f64())
        .field("throughput_mbps", run.throughput_mbps())
        .field("added", json!(diff.added))
        .field("removed", json!(diff.removed))
        .field("modified", json!(diff.changed));
    if module.diff_mode() {
        // Only the lines that differ: a manifest of 20,000 files stays a readable diff.
        let line = |m: &Manifest, p: &String| {
            m.entries
                .get(p)
                .map(|d| reliability_core::manifest::render_line(p, d))
                .unwrap_or_default()
        };
        let sorted = |a: &[String], b: &[String]| {
            let mut v: Vec<String> = a.iter().chain(b).cloned().collect();
            v.sort();
            v
        };
        let before: String = sorted(&diff.removed, &diff.changed)
            .iter()
            .map(|p| line(&old, p))
            .collect();
        let after: String = sorted(&diff.added, &diff.changed)
            .iter()
            .map(|p| line(&manifest, p))
            .collect();
        response = response.field(
            "diff",
            json!({
                "before_header": dest.display().to_string(),
                "after_header": dest.display().to_string(),
                "before": before,
                "after": after,
            }),
        );
    }
    Ok(response)
}
