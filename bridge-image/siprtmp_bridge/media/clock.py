"""The stream clock: how much silence keeps the published timeline level with the wall clock.

Call audio reaches the encoder in bursts (pjmedia's WAV writer buffers about 40-120 ms) and not
at all before the call is answered, while the call is held with nothing sent, or after pjsua
stops feeding. RTMP players and CDNs treat a stalled timeline as a dead stream, so whenever the
audio lags the wall clock by more than ``max_lag_seconds`` the gap is filled with silence.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field


def silence_needed(
    samples_emitted: int, elapsed_seconds: float, sample_rate: int, max_lag_seconds: float
) -> int:
    """Samples of silence to emit now so that the timeline is no further behind than allowed.

    Returns 0 while the lag is within bounds, so bursty but live audio is never padded. When
    padding, it catches up to the wall clock entirely, leaving the whole tolerance for the next
    burst.
    """
    due = int(elapsed_seconds * sample_rate)
    lag = due - samples_emitted
    if lag <= int(max_lag_seconds * sample_rate):
        return 0
    return lag


@dataclass
class StreamPosition:
    """Maps a wall-clock moment to the stream time of the audio being produced at that moment.

    The encoder's sample count after each burst is a lower bound on where production is: the
    recorder still holds what it has not flushed yet (0-125 ms, depending on when the burst was
    read). Taking only the latest burst makes the estimate wobble by that much, and the video
    track, which keeps the earliest placement it sees, ended up locked to the worst case. The
    tightest bound within a recent window is steady to a few milliseconds; the window lets the
    estimate follow when the audio clock really moves (silence filled in, the call held).
    """

    window_seconds: float = 4.0
    _marks: deque[tuple[float, float]] = field(default_factory=deque, init=False)
    # Stream seconds minus monotonic seconds, the tightest bound.
    _lead: float | None = field(default=None, init=False)

    def mark(self, moment: float, stream_seconds: float) -> None:
        """After a burst: ``stream_seconds`` of audio had been produced by ``moment``."""
        self._marks.append((moment, stream_seconds - moment))
        while self._marks[0][0] < moment - self.window_seconds:
            self._marks.popleft()
        self._lead = max(lead for _, lead in self._marks)  # one float store: read lock-free

    def at(self, moment: float) -> float | None:
        """Stream time at ``moment``, or None before the first burst."""
        lead = self._lead
        return None if lead is None else moment + lead
