"""health_check through real Ansible: ad hoc on localhost (k=v strings, JSON arguments,
fail_on, check mode, bad input), the sidecar EXAMPLES run as a playbook, and on real
systemd hosts over SSH, with and without Python."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import threading

import pytest
import yaml

from conftest import REPO, Ansible, skip_unless_possible, systemd_booted

MODULE = "hx.reliability.health_check"


def listener() -> int:
    """A TCP port on 127.0.0.1 that accepts (and closes) connections while the tests run."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)

    def serve():
        while True:
            conn = sock.accept()[0]
            conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return sock.getsockname()[1]


def closed_port() -> int:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


OPEN = listener()


def by_name(result: dict) -> dict:
    return {c["name"]: c for c in result["checks"]}


def test_adhoc_without_arguments_checks_the_host(ansible: Ansible):
    res = ansible.adhoc("localhost", MODULE)["localhost"]
    assert res["changed"] is False, res
    checks = by_name(res)
    assert list(checks)[:5] == ["cpu", "memory", "swap", "load", "disk /"], list(checks)
    assert checks["cpu"]["warning"] == "70" and checks["cpu"]["critical"] == "90"
    assert checks["memory"]["warning"] == "80" and checks["disk /"]["critical"] == "95"
    assert res["status"] in ("healthy", "degraded", "unhealthy")
    assert sum(res["counts"].values()) == len(res["checks"])
    assert res["msg"].startswith(res["status"] + ": ")


def test_adhoc_key_value_strings_are_coerced(ansible: Ansible):
    """`-a 'k=v'` sends strings: a JSON list, a k=v dict, numbers and choices all coerce."""
    args = (
        f"ports='[{{\"port\": {OPEN}, \"latency_critical\": \"5000\"}}]' "
        # In a k=v dict, commas separate keys too (as AnsibleModule reads it): quote lists.
        "resources='include=\"memory,disk\" disks=\"/,/tmp\" disk_critical=100 memory_critical=100 "
        "disk_warning=100 memory_warning=100 inode_warning=100 inode_critical=100' "
        "sample_interval=0.1 fail_on=warning"
    )
    res = ansible.adhoc("localhost", MODULE, args)["localhost"]
    assert res.get("failed") is not True, res
    checks = by_name(res)
    assert checks[f"127.0.0.1:{OPEN}"]["status"] == "ok"
    assert checks[f"127.0.0.1:{OPEN}"]["critical"] == "5000"
    assert {"memory", "disk /", "disk /tmp"} <= set(checks), list(checks)
    assert "cpu" not in checks
    args_seen = res["invocation"]["module_args"]
    assert args_seen["ports"][0]["port"] == OPEN and args_seen["ports"][0]["timeout"] == 5.0
    assert args_seen["resources"]["include"] == ["memory", "disk"]
    assert args_seen["resources"]["disks"] == ["/", "/tmp"]
    assert args_seen["sample_interval"] == 0.1 and args_seen["fail_on"] == "warning"


def test_adhoc_json_arguments_keep_their_types(ansible: Ansible):
    closed = closed_port()
    args = json.dumps({"ports": [{"port": OPEN, "name": "web"}, {"port": closed, "name": "db", "timeout": 1}], "fail_on": "never"})
    res = ansible.adhoc("localhost", MODULE, args)["localhost"]
    assert res.get("failed") is not True, res
    checks = by_name(res)
    assert checks["web"]["status"] == "ok" and checks["web"]["unit"] == "ms"
    assert checks["db"]["message"] == f"port 127.0.0.1:{closed} closed: connection refused"
    assert res["status"] == "unhealthy"
    assert res["msg"] == f"unhealthy: 1 critical of 2 checks: port 127.0.0.1:{closed} closed: connection refused"


@pytest.mark.parametrize(
    "fail_on, failed",
    [("critical", True), ("warning", True), ("never", False)],
)
def test_fail_on_decides_and_every_check_is_returned(ansible: Ansible, fail_on: str, failed: bool):
    closed = closed_port()
    args = json.dumps({"ports": [{"port": OPEN}, {"port": closed}], "fail_on": fail_on})
    res = ansible.adhoc("localhost", MODULE, args)["localhost"]
    assert bool(res.get("failed")) is failed, res
    assert res["changed"] is False
    assert len(res["checks"]) == 2
    assert res["counts"] == {"ok": 1, "warning": 0, "critical": 1, "unknown": 0}


def test_a_warning_fails_only_the_warning_gate(ansible: Ansible):
    base = {"ports": [{"port": OPEN, "latency_warning": "@0:"}]}
    for fail_on, failed in (("critical", False), ("warning", True)):
        res = ansible.adhoc("localhost", MODULE, json.dumps({**base, "fail_on": fail_on}))["localhost"]
        assert bool(res.get("failed")) is failed, (fail_on, res)
        assert res["status"] == "degraded"


def test_check_mode_runs_the_same_checks(ansible: Ansible):
    res = ansible.adhoc("localhost", MODULE, json.dumps({"ports": [{"port": OPEN}]}), "--check", "--diff")["localhost"]
    assert res.get("failed") is not True and res["changed"] is False, res
    assert res["checks"][0]["status"] == "ok"


def test_services_follow_whether_systemd_runs_here(ansible: Ansible):
    """Without systemd as PID 1 a service cannot be judged: unknown, saying why. With it,
    the units are looked up for real and none is reported as lacking systemd."""
    res = ansible.adhoc("localhost", MODULE, "services='[{\"name\": \"ssh\"}, {\"unit\": \"cron\"}]' fail_on=never")["localhost"]
    if systemd_booted():
        assert len(res["checks"]) == 2, res
        assert all("systemd is not running" not in c["message"] for c in res["checks"]), res
    else:
        assert [c["status"] for c in res["checks"]] == ["unknown", "unknown"], res
        assert res["checks"][0]["message"] == "ssh.service: systemd is not running on this host (PID 1 is not systemd)"


