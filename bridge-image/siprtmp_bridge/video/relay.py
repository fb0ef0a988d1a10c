"""The far end's video RTP, passed from the bridge's video port to FFmpeg on loopback, so that
the bridge sees each packet's SSRC and the far end's sender reports.

Keyframe requests (PLI, FIR) must name the far end's video SSRC: phones ignore feedback for any
other source, and most offers carry no ``a=ssrc``. FFmpeg's RTP demuxer keeps the SSRC, and the
sender reports that lip sync needs (sender_clock.py), to itself, and handing the port over after
peeking at the first packet would lose the packets of the first keyframe (queued in the peeking
socket, or arriving before FFmpeg has bound). So the bridge keeps the answered port pair and
forwards: RTP and the far end's RTCP to FFmpeg's loopback pair; FFmpeg's receiver reports and
the bridge's keyframe requests go out from the answered RTCP port (to where the far end's RTCP
comes from, else to its offered RTCP address). The cost is one ``recvfrom``/``sendto`` per
packet in Python (a phone's video is a few hundred packets a second at most) and a second
loopback hop, well under a millisecond."""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading
import time
from collections.abc import Callable

from siprtmp_bridge.rtp.keepalive import RtpPortClaim
from siprtmp_bridge.rtp.source import SourceLatch
from siprtmp_bridge.rtp.srtp import VideoKeys
from siprtmp_bridge.supervision import Supervisor
from siprtmp_bridge.video.sender_clock import RTP_WRAP, CaptureClock, next_clock, sender_report
from siprtmp_bridge.video.sequence import SequenceGaps
from siprtmp_bridge.video.srtp import SrtpChannel
from siprtmp_bridge.video.timeline import RTP_VIDEO_CLOCK

LOOPBACK = "127.0.0.1"
POLL_SECONDS = 0.5  # how often the thread looks at its stop flag while nothing comes
MAX_DATAGRAM = 65535
# FFmpeg's loopback pair: claimed, then released for FFmpeg to bind, as the answered pair was.
INNER_PORT_MIN, INNER_PORT_MAX = 49152, 65534
THREAD_NAME = "video-relay"


def is_rtcp(packet: bytes) -> bool:
    """RTCP (packet types 200-207 where RTP has its marker and payload type, RFC 5761)."""
    return len(packet) >= 8 and packet[0] >> 6 == 2 and 200 <= packet[1] <= 207


def rtp_ssrc(packet: bytes) -> int | None:
    """The SSRC of an RTP packet, or None for anything else (too short, not version 2, or
    RTCP, whose packet types 200-207 fill the marker and payload-type byte, RFC 5761)."""
    if len(packet) < 12 or packet[0] >> 6 != 2 or is_rtcp(packet):
        return None
    ssrc: int = struct.unpack("!I", packet[8:12])[0]
    return ssrc


