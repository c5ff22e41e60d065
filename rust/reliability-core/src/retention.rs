//! Backup retention: which backups to keep and which to delete, and why.
//!
//! Told the backups (a name, a time, whether it is the one that last verified good), a
//! [`Policy`] and the time now, [`plan`] decides for each backup, newest first, to keep it
//! or delete it, with one reason a person can read. Nothing here lists or deletes a file:
//! the OS layer does, and the clock is a parameter, so every rule is tested table-style.
//!
//! The rules, in the order a backup is looked at:
//! 1. The newest backup marked good (the newest of several, if the caller marks more) is
//!    always kept: "last verified good". Age and count never delete the backup a restore
//!    would fall back on.
//! 2. With [`Policy::require_good`] and no backup marked good, nothing is deleted: "no backup
//!    is known good". Deleting on age alone while no copy is known to restore could leave
//!    only broken backups; the caller must verify one first, or say it does not care.
//! 3. `keep_last` keeps the newest K ("within newest K"), `keep_days` keeps every backup
//!    younger than N days ("younger than N days"), and `min_keep` keeps the newest M whatever
//!    the other two say ("within newest M (min_keep)"): a floor for when `keep_days` alone
//!    would empty the directory after backups stopped. A backup is deleted only when every
//!    policy given lets it go, as restic, borg and rsnapshot do ("keep if either keeps"):
//!    "older than 14 days and beyond newest 7". A policy not given keeps nothing by itself;
//!    with neither given, every backup is kept ("no retention policy given").
//!
//! What may never be taken for a backup, whatever the pattern says ([`system_dir`],
//! [`own_file`], [`holds_state`]): a system directory as the backup directory (`/`, `/etc`,
//! `/usr`, ...; the caller resolves the path first, so `//etc/./` and links to `/etc` are
//! `/etc`), unless the caller allows it; the files this collection keeps beside backups
//! (manifests and their `.json` companions, lock files); and the state directory, or an
//! entry holding it. The caller refuses the whole run when one matches, before deleting
//! anything: a pattern that matches them is too wide, and counting them as backups would
//! skew every count.
//!
//! Ages: a backup is "younger than N days" when `now - time < N * 86400 s`; a time in the
//! future counts as age 0. Ties in time are ordered by name, so the plan does not depend on
//! the order the directory listed them.

use serde::Serialize;
use std::cmp::Reverse;
use std::path::Path;

/// Directories that hold the system, not backups: refused as the backup directory unless
/// the caller allows it. Exactly these (and every top-level `/lib*`), not what is below
/// them: `/var/backups/db` is a backup directory, `/var` is not.
pub const SYSTEM_DIRS: &[&str] = &[
    "/",
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/home",
    "/media",
    "/mnt",
    "/opt",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/srv",
    "/sys",
    "/tmp",
    "/usr",
    "/usr/bin",
    "/usr/include",
    "/usr/lib",
    "/usr/local",
    "/usr/sbin",
    "/usr/share",
    "/usr/src",
    "/var",
    "/var/cache",
    "/var/lib",
    "/var/log",
    "/var/mail",
    "/var/opt",
    "/var/spool",
    "/var/tmp",
];

/// True when `resolved` (absolute, links resolved, no `.` or `..`) is a system directory.
pub fn system_dir(resolved: &Path) -> bool {
    if SYSTEM_DIRS.iter().any(|d| resolved == Path::new(d)) {
        return true;
    }
    // `/lib`, `/lib32`, `/lib64`, `/libx32`, ...
    let mut parts = resolved.components().skip(1);
    match (parts.next(), parts.next()) {
        (Some(first), None) => first.as_os_str().to_string_lossy().starts_with("lib"),
        _ => false,
    }
}

