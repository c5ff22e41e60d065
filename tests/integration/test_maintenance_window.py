"""maintenance_window through real Ansible, ad hoc on localhost: check mode that writes nothing,
opened (changed) then not changed, closed, and the audit records carrying the controller's side
that the action plugin sends (user, task path, play, task)."""

from __future__ import annotations

import getpass
import json
from pathlib import Path

from conftest import Ansible

WINDOW = "hx.reliability.maintenance_window"


def records(state: Path) -> list[dict]:
    trail = state / "audit" / "audit.jsonl"
    if not trail.exists():
        return []
    return [json.loads(line) for line in trail.read_text().splitlines()]


def test_open_close_and_audit(ansible: Ansible, tmp_path: Path):
    state = tmp_path / "state"
    args = f"name=deploy duration=1h reason=release services=nginx.service state_dir={state}"

    check = ansible.adhoc("localhost", WINDOW, args, "--check", "--diff")["localhost"]
    assert check.get("failed") is not True, check
    assert check["changed"] is True
    assert 'reason: "release"' in check["diff"]["after"]
    assert not state.exists(), "check mode wrote nothing"

    opened = ansible.adhoc("localhost", WINDOW, args)["localhost"]
    assert opened.get("failed") is not True, opened
    assert opened["changed"] is True
    assert opened["window"]["services"] == ["nginx.service"]
    again = ansible.adhoc("localhost", WINDOW, args)["localhost"]
    assert again["changed"] is False, again

    closed = ansible.adhoc("localhost", WINDOW, f"name=deploy state=absent state_dir={state}")["localhost"]
    assert closed["changed"] is True, closed
    assert closed["window"] is None

    trail = records(state)
    assert [r["action"] for r in trail] == ["maintenance.open", "maintenance.close"]
    assert [r["seq"] for r in trail] == [1, 2]
    actor = trail[0]["actor"]
    assert actor["controller_user"] == getpass.getuser()
    assert actor["task"] == WINDOW
    assert actor["play"]