class VideoRelay:
    """Holds the answered pair (taken over from its claim) from ``start()`` until ``close()``.

    ``on_ssrc`` is called (on the relay's thread) with the far end's SSRC when the first RTP
    packet comes and whenever it changes, ``on_loss`` whenever packets are found lost
    (sequence.py); ``inner_port`` is where FFmpeg receives. With ``keys`` (SRTP video), what
    the far end sends is authenticated and decrypted before it is looked at or forwarded, and
    what goes to the far end is protected: the far end's port and the wire carry no plain RTP
    or RTCP, FFmpeg's loopback only plain.
    """

    def __init__(
        self,
        claim: RtpPortClaim,
        remote_rtcp: tuple[str | None, int],
        on_ssrc: Callable[[int], None],
        on_loss: Callable[[], None],
        supervisor: Supervisor,
        keys: VideoKeys | None = None,
    ) -> None:
        self.srtp: SrtpChannel | None = None
        self.use_srtp(keys)
        self.rtp, self.rtcp = claim.sockets
        claim.sockets = []  # the relay closes them
        self.remote_rtcp = remote_rtcp
        # Media only from the far end (source.py): RTP by its source, RTCP by its host.
        self.latch = SourceLatch(remote_rtcp[0])
        self.on_ssrc = on_ssrc
        self.on_loss = on_loss
        self.ssrc: int | None = None
        self.gaps = SequenceGaps()
        # The far end's capture clock, from its sender reports (sender_clock.py).
        self.capture_clock: CaptureClock | None = None
        # FFmpeg counts a stream's timestamps from its first RTP packet's (or from a sender
        # report's, had one come first: so RTCP waits for that packet): what FFmpeg's pts
        # are relative to, per loopback port.
        self.base_timestamp: int | None = None
        # The relay's own loopback pair: FFmpeg's receiver reports go to where its RTP comes
        # from, port + 1 (``rtcp_to_source``), so RTP is sent from the even port of a pair.
        inner = RtpPortClaim(LOOPBACK, INNER_PORT_MIN, INNER_PORT_MAX)
        self.inner_rtp, self.inner_rtcp = inner.sockets
        inner.sockets = []
        self.inner_port = self._ffmpeg_port()
        self._far_rtcp_source: tuple[str, int] | None = None
        self._stop = threading.Event()
        self._supervisor = supervisor
        self._thread = threading.Thread(
            target=supervisor.supervised(THREAD_NAME, self._run), name=THREAD_NAME, daemon=True
        )

    @staticmethod
    def _ffmpeg_port() -> int:
        claim = RtpPortClaim(LOOPBACK, INNER_PORT_MIN, INNER_PORT_MAX)
        claim.release()  # FFmpeg binds it next, within milliseconds
        return claim.port

    def use_srtp(self, keys: VideoKeys | None) -> None:
        """The keys of the latest offer and answer; the channel (and libsrtp's replay window)
        is kept while they stay the same."""
        current = self.srtp
        if keys is None:
            self.srtp = None
        elif current is None or (current.remote, current.local) != (keys.remote, keys.local):
            self.srtp = SrtpChannel(keys.remote, keys.local)

    def renew_inner_port(self) -> None:
        """A new loopback pair for a new FFmpeg input (a re-INVITE that changes the format:
        the old input stays open until the end, see ``VideoSession``)."""
        self.base_timestamp = None
        self.inner_port = self._ffmpeg_port()

    def capture_time(self, pts: int) -> float | None:
        """When the frame FFmpeg stamped ``pts`` was captured (local monotonic time), once the
        far end's sender reports tell; safe from the receiver's thread."""
        clock, base = self.capture_clock, self.base_timestamp
        if clock is None or base is None:
            return None
        return clock.capture_time((base + pts) % RTP_WRAP, RTP_VIDEO_CLOCK)

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
            self._supervisor.beat(THREAD_NAME)  # at least every POLL_SECONDS
            try:
                ready, _, _ = select.select(sockets, [], [], POLL_SECONDS)
            except (OSError, ValueError):
                return  # closed under us
            for sock in ready:
                with contextlib.suppress(OSError):  # a lost datagram, as on the wire
                    packet, source = sock.recvfrom(MAX_DATAGRAM)
                    self._forward(sock, packet, source)

    def _forward(self, sock: socket.socket, packet: bytes, source: tuple[str, int]) -> None:
        if sock is self.inner_rtcp:  # FFmpeg's receiver report, for the far end
            self.send_rtcp(packet)
        elif is_rtcp(packet):  # the far end's, on its own port or muxed with RTP
            if not self.latch.same_host(source[:2]):
                self.latch.dropped += 1
                return
            srtp = self.srtp
            if srtp is not None:
                plain = srtp.unprotect(packet, rtcp=True)
                if plain is None:
                    return
                packet = plain
            self._far_rtcp_source = source[:2]
            self._note_sender_report(packet)
            if self.base_timestamp is not None:
                self.inner_rtcp.sendto(packet, (LOOPBACK, self.inner_port + 1))
        elif sock is self.rtp:
            if not self.latch.admit(source[:2], time.monotonic()):
                return
            srtp = self.srtp
            if srtp is not None:
                plain = srtp.unprotect(packet, rtcp=False)
                if plain is None:
                    return
                packet = plain
            ssrc = rtp_ssrc(packet)
            if ssrc is not None:
                if ssrc != self.ssrc:
                    # The old source's sender reports say nothing of the new one's clock:
                    # its frames are placed by arrival until its own reports come.
                    self.ssrc, self.capture_clock = ssrc, None
                    self.on_ssrc(ssrc)
                if self.base_timestamp is None:
                    self.base_timestamp = struct.unpack("!I", packet[4:8])[0]
                if self.gaps.packet(ssrc, struct.unpack("!H", packet[2:4])[0]):
                    self.on_loss()
            self.inner_rtp.sendto(packet, (LOOPBACK, self.inner_port))

    def _note_sender_report(self, packet: bytes) -> None:
        report = sender_report(packet)
        if report is not None and report.ssrc == self.ssrc:
            self.capture_clock = next_clock(self.capture_clock, report, time.monotonic())

    def send_rtcp(self, packet: bytes) -> None:
        """To the far end, from the answered RTCP port: a NAT in front of the far end lets in
        only what answers its own flow. Aimed where its RTCP comes from, else at the offered
        address; dropped while neither is known. Safe from any thread, also after ``close()``."""
        host, port = self.remote_rtcp
        target = self._far_rtcp_source or ((host, port) if host is not None else None)
        if target is None:
            return
        srtp = self.srtp
        if srtp is not None:
            packet = srtp.protect_rtcp(packet)
        with contextlib.suppress(OSError):  # closed, or a lost datagram as on the wire
            self.rtcp.sendto(packet, target)
