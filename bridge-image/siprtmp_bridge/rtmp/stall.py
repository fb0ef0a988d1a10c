"""A bound on how long an RTMP connection may stall, kept by the kernel (TCP_USER_TIMEOUT).

A black-holed server (every packet dropped, nothing refused) leaves TCP retransmitting for about
15 minutes while the stream looks fine. The stall is caught below FFmpeg: with
TCP_USER_TIMEOUT, data left unacknowledged (or unsent behind a zero window) for
``STALL_SECONDS`` makes the kernel drop the connection, and FFmpeg's next or pending write fails
with ETIMEDOUT; the publisher then reconnects within its budget. A watchdog thread could not do
this everywhere: PyAV releases the GIL while it muxes a packet but holds it through
``av_write_trailer`` and the final flush (and the header on open), so a stall there would freeze
every Python thread, watchdog included. The kernel needs no thread and no GIL.

FFmpeg does not show its socket, so it is found among the process's descriptors: the TCP
sockets opened during one connect whose peer is the URL's port.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

#: How long a connection may leave media unacknowledged before it counts as gone.
STALL_SECONDS = 5.0
_FDS = Path("/proc/self/fd")


def socket_inodes() -> set[int]:
    """The inodes of this process's open sockets."""
    found = set()
    for entry in _FDS.iterdir():
        inode = _socket_inode(entry)
        if inode is not None:
            found.add(inode)
    return found


def limit_stalls(peer_port: int, known: set[int], seconds: float = STALL_SECONDS) -> int:
    """Bound stalls on each TCP socket not in ``known`` whose peer is ``peer_port``; how many."""
    limited = 0
    for entry in _FDS.iterdir():
        inode = _socket_inode(entry)
        if inode is None or inode in known:
            continue
        try:
            duplicate = os.dup(int(entry.name))
        except OSError:
            continue  # closed since it was listed
        with socket.socket(fileno=duplicate) as sock:
            # The descriptor may have been closed and reused between listing and dup.
            if (
                os.fstat(sock.fileno()).st_ino != inode
                or sock.family not in (socket.AF_INET, socket.AF_INET6)
                or sock.type != socket.SOCK_STREAM
            ):
                continue
            try:
                if sock.getpeername()[1] != peer_port:
                    continue
            except OSError:
                continue  # not connected
            set_stall_limit(sock, seconds)
            limited += 1
    return limited


def set_stall_limit(sock: socket.socket, seconds: float = STALL_SECONDS) -> None:
    """TCP_USER_TIMEOUT on ``sock`` (a duplicate descriptor sets it on the shared socket)."""
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT, int(seconds * 1000))


def _socket_inode(entry: Path) -> int | None:
    try:
        target = os.readlink(entry)
    except OSError:
        return None
    if not target.startswith("socket:["):
        return None
    return int(target[len("socket:[") : -1])
