"""circuit_breaker through real Ansible on localhost: the playbook (life cycle, idempotence,
check mode, diff, bad input), ad hoc with k=v strings and --check, and 20 forks feeding one
breaker at once."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import Ansible

MODULE = "hx.reliability.circuit_breaker"


def test_playbook_localhost(ansible: Ansible, tmp_path: Path):
    ansible.playbook("tests/integration/playbooks/circuit_breaker.yml", "-e", f"hx_state_dir={tmp_path / 'state'}")


def test_adhoc_record_then_check_mode(ansible: Ansible, tmp_path: Path):
    base = f"name=adhoc state_dir={tmp_path} failure_threshold=1 recovery_timeout=600"
    res = ansible.adhoc("localhost", MODULE, f"{base} record=failure")["localhost"]
    assert res.get("failed") is not True, res
    assert res["changed"] is True and res["state"] == "open" and res["allowed"] is False, res
    assert res["invocation"]["module_args"]["failure_threshold"] == 1
    state_file = Path(res["state_file"])
    stored = state_file.read_bytes()

    res = ansible.adhoc("localhost", MODULE, f"{base} state=reset", "--check", "--diff")["localhost"]
    assert res["changed"] is True and res["state"] == "closed", res
    assert res["diff"]["before"]["state"] == "open" and res["diff"]["after"]["state"] == "closed"
    assert state_file.read_bytes() == stored, "check mode wrote the state file"

    res = ansible.adhoc("localhost", MODULE, base)["localhost"]
    assert res["changed"] is False and res["state"] == "open", res


@pytest.mark.parametrize(
    "args, message",
    [
        ("name=../etc/passwd", "name: invalid name '../etc/passwd': '/' is not allowed"),
        ("name=x state=ajar", "state: 'ajar' is not one of 'query', 'closed', 'open', 'reset'"),
        ("name=x failure_threshold=-1", "failure_threshold: -1 is out of range 0-1000000"),
        ("name=x state=open record=failure", "record cannot be combined with state 'open'"),
        ("name=x success_threshold=5", "success_threshold 5 is more than half_open_max_calls 3"),
    ],
)
def test_adhoc_bad_input(ansible: Ansible, tmp_path: Path, args: str, message: str):
    res = ansible.adhoc("localhost", MODULE, f"{args} state_dir={tmp_path}")["localhost"]
    assert res["failed"] is True, res
    assert message in res["msg"], res["msg"]
    assert not any(tmp_path.iterdir()), "bad input wrote something"


def test_forks_feeding_one_breaker_lose_nothing(tmp_path: Path):
    """20 inventory hosts (all this machine) record a failure at once, with 20 forks."""
    hosts = {f"cb{i:02d}": {"ansible_connection": "local"} for i in range(20)}
    inventory = tmp_path / "hosts.json"
    inventory.write_text(json.dumps({"all": {"hosts": hosts}}))
    ans = Ansible("2.19", inventory)
    args = f"name=shared record=failure state_dir={tmp_path / 'state'}"
    results = ans.adhoc("all", MODULE, args, "-f", "20")
    assert len(results) == 20
    assert all(r.get("failed") is not True for r in results.values()), results
    seen = sorted(r["counters"]["failures"] for r in results.values())
    assert seen == list(range(1, 21)), seen
    res = ans.adhoc("cb00", MODULE, f"name=shared state_dir={tmp_path / 'state'}")["cb00"]
    assert res["counters"]["failures"] == 20 and res["state"] == "open", res
