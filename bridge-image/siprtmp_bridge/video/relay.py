"""The far end's video RTP, passed from the bridge's video port to FFmpeg on loopback, so that
the bridge sees each packet's SSRC.

Keyframe requests (PLI, FIR) must name the far end's video SSRC: phones ignore feedback for any
other source, and most offers carry no ``a=ssrc``. FFmpeg's RTP demuxer keeps the SSRC to
itself, and handing the port over after peeking at the first packet would lose the packets
of the first keyframe (queued in the peeking socket, or arriving before FFmpeg has bound).
So the bridge keeps the answered port pair and forwards: RTP and the far end's RTCP to
FFmpeg's loopback pair, FFmpeg's receiver reports back out from the answered RTCP port (to
where the far end's RTCP comes from, else to its offered RTCP address). The cost is one
``recvfrom``/``sendto`` per packet in Python (a phone's video is a few hundred packets a
second at most) and a second loopback hop, well under a millisecond.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
from collections.abc import Callable

from siprtmp_bridge.media.keepalive import RtpPortClaim

LOOPBACK = "127.0.0.1"
POLL_SECONDS = 0.5  # how often the thread looks at its stop flag while nothing comes
MAX_DATAGRAM = 65535
# FFmpeg's loopback pair: claimed, then released for FFmpeg to bind, as the answered pair was.
INNER_PORT_MIN, INNER_PORT_MAX = 49152, 65534


def rtp_ssrc(packet: bytes) -> int | None:
    """The SSRC of an RTP packet, or None for anything else (too short, not version 2, or
    RTCP, whose packet types 200-207 fill the marker and payload-type byte, RFC 5761)."""
    if len(packet) < 12 or packet[0] >> 6 != 2 or 200 <= packet[1] <= 207:
        return None
    ssrc: int = struct.unpack("!I", packet[8:12])[0]
    return ssrc


class VideoRelay:
    """Holds the answered pair (taken over from its claim) from ``start()`` until ``close()``.

    ``on_ssrc`` is called (on the relay's thread) with the far end's SSRC when the first RTP
    packet comes and whenever it changes; ``inner_port`` is where FFmpeg receives.
    """

    def __init__(
        self,
        claim: RtpPortClaim,
        remote_rtcp: tuple[str | None, int],
        on_ssrc: Callable[[int], None],
    ) -> None:
        self.rtp, self.rtcp = claim.sockets
        claim.sockets = []  # the relay closes them
        self.remote_rtcp = remote_rtcp
        self.on_ssrc = on_ssrc
        self.ssrc: int | None = None
        # The relay's own loopback pair: FFmpeg's receiver reports go to where its RTP comes
        # from, port + 1 (``rtcp_to_source``), so RTP is sent from the even port of a pair.
        inner = RtpPortClaim(LOOPBACK, INNER_PORT_MIN, INNER_PORT_MAX)
        self.inner_rtp, self.inner_rtcp = inner.sockets
        inner.sockets = []
        self.inner_port = self._ffmpeg_port()
        self._far_rtcp_source: tuple[str, int] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="video-relay", daemon=True)

    @staticmethod
    def _ffmpeg_port() -> int:
        claim = RtpPortClaim(LOOPBACK, INNER_PORT_MIN, INNER_PORT_MAX)
        claim.release()  # FFmpeg binds it next, within milliseconds
        return claim.port

    def renew_inner_port(self) -> int:
        """A new loopback pair for a new FFmpeg input (a re-INVITE that changes the format:
        the old input stays open until the end, see ``VideoSession``)."""
        self.inner_port = self._ffmpeg_port()
        return self.inner_port

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(2.0)
        for sock in (self.rtp, self.rtcp, self.inner_rtp, self.inner_rtcp):
            sock.close()

    def _run(self) -> None:
        sockets = [self.rtp, self.rtcp, self.inner_rtcp]
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select(sockets, [], [], POLL_SECONDS)
            except (OSError, ValueError):
                return  # closed under us
            for sock in ready:
                with contextlib.suppress(OSError):  # a lost datagram, as on the wire
                    packet, source = sock.recvfrom(MAX_DATAGRAM)
                    self._forward(sock, packet, source)

    def _forward(self, sock: socket.socket, packet: bytes, source: tuple[str, int]) -> None:
        if sock is self.rtp:
            ssrc = rtp_ssrc(packet)
            if ssrc is not None and ssrc != self.ssrc:
                self.ssrc = ssrc
                self.on_ssrc(ssrc)
            self.inner_rtp.sendto(packet, (LOOPBACK, self.inner_port))
        elif sock is self.rtcp:
            self._far_rtcp_source = source[:2]
            self.inner_rtcp.sendto(packet, (LOOPBACK, self.inner_port + 1))
        else:  # FFmpeg's receiver report, for the far end
            host, port = self.remote_rtcp
            target = self._far_rtcp_source or ((host, port) if host is not None else None)
            if target is not None:
                self.rtcp.sendto(packet, target)
