"""A client process that holds many idle connections to a server, for the connection-limit
tests (one process may open only ``ulimit -n`` sockets, so 20,000 take several).

``python tests/gateway/idle_clients.py HOST PORT SOURCE_IP COUNT KIND LIMIT_S``: opens COUNT
connections from SOURCE_IP (one loopback address per process, so that ephemeral ports do not
run out), each sending KIND (``line``: a request line and never the rest of the head;
``silent``: nothing), prints ``{"connected": n, "connect_s": s}`` as one JSON line, then waits
until the server has closed every one (or LIMIT_S passed) and prints ``{"closed": n,
"min_s": s, "max_s": s}``: how long each stayed open, counted from its connect.
"""

from __future__ import annotations

import json
import selectors
import socket
import sys
import time

PAYLOAD = {"line": b"GET /v2/health/live HTTP/1.1\r\n", "silent": b""}


def main() -> None:
    host, port, source, count, kind, limit_s = sys.argv[1:7]
    opened: list[tuple[socket.socket, float]] = []
    start = time.monotonic()
    for _ in range(int(count)):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind((source, 0))
        sock.settimeout(30)
        sock.connect((host, int(port)))
        if PAYLOAD[kind]:
            sock.sendall(PAYLOAD[kind])
        opened.append((sock, time.monotonic()))
    now = time.monotonic()  # the machine's monotonic clock: the same in every process
    print(json.dumps({"connected": len(opened), "connect_s": now - start, "at": now}), flush=True)

    selector = selectors.DefaultSelector()
    for i, (sock, _) in enumerate(opened):
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, i)
    held: list[float] = []
    first_closed_at = float("inf")
    deadline = time.monotonic() + float(limit_s)
    while len(held) < len(opened) and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.5):
            sock, connected_at = opened[key.data]
            try:
                data = sock.recv(65536)
            except ConnectionError:
                data = b""
            if not data:  # closed by the server (an answer, if any, read and dropped)
                held.append(time.monotonic() - connected_at)
                first_closed_at = min(first_closed_at, time.monotonic())
                selector.unregister(sock)
                sock.close()
    print(json.dumps({"closed": len(held), "min_s": min(held, default=0.0),
                      "max_s": max(held, default=0.0), "first_closed_at": first_closed_at}),
          flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
