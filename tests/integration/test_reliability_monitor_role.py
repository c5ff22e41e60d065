"""The reliability_monitor role's contract: meta/argument_specs.yml.

The README's table of the role's variables must say what the argument spec says (name,
type, default), and the spec must refuse a wrong type before any task of the role runs.
The role on real systemd hosts is molecule/default's job.
"""

from __future__ import annotations

import yaml

from conftest import REPO

ROLE = REPO / "roles" / "reliability_monitor"
HEADER = "| Variable | Type | Default | Description |"


def spec_options() -> dict:
    spec = yaml.safe_load((ROLE / "meta" / "argument_specs.yml").read_text())
    return spec["argument_specs"]["main"]["options"]


def readme_rows() -> dict:
    """{name: (type, default)} from the README's table of the role's variables."""
    lines = (REPO / "README.md").read_text().splitlines()
    start = lines.index(HEADER)
    rows = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        name = cells[0].strip("`")
        default = cells[2]
        rows[name] = (cells[1], None if default == "" else yaml.safe_load(default.strip("`")))
    return rows


def test_readme_table_matches_argument_spec():
    spec = spec_options()
    rows = readme_rows()
    assert sorted(rows) == sorted(spec), "README rows and argument_specs options differ"
    for name, option in spec.items():
        kind, default = rows[name]
        expected = option["type"] + (f" of {option['elements']}" if "elements" in option else "")
        assert kind == expected, f"{name}: README says type {kind!r}, argument_specs {expected!r}"
        assert default == option.get("default"), f"{name}: README default {default!r}, argument_specs {option.get('default')!r}"


def test_defaults_match_argument_spec():
    """Every default in defaults/main.yml is declared, and scalar defaults agree."""
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    spec = spec_options()
    assert sorted(set(defaults) - set(spec)) == []
    for name, value in defaults.items():
        assert name.startswith("reliability_monitor_"), name
        if "default" in spec[name]:
            assert spec[name]["default"] == value, f"{name}: {value!r} != {spec[name]['default']!r}"


def test_wrong_type_is_refused_before_any_task(ansible):
    proc = ansible.playbook("tests/integration/playbooks/reliability_monitor_wrong_type.yml", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "Validation of arguments failed" in out, out
    for name in ("reliability_monitor_watchdog_sec", "reliability_monitor_state", "health_checks"):
        assert name in out, f"{name} not named:\n{out}"
    # No task of the role ran: the first one reads the architecture.
    assert "Read the host's architecture" not in out, out


def test_check_mode_on_a_fresh_host_hides_secrets(ansible):
    """Check mode with --diff where the role never ran: it passes, and the config's secret
    (a Slack webhook URL) appears nowhere in the output."""
    proc = ansible.playbook("tests/integration/playbooks/reliability_monitor_secret.yml", "--check", "--diff", "-v")
    out = proc.stdout + proc.stderr
    assert "Render the configuration" in out, out
    assert "HX-SECRET-TOKEN" not in out, out
    assert "failed=0" in out, out


def test_unknown_architecture_fails_naming_it(ansible):
    proc = ansible.playbook("tests/integration/playbooks/reliability_monitor_arch.yml", "--check", check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 2, out
    assert "no reliability-monitor binary for the architecture 'riscv64'" in out, out
    # It failed before the first task that installs anything.
    assert "Create the configuration, state and log directories" not in out, out
