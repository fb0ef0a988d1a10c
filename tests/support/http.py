"""Plain HTTP GETs for the tests' probes of the bridge's and the operator's endpoints."""

from __future__ import annotations

import urllib.error
import urllib.request


def http_get(url: str, timeout: float = 5) -> tuple[int, str]:
    """(status, body); an error status is returned like any other, 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()
    except OSError:
        return 0, ""  # not listening (yet), or no answer in time
