//! `backup_verify` `restore_test` against a real PostgreSQL server (Debian's package, started
//! by each test in a temporary directory, see `support/pg_server.rs`) and real `pg_dump`
//! output: every format restores and its queries pass; a failing expectation, a corrupted
//! or truncated dump, a file that is no dump, an unreachable server and a wrong password
//! each fail with a precise message; the password never appears in a result; and after
//! every run `psql -l` shows no scratch database left.

#![allow(clippy::unwrap_used)]

#[path = "support/module.rs"]
mod module;
use module::{failed, msg};

#[path = "support/pg_server.rs"]
mod pg_server;

use pg_server::PgServer;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;

const VERIFY: &str = env!("CARGO_BIN_EXE_backup_verify");

fn run(args: Value) -> Value {
    module::run(VERIFY, &args)
}

/// A server with a `shop` database: 1500 orders and a customers table.
fn shop() -> PgServer {
    let pg = PgServer::start();
    pg.psql("postgres", "CREATE DATABASE shop");
    pg.psql(
        "shop",
        "CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL);
         INSERT INTO customers SELECT g, 'customer, \"' || g || '\"' FROM generate_series(1, 50) g;
         CREATE TABLE orders (id int PRIMARY KEY, customer int REFERENCES customers, total numeric(10,2), placed date);
         INSERT INTO orders SELECT g, 1 + g % 50, g * 1.25, date '2026-01-01' + g % 300 FROM generate_series(1, 1500) g;",
    );
    pg
}

/// The `postgresql` options that reach `pg` over TCP, for `dump`, with `queries`.
fn args(pg: &PgServer, dump: &Path, queries: Value) -> Value {
    json!({
        "checks": ["restore_test"],
        "postgresql": {
            "dump": dump,
            "host": "127.0.0.1",
            "port": pg.port,
            "user": pg.user,
            "password": pg.password,
            "queries": queries,
        }
    })
}

/// No scratch database or restore role is left on the server, and the source is untouched.
fn nothing_left(pg: &PgServer) {
    let dbs = pg.databases();
    assert!(
        !dbs.iter().any(|d| d.starts_with("hx_restore_")),
        "left behind: {dbs:?}"
    );
    let roles = pg.psql(
        "postgres",
        "SELECT rolname FROM pg_roles WHERE rolname LIKE 'hx\\_restore\\_%'",
    );
    assert_eq!(roles.trim(), "", "restore roles left behind");
    assert_eq!(pg.psql("shop", "SELECT count(*) FROM orders").trim(), "1500");
}

fn orders_queries() -> Value {
    json!([
        {"sql": "SELECT count(*) FROM orders", "min": 1000},
        {"sql": "SELECT name FROM customers WHERE id = 7", "equals": "customer, \"7\""},
        {"sql": "SELECT max(placed) FROM orders", "matches": "^2026-10-2[0-9]$"},
        {"sql": "SELECT sum(total) FROM orders", "min": 1407187.5, "max": 1407187.5},
    ])
}

