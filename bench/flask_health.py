"""A Flask + psutil health service in the shape of the second seed's (the security guide's
"Comprehensive Health Monitoring"): a HealthChecker with the seed's CPU, memory and disk
thresholds, custom checks added with add_check, and /health, /metrics, /ready, /live.

bench/footprint.sh runs it as the anchor the monitor daemon is measured against, with the
same checks as the daemon's: CHECKS_JSON names a JSON file with
{"ports": [port...], "http": [url...], "processes": [cmdline substring...]}.
Usage: python3 bench/flask_health.py PORT CHECKS_JSON

Two departures from the seed, both in its favour: cpu_percent(interval=None) instead of a
1 s blocking sample per request, and no check of an external API.
"""

from __future__ import annotations

import json
import socket
import sys
import time
import urllib.request
from typing import Any, Callable, Dict, List

import psutil
from flask import Flask, jsonify


class HealthChecker:
    def __init__(self) -> None:
        self.checks: Dict[str, Dict[str, Any]] = {}
        self.thresholds = {
            "cpu_warning": 70,
            "cpu_critical": 85,
            "memory_warning": 80,
            "memory_critical": 90,
            "disk_warning": 80,
            "disk_critical": 95,
        }

    def add_check(self, name: str, check_func: Callable[[], Any], critical: bool = False) -> None:
        self.checks[name] = {"func": check_func, "critical": critical, "last_result": None, "last_run": None}

    def _level(self, status: Dict[str, Any], name: str, value: float) -> str:
        if value > self.thresholds[f"{name}_critical"]:
            status["status"] = "unhealthy"
            return "critical"
        if value > self.thresholds[f"{name}_warning"]:
            if status["status"] == "healthy":
                status["status"] = "degraded"
            return "warning"
        return "healthy"

    def check_system_health(self) -> Dict[str, Any]:
        status: Dict[str, Any] = {"status": "healthy", "timestamp": time.time(), "checks": {}, "metrics": {}}
        cpu = psutil.cpu_percent(interval=None)
        memory = psutil.virtual_memory()
        disk = psutil.disk_usage("/")
        disk_percent = disk.used / disk.total * 100
        status["checks"]["cpu"] = {"status": self._level(status, "cpu", cpu), "value": cpu}
        status["checks"]["memory"] = {
            "status": self._level(status, "memory", memory.percent),
            "value": memory.percent,
            "available": memory.available,
            "used": memory.used,
            "total": memory.total,
        }
        status["checks"]["disk"] = {
            "status": self._level(status, "disk", disk_percent),
            "value": disk_percent,
            "free": disk.free,
            "used": disk.used,
            "total": disk.total,
        }
        process = psutil.Process()
        mem = process.memory_info()
        status["metrics"]["process"] = {
            "pid": process.pid,
            "cpu_percent": process.cpu_percent(),
            "memory_rss": mem.rss,
            "memory_vms": mem.vms,
            "num_threads": process.num_threads(),
            "create_time": process.create_time(),
        }
        for name, check in self.checks.items():
            try:
                start = time.time()
                result = check["func"]()
                status["checks"][name] = {
                    "status": "healthy",
                    "response_time": time.time() - start,
                    "result": result,
                    "critical": check["critical"],
                }
                check["last_result"] = result
                check["last_run"] = time.time()
            except Exception as e:  # noqa: BLE001 - the seed's catch-all, reported per check
                status["checks"][name] = {"status": "unhealthy", "error": str(e), "critical": check["critical"]}
                if check["critical"]:
                    status["status"] = "unhealthy"
                elif status["status"] == "healthy":
                    status["status"] = "degraded"
        return status

    def get_metrics(self) -> Dict[str, Any]:
        disk = psutil.disk_usage("/")
        return {
            "timestamp": time.time(),
            "system": {
                "cpu_percent": psutil.cpu_percent(),
                "memory_percent": psutil.virtual_memory().percent,
                "disk_percent": disk.used / disk.total * 100,
                "boot_time": psutil.boot_time(),
                "users": len(psutil.users()),
            },
            "processes": {"count": len(psutil.pids()), "top_memory": self._top_memory()},
        }

    def _top_memory(self, limit: int = 5) -> List[Dict[str, Any]]:
        procs = []
        for proc in psutil.process_iter(["pid", "name", "memory_percent"]):
            try:
                procs.append(proc.info)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                pass
        return sorted(procs, key=lambda p: p["memory_percent"] or 0, reverse=True)[:limit]


def port_check(port: int) -> Callable[[], Any]:
    def check() -> Any:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return {"port": port, "open": True}

    return check


def http_check(url: str) -> Callable[[], Any]:
    def check() -> Any:
        with urllib.request.urlopen(url, timeout=1) as r:
            return {"status_code": r.status}

    return check


def process_check(pattern: str) -> Callable[[], Any]:
    def check() -> Any:
        n = 0
        for proc in psutil.process_iter(["cmdline"]):
            if pattern in " ".join(proc.info["cmdline"] or []):
                n += 1
        if n == 0:
            raise RuntimeError(f"no process matches {pattern!r}")
        return {"count": n}

    return check


def build(checks_file: str) -> Flask:
    checks = json.loads(open(checks_file).read())
    health = HealthChecker()
    for i, port in enumerate(checks.get("ports", [])):
        health.add_check(f"port_{i}", port_check(port))
    for i, url in enumerate(checks.get("http", [])):
        health.add_check(f"http_{i}", http_check(url))
    for i, pattern in enumerate(checks.get("processes", [])):
        health.add_check(f"process_{i}", process_check(pattern))
    app = Flask(__name__)

    @app.route("/health")
    def health_endpoint():
        return jsonify(health.check_system_health())

    @app.route("/metrics")
    def metrics():
        return jsonify(health.get_metrics())

    @app.route("/ready")
    def ready():
        h = health.check_system_health()
        return jsonify(h), 503 if h["status"] == "unhealthy" else 200

    @app.route("/live")
    def live():
        return jsonify({"status": "alive", "timestamp": time.time()})

    return app


if __name__ == "__main__":
    build(sys.argv[2]).run(host="127.0.0.1", port=int(sys.argv[1]), threaded=True)
