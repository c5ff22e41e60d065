//! SHA-256 manifests in the format of GNU `sha256sum`, read and written without I/O.
//!
//! A manifest line is `<64 hex digits>  <path>` (a `*` instead of the second space marks
//! "binary" mode, which means nothing on POSIX systems). When a path holds a backslash, a
//! newline or a carriage return, GNU writes the line with a leading `\` and escapes those
//! three as `\\`, `\n` and `\r`; [`Manifest::render`] does the same, and only then, so
//! `sha256sum -c` reads what we write and we read what it writes.
//!
//! Paths are relative to a root (the directory the manifest describes). A path that could
//! leave that root (absolute, or with a `..` component) is refused with its line named:
//! a manifest is input, and verifying one must never read outside the tree it names.
//! Paths are normalised (`./a//b` is `a/b`), so two spellings of one file are one entry.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Why a manifest could not be read; always names the line (1-based).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ManifestError {
    pub line: usize,
    pub problem: String,
}

impl fmt::Display for ManifestError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "manifest line {}: {}", self.line, self.problem)
    }
}

impl std::error::Error for ManifestError {}

/// A manifest: normalised relative path -> lowercase hex SHA-256, sorted by path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Manifest {
    pub entries: BTreeMap<String, String>,
}

/// What changed between two manifests, each list sorted by path.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ManifestDiff {
    pub added: Vec<String>,
    pub removed: Vec<String>,
    pub changed: Vec<String>,
}

impl ManifestDiff {
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.removed.is_empty() && self.changed.is_empty()
    }
}

impl Manifest {
    /// Parses manifest text. Empty lines are skipped (GNU warns about them and goes on); a
    /// trailing carriage return is dropped, as GNU does for manifests written on Windows.
    pub fn parse(text: &[u8]) -> Result<Manifest, ManifestError> {
        let mut entries = BTreeMap::new();
        let mut first_seen: BTreeMap<String, usize> = BTreeMap::new();
        let mut lines: Vec<&[u8]> = text.split(|b| *b == b'\n').collect();
        if lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        for (i, raw) in lines.into_iter().enumerate() {
            let line = i + 1;
            let err = |problem: String| ManifestError { line, problem };
            let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
            if raw.is_empty() {
                continue;
            }
            let text = std::str::from_utf8(raw).map_err(|_| err("not UTF-8 text".to_string()))?;
            let (path, digest) = parse_line(text).map_err(err)?;
            let path = normalise(&path).map_err(err)?;
            if let Some(before) = first_seen.get(&path) {
                return Err(err(format!("'{path}' is listed twice (first on line {before})")));
            }
            first_seen.insert(path.clone(), line);
            entries.insert(path, digest);
        }
        Ok(Manifest { entries })
    }

    /// Builds a manifest from (path, hex digest) pairs, normalising and checking each path.
    pub fn from_entries<I: IntoIterator<Item = (String, String)>>(items: I) -> Result<Manifest, String> {
        let mut entries = BTreeMap::new();
        for (path, digest) in items {
            let path = normalise(&path)?;
            if !is_digest(&digest) {
                return Err(format!("'{path}': '{digest}' is not a SHA-256 hex digest"));
            }
            entries.insert(path, digest.to_ascii_lowercase());
        }
        Ok(Manifest { entries })
    }

    /// The manifest as GNU `sha256sum` would write it for these files, sorted by path.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for (path, digest) in &self.entries {
            out.push_str(&render_line(path, digest));
        }
        out
    }

    /// Entries added, removed and changed going from `self` (before) to `after`.
    pub fn diff(&self, after: &Manifest) -> ManifestDiff {
        let mut d = ManifestDiff::default();
        for (path, digest) in &after.entries {
            match self.entries.get(path) {
                None => d.added.push(path.clone()),
                Some(old) if old != digest => d.changed.push(path.clone()),
                Some(_) => {}
            }
        }
        d.removed = self
            .entries
            .keys()
            .filter(|p| !after.entries.contains_key(*p))
            .cloned()
            .collect();
        d
    }
}

/// One manifest line, with the newline, escaped exactly when GNU would escape it.
pub fn render_line(path: &str, digest: &str) -> String {
    if path.contains(['\\', '\n', '\r']) {
        let escaped = path.replace('\\', "\\\\").replace('\n', "\\n").replace('\r', "\\r");
        format!("\\{digest}  {escaped}\n")
    } else {
        format!("{digest}  {path}\n")
    }
}

