//! Sizes (`10M`, `1.5GiB`) and size ranges: parsing never panics or overflows, and a
//! parsed size formats.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reliability_core::size::{format_size, parse_size, parse_size_range};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(bytes) = parse_size(text) {
        let _ = format_size(bytes as f64);
    }
    if let Ok(range) = parse_size_range(text) {
        let _ = range.alerts(0.0);
        let _ = range.alerts(1e15);
    }
});
