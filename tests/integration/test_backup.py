"""backup_manifest and backup_verify through real Ansible, ad hoc on localhost: a manifest
written and verified, check mode that writes nothing, and damage reported by path."""

from __future__ import annotations

import subprocess
from pathlib import Path

from conftest import Ansible

MANIFEST = "hx.reliability.backup_manifest"
VERIFY = "hx.reliability.backup_verify"


def make_tree(root: Path) -> None:
    (root / "sub").mkdir(parents=True)
    (root / "a.txt").write_text("alpha\n")
    (root / "sub" / "b.bin").write_bytes(bytes(range(256)) * 1000)
    (root / "back\\slash").write_text("escaped by GNU\n")


def test_check_mode_writes_nothing(ansible: Ansible, tmp_path: Path):
    make_tree(tmp_path / "data")
    dest = tmp_path / "SHA256SUMS"
    args = f"path={tmp_path / 'data'} dest={dest} json=yes"
    res = ansible.adhoc("localhost", MANIFEST, args, "--check", "--diff")["localhost"]
    assert res.get("failed") is not True, res
    assert res["changed"] is True
    assert res["added"] == ["a.txt", "back\\slash", "sub/b.bin"]
    assert not dest.exists() and not Path(f"{dest}.json").exists()
    assert list(tmp_path.iterdir()) == [tmp_path / "data"]


def test_write_then_verify(ansible: Ansible, tmp_path: Path):
    data = tmp_path / "data"
    make_tree(data)
    dest = tmp_path / "SHA256SUMS"
    args = f"path={data} dest={dest}"
    first = ansible.adhoc("localhost", MANIFEST, args)["localhost"]
    assert first.get("failed") is not True and first["changed"] is True, first
    again = ansible.adhoc("localhost", MANIFEST, args)["localhost"]
    assert again["changed"] is False, again
    # GNU sha256sum agrees with what we wrote.
    subprocess.run(["sha256sum", "-c", "--strict", "--quiet", str(dest)], cwd=data, check=True)

    ok = ansible.adhoc("localhost", VERIFY, f"manifest={dest} root={data} report_extra=true")["localhost"]
    assert ok.get("failed") is not True, ok
    assert ok["status"] == "ok" and ok["checks"]["integrity"]["ok"] == 3

    (data / "a.txt").write_text("ALPHA\n")
    bad = ansible.adhoc("localhost", VERIFY, f"manifest={dest} root={data}", "--check")["localhost"]
    assert bad["failed"] is True, bad
    assert bad["checks"]["integrity"]["mismatched"] == ["a.txt"]
    assert "1 mismatched ('a.txt')" in bad["msg"]


def test_aarch64_binary_under_qemu(ansible: Ansible, tmp_path: Path):
    """The aarch64 build (SHA-2 with the ARMv8 crypto extensions when present) agrees with GNU."""
    data = tmp_path / "data"
    make_tree(data)
    sums = tmp_path / "SHA256SUMS"
    gnu = subprocess.run(["sha256sum", "a.txt", "back\\slash", "sub/b.bin"], cwd=data, capture_output=True, check=True)
    sums.write_bytes(gnu.stdout)
    res = ansible.adhoc(
        "localhost", VERIFY, f"manifest={sums} root={data}", "-e", "hx_reliability_architecture=aarch64"
    )["localhost"]
    assert res.get("failed") is not True, res
    assert res["checks"]["integrity"]["ok"] == 3