fn is_digest(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `(path as written, lowercase digest)` of one non-empty line.
fn parse_line(text: &str) -> Result<(String, String), String> {
    let (escaped, body) = match text.strip_prefix('\\') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let hex_len = body.bytes().take_while(u8::is_ascii_hexdigit).count();
    let (digest, rest) = body.split_at(hex_len);
    if hex_len != 64 {
        let found: String = body
            .split([' ', '\t'])
            .next()
            .unwrap_or_default()
            .chars()
            .take(80)
            .collect();
        return Err(format!("expected 64 hex digits, found '{found}'"));
    }
    let name = rest
        .strip_prefix("  ")
        .or_else(|| rest.strip_prefix(" *"))
        .ok_or_else(|| "expected two spaces or ' *' between the digest and the path".to_string())?;
    if name.is_empty() {
        return Err("no path after the digest".to_string());
    }
    let name = if escaped { unescape(name)? } else { name.to_string() };
    Ok((name, digest.to_ascii_lowercase()))
}

fn unescape(name: &str) -> Result<String, String> {
    let mut out = String::with_capacity(name.len());
    let mut chars = name.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            Some('r') => out.push('\r'),
            Some(other) => return Err(format!("unknown escape '\\{other}' in path '{name}'")),
            None => return Err(format!("path '{name}' ends in a lone backslash")),
        }
    }
    Ok(out)
}

/// `./a//b/.` -> `a/b`; refuses absolute paths and `..` components, which could name a file
/// outside the manifest's root.
pub fn normalise(path: &str) -> Result<String, String> {
    if path.starts_with('/') {
        return Err(format!(
            "path '{path}' is absolute; manifest paths must be relative to their root"
        ));
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(format!("path '{path}' has a '..' component and could escape its root")),
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err(format!("path '{path}' names no file"));
    }
    Ok(parts.join("/"))
}

/// A manifest's JSON companion, `<manifest>.json`, which `backup_manifest` writes beside it.
pub fn companion(manifest: &Path) -> PathBuf {
    let mut s = manifest.as_os_str().to_owned();
    s.push(".json");
    PathBuf::from(s)
}

/// The files the collection itself keeps in a tree: the manifest and its companion, as
/// paths relative to `root` (the form a walk lists), when the manifest lies under `root`.
/// Both paths must be spelt alike (absolute, links resolved as the caller resolves them).
/// One rule for every listing that looks for extra files: `integrity` with `report_extra`
/// over the tree, `restore_test` over the restore of it.
pub fn own_files(manifest: &Path, root: &Path) -> Vec<String> {
    [manifest.to_path_buf(), companion(manifest)]
        .iter()
        .filter_map(|p| p.strip_prefix(root).ok()?.to_str().map(str::to_string))
        .filter(|rel| !rel.is_empty())
        .collect()
}

/// What reading one file found (the OS layer returns it; [`judge`] weighs it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seen {
    /// The file was read; its digest.
    Digest(String),
    /// No such file.
    Missing,
    /// The file exists but could not be read to the end; why.
    Unreadable(String),
}

/// The integrity verdict: every problem once, by path, sorted.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Integrity {
    pub ok: usize,
    pub missing: Vec<String>,
    pub mismatched: Vec<String>,
    pub unreadable: Vec<(String, String)>,
    pub extra: Vec<String>,
}

impl Integrity {
    pub fn failed(&self) -> bool {
        !(self.missing.is_empty() && self.mismatched.is_empty() && self.unreadable.is_empty() && self.extra.is_empty())
    }

    /// One line for people: `2 missing ('a', 'b'), 1 mismatched ('c')`, or `all N files match`.
    pub fn summary(&self) -> String {
        fn part(out: &mut Vec<String>, what: &str, paths: &[&String]) {
            if paths.is_empty() {
                return;
            }
            let shown: Vec<String> = paths
                .iter()
                .take(5)
                .map(|p| format!("'{}'", p.escape_debug()))
                .collect();
            let more = if paths.len() > 5 {
                format!(", and {} more", paths.len() - 5)
            } else {
                String::new()
            };
            out.push(format!("{} {what} ({}{more})", paths.len(), shown.join(", ")));
        }
        let mut out = Vec::new();
        part(&mut out, "missing", &self.missing.iter().collect::<Vec<_>>());
        part(&mut out, "mismatched", &self.mismatched.iter().collect::<Vec<_>>());
        part(
            &mut out,
            "unreadable",
            &self.unreadable.iter().map(|(p, _)| p).collect::<Vec<_>>(),
        );
        part(&mut out, "extra", &self.extra.iter().collect::<Vec<_>>());
        if out.is_empty() {
            format!("all {} files match", self.ok)
        } else {
            out.join(", ")
        }
    }
}

