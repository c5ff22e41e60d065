#!/usr/bin/env bash
# reliability-monitor daemon: /metrics under wrk on loopback, and the daemon's RSS, with
# CHECKS port checks (half against an open port, half against a closed one) at a 1 s
# interval. Goals (issue 10): >= 20,000 requests/s with p99 <= 2 ms; RSS at most Monit's.
# Usage: bench/daemon.sh [SECONDS] [CONNECTIONS]   (from the repo root, after
#   `cargo build --release -p reliability-monitor`; needs wrk and python3)
#   HX_BENCH_DAEMON_CHECKS=50 bench/daemon.sh 10 16
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-10}
conns=${2:-16}
checks=${HX_BENCH_DAEMON_CHECKS:-50}
bin=${HX_BENCH_DAEMON_BIN:-$PWD/target/release/reliability-monitor}
out=$(mktemp -d "${TMPDIR:-/tmp}/hx-bench-daemon.XXXXXX")
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$out"; }
trap cleanup EXIT

# An open port to check: a listener that accepts and closes.
python3 -c 'import socket,sys
s=socket.socket(); s.bind(("127.0.0.1",0)); s.listen(128); print(s.getsockname()[1], flush=True)
while True: s.accept()[0].close()' > "$out/port" &
pids+=($!)
while [ ! -s "$out/port" ]; do sleep 0.05; done
open=$(cat "$out/port")
{
  printf 'service_monitoring:\n  check_interval: 1\n  state_dir: %s/state\n  listen: {port: 0}\n' "$out"
  printf 'performance_monitoring: {enabled: false}\nhealth_checks:\n  ports:\n'
  for i in $(seq 1 "$checks"); do
    if (( i % 2 )); then port=$open; else port=1; fi
    printf '    - {name: p%d, port: %d, timeout: 1}\n' "$i" "$port"
  done
} > "$out/config.yml"
chmod 600 "$out/config.yml"
"$bin" --config "$out/config.yml" daemon 2> "$out/log" &
pid=$!
pids+=("$pid")
until grep -q 'ready:' "$out/log"; do sleep 0.1; done
url=$(grep -o 'http://[0-9.:]*' "$out/log" | head -1)
echo "## $checks port checks at 1 s; $(wc -c < <(curl -s "$url/metrics")) bytes of /metrics"
echo "## RSS after the first cycle: $(awk '/VmRSS/ {print $2, $3}' /proc/$pid/status)"
wrk -t"${HX_BENCH_DAEMON_WRK_THREADS:-2}" -c"$conns" -d"${seconds}s" --latency "$url/metrics" | tee "$out/wrk"
echo "## RSS after wrk: $(awk '/VmRSS/ {print $2, $3}' /proc/$pid/status), peak $(awk '/VmHWM/ {print $2, $3}' /proc/$pid/status)"
ticks=$(awk '{print $14 + $15}' /proc/$pid/stat)
echo "## CPU of the daemon so far: $ticks ticks ($(getconf CLK_TCK)/s)"
