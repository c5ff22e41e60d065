//! Restoring a tar, tar.gz or tar.zst archive into a private sandbox, safely.
//!
//! An archive under test is input from a backup, and may be damaged or hostile. So nothing
//! here trusts it:
//!
//! - The format comes from the first bytes (gzip and zstd magic, the `ustar` magic or a
//!   valid header checksum), never from the file name; a format the caller names must
//!   agree with them.
//! - The `tar` crate only reads headers; every member is written by [`extract`] itself, so
//!   its rules are the only ones: a member whose path is absolute or has a `..` component,
//!   whose parent path goes through a symbolic link or a file, a symbolic link whose target
//!   resolves outside the sandbox, a hard link to anything but a file extracted before it,
//!   a device node or a FIFO is refused, with the member named, before anything is written
//!   for it. Extraction stops at the first refusal: a restore that needed one is failed.
//! - Nothing is ever written through a symbolic link. Parents are directories this run
//!   created (they are tracked, and a directory or a symbolic link is never replaced), files
//!   are created with `O_CREAT|O_EXCL|O_NOFOLLOW`, links with `symlink(2)`/`link(2)`, which
//!   never follow their last component.
//! - Symbolic-link targets are resolved against what was extracted so far, following the
//!   links already made (at most 40 hops, as the kernel does); a `..` may only leave a
//!   directory this run made, so a link cannot gain a way out from a later member.
//! - Limits on restored bytes and on entries (files, directories, links) are checked before
//!   each member is written. Every byte read from the decompressed stream counts too, headers,
//!   padding and data nobody writes included: at most `max_bytes` plus 2 KiB per entry
//!   `max_files` allows (and 10 KiB for the end), so a tiny archive that inflates to
//!   gigabytes of headers or skipped data stops at its limit. Extension headers are capped
//!   before the `tar` crate reads their bodies into memory: a `Guard` between the
//!   decompressor and the crate reads every header block first, refuses a PAX header (`x`,
//!   `g`) over [`MAX_PAX_HEADER`] and a GNU long name or link (`L`, `K`) over
//!   [`MAX_LONG_NAME`] by its size field, and follows the stream's layout as the crate does.
//!   The zstd decoder's memory is bounded too: a frame asking for a window over
//!   2^[`ZSTD_WINDOW_LOG_MAX`] bytes is refused before its data is decoded.
//! - Names in messages are escaped (control bytes and invalid UTF-8 as `\xNN`) and cut to a
//!   short prefix with their length ([`shown_name`], the one way a member name is shown). The compressed stream is read to its end after the last member,
//!   so a truncated or corrupt gzip or zstd stream is caught by its checksum; a tar stream
//!   that ends without its end-of-archive marker is truncated.
//! - Modes are kept as far as safe: permission bits only (no setuid, setgid or sticky), and
//!   always readable and, for directories, searchable and writable by the owner, so the
//!   restore can be compared and removed. Owners are not restored; modification times are.
//!
//! The [`Sandbox`] is a directory of mode 0700 created under a chosen parent and removed
//! when it is dropped, on success and on failure alike; [`Sandbox::remove`] says whether the
//! removal worked.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io::{self, BufRead, BufReader, Read};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How many symbolic links one target may pass through (Linux's `MAXSYMLINKS`).
const MAX_LINK_HOPS: usize = 40;

/// The largest PAX extended header body (`x`, `g`) read: 64 KiB.
pub const MAX_PAX_HEADER: u64 = 64 * 1024;
/// The largest GNU long name or long link name (`L`, `K`) read: `PATH_MAX`.
pub const MAX_LONG_NAME: u64 = 4096;
/// Bytes of the decompressed stream allowed per entry beyond its content (its header, its
/// padding, a short extension header).
const OVERHEAD_PER_ENTRY: u64 = 2048;
/// How much of a name a message shows.
const SHOWN_NAME: usize = 200;

/// The archive formats [`extract`] reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Tar,
    TarGz,
    TarZst,
}

impl Format {
    /// The names a user writes: `tar`, `tar.gz`, `tar.zst`.
    pub const NAMES: [&'static str; 3] = ["tar", "tar.gz", "tar.zst"];

    pub fn name(self) -> &'static str {
        match self {
            Format::Tar => "tar",
            Format::TarGz => "tar.gz",
            Format::TarZst => "tar.zst",
        }
    }

    pub fn from_name(name: &str) -> Option<Format> {
        match name {
            "tar" => Some(Format::Tar),
            "tar.gz" => Some(Format::TarGz),
            "tar.zst" => Some(Format::TarZst),
            _ => None,
        }
    }
}

/// What the first bytes of a file say it is: gzip or zstd magic, or a tar header (the
/// `ustar` magic at offset 257, or, for old v7 archives, a valid header checksum).
pub fn sniff(head: &[u8]) -> Option<Format> {
    if head.starts_with(&[0x1f, 0x8b]) {
        return Some(Format::TarGz);
    }
    if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return Some(Format::TarZst);
    }
    let block = head.get(..512)?;
    if block.get(257..262) == Some(b"ustar") || header_checksum_ok(block) {
        return Some(Format::Tar);
    }
    None
}

