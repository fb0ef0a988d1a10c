"""Bounded exponential backoff for RTMP reconnects (pure)."""

from __future__ import annotations


def backoff_delay(attempt: int, initial: float = 0.25, maximum: float = 4.0) -> float:
    """Delay before reconnect ``attempt`` (1-based): 0.25 s doubling up to ``maximum``.

    Short at first because a restarted RTMP server is usually back within a second, and bounded
    so that a long outage is retried often enough to resume promptly.
    """
    return float(min(maximum, initial * 2 ** max(0, attempt - 1)))
