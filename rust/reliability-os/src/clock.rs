//! The wall clock, read in one place: unix milliseconds, as the pure core takes time.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, in unix milliseconds (0 for a clock set before 1970).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis().try_into().unwrap_or(u64::MAX))
}
