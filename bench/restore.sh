#!/usr/bin/env bash
# backup_verify's restore_test (extraction into its sandbox, removed afterwards) vs GNU tar
# extracting the same archive into a fresh directory and removing it, for tar, tar.gz and
# tar.zst, in one run with hyperfine. Both sides write and delete the same files; the
# comparison with a manifest is left out (compare: none) so that only extraction is timed
# (hashing is bench/backup.sh's subject).
#   a few large files of compressible text plus 10,000 small ones, HX_BENCH_RESTORE_MIB in
#   total (default 512)
# Usage: bench/restore.sh [RUNS]   (from the repo root, after `make build`)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
mib=${HX_BENCH_RESTORE_MIB:-512}
bin=$PWD/bin/backup_verify_$(uname -m)
python=${PYTHON:-python3}
out=$(mktemp -d "${TMPDIR:-/tmp}/hx-bench-restore.XXXXXX")
trap 'rm -rf "$out"' EXIT
data=$out/data
echo "## data set: 4 large files + 10,000 small files, ~$mib MiB, under $out ($(nproc) cores)"
"$python" - "$data" "$mib" <<'PY'
import os, random, sys
root, mib = sys.argv[1], int(sys.argv[2])
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
for i in range(10000):
    d = f"{root}/small/{i // 1000:02d}"
    os.makedirs(d, exist_ok=True)
    n = rng.randint(1024, 8192)
    with open(f"{d}/f{i:05d}.txt", "wb") as f:
        f.write(text(n))
    small_total += n
each = (mib * 1024 * 1024 - small_total) // 4
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
  hyperfine --warmup 1 --runs "$runs" --export-json "$out/$f.hf.json" --export-markdown "$out/$f.md" \
    -n backup_verify "$bin $out/$f.json > /dev/null" \
    -n "GNU tar" "mkdir $out/x && tar $flag -xf $out/$f -C $out/x && rm -rf $out/x" >/dev/null
  cat "$out/$f.md"
done

echo
echo "## ratios (medians)"
"$python" - "$out" "$(du -sb "$data" | cut -f1)" <<'PY'
import json, sys
out, size = sys.argv[1], int(sys.argv[2])
for f in ["b.tar", "b.tar.gz", "b.tar.zst"]:
    m = {r["command"]: r["median"] for r in json.load(open(f"{out}/{f}.hf.json"))["results"]}
    ours, tar = m["backup_verify"], m["GNU tar"]
    print(f"{f}: backup_verify {ours:.2f} s ({size / ours / 1e6:.0f} MB/s of content), GNU tar {tar:.2f} s; "
          f"tar / backup_verify = {tar / ours:.2f}")
PY
