#!/usr/bin/env bash
# 500 TCP port checks in one task (250 to an open port, 250 to a port whose SYNs are
# dropped), 1 s timeout: the health_check binary vs the same checks in Python asyncio
# (bench/ports.py), side by side in one run.
#   1. wall time of the process (what a target pays per task), interleaved run by run
#   2. peak memory of the process, /usr/bin/time -v
# Runs in a network namespace of its own, where an nftables rule drops the SYNs: nothing
# leaves the machine. Usage: bench/ports.sh [RUNS]   (as root, after `make build`)
set -euo pipefail
# shellcheck source=bench/common.sh
source "$(dirname "$0")/common.sh"
if [[ ${HX_BENCH_NETNS:-} != 1 ]]; then
  exec unshare --net env HX_BENCH_NETNS=1 "$0" "$@"
fi
runs=${1:-${HX_BENCH_RUNS:-10}}
quick && runs=1
bin=$(module_bin health_check)
out=$(mktemp -d)
listener=
trap '[[ -n $listener ]] && kill "$listener"; rm -rf "$out"' EXIT

ip link set lo up
nft -f - <<'RULES'
table inet blackhole {
  chain input {
    type filter hook input priority 0; policy accept;
    tcp dport 9 tcp flags syn drop
  }
}
RULES

# The open port: accepts and closes as fast as connections come.
"$python" -c '
import socket, sys
s = socket.socket(); s.bind(("127.0.0.1", 0)); s.listen(4096)
print(s.getsockname()[1], flush=True)
while True:
    s.accept()[0].close()
' >"$out/port" &
listener=$!
for _ in $(seq 50); do [[ -s $out/port ]] && break; sleep 0.1; done
open=$(cat "$out/port")

"$python" - "$open" >"$out/args.json" <<'ARGS'
import json, sys
open_port = int(sys.argv[1])
ports = [{"host": "127.0.0.1", "port": open_port if i % 2 == 0 else 9, "timeout": 1} for i in range(500)]
print(json.dumps({"ports": ports, "fail_on": "never"}))
ARGS

check() {
  "$@" "$out/args.json" | "$python" -c '
import json, sys
r = json.load(sys.stdin)
assert r["counts"]["ok"] == 250 and r["counts"]["critical"] == 250, r["counts"]
'
}
check "$bin"
check "$python" bench/ports.py

echo "## 500 port checks, 250 dropped, 1 s timeout ($runs runs)"
"${measure[@]}" --runs "$runs" --warmup 1 --json "$out/wall.json" --title "500 port checks, 250 dropped" \
  -n health_check "$bin $out/args.json" \
  -n "python asyncio" "$python bench/ports.py $out/args.json"
"$python" - "$out/wall.json" <<'RATIO'
import json, sys
r = {x["name"]: x for x in json.load(open(sys.argv[1]))["commands"]}
ours, theirs = r["health_check"], r["python asyncio"]
over = lambda x: (x["median"] - 1.0) * 1000
print(f"\nbeyond the 1 s timeout (medians): health_check {over(ours):.0f} ms, python asyncio {over(theirs):.0f} ms "
      f"({over(theirs) / max(over(ours), 1e-3):.1f}x)")
RATIO

echo
echo "## peak RSS of the process"
rss() { /usr/bin/time -v "$@" 2>&1 >/dev/null | awk -F': ' '/Maximum resident/ {print $2}'; }
ours=$(rss "$bin" "$out/args.json")
theirs=$(rss "$python" bench/ports.py "$out/args.json")
printf '| checker | max RSS (KiB) |\n|---|---|\n| health_check | %s |\n| python asyncio | %s |\n' "$ours" "$theirs"
printf '\npython asyncio uses %.1fx the memory of health_check\n' "$(echo "$theirs / $ours" | bc -l)"
