//! PostgreSQL restore tests, the OS side: recognise a dump, make a scratch database on a
//! server, restore the dump into it, run queries there, and drop it again.
//!
//! Everything goes through PostgreSQL's own client programs (`psql`, `pg_restore`), run by
//! [`command::run`] as argv lists with a timeout: no libpq binding, no SQL driver, nothing
//! but the tools an operator would use by hand, so a dump that restores here restores there.
//!
//! Design decisions:
//! - The connection travels in the environment (`PGHOST`, `PGPORT`, `PGUSER`, `PGPASSWORD`,
//!   `PGDATABASE`, `PGCONNECT_TIMEOUT`), never in argv: the password cannot be seen in the
//!   process table or in a command line quoted by an error, and a host or database name
//!   cannot be read as an option or as a conninfo string. The one database name that is put
//!   in argv (`pg_restore --dbname=`) is the scratch name, which we made from `[a-z0-9_]`.
//! - The scratch database is `hx_restore_<unix time>_<pid>_<n>`, created from `template0`
//!   (what pg_dump's documentation asks for, so a dump's own extensions and objects do not
//!   collide with `template1`'s). [`ScratchDatabase`] is a guard: dropped explicitly with
//!   the outcome reported, or, on any early return or panic, by its `Drop`.
//!   `DROP DATABASE ... WITH (FORCE)` (PostgreSQL 13+) ends sessions still connected, e.g.
//!   a `pg_restore` killed at the timeout; older servers get their sessions terminated first.
//! - The format is recognised from the file itself: custom archives start with `PGDMP`, tar
//!   archives hold `toc.dat` first, directory archives are a directory with `toc.dat`; a
//!   plain dump is text whose first statement is SQL. Anything else is refused before the
//!   server is touched.
//! - A plain script runs in `psql`, which obeys every meta-command its lexer finds outside a
//!   string, comment or COPY data: `\!` runs a shell command, `\o |cmd` and `\g |cmd` pipe
//!   into one, `\connect` leaves the scratch database. Two layers keep them from running:
//!   1. [`reliability_core::sql_screen`] reads the script as psql's lexer does and refuses
//!      any meta-command (pg_dump's own `\restrict`/`\unrestrict` lines aside) before the
//!      server is touched, naming the line.
//!   2. When this psql has `\restrict` (13.22, 14.19, 15.14, 16.10, 17.6, 18+), the script
//!      is fed on stdin after `-c '\restrict <random key>'`: psql itself then refuses every
//!      meta-command, whatever the screener missed; with `ON_ERROR_STOP` the restore fails
//!      there. pg_dump's own `\restrict`/`\unrestrict` lines are fed as empty lines (line
//!      numbers in psql's messages stay the script's). The lines are screened again as they
//!      are fed, so a file changed after the first screening is cut off, and reported.
//!      An older psql has only the first layer.
//! - An archive is restored by a throwaway login role without privileges that owns the
//!   scratch database, when the configured user is a superuser
//!   (`ScratchDatabase::restore_role`): SQL in the archive that needs a superuser fails.
//!   A plain dump cannot be: its `ALTER ... OWNER TO` lines need the source's roles.
//! - A dump made with `pg_dump --create`/`--clean` or by `pg_dumpall` would create or drop
//!   the *real* database by name; such a script is refused with the line named. (Restoring an
//!   archive is safe: `pg_restore` without `--create`/`--clean` restores into `--dbname`.)
//! - Query results come back as CSV (`psql --csv`), parsed here: a value may hold commas,
//!   quotes or newlines. psql prints NULL and the empty string alike in CSV.

