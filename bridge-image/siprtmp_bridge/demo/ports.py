"""Free loopback ports, for the demo's peers (and the tests' own).

A port the kernel hands out for ``bind(0)`` comes from the ephemeral range, the same range every
outgoing connection on the machine takes its source port from: between choosing it and the peer
binding it, any client (an HTTP poll, a kubelet) may take it. So listening ports are drawn at
random from below the ephemeral range instead, and must be free for TCP and UDP alike (SIP peers
listen on both).
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
#: Above the bridge's default RTP ports (10000-20000), below Linux's default ephemeral range.
LISTENER_PORTS = range(20000, 32768)


def listener_ports(ephemeral: str | None = None) -> range:
    """The ports to draw listeners from: ``LISTENER_PORTS`` cut below the ephemeral range (the
    text of ``ip_local_port_range``, "LOW HIGH")."""
    if ephemeral is None:
        try:
            ephemeral = EPHEMERAL_RANGE.read_text()
        except OSError:
            return LISTENER_PORTS
    low = int(ephemeral.split()[0])
    top = min(LISTENER_PORTS.stop, low)
    return (
        range(LISTENER_PORTS.start, top) if top - LISTENER_PORTS.start >= 1000 else LISTENER_PORTS
    )


def bindable(port: int) -> bool:
    """``port`` on 127.0.0.1 is free for both TCP and UDP right now."""
    for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
        with socket.socket(socket.AF_INET, kind) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def free_port() -> int:
    """A loopback port free for TCP and UDP, outside the ephemeral range."""
    candidates = listener_ports()
    for _ in range(200):
        port = random.choice(candidates)
        if bindable(port):
            return port
    raise RuntimeError(f"no free port in {candidates.start}-{candidates.stop - 1}")
