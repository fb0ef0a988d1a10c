"""DTMF into the running call: digit validation, when it may be sent, and the hand-over queue.

The HTTP server runs on its own thread and must never touch pjsua, so a request is queued here
and the runner's poll loop (the only pjsua thread) sends it and settles the request's future.
The operator's REST API validates digits with the same function before forwarding them.
"""

from __future__ import annotations

import hmac
import threading
from concurrent.futures import Future
from typing import Any

from siprtmp_bridge.status import ANSWERED_CALL_STATES, CallState

#: Where the bridge finds the bearer token a POST /dtmf must carry. The operator sets a new one
#: in each bridge pod (its REST API reads it back from the pod to forward DTMF): anything else
#: that reaches the pod's status port can read /status, but not press keys in the call.
CONTROL_TOKEN_ENV = "SIPRTMP_CONTROL_TOKEN"

#: RFC 4733 events 0-15: the 16 keys of a DTMF keypad.
DTMF_KEYS = "0123456789*#ABCD"
MAX_DIGITS = 32


def authorized(header: str | None, token: str | None) -> bool:
    """Whether an ``Authorization`` header carries ``token`` (any request, without a token)."""
    if not token:
        return True
    scheme, _, given = (header or "").partition(" ")
    # Bytes: compare_digest refuses str with characters beyond ASCII, which a header can carry.
    given_bytes = given.strip().encode("utf-8", "surrogateescape")
    return scheme.lower() == "bearer" and hmac.compare_digest(given_bytes, token.encode())


class DtmfError(ValueError):
    """Digits that cannot be sent: ``str()`` names the field, as the spec's errors do."""

    def __init__(self, problem: str) -> None:
        super().__init__(f"dtmf: {problem}")
        self.field_path = "dtmf"
        self.problem = problem


class DtmfRefusedError(RuntimeError):
    """The call cannot carry DTMF now (not answered, recvonly, ended, or pjsua refused)."""


def parse_digits(value: Any) -> str:
    """Digits as a string of keypad keys (case-insensitive A-D), at most MAX_DIGITS of them."""
    if not isinstance(value, str) or not value:
        raise DtmfError("is required: a string of 0-9, *, #, A-D")
    digits = value.upper()
    bad = sorted({c for c in digits if c not in DTMF_KEYS})
    if bad:
        raise DtmfError(f"has characters that are not DTMF keys: {''.join(bad)!r}")
    if len(digits) > MAX_DIGITS:
        raise DtmfError(f"at most {MAX_DIGITS} digits at a time, got {len(digits)}")
    return digits


def refusal(has_audio: bool, call_state: CallState) -> str | None:
    """Why DTMF cannot be sent in this call now, or None when it can.

    RFC 2833 events travel in the bridge's own RTP stream: a recvonly call (hasAudio false)
    sends none, so pjsua would queue the digits and never send them.
    """
    if not has_audio:
        return "the call is receive-only (hasAudio: false): the bridge sends no RTP to carry DTMF"
    if call_state not in ANSWERED_CALL_STATES:
        return f"the call is {call_state.value}, not ESTABLISHED"
    return None


class DtmfQueue:
    """Requests from the HTTP thread, taken by the runner's poll loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[tuple[str, Future[None]]] = []

    def submit(self, digits: str) -> Future[None]:
        future: Future[None] = Future()
        with self._lock:
            self._pending.append((digits, future))
        return future

    def take(self) -> list[tuple[str, Future[None]]]:
        with self._lock:
            taken, self._pending = self._pending, []
        return taken

    def refuse_all(self, why: str) -> None:
        """Settle every waiting request: the call is over, nothing will send them."""
        for _, future in self.take():
            if future.set_running_or_notify_cancel():
                future.set_exception(DtmfRefusedError(why))
