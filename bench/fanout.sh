#!/usr/bin/env bash
# Fan-out (issue 13, item 3): 100 hosts' worth of work from one controller. An inventory of
# HX_BENCH_FANOUT_HOSTS (default 100) hosts, each an alias of one of the test hosts bench/run
# booted (HX_BENCH_FANOUT_INVENTORY, every host of its `testhosts` group in turn: 127.0.0.1,
# that host's own SSH port), runs the same checks three ways, at each of
# HX_BENCH_FANOUT_FORKS (default "10 25") forks:
#   - one hx.reliability.health_check task (the fast path on, the default)
#   - the same task with hx_reliability_fast_path=false (the normal binary-module path)
#   - the builtin modules as users write them today, pipelining on: wait_for per port, uri
#     per URL, service_facts + assert for the services
# The checks: 2 ports and 1 URL on 127.0.0.1 (listeners on the controller machine, whose
# loopback the test hosts share) and 2 services (ssh, systemd-journald). Reported run by run
# (bench/measure.py): the wall time of the play and the controller's CPU per host (user +
# sys of ansible-playbook and everything it waited for, plus the SSH connection masters,
# divided by the hosts). The aliases of one test host share its connection master
# (ControlPersist keys it on address, port and user), where 100 real hosts would need 100:
# the SSH handshakes are left out, the per-task work is not.
# Without a test host (BENCH_QUICK=1, HX_BENCH_SSH=0): aliases of localhost over the local
# connection, without the services (no systemd here).
# Usage: bench/fanout.sh [RUNS]   (from the repo root, after `make install`)
set -euo pipefail
# shellcheck source=bench/common.sh
source "$(dirname "$0")/common.sh"
runs=${1:-${HX_BENCH_RUNS:-3}}
hosts=${HX_BENCH_FANOUT_HOSTS:-100}
read -r -a forks <<<"${HX_BENCH_FANOUT_FORKS:-10 25}"
inventory=${HX_BENCH_FANOUT_INVENTORY:-}
quick && { runs=1; hosts=4; forks=(2); inventory=; }
out=$(mktemp -d)
listener=
trap '[[ -n $listener ]] && kill "$listener"; rm -rf "$out"' EXIT
export ANSIBLE_PIPELINING=1
# The bench's own connection masters, told from any other run's by their control path.
export ANSIBLE_SSH_CONTROL_PATH_DIR=$out/cp

"$python" bench/listeners.py 1 1 >"$out/ports.json" &
listener=$!
for _ in $(seq 50); do [[ -s $out/ports.json ]] && break; sleep 0.1; done

"$python" - "$out" "$hosts" "$inventory" <<'PY'
import json, sys
import yaml
sys.path.insert(0, "bench")
from plays import checks_as_tasks
out, hosts, source = sys.argv[1], int(sys.argv[2]), sys.argv[3]
p = json.load(open(f"{out}/ports.json"))
ports = p["tcp"] + p["http"]
urls = [f"http://127.0.0.1:{n}/" for n in p["http"]]
if source:
    inv = yaml.safe_load(open(source))
    targets = list(inv["all"]["children"]["testhosts"]["hosts"].values())
    units = ["ssh.service", "systemd-journald.service"]
else:
    targets = [{"ansible_connection": "local", "ansible_python_interpreter": "{{ ansible_playbook_python }}"}]
    units = []
aliases = {f"fan{i:03d}": dict(targets[i % len(targets)]) for i in range(hosts)}
yaml.safe_dump({"all": {"children": {"fanout": {"hosts": aliases}}}}, open(f"{out}/inventory.yml", "w"))
head = "- hosts: fanout\n  gather_facts: false\n  tasks:\n"
today, ours = checks_as_tasks(ports, urls, units)
open(f"{out}/today.yml", "w").write(head + today)
open(f"{out}/ours.yml", "w").write(head + ours)
where = f"over SSH to {len(targets)} test hosts" if source else "local connection"
open(f"{out}/where", "w").write(where)
print(f"# {hosts} hosts, {where}: {len(ports)} ports, {len(urls)} URL(s), {len(units)} services; "
      f"the builtin play has {len(today)} tasks")
PY
where=$(cat "$out/where")
play="$venv/bin/ansible-playbook -i $out/inventory.yml"
for f in "${forks[@]}"; do
  # Warm-up: the binary cached on each test host, the connection masters up.
  log=$($play -f "$f" "$out/ours.yml" 2>&1) ||
    { printf 'bench/fanout.sh: the warm-up play failed:\n%s\n' "$(tail -n 30 <<<"$log")" >&2; exit 1; }
  echo
  echo "## $hosts hosts, forks $f, $where"
  "${measure[@]}" --runs "$runs" --warmup 0 --cpu-per "$hosts" --cpu-match "$out/cp" \
    --title "fan-out, $hosts hosts, forks $f" \
    -n "health_check (fast path)" "$play -f $f $out/ours.yml" \
    -n "health_check (fast path off)" "$play -f $f $out/ours.yml -e hx_reliability_fast_path=false" \
    -n "builtin modules" "$play -f $f $out/today.yml"
done
