//! Archive members: any bytes, as a tar, tar.gz or tar.zst backup, extracted into a
//! sandbox with small limits. Never panics; the limits hold; nothing is written outside
//! the sandbox; the sandbox is gone afterwards.
#![no_main]

use libfuzzer_sys::fuzz_target;
use reliability_os::archive::{extract, Limits, Sandbox};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

const LIMITS: Limits = Limits {
    max_bytes: 256 * 1024,
    max_files: 64,
};

/// `base/input` holds the archive, `base/restore/` the sandboxes; `base/` holds nothing else.
fn base() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("a temporary directory")).path()
}

fn listing(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    out.sort();
    out
}

fuzz_target!(|data: &[u8]| {
    let base = base();
    let input = base.join("input");
    let restore = base.join("restore");
    std::fs::write(&input, data).expect("write the archive");
    std::fs::create_dir_all(&restore).expect("the restore directory");
    let before = listing(base);
    let sandbox = Sandbox::create(&restore).expect("a sandbox");
    match extract(&input, None, sandbox.path(), &LIMITS) {
        Ok(done) => {
            assert!(done.bytes <= LIMITS.max_bytes, "{} bytes written", done.bytes);
            assert!(
                done.files + done.directories + done.symlinks <= LIMITS.max_files,
                "{done:?}"
            );
        }
        Err(e) => {
            let msg = e.to_string();
            assert!(msg.len() <= 4096 + input.as_os_str().len(), "a {}-byte error message", msg.len());
        }
    }
    sandbox.remove().expect("the sandbox is removed");
    assert_eq!(listing(base), before, "something was written outside the sandbox");
    assert!(listing(&restore).is_empty(), "the sandbox is left behind");
});
