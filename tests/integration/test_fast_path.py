"""The binary modules' fast path (plugins/plugin_utils/binary_module.py), through real Ansible.

The cached binary must give the same results as the normal path, on localhost and over
SSH, with and without Python on the target; it must never be run from a place another
user could have changed (each case is planted on a test host and must fall back with a
warning, or be re-transferred when only the file is wrong); become (root and an
unprivileged user, on a host whose own name does not resolve, so sudo warns), delegate_to,
check mode, diff, no_log, environment, a noexec mount, a read-only home and async must all
behave.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import REPO, TESTHOSTS, Ansible

PLAYBOOK = REPO / "tests" / "integration" / "playbooks" / "fast_path_modules.yml"
CALLBACKS = REPO / "tests" / "integration" / "callback_plugins"
FACTS = "hx.reliability.reliability_facts"
ROOT_CACHE = "/root/.ansible/hx_reliability"
USER_CACHE = "/home/hxuser/.ansible/hx_reliability"
# Fields that differ from one run to the next whichever path runs the module.
# `at` and `started_at`: when an attempt was made and its outage began (epoch ms); `left_s`:
# `left_s`, `left_percent`, `downtime_s`: time figures of the outage still open from the
# first pass.
VOLATILE = {
    "duration",
    "duration_ms",
    "throughput_mbps",
    "since",
    "detected_at",
    "at",
    "started_at",
    "availability_percent",
    "left_s",
    "left_percent",
    "downtime_s",
    "seconds",
    "boot_time",
}


class Hosts:
    """The fast-path test hosts: fp-1 (Python) and fp-np (none), each with a user `hxuser`
    that may sudo to root and log in with the host's key; fp-1's name does not resolve."""

    def __init__(self, state: Path, tmp: Path):
        self.state = state
        self.env = dict(os.environ, HX_TESTHOSTS_STATE=str(state))
        inventory = yaml.safe_load((state / "inventory.yml").read_text())
        hosts = inventory["all"]["children"]["testhosts"]["hosts"]
        # The same hosts reached as hxuser (for become to root), and localhost.
        for name in list(hosts):
            hosts[name + "-hxuser"] = dict(hosts[name], ansible_user="hxuser")
        inventory["all"]["hosts"] = {
            "localhost": {"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}
        }
        self.inventory = tmp / "inventory.yml"
        self.inventory.write_text(yaml.safe_dump(inventory))

    def sh(self, host: str, script: str, check: bool = True) -> str:
        proc = subprocess.run(
            [str(TESTHOSTS), "exec", host, "--", "sh", "-c", script],
            env=self.env, capture_output=True, text=True, timeout=120, check=False,
        )
        if check and proc.returncode != 0:
            raise AssertionError(f"{host}: {script!r} exited {proc.returncode}: {proc.stdout}{proc.stderr}")
        return proc.stdout


@pytest.fixture(scope="module")
def hosts(tmp_path_factory):
    """HX_FASTPATH_STATE names a state dir to reuse (hosts left up); else fresh hosts."""
    keep = os.environ.get("HX_FASTPATH_STATE")
    state = Path(keep) if keep else tmp_path_factory.mktemp("fastpath-hosts")
    env = dict(os.environ, HX_TESTHOSTS_STATE=str(state))
    subprocess.run([str(TESTHOSTS), "up", "fp-1"], env=env, check=True, timeout=600)
    try:
        subprocess.run([str(TESTHOSTS), "up", "--no-python", "fp-np"], env=env, check=True, timeout=600)
        h = Hosts(state, tmp_path_factory.mktemp("fastpath"))
        for name in ("fp-1", "fp-np"):
            h.sh(name, "id hxuser >/dev/null 2>&1 || useradd -m -s /bin/sh hxuser; "
                       "echo 'hxuser ALL=(ALL) NOPASSWD: ALL' > /etc/sudoers.d/hxuser; "
                       "install -d -o hxuser -m 0700 /home/hxuser/.ssh; "
                       "install -o hxuser -m 0600 /root/.ssh/authorized_keys /home/hxuser/.ssh/authorized_keys")
        assert "unresolvable" in h.sh("fp-1", "getent hosts fp-1 || echo unresolvable")
        yield h
    finally:
        if not keep:
            subprocess.run([str(TESTHOSTS), "down"], env=env, check=False, timeout=300)


def run(ansible: Ansible, inventory: Path, playbook: Path, *flags: str) -> tuple[list[dict], subprocess.CompletedProcess]:
    """ansible-playbook with the hx_results callback: every task result, and the process."""
    cmd = [str(ansible.bin / "ansible-playbook"), "-i", str(inventory), str(playbook), *flags]
    env = ansible.env(
        ANSIBLE_CALLBACK_PLUGINS=str(CALLBACKS), ANSIBLE_STDOUT_CALLBACK="hx_results", ANSIBLE_LOAD_CALLBACK_PLUGINS="1"
    )
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith('{"results"')]
    if not lines:
        raise AssertionError(f"no results from {' '.join(cmd)} (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return json.loads(lines[-1])["results"], proc


def play(tmp_path: Path, tasks: list[dict], hosts: str, **play_options) -> Path:
    path = tmp_path / f"play-{len(list(tmp_path.glob('play-*')))}.yml"
    path.write_text(yaml.safe_dump([{"hosts": hosts, "gather_facts": False, **play_options, "tasks": tasks}]))
    return path


def facts_task(**options) -> dict:
    return {"name": "facts", FACTS: {"gather_subset": ["kernel"]}, **options}


def one(results: list[dict], task: str = "facts") -> dict:
    found = [r["result"] for r in results if r["task"] == task]
    assert len(found) == 1, results
    return found[0]


def differences(a, b, path: str = "") -> list[str]:
    """Each leaf where `a` and `b` differ, as `path: a != b` (a readable assertion message)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return [d for k in sorted(set(a) | set(b), key=str)
                for d in differences(a.get(k, "<absent>"), b.get(k, "<absent>"), f"{path}[{k!r}]")]
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} != {b!r}"]


