#!/usr/bin/env python3
"""The Python side of bench/ports.sh: what health_check's port checks do, in asyncio.

Reads the same arguments file as the module (``{"ports": [{"host", "port", "timeout"}]}``),
connects to every port at once, times each handshake, and prints one JSON object with a
result per check and the counts, as the module does. Standard library only, so it runs
wherever Python 3.8+ does: the fairest Python equivalent we could write.
"""

import asyncio
import json
import sys
import time


async def probe(host, port, timeout):
    started = time.monotonic()
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except asyncio.TimeoutError:
        return {"name": f"{host}:{port}", "status": "critical", "message": f"port {host}:{port} closed: timed out after {timeout}s"}
    except OSError as e:
        return {"name": f"{host}:{port}", "status": "critical", "message": f"port {host}:{port} closed: {e.strerror}"}
    latency = (time.monotonic() - started) * 1000
    writer.close()
    return {"name": f"{host}:{port}", "status": "ok", "value": round(latency, 3), "unit": "ms", "message": f"port {host}:{port} open in {latency:.3f} ms"}


async def main(path):
    with open(path) as f:
        args = json.load(f)
    started = time.monotonic()
    checks = await asyncio.gather(
        *(probe(p.get("host", "127.0.0.1"), p["port"], float(p.get("timeout", 5))) for p in args["ports"])
    )
    counts = {s: sum(1 for c in checks if c["status"] == s) for s in ("ok", "warning", "critical", "unknown")}
    status = "unhealthy" if counts["critical"] else "healthy"
    result = {"changed": False, "status": status, "checks": checks, "counts": counts,
              "duration_ms": round((time.monotonic() - started) * 1000, 3)}
    print(json.dumps(result))


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