use crate::command::{self, CommandError, CommandOutput, Feeder};
use reliability_core::sql_screen::{self, LineKind, ScreenError, Screener};
use std::io::{BufRead, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How to reach a server. `Debug` leaves the password out.
#[derive(Clone)]
pub struct Connection {
    /// A host name or address, or a directory holding the server's Unix socket; `None`:
    /// libpq's default (the environment's `PGHOST`, else the default socket directory).
    pub host: Option<String>,
    pub port: u16,
    pub user: Option<String>,
    pub password: Option<String>,
    /// The database connected to for `CREATE DATABASE` and `DROP DATABASE`.
    pub maintenance_db: String,
    /// Where `psql` and `pg_restore` are; `None`: looked up in `PATH`.
    pub bin_dir: Option<PathBuf>,
    /// Seconds libpq waits for a connection (`PGCONNECT_TIMEOUT`).
    pub connect_timeout: u64,
    /// The most any one program (restore, query, drop) may take before it is killed.
    pub timeout: Duration,
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Connection")
            .field("endpoint", &self.endpoint())
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "********"))
            .field("maintenance_db", &self.maintenance_db)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Where the server is, as people write it: `db1:5432`, or the socket's path.
    pub fn endpoint(&self) -> String {
        match self.host.as_deref() {
            Some(h) if h.starts_with('/') => format!("{}/.s.PGSQL.{}", h.trim_end_matches('/'), self.port),
            Some(h) if h.contains(':') => format!("[{h}]:{}", self.port),
            Some(h) => format!("{h}:{}", self.port),
            None => format!("the default socket, port {}", self.port),
        }
    }

    fn program(&self, name: &str) -> PathBuf {
        match &self.bin_dir {
            Some(dir) => dir.join(name),
            None => PathBuf::from(name),
        }
    }

    /// The libpq environment for a session on `database`.
    fn env(&self, database: &str) -> Vec<(&'static str, String)> {
        let mut env = vec![
            ("PGPORT", self.port.to_string()),
            ("PGDATABASE", database.to_string()),
            ("PGCONNECT_TIMEOUT", self.connect_timeout.max(1).to_string()),
            ("PGAPPNAME", "hx.reliability restore_test".to_string()),
        ];
        for (key, value) in [
            ("PGHOST", &self.host),
            ("PGUSER", &self.user),
            ("PGPASSWORD", &self.password),
        ] {
            if let Some(v) = value {
                env.push((key, v.clone()));
            }
        }
        env
    }

    /// Runs `psql` (no psqlrc, stop at the first error) with `args` on `database`.
    fn psql(&self, database: &str, args: &[&str]) -> Result<CommandOutput, PgError> {
        let mut argv: Vec<String> = ["-X", "-q", "-v", "ON_ERROR_STOP=1"].map(String::from).to_vec();
        argv.extend(args.iter().map(|a| a.to_string()));
        self.run("psql", &argv, database)
    }

    fn run(&self, program: &str, args: &[String], database: &str) -> Result<CommandOutput, PgError> {
        self.run_fed(program, args, database, None).map(|(out, _)| out)
    }

    /// [`Self::run`], with `feed` writing the program's stdin when given.
    fn run_fed(
        &self,
        program: &str,
        args: &[String],
        database: &str,
        feed: Option<Feeder>,
    ) -> Result<(CommandOutput, std::io::Result<()>), PgError> {
        let env = self.env(database);
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let path = self.program(program);
        let result = match feed {
            Some(feed) => command::run_fed(&path, args, &env, feed, self.timeout),
            None => command::run(&path, args, &env, self.timeout).map(|out| (out, Ok(()))),
        };
        result.map_err(|source| match source {
            CommandError::Spawn { .. } => PgError::Tool {
                source,
                hint: if self.bin_dir.is_some() {
                    "check bin_dir"
                } else {
                    "install the PostgreSQL client programs or set bin_dir"
                },
            },
            CommandError::Timeout { .. } => PgError::Timeout {
                endpoint: self.endpoint(),
                source,
            },
        })
    }

    /// Whether this `psql` has `\restrict` (asks `psql --version`; no connection).
    pub fn psql_restricts(&self) -> Result<bool, PgError> {
        let out = self.run("psql", &["--version".to_string()], &self.maintenance_db)?;
        Ok(out.success() && sql_screen::psql_has_restrict(&out.stdout))
    }

    /// Connects to the maintenance database and returns the server's `server_version_num`.
    /// Fails with [`PgError::Connect`] naming the endpoint when the server cannot be reached
    /// or refuses the login.
    pub fn server_version(&self) -> Result<u32, PgError> {
        let out = self.psql(
            &self.maintenance_db,
            &["-A", "-t", "-c", "SELECT current_setting('server_version_num')"],
        )?;
        if !out.success() {
            return Err(PgError::Connect {
                endpoint: self.endpoint(),
                reason: reason(&out),
            });
        }
        out.stdout.trim().parse().map_err(|_| PgError::Sql {
            what: format!("read the server version at {}", self.endpoint()),
            reason: format!("unexpected answer '{}'", out.stdout.trim()),
        })
    }
}

