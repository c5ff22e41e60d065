"""Every example runs as written: the README's YAML blocks and each module's EXAMPLES.

An example is a fenced ``yaml`` block of README.md that is a list of tasks or plays, or a
part of a module's EXAMPLES (plugins/modules/*.yml); each starts with a line
``# example: NAME``. This file finds them all, and for each NAME in ``CASES``:

1. the case's ``setup`` creates what the example needs under a temporary directory: files
   and trees, a throwaway PostgreSQL server with the roles the example logs in as, local
   stand-ins (``restic``, listeners, processes);
2. paths and addresses the example names (``/srv/backup``, ``db-scratch.example.com``) are
   replaced by the test's own (the case's ``subs``, listed in the table, so every
   adaptation is visible), and state directories are pointed into the temporary directory
   with ``module_defaults``;
3. the example runs with the real ``ansible-playbook`` of each pinned ansible-core (a task list as one play on the
   case's host; plays as they are, their groups mapped to that host by the inventory);
4. every task's result is checked against what the text around the example says: the
   ``expect`` of the case maps a task name to its status and the fields that show it.

An example NAME in ``NOT_RUN`` is not run, for the reason given there (also said in the
docs). A marked example that is in neither table fails the test, and so does a YAML task
block without a marker: a new example joins by its marker and a row here.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
import yaml

from conftest import REPO, TESTHOSTS, VENVS, Ansible, skip_unless_possible

MARKER = re.compile(r"^\s*# example: ([a-z0-9-]+)\s*$")
CALLBACKS = Path(__file__).parent / "callback_plugins"
OUR_MODULES = [
    "reliability_facts", "health_check", "circuit_breaker", "service_recovery",
    "backup_manifest", "backup_verify", "backup_retention",
]

# ---- finding the examples -----------------------------------------------------------------


@dataclass
class Example:
    name: str
    source: str  # README.md or plugins/modules/<m>.yml
    text: str

    @property
    def is_play(self) -> bool:
        data = yaml.safe_load(self.text)
        return isinstance(data, list) and all(isinstance(d, dict) and "hosts" in d for d in data)


def _is_tasks(data) -> bool:
    return (
        isinstance(data, list)
        and bool(data)
        and all(isinstance(d, dict) and ("hosts" in d or "name" in d or "block" in d) for d in data)
    )


def _split(text: str, source: str) -> tuple[list[Example], list[str]]:
    """Splits text at its marker lines; returns the examples and the problems."""
    examples, problems, name, lines = [], [], None, []

    def flush():
        body = "\n".join(lines).strip("\n")
        if name is None:
            if _is_tasks(yaml.safe_load(body or "[]")):
                problems.append(f"{source}: tasks without a '# example: NAME' line: {body[:120]!r}")
        else:
            examples.append(Example(name, source, body + "\n"))

    for line in text.splitlines():
        m = MARKER.match(line)
        if m:
            flush()
            name, lines = m.group(1), []
        else:
            lines.append(line)
    flush()
    return examples, problems


def find_examples() -> tuple[dict[str, Example], list[str]]:
    found: list[Example] = []
    problems: list[str] = []
    readme = (REPO / "README.md").read_text()
    for block in re.findall(r"^```yaml\n(.*?)^```", readme, re.S | re.M):
        ex, pr = _split(block, "README.md")
        found += ex
        problems += pr
    for m in OUR_MODULES:
        doc = yaml.safe_load((REPO / "plugins" / "modules" / f"{m}.yml").read_text())
        ex, pr = _split(doc["EXAMPLES"], f"plugins/modules/{m}.yml")
        found += ex
        problems += pr
    by_name: dict[str, Example] = {}
    for e in found:
        if e.name in by_name:
            problems.append(f"example '{e.name}' is marked twice ({by_name[e.name].source}, {e.source})")
        by_name[e.name] = e
    return by_name, problems


# ---- the world an example runs in ------------------------------------------------------------


class World:
    """The temporary directory, the processes and servers started for one example."""

    def __init__(self, tmp: Path):
        self.tmp = tmp
        self.subs: dict[str, str] = {}
        # (regex, replacement) applied line by line after `subs`, for what needs the
        # example's indentation (a `port:` beside a `host:`).
        self.resubs: list[tuple[str, str]] = []
        self.extra_vars: dict = {}
        self.env: dict[str, str] = {}
        self.bin = tmp / "bin"
        self.bin.mkdir()
        self.testhost: SystemdHost | None = None
        self._procs: list[subprocess.Popen] = []
        self._cleanups: list[Callable[[], None]] = []

    def path(self, original: str) -> Path:
        """A directory standing in for `original`; the example's text is rewritten to it."""
        p = self.tmp / "root" / original.lstrip("/")
        p.mkdir(parents=True, exist_ok=True)
        self.subs[original] = str(p)
        return p

    def rewrite(self, text: str) -> str:
        """`text` with `subs` applied: one pass, longest first, so a replacement is never
        itself rewritten."""
        if not self.subs:
            return text
        pattern = "|".join(re.escape(k) for k in sorted(self.subs, key=len, reverse=True))
        return re.sub(pattern, lambda m: self.subs[m.group(0)], text)

    def spawn(self, argv: list[str], **kw) -> subprocess.Popen:
        p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, **kw)
        self._procs.append(p)
        return p

    def on_exit(self, fn: Callable[[], None]):
        self._cleanups.append(fn)

    def close(self):
        for p in self._procs:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            p.wait()
        for fn in reversed(self._cleanups):
            fn()


