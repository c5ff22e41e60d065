//! Points in time as the core sees them: unix milliseconds, handed in by the caller.
//!
//! The core never reads the clock (an architecture invariant): a breaker, an escalation
//! ladder or an incident record is told what time it is, so every rule about time is tested
//! with plain numbers. This file only turns such numbers into text for people: RFC 3339 in
//! results (`2026-11-23T10:15:00.123Z`), a compact form for file names, and durations.

/// RFC 3339 UTC text of unix milliseconds: `2026-11-23T10:15:00.123Z`.
pub fn rfc3339(ms: u64) -> String {
    let (date, (h, m, s), frac) = split(ms);
    format!("{date}T{h:02}:{m:02}:{s:02}.{frac:03}Z")
}

/// The same instant for file names, without `:` (which some tools read as a host
/// separator): `20261123T101500.123Z`. Sorts as it reads.
pub fn compact(ms: u64) -> String {
    let (date, (h, m, s), frac) = split(ms);
    format!("{}T{h:02}{m:02}{s:02}.{frac:03}Z", date.replace('-', ""))
}

/// A duration for messages: `60 s`, `1.5 s`, `0.25 s`.
pub fn seconds(ms: u64) -> String {
    let (whole, frac) = (ms / 1000, ms % 1000);
    if frac == 0 {
        format!("{whole} s")
    } else {
        let frac = format!("{frac:03}");
        format!("{whole}.{} s", frac.trim_end_matches('0'))
    }
}

fn split(ms: u64) -> (String, (u64, u64, u64), u64) {
    let secs = ms / 1000;
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (y, mo, d) = civil_from_days(days);
    (
        format!("{y:04}-{mo:02}-{d:02}"),
        (rest / 3600, rest % 3600 / 60, rest % 60),
        ms % 1000,
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `civil_from_days`,
/// <https://howardhinnant.github.io/date_algorithms.html>, for days >= 0).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(ms: u64, long: &str, short: &str) {
        assert_eq!(rfc3339(ms), long, "{ms}");
        assert_eq!(compact(ms), short, "{ms}");
    }

    #[test]
    fn instants() {
        check(0, "1970-01-01T00:00:00.000Z", "19700101T000000.000Z");
        // `date -u -d @951782400` = Tue Feb 29 00:00:00 UTC 2000 (a leap day of a /400 year).
        check(951_782_400_000, "2000-02-29T00:00:00.000Z", "20000229T000000.000Z");
        // `date -u -d @1795428900.123`: 2026-11-23 10:15:00.123.
        check(1_795_428_900_123, "2026-11-23T10:15:00.123Z", "20261123T101500.123Z");
        check(4_102_444_799_999, "2099-12-31T23:59:59.999Z", "20991231T235959.999Z");
    }

    #[test]
    fn durations() {
        for (ms, text) in [
            (0, "0 s"),
            (60_000, "60 s"),
            (1500, "1.5 s"),
            (250, "0.25 s"),
            (1001, "1.001 s"),
        ] {
            assert_eq!(seconds(ms), text);
        }
    }
}
