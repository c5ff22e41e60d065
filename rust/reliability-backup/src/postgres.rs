//! `restore_test` for PostgreSQL: a `pg_dump` (custom, tar, directory or plain) is restored
//! into a scratch database on a server the user names, the user's queries are run there
//! and judged against their expectations, and the scratch database is dropped, on every
//! path.
//!
//! The steps and what a failure in each means:
//! 1. The dump is recognised from its bytes, before the server is touched. Not a dump (or
//!    not the `format` asked, a plain script holding a psql meta-command anywhere psql's
//!    lexer would read one (`reliability_core::sql_screen`), or that would create/drop a
//!    database, or a pg_dump script without its closing line, i.e. cut short,
//!    which psql would otherwise run "successfully"): the check fails, nothing was created.
//! 2. The server is reached (`server_version_num` on `maintenance_db`). Unreachable, or the
//!    login refused: the request fails naming `host:port` (or the socket); nothing created.
//! 3. The scratch database `hx_restore_<time>_<pid>_<n>` is created; from here on it is
//!    dropped whatever happens (`reliability_os::postgres::ScratchDatabase` is a guard), and
//!    the report says whether it is gone (`dropped`). `keep_on_failure` keeps it, for a
//!    person to look into, and says its name.
//! 4. The restore runs (`pg_restore --exit-on-error` / `psql -v ON_ERROR_STOP=1`, a plain
//!    script fed on stdin after `\restrict <random key>` when psql has it, so psql itself
//!    refuses any meta-command). An archive is restored by a throwaway role without
//!    privileges when the configured user is a superuser; a warning says when it could
//!    not be. A failure
//!    fails the check with the restoring program's own reason; no query runs.
//! 5. Each query runs; its first column of its first row is judged by [`judge`] (pure):
//!    `equals` (text, or the same number), `min`/`max` (numbers, inclusive), `matches` (a
//!    regular expression searched in the value).
//!
//! The password is a `no_log` option: the protocol masks it in `invocation` and scrubs it
//! from every string of the result; the OS layer passes it in `PGPASSWORD`, never in argv,
//! so no message quoting a command line can hold it.

use crate::{CheckReport, Context, RequestError};
use regex_lite::Regex;
use reliability_core::spec::{Kind, Opt, Spec};
use reliability_os::postgres::{self, Connection, DumpFormat, PgError, ScratchDatabase};
use serde_json::{json, Map, Value};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

const FORMATS: &[&str] = &["auto", "custom", "tar", "directory", "plain"];

/// The `postgresql` option of `restore_test`.
pub fn options() -> Vec<Opt> {
    vec![Opt::dict("postgresql").options(Spec::new(vec![
        // Not `.required()`: an absent `postgresql` dict still gets its sub-defaults, and a
        // required `dump` would then fail every request. [`requested`] and [`run`] check it.
        Opt::path("dump"),
        Opt::str("format").choices(FORMATS).default("auto"),
        Opt::str("host"),
        Opt::int("port").range(1.0, 65535.0).default(5432),
        Opt::str("user"),
        Opt::str("password").no_log(),
        Opt::str("maintenance_db").default("postgres"),
        Opt::path("bin_dir"),
        Opt::list("queries", Kind::Dict)
            .options(
                Spec::new(vec![
                    Opt::str("sql").required().max_len(65_536),
                    Opt::str("equals"),
                    Opt::float("min"),
                    Opt::float("max"),
                    Opt::str("matches"),
                ])
                .required_one_of(&["equals", "min", "max", "matches"]),
            )
            .default(json!([])),
        Opt::int("timeout").range(1.0, 604_800.0).default(3600),
        Opt::int("connect_timeout").range(1.0, 3600.0).default(10),
        Opt::bool("keep_on_failure").default(false),
    ]))]
}

/// True when the request names a PostgreSQL dump (`postgresql.dump`): `restore_test` is then
/// this check. (The dict itself is never null after validation: it gets its sub-defaults.)
pub fn requested(params: &Map<String, Value>) -> bool {
    params
        .get("postgresql")
        .and_then(|p| p.get("dump"))
        .is_some_and(|d| !d.is_null())
}

