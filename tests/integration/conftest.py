"""Fixtures for the Ansible integration tests.

The tests drive the real ``ansible`` and ``ansible-playbook`` of each pinned ansible-core
(the project venv: 2.19; ``.venvs/ansible-2.15``: the oldest supported), against the
collection that ``make install`` put under ``.cache/collections``, on this machine and on
throwaway systemd hosts booted by ``tests/hosts/testhosts``.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TESTHOSTS = REPO / "tests" / "hosts" / "testhosts"
# Under HX_REQUIRE_PRIVILEGED=1 (.ci/run sets it) a test that cannot run here fails
# instead of being skipped: CI never passes a test that did not run.
REQUIRE_PRIVILEGED = os.environ.get("HX_REQUIRE_PRIVILEGED", "").strip() == "1"


def skip_unless_possible(possible: bool, why: str) -> None:
    """Skip the calling test when it cannot run here, or fail it under HX_REQUIRE_PRIVILEGED=1."""
    if possible:
        return
    if REQUIRE_PRIVILEGED:
        pytest.fail(f"HX_REQUIRE_PRIVILEGED=1, but this test cannot run here: {why}")
    pytest.skip(why)


def systemd_booted() -> bool:
    """systemd's own test (sd_booted(3)), the one the modules use: /run/systemd/system exists."""
    return Path("/run/systemd/system").is_dir()


VENVS = {
    "2.19": REPO / ".venv",
    "2.15": REPO / ".venvs" / "ansible-2.15",
}


class Ansible:
    """One ansible-core installation, run from the repository root."""

    def __init__(self, version: str, inventory: Path | None = None):
        self.version = version
        self.bin = VENVS[version] / "bin"
        self.inventory = inventory or REPO / "inventory" / "hosts.yml"

    def env(self, **extra: str) -> dict:
        env = dict(os.environ)
        env.update(
            ANSIBLE_CONFIG=str(REPO / "ansible.cfg"),
            ANSIBLE_COLLECTIONS_PATH=str(REPO / ".cache" / "collections"),
            ANSIBLE_FORCE_COLOR="0",
            ANSIBLE_NOCOLOR="1",
            PATH=f"{self.bin}:{env.get('PATH', '')}",
        )
        env.update(extra)
        return env

    def adhoc(self, pattern: str, module: str, args: str = "", *flags: str) -> dict:
        """Run an ad-hoc module; returns {host: result} as the module returned it."""
        cmd = [str(self.bin / "ansible"), "-i", str(self.inventory), pattern, "-m", module]
        if args:
            cmd += ["-a", args]
        cmd += list(flags)
        env = self.env(
            ANSIBLE_CALLBACK_PLUGINS=str(Path(__file__).parent / "callback_plugins"),
            ANSIBLE_STDOUT_CALLBACK="hx_results",
            ANSIBLE_LOAD_CALLBACK_PLUGINS="1",
        )
        proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
        lines = [line for line in proc.stdout.splitlines() if line.startswith('{"results"')]
        if not lines:
            raise AssertionError(f"no results from {' '.join(cmd)} (rc {proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
        return {r["host"]: r["result"] for r in json.loads(lines[-1])["results"]}

    def playbook(self, playbook: str, *flags: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(self.bin / "ansible-playbook"), "-i", str(self.inventory), str(REPO / playbook), *flags]
        proc = subprocess.run(cmd, cwd=REPO, env=self.env(), capture_output=True, text=True, timeout=900, check=False)
        if check and proc.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout[-6000:]}\n{proc.stderr[-3000:]}")
        return proc


@pytest.fixture(params=sorted(VENVS), ids=lambda v: f"ansible-core-{v}")
def ansible(request) -> Ansible:
    """Each test that takes ``ansible`` runs once per pinned ansible-core."""
    return Ansible(request.param)


@pytest.fixture(scope="session")
def testhosts(tmp_path_factory):
    """Three throwaway systemd hosts: two with Python, one without. Torn down at the end."""
    state = tmp_path_factory.mktemp("testhosts")
    env = dict(os.environ, HX_TESTHOSTS_STATE=str(state))
    subprocess.run([str(TESTHOSTS), "up", "hx-it-1", "hx-it-2"], env=env, check=True, timeout=600)
    try:
        subprocess.run([str(TESTHOSTS), "up", "--no-python", "hx-it-np"], env=env, check=True, timeout=600)
        yield state / "inventory.yml"
    finally:
        subprocess.run([str(TESTHOSTS), "down"], env=env, check=False, timeout=300)
