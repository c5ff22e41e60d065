"""Real alert receivers on loopback, for the README's transcripts (test_examples.py).

- `HttpReceiver`: a threaded HTTP server recording every request (method, path, headers,
  body) and answering 200 `ok`, as a Slack incoming webhook and a generic webhook receiver
  do; a webhook signed with `secret` is verified (HMAC-SHA256 of the body, the
  `X-Hx-Signature: sha256=<hex>` header) and refused with 401 when the signature is wrong.
- `SmtpReceiver`: aiosmtpd with STARTTLS and AUTH required
  (rust/reliability-alerts/tests/smtp_receiver.py, the email channel's own test server),
  each message kept as it arrived.
- `Alertmanager`: Debian's prometheus-alertmanager, read back with `amtool`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what: str, cond, within: float = 30.0, step: float = 0.1):
    deadline = time.time() + within
    while time.time() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {within} s waiting for {what}")


@dataclass
class Received:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes
    signature_ok: bool | None

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    def json(self):
        return json.loads(self.body)


class HttpReceiver:
    def __init__(self, secret: str | None = None):
        self.requests: list[Received] = []
        lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _take(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                sig_ok = None
                if secret is not None and self.path.startswith("/hook"):
                    want = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
                    sig_ok = hmac.compare_digest(want, self.headers.get("X-Hx-Signature") or "")
                with lock:
                    receiver.requests.append(Received(self.command, self.path, list(self.headers.items()), body, sig_ok))
                code = 401 if sig_ok is False else 200
                self.send_response(code)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            do_POST = do_PUT = _take

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def at(self, prefix: str) -> list[Received]:
        return [r for r in self.requests if r.path.startswith(prefix)]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


class SmtpReceiver:
    """aiosmtpd on loopback; user `alerts`, password `pa55word` (the script's)."""

    def __init__(self, python: Path, directory: Path, cert: Path, key: Path):
        self.spool = directory / "spool"
        self.spool.mkdir(parents=True)
        self.port = free_port()
        script = REPO / "rust" / "reliability-alerts" / "tests" / "smtp_receiver.py"
        with open(directory / "smtp.log", "wb") as log:
            self.proc = subprocess.Popen([str(python), str(script), str(self.port), str(cert), str(key), str(self.spool)],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log)
        line = self.proc.stdout.readline()
        if b"ready" not in line:
            raise AssertionError(f"the SMTP receiver did not start: {(directory / 'smtp.log').read_text()}")

    def messages(self) -> list[dict]:
        return [json.loads(p.read_text()) for p in sorted(self.spool.glob("*.json"))]

    def close(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Alertmanager:
    BINARIES = ("/usr/bin/prometheus-alertmanager", "/usr/bin/alertmanager")

    def __init__(self, directory: Path):
        binary = next((b for b in self.BINARIES if Path(b).exists()), None)
        if binary is None or shutil.which("amtool") is None:
            raise FileNotFoundError("prometheus-alertmanager (Debian package) is not installed")
        directory.mkdir(parents=True, exist_ok=True)
        config = directory / "alertmanager.yml"
        config.write_text("route:\n  receiver: oncall\nreceivers:\n  - name: oncall\n")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([binary, f"--config.file={config}", f"--storage.path={directory / 'data'}",
                                      f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address="],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def ready():
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as r:
                    return r.status == 200
            except OSError:
                return False

        wait_until("alertmanager to be ready", ready, within=30)

    def amtool(self, *args: str) -> str:
        out = subprocess.run(["amtool", f"--alertmanager.url={self.url}", *args], capture_output=True, text=True,
                             timeout=30, check=True)
        return out.stdout

    def close(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def python_with_aiosmtpd() -> Path | None:
    for p in (REPO / ".venv" / "bin" / "python3", Path(sys.executable)):
        if p.exists() and subprocess.run([str(p), "-c", "import aiosmtpd"], capture_output=True, check=False).returncode == 0:
            return p
    return None