#[test]
fn every_format_restores_and_its_queries_pass() {
    let pg = shop();
    let dir = tempfile::tempdir().unwrap();
    for (format, flag) in [
        ("custom", "-Fc"),
        ("plain", "-Fp"),
        ("tar", "-Ft"),
        ("directory", "-Fd"),
    ] {
        let dump = dir.path().join(format!("shop.{format}"));
        pg.dump("shop", &[flag], &dump);
        // An archive is restored by a throwaway role without privileges (it owns what it
        // restored); a plain dump, whose `ALTER ... OWNER TO` lines need the source's
        // roles, by the configured user.
        let owner = if format == "plain" {
            "^hx$"
        } else {
            "^hx_restore_[0-9_]+$"
        };
        let mut queries = orders_queries();
        queries.as_array_mut().unwrap().push(json!(
            {"sql": "SELECT tableowner FROM pg_tables WHERE tablename = 'orders'", "matches": owner}
        ));
        let r = run(args(&pg, &dump, queries));
        assert!(!failed(&r), "{format}: {r}");
        assert_eq!(r["warnings"], Value::Null, "{format}: {r}");
        let c = &r["checks"]["restore_test"];
        assert_eq!(c["status"], "ok");
        assert_eq!(c["format"], format, "recognised from the bytes");
        assert_eq!((&c["restored"], &c["dropped"]), (&json!(true), &json!(true)), "{c}");
        assert!(c["database"].as_str().unwrap().starts_with("hx_restore_"), "{c}");
        assert_eq!(c["server"], format!("127.0.0.1:{}", pg.port));
        assert!(c["server_version"].as_u64().unwrap() >= 130_000);
        assert!(c["bytes"].as_u64().unwrap() > 1000, "{c}");
        let q = c["queries"].as_array().unwrap();
        assert_eq!(q.len(), 5);
        assert_eq!(q[0]["value"], "1500");
        assert_eq!(q[0]["rows"], 1);
        assert_eq!(q[0]["expected"], ">= 1000");
        assert_eq!(q[1]["value"], "customer, \"7\"", "CSV quoting undone");
        assert_eq!(q[2]["value"], "2026-10-27");
        assert!(q.iter().all(|q| q["ok"] == json!(true) && q["error"].is_null()), "{c}");
        assert!(msg(&r).contains("5 of 5 queries passed"), "{r}");
        assert_eq!(r["changed"], false);
        // The password is masked in the invocation and appears nowhere in the result.
        assert_eq!(
            r["invocation"]["module_args"]["postgresql"]["password"],
            "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
        );
        assert!(!r.to_string().contains(&pg.password), "{r}");
        nothing_left(&pg);
    }

    // Over the Unix socket too.
    let dump = dir.path().join("shop.custom");
    let mut a = args(&pg, &dump, orders_queries());
    a["postgresql"]["host"] = json!(pg.socket_dir());
    let r = run(a);
    assert!(!failed(&r), "{r}");
    let socket = format!("{}/.s.PGSQL.{}", pg.socket_dir().display(), pg.port);
    assert_eq!(r["checks"]["restore_test"]["server"], socket);
    nothing_left(&pg);
}

#[test]
fn a_failing_expectation_fails_naming_the_query() {
    let pg = shop();
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("shop.dump");
    pg.dump("shop", &["-Fc"], &dump);
    let queries = json!([
        {"sql": "SELECT count(*) FROM orders", "min": 2000},
        {"sql": "SELECT count(*) FROM customers", "equals": 50},
        {"sql": "SELECT count(*) FROM refunds", "min": 0},
    ]);
    let r = run(args(&pg, &dump, queries.clone()));
    assert!(failed(&r), "{r}");
    let c = &r["checks"]["restore_test"];
    assert_eq!((&c["restored"], &c["dropped"]), (&json!(true), &json!(true)), "{c}");
    let q = c["queries"].as_array().unwrap();
    assert_eq!(
        (&q[0]["ok"], &q[0]["value"], &q[0]["error"]),
        (&json!(false), &json!("1500"), &json!("1500 < 2000"))
    );
    assert_eq!(q[1]["ok"], true, "{c}");
    assert!(
        q[2]["error"]
            .as_str()
            .unwrap()
            .contains("relation \"refunds\" does not exist"),
        "{c}"
    );
    assert!(
        msg(&r).starts_with("restore_test failed: query 'SELECT count(*) FROM orders': 1500 < 2000; query 'SELECT count(*) FROM refunds': the query failed: "),
        "{r}"
    );
    assert!(msg(&r).ends_with("dropped"), "{r}");
    nothing_left(&pg);

    // A query that outlives `timeout` is killed; the session it leaves on the scratch
    // database does not stop the drop.
    let mut a = args(&pg, &dump, json!([{"sql": "SELECT pg_sleep(60)", "equals": ""}]));
    a["postgresql"]["timeout"] = json!(5);
    let started = std::time::Instant::now();
    let r = run(a);
    assert!(failed(&r), "{r}");
    assert!(started.elapsed().as_secs() < 30, "killed at the timeout");
    assert!(
        msg(&r).contains("query 'SELECT pg_sleep(60)': the query failed: 'psql ")
            && msg(&r).contains("did not finish within 5s and was killed"),
        "{r}"
    );
    assert_eq!(r["checks"]["restore_test"]["dropped"], true, "{r}");
    nothing_left(&pg);

    // keep_on_failure leaves it, named, for a person to look into.
    let mut a = args(&pg, &dump, queries);
    a["postgresql"]["keep_on_failure"] = json!(true);
    let r = run(a);
    assert!(failed(&r), "{r}");
    let kept = r["checks"]["restore_test"]["database"].as_str().unwrap().to_string();
    assert_eq!(r["checks"]["restore_test"]["dropped"], false);
    assert!(msg(&r).contains(&format!("scratch database '{kept}' kept")), "{r}");
    assert!(pg.databases().contains(&kept));
    assert_eq!(pg.psql(&kept, "SELECT count(*) FROM orders").trim(), "1500");
    pg.psql("postgres", &format!("DROP DATABASE \"{kept}\""));
    nothing_left(&pg);
}

