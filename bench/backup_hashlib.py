#!/usr/bin/env python3
"""The Python way to verify a sha256sum manifest: hashlib (OpenSSL, so SHA-NI too) in a
thread pool, 128 KiB reads. hashlib releases the GIL while it hashes, so threads scale.

Usage: backup_hashlib.py MANIFEST ROOT [THREADS]   exit 1 when any file fails.
(Plain `<hex>  <path>` lines only: the benchmark's data set has no escaped names.)
"""

from __future__ import annotations

import hashlib
import os
import sys
from concurrent.futures import ThreadPoolExecutor

BUFFER = 128 * 1024


def digest(path: str) -> str | None:
    h = hashlib.sha256()
    try:
        with open(path, "rb", buffering=0) as f:
            buf = bytearray(BUFFER)
            view = memoryview(buf)
            while n := f.readinto(buf):
                h.update(view[:n])
    except OSError:
        return None
    return h.hexdigest()


def main() -> int:
    manifest, root = sys.argv[1], sys.argv[2]
    threads = int(sys.argv[3]) if len(sys.argv) > 3 else os.cpu_count() or 1
    entries = []
    with open(manifest, encoding="utf-8") as f:
        for line in f:
            want, name = line.rstrip("\n").split("  ", 1)
            entries.append((os.path.join(root, name), want))
    with ThreadPoolExecutor(threads) as pool:
        got = list(pool.map(digest, (p for p, _ in entries)))
    bad = [p for (p, want), g in zip(entries, got) if g != want]
    for p in bad:
        print(f"{p}: FAILED", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
