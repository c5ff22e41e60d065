//! A throwaway PostgreSQL server for tests: `initdb` into a temporary directory, SCRAM
//! password authentication for one role on a free loopback TCP port and on a Unix socket in
//! that directory, started with `pg_ctl -w`; stopped and removed on `Drop`.
//!
//! The server is Debian's `postgresql` package (tools/apt-packages.txt): its programs live in
//! `/usr/lib/postgresql/<major>/bin`, the newest major is used. PostgreSQL refuses to run as
//! root, and `make test` runs as root on a fresh machine: then every server program runs as
//! the package's unprivileged `postgres` user through `runuser -u postgres --` (an argv, no
//! shell), and the directory is handed to that user first. As any other user it runs as is.

#![allow(dead_code, clippy::unwrap_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub struct PgServer {
    dir: tempfile::TempDir,
    /// `/usr/lib/postgresql/<major>/bin`.
    pub bin: PathBuf,
    pub port: u16,
    pub user: &'static str,
    pub password: String,
}

/// The newest installed server's bin directory.
fn server_bin() -> PathBuf {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let major = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").is_file().then_some((major, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, bin)| bin)
        .expect("no PostgreSQL server: install the 'postgresql' package (tools/apt-packages.txt)")
}

fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// `program args`, as `postgres` when we are root.
fn as_server_user(program: &Path, args: &[&str]) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program).args(args);
        c
    } else {
        let mut c = Command::new(program);
        c.args(args);
        c
    }
}

fn check(what: &str, out: Output) -> Output {
    assert!(
        out.status.success(),
        "{what}: {}\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl PgServer {
    pub fn start() -> PgServer {
        let bin = server_bin();
        let dir = tempfile::Builder::new().prefix("hx-pg-").tempdir().unwrap();
        let password = format!("pw-{}-{}", std::process::id(), free_port());
        let pwfile = dir.path().join("pwfile");
        std::fs::write(&pwfile, format!("{password}\n")).unwrap();
        if is_root() {
            let pg = nix::unistd::User::from_name("postgres")
                .unwrap()
                .expect("the 'postgres' user (made by the postgresql package)");
            for p in [dir.path(), &pwfile] {
                nix::unistd::chown(p, Some(pg.uid), Some(pg.gid)).unwrap();
            }
        }
        let data = dir.path().join("data");
        let (data_s, pw_s) = (data.to_str().unwrap(), pwfile.to_str().unwrap());
        check(
            "initdb",
            as_server_user(
                &bin.join("initdb"),
                &[
                    "-D",
                    data_s,
                    "-U",
                    "hx",
                    &format!("--pwfile={pw_s}"),
                    "--auth-local=scram-sha-256",
                    "--auth-host=scram-sha-256",
                    "-E",
                    "UTF8",
                    "--locale=C",
                    "--no-sync",
                ],
            )
            .output()
            .unwrap(),
        );
        let conf = data.join("postgresql.conf");
        let base = std::fs::read_to_string(&conf).unwrap();
        let log = dir.path().join("log");
        // A port picked free can be taken before the server binds it: try a few.
        for attempt in 0.. {
            let port = free_port();
            std::fs::write(
                &conf,
                format!(
                    "{base}\nport = {port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{}'\nfsync = off\n",
                    dir.path().display()
                ),
            )
            .unwrap();
            let out = as_server_user(
                &bin.join("pg_ctl"),
                &["-D", data_s, "-l", log.to_str().unwrap(), "-w", "-t", "60", "start"],
            )
            .output()
            .unwrap();
            if out.status.success() {
                return PgServer {
                    dir,
                    bin,
                    port,
                    user: "hx",
                    password,
                };
            }
            let log_text = std::fs::read_to_string(&log).unwrap_or_default();
            assert!(
                attempt < 3 && log_text.contains("could not bind"),
                "pg_ctl start: {}\n{log_text}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        unreachable!()
    }

    /// The directory holding the server's Unix socket.
    pub fn socket_dir(&self) -> &Path {
        self.dir.path()
    }

    /// A client program of the server's version (`psql`, `pg_dump`, ...) connected as the
    /// test role over TCP, the password in the environment.
    pub fn client(&self, program: &str) -> Command {
        let mut c = Command::new(self.bin.join(program));
        c.env("PGHOST", "127.0.0.1")
            .env("PGPORT", self.port.to_string())
            .env("PGUSER", self.user)
            .env("PGPASSWORD", &self.password)
            .env("PGDATABASE", "postgres");
        c
    }

    /// Runs `sql` on `db`; returns psql's unaligned, tuples-only output.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = check(
            "psql",
            self.client("psql")
                .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql])
                .output()
                .unwrap(),
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// The names of the databases on the server, from `psql -l`.
    pub fn databases(&self) -> Vec<String> {
        let out = check(
            "psql -l",
            self.client("psql").args(["-X", "-l", "-A", "-t"]).output().unwrap(),
        );
        let mut names: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .filter_map(|l| l.split('|').next())
            .filter(|n| !n.is_empty() && !n.contains('='))
            .map(String::from)
            .collect();
        names.sort();
        names
    }

    /// `pg_dump args db`, writing `out`.
    pub fn dump(&self, db: &str, args: &[&str], out: &Path) {
        check(
            "pg_dump",
            self.client("pg_dump")
                .args(args)
                .arg(format!("--file={}", out.display()))
                .arg(db)
                .output()
                .unwrap(),
        );
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = as_server_user(
            &self.bin.join("pg_ctl"),
            &["-D", data.to_str().unwrap_or(""), "-m", "immediate", "-w", "stop"],
        )
        .output();
        // The TempDir removes the directory when it drops, after this.
    }
}