/// Why a step could not be done. No variant ever holds the password.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("cannot connect to PostgreSQL at {endpoint}: {reason}")]
    Connect { endpoint: String, reason: String },
    #[error("{source} ({hint})")]
    Tool { source: CommandError, hint: &'static str },
    #[error("{source} (server {endpoint})")]
    Timeout { endpoint: String, source: CommandError },
    #[error("could not {what}: {reason}")]
    Sql { what: String, reason: String },
}

/// What the first line(s) of a failed client run said: its `error:`/`ERROR:` lines, the
/// program's name prefix removed, joined on one line.
fn reason(out: &CommandOutput) -> String {
    let text = if out.stderr.trim().is_empty() {
        &out.stdout
    } else {
        &out.stderr
    };
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|l| {
            l.strip_prefix("psql: error: ")
                .or_else(|| l.strip_prefix("pg_restore: error: "))
                .or_else(|| l.strip_prefix("psql: "))
                .or_else(|| l.strip_prefix("pg_restore: "))
                .unwrap_or(l)
        })
        .collect();
    if lines.is_empty() {
        return match out.exit_code {
            Some(c) => format!("exit code {c}, no message"),
            None => "killed by a signal".to_string(),
        };
    }
    // The errors, not the detail lines around them, when there are many.
    let errors: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| l.contains("error") || l.contains("ERROR") || l.contains("FATAL"))
        .collect();
    let chosen = if errors.is_empty() { lines } else { errors };
    let mut joined = chosen.into_iter().take(4).collect::<Vec<_>>().join("; ");
    if joined.len() > 1000 {
        let mut cut = 1000;
        while !joined.is_char_boundary(cut) {
            cut -= 1;
        }
        joined.truncate(cut);
        joined.push_str("...");
    }
    joined
}

/// The kinds of pg_dump output this module restores.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DumpFormat {
    /// `pg_dump -Fc`: restored by `pg_restore`.
    Custom,
    /// `pg_dump -Ft`: restored by `pg_restore`.
    Tar,
    /// `pg_dump -Fd`, a directory: restored by `pg_restore`.
    Directory,
    /// `pg_dump -Fp`, an SQL script: run by `psql`.
    Plain,
}

impl DumpFormat {
    pub fn name(self) -> &'static str {
        match self {
            DumpFormat::Custom => "custom",
            DumpFormat::Tar => "tar",
            DumpFormat::Directory => "directory",
            DumpFormat::Plain => "plain",
        }
    }
}

/// The bytes read to recognise a dump.
const HEAD: usize = 64 * 1024;

/// Statements a plain dump (or a hand-written restore script) starts with.
const SQL_STARTS: &[&str] = &[
    "set",
    "select",
    "create",
    "alter",
    "insert",
    "copy",
    "begin",
    "start",
    "commit",
    "comment",
    "grant",
    "revoke",
    "update",
    "delete",
    "with",
    "do",
    "drop",
    "truncate",
    "\\restrict",
    "\\set",
];

/// Recognises a dump from its first bytes (pure: `head` is at most [`HEAD`] bytes of it).
pub fn classify(head: &[u8]) -> Option<DumpFormat> {
    if head.starts_with(b"PGDMP") {
        return Some(DumpFormat::Custom);
    }
    // A tar archive written by pg_dump: a ustar header whose first member is toc.dat.
    if head.len() >= 263 && &head[257..262] == b"ustar" && head.starts_with(b"toc.dat\0") {
        return Some(DumpFormat::Tar);
    }
    if head.contains(&0) {
        return None;
    }
    let text = String::from_utf8_lossy(head);
    let first = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("--"))?;
    let word = first
        .split(|c: char| c.is_whitespace() || c == ';' || c == '(')
        .next()
        .unwrap_or("")
        .to_ascii_lowercase();
    SQL_STARTS.contains(&word.as_str()).then_some(DumpFormat::Plain)
}

/// Reads the start of `path` (or looks into the directory) and recognises the dump.
/// `Ok(None)`: it is no dump this module knows.
pub fn detect_format(path: &Path) -> std::io::Result<Option<DumpFormat>> {
    if path.is_dir() {
        return Ok(path.join("toc.dat").is_file().then_some(DumpFormat::Directory));
    }
    let mut head = Vec::with_capacity(HEAD);
    std::fs::File::open(path)?.take(HEAD as u64).read_to_end(&mut head)?;
    Ok(classify(&head))
}

/// True when `head` starts like a gzip stream: said in the refusal, as a hint.
pub fn is_gzip(path: &Path) -> bool {
    let mut magic = [0u8; 2];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| magic == [0x1f, 0x8b])
}

