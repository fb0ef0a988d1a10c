"""Where each video frame goes on the stream's timeline, which the audio's sample count defines.

The audio track's clock is its sample count (media/pipeline.py), level with the wall clock. A
video frame is placed where audio arriving at the same moment is placed, so that what the far
end captured together plays together; from there on the frame's RTP timestamps space the frames
(arrival times jitter, RTP timestamps do not). The frame that arrives earliest relative to its
timestamp sets the anchor: it met the least queueing on the way. When the two disagree by more than
``max_drift`` (a long gap, clock drift), the frame is anchored afresh at its arrival. When the
timestamps jump from one frame to the next (a new SSRC: an SBC's failover, an MCU switching
speakers; a restarted sender), the new numbering says nothing of the old, but the path is the
same: the new frames are placed as far before their arrival as the latest frames were (the
median over ``LATENESS_FRAMES``: the frame just before a loss is handed on late, so the latest
alone would mislead; a long mean would lag arrivals that drift), so that the A/V offset carries
across the jump.

Audio captured with a frame reaches the stream later than the frame's earliest possible arrival
by more than a fixed path delay: pjsua's jitter buffer plays each packet out at one steady
delay after capture, the network's mean delay plus what the buffer holds on top of it. So a
frame is placed ``delay_seconds`` after its anchored place: the audio path's fixed part, the
jitter buffer's current wait (pjsua's statistics), and how much later than the least-delayed
frame the frames arrive on average (``ArrivalSpread``; the same network carries the audio).
"""

from __future__ import annotations

import math
import statistics
from collections import deque
from dataclasses import dataclass, field

RTP_VIDEO_CLOCK = 90000
#: Frames whose lateness places the first frame after a jump: a third of a second at 25 fps.
LATENESS_FRAMES = 9


@dataclass
class VideoTimeline:
    max_drift: float = 0.25
    anchor_pts: int | None = None
    anchor_seconds: float = 0.0
    last_ms: int = -1
    offset_seconds: float = 0.0  # RTP-predicted place minus arrival-based place, latest frame
    reanchors: int = 0
    #: Arrival minus RTP-predicted place of the latest frames.
    lateness: deque[float] = field(default_factory=lambda: deque(maxlen=LATENESS_FRAMES))
    last_pts: int | None = None
    last_arrival: float = 0.0

    def place(self, pts: int, arrival_seconds: float, delay_seconds: float = 0.0) -> int:
        """Stream time (ms) of a frame with RTP-clock ``pts`` that arrived at ``arrival_seconds``
        (stream time), shown ``delay_seconds`` later; strictly increasing, as FLV requires. The
        anchor is found without the delay, so that a delay that grows is followed."""
        if self.anchor_pts is None:
            self._anchor(pts, arrival_seconds)
        elif self._renumbered(pts, arrival_seconds):
            self.reanchors += 1
            self._anchor(pts, arrival_seconds - statistics.median(self.lateness or [0.0]))
        self.last_pts, self.last_arrival = pts, arrival_seconds
        elapsed = (pts - self._anchor_pts) / RTP_VIDEO_CLOCK
        implied_anchor = arrival_seconds - elapsed
        if abs(implied_anchor - self.anchor_seconds) > self.max_drift:
            self.reanchors += 1
            self._anchor(pts, arrival_seconds)
            elapsed = 0.0
        elif implied_anchor < self.anchor_seconds:
            self.anchor_seconds = implied_anchor
        predicted = self.anchor_seconds + elapsed
        self.offset_seconds = predicted - arrival_seconds
        self.lateness.append(-self.offset_seconds)
        milliseconds = max(round((predicted + delay_seconds) * 1000), self.last_ms + 1)
        self.last_ms = milliseconds
        return milliseconds

    def _renumbered(self, pts: int, arrival_seconds: float) -> bool:
        """Whether the timestamps stepped from the latest frame's by more than ``max_drift``
        beyond what the arrivals stepped: a jump in the numbering, not drift."""
        if self.last_pts is None:
            return False
        stepped = (pts - self.last_pts) / RTP_VIDEO_CLOCK
        return abs(stepped - (arrival_seconds - self.last_arrival)) > self.max_drift

    @property
    def _anchor_pts(self) -> int:
        assert self.anchor_pts is not None
        return self.anchor_pts

    def _anchor(self, pts: int, arrival_seconds: float) -> None:
        self.anchor_pts = pts
        self.anchor_seconds = arrival_seconds


@dataclass
class ArrivalSpread:
    """How much later than the least-delayed frame the frames arrive, on average (seconds).

    A frame's transit is its arrival minus its RTP time: the network's delay plus constants
    (the clocks' difference, the sender's encoding time), so the mean transit minus the least
    is the network's mean queueing, which the audio's jitter buffer waits out as well. The mean
    is smoothed over about ``1 / weight`` frames; a transit further than ``max_drift`` from it
    (the far end's timestamps jumped) starts the estimate afresh, as the timeline re-anchors.
    """

    weight: float = 0.02
    max_drift: float = 0.25
    least: float | None = None
    mean: float = 0.0

    def add(self, pts: int, arrived: float) -> float:
        """The spread after a frame with RTP-clock ``pts`` arrived at ``arrived`` seconds."""
        transit = arrived - pts / RTP_VIDEO_CLOCK
        if self.least is None or abs(transit - self.mean) > self.max_drift:
            self.least = self.mean = transit
        self.least = min(self.least, transit)
        self.mean += self.weight * (transit - self.mean)
        return self.mean - self.least


@dataclass
class SmoothedLevel:
    """The mean of a level sampled at uneven moments, over about the latest ``seconds``.

    The audio jitter buffer's fill, read on each round of the call's loop, jumps by a packet
    at a time; its mean over a few seconds is how long audio waits in it now.
    """

    seconds: float = 3.0
    value: float | None = None
    at: float = 0.0

    def add(self, now: float, level: float) -> float:
        if self.value is None:
            self.value = level
        else:
            weight = 1.0 - math.exp(-max(0.0, now - self.at) / self.seconds)
            self.value += weight * (level - self.value)
        self.at = now
        return self.value