def write(path: Path, content: bytes | str, age_days: float = 0):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    if age_days:
        t = time.time() - age_days * 86400
        os.utime(path, (t, t))


def age(path: Path, days: float):
    t = time.time() - days * 86400
    os.utime(path, (t, t), follow_symlinks=False)


def sha256sum(directory: Path, dest: Path):
    files = sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file() and p != dest)
    out = subprocess.run(["sha256sum", *files], cwd=directory, capture_output=True, check=True).stdout
    dest.write_bytes(out)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def is_root() -> bool:
    return os.geteuid() == 0


class PgServer:
    """A throwaway PostgreSQL server (initdb into the world's directory), as
    rust/reliability-modules/tests/support/pg_server.rs makes one: SCRAM passwords, a
    loopback port; run as the package's 'postgres' user when we are root."""

    def __init__(self, world: World):
        majors = sorted(int(p.name) for p in Path("/usr/lib/postgresql").glob("*") if (p / "bin" / "initdb").exists())
        if not majors:
            pytest.fail("no PostgreSQL server: install the 'postgresql' package (tools/apt-packages.txt)")
        self.bin = Path(f"/usr/lib/postgresql/{majors[-1]}/bin")
        # Not under pytest's directories (0700): the server's user must reach its files.
        self.dir = Path(tempfile.mkdtemp(prefix="hx-pg-"))
        world.on_exit(lambda: shutil.rmtree(self.dir, ignore_errors=True))
        self.password = "hx-admin-pw"
        (self.dir / "pw").write_text(self.password + "\n")
        if is_root():
            shutil.chown(self.dir, "postgres", "postgres")
            shutil.chown(self.dir / "pw", "postgres", "postgres")
        data = self.dir / "data"
        self._server(["initdb", "-D", str(data), "-U", "hx", f"--pwfile={self.dir / 'pw'}",
                      "--auth-local=scram-sha-256", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C", "--no-sync"])
        self.port = free_port()
        with open(data / "postgresql.conf", "a") as f:
            f.write(f"\nport = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.dir}'\nfsync = off\n")
        self._server(["pg_ctl", "-D", str(data), "-l", str(self.dir / "log"), "-w", "-t", "60", "start"])
        world.on_exit(lambda: self._server(["pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop"], check=False))

    def _server(self, argv: list[str], check: bool = True):
        cmd = [str(self.bin / argv[0]), *argv[1:]]
        if is_root():
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        out = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=120)
        if check and out.returncode != 0:
            pytest.fail(f"{' '.join(cmd)}: {out.stdout}{out.stderr}")

    def psql(self, sql: str, db: str = "postgres", user: str = "hx", password: str | None = None):
        env = dict(os.environ, PGHOST="127.0.0.1", PGPORT=str(self.port), PGUSER=user,
                   PGPASSWORD=password or self.password)
        subprocess.run([str(self.bin / "psql"), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql],
                       env=env, check=True, capture_output=True, timeout=60)

    def role_with_shop(self, role: str, password: str, rows: int = 1500):
        """`role` may log in and create databases and owns the database shop, whose
        table orders holds `rows` rows."""
        self.psql(f"CREATE ROLE {role} LOGIN CREATEDB PASSWORD '{password}'")
        self.psql(f"CREATE DATABASE shop OWNER {role}")
        self.psql(f"CREATE TABLE orders (id int PRIMARY KEY, placed date NOT NULL);"
                  f"INSERT INTO orders SELECT i, DATE '2026-11-22' + (i % 2) FROM generate_series(1, {rows}) i",
                  db="shop", user=role, password=password)

    def dump(self, path: Path, role: str, password: str):
        env = dict(os.environ, PGHOST="127.0.0.1", PGPORT=str(self.port), PGUSER=role, PGPASSWORD=password)
        subprocess.run([str(self.bin / "pg_dump"), "-Fc", f"--file={path}", "shop"], env=env, check=True, timeout=120)


@dataclass
class SystemdHost:
    """A booted systemd test host (tests/hosts/testhosts), for examples that need systemd."""

    name: str
    state: Path

    @property
    def inventory(self) -> Path:
        return self.state / "inventory.yml"

    def run(self, *argv: str, stdin: str | None = None):
        env = dict(os.environ, HX_TESTHOSTS_STATE=str(self.state))
        out = subprocess.run([str(TESTHOSTS), "exec", self.name, "--", *argv], env=env, input=stdin,
                             capture_output=True, text=True, timeout=120, check=False)
        if out.returncode != 0:
            pytest.fail(f"on {self.name}: {' '.join(argv)}: {out.stdout}{out.stderr}")
        return out.stdout


# ---- per-example set-up ----------------------------------------------------------------------


def setup_backups(w: World):
    """README "Backups": /srv/www to back up, older nightly backups (one recorded good by an
    earlier run, so retention has something to keep and to delete), the shop database."""
    w.path("/srv")  # tar -C /srv
    www = w.path("/srv/www")
    for i in range(20):
        write(www / f"page{i:02}.html", f"<p>page {i}</p>\n" * (i + 1))
    write(www / "img" / "logo.svg", "<svg/>\n")
    backup = w.path("/srv/backup")
    # 20 earlier nights, 1 to 20 days old; nothing under them is newer than the directory.
    for d in range(1, 21):
        night = backup / time.strftime("%Y-%m-%d", time.gmtime(time.time() - d * 86400))
        write(night / "www.tar.zst", b"old archive\n", age_days=d)
        write(night / "shop.dump", b"old dump\n", age_days=d)
        age(night, d)
    pg = PgServer(w)
    pg.role_with_shop("backup", "backup-pw")
    w.extra_vars["backup_db_password"] = "backup-pw"
    w.subs["--host=localhost"] = f"--host=127.0.0.1 --port={pg.port}"
    w.resubs.append((r"^(\s*)host: localhost$", rf"\1host: 127.0.0.1\n\1port: {pg.port}"))
    w.env["PATH"] = f"{pg.bin}:{os.environ['PATH']}"


def setup_verify_manifest(w: World):
    night = w.path("/srv/backup/2026-11-23")
    for i in range(5):
        write(night / "data" / f"f{i}.csv", f"row {i}\n" * 100)
    sha256sum(night, night / "SHA256SUMS")
    offsite = w.path("/mnt/offsite/2026-11-23")
    shutil.copytree(night / "data", offsite / "data")
    write(offsite / "data" / "f3.csv", "flipped\n")
    pg = w.path("/var/backups/postgres")
    write(pg / "orders-2026-11-23.dump", b"PGDMP not really\n")
    sha256sum(pg, pg / "SHA256SUMS")


def setup_time_box(w: World):
    archive = w.path("/srv/archive")
    for i in range(40):
        write(archive / f"part{i:02}.bin", os.urandom(4096))
    sha256sum(archive, archive / "SHA256SUMS")


def setup_completeness(w: World):
    skip_unless_possible(is_root(), "the copies must be on distinct filesystems: mounting tmpfs needs root")
    db = w.path("/srv/backup/db")
    copies = [w.path("/mnt/usb/db"), w.path("/mnt/nas/db")]
    for c in copies:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(c)], check=True)
        w.on_exit(lambda c=c: subprocess.run(["umount", str(c)], check=False))
    write(db / "db-2026-11-22.tar.zst", os.urandom(1 << 20), age_days=1.5)
    write(db / "db-2026-11-23.tar.zst", os.urandom(1 << 20), age_days=0.5)
    write(db / "globals.sql", "-- roles\n", age_days=0.1)  # newer, but not a backup file
    for c in copies:
        shutil.copy2(db / "db-2026-11-23.tar.zst", c / "db-2026-11-23.tar.zst")
    # Data adapted: two 1 MiB archives stand in for the 1G of the example.
    w.subs["min_size: 1G"] = "min_size: 2M"


