//! Manifests: a `sha256sum`-compatible manifest of a file or a tree, the engine
//! `backup_manifest` (and the daemon and the CLI) share: [`ManifestRequest`] in,
//! [`ManifestReport`] out.
//!
//! The tree is walked and hashed by `reliability_os::hashing`; the text is rendered by
//! `reliability_core::manifest`, so `sha256sum -c` verifies it and `backup_verify` reads
//! it. The manifest is replaced atomically, and only when its content would change; check
//! mode writes nothing.

use reliability_core::manifest::Manifest;
use reliability_core::request::{Report, RequestError};
use reliability_core::spec::{Kind, Opt, Spec};
use reliability_os::hashing::{self, Seen, WalkOptions};
use reliability_os::state;
use serde::Serialize;
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};

/// The options of a manifest request, declared once.
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

/// A checked manifest request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestRequest {
    pub path: PathBuf,
    pub dest: PathBuf,
    pub include: Vec<String>,
    pub exclude: Vec<String>,
    pub follow_symlinks: bool,
    /// Also write `<dest>.json` (digest, size, mtime per file).
    pub json: bool,
    /// Hashing threads (the option, or one per core).
    pub threads: usize,
}

impl ManifestRequest {
    /// Reads options that [`spec`] validated.
    pub fn from_params(params: &Map<String, Value>) -> Result<ManifestRequest, RequestError> {
        let text = |k: &str| PathBuf::from(params.get(k).and_then(Value::as_str).unwrap_or_default());
        let list = |k: &str| {
            params
                .get(k)
                .and_then(Value::as_array)
                .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
                .unwrap_or_default()
        };
        let flag = |k: &str| params.get(k).and_then(Value::as_bool).unwrap_or(false);
        Ok(ManifestRequest {
            path: text("path"),
            dest: text("dest"),
            include: list("include"),
            exclude: list("exclude"),
            follow_symlinks: flag("follow_symlinks"),
            json: flag("json"),
            threads: crate::integrity::threads(params),
        })
    }
}

/// What a manifest run made (or would make, in check mode).
#[derive(Clone, Debug, Serialize)]
pub struct ManifestReport {
    pub dest: String,
    pub root: String,
    pub files: usize,
    pub bytes: u64,
    pub symlinks_skipped: usize,
    pub threads: usize,
    /// Seconds.
    pub duration: f64,
    pub throughput_mbps: f64,
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub modified: Vec<String>,
    pub changed: bool,
    pub msg: String,
    pub warnings: Vec<String>,
    /// The manifest lines that differ, before and after.
    #[serde(skip)]
    pub diff: Value,
}

impl Report for ManifestReport {
    fn changed(&self) -> bool {
        self.changed
    }
    fn failed(&self) -> bool {
        false
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

/// Why no manifest was made: a message, and the entries that could not be listed or read.
#[derive(Clone, Debug, PartialEq)]
pub struct ManifestError {
    pub msg: String,
    pub unlistable: Vec<Value>,
    pub unreadable: Vec<Value>,
}

impl ManifestError {
    fn new(msg: impl Into<String>) -> ManifestError {
        ManifestError {
            msg: msg.into(),
            unlistable: Vec::new(),
            unreadable: Vec::new(),
        }
    }
}

impl std::fmt::Display for ManifestError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.msg)
    }
}

impl std::error::Error for ManifestError {}

/// Makes the manifest the request asks for; in check mode writes nothing.
pub fn run(request: &ManifestRequest, check_mode: bool) -> Result<ManifestReport, ManifestError> {
    let (path, dest) = (&request.path, &request.dest);
    let json_dest = reliability_core::manifest::companion(dest);
    let meta = std::fs::metadata(path).map_err(|e| ManifestError::new(format!("path '{}': {e}", path.display())))?;
    // Resolved (symlinks, `..`) so that the manifest is recognised and left out of the walk
    // however the two paths were spelt.
    let absolute = |p: &Path| match (p.parent().map(std::fs::canonicalize), p.file_name()) {
        (Some(Ok(dir)), Some(name)) => dir.join(name),
        _ => std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf()),
    };

    // A directory is walked; a single file is listed by its name, relative to its directory.
    let (root, files, symlinks_skipped) = if meta.is_dir() {
        let opts = WalkOptions {
            include: request.include.clone(),
            exclude: request.exclude.clone(),
            follow_symlinks: request.follow_symlinks,
            skip: vec![absolute(dest), absolute(&json_dest)],
        };
        let root = std::fs::canonicalize(path).unwrap_or_else(|_| absolute(path));
        let walked = hashing::walk(&root, &opts).map_err(ManifestError::new)?;
        if let Some((p, e)) = walked.errors.first() {
            return Err(ManifestError {
                msg: format!("cannot list '{p}' under '{}': {e}", path.display()),
                unlistable: walked
                    .errors
                    .iter()
                    .map(|(p, e)| json!({"path": p, "error": e}))
                    .collect(),
                unreadable: Vec::new(),
            });
        }
        (root, walked.files, walked.symlinks_skipped)
    } else if meta.is_file() {
        let full = absolute(path);
        let name = full
            .file_name()
            .and_then(|n| n.to_str())
            .ok_or_else(|| ManifestError::new(format!("path '{}' has no UTF-8 file name", path.display())))?
            .to_string();
        let root = full
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("/"));
        (root, vec![name], 0)
    } else {
        return Err(ManifestError::new(format!(
            "path '{}' is neither a regular file nor a directory",
            path.display()
        )));
    };

    let links = if request.follow_symlinks {
        hashing::Links::Follow
    } else {
        hashing::Links::WithinRoot
    };
    let run = hashing::hash_files(&root, &files, request.threads, links);
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
        return Err(ManifestError {
            msg: format!(
                "{} file(s) could not be hashed, first '{}': {}",
                unreadable.len(),
                first["path"].as_str().unwrap_or_default(),
                first["error"].as_str().unwrap_or_default()
            ),
            unlistable: Vec::new(),
            unreadable,
        });
    }
    let manifest = Manifest::from_entries(run.files.iter().filter_map(|f| match &f.outcome {
        Seen::Digest(d) => Some((f.path.clone(), d.clone())),
        _ => None,
    }))
    .map_err(|e| ManifestError::new(format!("under '{}': {e}", root.display())))?;
    let text = manifest.render();
    let companion_text = request.json.then(|| {
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
    let old_text = std::fs::read(dest).ok();
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
    if changed && !check_mode {
        if manifest_changes {
            state::write_atomic(dest, text.as_bytes()).map_err(|e| ManifestError::new(e.to_string()))?;
        }
        if let (true, Some(t)) = (companion_changes, &companion_text) {
            state::write_atomic(&json_dest, t.as_bytes()).map_err(|e| ManifestError::new(e.to_string()))?;
        }
    }

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
    Ok(ManifestReport {
        msg: format!(
            "{} files, {} bytes: {} added, {} removed, {} changed",
            manifest.entries.len(),
            run.bytes,
            diff.added.len(),
            diff.removed.len(),
            diff.changed.len()
        ),
        changed,
        dest: dest.display().to_string(),
        root: root.display().to_string(),
        files: manifest.entries.len(),
        bytes: run.bytes,
        symlinks_skipped,
        threads: run.threads,
        duration: run.duration.as_secs_f64(),
        throughput_mbps: run.throughput_mbps(),
        diff: json!({
            "before_header": dest.display().to_string(),
            "after_header": dest.display().to_string(),
            "before": before,
            "after": after,
        }),
        added: diff.added,
        removed: diff.removed,
        modified: diff.changed,
        warnings: Vec::new(),
    })
}
