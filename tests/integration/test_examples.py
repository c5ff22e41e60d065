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

Each playbook under playbooks/ has its row in ``PLAYBOOKS`` (set-up, the variables its
header shows, what each task must show); a playbook without one fails the test. README
blocks headed ``<!-- transcript: NAME -->`` are compared with a real run of the monitor and
of service_recovery's ladder (``test_readme_transcripts_match_a_real_run``, at the end).
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
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pytest
import yaml

from conftest import REPO, TESTHOSTS, VENVS, Ansible, skip_unless_possible, systemd_booted
from receivers import Alertmanager, HttpReceiver, SmtpReceiver, python_with_aiosmtpd, wait_until

MARKER = re.compile(r"^\s*# example: ([a-z0-9-]+)\s*$")
CALLBACKS = Path(__file__).parent / "callback_plugins"
OUR_MODULES = [
    "reliability_facts", "health_check", "circuit_breaker", "service_recovery",
    "backup_manifest", "backup_verify", "backup_retention", "maintenance_window",
]
# The modules whose state directory a run points into its own temporary directory.
STATEFUL = ("circuit_breaker", "backup_verify", "backup_retention", "service_recovery", "maintenance_window")
MONITOR = REPO / "roles" / "reliability_monitor" / "files" / "reliability-monitor_x86_64"

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
        # The second test host, for what spans two hosts (playbooks/failover.yml).
        self.backuphost: SystemdHost | None = None
        self.monitor_port: int | None = None
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

    @property
    def remote_state(self) -> str:
        """The state directory of a run on a test host: one per test, so no run sees
        another's failure counts, breakers or windows."""
        return f"/var/lib/hx-examples/{self.tmp.name}"

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


def wait_port(port: int, within: float = 10):
    deadline = time.time() + within
    while time.time() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    pytest.fail(f"nothing listens on 127.0.0.1:{port} after {within} s")


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

    def run(self, *argv: str, stdin: str | None = None, check: bool = True):
        env = dict(os.environ, HX_TESTHOSTS_STATE=str(self.state))
        out = subprocess.run([str(TESTHOSTS), "exec", self.name, "--", *argv], env=env, input=stdin,
                             capture_output=True, text=True, timeout=120, check=False)
        if check and out.returncode != 0:
            pytest.fail(f"on {self.name}: {' '.join(argv)}: {out.stdout}{out.stderr}")
        return out.stdout

    def put(self, path: str, text: str, mode: str = "0644"):
        self.run("install", "-D", "-m", mode, "/dev/stdin", path, stdin=text)

    def unit(self, name: str, text: str, instance: str | None = None):
        """Installs (or replaces) a unit, or a template and its `instance`, stopped, and
        forgets what earlier runs left: runtime properties, the failed state."""
        self.put(f"/etc/systemd/system/{name}", text)
        self.run("systemctl", "daemon-reload")
        unit = instance or name
        self.run("systemctl", "stop", unit)
        self.run("systemctl", "revert", unit)
        self.run("systemctl", "reset-failed", unit, check=False)  # refused when not loaded


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
    # A private CA, and a server certificate for 127.0.0.1 that it signed (90 days).
    ca_pem, cert_pem, key_pem = _tls_pair(d, days=90, ca_days=365, ca_name="hx test CA")
    ca = w.path("/etc/ssl")
    shutil.copy(ca_pem, ca / "private-ca.pem")
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
        f"c.load_cert_chain('{cert_pem}', '{key_pem}')\n"
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


HTTPS_STAND_IN = """import http.server, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(int(sys.argv[4]))
        self.send_header("Location", "https://www.example.org/en/")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")
    def log_message(self, *a): pass
s = http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H)
c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
c.load_cert_chain(sys.argv[2], sys.argv[3])
s.socket = c.wrap_socket(s.socket, server_side=True)
s.serve_forever()
"""

APP_STAND_IN = """import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'{"status": "ok"}' if self.path == "/health" else b"not found"
        self.send_response(200 if self.path == "/health" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), H).serve_forever()
"""

CRON_STAND_IN = """[Unit]
Description=A stand-in for cron (tests/integration/test_examples.py; cron is not in the test rootfs)

[Service]
ExecStart=/bin/sleep infinity

[Install]
WantedBy=multi-user.target
"""


def setup_health_web(w: World):
    """health_check "A web host...", on a systemd test host whose ssh and sshd are real:
    cron a stand-in unit (enabled), port 22 the host's SSH port, the two database hosts
    127.0.0.1 and localhost with a listener, the application a small HTTP server answering
    {"status": "ok"}, the public site an HTTPS server answering 301 with a certificate from
    a private CA the test host trusts (added to its CA bundle). The hosts share this
    machine's network, so the listeners run here."""
    h = w.testhost
    h.unit("cron.service", CRON_STAND_IN)
    h.run("systemctl", "enable", "--now", "cron.service")
    ssh_port = int((h.state / "hosts" / h.name / "port").read_text())
    w.resubs.append((r"^(\s*)- port: 22$", rf"\1- port: {ssh_port}"))
    db, app, site = listener(w), free_port(), free_port()
    w.subs["hosts: [db1.example.org, db2.example.org]"] = "hosts: [127.0.0.1, localhost]"
    w.resubs.append((r"^(\s*)port: 5432$", rf"\1port: {db}"))
    w.spawn(["python3", "-c", APP_STAND_IN, str(app)])
    w.subs["http://127.0.0.1:8080/health"] = f"http://127.0.0.1:{app}/health"
    https_site(w, site, 301)
    w.subs["https://www.example.org/"] = f"https://127.0.0.1:{site}/"
    for port in (db, app, site):
        wait_port(port)


def https_site(w: World, port: int, status: int):
    """An HTTPS server on `port` answering every GET with `status` (and "ok"), its
    certificate (30 days) from a private CA that the test host trusts: the CA is added to
    its bundle, /etc/ssl/certs/ca-certificates.crt."""
    ca, cert, key = _tls_pair(w.tmp / f"tls-{port}")
    w.spawn(["python3", "-c", HTTPS_STAND_IN, str(port), str(cert), str(key), str(status)])
    bundle = w.testhost.run("sh", "-c", "cat /etc/ssl/certs/ca-certificates.crt 2>/dev/null || true")
    w.testhost.put("/etc/ssl/certs/ca-certificates.crt", bundle + ca.read_text())


def listener(w: World) -> int:
    """A TCP port that accepts and closes, on every address (a database host stand-in)."""
    port = free_port()
    w.spawn(["python3", "-c", "import socket\ns=socket.socket();s.setsockopt(socket.SOL_SOCKET,socket.SO_REUSEADDR,1)\n"
             f"s.bind(('0.0.0.0',{port}));s.listen(16)\nwhile True: s.accept()[0].close()"])
    return port