/// Judges what was seen against the manifest. `present` is every file found under the root
/// (when extra files are to be reported); paths in it that the manifest lacks are extra.
pub fn judge(manifest: &Manifest, seen: &BTreeMap<String, Seen>, present: Option<&[String]>) -> Integrity {
    let mut v = Integrity::default();
    for (path, want) in &manifest.entries {
        match seen.get(path) {
            Some(Seen::Digest(got)) if got == want => v.ok += 1,
            Some(Seen::Digest(_)) => v.mismatched.push(path.clone()),
            Some(Seen::Missing) | None => v.missing.push(path.clone()),
            Some(Seen::Unreadable(why)) => v.unreadable.push((path.clone(), why.clone())),
        }
    }
    if let Some(present) = present {
        v.extra = extra(manifest, present);
    }
    v
}

/// The paths in `present` (files found under the root) that the manifest does not list,
/// sorted, each once.
pub fn extra(manifest: &Manifest, present: &[String]) -> Vec<String> {
    let mut extra: Vec<String> = present
        .iter()
        .filter(|p| !manifest.entries.contains_key(*p))
        .cloned()
        .collect();
    extra.sort();
    extra.dedup();
    extra
}

#[cfg(test)]
mod tests {

    #![allow(clippy::unwrap_used)]
    use super::*;

    const A: &str = "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb";
    const B: &str = "3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d";

    /// Parses `text`; `expected` is `path=digest-prefix` entries joined by `, `, or the error.
    fn check(text: &str, expected: &str) {
        let got = match Manifest::parse(text.as_bytes()) {
            Ok(m) => m
                .entries
                .iter()
                .map(|(p, d)| format!("{}={}", p.escape_debug(), &d[..4]))
                .collect::<Vec<_>>()
                .join(", "),
            Err(e) => e.to_string(),
        };
        assert_eq!(got, expected, "parsing {text:?}");
    }

    #[test]
    fn parse_table() {
        check("", "");
        check(&format!("{A}  a\n"), "a=ca97");
        check(&format!("{A} *a\n"), "a=ca97");
        check(&format!("{A}  a"), "a=ca97");
        check(&format!("{A}  a\r\n"), "a=ca97");
        check(&format!("{}  a\n", A.to_uppercase()), "a=ca97");
        check(&format!("{A}  b\n\n{B}  a\n"), "a=3e23, b=ca97");
        check(&format!("{A}  ./d//e/./f\n"), "d/e/f=ca97");
        check(&format!("{A}  with space \n"), "with space =ca97");
        check(&format!("\\{A}  back\\\\slash\n"), "back\\\\slash=ca97");
        check(&format!("\\{A}  nl\\nx\n"), "nl\\nx=ca97");
        check(&format!("\\{A}  cr\\rx\n"), "cr\\rx=ca97");
        check(&format!("{A}  literal\\n\n"), "literal\\\\n=ca97");
    }

    #[test]
    fn parse_errors_name_the_line() {
        check(
            &format!("{A}  a\nxyz  b\n"),
            "manifest line 2: expected 64 hex digits, found 'xyz'",
        );
        check(
            &format!("{A}  a\n\n\n{}  b\n", &A[..60]),
            &format!("manifest line 4: expected 64 hex digits, found '{}'", &A[..60]),
        );
        check(
            &format!("{A}0  a\n"),
            &format!("manifest line 1: expected 64 hex digits, found '{A}0'"),
        );
        check(
            &format!("{A} a\n"),
            "manifest line 1: expected two spaces or ' *' between the digest and the path",
        );
        check(&format!("{A}  \n"), "manifest line 1: no path after the digest");
        check(
            &format!("{A}  ../etc/passwd\n"),
            "manifest line 1: path '../etc/passwd' has a '..' component and could escape its root",
        );
        check(
            &format!("{A}  a\n{A}  a/../../b\n"),
            "manifest line 2: path 'a/../../b' has a '..' component and could escape its root",
        );
        check(
            &format!("{A}  /etc/passwd\n"),
            "manifest line 1: path '/etc/passwd' is absolute; manifest paths must be relative to their root",
        );
        check(&format!("{A}  ./.\n"), "manifest line 1: path './.' names no file");
        check(
            &format!("\\{A}  bad\\t\n"),
            "manifest line 1: unknown escape '\\t' in path 'bad\\t'",
        );
        check(
            &format!("\\{A}  bad\\\n"),
            "manifest line 1: path 'bad\\' ends in a lone backslash",
        );
        check(
            &format!("{A}  a\n{B}  ./a\n"),
            "manifest line 2: 'a' is listed twice (first on line 1)",
        );
        check(
            "SHA256 (a) = x\n",
            "manifest line 1: expected 64 hex digits, found 'SHA256'",
        );
    }

