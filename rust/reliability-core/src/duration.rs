//! Durations as operators write them (`26h`, `1d`, `90m`, `1w`, `1d12h`, `3600`), and
//! durations for people (`3d 2h`).
//!
//! A recovery point objective or a retention age reads better as `26h` than as `93600`, and
//! that is how systemd timers and cron-minded people write it. A bare number is seconds.
//! Units: `ms`, `s`, `m` (minutes), `h`, `d`, `w`; several may follow one another
//! (`1d12h`, `1h 30m`), each at most once and largest first, so `1h1d` (almost always a
//! typing error) is refused. Decimals are allowed (`1.5h`). Months and years are not
//! units: their length varies, and a backup age must mean the same thing every day.
//! Everything is whole milliseconds.

use std::fmt;

/// The units, largest first, in milliseconds.
const UNITS: [(&str, u64); 6] = [
    ("w", 7 * 86_400_000),
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1000),
    ("ms", 1),
];

/// Why a text is not a duration; names the text.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration '{text}': {reason}")]
pub struct DurationError {
    pub text: String,
    pub reason: String,
}

/// Reads a duration (`26h`, `1d`, `1d12h`, `1h 30m`, `1.5h`, `3600`) into milliseconds.
pub fn parse_duration(text: &str) -> Result<u64, DurationError> {
    let invalid = |reason: String| DurationError {
        text: text.to_string(),
        reason,
    };
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return Err(invalid("empty (expected e.g. '3600', '90m', '26h' or '1d')".into()));
    }
    let mut rest = trimmed;
    let mut total = 0f64;
    // Index into UNITS of the last unit seen: the next one must be smaller.
    let mut last: Option<usize> = None;
    while !rest.is_empty() {
        let split = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(split);
        if number.is_empty() {
            return Err(invalid(format!("'{rest}' does not start with a number")));
        }
        let value: f64 = number
            .parse()
            .map_err(|_| invalid(format!("'{number}' is not a number")))?;
        let after = after.trim_start();
        let unit_len = after.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let scale = if unit.is_empty() {
            if !after.trim().is_empty() || last.is_some() {
                return Err(invalid(format!("'{number}' has no unit (use ms, s, m, h, d or w)")));
            }
            1000
        } else {
            let lower = unit.to_ascii_lowercase();
            let Some(index) = UNITS.iter().position(|(u, _)| *u == lower) else {
                return Err(invalid(format!("unknown unit '{unit}' (use ms, s, m, h, d or w)")));
            };
            if let Some(prev) = last.filter(|p| *p >= index) {
                return Err(invalid(format!(
                    "'{unit}' after '{}': write each unit once, largest first",
                    UNITS[prev].0
                )));
            }
            last = Some(index);
            UNITS[index].1
        };
        total += value * scale as f64;
        rest = after.trim_start();
    }
    let ms = total.round();
    if !ms.is_finite() || ms > u64::MAX as f64 / 2.0 {
        return Err(invalid("too large".into()));
    }
    Ok(ms as u64)
}

/// A duration for people, its two largest units: `3d 2h`, `26h` is `1d 2h`, `90 s` is
/// `1m 30s`, `0.25 s` is `250ms`. Rounded down: `3d 2h` may be 3d 2h 59m.
pub fn format_duration(ms: u64) -> String {
    // Days are the largest unit shown: `14d` reads better than `2w`.
    let units = &UNITS[1..];
    let Some(first) = units.iter().position(|(_, scale)| ms >= *scale) else {
        return "0s".to_string();
    };
    let (unit, scale) = units[first];
    let mut out = format!("{}{unit}", ms / scale);
    if let Some((next, next_scale)) = units.get(first + 1) {
        let n = ms % scale / next_scale;
        if n > 0 {
            out.push_str(&format!(" {n}{next}"));
        }
    }
    out
}

/// A duration for messages, as [`format_duration`] writes it.
pub struct Duration(pub u64);

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_duration(self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str, expected: Result<u64, &str>) {
        let got = parse_duration(text).map_err(|e| e.to_string());
        assert_eq!(got, expected.map_err(String::from), "duration {text:?}");
    }

    #[test]
    fn durations_in_milliseconds() {
        check("3600", Ok(3_600_000));
        check("0", Ok(0));
        check("1.5", Ok(1500));
        check("90s", Ok(90_000));
        check("250ms", Ok(250));
        check("15m", Ok(900_000));
        check("26h", Ok(93_600_000));
        check("26H", Ok(93_600_000));
        check("1d", Ok(86_400_000));
        check("1w", Ok(604_800_000));
        check("1d12h", Ok(129_600_000));
        check("1h 30m", Ok(5_400_000));
        check(" 1.5h ", Ok(5_400_000));
        check(
            "2d 3h 4m 5s 6ms",
            Ok(2 * 86_400_000 + 3 * 3_600_000 + 4 * 60_000 + 5000 + 6),
        );
    }

    #[test]
    fn bad_durations_name_the_text() {
        check(
            "",
            Err("invalid duration '': empty (expected e.g. '3600', '90m', '26h' or '1d')"),
        );
        check("h", Err("invalid duration 'h': 'h' does not start with a number"));
        check("-1h", Err("invalid duration '-1h': '-1h' does not start with a number"));
        check(
            "3y",
            Err("invalid duration '3y': unknown unit 'y' (use ms, s, m, h, d or w)"),
        );
        check(
            "1mo",
            Err("invalid duration '1mo': unknown unit 'mo' (use ms, s, m, h, d or w)"),
        );
        check(
            "1h1d",
            Err("invalid duration '1h1d': 'd' after 'h': write each unit once, largest first"),
        );
        check(
            "1h1h",
            Err("invalid duration '1h1h': 'h' after 'h': write each unit once, largest first"),
        );
        check(
            "1h 30",
            Err("invalid duration '1h 30': '30' has no unit (use ms, s, m, h, d or w)"),
        );
        check("1..5h", Err("invalid duration '1..5h': '1..5' is not a number"));
        check(
            "1e400w",
            Err("invalid duration '1e400w': unknown unit 'e' (use ms, s, m, h, d or w)"),
        );
        check(
            "99999999999999999w",
            Err("invalid duration '99999999999999999w': too large"),
        );
    }

    #[test]
    fn durations_for_people() {
        for (ms, text) in [
            (0, "0s"),
            (250, "250ms"),
            (1500, "1s 500ms"),
            (90_000, "1m 30s"),
            (3_600_000, "1h"),
            (93_600_000, "1d 2h"),
            (266_400_000, "3d 2h"),
            (266_459_000, "3d 2h"),
            (86_400_000 + 59_000, "1d"),
            (1_209_600_000, "14d"),
        ] {
            assert_eq!(format_duration(ms), text, "{ms}");
        }
        assert_eq!(Duration(93_600_000).to_string(), "1d 2h");
    }
}