/// Why an entry named `name` is one of the files this collection keeps beside backups,
/// `None` when it is not: a manifest (`SHA256SUMS`, `*.sha256`, as `backup_manifest`
/// writes and `backup_verify` reads them), a manifest's `.json` companion, or a lock file
/// (`*.lock`, as the state store keeps them).
pub fn own_file(name: &str) -> Option<&'static str> {
    let manifest = |n: &str| n == "SHA256SUMS" || (n.ends_with(".sha256") && n.len() > ".sha256".len());
    if manifest(name) {
        Some("a checksum manifest")
    } else if name.strip_suffix(".json").is_some_and(manifest) {
        Some("a checksum manifest's .json companion")
    } else if name.ends_with(".lock") {
        Some("a lock file")
    } else {
        None
    }
}

/// True when deleting `entry` would delete state: it is the state directory, holds it, or
/// is inside it. Both paths resolved.
pub fn holds_state(entry: &Path, state_dir: &Path) -> bool {
    state_dir.starts_with(entry) || entry.starts_with(state_dir)
}

const DAY_MS: u64 = 86_400_000;

/// One backup as the caller found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backup {
    pub name: String,
    /// Unix milliseconds (the OS layer's modification time).
    pub time_ms: u64,
    /// The backup that last verified good (or holds it).
    pub good: bool,
}

/// What to keep.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Policy {
    /// Keep backups younger than this many days.
    pub keep_days: Option<u64>,
    /// Keep the newest this many.
    pub keep_last: Option<usize>,
    /// Keep at least the newest this many, whatever the other policies say.
    pub min_keep: usize,
    /// Delete nothing while no backup is marked good.
    pub require_good: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Keep,
    Delete,
}

/// The verdict on one backup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub name: String,
    pub time_ms: u64,
    pub action: Action,
    pub reason: String,
}

/// Every backup's verdict, newest first.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub decisions: Vec<Decision>,
    /// The name of the protected backup, if one is marked good.
    pub protected: Option<String>,
}

impl Plan {
    pub fn deleted(&self) -> impl Iterator<Item = &Decision> {
        self.decisions.iter().filter(|d| d.action == Action::Delete)
    }
    pub fn kept(&self) -> impl Iterator<Item = &Decision> {
        self.decisions.iter().filter(|d| d.action == Action::Keep)
    }
}

/// Decides every backup's fate (see the module docs for the rules).
pub fn plan(backups: &[Backup], policy: &Policy, now_ms: u64) -> Plan {
    let mut sorted: Vec<&Backup> = backups.iter().collect();
    sorted.sort_by_key(|b| (Reverse(b.time_ms), Reverse(b.name.as_str())));
    let protected = sorted.iter().find(|b| b.good).map(|b| b.name.clone());
    let decide = |index: usize, b: &Backup| -> (Action, String) {
        if protected.as_deref() == Some(b.name.as_str()) {
            return (Action::Keep, "last verified good".to_string());
        }
        if policy.require_good && protected.is_none() {
            return (Action::Keep, "no backup is known good (require_good)".to_string());
        }
        if let Some(k) = policy.keep_last.filter(|k| index < *k) {
            return (Action::Keep, format!("within newest {k}"));
        }
        let age = now_ms.saturating_sub(b.time_ms);
        if let Some(d) = policy.keep_days.filter(|d| age < d.saturating_mul(DAY_MS)) {
            return (Action::Keep, format!("younger than {d} {}", plural(d, "day")));
        }
        if index < policy.min_keep {
            return (Action::Keep, format!("within newest {} (min_keep)", policy.min_keep));
        }
        let why: Vec<String> = [
            policy.keep_days.map(|d| format!("older than {d} {}", plural(d, "day"))),
            policy.keep_last.map(|k| format!("beyond newest {k}")),
        ]
        .into_iter()
        .flatten()
        .collect();
        if why.is_empty() {
            return (Action::Keep, "no retention policy given".to_string());
        }
        (Action::Delete, why.join(" and "))
    };
    let decisions = sorted
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let (action, reason) = decide(i, b);
            Decision {
                name: b.name.clone(),
                time_ms: b.time_ms,
                action,
                reason,
            }
        })
        .collect();
    Plan { decisions, protected }
}