@pytest.mark.parametrize(
    "args, message",
    [
        ('{"ports": [{"port": 1}, {"port": 2}, {"port": 70000}]}', "ports[2].port: 70000 is out of range 1-65535"),
        ('{"ports": [{"port": 22, "tiemout": 1}]}', "ports[0]: unknown option 'tiemout'; did you mean 'timeout'?"),
        ('{"ports": [{"port": 22, "latency_warning": "9:1"}]}', "ports[0].latency_warning: invalid range '9:1': start 9 is greater than end 1"),
        ('{"http": [{"url": "http://x/"}, {"url": "htp://x"}]}', "http[1].url: 'htp://x' is not an http or https URL"),
        ('{"processes": [{"cmdline": "("}]}', "processes[0].cmdline: invalid regex '(': "),
        ('{"services": [{"name": "a b"}]}', "services[0].name: invalid unit name 'a b': ' ' is not allowed in unit names"),
        ('{"services": [{"name": "a", "memory_critical": "1Q"}]}', "services[0].memory_critical: invalid size '1Q': unknown unit 'Q'"),
        ("fail_on=sometimes", "fail_on: 'sometimes' is not one of 'critical', 'warning', 'never'"),
        ("sample_interval=fast", "sample_interval: 'fast' is not a valid float"),
        ("resources=nokeyvalue", "resources: 'nokeyvalue' is not a valid dict"),
    ],
)
def test_adhoc_bad_input_names_check_and_field(ansible: Ansible, args: str, message: str):
    res = ansible.adhoc("localhost", MODULE, args)["localhost"]
    assert res["failed"] is True, res
    assert res["msg"].startswith("invalid arguments for health_check: "), res["msg"]
    assert message in res["msg"], res["msg"]
    assert "checks" not in res


def examples_playbook(tmp_path) -> str:
    """The sidecar's EXAMPLES as a playbook on localhost: every health_check task registers
    its result, and an assert after it proves that its arguments were accepted and its
    checks ran (they may well fail here: there is no nginx and no network)."""
    doc = yaml.safe_load((REPO / "plugins" / "modules" / "health_check.yml").read_text())
    tasks = []
    for i, task in enumerate(yaml.safe_load(doc["EXAMPLES"])):
        task = dict(task)
        if MODULE not in task:
            tasks.append(task)
            continue
        var = task.setdefault("register", f"example_{i}")
        task["ignore_errors"] = True
        tasks.append(task)
        tasks.append(
            {
                "name": f"Example {i} ran: {task['name']}",
                "ansible.builtin.assert": {
                    "that": [f"{var}.checks is defined", f"{var}.checks | length > 0", f"{var}.problems is not defined"],
                    "fail_msg": "{{ %s | to_json }}" % var,
                },
            }
        )
    play = [{"name": "EXAMPLES of health_check", "hosts": "localhost", "gather_facts": False, "tasks": tasks}]
    path = tmp_path / "examples.yml"
    path.write_text(yaml.safe_dump(play, sort_keys=False))
    return str(path)


def test_examples_run(ansible: Ansible, tmp_path):
    """In a network namespace with nothing but loopback, so that the examples' names and
    URLs (example.org) send nothing off this machine."""
    skip_unless_possible(os.geteuid() == 0, "needs root for a network namespace")
    playbook = examples_playbook(tmp_path)
    cmd = [
        "unshare", "--net", "sh", "-c", 'ip link set lo up && exec "$@"', "sh",
        str(ansible.bin / "ansible-playbook"), "-i", str(ansible.inventory), playbook,
    ]
    proc = subprocess.run(cmd, cwd=REPO, env=ansible.env(), capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert "failed=0" in proc.stdout, proc.stdout[-3000:]


def test_health_check_on_systemd_hosts(testhosts):
    """Active, stopped, failed, crash-looping, masked, missing units, a unit whose required
    dependency is down and one over a memory level, on real systemd (python and no-python
    hosts alike), with both pinned ansible-core versions."""
    for version in ("2.19", "2.15"):
        Ansible(version, testhosts).playbook("tests/integration/playbooks/health_check_systemd.yml")


def test_health_check_on_systemd_hosts_adhoc_without_python(testhosts):
    """The module needs nothing on the target: raw shows there is no Python, then ad hoc."""
    ans = Ansible("2.19", testhosts)
    raw = ans.adhoc("nopython", "ansible.builtin.raw", "python3 --version || echo no-python")
    assert all("no-python" in r["stdout"] for r in raw.values()), raw
    args = {
        "services": [{"name": "ssh", "enabled": True}, {"name": "systemd-journald"}],
        "ports": [{"port": 1, "state": "closed"}],
        # A busy test machine may well run its CPU over 90%: report, do not gate.
        "resources": {},
        "fail_on": "never",
    }
    res = ans.adhoc("nopython", MODULE, json.dumps(args))
    for host, r in res.items():
        assert r.get("failed") is not True and r["changed"] is False, (host, r)
        checks = by_name(r)
        assert checks["ssh.service"]["status"] == "ok", checks["ssh.service"]
        assert checks["ssh.service"]["details"]["active_state"] == "active"
        assert checks["systemd-journald.service"]["status"] == "ok", checks["systemd-journald.service"]
        assert checks["127.0.0.1:1"]["status"] == "ok"
        assert {"cpu", "memory", "disk /"} <= set(checks)