def setup_verify_postgresql(w: World):
    pg = PgServer(w)
    pg.role_with_shop("restore_test", "restore-pw")
    night = w.path("/srv/backup/2026-11-23")
    pg.dump(night / "shop.dump", "restore_test", "restore-pw")
    w.extra_vars["vault_restore_test_password"] = "restore-pw"
    w.resubs.append((r"^(\s*)host: db-scratch\.example\.com$", rf"\1host: 127.0.0.1\n\1port: {pg.port}"))
    w.env["PATH"] = f"{pg.bin}:{os.environ['PATH']}"


def setup_verify_archive(w: World):
    src = w.tmp / "src"
    for i in range(10):
        write(src / "home" / "ann" / f"note{i}.txt", f"note {i}\n")
    night = w.path("/srv/backup/2026-11-23")
    subprocess.run(["tar", "--zstd", "-C", str(src), "-cf", str(night / "home.tar.zst"), "home"], check=True)
    sha256sum(src / "home", night / "home.sha256")


RESTIC_STAND_IN = """#!/bin/sh
# A local stand-in for restic (tests/integration/test_examples.py), not restic: it knows
# only `restic restore latest --target DIR`, and like restic it needs RESTIC_REPOSITORY and
# a password (RESTIC_PASSWORD or RESTIC_PASSWORD_FILE) in the environment. Its "repository"
# is a directory whose snapshots/latest/ holds the files with their absolute paths.
set -eu
[ -n "${RESTIC_REPOSITORY:-}" ] || { echo "Fatal: Please specify repository location (-r or --repository-file)" >&2; exit 1; }
if [ -z "${RESTIC_PASSWORD:-}" ]; then
  [ -r "${RESTIC_PASSWORD_FILE:-/nonexistent}" ] || { echo "Fatal: an empty password is not allowed by default" >&2; exit 1; }
fi
[ "$1 $2 $3" = "restore latest --target" ] || { echo "stand-in restic: unsupported: $*" >&2; exit 2; }
cp -a "$RESTIC_REPOSITORY/snapshots/latest/." "$4/"
"""


