"""backup_retention through real Ansible, ad hoc on localhost: check mode that lists and deletes
nothing, the real run, idempotence, and the newest backup that backup_verify recorded as good
kept however old."""

from __future__ import annotations

import os
import time
from pathlib import Path

from conftest import Ansible

MANIFEST = "hx.reliability.backup_manifest"
VERIFY = "hx.reliability.backup_verify"
RETENTION = "hx.reliability.backup_retention"
DAY = 86400


def age(path: Path, days: int) -> None:
    """Set the modification time to `days` days and an hour ago."""
    t = time.time() - days * DAY - 3600
    os.utime(path, (t, t), follow_symlinks=False)


def listing(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir())


def test_check_mode_lists_and_deletes_nothing_then_deletes(ansible: Ansible, tmp_path: Path):
    root = tmp_path / "backups"
    root.mkdir()
    for n in range(6):
        dump = root / f"db-{n}.dump"
        dump.write_bytes(b"x" * 100)
        age(dump, n)
    (root / "README").write_text("not a backup\n")
    age(root / "README", 100)
    args = f"path={root} pattern=db-*.dump keep_last=2 keep_days=3 require_good=false state_dir={tmp_path / 'state'}"

    check = ansible.adhoc("localhost", RETENTION, args, "--check", "--diff")["localhost"]
    assert check.get("failed") is not True, check
    assert check["changed"] is True
    assert [d["name"] for d in check["deleted"]] == ["db-3.dump", "db-4.dump", "db-5.dump"]
    assert [d["reason"] for d in check["deleted"]] == ["older than 3 days and beyond newest 2"] * 3
    assert check["bytes_freed"] == 300
    assert check["diff"]["after"] == "db-0.dump\ndb-1.dump\ndb-2.dump\n"
    assert listing(root) == ["README"] + [f"db-{n}.dump" for n in range(6)], "check mode deleted nothing"

    done = ansible.adhoc("localhost", RETENTION, args)["localhost"]
    assert done.get("failed") is not True, done
    assert done["changed"] is True
    assert done["deleted"] == check["deleted"]
    assert listing(root) == ["README", "db-0.dump", "db-1.dump", "db-2.dump"]

    again = ansible.adhoc("localhost", RETENTION, args)["localhost"]
    assert again["changed"] is False, again
    assert again["deleted"] == []


def test_the_newest_verified_good_backup_is_kept(ansible: Ansible, tmp_path: Path):
    root = tmp_path / "backups"
    state = tmp_path / "state"
    names = [f"2026-11-{23 - d:02}" for d in range(5)]
    for d, name in enumerate(names):
        data = root / name / "data"
        data.mkdir(parents=True)
        (data / "orders.csv").write_text(f"orders of {name}\n")
        made = ansible.adhoc("localhost", MANIFEST, f"path={data} dest={root / name / 'SHA256SUMS'}")["localhost"]
        assert made.get("failed") is not True, made
        age(root / name, d)

    oldest = root / names[-1]
    verify = f"manifest={oldest / 'SHA256SUMS'} root={oldest / 'data'} backup={oldest} record_good=nightly state_dir={state}"
    predicted = ansible.adhoc("localhost", VERIFY, verify, "--check")["localhost"]
    assert predicted.get("failed") is not True, predicted
    assert predicted["changed"] is True and predicted["good"]["recorded"] is False
    assert not state.exists(), "check mode wrote no record"

    ok = ansible.adhoc("localhost", VERIFY, verify)["localhost"]
    assert ok.get("failed") is not True, ok
    assert ok["changed"] is True
    assert ok["good"]["recorded"] is True
    assert ok["good"]["backup"] == str(oldest.resolve())
    assert (state / "backup_good" / "nightly.json").is_file()

    args = f"path={root} pattern=2026-11-?? keep_last=1 good=nightly state_dir={state}"
    res = ansible.adhoc("localhost", RETENTION, args, "--diff")["localhost"]
    assert res.get("failed") is not True, res
    kept = {k["name"]: k["reason"] for k in res["kept"]}
    assert kept == {names[0]: "within newest 1", names[-1]: "last verified good"}
    assert res["good"]["protects"] == names[-1]
    assert listing(root) == sorted([names[0], names[-1]])

    # Without a record for the set, nothing goes (require_good is the default).
    res = ansible.adhoc("localhost", RETENTION, f"path={root} pattern=2026-* keep_last=0 good=weekly state_dir={state}")[
        "localhost"
    ]
    assert res.get("failed") is not True, res
    assert res["changed"] is False and res["deleted"] == []
    assert res["good"] == {"set": "weekly", "backup": None, "verified_at": None, "protects": None}
    assert {k["reason"] for k in res["kept"]} == {"no backup is known good (require_good)"}
    assert listing(root) == sorted([names[0], names[-1]])
