"""Requests per client address, as token buckets (pure: the clock is passed in).

Each address may make ``burst`` requests at once and then ``per_minute`` a minute. Refusals are
answered before the token is checked, so guessing tokens is limited too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Addresses remembered at most; the fullest buckets (idle the longest) are forgotten first.
MAX_CLIENTS = 10_000


@dataclass
class RateLimiter:
    per_minute: int
    burst: int
    #: address → (tokens left, when they were counted)
    buckets: dict[str, tuple[float, float]] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    def take(self, client: str, now: float) -> float:
        """Take one request's token: 0.0 if allowed, else the seconds until one is free."""
        if not self.enabled:
            return 0.0
        rate = self.per_minute / 60.0
        tokens, then = self.buckets.get(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * rate)
        if tokens < 1.0:
            self.buckets[client] = (tokens, now)
            return (1.0 - tokens) / rate
        self.buckets[client] = (tokens - 1.0, now)
        if len(self.buckets) > MAX_CLIENTS:
            self._forget_idle(now, rate)
        return 0.0

    def _forget_idle(self, now: float, rate: float) -> None:
        """Drop the buckets that have refilled (forgetting them changes no answer); if as many
        addresses are still active, the tenth seen longest ago too, so that this scan runs at
        most once every MAX_CLIENTS / 10 new addresses."""
        for client, (tokens, then) in list(self.buckets.items()):
            if tokens + (now - then) * rate >= self.burst:
                del self.buckets[client]
        if len(self.buckets) > MAX_CLIENTS * 0.9:
            by_age = sorted(self.buckets, key=lambda client: self.buckets[client][1])
            for client in by_age[: len(self.buckets) - int(MAX_CLIENTS * 0.9)]:
                del self.buckets[client]
