//! Hostile input against the real module binaries (issue 9): huge option values, special
//! files where state, manifests, pidfiles and CA files are read, crafted tar headers,
//! children that flood or linger, secrets that collide with result keys, links out of a
//! backup.
//!
//! Each case runs a binary under `support/limits.rs`: it must end within 10 s, peak under
//! 200 MB resident, print under 1 MB, write nothing outside its sandbox, print no secret,
//! and fail (or pass) with a message that names the path or option at fault.

// The helpers too: a test that cannot set itself up should fail loudly.
#![allow(clippy::unwrap_used)]

#[path = "support/limits.rs"]
mod limits;
use limits::{run_bounded, Bounded, LIMITS};

use serde_json::{json, Value};
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

const VERIFY: &str = env!("CARGO_BIN_EXE_backup_verify");
const MANIFEST: &str = env!("CARGO_BIN_EXE_backup_manifest");
const RETENTION: &str = env!("CARGO_BIN_EXE_backup_retention");
const BREAKER: &str = env!("CARGO_BIN_EXE_circuit_breaker");
const HEALTH: &str = env!("CARGO_BIN_EXE_health_check");

/// The SHA-256 of "hello\n".
const HELLO: &str = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";

/// A sandbox: `dir` is the module's cwd, HOME and TMPDIR parent; `state` a state_dir.
struct Case {
    dir: tempfile::TempDir,
}

