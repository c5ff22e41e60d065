//! The audit trail's records and its hash chain: what a line holds and whether a trail is
//! intact. No I/O: `reliability_os::audit` appends and reads the files.
//!
//! A trail is a sequence of JSON lines, possibly over several files (rotation). Each line is
//! one [`Entry`]: a sequence number `seq` (1, 2, 3... across files), the `time`, and `prev`,
//! the SHA-256 (hex) of the exact bytes of the line before it (without its newline), then
//! the [`Record`] the front end gave. The first line of the trail has `prev` = [`GENESIS`];
//! the first line of a rotated-to file carries the digest of the last line of the file
//! before, so rotation does not break the chain.
//!
//! [`verify`] walks the lines in order and names the first one that is wrong:
//! - a line that is not a complete JSON record (a truncated or hand-edited line);
//! - a `seq` not one more than the line before (a record removed, lines reordered);
//! - a `prev` that is not the digest of the line before (that line was edited);
//! - a last line that is not the trail's recorded head (the last lines were removed, or the
//!   last line edited): the head (`seq` and digest of the last line) is kept beside the trail.
//!
//! The chain is not keyed: whoever can write the files can rewrite the whole tail and its
//! head consistently. It makes an edit evident, not impossible; copying the head elsewhere
//! (`audit verify` prints it) anchors it.

use crate::timestamp;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// `prev` of the very first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The longest line a record may take, in bytes; a record beyond it is refused before it
/// is written (its free text is bounded by the front ends long before).
pub const MAX_LINE: usize = 64 * 1024;

/// Who acted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    /// The user name of the effective uid (or `uid:<n>` when it has none).
    pub user: String,
    pub uid: u32,
    /// `SUDO_USER`, when the run came through sudo (Ansible's `become` with sudo).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sudo_user: Option<String>,
    /// For Ansible runs, what the controller told the module (the collection's action
    /// plugin sends it; Ansible itself passes none of it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub controller_user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub playbook: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub play: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
}

impl Actor {
    /// The person behind an action, in one word: the controller's user (Ansible runs),
    /// else the sudo user, else the effective user.
    pub fn who(&self) -> String {
        self.controller_user
            .clone()
            .or_else(|| self.sudo_user.clone())
            .unwrap_or_else(|| self.user.clone())
    }
}

/// How an action ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Done, and something changed.
    Changed,
    /// Done; nothing needed changing.
    Unchanged,
    /// Failed (partly or wholly): `details` says what.
    Failed,
}

/// What a front end records of one action.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// `module`, `daemon` or `cli`.
    pub front_end: String,
    /// What was done: `backup_retention.delete`, `maintenance.open`, `maintenance.close`.
    pub action: String,
    /// What it was done to: a path, a service, a window name.
    pub target: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub outcome: Outcome,
    pub actor: Actor,
    /// SHA-256 of the configuration, when this action changed it (a reload).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_digest: Option<String>,
    /// Anything else worth keeping (what was deleted, the window's end).
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub details: Value,
}

/// One line of the trail.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub seq: u64,
    /// RFC 3339, UTC.
    pub time: String,
    pub prev: String,
    #[serde(flatten)]
    pub record: Record,
}

/// The end of a trail: what the next record chains to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    /// `seq` of the last record, 0 for an empty trail.
    pub seq: u64,
    /// Digest of the last line, [`GENESIS`] for an empty trail.
    pub digest: String,
}

impl Head {
    pub fn empty() -> Head {
        Head {
            seq: 0,
            digest: GENESIS.to_string(),
        }
    }
}

/// SHA-256 (hex) of a line's bytes, its newline excluded.
pub fn digest(line: &[u8]) -> String {
    hex_sha256(line.strip_suffix(b"\n").unwrap_or(line))
}

/// A configuration's digest for [`Record::config_digest`]: SHA-256 (hex) of the file's exact
/// bytes, as `sha256sum` prints it.
pub fn config_digest(config: &[u8]) -> String {
    hex_sha256(config)
}