/// What in a plain script must not run against a shared server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Refused {
    /// A psql meta-command, or what psql could read as one ([`sql_screen`]).
    Meta(ScreenError),
    /// `CREATE`/`DROP`/`ALTER DATABASE` at the start of a line: the line and its start.
    Database { line: usize, text: String },
}

/// What [`screen_plain_script`] found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Screening {
    /// The first thing that must not run.
    pub refused: Option<Refused>,
    /// The script says it was written by pg_dump but lacks pg_dump's closing line: it was
    /// cut short. (psql would run a truncated COPY to its end and succeed.)
    pub truncated: bool,
}

const DUMP_BEGINS: &str = "-- PostgreSQL database dump";
const DUMP_ENDS: &str = "-- PostgreSQL database dump complete";

/// Scans a plain script (lines without their `\n`) for what must not run against a shared
/// server: psql meta-commands (by [`sql_screen`], which follows psql's lexer) and
/// `CREATE`/`DROP`/`ALTER DATABASE` statements starting a line outside COPY data; and for a
/// pg_dump script without its last line. Pure over the lines.
pub fn screen_plain_script<I: Iterator<Item = Vec<u8>>>(lines: I) -> Screening {
    let mut screener = Screener::new();
    let (mut begins, mut ends) = (false, false);
    for (i, line) in lines.enumerate() {
        match screener.line(&line) {
            Err(e) => {
                return Screening {
                    refused: Some(Refused::Meta(e)),
                    truncated: false,
                }
            }
            Ok(LineKind::CopyData | LineKind::PgDumpMeta) => continue,
            Ok(LineKind::Sql) => {}
        }
        let line = String::from_utf8_lossy(&line);
        let trimmed = line.trim_start();
        if trimmed.starts_with("--") {
            begins |= trimmed.trim_end() == DUMP_BEGINS;
            ends |= trimmed.trim_end() == DUMP_ENDS;
            continue;
        }
        let upper: String = trimmed.chars().take(40).collect::<String>().to_ascii_uppercase();
        let words: Vec<&str> = upper.split_whitespace().collect();
        if matches!(words.as_slice(), [verb, "DATABASE", ..] if matches!(*verb, "CREATE" | "DROP" | "ALTER")) {
            let mut text: String = trimmed.chars().take(80).collect();
            if trimmed.chars().count() > 80 {
                text.push_str("...");
            }
            return Screening {
                refused: Some(Refused::Database { line: i + 1, text }),
                truncated: false,
            };
        }
    }
    Screening {
        refused: None,
        truncated: begins && !ends,
    }
}

/// The lines of a file, without their `\n`.
fn file_lines(path: &Path) -> std::io::Result<impl Iterator<Item = std::io::Result<Vec<u8>>>> {
    let reader = std::io::BufReader::new(std::fs::File::open(path)?);
    Ok(reader.split(b'\n'))
}

/// [`screen_plain_script`] over a file.
pub fn screen_plain_file(path: &Path) -> std::io::Result<Screening> {
    let mut error = None;
    let lines = file_lines(path)?.map_while(|l| match l {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            error = Some(e);
            None
        }
    });
    let screening = screen_plain_script(lines);
    match error {
        Some(e) => Err(e),
        None => Ok(screening),
    }
}

/// Feeds a screened plain script to psql's stdin: screened again line by line as it goes (a
/// file changed since is cut off with an error), pg_dump's own `\restrict`/`\unrestrict`
/// lines left out as empty lines.
fn plain_feeder(path: PathBuf) -> Feeder {
    Box::new(move |out: &mut dyn Write| {
        let mut screener = Screener::new();
        let mut reader = std::io::BufReader::new(std::fs::File::open(&path)?);
        let mut line = Vec::new();
        loop {
            line.clear();
            if reader.read_until(b'\n', &mut line)? == 0 {
                return Ok(());
            }
            let body = line.strip_suffix(b"\n").unwrap_or(&line);
            match screener.line(body) {
                Err(e) => {
                    return Err(std::io::Error::other(format!(
                        "'{}' changed after it was screened: {e}",
                        path.display()
                    )))
                }
                Ok(LineKind::PgDumpMeta) => out.write_all(b"\n")?,
                Ok(LineKind::Sql | LineKind::CopyData) => out.write_all(&line)?,
            }
        }
    })
}

