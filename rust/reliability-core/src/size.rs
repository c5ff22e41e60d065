//! Byte sizes as operators write them (`512M`, `1G`, `1.5GiB`, `4096`), and Nagios ranges
//! whose bounds are sizes (`~:512M`, `@1G:2G`).
//!
//! Memory levels of services and processes are sizes: `memory_critical: 512M` reads better
//! than `536870912`, and it is how systemd's `MemoryMax=` is written. Units are binary, as
//! systemd, `ps` and `free` read them: `K` is 1024 bytes, `M` 1024², and so on; `KB`, `KiB`
//! and `k` all mean the same. A bare number is bytes. Decimals are allowed (`1.5G`) and the
//! result is rounded to a whole byte.
//!
//! A size range is a Nagios range (see [`crate::threshold`]) whose numbers may carry a
//! unit: `512M` alerts above 512 MiB (the short form, `0:536870912`), `1G:` below 1 GiB,
//! `@1G:2G` inside. Sizes are never negative, so no bound may be.

use serde_json::Value;
use std::fmt;

use crate::threshold::{format_number, Range, ThresholdError};

/// The unit letters, each 1024 times the one before.
const UNITS: [char; 7] = ['B', 'K', 'M', 'G', 'T', 'P', 'E'];

/// Why a text is not a size.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SizeError {
    #[error("invalid size '{text}': {reason}")]
    Invalid { text: String, reason: String },
    /// A range whose text is fine but whose bounds are not (start after end).
    #[error("{0}")]
    Range(ThresholdError),
    /// A JSON value that is neither a number nor a string.
    #[error("invalid size {value}: expected a number of bytes or a string such as '512M', '1G', '~:512M' or '@1G:2G'")]
    NotASize { value: String },
}

/// Reads a size (`4096`, `512M`, `1.5 GiB`, `64k`) into bytes.
pub fn parse_size(text: &str) -> Result<u64, SizeError> {
    let invalid = |reason: String| SizeError::Invalid {
        text: text.to_string(),
        reason,
    };
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(invalid("empty (expected e.g. '4096', '512M' or '1G')".into()));
    }
    let split = trimmed
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(trimmed.len());
    let (number, unit) = trimmed.split_at(split);
    let number: f64 = match number.parse() {
        Ok(n) => n,
        Err(_) if number.is_empty() => {
            return Err(invalid(format!("'{trimmed}' does not start with a number")));
        }
        Err(_) => return Err(invalid(format!("'{number}' is not a number"))),
    };
    let scale = unit_scale(unit.trim()).ok_or_else(|| {
        invalid(format!(
            "unknown unit '{}' (use B, K, M, G, T, P or E; binary, so K is 1024 bytes)",
            unit.trim()
        ))
    })?;
    let bytes = (number * scale).round();
    if !bytes.is_finite() || bytes > u64::MAX as f64 {
        return Err(invalid("too large".into()));
    }
    Ok(bytes as u64)
}

/// `K`, `k`, `KB`, `KiB`, `Kib` ... as a power of 1024; `""` and `B` are bytes.
fn unit_scale(unit: &str) -> Option<f64> {
    let upper = unit.to_ascii_uppercase();
    let letter = match upper.as_str() {
        "" | "B" => 'B',
        u => {
            let rest = u.strip_suffix("IB").or_else(|| u.strip_suffix('B')).unwrap_or(u);
            let mut chars = rest.chars();
            match (chars.next(), chars.next()) {
                (Some(c), None) if c != 'B' => c,
                _ => return None,
            }
        }
    };
    let power = UNITS.iter().position(|u| *u == letter)?;
    Some(1024f64.powi(i32::try_from(power).ok()?))
}

/// Reads a Nagios range whose bounds may be sizes (`512M`, `1G:`, `~:2G`, `@1G:2G`).
pub fn parse_size_range(text: &str) -> Result<Range, SizeError> {
    let trimmed = text.trim();
    let (at, body) = match trimmed.strip_prefix('@') {
        Some(rest) => ("@", rest),
        None => ("", trimmed),
    };
    let bound = |part: &str| -> Result<String, SizeError> {
        match part.trim() {
            "" => Ok(String::new()),
            "~" => Ok("~".into()),
            p => parse_size(p).map(|b| b.to_string()).map_err(|e| match e {
                SizeError::Invalid { reason, .. } => SizeError::Invalid {
                    text: text.to_string(),
                    reason,
                },
                other => other,
            }),
        }
    };
    if body.trim().is_empty() {
        return Range::parse(text).map_err(SizeError::Range);
    }
    let canonical = match body.split_once(':') {
        None => format!("{at}{}", bound(body)?),
        Some((start, end)) => format!("{at}{}:{}", bound(start)?, bound(end)?),
    };
    Range::parse(&canonical).map_err(|e| match e {
        // Say it in the words the user wrote.
        ThresholdError::StartAfterEnd { start, end, .. } => SizeError::Invalid {
            text: text.to_string(),
            reason: format!("start {} is greater than end {}", show_bound(&start), show_bound(&end)),
        },
        other => SizeError::Range(other),
    })
}

fn show_bound(bytes: &str) -> String {
    bytes
        .parse::<f64>()
        .map(format_size)
        .unwrap_or_else(|_| bytes.to_string())
}

/// One size level (`memory_warning`, `rss_critical`) from its JSON value: a number of bytes
/// (the short form: alert above it), a size or size-range string, or null/`""` for none.
pub fn size_level(value: Option<&Value>) -> Result<Option<Range>, SizeError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => parse_size_range(s).map(Some),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(f) => Range::from_number(f).map(Some).map_err(SizeError::Range),
            None => Err(SizeError::NotASize { value: n.to_string() }),
        },
        Some(other) => Err(SizeError::NotASize {
            value: other.to_string(),
        }),
    }
}

