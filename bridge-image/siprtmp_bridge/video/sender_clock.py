"""When the far end captured each video frame, from its RTCP sender reports (RFC 3550 §6.4.1).

A phone sends a frame's packets only once the frame is encoded, tens to hundreds of
milliseconds after it was captured, while the audio captured at the same moment leaves
within a packet time. Placing video by arrival would show it that much late. A sender report
ties the video's RTP clock to the sender's wall clock (NTP); the report's own arrival ties that
clock to ours. So a frame's capture, in this machine's monotonic time, is its NTP time plus the
smallest (arrival - NTP) seen, which is the network's delay plus the two clocks' difference.
Audio captured then arrived at about that moment (one packet time later, which the
calibrated audio path delay covers), and is where the frame belongs.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

RTCP_SR = 200
# A capture time outside (arrival - this, arrival + tolerance) means the reports do not
# describe this stream (the sender's clock jumped, a report from another source): such a
# frame is placed by its arrival instead.
MAX_SEND_DELAY_SECONDS = 1.0
ARRIVAL_TOLERANCE_SECONDS = 0.05
NTP_FRACTION = 2**32
RTP_WRAP = 2**32


@dataclass(frozen=True)
class SenderReport:
    ssrc: int
    ntp_seconds: float  # the sender's wall clock when it sent the report
    rtp_timestamp: int  # the same instant on the stream's RTP clock


def sender_report(packet: bytes) -> SenderReport | None:
    """The SR heading an RTCP compound packet, or None for anything else (RTP, RR, short)."""
    if len(packet) < 28 or packet[0] >> 6 != 2 or packet[1] != RTCP_SR:
        return None
    ssrc, seconds, fraction, timestamp = struct.unpack("!IIII", packet[4:20])
    return SenderReport(ssrc, seconds + fraction / NTP_FRACTION, timestamp)


@dataclass(frozen=True)
class CaptureClock:
    """The latest report and the smallest offset seen; immutable, so one thread can replace it
    while another reads it."""

    report: SenderReport
    offset: float  # local monotonic seconds minus the sender's NTP seconds

    def capture_time(self, rtp_timestamp: int, clock_rate: int) -> float:
        """Local monotonic time at which the sample with ``rtp_timestamp`` was captured."""
        ticks = (rtp_timestamp - self.report.rtp_timestamp + RTP_WRAP // 2) % RTP_WRAP
        elapsed = (ticks - RTP_WRAP // 2) / clock_rate
        return self.report.ntp_seconds + elapsed + self.offset


def next_clock(clock: CaptureClock | None, report: SenderReport, arrival: float) -> CaptureClock:
    """The clock after ``report`` arrived at local monotonic ``arrival``."""
    offset = arrival - report.ntp_seconds
    if clock is not None and clock.report.ssrc == report.ssrc:
        offset = min(offset, clock.offset)  # the least-delayed report is the truest
    return CaptureClock(report, offset)


def plausible_capture(captured: float | None, arrived: float) -> float | None:
    """``captured`` when a frame that arrived at ``arrived`` can have been captured then."""
    if captured is None:
        return None
    if arrived - MAX_SEND_DELAY_SECONDS <= captured <= arrived + ARRIVAL_TOLERANCE_SECONDS:
        return captured
    return None