#[test]
fn corrupted_dumps_fail_with_the_restoring_programs_reason() {
    let pg = shop();
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("shop.dump");
    pg.dump("shop", &["-Fc"], &good);
    let bytes = std::fs::read(&good).unwrap();

    let truncated = dir.path().join("truncated.dump");
    std::fs::write(&truncated, &bytes[..bytes.len() / 3]).unwrap();
    // Flip the bytes of the compressed table data near the end.
    let flipped = dir.path().join("flipped.dump");
    let mut f = bytes.clone();
    let n = f.len();
    f[n - 3000..n - 2000].iter_mut().for_each(|b| *b ^= 0xff);
    std::fs::write(&flipped, &f).unwrap();

    for (dump, reason) in [
        (&truncated, "could not read from input file: end of file"),
        (&flipped, "could not uncompress data"),
    ] {
        let r = run(args(
            &pg,
            dump,
            json!([{"sql": "SELECT count(*) FROM orders", "min": 1000}]),
        ));
        assert!(failed(&r), "{r}");
        let c = &r["checks"]["restore_test"];
        assert_eq!((&c["restored"], &c["dropped"]), (&json!(false), &json!(true)), "{c}");
        assert!(c["error"].as_str().unwrap().contains(reason), "{c}");
        assert_eq!(c["queries"], json!([]), "no query runs on a failed restore");
        let m = msg(&r);
        assert!(
            m.starts_with(&format!(
                "restore_test failed: '{}' (custom) did not restore: ",
                dump.display()
            )) && m.contains(reason),
            "{m}"
        );
        nothing_left(&pg);
    }

    // A plain dump cut short: psql would run the truncated COPY "successfully".
    let plain = dir.path().join("shop.sql");
    pg.dump("shop", &["-Fp"], &plain);
    let text = std::fs::read(&plain).unwrap();
    let cut = dir.path().join("cut.sql");
    std::fs::write(&cut, &text[..text.len() * 2 / 3]).unwrap();
    let r = run(args(&pg, &cut, json!([])));
    assert!(failed(&r), "{r}");
    assert!(msg(&r).contains("is a truncated pg_dump script"), "{r}");
    assert_eq!(
        r["checks"]["restore_test"]["database"],
        Value::Null,
        "nothing was created"
    );

    // A plain script that fails half-way: psql's reason, with ON_ERROR_STOP.
    let broken = dir.path().join("broken.sql");
    std::fs::write(&broken, "CREATE TABLE t (a int);\nINSERT INTO t VALUES ('x');\n").unwrap();
    let r = run(args(&pg, &broken, json!([])));
    assert!(failed(&r), "{r}");
    assert!(
        msg(&r).contains("(plain) did not restore: ") && msg(&r).contains("invalid input syntax for type integer"),
        "{r}"
    );
    assert_eq!(r["checks"]["restore_test"]["dropped"], true);
    nothing_left(&pg);
}

