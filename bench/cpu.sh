#!/usr/bin/env bash
# health_check with `resources` against the same task without it, the module process alone:
# CPU busy comes from the reading the previous run kept (issue 13's goal: within 20 ms of
# the run without `resources`), and, for reference, with reuse off (cpu_max_age: 0, a
# 0.1 s sample every run) and the old way (a 0.5 s sample).
# Usage: bench/cpu.sh [RUNS]   (from the repo root, after `make build`)
set -euo pipefail
# shellcheck source=bench/common.sh
source "$(dirname "$0")/common.sh"
runs=${1:-${HX_BENCH_RUNS:-20}}
quick && runs=2
bin=$(module_bin health_check)
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
port='"ports": [{"port": 1, "host": "127.0.0.1", "timeout": 1}], "fail_on": "never"'
state="\"state_dir\": \"$out/state\""
echo "{$port, $state}" >"$out/port.json"
echo "{$port, $state, \"resources\": {}}" >"$out/kept.json"
echo "{$port, $state, \"resources\": {\"cpu_max_age\": 0}}" >"$out/fresh.json"
echo "{$port, $state, \"resources\": {\"cpu_sample\": 0.5, \"cpu_max_age\": 0}}" >"$out/old.json"
"$bin" "$out/kept.json" >/dev/null   # the first reading
echo "## health_check: one closed port, with and without resources (module process)"
"${measure[@]}" --runs "$runs" --warmup 2 --unit ms --title "health_check, module process" \
  -n "one port" "$bin $out/port.json" \
  -n "one port + resources (kept reading)" "$bin $out/kept.json" \
  -n "one port + resources (0.1 s sample)" "$bin $out/fresh.json" \
  -n "one port + resources (0.5 s sample, as before)" "$bin $out/old.json"