fn hex_sha256(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuditError {
    #[error("cannot encode the audit record: {0}")]
    Encode(String),
    #[error("the audit record takes {len} bytes; at most {MAX_LINE} are allowed")]
    TooLong { len: usize },
}

/// The line (newline included) that follows `head`, and the new head.
pub fn next_line(head: &Head, record: Record, time_ms: u64) -> Result<(Vec<u8>, Head), AuditError> {
    let entry = Entry {
        seq: head.seq + 1,
        time: timestamp::rfc3339(time_ms),
        prev: head.digest.clone(),
        record,
    };
    let mut line = serde_json::to_vec(&entry).map_err(|e| AuditError::Encode(e.to_string()))?;
    if line.len() >= MAX_LINE {
        return Err(AuditError::TooLong { len: line.len() });
    }
    let new = Head {
        seq: entry.seq,
        digest: digest(&line),
    };
    line.push(b'\n');
    Ok((line, new))
}

/// One file of a trail, oldest first, with its content.
pub struct TrailFile<'a> {
    pub name: &'a str,
    pub bytes: &'a [u8],
}

/// The first line found wrong.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct BadLine {
    pub file: String,
    /// 1-based.
    pub line: usize,
    pub problem: String,
}

/// What [`verify`] found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub files: usize,
    /// Records checked before the first bad line (all of them when `ok`).
    pub records: u64,
    /// The head of the intact part: the last good record's `seq` and digest.
    pub head: Head,
    pub first_bad: Option<BadLine>,
}

