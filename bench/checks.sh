#!/usr/bin/env bash
# The same checks the way users write them today against one health_check task (issue 13,
# item 2): 10 ports (`wait_for`), 3 URLs (`uri`) and, over SSH, 3 services
# (`service_facts` + `assert`), as a play each; the empty play (start-up and connection
# floor) beside them. On localhost (no systemd here) and over SSH to a test host
# (HX_BENCH_SSH_INVENTORY, HX_BENCH_SSH_HOST, set by bench/run). Pipelining on.
# Usage: bench/checks.sh [RUNS]   (from the repo root, after `make install`)
set -euo pipefail
# shellcheck source=bench/common.sh
source "$(dirname "$0")/common.sh"
runs=${1:-${HX_BENCH_RUNS:-5}}
quick && runs=1
out=$(mktemp -d)
listener=
trap '[[ -n $listener ]] && kill "$listener"; rm -rf "$out"' EXIT
export ANSIBLE_PIPELINING=1

"$python" bench/listeners.py 7 3 >"$out/ports.json" &
listener=$!
for _ in $(seq 50); do [[ -s $out/ports.json ]] && break; sleep 0.1; done

plays() { # HOST WITH_SERVICES
  "$python" - "$out" "$1" "$2" <<'PY'
import json, sys
sys.path.insert(0, "bench")
from plays import checks_as_tasks
out, host, services = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
p = json.load(open(f"{out}/ports.json"))
ports = p["tcp"] + p["http"]
urls = [f"http://127.0.0.1:{n}/" for n in p["http"]]
units = ["ssh.service", "dbus.service", "systemd-journald.service"]
head = f"- hosts: {host}\n  gather_facts: false\n  tasks:\n"
today, ours = checks_as_tasks(ports, urls, units if services else [])
open(f"{out}/{host}-today.yml", "w").write(head + today)
open(f"{out}/{host}-ours.yml", "w").write(head + ours)
open(f"{out}/{host}-empty.yml", "w").write(f"- hosts: {host}\n  gather_facts: false\n  tasks: []\n")
PY
}

bench_on() { # LABEL INVENTORY HOST WITH_SERVICES
  plays "$3" "$4"
  local what="10 ports + 3 URLs"
  [[ $4 == 1 ]] && what="$what + 3 services"
  echo
  echo "## $what, $1"
  "${measure[@]}" --runs "$runs" --warmup 1 --baseline "one health_check task" --title "$what, $1" \
    -n "as users write it today ($( [[ $4 == 1 ]] && echo 15 || echo 13) tasks)" "$venv/bin/ansible-playbook -i $2 $out/$3-today.yml" \
    -n "one health_check task" "$venv/bin/ansible-playbook -i $2 $out/$3-ours.yml" \
    -n "empty play (the floor)" "$venv/bin/ansible-playbook -i $2 $out/$3-empty.yml"
}

bench_on localhost "$PWD/inventory/hosts.yml" localhost 0
if [[ -n ${HX_BENCH_SSH_INVENTORY:-} ]]; then
  bench_on "over SSH to a test host" "$HX_BENCH_SSH_INVENTORY" "$HX_BENCH_SSH_HOST" 1
fi
