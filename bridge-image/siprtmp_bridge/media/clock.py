"""The stream clock: how much silence keeps the published timeline level with the wall clock.

Call audio reaches the encoder in bursts (pjmedia's WAV writer buffers about 40-120 ms) and not
at all before the call is answered, while the call is held with nothing sent, or after pjsua
stops feeding. RTMP players and CDNs treat a stalled timeline as a dead stream, so whenever the
audio lags the wall clock by more than ``max_lag_seconds`` the gap is filled with silence.
"""

from __future__ import annotations


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
