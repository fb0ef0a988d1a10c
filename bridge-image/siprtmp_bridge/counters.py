"""Live media counters of one bridge: written by the runner and the pipeline, read by /metrics.

Kept apart from ``metrics`` so that a bridge loads prometheus-client only when it is scraped.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class MediaCounters:
    """Written by the runner (RTP, from pjsua's stream stats) and the pipeline (encoder)."""

    rtp_packets: int = 0
    rtp_lost: int = 0
    rtp_jitter_us: int = 0
    frames_encoded: int = 0
    silence_seconds: float = 0.0