/// A tar header's checksum: the octal number at 148..156 is the sum of the block's bytes
/// with that field read as spaces. An all-zero block is not a header.
fn header_checksum_ok(block: &[u8]) -> bool {
    let Some(field) = block.get(148..156) else { return false };
    let text: String = field.iter().map(|b| *b as char).filter(|c| c.is_digit(8)).collect();
    let Ok(want) = u32::from_str_radix(&text, 8) else {
        return false;
    };
    let sum: u32 = block
        .iter()
        .enumerate()
        .map(|(i, b)| if (148..156).contains(&i) { 32 } else { u32::from(*b) })
        .sum();
    block.iter().any(|b| *b != 0) && sum == want
}

/// Bounds on what one extraction may write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of file content.
    pub max_bytes: u64,
    /// Entries created: files, directories and links.
    pub max_files: u64,
}

/// What an extraction wrote.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Extracted {
    /// The format read (`tar`, `tar.gz`, `tar.zst`).
    pub format: &'static str,
    /// Regular files, hard links included.
    pub files: u64,
    pub hardlinks: u64,
    pub directories: u64,
    pub symlinks: u64,
    /// Bytes of file content written.
    pub bytes: u64,
    pub duration: Duration,
}

/// Why an archive was not (completely) extracted. Every message names the archive or the
/// member at fault.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("cannot read '{path}': {source}")]
    Open { path: String, source: io::Error },
    #[error("'{path}' is empty, not an archive")]
    Empty { path: String },
    #[error("'{path}' is not a tar, tar.gz or tar.zst archive (it starts with {start})")]
    NotAnArchive { path: String, start: String },
    #[error("'{path}' was given as {asked}, but its first bytes are those of {found}")]
    WrongFormat {
        path: String,
        asked: &'static str,
        found: &'static str,
    },
    #[error("'{path}' is truncated or corrupt: {detail}")]
    Corrupt { path: String, detail: String },
    #[error("member '{member}': {reason}")]
    Refused { member: String, reason: String },
    #[error("member '{member}': {what}")]
    Limit { member: String, what: String },
    /// A bound on the stream itself (not on one member): its size, an extension header.
    #[error("'{path}' {at}: {what}")]
    StreamLimit { path: String, at: String, what: String },
    #[error("member '{member}': cannot write it into the sandbox: {source}")]
    Write { member: String, source: io::Error },
}

impl ArchiveError {
    /// A short word for the kind of failure, for reports.
    pub fn kind(&self) -> &'static str {
        match self {
            ArchiveError::Open { .. } => "unreadable",
            ArchiveError::Empty { .. } | ArchiveError::NotAnArchive { .. } | ArchiveError::WrongFormat { .. } => {
                "not_an_archive"
            }
            ArchiveError::Corrupt { .. } => "corrupt",
            ArchiveError::Refused { .. } => "refused",
            ArchiveError::Limit { .. } | ArchiveError::StreamLimit { .. } => "limit",
            ArchiveError::Write { .. } => "write",
        }
    }
}

/// A private directory (mode 0700) that is removed, with everything in it, when dropped.
#[derive(Debug)]
pub struct Sandbox {
    path: PathBuf,
    armed: bool,
}

impl Sandbox {
    /// Creates `hx-restore-<pid>-<time>-<n>` under `parent`.
    pub fn create(parent: &Path) -> io::Result<Sandbox> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let mut last = io::Error::other("no name tried");
        for _ in 0..64 {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let path = parent.join(format!("hx-restore-{}-{nanos:08x}-{n}", std::process::id()));
            match DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => {
                    let sandbox = Sandbox { path, armed: true };
                    // The umask may have taken bits the owner needs.
                    std::fs::set_permissions(&sandbox.path, Permissions::from_mode(0o700))?;
                    return Ok(sandbox);
                }
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = e,
                Err(e) => return Err(e),
            }
        }
        Err(last)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the sandbox now, saying whether that worked.
    pub fn remove(mut self) -> io::Result<()> {
        self.armed = false;
        remove_tree(&self.path)
    }

    /// Counts what the sandbox holds (without following links): what a restore command wrote.
    pub fn measure(&self) -> Result<Extracted, String> {
        let mut out = Extracted::default();
        for entry in walkdir::WalkDir::new(&self.path).min_depth(1) {
            let entry = entry.map_err(|e| format!("cannot list the restore: {e}"))?;
            let ft = entry.file_type();
            if ft.is_dir() {
                out.directories += 1;
            } else if ft.is_symlink() {
                out.symlinks += 1;
            } else if ft.is_file() {
                out.files += 1;
                out.bytes += entry
                    .metadata()
                    .map_err(|e| format!("cannot read '{}': {e}", entry.path().display()))?
                    .len();
            }
        }
        Ok(out)
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if self.armed {
            let _ = remove_tree(&self.path);
        }
    }
}

/// `remove_dir_all` (which never follows a symbolic link); when it fails, the directories
/// are made writable (a restore command may have made some read-only) and it is tried again.
fn remove_tree(path: &Path) -> io::Result<()> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(_) if std::fs::symlink_metadata(path).is_err() => Ok(()),
        Err(_) => {
            for entry in walkdir::WalkDir::new(path).into_iter().flatten() {
                if entry.file_type().is_dir() {
                    let _ = std::fs::set_permissions(entry.path(), Permissions::from_mode(0o700));
                }
            }
            std::fs::remove_dir_all(path)
        }
    }
}

