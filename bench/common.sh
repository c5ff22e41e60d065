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