def normalized(results: list[dict]) -> dict:
    def clean(value):
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items() if k not in VOLATILE}
        if isinstance(value, list):
            return [clean(v) for v in value]
        if isinstance(value, str):
            return re.sub(r"\d+\.\d+s\b", "N.NNs", value)
        return value

    return {(r["host"], r["task"]): clean(r["result"]) for r in results}


def fast_path_warnings(result: dict) -> list[str]:
    return [w for w in result.get("warnings") or [] if "not using the cached binary" in w]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# -- pure helpers ---------------------------------------------------------------------


def test_machine_is_the_last_known_line_of_uname():
    """Issue 14 defect 1: sudo's warning came out as part of 'uname -m' and was taken for the machine."""
    sys.path.insert(0, str(REPO / ".cache" / "collections"))
    from ansible_collections.hx.reliability.plugins.plugin_utils.binary_module import machine_from_uname

    assert machine_from_uname("sudo: unable to resolve host nu-1: Name or service not known\r\nx86_64\r\n") == "x86_64"
    assert machine_from_uname("aarch64\n") == "aarch64"
    assert machine_from_uname("banner\nriscv64\n") == "riscv64"
    assert machine_from_uname("") == ""


def test_binary_hash_is_remembered_per_version_of_the_file(tmp_path: Path, monkeypatch):
    """The controller hashes a module binary once per run and version of the file, not once
    per task: a changed file (size or mtime) is hashed again."""
    sys.path.insert(0, str(REPO / ".cache" / "collections"))
    from ansible import constants as C
    from ansible_collections.hx.reliability.plugins.plugin_utils import binary_module

    monkeypatch.setattr(C, "DEFAULT_LOCAL_TMP", str(tmp_path / "run"))
    hashed = []
    real = binary_module.file_sha256
    monkeypatch.setattr(binary_module, "file_sha256", lambda p: hashed.append(p) or real(p))
    binary = tmp_path / "health_check_x86_64"
    binary.write_bytes(b"one")
    first = binary_module.binary_sha256(str(binary))
    assert first == hashlib.sha256(b"one").hexdigest()
    assert binary_module.binary_sha256(str(binary)) == first
    assert len(hashed) == 1, hashed
    binary.write_bytes(b"two!")
    assert binary_module.binary_sha256(str(binary)) == hashlib.sha256(b"two!").hexdigest()
    assert len(hashed) == 2, hashed
    cached = list((tmp_path / "run" / "hx_reliability_sha256").iterdir())
    assert len(cached) == 2 and all(oct(c.stat().st_mode)[-3:] != "777" for c in cached)


def test_ansible_doc_sees_only_the_modules(ansible: Ansible):
    """Binaries live in bin/, so ansible-doc -l has nothing to trip on."""
    proc = subprocess.run([str(ansible.bin / "ansible-doc"), "-l", "hx.reliability"], env=ansible.env(),
                          cwd=REPO, capture_output=True, text=True, timeout=120, check=True)
    assert "WARNING" not in proc.stderr and "formatting error" not in proc.stderr, proc.stderr
    listed = sorted(line.split()[0] for line in proc.stdout.splitlines() if line.strip())
    modules = sorted(p.stem for p in (REPO / "plugins" / "modules").glob("*.py"))
    assert listed == [f"hx.reliability.{m}" for m in modules]
    for m in modules:
        subprocess.run([str(ansible.bin / "ansible-doc"), f"hx.reliability.{m}"], env=ansible.env(), cwd=REPO,
                       capture_output=True, text=True, timeout=120, check=True)


