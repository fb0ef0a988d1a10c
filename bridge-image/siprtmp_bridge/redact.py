"""Keep secrets out of logs, status and metrics: stream keys and URL credentials."""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

MASK = "***"


def redact_url(url: str, stream_key: str | None = None) -> str:
    """Mask the userinfo, the query string and the stream key of an RTMP URL.

    The stream key is the publishing credential at most CDNs, so the last path segment is masked
    whenever it is the stream name (or whenever no stream name is known).
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return MASK
    netloc = f"[{host}]" if ":" in host else host
    if port is not None:
        netloc = f"{netloc}:{port}"
    if parts.username or parts.password:
        netloc = f"{MASK}@{netloc}"
    path = parts.path
    if stream_key and path.endswith("/" + stream_key):
        path = path[: -len(stream_key)] + MASK
    query = MASK if parts.query else ""
    return urlunsplit((parts.scheme, netloc, path, query, ""))


def redacted_publish_url(rtmp_url: str, rtmp_stream: str) -> str:
    """``rtmpUrl/rtmpStream`` as status and logs show it: the stream key masked."""
    return redact_url(f"{rtmp_url.rstrip('/')}/{rtmp_stream}", stream_key=rtmp_stream)


def scrub(text: str, secrets: tuple[str | None, ...]) -> str:
    """Replace every occurrence of each non-empty secret in free text (log lines, reasons)."""
    for secret in secrets:
        if secret and len(secret) >= 3:
            text = text.replace(secret, MASK)
    return text