PHP_FPM_STAND_IN = """[Unit]
Description=A stand-in for PHP-FPM, titled as Debian 12's (tests/integration/test_examples.py)

[Service]
ExecStart=/bin/bash -c '(exec -a "php-fpm: pool www" sleep infinity) & (exec -a "php-fpm: pool www" sleep infinity) & \
  exec -a "php-fpm: master process (/etc/php/8.2/fpm/php-fpm.conf)" sleep infinity'
"""


def setup_web_tier(w: World):
    """README "Is the web tier healthy?" on a systemd test host: nginx a unit that serves,
    PHP-FPM a unit whose master and two pool workers are titled as Debian 12's, db1 and db2
    127.0.0.1 and localhost with a listener, the public site an HTTPS server answering "ok"
    with a certificate (30 days) from a private CA the host trusts; /var/lib/postgresql
    made (on the root filesystem)."""
    h = w.testhost
    h.run("mkdir", "-p", "/usr/local/lib/hx-examples", "/var/lib/postgresql")
    h.run("ln", "-sfn", "/usr/bin/python3", "/usr/local/lib/hx-examples/nginx")
    h.unit("nginx.service", WEB_UNIT.format(port=free_port()))
    h.unit("php8.2-fpm.service", PHP_FPM_STAND_IN)
    h.run("systemctl", "start", "nginx.service", "php8.2-fpm.service")
    # This machine sees the test host's processes: they must not count in its own checks.
    w.on_exit(lambda: h.run("systemctl", "stop", "php8.2-fpm.service", check=False))
    db, site = listener(w), free_port()
    w.subs["hosts: [db1, db2], port: 5432"] = f"hosts: [127.0.0.1, localhost], port: {db}"
    https_site(w, site, 200)
    w.subs["https://shop.example/health"] = f"https://127.0.0.1:{site}/health"
    wait_port(db)
    wait_port(site)


def web_tier_checks(checks) -> bool:
    """Every check but the host's resources is ok (this busy machine's CPU may fail those):
    nginx, the two database hosts, the site, PHP-FPM's 3 processes."""
    mine = [c for c in checks if c["kind"] in ("service", "port", "http", "process")]
    return (sorted(c["kind"] for c in mine) == ["http", "port", "port", "process", "service"]
            and all(c["status"] == "ok" for c in mine)
            and next(c for c in mine if c["kind"] == "process")["details"]["count"] == 3)


def web_host_checks(checks) -> bool:
    """Every check but the host's resources (this busy machine's CPU may fail those) is ok:
    2 services, 3 ports (SSH, the two database hosts), 2 URLs, 1 process."""
    mine = [c for c in checks if c["kind"] in ("service", "port", "http", "process")]
    kinds = sorted(c["kind"] for c in mine)
    return kinds == ["http", "http", "port", "port", "port", "process", "service", "service"] and all(
        c["status"] == "ok" for c in mine)


def closed_url(w: World):
    """The examples' remote endpoints, replaced by a closed loopback port: no test traffic
    leaves the machine, and the call fails as an unreachable backend does."""
    w.subs["https://payments.example.org/health"] = "http://127.0.0.1:1/health"
    w.subs["https://payments.internal/health"] = "http://127.0.0.1:1/health"


def breaker_state_dir(w: World):
    closed_url(w)
    w.path("/var/lib/myapp/breakers")


def setup_maintenance_deploy(w: World):
    """maintenance_window "Deploy the web tier inside a maintenance window": its deploy.yml
    is a stand-in that asks the monitor (the same binary the role installs) which windows
    are in force, so the test sees the window as the daemon would."""
    write(w.tmp / "deploy.yml", yaml.safe_dump([{
        "name": "Deploy (stand-in: the windows in force, as the monitor reads them)",
        "ansible.builtin.command": {"argv": [str(MONITOR), "maintenance", "list", "--json",
                                             "--state-dir", str(w.tmp / "state")]},
        "register": "windows", "changed_when": False,
    }], sort_keys=False))
    w.extra_vars["release"] = "4.2.0"


KERNEL_END = "2026-12-24T06:00:00+01:00"


def setup_maintenance_kernel(w: World):
    """The example's fixed end moves to 06:00 (+01:00) twenty days from now, so it stays in
    the future (an end in the past is refused)."""
    day = time.strftime("%Y-%m-%d", time.gmtime(time.time() + 20 * 86400))
    w.subs[KERNEL_END] = f"{day}T06:00:00+01:00"
    w.extra_vars["hx_kernel_end_utc"] = f"{day}T05:00:00.000Z"


# A stand-in for nginx whose configuration is broken: `nginx -t` fails as nginx's does, so
# the unit (ExecStartPre=nginx -t) cannot start and reload's config test stops the rung.
NGINX_STAND_IN = """#!/bin/sh
# A stand-in for nginx (tests/integration/test_examples.py) with a broken configuration.
if [ "${1:-}" = -t ]; then
  echo 'nginx: [emerg] unknown directive "listen_backlog" in /etc/nginx/nginx.conf:12' >&2
  echo 'nginx: configuration file /etc/nginx/nginx.conf test failed' >&2
  exit 1
fi
exec sleep infinity
"""

NGINX_UNIT = """[Unit]
Description=A stand-in for nginx that cannot start (tests/integration/test_examples.py)

[Service]
ExecStartPre=/usr/local/sbin/nginx -t -q
ExecStart=/usr/local/sbin/nginx
"""

STANDBY_UNIT = """[Unit]
Description=A stand-in for nginx's standby (tests/integration/test_examples.py)

[Service]
ExecStart=/bin/sleep infinity
"""


def setup_recovery_nginx(w: World):
    """service_recovery "Recover nginx...": nginx cannot start (its config test fails), the
    standby can; the health URL is a closed port (the hosts share this machine's network)."""
    h = w.testhost
    h.put("/usr/local/sbin/nginx", NGINX_STAND_IN, "0755")
    h.unit("nginx.service", NGINX_UNIT)
    h.unit("nginx-standby.service", STANDBY_UNIT)
    w.subs["http://127.0.0.1/healthz"] = f"http://127.0.0.1:{free_port()}/healthz"


WORKER_UNIT = """[Unit]
Description=A stand-in worker that cannot start (tests/integration/test_examples.py)

[Service]
Type=oneshot
ExecStart=/bin/false
MemoryMax=512M
"""


def setup_recovery_ladder(w: World):
    """service_recovery "A ladder of its own...": worker@1 cannot start, MemoryMax 512M."""
    w.testhost.unit("worker@.service", WORKER_UNIT, instance="worker@1.service")


