# Sourced by bench/*.sh: the paths and settings every benchmark shares.
# BENCH_QUICK=1: one run, tiny data, a few seconds per script (`make bench-quick`, run by
# `make test`), to keep the scripts working; its figures mean nothing.
# shellcheck shell=bash
cd "$(dirname "${BASH_SOURCE[0]}")/.." || exit 1
export BENCH_QUICK=${BENCH_QUICK:-0}
export ANSIBLE_CONFIG=$PWD/ansible.cfg
# The project's venv (`make setup`); VENV=DIR for another.
venv=$(realpath -m "${VENV:-.venv}")
export PATH=$venv/bin:$PATH
python=${PYTHON:-python3}
# shellcheck disable=SC2034 # used by the scripts that source this file
measure=("$python" "$PWD/bench/measure.py")
quick() { [[ $BENCH_QUICK == 1 ]]; }
# A module binary for this machine, as `make build` places it: bin/<module>_<arch>.
module_bin() {
  local b
  b=bin/$1_$(uname -m)
  [[ -x $b ]] && { echo "$PWD/$b"; return; }
  echo "bench: no $b; run 'make build'" >&2
  return 1
}

# --- the monitor daemon's benchmarks (bench/footprint.sh, bench/kinds.sh) ------------------
# A free TCP port on loopback.
free_port() { "$python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# Kills the caller's `pids` and waits for them.
stop_pids() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
# utime + stime of PID, in clock ticks.
ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# What their checks look at, served from DIR: a port that accepts and closes ($lport), an
# HTTP server with DIR/ok ($hport), 20 processes named hx-bench-proc-1 to -20. Each process
# started is added to the caller's `pids` array (its clean-up kills them).
check_targets() {
  local dir=$1 i
  "$python" -c 'import socket
s=socket.socket(); s.bind(("127.0.0.1",0)); s.listen(512); print(s.getsockname()[1], flush=True)
while True: s.accept()[0].close()' >"$dir/port" &
  pids+=($!)
  hport=$(free_port)
  # http.server's own listen backlog is 5: twenty GETs at once (the daemon runs its checks
  # concurrently, Monit one after the other) had handshakes dropped and retried after 1 s,
  # failing checks that timed out at 1 s. The same server with a backlog of 128.
  "$python" -c 'import functools, http.server, sys
class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 128
handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=sys.argv[2])
handler.log_message = lambda *args: None
Server(("127.0.0.1", int(sys.argv[1])), handler).serve_forever()' "$hport" "$dir" >/dev/null 2>&1 &
  pids+=($!)
  for i in $(seq 1 20); do
    bash -c "exec -a hx-bench-proc-$i sleep 1000000" &
    pids+=($!)
  done
  until [[ -s $dir/port ]] && "$python" -c "import socket; socket.create_connection(('127.0.0.1',$hport),1)" 2>/dev/null; do
    sleep 0.05
  done
  # shellcheck disable=SC2034 # read by the caller
  lport=$(cat "$dir/port")
  touch "$dir/ok"
}
