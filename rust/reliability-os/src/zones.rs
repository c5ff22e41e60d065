//! IANA time zones from the host's tz database (`/usr/share/zoneinfo`, or `$TZDIR`).
//!
//! The core decides with zones handed in (`reliability_core::maintenance::Zones`); this is
//! where they are read. Nothing is bundled: the binaries stay small and follow the host's
//! `tzdata` updates. A name is looked up as jiff does it (case-insensitive, no path
//! traversal: `../` is not a zone name).

use jiff::tz::TimeZone;
use reliability_core::maintenance::Zones;

/// The host's tz database.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemZones;

impl Zones for SystemZones {
    fn zone(&self, name: &str) -> Result<TimeZone, String> {
        if name.eq_ignore_ascii_case("UTC") {
            // Present even where tzdata is not installed.
            return Ok(TimeZone::UTC);
        }
        jiff::tz::db().get(name).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_database() {
        assert_eq!(SystemZones.zone("UTC"), Ok(TimeZone::UTC));
        if std::path::Path::new("/usr/share/zoneinfo/Europe/Berlin").exists() {
            assert!(SystemZones.zone("Europe/Berlin").is_ok());
        }
        assert!(SystemZones.zone("../../etc/passwd").is_err());
        assert!(SystemZones.zone("Mars/Olympus").is_err());
    }
}
