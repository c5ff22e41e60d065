#!/usr/bin/env bash
# backup_verify's integrity check vs `sha256sum -c` vs a Python hashlib thread pool
# (bench/backup_hashlib.py), on the same warm data set, interleaved run by run
# (bench/measure.py): a few large files plus 20,000 small ones (1-8 KiB),
# HX_BENCH_BACKUP_MIB in total (default 2048); then the large files alone. Both against the
# hashing bound measured in the same run: SHA-256 in memory, one process per core
# (`openssl speed -multi CORES sha256`, 16 KiB blocks). Issue 13's goal: the whole set at
# 85% of the bound.
# Usage: bench/backup.sh [RUNS]   (from the repo root, after `make build`)
#   HX_BENCH_BACKUP_MIB=512 bench/backup.sh 3
set -euo pipefail
# shellcheck source=bench/common.sh
source "$(dirname "$0")/common.sh"
runs=${1:-${HX_BENCH_RUNS:-3}}
mib=${HX_BENCH_BACKUP_MIB:-2048}
small=${HX_BENCH_BACKUP_SMALL:-20000}
large=${HX_BENCH_BACKUP_LARGE:-4}
speed_seconds=3
quick && { runs=1; mib=8; small=200; large=2; speed_seconds=1; }
bin=$(module_bin backup_verify)
cores=$(nproc)
out=$(mktemp -d "${TMPDIR:-/tmp}/hx-bench-backup.XXXXXX")
trap 'rm -rf "$out"' EXIT
data=$out/data

echo "## data set: $large large files + $small small files, ~$mib MiB, under $out ($cores cores)"
"$python" - "$data" "$mib" "$small" "$large" <<'PY'
import os, random, sys
root, mib, small, large = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
rng = random.Random(5)
os.makedirs(f"{root}/large")
small_total = 0
for i in range(small):
    d = f"{root}/small/{i // 1000:02d}"
    os.makedirs(d, exist_ok=True)
    n = rng.randint(1024, 8192)
    with open(f"{d}/f{i:05d}", "wb") as f:
        f.write(os.urandom(n))
    small_total += n
each = max(mib * 1024 * 1024 - small_total, 0) // max(large, 1)
chunk = os.urandom(4 * 1024 * 1024)
for i in range(large):
    with open(f"{root}/large/big{i}.bin", "wb") as f:
        left = each
        while left > 0:
            # Vary each chunk so no two blocks are alike.
            piece = chunk[: min(left, len(chunk))]
            f.write(bytes([i, left & 255]) + piece[2:])
            left -= len(piece)
PY
(cd "$data" && find . -type f -print0 | sort -z | xargs -0 sha256sum > "$out/all.sha256")
grep '  ./large/' "$out/all.sha256" > "$out/large.sha256"
bytes_all=$(du -sb "$data" | cut -f1)
bytes_large=$(du -sb "$data/large" | cut -f1)
printf '{"manifest": "%s", "root": "%s"}\n' "$out/all.sha256" "$data" > "$out/all.json"
printf '{"manifest": "%s", "root": "%s"}\n' "$out/large.sha256" "$data" > "$out/large.json"
# Warm the page cache: every run reads the same cached data.
find "$data" -type f -print0 | xargs -0 cat > /dev/null

echo
echo "## the hashing bound: openssl speed -multi $cores -seconds $speed_seconds -bytes 16384 sha256"
bound=$(openssl speed -multi "$cores" -seconds "$speed_seconds" -bytes 16384 sha256 2>/dev/null |
  awk '$1 == "sha256" {v = $NF; sub(/k$/, "", v); printf "%.0f", v * 1000}')
echo "bound: $(echo "scale=2; $bound / 1000000000" | bc) GB/s on $cores cores"

echo
echo "## whole set: $bytes_all bytes"
"${measure[@]}" --json "$out/all.json.out" --runs "$runs" --warmup 1 --title "backup verification, whole set ($bytes_all bytes)" \
  -n backup_verify "$bin $out/all.json > /dev/null" \
  -n "sha256sum -c" "cd $data && sha256sum -c --quiet $out/all.sha256" \
  -n "python hashlib pool" "$python bench/backup_hashlib.py $out/all.sha256 $data $cores"

echo
echo "## large files only: $bytes_large bytes"
"${measure[@]}" --json "$out/large.json.out" --runs "$runs" --warmup 1 --title "backup verification, large files ($bytes_large bytes)" \
  -n backup_verify "$bin $out/large.json > /dev/null" \
  -n "python hashlib pool" "$python bench/backup_hashlib.py $out/large.sha256 $data $cores"

echo
echo "## against the bound (medians)"
"$python" - "$out" "$bytes_all" "$bytes_large" "$bound" <<'PY'
import json, sys
out, bytes_all, bytes_large, bound = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def medians(name):
    return {c["name"]: c["median"] for c in json.load(open(f"{out}/{name}.json.out"))["commands"]}
a, l = medians("all"), medians("large")
for label, size, m in [("whole set", bytes_all, a), ("large files", bytes_large, l)]:
    parts = [f"{name} {size / t / 1e9:.2f} GB/s ({100 * size / t / bound:.0f}% of the bound)" for name, t in m.items()]
    print(f"{label}: " + "; ".join(parts))
print(f"bound: {bound / 1e9:.2f} GB/s (SHA-256 in memory, openssl, one process per core)")
PY
