"""NAT keep-alive for a receive-only media path (RFC 6263).

A recvonly bridge sends no RTP, so a NAT or firewall in front of it forgets the media binding and
the far end's audio stops reaching it after a minute or so. pjsua's own stream keep-alive is
compiled out of the pjsua2 wheel, so the bridge sends the keep-alive itself: a bare RTP header
with an unassigned payload type (receivers drop it), from the RTP port pjsua uses.

pjsua's RTP socket is opened with SO_REUSEADDR (see ``account_config``), so a second socket can
bind the same address. That socket is ``connect()``-ed to the far end's host on the discard
port: a connected UDP socket only receives from its peer, so every incoming RTP packet still goes
to pjsua, and the kernel picks the same source address as for the far end's RTP port.

SO_REUSEADDR would also let another bridge's pjsua share the port, so the pair is first claimed
exclusively (``RtpPortClaim``) and only then handed to pjsua.
"""

from __future__ import annotations

import socket
import struct

# An unassigned static payload type (RFC 3551): never decoded as media by the far end.
KEEPALIVE_PAYLOAD_TYPE = 20
DISCARD_PORT = 9


def keepalive_packet(sequence: int, ssrc: int) -> bytes:
    """A 12-byte RTP header, no payload: the smallest packet that refreshes a NAT binding."""
    return struct.pack("!BBHII", 0x80, KEEPALIVE_PAYLOAD_TYPE, sequence & 0xFFFF, 0, ssrc)


def split_address(address: str) -> tuple[str, int]:
    """pjsua's "host:port" (IPv6 as "[addr]:port") → a socket address."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


class RtpPortClaim:
    """An RTP/RTCP port pair that no other socket holds, held until pjsua has bound it.

    A bind without SO_REUSEADDR fails while any socket holds the port, so two bridges (or any
    other program) never end up sharing a pair. Once bound, the claim turns SO_REUSEADDR on,
    which lets pjsua's own sockets (which set it too) bind the same pair; then it is released.
    """

    def __init__(self, bind_host: str, low: int, high: int) -> None:
        self.sockets: list[socket.socket] = []
        for port in range(low + low % 2, high, 2):
            try:
                self.sockets = [
                    _bind_exclusive(bind_host, port),
                    _bind_exclusive(bind_host, port + 1),
                ]
            except OSError:
                self.release()
                continue
            for claimed in self.sockets:
                claimed.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.port = port
            return
        raise OSError(f"no free RTP port pair between {low} and {high} on {bind_host}")

    def release(self) -> None:
        for claimed in self.sockets:
            claimed.close()
        self.sockets = []


def _bind_exclusive(host: str, port: int) -> socket.socket:
    claimed = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        claimed.bind((host, port))
    except OSError:
        claimed.close()
        raise
    return claimed


class RtpKeepAlive:
    """Sends a keep-alive from ``bind_host:port`` to ``remote`` every ``interval`` seconds."""

    def __init__(self, bind_host: str, port: int, remote: str, interval: float, ssrc: int) -> None:
        self.remote = split_address(remote)
        self.interval = interval
        self.ssrc = ssrc
        self.sent = 0
        self._next_at = 0.0
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((bind_host, port))
        self._socket.connect((self.remote[0], DISCARD_PORT))

    def tick(self, now: float) -> None:
        if now < self._next_at:
            return
        self._next_at = now + self.interval
        try:
            self._socket.sendto(keepalive_packet(self.sent, self.ssrc), self.remote)
            self.sent += 1
        except OSError:
            pass  # a transient network error: the next tick tries again

    def close(self) -> None:
        self._socket.close()