def worker_memory_max(w: World, _results):
    """What scale_resources did, as systemd has it: 512M doubled."""
    got = w.testhost.run("systemctl", "show", "-P", "MemoryMax", "worker@1.service").strip()
    assert got == str(1 << 30), f"worker@1 MemoryMax is {got}, expected 1G (512M x 2)"


WEB_UNIT = """[Unit]
Description=A stand-in for nginx that serves (tests/integration/test_examples.py)

[Service]
ExecStart=/usr/local/lib/hx-examples/nginx -m http.server {port} --bind 127.0.0.1
"""


def setup_role_deploy(w: World):
    """The role's example on a test host, its nginx a stand-in that serves HTTP and whose
    process is called nginx (python3 through a link named nginx). Adapted: nginx's port
    (the hosts share this machine's network, so 80 may be taken), the daemon's port for the
    same reason, and no package installation (the hosts have no network; cron and
    logrotate are not in their rootfs)."""
    h = w.testhost
    h.run("mkdir", "-p", "/usr/local/lib/hx-examples")
    h.run("ln", "-sfn", "/usr/bin/python3", "/usr/local/lib/hx-examples/nginx")
    web = free_port()
    h.unit("nginx.service", WEB_UNIT.format(port=web))
    h.run("systemctl", "start", "nginx.service")
    w.resubs.append((r"^(\s*)port: 80$", rf"\1port: {web}"))
    w.monitor_port = free_port()
    w.extra_vars["reliability_monitor_service_monitoring"] = {"listen": {"port": w.monitor_port}}
    w.extra_vars["reliability_monitor_install_packages"] = False


def monitor_health(port: int, ready_within: float = 60) -> dict:
    """The daemon's /health once it is ready (it is served from this machine's loopback:
    the test hosts share its network)."""
    deadline = time.time() + ready_within
    body = None
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                data = b""
                while chunk := s.recv(65536):
                    data += chunk
            body = json.loads(data.split(b"\r\n\r\n", 1)[1])
            if body.get("ready") and all(c.get("runs", 0) > 0 for c in body["checks"]):
                return body
        except (OSError, ValueError, IndexError):
            pass
        time.sleep(0.5)
    pytest.fail(f"the monitor on port {port} was not ready within {ready_within} s: {body}")


def role_deployed(w: World, _results):
    """The unit runs, and the daemon checks nginx as the seed's entry says: the unit, the
    port and the process, all ok."""
    assert w.testhost.run("systemctl", "is-active", "reliability-monitor.service").strip() == "active"
    health = monitor_health(w.monitor_port)
    # The seed's performance checks run too; this busy machine's CPU may fail them.
    results = [r for c in health["checks"] for r in c["results"] if r["kind"] in ("service", "port", "process")]
    kinds = {r["kind"]: (r["status"], r["message"]) for r in results}
    assert {k: v[0] for k, v in kinds.items()} == {"service": "ok", "port": "ok", "process": "ok"}, kinds
    assert "nginx.service: active (running)" in kinds["service"][1] and "process nginx: 1 processes" in kinds["process"][1]
    # The seed's cron jobs: services and performance every 5 minutes, backups hourly.
    cron = w.testhost.run("cat", "/etc/cron.d/reliability_monitor")
    jobs = sorted((line.split(" root ")[0], line.split("--type ")[1].split()[0])
                  for line in cron.splitlines() if " root " in line)
    assert jobs == [("*/5 * * * *", "performance"), ("*/5 * * * *", "services"), ("0 * * * *", "backup")], cron


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
    # Runs of the task list in a row, as a ladder needs (each task named "NAME (run N)",
    # each with ignore_errors, its status checked like any other).
    runs: int = 1
    # Checks after the run on what the example changed (a unit's properties, a daemon).
    after: Callable[[World, list[dict]], None] | None = None


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


