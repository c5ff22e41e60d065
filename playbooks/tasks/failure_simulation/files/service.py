"""Victim services of hx.reliability's failure simulation (playbooks/failure_simulation.yml).

    serve PORT            an HTTP service answering 200 on 127.0.0.1:PORT; SIGUSR1 makes
                          it allocate memory until a limit stops it (MemoryMax on cgroup v2,
                          LimitAS= wherever the memory controller is not delegated)
    app PORT DEP_PORT     an HTTP service whose answer depends on its dependency: 200 when
                          127.0.0.1:DEP_PORT answered 'pong' within 0.5 s, else 503
    dependency PORT       the dependency, in a network namespace of its own: it takes
                          127.0.0.1:PORT on the host's network, then moves into a new user
                          and network namespace (unshare) and relays each connection to
                          127.0.0.1:PORT inside it, where it answers 'pong'. An nftables
                          rule in that namespace partitions the service from it without
                          touching the host's network.

Python's standard library only; started by systemd units the playbook installs.
"""

import ctypes
import http.server
import os
import signal
import socket
import subprocess
import sys
import threading

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000


class Handler(http.server.BaseHTTPRequestHandler):
    dependency = None

    def do_GET(self):  # noqa: N802 (http.server's name)
        status, body = 200, b"ok\n"
        if self.dependency is not None:
            try:
                with socket.create_connection(("127.0.0.1", self.dependency), timeout=0.5) as s:
                    s.settimeout(0.5)
                    ok = s.recv(16).startswith(b"pong")
            except OSError:
                ok = False
            status, body = (200, b"ok: dependency answers\n") if ok else (503, b"dependency unreachable\n")
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def hog(_signum, _frame):
    print("SIGUSR1: allocating memory until a limit stops this process", flush=True)
    blocks = []
    while True:
        blocks.append(bytearray(16 << 20))


def serve(port, dependency=None):
    Handler.dependency = dependency
    signal.signal(signal.SIGUSR1, hog)
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"serving on 127.0.0.1:{port}", flush=True)
    server.serve_forever()


def relay(client, port):
    with client:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as upstream:
                upstream.settimeout(1)
                client.sendall(upstream.recv(16))
        except OSError as e:
            print(f"relay: dependency unreachable: {e}", flush=True)


def pong(listener):
    while True:
        conn = listener.accept()[0]
        with conn:
            conn.sendall(b"pong\n")


def dependency(port):
    outside = socket.create_server(("127.0.0.1", port))
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWUSER | CLONE_NEWNET) != 0:
        sys.exit(f"unshare: {os.strerror(ctypes.get_errno())}")
    with open("/proc/self/setgroups", "w", encoding="ascii") as f:
        f.write("deny")
    for name in ("uid_map", "gid_map"):
        with open(f"/proc/self/{name}", "w", encoding="ascii") as f:
            f.write("0 0 1")
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    inside = socket.create_server(("127.0.0.1", port))
    threading.Thread(target=pong, args=(inside,), daemon=True).start()
    print(f"dependency on 127.0.0.1:{port}, in network namespace of pid {os.getpid()}", flush=True)
    while True:
        client = outside.accept()[0]
        threading.Thread(target=relay, args=(client, port), daemon=True).start()


def main(argv):
    if len(argv) == 3 and argv[1] == "serve":
        serve(int(argv[2]))
    elif len(argv) == 4 and argv[1] == "app":
        serve(int(argv[2]), int(argv[3]))
    elif len(argv) == 3 and argv[1] == "dependency":
        dependency(int(argv[2]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
