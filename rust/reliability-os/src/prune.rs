//! The entries of a backup directory, and deleting them without leaving it.
//!
//! Backups are the entries directly in one directory whose names match a glob
//! (`db-*.tar.zst`, `20??-??-??`): regular files or whole directories. [`list`] reads them
//! with `lstat`, never following a link: a symbolic link, even one whose name matches, is
//! not a backup here but a pointer to something that may live elsewhere, so it is passed
//! over and reported ([`Skipped`]), neither followed nor deleted; FIFOs, sockets and devices
//! likewise. The directory itself may be reached through a link: it is resolved once, and
//! every entry is under the resolved path.
//!
//! [`remove`] deletes one listed entry. It looks again first: an entry that is now a link,
//! or another inode than the one listed (replaced meanwhile), is refused. A directory goes
//! with `std::fs::remove_dir_all`, which on Linux walks with `openat(O_NOFOLLOW)` and
//! unlinks links inside it as links (the fix of CVE-2022-21658), so a link inside a backup
//! that points out of it loses the link, never its target.
//!
//! Sizes are apparent sizes (the sum of the regular files' lengths, `du -sb --apparent-size`),
//! counted without following links: what deleting frees, short of hard links shared with
//! files that stay. Times are the entry's own modification time (for a directory: the last
//! time an entry was added or removed in it, which for a backup written once is when it was
//! written). Nothing here decides what to delete: that is `reliability_core::retention`.

use globset::{GlobBuilder, GlobMatcher};
use serde::Serialize;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryKind {
    File,
    Directory,
}

/// One backup found in the directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Entry {
    pub name: String,
    /// Under the resolved directory.
    pub path: PathBuf,
    pub kind: EntryKind,
    /// Modification time, unix milliseconds (0 if before the epoch).
    pub mtime_ms: u64,
    /// Apparent size; for a directory, of every regular file in it.
    pub bytes: u64,
    dev: u64,
    ino: u64,
}

/// An entry whose name matched but that is not a backup to delete.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub name: String,
    pub reason: String,
}

/// What [`list`] found.
#[derive(Clone, Debug, Default)]
pub struct Listing {
    /// The directory, resolved.
    pub root: PathBuf,
    /// Sorted by name.
    pub entries: Vec<Entry>,
    pub skipped: Vec<Skipped>,
}

/// A glob over entry names (not paths: a `/` is refused, `*` never crosses one).
pub fn name_glob(pattern: &str) -> Result<GlobMatcher, String> {
    if pattern.is_empty() {
        return Err("pattern: it is empty; give a glob of backup names such as 'db-*.tar.zst'".to_string());
    }
    if pattern.contains('/') {
        return Err(format!(
            "pattern: '{pattern}' has a '/'; it matches names of entries directly in path, not paths"
        ));
    }
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| format!("pattern: '{pattern}' is not a valid glob: {e}"))
}

fn millis(meta: &std::fs::Metadata) -> u64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis().try_into().unwrap_or(u64::MAX))
}

/// The apparent size of the regular files under `dir`, links not followed.
fn tree_bytes(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .follow_links(false)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// The entries of `dir` whose names match `pattern`.
pub fn list(dir: &Path, pattern: &str) -> Result<Listing, String> {
    let glob = name_glob(pattern)?;
    let root = std::fs::canonicalize(dir).map_err(|e| format!("path '{}': {e}", dir.display()))?;
    if !root.is_dir() {
        return Err(format!("path '{}' is not a directory", dir.display()));
    }
    let reader = std::fs::read_dir(&root).map_err(|e| format!("cannot list '{}': {e}", root.display()))?;
    let mut listing = Listing {
        root: root.clone(),
        ..Listing::default()
    };
    for item in reader {
        let item = item.map_err(|e| format!("cannot list '{}': {e}", root.display()))?;
        let os_name = item.file_name();
        let Some(name) = os_name.to_str() else {
            let lossy = os_name.to_string_lossy().to_string();
            if glob.is_match(&lossy) {
                listing.skipped.push(Skipped {
                    name: lossy,
                    reason: "the name is not UTF-8 text".to_string(),
                });
            }
            continue;
        };
        if !glob.is_match(name) {
            continue;
        }
        let path = root.join(name);
        let skip = |reason: String| Skipped {
            name: name.to_string(),
            reason,
        };
        let meta = match std::fs::symlink_metadata(&path) {
            Ok(m) => m,
            Err(e) => {
                listing.skipped.push(skip(format!("cannot stat it: {e}")));
                continue;
            }
        };
        let ft = meta.file_type();
        let kind = if ft.is_file() {
            EntryKind::File
        } else if ft.is_dir() {
            EntryKind::Directory
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&path)
                .map(|t| t.display().to_string())
                .unwrap_or_else(|e| format!("? ({e})"));
            listing.skipped.push(skip(format!(
                "a symbolic link (to '{target}'): never followed nor deleted"
            )));
            continue;
        } else {
            listing
                .skipped
                .push(skip("neither a regular file nor a directory".to_string()));
            continue;
        };
        let bytes = match kind {
            EntryKind::File => meta.len(),
            EntryKind::Directory => tree_bytes(&path),
        };
        listing.entries.push(Entry {
            name: name.to_string(),
            path,
            kind,
            mtime_ms: millis(&meta),
            bytes,
            dev: meta.dev(),
            ino: meta.ino(),
        });
    }
    listing.entries.sort_by(|a, b| a.name.cmp(&b.name));
    listing.skipped.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(listing)
}