NGINX_TASK = "Recover nginx if it is down or its endpoint hangs"
LADDER_TASK = "A ladder of its own, with a quicker breaker"

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
    "web-tier": Case(
        setup_web_tier,
        {"Is the web tier healthy?": {"status": one_of_statuses("ok", "failed"), "checks": web_tier_checks}},
        host="testhost",
        tolerate=["Is the web tier healthy?"],
    ),
    "health-web": Case(
        setup_health_web,
        {
            "A web host, every kind of check at once": {
                "status": one_of_statuses("ok", "failed"),
                "checks": web_host_checks,
            },
        },
        host="testhost",
        tolerate=["A web host, every kind of check at once"],
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
    "maintenance-window-deploy": Case(
        setup_maintenance_deploy,
        {
            "Open a window for the deployment": ok(changed=True, **{
                "window.active": True, "window.reason": "release 4.2.0",
                "window.services": ["nginx.service", "app.service"]}),
            # The monitor sees it in force while the play deploys.
            "Deploy (stand-in: the windows in force, as the monitor reads them)": ok(**{
                "stdout": lambda s: [(x["name"], x["reason"]) for x in json.loads(s)["windows"]]
                == [("deploy", "release 4.2.0")]}),
            "Close the window": ok(changed=True, window=None),
        },
    ),
    "maintenance-window-kernel": Case(
        setup_maintenance_kernel,
        {
            "A kernel update window until a fixed time": ok(changed=True, **{
                "window.end": lambda e: e.endswith("T05:00:00.000Z"), "window.services": []}),
        },
    ),
    # The default ladder to its end: failures 1-2 restart and 3-4 reload fail (the config
    # test names the broken line), 5-6 fail over to the standby, 7 is manual with the
    # runbook, within the rate limit of 7 an hour.
    "recovery-nginx": Case(
        setup_recovery_nginx,
        {
            f"{NGINX_TASK} (run 1)": failed(outcome="still_failing", strategy="restart", level=1, **{"failure_count.after": 1}),
            f"{NGINX_TASK} (run 2)": failed(outcome="still_failing", strategy="restart", level=1, **{"failure_count.after": 2}),
            f"{NGINX_TASK} (run 3)": failed(outcome="still_failing", strategy="reload", level=2,
                                            msg=lambda m: 'unknown directive "listen_backlog"' in m),
            f"{NGINX_TASK} (run 4)": failed(outcome="still_failing", strategy="reload", level=2, **{"failure_count.after": 4}),
            f"{NGINX_TASK} (run 5)": ok(outcome="failed_over", strategy="failover", level=3, changed=True),
            f"{NGINX_TASK} (run 6)": ok(outcome="failed_over", strategy="failover", level=3, **{"failure_count.after": 6}),
            f"{NGINX_TASK} (run 7)": failed(outcome="manual_intervention", strategy="manual", level=4,
                                            msg=lambda m: "https://runbooks.example.org/nginx" in m),
        },
        host="testhost",
        runs=7,
    ),
    # Failure 4 reaches scale_resources (MemoryMax 512M doubled), as the breaker of 4 allows.
    "recovery-ladder": Case(
        setup_recovery_ladder,
        {
            f"{LADDER_TASK} (run 1)": failed(strategy="restart", level=1),
            f"{LADDER_TASK} (run 2)": failed(strategy="restart", level=1),
            f"{LADDER_TASK} (run 3)": failed(strategy="restart", level=1, **{"failure_count.after": 3}),
            f"{LADDER_TASK} (run 4)": failed(outcome="still_failing", strategy="scale_resources", level=2,
                                             **{"failure_count.after": 4}),
            f"{LADDER_TASK} (run 5)": failed(strategy="manual", level=3),
        },
        host="testhost",
        runs=5,
        after=worker_memory_max,
    ),
    "role-deploy": Case(
        setup_role_deploy,
        {"Deploy reliability monitoring": ok()},
        host="testhost",
        after=role_deployed,
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
NOT_RUN: dict[str, str] = {}


# ---- the playbooks ---------------------------------------------------------------------------
# Each playbook under playbooks/ is run as it is, its variables given as its header comment
# shows (-e), against localhost or the test hosts, and checked like an example.


def web_unit(port: int) -> str:
    return f"[Service]\nExecStart=/usr/bin/python3 -m http.server {port} --bind 127.0.0.1\n"


# A unit that can never start: `systemctl restart` fails at once.
BROKEN_UNIT = "[Service]\nType=oneshot\nExecStart=/bin/false\n"


def setup_pb_health_check(w: World):
    web, closed = free_port(), free_port()
    w.spawn(["python3", "-m", "http.server", str(web), "--bind", "127.0.0.1"])
    wait_port(web)
    w.extra_vars.update(check_hosts="localhost",
                        check_ports=[{"name": "web", "port": web}, {"name": "db", "port": closed}])


def setup_pb_verify_backups(w: World):
    for night in ("2026-11-22", "2026-11-23"):
        d = w.tmp / "backup" / night
        for i in range(5):
            write(d / f"f{i}.csv", f"row {i}\n" * 100)
        sha256sum(d, d / "SHA256SUMS")
    write(w.tmp / "backup" / "2026-11-22" / "f3.csv", "flipped\n")
    w.extra_vars.update(verify_hosts="localhost", verify_backups=[
        {"manifest": str(w.tmp / "backup" / "2026-11-23" / "SHA256SUMS"), "record_good": "nightly"},
        {"manifest": str(w.tmp / "backup" / "2026-11-22" / "SHA256SUMS")},
    ])


def setup_pb_recover(w: World):
    """Two services on a test host: one serving, one killed."""
    h, up, down = w.testhost, free_port(), free_port()
    for name, port in (("ex-up", up), ("ex-down", down)):
        h.unit(f"{name}.service", web_unit(port))
        h.run("systemctl", "start", f"{name}.service")
    h.run("systemctl", "kill", "-s", "KILL", "ex-down.service")
    w.extra_vars.update(recover_hosts=h.name, recover_state_dir=w.remote_state, recover_services=[
        {"service": "ex-up", "health": {"http": [{"url": f"http://127.0.0.1:{up}/", "timeout": 1}]}},
        {"service": "ex-down", "health": {"http": [{"url": f"http://127.0.0.1:{down}/", "timeout": 1}]}},
    ])


def setup_pb_failover(w: World):
    """ex-fo cannot start on the first host; its standby serves on the second."""
    standby = free_port()
    w.testhost.unit("ex-fo.service", BROKEN_UNIT)
    w.backuphost.unit("ex-fo-standby.service", web_unit(standby))
    w.extra_vars.update(failover_primary=w.testhost.name, failover_backup=w.backuphost.name,
                        failover_service="ex-fo", failover_backup_service="ex-fo-standby",
                        failover_backup_health={"ports": [{"port": standby}]},
                        failover_state_dir=w.remote_state, failover_timeout=10)


def setup_pb_site(w: World):
    """The role through site.yml, its variables as a monitor.yml would give them: one port
    check on a unit that serves."""
    h, web = w.testhost, free_port()
    h.unit("ex-site-web.service", web_unit(web))
    h.run("systemctl", "start", "ex-site-web.service")
    w.monitor_port = free_port()
    w.extra_vars.update(site_hosts=h.name, reliability_monitor_install_packages=False,
                        service_monitoring={"check_interval": 5, "listen": {"port": w.monitor_port}},
                        health_checks={"enabled": True, "ports": [{"name": "site-web", "port": web}]})


def site_deployed(w: World, _results):
    assert w.testhost.run("systemctl", "is-active", "reliability-monitor.service").strip() == "active"
    health = monitor_health(w.monitor_port)
    names = {r["name"]: r["status"] for c in health["checks"] for r in c["results"]}
    assert names.get("site-web") == "ok", health


def unit_active(host_attr: str, unit: str):
    def check(w: World, _results):
        host = getattr(w, host_attr)
        state = subprocess.run([str(TESTHOSTS), "exec", host.name, "--", "systemctl", "is-active", unit],
                               env=dict(os.environ, HX_TESTHOSTS_STATE=str(host.state)),
                               capture_output=True, text=True, check=False).stdout.strip()
        assert state == "active", f"{unit} on {host.name} is {state}"
    return check


def summary_lines(msg) -> bool:
    """playbooks/health_summary.yml: one line per subject, in order, systemd as this host has it."""
    heads = ["", "CPU: ", "Load: ", "Memory: ", "Filesystems: ", "Network: ", "systemd: ", "Health: "]
    systemd = "systemd: version" if systemd_booted() else "systemd: not running (PID 1 is"
    return (len(msg) == 9 and all(line.startswith(h) for line, h in zip(msg, heads))
            and "kernel" in msg[0] and msg[6].startswith(systemd) and "/ " in msg[4])


PLAYBOOKS: dict[str, Case] = {
    "health_check.yml": Case(
        setup_pb_health_check,
        {
            "Run the checks": ok(**{"counts.critical": lambda n: n >= 1}),
            "Print the summary table": ok(msg=lambda m: m[0].split() == ["HOST", "STATUS", "OK", "WARN", "CRIT", "UNKN", "PROBLEMS"]
                                          and m[1].split()[:2] == ["localhost", "unhealthy"] and "db" in m[1].split(None, 6)[6]),
            "Fail the run when a host is at or beyond check_fail_on": failed(msg=lambda m: "critical or unknown" in m),
        },
    ),
    "health_summary.yml": Case(
        None,
        {
            "Gather reliability facts": ok(),
            "Check host resources against the default levels (CPU 70/90, memory 80/95, disk 85/95)": ok(),
            "Print the summary": ok(msg=summary_lines),
        },
    ),
    "verify_backups.yml": Case(
        setup_pb_verify_backups,
        {
            "Verify each backup": ok(**{"results.0.status": "ok", "results.0.good.recorded": True,
                                        "results.1.status": "failed"}),
            "Print the summary table": ok(msg=lambda m: [line.split()[:2] for line in m]
                                          == [["HOST", "STATUS"], ["localhost", "ok"], ["localhost", "failed"]]
                                          and "mismatched" in m[2]),
            "Fail the run when a backup is not good": failed(msg=lambda m: "2026-11-22" in m and "2026-11-23" not in m),
        },
    ),
    "recover.yml": Case(
        setup_pb_recover,
        {
            "Look at every service (check mode, touches nothing)": ok(**{
                "results": lambda rs: [(r["item"]["service"], r["failing"]) for r in rs] == [("ex-up", False), ("ex-down", True)]}),
            "Recover what is failing": ok(changed=True, **{
                "results": lambda rs: [(r["item"]["item"]["service"], r["outcome"]) for r in rs] == [("ex-down", "recovered")]}),
            "Report": ok(msg=lambda m: len(m) == 2 and "ex-up.service is healthy" in m[0] and "recovered" in m[1]),
        },
        host="testhost",
        after=unit_active("testhost", "ex-down.service"),
    ),
    "failover.yml": Case(
        setup_pb_failover,
        {
            "Primary, backup and both services are named": ok(),
            "Recover on the primary (restarts, then hand over)": ok(outcome="manual_intervention", **{
                "failure_count.after": 3}),
            "Start the backup on the backup host": ok(changed=True),
            "Verify the backup serves": ok(msg=lambda m: m.startswith("healthy: ")),
            "Report": ok(msg=lambda m: m.startswith("ex-fo on hx-ex-1: failed over to hx-ex-2 (ex-fo-standby healthy)")),
        },
        host="testhost",
        after=unit_active("backuphost", "ex-fo-standby.service"),
    ),
    "site.yml": Case(
        setup_pb_site,
        {"hx.reliability.reliability_monitor : Render the configuration": ok(changed=True)},
        host="testhost",
        after=site_deployed,
    ),
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
    state = world.remote_state if case.host == "testhost" else str(world.tmp / "state")
    defaults = {f"hx.reliability.{m}": {"state_dir": state} for m in STATEFUL}
    data = yaml.safe_load(text)
    if example.is_play:
        plays = data
    else:
        host = world.testhost.name if case.host == "testhost" else case.host
        if case.runs > 1:
            data = [dict(task, name=f"{task['name']} (run {i})", ignore_errors=True)
                    for i in range(1, case.runs + 1) for task in data]
        plays = [{"name": example.name, "hosts": host, "gather_facts": False, "tasks": data}]
    for play in plays:
        merged = dict(defaults)
        merged.update(play.get("module_defaults", {}))
        play["module_defaults"] = merged
        for task in play.get("tasks", []):
            if task.get("name") in case.tolerate:
                task["ignore_errors"] = True
    return plays


def run_example(example: Example, case: Case, world: World, version: str = "2.19",
                extra: tuple[str, ...] = ()) -> list[dict]:
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
    cmd += extra
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
def testhosts_pair(tmp_path_factory):
    """Two systemd test hosts for the examples and playbooks that need systemd (the second
    for what spans two hosts), with a state dir of their own; torn down at the end."""
    state = tmp_path_factory.mktemp("example-hosts")
    env = dict(os.environ, HX_TESTHOSTS_STATE=str(state))
    subprocess.run([str(TESTHOSTS), "up", "hx-ex-1", "hx-ex-2"], env=env, check=True, timeout=600)
    try:
        yield SystemdHost("hx-ex-1", state), SystemdHost("hx-ex-2", state)
    finally:
        subprocess.run([str(TESTHOSTS), "down"], env=env, check=False, timeout=300)


@pytest.fixture(scope="module")
def testhost(testhosts_pair):
    return testhosts_pair[0]


# Playbooks that a molecule scenario runs as written (`make molecule`) instead of this file:
# the playbook and the scenario step that imports it.
RUN_BY_MOLECULE: dict[str, str] = {
    "failure_simulation.yml": "molecule/failure_simulation/side_effect.yml",
}


def test_every_playbook_is_run():
    """Each playbook under playbooks/ has its row in PLAYBOOKS or is imported as it is by a
    molecule scenario, and each row its playbook."""
    found = {p.name for p in (REPO / "playbooks").glob("*.yml")}
    rows = set(PLAYBOOKS) | set(RUN_BY_MOLECULE)
    assert found == rows, (f"not run: {sorted(found - rows)}; "
                           f"rows without a playbook: {sorted(rows - found)}")
    for name, step in RUN_BY_MOLECULE.items():
        imports = yaml.safe_load((REPO / step).read_text())
        assert [i.get("ansible.builtin.import_playbook") for i in imports] == [f"../../playbooks/{name}"], step


@pytest.mark.parametrize("name", sorted(PLAYBOOKS))
def test_playbook(name, tmp_path, request):
    """Runs one playbook (ansible-core 2.19) as it is, with the variables its header shows."""
    case = PLAYBOOKS[name]
    example = Example(f"playbook-{name}", f"playbooks/{name}", (REPO / "playbooks" / name).read_text())
    world = World(tmp_path)
    if case.host == "testhost":
        world.testhost, world.backuphost = request.getfixturevalue("testhosts_pair")
    try:
        if case.setup:
            case.setup(world)
        results = run_example(example, case, world)
        check_results(example.name, results, case.expect)
        if case.after:
            case.after(world, results)
    finally:
        world.close()


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
        check_results(name, results, {world.rewrite(t): e for t, e in case.expect.items()})
        if case.after:
            case.after(world, results)
    finally:
        world.close()


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


# ---- the README's transcripts of the monitor ---------------------------------------------------
#
# A README block headed by `<!-- transcript: NAME -->` is output of a real run: the monitor
# daemon on a systemd test host, with a service it heals, port checks it alerts on, and the
# four alert channels delivering to real receivers on this machine's loopback (the test hosts
# share its network): aiosmtpd (STARTTLS, AUTH), an HTTP receiver for Slack and the signed
# webhook, Debian's prometheus-alertmanager read back with amtool. `monitor_story` runs it
# and returns each transcript; the test compares every README line with the real output, as
# a doctest does: volatile values (times, numbers, ports, keys) are masked on both sides,
# runs of spaces are one, a line `...` stands for any lines (a trim), and `...` inside a line
# for any text. HX_WRITE_TRANSCRIPTS=FILE writes the real transcripts there, to paste.

STORY_SECRET = "whsec-4c1d2e"

STORY_CONFIG = """service_monitoring:
  check_interval: 1
  consecutive_failures: 2
  consecutive_successes: 1
  state_dir: /var/lib/reliability_monitor
  listen: {{port: {listen}}}
performance_monitoring: {{enabled: false}}
health_checks:
  resources: {{include: [memory]}}
  services:
    - name: shop
      type: systemd
      port: {shop}
      recovery: {{timeout: 10}}
  ports:
    - {{name: payments, port: {payments}, timeout: 1}}
    - {{name: search, port: {search}, timeout: 1}}
reliability_metrics: {{sla_target: 99.9}}
alerting:
  channels: [email, slack, webhook, alertmanager]
  alert_on: {{check_failure: true}}
  runbook_url: https://runbooks.example.org/monitor
notifications:
  email:
    smtp_server: 127.0.0.1
    smtp_port: {smtp}
    tls: starttls
    ca_file: /etc/reliability_monitor/smtp-ca.pem
    username: alerts
    password_file: /etc/reliability_monitor/smtp-password
    from_address: monitor@example.org
    to_addresses: [oncall@example.org, ops@example.org]
  slack:
    webhook_url: http://127.0.0.1:{http}/services/T0001/B0001/XXXXXXXX
    channel: "#alerts"
  webhook:
    url: http://127.0.0.1:{http}/hook
    secret: {secret}
  alertmanager:
    url: http://127.0.0.1:{alertmanager}
"""

STORY_UNIT = """[Unit]
Description=reliability-monitor (tests/integration/test_examples.py)
[Service]
Type=notify
ExecStart=/usr/local/bin/reliability-monitor daemon
ExecReload=/bin/kill -HUP $MAINPID
WatchdogSec=30
"""


class Story:
    """The host of the transcripts and what it runs; `transcripts` holds each NAME's text."""

    def __init__(self, host: SystemdHost, tmp: Path):
        self.host, self.tmp = host, tmp
        self.transcripts: dict[str, str] = {}
        self.root = Path(f"/proc/{(host.state / 'hosts' / host.name / 'leader').read_text().strip()}/root")

    def put(self, path: str, data: bytes | str, mode: int = 0o644):
        target = self.root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data if isinstance(data, bytes) else data.encode())
        os.chown(target, 0, 0)
        target.chmod(mode)

    def exec(self, *argv: str) -> subprocess.CompletedProcess:
        env = dict(os.environ, HX_TESTHOSTS_STATE=str(self.host.state))
        return subprocess.run([str(TESTHOSTS), "exec", self.host.name, "--", *argv], env=env,
                              capture_output=True, text=True, timeout=120, check=False)

    def shown(self, name: str, shown: str, argv: list[str], rc: bool = False, keep=None) -> str:
        """Runs `argv` on the host and adds `$ shown` and its output to transcript `name`."""
        out = self.exec(*argv)
        text = out.stdout + out.stderr
        if keep:
            text = keep(text)
        block = f"$ {shown}\n{text}"
        if rc:
            block += f"{out.returncode}\n"
        self.transcripts[name] = self.transcripts.get(name, "") + block
        return out.stdout

    def monitor(self, *args: str) -> str:
        out = self.exec("/usr/local/bin/reliability-monitor", *args)
        return out.stdout

    def journal(self) -> list[str]:
        """The daemon's own lines (not systemd's about it, which the journal orders freely
        against them)."""
        return self.exec("journalctl", "-q", "-o", "cat", "--no-pager",
                         "_SYSTEMD_UNIT=reliability-monitor.service").stdout.splitlines()


def http_get_raw(port: int, path: str) -> str:
    """The response to a GET as it came off the wire (what `curl -i` prints), CRLF as LF."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        # As curl asks: HTTP/1.1, keep-alive; the body is as long as Content-Length says.
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost:9189\r\nUser-Agent: curl\r\nAccept: */*\r\n\r\n".encode())
        data = b""
        while b"\r\n\r\n" not in data:
            data += conn.recv(65536)
        head, body = data.split(b"\r\n\r\n", 1)
        length = int(re.search(rb"(?im)^content-length: *(\d+)", head).group(1))
        while len(body) < length:
            body += conn.recv(65536)
    return (head + b"\r\n\r\n" + body).decode().replace("\r\n", "\n")


def _tls_pair(d: Path, days: int = 30, ca_days: int = 30, ca_name: str = "hx smtp test CA") -> tuple[Path, Path, Path]:
    """A private CA and a certificate for 127.0.0.1 it signed, valid DAYS: (ca, cert, key)."""
    d.mkdir(parents=True, exist_ok=True)

    def openssl(*args):
        subprocess.run(["openssl", *args], cwd=d, check=True, capture_output=True)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", str(ca_days), "-subj", f"/CN={ca_name}",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign",
            "-keyout", "ca.key", "-out", "ca.pem")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", "key.pem", "-out", "req.pem")
    (d / "ext").write_text("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n")
    openssl("x509", "-req", "-in", "req.pem", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-days", str(days),
            "-extfile", "ext", "-out", "cert.pem")
    return d / "ca.pem", d / "cert.pem", d / "key.pem"


def _email_shown(message: dict) -> str:
    """The message as the receiver got it: the envelope, then the headers and body, with
    lettre's MIME line folding and transfer encoding as sent."""
    return (f"MAIL FROM:<{message['mail_from']}> RCPT TO:{', '.join(f'<{r}>' for r in message['rcpt_tos'])} "
            f"(STARTTLS: {'yes' if message['tls'] else 'no'}, AUTH {message['auth']})\n" + message["data"].replace("\r\n", "\n"))


def _http_shown(r) -> str:
    head = [f"{r.method} {r.path}"] + [f"{k}: {v}" for k, v in r.headers]
    body = json.dumps(r.json(), indent=2, sort_keys=True)
    verdict = "" if r.signature_ok is None else f"\n(signature {'verified' if r.signature_ok else 'WRONG'} with the shared secret)"
    return "\n".join(head) + "\n\n" + body + "\n" + verdict.lstrip("\n") + ("\n" if verdict else "")


def monitor_story(host: SystemdHost, tmp: Path) -> dict[str, str]:
    """The run the README shows, step by step; returns each transcript."""
    s = Story(host, tmp)
    python = python_with_aiosmtpd()
    skip_unless_possible(python is not None, "no Python with aiosmtpd (requirements/dev.txt)")
    skip_unless_possible(all(Path(b).exists() for b in ("/usr/bin/prometheus-alertmanager", "/usr/bin/amtool")),
                         "prometheus-alertmanager (Debian package, tools/apt-packages.txt) is not installed")
    ca, cert, key = _tls_pair(tmp / "tls")
    http = HttpReceiver(secret=STORY_SECRET)
    smtp = SmtpReceiver(python, tmp / "smtp", cert, key)
    am = Alertmanager(tmp / "alertmanager")
    ports = {"listen": free_port(), "shop": free_port(), "payments": free_port(), "search": free_port()}
    try:
        s.put("/usr/local/bin/reliability-monitor", MONITOR.read_bytes(), 0o755)
        s.put("/etc/reliability_monitor/smtp-ca.pem", ca.read_bytes())
        s.put("/etc/reliability_monitor/smtp-password", "pa55word\n", 0o600)
        config = STORY_CONFIG.format(smtp=smtp.port, http=http.port, alertmanager=am.port, secret=STORY_SECRET, **ports)
        s.put("/etc/reliability_monitor/config.yml", config, 0o600)
        s.transcripts["monitor-config-alerts"] = config[config.index("alerting:"):]
        for name in ("shop", "payments", "search"):
            s.put(f"/etc/systemd/system/{name}.service", web_unit(ports[name]))
        s.put("/etc/systemd/system/reliability-monitor.service", STORY_UNIT)
        s.exec("rm", "-rf", "/var/lib/reliability_monitor")
        host.run("systemctl", "daemon-reload")
        host.run("systemctl", "restart", "shop", "payments", "search")
        for p in ("shop", "payments", "search"):
            wait_port(ports[p])
        host.run("systemctl", "restart", "reliability-monitor.service")

        # Two outages of shop, each healed by a restart.
        for _outage in range(2):
            host.run("systemctl", "kill", "-s", "KILL", "shop.service")
            closed = len([ln for ln in s.journal() if "recovered" in ln])
            wait_until("shop healed", lambda closed=closed: len([ln for ln in s.journal() if "recovered" in ln]) > closed,
                       within=30)
            wait_port(ports["shop"])
            time.sleep(2)

        # payments goes down: one alert, on every channel.
        host.run("systemctl", "stop", "payments.service")

        def hook():
            return next((r for r in http.at("/hook") if r.json().get("service") == "payments"), None)

        def slack():
            return next((r for r in http.at("/services") if ": payments on " in r.json().get("text", "")), None)

        def email():
            return next((m for m in smtp.messages() if "\nService: payments\n" in m["data"].replace("\r\n", "\n")), None)

        wait_until("the payments alert on every channel", lambda: (
            hook() and slack() and email() and "payments" in am.amtool("alert", "query", "service=payments")), within=30)
        # `status` reads what the daemon writes every 15 s.
        wait_until("the daemon's last results", lambda: "no results" not in s.monitor("status"), within=20)

        s.transcripts["daemon-log"] = ("$ journalctl -o cat _SYSTEMD_UNIT=reliability-monitor.service\n"
                                       + "\n".join(s.journal()) + "\n")
        for path, name, head in (("/health", "endpoint-health", True), ("/metrics", "endpoint-metrics", False)):
            raw = http_get_raw(ports["listen"], path)
            out = raw if head else raw.split("\n\n", 1)[1]
            s.transcripts[name] = f"$ curl {'-i ' if head else ''}localhost:9189{path}\n" + out
        s.shown("monitor-status", "reliability-monitor status", ["/usr/local/bin/reliability-monitor", "status"])
        s.shown("monitor-incidents", "reliability-monitor incidents", ["/usr/local/bin/reliability-monitor", "incidents"])

        s.transcripts["alert-webhook"] = _http_shown(hook())
        s.transcripts["alert-slack"] = _http_shown(slack())
        s.transcripts["alert-email"] = _email_shown(email())
        with urllib.request.urlopen(f"{am.url}/api/v2/alerts?filter=service%3D%22payments%22", timeout=10) as r:
            api = json.dumps(json.loads(r.read()), indent=2, sort_keys=True)
        s.transcripts["alert-alertmanager"] = (
            "$ amtool alert query service=payments\n" + am.amtool("alert", "query", "service=payments")
            + "$ curl -s 'localhost:9093/api/v2/alerts?filter=service=\"payments\"' | python3 -m json.tool\n" + api + "\n")

        # Maintenance: search fails inside an ad-hoc window and nothing is sent until it ends.
        mon = "/usr/local/bin/reliability-monitor"
        s.shown("maintenance", 'reliability-monitor maintenance start --for 2h --reason "kernel update"',
                [mon, "maintenance", "start", "--for", "2h", "--reason", "kernel update"])
        s.shown("maintenance", "reliability-monitor maintenance list", [mon, "maintenance", "list"])
        wait_until("the window seen by the daemon", lambda: any("maintenance window 'cli' (ad_hoc) started" in ln
                                                                for ln in s.journal()), within=10)
        mark = len(s.journal())
        host.run("systemctl", "stop", "search.service")
        wait_until("search failing", lambda: any("health_checks.ports[1]: failing" in ln for ln in s.journal()[mark:]),
                   within=15)
        time.sleep(3)
        held = [r for r in http.requests if b"search" in r.body]
        assert held == [], f"alerts sent inside the window: {held}"
        s.transcripts["maintenance"] += "$ systemctl stop search; sleep 5; journalctl -o cat _SYSTEMD_UNIT=reliability-monitor.service\n"
        s.transcripts["maintenance"] += "\n".join(s.journal()[mark - 1:]) + "\n"
        mark = len(s.journal())
        s.shown("maintenance", "reliability-monitor maintenance stop", [mon, "maintenance", "stop"])
        stopped = time.time()
        wait_until("the search alert after the window", lambda: any(b"search" in r.body for r in http.at("/hook")), within=10)
        after = time.time() - stopped
        assert after < 5, f"the held alert came {after:.1f} s after the window closed"
        time.sleep(1)
        s.transcripts["maintenance"] += "$ journalctl -o cat _SYSTEMD_UNIT=reliability-monitor.service\n"
        s.transcripts["maintenance"] += "\n".join(s.journal()[mark:]) + "\n"

        # The audit trail of it all, then one line edited.
        s.shown("audit", "reliability-monitor audit verify", [mon, "audit", "verify"])
        s.shown("audit", "cut -d, -f1,4-7 /var/lib/reliability_monitor/audit/audit.jsonl",
                ["cut", "-d,", "-f1,4-7", "/var/lib/reliability_monitor/audit/audit.jsonl"])
        # The window's opening by the CLI is edited (its line number depends on the alerts
        # delivered before it, each an audit record).
        edit = '/"maintenance.open"/s/"reason":"kernel update"/"reason":"routine"/'
        s.shown("audit", f"sed -i '{edit}' /var/lib/reliability_monitor/audit/audit.jsonl",
                ["sed", "-i", edit, "/var/lib/reliability_monitor/audit/audit.jsonl"])
        s.shown("audit", "reliability-monitor audit verify; echo $?", [mon, "audit", "verify"], rc=True)
    finally:
        host.run("systemctl", "stop", "reliability-monitor.service")
        am.close()
        smtp.close()
        http.close()
    return s.transcripts


LADDER_SHOP = """[Unit]
Description=shop, whose start keeps failing (tests/integration/test_examples.py)
[Service]
ExecStartPre=/bin/false
ExecStart=/usr/bin/python3 -m http.server {port} --bind 127.0.0.1
"""


def ladder_story(host: SystemdHost) -> str:
    """README "Self-healing": four runs of service_recovery on a service that cannot start,
    with a ladder of one rung per failure; each result condensed to what the README shows."""
    shop, standby = free_port(), free_port()
    host.unit("shop.service", LADDER_SHOP.format(port=shop))
    host.unit("shop-standby.service", web_unit(standby))
    args = {
        "service": "shop", "health": {"http": [{"url": f"http://127.0.0.1:{shop}/", "timeout": 1}]},
        "escalation": [{"failures": "1", "strategy": "restart"}, {"failures": "2", "strategy": "reload"},
                       {"failures": "3", "strategy": "failover"}, {"failures": "4-", "strategy": "manual"}],
        "reload": {"config_test": ["python3", "-c", "import sys; sys.exit('shop.conf line 12: unknown directive listen_backlog')"]},
        "failover": {"units": ["shop-standby"], "health": {"http": [{"url": f"http://127.0.0.1:{standby}/"}]}},
        "runbook_url": "https://runbooks.example.org/shop", "timeout": 3, "state_dir": "/var/lib/hx-ladder",
    }
    host.run("rm", "-rf", "/var/lib/hx-ladder")
    ans = Ansible("2.19", host.inventory)
    text = "$ cat ladder.json\n{" + ",\n ".join(f"{json.dumps(k)}: {json.dumps(v)}" for k, v in args.items()) + "}\n"
    text += ("$ for i in 1 2 3 4; do ansible -i /run/hx-testhosts/inventory.yml hx-ex-1 -m hx.reliability.service_recovery"
             " -a \"$(cat ladder.json)\"; done   # condensed\n")
    for _run in range(4):
        res = ans.adhoc(host.name, "hx.reliability.service_recovery", json.dumps(args))[host.name]
        state = "FAILED!" if res.get("failed") else ("CHANGED" if res.get("changed") else "SUCCESS")
        head = {k: res.get(k) for k in ("outcome", "level", "strategy")}
        head["failure_count"] = {k: res["failure_count"][k] for k in ("before", "after")}
        text += f"{host.name} | {state} => {json.dumps(head)}\n  msg: {res['msg']}\n"
    text += "  history: " + json.dumps([{k: h.get(k) for k in ("failure_count", "strategy", "outcome")}
                                       for h in res.get("history", [])]) + "\n"
    stats = res["stats"]
    text += "  stats: " + json.dumps({k: stats[k] for k in ("incidents", "attempts", "recovered", "mttr_s", "availability_percent",
                                                            "recovery_success_rate", "escalation_rate")}) + "\n"
    return text


VOLATILE = [
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)"), "<TIME>"),
    (re.compile(r"\b(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d+ \w+ \d{4} \d\d:\d\d:\d\d [+-]\d{4}"), "<TIME>"),
    # Keys and digests (not a long decimal fraction: a hex string has a letter).
    (re.compile(r"\b(?=[0-9a-f]*[a-f])[0-9a-f]{16,}\b"), "<HEX>"),
    (re.compile(r"[A-Za-z0-9+/]{40,}={0,2}"), "<B64>"),
    # A size for people (985.3 MiB, 2.12 GiB): its unit follows its size.
    (re.compile(r"\b\d+(\.\d+)? ?(B|KiB|MiB|GiB|TiB)\b"), "<SIZE>"),
    # A duration as the CLI writes it (248ms, 3s 824ms, 7m 30s): its shape follows its size.
    (re.compile(r"\b\d+(\.\d+)?(ms|s|m|h|d)( \d+(\.\d+)?(ms|s|m|h|d))*\b"), "<DURATION>"),
    (re.compile(r"\d+(\.\d+)?"), "<N>"),
    (re.compile(r"\s+"), " "),
]


def normalize(line: str) -> str:
    for pattern, repl in VOLATILE:
        line = pattern.sub(repl, line)
    return line.strip()


def readme_transcripts() -> dict[str, str]:
    readme = (REPO / "README.md").read_text()
    return dict(re.findall(r"^<!-- transcript: ([a-z0-9-]+) -->\n```[a-z]*\n(.*?)^```", readme, re.S | re.M))


def transcript_problems(name: str, shown: str, real: str) -> list[str]:
    """Where README's `shown` is not the `real` output: each shown line must be the next
    real line (after `...`, any later one), volatile values masked, up to the end (or a
    last `...`)."""
    real_lines = [normalize(ln) for ln in real.splitlines()]
    i, gap = 0, False
    for n, line in enumerate(shown.splitlines(), 1):
        if line.strip() in ("...", "[...]"):
            gap = True
            continue
        want = normalize(line)
        rx = re.compile(".*?".join(re.escape(part) for part in want.split("...")) + "$") if "..." in want else None

        def matches(got: str, want=want, rx=rx) -> bool:
            return rx.match(got) is not None if rx else got == want

        if gap:
            j = next((j for j in range(i, len(real_lines)) if matches(real_lines[j])), None)
        else:
            j = i if i < len(real_lines) and matches(real_lines[i]) else None
        if j is None:
            near = real_lines[i] if i < len(real_lines) else "(the end)"
            return [f"README transcript '{name}' line {n}: {line!r} is not in the real output "
                    f"(next real line: {near!r})"]
        i, gap = j + 1, False
    rest = [ln for ln in real_lines[i:] if ln]
    if rest and not gap:
        return [f"README transcript '{name}' ends before the real output does (next real line: {rest[0]!r}); "
                "end it with a '...' line to trim"]
    return []


def test_readme_transcripts_match_a_real_run(testhosts_pair, tmp_path):
    """The README's blocks of the monitor's output (status, incidents, report, each alert
    channel as its receiver got it, a maintenance window, audit verify) are what a real run
    prints now."""
    shown = readme_transcripts()
    real = monitor_story(testhosts_pair[1], tmp_path)
    real["recovery-ladder-adhoc"] = ladder_story(testhosts_pair[0])
    out = os.environ.get("HX_WRITE_TRANSCRIPTS")
    if out:
        Path(out).write_text("".join(f"<!-- transcript: {k} -->\n```\n{v}```\n\n" for k, v in real.items()))
    problems = [f"README has no transcript '{k}'" for k in real if k not in shown]
    problems += [f"README transcript '{k}' is not produced by the run" for k in shown if k not in real]
    for k in shown.keys() & real.keys():
        problems += transcript_problems(k, shown[k], real[k])
    assert not problems, "\n".join(problems)