# -- the same results both ways -------------------------------------------------------


@pytest.mark.parametrize("flags", [[], ["--check", "--diff"]], ids=["run", "check-diff"])
def test_same_results_with_and_without_fast_path(ansible: Ansible, hosts: Hosts, flags):
    """Every module, on localhost, a host with Python and one without, both ways."""
    both = {}
    for fast in ("true", "false"):
        results, _unused = run(ansible, hosts.inventory, PLAYBOOK, "-e", "target=localhost,fp-1,fp-np",
                               "-e", f"hx_reliability_fast_path={fast}", *flags)
        assert not any(fast_path_warnings(r["result"]) for r in results), results
        both[fast] = normalized(results)
    assert len(both["true"]) == 3 * 10
    assert both["true"] == both["false"], "\n".join(differences(both["true"], both["false"]))
    facts = both["true"][("fp-np", "Facts")]["ansible_facts"]["reliability"]["kernel"]
    assert facts["hostname"] == "fp-np"
    assert both["true"][("fp-1", "A secret under no_log")]["censored"].startswith("the output has been hidden")
    env = both["true"][("fp-1", "The environment reaches the module (HOME expands ~ in paths)")]
    assert env["invocation"]["module_args"]["state_dir"] == "/tmp/hx-fast-path-equivalence/home/breakers", env


def test_one_command_per_task(hosts: Hosts, tmp_path: Path):
    """With a warm cache a task is one remote command; without the fast path, several."""
    ans = Ansible("2.19", hosts.inventory)

    def commands(n: int, fast: bool) -> int:
        _unused, proc = run(ans, hosts.inventory, play(tmp_path, [facts_task()] * n, "fp-1"), "-vvv",
                            "-e", f"hx_reliability_fast_path={fast}")
        return proc.stdout.count("SSH: EXEC")

    commands(1, True)  # warm the cache
    assert commands(5, True) - commands(1, True) == 4
    assert commands(5, False) - commands(1, False) >= 4 * 4


def test_cache_is_private_and_named_by_hash(hosts: Hosts, tmp_path: Path):
    hosts.sh("fp-1", f"rm -rf {ROOT_CACHE}")
    results, _unused = run(Ansible("2.19", hosts.inventory), hosts.inventory, play(tmp_path, [facts_task()], "fp-1"))
    assert not fast_path_warnings(one(results)) and one(results).get("failed") is not True
    listing = hosts.sh("fp-1", f"stat -c '%a %U %F' {ROOT_CACHE}; ls {ROOT_CACHE}").split("\n")
    assert listing[0] == "700 root directory"
    assert listing[1] == sha256(REPO / "bin" / "reliability_facts_x86_64")


def test_fast_path_off_leaves_no_cache(hosts: Hosts, tmp_path: Path):
    hosts.sh("fp-np", f"rm -rf {ROOT_CACHE}")
    results, _unused = run(Ansible("2.19", hosts.inventory), hosts.inventory, play(tmp_path, [facts_task()], "fp-np"),
                           "-e", "hx_reliability_fast_path=false")
    assert one(results).get("failed") is not True
    assert hosts.sh("fp-np", f"test -e {ROOT_CACHE} && echo there || echo absent").strip() == "absent"


# -- never run what another user could have changed -------------------------------------

PLANTED = {
    # case: (shell run on the host after a warm-up, expected text of the fallback warning or None)
    "cache-dir-world-writable": (f"chmod 0777 {ROOT_CACHE}", "writable by other users"),
    "cache-dir-owned-by-another-user": (f"chown hxuser {ROOT_CACHE}", "is owned by uid"),
    "cache-dir-is-a-symlink": (f"mv {ROOT_CACHE} /root/elsewhere && ln -s /root/elsewhere {ROOT_CACHE}", "is a symbolic link"),
    "parent-world-writable": ("chmod 0777 /root/.ansible", "/root/.ansible (drwxrwxrwx) is writable by other users"),
    "cache-dir-group-writable": (f"chmod 0770 {ROOT_CACHE}", "writable by other users"),
    # Only the file is wrong: it is replaced by the right one, no warning.
    "binary-replaced": (f"for f in {ROOT_CACHE}/*; do cp /bin/true $f; done", None),
    # Same size, one byte rewritten in place: newer than its mark, so hashed again.
    "binary-rewritten-in-place": (f"for f in {ROOT_CACHE}/*; do printf x | dd of=$f bs=1 seek=4096 conv=notrunc status=none; done", None),
    "hash-mark-removed": (f"rm -f {ROOT_CACHE}/.*.hashed", None),
    "binary-is-a-symlink": (f"for f in {ROOT_CACHE}/*; do ln -sf /bin/true $f; done", None),
    "binary-owned-by-another-user": (f"chown hxuser {ROOT_CACHE}/*", None),
}