/// Room left on the filesystem holding `dir`: (bytes, inodes) an unprivileged user may
/// still take. The default limits of an extraction, so a restore never fills a disk.
pub fn free_space(dir: &Path) -> io::Result<(u64, u64)> {
    let st = nix::sys::statvfs::statvfs(dir).map_err(io::Error::from)?;
    let bytes = st.blocks_available().saturating_mul(st.fragment_size());
    Ok((bytes, st.files_available()))
}

/// What this run put at a path of the sandbox.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Node {
    Dir,
    File,
    /// The link's target, as written in the archive.
    Symlink(Vec<u8>),
}

/// A reader that remembers whether it reached the end of its input, and whether reading it
/// (decompressing) failed: the tar crate's errors do not say which layer broke.
struct Tracked<R> {
    inner: R,
    eof: bool,
    failed: Rc<Cell<bool>>,
}

impl<R: Read> Read for Tracked<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf).inspect_err(|e| {
            if e.kind() != io::ErrorKind::Interrupted {
                self.failed.set(true);
            }
        })?;
        if n == 0 && !buf.is_empty() {
            self.eof = true;
        }
        Ok(n)
    }
}

/// The largest zstd window a frame may ask for, as a power of two: 2^27 = 128 MiB, what
/// `zstd -d` (and so GNU tar) accepts without `--memory`. The decoder's memory is this
/// window plus a block, whatever the frame header says; a frame asking for more is refused.
pub const ZSTD_WINDOW_LOG_MAX: u32 = 27;

/// A zstd stream, every frame one after another (as `zstd -d` reads them), decoded by the C
/// library (libzstd, built with the workspace's C compiler), which verifies each frame's
/// content checksum when the frame carries one, refuses bytes after a frame that do not
/// start another one, and calls a stream that ends inside a frame an incomplete frame.
struct Zstd<R: BufRead> {
    decoder: zstd::stream::read::Decoder<'static, R>,
}

impl<R: BufRead> Zstd<R> {
    fn new(source: R) -> io::Result<Self> {
        let mut decoder = zstd::stream::read::Decoder::with_buffer(source)?;
        decoder.window_log_max(ZSTD_WINDOW_LOG_MAX)?;
        Ok(Zstd { decoder })
    }
}

impl<R: BufRead> Read for Zstd<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.decoder.read(buf).map_err(|e| {
            // libzstd's words for a window over the cap say nothing of the cap.
            if e.to_string().contains("too much memory") {
                io::Error::other(format!(
                    "a zstd frame asks for a window over {} MiB, the most a restore decodes with: {e}",
                    (1u64 << ZSTD_WINDOW_LOG_MAX) >> 20
                ))
            } else {
                e
            }
        })
    }
}

/// Sits between the decompressor and the `tar` crate (see the module docs): counts every
/// byte against the stream's budget and reads each header block before the crate does,
/// refusing an oversized extension header by its size field, so the crate never reads (and
/// allocates) an extension body over its cap. It follows the layout as
/// `tar::Archive::entries` does: a header, its data rounded up to 512 bytes, a PAX `size`
/// record overriding the size of the member it describes. From the end-of-archive marker
/// on, or once a header makes no sense (the crate then fails on it too), it only counts.
struct Guard<R> {
    inner: R,
    /// Bytes taken from `inner`, and how many may be.
    taken: u64,
    budget: u64,
    limits: Limits,
    /// Bytes handed out.
    pos: u64,
    /// Where the next header block starts, while the layout is followed.
    next_header: Option<u64>,
    /// The header block being handed out, and how much of it was.
    block: Vec<u8>,
    block_at: usize,
    /// The body of a PAX `x` header being read, and how much of it is still to come.
    pax: Option<Vec<u8>>,
    pax_left: u64,
    /// The extensions a PAX header left for the next member: its `size` record, if any.
    pending: Option<Option<u64>>,
    /// Why the guard stopped the stream; read by [`extract`] for the error.
    stop: Rc<RefCell<Option<String>>>,
}

impl<R: Read> Guard<R> {
    fn new(inner: R, limits: &Limits, stop: Rc<RefCell<Option<String>>>) -> Self {
        let overhead = OVERHEAD_PER_ENTRY.saturating_mul(limits.max_files.saturating_add(5));
        Guard {
            inner,
            taken: 0,
            budget: limits.max_bytes.saturating_add(overhead),
            limits: *limits,
            pos: 0,
            next_header: Some(0),
            block: Vec::new(),
            block_at: 0,
            pax: None,
            pax_left: 0,
            pending: None,
            stop,
        }
    }

    fn halt(&self, why: String) -> io::Error {
        *self.stop.borrow_mut() = Some(why.clone());
        io::Error::other(why)
    }

    fn count(&mut self, n: usize) -> io::Result<()> {
        self.taken = self.taken.saturating_add(n as u64);
        if self.taken > self.budget {
            return Err(self.halt(format!(
                "it holds more than {} bytes once decompressed, over what max_bytes ({}) and max_files ({}) allow \
                 ({OVERHEAD_PER_ENTRY} bytes of headers per entry)",
                self.budget, self.limits.max_bytes, self.limits.max_files
            )));
        }
        Ok(())
    }

