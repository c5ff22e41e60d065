#!/usr/bin/env bash
# Per-task cost of every module of the collection against what users run today
# (`ping`, `stat`, `wait_for`, `service_facts`, `command: systemctl is-active`), in 50-task
# plays, on localhost and over SSH to a test host (HX_BENCH_SSH_INVENTORY and
# HX_BENCH_SSH_HOST, set by bench/run after `tests/hosts/testhosts up`). Pipelining is on for
# the Python modules. Per task = (t(50 tasks) - t(1 task)) / 49, run by run, all kinds
# interleaved in each run; ratios against `ping` within each run (issue 13, item 1: goal
# each of ours at most 0.2x `ping` over SSH with the fast path).
# localhost has no systemd here: the service kinds run over SSH only.
# When the collection has the fast path (bin/ and hx_reliability_fast_path), ours are also
# measured with it off.
# Usage: bench/tasks.sh [RUNS]   (from the repo root, after `make install`)
set -euo pipefail
# shellcheck source=bench/common.sh
source "$(dirname "$0")/common.sh"
runs=${1:-${HX_BENCH_RUNS:-3}}
tasks=${HX_BENCH_TASKS:-50}
quick && { runs=1; tasks=3; }
out=$(mktemp -d)
listener=
trap '[[ -n $listener ]] && kill "$listener"; rm -rf "$out"' EXIT
export ANSIBLE_PIPELINING=1

# An open port on 127.0.0.1, which the test hosts share (host network).
"$python" -c '
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(4096)
print(s.getsockname()[1], flush=True)
while True:
    s.accept()[0].close()
' >"$out/port" &
listener=$!
for _ in $(seq 50); do [[ -s $out/port ]] && break; sleep 0.1; done
port=$(cat "$out/port")

d=/tmp/hx-bench-tasks
declare -A task=(
  [ping]="ansible.builtin.ping:"
  [stat]="ansible.builtin.stat: {path: /etc/hostname}"
  [wait_for]="ansible.builtin.wait_for: {host: 127.0.0.1, port: $port, timeout: 5}"
  [service_facts]="ansible.builtin.service_facts:"
  [systemctl]="ansible.builtin.command: systemctl is-active ssh.service"
  [reliability_facts]="hx.reliability.reliability_facts: {gather_subset: [memory, load], cpu_sample_interval: 0}"
  [health_check]="hx.reliability.health_check: {ports: [{host: 127.0.0.1, port: $port}], state_dir: $d/state}"
  [health_check_resources]="hx.reliability.health_check: {ports: [{host: 127.0.0.1, port: $port}], resources: {}, state_dir: $d/state, fail_on: never}"
  [backup_manifest]="hx.reliability.backup_manifest: {path: $d/data, dest: $d/SHA256SUMS}"
  [backup_verify]="hx.reliability.backup_verify: {manifest: $d/SHA256SUMS, root: $d/data}"
  [backup_retention]="hx.reliability.backup_retention: {path: $d/sets, pattern: 'set-*', keep_last: 5, require_good: false, state_dir: $d/state}"
  [circuit_breaker]="hx.reliability.circuit_breaker: {name: bench, state_dir: $d/state}"
  [service_recovery]="hx.reliability.service_recovery: {service: ssh.service, state_dir: $d/state, incident_log: $d/incidents.jsonl}"
)
local_kinds=(ping stat wait_for reliability_facts health_check health_check_resources backup_manifest backup_verify backup_retention circuit_breaker)
ssh_kinds=(ping stat wait_for service_facts systemctl reliability_facts health_check health_check_resources backup_manifest backup_verify backup_retention circuit_breaker service_recovery)
quick && local_kinds=(ping health_check_resources) && ssh_kinds=(ping health_check_resources)

play() { # HOST KIND N -> a playbook path
  local f=$out/$1-$2-$3.yml
  {
    printf -- '- hosts: %s\n  gather_facts: false\n  tasks:\n' "$1"
    for _ in $(seq "$3"); do printf '    - %s\n' "${task[$2]}"; done
  } >"$f"
  echo "$f"
}
setup() { # INVENTORY HOST: the data the backup modules read, a warm SSH master
  cat >"$out/setup.yml" <<YML
- hosts: $2
  gather_facts: false
  tasks:
    - ansible.builtin.file: {path: $d, state: absent}
    - ansible.builtin.file: {path: "{{ item }}", state: directory, mode: "0700"}
      loop: [$d, $d/data, $d/sets/set-1, $d/sets/set-2, $d/sets/set-3]
    - ansible.builtin.copy: {dest: "$d/data/f{{ item }}", content: "{{ item }}\n", mode: "0600"}
      loop: "{{ range(20) | list }}"
    - hx.reliability.backup_manifest: {path: $d/data, dest: $d/SHA256SUMS}
YML
  local log
  log=$("$venv"/bin/ansible-playbook -i "$1" "$out/setup.yml" 2>&1) ||
    { printf 'bench/tasks.sh: the set-up play failed on %s:\n%s\n' "$2" "$(tail -n 20 <<<"$log")" >&2; exit 1; }
}
fast_path=
grep -rqs hx_reliability_fast_path .cache/collections/ansible_collections/hx/reliability/plugins && fast_path=1

bench_on() { # LABEL INVENTORY HOST KIND...
  local label=$1 inv=$2 host=$3
  shift 3
  setup "$inv" "$host"
  local args=() k
  for k in "$@"; do
    play "$host" "$k" 1 >/dev/null
    play "$host" "$k" "$tasks" >/dev/null
    args+=(-n "$k" "$venv/bin/ansible-playbook -i $inv $out/$host-$k-{n}.yml")
    if [[ -n $fast_path && ${task[$k]} == hx.reliability.* ]]; then
      args+=(-n "$k (fast path off)" "$venv/bin/ansible-playbook -i $inv $out/$host-$k-{n}.yml -e hx_reliability_fast_path=false")
    fi
  done
  echo
  echo "## per task, $label ($tasks-task plays, pipelining on)"
  # Warm-up: one 1-task play of each (SSH master, caches on the target).
  local log
  for k in "$@"; do
    log=$("$venv"/bin/ansible-playbook -i "$inv" "$out/$host-$k-1.yml" 2>&1) ||
      { printf 'bench/tasks.sh: %s failed on %s:\n%s\n' "$k" "$host" "$(tail -n 20 <<<"$log")" >&2; exit 1; }
  done
  "${measure[@]}" --runs "$runs" --warmup 0 --per-task "$tasks" --title "per task, $label" "${args[@]}"
}

# HX_BENCH_TASKS_LOCAL=0: over SSH only (issue 13's goal is over SSH).
if [[ ${HX_BENCH_TASKS_LOCAL:-1} != 0 ]]; then
  bench_on localhost "$PWD/inventory/hosts.yml" localhost "${local_kinds[@]}"
fi
if [[ -n ${HX_BENCH_SSH_INVENTORY:-} ]]; then
  bench_on "over SSH to a test host" "$HX_BENCH_SSH_INVENTORY" "$HX_BENCH_SSH_HOST" "${ssh_kinds[@]}"
else
  echo
  echo "(no SSH test host: HX_BENCH_SSH_INVENTORY unset; bench/run brings one up)"
fi