/// Deletes a listed entry (a file, or a directory and everything in it), refusing one that
/// changed since it was listed. The error names the path.
pub fn remove(entry: &Entry) -> Result<(), String> {
    let path = &entry.path;
    let now = std::fs::symlink_metadata(path).map_err(|e| format!("cannot delete '{}': {e}", path.display()))?;
    let same_kind = match entry.kind {
        EntryKind::File => now.file_type().is_file(),
        EntryKind::Directory => now.file_type().is_dir(),
    };
    if !same_kind || now.dev() != entry.dev || now.ino() != entry.ino {
        return Err(format!(
            "not deleting '{}': it was replaced since it was listed",
            path.display()
        ));
    }
    let removed = match entry.kind {
        EntryKind::File => std::fs::remove_file(path),
        EntryKind::Directory => std::fs::remove_dir_all(path),
    };
    removed.map_err(|e| format!("cannot delete '{}': {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_globs() {
        let g = name_glob("db-*.tar.zst").expect("valid");
        assert!(g.is_match("db-2026-11-23.tar.zst"));
        assert!(!g.is_match("db-2026.tar.gz"));
        assert!(name_glob("20??-??-??").expect("valid").is_match("2026-11-23"));
        let err = |p: &str| name_glob(p).expect_err(p);
        assert!(
            err("db-[").starts_with("pattern: 'db-[' is not a valid glob"),
            "{}",
            err("db-[")
        );
        assert!(err("a/*").contains("has a '/'"));
        assert!(err("").contains("empty"));
    }

    #[test]
    fn lists_files_and_directories_and_skips_links() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::write(root.join("db-1"), b"12345").expect("file");
        std::fs::create_dir_all(root.join("db-2/sub")).expect("dir");
        std::fs::write(root.join("db-2/a"), b"abc").expect("file");
        std::fs::write(root.join("db-2/sub/b"), b"defg").expect("file");
        std::os::unix::fs::symlink("/etc", root.join("db-2/etc")).expect("link");
        std::os::unix::fs::symlink("/etc/hostname", root.join("db-3")).expect("link");
        std::fs::write(root.join("other"), b"x").expect("file");
        let l = list(root, "db-*").expect("list");
        let names: Vec<(&str, EntryKind, u64)> = l.entries.iter().map(|e| (e.name.as_str(), e.kind, e.bytes)).collect();
        assert_eq!(names, [("db-1", EntryKind::File, 5), ("db-2", EntryKind::Directory, 7)]);
        assert_eq!(l.skipped.len(), 1);
        assert_eq!(l.skipped[0].name, "db-3");
        assert!(l.skipped[0].reason.contains("symbolic link (to '/etc/hostname')"));

        let file = root.join("a-file");
        std::fs::write(&file, b"").expect("file");
        assert!(list(&file, "*").expect_err("a file").ends_with("is not a directory"));
        assert!(list(&root.join("missing"), "*")
            .expect_err("missing")
            .contains("missing"));
    }

    #[test]
    fn removes_what_was_listed_and_refuses_a_replacement() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::create_dir(root.join("b-dir")).expect("dir");
        std::fs::write(root.join("b-dir/x"), b"x").expect("file");
        std::fs::write(root.join("b-file"), b"y").expect("file");
        let l = list(root, "b-*").expect("list");
        // b-file replaced by another file after listing (made while the first still exists,
        // so its inode differs): refused, left alone.
        std::fs::write(root.join("b-other"), b"z").expect("file");
        std::fs::rename(root.join("b-other"), root.join("b-file")).expect("mv");
        for e in &l.entries {
            let r = remove(e);
            match e.name.as_str() {
                "b-dir" => assert_eq!(r, Ok(())),
                _ => assert!(r.expect_err("replaced").contains("replaced since it was listed")),
            }
        }
        assert!(!root.join("b-dir").exists());
        assert_eq!(std::fs::read(root.join("b-file")).expect("kept"), b"z");
    }
}