    /// Reads a header block at `start` before it is handed out.
    fn header(&mut self, block: &[u8], start: u64) -> io::Result<()> {
        self.next_header = None;
        if block.iter().all(|b| *b == 0) {
            // The end-of-archive marker: what follows is only counted.
            return Ok(());
        }
        let h = tar::Header::from_byte_slice(block);
        let sum: u32 = block
            .iter()
            .enumerate()
            .map(|(i, b)| if (148..156).contains(&i) { 32 } else { u32::from(*b) })
            .sum();
        let Ok(mut size) = h
            .cksum()
            .ok()
            .filter(|c| *c == sum)
            .map_or(Err(()), |_| h.entry_size().map_err(|_| ()))
        else {
            return Ok(());
        };
        let t = h.entry_type();
        let recognized = h.as_gnu().is_some() || h.as_ustar().is_some();
        let (long, pax) = (
            t.is_gnu_longname() || t.is_gnu_longlink(),
            t.is_pax_local_extensions() || t.is_pax_global_extensions(),
        );
        let cap = if long { MAX_LONG_NAME } else { MAX_PAX_HEADER };
        if (long || pax) && size > cap {
            let what = if long { "GNU long name" } else { "PAX header" };
            return Err(self.halt(format!(
                "a {what} ('{}') of {size} bytes, over the {cap}-byte cap for extension headers",
                t.as_byte() as char
            )));
        }
        if t.is_gnu_sparse() && h.as_gnu().is_some_and(|g| g.is_extended()) {
            return Err(self.halt(format!(
                "member '{}' is a sparse file with extension headers (sparse files are not supported)",
                shown_name(&h.path_bytes())
            )));
        }
        if !(long || pax) {
            if let Some(Some(pax_size)) = self.pending {
                size = pax_size;
            }
        }
        let chained = recognized && (long || t.is_pax_local_extensions());
        if !chained {
            // The crate hands this one out, with the extensions before it.
            self.pending = None;
        }
        if recognized && t.is_pax_local_extensions() {
            if self.pending.is_some() {
                // Two PAX headers for one member: the crate refuses that.
                return Ok(());
            }
            self.pax = Some(Vec::new());
            self.pax_left = size;
            self.end_pax();
        }
        let padded = size.checked_add(511).map(|s| s & !511);
        self.next_header = padded.and_then(|p| start.checked_add(512)?.checked_add(p));
        Ok(())
    }

    /// Once a PAX body is whole: its `size` record, read as the `tar` crate reads it.
    fn end_pax(&mut self) {
        if self.pax_left > 0 {
            return;
        }
        let Some(body) = self.pax.take() else { return };
        let mut size = None;
        for ext in tar::PaxExtensions::new(&body) {
            let Ok(ext) = ext else { break };
            if ext.key() != Ok("size") {
                continue;
            }
            size = ext.value().ok().and_then(|v| v.parse::<u64>().ok());
            break;
        }
        self.pending = Some(size);
    }
}