impl Case {
    fn new() -> Case {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("state")).unwrap();
        Case { dir }
    }
    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }
    fn state(&self) -> String {
        self.path("state").display().to_string()
    }
    fn run(&self, bin: &str, args: Value) -> Bounded {
        run_bounded(bin, &args, self.dir.path(), LIMITS)
    }
    /// A FIFO at `rel` (nobody ever writes to it: a reader without O_NONBLOCK hangs).
    fn fifo(&self, rel: &str) -> PathBuf {
        let p = self.path(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        nix::unistd::mkfifo(&p, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        p
    }
}

/// The run stayed within every bound and failed with a message naming `named`.
fn fails_naming(case: &str, b: &Bounded, named: &str, secrets: &[&str]) {
    let result = b.within(case, secrets);
    assert!(b.failed(), "{case}: should fail: {result}");
    assert!(
        b.msg().contains(named),
        "{case}: the message names {named:?}: {}",
        b.msg()
    );
    // Messages quote at most a prefix of a huge value.
    assert!(b.msg().len() < 4096, "{case}: a {}-byte message", b.msg().len());
}

// ---- item 6: huge option values --------------------------------------------------------

#[test]
fn a_500k_character_glob_is_refused_by_length_without_a_panic() {
    let c = Case::new();
    std::fs::create_dir(c.path("data")).unwrap();
    let glob = "*a".repeat(250_000);
    let b = c.run(
        MANIFEST,
        json!({"path": c.path("data"), "dest": c.path("SHA256SUMS"), "include": [glob]}),
    );
    fails_naming("500k glob", &b, "include", &[]);
    assert!(!b.msg().contains("panic"), "no panic: {}", b.msg());
}

#[test]
fn a_1_mb_pattern_is_refused_by_length_naming_the_option() {
    let c = Case::new();
    std::fs::create_dir(c.path("backups")).unwrap();
    let pattern = "x".repeat(1024 * 1024);
    let b = c.run(
        RETENTION,
        json!({"path": c.path("backups"), "pattern": pattern, "keep_last": 1, "require_good": false}),
    );
    fails_naming("1 MB pattern", &b, "pattern", &[]);
}

#[test]
fn a_10_mb_pattern_is_refused_in_bounded_memory() {
    let c = Case::new();
    std::fs::create_dir(c.path("backups")).unwrap();
    let pattern = "x".repeat(10 * 1024 * 1024);
    let b = c.run(
        RETENTION,
        json!({"path": c.path("backups"), "pattern": pattern, "keep_last": 1, "require_good": false}),
    );
    // Refused at the option or, before it, by the size of the whole args file.
    let named = if b.msg().contains("args file") {
        "args file"
    } else {
        "pattern"
    };
    fails_naming("10 MB pattern", &b, named, &[]);
}

// ---- item 5: special files -------------------------------------------------------------

#[test]
fn a_fifo_as_the_breaker_state_file_is_reported_not_waited_on() {
    for check_mode in [false, true] {
        let c = Case::new();
        let fifo = c.fifo("state/circuit_breaker/api.json");
        let b = c.run(
            BREAKER,
            json!({"name": "api", "state_dir": c.state(), "_ansible_check_mode": check_mode}),
        );
        fails_naming("FIFO breaker state", &b, &fifo.display().to_string(), &[]);
    }
}

#[test]
fn a_fifo_listed_in_a_manifest_is_reported_by_path() {
    let c = Case::new();
    std::fs::create_dir(c.path("data")).unwrap();
    c.fifo("data/pipe");
    std::fs::write(c.path("SHA256SUMS"), format!("{HELLO}  pipe\n")).unwrap();
    let b = c.run(
        VERIFY,
        json!({
            "manifest": c.path("SHA256SUMS"),
            "root": c.path("data"),
            "max_duration": 5,
            // A time box keeps a cursor: in the sandbox, not the host's state dir.
            "state_dir": c.state(),
        }),
    );
    fails_naming("FIFO in a manifest", &b, "pipe", &[]);
}

#[test]
fn a_link_to_dev_zero_listed_in_a_manifest_is_reported_by_path() {
    let c = Case::new();
    std::fs::create_dir(c.path("data")).unwrap();
    symlink("/dev/zero", c.path("data/zero")).unwrap();
    std::fs::write(c.path("SHA256SUMS"), format!("{HELLO}  zero\n")).unwrap();
    let b = c.run(
        VERIFY,
        json!({"manifest": c.path("SHA256SUMS"), "root": c.path("data")}),
    );
    fails_naming("/dev/zero in a manifest", &b, "zero", &[]);
}

#[test]
fn a_fifo_pidfile_is_reported_by_path() {
    let c = Case::new();
    let fifo = c.fifo("run/app.pid");
    let b = c.run(HEALTH, json!({"processes": [{"pidfile": fifo}]}));
    fails_naming("FIFO pidfile", &b, &fifo.display().to_string(), &[]);
}

#[test]
fn a_pidfile_that_is_not_one_is_named_and_its_content_not_shown() {
    let c = Case::new();
    let secret = "root:$6$planted-hash-not-for-output:19000:0:99999:7:::";
    std::fs::write(c.path("shadow"), format!("{secret}\n")).unwrap();
    let b = c.run(HEALTH, json!({"processes": [{"pidfile": c.path("shadow")}]}));
    fails_naming("shadow as pidfile", &b, "shadow", &[secret, "planted-hash"]);
}

#[test]
fn dev_zero_as_ca_file_is_refused_by_path() {
    let c = Case::new();
    let b = c.run(
        HEALTH,
        json!({"http": [{"url": "https://127.0.0.1:9/", "ca_file": "/dev/zero", "timeout": 2}]}),
    );
    fails_naming("/dev/zero ca_file", &b, "/dev/zero", &[]);
}

// ---- item 3: tar extension headers -----------------------------------------------------

/// A tar archive whose first member is an extension header (`typeflag`) with `body`,
/// followed by one small file.
fn tar_with_extension(typeflag: u8, name: &str, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut header = tar::Header::new_ustar();
    header.set_path(name).unwrap();
    header.set_size(body.len() as u64);
    header.set_entry_type(tar::EntryType::new(typeflag));
    header.set_mode(0o644);
    header.set_cksum();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(body);
    out.resize(out.len().next_multiple_of(512), 0);
    let mut file = tar::Header::new_ustar();
    file.set_path("hello.txt").unwrap();
    file.set_size(6);
    file.set_entry_type(tar::EntryType::Regular);
    file.set_mode(0o644);
    file.set_cksum();
    out.extend_from_slice(file.as_bytes());
    out.extend_from_slice(b"hello\n");
    out.resize(out.len().next_multiple_of(512), 0);
    out.extend_from_slice(&[0u8; 1024]);
    out
}

fn restore_archive(c: &Case, archive: &Path) -> Bounded {
    std::fs::create_dir_all(c.path("tmp")).unwrap();
    c.run(
        VERIFY,
        json!({"checks": ["restore_test"], "restore": {
            "archive": archive, "max_bytes": "1M", "tmpdir": c.path("tmp")}}),
    )
}

#[test]
fn a_huge_pax_header_counts_against_max_bytes() {
    let c = Case::new();
    // 64 MiB of one PAX record: far over max_bytes (1 MiB) and any header cap.
    let value = "a".repeat(64 * 1024 * 1024);
    let record = format!("{} comment={value}\n", 64 * 1024 * 1024 + 10 + 10);
    let archive = c.path("pax.tar");
    std::fs::write(&archive, tar_with_extension(b'x', "././@PaxHeader", record.as_bytes())).unwrap();
    let b = restore_archive(&c, &archive);
    fails_naming("huge PAX header", &b, "pax.tar", &[]);
}

#[test]
fn a_nul_long_name_is_truncated_and_escaped_in_the_result() {
    let c = Case::new();
    // A GNU long name of 512 KiB of NUL bytes: the name must not be echoed whole.
    let archive = c.path("longname.tar");
    std::fs::write(
        &archive,
        tar_with_extension(b'L', "././@LongLink", &vec![0u8; 512 * 1024]),
    )
    .unwrap();
    let b = restore_archive(&c, &archive);
    let result = b.within("NUL long name", &[]);
    assert!(
        result.to_string().len() < 64 * 1024,
        "a {}-byte result for a 512 KiB name",
        result.to_string().len()
    );
}

// ---- item 4: child output and leftovers ------------------------------------------------

#[test]
fn yes_as_restore_command_is_bounded() {
    let c = Case::new();
    std::fs::create_dir(c.path("tmp")).unwrap();
    let b = c.run(
        VERIFY,
        json!({"checks": ["restore_test"], "restore": {
            "restore_command": ["yes"], "timeout": 3, "tmpdir": c.path("tmp")}}),
    );
    fails_naming("yes as restore_command", &b, "restore command", &[]);
}

#[test]
fn a_child_left_behind_is_killed_when_the_command_returns() {
    let c = Case::new();
    std::fs::create_dir(c.path("tmp")).unwrap();
    let pidfile = c.path("left.pid");
    let script = format!("sleep 30 & echo $! > '{}'; exit 0", pidfile.display());
    let b = c.run(
        VERIFY,
        json!({"checks": ["restore_test"], "restore": {
            "restore_command": ["/bin/sh", "-c", script], "timeout": 5, "tmpdir": c.path("tmp")}}),
    );
    b.within("sleep 30 &", &[]);
    let pid: i32 = std::fs::read_to_string(&pidfile).unwrap().trim().parse().unwrap();
    let alive = Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ");
    if alive {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
    }
    assert!(!alive, "'sleep 30 &' (pid {pid}) outlived the task");
}

// ---- item 7: masking keeps keys --------------------------------------------------------

#[test]
fn one_letter_and_common_word_secrets_mask_values_not_keys() {
    for secret in ["a", "ok", "failed"] {
        let c = Case::new();
        std::fs::create_dir(c.path("data")).unwrap();
        std::fs::write(c.path("data/file"), "not hello\n").unwrap();
        std::fs::write(c.path("SHA256SUMS"), format!("{HELLO}  file\n")).unwrap();
        let b = c.run(
            VERIFY,
            json!({"manifest": c.path("SHA256SUMS"), "root": c.path("data"),
                   "postgresql": {"password": secret}}),
        );
        let result = b.within("masking", &[]);
        assert_eq!(
            result["failed"],
            json!(true),
            "secret {secret:?}: still failed: {result}"
        );
        assert!(
            result["checks"]["integrity"].get("mismatched").is_some(),
            "secret {secret:?}: the key 'mismatched' survives: {result}"
        );
        assert_eq!(result["changed"], json!(false), "secret {secret:?}: {result}");
    }
}

#[test]
fn a_long_secret_never_shows() {
    let c = Case::new();
    let secret = "s3cr3t-Value-That-Must-Not-Leak";
    let b = c.run(
        VERIFY,
        json!({"checks": ["restore_test"], "postgresql": {"dump": c.path("missing.dump"), "password": secret}}),
    );
    b.within("long secret", &[secret]);
}

// ---- item 9: links out of a backup -----------------------------------------------------

#[test]
fn a_link_to_etc_hostname_in_a_backup_is_a_problem() {
    let c = Case::new();
    std::fs::create_dir(c.path("data")).unwrap();
    symlink("/etc/hostname", c.path("data/hostname")).unwrap();
    let digest = {
        use std::process::Command;
        let out = Command::new("sha256sum").arg("/etc/hostname").output().unwrap();
        String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_string()
    };
    std::fs::write(c.path("SHA256SUMS"), format!("{digest}  hostname\n")).unwrap();
    let b = c.run(
        VERIFY,
        json!({"manifest": c.path("SHA256SUMS"), "root": c.path("data")}),
    );
    fails_naming("link to /etc/hostname", &b, "hostname", &[]);
}

// ---- the harness itself ----------------------------------------------------------------

#[test]
fn the_harness_measures_a_plain_run() {
    let c = Case::new();
    let b = c.run(BREAKER, json!({"name": "api", "state_dir": c.state()}));
    let result = b.within("plain breaker query", &[]);
    assert_eq!(result["failed"], Value::Null, "{result}");
    assert!(b.max_rss_kib < 50 * 1024, "peak {} KiB", b.max_rss_kib);
    assert!(b.stdout_bytes > 0 && b.written_outside.is_empty());
}
