"""DTMF in the running call: when keys may be sent, their timing, and the hand-over queue (the
alphabet, the methods and the parsing are the contract's: siprtmp_contract.dtmf).

The HTTP server runs on its own thread and must never touch pjsua, so a request is queued here
and the runner's poll loop (the only pjsua thread) plays it out (``KeyPlayer``) and settles the
request's future. The spec's ``dtmfAfterAnswer`` goes through the same player, so keys of the
spec and of requests never interleave.
"""

from __future__ import annotations

import hmac
import threading
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from typing import NamedTuple

from siprtmp_contract.dtmf import PAUSE_SECONDS, DtmfMethod
from siprtmp_contract.states import ANSWERED_CALL_STATES, CallState

#: One key starts this long after the previous one: the key sounds for KEY_DURATION_MS, then
#: a silence that IVRs need to tell two presses of the same key apart (pjmedia's RFC 2833 key
#: of 160 ms takes 200 ms on the wire with its three end packets, so it is over by then).
KEY_INTERVAL_SECONDS = 0.4
#: How long a key is pressed: the RFC 2833 event's duration and the INFO body's ``Duration=``.
KEY_DURATION_MS = 160
#: ``dtmfAfterAnswer`` starts this long after the 200 OK: the far end's media path and its
#: prompt are set up by then (RFC 2833 keys sent before its RTP arrives are often dropped).
ANSWER_SETTLE_SECONDS = 1.0
#: How many of the last keys received from the far end the status shows.
RECEIVED_KEYS_SHOWN = 16


def authorized(header: str | None, token: str | None) -> bool:
    """Whether an ``Authorization`` header carries ``token`` (any request, without a token)."""
    if not token:
        return True
    scheme, _, given = (header or "").partition(" ")
    # Bytes: compare_digest refuses str with characters beyond ASCII, which a header can carry.
    given_bytes = given.strip().encode("utf-8", "surrogateescape")
    return scheme.lower() == "bearer" and hmac.compare_digest(given_bytes, token.encode())


class DtmfRefusedError(RuntimeError):
    """The call cannot carry DTMF now (not answered, recvonly, ended, or pjsua refused)."""


@dataclass(frozen=True)
class KeyPress:
    at: float  # seconds from the start of the sequence
    key: str


@dataclass(frozen=True)
class KeySchedule:
    presses: tuple[KeyPress, ...]
    seconds: float  # until the sequence is over: the next one may start then


def schedule(digits: str) -> KeySchedule:
    """When each key of a parsed sequence goes out: one every KEY_INTERVAL_SECONDS, each pause
    adding its length (``"1w2"`` → 1 at 0 s, 2 at 0.9 s)."""
    presses: list[KeyPress] = []
    at = 0.0
    for character in digits:
        if character in PAUSE_SECONDS:
            at += PAUSE_SECONDS[character]
        else:
            presses.append(KeyPress(at, character))
            at += KEY_INTERVAL_SECONDS
    return KeySchedule(tuple(presses), at)


def refusal(has_audio: bool, call_state: CallState, method: DtmfMethod) -> str | None:
    """Why DTMF cannot be sent in this call now, or None when it can.

    RFC 2833 events travel in the bridge's own RTP stream: a recvonly call (hasAudio false)
    sends none, so pjsua would queue the digits and never send them. INFO needs only the dialog.
    """
    if method is DtmfMethod.RFC2833 and not has_audio:
        return (
            "the call is receive-only (hasAudio: false): the bridge sends no RTP to carry "
            "RFC2833 DTMF (type INFO can)"
        )
    if call_state not in ANSWERED_CALL_STATES:
        return f"the call is {call_state.value}, not ESTABLISHED"
    return None


class DtmfRequest(NamedTuple):
    digits: str
    method: DtmfMethod
    future: Future[None]


def refuse(future: Future[None], why: str) -> None:
    """Settle a request as not sent, unless its caller already gave up on it."""
    if future.running() or future.set_running_or_notify_cancel():
        future.set_exception(DtmfRefusedError(why))


class DtmfQueue:
    """Requests from the HTTP thread, taken by the runner's poll loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: list[DtmfRequest] = []

    def submit(self, digits: str, method: DtmfMethod = DtmfMethod.RFC2833) -> Future[None]:
        future: Future[None] = Future()
        with self._lock:
            self._pending.append(DtmfRequest(digits, method, future))
        return future

    def take(self) -> list[DtmfRequest]:
        with self._lock:
            taken, self._pending = self._pending, []
        return taken

    def refuse_all(self, why: str) -> None:
        """Settle every waiting request: the call is over, nothing will send them."""
        for request in self.take():
            refuse(request.future, why)


@dataclass
class _Sequence:
    method: DtmfMethod
    presses: deque[KeyPress]  # ``at`` on the player's clock
    future: Future[None] | None  # settled by the sequence's first key


@dataclass(frozen=True)
class DueKey:
    """A key to send now; ``future`` (the first key of a request only) waits for its fate."""

    key: str
    method: DtmfMethod
    future: Future[None] | None
    sequence: _Sequence


class KeyPlayer:
    """Sequences of keys waiting for their time, played one after another in the order they
    were added (a request during the spec's PIN waits for the PIN to finish). Runner-thread
    only; the clock is whatever the caller passes (``time.monotonic()`` in the bridge)."""

    def __init__(self) -> None:
        self._sequences: deque[_Sequence] = deque()
        self._free_at = float("-inf")

    def add(
        self, digits: str, method: DtmfMethod, now: float, future: Future[None] | None = None
    ) -> None:
        """Queue a parsed sequence to start at ``now``, or when the one before it is over."""
        planned = schedule(digits)
        start = max(now, self._free_at)
        self._free_at = start + planned.seconds
        presses = deque(KeyPress(start + p.at, p.key) for p in planned.presses)
        self._sequences.append(_Sequence(method, presses, future))

    def next_at(self) -> float | None:
        """When the next key is due, None when nothing waits."""
        return self._sequences[0].presses[0].at if self._sequences else None

    def pop_due(self, now: float) -> DueKey | None:
        if not self._sequences or self._sequences[0].presses[0].at > now:
            return None
        sequence = self._sequences[0]
        press = sequence.presses.popleft()
        future, sequence.future = sequence.future, None
        if not sequence.presses:
            self._sequences.popleft()
        return DueKey(press.key, sequence.method, future, sequence)

    def abandon(self, due: DueKey) -> None:
        """Drop the rest of a sequence whose key could not be sent: half a PIN is no PIN."""
        if due.sequence in self._sequences:
            self._sequences.remove(due.sequence)

    def refuse_all(self, why: str) -> None:
        """Settle the requests whose first key never went out: the call is over."""
        for sequence in self._sequences:
            if sequence.future is not None:
                refuse(sequence.future, why)
        self._sequences.clear()
