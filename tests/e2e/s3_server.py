"""moto's S3 server in a process of its own, behind a TCP front that goes down on SIGUSR1
(listening socket closed, every open connection reset) and comes back on SIGUSR2 (same port,
same buckets): an object-store outage the test can switch on and off without losing the data
(moto keeps it in memory) and without serving S3 from the test's own busy interpreter.

    python -m tests.e2e.s3_server PORT      # prints "listening" / "stopped" on each change
"""

from __future__ import annotations

import logging
import signal
import socket
import sys
import threading

from tests.conftest import _linearizable_moto_server


class Front:
    """A TCP relay from ``port`` to moto's own port that can drop everything at once."""

    def __init__(self, port: int, upstream: int) -> None:
        self.port = port
        self.upstream = upstream
        self.listener: socket.socket | None = None
        self.connections: set[socket.socket] = set()
        self.lock = threading.Lock()

    def up(self) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(128)
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def down(self) -> None:
        with self.lock:
            if self.listener is not None:
                try:  # wakes the thread blocked in accept() (close alone does not, on Linux)
                    self.listener.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                self.listener.close()
                self.listener = None
            for conn in self.connections:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                conn.close()
            self.connections.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return  # closed by down()
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream))
            except OSError:
                client.close()
                continue
            with self.lock:
                self.connections.update((client, server))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                target.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, target):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            with self.lock:
                for s in (source, target):
                    if s in self.connections:
                        self.connections.discard(s)
                        s.close()


def main(port: int) -> None:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    moto = _linearizable_moto_server()
    moto.start()
    front = Front(port, moto.get_host_and_port()[1])
    events: list[int] = []
    changed = threading.Event()

    def on_signal(signum: int, _frame: object) -> None:
        events.append(signum)
        changed.set()

    for sig in (signal.SIGUSR1, signal.SIGUSR2, signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    front.up()
    print("listening", flush=True)
    listening = True
    while True:
        changed.wait(0.5)
        changed.clear()
        while events:
            signum = events.pop(0)
            if signum == signal.SIGUSR1 and listening:
                front.down()
                listening = False
                print("stopped", flush=True)
            elif signum == signal.SIGUSR2 and not listening:
                front.up()
                listening = True
                print("listening", flush=True)
            elif signum in (signal.SIGTERM, signal.SIGINT):
                front.down()
                moto.stop()
                return


if __name__ == "__main__":
    main(int(sys.argv[1]))