/// What one query must return.
#[derive(Clone, Debug, Default)]
pub struct Expect {
    pub equals: Option<String>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub matches: Option<Regex>,
}

impl Expect {
    /// The expectations in words, as reported beside the value.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let Some(e) = &self.equals {
            parts.push(format!("equals '{e}'"));
        }
        if let Some(m) = self.min {
            parts.push(format!(">= {m}"));
        }
        if let Some(m) = self.max {
            parts.push(format!("<= {m}"));
        }
        if let Some(r) = &self.matches {
            parts.push(format!("matches '{}'", r.as_str()));
        }
        parts.join(", ")
    }
}

/// One query of the request.
#[derive(Clone, Debug)]
pub struct Query {
    pub sql: String,
    pub expect: Expect,
}

/// The verdict on one query's rows: the value judged (first column of the first row) and
/// every expectation it missed. Pure.
pub fn judge(expect: &Expect, rows: &[Vec<String>]) -> (Option<String>, Vec<String>) {
    let Some(value) = rows.first().and_then(|r| r.first()) else {
        return (None, vec!["the query returned no rows".to_string()]);
    };
    let mut problems = Vec::new();
    let number = value.trim().parse::<f64>().ok().filter(|n| n.is_finite());
    if let Some(want) = &expect.equals {
        let same_number = matches!((number, want.trim().parse::<f64>()), (Some(a), Ok(b)) if a == b);
        if value != want && !same_number {
            problems.push(format!("'{value}' is not '{want}'"));
        }
    }
    for (bound, is_min) in [(expect.min, true), (expect.max, false)] {
        let Some(bound) = bound else { continue };
        match number {
            None => problems.push(format!("'{value}' is not a number")),
            Some(n) if is_min && n < bound => problems.push(format!("{value} < {bound}")),
            Some(n) if !is_min && n > bound => problems.push(format!("{value} > {bound}")),
            Some(_) => {}
        }
    }
    if let Some(re) = &expect.matches {
        if !re.is_match(value) {
            problems.push(format!("'{value}' does not match '{}'", re.as_str()));
        }
    }
    problems.dedup();
    (Some(value.clone()), problems)
}

/// A request, read from validated options; what a spec cannot check is checked here, named.
struct Request {
    dump: PathBuf,
    format: Option<DumpFormat>,
    conn: Connection,
    queries: Vec<Query>,
    keep_on_failure: bool,
}

fn request(params: &Map<String, Value>) -> Result<Request, RequestError> {
    let empty = Map::new();
    let pg = params.get("postgresql").and_then(Value::as_object).unwrap_or(&empty);
    let s = |k: &str| pg.get(k).and_then(Value::as_str).map(str::to_string);
    let n = |k: &str, default: u64| pg.get(k).and_then(Value::as_u64).unwrap_or(default);
    let dump = s("dump")
        .map(PathBuf::from)
        .ok_or_else(|| RequestError("the restore_test check needs 'postgresql.dump'".into()))?;
    let format = match s("format").as_deref() {
        Some("custom") => Some(DumpFormat::Custom),
        Some("tar") => Some(DumpFormat::Tar),
        Some("directory") => Some(DumpFormat::Directory),
        Some("plain") => Some(DumpFormat::Plain),
        _ => None,
    };
    let mut queries = Vec::new();
    for (i, q) in pg
        .get("queries")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        let at = format!("postgresql.queries[{i}]");
        let field = |k: &str| q.get(k).filter(|v| !v.is_null());
        let sql = field("sql").and_then(Value::as_str).unwrap_or("").to_string();
        if sql.trim().is_empty() {
            return Err(RequestError(format!("{at}.sql is empty")));
        }
        let matches = match field("matches").and_then(Value::as_str) {
            Some(re) => Some(
                Regex::new(re).map_err(|e| RequestError(format!("{at}.matches: '{re}' is not a valid regex: {e}")))?,
            ),
            None => None,
        };
        let expect = Expect {
            equals: field("equals").and_then(Value::as_str).map(str::to_string),
            min: field("min").and_then(Value::as_f64),
            max: field("max").and_then(Value::as_f64),
            matches,
        };
        if let (Some(min), Some(max)) = (expect.min, expect.max) {
            if min > max {
                return Err(RequestError(format!("{at}: min {min} is above max {max}")));
            }
        }
        queries.push(Query { sql, expect });
    }
    let host = s("host").filter(|h| !h.is_empty());
    if let Some(h) = &host {
        if h.starts_with('-') || h.chars().any(char::is_whitespace) {
            return Err(RequestError(format!(
                "postgresql.host: '{h}' is not a host name or a socket directory"
            )));
        }
    }
    Ok(Request {
        dump,
        format,
        conn: Connection {
            host,
            port: u16::try_from(n("port", 5432)).unwrap_or(5432),
            user: s("user").filter(|u| !u.is_empty()),
            password: s("password"),
            maintenance_db: s("maintenance_db").unwrap_or_else(|| "postgres".into()),
            bin_dir: s("bin_dir").map(PathBuf::from),
            connect_timeout: n("connect_timeout", 10),
            timeout: Duration::from_secs(n("timeout", 3600)),
        },
        queries,
        keep_on_failure: pg.get("keep_on_failure").and_then(Value::as_bool).unwrap_or(false),
    })
}