impl<R: Read> Read for Guard<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if let Some(why) = self.stop.borrow().as_ref() {
            return Err(io::Error::other(why.clone()));
        }
        if buf.is_empty() {
            return Ok(0);
        }
        if self.block_at == self.block.len() && self.next_header == Some(self.pos) {
            let start = self.pos;
            let mut block = vec![0u8; 512];
            let mut got = 0;
            while got < block.len() {
                match self.inner.read(&mut block[got..]) {
                    Ok(0) => break,
                    Ok(n) => got += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            self.count(got)?;
            block.truncate(got);
            if got == 512 {
                self.header(&block, start)?;
            } else {
                self.next_header = None;
            }
            self.block = block;
            self.block_at = 0;
        }
        if self.block_at < self.block.len() {
            let n = buf.len().min(self.block.len() - self.block_at);
            buf[..n].copy_from_slice(&self.block[self.block_at..self.block_at + n]);
            self.block_at += n;
            self.pos += n as u64;
            return Ok(n);
        }
        // Data never runs into the next header: it is read on its own.
        let room = match self.next_header {
            Some(h) => usize::try_from(h.saturating_sub(self.pos))
                .unwrap_or(usize::MAX)
                .min(buf.len()),
            None => buf.len(),
        };
        let n = self.inner.read(&mut buf[..room])?;
        self.count(n)?;
        if let Some(body) = self.pax.as_mut() {
            let take = usize::try_from(self.pax_left).unwrap_or(usize::MAX).min(n);
            body.extend_from_slice(&buf[..take]);
            self.pax_left -= take as u64;
            self.end_pax();
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// A member name (or link target) for a message: control characters, backslashes and
/// bytes that are not UTF-8 escaped (`\x1b`, `\\`, `\xff`), cut after about 200 characters
/// with the name's length in bytes. The one way an archive's names reach a message.
pub fn shown_name(raw: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let mut cut = false;
    'chunks: for chunk in raw.utf8_chunks() {
        for c in chunk.valid().chars() {
            if out.len() >= SHOWN_NAME {
                cut = true;
                break 'chunks;
            }
            match c {
                '\\' => out.push_str("\\\\"),
                c if c.is_control() && u32::from(c) < 0x100 => {
                    let _ = write!(out, "\\x{:02x}", u32::from(c));
                }
                c if c.is_control() => {
                    let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
                }
                c => out.push(c),
            }
        }
        for b in chunk.invalid() {
            if out.len() >= SHOWN_NAME {
                cut = true;
                break 'chunks;
            }
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    if cut {
        let _ = write!(out, "...({} bytes)", raw.len());
    }
    out
}

/// Extracts `archive` into `dest` (an empty directory, normally a [`Sandbox`]) under the
/// rules of the module docs. `format`, when given, must agree with the file's first bytes.
pub fn extract(
    archive: &Path,
    format: Option<Format>,
    dest: &Path,
    limits: &Limits,
) -> Result<Extracted, ArchiveError> {
    let mut out = Extracted::default();
    extract_counted(archive, format, dest, limits, &mut out).map(|()| out)
}

/// [`extract`], tallying into `out` as it goes: after a failure, `out` says what was
/// written before it (and how long that took).
pub fn extract_counted(
    archive: &Path,
    format: Option<Format>,
    dest: &Path,
    limits: &Limits,
    out: &mut Extracted,
) -> Result<(), ArchiveError> {
    let started = Instant::now();
    let result = extract_into(archive, format, dest, limits, out);
    out.duration = started.elapsed();
    result
}

fn extract_into(
    archive: &Path,
    format: Option<Format>,
    dest: &Path,
    limits: &Limits,
    out: &mut Extracted,
) -> Result<(), ArchiveError> {
    let shown = archive.display().to_string();
    let open_error = |source| ArchiveError::Open {
        path: shown.clone(),
        source,
    };
    // A FIFO or a device named as the archive is refused, not read (or waited on).
    let file = crate::hashing::open_regular(archive, true).map_err(open_error)?;
    let mut reader = BufReader::with_capacity(128 * 1024, file);
    let head = reader.fill_buf().map_err(open_error)?.to_vec();
    if head.is_empty() {
        return Err(ArchiveError::Empty { path: shown });
    }
    let found = sniff(&head).ok_or_else(|| ArchiveError::NotAnArchive {
        path: shown.clone(),
        start: describe_start(&head),
    })?;
    if let Some(asked) = format.filter(|f| *f != found) {
        return Err(ArchiveError::WrongFormat {
            path: shown,
            asked: asked.name(),
            found: found.name(),
        });
    }
    let corrupt = |detail: String| ArchiveError::Corrupt {
        path: shown.clone(),
        detail,
    };
    let stream: Box<dyn Read> = match found {
        Format::Tar => Box::new(reader),
        Format::TarGz => Box::new(flate2::read::MultiGzDecoder::new(reader)),
        Format::TarZst => Box::new(Zstd::new(reader).map_err(|e| corrupt(format!("not a valid zstd stream: {e}")))?),
    };
    let stream_failed = Rc::new(Cell::new(false));
    let stop = Rc::new(RefCell::new(None));
    let mut tar = tar::Archive::new(Tracked {
        inner: Guard::new(stream, limits, Rc::clone(&stop)),
        eof: false,
        failed: Rc::clone(&stream_failed),
    });
    out.format = found.name();
    let mut writer = Writer {
        dest,
        limits,
        nodes: HashMap::new(),
        entries: 0,
    };
    let mut last: Option<String> = None;
    let where_ = |last: &Option<String>| match last {
        None => "at its first header".to_string(),
        Some(m) => format!("after member '{m}'"),
    };
    // A broken header, or a broken compressed stream under it.
    let bad_header = |last: &Option<String>, e: io::Error| {
        let e = printable(&e.to_string());
        if stream_failed.get() {
            corrupt(format!("{}: the {} stream is damaged: {e}", where_(last), found.name()))
        } else if last.is_none() {
            corrupt(format!("it holds no tar archive (its first header: {e})"))
        } else {
            corrupt(format!("{}: {e}", where_(last)))
        }
    };
    let mut failure = None;
    match tar.entries() {
        Err(e) => failure = Some(bad_header(&last, e)),
        Ok(entries) => {
            for entry in entries {
                let mut entry = match entry {
                    Ok(entry) => entry,
                    Err(e) => {
                        failure = Some(bad_header(&last, e));
                        break;
                    }
                };
                let member = shown_name(&entry.path_bytes());
                if let Err(e) = writer.member(&mut entry, &member, out) {
                    failure = Some(match e {
                        Failure::Archive(e) => e,
                        Failure::Read(e) if stream_failed.get() => corrupt(format!(
                            "member '{member}': the {} stream is damaged: {}",
                            found.name(),
                            printable(&e.to_string())
                        )),
                        Failure::Read(e) => corrupt(format!("member '{member}': {}", printable(&e.to_string()))),
                    });
                    break;
                }
                last = Some(member);
            }
        }
    }
    let mut tracked = tar.into_inner();
    let compressed = found != Format::Tar;
    // A bound the guard enforced explains whatever failed after it.
    let stopped = |last: &Option<String>| {
        stop.borrow_mut().take().map(|what| ArchiveError::StreamLimit {
            path: shown.clone(),
            at: where_(last),
            what,
        })
    };
    if let Some(e) = stopped(&last) {
        return Err(e);
    }
    match failure {
        // Damage inside a compressed stream often shows first as a tar header that makes
        // no sense; the stream's checksum, at its end, says whether that is what happened.
        Some(ArchiveError::Corrupt { .. }) if compressed && !stream_failed.get() => {
            if let Err(e) = drain(&mut tracked.inner, limits.max_bytes) {
                if let Some(e) = stopped(&last) {
                    return Err(e);
                }
                return Err(corrupt(format!(
                    "{}: the {} stream is damaged: {}",
                    where_(&last),
                    found.name(),
                    printable(&e.to_string())
                )));
            }
        }
        _ => {}
    }
    if let Some(failure) = failure {
        return Err(failure);
    }
    if tracked.eof {
        return Err(corrupt(format!(
            "the tar stream ends {} without its end-of-archive marker",
            where_(&last)
        )));
    }
    if compressed {
        // Read the compressed stream to its end: its trailer carries the checksum of
        // everything, and trailing garbage is damage too. Bounded like the content.
        match drain(&mut tracked.inner, limits.max_bytes) {
            Ok(true) => {}
            Ok(false) => {
                return Err(corrupt(format!(
                    "more than {} bytes follow the end-of-archive marker",
                    limits.max_bytes
                )))
            }
            Err(e) => {
                if let Some(e) = stopped(&last) {
                    return Err(e);
                }
                return Err(corrupt(format!(
                    "after the end-of-archive marker: the {} stream is damaged: {}",
                    found.name(),
                    printable(&e.to_string())
                )));
            }
        }
    }
    Ok(())
}

/// Reads a stream to its end, at most `max` bytes: `Ok(false)` when there was more.
fn drain(stream: &mut impl Read, max: u64) -> io::Result<bool> {
    let drained = io::copy(&mut stream.take(max.saturating_add(1)), &mut io::sink())?;
    Ok(drained <= max)
}

/// An error text with what is not printable (raw archive bytes) shown as `?`.
fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() || c == char::REPLACEMENT_CHARACTER {
                '?'
            } else {
                c
            }
        })
        .collect()
}

/// The first bytes of a file, for an error message: text if they are printable, else hex.
fn describe_start(head: &[u8]) -> String {
    let start = &head[..head.len().min(8)];
    if start.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        format!("'{}'", String::from_utf8_lossy(start))
    } else {
        let hex: Vec<String> = start.iter().map(|b| format!("{b:02x}")).collect();
        format!("bytes {}", hex.join(" "))
    }
}

