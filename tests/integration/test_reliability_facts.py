"""reliability_facts through real Ansible: ad hoc, in playbooks, on localhost and on
real systemd hosts over SSH (with and without Python)."""

from __future__ import annotations

import pytest

from conftest import Ansible, systemd_booted

MODULE = "hx.reliability.reliability_facts"


def test_adhoc_localhost(ansible: Ansible):
    res = ansible.adhoc("localhost", MODULE)["localhost"]
    assert res.get("failed") is not True, res
    assert res["changed"] is False
    facts = res["ansible_facts"]["reliability"]
    assert facts["memory"]["total"] > 0
    # What systemd's own test says about this machine, whichever it is.
    assert facts["systemd"]["running"] is systemd_booted()


def test_adhoc_string_args_are_coerced(ansible: Ansible):
    """`-a 'k=v'` sends strings: lists, floats and booleans are coerced like AnsibleModule does."""
    res = ansible.adhoc("localhost", MODULE, "gather_subset=memory,load cpu_sample_interval=0.05", "-v")["localhost"]
    assert res.get("failed") is not True, res
    facts = res["ansible_facts"]["reliability"]
    assert facts["memory"]["total"] > 0 and facts["load"]["load1"] >= 0
    assert "mounts" not in facts
    assert res["invocation"]["module_args"] == {"gather_subset": ["memory", "load"], "cpu_sample_interval": 0.05}


@pytest.mark.parametrize(
    "args, message",
    [
        ("gather_subset=bogus", "'bogus'"),
        ("cpu_sample_interval=11", "cpu_sample_interval: 11 is out of range 0-10"),
        ("cpu_sample_interval=fast", "cpu_sample_interval: 'fast' is not a valid float"),
        ("subset=memory gather_subset=load", "gather_subset: given twice"),
        ("nosuch=1", "unknown option 'nosuch'"),
    ],
)
def test_adhoc_bad_input(ansible: Ansible, args: str, message: str):
    res = ansible.adhoc("localhost", MODULE, args)["localhost"]
    assert res["failed"] is True, res
    assert message in res["msg"], res["msg"]


def test_adhoc_check_and_diff(ansible: Ansible):
    res = ansible.adhoc("localhost", MODULE, "gather_subset=kernel", "--check", "--diff")["localhost"]
    assert res.get("failed") is not True and res["changed"] is False, res


def test_playbook_localhost(ansible: Ansible):
    ansible.playbook("tests/integration/playbooks/reliability_facts.yml")
    ansible.playbook("tests/integration/playbooks/reliability_facts.yml", "--check", "--diff")


def test_playbook_on_systemd_hosts(testhosts):
    """Over SSH to real systemd hosts; one has no Python at all."""
    for version in ("2.19", "2.15"):
        Ansible(version, testhosts).playbook(
            "tests/integration/playbooks/reliability_facts.yml", "-e", "hx_expect_systemd=true"
        )


def test_adhoc_on_host_without_python(testhosts):
    ans = Ansible("2.19", testhosts)
    raw = ans.adhoc("nopython", "ansible.builtin.raw", "python3 --version || echo no-python")
    assert all("no-python" in r["stdout"] for r in raw.values()), raw
    res = ans.adhoc("nopython", MODULE, "gather_subset=kernel,systemd")
    for host, r in res.items():
        assert r.get("failed") is not True, (host, r)
        assert r["ansible_facts"]["reliability"]["systemd"]["running"] is True


def test_aarch64_binary_under_qemu(ansible: Ansible):
    """The action plugin picks <module>_aarch64 for an aarch64 target; binfmt runs it under qemu-user."""
    res = ansible.adhoc("localhost", MODULE, "gather_subset=kernel", "-e", "hx_reliability_architecture=aarch64")["localhost"]
    assert res.get("failed") is not True, res
    assert res["ansible_facts"]["reliability"]["kernel"]["machine"] == "aarch64"


def test_unsupported_architecture_is_named(ansible: Ansible):
    res = ansible.adhoc("localhost", MODULE, "", "-e", "hx_reliability_architecture=armv7l")["localhost"]
    assert res["failed"] is True
    assert "hx.reliability.reliability_facts has no binary for architecture 'armv7l'; supported: aarch64, x86_64" in res["msg"]
