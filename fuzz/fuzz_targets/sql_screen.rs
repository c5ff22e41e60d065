//! The screening of plain SQL dumps before psql sees them (issue 9, item 1): never
//! panics on any text, and a meta-command on the first line (where psql is certainly
//! reading commands, whatever follows) is always refused.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reliability_core::sql_screen::screen;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = screen(text);
    let planted = format!("\\! id\n{text}");
    assert!(screen(&planted).is_err(), "a leading '\\!' line was accepted");
});
