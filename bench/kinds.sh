#!/usr/bin/env bash
# Where the daemon's CPU goes: bench/footprint.sh's configuration cut down to one kind of
# check (50 ports, 20 HTTP GETs or 20 processes by command line; the memory check runs
# once an hour except with `all`), and the daemon's CPU per 1 s cycle over SECONDS.
#   bench/kinds.sh BINARY ports|http|processes|all|none [SECONDS]
# PID_HOOK=CMD runs `CMD DAEMON_PID SECONDS-2` during the measurement (perf record -p,
# strace -c -f -p); WRK=S runs wrk -t2 -c16 for S seconds on /metrics and /alive afterwards.
# BINARY `monit` runs Monit (the Debian package) instead, with the checks as
# bench/footprint.sh gives them to Monit, and a `check system` for the memory check: the
# same figure for the other side.
set -euo pipefail
# Before common.sh changes to the repository root: BINARY may be relative to here.
if [[ $1 == monit ]]; then bin=monit; else bin=$(realpath -e "$1"); fi
kind=$2 secs=${3:-20}
# shellcheck source=bench/common.sh
source "$(dirname "$0")/common.sh"
out=$(mktemp -d "${TMPDIR:-/tmp}/hx-kinds.XXXXXX")
pids=()
cleanup() { stop_pids; rm -rf "$out"; }
trap cleanup EXIT
check_targets "$out"
dport=$(free_port)
has() { [[ $kind == all || $kind == "$1" ]]; }
{
  printf 'service_monitoring:\n  check_interval: 1\n  max_concurrent_checks: 8\n  state_dir: %s/state\n' "$out"
  printf '  listen: {port: %d}\nperformance_monitoring: {enabled: false}\nhealth_checks:\n' "$dport"
  if has none; then printf '  resources: {include: [memory]}\n'; else printf '  resources: {include: [memory], interval: 3600}\n'; fi
  if has ports; then printf '  ports:\n'; for i in $(seq 1 50); do printf '    - {name: p%d, port: %d, timeout: 1}\n' "$i" "$lport"; done; fi
  if has http; then printf '  http:\n'; for i in $(seq 1 20); do printf '    - {name: h%d, url: "http://127.0.0.1:%d/ok", timeout: 1}\n' "$i" "$hport"; done; fi
  if has processes; then printf '  processes:\n'; for i in $(seq 1 20); do printf '    - {cmdline: "^hx-bench-proc-%d "}\n' "$i"; done; fi
} > "$out/daemon.yml"
chmod 600 "$out/daemon.yml"
if [[ $bin == monit ]]; then
  {
    printf 'set daemon 1\nset logfile %s/monit.log\nset idfile %s/monit.id\n' "$out" "$out"
    printf 'set statefile %s/monit.state\nset pidfile %s/monit.pid\n' "$out" "$out"
    printf 'check system localhost\n  if memory usage > 99%% then alert\n'
    if has ports; then for i in $(seq 1 50); do printf 'check host p%d with address 127.0.0.1\n  if failed port %d type tcp with timeout 1 seconds then alert\n' "$i" "$lport"; done; fi
    if has http; then for i in $(seq 1 20); do printf 'check host h%d with address 127.0.0.1\n  if failed port %d protocol http request "/ok" with timeout 1 seconds then alert\n' "$i" "$hport"; done; fi
    if has processes; then for i in $(seq 1 20); do printf 'check process proc%d matching "^hx-bench-proc-%d "\n  if does not exist then alert\n' "$i" "$i"; done; fi
  } > "$out/monitrc"
  chmod 600 "$out/monitrc"
  monit -I -c "$out/monitrc" > "$out/daemon.log" 2>&1 &
  dpid=$!
  pids+=("$dpid")
  sleep 4
else
  "$bin" --config "$out/daemon.yml" daemon 2> "$out/daemon.log" &
  dpid=$!
  pids+=("$dpid")
  until grep -q 'first cycle done' "$out/daemon.log"; do sleep 0.1; done
  sleep 3
fi
hook=
if [[ -n ${PID_HOOK:-} ]]; then $PID_HOOK "$dpid" "$((secs - 2))" & hook=$!; fi
t0=$(ticks "$dpid") s0=$(date +%s.%N)
sleep "$secs"
t1=$(ticks "$dpid") s1=$(date +%s.%N)
[[ -n $hook ]] && wait "$hook"
notok=n/a
if [[ $bin != monit ]]; then
  notok=$(curl -s "http://127.0.0.1:$dport/metrics" | awk '/^reliability_monitor_check_status\{/ && $NF != 0' | wc -l)
fi
tck=$(getconf CLK_TCK)
echo "$(basename "$bin") $kind: $(echo "scale=2; ($t1 - $t0) * 1000 / $tck / ($s1 - $s0)" | bc) ms CPU per s, VmRSS $(awk '/VmRSS/ {print $2}' "/proc/$dpid/status") KiB, checks not ok: $notok, load $(cut -d' ' -f1 /proc/loadavg)"
if [[ -n ${WRK:-} && $bin != monit ]]; then
  for path in /metrics /alive; do
    wrk -t2 -c16 -d"${WRK}s" --latency "http://127.0.0.1:$dport$path" > "$out/wrk" 2>&1
    echo "  wrk $path: $(awk '/Requests\/sec/ {r=$2} /^ +50%/ {m=$2} /^ +99%/ {p=$2} END {print r " req/s, p50 " m ", p99 " p}' "$out/wrk")"
  done
fi
