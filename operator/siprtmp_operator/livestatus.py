"""Talking to a bridge over HTTP at its pod address: its live ``/status``, and DTMF to send."""

from __future__ import annotations

import http.client
import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from .status import PodObservation


def bridge_url(obs: PodObservation, scheme: str, default_port: int, path: str) -> str | None:
    """``http://POD_IP:PORT/path`` using the pod's declared status port; None without an IP."""
    if not obs.pod_ip:
        return None
    host = f"[{obs.pod_ip}]" if ":" in obs.pod_ip else obs.pod_ip
    return f"{scheme}://{host}:{obs.status_port or default_port}{path}"


def status_url(obs: PodObservation, scheme: str, default_port: int) -> str | None:
    return bridge_url(obs, scheme, default_port, "/status")


def fetch(url: str, timeout: float) -> dict[str, Any] | None:
    """The document, or None when the bridge is not (yet) answering or answers garbage.

    One GET on a fresh connection with ``http.client``: every bridge is read every few seconds,
    and urllib's opener (built per call, proxies looked up in the environment each time) cost
    more than the read itself; a pod address is never reached through a proxy either.
    """
    parts = urllib.parse.urlsplit(url)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = kind(parts.hostname or "", parts.port, timeout=timeout)
    try:
        conn.request("GET", parts.path or "/")
        resp = conn.getresponse()
        if resp.status != 200:
            return None
        doc = json.loads(resp.read(65536))
    except (OSError, http.client.HTTPException, ValueError):
        return None
    finally:
        conn.close()
    return doc if isinstance(doc, dict) else None


def post(
    url: str, body: dict[str, Any], timeout: float, token: str | None = None
) -> tuple[int, dict[str, Any]] | None:
    """POST a JSON body (with the pod's bearer ``token``, if it has one); the bridge's status
    code and JSON answer, None when it cannot be reached.

    A 4xx answer is an answer (the bridge refused, and says why), not a failure to reach it.
    """
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            code, raw = resp.status, resp.read(65536)
    except urllib.error.HTTPError as error:
        code, raw = error.code, error.read(65536)
    except OSError:  # URLError, refused, timed out
        return None
    try:
        doc = json.loads(raw)
    except ValueError:
        doc = {}
    return int(code), doc if isinstance(doc, dict) else {}
