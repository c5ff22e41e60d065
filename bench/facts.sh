#!/usr/bin/env bash
# reliability_facts vs ansible.builtin.setup, side by side in one run.
#   1. the module process alone (what a target pays per task)
#   2. a whole ad-hoc `ansible localhost -m ...` (what an operator waits for)
# both interleaved run by run (bench/measure.py)
#   3. peak memory of the module process, /usr/bin/time -v
# Usage: bench/facts.sh [RUNS]   (from the repo root, after `make install`)
set -euo pipefail
# shellcheck source=bench/common.sh
source "$(dirname "$0")/common.sh"
runs=${1:-${HX_BENCH_RUNS:-30}}
quick && runs=1
bin=$(module_bin reliability_facts)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

# Same groups on both sides: hardware (cpu, memory, mounts), network, load and uptime.
echo '{"gather_subset": ["all"], "cpu_sample_interval": 0}' > "$out/ours.json"
echo '{"ANSIBLE_MODULE_ARGS": {"gather_subset": ["!all", "hardware", "network"]}}' > "$out/setup.json"

echo "## module process alone"
"${measure[@]}" --runs "$runs" --warmup 3 --unit ms --title "facts, module process" \
  -n reliability_facts "$bin $out/ours.json" \
  -n "setup (python)" "$venv/bin/python -m ansible.modules.setup $out/setup.json"

echo
echo "## ad-hoc ansible localhost"
adhoc_runs=$((runs > 10 ? 10 : runs))
"${measure[@]}" --runs "$adhoc_runs" --warmup 2 --title "facts, ad-hoc ansible localhost" \
  -n reliability_facts "$venv/bin/ansible localhost -m hx.reliability.reliability_facts -a cpu_sample_interval=0" \
  -n setup "$venv/bin/ansible localhost -m ansible.builtin.setup -a 'gather_subset=!all,hardware,network'"

echo
echo "## peak RSS of the module process"
rss() { /usr/bin/time -v "$@" 2>&1 >/dev/null | awk -F': ' '/Maximum resident/ {print $2}'; }
ours=$(rss "$bin" "$out/ours.json")
theirs=$(rss "$venv/bin/python" -m ansible.modules.setup "$out/setup.json")
printf '| module | max RSS (KiB) |\n|---|---|\n| reliability_facts | %s |\n| setup (python) | %s |\n' "$ours" "$theirs"
printf '\nsetup uses %.1fx the memory of reliability_facts\n' "$(echo "$theirs / $ours" | bc -l)"