/// A key for `\restrict`: 32 random bytes from the kernel, as hex.
fn restrict_key() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// A unique scratch database name: `hx_restore_<unix seconds>_<pid>_<n>`, all `[a-z0-9_]`.
pub fn scratch_name(now: SystemTime) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let secs = now.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    format!(
        "hx_restore_{secs}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// How a restore went. A failed restore is an outcome, not an error: `reason` says why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestoreOutcome {
    pub ok: bool,
    /// The restoring program's own words when it failed (its `error:` lines).
    pub reason: Option<String>,
    pub duration: Duration,
}

/// What one query returned: every row, every column as text (NULL reads as "").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueryOutput {
    pub rows: Vec<Vec<String>>,
}

/// A database made for one restore test, dropped when the test is over.
pub struct ScratchDatabase<'a> {
    conn: &'a Connection,
    name: String,
    server_version: u32,
    /// The throwaway role an archive is restored as (named like the database), once made.
    role: Option<String>,
    /// Why an archive is restored as the configured superuser after all.
    warning: Option<String>,
    dropped: bool,
}

impl<'a> ScratchDatabase<'a> {
    /// Creates `name` (from [`scratch_name`]) on the server; `server_version` from
    /// [`Connection::server_version`] picks how it will be dropped.
    pub fn create(conn: &'a Connection, name: String, server_version: u32) -> Result<Self, PgError> {
        let out = conn.psql(
            &conn.maintenance_db,
            &["-c", &format!("CREATE DATABASE \"{name}\" TEMPLATE template0")],
        )?;
        if !out.success() {
            return Err(PgError::Sql {
                what: format!("create the scratch database '{name}' on {}", conn.endpoint()),
                reason: reason(&out),
            });
        }
        Ok(ScratchDatabase {
            conn,
            name,
            server_version,
            role: None,
            warning: None,
            dropped: false,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Why the restore ran with the configured user's privileges where a throwaway role
    /// was meant to run it (see [`Self::restore`]).
    pub fn warning(&self) -> Option<&str> {
        self.warning.as_deref()
    }

    /// For a superuser: a login role without any privilege (no superuser, createdb,
    /// createrole, replication, bypassrls), named like the database and owning it, with a
    /// random password (sent on stdin, never in argv); its connection when it can log in.
    /// `None` for any other user (the restore runs with that user's own, lesser privileges)
    /// and, with [`Self::warning`] set, when the role cannot be made or cannot log in (peer
    /// authentication, pg_hba.conf). The role goes with the database.
    fn restore_role(&mut self) -> Result<Option<Connection>, PgError> {
        let conn = self.conn;
        let out = conn.psql(
            &conn.maintenance_db,
            &[
                "-A",
                "-t",
                "-c",
                "SELECT rolsuper FROM pg_roles WHERE rolname = current_user",
            ],
        )?;
        if !out.success() || out.stdout.trim() != "t" {
            return Ok(None);
        }
        let who = conn.user.as_deref().unwrap_or("the default user");
        let password = restrict_key().map_err(|e| PgError::Sql {
            what: "make a password for the restore role".to_string(),
            reason: format!("cannot read /dev/urandom: {e}"),
        })?;
        let (name, role) = (self.name.clone(), self.name.clone());
        let sql = format!(
            "CREATE ROLE \"{role}\" LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD '{password}';\n\
             ALTER DATABASE \"{name}\" OWNER TO \"{role}\";\n"
        );
        let args: Vec<String> = ["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f", "-"]
            .map(String::from)
            .to_vec();
        let feed: Feeder = Box::new(move |w: &mut dyn Write| w.write_all(sql.as_bytes()));
        let (out, _) = conn.run_fed("psql", &args, &conn.maintenance_db, Some(feed))?;
        self.role = Some(role.clone());
        if !out.success() {
            self.warning = Some(format!(
                "could not make the restore role '{role}' ({}): the dump was restored as superuser '{who}'",
                reason(&out)
            ));
            return Ok(None);
        }
        let as_role = Connection {
            user: Some(role.clone()),
            password: Some(password),
            ..conn.clone()
        };
        let out = as_role.psql(&self.name, &["-c", "SELECT 1"])?;
        if !out.success() {
            self.warning = Some(format!(
                "the restore role '{role}' cannot log in ({}): the dump was restored as superuser '{who}'",
                reason(&out)
            ));
            return Ok(None);
        }
        Ok(Some(as_role))
    }

    /// Restores `dump` into this database: archives with `pg_restore --no-owner
    /// --no-privileges --exit-on-error` (roles of the source server need not exist here),
    /// plain scripts with `psql -v ON_ERROR_STOP=1 [-c '\restrict KEY'] -f -`, fed on stdin
    /// by [`plain_feeder`] (see the module's notes).
    pub fn restore(&mut self, dump: &Path, format: DumpFormat) -> Result<RestoreOutcome, PgError> {
        let started = Instant::now();
        let out = match format {
            DumpFormat::Plain => {
                let mut args: Vec<String> = ["-X", "-q", "-v", "ON_ERROR_STOP=1"].map(String::from).to_vec();
                if self.conn.psql_restricts()? {
                    let key = restrict_key().map_err(|e| PgError::Sql {
                        what: "make a key for psql's \\restrict".to_string(),
                        reason: format!("cannot read /dev/urandom: {e}"),
                    })?;
                    args.extend(["-c".to_string(), format!("\\restrict {key}")]);
                }
                args.extend(["-f".to_string(), "-".to_string()]);
                let (out, fed) =
                    self.conn
                        .run_fed("psql", &args, &self.name, Some(plain_feeder(dump.to_path_buf())))?;
                if let Err(e) = fed {
                    return Ok(RestoreOutcome {
                        ok: false,
                        reason: Some(e.to_string()),
                        duration: started.elapsed(),
                    });
                }
                out
            }
            DumpFormat::Custom | DumpFormat::Tar | DumpFormat::Directory => {
                let as_role = self.restore_role()?;
                let args = vec![
                    "--no-owner".to_string(),
                    "--no-privileges".to_string(),
                    "--exit-on-error".to_string(),
                    format!("--format={}", format.name()),
                    format!("--dbname={}", self.name),
                    "--".to_string(),
                    dump.display().to_string(),
                ];
                as_role
                    .as_ref()
                    .unwrap_or(self.conn)
                    .run("pg_restore", &args, &self.name)?
            }
        };
        let ok = out.success();
        Ok(RestoreOutcome {
            ok,
            reason: (!ok).then(|| reason(&out)),
            duration: started.elapsed(),
        })
    }

    /// Runs `sql` here and returns its rows; `Err` holds the server's error.
    pub fn query(&self, sql: &str) -> Result<QueryOutput, String> {
        let out = self
            .conn
            .psql(&self.name, &["--csv", "-t", "-c", sql])
            .map_err(|e| e.to_string())?;
        if !out.success() {
            return Err(reason(&out));
        }
        Ok(QueryOutput {
            rows: parse_csv(&out.stdout),
        })
    }

    /// Drops the database (ending any session still on it). Reported, not silent: the
    /// caller says whether it is gone.
    pub fn drop_now(mut self) -> Result<(), PgError> {
        self.dropped = true;
        drop_database(self.conn, &self.name, self.server_version)?;
        self.drop_role()
    }

    /// Drops the restore role, if one was made (after the database it owned).
    fn drop_role(&mut self) -> Result<(), PgError> {
        let Some(role) = self.role.take() else {
            return Ok(());
        };
        let out = self.conn.psql(
            &self.conn.maintenance_db,
            &["-c", &format!("DROP ROLE IF EXISTS \"{role}\"")],
        )?;
        if out.success() {
            Ok(())
        } else {
            Err(PgError::Sql {
                what: format!("drop the restore role '{role}' at {}", self.conn.endpoint()),
                reason: reason(&out),
            })
        }
    }

    /// Leaves the database on the server (asked for, to look at a failed restore).
    /// The restore role is not kept: what it owns there passes to the configured user.
    pub fn keep(mut self) -> String {
        self.dropped = true;
        if let Some(role) = &self.role {
            let reassign = format!("REASSIGN OWNED BY \"{role}\" TO CURRENT_USER");
            let _ = self.conn.psql(&self.name, &["-c", &reassign]);
            let _ = self.drop_role();
        }
        std::mem::take(&mut self.name)
    }
}

impl Drop for ScratchDatabase<'_> {
    fn drop(&mut self) {
        if !self.dropped {
            let _ = drop_database(self.conn, &self.name, self.server_version);
            let _ = self.drop_role();
        }
    }
}

fn drop_database(conn: &Connection, name: &str, server_version: u32) -> Result<(), PgError> {
    let sql = if server_version >= 130_000 {
        format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)")
    } else {
        // Before 13: no FORCE; end the sessions ourselves (a restore killed at its timeout
        // may leave one behind for a moment), then drop.
        let terminate = format!("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{name}'");
        let out = conn.psql(&conn.maintenance_db, &["-c", &terminate])?;
        if !out.success() {
            return Err(PgError::Sql {
                what: format!("end the sessions on '{name}' at {}", conn.endpoint()),
                reason: reason(&out),
            });
        }
        format!("DROP DATABASE IF EXISTS \"{name}\"")
    };
    let out = conn.psql(&conn.maintenance_db, &["-c", &sql])?;
    if out.success() {
        Ok(())
    } else {
        Err(PgError::Sql {
            what: format!("drop the scratch database '{name}' at {}", conn.endpoint()),
            reason: reason(&out),
        })
    }
}

/// Parses psql's CSV (RFC 4180: fields quoted when they hold a comma, a quote or a line
/// break; quotes doubled). Pure.
pub fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut field = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    let mut any = false;
    while let Some(c) = chars.next() {
        any = true;
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => field.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut field)),
            (false, '\r') if chars.peek() == Some(&'\n') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                rows.push(std::mem::take(&mut row));
                any = false;
            }
            (false, c) => field.push(c),
        }
    }
    if any {
        row.push(field);
        rows.push(row);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_dumps_by_their_first_bytes() {
        let plain = "--\n-- PostgreSQL database dump\n--\n\n\\restrict abc\n\nSET statement_timeout = 0;\n";
        let mut tar = vec![0u8; 512];
        tar[..8].copy_from_slice(b"toc.dat\0");
        tar[257..263].copy_from_slice(b"ustar\0");
        let cases: &[(&[u8], Option<DumpFormat>)] = &[
            (b"PGDMP\x01\x0e\x00\x04\x08", Some(DumpFormat::Custom)),
            (&tar, Some(DumpFormat::Tar)),
            (plain.as_bytes(), Some(DumpFormat::Plain)),
            (b"  create table t (a int);", Some(DumpFormat::Plain)),
            (b"BEGIN;\nINSERT INTO t VALUES (1);", Some(DumpFormat::Plain)),
            (b"hello, this is not SQL\n", None),
            (b"-- only a comment\n", None),
            (b"", None),
            (b"\x1f\x8b\x08\x00\x00\x00\x00\x00", None),
            (b"SET x = 1;\0binary", None),
            (b"ustar", None),
        ];
        for (head, want) in cases {
            assert_eq!(classify(head), *want, "{:?}", String::from_utf8_lossy(head));
        }
    }

    #[test]
    fn screening_refuses_what_leaves_the_scratch_database_and_finds_truncation() {
        let check = |script: &str| screen_plain_script(script.split('\n').map(|l| l.as_bytes().to_vec()));
        let ok = "--\n-- PostgreSQL database dump\n--\n\\restrict k\nSET a = 1;\nCOPY public.t (a, b) FROM stdin;\n\\N\tx\n\\connect\tdata\nDROP DATABASE x;\n\\.\nSELECT 1;\n\\unrestrict k\n--\n-- PostgreSQL database dump complete\n--\n";
        assert_eq!(
            check(ok),
            Screening::default(),
            "COPY data and pg_dump's own meta-commands pass"
        );
        let cut = &ok[..ok.find("\\N").unwrap_or(0) + 3];
        assert_eq!(
            check(cut),
            Screening {
                refused: None,
                truncated: true
            }
        );
        assert!(
            !check("SELECT 1;\n").truncated,
            "a hand-written script has no pg_dump trailer to miss"
        );
        for (script, line, column) in [
            ("SET a = 1;\n\\connect orders\n", 2, 1),
            ("\n  \\! rm -rf /\n", 2, 3),
            ("SELECT 1; \\! rm -rf /\n", 1, 11),
            ("COPY t FROM stdin;\n1\n\\.\n\\c other\n", 4, 1),
        ] {
            match check(script).refused {
                Some(Refused::Meta(e)) => assert_eq!((e.line, e.column), (line, column), "{script:?}"),
                other => panic!("{script:?}: {other:?}"),
            }
        }
        for (script, line, text) in [
            ("DROP DATABASE orders;\n", 1, "DROP DATABASE orders;"),
            (
                "create database orders WITH TEMPLATE = template0;",
                1,
                "create database orders WITH TEMPLATE = template0;",
            ),
        ] {
            assert_eq!(
                check(script).refused,
                Some(Refused::Database {
                    line,
                    text: text.to_string()
                }),
                "{script:?}"
            );
        }
    }

    /// A `psql` that says it is `version`, records its argv and stdin, and succeeds.
    fn fake_psql(dir: &Path, version: &str) {
        use std::os::unix::fs::PermissionsExt;
        let script = format!(
            "#!/bin/sh\nif [ \"$1\" = --version ]; then echo 'psql (PostgreSQL) {version}'; exit 0; fi\n\
             printf '%s\\n' \"$@\" > {d}/argv\ncat > {d}/stdin\n",
            d = dir.display()
        );
        let psql = dir.join("psql");
        std::fs::write(&psql, script).expect("write");
        std::fs::set_permissions(&psql, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    #[test]
    fn plain_dumps_are_fed_after_restrict_with_pg_dumps_own_meta_lines_left_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let dump = dir.path().join("d.sql");
        let script = "--\n\\restrict k1\nSET a = 1;\nCOPY t (a) FROM stdin;\n\\N\n\\.\n\\unrestrict k1\n";
        std::fs::write(&dump, script).expect("write");
        let conn = Connection {
            host: None,
            port: 5432,
            user: None,
            password: None,
            maintenance_db: "postgres".into(),
            bin_dir: Some(dir.path().to_path_buf()),
            connect_timeout: 10,
            timeout: Duration::from_secs(30),
        };
        for (version, restricted) in [("15.18", true), ("15.13", false)] {
            fake_psql(dir.path(), version);
            let mut db = ScratchDatabase::create(&conn, "hx_restore_test".into(), 150_000).expect("create");
            let outcome = db.restore(&dump, DumpFormat::Plain).expect("restore");
            assert!(outcome.ok, "{outcome:?}");
            let argv = std::fs::read_to_string(dir.path().join("argv")).expect("argv");
            let argv: Vec<&str> = argv.lines().collect();
            let n = argv.len();
            assert_eq!(argv[n - 2..], ["-f", "-"], "{argv:?}");
            assert!(argv.contains(&"ON_ERROR_STOP=1"), "{argv:?}");
            if restricted {
                let key = argv[n - 3].strip_prefix("\\restrict ").unwrap_or("");
                assert_eq!(argv[n - 4], "-c", "{argv:?}");
                assert!(
                    key.len() == 64 && key.chars().all(|c| c.is_ascii_hexdigit()),
                    "{argv:?}"
                );
            } else {
                assert!(!argv.iter().any(|a| a.contains("restrict")), "{argv:?}");
            }
            let stdin = std::fs::read_to_string(dir.path().join("stdin")).expect("stdin");
            assert_eq!(stdin, "--\n\nSET a = 1;\nCOPY t (a) FROM stdin;\n\\N\n\\.\n\n");
            db.keep();
        }
    }

    #[test]
    fn csv_rows_with_quotes_commas_and_line_breaks() {
        assert_eq!(
            parse_csv(",,\"a,b\",\"x\"\"y\",\"l1\nl2\",1.5,t\n2\n"),
            vec![vec!["", "", "a,b", "x\"y", "l1\nl2", "1.5", "t"], vec!["2"]]
        );
        assert_eq!(parse_csv(""), Vec::<Vec<String>>::new());
        assert_eq!(parse_csv("1500"), vec![vec!["1500"]]);
    }

    #[test]
    fn endpoints_and_debug_never_show_the_password() {
        let mut c = Connection {
            host: Some("db1".into()),
            port: 5433,
            user: Some("backup".into()),
            password: Some("s3cret".into()),
            maintenance_db: "postgres".into(),
            bin_dir: None,
            connect_timeout: 10,
            timeout: Duration::from_secs(60),
        };
        assert_eq!(c.endpoint(), "db1:5433");
        assert!(!format!("{c:?}").contains("s3cret"));
        c.host = Some("/run/postgresql/".into());
        assert_eq!(c.endpoint(), "/run/postgresql/.s.PGSQL.5433");
        c.host = Some("::1".into());
        assert_eq!(c.endpoint(), "[::1]:5433");
    }

    #[test]
    fn scratch_names_are_unique_and_plain() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let (a, b) = (scratch_name(now), scratch_name(now));
        assert_ne!(a, b);
        assert!(a.starts_with("hx_restore_1700000000_") && a.len() <= 63, "{a}");
        assert!(a
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'));
    }
}
