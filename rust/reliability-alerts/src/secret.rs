//! Secrets: SMTP passwords, webhook URLs, tokens, HMAC keys.
//!
//! A [`Secret`] is read from the configuration (inline), from a file (`<key>_file`) or from
//! an environment variable (`<key>_env`), and from then on it is opaque: its `Debug` and
//! `Display` print `<redacted>`, it does not serialize, and its value is readable only
//! inside this crate ([`Secret::expose`] is `pub(crate)`), by the channel that sends it.
//! Architecture invariant: secrets never leave the alert crate except to their channel.

use std::fmt;

/// What a secret prints as.
pub const REDACTED: &str = "<redacted>";

/// The longest secret file read: a token or a URL, never megabytes.
pub const MAX_SECRET_FILE: u64 = 64 * 1024;

/// A value that must not be shown.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the channel that sends it (and nothing else).
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// `text` with every occurrence of this secret (and of its path part, when it is a
    /// URL: the credential of a Slack webhook) replaced by [`REDACTED`]. Error messages of
    /// lower layers quote what they were given; they pass through here first.
    pub(crate) fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        let mut parts = vec![self.0.as_str()];
        if let Some((_, rest)) = self.0.split_once("://") {
            if let Some(i) = rest.find(['/', '?']) {
                parts.push(&rest[i..]);
            }
        }
        for part in parts {
            // A part of a few characters ("/") would blank half the message; such a
            // "secret" protects nothing anyway.
            if part.len() >= 4 {
                out = out.replace(part, REDACTED);
            }
        }
        out
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// The secret in the file `path` (`<key>_file`), without the newline an editor leaves.
pub(crate) fn read_file(path: &std::path::Path) -> Result<String, String> {
    use reliability_os::small_file::{self, Follow};
    // A FIFO or a device is refused at once; the content is never quoted.
    let bytes = small_file::read(path, MAX_SECRET_FILE, Follow::Yes).map_err(|e| e.to_string())?;
    let text = String::from_utf8(bytes).map_err(|_| format!("'{}' is not UTF-8 text", path.display()))?;
    // A file written by `echo` or an editor ends with a newline that is not the secret's.
    let value = text.trim_end_matches(['\n', '\r']).to_string();
    if value.is_empty() {
        return Err(format!("'{}' is empty", path.display()));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_never_prints() {
        let s = Secret::new("hunter2-password");
        assert_eq!(
            format!("{s:?} {s} {:?}", Some(&s)),
            "<redacted> <redacted> Some(<redacted>)"
        );
        assert_eq!(s.expose(), "hunter2-password");
    }

    #[test]
    fn scrub_removes_the_secret_and_a_url_path() {
        let url = Secret::new("https://hooks.slack.com/services/T0/B0/XXXX");
        assert_eq!(
            url.scrub("invalid URL 'https://hooks.slack.com/services/T0/B0/XXXX': bad"),
            "invalid URL '<redacted>': bad"
        );
        // A message that quotes a prefix of the URL still loses the path.
        assert_eq!(
            url.scrub("POST hooks.slack.com/services/T0/B0/XXXX... (99 bytes)"),
            "POST hooks.slack.com<redacted>... (99 bytes)"
        );
        assert_eq!(Secret::new("/").scrub("a/b"), "a/b");
    }

    #[test]
    fn secret_files_lose_their_newline_and_must_hold_something() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("s");
        std::fs::write(&p, "tok\n").expect("write");
        assert_eq!(read_file(&p), Ok("tok".into()));
        std::fs::write(&p, "\n").expect("write");
        assert!(read_file(&p).expect_err("empty").ends_with("is empty"));
        std::fs::write(&p, vec![b'a'; 70_000]).expect("write");
        assert!(read_file(&p).expect_err("big").contains("larger than"));
        // A FIFO would block the daemon's start for ever: refused at once.
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).expect("mkfifo");
        assert!(read_file(&fifo).expect_err("fifo").contains("not a regular file"));
    }
}