@pytest.mark.parametrize("case", sorted(PLANTED))
def test_planted(hosts: Hosts, tmp_path: Path, case: str):
    plant, warning = PLANTED[case]
    reset = f"chmod 0700 /root/.ansible; rm -rf {ROOT_CACHE} /root/elsewhere"
    hosts.sh("fp-1", reset)
    ans = Ansible("2.19", hosts.inventory)
    path = play(tmp_path, [facts_task()], "fp-1")
    try:
        run(ans, hosts.inventory, path)
        hosts.sh("fp-1", plant)
        results, _unused = run(ans, hosts.inventory, path)
        res = one(results)
        assert res.get("failed") is not True, res
        assert res["ansible_facts"]["reliability"]["kernel"]["hostname"] == "fp-1"
        if warning is None:
            assert not fast_path_warnings(res), res
            good = sha256(REPO / "bin" / "reliability_facts_x86_64")
            assert hosts.sh("fp-1", f"sha256sum < {ROOT_CACHE}/{good}; stat -c %U {ROOT_CACHE}/{good}").split() == [good, "-", "root"]
        else:
            assert any(warning in w for w in fast_path_warnings(res)), res
    finally:
        hosts.sh("fp-1", reset)


def test_noexec_cache_falls_back(hosts: Hosts, tmp_path: Path):
    hosts.sh("fp-1", f"rm -rf {ROOT_CACHE}; mkdir -p {ROOT_CACHE}; mount -t tmpfs -o noexec,mode=0700 hx-noexec {ROOT_CACHE}")
    try:
        results, _unused = run(Ansible("2.19", hosts.inventory), hosts.inventory, play(tmp_path, [facts_task()], "fp-1"))
        res = one(results)
        assert res.get("failed") is not True, res
        assert any("noexec" in w for w in fast_path_warnings(res)), res
    finally:
        hosts.sh("fp-1", f"umount {ROOT_CACHE}; rm -rf {ROOT_CACHE}")


def test_noexec_remote_tmp(hosts: Hosts, tmp_path: Path):
    """The cache is not in the temporary directory: a noexec remote_tmp breaks only the normal path."""
    hosts.sh("fp-1", f"rm -rf {ROOT_CACHE}; mkdir -p /root/.ansible/tmp; mount -t tmpfs -o noexec,mode=0700 hx-noexec /root/.ansible/tmp")
    ans = Ansible("2.19", hosts.inventory)
    try:
        fast, _unused = run(ans, hosts.inventory, play(tmp_path, [facts_task()], "fp-1"))
        assert one(fast).get("failed") is not True and not fast_path_warnings(one(fast)), fast
        normal, _unused = run(ans, hosts.inventory, play(tmp_path, [facts_task(ignore_errors=True)], "fp-1"),
                              "-e", "hx_reliability_fast_path=false")
        assert one(normal).get("failed") is True, normal
    finally:
        hosts.sh("fp-1", "umount /root/.ansible/tmp")


def test_read_only_home_falls_back(hosts: Hosts, tmp_path: Path):
    hosts.sh("fp-1", "rm -rf /home/hxuser/.ansible; mount --bind /home/hxuser /home/hxuser && mount -o remount,bind,ro /home/hxuser")
    try:
        results, _unused = run(Ansible("2.19", hosts.inventory), hosts.inventory,
                               play(tmp_path, [facts_task()], "fp-1", become=True, become_user="hxuser"))
        res = one(results)
        assert res.get("failed") is not True, res
        assert any("cannot create /home/hxuser/.ansible/hx_reliability" in w for w in fast_path_warnings(res)), res
    finally:
        hosts.sh("fp-1", "umount /home/hxuser")


