#!/usr/bin/env bash
# backup_verify's restore_test (extraction into its sandbox, removed afterwards) vs GNU tar
# extracting the same archive into a fresh directory and removing it, for tar, tar.gz and
# tar.zst, interleaved run by run (bench/measure.py). Both sides write and delete the same files; the
# comparison with a manifest is left out (compare: none) so that only extraction is timed
# (hashing is bench/backup.sh's subject).
#   a few large files of compressible text plus 10,000 small ones, HX_BENCH_RESTORE_MIB in
#   total (default 512)
# HX_BENCH_RESTORE_ALSO=BINARY adds another build of backup_verify (e.g. one from before a
# change) as a third command, "other build".
# Usage: bench/restore.sh [RUNS]   (from the repo root, after `make build`)
set -euo pipefail
# shellcheck source=bench/common.sh
source "$(dirname "$0")/common.sh"
runs=${1:-${HX_BENCH_RUNS:-5}}
mib=${HX_BENCH_RESTORE_MIB:-512}
small=10000
quick && { runs=1; mib=4; small=100; }
bin=$(module_bin backup_verify)
out=$(mktemp -d "${TMPDIR:-/tmp}/hx-bench-restore.XXXXXX")
trap 'rm -rf "$out"' EXIT
data=$out/data
echo "## data set: 4 large files + $small small files, ~$mib MiB, under $out ($(nproc) cores)"
"$python" - "$data" "$mib" "$small" <<'PY'
import os, random, sys
root, mib, small = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(7)
words = [bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(2, 9))) for _ in range(5000)]
def text(n):
    parts, size = [], 0
    while size < n:
        line = b" ".join(rng.choice(words) for _ in range(12)) + b"\n"
        parts.append(line)
        size += len(line)
    return b"".join(parts)[:n]
block = text(4 << 20)
os.makedirs(f"{root}/large")
small_total = 0
for i in range(small):
    d = f"{root}/small/{i // 1000:02d}"
    os.makedirs(d, exist_ok=True)
    n = rng.randint(1024, 8192)
    with open(f"{d}/f{i:05d}.txt", "wb") as f:
        f.write(text(n))
    small_total += n
each = max(mib * 1024 * 1024 - small_total, 0) // 4
for i in range(4):
    with open(f"{root}/large/big{i}.log", "wb") as f:
        left = each
        while left > 0:
            piece = block[: min(left, len(block))]
            f.write(bytes([i]) + piece[1:])
            left -= len(piece)
PY
tar -C "$data" -cf "$out/b.tar" .
tar -C "$data" -czf "$out/b.tar.gz" .
tar -C "$data" --zstd -cf "$out/b.tar.zst" .
mkdir "$out/tmp"
for f in b.tar b.tar.gz b.tar.zst; do
  printf '{"checks": ["restore_test"], "restore": {"archive": "%s", "compare": "none", "tmpdir": "%s"}}\n' \
    "$out/$f" "$out/tmp" > "$out/$f.json"
  cat "$out/$f" > /dev/null
done
for f in b.tar b.tar.gz b.tar.zst; do echo "# $f: $(stat -c %s "$out/$f") bytes"; done

for f in b.tar b.tar.gz b.tar.zst; do
  case $f in
    *.gz) flag=-z ;;
    *.zst) flag=--zstd ;;
    *) flag= ;;
  esac
  echo
  echo "## $f, $runs runs"
  also=()
  [[ -n ${HX_BENCH_RESTORE_ALSO:-} ]] && also=(-n "other build" "$HX_BENCH_RESTORE_ALSO $out/$f.json > /dev/null")
  "${measure[@]}" --runs "$runs" --warmup 1 --json "$out/$f.m.json" --baseline "GNU tar" --title "restore $f" \
    -n backup_verify "$bin $out/$f.json > /dev/null" \
    -n "GNU tar" "mkdir $out/x && tar $flag -xf $out/$f -C $out/x && rm -rf $out/x" "${also[@]}"
done

echo
echo "## speed relative to GNU tar (above 1: faster than tar)"
"$python" - "$out" "$(du -sb "$data" | cut -f1)" <<'PY'
import json, sys
out, size = sys.argv[1], int(sys.argv[2])
for f in ["b.tar", "b.tar.gz", "b.tar.zst"]:
    c = {r["name"]: r for r in json.load(open(f"{out}/{f}.m.json"))["commands"]}
    ours, tar = c["backup_verify"], c["GNU tar"]
    speed = [1 / r for r in ours["ratios"]]
    print(f"{f}: backup_verify {ours['median']:.2f} s ({size / ours['median'] / 1e6:.0f} MB/s of content), "
          f"GNU tar {tar['median']:.2f} s; tar / backup_verify run by run: median {sorted(speed)[len(speed) // 2]:.2f}, "
          f"{min(speed):.2f}-{max(speed):.2f}")
PY