def setup_verify_restic(w: World):
    live = w.path("/srv/www")
    for i in range(30):
        write(live / f"p{i}.html", f"page {i}\n")
    repo = w.path("/srv/restic")
    # restic restores absolute paths under the target: srv/www/..., hence subdir srv/www;
    # here the live directory's own absolute path.
    shutil.copytree(live, repo / "snapshots" / "latest" / str(live).lstrip("/"))
    write(w.path("/etc/restic") / "password", "secret\n")
    # The example's directory is the live data, and the stand-in's repository restores it.
    w.subs["subdir: srv/www"] = "subdir: " + str(live).lstrip("/")
    (w.bin / "restic").write_text(RESTIC_STAND_IN)
    (w.bin / "restic").chmod(0o755)
    w.env["PATH"] = f"{w.bin}:{os.environ['PATH']}"


def setup_retention(w: World):
    backup = w.path("/srv/backup")
    for d in range(0, 20):
        night = backup / f"2026-11-{23 - d:02}"
        write(night / "data.bin", f"night {d}\n")
        if d == 0:
            sha256sum(night, night / "SHA256SUMS")
        age(night / "data.bin", d)
        age(night, d)
    w.subs["/srv/backup/2026-11-23"] = str(backup / "2026-11-23")
    pg = w.path("/var/backups/postgres")
    for d in range(40):
        write(pg / f"orders-2026-{(d // 28) + 10:02}-{(d % 28) + 1:02}.dump", b"dump\n", age_days=40 - d)


def setup_manifest(w: World):
    night = w.path("/srv/backup/2026-11-23")
    write(night / "home.tar.gz", os.urandom(2048))
    backup = w.path("/srv/backup")
    write(backup / "2026-11-22" / "db.dump", b"dump\n")
    write(backup / "tmp" / "partial.tar.gz", b"partial\n")


POSTGRES_STAND_IN = """[Unit]
Description=A stand-in for PostgreSQL 15 (tests/integration/test_examples.py): a sleeping process
Requires=postgresql-stand-in-dep.service
After=postgresql-stand-in-dep.service

[Service]
ExecStart=/bin/sleep infinity
"""

DEP_STAND_IN = """[Unit]
Description=The stand-in's dependency

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/bin/true
"""


def setup_postgres_unit(w: World):
    """health_check "A unit that must not crash-loop...": postgresql@15-main.service on a
    systemd host, as a stand-in template unit (PostgreSQL itself is not in the test rootfs)."""
    h = w.testhost
    h.run("tee", "/etc/systemd/system/postgresql@.service", stdin=POSTGRES_STAND_IN)
    h.run("tee", "/etc/systemd/system/postgresql-stand-in-dep.service", stdin=DEP_STAND_IN)
    h.run("systemctl", "daemon-reload")
    h.run("systemctl", "start", "postgresql@15-main.service")


def setup_gunicorn(w: World):
    """A pool of two 'gunicorn' workers of www-data (argv[0] set, as gunicorn's are)."""
    skip_unless_possible(is_root(), "the worker pool runs as www-data: needs root")
    for _round in range(2):
        w.spawn(["runuser", "-u", "www-data", "--", "bash", "-c", 'exec -a "gunicorn --workers 2 app:app" sleep 600'])
    time.sleep(0.3)