fn plural(n: u64, word: &str) -> String {
    if n == 1 {
        word.to_string()
    } else {
        format!("{word}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_dirs() {
        for dir in [
            "/", "/etc", "/usr", "/var", "/home", "/lib", "/lib64", "/libx32", "/tmp", "/var/lib",
        ] {
            assert!(system_dir(Path::new(dir)), "{dir}");
        }
        for dir in [
            "/srv/backup",
            "/var/backups",
            "/var/lib/pg/backups",
            "/library/x",
            "/home/alice",
        ] {
            assert!(!system_dir(Path::new(dir)), "{dir}");
        }
    }

    #[test]
    fn own_files() {
        let check = |name: &str, expected: Option<&str>| assert_eq!(own_file(name), expected, "{name}");
        check("SHA256SUMS", Some("a checksum manifest"));
        check("db-1.tar.zst.sha256", Some("a checksum manifest"));
        check("SHA256SUMS.json", Some("a checksum manifest's .json companion"));
        check("db-1.sha256.json", Some("a checksum manifest's .json companion"));
        check("web.lock", Some("a lock file"));
        for backup in [
            "db-1.tar.zst",
            "2026-11-23",
            "dump.json",
            ".sha256",
            "x.sha256sum",
            "sha256sums",
        ] {
            check(backup, None);
        }
    }

    #[test]
    fn state_is_held() {
        let state = Path::new("/var/lib/reliability_monitor");
        assert!(holds_state(Path::new("/var/lib/reliability_monitor"), state));
        assert!(holds_state(Path::new("/var/lib"), state));
        assert!(holds_state(
            Path::new("/var/lib/reliability_monitor/backup_good"),
            state
        ));
        assert!(!holds_state(Path::new("/var/lib/reliability_monitor2"), state));
        assert!(!holds_state(Path::new("/srv/backup/2026-11-23"), state));
    }

    /// Now: day 100 at noon. Backups are named by their age in days.
    const NOW: u64 = 100 * DAY_MS + DAY_MS / 2;

    fn backups(ages_days: &[u64], good: &[u64]) -> Vec<Backup> {
        ages_days
            .iter()
            .map(|a| Backup {
                name: format!("b{a:02}"),
                time_ms: NOW - a * DAY_MS,
                good: good.contains(a),
            })
            .collect()
    }

    fn policy(keep_days: Option<u64>, keep_last: Option<usize>, min_keep: usize, require_good: bool) -> Policy {
        Policy {
            keep_days,
            keep_last,
            min_keep,
            require_good,
        }
    }

    /// `expected`: one `name: keep|delete (reason)` per backup, newest first.
    fn check(ages: &[u64], good: &[u64], policy: Policy, expected: &[&str]) {
        let plan = plan(&backups(ages, good), &policy, NOW);
        let got: Vec<String> = plan
            .decisions
            .iter()
            .map(|d| {
                let action = match d.action {
                    Action::Keep => "keep",
                    Action::Delete => "delete",
                };
                format!("{}: {action} ({})", d.name, d.reason)
            })
            .collect();
        assert_eq!(got, expected, "{policy:?}");
    }

    #[test]
    fn keep_last_alone() {
        check(
            &[0, 1, 2, 3, 4],
            &[],
            policy(None, Some(2), 0, false),
            &[
                "b00: keep (within newest 2)",
                "b01: keep (within newest 2)",
                "b02: delete (beyond newest 2)",
                "b03: delete (beyond newest 2)",
                "b04: delete (beyond newest 2)",
            ],
        );
    }

    #[test]
    fn keep_days_alone_and_the_day_boundary() {
        // Age exactly 3 days is not younger than 3 days.
        check(
            &[0, 2, 3, 10],
            &[],
            policy(Some(3), None, 0, false),
            &[
                "b00: keep (younger than 3 days)",
                "b02: keep (younger than 3 days)",
                "b03: delete (older than 3 days)",
                "b10: delete (older than 3 days)",
            ],
        );
        check(
            &[0, 1],
            &[],
            policy(Some(1), None, 0, false),
            &["b00: keep (younger than 1 day)", "b01: delete (older than 1 day)"],
        );
    }

    #[test]
    fn both_policies_keep_if_either_keeps() {
        // The newest 2 by count, everything under 14 days by age; deleted only beyond both.
        check(
            &[1, 5, 13, 14, 20, 30],
            &[],
            policy(Some(14), Some(2), 0, false),
            &[
                "b01: keep (within newest 2)",
                "b05: keep (within newest 2)",
                "b13: keep (younger than 14 days)",
                "b14: delete (older than 14 days and beyond newest 2)",
                "b20: delete (older than 14 days and beyond newest 2)",
                "b30: delete (older than 14 days and beyond newest 2)",
            ],
        );
        // Backups stopped long ago: the count keeps the last 2 although they are old.
        check(
            &[40, 41, 42],
            &[],
            policy(Some(7), Some(2), 0, false),
            &[
                "b40: keep (within newest 2)",
                "b41: keep (within newest 2)",
                "b42: delete (older than 7 days and beyond newest 2)",
            ],
        );
    }

    #[test]
    fn the_newest_good_backup_is_kept_whatever_its_age() {
        check(
            &[0, 1, 2, 8, 9],
            &[8, 9],
            policy(Some(3), Some(1), 0, true),
            &[
                "b00: keep (within newest 1)",
                "b01: keep (younger than 3 days)",
                "b02: keep (younger than 3 days)",
                "b08: keep (last verified good)",
                "b09: delete (older than 3 days and beyond newest 1)",
            ],
        );
        // keep_last 0 and keep_days 0 would delete everything: the good one stays.
        check(
            &[0, 5],
            &[5],
            policy(Some(0), Some(0), 0, false),
            &[
                "b00: delete (older than 0 days and beyond newest 0)",
                "b05: keep (last verified good)",
            ],
        );
    }

    #[test]
    fn without_a_good_backup_require_good_deletes_nothing() {
        check(
            &[0, 30],
            &[],
            policy(Some(7), None, 0, true),
            &[
                "b00: keep (no backup is known good (require_good))",
                "b30: keep (no backup is known good (require_good))",
            ],
        );
        check(
            &[0, 30],
            &[],
            policy(Some(7), None, 0, false),
            &["b00: keep (younger than 7 days)", "b30: delete (older than 7 days)"],
        );
    }

    #[test]
    fn min_keep_is_a_floor() {
        check(
            &[20, 21, 22, 23],
            &[],
            policy(Some(7), None, 2, false),
            &[
                "b20: keep (within newest 2 (min_keep))",
                "b21: keep (within newest 2 (min_keep))",
                "b22: delete (older than 7 days)",
                "b23: delete (older than 7 days)",
            ],
        );
        // The protected backup counts among the newest M.
        check(
            &[20, 21, 22],
            &[20],
            policy(Some(7), None, 1, true),
            &[
                "b20: keep (last verified good)",
                "b21: delete (older than 7 days)",
                "b22: delete (older than 7 days)",
            ],
        );
    }

    #[test]
    fn no_policy_keeps_everything_and_order_is_stable() {
        check(
            &[3, 1],
            &[],
            policy(None, None, 0, false),
            &[
                "b01: keep (no retention policy given)",
                "b03: keep (no retention policy given)",
            ],
        );
        // Same time: ordered by name, newest-first meaning the greater name first.
        let same = vec![
            Backup {
                name: "a".into(),
                time_ms: NOW,
                good: false,
            },
            Backup {
                name: "b".into(),
                time_ms: NOW,
                good: false,
            },
        ];
        let p = plan(&same, &policy(None, Some(1), 0, false), NOW);
        let names: Vec<(&str, Action)> = p.decisions.iter().map(|d| (d.name.as_str(), d.action)).collect();
        assert_eq!(names, [("b", Action::Keep), ("a", Action::Delete)]);
        assert_eq!(plan(&[], &policy(Some(1), Some(1), 1, true), NOW), Plan::default());
    }

    #[test]
    fn future_times_are_young() {
        let future = vec![Backup {
            name: "f".into(),
            time_ms: NOW + DAY_MS,
            good: false,
        }];
        let p = plan(&future, &policy(Some(1), Some(0), 0, false), NOW);
        assert_eq!(p.decisions[0].action, Action::Keep);
        assert_eq!(p.protected, None);
    }
}