/// The options, checked, without looking at the dump or the server (when a dump is given:
/// without one there is no PostgreSQL restore to check).
pub fn validate(params: &Map<String, Value>) -> Result<(), RequestError> {
    if !requested(params) {
        return Ok(());
    }
    request(params).map(drop)
}

/// Which format to restore `dump` as, or why it cannot be restored (the check's failure).
fn recognise(dump: &Path, asked: Option<DumpFormat>) -> Result<Result<DumpFormat, String>, RequestError> {
    let shown = dump.display();
    let found = postgres::detect_format(dump).map_err(|e| RequestError(format!("cannot read dump '{shown}': {e}")))?;
    let format = match (asked, found) {
        (None, Some(f)) => f,
        (None, None) => {
            let hint = if postgres::is_gzip(dump) {
                " (it is gzip-compressed: decompress it first)"
            } else {
                ""
            };
            return Ok(Err(format!("'{shown}' is not a pg_dump archive or SQL script{hint}")));
        }
        (Some(a), Some(f)) if a != f => {
            return Ok(Err(format!(
                "'{shown}' is a {} pg_dump, not {} (postgresql.format)",
                f.name(),
                a.name()
            )))
        }
        // Asked and not recognised: the user knows better; the restoring program will say.
        (Some(a), _) => a,
    };
    if format == DumpFormat::Plain {
        let screening =
            postgres::screen_plain_file(dump).map_err(|e| RequestError(format!("cannot read dump '{shown}': {e}")))?;
        if screening.truncated {
            return Ok(Err(format!(
                "'{shown}' is a truncated pg_dump script: it lacks pg_dump's closing '-- PostgreSQL database dump complete'"
            )));
        }
        match screening.refused {
            Some(postgres::Refused::Meta(e)) => {
                return Ok(Err(format!(
                    "'{shown}' {e}; restore_test lets psql run no meta-command of a plain dump"
                )))
            }
            Some(postgres::Refused::Database { line, text }) => {
                return Ok(Err(format!(
                    "'{shown}' line {line}: '{text}' would leave the scratch database (a dump made with --create or --clean, or by pg_dumpall); restore_test runs only scripts that stay in it"
                )))
            }
            None => {}
        }
    }
    Ok(Ok(format))
}

/// The size of a dump file, or of the files of a directory archive.
fn dump_bytes(dump: &Path) -> u64 {
    match std::fs::metadata(dump) {
        Ok(m) if m.is_dir() => std::fs::read_dir(dump)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .filter_map(|e| e.metadata().ok())
                    .filter(|m| m.is_file())
                    .map(|m| m.len())
                    .sum()
            })
            .unwrap_or(0),
        Ok(m) => m.len(),
        Err(_) => 0,
    }
}