def setup_private_ca(w: World):
    d = w.tmp / "tls"
    d.mkdir()

    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    # A private CA, and a server certificate for 127.0.0.1 that it signed (90 days).
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "365", "-subj", "/CN=hx test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
            "-keyout", "ca.key", "-out", "ca.pem")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "key.pem", "-out", "req.pem")
    (d / "ext").write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")
    openssl("x509", "-req", "-in", "req.pem", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", "90",
            "-extfile", "ext", "-out", "cert.pem")
    ca = w.path("/etc/ssl")
    shutil.copy(d / "ca.pem", ca / "private-ca.pem")
    port = free_port()
    server = (
        "import http.server, ssl, sys\n"
        "class H(http.server.BaseHTTPRequestHandler):\n"
        "    def do_GET(self):\n"
        "        self.send_response(200 if self.headers.get('Authorization') == 'Bearer none' else 401)\n"
        "        self.end_headers(); self.wfile.write(b'ready')\n"
        "    def log_message(self, *a): pass\n"
        f"s = http.server.HTTPServer(('127.0.0.1', {port}), H)\n"
        "c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n"
        f"c.load_cert_chain('{d}/cert.pem', '{d}/key.pem')\n"
        "s.socket = c.wrap_socket(s.socket, server_side=True)\n"
        "s.serve_forever()\n"
    )
    w.spawn(["python3", "-c", server])
    w.subs["https://127.0.0.1:8443/ready"] = f"https://127.0.0.1:{port}/ready"
    for _round in range(50):
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    pytest.fail("the https stand-in did not start")


def closed_url(w: World):
    """The examples' remote endpoints, replaced by a closed loopback port: no test traffic
    leaves the machine, and the call fails as an unreachable backend does."""
    w.subs["https://payments.example.org/health"] = "http://127.0.0.1:1/health"
    w.subs["https://payments.internal/health"] = "http://127.0.0.1:1/health"


def breaker_state_dir(w: World):
    closed_url(w)
    w.path("/var/lib/myapp/breakers")


# ---- what each example must show -------------------------------------------------------------

# Checks on one task's result: {"status": ok|failed|skipped, "<dotted.path>": value or
# callable(value) -> bool}.
Expect = dict


def ok(**fields) -> Expect:
    return {"status": "ok", **fields}


def failed(**fields) -> Expect:
    return {"status": "failed", **fields}


def one_of_statuses(*statuses) -> Callable:
    return lambda v: v in statuses


@dataclass
class Case:
    setup: Callable[[World], None] | None
    expect: dict[str, Expect]
    host: str = "localhost"
    # Tasks whose failure depends on this machine (a busy CPU): run with ignore_errors, and
    # their result checked for what they report rather than pass or fail.
    tolerate: list[str] = field(default_factory=list)


