//! scale_resources' arithmetic: read a cgroup limit as `systemctl show` prints it, raise
//! it by a factor, stop at the ceiling. Pure; unit-tested on systemd's own spellings.
//!
//! Decisions:
//! - An unlimited property (`infinity`) has nothing to raise: the step fails, saying so,
//!   rather than inventing a limit.
//! - A property already at its ceiling fails the step too: raising it is no longer a way
//!   out, and the ladder should go on.
//! - The new value is never below the old one and never above the ceiling.

use reliability_core::size::{format_size, parse_size};

/// The properties the step can raise.
pub const PROPERTIES: [&str; 4] = ["MemoryMax", "MemoryHigh", "CPUQuota", "TasksMax"];

/// The `systemctl show` name of a property (`CPUQuota` shows as `CPUQuotaPerSecUSec`).
pub fn shown_as(property: &str) -> &str {
    match property {
        "CPUQuota" => "CPUQuotaPerSecUSec",
        p => p,
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ScaleError {
    Unlimited { property: String },
    AtCeiling { property: String, ceiling: String },
    Unreadable { property: String, value: String },
}

impl std::fmt::Display for ScaleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ScaleError::Unlimited { property } => write!(f, "{property} is unlimited: there is no limit to raise"),
            ScaleError::AtCeiling { property, ceiling } => {
                write!(f, "{property} is already at its ceiling {ceiling}")
            }
            ScaleError::Unreadable { property, value } => {
                write!(f, "cannot read {property}={value} from systemd")
            }
        }
    }
}

/// A quantity of one property: bytes, tasks, or CPU microseconds per second.
fn read_shown(property: &str, shown: &str) -> Result<Option<u64>, ()> {
    let shown = shown.trim();
    if shown == "infinity" || shown.is_empty() {
        return Ok(None);
    }
    match property {
        "CPUQuota" => usec(shown).map(Some).ok_or(()),
        _ => shown.parse::<u64>().map(Some).map_err(|_| ()),
    }
}

/// systemd's timespans as `show` prints them: `500ms`, `1s`, `1.500000s`, `250us`, `2min`.
fn usec(text: &str) -> Option<u64> {
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let scale = match unit {
        "us" => 1.0,
        "ms" => 1e3,
        "s" => 1e6,
        "min" => 60e6,
        _ => return None,
    };
    Some((number * scale).round() as u64)
}

/// Reads a ceiling as the user wrote it (`2G`, `200%`, `4096`).
fn read_ceiling(property: &str, text: &str) -> Result<u64, String> {
    match property {
        "MemoryMax" | "MemoryHigh" => parse_size(text).map_err(|e| e.to_string()),
        "CPUQuota" => text
            .trim()
            .strip_suffix('%')
            .and_then(|n| n.trim().parse::<f64>().ok())
            .filter(|p| *p > 0.0)
            .map(|p| (p * 10_000.0).round() as u64)
            .ok_or_else(|| format!("'{text}' is not a CPU quota such as 150%")),
        "TasksMax" => text
            .trim()
            .parse::<u64>()
            .map_err(|_| format!("'{text}' is not a number of tasks")),
        other => Err(format!(
            "{other} cannot be scaled; use one of {}",
            PROPERTIES.join(", ")
        )),
    }
}

/// Checks a ceiling option.
pub fn parse_ceiling(property: &str, text: &str) -> Result<(), String> {
    read_ceiling(property, text).map(|_| ())
}

/// How the quantity is written to `set-property` and shown to people.
fn render(property: &str, quantity: u64) -> (String, String) {
    match property {
        "CPUQuota" => {
            let percent = quantity as f64 / 10_000.0;
            let text = format!("{}%", reliability_core::threshold::format_number(percent));
            (text.clone(), text)
        }
        "TasksMax" => (quantity.to_string(), quantity.to_string()),
        _ => (quantity.to_string(), format_size(quantity as f64)),
    }
}

/// The raised setting: `(before, value for set-property, after)`, before and after for
/// people. `shown` is what `systemctl show` printed for [`shown_as`]`(property)`.
pub fn scale_value(
    property: &str,
    shown: &str,
    factor: f64,
    ceiling: &str,
) -> Result<(String, String, String), ScaleError> {
    let unreadable = || ScaleError::Unreadable {
        property: property.to_string(),
        value: shown.to_string(),
    };
    let current = read_shown(property, shown)
        .map_err(|()| unreadable())?
        .ok_or_else(|| ScaleError::Unlimited {
            property: property.to_string(),
        })?;
    let limit = read_ceiling(property, ceiling).map_err(|_| unreadable())?;
    if current >= limit {
        return Err(ScaleError::AtCeiling {
            property: property.to_string(),
            ceiling: ceiling.to_string(),
        });
    }
    let raised = ((current as f64 * factor).round() as u64).max(current + 1).min(limit);
    let (_, before) = render(property, current);
    let (setting, after) = render(property, raised);
    Ok((before, setting, after))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raises_by_the_factor_within_the_ceiling() {
        let mib = 1024 * 1024;
        let table: &[(&str, &str, f64, &str, &str)] = &[
            ("MemoryMax", "67108864", 1.5, "1G", &(96 * mib).to_string()),
            ("MemoryMax", "67108864", 100.0, "128M", &(128 * mib).to_string()),
            ("MemoryHigh", "1048576", 2.0, "1G", &(2 * mib).to_string()),
            ("CPUQuota", "500ms", 1.5, "200%", "75%"),
            ("CPUQuota", "1s", 3.0, "200%", "200%"),
            ("CPUQuota", "1.500000s", 1.2, "400%", "180%"),
            ("TasksMax", "100", 1.5, "1000", "150"),
        ];
        for (property, shown, factor, ceiling, setting) in table {
            let (_, got, _) = scale_value(property, shown, *factor, ceiling).unwrap();
            assert_eq!(&got, setting, "{property}={shown} x{factor} <= {ceiling}");
        }
    }

    #[test]
    fn unlimited_at_ceiling_and_garbage_are_named() {
        assert_eq!(
            scale_value("MemoryMax", "infinity", 2.0, "1G").unwrap_err().to_string(),
            "MemoryMax is unlimited: there is no limit to raise"
        );
        assert_eq!(
            scale_value("CPUQuota", "2s", 2.0, "200%").unwrap_err().to_string(),
            "CPUQuota is already at its ceiling 200%"
        );
        assert_eq!(
            scale_value("TasksMax", "lots", 2.0, "10").unwrap_err().to_string(),
            "cannot read TasksMax=lots from systemd"
        );
    }

    #[test]
    fn ceilings_are_checked() {
        assert!(parse_ceiling("MemoryMax", "2G").is_ok());
        assert!(parse_ceiling("CPUQuota", "150%").is_ok());
        assert!(parse_ceiling("CPUQuota", "150")
            .unwrap_err()
            .contains("'150' is not a CPU quota"));
        assert!(parse_ceiling("TasksMax", "x")
            .unwrap_err()
            .contains("'x' is not a number of tasks"));
        assert!(parse_ceiling("IOWeight", "1")
            .unwrap_err()
            .contains("IOWeight cannot be scaled"));
    }
}
