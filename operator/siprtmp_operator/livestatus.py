"""Reading a bridge's live ``/status`` document over HTTP from its pod address."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

from .status import PodObservation


def status_url(obs: PodObservation, scheme: str, default_port: int) -> str | None:
    """``http://POD_IP:PORT/status`` using the pod's declared status port; None without an IP."""
    if not obs.pod_ip:
        return None
    host = f"[{obs.pod_ip}]" if ":" in obs.pod_ip else obs.pod_ip
    return f"{scheme}://{host}:{obs.status_port or default_port}/status"


def fetch(url: str, timeout: float) -> dict[str, Any] | None:
    """The document, or None when the bridge is not (yet) answering or answers garbage."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            doc = json.loads(resp.read(65536))
    except (OSError, urllib.error.URLError, ValueError):
        return None
    return doc if isinstance(doc, dict) else None
