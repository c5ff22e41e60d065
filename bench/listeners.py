#!/usr/bin/env python3
"""Listeners for bench/checks.sh and bench/tasks.sh on 127.0.0.1 (which the nspawn test hosts
share): TCP ports that accept and close, and HTTP servers answering 200 "ok". Prints
{"tcp": [ports], "http": [ports]} once all listen, then serves until killed.
Usage: listeners.py TCP_COUNT HTTP_COUNT
"""

import http.server
import json
import socket
import sys
import threading


class Ok(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"ok\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def accept_forever(s):
    while True:
        s.accept()[0].close()


def main():
    tcp_count, http_count = int(sys.argv[1]), int(sys.argv[2])
    tcp = []
    for _ in range(tcp_count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(4096)
        tcp.append(s.getsockname()[1])
        threading.Thread(target=accept_forever, args=(s,), daemon=True).start()
    web = []
    for _ in range(http_count):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Ok)
        web.append(server.server_address[1])
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print(json.dumps({"tcp": tcp, "http": web}), flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