def root_used_percent() -> int:
    """The root filesystem's use as df (and reliability_facts) count it."""
    st = os.statvfs("/")
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    avail = st.f_bavail * st.f_frsize
    return -(-used * 100 // (used + avail)) if used + avail else 0


def root_check(status: str) -> bool:
    """The examples that refuse a nearly full root filesystem pass, or fail, as this
    machine's root filesystem says (read when the result is checked, seconds after)."""
    return status == ("ok" if root_used_percent() < 90 else "failed")


def today() -> str:
    return time.strftime("%Y-%m-%d", time.gmtime())


CASES: dict[str, Case] = {
    "maintenance-deploy": Case(
        None,
        {
            "Open a window for the deployment": ok(changed=True),
            "Close it": ok(changed=True),
        },
    ),
    "breaker-deploy": Case(
        closed_url,
        {
            # The breaker allows the call; the backend is down, so the rescue records it.
            "Ask the breaker first": ok(allowed=True, state="closed"),
            "Call the backend": failed(),
            "Record the failure": ok(**{"state": "closed", "counters.consecutive_failures": 1}),
        },
    ),
    "refuse-deploy": Case(
        None,
        {
            "Gather reliability facts": ok(**{"ansible_facts.reliability.mounts.filesystems": bool}),
            "Check space": {"status": root_check},
        },
        tolerate=["Check space"],
    ),
    "backups": Case(
        setup_backups,
        {
            "Make the backup directory": ok(changed=True),
            "Archive /srv/www": ok(changed=True),
            "Record what was archived, to compare the restore with": ok(files=21),
            "Dump the shop database": ok(changed=True),
            "Write the manifest of the backup": ok(files=3),
            "The backup is intact and nothing was slipped in, it is complete, and fresh (RPO 26 h)": ok(**{
                "checks.integrity.ok": 3,
                "checks.integrity.extra": [],
                "checks.completeness.newest.path": lambda p: p == f"{today()}/www.tar.zst",
                "checks.completeness.required_missing": [],
            }),
            "The database dump restores and holds the orders (scratch database dropped after)": ok(**{
                "checks.restore_test.queries.0.value": "1500",
            }),
            "The archive restores as what was archived; record the backup as the last good one": ok(**{
                "checks.restore_test.files": 21,
                "good.recorded": True,
                "good.backup": lambda b: b.endswith(f"/srv/backup/{today()}"),
            }),
            "Keep 14 days and at least the newest 7; never the last one that verified good": ok(**{
                "changed": True,
                # 21 nights: tonight and 13 earlier ones are younger than 14 days.
                "deleted": lambda d: len(d) == 7,
                "good.protects": today(),
            }),
        },
    ),
    "facts": Case(
        None,
        {
            "Gather every group": ok(**{"ansible_facts.reliability.mounts.filesystems": bool}),
            "Fail early on a host whose root filesystem is nearly full": {"status": root_check},
            "Everything but filesystems": ok(**{"ansible_facts.reliability.gather_subset":
                                                lambda s: "mounts" not in s and "memory" in s}),
            "Only memory and load, without waiting for a CPU sample": ok(),
            "Memory is all there is now (the mounts of the first run are gone)": ok(),
        },
        tolerate=["Fail early on a host whose root filesystem is nearly full"],
    ),
    "health-host": Case(
        None,
        {
            "Is this host healthy? CPU, memory, swap, load and the root filesystem, default levels": {
                "status": one_of_statuses("ok", "failed"),
                "checks": lambda c: {x["kind"] for x in c} >= {"cpu", "memory", "swap", "load", "disk"},
            },
        },
        tolerate=["Is this host healthy? CPU, memory, swap, load and the root filesystem, default levels"],
    ),
    "health-unit": Case(
        setup_postgres_unit,
        {
            "A unit that must not crash-loop, its dependencies up, and at most 512 MiB": ok(**{
                "checks.0.status": "ok",
                "checks.0.details.active_state": "active",
                "checks.0.details.dependencies": lambda d: any(x.get("name") == "postgresql-stand-in-dep.service" and x["ok"]
                                                               for x in d),
            }),
        },
        host="testhost",
    ),
    "health-report": Case(
        None,
        {
            "Show what is wrong without failing the play": ok(**{"checks": lambda c: len(c) >= 2}),
            "Act on the report": ok(),
        },
    ),
    "health-closed-port": Case(
        setup_gunicorn,
        {
            "A port that must stay closed, and a worker pool of 2 to 8 processes of one user": ok(**{
                "counts.ok": 2,
            }),
        },
    ),
    "health-private-ca": Case(
        setup_private_ca,
        {
            "An internal https endpoint with a private CA, warn 45 days before the certificate expires": ok(**{
                "checks.0.status": "ok",
            }),
        },
    ),
    "breaker-call": Case(
        closed_url,
        {
            "Ask the breaker before calling a flaky endpoint": ok(allowed=True),
            "Call it only when the breaker allows": failed(),
            "Feed the result back": ok(**{"counters.consecutive_failures": 1}),
        },
    ),
    "breaker-settings": Case(
        None,
        {
            "A stricter breaker - 3 failures open it for 5 minutes": ok(state="closed"),
            "Rates over the last 20 calls; a call over 2 s is slow": ok(state="closed"),
            "Open it by hand for a maintenance, then close it again": ok(state="open", allowed=False),
            "Closed, counters cleared": ok(state="closed", allowed=True),
        },
    ),
    "breaker-module-defaults": Case(
        breaker_state_dir,
        {
            "Query": ok(allowed=True),
            "Stop early while the database breaker is open": {"status": "skipped"},
        },
    ),
    "manifest": Case(
        setup_manifest,
        {
            "Describe last night's backup": ok(changed=True, files=1),
            # home.tar.gz and 2026-11-22/db.dump; tmp/partial.tar.gz is excluded.
            "Only the archives, never the scratch area": ok(changed=True, files=2),
        },
    ),
    "verify-manifest": Case(
        setup_verify_manifest,
        {
            "Verify last night's backup, and that nothing was slipped in beside it": ok(**{
                "checks.integrity.ok": 5, "checks.integrity.extra": []}),
            "Verify a copy elsewhere against the same manifest, with one thread": failed(),
            "Verify a dump and record it as the last good one of the set \"orders\"": ok(**{"good.recorded": True}),
            "Show what was wrong": ok(**{"verified.checks.integrity.mismatched": lambda m: len(m) == 1}),
        },
    ),
    "verify-time-box": Case(
        setup_time_box,
        {
            "Verify the next part of the archive": ok(**{"checks.integrity.verified": 6}),
            "Report the coverage": ok(),
        },
    ),
    "verify-completeness": Case(
        setup_completeness,
        {
            "Last night's database dump is there, complete, fresh and kept on three disks": ok(**{
                "checks.completeness.newest.path": "db-2026-11-23.tar.zst",
                "checks.completeness.locations": 3,
            }),
        },
    ),
    "verify-postgresql": Case(
        setup_verify_postgresql,
        {
            "Prove last night's database dump restores and holds the orders": ok(**{
                "checks.restore_test.queries.0.value": "1500",
            }),
        },
    ),
    "verify-archive": Case(
        setup_verify_archive,
        {
            "Prove last night's tarball restores and matches the manifest of what it saved": ok(**{
                "checks.restore_test.files": 10,
            }),
        },
    ),
    "verify-restic": Case(
        setup_verify_restic,
        {
            "Restore with the backup tool itself and compare a 5% sample with the live data": ok(**{
                "checks.restore_test.files": 30,
            }),
        },
    ),
    "retention": Case(
        setup_retention,
        {
            "Verify last night's backup and record it as the last good one of its set": ok(**{"good.recorded": True}),
            "Keep two weeks and at least the last 7, never the last verified good": ok(**{
                "deleted": lambda d: [x["name"] for x in d] == [f"2026-11-{n:02}" for n in range(9, 3, -1)],
            }),
            "Database dumps without verification records, by count alone": ok(**{
                "changed": True, "deleted": lambda d: len(d) == 10}),
            "Show what would go": ok(),
        },
    ),
}

# Examples that are not run here, and why. Each reason is said in the docs too (README or
# the module's EXAMPLES comment).
NOT_RUN: dict[str, str] = {
    "role-deploy": "deploys the monitor daemon under systemd: run as written by molecule/default "
                   "on two systemd test hosts (make molecule)",
    "web-tier": "needs nginx, PHP-FPM, two PostgreSQL hosts and a public HTTPS site; its process "
                "match is run against stand-in processes by test_web_tier_process_match",
    "health-web": "needs db1/db2.example.org, an application on 8080 and a public HTTPS site",
    "recovery-nginx": "the escalation ladder is being reworked (issue 14, items 2-4); needs nginx "
                      "and nginx-standby units on a systemd host",
    "recovery-ladder": "the escalation ladder is being reworked (issue 14, items 2-4); needs a "
                       "worker@ template unit on a systemd host",
}


# ---- running one ---------------------------------------------------------------------------


def _dig(result, dotted: str):
    if isinstance(result, dict) and dotted in result:  # debug's `var: a.b.c` key
        return result[dotted]
    cur = result
    for part in dotted.split("."):
        if isinstance(cur, list):
            cur = cur[int(part)]
        elif isinstance(cur, dict) and part in cur:
            cur = cur[part]
        else:
            raise KeyError(dotted)
    return cur


def _play(example: Example, world: World, case: Case) -> list[dict]:
    text = world.rewrite(example.text)
    for pattern, repl in world.resubs:
        text = re.sub(pattern, repl, text, flags=re.M)
    state = world.tmp / "state"
    defaults = {f"hx.reliability.{m}": {"state_dir": str(state)}
                for m in ("circuit_breaker", "backup_verify", "backup_retention", "service_recovery")}
    data = yaml.safe_load(text)
    if example.is_play:
        plays = data
    else:
        host = world.testhost.name if case.host == "testhost" else case.host
        plays = [{"name": example.name, "hosts": host, "gather_facts": False, "tasks": data}]
    for play in plays:
        merged = dict(defaults)
        merged.update(play.get("module_defaults", {}))
        play["module_defaults"] = merged
        for task in play.get("tasks", []):
            if task.get("name") in case.tolerate:
                task["ignore_errors"] = True
    return plays


def run_example(example: Example, case: Case, world: World, version: str = "2.19") -> list[dict]:
    plays = _play(example, world, case)
    book = world.tmp / "example.yml"
    book.write_text(yaml.safe_dump(plays, sort_keys=False))
    inventory = world.tmp / "local.yml"
    inventory.write_text(yaml.safe_dump({"all": {
        "hosts": {"localhost": {"ansible_connection": "local",
                                "ansible_python_interpreter": "{{ ansible_playbook_python }}"}},
        "children": {g: {"hosts": {"localhost": None}} for g in ("web", "backup")},
    }}))
    ansible = Ansible(version, inventory)
    env = ansible.env(ANSIBLE_CALLBACK_PLUGINS=str(CALLBACKS), ANSIBLE_STDOUT_CALLBACK="hx_results",
                      ANSIBLE_LOAD_CALLBACK_PLUGINS="1", **world.env)
    env["PATH"] = f"{ansible.bin}:{env['PATH']}"
    cmd = [str(ansible.bin / "ansible-playbook"), "-i", str(inventory), str(book)]
    if world.testhost:
        cmd[1:1] = ["-i", str(world.testhost.inventory)]
    for k, v in world.extra_vars.items():
        cmd += ["-e", json.dumps({k: v})]
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith('{"results"')]
    if not lines:
        pytest.fail(f"no results from {example.name} (rc {proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1])["results"]


def check_results(name: str, results: list[dict], expect: dict[str, Expect]):
    by_task: dict[str, dict] = {}
    for r in results:
        by_task.setdefault(r["task"], r)
    problems = []
    for task, want in expect.items():
        got = by_task.get(task)
        if got is None:
            problems.append(f"task '{task}' did not run (ran: {list(by_task)})")
            continue
        for key, value in want.items():
            actual = got["status"] if key == "status" else None
            if key != "status":
                try:
                    actual = _dig(got["result"], key)
                except (KeyError, IndexError, ValueError):
                    problems.append(f"'{task}': no '{key}' in its result: {json.dumps(got['result'])[:1500]}")
                    continue
            good = value(actual) if callable(value) and value is not bool else (
                bool(actual) if value is bool else actual == value)
            if not good:
                problems.append(f"'{task}': {key} is {json.dumps(actual)[:300]}, expected {value!r}; "
                                f"msg: {str(got['result'].get('msg'))[:600]}")
    unexpected = [r["task"] for r in results if r["task"] not in expect and r["status"] == "failed"
                  and not r["result"].get("_ansible_ignore_errors")]
    if unexpected:
        problems.append(f"tasks failed that the example does not expect to fail: {unexpected}")
    assert not problems, f"example '{name}':\n  " + "\n  ".join(problems)


# ---- the tests -----------------------------------------------------------------------------

EXAMPLES, PROBLEMS = find_examples()


def test_every_example_is_marked_and_accounted_for():
    """A task block without a marker, a marker in neither table, a table row without its
    example: each is a failure, so examples and this harness cannot drift apart."""
    problems = list(PROBLEMS)
    for name in EXAMPLES:
        if name not in CASES and name not in NOT_RUN:
            problems.append(f"example '{name}' ({EXAMPLES[name].source}) is neither run (CASES) nor listed in NOT_RUN")
    for name in list(CASES) + list(NOT_RUN):
        if name not in EXAMPLES:
            problems.append(f"'{name}' is in this test's tables but no example is marked with it")
        if name in CASES and name in NOT_RUN:
            problems.append(f"'{name}' is both run and not run")
    assert not problems, "\n".join(problems)


@pytest.fixture(scope="module")
def testhost(tmp_path_factory):
    """One systemd test host for the examples that need systemd, with a state dir of its
    own; torn down at the end."""
    state = tmp_path_factory.mktemp("example-host")
    env = dict(os.environ, HX_TESTHOSTS_STATE=str(state))
    subprocess.run([str(TESTHOSTS), "up", "hx-ex-1"], env=env, check=True, timeout=600)
    try:
        yield SystemdHost("hx-ex-1", state)
    finally:
        subprocess.run([str(TESTHOSTS), "down"], env=env, check=False, timeout=300)


@pytest.mark.parametrize("version", sorted(VENVS), ids=lambda v: f"ansible-core-{v}")
@pytest.mark.parametrize("name", sorted(n for n in CASES if n in EXAMPLES))
def test_example(name, version, tmp_path, request):
    """Runs one example with each pinned ansible-core (2.19, and 2.15, the oldest supported)."""
    example, case = EXAMPLES[name], CASES[name]
    world = World(tmp_path)
    if case.host == "testhost":
        world.testhost = request.getfixturevalue("testhost")
    try:
        if case.setup:
            case.setup(world)
        results = run_example(example, case, world, version)
    finally:
        world.close()
    check_results(name, results, {world.rewrite(t): e for t, e in case.expect.items()})


def test_web_tier_process_match(tmp_path):
    """README "Is the web tier healthy?": its process entry matches PHP-FPM as Debian 12
    runs it (the command name php-fpm8.2; titles 'php-fpm: master process (...)' and
    'php-fpm: pool www'), and not a process that merely mentions php-fpm."""
    text = EXAMPLES["web-tier"].text
    entry = yaml.safe_load(text)[0]["hx.reliability.health_check"]["processes"][0]
    world = World(tmp_path)
    try:
        for title in ("php-fpm: master process (/etc/php/8.2/fpm/php-fpm.conf)", "php-fpm: pool www", "php-fpm: pool www"):
            world.spawn(["bash", "-c", f'exec -a "{title}" sleep 600'])
        world.spawn(["bash", "-c", 'exec -a "vim /etc/php/8.2/fpm/php-fpm.conf" sleep 600'])
        time.sleep(0.3)
        probe = dict(entry, min_count=3, max_count=3)
        probe.pop("total_rss_critical", None)
        example = Example("web-tier-processes", "README.md", yaml.safe_dump([{
            "name": "processes", "hx.reliability.health_check": {"processes": [probe]}}]))
        results = run_example(example, Case(None, {}), world)
    finally:
        world.close()
    check_results("web-tier processes", results, {"processes": ok(**{"checks.0.status": "ok"})})
