"""A UDP socket where the callee would be, for failures that must happen before dialling."""

from __future__ import annotations

import socket


class SilentCallee:
    def __init__(self) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.setblocking(False)

    @property
    def uri(self) -> str:
        return f"sip:x@127.0.0.1:{self._sock.getsockname()[1]}"

    def received_nothing(self) -> bool:
        try:
            self._sock.recv(4096)
        except BlockingIOError:
            return True
        return False

    def close(self) -> None:
        self._sock.close()