def test_no_hash_tool_falls_back(hosts: Hosts, tmp_path: Path):
    """A binary is hashed when it is copied into the cache and whenever it was written since
    its mark: then without a hash tool the task falls back; a binary hashed before runs."""
    ans = Ansible("2.19", hosts.inventory)
    path = play(tmp_path, [facts_task()], "fp-np")
    hidden = "mv /usr/bin/sha256sum /usr/bin/sha256sum.hx"
    back = "mv /usr/bin/sha256sum.hx /usr/bin/sha256sum"

    def warnings():
        results, _unused = run(ans, hosts.inventory, path)
        res = one(results)
        assert res.get("failed") is not True, res
        return fast_path_warnings(res)

    hosts.sh("fp-np", f"rm -rf {ROOT_CACHE}; {hidden}")
    try:
        assert any("nohash" in w for w in warnings()), "a copy into the cache needs a hash"
        hosts.sh("fp-np", back)
        assert not warnings()
        hosts.sh("fp-np", hidden)
        assert not warnings(), "hashed since it was written: runs without a hash tool"
        hosts.sh("fp-np", f"touch {ROOT_CACHE}/[0-9a-f]*")
        assert any("nohash" in w for w in warnings()), "written since its mark: hashed again"
    finally:
        hosts.sh("fp-np", f"test -e /usr/bin/sha256sum || {back}")


# -- become, delegate_to, async ---------------------------------------------------------


@pytest.mark.parametrize("fast", ["true", "false"])
@pytest.mark.parametrize("host", ["fp-1", "fp-np"])
def test_become_unprivileged_user_on_unresolvable_host(ansible: Ansible, hosts: Hosts, tmp_path: Path, host: str, fast: str):
    """Issue 14 defect 1: sudo warns "unable to resolve host fp-1"; that is not the architecture."""
    hosts.sh(host, "rm -rf /home/hxuser/.ansible")
    results, _unused = run(ansible, hosts.inventory, play(tmp_path, [facts_task()], host, become=True, become_user="hxuser"),
                           "-e", f"hx_reliability_fast_path={fast}")
    res = one(results)
    assert res.get("failed") is not True, res
    assert not fast_path_warnings(res), res
    if fast == "true":
        assert hosts.sh(host, f"stat -c '%a %U' {USER_CACHE}").strip() == "700 hxuser"


@pytest.mark.parametrize("fast", ["true", "false"])
def test_become_root_from_unprivileged_user(ansible: Ansible, hosts: Hosts, tmp_path: Path, fast: str):
    hosts.sh("fp-1", f"rm -rf {ROOT_CACHE} /home/hxuser/.ansible")
    results, _unused = run(ansible, hosts.inventory, play(tmp_path, [facts_task()], "fp-1-hxuser", become=True),
                           "-e", f"hx_reliability_fast_path={fast}")
    res = one(results)
    assert res.get("failed") is not True and not fast_path_warnings(res), res
    if fast == "true":
        assert hosts.sh("fp-1", f"stat -c '%a %U' {ROOT_CACHE}; test -e {USER_CACHE} || echo none").split("\n")[:2] == ["700 root", "none"]


def test_become_failure_is_reported_as_such(hosts: Hosts, tmp_path: Path):
    results, _unused = run(Ansible("2.19", hosts.inventory), hosts.inventory,
                           play(tmp_path, [facts_task(ignore_errors=True)], "fp-1", become=True, become_user="nosuchuser"))
    res = one(results)
    assert res["failed"] is True
    assert "could not become 'nosuchuser' with sudo" in res["msg"] and "unknown user" in res["msg"], res
    assert "architecture" not in res["msg"], res


@pytest.mark.parametrize("fast", ["true", "false"])
def test_delegate_to(hosts: Hosts, tmp_path: Path, fast: str):
    """The module runs on the delegate, with the delegate's binary and cache."""
    tasks = [facts_task(delegate_to="fp-np"), {"name": "back", FACTS: {"gather_subset": ["kernel"]}, "delegate_to": "localhost"}]
    results, _unused = run(Ansible("2.19", hosts.inventory), hosts.inventory, play(tmp_path, tasks, "fp-1"),
                           "-e", f"hx_reliability_fast_path={fast}")
    assert one(results)["ansible_facts"]["reliability"]["kernel"]["hostname"] == "fp-np"
    assert one(results, "back")["ansible_facts"]["reliability"]["kernel"]["hostname"] == os.uname().nodename


@pytest.mark.parametrize("fast", ["true", "false"])
def test_async_is_refused_both_ways(hosts: Hosts, tmp_path: Path, fast: str):
    results, _unused = run(Ansible("2.19", hosts.inventory), hosts.inventory,
                           play(tmp_path, [facts_task(ignore_errors=True, **{"async": 30, "poll": 2})], "localhost"),
                           "-e", f"hx_reliability_fast_path={fast}")
    assert "does not support async" in one(results)["msg"]
