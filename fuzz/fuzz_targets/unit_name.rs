//! systemd unit names: validation never panics, and a name it accepts is accepted again
//! in its normal form, with a type and a prefix.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reliability_core::unit_name::validate;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    match validate(text) {
        Ok(unit) => {
            let again = validate(unit.as_str()).expect("a validated name validates again");
            assert_eq!(again.as_str(), unit.as_str());
            assert!(!unit.unit_type().is_empty());
            let _ = (unit.prefix(), unit.instance(), unit.is_template());
        }
        Err(e) => {
            // The message quotes at most a short, escaped prefix of a huge name (issue 9 item 6).
            let msg = e.to_string();
            assert!(msg.len() <= 1024, "a {}-byte message for a {}-byte name", msg.len(), text.len());
        }
    }
});
