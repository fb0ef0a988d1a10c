"""A TCP proxy on loopback that can turn into a black hole, as a partitioned API server does.

``stall()``: every connection open now, and every one accepted until ``resume()``, stops
forwarding for good: its bytes are read and dropped, nothing is answered, nothing is closed (no
RST, no FIN), so a client waits until its own timeout. Connections accepted after ``resume()``
work again, as new connections do once a partition heals while the old ones are still dead.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

LOOPBACK = "127.0.0.1"


class _Pair:
    def __init__(self, client: socket.socket, server: socket.socket) -> None:
        self.sockets = (client, server)
        self.dead = False


class StallingProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.listener = socket.create_server((LOOPBACK, 0))
        self.port: int = self.listener.getsockname()[1]
        self.stalled = False
        self._pairs: list[_Pair] = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def stall(self) -> None:
        with self._lock:
            self.stalled = True
            for pair in self._pairs:
                pair.dead = True

    def resume(self) -> None:
        with self._lock:
            self.stalled = False

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            pair = _Pair(client, server)
            with self._lock:
                pair.dead = self.stalled
                self._pairs.append(pair)
            for src, dst in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(pair, src, dst), daemon=True).start()

    def _pump(self, pair: _Pair, src: socket.socket, dst: socket.socket) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                return
            if not data:
                if not pair.dead:
                    with contextlib.suppress(OSError):
                        dst.shutdown(socket.SHUT_WR)
                return
            if pair.dead:
                continue  # swallowed: the far side never hears of it
            try:
                dst.sendall(data)
            except OSError:
                return

    def close(self) -> None:
        self._closed = True
        self.listener.close()
        with self._lock:
            for pair in self._pairs:
                for sock in pair.sockets:
                    with contextlib.suppress(OSError):
                        sock.close()


@contextlib.contextmanager
def stalling_proxy(target_host: str, target_port: int) -> Iterator[StallingProxy]:
    proxy = StallingProxy(target_host, target_port)
    try:
        yield proxy
    finally:
        proxy.close()
