"""Where each video frame goes on the stream's timeline, which the audio's sample count defines.

The audio track's clock is its sample count (media/pipeline.py), level with the wall clock. A
video frame is placed where audio arriving at the same moment is placed, so that what the far
end captured together plays together; from there on the frame's RTP timestamps space the frames
(arrival times jitter, RTP timestamps do not). The frame that arrives earliest relative to its
timestamp sets the anchor: it met the least queueing on the way. When the two disagree by more than
``max_drift`` (the far end restarted its timestamps, a long gap, clock drift), the frame is
anchored afresh.
"""

from __future__ import annotations

from dataclasses import dataclass

RTP_VIDEO_CLOCK = 90000


@dataclass
class VideoTimeline:
    max_drift: float = 0.25
    anchor_pts: int | None = None
    anchor_seconds: float = 0.0
    last_ms: int = -1
    offset_seconds: float = 0.0  # RTP-predicted place minus arrival-based place, latest frame
    reanchors: int = 0

    def place(self, pts: int, arrival_seconds: float) -> int:
        """Stream time (ms) of a frame with RTP-clock ``pts`` that arrived at ``arrival_seconds``
        (stream time); strictly increasing, as FLV requires."""
        if self.anchor_pts is None:
            self._anchor(pts, arrival_seconds)
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
        milliseconds = max(round(predicted * 1000), self.last_ms + 1)
        self.last_ms = milliseconds
        return milliseconds

    @property
    def _anchor_pts(self) -> int:
        assert self.anchor_pts is not None
        return self.anchor_pts

    def _anchor(self, pts: int, arrival_seconds: float) -> None:
        self.anchor_pts = pts
        self.anchor_seconds = arrival_seconds