pub fn run(params: &Map<String, Value>, _ctx: &Context) -> Result<CheckReport, RequestError> {
    let started = Instant::now();
    let req = request(params)?;
    let shown = req.dump.display().to_string();
    let mut fields = Map::new();
    fields.insert("dump".into(), json!(shown));
    fields.insert("bytes".into(), json!(dump_bytes(&req.dump)));
    fields.insert("server".into(), json!(req.conn.endpoint()));
    let finish = |mut fields: Map<String, Value>, failed: bool, msg: String, warnings: Vec<String>| {
        fields.insert("duration".into(), json!(started.elapsed().as_secs_f64()));
        CheckReport {
            failed,
            msg: format!("restore_test {}: {msg}", if failed { "failed" } else { "ok" }),
            fields,
            warnings,
        }
    };

    let format = match recognise(&req.dump, req.format)? {
        Ok(f) => f,
        Err(why) => {
            for (k, v) in [
                ("format", Value::Null),
                ("database", Value::Null),
                ("restored", json!(false)),
                ("dropped", Value::Null),
                ("queries", json!([])),
            ] {
                fields.insert(k.into(), v);
            }
            return Ok(finish(fields, true, format!("{why}; nothing was created"), Vec::new()));
        }
    };
    fields.insert("format".into(), json!(format.name()));

    let pg_err = |e: PgError| RequestError(e.to_string());
    let version = req.conn.server_version().map_err(pg_err)?;
    let name = postgres::scratch_name(SystemTime::now());
    let mut scratch = ScratchDatabase::create(&req.conn, name.clone(), version).map_err(pg_err)?;
    fields.insert("server_version".into(), json!(version));
    fields.insert("database".into(), json!(name));

    // From here on the scratch database exists: every path below ends in drop_now or keep.
    let mut failures = Vec::new();
    let restore = scratch.restore(&req.dump, format);
    let (restored, restore_secs) = match restore {
        Ok(o) if o.ok => (true, o.duration.as_secs_f64()),
        Ok(o) => {
            let why = o.reason.unwrap_or_default();
            failures.push(format!("'{shown}' ({}) did not restore: {why}", format.name()));
            fields.insert("error".into(), json!(why));
            (false, o.duration.as_secs_f64())
        }
        Err(e) => {
            failures.push(format!("'{shown}' ({}) did not restore: {e}", format.name()));
            fields.insert("error".into(), json!(e.to_string()));
            (false, 0.0)
        }
    };
    fields.insert("restored".into(), json!(restored));
    fields.insert("restore_duration".into(), json!(restore_secs));

    let mut results = Vec::new();
    if restored {
        for q in &req.queries {
            let (value, rows, problems) = match scratch.query(&q.sql) {
                Ok(out) => {
                    let (value, problems) = judge(&q.expect, &out.rows);
                    (value, Some(out.rows.len()), problems)
                }
                Err(e) => (None, None, vec![format!("the query failed: {e}")]),
            };
            let ok = problems.is_empty();
            if !ok {
                failures.push(format!("query '{}': {}", q.sql, problems.join(", ")));
            }
            results.push(json!({
                "sql": q.sql,
                "value": value,
                "rows": rows,
                "expected": q.expect.describe(),
                "ok": ok,
                "error": (!ok).then(|| problems.join(", ")),
            }));
        }
    }
    let passed = results.iter().filter(|r| r["ok"] == json!(true)).count();
    fields.insert("queries".into(), Value::Array(results));

    let mut warnings: Vec<String> = scratch.warning().map(str::to_string).into_iter().collect();
    let ending = if !failures.is_empty() && req.keep_on_failure {
        let kept = scratch.keep();
        fields.insert("dropped".into(), json!(false));
        let note = format!(
            "scratch database '{kept}' kept on {} (keep_on_failure)",
            req.conn.endpoint()
        );
        warnings.push(format!("{note}: drop it when done"));
        note
    } else {
        match scratch.drop_now() {
            Ok(()) => {
                fields.insert("dropped".into(), json!(true));
                format!("scratch database '{name}' dropped")
            }
            Err(e) => {
                fields.insert("dropped".into(), json!(false));
                failures.push(e.to_string());
                format!("scratch database '{name}' NOT dropped")
            }
        }
    };

    let failed = !failures.is_empty();
    let msg = if failed {
        format!("{}; {ending}", failures.join("; "))
    } else {
        format!(
            "'{shown}' ({}) restored into '{name}' on {} in {restore_secs:.2}s, {passed} of {} queries passed; {ending}",
            format.name(),
            req.conn.endpoint(),
            req.queries.len()
        )
    };
    Ok(finish(fields, failed, msg, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows(values: &[&str]) -> Vec<Vec<String>> {
        values
            .iter()
            .map(|v| vec![v.to_string(), "ignored".to_string()])
            .collect()
    }

    fn check(expect: Expect, values: &[&str], want_value: Option<&str>, want_problems: &[&str]) {
        let (value, problems) = judge(&expect, &rows(values));
        assert_eq!(value.as_deref(), want_value, "{}", expect.describe());
        assert_eq!(problems, want_problems, "{}", expect.describe());
    }

    #[test]
    fn bounds_are_inclusive_numbers() {
        let e = || Expect {
            min: Some(1000.0),
            max: Some(2000.0),
            ..Expect::default()
        };
        check(e(), &["1000"], Some("1000"), &[]);
        check(e(), &["2000", "1"], Some("2000"), &[]);
        check(e(), &["999"], Some("999"), &["999 < 1000"]);
        check(e(), &["2000.5"], Some("2000.5"), &["2000.5 > 2000"]);
        check(e(), &["many"], Some("many"), &["'many' is not a number"]);
        check(e(), &[""], Some(""), &["'' is not a number"]);
        check(e(), &[], None, &["the query returned no rows"]);
        assert_eq!(e().describe(), ">= 1000, <= 2000");
    }

    #[test]
    fn equals_compares_text_or_the_same_number() {
        let e = |v: &str| Expect {
            equals: Some(v.to_string()),
            ..Expect::default()
        };
        check(e("t"), &["t"], Some("t"), &[]);
        check(e("1.0"), &["1"], Some("1"), &[]);
        check(e("ok"), &["OK"], Some("OK"), &["'OK' is not 'ok'"]);
        check(e("1"), &["1.5"], Some("1.5"), &["'1.5' is not '1'"]);
    }

    #[test]
    fn matches_searches_the_value_and_all_problems_are_listed() {
        let e = Expect {
            matches: Some(Regex::new("^2026-").expect("valid")),
            min: Some(5.0),
            ..Expect::default()
        };
        check(
            e.clone(),
            &["2026-11-23"],
            Some("2026-11-23"),
            &["'2026-11-23' is not a number"],
        );
        check(e, &["3"], Some("3"), &["3 < 5", "'3' does not match '^2026-'"]);
    }

    #[test]
    fn requests_name_what_is_wrong() {
        let req = |pg: Value| {
            let mut m = Map::new();
            m.insert("postgresql".into(), pg);
            request(&m).err().map(|e| e.0)
        };
        assert_eq!(
            req(json!({})),
            Some("the restore_test check needs 'postgresql.dump'".into())
        );
        let e = req(json!({"dump": "/d", "queries": [{"sql": "x", "min": 1}, {"sql": "y", "matches": "("}]}))
            .unwrap_or_default();
        assert!(
            e.starts_with("postgresql.queries[1].matches: '(' is not a valid regex"),
            "{e}"
        );
        assert_eq!(
            req(json!({"dump": "/d", "queries": [{"sql": "x", "min": 5, "max": 1}]})),
            Some("postgresql.queries[0]: min 5 is above max 1".into())
        );
        assert_eq!(
            req(json!({"dump": "/d", "queries": [{"sql": "  ", "min": 5}]})),
            Some("postgresql.queries[0].sql is empty".into())
        );
        assert_eq!(
            req(json!({"dump": "/d", "host": "-oProxy"})),
            Some("postgresql.host: '-oProxy' is not a host name or a socket directory".into())
        );
        assert_eq!(req(json!({"dump": "/d", "host": "db1", "port": 5433})), None);
    }

    #[test]
    fn requested_only_with_a_dump() {
        let with = |pg: Value| {
            let mut m = Map::new();
            m.insert("postgresql".into(), pg);
            requested(&m)
        };
        assert!(with(json!({"dump": "/d"})));
        assert!(!with(json!({"dump": null, "port": 5432})));
        assert!(!with(Value::Null));
        assert!(!requested(&Map::new()));
    }
}
