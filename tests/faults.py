"""Fault injection with real sockets: a TCP proxy whose link to a backend can be cut."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator


class SwitchableProxy:
    """Forwards loopback connections to ``target`` while up; refuses them while down.

    "Down" closes each new connection at once and drops the live ones, as a network partition
    or a restarting service would look to a gRPC client.
    """

    def __init__(self, target_host: str, target_port: int) -> None:
        self._target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._up = threading.Event()
        self._live: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def up(self) -> None:
        self._up.set()

    def down(self) -> None:
        self._up.clear()
        with self._lock:
            for connection in self._live:
                with contextlib.suppress(OSError):
                    connection.close()
            self._live.clear()

    def close(self) -> None:
        self._closed = True
        self.down()
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if not self._up.is_set():
                client.close()
                continue
            try:
                backend = socket.create_connection(self._target, timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._live.update((client, backend))
            for source, sink in ((client, backend), (backend, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        with contextlib.suppress(OSError):
            while chunk := source.recv(65536):
                sink.sendall(chunk)
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.close()


@contextlib.contextmanager
def switchable_proxy(address: str) -> Iterator[SwitchableProxy]:
    host, port = address.rsplit(":", 1)
    proxy = SwitchableProxy(host, int(port))
    try:
        yield proxy
    finally:
        proxy.close()
