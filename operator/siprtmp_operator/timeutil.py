"""RFC 3339 timestamps as Kubernetes writes them (UTC, seconds, trailing Z)."""

from __future__ import annotations

from datetime import UTC, datetime


def now_utc() -> datetime:
    """The current time, timezone-aware, truncated to whole seconds like the API server's."""
    return datetime.now(UTC).replace(microsecond=0)


def fmt(ts: datetime) -> str:
    """Format as ``2026-01-02T03:04:05Z``."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse(value: str | None) -> datetime | None:
    """Parse an RFC 3339 timestamp; None for None or garbage (status is user-visible input)."""
    if not value:
        return None
    try:
        ts = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return ts if ts.tzinfo else ts.replace(tzinfo=UTC)