    #[test]
    fn non_utf8_line_is_named() {
        let mut text = format!("{A}  a\n{A}  ").into_bytes();
        text.extend_from_slice(&[0xff, b'\n']);
        assert_eq!(
            Manifest::parse(&text).unwrap_err().to_string(),
            "manifest line 2: not UTF-8 text"
        );
    }

    #[test]
    fn render_escapes_exactly_when_gnu_does() {
        for (path, line) in [
            ("plain", format!("{A}  plain\n")),
            ("with space", format!("{A}  with space\n")),
            ("back\\slash", format!("\\{A}  back\\\\slash\n")),
            ("nl\nx", format!("\\{A}  nl\\nx\n")),
            ("cr\rx", format!("\\{A}  cr\\rx\n")),
            ("dir/ünï", format!("{A}  dir/ünï\n")),
        ] {
            assert_eq!(render_line(path, A), line, "{path:?}");
            let m = Manifest::parse(line.as_bytes()).unwrap();
            assert_eq!(m.entries.get(path).map(String::as_str), Some(A), "{path:?} round trip");
        }
    }

    #[test]
    fn render_is_sorted_and_round_trips() {
        let m = Manifest::from_entries([
            ("b/x".to_string(), B.to_string()),
            ("./a".to_string(), A.to_uppercase()),
            ("n\nl".to_string(), A.to_string()),
        ])
        .unwrap();
        let text = m.render();
        assert_eq!(text, format!("{A}  a\n{B}  b/x\n\\{A}  n\\nl\n"));
        assert_eq!(Manifest::parse(text.as_bytes()).unwrap(), m);
        assert!(Manifest::from_entries([("../x".to_string(), A.to_string())]).is_err());
        assert!(Manifest::from_entries([("x".to_string(), "xyz".to_string())]).is_err());
    }

    #[test]
    fn diff_lists_added_removed_changed() {
        let before = Manifest::from_entries([("a", A), ("b", A), ("c", A)].map(|(p, d)| (p.into(), d.into()))).unwrap();
        let after = Manifest::from_entries([("b", A), ("c", B), ("d", A)].map(|(p, d)| (p.into(), d.into()))).unwrap();
        let d = before.diff(&after);
        assert_eq!(d.added, ["d"]);
        assert_eq!(d.removed, ["a"]);
        assert_eq!(d.changed, ["c"]);
        assert!(!d.is_empty());
        assert!(after.diff(&after).is_empty());
    }

    #[test]
    fn judge_reports_each_problem_once() {
        let m = Manifest::from_entries(
            [("ok", A), ("flip", A), ("gone", A), ("locked", A), ("never", A)].map(|(p, d)| (p.into(), d.into())),
        )
        .unwrap();
        let seen: BTreeMap<String, Seen> = [
            ("ok", Seen::Digest(A.into())),
            ("flip", Seen::Digest(B.into())),
            ("gone", Seen::Missing),
            ("locked", Seen::Unreadable("permission denied".into())),
        ]
        .into_iter()
        .map(|(p, s)| (p.to_string(), s))
        .collect();
        let present: Vec<String> = ["ok", "flip", "locked", "new", "new"].map(String::from).to_vec();
        let v = judge(&m, &seen, Some(&present));
        assert_eq!(v.ok, 1);
        assert_eq!(v.mismatched, ["flip"]);
        assert_eq!(v.missing, ["gone", "never"]);
        assert_eq!(v.unreadable, [("locked".to_string(), "permission denied".to_string())]);
        assert_eq!(v.extra, ["new"]);
        assert!(v.failed());
        assert_eq!(
            v.summary(),
            "2 missing ('gone', 'never'), 1 mismatched ('flip'), 1 unreadable ('locked'), 1 extra ('new')"
        );
        let clean = judge(&m, &seen, None);
        assert!(clean.extra.is_empty());
        let all_ok = judge(&Manifest::default(), &BTreeMap::new(), Some(&[]));
        assert!(!all_ok.failed());
        assert_eq!(all_ok.summary(), "all 0 files match");
    }

    #[test]
    fn own_files_are_the_manifest_and_its_companion_under_the_root() {
        let check = |m: &str, root: &str, want: &[&str]| assert_eq!(own_files(Path::new(m), Path::new(root)), want);
        check("/b/SHA256SUMS", "/b", &["SHA256SUMS", "SHA256SUMS.json"]);
        check("/b/meta/sums", "/b", &["meta/sums", "meta/sums.json"]);
        check("/elsewhere/sums", "/b", &[]);
        check("/bb/sums", "/b", &[]);
    }
}
