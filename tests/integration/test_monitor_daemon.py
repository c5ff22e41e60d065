"""The monitor daemon on a real systemd host, scraped by a real Prometheus.

One throwaway nspawn host (``tests/hosts/testhosts``, its own state dir) runs the static
musl ``reliability-monitor`` under a ``Type=notify`` unit with a watchdog, watching a real
service there (``hx-web.service``: ``python3 -m http.server``) by its unit, its port and a
recovery ladder, and a second one (``hx-aux.service``) by its port only. The hosts share
this machine's network, so the daemon's endpoints and the services' ports are reached on
127.0.0.1 from here. The tests run in file order; each leaves the host as it found it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO, TESTHOSTS, skip_unless_possible

HOST = "hx-mon-1"
ARCH = "x86_64"
INTERVAL = 1.0
UNIT = "hx-monitor.service"
STATE_DIR = "/var/lib/reliability_monitor"
SERVICE = "hx-web.service"
RECORD = f"{STATE_DIR}/service_recovery/{SERVICE}.json"
INCIDENTS = f"{STATE_DIR}/incidents.jsonl"
LADDER = [{"failures": "1-", "strategy": "restart_service"}]


def binary(name: str) -> Path | None:
    """The static musl build of ``name`` as make build places it (modules in bin/, the monitor
    in the role's files/), else cargo's."""
    placed = [REPO / "bin" / f"{name}_{ARCH}", REPO / "roles/reliability_monitor/files" / f"{name}_{ARCH}"]
    for p in (*placed, REPO / "target" / f"{ARCH}-unknown-linux-musl" / "release" / name):
        if p.is_file():
            return p
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_for(what: str, cond, timeout: float = 20.0, step: float = 0.05):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(step)


def http_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def metric(text: str, name: str, **labels: str) -> list[float]:
    """Every sample of ``name`` whose labels include ``labels``."""
    out = []
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        m = re.match(r"^([a-z_]+)(\{(.*)\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        got = dict(re.findall(r'([a-z_]+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
        if all(got.get(k) == v for k, v in labels.items()):
            out.append(float(m.group(4)))
    return out


class Host:
    """One booted test host, driven through ``testhosts exec`` and its root directory."""

    def __init__(self, name: str, state: Path):
        self.name = name
        self.state = state
        self.root = Path(f"/proc/{(state / 'hosts' / name / 'leader').read_text().strip()}/root")

    def run(self, *cmd: str, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess:
        proc = subprocess.run(
            [str(TESTHOSTS), "exec", self.name, "--state", str(self.state), "--", *cmd],
            capture_output=True, text=True, timeout=timeout, check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"{self.name}: {' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def sh(self, script: str, **kw) -> str:
        return self.run("sh", "-c", script, **kw).stdout

    def put(self, path: str, data: str | bytes, mode: int = 0o644) -> None:
        target = self.root / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, str):
            data = data.encode()
        target.write_bytes(data)
        os.chown(target, 0, 0)
        target.chmod(mode)

    def read(self, path: str) -> str:
        return (self.root / path.lstrip("/")).read_text()

    def show(self, unit: str, *props: str) -> dict:
        out = self.run("systemctl", "show", unit, *(f"-p{p}" for p in props)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def journal(self, unit: str) -> str:
        return self.run("journalctl", "-q", "-o", "cat", "--no-pager", "-u", unit).stdout


def web_unit(port: int, pre: str = "") -> str:
    # Restart=no: only the monitor brings it back.
    return f"""[Unit]
Description=hx test web service on {port}
[Service]
{pre}ExecStart=/usr/bin/python3 -m http.server --bind 127.0.0.1 {port}
WorkingDirectory=/tmp
Restart=no
"""


MONITOR_UNIT = """[Unit]
Description=hx.reliability monitor
After=network.target
[Service]
Type=notify
ExecStart=/usr/local/bin/reliability-monitor --config /etc/reliability_monitor/config.yml daemon
ExecReload=/bin/kill -HUP $MAINPID
WatchdogSec=10
Restart=on-failure
RestartSec=1
[Install]
WantedBy=multi-user.target
"""


def monitor_config(listen: int, web: int, aux: int) -> str:
    return f"""service_monitoring:
  check_interval: {INTERVAL:g}
  consecutive_failures: 1
  consecutive_successes: 1
  state_dir: {STATE_DIR}
  listen: {{address: 127.0.0.1, port: {listen}}}
performance_monitoring: {{enabled: false}}
health_checks:
  resources: {{include: [memory], memory_warning: 100, memory_critical: 100}}
  services:
    - name: hx-web
      type: systemd
      port: {web}
      recovery:
        timeout: 10
        escalation: {json.dumps(LADDER)}
  ports:
    - {{name: aux, port: {aux}, timeout: 1}}
"""


def test_the_shipped_daemon_allocates_through_jemalloc_as_configured():
    """src/main.rs: one arena and a small thread cache (RSS under Monit's); jemalloc prints the
    options in force when asked for its statistics at exit."""
    monitor = binary("reliability-monitor")
    skip_unless_possible(monitor is not None, "no static musl build (make build)")
    env = dict(os.environ, _RJEM_MALLOC_CONF="stats_print:true")
    run = subprocess.run([str(monitor), "--version"], env=env, capture_output=True, text=True, timeout=30, check=True)
    assert run.stdout.startswith("reliability-monitor ")
    options = dict(re.findall(r"^\s+opt\.(\w+): (\S+)$", run.stderr, re.MULTILINE))
    assert options.get("narenas") == "1", run.stderr[:2000]
    assert options.get("tcache_max") == "1024"
    assert options.get("tcache_nslots_small_max") == "16"


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    skip_unless_possible(os.geteuid() == 0, "the test hosts need root")
    skip_unless_possible(shutil.which("systemd-nspawn") is not None, "systemd-nspawn is not installed")
    monitor, recovery = binary("reliability-monitor"), binary("service_recovery")
    skip_unless_possible(monitor is not None and recovery is not None, "no static musl build (make build)")
    state = Path(os.environ.get("HX_MONITOR_TESTHOSTS_STATE") or tmp_path_factory.mktemp("monitor-hosts"))
    env = dict(os.environ, HX_TESTHOSTS_STATE=str(state))
    subprocess.run([str(TESTHOSTS), "up", HOST, "--state", str(state)], env=env, check=True, timeout=600)
    try:
        h = Host(HOST, state)
        h.ports = {"listen": free_port(), "web": free_port(), "aux": free_port()}
        h.put("/usr/local/bin/reliability-monitor", monitor.read_bytes(), 0o755)
        h.put("/usr/local/bin/service_recovery", recovery.read_bytes(), 0o755)
        h.put(f"/etc/systemd/system/{SERVICE}", web_unit(h.ports["web"]))
        h.put("/etc/systemd/system/hx-aux.service", web_unit(h.ports["aux"]))
        h.put(f"/etc/systemd/system/{UNIT}", MONITOR_UNIT)
        h.put("/etc/reliability_monitor/config.yml", monitor_config(**h.ports), 0o600)
        h.run("systemctl", "daemon-reload")
        h.run("systemctl", "start", SERVICE, "hx-aux.service")
        wait_for("hx-web and hx-aux answering", lambda: port_open(h.ports["web"]) and port_open(h.ports["aux"]))
        h.run("systemctl", "start", UNIT, timeout=30)
        yield h
    finally:
        subprocess.run([str(TESTHOSTS), "down", "--state", str(state)], env=env, check=False, timeout=300)


def attempts(h: Host) -> list[dict]:
    try:
        text = h.read(INCIDENTS)
    except FileNotFoundError:
        return []
    return [e for e in map(json.loads, text.splitlines()) if e.get("event") == "attempt"]


def record(h: Host) -> dict:
    return json.loads(h.read(RECORD))


def test_daemon_runs_under_systemd_with_the_watchdog(host):
    p = host.show(UNIT, "ActiveState", "SubState", "NotifyAccess", "WatchdogUSec", "WatchdogTimestampMonotonic", "StatusText")
    assert (p["ActiveState"], p["SubState"]) == ("active", "running"), p
    # Type=notify: started means the daemon sent READY=1 itself.
    assert p["NotifyAccess"] == "main", p
    assert p["WatchdogUSec"] in ("10s", "10000000"), p
    assert p["StatusText"], p
    first = int(p["WatchdogTimestampMonotonic"])
    assert first > 0, p
    # The daemon keeps feeding the watchdog (every WatchdogSec / 2).
    wait_for("a newer WATCHDOG=1", lambda: int(host.show(UNIT, "WatchdogTimestampMonotonic")["WatchdogTimestampMonotonic"]) > first, timeout=12, step=0.5)
    port = host.ports["listen"]
    for path in ("/health", "/ready", "/alive", "/live", "/metrics"):
        status, _unused = http_get(port, path)
        assert status == 200, (path, status)


def kill_main(h: Host, unit: str) -> int:
    pid = int(h.show(unit, "MainPID")["MainPID"])
    assert pid > 0, unit
    h.run("kill", "-9", str(pid))
    return pid


def test_killed_service_is_detected_and_restarted_within_interval_plus_one(host):
    web = host.ports["web"]
    before = len(attempts(host))
    figures = []
    for _round in range(3):
        old = kill_main(host, SERVICE)
        t0 = time.monotonic()
        wait_for("hx-web down", lambda: not port_open(web), timeout=5, step=0.01)
        wait_for("hx-web restarted by the daemon", lambda: port_open(web), timeout=15, step=0.02)
        figures.append(time.monotonic() - t0)
        assert int(host.show(SERVICE, "MainPID")["MainPID"]) not in (0, old)
        # Let the checks see it ok again before the next kill.
        time.sleep(INTERVAL + 0.5)
    print(f"kill -9 to answering again, {INTERVAL:g} s interval: " + ", ".join(f"{f:.2f} s" for f in figures))
    # Goal (issue 10): at most interval + 1 s. The median, the machine is shared.
    assert sorted(figures)[1] <= INTERVAL + 1.0, figures
    new = attempts(host)[before:]
    assert [a["outcome"] for a in new] == ["recovered"] * 3, new
    assert all((a["service"], a["strategy"]) == (SERVICE, "restart") for a in new), new
    _unused, text = http_get(host.ports["listen"], "/metrics")
    assert sum(metric(text, "reliability_monitor_recovery_attempts", service=SERVICE, outcome="recovered")) >= 3, text
    assert metric(text, "reliability_monitor_service_mttr_seconds", service=SERVICE), text
    log = host.journal(UNIT)
    assert f"{SERVICE}: failing; running its recovery (attempt 1)" in log, log


DAEMON_STARTS = re.compile(r"hx-web\.service: failing; running its recovery")
# The end of a daemon run that took a step (not one that found the service healthy).
DAEMON_ATTEMPTS = re.compile(r"hx-web\.service: recovery (?!healthy|could)[a-z_]+: ")


def test_module_run_beside_the_daemon_loses_no_count(host):
    """service_recovery (the module binary, as Ansible runs it) and the daemon act on the
    same service at the same moment: the engine's lock serialises them, so every attempt
    gets its own failure number, the record ends on the last one, and the attempts in the
    incident log are exactly the module's plus the daemon's."""
    web = host.ports["web"]
    # A slow start keeps the service down, and the lock held, long enough for the other
    # side to find it failing and queue on the lock.
    host.put(f"/etc/systemd/system/{SERVICE}", web_unit(web, pre="ExecStartPre=/bin/sleep 1.5\n"))
    host.run("systemctl", "daemon-reload")
    args = {
        "service": "hx-web",
        # The same ladder, in the engine's names (the daemon's config uses the seed's).
        "escalation": [{"failures": "1-", "strategy": "restart"}],
        "timeout": 10,
        "health": {"ports": [{"name": f"hx-web:{web}", "port": web}]},
        "state_dir": STATE_DIR,
    }
    host.put("/tmp/recovery-args.json", json.dumps(args))
    start = len(attempts(host))
    log_before = host.journal(UNIT)
    module_results = []
    try:
        for i in range(4):
            kill_main(host, SERVICE)
            wait_for("hx-web down", lambda: not port_open(web), timeout=5, step=0.01)
            # Even turns: the module first, the daemon within its interval. Odd turns: the
            # daemon first, the module while the daemon's restart holds the lock.
            if i % 2:
                time.sleep(INTERVAL + 0.3)
            runs = [
                subprocess.Popen(
                    [str(TESTHOSTS), "exec", HOST, "--state", str(host.state), "--",
                     "/usr/local/bin/service_recovery", "/tmp/recovery-args.json"],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                )
                for _round in range(2)
            ]
            for r in runs:
                out, _unused = r.communicate(timeout=60)
                module_results.append(json.loads(out.strip().splitlines()[-1]))
            wait_for("hx-web answering", lambda: port_open(web), timeout=15)
            time.sleep(INTERVAL + 2)
    finally:
        host.put(f"/etc/systemd/system/{SERVICE}", web_unit(web))
        host.run("systemctl", "daemon-reload")
    assert all(not r.get("failed") for r in module_results), module_results
    new = attempts(host)[start:]
    counts = [a["failure_count"] for a in new]
    assert len(new) >= 4, new
    # No two attempts share a number and none is skipped: no lost update.
    assert counts == list(range(counts[0], counts[0] + len(counts))), counts
    assert record(host)["failure_count"] == counts[-1], record(host)
    module_attempts = [r for r in module_results if r.get("attempt")]
    for r in module_attempts:
        assert r["failure_count"]["after"] in counts, (r["failure_count"], counts)
    log = host.journal(UNIT)[len(log_before):]
    daemon_starts = len(DAEMON_STARTS.findall(log))
    daemon_attempts = len(DAEMON_ATTEMPTS.findall(log))
    print(
        f"attempts: {len(new)} in the incident log (failure numbers {counts}): {len(module_attempts)} by "
        f"{len(module_results)} module runs, {daemon_attempts} by {daemon_starts} daemon runs"
    )
    # Both sides ran in every outage, and both took steps: the contention was real.
    assert daemon_starts >= 4 and len(module_results) == 8, log
    assert module_attempts and daemon_attempts, (module_results, log)
    assert len(new) == len(module_attempts) + daemon_attempts, (new, module_results, log)


def test_daemon_killed_is_restarted_by_systemd_with_its_state(host):
    port = host.ports["listen"]
    _unused, before = http_get(port, "/metrics")
    rec_before = record(host)
    n_before = len(attempts(host))
    p = host.show(UNIT, "MainPID", "NRestarts")
    host.run("kill", "-9", p["MainPID"])

    def restarted():
        q = host.show(UNIT, "ActiveState", "MainPID")
        return q["ActiveState"] == "active" and q["MainPID"] not in ("0", p["MainPID"])

    wait_for(
        "systemd restarting the daemon",
        restarted,
        timeout=20,
        step=0.2,
    )
    assert int(host.show(UNIT, "NRestarts")["NRestarts"]) == int(p["NRestarts"]) + 1
    wait_for("/ready", lambda: http_get(port, "/ready")[0] == 200, timeout=15, step=0.2)
    _unused, after = http_get(port, "/metrics")
    # Breakers, incidents and counters come back from disk.
    assert record(host)["failure_count"] == rec_before["failure_count"]
    assert len(attempts(host)) == n_before
    # The restarted daemon's figures are the incident log's (the running one refreshes
    # them on its own period, so its last /metrics may lag the log).
    recovered = sum(1 for a in attempts(host) if a["outcome"] == "recovered")
    assert metric(after, "reliability_monitor_recovery_attempts", service=SERVICE, outcome="recovered") == [recovered], after
    assert metric(after, "reliability_monitor_breaker_state", service=SERVICE) == metric(
        before, "reliability_monitor_breaker_state", service=SERVICE
    )


def test_sighup_with_a_broken_config_keeps_the_old_one(host):
    cfg = "/etc/reliability_monitor/config.yml"
    good = host.read(cfg)
    pid = host.show(UNIT, "MainPID")["MainPID"]
    host.put(cfg, good.replace("  consecutive_successes: 1\n", "  consecutive_sucesses: 1\n"), 0o600)
    try:
        host.run("systemctl", "reload", UNIT, timeout=30)
        wait_for("the refusal in the journal", lambda: "reload refused" in host.journal(UNIT), timeout=10)
        p = host.show(UNIT, "ActiveState", "MainPID")
        assert (p["ActiveState"], p["MainPID"]) == ("active", pid), p
        assert "consecutive_sucesses" in host.journal(UNIT)
        assert http_get(host.ports["listen"], "/alive")[0] == 200
    finally:
        host.put(cfg, good, 0o600)


def test_prometheus_scrapes_the_daemon_and_sees_a_broken_check(host, tmp_path):
    prometheus, promtool = shutil.which("prometheus"), shutil.which("promtool")
    skip_unless_possible(prometheus is not None and promtool is not None, "Debian's prometheus is not installed")
    port = host.ports["listen"]
    _unused, text = http_get(port, "/metrics")
    lint = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, text=True, check=False)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    prom_port = free_port()
    (tmp_path / "prometheus.yml").write_text(
        "global: {scrape_interval: 1s, evaluation_interval: 1s}\n"
        "scrape_configs:\n"
        f"  - job_name: hx-monitor\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
    )
    proc = subprocess.Popen(
        [prometheus, f"--config.file={tmp_path / 'prometheus.yml'}", f"--storage.tsdb.path={tmp_path / 'data'}",
         f"--web.listen-address=127.0.0.1:{prom_port}"],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "prometheus.log", "w"),
    )

    def query(q: str) -> list:
        url = f"/api/v1/query?query={urllib.parse.quote(q)}"
        try:
            status, body = http_get(prom_port, url)
        except urllib.error.URLError:  # not listening yet
            return []
        if status != 200:
            return []
        return json.loads(body)["data"]["result"]

    promql = 'reliability_monitor_check_status{job="hx-monitor",entry="health_checks.ports[0]"}'
    try:
        wait_for("a first scrape", lambda: query(promql), timeout=60, step=0.5)
        assert [float(r["value"][1]) for r in query(promql)] == [0.0]
        host.run("systemctl", "stop", "hx-aux.service")
        wait_for("critical (2) through PromQL", lambda: [float(r["value"][1]) for r in query(promql)] == [2.0], timeout=30, step=0.5)
        up = query('up{job="hx-monitor"}')
        assert [float(r["value"][1]) for r in up] == [1.0], up
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        host.run("systemctl", "start", "hx-aux.service")
