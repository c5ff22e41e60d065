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
//! Deletion stays on the backup's filesystem, as `rm --one-file-system` does, and goes
//! further: before anything of a backup is deleted, [`remove`] refuses, naming the path, a
//! backup that is itself a mount point, or that has anything mounted below it: an entry
//! on another device than the backup (`st_dev`, compared over the whole tree), or a mount
//! point under it in `/proc/self/mountinfo` (a bind mount of the same filesystem has the
//! same `st_dev`; only the mount table tells). A USB disk or a bind-mounted directory inside
//! an expired backup is never emptied. (A mount made between this check and the deletion
//! is not seen; mounting into an expired backup while retention runs is not defended.)
//!
//! Sizes are apparent sizes (the sum of the regular files' lengths, `du -sb --apparent-size`),
//! counted without following links: what deleting frees, short of hard links shared with
//! files that stay. Times are the entry's own modification time (for a directory: the last
//! time an entry was added or removed in it, which for a backup written once is when it was
//! written). Nothing here decides what to delete: that is `reliability_core::retention`.

use crate::small_file::{self, Follow};
use globset::{GlobBuilder, GlobMatcher};
use serde::Serialize;
use std::os::unix::ffi::OsStringExt;
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

/// The apparent size of the regular files under `dir`, links not followed, other
/// filesystems not entered.
fn tree_bytes(dir: &Path) -> u64 {
    walkdir::WalkDir::new(dir)
        .follow_links(false)
        .same_file_system(true)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}

/// `dir` resolved (absolute, links followed, `.`, `..` and repeated slashes gone); it must
/// be a directory.
pub fn resolve(dir: &Path) -> Result<PathBuf, String> {
    let root = std::fs::canonicalize(dir).map_err(|e| format!("path '{}': {e}", dir.display()))?;
    if !root.is_dir() {
        return Err(format!("path '{}' is not a directory", dir.display()));
    }
    Ok(root)
}

/// The entries of `dir` whose names match `pattern`.
pub fn list(dir: &Path, pattern: &str) -> Result<Listing, String> {
    let glob = name_glob(pattern)?;
    let root = resolve(dir)?;
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
    check_one_filesystem(entry)?;
    let removed = match entry.kind {
        EntryKind::File => std::fs::remove_file(path),
        EntryKind::Directory => std::fs::remove_dir_all(path),
    };
    removed.map_err(|e| format!("cannot delete '{}': {e}", path.display()))
}

/// The largest mount table read.
const MAX_MOUNTINFO_BYTES: u64 = 16 << 20;

/// Refuses `entry` when deleting it would reach another filesystem or a mount point (see
/// the module docs). Reads only: [`remove`] calls it first, check mode alone.
pub fn check_one_filesystem(entry: &Entry) -> Result<(), String> {
    let path = &entry.path;
    let refuse = |why: String| {
        Err(format!(
            "not deleting '{}': {why}; nothing of it was deleted",
            path.display()
        ))
    };
    if let Some(parent) = path.parent() {
        let parent_dev = std::fs::symlink_metadata(parent)
            .map_err(|e| {
                format!(
                    "cannot delete '{}': cannot stat '{}': {e}",
                    path.display(),
                    parent.display()
                )
            })?
            .dev();
        if parent_dev != entry.dev {
            return refuse("it is a mount point (another filesystem than its directory)".to_string());
        }
    }
    let table = Path::new("/proc/self/mountinfo");
    let text = small_file::read(table, MAX_MOUNTINFO_BYTES, Follow::Yes).map_err(|e| {
        format!(
            "not deleting '{}': the mount table is needed to see what is mounted below it: {e}",
            path.display()
        )
    })?;
    if let Some(mount) = mount_points(&String::from_utf8_lossy(&text))
        .into_iter()
        .find(|m| m.starts_with(path))
    {
        return refuse(if &mount == path {
            "it is a mount point".to_string()
        } else {
            format!("'{}' is mounted inside it (unmount it first)", mount.display())
        });
    }
    if entry.kind == EntryKind::Directory {
        for item in walkdir::WalkDir::new(path).follow_links(false) {
            let item = item.map_err(|e| format!("not deleting '{}': cannot walk it: {e}", path.display()))?;
            let meta = item
                .metadata()
                .map_err(|e| format!("not deleting '{}': cannot walk it: {e}", path.display()))?;
            if meta.dev() != entry.dev {
                return refuse(format!(
                    "'{}' is on another filesystem (something is mounted there; unmount it first)",
                    item.path().display()
                ));
            }
        }
    }
    Ok(())
}

/// The mount points in a `/proc/PID/mountinfo` text (the fifth field of each line, with the
/// kernel's octal escapes of space, tab, newline and backslash undone).
pub fn mount_points(mountinfo: &str) -> Vec<PathBuf> {
    mountinfo
        .lines()
        .filter_map(|line| line.split(' ').nth(4))
        .map(|field| PathBuf::from(std::ffi::OsString::from_vec(unescape_octal(field))))
        .collect()
}

fn unescape_octal(field: &str) -> Vec<u8> {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let digits = bytes.get(i + 1..i + 4);
        match digits {
            Some(d) if bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)) => {
                out.push(d.iter().fold(0u8, |n, b| n.wrapping_mul(8).wrapping_add(b - b'0')));
                i += 4;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_points_are_read_from_mountinfo() {
        let text = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
                    40 22 0:35 / /srv/backup/2020-01-01/usb\\040disk rw - vfat /dev/sdb1 rw\n\
                    41 22 8:1 /data /srv/a\\134b\\011c rw - ext4 /dev/sda1 rw\n";
        assert_eq!(
            mount_points(text),
            [
                PathBuf::from("/"),
                PathBuf::from("/srv/backup/2020-01-01/usb disk"),
                PathBuf::from("/srv/a\\b\tc"),
            ]
        );
        assert_eq!(mount_points("garbage\n"), Vec::<PathBuf>::new());
    }

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
