//! `sha256sum` manifests as `backup_verify` reads them: parsing never panics, a parsed
//! manifest renders to text that parses to the same manifest, and errors name a line that
//! exists.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reliability_core::manifest::{normalise, Manifest};

fuzz_target!(|data: &[u8]| {
    match Manifest::parse(data) {
        Ok(manifest) => {
            let text = manifest.render();
            let again = Manifest::parse(text.as_bytes()).expect("a rendered manifest parses");
            assert_eq!(again, manifest);
            for path in manifest.entries.keys() {
                assert_eq!(normalise(path).as_deref(), Ok(path.as_str()), "normal paths stay normal");
                assert!(!path.starts_with('/') && !path.split('/').any(|c| c == ".."));
            }
        }
        Err(e) => {
            let lines = data.split(|b| *b == b'\n').count();
            assert!(e.line >= 1 && e.line <= lines, "line {} of {lines}", e.line);
        }
    }
});
