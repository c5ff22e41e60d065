//! `gather_subset`: which groups of facts to gather, read with Ansible's rules.
//!
//! The groups are [`Group::ALL`]: `cpu`, `load`, `memory`, `mounts`, `network`, `uptime`,
//! `kernel`, `systemd`. Two special names stand for sets of groups: `all` (every group) and
//! `min` ([`Group::MIN`]: `kernel`, `uptime`, `systemd`, the cheap groups that say what the
//! host is; like Ansible's own `min`, which holds the platform, distribution and service
//! manager). Any name may be negated with a leading `!`.
//!
//! The rules are those of Ansible's `get_collector_names`, so a `gather_subset` written for
//! `setup` means the same here:
//!
//! 1. The result starts from `min`; an empty list means `['all']`.
//! 2. `all` and plain names add groups; `min` adds the `min` groups.
//! 3. `!name` excludes that group, `!min` excludes the `min` groups, and `!all` excludes
//!    every group *outside* `min`.
//! 4. Exclusions beat additions made by `all` and `min`, but a group named explicitly (a
//!    plain name) is always gathered. Order does not matter.
//!
//! So `['all', '!mounts']` is every group but `mounts`; `['!all']` is `min`;
//! `['!all', 'memory']` is `min` plus `memory`; `['!all', '!min', 'memory']` is `memory`
//! alone; `['!all', '!min']` is nothing. Note, as in Ansible, that a list of exclusions
//! alone does not start from `all`: `['!mounts']` is `min` (which never held `mounts`);
//! write `['all', '!mounts']`.
//!
//! One deliberate difference: Ansible ignores an unknown name after `!`; here every unknown
//! name is an error, so a typo in an exclusion cannot silently gather what it meant to skip.

use serde::Serialize;
use std::fmt;

/// One group of facts, gathered (or not) as a whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Group {
    Cpu,
    Load,
    Memory,
    Mounts,
    Network,
    Uptime,
    Kernel,
    Systemd,
}

impl Group {
    /// Every group, in the order facts are reported.
    pub const ALL: [Group; 8] = [
        Group::Cpu,
        Group::Load,
        Group::Memory,
        Group::Mounts,
        Group::Network,
        Group::Uptime,
        Group::Kernel,
        Group::Systemd,
    ];

    /// The `min` subset: gathered unless excluded by name or by `!min`.
    pub const MIN: [Group; 3] = [Group::Uptime, Group::Kernel, Group::Systemd];

    /// The name used in `gather_subset` and as the key in the facts.
    pub fn name(self) -> &'static str {
        match self {
            Group::Cpu => "cpu",
            Group::Load => "load",
            Group::Memory => "memory",
            Group::Mounts => "mounts",
            Group::Network => "network",
            Group::Uptime => "uptime",
            Group::Kernel => "kernel",
            Group::Systemd => "systemd",
        }
    }

    /// The group called `name` (exact, lowercase), if any.
    pub fn from_name(name: &str) -> Option<Group> {
        Group::ALL.into_iter().find(|g| g.name() == name)
    }

    fn bit(self) -> u16 {
        1 << (self as u16)
    }
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A set of groups: the result of [`parse`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Subset {
    bits: u16,
}

impl Subset {
    /// No group at all (`['!all', '!min']`).
    pub fn empty() -> Subset {
        Subset { bits: 0 }
    }

    /// Every group (`['all']`, the default).
    pub fn all() -> Subset {
        Group::ALL.into_iter().collect()
    }

    /// The `min` groups (`['!all']`).
    pub fn min() -> Subset {
        Group::MIN.into_iter().collect()
    }

    /// Whether `group` is to be gathered.
    pub fn contains(&self, group: Group) -> bool {
        self.bits & group.bit() != 0
    }

    /// Whether no group is to be gathered.
    pub fn is_empty(&self) -> bool {
        self.bits == 0
    }

    /// The groups in the set, in [`Group::ALL`] order.
    pub fn groups(&self) -> impl Iterator<Item = Group> + '_ {
        Group::ALL.into_iter().filter(|g| self.contains(*g))
    }

    fn union(self, other: Subset) -> Subset {
        Subset {
            bits: self.bits | other.bits,
        }
    }

    fn minus(self, other: Subset) -> Subset {
        Subset {
            bits: self.bits & !other.bits,
        }
    }
}

impl FromIterator<Group> for Subset {
    fn from_iter<I: IntoIterator<Item = Group>>(iter: I) -> Subset {
        Subset {
            bits: iter.into_iter().fold(0, |bits, g| bits | g.bit()),
        }
    }
}

/// A `gather_subset` item that names no group.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubsetError {
    /// The item as given (trimmed), with its `!` if it had one.
    pub item: String,
    /// The closest valid item, with the same `!`, when one is close enough to be a typo.
    pub suggestion: Option<String>,
}

impl fmt::Display for SubsetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown subset '{}'", self.item)?;
        if let Some(s) = &self.suggestion {
            write!(f, "; did you mean '{s}'?")?;
        }
        write!(
            f,
            " (valid subsets: {}; prefix one with '!' to exclude it)",
            valid_names().join(", ")
        )
    }
}

impl std::error::Error for SubsetError {}

