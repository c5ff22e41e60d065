//! Durations (`30s`, `1h30m`, `2d`): parsing never panics or overflows, and what is
//! formatted parses again.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reliability_core::duration::{format_duration, parse_duration};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(ms) = parse_duration(text) {
        let shown = format_duration(ms);
        assert!(
            parse_duration(&shown).is_ok(),
            "format_duration({ms}) = {shown:?} does not parse again"
        );
    }
});