/// What writing one member can fail with: a refusal or write error, or the archive
/// itself failing to read (truncated, corrupt).
enum Failure {
    Archive(ArchiveError),
    Read(io::Error),
}

impl From<ArchiveError> for Failure {
    fn from(e: ArchiveError) -> Failure {
        Failure::Archive(e)
    }
}

/// The state of one extraction: what was made where, and how much.
struct Writer<'a> {
    dest: &'a Path,
    limits: &'a Limits,
    nodes: HashMap<PathBuf, Node>,
    entries: u64,
}

/// `path` as a relative path inside the sandbox: no root, no `..`; `.` and empty components
/// dropped. `Ok(None)` for the archive's top directory itself (`./`).
fn member_path(raw: &[u8]) -> Result<Option<PathBuf>, String> {
    if raw.first() == Some(&b'/') {
        return Err("absolute path".to_string());
    }
    if raw.contains(&0) {
        return Err("the name holds a NUL byte".to_string());
    }
    let mut out = PathBuf::new();
    for part in raw.split(|b| *b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err("path leaves the sandbox".to_string()),
            p => out.push(OsStr::from_bytes(p)),
        }
    }
    Ok((!out.as_os_str().is_empty()).then_some(out))
}

fn safe_mode(mode: u32, owner_bits: u32) -> u32 {
    (mode & 0o777) | owner_bits
}

fn show(p: &Path) -> String {
    shown_name(p.as_os_str().as_bytes())
}

