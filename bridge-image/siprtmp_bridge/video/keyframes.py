"""Asking the far end for a keyframe: at the start, until one comes, and after loss.

A decoder can only start at an IDR picture, and phones send one every few seconds at best (some
only on request), so without a request the stream's video would start late and stay broken
after a lost packet until the next IDR. Two ways are used, since far ends understand one or the
other: RTCP feedback (PLI, RFC 4585, and FIR, RFC 5104) from the answered RTCP port, and a
SIP INFO with ``picture_fast_update`` (RFC 5168), sent by the SIP side.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass

RTCP_PSFB = 206
FMT_PLI = 1
FMT_FIR = 4

PICTURE_FAST_UPDATE_TYPE = "application/media_control+xml"
PICTURE_FAST_UPDATE = (
    '<?xml version="1.0" encoding="utf-8" ?>\r\n'
    "<media_control><vc_primitive><to_encoder><picture_fast_update/>"
    "</to_encoder></vc_primitive></media_control>\r\n"
)


def empty_receiver_report(sender_ssrc: int) -> bytes:
    """An RR with no report blocks: RTCP compound packets must start with SR or RR."""
    return struct.pack("!BBHI", 0x80, 201, 1, sender_ssrc)


def pli_packet(sender_ssrc: int, media_ssrc: int) -> bytes:
    """RTCP Picture Loss Indication: a 12-byte payload-specific feedback message."""
    return struct.pack("!BBHII", 0x80 | FMT_PLI, RTCP_PSFB, 2, sender_ssrc, media_ssrc)


def fir_packet(sender_ssrc: int, media_ssrc: int, sequence: int) -> bytes:
    """RTCP Full Intra Request; the media source field is zero, the target is in the FCI."""
    return struct.pack(
        "!BBHIIIB3x", 0x80 | FMT_FIR, RTCP_PSFB, 4, sender_ssrc, 0, media_ssrc, sequence & 0xFF
    )


#: How long before ``max_interval_seconds`` runs out a cadence request goes: the far end's
#: encoder needs a frame or two, the network a round trip (at most half the interval).
CADENCE_LEAD_SECONDS = 1.0


@dataclass
class KeyframePolicy:
    """When to ask: decided from what the receiver saw, so it is tested without a network.

    ``retry_seconds`` spaces requests while no keyframe has come (at the start or after loss,
    or as ``max_interval_seconds`` since the last one runs out: the cadence CDNs ask for);
    ``give_up_after`` bounds how many go unanswered in a row (a far end that never answers
    is not flooded). An interval that runs past ``max_interval_seconds`` although a request
    went out in it counts in ``ignored``: the far end does not honour requests.
    """

    retry_seconds: float = 1.0
    give_up_after: int = 10
    max_interval_seconds: float | None = None
    waiting: bool = True  # no keyframe since the start or the latest loss
    last_request_at: float | None = None
    last_keyframe_at: float | None = None
    unanswered: int = 0
    requests: int = 0
    #: Cadence requests sent since the last keyframe; intervals that ran past the limit anyway.
    cadence_requests: int = 0
    ignored: int = 0
    _overran: bool = False  # this interval has been counted in ``ignored``

    def keyframe_received(self, now: float) -> None:
        self.waiting = False
        self.unanswered = 0
        self.last_keyframe_at = now
        self.cadence_requests = 0
        self._overran = False

    def loss_detected(self) -> None:
        self.waiting = True

    def due(self, now: float) -> bool:
        """Whether to send a request now (counted as sent)."""
        self._note_overrun(now)
        if not (self.waiting or self._cadence_due(now)) or self.unanswered >= self.give_up_after:
            return False
        if self.last_request_at is not None and now - self.last_request_at < self.retry_seconds:
            return False
        if not self.waiting:
            self.cadence_requests += 1
        self.last_request_at = now
        self.unanswered += 1
        self.requests += 1
        return True

    def _cadence_due(self, now: float) -> bool:
        limit, last = self.max_interval_seconds, self.last_keyframe_at
        if limit is None or last is None:
            return False
        return now - last >= limit - min(CADENCE_LEAD_SECONDS, limit / 2)

    def _note_overrun(self, now: float) -> None:
        limit, last = self.max_interval_seconds, self.last_keyframe_at
        if limit is None or last is None or self._overran or not self.cadence_requests:
            return
        if now - last > limit:
            self._overran = True
            self.ignored += 1


class RtcpFeedbackSender:
    """Sends PLI and FIR to the far end through ``send`` (the relay's answered RTCP port).

    Both must name the far end's video SSRC (phones ignore feedback for another source), which
    is known from the offer's ``a=ssrc`` or else from its first RTP packet (``relay.py``). A
    request made before either is held and sent the moment the SSRC is learned, so the first
    one, made as the call comes up and before any video, is not wasted on the wrong source.
    """

    def __init__(self, send: Callable[[bytes], None], sender_ssrc: int) -> None:
        self.send = send
        self.sender_ssrc = sender_ssrc
        self.media_ssrc: int | None = None
        self._pending = False
        self._lock = threading.Lock()  # requests come from pjsua's thread, the SSRC from RTP's
        self._sequence = 0

    def learned_ssrc(self, ssrc: int) -> None:
        with self._lock:
            self.media_ssrc = ssrc
            pending, self._pending = self._pending, False
        if pending:
            self._send(ssrc)

    def request_keyframe(self) -> None:
        with self._lock:
            ssrc = self.media_ssrc
            self._pending = ssrc is None
        if ssrc is not None:
            self._send(ssrc)

    def _send(self, media_ssrc: int) -> None:
        with self._lock:
            self._sequence += 1
            sequence = self._sequence
        self.send(
            empty_receiver_report(self.sender_ssrc)
            + pli_packet(self.sender_ssrc, media_ssrc)
            + fir_packet(self.sender_ssrc, media_ssrc, sequence)
        )
