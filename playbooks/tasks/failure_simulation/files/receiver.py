"""A webhook receiver for hx.reliability's failure simulation, on the controller's loopback.

    receiver.py --port-file FILE [--pid-file FILE] [--port N] [--log FILE] [--lifetime S]

POST (any path): the JSON body is kept with the time it arrived (received_at_ms) and the
Idempotency-Key header, answered 200. GET /alerts: everything received, as a JSON list.
It listens on 127.0.0.1 (port 0: any free one), writes the port to --port-file once it
listens (its pid to --pid-file), appends each alert to --log as a JSON line, and exits after --lifetime seconds.
"""

import argparse
import http.server
import json
import os
import threading
import time

RECEIVED = []
LOCK = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    log_file = None

    def do_POST(self):  # noqa: N802 (http.server's name)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw)
        except ValueError:
            body = {"raw": raw.decode("utf-8", "replace")}
        entry = {
            "received_at_ms": int(time.time() * 1000),
            "path": self.path,
            "idempotency_key": self.headers.get("Idempotency-Key"),
            "body": body,
        }
        with LOCK:
            RECEIVED.append(entry)
            if self.log_file:
                with open(self.log_file, "a", encoding="utf-8") as f:
                    f.write(json.dumps(entry, sort_keys=True) + "\n")
        self.reply(200, b'{"ok": true}')

    def do_GET(self):  # noqa: N802
        if self.path.rstrip("/") != "/alerts":
            self.reply(404, b'{"error": "GET /alerts"}')
            return
        with LOCK:
            data = json.dumps(RECEIVED).encode()
        self.reply(200, data)

    def reply(self, status, data):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--port-file", required=True)
    p.add_argument("--pid-file")
    p.add_argument("--log")
    p.add_argument("--lifetime", type=float, default=900.0)
    args = p.parse_args()
    Handler.log_file = args.log
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    if args.pid_file:
        with open(args.pid_file, "w", encoding="ascii") as f:
            f.write(f"{os.getpid()}\n")
    with open(args.port_file, "w", encoding="ascii") as f:
        f.write(f"{server.server_address[1]}\n")
    threading.Timer(args.lifetime, server.shutdown).start()
    server.serve_forever()


if __name__ == "__main__":
    main()