#[test]
fn what_is_not_a_dump_is_refused_before_the_server_is_touched() {
    let pg = shop();
    let before = pg.databases();
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.dump");
    std::fs::write(&text, "hello, this is a shopping list\n").unwrap();
    let gz = dir.path().join("shop.sql.gz");
    let plain = dir.path().join("shop.sql");
    pg.dump("shop", &["-Fp"], &plain);
    let gz_out = Command::new("gzip").arg("-kc").arg(&plain).output().unwrap();
    std::fs::write(&gz, gz_out.stdout).unwrap();
    // `pg_dump --create --clean` would drop and recreate the real `shop` database.
    let create = dir.path().join("create.sql");
    pg.dump("shop", &["-Fp", "--create", "--clean"], &create);

    for (dump, extra, want) in [
        (
            &text,
            json!({}),
            format!(
                "'{}' is not a pg_dump archive or SQL script; nothing was created",
                text.display()
            ),
        ),
        (
            &gz,
            json!({}),
            "is not a pg_dump archive or SQL script (it is gzip-compressed: decompress it first)".to_string(),
        ),
        (
            &plain,
            json!({"format": "custom"}),
            "is a plain pg_dump, not custom (postgresql.format)".to_string(),
        ),
        (
            &create,
            json!({}),
            "'DROP DATABASE shop;' would leave the scratch database".to_string(),
        ),
    ] {
        let mut a = args(&pg, dump, json!([]));
        for (k, v) in extra.as_object().unwrap() {
            a["postgresql"][k] = v.clone();
        }
        let r = run(a);
        assert!(failed(&r), "{r}");
        assert!(msg(&r).contains(&want), "{} lacks {want}", msg(&r));
        let c = &r["checks"]["restore_test"];
        assert_eq!((&c["database"], &c["restored"]), (&Value::Null, &json!(false)), "{c}");
        assert_eq!(pg.databases(), before);
    }
    nothing_left(&pg);
}

#[test]
fn unreachable_servers_and_wrong_passwords_are_named_without_the_password() {
    let pg = shop();
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("shop.dump");
    pg.dump("shop", &["-Fc"], &dump);
    let before = pg.databases();

    // A closed port: bound, then released.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut a = args(&pg, &dump, json!([]));
    a["postgresql"]["port"] = json!(closed);
    let r = run(a);
    assert!(failed(&r), "{r}");
    let m = msg(&r);
    assert!(
        m.starts_with(&format!("cannot connect to PostgreSQL at 127.0.0.1:{closed}: "))
            && m.contains("Connection refused"),
        "{m}"
    );

    // No server behind a socket directory.
    let mut a = args(&pg, &dump, json!([]));
    a["postgresql"]["host"] = json!(dir.path());
    let r = run(a);
    let want = format!(
        "cannot connect to PostgreSQL at {}/.s.PGSQL.{}: ",
        dir.path().display(),
        pg.port
    );
    assert!(msg(&r).starts_with(&want), "{r}");

    // A wrong password: refused, and not in the result (the right one neither).
    let wrong = "Wr0ng-passw0rd-hx";
    let mut a = args(&pg, &dump, json!([]));
    a["postgresql"]["password"] = json!(wrong);
    let r = run(a);
    assert!(failed(&r), "{r}");
    assert!(
        msg(&r).contains(&format!("127.0.0.1:{}", pg.port))
            && msg(&r).contains("password authentication failed for user \"hx\""),
        "{r}"
    );
    let text = r.to_string();
    assert!(!text.contains(wrong) && !text.contains(&pg.password), "{text}");
    assert_eq!(
        r["invocation"]["module_args"]["postgresql"]["password"],
        "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    );

    // A query that echoes the password: scrubbed from the result.
    let r = run(args(
        &pg,
        &dump,
        json!([{"sql": format!("SELECT '{}'", pg.password), "matches": "."}]),
    ));
    assert!(!failed(&r), "{r}");
    // A value that is the secret is replaced whole, as AnsibleModule.remove_values does.
    assert_eq!(
        r["checks"]["restore_test"]["queries"][0]["value"],
        "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER"
    );
    assert!(!r.to_string().contains(&pg.password));

    assert_eq!(pg.databases(), before);
    nothing_left(&pg);
}

#[test]
fn bad_options_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("x.dump");
    std::fs::write(&dump, b"PGDMP").unwrap();
    for (pg, want) in [
        (json!({"port": 5432}), "or 'postgresql' (with a 'dump')".to_string()),
        (
            json!({"dump": dir.path().join("none")}),
            format!("cannot read dump '{}'", dir.path().join("none").display()),
        ),
        (
            json!({"dump": dump, "queries": [{"sql": "SELECT 1"}]}),
            "postgresql.queries[0]".to_string(),
        ),
        (
            json!({"dump": dump, "queries": [{"sql": "SELECT 1", "matches": "(("}]}),
            "postgresql.queries[0].matches: '((' is not a valid regex".to_string(),
        ),
        (
            json!({"dump": dump, "port": 70000}),
            "postgresql.port: 70000 is out of range".to_string(),
        ),
        (
            json!({"dump": dump, "format": "zip"}),
            "'zip' is not one of".to_string(),
        ),
    ] {
        let r = run(json!({"checks": ["restore_test"], "postgresql": pg}));
        assert!(failed(&r), "{r}");
        assert!(msg(&r).contains(&want), "{} lacks {want}", msg(&r));
    }
}