/// Reads a `gather_subset` list with the rules in the module docs above.
pub fn parse(items: &[String]) -> Result<Subset, SubsetError> {
    if items.is_empty() {
        return Ok(Subset::all());
    }
    let mut added = Subset::min();
    let mut excluded = Subset::empty();
    let mut explicit = Subset::empty();
    for raw in items {
        let item = raw.trim();
        let (negated, name) = match item.strip_prefix('!') {
            Some(rest) => (true, rest.trim_start()),
            None => (false, item),
        };
        match (negated, name) {
            (false, "all") => added = added.union(Subset::all()),
            (true, "all") => excluded = excluded.union(Subset::all().minus(Subset::min())),
            (false, "min") => added = added.union(Subset::min()),
            (true, "min") => excluded = excluded.union(Subset::min()),
            _ => {
                let group = Group::from_name(name).ok_or_else(|| unknown(item, negated, name))?;
                let one = Subset::from_iter([group]);
                if negated {
                    excluded = excluded.union(one);
                } else {
                    added = added.union(one);
                    explicit = explicit.union(one);
                }
            }
        }
    }
    Ok(added.minus(excluded.minus(explicit)))
}

fn valid_names() -> Vec<&'static str> {
    ["all", "min"]
        .into_iter()
        .chain(Group::ALL.into_iter().map(Group::name))
        .collect()
}

fn unknown(item: &str, negated: bool, name: &str) -> SubsetError {
    let suggestion = valid_names()
        .into_iter()
        .map(|n| (crate::spec::edit_distance(name, n), n))
        .filter(|(d, n)| *d > 0 && *d <= 2.max(n.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, n)| if negated { format!("!{n}") } else { n.to_string() });
    SubsetError {
        item: item.to_string(),
        suggestion,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `expected` is the gathered groups in report order, space-separated, or the error.
    fn check(input: &[&str], expected: &str) {
        let items: Vec<String> = input.iter().map(|s| s.to_string()).collect();
        let got = match parse(&items) {
            Ok(subset) => subset.groups().map(Group::name).collect::<Vec<_>>().join(" "),
            Err(e) => e.to_string(),
        };
        assert_eq!(got, expected, "gather_subset {input:?}");
    }

    const EVERY: &str = "cpu load memory mounts network uptime kernel systemd";
    const VALID: &str = "(valid subsets: all, min, cpu, load, memory, mounts, network, uptime, kernel, \
                         systemd; prefix one with '!' to exclude it)";

    #[test]
    fn all_min_and_defaults() {
        check(&[], EVERY);
        check(&["all"], EVERY);
        check(&["min"], "uptime kernel systemd");
        check(&["!all"], "uptime kernel systemd");
        check(&["!all", "!min"], "");
        check(&["!min"], "");
        check(&["all", "!min"], "cpu load memory mounts network");
        check(&["all", "!all"], "uptime kernel systemd");
    }

    #[test]
    fn names_add_to_min() {
        check(&["memory"], "memory uptime kernel systemd");
        check(&["!all", "memory"], "memory uptime kernel systemd");
        check(&["!all", "!min", "memory"], "memory");
        check(&["!all", "!min", "memory", "kernel"], "memory kernel");
        check(&[" memory ", "! kernel"], "memory uptime systemd");
    }

    #[test]
    fn exclusions() {
        check(&["all", "!mounts"], "cpu load memory network uptime kernel systemd");
        check(&["all", "!mounts", "!network"], "cpu load memory uptime kernel systemd");
        check(&["all", "!systemd"], "cpu load memory mounts network uptime kernel");
        // As in Ansible, exclusions alone start from `min`, not from `all`.
        check(&["!mounts"], "uptime kernel systemd");
        check(&["!systemd"], "uptime kernel");
    }

    #[test]
    fn explicit_names_beat_exclusions_in_any_order() {
        check(&["memory", "!memory"], "memory uptime kernel systemd");
        check(&["!memory", "memory"], "memory uptime kernel systemd");
        check(&["!min", "kernel"], "kernel");
        check(&["!all", "cpu", "all"], "cpu uptime kernel systemd");
    }

    #[test]
    fn unknown_names_are_errors_with_a_suggestion() {
        check(
            &["memroy"],
            &format!("unknown subset 'memroy'; did you mean 'memory'? {VALID}"),
        );
        check(
            &["all", "!mount"],
            &format!("unknown subset '!mount'; did you mean '!mounts'? {VALID}"),
        );
        check(
            &["Network"],
            &format!("unknown subset 'Network'; did you mean 'network'? {VALID}"),
        );
        check(&["hardware"], &format!("unknown subset 'hardware' {VALID}"));
        check(&[""], &format!("unknown subset '' {VALID}"));
        check(&["!"], &format!("unknown subset '!' {VALID}"));
    }

    #[test]
    fn subset_api() {
        assert!(Subset::all().contains(Group::Mounts));
        assert!(!Subset::min().contains(Group::Mounts));
        assert!(Subset::empty().is_empty());
        assert_eq!(Group::from_name("cpu"), Some(Group::Cpu));
        assert_eq!(Group::from_name("all"), None);
        assert_eq!(
            serde_json::to_string(&Group::Systemd).ok().as_deref(),
            Some("\"systemd\"")
        );
    }
}
