#!/usr/bin/env bash
# Per-task cost of a binary module with and without the fast path, against `ping` with
# pipelining and against the floor (`raw` piping the arguments into the cached binary), in
# one run: plays of 1 and 50 identical tasks (reliability_facts with gather_subset: kernel),
# run alternately RUNS times after a warm-up; per task = (t50 - t1) / 49 run by run, then
# the median, min-max and ratios run by run. The target must be x86_64.
# Usage: bench/fastpath.sh INVENTORY HOST [RUNS]   (from the repo root, after `make install`)
set -euo pipefail
cd "$(dirname "$0")/.."
inventory=${1:?inventory}
host=${2:?host}
runs=${3:-5}
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
export ANSIBLE_CONFIG=$PWD/ansible.cfg ANSIBLE_PIPELINING=1
sha=$(sha256sum <bin/reliability_facts_x86_64)
sha=${sha%% *}
for n in 1 50; do
  for kind in facts ping raw; do
    {
      printf -- '- hosts: %s\n  gather_facts: false\n  tasks:\n' "$host"
      for _ in $(seq "$n"); do
        case $kind in
          facts) printf '    - hx.reliability.reliability_facts: {gather_subset: [kernel]}\n' ;;
          ping) printf '    - ansible.builtin.ping:\n' ;;
          raw) printf '    - ansible.builtin.raw: echo %s | ~/.ansible/hx_reliability/%s\n' \
                 "'{\"gather_subset\":[\"kernel\"]}'" "$sha" ;;
        esac
      done
    } >"$out/$kind-$n.yml"
  done
done
play() { # KIND N FAST -> seconds
  local t0 t1
  t0=$(date +%s.%N)
  .venv/bin/ansible-playbook -i "$inventory" "$out/$1-$2.yml" -e "hx_reliability_fast_path=$3" >/dev/null || return 1
  t1=$(date +%s.%N)
  echo "$t1 - $t0" | bc
}
play facts 1 true >/dev/null   # warm-up: the cache on the target, the SSH master
for r in $(seq "$runs"); do
  for c in "facts true" "facts false" "ping true" "raw true"; do
    set -- $c
    a=$(play "$1" 1 "$2")
    b=$(play "$1" 50 "$2")
    echo "$1-$2 $r $(echo "($b - $a) * 1000 / 49" | bc -l)"
  done
done | tee "$out/raw"
python3 - "$out/raw" <<'PY'
import statistics, sys
rows = [line.split() for line in open(sys.argv[1])]
per = {}
for name, run, ms in rows:
    per.setdefault(name, {})[run] = float(ms)
ping = per["ping-true"]
print("\n| per task | median ms | min-max ms | x ping (pipelining), median of runs |")
print("|---|---|---|---|")
labels = {
    "facts-true": "reliability_facts, fast path",
    "facts-false": "reliability_facts, normal path",
    "ping-true": "ansible.builtin.ping, pipelining",
    "raw-true": "raw: args piped into the cached binary (the floor)",
}
for name in labels:
    v = per[name]
    ratios = [v[r] / ping[r] for r in v]
    print("| %s | %.0f | %.0f-%.0f | %.2f |" % (labels[name], statistics.median(v.values()), min(v.values()), max(v.values()), statistics.median(ratios)))
fast, normal = per["facts-true"], per["facts-false"]
print("\nfast path / normal path, median of runs: %.2f" % statistics.median(fast[r] / normal[r] for r in fast))
PY