/// A plain dump with a psql meta-command put where the old check (line starts only) did not
/// look: after a statement, after a dollar quote, after an `E''` string, after COPY data.
/// Each is refused, naming the line, before the server is touched: no marker file, no
/// scratch database, and the other database's table the rest of the script drops is there.
#[test]
fn plain_dumps_with_meta_commands_are_refused_before_the_server_is_touched() {
    let pg = shop();
    pg.psql("postgres", "CREATE DATABASE bank");
    pg.psql(
        "bank",
        "CREATE TABLE accounts (id int); INSERT INTO accounts VALUES (1)",
    );
    let before = pg.databases();
    let dir = tempfile::tempdir().unwrap();
    let plain = dir.path().join("shop.sql");
    pg.dump("shop", &["-Fp"], &plain);
    let text = std::fs::read_to_string(&plain).unwrap();
    // pg_dump before 15.14/16.10/17.6 (and a hand-written script) has no `\restrict` line
    // making psql refuse meta-commands by itself.
    let unrestricted: String = text
        .lines()
        .filter(|l| !l.starts_with("\\restrict ") && !l.starts_with("\\unrestrict "))
        .map(|l| format!("{l}\n"))
        .collect();
    let marker = dir.path().join("marker");
    let m = marker.display();
    let variants = [
        ("shell", format!("SELECT 1; \\! touch {m}\n"), 11),
        ("o-pipe", format!("SELECT $$x$$; \\o |touch {m}\nSELECT 1;\n"), 15),
        ("g-pipe", format!("SELECT E'\\'' \\g |touch {m}\n"), 14),
        (
            "connect",
            "SET search_path = public; \\connect bank\nDROP TABLE accounts;\n".to_string(),
            27,
        ),
        ("c", "SELECT 'a''b'; \\c bank\nDROP TABLE accounts;\n".to_string(), 16),
    ];
    for ((name, injected, column), (kind, text)) in variants
        .into_iter()
        .flat_map(|v| [(v.clone(), ("old-pg_dump", &unrestricted)), (v, ("pg_dump", &text))])
    {
        let name = format!("{kind}-{name}");
        // After the first COPY's data: its `\.` line, then the injected lines.
        let copy_end = text.find("\n\\.\n").unwrap() + 4;
        let mut dump = text.clone();
        dump.insert_str(copy_end, &injected);
        let line = dump[..copy_end].matches('\n').count() + 1;
        let path = dir.path().join(format!("{name}.sql"));
        std::fs::write(&path, &dump).unwrap();
        let r = run(args(
            &pg,
            &path,
            json!([{"sql": "SELECT count(*) FROM orders", "min": 1}]),
        ));
        assert!(failed(&r), "{name}: {r}");
        let want = format!(
            "restore_test failed: '{}' line {line}, column {column}: a psql meta-command",
            path.display()
        );
        assert!(msg(&r).starts_with(&want), "{name}: {} lacks {want}", msg(&r));
        assert!(msg(&r).ends_with("nothing was created"), "{name}: {r}");
        let c = &r["checks"]["restore_test"];
        assert_eq!((&c["database"], &c["restored"]), (&Value::Null, &json!(false)), "{c}");
        assert!(!marker.exists(), "{name}: the shell command ran");
        assert_eq!(pg.psql("bank", "SELECT count(*) FROM accounts").trim(), "1", "{name}");
        assert_eq!(pg.databases(), before, "{name}: the server was touched");
    }
    nothing_left(&pg);
}

