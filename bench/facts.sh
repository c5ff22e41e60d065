#!/usr/bin/env bash
# reliability_facts vs ansible.builtin.setup, side by side in one run.
#   1. the module process alone (what a target pays per task), hyperfine
#   2. a whole ad-hoc `ansible localhost -m ...` (what an operator waits for), hyperfine
#   3. peak memory of the module process, /usr/bin/time -v
# Usage: bench/facts.sh [RUNS]   (from the repo root, after `make install`)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-30}
venv=$PWD/.venv
bin=bin/reliability_facts_x86_64
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# Same groups on both sides: hardware (cpu, memory, mounts), network, load and uptime.
echo '{"gather_subset": ["all"], "cpu_sample_interval": 0}' > "$out/ours.json"
echo '{"ANSIBLE_MODULE_ARGS": {"gather_subset": ["!all", "hardware", "network"]}}' > "$out/setup.json"

echo "## module process alone ($runs runs)"
hyperfine -N --warmup 3 --runs "$runs" --export-markdown "$out/proc.md" \
  -n reliability_facts "$bin $out/ours.json" \
  -n "setup (python)" "$venv/bin/python -m ansible.modules.setup $out/setup.json" >/dev/null
cat "$out/proc.md"

echo
echo "## ad-hoc ansible localhost ($runs runs)"
export ANSIBLE_CONFIG=$PWD/ansible.cfg
hyperfine --warmup 2 --runs "$runs" --export-markdown "$out/adhoc.md" \
  -n reliability_facts "$venv/bin/ansible localhost -m hx.reliability.reliability_facts -a cpu_sample_interval=0" \
  -n setup "$venv/bin/ansible localhost -m ansible.builtin.setup -a 'gather_subset=!all,hardware,network'" >/dev/null
cat "$out/adhoc.md"

echo
echo "## peak RSS of the module process"
rss() { /usr/bin/time -v "$@" 2>&1 >/dev/null | awk -F': ' '/Maximum resident/ {print $2}'; }
ours=$(rss "$bin" "$out/ours.json")
theirs=$(rss "$venv/bin/python" -m ansible.modules.setup "$out/setup.json")
printf '| module | max RSS (KiB) |\n|---|---|\n| reliability_facts | %s |\n| setup (python) | %s |\n' "$ours" "$theirs"
printf '\nsetup uses %.1fx the memory of reliability_facts\n' "$(echo "$theirs / $ours" | bc -l)"