impl Writer<'_> {
    fn refuse(member: &str, reason: impl Into<String>) -> Failure {
        Failure::Archive(ArchiveError::Refused {
            member: member.to_string(),
            reason: reason.into(),
        })
    }

    fn write_error(member: &str, source: io::Error) -> Failure {
        Failure::Archive(ArchiveError::Write {
            member: member.to_string(),
            source,
        })
    }

    /// Counts one more entry against `max_files`.
    fn count_entry(&mut self, member: &str) -> Result<(), Failure> {
        self.entries += 1;
        if self.entries > self.limits.max_files {
            return Err(Failure::Archive(ArchiveError::Limit {
                member: member.to_string(),
                what: format!(
                    "the restore would hold more than max_files ({}) files, directories and links",
                    self.limits.max_files
                ),
            }));
        }
        Ok(())
    }

    fn member<R: Read>(&mut self, entry: &mut tar::Entry<R>, member: &str, out: &mut Extracted) -> Result<(), Failure> {
        use tar::EntryType as T;
        let kind = entry.header().entry_type();
        if kind.is_pax_global_extensions() {
            return Ok(());
        }
        match kind {
            T::Char => return Err(Self::refuse(member, "character device")),
            T::Block => return Err(Self::refuse(member, "block device")),
            T::Fifo => return Err(Self::refuse(member, "FIFO (named pipe)")),
            T::Regular | T::Continuous | T::Directory | T::Symlink | T::Link => {}
            T::GNUSparse => return Err(Self::refuse(member, "sparse file (not supported)")),
            other => {
                return Err(Self::refuse(
                    member,
                    format!("unsupported member type '{}'", other.as_byte() as char),
                ))
            }
        }
        let Some(rel) = member_path(&entry.path_bytes()).map_err(|why| Self::refuse(member, why))? else {
            // `./`, the archive's own top directory: the sandbox is it.
            return if kind == T::Directory {
                Ok(())
            } else {
                Err(Self::refuse(member, "names no file"))
            };
        };
        self.parents(&rel, member, out)?;
        let full = self.dest.join(&rel);
        // What this run already made here may be replaced only if it is a file (a later copy
        // of a file in an appended archive); directories and links stay what they are.
        match (self.nodes.get(&rel), kind) {
            (None, _) => {}
            (Some(Node::Dir), T::Directory) => {}
            (Some(Node::Dir), _) => return Err(Self::refuse(member, "already extracted as a directory")),
            (Some(Node::Symlink(_)), _) => return Err(Self::refuse(member, "already extracted as a symbolic link")),
            (Some(Node::File), T::Directory) => return Err(Self::refuse(member, "already extracted as a file")),
            (Some(Node::File), _) => {
                std::fs::remove_file(&full).map_err(|e| Self::write_error(member, e))?;
                self.nodes.remove(&rel);
            }
        }
        let mode = entry.header().mode().unwrap_or(0o644);
        match kind {
            T::Directory => {
                if self.nodes.get(&rel) != Some(&Node::Dir) {
                    self.count_entry(member)?;
                    DirBuilder::new()
                        .mode(0o700)
                        .create(&full)
                        .map_err(|e| Self::write_error(member, e))?;
                    self.nodes.insert(rel, Node::Dir);
                    out.directories += 1;
                }
                std::fs::set_permissions(&full, Permissions::from_mode(safe_mode(mode, 0o700)))
                    .map_err(|e| Self::write_error(member, e))?;
            }
            T::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|t| t.into_owned())
                    .filter(|t| !t.is_empty())
                    .ok_or_else(|| Self::refuse(member, "symbolic link without a target"))?;
                self.check_link_target(&rel, &target)
                    .map_err(|why| Self::refuse(member, why))?;
                self.count_entry(member)?;
                std::os::unix::fs::symlink(OsStr::from_bytes(&target), &full)
                    .map_err(|e| Self::write_error(member, e))?;
                self.nodes.insert(rel, Node::Symlink(target));
                out.symlinks += 1;
            }
            T::Link => {
                let raw = entry.link_name_bytes().map(|t| t.into_owned()).unwrap_or_default();
                let shown = shown_name(&raw);
                let target = member_path(&raw)
                    .map_err(|why| Self::refuse(member, format!("hard link to '{shown}': {why}")))?
                    .ok_or_else(|| Self::refuse(member, "hard link without a target"))?;
                if self.nodes.get(&target) != Some(&Node::File) {
                    return Err(Self::refuse(
                        member,
                        format!("hard link to '{shown}', which is not a file extracted before it"),
                    ));
                }
                self.count_entry(member)?;
                std::fs::hard_link(self.dest.join(&target), &full).map_err(|e| Self::write_error(member, e))?;
                self.nodes.insert(rel, Node::File);
                out.files += 1;
                out.hardlinks += 1;
            }
            _ => {
                let size = entry.size();
                let total = out.bytes.saturating_add(size);
                if total > self.limits.max_bytes {
                    return Err(Failure::Archive(ArchiveError::Limit {
                        member: member.to_string(),
                        what: format!(
                            "its {size} bytes would bring the restore to {total} bytes, over max_bytes ({})",
                            self.limits.max_bytes
                        ),
                    }));
                }
                self.count_entry(member)?;
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
                    .open(&full)
                    .map_err(|e| Self::write_error(member, e))?;
                self.nodes.insert(rel, Node::File);
                let written = copy(entry, &mut file, member)?;
                out.bytes += written;
                if written != size {
                    return Err(Failure::Read(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        format!("cut short: {written} of its {size} bytes"),
                    )));
                }
                file.set_permissions(Permissions::from_mode(safe_mode(mode, 0o400)))
                    .map_err(|e| Self::write_error(member, e))?;
                if let Ok(mtime) = entry.header().mtime() {
                    let _ = file.set_modified(UNIX_EPOCH + Duration::from_secs(mtime));
                }
                out.files += 1;
            }
        }
        Ok(())
    }

    /// Makes sure every parent of `rel` is a directory this run made, creating the missing
    /// ones (archives need not list them); refuses a parent that is a link or a file.
    fn parents(&mut self, rel: &Path, member: &str, out: &mut Extracted) -> Result<(), Failure> {
        let mut at = PathBuf::new();
        let parts: Vec<&OsStr> = rel.iter().collect();
        for part in parts.iter().take(parts.len().saturating_sub(1)) {
            at.push(part);
            match self.nodes.get(&at) {
                Some(Node::Dir) => {}
                Some(Node::Symlink(_)) => {
                    return Err(Self::refuse(
                        member,
                        format!("its parent '{}' is a symbolic link", show(&at)),
                    ))
                }
                Some(Node::File) => {
                    return Err(Self::refuse(
                        member,
                        format!("its parent '{}' is not a directory", show(&at)),
                    ))
                }
                None => {
                    self.count_entry(member)?;
                    DirBuilder::new()
                        .mode(0o700)
                        .create(self.dest.join(&at))
                        .map_err(|e| Self::write_error(member, e))?;
                    self.nodes.insert(at.clone(), Node::Dir);
                    out.directories += 1;
                }
            }
        }
        Ok(())
    }

    /// Resolves a symbolic link's target from the link's directory, following the links
    /// already made; refuses it if it leaves the sandbox or steps `..` out of anything but a
    /// directory this run made (a later member could otherwise turn that into a way out).
    fn check_link_target(&self, link: &Path, target: &[u8]) -> Result<(), String> {
        let shown = shown_name(target);
        let outside = || format!("symbolic link to '{shown}' leaves the sandbox");
        if target.contains(&0) {
            return Err(format!("symbolic link to '{shown}': the target holds a NUL byte"));
        }
        if target.first() == Some(&b'/') {
            return Err(outside());
        }
        let mut at: Vec<OsString> = link
            .parent()
            .map(|p| p.iter().map(OsStr::to_os_string).collect())
            .unwrap_or_default();
        let mut pending: Vec<Vec<u8>> = target.split(|b| *b == b'/').rev().map(<[u8]>::to_vec).collect();
        let mut hops = 0;
        while let Some(part) = pending.pop() {
            match part.as_slice() {
                b"" | b"." => {}
                b".." => {
                    let here: PathBuf = at.iter().collect();
                    if at.is_empty() {
                        return Err(outside());
                    }
                    if self.nodes.get(&here) != Some(&Node::Dir) {
                        return Err(format!(
                            "symbolic link to '{shown}' steps out of '{}', which is not a directory extracted before it",
                            show(&here)
                        ));
                    }
                    at.pop();
                }
                name => {
                    at.push(OsStr::from_bytes(name).to_os_string());
                    let here: PathBuf = at.iter().collect();
                    if let Some(Node::Symlink(next)) = self.nodes.get(&here) {
                        hops += 1;
                        if hops > MAX_LINK_HOPS {
                            return Err(format!("symbolic link to '{shown}' passes through too many links"));
                        }
                        at.pop();
                        // Targets in the map were checked to be relative when they were made.
                        pending.extend(next.split(|b| *b == b'/').rev().map(<[u8]>::to_vec));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Copies a member's content, telling a failing archive read from a failing write.
fn copy(from: &mut impl Read, to: &mut File, member: &str) -> Result<u64, Failure> {
    use std::io::Write;
    let mut buf = vec![0u8; 128 * 1024];
    let mut total = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Failure::Read(e)),
        };
        to.write_all(&buf[..n]).map_err(|e| Writer::write_error(member, e))?;
        total += n as u64;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sniffs_magic_not_names() {
        assert_eq!(sniff(&[0x1f, 0x8b, 8, 0]), Some(Format::TarGz));
        assert_eq!(sniff(&[0x28, 0xb5, 0x2f, 0xfd, 0]), Some(Format::TarZst));
        let mut header = tar::Header::new_ustar();
        header.set_path("a").unwrap();
        header.set_cksum();
        assert_eq!(sniff(header.as_bytes()), Some(Format::Tar));
        let mut old = tar::Header::new_old();
        old.set_path("a").unwrap();
        old.set_cksum();
        assert_eq!(sniff(old.as_bytes()), Some(Format::Tar), "a v7 header, by its checksum");
        old.as_mut_bytes()[0] = b'b';
        assert_eq!(sniff(old.as_bytes()), None, "a wrong checksum");
        assert_eq!(sniff(&[0u8; 512]), None, "zeros are no header");
        assert_eq!(sniff(b"PK\x03\x04"), None);
    }

    #[test]
    fn member_paths() {
        let check = |raw: &str, want: Result<Option<&str>, &str>| {
            let got = member_path(raw.as_bytes()).map(|p| p.map(|p| p.display().to_string()));
            assert_eq!(got, want.map(|o| o.map(String::from)).map_err(String::from), "{raw:?}");
        };
        check("a/b", Ok(Some("a/b")));
        check("./a//b/", Ok(Some("a/b")));
        check("./", Ok(None));
        check("/etc/passwd", Err("absolute path"));
        check("../x", Err("path leaves the sandbox"));
        check("a/../../x", Err("path leaves the sandbox"));
        check("a/..", Err("path leaves the sandbox"));
    }

    #[test]
    fn link_targets_resolve_through_earlier_links() {
        let dest = Path::new("/nonexistent");
        let limits = Limits {
            max_bytes: 0,
            max_files: 0,
        };
        let mut w = Writer {
            dest,
            limits: &limits,
            nodes: HashMap::new(),
            entries: 0,
        };
        w.nodes.insert("d".into(), Node::Dir);
        w.nodes.insert("d/e".into(), Node::Dir);
        w.nodes.insert("dot".into(), Node::Symlink(b".".to_vec()));
        w.nodes.insert("deep".into(), Node::Symlink(b"d/e".to_vec()));
        w.nodes.insert("loop".into(), Node::Symlink(b"loop".to_vec()));
        let check = |link: &str, target: &str, ok: bool| {
            let got = w.check_link_target(Path::new(link), target.as_bytes());
            assert_eq!(got.is_ok(), ok, "{link} -> {target}: {got:?}");
        };
        check("l", "d/e", true);
        check("d/e/l", "../../x", true);
        check("d/e/l", "../../../x", false);
        check("l", "..", false);
        check("l", "/etc", false);
        check("l", "deep/../..", true);
        check("l", "deep/../../..", false);
        // `dot` is the top, so `dot/..` is outside.
        check("l", "dot/..", false);
        // `later` does not exist yet: it could become a link, so no `..` out of it.
        check("l", "later/..", false);
        check("l", "later/x", true);
        check("l", "loop/x", false);
    }
}