/// An archive whose data load calls a function (a CHECK constraint) that runs a shell
/// command on the server (`COPY ... TO PROGRAM`, superuser only): restored by the throwaway
/// role, it fails for want of the privilege instead of running the command.
#[test]
fn archives_are_restored_without_the_configured_users_privileges() {
    let pg = PgServer::start();
    let marker = pg.socket_dir().join("ran");
    pg.psql("postgres", "CREATE DATABASE trap");
    pg.psql(
        "trap",
        &format!(
            "CREATE FUNCTION public.touch(int) RETURNS boolean LANGUAGE plpgsql AS $f$
             BEGIN EXECUTE 'COPY (SELECT 1) TO PROGRAM ''touch {}'''; RETURN true; END $f$;
             CREATE TABLE t (a int CHECK (public.touch(a)));
             INSERT INTO t VALUES (1);",
            marker.display()
        ),
    );
    assert!(marker.exists(), "the trap works as the superuser");
    std::fs::remove_file(&marker).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("trap.dump");
    pg.dump("trap", &["-Fc"], &dump);

    let r = run(args(&pg, &dump, json!([])));
    assert!(failed(&r), "{r}");
    let c = &r["checks"]["restore_test"];
    assert_eq!((&c["restored"], &c["dropped"]), (&json!(false), &json!(true)), "{c}");
    assert!(
        c["error"]
            .as_str()
            .unwrap()
            .contains("must be superuser or have privileges of the pg_execute_server_program role"),
        "{c}"
    );
    assert!(!marker.exists(), "the server ran the dump's shell command");
    let dbs = pg.databases();
    assert!(!dbs.iter().any(|d| d.starts_with("hx_restore_")), "{dbs:?}");
    let roles = pg.psql(
        "postgres",
        "SELECT rolname FROM pg_roles WHERE rolname LIKE 'hx\\_restore\\_%'",
    );
    assert_eq!(roles.trim(), "");
}

/// A user that is no superuser restores as itself (no role made, nothing to warn about); a
/// superuser whose throwaway role may not log in (pg_hba.conf) restores as itself and says so.
#[test]
fn without_a_usable_restore_role_the_configured_user_restores_and_a_superuser_is_warned() {
    let pg = shop();
    let dir = tempfile::tempdir().unwrap();
    let dump = dir.path().join("shop.dump");
    pg.dump("shop", &["-Fc"], &dump);
    let owner =
        |who: &str| json!([{"sql": "SELECT tableowner FROM pg_tables WHERE tablename = 'orders'", "equals": who}]);

    pg.psql("postgres", "CREATE ROLE backup LOGIN CREATEDB PASSWORD 'backup-pw'");
    let mut a = args(&pg, &dump, owner("backup"));
    a["postgresql"]["user"] = json!("backup");
    a["postgresql"]["password"] = json!("backup-pw");
    let r = run(a);
    assert!(!failed(&r), "{r}");
    assert_eq!(r["warnings"], Value::Null, "{r}");
    nothing_left(&pg);

    // Only the test's own user may log in over TCP from now on.
    let hba = pg.socket_dir().join("data/pg_hba.conf");
    let text = std::fs::read_to_string(&hba).unwrap();
    std::fs::write(
        &hba,
        format!("host all hx 127.0.0.1/32 scram-sha-256\nhost all all 127.0.0.1/32 reject\n{text}"),
    )
    .unwrap();
    pg.psql("postgres", "SELECT pg_reload_conf()");
    let r = run(args(&pg, &dump, owner("hx")));
    assert!(!failed(&r), "{r}");
    let warnings = r["warnings"].as_array().unwrap();
    assert_eq!(warnings.len(), 1, "{r}");
    let w = warnings[0].as_str().unwrap();
    assert!(
        w.starts_with("the restore role 'hx_restore_")
            && w.contains("cannot log in (")
            && w.contains("rejects connection")
            && w.ends_with("the dump was restored as superuser 'hx'"),
        "{w}"
    );
    nothing_left(&pg);
}
