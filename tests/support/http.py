"""Plain HTTP for the tests' probes of the bridge's and the operator's endpoints."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any


def http_get(url: str, timeout: float = 5) -> tuple[int, str]:
    """(status, body); an error status is returned like any other, 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return 0, ""  # not listening (yet), or no answer in time


def post_dtmf(port: int, body: object) -> tuple[int, dict[str, Any]]:
    """``POST /dtmf`` to a bridge's status port: (status, the JSON answer)."""
    return post_json(port, "/dtmf", body)


def post_json(port: int, path: str, body: object) -> tuple[int, dict[str, Any]]:
    """``POST path`` to a bridge's status port: (status, the JSON answer)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())
