//! Reading a small file that is not backup data (a state record, a pidfile, a CA bundle)
//! without trusting what is at its path.
//!
//! Whatever a path names, a run must end and stay in bounded memory: a FIFO blocks `open`
//! until a writer comes (forever, when none does), `/dev/zero` never ends, a 2 GB file read
//! whole takes 2 GB. So [`open`] and [`read`] open with `O_NONBLOCK` (a FIFO opens at once
//! instead of waiting for a writer), `O_NOCTTY` and `O_CLOEXEC`, and `O_NOFOLLOW` when
//! links must not be followed; then `fstat` the descriptor (not the path, which may have
//! changed meanwhile) and refuse anything but a regular file, naming the path and what it
//! is; then clear `O_NONBLOCK`. [`read`] also refuses a file larger than its cap, from
//! `st_size` and again while reading (at most `cap + 1` bytes are ever read, should the
//! file grow in between).
//!
//! Every error names the path; none quotes the file's content. This is the one way the
//! project reads such a file: state, lock and log files ([`Follow::No`]), pidfiles, CA
//! files and bundles, the mount table ([`Follow::Yes`]).

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Whether the last component of the path may be a symbolic link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Follow {
    /// A link is refused ([`SmallFileError::Link`]): state files, lock files.
    No,
    /// A link is followed (its target is checked like any file): pidfiles, CA bundles.
    Yes,
}

#[derive(Debug, thiserror::Error)]
pub enum SmallFileError {
    #[error("'{}' does not exist", path.display())]
    Missing { path: PathBuf },
    #[error("'{}' is a symbolic link, which is never followed here", path.display())]
    Link { path: PathBuf },
    #[error("'{}' is {kind}, not a regular file", path.display())]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("'{}' is larger than {max} bytes{}", path.display(), size_note(*size))]
    TooLarge {
        path: PathBuf,
        /// Its size when `fstat` told it; `None` when it grew while being read.
        size: Option<u64>,
        max: u64,
    },
    #[error("cannot {action} '{}': {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
}

fn size_note(size: Option<u64>) -> String {
    size.map(|s| format!(" ({s} bytes)")).unwrap_or_default()
}

impl SmallFileError {
    /// The path the error is about.
    pub fn path(&self) -> &Path {
        match self {
            SmallFileError::Missing { path }
            | SmallFileError::Link { path }
            | SmallFileError::NotRegular { path, .. }
            | SmallFileError::TooLarge { path, .. }
            | SmallFileError::Io { path, .. } => path,
        }
    }

    /// True when nothing is at the path.
    pub fn is_missing(&self) -> bool {
        matches!(self, SmallFileError::Missing { .. })
    }
}

/// What a file that is not regular is, for a message: "a FIFO", "a directory".
pub fn kind_of(file_type: std::fs::FileType) -> &'static str {
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_char_device() {
        "a character device"
    } else if file_type.is_block_device() {
        "a block device"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_symlink() {
        "a symbolic link"
    } else if file_type.is_file() {
        "a regular file"
    } else {
        "of an unknown type"
    }
}

/// Opens `path` with `options` (read, write, create, mode: the caller's) as a regular file,
/// never blocking on a special file and, with [`Follow::No`], never through a link. The
/// descriptor is blocking again when returned. `options`' custom flags are replaced.
pub fn open(options: &mut OpenOptions, path: &Path, follow: Follow) -> Result<File, SmallFileError> {
    let mut flags = libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC;
    if follow == Follow::No {
        flags |= libc::O_NOFOLLOW;
    }
    let file = options.custom_flags(flags).open(path).map_err(|source| {
        let path = path.to_path_buf();
        match source.raw_os_error() {
            Some(libc::ENOENT) => SmallFileError::Missing { path },
            Some(libc::ELOOP) if follow == Follow::No => SmallFileError::Link { path },
            // A socket, or a FIFO opened for writing without a reader: say which.
            Some(libc::ENXIO) => {
                let meta = match follow {
                    Follow::No => std::fs::symlink_metadata(&path),
                    Follow::Yes => std::fs::metadata(&path),
                };
                match meta {
                    Ok(meta) => SmallFileError::NotRegular {
                        kind: kind_of(meta.file_type()),
                        path,
                    },
                    Err(_) => SmallFileError::Io {
                        action: "open",
                        path,
                        source,
                    },
                }
            }
            _ => SmallFileError::Io {
                action: "open",
                path,
                source,
            },
        }
    })?;
    let meta = file.metadata().map_err(|source| SmallFileError::Io {
        action: "stat",
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.file_type().is_file() {
        return Err(SmallFileError::NotRegular {
            path: path.to_path_buf(),
            kind: kind_of(meta.file_type()),
        });
    }
    set_blocking(&file).map_err(|source| SmallFileError::Io {
        action: "clear O_NONBLOCK on",
        path: path.to_path_buf(),
        source,
    })?;
    Ok(file)
}

fn set_blocking(file: &File) -> io::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, OFlag};
    let flags = OFlag::from_bits_truncate(fcntl(file, FcntlArg::F_GETFL)?);
    if flags.contains(OFlag::O_NONBLOCK) {
        fcntl(file, FcntlArg::F_SETFL(flags - OFlag::O_NONBLOCK))?;
    }
    Ok(())
}

