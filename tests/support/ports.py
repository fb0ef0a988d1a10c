"""Free loopback ports for the peers of one test."""

from __future__ import annotations

import socket

from siprtmp_bridge.demo.ports import free_port


def free_udp_pair() -> int:
    """An even port whose successor is free too (RTP + RTCP)."""
    for _ in range(100):
        port = free_port() & ~1
        try:
            with (
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a,
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b,
            ):
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 1))
                return port
        except OSError:
            continue
    raise RuntimeError("no free UDP port pair")


def free_udp_window(size: int) -> int:
    """An even port starting ``size`` consecutive free UDP ports (a bridge's own RTP window)."""
    for _ in range(100):
        base = free_port() & ~1
        sockets = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(size)]
        try:
            for offset, claimed in enumerate(sockets):
                claimed.bind(("127.0.0.1", base + offset))
            return base
        except OSError:
            continue
        finally:
            for claimed in sockets:
                claimed.close()
    raise RuntimeError(f"no {size} free UDP ports in a row")