/// Bytes for people: `512 B`, `1.5 KiB`, `64 MiB`, `2.25 GiB` (at most two decimals).
pub fn format_size(bytes: f64) -> String {
    if !bytes.is_finite() {
        return format!("{bytes} B");
    }
    let mut value = bytes;
    let mut unit = 0;
    while value.abs() >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    let rounded = (value * 100.0).round() / 100.0;
    match unit {
        0 => format!("{} B", format_number(rounded)),
        u => format!("{} {}iB", format_number(rounded), UNITS[u]),
    }
}

/// A size for messages, as [`format_size`] writes it.
pub struct Size(pub u64);

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_size(self.0 as f64))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check_size(text: &str, expected: Result<u64, &str>) {
        let got = parse_size(text).map_err(|e| e.to_string());
        assert_eq!(got, expected.map_err(String::from), "size {text:?}");
    }

    #[test]
    fn sizes_in_binary_units() {
        check_size("4096", Ok(4096));
        check_size("0", Ok(0));
        check_size("512B", Ok(512));
        check_size("1K", Ok(1024));
        check_size("1k", Ok(1024));
        check_size("1KB", Ok(1024));
        check_size("1KiB", Ok(1024));
        check_size("512M", Ok(512 << 20));
        check_size("32M", Ok(32 << 20));
        check_size("1G", Ok(1 << 30));
        check_size("1.5G", Ok(3 << 29));
        check_size(" 2 GiB ", Ok(2 << 30));
        check_size("1T", Ok(1 << 40));
        check_size("1P", Ok(1 << 50));
        check_size("1E", Ok(1 << 60));
        check_size("0.5K", Ok(512));
        check_size("1.4", Ok(1));
    }

    #[test]
    fn bad_sizes_name_the_text() {
        check_size("", Err("invalid size '': empty (expected e.g. '4096', '512M' or '1G')"));
        check_size("M", Err("invalid size 'M': 'M' does not start with a number"));
        check_size("-5M", Err("invalid size '-5M': '-5M' does not start with a number"));
        check_size(
            "12Q",
            Err("invalid size '12Q': unknown unit 'Q' (use B, K, M, G, T, P or E; binary, so K is 1024 bytes)"),
        );
        check_size(
            "12MBB",
            Err("invalid size '12MBB': unknown unit 'MBB' (use B, K, M, G, T, P or E; binary, so K is 1024 bytes)"),
        );
        check_size(
            "1BB",
            Err("invalid size '1BB': unknown unit 'BB' (use B, K, M, G, T, P or E; binary, so K is 1024 bytes)"),
        );
        check_size("1.2.3G", Err("invalid size '1.2.3G': '1.2.3' is not a number"));
        check_size("99999E", Err("invalid size '99999E': too large"));
    }

    fn check_range(text: &str, expected: &str) {
        let got = match parse_size_range(text) {
            Ok(r) => r.to_string(),
            Err(e) => e.to_string(),
        };
        assert_eq!(got, expected, "range {text:?}");
    }

    #[test]
    fn size_ranges_become_byte_ranges() {
        check_range("512M", "536870912");
        check_range("32M", "33554432");
        check_range("1G:", "1073741824:");
        check_range("~:1K", "~:1024");
        check_range("@1K:2K", "@1024:2048");
        check_range("1024", "1024");
        check_range("1K:2K", "1024:2048");
        check_range(":1K", "1024");
    }

    #[test]
    fn bad_size_ranges_name_the_text() {
        check_range("2G:1G", "invalid size '2G:1G': start 2 GiB is greater than end 1 GiB");
        check_range("1G:x", "invalid size '1G:x': 'x' does not start with a number");
        check_range(
            "",
            "invalid range '': empty (expected e.g. '10', '10:', '~:10', '10:20' or '@10:20')",
        );
        check_range(
            "@",
            "invalid range '@': empty (expected e.g. '10', '10:', '~:10', '10:20' or '@10:20')",
        );
    }

    #[test]
    fn levels_from_json() {
        let check = |value: Value, expected: Result<Option<&str>, &str>| {
            let got = size_level(Some(&value))
                .map(|r| r.map(|r| r.to_string()))
                .map_err(|e| e.to_string());
            assert_eq!(
                got,
                expected.map(|o| o.map(String::from)).map_err(String::from),
                "{value}"
            );
        };
        check(json!(1024), Ok(Some("1024")));
        check(json!("1K"), Ok(Some("1024")));
        check(json!("~:512M"), Ok(Some("~:536870912")));
        check(json!(null), Ok(None));
        check(json!(" "), Ok(None));
        check(json!(-1), Err("invalid range '-1': start 0 is greater than end -1"));
        check(
            json!([1]),
            Err("invalid size [1]: expected a number of bytes or a string such as '512M', '1G', '~:512M' or '@1G:2G'"),
        );
        assert_eq!(size_level(None), Ok(None));
    }

    #[test]
    fn sizes_for_people() {
        for (bytes, text) in [
            (0.0, "0 B"),
            (512.0, "512 B"),
            (1024.0, "1 KiB"),
            (1536.0, "1.5 KiB"),
            (64.0 * 1048576.0, "64 MiB"),
            (2.25 * 1073741824.0, "2.25 GiB"),
            (1234567.0, "1.18 MiB"),
        ] {
            assert_eq!(format_size(bytes), text);
        }
        assert_eq!(Size(1 << 20).to_string(), "1 MiB");
    }
}
