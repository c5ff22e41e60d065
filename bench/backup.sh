#!/usr/bin/env bash
# backup_verify's integrity check vs `sha256sum -c` vs a Python hashlib thread pool
# (bench/backup_hashlib.py), on the same warm data set, in one run with hyperfine:
#   a few large files plus 20,000 small ones (1-8 KiB), HX_BENCH_BACKUP_MIB in total
#   (default 2048); then the large files alone, against the SHA-NI bound (1.5 GB/s per
#   core, FACTS.md).
# Usage: bench/backup.sh [RUNS]   (from the repo root, after `make build`)
#   HX_BENCH_BACKUP_MIB=512 bench/backup.sh 3
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
mib=${HX_BENCH_BACKUP_MIB:-2048}
small=${HX_BENCH_BACKUP_SMALL:-20000}
large=${HX_BENCH_BACKUP_LARGE:-4}
bin=$PWD/bin/backup_verify_$(uname -m)
python=${PYTHON:-python3}
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
echo "## whole set: $bytes_all bytes, $runs runs"
hyperfine --warmup 1 --runs "$runs" --export-json "$out/all.hf.json" --export-markdown "$out/all.md" \
  -n backup_verify "$bin $out/all.json > /dev/null" \
  -n "sha256sum -c" "cd $data && sha256sum -c --quiet $out/all.sha256" \
  -n "python hashlib pool" "$python bench/backup_hashlib.py $out/all.sha256 $data $cores" >/dev/null
cat "$out/all.md"

echo
echo "## large files only: $bytes_large bytes, $runs runs"
hyperfine --warmup 1 --runs "$runs" --export-json "$out/large.hf.json" --export-markdown "$out/large.md" \
  -n backup_verify "$bin $out/large.json > /dev/null" \
  -n "python hashlib pool" "$python bench/backup_hashlib.py $out/large.sha256 $data $cores" >/dev/null
cat "$out/large.md"

echo
echo "## ratios"
"$python" - "$out" "$bytes_all" "$bytes_large" "$cores" <<'PY'
import json, sys
out, bytes_all, bytes_large, cores = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
def medians(name):
    return {r["command"]: r["median"] for r in json.load(open(f"{out}/{name}.hf.json"))["results"]}
a, l = medians("all"), medians("large")
ours = a["backup_verify"]
print(f"whole set: backup_verify {bytes_all / ours / 1e9:.2f} GB/s; "
      f"{a['sha256sum -c'] / ours:.1f}x sha256sum -c ({bytes_all / a['sha256sum -c'] / 1e9:.2f} GB/s); "
      f"{a['python hashlib pool'] / ours:.1f}x python hashlib pool ({bytes_all / a['python hashlib pool'] / 1e9:.2f} GB/s)")
bound = 1.5e9 * cores
rate = bytes_large / l["backup_verify"]
print(f"large files: backup_verify {rate / 1e9:.2f} GB/s = {100 * rate / bound:.0f}% of the SHA-NI bound "
      f"({bound / 1e9:.1f} GB/s = 1.5 GB/s x {cores} cores); python pool {bytes_large / l['python hashlib pool'] / 1e9:.2f} GB/s")
PY