/// Walk the trail in order; `recorded_head` is the head kept beside it (`None` when there
/// is none: an empty trail, or a trail written before heads were kept).
pub fn verify(files: &[TrailFile<'_>], recorded_head: Option<&Head>) -> VerifyReport {
    let mut v = Verifier::default();
    for f in files {
        if !v.file(f.name, f.bytes) {
            break;
        }
    }
    v.finish(recorded_head)
}

/// [`verify`] one file at a time, so a reader holds one file in memory, not the trail.
#[derive(Debug, Default)]
pub struct Verifier {
    head: Option<Head>,
    records: u64,
    files: usize,
    /// Where the last good line is, to name it when the next one says it was edited.
    last_at: Option<(String, usize)>,
    bad: Option<BadLine>,
}

impl Verifier {
    /// Check the next file of the trail; `false` once a bad line is found (the files after
    /// it need not be read).
    pub fn file(&mut self, name: &str, bytes: &[u8]) -> bool {
        if self.bad.is_some() {
            return false;
        }
        self.files += 1;
        if bytes.is_empty() {
            return true;
        }
        let complete = bytes.ends_with(b"\n");
        let lines: Vec<&[u8]> = bytes
            .strip_suffix(b"\n")
            .unwrap_or(bytes)
            .split(|b| *b == b'\n')
            .collect();
        for (i, line) in lines.iter().enumerate() {
            if let Err((at, problem)) = self.line(name, i + 1, line, i + 1 == lines.len() && !complete) {
                self.bad = Some(BadLine {
                    file: at.0,
                    line: at.1,
                    problem,
                });
                return false;
            }
        }
        true
    }

    /// One line; on a problem, where it is (file, line) and what.
    fn line(&mut self, name: &str, n: usize, line: &[u8], torn: bool) -> Result<(), ((String, usize), String)> {
        let here = || (name.to_string(), n);
        if torn {
            return Err((here(), "the line has no end: a truncated record".into()));
        }
        let entry: Entry = serde_json::from_slice(line).map_err(|e| (here(), format!("not an audit record: {e}")))?;
        let head = self.head.get_or_insert_with(Head::empty);
        if entry.seq != head.seq + 1 {
            let problem = if entry.seq > head.seq + 1 {
                format!(
                    "seq {} follows seq {}: record(s) {} removed",
                    entry.seq,
                    head.seq,
                    missing(head.seq + 1, entry.seq - 1)
                )
            } else {
                format!(
                    "seq {} follows seq {}: lines reordered or repeated",
                    entry.seq, head.seq
                )
            };
            return Err((here(), problem));
        }
        if entry.prev != head.digest {
            // The line before no longer hashes to what this one recorded: that line was
            // edited (or this one's prev was). It is not part of the intact trail.
            self.records = self.records.saturating_sub(1);
            let at = self.last_at.clone().unwrap_or_else(here);
            return Err((
                at,
                format!(
                    "the record (seq {}) does not hash to the digest the next record keeps of it: edited",
                    head.seq
                ),
            ));
        }
        *head = Head {
            seq: entry.seq,
            digest: digest(line),
        };
        self.records += 1;
        self.last_at = Some(here());
        Ok(())
    }

    /// The report, the trail's end compared with `recorded_head`.
    pub fn finish(mut self, recorded_head: Option<&Head>) -> VerifyReport {
        let head = self.head.take().unwrap_or_else(Head::empty);
        if self.bad.is_none() {
            if let Some(recorded) = recorded_head.filter(|r| **r != head) {
                let problem = if recorded.seq > head.seq {
                    format!(
                        "the trail ends at seq {} but its head says seq {}: the last record(s) removed",
                        head.seq, recorded.seq
                    )
                } else if recorded.seq == head.seq {
                    format!(
                        "the last record (seq {}) does not hash to the trail's head: edited",
                        head.seq
                    )
                } else {
                    format!(
                        "the trail runs past its head (seq {}): lines added after it",
                        recorded.seq
                    )
                };
                let (file, line) = self.last_at.clone().unwrap_or_default();
                self.records = self.records.saturating_sub(1);
                self.bad = Some(BadLine { file, line, problem });
            }
        }
        VerifyReport {
            ok: self.bad.is_none(),
            files: self.files,
            records: self.records,
            head,
            first_bad: self.bad,
        }
    }
}

fn missing(from: u64, to: u64) -> String {
    if from == to {
        from.to_string()
    } else {
        format!("{from}-{to}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn record(n: u64) -> Record {
        Record {
            front_end: "module".into(),
            action: "maintenance.open".into(),
            target: format!("w{n}"),
            reason: Some("kernel update".into()),
            outcome: Outcome::Changed,
            actor: Actor {
                user: "root".into(),
                uid: 0,
                sudo_user: Some("alice".into()),
                ..Actor::default()
            },
            config_digest: None,
            details: json!({"end": "2026-12-04T16:00:00.000Z"}),
        }
    }

    /// A trail of `n` records split into files of `per_file` lines; the head.
    fn trail(n: u64, per_file: usize) -> (Vec<(String, Vec<u8>)>, Head) {
        let mut head = Head::empty();
        let mut files: Vec<(String, Vec<u8>)> = Vec::new();
        for i in 1..=n {
            let (line, h) = next_line(&head, record(i), 1_800_000_000_000 + i).expect("line");
            head = h;
            let fresh = files
                .last()
                .is_none_or(|(_, b)| b.iter().filter(|c| **c == b'\n').count() >= per_file);
            if fresh {
                files.push((format!("f{}", files.len() + 1), Vec::new()));
            }
            if let Some((_, bytes)) = files.last_mut() {
                bytes.extend_from_slice(&line);
            }
        }
        (files, head)
    }

    fn check(files: &[(String, Vec<u8>)], head: Option<&Head>) -> VerifyReport {
        let views: Vec<TrailFile<'_>> = files.iter().map(|(n, b)| TrailFile { name: n, bytes: b }).collect();
        verify(&views, head)
    }

    fn lines(bytes: &[u8]) -> Vec<Vec<u8>> {
        bytes.split_inclusive(|b| *b == b'\n').map(<[u8]>::to_vec).collect()
    }

    fn first_bad(r: &VerifyReport) -> (String, usize) {
        let b = r.first_bad.as_ref().expect("a bad line");
        (b.file.clone(), b.line)
    }

    #[test]
    fn an_intact_trail_across_files_verifies() {
        let (files, head) = trail(7, 3);
        assert_eq!(files.len(), 3);
        let r = check(&files, Some(&head));
        assert!(r.ok, "{r:?}");
        assert_eq!((r.records, r.head.seq, r.files), (7, 7, 3));
        // A rotated-to file's first record chains to the last line of the file before.
        let first_of_f2: Entry = serde_json::from_slice(&lines(&files[1].1)[0]).expect("entry");
        assert_eq!(first_of_f2.prev, digest(&lines(&files[0].1)[2]));
        assert!(check(&[], Some(&Head::empty())).ok);
    }

    #[test]
    fn each_kind_of_tampering_is_named() {
        let (files, head) = trail(6, 3);
        let mutate = |f: usize, change: &dyn Fn(&mut Vec<Vec<u8>>)| {
            let mut files = files.clone();
            let mut ls = lines(&files[f].1);
            change(&mut ls);
            files[f].1 = ls.concat();
            files
        };
        let edit = |ls: &mut Vec<Vec<u8>>, i: usize| {
            let text = String::from_utf8(ls[i].clone())
                .expect("utf8")
                .replace("kernel update", "kernel updatE");
            ls[i] = text.into_bytes();
        };
        type Case<'a> = (&'a str, Vec<(String, Vec<u8>)>, (&'a str, usize), &'a str);
        let cases: Vec<Case<'_>> = vec![
            ("edited middle", mutate(0, &|ls| edit(ls, 1)), ("f1", 2), "edited"),
            (
                "edited last of a file",
                mutate(0, &|ls| edit(ls, 2)),
                ("f1", 3),
                "edited",
            ),
            (
                "edited last of the trail",
                mutate(1, &|ls| edit(ls, 2)),
                ("f2", 3),
                "edited",
            ),
            (
                "removed",
                mutate(0, &|ls| {
                    ls.remove(1);
                }),
                ("f1", 2),
                "record(s) 2 removed",
            ),
            (
                "removed first of f2",
                mutate(1, &|ls| {
                    ls.remove(0);
                }),
                ("f2", 1),
                "record(s) 4 removed",
            ),
            (
                "reordered",
                mutate(1, &|ls| ls.swap(0, 1)),
                ("f2", 1),
                "seq 5 follows seq 3",
            ),
            (
                "truncated",
                mutate(1, &|ls| {
                    let l = ls.len() - 1;
                    ls[l].truncate(20);
                }),
                ("f2", 3),
                "truncated",
            ),
            (
                "last lines removed",
                mutate(1, &|ls| {
                    ls.truncate(1);
                }),
                ("f2", 1),
                "seq 4 but its head says seq 6",
            ),
            (
                "a blank line inserted",
                mutate(0, &|ls| ls.insert(1, b"\n".to_vec())),
                ("f1", 2),
                "not an audit record",
            ),
        ];
        for (name, files, (file, line), says) in cases {
            let r = check(&files, Some(&head));
            assert!(!r.ok, "{name}");
            assert_eq!(first_bad(&r), (file.to_string(), line), "{name}: {r:?}");
            let problem = &r.first_bad.as_ref().expect("bad").problem;
            assert!(problem.contains(says), "{name}: {problem}");
        }
        // A whole rotated file removed: the next file's first record names the gap.
        let gone = vec![files[1].clone()];
        assert_eq!(first_bad(&check(&gone, Some(&head))), ("f2".into(), 1));
    }

    #[test]
    fn digests() {
        // `printf 'a: 1\n' | sha256sum`
        let config = config_digest(b"a: 1\n");
        assert_eq!(
            config,
            "37b128c59f1f5097f73f82691cb519f1f568667faab5ced1b4ab979d36837eae"
        );
        assert_ne!(config, digest(b"a: 1\n"), "a line's digest leaves its newline out");
        assert_eq!(digest(b"a: 1\n"), digest(b"a: 1"));
        assert_eq!(
            digest(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn a_record_too_long_is_refused() {
        let mut r = record(1);
        r.details = json!("x".repeat(MAX_LINE));
        assert!(matches!(
            next_line(&Head::empty(), r, 0),
            Err(AuditError::TooLong { .. })
        ));
    }
}