/// The whole content of the regular file `path`, at most `max_bytes` of it (a larger file is
/// an error, not a truncated read).
pub fn read(path: &Path, max_bytes: u64, follow: Follow) -> Result<Vec<u8>, SmallFileError> {
    let file = open(OpenOptions::new().read(true), path, follow)?;
    read_open(file, path, max_bytes)
}

/// [`read`], `None` when nothing is at the path.
pub fn read_if_exists(path: &Path, max_bytes: u64, follow: Follow) -> Result<Option<Vec<u8>>, SmallFileError> {
    match read(path, max_bytes, follow) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.is_missing() => Ok(None),
        Err(e) => Err(e),
    }
}

/// The content of a file [`open`] returned, capped as [`read`] does.
fn read_open(file: File, path: &Path, max_bytes: u64) -> Result<Vec<u8>, SmallFileError> {
    let io_error = |source| SmallFileError::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    };
    let size = file.metadata().map_err(io_error)?.len();
    if size > max_bytes {
        return Err(SmallFileError::TooLarge {
            path: path.to_path_buf(),
            size: Some(size),
            max: max_bytes,
        });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(max_bytes.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io_error)?;
    if bytes.len() as u64 > max_bytes {
        return Err(SmallFileError::TooLarge {
            path: path.to_path_buf(),
            size: None,
            max: max_bytes,
        });
    }
    Ok(bytes)
}

/// The last `max_bytes` of the regular file `path` (all of it when smaller), and how many
/// bytes before them were left unread: for logs that only grow, whose recent end matters.
pub fn read_tail(path: &Path, max_bytes: u64, follow: Follow) -> Result<(Vec<u8>, u64), SmallFileError> {
    use std::io::{Seek, SeekFrom};
    let mut file = open(OpenOptions::new().read(true), path, follow)?;
    let io_error = |source| SmallFileError::Io {
        action: "read",
        path: path.to_path_buf(),
        source,
    };
    let skipped = file.metadata().map_err(io_error)?.len().saturating_sub(max_bytes);
    file.seek(SeekFrom::Start(skipped)).map_err(io_error)?;
    let mut bytes = Vec::new();
    file.take(max_bytes).read_to_end(&mut bytes).map_err(io_error)?;
    Ok((bytes, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn fifo(path: &Path) {
        nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
    }

    #[test]
    fn reads_a_regular_file_within_its_cap() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("f");
        std::fs::write(&p, b"12345").expect("write");
        assert_eq!(read(&p, 5, Follow::No).expect("read"), b"12345");
        let err = read(&p, 4, Follow::No).expect_err("too large");
        assert_eq!(
            err.to_string(),
            format!("'{}' is larger than 4 bytes (5 bytes)", p.display())
        );
        assert!(read_if_exists(&dir.path().join("none"), 5, Follow::No)
            .expect("missing is fine")
            .is_none());
    }

    #[test]
    fn special_files_are_refused_at_once_and_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("fifo");
        fifo(&p);
        let started = Instant::now();
        for follow in [Follow::No, Follow::Yes] {
            let err = read(&p, 100, follow).expect_err("a FIFO");
            assert_eq!(
                err.to_string(),
                format!("'{}' is a FIFO, not a regular file", p.display())
            );
            let err = open(OpenOptions::new().write(true), &p, follow).expect_err("a FIFO, for writing");
            assert!(err.to_string().contains("is a FIFO"), "{err}");
        }
        let err = read(Path::new("/dev/zero"), 100, Follow::Yes).expect_err("a device");
        assert_eq!(err.to_string(), "'/dev/zero' is a character device, not a regular file");
        let socket = dir.path().join("socket");
        let _listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind");
        let err = read(&socket, 100, Follow::No).expect_err("a socket");
        assert_eq!(
            err.to_string(),
            format!("'{}' is a socket, not a regular file", socket.display())
        );
        let err = read(dir.path(), 100, Follow::Yes).expect_err("a directory");
        assert!(err.to_string().ends_with("is a directory, not a regular file"), "{err}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn links_are_refused_or_followed_as_asked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("target");
        std::fs::write(&target, b"x").expect("write");
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        let err = read(&link, 10, Follow::No).expect_err("a link");
        assert_eq!(
            err.to_string(),
            format!("'{}' is a symbolic link, which is never followed here", link.display())
        );
        assert_eq!(read(&link, 10, Follow::Yes).expect("followed"), b"x");
        let zero = dir.path().join("zero");
        std::os::unix::fs::symlink("/dev/zero", &zero).expect("symlink");
        assert!(read(&zero, 10, Follow::Yes)
            .expect_err("a device behind a link")
            .to_string()
            .contains("is a character device"));
    }

    #[test]
    fn a_tail_is_the_end_of_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("log");
        std::fs::write(&p, b"0123456789").expect("write");
        assert_eq!(read_tail(&p, 4, Follow::No).expect("tail"), (b"6789".to_vec(), 6));
        assert_eq!(read_tail(&p, 40, Follow::No).expect("all"), (b"0123456789".to_vec(), 0));
        assert!(read_tail(Path::new("/dev/zero"), 4, Follow::Yes).is_err());
    }

    #[test]
    fn a_huge_sparse_file_is_refused_without_reading_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("huge");
        File::create(&p).expect("create").set_len(2 << 30).expect("set_len");
        let started = Instant::now();
        let err = read(&p, 1 << 20, Follow::No).expect_err("too large");
        assert!(
            err.to_string()
                .contains("is larger than 1048576 bytes (2147483648 bytes)"),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
