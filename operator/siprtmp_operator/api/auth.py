"""Bearer-token check and CORS headers (pure)."""

from __future__ import annotations

import hmac
from collections.abc import Iterable

CORS_METHODS = "GET, POST, OPTIONS"
CORS_HEADERS = "Authorization, Content-Type"


def authorized(header: str | None, token: str) -> bool:
    """``Authorization: Bearer <token>``, compared in constant time."""
    if not token or not header:
        return False
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer":
        return False
    # Header bytes that are not UTF-8 reach here as surrogates: compared, never re-encoded.
    return hmac.compare_digest(given.strip().encode("utf-8", "surrogateescape"), token.encode())


def cors_headers(origin: str | None, allowed: Iterable[str]) -> dict[str, str]:
    """Headers letting ``origin`` call the API from a page it serves; none for other origins.

    Nothing is allowed by default: the console is served from the API's own origin and needs no
    CORS. ``*`` allows any origin (the token still guards every call).
    """
    allowed = tuple(allowed)
    if not origin or not (origin in allowed or "*" in allowed):
        return {}
    return {
        "Access-Control-Allow-Origin": origin,
        "Access-Control-Allow-Methods": CORS_METHODS,
        "Access-Control-Allow-Headers": CORS_HEADERS,
        "Access-Control-Max-Age": "600",
        "Vary": "Origin",
    }
